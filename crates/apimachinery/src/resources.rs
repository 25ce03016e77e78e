//! The registry of built-in resources: what discovery lists, what the REST paths resolve to,
//! and where each resource lives in the store. Names, short names, categories, verbs and
//! storage keys are upstream's (kube-apiserver 1.33), so `kubectl api-resources`, `kubectl get
//! po,deploy,all` and `etcdctl get /registry/…` look as users expect.

/// Verbs of an ordinary read-write resource.
pub const CRUD: &[&str] = &[
    "create",
    "delete",
    "deletecollection",
    "get",
    "list",
    "patch",
    "update",
    "watch",
];
/// Verbs of a create-only "review" resource (authentication/authorization checks).
pub const CREATE_ONLY: &[&str] = &["create"];
/// Verbs of a computed, read-only resource (ComponentStatus).
const GET_LIST: &[&str] = &["get", "list"];
const NO_DELETECOLLECTION: &[&str] = &["create", "delete", "get", "list", "patch", "update", "watch"];

/// One resource of one group-version.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ResourceDef {
    pub group: &'static str,
    pub version: &'static str,
    /// The plural, lower-case name used in paths, e.g. `deployments`.
    pub plural: &'static str,
    pub singular: &'static str,
    pub kind: &'static str,
    pub namespaced: bool,
    pub short_names: &'static [&'static str],
    pub categories: &'static [&'static str],
    pub verbs: &'static [&'static str],
    /// Subresources served, e.g. `status`, `scale`.
    pub subresources: &'static [&'static str],
    /// The store key segment after `/registry/`, e.g. `minions` for nodes (as upstream).
    pub storage: &'static str,
}

impl ResourceDef {
    /// `apps/v1`, or `v1` for the core group.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.to_owned()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    /// `<Kind>List`.
    pub fn list_kind(&self) -> String {
        format!("{}List", self.kind)
    }

    pub fn group_resource(&self) -> crate::status::GroupResource<'static> {
        crate::status::GroupResource {
            group: self.group,
            resource: self.plural,
        }
    }

    pub fn has_verb(&self, verb: &str) -> bool {
        self.verbs.contains(&verb)
    }

    pub fn has_subresource(&self, sub: &str) -> bool {
        self.subresources.contains(&sub)
    }

    /// The store prefix of all objects (`/registry/pods/`), or of one namespace's
    /// (`/registry/pods/default/`).
    pub fn key_prefix(&self, namespace: Option<&str>) -> String {
        match namespace {
            Some(ns) if self.namespaced => format!("/registry/{}/{ns}/", self.storage),
            _ => format!("/registry/{}/", self.storage),
        }
    }

    /// The store key of one object.
    pub fn key(&self, namespace: Option<&str>, name: &str) -> String {
        format!("{}{name}", self.key_prefix(namespace))
    }
}

#[allow(clippy::too_many_arguments)]
const fn def(
    group: &'static str,
    version: &'static str,
    plural: &'static str,
    singular: &'static str,
    kind: &'static str,
    namespaced: bool,
    short_names: &'static [&'static str],
    categories: &'static [&'static str],
    verbs: &'static [&'static str],
    subresources: &'static [&'static str],
    storage: &'static str,
) -> ResourceDef {
    ResourceDef {
        group,
        version,
        plural,
        singular,
        kind,
        namespaced,
        short_names,
        categories,
        verbs,
        subresources,
        storage,
    }
}

const NS: bool = true;
const CLUSTER: bool = false;
const ALL: &[&str] = &["all"];
const NONE: &[&str] = &[];
const STATUS: &[&str] = &["status"];
const STATUS_SCALE: &[&str] = &["scale", "status"];

