//! The work of one transaction (`Work`): requests loaded under row locks, their changes and
//! queue moves, and the statements that write them back with the summaries' deltas.

use super::*;

// --- the work of one transaction ----------------------------------------------------------------

/// A job to put at the tail of its transfer queue (positions are given in this order).
#[derive(Debug, Clone, Copy)]
pub(super) enum Enqueue {
    Archive(u64, usize),
    Retrieve(u64),
}

/// Loaded requests, their changes and the queue moves of one operation.
#[derive(Default)]
pub(super) struct Work {
    pub(super) archives: BTreeMap<u64, ArchiveState>,
    pub(super) retrieves: BTreeMap<u64, RetrieveState>,
    pub(super) enqueue: Vec<Enqueue>,
    pub(super) delta: Delta,
    pub(super) delete_archives: BTreeSet<u64>,
    pub(super) delete_retrieves: BTreeSet<u64>,
    /// Whether this transaction's plans were told to find rows by key ([`Work::by_key`]).
    pub(super) keyed: bool,
}

impl Work {
    /// Rows loaded by key must be found through their key's index: without statistics (a table
    /// filled in bulk, a server whose autovacuum is off) the planner guesses that `= ANY($1)`
    /// matches a large share of the table and scans all of it in parallel, tens of
    /// milliseconds per call on a million queued jobs instead of a fraction of one. Done once
    /// per transaction, for the rest of it (its other statements also go by key).
    async fn by_key(&mut self, tx: &mut Tx) -> Result<(), Fail> {
        if !self.keyed {
            sqlx::raw_sql("SET LOCAL enable_seqscan = off").execute(&mut **tx).await?;
            self.keyed = true;
        }
        Ok(())
    }

    /// Loads (and locks, in key order) archive requests with all their jobs, by key
    /// ([`archive_key`]).
    pub(super) async fn load_archives(&mut self, tx: &mut Tx, ids: &[u64]) -> Result<(), Fail> {
        self.load_archives_with(tx, ids, true).await
    }

    /// Loads archive requests with all their jobs, by key, locking them or not.
    pub(super) async fn load_archives_with(&mut self, tx: &mut Tx, ids: &[u64], lock: bool) -> Result<(), Fail> {
        let ids: Vec<i64> = ids
            .iter()
            .filter(|i| !self.archives.contains_key(i))
            .map(|i| *i as i64)
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        if ids.is_empty() {
            return Ok(());
        }
        self.by_key(tx).await?;
        let sql = if lock {
            concat!(
                "SELECT ",
                ar_cols!(),
                " FROM archive_request r WHERE r.archive_file_id = ANY($1) ORDER BY r.archive_file_id FOR UPDATE"
            )
        } else {
            concat!("SELECT ", ar_cols!(), " FROM archive_request r WHERE r.archive_file_id = ANY($1)")
        };
        let reqs = sqlx::query(sql).bind(&ids).fetch_all(&mut **tx).await?;
        let jobs = sqlx::query(concat!(
            "SELECT ",
            aj_cols!(),
            " FROM archive_job j WHERE j.archive_file_id = ANY($1) ORDER BY j.archive_file_id, j.position"
        ))
        .bind(&ids)
        .fetch_all(&mut **tx)
        .await?;
        let ar = match reqs.first() {
            Some(row) => columns_at(row, &AR_NAMES)?,
            None => 0,
        };
        for row in &reqs {
            let request = archive_request_at(row, ar)?;
            self.archives.insert(
                key_of(&request),
                ArchiveState {
                    request,
                    locs: vec![],
                    positions: vec![],
                    dirty_jobs: BTreeSet::new(),
                    dirty_request: false,
                },
            );
        }
        let aj = match jobs.first() {
            Some(row) => columns_at(row, &AJ_NAMES)?,
            None => 0,
        };
        for row in &jobs {
            let key = row.try_get::<i64, _>(aj)? as u64;
            let (job, position, loc) = archive_job_at(row, aj)?;
            if let Some(st) = self.archives.get_mut(&key) {
                st.request.jobs.push(job);
                st.positions.push(position);
                st.locs.push(loc);
            }
        }
        Ok(())
    }

