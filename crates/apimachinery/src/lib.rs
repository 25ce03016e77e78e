//! Kubernetes API machinery, pure (no I/O): what every API handler and client-facing component
//! needs to speak the Kubernetes API as upstream does.

pub mod fields;
pub mod gostr;
pub mod managed_fields;
pub mod protobuf;
pub mod quantity;
pub mod resources;
pub mod selector;
pub mod status;
pub mod strategic_merge;

/// Helpers for this crate's tests.
#[cfg(test)]
pub(crate) mod testing {
    /// A deterministic xorshift64 generator: repeatable random inputs without a dependency.
    pub fn xorshift(mut state: u64) -> impl FnMut() -> u64 {
        move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        }
    }
}
