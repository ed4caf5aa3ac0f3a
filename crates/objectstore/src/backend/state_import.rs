//! Imports and deletions of [`StateItem`]s (`tapesched_scheduler::state`), keeping the
//! ownership protocol: the objects are listed in this process's intent log first, created with
//! their owner records (a queue, a mount's agent, nobody), the pointers are added to their queues
//! (in exported position order within each queue, after the jobs already there), the mount
//! agents' logs get what their mounts hold (in exported order), and the objects leave the log.
//! A crash in between leaves them in the log for the collector, as a queueing would.
//!
//! An item stored and the same is left alone; one stored and different is deleted and written
//! again (a mount and a repack request are changed in place). Repack subrequests (retrieves and
//! repack archives) are recorded in one expansion pass per repack per import, committed by their
//! repack, so that cancelling the repack finds them.

use tapesched_scheduler::state::{JobPlace, StateItem, StateKey};

use super::state::mount_of_agent;
use super::*;

impl ObjectstoreDb {
    pub(super) async fn import_state_op(&self, items: Vec<StateItem>, now: Timestamp) -> Result<()> {
        self.ready().await?;
        let keys: Vec<StateKey> = items.iter().map(StateItem::key).collect();
        let stored: BTreeMap<StateKey, StateItem> =
            self.read_state_op(&keys).await?.into_iter().map(|i| (i.key(), i)).collect();
        let mut replace = Vec::new();
        let mut fresh = Vec::new();
        for item in items {
            match stored.get(&item.key()) {
                Some(s) if s.same(&item) => {}
                Some(_) => {
                    if !matches!(item, StateItem::Mount { .. } | StateItem::Repack(_) | StateItem::Marker { .. }) {
                        replace.push(item.key());
                    }
                    fresh.push(item);
                }
                None => fresh.push(item),
            }
        }
        self.delete_state_op(&replace, now).await?;
        // Mounts and repacks first: held jobs and subrequests refer to them.
        for item in &fresh {
            match item {
                StateItem::Mount { id, spec, abandoned } => self.import_mount(*id, spec, *abandoned, now).await?,
                StateItem::Repack(r) => self.import_repack(r).await?,
                _ => {}
            }
        }
        self.import_requests(&fresh, now).await?;
        for item in &fresh {
            if let StateItem::Marker { vid, cleanup, sleep } = item {
                let key = QueueKey::new(QueueKind::RetrieveToTransfer, vid);
                let mut q = self.open(&key, true).await?.expect("created");
                q.queue.cleanup = *cleanup;
                q.queue.sleep = sleep.clone();
                self.close(q, now).await?;
            }
        }
        Ok(())
    }

    async fn import_mount(&self, id: MountId, spec: &MountSpec, abandoned: bool, now: Timestamp) -> Result<()> {
        let name = mount_agent_name(id);
        if self.objs.read::<Agent>(&name).await?.is_none() {
            self.open_mount_op(id, spec, now).await?;
        }
        let spec = spec.clone();
        self.objs
            .update::<Agent, _>(&name, move |a| {
                a.mount = Some(MountRecord { id, spec });
                a.gc_needed = abandoned;
                Ok(((), Write::Commit))
            })
            .await?;
        Ok(())
    }

    async fn import_repack(&self, r: &tapesched_scheduler::repack::RepackRequest) -> Result<()> {
        let name = repack_name(&r.vid);
        let request = r.clone();
        let changed = self
            .objs
            .update::<StoredRepack, _>(&name, move |s| {
                s.request = request;
                Ok(((), Write::Commit))
            })
            .await?;
        if changed.is_none() {
            self.queue_repack_op(r.clone(), 0).await?;
        }
        Ok(())
    }

