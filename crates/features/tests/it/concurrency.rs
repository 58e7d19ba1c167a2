//! Concurrent events for one user from many tasks on separate connections: no lost update.
