//! The conditions a terminating namespace reports (upstream's `namespaceConditionUpdater`):
//! each of five types is True with what went wrong, or False with the "ok" reason and message.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{NamespaceCondition, NamespaceStatus};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

pub const DISCOVERY_FAILURE: &str = "NamespaceDeletionDiscoveryFailure";
pub const GROUP_VERSION_PARSING_FAILURE: &str = "NamespaceDeletionGroupVersionParsingFailure";
pub const CONTENT_FAILURE: &str = "NamespaceDeletionContentFailure";
pub const CONTENT_REMAINING: &str = "NamespaceContentRemaining";
pub const FINALIZERS_REMAINING: &str = "NamespaceFinalizersRemaining";

/// The types in upstream's order, with their "ok" reason and message.
const OK: [(&str, &str, &str); 5] = [
    (
        DISCOVERY_FAILURE,
        "ResourcesDiscovered",
        "All resources successfully discovered",
    ),
    (
        GROUP_VERSION_PARSING_FAILURE,
        "ParsedGroupVersions",
        "All legacy kube types successfully parsed",
    ),
    (
        CONTENT_FAILURE,
        "ContentDeleted",
        "All content successfully deleted, may be waiting on finalization",
    ),
    (
        CONTENT_REMAINING,
        "ContentRemoved",
        "All content successfully removed",
    ),
    (
        FINALIZERS_REMAINING,
        "ContentRemoved",
        "All content successfully removed",
    ),
];

/// The failures one pass found; what is not reported is fine.
#[derive(Default)]
pub struct Conditions {
    failures: Vec<(&'static str, &'static str, String)>,
    delete_errors: Vec<String>,
}

impl Conditions {
    pub fn discovery_failed(&mut self, message: String) {
        self.failures
            .push((DISCOVERY_FAILURE, "DiscoveryFailed", message));
    }

    pub fn delete_failed(&mut self, message: String) {
        self.delete_errors.push(message);
    }

    /// Remaining objects per `resource.group` and per finalizer.
    pub fn content_totals(
        &mut self,
        remaining: &BTreeMap<String, usize>,
        finalizers: &BTreeMap<String, usize>,
    ) {
        let resources: Vec<String> = remaining
            .iter()
            .filter(|(_, n)| **n > 0)
            .map(|(gr, n)| format!("{gr} has {n} resource instances"))
            .collect();
        if !resources.is_empty() {
            self.failures.push((
                CONTENT_REMAINING,
                "SomeResourcesRemain",
                format!("Some resources are remaining: {}", resources.join(", ")),
            ));
        }
        let by_finalizer: Vec<String> = finalizers
            .iter()
            .filter(|(_, n)| **n > 0)
            .map(|(f, n)| format!("{f} in {n} resource instances"))
            .collect();
        if !by_finalizer.is_empty() {
            self.failures.push((
                FINALIZERS_REMAINING,
                "SomeFinalizerRemain",
                format!("Some finalizers are remaining: {}", by_finalizer.join(", ")),
            ));
        }
    }

    /// Writes the conditions into `status`; whether anything changed.
    pub fn update(mut self, status: &mut NamespaceStatus) -> bool {
        if !self.delete_errors.is_empty() {
            let mut messages = std::mem::take(&mut self.delete_errors);
            messages.sort();
            self.failures.push((
                CONTENT_FAILURE,
                "ContentDeletionFailed",
                format!(
                    "Failed to delete all resource types, {} remaining: {}",
                    messages.len(),
                    messages.join(", ")
                ),
            ));
        }
        let now = Time(jiff::Timestamp::now());
        let conditions = status.conditions.get_or_insert_with(Vec::new);
        let mut changed = false;
        for (kind, ok_reason, ok_message) in OK {
            let (status_value, reason, message) = match self.failures.iter().find(|f| f.0 == kind) {
                Some((_, reason, message)) => ("True", *reason, message.clone()),
                None => ("False", ok_reason, ok_message.to_owned()),
            };
            match conditions.iter_mut().find(|c| c.type_ == kind) {
                None => {
                    conditions.push(NamespaceCondition {
                        type_: kind.to_owned(),
                        status: status_value.to_owned(),
                        reason: Some(reason.to_owned()),
                        message: Some(message),
                        last_transition_time: Some(now.clone()),
                    });
                    changed = true;
                }
                Some(old) => {
                    if old.status != status_value
                        || old.reason.as_deref() != Some(reason)
                        || old.message.as_deref() != Some(&message)
                    {
                        if old.status != status_value {
                            old.last_transition_time = Some(now.clone());
                        }
                        old.status = status_value.to_owned();
                        old.reason = Some(reason.to_owned());
                        old.message = Some(message);
                        changed = true;
                    }
                }
            }
        }
        changed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ok_conditions_then_remaining_content() {
        let mut status = NamespaceStatus::default();
        assert!(Conditions::default().update(&mut status));
        let conditions = status.conditions.clone().unwrap();
        assert_eq!(conditions.len(), 5);
        assert!(conditions.iter().all(|c| c.status == "False"));
        assert!(!Conditions::default().update(&mut status), "nothing changed");

        let mut c = Conditions::default();
        let remaining = BTreeMap::from([("configmaps.".to_owned(), 2)]);
        let finalizers = BTreeMap::from([("example.com/hold".to_owned(), 2)]);
        c.content_totals(&remaining, &finalizers);
        assert!(c.update(&mut status));
        let find = |t: &str| {
            status
                .conditions
                .as_ref()
                .unwrap()
                .iter()
                .find(|c| c.type_ == t)
                .cloned()
                .unwrap()
        };
        assert_eq!(
            find(CONTENT_REMAINING).message.unwrap(),
            "Some resources are remaining: configmaps. has 2 resource instances"
        );
        assert_eq!(
            find(FINALIZERS_REMAINING).message.unwrap(),
            "Some finalizers are remaining: example.com/hold in 2 resource instances"
        );
        assert_eq!(find(FINALIZERS_REMAINING).reason.unwrap(), "SomeFinalizerRemain");
    }
}
