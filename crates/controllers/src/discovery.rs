//! The served resources as the API server's discovery reports them (custom resources
//! included), for controllers that act on every kind: the garbage collector and the namespace
//! controller. Also the REST mapping from an owner reference's apiVersion and kind to a resource.

use kube::api::{Api, DynamicObject};
use kube::core::GroupVersionKind;
use kube::discovery::{ApiCapabilities, ApiResource, Discovery, Scope};

/// One resource in its group's preferred version.
#[derive(Clone, Debug)]
pub struct Served {
    pub resource: ApiResource,
    pub namespaced: bool,
    pub verbs: Vec<String>,
}

impl Served {
    pub fn supports(&self, verb: &str) -> bool {
        self.verbs.iter().any(|v| v == verb)
    }

    /// `resource.group` as upstream prints a GroupResource (`pods.` for the core group).
    pub fn group_resource(&self) -> String {
        format!("{}.{}", self.resource.plural, self.resource.group)
    }

    /// An API for this resource: all namespaces, or `namespace` for a namespaced one.
    pub fn api(&self, client: &kube::Client, namespace: Option<&str>) -> Api<DynamicObject> {
        match namespace.filter(|_| self.namespaced) {
            Some(ns) => Api::namespaced_with(client.clone(), ns, &self.resource),
            None => Api::all_with(client.clone(), &self.resource),
        }
    }
}

/// A discovery snapshot.
pub struct Resources {
    discovery: Discovery,
}

impl Resources {
    pub async fn discover(client: &kube::Client) -> Result<Resources, kube::Error> {
        Ok(Resources {
            discovery: Discovery::new(client.clone()).run().await?,
        })
    }

    /// Every resource in its group's preferred version.
    pub fn preferred(&self) -> Vec<Served> {
        self.discovery
            .groups()
            .flat_map(|g| g.recommended_resources())
            .map(|(resource, caps)| served(resource, &caps))
            .collect()
    }

    /// The resource for an owner reference's apiVersion and kind, in any served version.
    pub fn resolve(&self, api_version: &str, kind: &str) -> Option<Served> {
        let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
        let gvk = GroupVersionKind::gvk(group, version, kind);
        self.discovery
            .resolve_gvk(&gvk)
            .map(|(resource, caps)| served(resource, &caps))
    }
}

fn served(resource: ApiResource, caps: &ApiCapabilities) -> Served {
    Served {
        resource,
        namespaced: caps.scope == Scope::Namespaced,
        verbs: caps.operations.clone(),
    }
}
