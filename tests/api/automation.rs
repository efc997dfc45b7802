//! Integration tests: automation (being written).
