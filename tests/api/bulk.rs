//! Integration tests: bulk (being written).
