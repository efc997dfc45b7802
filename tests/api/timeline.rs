//! Integration tests: timeline (being written).
