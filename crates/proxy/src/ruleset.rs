//! A backend-neutral picture of what the kernel should hold — named chains with rule texts,
//! named sets/maps with their declarations and elements — and the minimal change set between
//! two such pictures. Both backends render into a [`Ruleset`]; the diff is shared.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use crate::model::{Family, ServicePort, ServicePortName};

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Chain {
    /// A base chain's header (`type nat hook output priority -100;`), empty for regular chains.
    pub header: String,
    pub rules: Vec<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Set {
    /// The body of the declaration (`type ipv4_addr; flags timeout; timeout 10s;`).
    pub decl: String,
    /// key → value (`goto service-…` for verdict maps, empty for sets).
    pub elements: BTreeMap<String, String>,
    /// Elements are written by the kernel (affinity sets): never flushed or diffed.
    pub dynamic: bool,
}

/// Chains are shared (`Arc`): a service port's unchanged chains are the same allocation from
/// one sync to the next, so comparing them is a pointer comparison.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Ruleset {
    pub chains: BTreeMap<String, Arc<Chain>>,
    pub sets: BTreeMap<String, Set>,
}

impl Ruleset {
    pub fn chain(&mut self, name: impl Into<String>) -> &mut Chain {
        Arc::make_mut(self.chains.entry(name.into()).or_default())
    }

    /// The same sets and maps, empty, and no chains: what a service port's fragment is
    /// rendered into.
    pub fn skeleton(&self) -> Ruleset {
        Ruleset {
            chains: BTreeMap::new(),
            sets: self
                .sets
                .iter()
                .map(|(name, set)| {
                    (
                        name.clone(),
                        Set {
                            elements: BTreeMap::new(),
                            ..set.clone()
                        },
                    )
                })
                .collect(),
        }
    }

    /// Adds a fragment's chains, sets and elements (a later fragment wins a clashing element,
    /// as when both were rendered into one ruleset in order).
    pub fn merge(&mut self, fragment: &Ruleset) {
        for (name, chain) in &fragment.chains {
            self.chains.insert(name.clone(), chain.clone());
        }
        for (name, set) in &fragment.sets {
            match self.sets.get_mut(name) {
                Some(mine) => mine
                    .elements
                    .extend(set.elements.iter().map(|(k, v)| (k.clone(), v.clone()))),
                None => {
                    self.sets.insert(name.clone(), set.clone());
                }
            }
        }
    }

    pub fn rule(&mut self, chain: &str, rule: impl Into<String>) {
        self.chain(chain).rules.push(rule.into());
    }

    pub fn element(&mut self, set: &str, key: impl Into<String>, value: impl Into<String>) {
        self.sets
            .get_mut(set)
            .unwrap_or_else(|| panic!("set {set} is declared before its elements"))
            .elements
            .insert(key.into(), value.into());
    }
}

/// What turns the old ruleset into the new one.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Changes {
    /// Sets/maps to create (new, or redeclared: those are in `removed_sets` too).
    pub added_sets: Vec<(String, Set)>,
    pub removed_sets: Vec<String>,
    /// (set, key, value) to add to sets that stay.
    pub added_elements: Vec<(String, String, String)>,
    /// (set, key) to delete from sets that stay.
    pub removed_elements: Vec<(String, String)>,
    /// Chains that do not exist yet.
    pub added_chains: Vec<String>,
    /// Chains (new or changed) whose rules are (re)written in full.
    pub written_chains: Vec<(String, Arc<Chain>)>,
    pub removed_chains: Vec<String>,
}

impl Changes {
    pub fn is_empty(&self) -> bool {
        *self == Changes::default()
    }
}

/// Each service port's rendered rules, reused while the port's model is unchanged: a sync
/// renders only the ports that changed.
#[derive(Debug, Default)]
pub struct FragmentCache {
    entries: HashMap<(Family, ServicePortName), (ServicePort, Ruleset)>,
    used: HashSet<(Family, ServicePortName)>,
}

impl FragmentCache {
    /// The fragment of `sp`, rendered by `render` into `skeleton` unless cached.
    pub fn fragment(
        &mut self,
        family: Family,
        sp: &ServicePort,
        skeleton: &Ruleset,
        render: impl FnOnce(&mut Ruleset),
    ) -> &Ruleset {
        let key = (family, sp.name.clone());
        self.used.insert(key.clone());
        let fresh = !matches!(self.entries.get(&key), Some((cached, _)) if cached == sp);
        if fresh {
            let mut fragment = skeleton.clone();
            render(&mut fragment);
            // Shared maps this port adds nothing to are left out of the merge.
            fragment
                .sets
                .retain(|name, s| !s.elements.is_empty() || !skeleton.sets.contains_key(name));
            self.entries.insert(key.clone(), (sp.clone(), fragment));
        }
        &self.entries[&key].1
    }

    /// Forgets ports not asked for since the last sweep (call once per sync).
    pub fn sweep(&mut self) {
        let used = std::mem::take(&mut self.used);
        self.entries.retain(|k, _| used.contains(k));
    }

    /// Everything is rendered afresh (a backend or configuration change).
    pub fn clear(&mut self) {
        self.entries.clear();
        self.used.clear();
    }
}

