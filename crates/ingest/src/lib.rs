//! redrec-ingest (work in progress: see docs/ARCHITECTURE.md).
