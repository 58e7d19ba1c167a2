//! redrec-gateway (work in progress: see docs/ARCHITECTURE.md).
