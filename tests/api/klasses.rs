//! Integration tests: klasses (being written).
