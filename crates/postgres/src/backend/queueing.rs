//! Writes of new requests: archive batches (bulk `UNNEST` inserts, all or nothing per request)
//! and retrieve requests routed to a VID's queue (alone, or in batches through the bulk insert
//! of repack subrequests).

use super::*;

impl PgSchedulerDb {
    /// Stores archive requests in one transaction (bulk `UNNEST` inserts) and answers for each
    /// in order: a request is stored whole or not at all; one whose id is already stored, or
    /// repeated earlier in the batch, is a `conflict`.
    pub async fn queue_archive_batch(&self, requests: &[ArchiveRequest], now: Timestamp) -> Result<Vec<Result<()>>> {
        let mut answers: Vec<Option<Error>> = vec![None; requests.len()];
        let mut seen = BTreeSet::new();
        for (i, r) in requests.iter().enumerate() {
            if r.jobs.is_empty() {
                answers[i] =
                    Some(Error::invalid(format!("archive request {} has no copy to write", r.archive_file_id)));
            } else if !seen.insert(key_of(r)) {
                answers[i] = Some(Error::conflict(format!("archive request {} is already queued", r.archive_file_id)));
            }
        }
        let candidates: Vec<&ArchiveRequest> =
            requests.iter().zip(&answers).filter(|(_, a)| a.is_none()).map(|(r, _)| r).collect();
        let stored = retry(self.config.max_attempts, || self.queue_archive_once(&candidates, now)).await?;
        Ok(requests
            .iter()
            .zip(answers)
            .map(|(r, a)| match a {
                Some(e) => Err(e),
                None if stored.contains(&key_of(r)) => Ok(()),
                None => Err(Error::conflict(format!("archive request {} is already queued", r.archive_file_id))),
            })
            .collect())
    }

    /// Inserts the requests that are not stored yet; returns the ids of those it stored.
    pub(super) async fn queue_archive_once(
        &self,
        requests: &[&ArchiveRequest],
        now: Timestamp,
    ) -> Result<BTreeSet<u64>, Fail> {
        if requests.is_empty() {
            return Ok(BTreeSet::new());
        }
        let mut tx = self.begin().await?;
        let mut delta = Delta::default();
        let stored = insert_archives(&mut tx, requests, &mut delta).await?;
        delta.apply(&mut tx, now).await?;
        Self::commit(tx).await?;
        Ok(stored)
    }

    /// Stores retrieve requests in one transaction and answers for each in order, as
    /// `queue_retrieve` would one after the other: a request that targets a tape holding none of
    /// its copies is `invalid`; one whose id is already stored, or repeated earlier in the batch,
    /// a `conflict`. (Should another process store one of the ids between this transaction's
    /// check and its insert, the whole batch is a `conflict`: ids come from the catalogue, which
    /// hands each out once.)
    pub async fn queue_retrieve_batch(&self, requests: &[RetrieveRequest], now: Timestamp) -> Result<Vec<Result<()>>> {
        let mut answers: Vec<Option<Error>> = vec![None; requests.len()];
        let mut seen = BTreeSet::new();
        for (i, r) in requests.iter().enumerate() {
            if r.active_copy().is_none() {
                answers[i] = Some(Error::invalid(format!(
                    "retrieve request {} targets tape {:?}, which holds none of its copies",
                    r.request_id, r.active_vid
                )));
            } else if !seen.insert(r.request_id) {
                answers[i] = Some(Error::conflict(format!("retrieve request {} is already queued", r.request_id)));
            }
        }
        let candidates: Vec<&RetrieveRequest> =
            requests.iter().zip(&answers).filter(|(_, a)| a.is_none()).map(|(r, _)| r).collect();
        let stored = retry(self.config.max_attempts, || self.queue_retrieve_batch_once(&candidates, now)).await?;
        Ok(requests
            .iter()
            .zip(answers)
            .map(|(r, a)| match a {
                Some(e) => Err(e),
                None if stored.contains(&r.request_id) => Ok(()),
                None => Err(Error::conflict(format!("retrieve request {} is already queued", r.request_id))),
            })
            .collect())
    }

