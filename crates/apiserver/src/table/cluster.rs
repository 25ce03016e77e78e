//! Printers of cluster-wide machinery: `rbac.authorization.k8s.io` bindings, `storage.k8s.io`
//! StorageClass, `scheduling.k8s.io` PriorityClass and `coordination.k8s.io` Lease. Roles and
//! ClusterRoles have no printer upstream: they keep the default columns.

use serde_json::Value;

use super::format::{flag, int, list, name, nonempty, s};
use super::{AGE, NAME, Printer, Row, col, format::Ctx, typed, wide};

pub(super) fn printer(group: &str, kind: &str) -> Option<&'static Printer> {
    Some(match (group, kind) {
        ("rbac.authorization.k8s.io", "RoleBinding") => &ROLE_BINDING,
        ("rbac.authorization.k8s.io", "ClusterRoleBinding") => &CLUSTER_ROLE_BINDING,
        ("storage.k8s.io", "StorageClass") => &STORAGE_CLASS,
        ("scheduling.k8s.io", "PriorityClass") => &PRIORITY_CLASS,
        ("coordination.k8s.io", "Lease") => &LEASE,
        ("certificates.k8s.io", "CertificateSigningRequest") => &CSR,
        (
            "admissionregistration.k8s.io",
            "MutatingWebhookConfiguration" | "ValidatingWebhookConfiguration",
        ) => &WEBHOOK_CONFIGURATION,
        _ => return None,
    })
}

static WEBHOOK_CONFIGURATION: Printer = Printer {
    columns: &[
        NAME,
        typed(
            "Webhooks",
            "integer",
            "Webhooks indicates the number of webhooks registered in this configuration",
        ),
        AGE,
    ],
    row: |config, ctx| {
        let count = config["webhooks"].as_array().map_or(0, Vec::len) as i64;
        vec![name(config).into(), count.into(), ctx.age(config).into()].into()
    },
};

static CSR: Printer = Printer {
    columns: &[
        NAME,
        AGE,
        col("SignerName", "Requested signer for the request."),
        col("Requestor", "Name of requestor"),
        col(
            "RequestedDuration",
            "Requested duration of validity of the issued certificate.",
        ),
        col("Condition", "Status of the request"),
    ],
    row: csr_row,
};

/// Condition as upstream's extractCSRStatus: Denied over Approved over Pending, then
/// `,Failed` and `,Issued`.
fn csr_row(csr: &Value, ctx: &Ctx) -> Row {
    let has = |kind: &str| {
        list(&csr["status"]["conditions"])
            .iter()
            .any(|c| c["type"] == kind)
    };
    let mut condition = if has("Denied") {
        "Denied"
    } else if has("Approved") {
        "Approved"
    } else {
        "Pending"
    }
    .to_owned();
    if has("Failed") {
        condition.push_str(",Failed");
    }
    if nonempty(&csr["status"]["certificate"]).is_some() {
        condition.push_str(",Issued");
    }
    let spec = &csr["spec"];
    let duration = match spec["expirationSeconds"].as_i64() {
        Some(seconds) => super::format::human_duration(i128::from(seconds) * 1_000_000_000),
        None => "<none>".to_owned(),
    };
    vec![
        name(csr).into(),
        ctx.age(csr).into(),
        nonempty(&spec["signerName"]).unwrap_or("<none>").into(),
        s(&spec["username"]).into(),
        duration.into(),
        condition.into(),
    ]
    .into()
}

static ROLE_BINDING: Printer = Printer {
    columns: &[
        NAME,
        col("Role", "The role the binding grants"),
        AGE,
        wide("Users", "Users in the roleBinding"),
        wide("Groups", "Groups in the roleBinding"),
        wide("ServiceAccounts", "ServiceAccounts in the roleBinding"),
    ],
    row: binding_row,
};

static CLUSTER_ROLE_BINDING: Printer = Printer {
    columns: &[
        NAME,
        col("Role", "The role the binding grants"),
        AGE,
        wide("Users", "Users in the clusterRoleBinding"),
        wide("Groups", "Groups in the clusterRoleBinding"),
        wide("ServiceAccounts", "ServiceAccounts in the clusterRoleBinding"),
    ],
    row: binding_row,
};

