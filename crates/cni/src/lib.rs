//! Pod networking through CNI plugins (spec 1.0.0), for the node agent.
//!
//! - `invoke` runs one plugin binary (`CNI_*` environment, config on stdin, result or error on
//!   stdout), optionally inside another network namespace;
//! - `config` parses network configuration lists and picks the conf dir's network;
//! - `chain` runs a list as libcni does (prevResult chaining, DEL in reverse, CHECK), with the
//!   `cache` of ADD results libcni keeps;
//! - `result` and `error` type what plugins print;
//! - `network` generates the node's default bridge network from its pod CIDRs;
//! - `pod` is the agent's API: `PodNetworking::setup` / `teardown` / `check` / `status`.

pub mod cache;
pub mod chain;
pub mod cidr;
pub mod config;
pub mod error;
pub mod invoke;
pub mod network;
pub mod pod;
pub mod result;

pub use cidr::IpNet;
pub use config::NetworkConfigList;
pub use error::{CniError, PluginError};
pub use network::DefaultNetwork;
pub use pod::{Options, PodNetwork, PodNetworking, PodSandbox, PortMapping, Protocol};
pub use result::AddResult;