/// Every built-in resource, grouped by group-version in discovery order (one per line: it is a table).
#[rustfmt::skip]
pub static BUILTIN: &[ResourceDef] = &[
    // core/v1
    def("", "v1", "bindings", "binding", "Binding", NS, NONE, NONE, CREATE_ONLY, NONE, "bindings"),
    def("", "v1", "componentstatuses", "componentstatus", "ComponentStatus", CLUSTER, &["cs"], NONE, GET_LIST, NONE, "componentstatuses"),
    def("", "v1", "configmaps", "configmap", "ConfigMap", NS, &["cm"], NONE, CRUD, NONE, "configmaps"),
    def("", "v1", "endpoints", "endpoints", "Endpoints", NS, &["ep"], NONE, CRUD, NONE, "services/endpoints"),
    def("", "v1", "events", "event", "Event", NS, &["ev"], NONE, CRUD, NONE, "events"),
    def("", "v1", "limitranges", "limitrange", "LimitRange", NS, &["limits"], NONE, CRUD, NONE, "limitranges"),
    def("", "v1", "namespaces", "namespace", "Namespace", CLUSTER, &["ns"], NONE, NO_DELETECOLLECTION, &["finalize", "status"], "namespaces"),
    def("", "v1", "nodes", "node", "Node", CLUSTER, &["no"], NONE, CRUD, &["proxy", "status"], "minions"),
    def("", "v1", "persistentvolumeclaims", "persistentvolumeclaim", "PersistentVolumeClaim", NS, &["pvc"], NONE, CRUD, STATUS, "persistentvolumeclaims"),
    def("", "v1", "persistentvolumes", "persistentvolume", "PersistentVolume", CLUSTER, &["pv"], NONE, CRUD, STATUS, "persistentvolumes"),
    def("", "v1", "pods", "pod", "Pod", NS, &["po"], ALL, CRUD, &["attach", "binding", "ephemeralcontainers", "eviction", "exec", "log", "portforward", "proxy", "resize", "status"], "pods"),
    def("", "v1", "podtemplates", "podtemplate", "PodTemplate", NS, NONE, NONE, CRUD, NONE, "podtemplates"),
    def("", "v1", "replicationcontrollers", "replicationcontroller", "ReplicationController", NS, &["rc"], ALL, CRUD, STATUS_SCALE, "controllers"),
    def("", "v1", "resourcequotas", "resourcequota", "ResourceQuota", NS, &["quota"], NONE, CRUD, STATUS, "resourcequotas"),
    def("", "v1", "secrets", "secret", "Secret", NS, NONE, NONE, CRUD, NONE, "secrets"),
    def("", "v1", "serviceaccounts", "serviceaccount", "ServiceAccount", NS, &["sa"], NONE, CRUD, &["token"], "serviceaccounts"),
    def("", "v1", "services", "service", "Service", NS, &["svc"], ALL, CRUD, &["proxy", "status"], "services/specs"),
    // apps/v1
    def("apps", "v1", "controllerrevisions", "controllerrevision", "ControllerRevision", NS, NONE, NONE, CRUD, NONE, "controllerrevisions"),
    def("apps", "v1", "daemonsets", "daemonset", "DaemonSet", NS, &["ds"], ALL, CRUD, STATUS, "daemonsets"),
    def("apps", "v1", "deployments", "deployment", "Deployment", NS, &["deploy"], ALL, CRUD, STATUS_SCALE, "deployments"),
    def("apps", "v1", "replicasets", "replicaset", "ReplicaSet", NS, &["rs"], ALL, CRUD, STATUS_SCALE, "replicasets"),
    def("apps", "v1", "statefulsets", "statefulset", "StatefulSet", NS, &["sts"], ALL, CRUD, STATUS_SCALE, "statefulsets"),
    // events.k8s.io/v1 (the same objects as core events, another shape)
    def("events.k8s.io", "v1", "events", "event", "Event", NS, &["ev"], NONE, CRUD, NONE, "events"),
    // authentication / authorization reviews
    def("authentication.k8s.io", "v1", "selfsubjectreviews", "selfsubjectreview", "SelfSubjectReview", CLUSTER, NONE, NONE, CREATE_ONLY, NONE, ""),
    def("authentication.k8s.io", "v1", "tokenreviews", "tokenreview", "TokenReview", CLUSTER, NONE, NONE, CREATE_ONLY, NONE, ""),
    def("authorization.k8s.io", "v1", "localsubjectaccessreviews", "localsubjectaccessreview", "LocalSubjectAccessReview", NS, NONE, NONE, CREATE_ONLY, NONE, ""),
    def("authorization.k8s.io", "v1", "selfsubjectaccessreviews", "selfsubjectaccessreview", "SelfSubjectAccessReview", CLUSTER, NONE, NONE, CREATE_ONLY, NONE, ""),
    def("authorization.k8s.io", "v1", "selfsubjectrulesreviews", "selfsubjectrulesreview", "SelfSubjectRulesReview", CLUSTER, NONE, NONE, CREATE_ONLY, NONE, ""),
    def("authorization.k8s.io", "v1", "subjectaccessreviews", "subjectaccessreview", "SubjectAccessReview", CLUSTER, NONE, NONE, CREATE_ONLY, NONE, ""),
    // autoscaling (v1 and v2 are two shapes of the same objects)
    def("autoscaling", "v2", "horizontalpodautoscalers", "horizontalpodautoscaler", "HorizontalPodAutoscaler", NS, &["hpa"], ALL, CRUD, STATUS, "horizontalpodautoscalers"),
    def("autoscaling", "v1", "horizontalpodautoscalers", "horizontalpodautoscaler", "HorizontalPodAutoscaler", NS, &["hpa"], ALL, CRUD, STATUS, "horizontalpodautoscalers"),
    // batch/v1
    def("batch", "v1", "cronjobs", "cronjob", "CronJob", NS, &["cj"], ALL, CRUD, STATUS, "cronjobs"),
    def("batch", "v1", "jobs", "job", "Job", NS, NONE, ALL, CRUD, STATUS, "jobs"),
    // certificates.k8s.io/v1
    def("certificates.k8s.io", "v1", "certificatesigningrequests", "certificatesigningrequest", "CertificateSigningRequest", CLUSTER, &["csr"], NONE, CRUD, &["approval", "status"], "certificatesigningrequests"),
    // coordination, discovery, networking, policy
    def("coordination.k8s.io", "v1", "leases", "lease", "Lease", NS, NONE, NONE, CRUD, NONE, "leases"),
    def("discovery.k8s.io", "v1", "endpointslices", "endpointslice", "EndpointSlice", NS, NONE, NONE, CRUD, NONE, "endpointslices"),
    def("networking.k8s.io", "v1", "ingressclasses", "ingressclass", "IngressClass", CLUSTER, NONE, NONE, CRUD, NONE, "ingressclasses"),
    def("networking.k8s.io", "v1", "ingresses", "ingress", "Ingress", NS, &["ing"], NONE, CRUD, STATUS, "ingress"),
    def("networking.k8s.io", "v1", "networkpolicies", "networkpolicy", "NetworkPolicy", NS, &["netpol"], NONE, CRUD, NONE, "networkpolicies"),
    def("policy", "v1", "poddisruptionbudgets", "poddisruptionbudget", "PodDisruptionBudget", NS, &["pdb"], NONE, CRUD, STATUS, "poddisruptionbudgets"),
    // rbac
    def("rbac.authorization.k8s.io", "v1", "clusterrolebindings", "clusterrolebinding", "ClusterRoleBinding", CLUSTER, NONE, NONE, CRUD, NONE, "clusterrolebindings"),
    def("rbac.authorization.k8s.io", "v1", "clusterroles", "clusterrole", "ClusterRole", CLUSTER, NONE, NONE, CRUD, NONE, "clusterroles"),
    def("rbac.authorization.k8s.io", "v1", "rolebindings", "rolebinding", "RoleBinding", NS, NONE, NONE, CRUD, NONE, "rolebindings"),
    def("rbac.authorization.k8s.io", "v1", "roles", "role", "Role", NS, NONE, NONE, CRUD, NONE, "roles"),
    // scheduling, storage, apiextensions
    def("scheduling.k8s.io", "v1", "priorityclasses", "priorityclass", "PriorityClass", CLUSTER, &["pc"], NONE, CRUD, NONE, "priorityclasses"),
    def("storage.k8s.io", "v1", "storageclasses", "storageclass", "StorageClass", CLUSTER, &["sc"], NONE, CRUD, NONE, "storageclasses"),
    // apiregistration (stored and validated; nothing is proxied to the services they name)
    def("apiregistration.k8s.io", "v1", "apiservices", "apiservice", "APIService", CLUSTER, NONE, &["api-extensions"], CRUD, STATUS, "apiregistration.k8s.io/apiservices"),
    // admissionregistration (called by the admission chain: apiserver/src/admission/webhook)
    def("admissionregistration.k8s.io", "v1", "mutatingwebhookconfigurations", "mutatingwebhookconfiguration", "MutatingWebhookConfiguration", CLUSTER, NONE, &["api-extensions"], CRUD, NONE, "mutatingwebhookconfigurations"),
    def("admissionregistration.k8s.io", "v1", "validatingwebhookconfigurations", "validatingwebhookconfiguration", "ValidatingWebhookConfiguration", CLUSTER, NONE, &["api-extensions"], CRUD, NONE, "validatingwebhookconfigurations"),
    def("apiextensions.k8s.io", "v1", "customresourcedefinitions", "customresourcedefinition", "CustomResourceDefinition", CLUSTER, &["crd", "crds"], &["api-extensions"], CRUD, STATUS, "apiextensions.k8s.io/customresourcedefinitions"),
];