    /// Loads (and locks, in id order) retrieve requests.
    pub(super) async fn load_retrieves(&mut self, tx: &mut Tx, ids: &[u64]) -> Result<(), Fail> {
        let ids: Vec<i64> = ids
            .iter()
            .filter(|i| !self.retrieves.contains_key(i))
            .map(|i| *i as i64)
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        if ids.is_empty() {
            return Ok(());
        }
        self.by_key(tx).await?;
        let rows = sqlx::query(concat!(
            "SELECT ",
            rr_cols!(),
            " FROM retrieve_request r WHERE r.request_id = ANY($1) ORDER BY r.request_id FOR UPDATE"
        ))
        .bind(&ids)
        .fetch_all(&mut **tx)
        .await?;
        for row in &rows {
            let st = retrieve_of(row)?;
            self.retrieves.insert(st.request.request_id, st);
        }
        Ok(())
    }

    /// Moves an archive job (request by key) to the tail of its pool's queue of its kind.
    pub(super) fn enqueue_archive(&mut self, key: u64, index: usize) {
        let st = self.archives.get_mut(&key).expect("loaded");
        st.locs[index] = Loc::idle();
        st.dirty_jobs.insert(index);
        let pool = st.request.jobs[index].tape_pool.clone();
        self.delta.add(archive_kind(&st.request), &pool, st.facts());
        self.enqueue.push(Enqueue::Archive(key, index));
    }

    /// Moves a retrieve request to the tail of its active VID's queue.
    pub(super) fn enqueue_retrieve(&mut self, id: u64) {
        let st = self.retrieves.get_mut(&id).expect("loaded");
        st.loc = Loc::idle();
        st.dirty = true;
        let vid = st.request.active_vid.clone();
        self.delta.add(KIND_RETRIEVE, &vid, st.facts());
        self.enqueue.push(Enqueue::Retrieve(id));
    }

    /// Writes every change: queue positions, changed jobs and requests, deletions, summaries.
    pub(super) async fn write(mut self, tx: &mut Tx, now: Timestamp) -> Result<(), Fail> {
        if !self.enqueue.is_empty() {
            let seqs: Vec<i64> = sqlx::query_scalar("SELECT nextval('queue_seq') FROM generate_series(1, $1)")
                .bind(self.enqueue.len() as i64)
                .fetch_all(&mut **tx)
                .await?;
            let mut seqs = seqs;
            seqs.sort_unstable();
            for (e, seq) in self.enqueue.iter().zip(seqs) {
                match *e {
                    Enqueue::Archive(afid, i) => {
                        if let Some(st) = self.archives.get_mut(&afid) {
                            st.locs[i].queue_seq = Some(seq);
                        }
                    }
                    Enqueue::Retrieve(id) => {
                        if let Some(st) = self.retrieves.get_mut(&id) {
                            st.loc.queue_seq = Some(seq);
                        }
                    }
                }
            }
        }
        write_archives(tx, &self.archives, &self.delete_archives).await?;
        write_retrieves(tx, &self.retrieves, &self.delete_retrieves).await?;
        if !self.delete_archives.is_empty() {
            let ids: Vec<i64> = self.delete_archives.iter().map(|i| *i as i64).collect();
            sqlx::query("DELETE FROM archive_job WHERE archive_file_id = ANY($1)")
                .bind(&ids)
                .execute(&mut **tx)
                .await?;
            sqlx::query("DELETE FROM archive_request WHERE archive_file_id = ANY($1)")
                .bind(&ids)
                .execute(&mut **tx)
                .await?;
        }
        if !self.delete_retrieves.is_empty() {
            let ids: Vec<i64> = self.delete_retrieves.iter().map(|i| *i as i64).collect();
            sqlx::query("DELETE FROM retrieve_request WHERE request_id = ANY($1)")
                .bind(&ids)
                .execute(&mut **tx)
                .await?;
        }
        std::mem::take(&mut self.delta).apply(tx, now).await?;
        Ok(())
    }
}