    /// Inserts the requests whose ids are not stored yet; returns the ids of those it stored.
    ///
    /// A retrieve queue is ordered by (fSeq, position), and one bulk insert gives its rows one
    /// position (see `insert_subrequests`): the requests go in rounds, the k-th request for the
    /// same (tape, fSeq) in the k-th round, so each queue orders them as one insert per request
    /// would.
    async fn queue_retrieve_batch_once(
        &self,
        requests: &[&RetrieveRequest],
        now: Timestamp,
    ) -> Result<BTreeSet<u64>, Fail> {
        if requests.is_empty() {
            return Ok(BTreeSet::new());
        }
        let mut tx = self.begin().await?;
        let ids = requests.iter().map(|r| checked_i64("request id", r.request_id)).collect::<Result<Vec<i64>, _>>()?;
        let existing: BTreeSet<i64> =
            sqlx::query_scalar("SELECT request_id FROM retrieve_request WHERE request_id = ANY($1)")
                .bind(&ids)
                .fetch_all(&mut *tx)
                .await?
                .into_iter()
                .collect();
        let mut rounds: Vec<Vec<RetrieveRequest>> = Vec::new();
        let mut occurrences: HashMap<(&str, u64), usize> = HashMap::new();
        let mut stored = BTreeSet::new();
        for (r, id) in requests.iter().zip(&ids) {
            if existing.contains(id) {
                continue;
            }
            let k = occurrences.entry((r.active_vid.as_str(), active_fseq(r))).or_insert(0);
            if rounds.len() <= *k {
                rounds.push(Vec::new());
            }
            rounds[*k].push((*r).clone());
            *k += 1;
            stored.insert(r.request_id);
        }
        let mut delta = Delta::default();
        for round in &rounds {
            let inserted = super::repack::insert_subrequests(&mut tx, round, &mut delta).await?;
            if inserted != round.len() as u64 {
                return Err(Fail::Fatal(Error::conflict(format!(
                    "{} of {} retrieve requests were stored by another process meanwhile",
                    round.len() as u64 - inserted,
                    round.len()
                ))));
            }
        }
        delta.apply(&mut tx, now).await?;
        Self::commit(tx).await?;
        Ok(stored)
    }

    pub(super) async fn queue_retrieve_once(&self, r: &RetrieveRequest, now: Timestamp) -> Result<(), Fail> {
        let mut tx = self.begin().await?;
        let copy_nbs: Vec<i32> = r.copies.iter().map(|c| c.copy_nb as i32).collect();
        let vids: Vec<&str> = r.copies.iter().map(|c| c.vid.as_str()).collect();
        let fseqs: Vec<i64> = r.copies.iter().map(|c| c.fseq as i64).collect();
        let blocks: Vec<i64> = r.copies.iter().map(|c| c.block_id as i64).collect();
        let rwm: Vec<i32> = r.copies.iter().map(|c| c.retries.retries_within_mount as i32).collect();
        let tr: Vec<i32> = r.copies.iter().map(|c| c.retries.total_retries as i32).collect();
        let lm: Vec<Option<i64>> =
            r.copies.iter().map(|c| c.retries.last_mount_with_failure.map(|m| m as i64)).collect();
        let rr: Vec<i32> = r.copies.iter().map(|c| c.retries.report_retries as i32).collect();
        let queued = r.status == RetrieveStatus::ToTransfer;
        let inserted = sqlx::query(
            "INSERT INTO retrieve_request (request_id, archive_file_id, disk_instance, requester_name, requester_group,
                 size, dst_url, report_url, error_report_url, created_at, activity, verify_only, disk_system,
                 policy_name, priority, min_request_age, copy_nbs, vids, fseqs, block_ids, retries_within_mount,
                 total_retries, last_mount_with_failure, report_retries, active_vid, active_copy_nb, active_fseq,
                 status, failure_reasons, queue_seq, repack, repack_vid)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21,
                 $22, $23, $24, $25, $26, $27, $28, $29, CASE WHEN $30 THEN nextval('queue_seq') END, $31::json, $32)
             ON CONFLICT (request_id) DO NOTHING",
        )
        .bind(checked_i64("request id", r.request_id)?)
        .bind(checked_i64("archive file id", r.archive_file_id)?)
        .bind(&r.disk_instance)
        .bind(&r.requester.name)
        .bind(&r.requester.group)
        .bind(checked_i64("size", r.size)?)
        .bind(&r.dst_url)
        .bind(&r.report_url)
        .bind(&r.error_report_url)
        .bind(r.created_at)
        .bind(&r.activity)
        .bind(r.verify_only)
        .bind(&r.disk_system)
        .bind(&r.policy.name)
        .bind(r.policy.priority as i64)
        .bind(r.policy.min_request_age as i64)
        .bind(&copy_nbs)
        .bind(&vids)
        .bind(&fseqs)
        .bind(&blocks)
        .bind(&rwm)
        .bind(&tr)
        .bind(&lm)
        .bind(&rr)
        .bind(&r.active_vid)
        .bind(active_copy_nb(r) as i32)
        .bind(active_fseq(r) as i64)
        .bind(retrieve_code(r.status))
        .bind(&r.failure_reasons)
        .bind(queued)
        .bind(r.repack.as_ref().map(|l| serde_json::to_string(l).unwrap_or_default()))
        .bind(r.repack.as_ref().map(|l| l.vid.as_str()))
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if inserted == 0 {
            return Err(Fail::Fatal(Error::conflict(format!("retrieve request {} is already queued", r.request_id))));
        }
        if queued {
            let mut delta = Delta::default();
            delta.add(KIND_RETRIEVE, &r.active_vid, retrieve_facts(r));
            delta.apply(&mut tx, now).await?;
        }
        Self::commit(tx).await
    }
}

