//! Catalogue look-ups that turn a request into queue criteria: the mount policy from the mount
//! rules, the destination pools from the archive routes, the disk system from the destination URL;
//! and the retrieve router that picks a tape by the catalogue's tape states.

use std::collections::{BTreeMap, HashMap};

use crate::catalogue::CatalogueSnapshot;
use crate::clock::Timestamp;
use crate::db::{QueueStats, RetrieveRouter};
use crate::error::{Error, Result};
use crate::rules;
use crate::types::*;

fn rule<'a>(cat: &'a CatalogueSnapshot, kind: MountRuleKind, instance: &str, name: &str) -> Option<&'a MountPolicy> {
    cat.mount_rules
        .iter()
        .find(|r| r.kind == kind && r.disk_instance == instance && r.name == name)
        .and_then(|r| cat.mount_policies.get(&r.mount_policy))
}

/// The policy of an archive request: requester rule, else group rule, else the requester rule
/// of the user named `default`.
pub fn archive_policy<'a>(cat: &'a CatalogueSnapshot, instance: &str, who: &Requester) -> Result<&'a MountPolicy> {
    rule(cat, MountRuleKind::Requester, instance, &who.name)
        .or_else(|| rule(cat, MountRuleKind::Group, instance, &who.group))
        .or_else(|| rule(cat, MountRuleKind::Requester, instance, "default"))
        .ok_or_else(|| {
            Error::invalid(format!(
                "no mount rule matches requester {:?} (group {:?}) on disk instance {instance:?}, and there is no \
                 \"default\" rule",
                who.name, who.group
            ))
        })
}

/// The policy of a retrieve request: the explicit one, else the matching activity rule with the
/// highest retrieve priority, else requester, group and `default` rules.
pub fn retrieve_policy<'a>(
    cat: &'a CatalogueSnapshot,
    instance: &str,
    who: &Requester,
    activity: Option<&str>,
    explicit: Option<&str>,
) -> Result<&'a MountPolicy> {
    if let Some(name) = explicit {
        return cat
            .mount_policies
            .get(name)
            .ok_or_else(|| Error::invalid(format!("mount policy {name:?} does not exist")));
    }
    if let Some(activity) = activity {
        let mut best: Option<&MountPolicy> = None;
        for r in cat.mount_rules.iter().filter(|r| r.kind == MountRuleKind::Activity && r.disk_instance == instance) {
            let Ok(re) = regex::Regex::new(&r.name) else { continue };
            if !re.is_match(activity) {
                continue;
            }
            if let Some(p) = cat.mount_policies.get(&r.mount_policy) {
                if best.is_none_or(|b| p.retrieve_priority > b.retrieve_priority) {
                    best = Some(p);
                }
            }
        }
        if let Some(p) = best {
            return Ok(p);
        }
    }
    archive_policy(cat, instance, who)
}

/// Copy number to pool for a user archive of `storage_class` (default routes only); every copy
/// the storage class asks for must have a route.
pub fn archive_routes(cat: &CatalogueSnapshot, storage_class: &str) -> Result<BTreeMap<u32, String>> {
    let sc = cat
        .storage_classes
        .get(storage_class)
        .ok_or_else(|| Error::invalid(format!("storage class {storage_class:?} does not exist")))?;
    let routes: BTreeMap<u32, String> = cat
        .archive_routes
        .iter()
        .filter(|r| r.storage_class == storage_class && r.route_type == ArchiveRouteType::Default)
        .map(|r| (r.copy_nb, r.tape_pool.clone()))
        .collect();
    for copy in 1..=sc.nb_copies {
        if !routes.contains_key(&copy) {
            return Err(Error::invalid(format!(
                "storage class {storage_class:?} wants {} copies but has no archive route for copy {copy}",
                sc.nb_copies
            )));
        }
    }
    let mut pools: Vec<&String> = routes.values().collect();
    pools.sort();
    if pools.windows(2).any(|w| w[0] == w[1]) {
        return Err(Error::invalid(format!("storage class {storage_class:?} routes two copies to one tape pool")));
    }
    Ok(routes.into_iter().filter(|(c, _)| *c <= sc.nb_copies).collect())
}

/// The disk system whose `file_regexp` matches `dst_url` (disk systems in name order).
pub fn disk_system(cat: &CatalogueSnapshot, dst_url: &str) -> Option<String> {
    cat.disk_systems
        .values()
        .find(|d| regex::Regex::new(&d.file_regexp).is_ok_and(|re| re.is_match(dst_url)))
        .map(|d| d.name.clone())
}

/// Routes retrieves by the catalogue's tape states and the backend's queue totals (a repack's
/// recall only to a REPACKING tape, or REPACKING_DISABLED as a fallback).
pub struct CatalogueRouter {
    states: HashMap<String, TapeState>,
    now: Timestamp,
}

impl CatalogueRouter {
    /// A router for the tape states of `cat` at `now`.
    pub fn new(cat: &CatalogueSnapshot, now: Timestamp) -> Self {
        CatalogueRouter { states: cat.tapes.values().map(|t| (t.vid.clone(), t.state)).collect(), now }
    }
}

impl RetrieveRouter for CatalogueRouter {
    fn candidates(&self, request: &RetrieveRequest) -> Vec<String> {
        let (pref, fallback) = rules::retrieve_states(request.repack.is_some());
        request
            .copies
            .iter()
            .filter(|c| self.states.get(&c.vid).is_some_and(|s| pref.contains(s) || fallback.contains(s)))
            .map(|c| c.vid.clone())
            .collect()
    }
    fn choose(&self, request: &RetrieveRequest, stats: &[QueueStats]) -> Option<String> {
        rules::best_vid(stats, &self.states, request.repack.is_some(), self.now)
    }
}