/// The minimal change set from `old` to `new`: element-wise for maps and sets, chain-wise for
/// rules (a chain whose rules differ is rewritten whole, as kube-proxy does).
pub fn diff(old: &Ruleset, new: &Ruleset) -> Changes {
    let mut changes = Changes::default();
    join(&old.sets, &new.sets, |name, prev, set| match (prev, set) {
        (Some(prev), Some(set)) if prev.decl == set.decl && prev.dynamic == set.dynamic => {
            if set.dynamic {
                return;
            }
            join(&prev.elements, &set.elements, |key, was, is| match (was, is) {
                (Some(was), Some(is)) if was == is => {}
                (Some(_), Some(is)) => {
                    changes.removed_elements.push((name.clone(), key.clone()));
                    changes
                        .added_elements
                        .push((name.clone(), key.clone(), is.clone()));
                }
                (None, Some(is)) => changes
                    .added_elements
                    .push((name.clone(), key.clone(), is.clone())),
                (Some(_), None) => changes.removed_elements.push((name.clone(), key.clone())),
                (None, None) => {}
            });
        }
        (Some(_), Some(set)) => {
            changes.removed_sets.push(name.clone());
            changes.added_sets.push((name.clone(), set.clone()));
        }
        (None, Some(set)) => changes.added_sets.push((name.clone(), set.clone())),
        (Some(_), None) => changes.removed_sets.push(name.clone()),
        (None, None) => {}
    });
    join(&old.chains, &new.chains, |name, prev, chain| {
        match (prev, chain) {
            // Arc equality compares pointers first: unchanged fragments cost nothing.
            (Some(prev), Some(chain)) if prev == chain => {}
            (Some(_), Some(chain)) => changes.written_chains.push((name.clone(), chain.clone())),
            (None, Some(chain)) => {
                changes.added_chains.push(name.clone());
                changes.written_chains.push((name.clone(), chain.clone()));
            }
            (Some(_), None) => changes.removed_chains.push(name.clone()),
            (None, None) => {}
        }
    });
    changes
}

/// Walks two sorted maps side by side (no lookups): `f(key, old value, new value)`.
fn join<'a, K: Ord, V>(
    old: &'a BTreeMap<K, V>,
    new: &'a BTreeMap<K, V>,
    mut f: impl FnMut(&'a K, Option<&'a V>, Option<&'a V>),
) {
    let mut a = old.iter().peekable();
    let mut b = new.iter().peekable();
    loop {
        match (a.peek(), b.peek()) {
            (Some((ka, va)), Some((kb, vb))) => match ka.cmp(kb) {
                std::cmp::Ordering::Less => {
                    f(ka, Some(va), None);
                    a.next();
                }
                std::cmp::Ordering::Greater => {
                    f(kb, None, Some(vb));
                    b.next();
                }
                std::cmp::Ordering::Equal => {
                    f(ka, Some(va), Some(vb));
                    a.next();
                    b.next();
                }
            },
            (Some((ka, va)), None) => {
                f(ka, Some(va), None);
                a.next();
            }
            (None, Some((kb, vb))) => {
                f(kb, None, Some(vb));
                b.next();
            }
            (None, None) => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(elements: &[(&str, &str)]) -> Set {
        Set {
            decl: "type x : verdict;".into(),
            elements: elements
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            dynamic: false,
        }
    }

    #[test]
    fn identical_rulesets_have_no_changes() {
        let mut r = Ruleset::default();
        r.sets.insert("m".into(), map(&[("a", "goto x")]));
        r.rule("x", "accept");
        assert!(diff(&r, &r.clone()).is_empty());
    }

    #[test]
    fn elements_and_chains_change_minimally() {
        let mut old = Ruleset::default();
        old.sets.insert(
            "m".into(),
            map(&[("a", "goto x"), ("b", "goto y"), ("c", "goto x")]),
        );
        old.rule("x", "accept");
        old.rule("y", "drop");
        old.rule("z", "drop");
        let mut new = Ruleset::default();
        new.sets.insert(
            "m".into(),
            map(&[("a", "goto x"), ("c", "goto y"), ("d", "goto w")]),
        );
        new.rule("x", "accept");
        new.rule("y", "reject");
        new.rule("w", "accept");
        let c = diff(&old, &new);
        assert_eq!(
            c.added_elements,
            vec![
                ("m".to_string(), "c".to_string(), "goto y".to_string()),
                ("m".to_string(), "d".to_string(), "goto w".to_string())
            ]
        );
        assert_eq!(
            c.removed_elements,
            vec![
                ("m".to_string(), "b".to_string()),
                ("m".to_string(), "c".to_string())
            ]
        );
        assert_eq!(c.added_chains, vec!["w".to_string()]);
        let written: Vec<&str> = c.written_chains.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(written, vec!["w", "y"]);
        assert_eq!(c.removed_chains, vec!["z".to_string()]);
        assert!(c.added_sets.is_empty() && c.removed_sets.is_empty());
    }

    #[test]
    fn redeclared_set_is_replaced_and_dynamic_elements_are_ignored() {
        let mut old = Ruleset::default();
        old.sets.insert(
            "aff".into(),
            Set {
                decl: "timeout 10s;".into(),
                dynamic: true,
                ..Set::default()
            },
        );
        old.sets.insert(
            "aff2".into(),
            Set {
                decl: "timeout 10s;".into(),
                dynamic: true,
                ..Set::default()
            },
        );
        let mut new = old.clone();
        new.sets.get_mut("aff").unwrap().decl = "timeout 20s;".into();
        new.sets
            .get_mut("aff2")
            .unwrap()
            .elements
            .insert("1.2.3.4".into(), String::new());
        let c = diff(&old, &new);
        assert_eq!(c.removed_sets, vec!["aff".to_string()]);
        assert_eq!(c.added_sets.len(), 1);
        assert!(c.added_elements.is_empty());
    }
}
