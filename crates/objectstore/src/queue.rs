//! A locked queue and its shards: adding, removing and taking job pointers in queue order.
//!
//! Archive queues are FIFO: pointers are appended to the last shard, a new shard is started when
//! it holds `shard_size` jobs. Retrieve queues are ordered by (fSeq, arrival): a pointer goes into
//! the first shard whose range reaches its key, and a shard that grows past `shard_size` is split
//! in two. Shards are sub-objects written under the queue's lock; the queue object holds the
//! summary (totals, value-count maps) and per-shard totals, so mount decisions read one object
//! per queue. A shard that disagrees with the queue's record of it (a write cut short between
//! the shard and the queue) makes the queue rebuild its record from all its shards.

use std::collections::{BTreeMap, BTreeSet, HashSet};

use tapesched_scheduler::Result;

use crate::objects::{ExactBytes, JobPointer, Objects, Queue, Shard, ShardPointer, Summary};
use crate::store::Lock;

/// A queue held under its exclusive lock, with the shards loaded so far.
pub struct OpenQueue {
    /// The queue object's name.
    pub name: String,
    /// The lock held on it.
    pub lock: Lock,
    /// The queue object.
    pub queue: Queue,
    shards: BTreeMap<String, Shard>,
    dirty: BTreeSet<String>,
    shard_size: usize,
    /// Rebuilt from its shards in this session: the summary is recomputed at save.
    rebuilt: bool,
    /// Pointers each loaded shard holds in the store (0 for shards created here).
    stored_len: BTreeMap<String, usize>,
}

impl OpenQueue {
    /// Wraps a locked, read queue.
    pub fn new(name: String, lock: Lock, queue: Queue, shard_size: usize) -> Self {
        OpenQueue {
            name,
            lock,
            queue,
            shards: BTreeMap::new(),
            dirty: BTreeSet::new(),
            shard_size: shard_size.max(2),
            rebuilt: false,
            stored_len: BTreeMap::new(),
        }
    }

    async fn load(&mut self, objs: &Objects, address: &str) -> Result<()> {
        if !self.shards.contains_key(address) {
            let shard = objs.read::<Shard>(address).await?;
            if !self.accept(address, shard) {
                self.rebuild(objs).await?;
            }
        }
        Ok(())
    }

    /// Keeps a shard read from the store (a missing one as empty); false when it disagrees with
    /// the queue's record of it. Shards are written before their queue, so a process that died
    /// (or lost the store) between the two writes leaves a shard the queue does not account
    /// for yet; the queue is then rebuilt from its shards, as CTA does.
    fn accept(&mut self, address: &str, shard: Option<Shard>) -> bool {
        let expected = self.queue.shards.iter().find(|s| s.address == address).map_or(0, |s| s.count);
        let (shard, coherent) = match shard {
            Some(shard) => {
                let coherent = shard.jobs.len() as u64 == expected;
                (shard, coherent)
            }
            None => {
                self.dirty.insert(address.to_string());
                (Shard::default(), false)
            }
        };
        self.stored_len.insert(address.to_string(), shard.jobs.len());
        self.shards.insert(address.to_string(), shard);
        coherent
    }

    /// Rebuilds the queue's record from its shards: reads every shard, drops a second pointer to
    /// a job already pointed to (a repair that re-added what a cut-short write had stored),
    /// refreshes every shard record and has [`OpenQueue::save`] recompute the summary.
    async fn rebuild(&mut self, objs: &Objects) -> Result<()> {
        let want: Vec<String> =
            self.queue.shards.iter().map(|s| s.address.clone()).filter(|a| !self.shards.contains_key(a)).collect();
        let read = objs.read_many::<Shard>(&want).await?;
        for (address, shard) in want.into_iter().zip(read) {
            self.accept(&address, shard);
        }
        let mut seen = HashSet::new();
        for index in 0..self.queue.shards.len() {
            let address = self.queue.shards[index].address.clone();
            let shard = self.shards.get_mut(&address).expect("loaded");
            let before = shard.jobs.len();
            shard.jobs.retain(|j| seen.insert((j.address.clone(), j.copy_nb)));
            if shard.jobs.len() != before {
                self.dirty.insert(address);
            }
            self.refresh_pointer(index);
        }
        if !self.rebuilt {
            tracing::warn!(queue = %self.name, "queue record disagreed with its shards; rebuilt from the shards");
        }
        self.rebuilt = true;
        Ok(())
    }

    /// Loads every shard.
    pub async fn load_all(&mut self, objs: &Objects) -> Result<()> {
        let addresses: Vec<String> = self.queue.shards.iter().map(|s| s.address.clone()).collect();
        for a in addresses {
            self.load(objs, &a).await?;
        }
        Ok(())
    }

