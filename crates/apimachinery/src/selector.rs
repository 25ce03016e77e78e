//! Label selectors (being written).
