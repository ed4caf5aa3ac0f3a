//! The full state as [`StateItem`]s (`tapesched_scheduler::state`): the keyed export and reads
//! by key. Imports and deletions are in `state_import`.
//!
//! The store has no ordered index of requests, so an export lists the object names of each kind
//! (one listing of the store's names: on Redis one `SCAN` walk), sorts their keys, and reads what a
//! page needs with batched reads. The listing, the queue positions of every transfer queue's
//! pointers and the mount agents' logs are read once and kept for the pages that follow (a page
//! continuing from the last key of the previous one reuses them): items created since are in no
//! listing, which is what a resumed backfill (the target receives them from dual-write) and a
//! verifier (which re-checks every difference) expect. A job's place comes from its owner record: a
//! transfer queue (queued, at its pointer's position), a mount's agent (held, in the order of the
//! agent's log), anything else by its status. A repack subrequest whose expansion pass its repack
//! never committed is not part of the state.

use std::collections::HashMap;

use tapesched_scheduler::state::{JobPlace, StateItem, StateKey};

use super::*;

/// The listing an export pages through.
#[derive(Default)]
pub(super) struct ExportCursor {
    /// The last key a page returned.
    last: Option<StateKey>,
    /// Every key, sorted, with its object name (markers: the queue's).
    keys: Arc<Vec<(StateKey, String)>>,
    /// Where the next page starts.
    next: usize,
    /// The snapshot the places are read from.
    places: Arc<Places>,
}

/// Queue positions and mount logs, as listed.
#[derive(Default)]
pub(super) struct Places {
    /// (request, copy) -> position in its transfer queue.
    positions: HashMap<(RequestId, u32), i64>,
    /// Object name -> (mount, index in the mount agent's log).
    held: HashMap<String, (MountId, i64)>,
    /// Repacked VID -> (committed passes, expansion cursor).
    repacks: HashMap<String, (Vec<u64>, u64)>,
}

/// The mount id of a mount agent's name.
pub(super) fn mount_of_agent(name: &str) -> Option<MountId> {
    name.strip_prefix("Agent-mount-")?.parse().ok()
}

impl ObjectstoreDb {
    pub(super) async fn export_state_op(&self, after: Option<&StateKey>, limit: usize) -> Result<Vec<StateItem>> {
        self.ready().await?;
        let cached = {
            let cursor = self.export_cursor.lock().expect("cursor lock");
            match &*cursor {
                Some(c) if after.is_some() && c.last.as_ref() == after => {
                    Some((c.keys.clone(), c.next, c.places.clone()))
                }
                _ => None,
            }
        };
        let (keys, start, places) = match cached {
            Some(c) => c,
            None => {
                let (keys, agents) = self.list_keys().await?;
                let start = match after {
                    Some(a) => keys.partition_point(|(k, _)| k <= a),
                    None => 0,
                };
                (Arc::new(keys), start, Arc::new(self.places(&agents).await?))
            }
        };
        let end = (start + limit).min(keys.len());
        let items = self.read_items(&keys[start..end], &places).await?;
        *self.export_cursor.lock().expect("cursor lock") = Some(ExportCursor {
            last: keys[..end].last().map(|(k, _)| k.clone()).or_else(|| after.cloned()),
            keys,
            next: end,
            places,
        });
        Ok(items)
    }

    pub(super) async fn read_state_op(&self, keys: &[StateKey]) -> Result<Vec<StateItem>> {
        self.ready().await?;
        let root = self.root().await?;
        let mut named: Vec<(StateKey, String)> = keys
            .iter()
            .map(|k| {
                let name = match k {
                    StateKey::Mount(m) => mount_agent_name(*m),
                    StateKey::Repack(v) => repack_name(v),
                    StateKey::Archive(a) => archive_request_name(*a),
                    StateKey::RepackArchive(s) => repack_archive_request_name(*s),
                    StateKey::Retrieve(r) => retrieve_request_name(*r),
                    StateKey::Marker(v) => root
                        .queue(&QueueKey::new(QueueKind::RetrieveToTransfer, v))
                        .map(str::to_string)
                        .unwrap_or_default(),
                };
                (k.clone(), name)
            })
            .filter(|(_, n)| !n.is_empty())
            .collect();
        named.sort();
        named.dedup();
        let agents = self.objs.store().list("Agent-mount-").await.map_err(store_error)?;
        let places = self.places(&agents).await?;
        self.read_items(&named, &places).await
    }

