//! Kubernetes API machinery, pure (no I/O): what every API handler and client-facing component
//! needs to speak the Kubernetes API as upstream does.

pub mod fields;
pub mod protobuf;
pub mod resources;
pub mod selector;
pub mod status;