/// Finds a built-in resource by group, version and plural.
pub fn find(group: &str, version: &str, plural: &str) -> Option<&'static ResourceDef> {
    BUILTIN
        .iter()
        .find(|r| r.group == group && r.version == version && r.plural == plural)
}

/// The group-versions served, in discovery order (preferred version first within a group).
pub fn group_versions() -> Vec<(&'static str, &'static str)> {
    let mut seen: Vec<(&str, &str)> = Vec::new();
    for r in BUILTIN {
        if !seen.contains(&(r.group, r.version)) {
            seen.push((r.group, r.version));
        }
    }
    seen
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_is_consistent() {
        for r in BUILTIN {
            assert!(r.plural.chars().all(|c| c.is_ascii_lowercase()), "{r:?}");
            assert!(r.kind.chars().next().unwrap().is_ascii_uppercase(), "{r:?}");
            assert_eq!(find(r.group, r.version, r.plural), Some(r), "duplicate {r:?}");
            assert!(r.verbs.windows(2).all(|w| w[0] < w[1]), "verbs sorted: {r:?}");
            assert!(
                r.subresources.windows(2).all(|w| w[0] < w[1]),
                "subresources sorted: {r:?}"
            );
            // Create-only reviews are not stored; everything else has a storage key.
            assert_eq!(
                r.storage.is_empty(),
                r.verbs == CREATE_ONLY && r.plural != "bindings",
                "{r:?}"
            );
        }
    }

    #[test]
    fn keys_follow_upstream_layout() {
        let pods = find("", "v1", "pods").unwrap();
        assert_eq!(pods.key(Some("default"), "web"), "/registry/pods/default/web");
        assert_eq!(pods.key_prefix(None), "/registry/pods/");
        let nodes = find("", "v1", "nodes").unwrap();
        assert_eq!(nodes.key(None, "n1"), "/registry/minions/n1");
        let svc = find("", "v1", "services").unwrap();
        assert_eq!(
            svc.key(Some("kube-system"), "kube-dns"),
            "/registry/services/specs/kube-system/kube-dns"
        );
        assert_eq!(
            find("apps", "v1", "deployments").unwrap().api_version(),
            "apps/v1"
        );
        assert_eq!(pods.api_version(), "v1");
    }

    #[test]
    fn groups_are_listed_preferred_version_first() {
        let gvs = group_versions();
        assert_eq!(gvs[0], ("", "v1"));
        let autoscaling: Vec<_> = gvs.iter().filter(|(g, _)| *g == "autoscaling").collect();
        assert_eq!(autoscaling, [&("autoscaling", "v2"), &("autoscaling", "v1")]);
    }
}
