//! The dependency graph, as upstream's GraphBuilder keeps it: one node per object uid with its
//! owner references, and for each owner the set of its dependents. Owners referenced before
//! (or without) being observed get a *virtual* node, which the collector verifies with a live
//! read. Processing a change returns the nodes the collector must look at.

use std::collections::{HashMap, HashSet};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};

pub const ORPHAN: &str = "orphan";
pub const FOREGROUND: &str = "foregroundDeletion";

/// Where an object is: enough to read, patch or delete it.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Identity {
    pub api_version: String,
    pub kind: String,
    pub namespace: Option<String>,
    pub name: String,
    pub uid: String,
}

impl std::fmt::Display for Identity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "[{}/{}, namespace: {}, name: {}, uid: {}]",
            self.api_version,
            self.kind,
            self.namespace.as_deref().unwrap_or(""),
            self.name,
            self.uid
        )
    }
}

#[derive(Clone, Debug)]
pub struct Node {
    pub identity: Identity,
    /// Seen through a watch (false: a virtual node standing for an owner reference).
    pub observed: bool,
    pub owners: Vec<OwnerReference>,
    pub dependents: HashSet<String>,
    /// Has a deletionTimestamp.
    pub being_deleted: bool,
    /// Being deleted with the `foregroundDeletion` finalizer: waits for its dependents.
    pub deleting_dependents: bool,
    /// Being deleted with the `orphan` finalizer: its dependents are to be released.
    pub orphaning: bool,
}

/// A change the graph takes in.
#[derive(Debug)]
pub enum Change {
    /// An object was added or updated (from a watch of `api_version`/`kind`).
    Upsert {
        api_version: String,
        kind: String,
        meta: Box<ObjectMeta>,
    },
    /// An object was deleted.
    Delete { uid: String },
    /// A live read found no object for this (virtual) node.
    Absent(Identity),
}

/// What the collector must do after a change.
#[derive(Debug, Default, PartialEq)]
pub struct Work {
    pub attempt_to_delete: Vec<String>,
    pub attempt_to_orphan: Vec<String>,
}

#[derive(Default)]
pub struct Graph {
    nodes: HashMap<String, Node>,
}

fn has_finalizer(meta: &ObjectMeta, finalizer: &str) -> bool {
    meta.finalizers.iter().flatten().any(|f| f == finalizer)
}

fn blocks(r: &OwnerReference) -> bool {
    r.block_owner_deletion == Some(true)
}

impl Graph {
    pub fn node(&self, uid: &str) -> Option<&Node> {
        self.nodes.get(uid)
    }

    /// The dependents of `uid` (cloned, for work outside the graph's lock).
    pub fn dependents(&self, uid: &str) -> Vec<Node> {
        self.nodes
            .get(uid)
            .into_iter()
            .flat_map(|n| &n.dependents)
            .filter_map(|d| self.nodes.get(d))
            .cloned()
            .collect()
    }

    /// Dependents whose reference to `uid` has `blockOwnerDeletion: true`.
    pub fn blocking_dependents(&self, uid: &str) -> Vec<Node> {
        self.dependents(uid)
            .into_iter()
            .filter(|d| d.owners.iter().any(|o| o.uid == uid && blocks(o)))
            .collect()
    }

    pub fn apply(&mut self, change: Change) -> Work {
        let mut work = Work::default();
        match change {
            Change::Upsert {
                api_version,
                kind,
                meta,
            } => self.upsert(api_version, kind, *meta, &mut work),
            Change::Delete { uid } => {
                if let Some(node) = self.nodes.get(&uid).filter(|n| n.observed) {
                    let node = node.clone();
                    self.remove(&node, &mut work);
                }
            }
            Change::Absent(identity) => {
                // Only a node never observed goes: a watch event is the truth for the others.
                if let Some(node) = self.nodes.get(&identity.uid).filter(|n| !n.observed) {
                    let node = node.clone();
                    self.remove(&node, &mut work);
                }
            }
        }
        work
    }