pub(super) async fn write_archives(
    tx: &mut Tx,
    states: &BTreeMap<u64, ArchiveState>,
    skip: &BTreeSet<u64>,
) -> Result<(), Fail> {
    let mut afid = Vec::new();
    let mut copy = Vec::new();
    let mut status = Vec::new();
    let mut rwm = Vec::new();
    let mut tr = Vec::new();
    let mut lm: Vec<Option<i64>> = Vec::new();
    let mut rr = Vec::new();
    let mut reasons = Vec::new();
    let mut w_copy: Vec<Option<i32>> = Vec::new();
    let mut w_vid: Vec<Option<String>> = Vec::new();
    let mut w_fseq: Vec<Option<i64>> = Vec::new();
    let mut w_block: Vec<Option<i64>> = Vec::new();
    let mut qseq: Vec<Option<i64>> = Vec::new();
    let mut mount: Vec<Option<i64>> = Vec::new();
    let mut op: Vec<Option<i64>> = Vec::new();
    let mut rank: Vec<Option<i32>> = Vec::new();
    let (mut req_ids, mut req_decided) = (Vec::new(), Vec::new());
    for (id, st) in states {
        if skip.contains(id) {
            continue;
        }
        if st.dirty_request {
            req_ids.push(*id as i64);
            req_decided.push(st.request.report_decided);
        }
        for &i in &st.dirty_jobs {
            let j = &st.request.jobs[i];
            let loc = st.locs[i];
            afid.push(*id as i64);
            copy.push(j.copy_nb as i32);
            status.push(archive_code(j.status));
            rwm.push(j.retries.retries_within_mount as i32);
            tr.push(j.retries.total_retries as i32);
            lm.push(j.retries.last_mount_with_failure.map(|m| m as i64));
            rr.push(j.retries.report_retries as i32);
            reasons.push(json_strings(&j.failure_reasons));
            w_copy.push(j.written.as_ref().map(|w| w.copy_nb as i32));
            w_vid.push(j.written.as_ref().map(|w| w.vid.clone()));
            w_fseq.push(j.written.as_ref().map(|w| w.fseq as i64));
            w_block.push(j.written.as_ref().map(|w| w.block_id as i64));
            qseq.push(loc.queue_seq);
            mount.push(loc.mount_id.map(|m| m as i64));
            op.push(loc.owned_op);
            rank.push(loc.owned_rank);
        }
    }
    if !afid.is_empty() {
        sqlx::query(
            "UPDATE archive_job j SET
                 status = u.status, retries_within_mount = u.rwm, total_retries = u.tr,
                 last_mount_with_failure = u.lm, report_retries = u.rr,
                 failure_reasons = ARRAY(SELECT e FROM jsonb_array_elements_text(u.reasons::jsonb)
                                         WITH ORDINALITY AS x(e, n) ORDER BY n),
                 written_copy_nb = u.w_copy, written_vid = u.w_vid, written_fseq = u.w_fseq,
                 written_block_id = u.w_block, queue_seq = u.qseq, mount_id = u.mount, owned_op = u.op,
                 owned_rank = u.rank
             FROM unnest($1::int8[], $2::int4[], $3::int2[], $4::int4[], $5::int4[], $6::int8[], $7::int4[],
                         $8::text[], $9::int4[], $10::text[], $11::int8[], $12::int8[], $13::int8[], $14::int8[],
                         $15::int8[], $16::int4[])
                  AS u(afid, copy_nb, status, rwm, tr, lm, rr, reasons, w_copy, w_vid, w_fseq, w_block, qseq,
                       mount, op, rank)
             WHERE j.archive_file_id = u.afid AND j.copy_nb = u.copy_nb",
        )
        .bind(&afid)
        .bind(&copy)
        .bind(&status)
        .bind(&rwm)
        .bind(&tr)
        .bind(&lm)
        .bind(&rr)
        .bind(&reasons)
        .bind(&w_copy)
        .bind(&w_vid)
        .bind(&w_fseq)
        .bind(&w_block)
        .bind(&qseq)
        .bind(&mount)
        .bind(&op)
        .bind(&rank)
        .execute(&mut **tx)
        .await?;
    }
    if !req_ids.is_empty() {
        sqlx::query(
            "UPDATE archive_request r SET report_decided = u.decided
             FROM unnest($1::int8[], $2::bool[]) AS u(id, decided) WHERE r.archive_file_id = u.id",
        )
        .bind(&req_ids)
        .bind(&req_decided)
        .execute(&mut **tx)
        .await?;
    }
    Ok(())
}