    pub(super) async fn state_len_op(&self) -> Result<u64> {
        self.ready().await?;
        Ok(self.list_keys().await?.0.len() as u64)
    }

    /// Every key of the state, sorted, with its object name, and the names of the mount agents
    /// (for [`Self::places`]): one listing of the store's names.
    async fn list_keys(&self) -> Result<(Vec<(StateKey, String)>, Vec<String>)> {
        const PREFIXES: [&str; 4] = ["Agent-mount-", "ArchiveRequest-", "RepackArchiveRequest-", "RetrieveRequest-"];
        let [agents, archives, repack_archives, retrieves]: [Vec<String>; 4] = self
            .objs
            .store()
            .list_many(&PREFIXES)
            .await
            .map_err(store_error)?
            .try_into()
            .map_err(|_| Error::internal("the store listed another number of prefixes than asked"))?;
        let mut keys: Vec<(StateKey, String)> = Vec::new();
        for name in &agents {
            if let Some(m) = mount_of_agent(name) {
                keys.push((StateKey::Mount(m), name.clone()));
            }
        }
        let index = self.objs.read::<RepackIndex>(REPACK_INDEX).await?.unwrap_or_default();
        for vid in index.vids {
            let name = repack_name(&vid);
            keys.push((StateKey::Repack(vid), name));
        }
        for name in archives {
            if let Some(a) = name.strip_prefix("ArchiveRequest-").and_then(|s| s.parse().ok()) {
                keys.push((StateKey::Archive(a), name));
            }
        }
        for name in repack_archives {
            if let Some(s) = name.strip_prefix("RepackArchiveRequest-").and_then(|s| s.parse().ok()) {
                keys.push((StateKey::RepackArchive(s), name));
            }
        }
        for name in retrieves {
            if let Some(r) = name.strip_prefix("RetrieveRequest-").and_then(|s| s.parse().ok()) {
                keys.push((StateKey::Retrieve(r), name));
            }
        }
        for (key, address) in self.queues_of(&[QueueKind::RetrieveToTransfer]).await? {
            keys.push((StateKey::Marker(key.container), address));
        }
        keys.sort();
        keys.dedup_by(|a, b| a.0 == b.0);
        Ok((keys, agents))
    }

    /// Queue positions of every transfer queue, the logs of the mount agents `agents` and the
    /// repacks' passes.
    async fn places(&self, agents: &[String]) -> Result<Places> {
        let mut places = Places::default();
        let kinds =
            [QueueKind::ArchiveToTransferForUser, QueueKind::ArchiveToTransferForRepack, QueueKind::RetrieveToTransfer];
        let queues = self.queues_of(&kinds).await?;
        let names: Vec<String> = queues.iter().map(|(_, a)| a.clone()).collect();
        let mut shards = Vec::new();
        for q in self.objs.read_many::<Queue>(&names).await?.into_iter().flatten() {
            shards.extend(q.shards.into_iter().map(|s| s.address));
        }
        for chunk in shards.chunks(512) {
            for shard in self.objs.read_many::<Shard>(chunk).await?.into_iter().flatten() {
                for p in shard.jobs {
                    places.positions.insert((p.request, p.copy_nb), p.seq as i64);
                }
            }
        }
        for (name, agent) in agents.iter().zip(self.objs.read_many::<Agent>(agents).await?) {
            let (Some(m), Some(agent)) = (mount_of_agent(name), agent) else { continue };
            for (i, owned) in agent.owned.into_iter().enumerate() {
                places.held.insert(owned, (m, i as i64));
            }
        }
        let index = self.objs.read::<RepackIndex>(REPACK_INDEX).await?.unwrap_or_default();
        let names: Vec<String> = index.vids.iter().map(|v| repack_name(v)).collect();
        for r in self.objs.read_many::<StoredRepack>(&names).await?.into_iter().flatten() {
            places.repacks.insert(r.request.vid.clone(), (r.passes, r.request.last_expanded_fseq));
        }
        Ok(places)
    }

