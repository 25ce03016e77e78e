//! The API server: the Kubernetes REST API over a [`store::Store`].

pub mod pki;
