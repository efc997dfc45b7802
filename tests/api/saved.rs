//! Integration tests: saved (being written).