    /// Creates archive and retrieve request objects with their owners and pointers.
    async fn import_requests(&self, items: &[StateItem], now: Timestamp) -> Result<()> {
        let mut mounts: BTreeMap<MountId, bool> = BTreeMap::new();
        for item in items {
            let places: Vec<JobPlace> = match item {
                StateItem::Archive { places, .. } => places.clone(),
                StateItem::Retrieve { place, .. } => vec![*place],
                _ => continue,
            };
            for p in places {
                if let JobPlace::Held { mount, .. } = p {
                    mounts.insert(mount, false);
                }
            }
        }
        let names: Vec<String> = mounts.keys().map(|m| mount_agent_name(*m)).collect();
        for ((_, exists), agent) in mounts.iter_mut().zip(self.objs.read_many::<Agent>(&names).await?) {
            *exists = agent.is_some_and(|a| a.mount.is_some());
        }
        // Where each job goes: (queue, position, pointer) to add, (mount, order, name) to log.
        let mut queued: Queued = BTreeMap::new();
        let mut held: Held = BTreeMap::new();
        let mut creates: Vec<(String, Creation)> = Vec::new();
        let mut passes: BTreeMap<String, Vec<u64>> = BTreeMap::new();
        let owner_of = |place: JobPlace,
                        home: Option<(QueueKey, Option<Outcome>)>,
                        pointer: JobPointer,
                        name: &str,
                        queued: &mut Queued,
                        held: &mut Held|
         -> Owner {
            if let JobPlace::Held { mount, order } = place {
                if mounts.get(&mount) == Some(&true) {
                    held.entry(mount).or_default().push((order, name.to_string()));
                    return Owner::Agent(mount_agent_name(mount));
                }
            }
            let Some((key, outcome)) = home else { return Owner::Nobody };
            let position = match place {
                JobPlace::Queued { position } => position,
                _ => i64::MAX,
            };
            queued.entry(key.clone()).or_default().push((position, JobPointer { outcome, ..pointer }));
            Owner::Queue(key)
        };
        for item in items {
            match item {
                StateItem::Archive { request, places } => {
                    let name = request_name(request.id());
                    let mut owners = BTreeMap::new();
                    for (i, job) in request.jobs.iter().enumerate() {
                        let place = places.get(i).copied().unwrap_or(JobPlace::of_archive_status(job.status));
                        let home = archive_home(request, job);
                        let pointer = archive_pointer(request, job.copy_nb, None);
                        owners.insert(job.copy_nb, owner_of(place, home, pointer, &name, &mut queued, &mut held));
                    }
                    if let Some(link) = &request.repack {
                        passes.entry(link.vid.clone()).or_default().push(link.subrequest_id);
                    }
                    creates.push((name, Creation::Archive(StoredArchive { request: request.clone(), owners })));
                }
                StateItem::Retrieve { request, place } => {
                    let name = retrieve_request_name(request.request_id);
                    let home = Some(retrieve_home(request));
                    let pointer = retrieve_pointer(request, None);
                    let owner = owner_of(*place, home, pointer, &name, &mut queued, &mut held);
                    if let Some(link) = &request.repack {
                        passes.entry(link.vid.clone()).or_default().push(link.subrequest_id);
                    }
                    let stored = StoredRetrieve { request: request.clone(), owner, pass: None };
                    creates.push((name, Creation::Retrieve(stored)));
                }
                _ => {}
            }
        }
        if creates.is_empty() {
            return Ok(());
        }
        let names: Vec<String> = creates.iter().map(|(n, _)| n.clone()).collect();
        self.log_own(&names, true, now).await?;
        // One committed pass per repack for the subrequests imported.
        let mut tokens: BTreeMap<String, u64> = BTreeMap::new();
        for (vid, subrequests) in passes {
            let token = unique_token();
            let pass = RepackPass { token, vid: vid.clone(), subrequests };
            self.objs.ensure(&repack_pass_name(&vid, token), &pass).await?;
            let committed = self
                .objs
                .update::<StoredRepack, _>(&repack_name(&vid), move |s| {
                    s.passes.push(token);
                    Ok(((), Write::Commit))
                })
                .await?;
            if committed.is_some() {
                tokens.insert(vid, token);
            }
        }
        for (_, c) in creates.iter_mut() {
            if let Creation::Retrieve(s) = c {
                s.pass = s.request.repack.as_ref().and_then(|l| tokens.get(&l.vid).copied());
            }
        }
        let created = join_all(creates.iter().map(|(name, c)| async move {
            match c {
                Creation::Archive(s) => self.objs.create(name, s).await,
                Creation::Retrieve(s) => self.objs.create(name, s).await,
            }
        }))
        .await;
        created.into_iter().collect::<Result<Vec<()>>>()?;
        let moves: Moves = queued
            .into_iter()
            .map(|(k, mut ps)| {
                ps.sort_by_key(|(pos, _)| *pos);
                (k, ps.into_iter().map(|(_, p)| p).collect())
            })
            .collect();
        self.add_pointers(moves, now).await?;
        for (mount, mut jobs) in held {
            jobs.sort();
            let names: Vec<String> = jobs.into_iter().map(|(_, n)| n).collect();
            self.log(&mount_agent_name(mount), &names, true, now).await?;
        }
        self.log_own(&names, false, now).await
    }

