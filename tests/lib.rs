//! redrec-tests holds no library code: its integration tests live in `e2e/`, one test binary
//! that exercises several crates together against the real Redis under test.
