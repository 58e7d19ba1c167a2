//! redrec-embedder (work in progress: see docs/ARCHITECTURE.md).
