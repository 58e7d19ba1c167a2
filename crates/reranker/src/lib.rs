//! redrec-reranker (work in progress: see docs/ARCHITECTURE.md).
