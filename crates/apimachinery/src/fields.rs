//! Field selectors (being written).