/// Role as `Kind/name`; subjects split into users, groups and `namespace/name` service
/// accounts (other kinds of subject are not shown).
fn binding_row(binding: &Value, ctx: &Ctx) -> Row {
    let role = &binding["roleRef"];
    let (mut users, mut groups, mut accounts) = (Vec::new(), Vec::new(), Vec::new());
    for subject in list(&binding["subjects"]) {
        let subject_name = s(&subject["name"]);
        match s(&subject["kind"]) {
            "ServiceAccount" => accounts.push(format!("{}/{subject_name}", s(&subject["namespace"]))),
            "User" => users.push(subject_name.to_owned()),
            "Group" => groups.push(subject_name.to_owned()),
            _ => {}
        }
    }
    vec![
        name(binding).into(),
        format!("{}/{}", s(&role["kind"]), s(&role["name"])).into(),
        ctx.age(binding).into(),
        users.join(", ").into(),
        groups.join(", ").into(),
        accounts.join(", ").into(),
    ]
    .into()
}

static STORAGE_CLASS: Printer = Printer {
    columns: &[
        NAME,
        col(
            "Provisioner",
            "The volume plugin that provisions volumes of this class",
        ),
        col("ReclaimPolicy", "What happens to released volumes of this class"),
        col("VolumeBindingMode", "When volumes are bound and provisioned"),
        col(
            "AllowVolumeExpansion",
            "Whether volumes of this class can be expanded",
        ),
        AGE,
    ],
    row: |class, ctx| {
        let annotations = &class["metadata"]["annotations"];
        let default = [
            "storageclass.kubernetes.io/is-default-class",
            "storageclass.beta.kubernetes.io/is-default-class",
        ]
        .iter()
        .any(|key| annotations[*key] == "true");
        let mut shown = name(class).to_owned();
        if default {
            shown.push_str(" (default)");
        }
        vec![
            shown.into(),
            s(&class["provisioner"]).into(),
            nonempty(&class["reclaimPolicy"]).unwrap_or("Delete").into(),
            nonempty(&class["volumeBindingMode"])
                .unwrap_or("Immediate")
                .into(),
            flag(&class["allowVolumeExpansion"]).into(),
            ctx.age(class).into(),
        ]
        .into()
    },
};

static PRIORITY_CLASS: Printer = Printer {
    columns: &[
        NAME,
        typed("Value", "integer", "The priority of pods of this class"),
        typed("Global-Default", "boolean", "Whether this is the default class"),
        AGE,
        col(
            "PreemptionPolicy",
            "Whether pods of this class preempt lower-priority pods",
        ),
    ],
    row: |class, ctx| {
        vec![
            name(class).into(),
            int(&class["value"]).into(),
            flag(&class["globalDefault"]).into(),
            ctx.age(class).into(),
            // PreemptLowerPriority is what upstream's defaulting stores when none is given.
            nonempty(&class["preemptionPolicy"])
                .unwrap_or("PreemptLowerPriority")
                .into(),
        ]
        .into()
    },
};

static LEASE: Printer = Printer {
    columns: &[NAME, col("Holder", "The current holder of the lease"), AGE],
    row: |lease, ctx| {
        vec![
            name(lease).into(),
            s(&lease["spec"]["holderIdentity"]).into(),
            ctx.age(lease).into(),
        ]
        .into()
    },
};

#[cfg(test)]
mod tests {
    use super::super::testing::{CREATED, check, headers, meta};
    use serde_json::json;

    #[test]
    fn certificate_signing_requests() {
        let group = "certificates.k8s.io";
        assert_eq!(
            headers(group, "CertificateSigningRequest"),
            [
                "Name",
                "Age",
                "SignerName",
                "Requestor",
                "RequestedDuration",
                "Condition"
            ]
        );
        check(
            group,
            "CertificateSigningRequest",
            &[
                (
                    json!({"metadata": meta("a"), "spec": {"signerName": "example.com/s", "username": "alice",
                        "expirationSeconds": 86400}, "status": {"conditions": [{"type": "Approved"}, {"type": "Failed"}],
                        "certificate": "Y2VydA=="}}),
                    json!([
                        "a",
                        "60m",
                        "example.com/s",
                        "alice",
                        "24h",
                        "Approved,Failed,Issued"
                    ]),
                ),
                (
                    json!({"metadata": meta("p"), "spec": {"username": "bob"}}),
                    json!(["p", "60m", "<none>", "bob", "<none>", "Pending"]),
                ),
            ],
        );
    }