/// Inserts the archive requests (user's or repack's) that are not stored yet (bulk `UNNEST`
/// inserts; jobs `ToTransfer` are queued in the order of the batch) and records their queueing
/// in `delta`; returns the keys ([`archive_key`]) of those it stored.
pub(super) async fn insert_archives(
    tx: &mut Tx,
    requests: &[&ArchiveRequest],
    delta: &mut Delta,
) -> Result<BTreeSet<u64>, Fail> {
    if requests.is_empty() {
        return Ok(BTreeSet::new());
    }
    let stored = insert_archive_rows(tx, requests).await?;
    insert_archive_jobs(tx, requests, &stored, delta).await?;
    Ok(stored)
}

/// Inserts the request rows (not the jobs) of the archive requests not stored yet; returns the
/// keys ([`archive_key`]) of those it stored.
pub(super) async fn insert_archive_rows(tx: &mut Tx, requests: &[&ArchiveRequest]) -> Result<BTreeSet<u64>, Fail> {
    let n = requests.len();
    let mut afid = Vec::with_capacity(n);
    let mut instance = Vec::with_capacity(n);
    let mut disk_file = Vec::with_capacity(n);
    let mut rname = Vec::with_capacity(n);
    let mut rgroup = Vec::with_capacity(n);
    let mut sc = Vec::with_capacity(n);
    let mut size = Vec::with_capacity(n);
    let mut created = Vec::with_capacity(n);
    let mut rurl = Vec::with_capacity(n);
    let mut eurl = Vec::with_capacity(n);
    let mut pname = Vec::with_capacity(n);
    let mut prio = Vec::with_capacity(n);
    let mut age = Vec::with_capacity(n);
    let mut decided = Vec::with_capacity(n);
    let mut copies = Vec::with_capacity(n);
    let (mut file_id, mut link, mut link_vid) = (Vec::with_capacity(n), Vec::with_capacity(n), Vec::with_capacity(n));
    for r in requests {
        checked_i64("archive file id", r.archive_file_id)?;
        afid.push(key_of(r) as i64);
        file_id.push(r.repack.as_ref().map(|_| r.archive_file_id as i64));
        link.push(r.repack.as_ref().map(|l| serde_json::to_string(l).unwrap_or_default()));
        link_vid.push(r.repack.as_ref().map(|l| l.vid.as_str()));
        instance.push(r.disk_instance.as_str());
        disk_file.push(r.disk_file_id.as_str());
        rname.push(r.requester.name.as_str());
        rgroup.push(r.requester.group.as_str());
        sc.push(r.storage_class.as_str());
        size.push(checked_i64("size", r.size)?);
        created.push(r.created_at);
        rurl.push(r.report_url.as_deref());
        eurl.push(r.error_report_url.as_deref());
        pname.push(r.policy.name.as_str());
        prio.push(r.policy.priority as i64);
        age.push(r.policy.min_request_age as i64);
        decided.push(r.report_decided);
        copies.push(r.jobs.len() as i32);
    }
    let inserted: Vec<i64> = sqlx::query_scalar(
        "INSERT INTO archive_request (archive_file_id, disk_instance, disk_file_id, requester_name,
                 requester_group, storage_class, size, created_at, report_url, error_report_url, policy_name,
                 priority, min_request_age, report_decided, copies, file_id, repack, repack_vid)
             SELECT afid, di, dfid, rn, rg, sc, size, created, rurl, eurl, pn, prio, age, decided, copies, file_id,
                    link::json, link_vid
             FROM unnest($1::int8[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[],
                 $7::int8[], $8::int8[], $9::text[], $10::text[], $11::text[], $12::int8[], $13::int8[],
                 $14::bool[], $15::int4[], $16::int8[], $17::text[], $18::text[])
                 AS u(afid, di, dfid, rn, rg, sc, size, created, rurl, eurl, pn, prio, age, decided, copies, file_id,
                      link, link_vid)
             ON CONFLICT (archive_file_id) DO NOTHING
             RETURNING archive_file_id",
    )
    .bind(&afid)
    .bind(&instance)
    .bind(&disk_file)
    .bind(&rname)
    .bind(&rgroup)
    .bind(&sc)
    .bind(&size)
    .bind(&created)
    .bind(&rurl)
    .bind(&eurl)
    .bind(&pname)
    .bind(&prio)
    .bind(&age)
    .bind(&decided)
    .bind(&copies)
    .bind(&file_id)
    .bind(&link)
    .bind(&link_vid)
    .fetch_all(&mut **tx)
    .await?;
    Ok(inserted.into_iter().map(|i| i as u64).collect())
}

