//! Queue access: the root entry, opening (and creating) a queue, closing it with its summary,
//! adding, ensuring and removing pointers, and locked updates of request objects.

use super::*;

impl ObjectstoreDb {
    // --- queues --------------------------------------------------------------------------------

    pub(super) async fn root(&self) -> Result<Root> {
        Ok(self.objs.read::<Root>(ROOT).await?.unwrap_or_default())
    }

    /// Opens (locks and reads) a queue, creating it when `create` is set.
    pub(super) async fn open(&self, key: &QueueKey, create: bool) -> Result<Option<OpenQueue>> {
        let name = key.object_name();
        for _ in 0..8 {
            let listed = self.root().await?.queue(key).is_some();
            if !listed {
                if !create {
                    return Ok(None);
                }
                self.objs.ensure(&name, &Queue::new(key.clone())).await?;
                let (k, n) = (key.clone(), name.clone());
                self.objs
                    .update::<Root, _>(ROOT, move |root| {
                        if root.queue(&k).is_some() {
                            return Ok(((), Write::Keep));
                        }
                        root.queues.push((k, n));
                        Ok(((), Write::Commit))
                    })
                    .await?;
            }
            match self.objs.lock_read::<Queue>(&name).await? {
                Some((lock, queue)) => return Ok(Some(OpenQueue::new(name, lock, queue, self.config.shard_size))),
                None => {
                    // Listed but gone: a trim removed it after we read the root, or a crash
                    // left a dangling pointer. Drop the pointer if it still dangles and retry.
                    self.unlist_if_gone(key, &name).await?;
                }
            }
        }
        Err(Error::unavailable(format!("queue {name:?} kept vanishing while being opened")))
    }

    /// Removes the root's pointer to queue `key` if its object does not exist. The existence
    /// check is made under the root's lock: a queue is created before it is listed and unlisted
    /// before it is deleted, so a pointer added meanwhile by another process always names an
    /// existing object and is kept.
    pub(super) async fn unlist_if_gone(&self, key: &QueueKey, name: &str) -> Result<()> {
        let Some((lock, mut root)) = self.objs.lock_read::<Root>(ROOT).await? else { return Ok(()) };
        let result = async {
            if root.queue(key).is_none() || self.objs.read::<Queue>(name).await?.is_some() {
                return Ok(false);
            }
            root.queues.retain(|(q, _)| q != key);
            self.objs.write(ROOT, &root, &lock).await.map(|_| true)
        }
        .await;
        self.objs.unlock(lock).await;
        result.map(|_| ())
    }

    /// Saves and unlocks a queue, trimming it when it is empty, not flagged for cleanup and not
    /// asleep.
    pub(super) async fn close(&self, mut q: OpenQueue, now: Timestamp) -> Result<()> {
        let result = async {
            q.save(&self.objs).await?;
            let asleep = q.queue.sleep.as_ref().is_some_and(|s| now < s.until);
            if q.is_empty() && !q.queue.cleanup && !asleep {
                let key = q.queue.key.clone();
                self.objs
                    .update::<Root, _>(ROOT, move |root| {
                        root.queues.retain(|(k, _)| *k != key);
                        Ok(((), Write::Commit))
                    })
                    .await?;
                self.objs.remove(&q.name, &q.lock).await?;
            }
            Ok(())
        }
        .await;
        self.objs.unlock(q.lock).await;
        result
    }

    /// Adds pointers to their queues, each queue under its own lock; queues are updated
    /// concurrently (a task never holds two queue locks, so they cannot deadlock).
    pub(super) async fn add_pointers(&self, moves: Moves, now: Timestamp) -> Result<()> {
        let updates = moves.into_iter().map(|(key, pointers)| async move {
            let mut q = self.open(&key, true).await?.expect("created");
            match q.add(&self.objs, pointers).await {
                Ok(()) => self.close(q, now).await,
                Err(e) => {
                    self.objs.unlock(q.lock).await;
                    Err(e)
                }
            }
        });
        join_all(updates).await.into_iter().collect()
    }

    /// [`ObjectstoreDb::add_pointers`] for jobs going back to a queue from a mount or a dead
    /// agent, then each request read again: a pointer whose job another process claimed by name
    /// (`claim_jobs`) between this move's owner switch and its pointer's addition is removed.
    /// The claimer removes the pointers it finds after its own owner switch, so without this
    /// re-check the pointer added after it would stay behind, stale, counted in the queue's
    /// summary (what mount decisions read) until a pop reached it. Paid on these moves only
    /// (requeues, failures, collection), never when new requests are queued.
    pub(super) async fn add_pointers_rechecked(&self, moves: Moves, now: Timestamp) -> Result<()> {
        let added = moves.clone();
        self.add_pointers(moves, now).await?;
        for (key, pointers) in added {
            let owner = Owner::Queue(key.clone());
            let owned = join_all(pointers.iter().map(|p| {
                let owner = &owner;
                async move {
                    Ok::<bool, Error>(match p.request {
                        RequestId::Retrieve(_) => {
                            self.objs.read::<StoredRetrieve>(&p.address).await?.is_some_and(|s| s.owner == *owner)
                        }
                        _ => self
                            .objs
                            .read::<StoredArchive>(&p.address)
                            .await?
                            .is_some_and(|s| s.owners.get(&p.copy_nb) == Some(owner)),
                    })
                }
            }))
            .await;
            let mut stale = Vec::new();
            for (p, owned) in pointers.into_iter().zip(owned) {
                if !owned? {
                    stale.push((p.address, p.copy_nb));
                }
            }
            if !stale.is_empty() {
                self.remove_pointers(&key, &stale, now).await?;
            }
        }
        Ok(())
    }