    #[test]
    fn bindings() {
        for kind in ["RoleBinding", "ClusterRoleBinding"] {
            assert_eq!(
                headers("rbac.authorization.k8s.io", kind),
                ["Name", "Role", "Age", "Users*", "Groups*", "ServiceAccounts*"]
            );
            check(
                "rbac.authorization.k8s.io",
                kind,
                &[
                    (
                        json!({"metadata": meta("b"), "roleRef": {"kind": "ClusterRole", "name": "view", "apiGroup": "rbac.authorization.k8s.io"},
                           "subjects": [{"kind": "User", "name": "alice"}, {"kind": "User", "name": "bob"},
                                        {"kind": "Group", "name": "devs"},
                                        {"kind": "ServiceAccount", "name": "ci", "namespace": "tools"},
                                        {"kind": "Robot", "name": "r2"}]}),
                        json!(["b", "ClusterRole/view", "60m", "alice, bob", "devs", "tools/ci"]),
                    ),
                    (
                        json!({"metadata": meta("e"), "roleRef": {"kind": "Role", "name": "edit"}}),
                        json!(["e", "Role/edit", "60m", "", "", ""]),
                    ),
                ],
            );
        }
    }

    #[test]
    fn storage_and_priority_classes_and_leases() {
        assert_eq!(
            headers("storage.k8s.io", "StorageClass"),
            [
                "Name",
                "Provisioner",
                "ReclaimPolicy",
                "VolumeBindingMode",
                "AllowVolumeExpansion",
                "Age"
            ]
        );
        check(
            "storage.k8s.io",
            "StorageClass",
            &[
                (
                    json!({"metadata": {"name": "local", "creationTimestamp": CREATED,
                        "annotations": {"storageclass.kubernetes.io/is-default-class": "true"}},
                       "provisioner": "rancher.io/local-path", "reclaimPolicy": "Retain",
                       "volumeBindingMode": "WaitForFirstConsumer", "allowVolumeExpansion": true}),
                    json!([
                        "local (default)",
                        "rancher.io/local-path",
                        "Retain",
                        "WaitForFirstConsumer",
                        true,
                        "60m"
                    ]),
                ),
                (
                    json!({"metadata": {"name": "old", "creationTimestamp": CREATED,
                        "annotations": {"storageclass.beta.kubernetes.io/is-default-class": "true"}}, "provisioner": "p"}),
                    json!(["old (default)", "p", "Delete", "Immediate", false, "60m"]),
                ),
                (
                    json!({"metadata": meta("plain"), "provisioner": "p"}),
                    json!(["plain", "p", "Delete", "Immediate", false, "60m"]),
                ),
            ],
        );
        assert_eq!(
            headers("scheduling.k8s.io", "PriorityClass"),
            ["Name", "Value", "Global-Default", "Age", "PreemptionPolicy"]
        );
        check(
            "scheduling.k8s.io",
            "PriorityClass",
            &[
                (
                    json!({"metadata": meta("system-cluster-critical"), "value": 2000000000, "globalDefault": false,
                       "preemptionPolicy": "PreemptLowerPriority"}),
                    json!([
                        "system-cluster-critical",
                        2000000000,
                        false,
                        "60m",
                        "PreemptLowerPriority"
                    ]),
                ),
                (
                    json!({"metadata": meta("batch"), "value": -10, "globalDefault": true, "preemptionPolicy": "Never"}),
                    json!(["batch", -10, true, "60m", "Never"]),
                ),
            ],
        );
        assert_eq!(headers("coordination.k8s.io", "Lease"), ["Name", "Holder", "Age"]);
        check(
            "coordination.k8s.io",
            "Lease",
            &[
                (
                    json!({"metadata": meta("kube-scheduler"), "spec": {"holderIdentity": "cp-1_abc"}}),
                    json!(["kube-scheduler", "cp-1_abc", "60m"]),
                ),
                (
                    json!({"metadata": meta("free"), "spec": {}}),
                    json!(["free", "", "60m"]),
                ),
            ],
        );
    }
}