/// Inserts the jobs of the requests `stored` names, queueing those to transfer in batch order.
async fn insert_archive_jobs(
    tx: &mut Tx,
    requests: &[&ArchiveRequest],
    stored: &BTreeSet<u64>,
    delta: &mut Delta,
) -> Result<(), Fail> {
    let (mut j_afid, mut j_copy, mut j_pos, mut j_pool, mut j_status, mut j_size, mut j_created) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let mut queued = Vec::new();
    let (mut j_rwm, mut j_tr, mut j_lm, mut j_rr, mut j_reasons) =
        (Vec::new(), Vec::new(), Vec::<Option<i64>>::new(), Vec::new(), Vec::new());
    for r in requests.iter().filter(|r| stored.contains(&key_of(r))) {
        let (key, kind) = (key_of(r) as i64, archive_kind(r));
        let facts = archive_facts(r);
        for (pos, j) in r.jobs.iter().enumerate() {
            j_afid.push(key);
            j_copy.push(j.copy_nb as i32);
            j_pos.push(pos as i32);
            j_pool.push(j.tape_pool.as_str());
            j_status.push(archive_code(j.status));
            j_size.push(r.size as i64);
            j_created.push(r.created_at);
            j_rwm.push(j.retries.retries_within_mount as i32);
            j_tr.push(j.retries.total_retries as i32);
            j_lm.push(j.retries.last_mount_with_failure.map(|m| m as i64));
            j_rr.push(j.retries.report_retries as i32);
            j_reasons.push(json_strings(&j.failure_reasons));
            let q = j.status == ArchiveJobStatus::ToTransfer;
            queued.push(q);
            if q {
                delta.add(kind, &j.tape_pool, facts);
            }
        }
    }
    if !j_afid.is_empty() {
        // Queue positions follow the order of the jobs in the batch.
        sqlx::query(
            "INSERT INTO archive_job (archive_file_id, copy_nb, position, tape_pool, status, size, created_at,
                     queue_seq, retries_within_mount, total_retries, last_mount_with_failure, report_retries,
                     failure_reasons)
                 SELECT afid, copy_nb, pos, pool, status, size, created, CASE WHEN queued THEN nextval('queue_seq') END,
                        rwm, tr, lm, rr,
                        CASE WHEN reasons = '[]' THEN '{}'::text[]
                             ELSE ARRAY(SELECT e FROM jsonb_array_elements_text(reasons::jsonb)
                                        WITH ORDINALITY AS x(e, n) ORDER BY n) END
                 FROM unnest($1::int8[], $2::int4[], $3::int4[], $4::text[], $5::int2[], $6::int8[], $7::int8[],
                             $8::bool[], $9::int4[], $10::int4[], $11::int8[], $12::int4[], $13::text[])
                      WITH ORDINALITY AS u(afid, copy_nb, pos, pool, status, size, created, queued, rwm, tr, lm, rr,
                                           reasons, ord)
                 ORDER BY ord",
        )
        .bind(&j_afid)
        .bind(&j_copy)
        .bind(&j_pos)
        .bind(&j_pool)
        .bind(&j_status)
        .bind(&j_size)
        .bind(&j_created)
        .bind(&queued)
        .bind(&j_rwm)
        .bind(&j_tr)
        .bind(&j_lm)
        .bind(&j_rr)
        .bind(&j_reasons)
        .execute(&mut **tx)
        .await?;
    }
    Ok(())
}
