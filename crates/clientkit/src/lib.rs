//! Client-side machinery shared by the components that run against the API server —
//! controllers, scheduler, hollow nodes and the node agent — as upstream's components
//! share client-go's tools: connecting with a kubeconfig, leader election on Leases, recording Events, and the
//! node Lease and conditions every kubelet-like component keeps (`kubelet`).

pub mod connect;
pub mod events;
pub mod kubelet;
pub mod leader;

pub use connect::{from_kubeconfig, from_kubeconfig_as, from_pem};
pub use events::{EventType, Recorder};
pub use leader::{LeaderElection, LeaseConfig};