    /// Every job pointer in queue order (call [`OpenQueue::load_all`] first).
    pub fn jobs(&self) -> Vec<&JobPointer> {
        self.queue.shards.iter().filter_map(|p| self.shards.get(&p.address)).flat_map(|s| s.jobs.iter()).collect()
    }

    fn new_shard(&mut self, at: usize) -> String {
        let address = format!("{}-s{}", self.name, self.queue.next_shard);
        self.queue.next_shard += 1;
        self.queue.shards.insert(
            at,
            ShardPointer {
                address: address.clone(),
                count: 0,
                bytes: ExactBytes(0),
                oldest: 0,
                youngest: 0,
                min_key: (0, 0),
                max_key: (0, 0),
            },
        );
        self.shards.insert(address.clone(), Shard::default());
        self.dirty.insert(address.clone());
        address
    }

    /// Adds pointers (their `seq` is assigned here).
    pub async fn add(&mut self, objs: &Objects, pointers: Vec<JobPointer>) -> Result<()> {
        let retrieve = self.queue.key.kind.is_retrieve();
        for mut p in pointers {
            p.seq = self.queue.next_seq;
            self.queue.next_seq += 1;
            self.queue.summary.account(&p, true);
            let index = if retrieve {
                let key = p.retrieve_key();
                self.queue.shards.iter().position(|s| s.max_key >= key).or(self.queue.shards.len().checked_sub(1))
            } else {
                self.queue.shards.len().checked_sub(1)
            };
            let index = match index {
                Some(i) if !retrieve && self.queue.shards[i].count as usize >= self.shard_size => {
                    self.new_shard(i + 1);
                    i + 1
                }
                Some(i) => i,
                None => {
                    self.new_shard(0);
                    0
                }
            };
            let address = self.queue.shards[index].address.clone();
            self.load(objs, &address).await?;
            let shard = self.shards.get_mut(&address).expect("loaded");
            let at = if retrieve {
                shard.jobs.partition_point(|j| j.retrieve_key() < p.retrieve_key())
            } else {
                shard.jobs.len()
            };
            let key = p.retrieve_key();
            shard.jobs.insert(at, p);
            // Keep what placement reads (count, key range) exact; the rest is refreshed at save.
            let len = shard.jobs.len() as u64;
            let ptr = &mut self.queue.shards[index];
            ptr.count = len;
            ptr.max_key = ptr.max_key.max(key);
            ptr.min_key = if len == 1 { key } else { ptr.min_key.min(key) };
            self.dirty.insert(address.clone());
            if retrieve && len as usize > self.shard_size {
                self.split(index);
            }
        }
        Ok(())
    }

    fn split(&mut self, index: usize) {
        let address = self.queue.shards[index].address.clone();
        let upper = {
            let shard = self.shards.get_mut(&address).expect("loaded");
            let half = shard.jobs.len() / 2;
            shard.jobs.split_off(half)
        };
        let new = self.new_shard(index + 1);
        self.shards.get_mut(&new).expect("created").jobs = upper;
        self.refresh_pointer(index);
        self.refresh_pointer(index + 1);
    }

    fn refresh_pointer(&mut self, index: usize) {
        let address = self.queue.shards[index].address.clone();
        let Some(shard) = self.shards.get(&address) else { return };
        let p = &mut self.queue.shards[index];
        p.count = shard.jobs.len() as u64;
        p.bytes = shard.jobs.iter().map(|j| j.size).sum();
        p.oldest = shard.jobs.iter().map(|j| j.created_at).min().unwrap_or(0);
        p.youngest = shard.jobs.iter().map(|j| j.created_at).max().unwrap_or(0);
        p.min_key = shard.jobs.iter().map(JobPointer::retrieve_key).min().unwrap_or((0, 0));
        p.max_key = shard.jobs.iter().map(JobPointer::retrieve_key).max().unwrap_or((0, 0));
    }

    /// Removes the pointers matching `pred`; returns them in queue order.
    pub async fn remove(&mut self, objs: &Objects, pred: impl Fn(&JobPointer) -> bool) -> Result<Vec<JobPointer>> {
        self.load_all(objs).await?;
        let mut removed = Vec::new();
        for index in 0..self.queue.shards.len() {
            let address = self.queue.shards[index].address.clone();
            let shard = self.shards.get_mut(&address).expect("loaded");
            if !shard.jobs.iter().any(&pred) {
                continue;
            }
            let (out, keep): (Vec<_>, Vec<_>) = std::mem::take(&mut shard.jobs).into_iter().partition(|j| pred(j));
            shard.jobs = keep;
            for p in &out {
                self.queue.summary.account(p, false);
            }
            removed.extend(out);
            self.refresh_pointer(index);
            self.dirty.insert(address);
        }
        Ok(removed)
    }

