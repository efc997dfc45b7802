//! Integration tests: process (being written).