    /// Reads the objects of `keys` (sorted) and describes them.
    async fn read_items(&self, keys: &[(StateKey, String)], places: &Places) -> Result<Vec<StateItem>> {
        let mut out = Vec::with_capacity(keys.len());
        let mut i = 0;
        while i < keys.len() {
            // A run of keys of one kind is read in one batch.
            let kind = std::mem::discriminant(&keys[i].0);
            let j = keys[i..].iter().position(|(k, _)| std::mem::discriminant(k) != kind).map_or(keys.len(), |p| i + p);
            let names: Vec<String> = keys[i..j].iter().map(|(_, n)| n.clone()).collect();
            match &keys[i].0 {
                StateKey::Mount(_) => {
                    for (k, a) in keys[i..j].iter().zip(self.objs.read_many::<Agent>(&names).await?) {
                        if let (StateKey::Mount(id), Some(Agent { mount: Some(rec), gc_needed, .. })) = (&k.0, a) {
                            out.push(StateItem::Mount { id: *id, spec: rec.spec, abandoned: gc_needed });
                        }
                    }
                }
                StateKey::Repack(_) => {
                    for r in self.objs.read_many::<StoredRepack>(&names).await?.into_iter().flatten() {
                        out.push(StateItem::Repack(r.request));
                    }
                }
                StateKey::Archive(_) | StateKey::RepackArchive(_) => {
                    for s in self.objs.read_many::<StoredArchive>(&names).await?.into_iter().flatten() {
                        out.push(archive_item(s, places));
                    }
                }
                StateKey::Retrieve(_) => {
                    for s in self.objs.read_many::<StoredRetrieve>(&names).await?.into_iter().flatten() {
                        if committed(&s, places) {
                            out.push(retrieve_item(s, places));
                        }
                    }
                }
                StateKey::Marker(_) => {
                    for (k, q) in keys[i..j].iter().zip(self.objs.read_many::<Queue>(&names).await?) {
                        let (StateKey::Marker(vid), Some(q)) = (&k.0, q) else { continue };
                        if q.cleanup || q.sleep.is_some() {
                            out.push(StateItem::Marker { vid: vid.clone(), cleanup: q.cleanup, sleep: q.sleep });
                        }
                    }
                }
            }
            i = j;
        }
        Ok(out)
    }
}

/// Whether a retrieve request is part of the state (see `repack_subrequest_committed`).
fn committed(s: &StoredRetrieve, places: &Places) -> bool {
    let Some(link) = &s.request.repack else { return true };
    match places.repacks.get(&link.vid) {
        None => false,
        Some((passes, cursor)) => match s.pass {
            Some(token) => passes.contains(&token),
            None => link.fseq <= *cursor,
        },
    }
}

fn place_of(owner: &Owner, name: &str, id: RequestId, copy_nb: u32, idle: JobPlace, places: &Places) -> JobPlace {
    match owner {
        Owner::Queue(k) if k.kind.is_transfer() => {
            JobPlace::Queued { position: places.positions.get(&(id, copy_nb)).copied().unwrap_or(i64::MAX) }
        }
        Owner::Agent(a) => match (mount_of_agent(a), places.held.get(name)) {
            (Some(m), Some((held_by, i))) if m == *held_by => JobPlace::Held { mount: m, order: (0, *i) },
            (Some(m), _) => JobPlace::Held { mount: m, order: (0, i64::MAX) },
            (None, _) => idle,
        },
        _ => idle,
    }
}

fn archive_item(s: StoredArchive, places: &Places) -> StateItem {
    let id = s.request.id();
    let name = request_name(id);
    let places = s
        .request
        .jobs
        .iter()
        .map(|j| {
            let idle = JobPlace::of_archive_status(j.status);
            match s.owners.get(&j.copy_nb) {
                Some(o) => place_of(o, &name, id, j.copy_nb, idle, places),
                None => idle,
            }
        })
        .collect();
    StateItem::Archive { request: s.request, places }
}

fn retrieve_item(s: StoredRetrieve, places: &Places) -> StateItem {
    let id = s.request.id();
    let copy = s.request.active_copy().map_or(0, |c| c.copy_nb);
    let idle = JobPlace::of_retrieve_status(s.request.status);
    let place = place_of(&s.owner, &retrieve_request_name(s.request.request_id), id, copy, idle, places);
    StateItem::Retrieve { request: s.request, place }
}
