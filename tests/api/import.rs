//! Integration tests: import (being written).
