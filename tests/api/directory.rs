//! Integration tests: directory (being written).
