//! Integration tests: search (being written).
