//! Integration tests: objects (being written).
