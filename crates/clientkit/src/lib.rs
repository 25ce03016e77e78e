//! Client-side machinery shared by the components that run against the API server —
//! controllers, scheduler, hollow nodes and (later) the node agent — as upstream's components
//! share client-go's tools: connecting with a kubeconfig, leader election on Leases, and recording Events.

pub mod connect;
pub mod events;
pub mod leader;

pub use connect::from_kubeconfig;
pub use events::{EventType, Recorder};
pub use leader::{LeaderElection, LeaseConfig};