    pub(super) async fn delete_state_op(&self, keys: &[StateKey], now: Timestamp) -> Result<()> {
        self.ready().await?;
        if keys.is_empty() {
            return Ok(());
        }
        let names: Vec<String> = keys
            .iter()
            .filter_map(|k| match k {
                StateKey::Archive(_) | StateKey::RepackArchive(_) | StateKey::Retrieve(_) => Some(match k {
                    StateKey::Archive(a) => archive_request_name(*a),
                    StateKey::RepackArchive(s) => repack_archive_request_name(*s),
                    StateKey::Retrieve(r) => retrieve_request_name(*r),
                    _ => unreachable!("filtered"),
                }),
                _ => None,
            })
            .collect();
        if !names.is_empty() {
            self.log_own(&names, true, now).await?;
            let raw = self.objs.store().read_many(&names).await.map_err(store_error)?;
            let mut deletions = Vec::new();
            let mut agents: BTreeMap<String, Vec<String>> = BTreeMap::new();
            for (name, bytes) in names.iter().zip(raw) {
                let Some(bytes) = bytes else { continue };
                let owners: Vec<(u32, Owner)> = if name.starts_with("RetrieveRequest-") {
                    let s: StoredRetrieve = self.objs.decode_named(name, &bytes)?;
                    vec![(s.request.active_copy().map_or(0, |c| c.copy_nb), s.owner)]
                } else {
                    let s: StoredArchive = self.objs.decode_named(name, &bytes)?;
                    s.owners.into_iter().collect()
                };
                for (_, o) in &owners {
                    if let Owner::Agent(a) = o {
                        if mount_of_agent(a).is_some() {
                            agents.entry(a.clone()).or_default().push(name.clone());
                        }
                    }
                }
                deletions.push((name.clone(), queue_owners(owners.iter().map(|(c, o)| (*c, o)))));
            }
            self.delete_requests(deletions, now).await?;
            for (agent, held) in agents {
                match self.log(&agent, &held, false, now).await {
                    Err(e) if e.kind == tapesched_scheduler::ErrorKind::NotFound => {}
                    other => other?,
                }
            }
            self.log_own(&names, false, now).await?;
        }
        for k in keys {
            match k {
                StateKey::Repack(vid) => {
                    if let Some(lock) = self.objs.lock(&repack_name(vid)).await? {
                        let r = self.objs.remove(&repack_name(vid), &lock).await;
                        self.objs.unlock(lock).await;
                        r?;
                    }
                    let v = vid.clone();
                    self.objs
                        .update::<RepackIndex, _>(REPACK_INDEX, move |ix| {
                            ix.vids.retain(|x| *x != v);
                            Ok(((), Write::Commit))
                        })
                        .await?;
                }
                StateKey::Marker(vid) => {
                    let key = QueueKey::new(QueueKind::RetrieveToTransfer, vid);
                    if let Some(mut q) = self.open(&key, false).await? {
                        q.queue.cleanup = false;
                        q.queue.sleep = None;
                        self.close(q, now).await?;
                    }
                }
                StateKey::Mount(m) => {
                    let name = mount_agent_name(*m);
                    if self.objs.read::<Agent>(&name).await?.is_some_and(|a| a.owned.is_empty()) {
                        self.deregister_agent(&name).await?;
                    }
                }
                _ => {}
            }
        }
        Ok(())
    }
}

/// Pointers to add per queue, with their exported positions.
type Queued = BTreeMap<QueueKey, Vec<(i64, JobPointer)>>;
/// Object names to log per mount agent, with their exported order.
type Held = BTreeMap<MountId, Vec<((i64, i64), String)>>;

/// A request object to create.
enum Creation {
    Archive(StoredArchive),
    Retrieve(StoredRetrieve),
}
