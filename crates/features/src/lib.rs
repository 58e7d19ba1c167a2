//! redrec-features (work in progress: see docs/ARCHITECTURE.md).
