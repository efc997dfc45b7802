//! Integration tests: openapi (being written).