pub(super) async fn write_retrieves(
    tx: &mut Tx,
    states: &BTreeMap<u64, RetrieveState>,
    skip: &BTreeSet<u64>,
) -> Result<(), Fail> {
    let mut ids = Vec::new();
    let mut status = Vec::new();
    let mut vid = Vec::new();
    let mut copy_nb = Vec::new();
    let mut fseq = Vec::new();
    let mut counters = Vec::new();
    let mut reasons = Vec::new();
    let mut qseq: Vec<Option<i64>> = Vec::new();
    let mut mount: Vec<Option<i64>> = Vec::new();
    let mut op: Vec<Option<i64>> = Vec::new();
    let mut rank: Vec<Option<i32>> = Vec::new();
    for (id, st) in states {
        if !st.dirty || skip.contains(id) {
            continue;
        }
        let r = &st.request;
        ids.push(*id as i64);
        status.push(retrieve_code(r.status));
        vid.push(r.active_vid.clone());
        copy_nb.push(active_copy_nb(r) as i32);
        fseq.push(active_fseq(r) as i64);
        let c: Vec<serde_json::Value> = r
            .copies
            .iter()
            .map(|c| {
                serde_json::json!([
                    c.retries.retries_within_mount,
                    c.retries.total_retries,
                    c.retries.last_mount_with_failure.map(|m| m as i64),
                    c.retries.report_retries
                ])
            })
            .collect();
        counters.push(serde_json::Value::Array(c).to_string());
        reasons.push(json_strings(&r.failure_reasons));
        qseq.push(st.loc.queue_seq);
        mount.push(st.loc.mount_id.map(|m| m as i64));
        op.push(st.loc.owned_op);
        rank.push(st.loc.owned_rank);
    }
    if ids.is_empty() {
        return Ok(());
    }
    sqlx::query(
        "UPDATE retrieve_request r SET
             status = u.status, active_vid = u.vid, active_copy_nb = u.copy_nb, active_fseq = u.fseq,
             retries_within_mount = ARRAY(SELECT (e->>0)::int4 FROM jsonb_array_elements(u.counters::jsonb)
                                          WITH ORDINALITY AS x(e, n) ORDER BY n),
             total_retries = ARRAY(SELECT (e->>1)::int4 FROM jsonb_array_elements(u.counters::jsonb)
                                   WITH ORDINALITY AS x(e, n) ORDER BY n),
             last_mount_with_failure = ARRAY(SELECT (e->>2)::int8 FROM jsonb_array_elements(u.counters::jsonb)
                                             WITH ORDINALITY AS x(e, n) ORDER BY n),
             report_retries = ARRAY(SELECT (e->>3)::int4 FROM jsonb_array_elements(u.counters::jsonb)
                                    WITH ORDINALITY AS x(e, n) ORDER BY n),
             failure_reasons = ARRAY(SELECT e FROM jsonb_array_elements_text(u.reasons::jsonb)
                                     WITH ORDINALITY AS x(e, n) ORDER BY n),
             queue_seq = u.qseq, mount_id = u.mount, owned_op = u.op, owned_rank = u.rank
         FROM unnest($1::int8[], $2::int2[], $3::text[], $4::int4[], $5::int8[], $6::text[], $7::text[],
                     $8::int8[], $9::int8[], $10::int8[], $11::int4[])
              AS u(id, status, vid, copy_nb, fseq, counters, reasons, qseq, mount, op, rank)
         WHERE r.request_id = u.id",
    )
    .bind(&ids)
    .bind(&status)
    .bind(&vid)
    .bind(&copy_nb)
    .bind(&fseq)
    .bind(&counters)
    .bind(&reasons)
    .bind(&qseq)
    .bind(&mount)
    .bind(&op)
    .bind(&rank)
    .execute(&mut **tx)
    .await?;
    Ok(())
}
