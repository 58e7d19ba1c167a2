//! redrec-retriever (work in progress: see docs/ARCHITECTURE.md).