    fn upsert(&mut self, api_version: String, kind: String, meta: ObjectMeta, work: &mut Work) {
        let Some(uid) = meta.uid.clone() else {
            return;
        };
        let identity = Identity {
            api_version,
            kind,
            namespace: meta.namespace.clone(),
            name: meta.name.clone().unwrap_or_default(),
            uid: uid.clone(),
        };
        let owners = meta.owner_references.clone().unwrap_or_default();
        let being_deleted = meta.deletion_timestamp.is_some();
        let deleting_dependents = being_deleted && has_finalizer(&meta, FOREGROUND);
        let orphaning = being_deleted && has_finalizer(&meta, ORPHAN);
        let (was_deleting_dependents, was_orphaning) = match self.nodes.get_mut(&uid) {
            None => {
                self.nodes.insert(
                    uid.clone(),
                    Node {
                        identity: identity.clone(),
                        observed: true,
                        owners: owners.clone(),
                        dependents: HashSet::new(),
                        being_deleted,
                        deleting_dependents,
                        orphaning,
                    },
                );
                self.add_to_owners(&identity, &owners, work);
                (false, false)
            }
            Some(node) => {
                let before = (node.deleting_dependents, node.orphaning);
                node.observed = true;
                node.identity = identity.clone();
                // "Being deleted" is a one-way trip.
                node.being_deleted |= being_deleted;
                node.deleting_dependents = deleting_dependents;
                node.orphaning = orphaning;
                let old = std::mem::replace(&mut node.owners, owners.clone());
                self.update_owners(&identity, &old, &owners, work);
                before
            }
        };
        if orphaning && !was_orphaning {
            work.attempt_to_orphan.push(uid.clone());
        }
        if deleting_dependents && !was_deleting_dependents {
            if let Some(node) = self.nodes.get(&uid) {
                work.attempt_to_delete.extend(node.dependents.iter().cloned());
            }
            work.attempt_to_delete.push(uid);
        }
    }

    /// Adds `dependent` to each owner's dependents, creating virtual owners (to be verified).
    fn add_to_owners(&mut self, dependent: &Identity, owners: &[OwnerReference], work: &mut Work) {
        for owner in owners {
            let node = self.nodes.entry(owner.uid.clone()).or_insert_with(|| {
                work.attempt_to_delete.push(owner.uid.clone());
                Node {
                    identity: Identity {
                        api_version: owner.api_version.clone(),
                        kind: owner.kind.clone(),
                        namespace: dependent.namespace.clone(),
                        name: owner.name.clone(),
                        uid: owner.uid.clone(),
                    },
                    observed: false,
                    owners: Vec::new(),
                    dependents: HashSet::new(),
                    being_deleted: false,
                    deleting_dependents: false,
                    orphaning: false,
                }
            });
            node.dependents.insert(dependent.uid.clone());
        }
    }

    fn update_owners(
        &mut self,
        dependent: &Identity,
        old: &[OwnerReference],
        new: &[OwnerReference],
        work: &mut Work,
    ) {
        let added: Vec<OwnerReference> = new
            .iter()
            .filter(|n| !old.iter().any(|o| o.uid == n.uid))
            .cloned()
            .collect();
        for removed in old.iter().filter(|o| !new.iter().any(|n| n.uid == o.uid)) {
            if let Some(owner) = self.nodes.get_mut(&removed.uid) {
                owner.dependents.remove(&dependent.uid);
                // An owner waiting for its blocking dependents may be free now.
                if blocks(removed) && owner.deleting_dependents {
                    work.attempt_to_delete.push(removed.uid.clone());
                }
            }
        }
        for changed in new
            .iter()
            .filter(|n| old.iter().any(|o| o.uid == n.uid && blocks(o) && !blocks(n)))
        {
            if self
                .nodes
                .get(&changed.uid)
                .is_some_and(|o| o.deleting_dependents)
            {
                work.attempt_to_delete.push(changed.uid.clone());
            }
        }
        self.add_to_owners(dependent, &added, work);
    }

