//! Integration tests: reports (being written).