    /// Loads, in one batched read, the first shards that together hold at least `jobs` jobs.
    pub async fn prefetch(&mut self, objs: &Objects, jobs: u64) -> Result<()> {
        let mut want = Vec::new();
        let mut covered = 0u64;
        for p in &self.queue.shards {
            if covered >= jobs {
                break;
            }
            covered += p.count;
            if !self.shards.contains_key(&p.address) {
                want.push(p.address.clone());
            }
        }
        let read = objs.read_many::<Shard>(&want).await?;
        let mut coherent = true;
        for (address, shard) in want.into_iter().zip(read) {
            coherent &= self.accept(&address, shard);
        }
        if !coherent {
            self.rebuild(objs).await?;
        }
        Ok(())
    }

    /// Takes pointers from the front of the queue while `take` accepts them (it sees each
    /// pointer in order and may stop the scan by returning `None`).
    pub async fn take_front(
        &mut self,
        objs: &Objects,
        mut take: impl FnMut(&JobPointer) -> Option<bool>,
    ) -> Result<Vec<JobPointer>> {
        let mut taken = Vec::new();
        'shards: for index in 0..self.queue.shards.len() {
            let address = self.queue.shards[index].address.clone();
            self.load(objs, &address).await?;
            let shard = self.shards.get_mut(&address).expect("loaded");
            let mut keep = Vec::with_capacity(shard.jobs.len());
            let mut stopped = false;
            for j in std::mem::take(&mut shard.jobs) {
                if stopped {
                    keep.push(j);
                    continue;
                }
                match take(&j) {
                    Some(true) => taken.push(j),
                    Some(false) => keep.push(j),
                    None => {
                        stopped = true;
                        keep.push(j);
                    }
                }
            }
            shard.jobs = keep;
            self.dirty.insert(address);
            self.refresh_pointer(index);
            if stopped {
                break 'shards;
            }
        }
        for p in &taken {
            self.queue.summary.account(p, false);
        }
        Ok(taken)
    }

    /// True when the queue holds no job.
    pub fn is_empty(&self) -> bool {
        self.queue.summary.count == 0
    }

    /// Writes the changed shards and the queue, deleting emptied shards (order below).
    pub async fn save(&mut self, objs: &Objects) -> Result<()> {
        for index in 0..self.queue.shards.len() {
            if self.dirty.contains(&self.queue.shards[index].address) {
                self.refresh_pointer(index);
            }
        }
        // The summary is kept incrementally; it must add up to the shard records. When it does
        // not (or a shard disagreed with its record), recompute it from every shard.
        let (count, bytes) = self.queue.shards.iter().fold((0, 0), |(c, b), s| (c + s.count, b + s.bytes.0));
        if !self.rebuilt && (count, bytes) != (self.queue.summary.count, self.queue.summary.bytes) {
            self.rebuild(objs).await?;
        }
        if self.rebuilt {
            let mut summary = Summary::default();
            for p in self.queue.shards.iter().filter_map(|p| self.shards.get(&p.address)).flat_map(|s| s.jobs.iter()) {
                summary.account(p, true);
            }
            self.queue.summary = summary;
        }
        // Write order, so that a save cut short anywhere loses no pointer: shards that are new
        // or grew, then the queue, then shards that shrank, then deletion of emptied ones. A
        // split moves pointers into a new shard, which is written before the old one loses them
        // (a cut in between leaves both copies, and the rebuild keeps the first).
        let dirty = std::mem::take(&mut self.dirty);
        let grew = |q: &Self, a: &String| q.shards[a].jobs.len() >= q.stored_len.get(a).copied().unwrap_or(0);
        let (first, last): (Vec<&String>, Vec<&String>) =
            dirty.iter().filter(|a| !self.shards[*a].jobs.is_empty()).partition(|a| grew(self, a));
        for address in first {
            objs.put(address, &self.shards[address], &self.lock).await?;
        }
        self.queue.shards.retain(|s| s.count > 0);
        objs.write(&self.name, &self.queue, &self.lock).await?;
        for address in last {
            objs.put(address, &self.shards[address], &self.lock).await?;
        }
        for address in &dirty {
            if self.shards[address].jobs.is_empty() {
                objs.remove(address, &self.lock).await?;
                self.shards.remove(address);
            }
        }
        for address in &dirty {
            if let Some(shard) = self.shards.get(address) {
                self.stored_len.insert(address.clone(), shard.jobs.len());
            } else {
                self.stored_len.remove(address);
            }
        }
        Ok(())
    }
}