    /// Removes a node; its dependents may now be garbage, and owners waiting for it may go on.
    fn remove(&mut self, node: &Node, work: &mut Work) {
        self.nodes.remove(&node.identity.uid);
        for owner in &node.owners {
            if let Some(o) = self.nodes.get_mut(&owner.uid) {
                o.dependents.remove(&node.identity.uid);
                if o.deleting_dependents {
                    work.attempt_to_delete.push(owner.uid.clone());
                }
                if !o.observed && o.dependents.is_empty() {
                    // A virtual owner nobody references any more.
                    self.nodes.remove(&owner.uid);
                }
            }
        }
        work.attempt_to_delete.extend(node.dependents.iter().cloned());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    fn meta(uid: &str, owners: &[(&str, bool)]) -> ObjectMeta {
        ObjectMeta {
            name: Some(format!("n-{uid}")),
            namespace: Some("default".into()),
            uid: Some(uid.into()),
            owner_references: Some(
                owners
                    .iter()
                    .map(|(o, block)| OwnerReference {
                        api_version: "v1".into(),
                        kind: "ConfigMap".into(),
                        name: format!("n-{o}"),
                        uid: (*o).into(),
                        block_owner_deletion: Some(*block),
                        ..Default::default()
                    })
                    .collect(),
            ),
            ..Default::default()
        }
    }

    fn upsert(meta: ObjectMeta) -> Change {
        Change::Upsert {
            api_version: "v1".into(),
            kind: "ConfigMap".into(),
            meta: Box::new(meta),
        }
    }

    #[test]
    fn unseen_owners_are_virtual_and_verified() {
        let mut g = Graph::default();
        let work = g.apply(upsert(meta("child", &[("owner", false)])));
        assert_eq!(work.attempt_to_delete, vec!["owner".to_owned()]);
        assert!(!g.node("owner").unwrap().observed);
        // The owner turns out to be absent: its dependents are looked at.
        let identity = g.node("owner").unwrap().identity.clone();
        let work = g.apply(Change::Absent(identity));
        assert_eq!(work.attempt_to_delete, vec!["child".to_owned()]);
        assert!(g.node("owner").is_none());
    }

    #[test]
    fn foreground_deletion_waits_for_blocking_dependents() {
        let mut g = Graph::default();
        g.apply(upsert(meta("owner", &[])));
        g.apply(upsert(meta("a", &[("owner", true)])));
        g.apply(upsert(meta("b", &[("owner", false)])));
        let mut deleting = meta("owner", &[]);
        deleting.deletion_timestamp = Some(Time(jiff::Timestamp::now()));
        deleting.finalizers = Some(vec![FOREGROUND.into()]);
        let mut work = g.apply(upsert(deleting));
        work.attempt_to_delete.sort();
        assert_eq!(work.attempt_to_delete, vec!["a", "b", "owner"]);
        assert_eq!(g.blocking_dependents("owner").len(), 1);
        let work = g.apply(Change::Delete { uid: "a".into() });
        assert_eq!(work.attempt_to_delete, vec!["owner".to_owned()]);
        assert!(g.blocking_dependents("owner").is_empty());
    }

    #[test]
    fn orphaning_starts_once() {
        let mut g = Graph::default();
        let mut owner = meta("owner", &[]);
        owner.deletion_timestamp = Some(Time(jiff::Timestamp::now()));
        owner.finalizers = Some(vec![ORPHAN.into()]);
        assert_eq!(
            g.apply(upsert(owner.clone())).attempt_to_orphan,
            vec!["owner".to_owned()]
        );
        assert!(g.apply(upsert(owner)).attempt_to_orphan.is_empty());
    }
}
