//! Integration tests of redrec-embedder: the in-process MiniLM against reference vectors from an
//! independent numpy implementation, the HTTP embedder against a local test server, and config.

mod config;
mod http;
mod minilm;