    /// Adds pointers that are missing from their queues (collector and repair paths).
    pub(super) async fn ensure_pointers(&self, moves: Moves, now: Timestamp) -> Result<()> {
        for (key, pointers) in moves {
            let mut q = self.open(&key, true).await?.expect("created");
            let r = async {
                q.load_all(&self.objs).await?;
                let present: Vec<(String, u32)> = q.jobs().iter().map(|j| (j.address.clone(), j.copy_nb)).collect();
                let missing: Vec<JobPointer> =
                    pointers.into_iter().filter(|p| !present.contains(&(p.address.clone(), p.copy_nb))).collect();
                q.add(&self.objs, missing).await
            }
            .await;
            match r {
                Ok(()) => self.close(q, now).await?,
                Err(e) => {
                    self.objs.unlock(q.lock).await;
                    return Err(e);
                }
            }
        }
        Ok(())
    }

    pub(super) async fn remove_pointers(
        &self,
        key: &QueueKey,
        targets: &[(String, u32)],
        now: Timestamp,
    ) -> Result<()> {
        let Some(mut q) = self.open(key, false).await? else { return Ok(()) };
        let targets: HashSet<(&str, u32)> = targets.iter().map(|(a, c)| (a.as_str(), *c)).collect();
        let r = q.remove(&self.objs, |j| targets.contains(&(j.address.as_str(), j.copy_nb))).await;
        match r {
            Ok(_) => self.close(q, now).await,
            Err(e) => {
                self.objs.unlock(q.lock).await;
                Err(e)
            }
        }
    }

    pub(super) async fn read_queue_jobs(&self, address: &str) -> Result<Option<(Queue, Vec<JobPointer>)>> {
        let Some(queue) = self.objs.read::<Queue>(address).await? else { return Ok(None) };
        let mut jobs = Vec::with_capacity(queue.summary.count as usize);
        let shards: Vec<String> = queue.shards.iter().map(|s| s.address.clone()).collect();
        for shard in self.objs.read_many::<Shard>(&shards).await?.into_iter().flatten() {
            jobs.extend(shard.jobs);
        }
        Ok(Some((queue, jobs)))
    }

    pub(super) async fn queues_of(&self, kinds: &[QueueKind]) -> Result<Vec<(QueueKey, String)>> {
        let mut qs: Vec<(QueueKey, String)> =
            self.root().await?.queues.into_iter().filter(|(k, _)| kinds.contains(&k.kind)).collect();
        qs.sort();
        Ok(qs)
    }

    // --- moving jobs -----------------------------------------------------------------------------

    /// Applies `change` to the archive request object `name` (a user's or a repack's, see
    /// [`request_name`]) under its lock; `None` if it vanished.
    pub(super) async fn update_archive<R>(
        &self,
        name: &str,
        change: impl FnOnce(&mut StoredArchive) -> Result<(R, Write)>,
    ) -> Result<Option<R>> {
        self.objs.update::<StoredArchive, R>(name, change).await
    }

    pub(super) async fn update_retrieve<R>(
        &self,
        id: u64,
        change: impl FnOnce(&mut StoredRetrieve) -> Result<(R, Write)>,
    ) -> Result<Option<R>> {
        self.objs.update::<StoredRetrieve, R>(&retrieve_request_name(id), change).await
    }

    /// Applies [`Objects::update_many`] to the request objects of `ids`: `archive` to archive
    /// requests, `retrieve` to retrieve requests, each given the position of its id in `ids`.
    /// Answers in the order of `ids`; `None`: the request is gone.
    pub(super) async fn update_requests<R>(
        &self,
        ids: &[RequestId],
        archive: impl Fn(usize, &mut StoredArchive) -> Result<(R, Write)>,
        retrieve: impl Fn(usize, &mut StoredRetrieve) -> Result<(R, Write)>,
    ) -> Result<Vec<Option<R>>> {
        let (archives, retrieves): (Vec<usize>, Vec<usize>) =
            (0..ids.len()).partition(|i| !matches!(ids[*i], RequestId::Retrieve(_)));
        let names = |of: &[usize]| -> Vec<String> { of.iter().map(|i| request_name(ids[*i])).collect() };
        let archived = self.objs.update_many(&names(&archives), |k, s| archive(archives[k], s)).await?;
        let retrieved = self.objs.update_many(&names(&retrieves), |k, s| retrieve(retrieves[k], s)).await?;
        let mut out: Vec<Option<R>> = (0..ids.len()).map(|_| None).collect();
        for (i, r) in archives.into_iter().zip(archived).chain(retrieves.into_iter().zip(retrieved)) {
            out[i] = r;
        }
        Ok(out)
    }

    /// Every queue and its job pointers, in queue order (tools and tests: a dump of the store).
    pub async fn dump_queues(&self) -> Result<Vec<(QueueKey, Vec<JobPointer>)>> {
        self.ready().await?;
        let mut out = Vec::new();
        for (key, address) in self.root().await?.queues {
            if let Some((_, jobs)) = self.read_queue_jobs(&address).await? {
                out.push((key, jobs));
            }
        }
        out.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(out)
    }
}
