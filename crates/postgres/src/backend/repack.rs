//! Repack: repack requests (`repack_request`, the value as jsonb), the expansion's bulk insert of
//! retrieve subrequests, repack reports (due in canonical order, processed all or nothing) and
//! the cancellation of a repack with every subrequest (migration 8 describes the storage).
//!
//! Subrequests are ordinary rows of `retrieve_request` / `archive_request` carrying their
//! `RepackLink`; a repack's archive request is keyed by `-(subrequest_id + 1)` (see
//! [`archive_key`]). Every operation that touches repack rows locks them first (in VID order),
//! then request rows (in key order), then queue summaries (in key order, `Delta::apply`), the
//! order mount operations follow from their second step on, so they cannot deadlock each other.

use super::queueing::insert_archives;
use super::*;

/// The statuses a subrequest may be stored in by an expansion pass.
fn check_subrequest(vid: &str, r: &RetrieveRequest) -> Result<(), Fail> {
    let ok_link = r.repack.as_ref().is_some_and(|l| l.vid == vid && l.subrequest_id == r.request_id);
    if !ok_link {
        return Err(Fail::Fatal(Error::invalid(format!(
            "retrieve request {} is not a subrequest of the repack of {vid:?}",
            r.request_id
        ))));
    }
    match r.status {
        RetrieveStatus::ToTransfer if r.active_copy().is_none() => Err(Fail::Fatal(Error::invalid(format!(
            "repack subrequest {} targets tape {:?}, which holds none of its copies",
            r.request_id, r.active_vid
        )))),
        RetrieveStatus::ToTransfer | RetrieveStatus::ToReportForTransfer => Ok(()),
        other => Err(Fail::Fatal(Error::invalid(format!(
            "repack subrequest {} cannot be queued as {other:?}",
            r.request_id
        )))),
    }
}

/// Locks and reads the repack of `vid`.
async fn lock_repack(tx: &mut Tx, vid: &str) -> Result<Option<RepackRequest>, Fail> {
    let v: Option<Json<RepackRequest>> =
        sqlx::query_scalar("SELECT value FROM repack_request WHERE vid = $1 FOR UPDATE")
            .bind(vid)
            .fetch_optional(&mut **tx)
            .await?;
    Ok(v.map(|j| j.0))
}

/// A deleted job as `cancel_repack` reads it back: queue position, queue (VID or pool), size,
/// creation time, priority, minimum age, policy name.
type Deleted = (Option<i64>, String, i64, i64, i64, i64, String);

fn no_repack(vid: &str) -> Fail {
    Fail::Fatal(Error::not_found(format!("no repack of tape {vid:?}")))
}

/// Writes a repack request read under its row lock.
async fn write_repack(tx: &mut Tx, r: &RepackRequest) -> Result<(), Fail> {
    sqlx::query("UPDATE repack_request SET status = $2, value = $3 WHERE vid = $1")
        .bind(&r.vid)
        .bind(r.status.to_string())
        .bind(Json(r))
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// Whether a subrequest is as expansion makes them: one copy, the active one (on the repacked
/// tape), no retry or
/// failure recorded yet.
fn fresh_single_copy(r: &RetrieveRequest) -> bool {
    r.copies.len() == 1
        && r.copies[0].vid == r.active_vid
        && r.copies[0].retries == RetryCounters::default()
        && r.failure_reasons.is_empty()
}

/// The columns of a subrequest row both insert statements bind, one entry per request, and the
/// queue summaries' share of each queued one.
#[derive(Default)]
struct RowCols<'a> {
    id: Vec<i64>,
    afid: Vec<i64>,
    instance: Vec<&'a str>,
    rname: Vec<&'a str>,
    rgroup: Vec<&'a str>,
    size: Vec<i64>,
    dst: Vec<&'a str>,
    rurl: Vec<Option<&'a str>>,
    eurl: Vec<Option<&'a str>>,
    created: Vec<i64>,
    activity: Vec<Option<&'a str>>,
    verify: Vec<bool>,
    dsys: Vec<Option<&'a str>>,
    pname: Vec<&'a str>,
    prio: Vec<i64>,
    age: Vec<i64>,
    status: Vec<i16>,
    queued: Vec<bool>,
    link: Vec<Option<String>>,
    link_vid: Vec<Option<&'a str>>,
}

impl<'a> RowCols<'a> {
    /// Adds `r`'s columns, and to `delta` its job when it is queued.
    fn push(&mut self, r: &'a RetrieveRequest, delta: &mut Delta) -> Result<(), Fail> {
        self.id.push(checked_i64("request id", r.request_id)?);
        self.afid.push(checked_i64("archive file id", r.archive_file_id)?);
        self.instance.push(&r.disk_instance);
        self.rname.push(&r.requester.name);
        self.rgroup.push(&r.requester.group);
        self.size.push(checked_i64("size", r.size)?);
        self.dst.push(&r.dst_url);
        self.rurl.push(r.report_url.as_deref());
        self.eurl.push(r.error_report_url.as_deref());
        self.created.push(r.created_at);
        self.activity.push(r.activity.as_deref());
        self.verify.push(r.verify_only);
        self.dsys.push(r.disk_system.as_deref());
        self.pname.push(&r.policy.name);
        self.prio.push(r.policy.priority as i64);
        self.age.push(r.policy.min_request_age as i64);
        self.status.push(retrieve_code(r.status));
        let queued = r.status == RetrieveStatus::ToTransfer;
        self.queued.push(queued);
        self.link.push(r.repack.as_ref().map(|l| serde_json::to_string(l).unwrap_or_default()));
        self.link_vid.push(r.repack.as_ref().map(|l| l.vid.as_str()));
        if queued {
            delta.add(KIND_RETRIEVE, &r.active_vid, retrieve_facts(r));
        }
        Ok(())
    }
}

/// [`insert_subrequests`] for passes of fresh one-copy subrequests (what expansion makes): the
/// copy arrays are built per row from scalars, no per-request grouping of copies, no ordering,
/// and a duplicate id is refused by the primary key (`conflict`) rather than skipped. This is
/// the expansion hot path.
async fn insert_fresh_subrequests(tx: &mut Tx, subs: &[RetrieveRequest], delta: &mut Delta) -> Result<u64, Fail> {
    let mut cols = RowCols::default();
    let (mut cnb, mut cvid, mut cfseq, mut cblock) = (vec![], vec![], vec![], vec![]);
    for r in subs {
        let c = &r.copies[0];
        cnb.push(c.copy_nb as i32);
        cvid.push(c.vid.as_str());
        cfseq.push(checked_i64("fseq", c.fseq)?);
        cblock.push(checked_i64("block id", c.block_id)?);
        cols.push(r, delta)?;
    }
    // The active copy is the only copy: active_vid/copy/fseq come from it.
    let inserted = sqlx::query(
        "INSERT INTO retrieve_request (request_id, archive_file_id, disk_instance, requester_name, requester_group,
             size, dst_url, report_url, error_report_url, created_at, activity, verify_only, disk_system,
             policy_name, priority, min_request_age, copy_nbs, vids, fseqs, block_ids, retries_within_mount,
             total_retries, last_mount_with_failure, report_retries, active_vid, active_copy_nb, active_fseq,
             status, failure_reasons, queue_seq, repack, repack_vid)
         SELECT u.id, u.afid, u.di, u.rn, u.rg, u.size, u.dst, u.rurl, u.eurl, u.created, u.activity, u.verify,
                u.ds, u.pn, u.prio, u.age, ARRAY[u.nb], ARRAY[u.vid], ARRAY[u.fseq], ARRAY[u.block],
                '{0}'::int4[], '{0}'::int4[], '{NULL}'::int8[], '{0}'::int4[], u.vid, u.nb, u.fseq, u.status,
                '{}'::text[], CASE WHEN u.queued THEN s.seq END, u.link::json, u.link_vid
         FROM unnest($1::int8[], $2::int8[], $3::text[], $4::text[], $5::text[], $6::int8[], $7::text[],
                     $8::text[], $9::text[], $10::int8[], $11::text[], $12::bool[], $13::text[], $14::text[],
                     $15::int8[], $16::int8[], $17::int4[], $18::text[], $19::int8[], $20::int8[], $21::int2[],
                     $22::bool[], $23::text[], $24::text[])
                  AS u(id, afid, di, rn, rg, size, dst, rurl, eurl, created, activity, verify, ds, pn, prio, age,
                       nb, vid, fseq, block, status, queued, link, link_vid)
              CROSS JOIN (SELECT nextval('queue_seq') AS seq) s",
    )
    .bind(&cols.id)
    .bind(&cols.afid)
    .bind(&cols.instance)
    .bind(&cols.rname)
    .bind(&cols.rgroup)
    .bind(&cols.size)
    .bind(&cols.dst)
    .bind(&cols.rurl)
    .bind(&cols.eurl)
    .bind(&cols.created)
    .bind(&cols.activity)
    .bind(&cols.verify)
    .bind(&cols.dsys)
    .bind(&cols.pname)
    .bind(&cols.prio)
    .bind(&cols.age)
    .bind(&cnb)
    .bind(&cvid)
    .bind(&cfseq)
    .bind(&cblock)
    .bind(&cols.status)
    .bind(&cols.queued)
    .bind(&cols.link)
    .bind(&cols.link_vid)
    .execute(&mut **tx)
    .await?
    .rows_affected();
    Ok(inserted)
}

/// Inserts retrieve subrequests in one statement (`UNNEST`; the copies of every request come as
/// flat arrays grouped back per request), queueing those `ToTransfer` and recording them in
/// `delta`; returns how many rows were inserted (an id already stored is skipped).
///
/// The queued ones share one queue position: a retrieve queue is ordered by (fSeq, position) and
/// the files of a pass have distinct fSeqs on their tape, so one `nextval` per pass orders them
/// as one per row would (`nextval` per row was a seventh of the insert).
pub(super) async fn insert_subrequests(tx: &mut Tx, subs: &[RetrieveRequest], delta: &mut Delta) -> Result<u64, Fail> {
    if subs.iter().all(fresh_single_copy) {
        return insert_fresh_subrequests(tx, subs, delta).await;
    }
    let n = subs.len();
    let (mut c_row, mut c_nb, mut c_vid, mut c_fseq, mut c_block) = (vec![], vec![], vec![], vec![], vec![]);
    let (mut c_rwm, mut c_tr, mut c_lm, mut c_rr) = (vec![], vec![], Vec::<Option<i64>>::new(), vec![]);
    let mut cols = RowCols::default();
    let mut avid = Vec::with_capacity(n);
    let mut acopy = Vec::with_capacity(n);
    let mut afseq = Vec::with_capacity(n);
    let mut reasons = Vec::with_capacity(n);
    for (row, r) in subs.iter().enumerate() {
        for c in &r.copies {
            c_row.push(row as i32 + 1);
            c_nb.push(c.copy_nb as i32);
            c_vid.push(c.vid.as_str());
            c_fseq.push(checked_i64("fseq", c.fseq)?);
            c_block.push(checked_i64("block id", c.block_id)?);
            c_rwm.push(c.retries.retries_within_mount as i32);
            c_tr.push(c.retries.total_retries as i32);
            c_lm.push(c.retries.last_mount_with_failure.map(|m| m as i64));
            c_rr.push(c.retries.report_retries as i32);
        }
        avid.push(r.active_vid.as_str());
        acopy.push(active_copy_nb(r) as i32);
        afseq.push(active_fseq(r) as i64);
        reasons.push(json_strings(&r.failure_reasons));
        cols.push(r, delta)?;
    }
    let inserted = sqlx::query(
        "WITH c AS (
             -- Each request's copies, in the order given: the aggregates read the copies sorted
             -- by (request, position), a GroupAggregate keeps that order within a group (an
             -- ORDER BY inside each of the eight aggregates sorted every group eight times, a
             -- fifth of the statement's time).
             SELECT rn, array_agg(nb) AS nbs, array_agg(vid) AS vids, array_agg(fseq) AS fseqs,
                    array_agg(block) AS blocks, array_agg(rwm) AS rwms, array_agg(tr) AS trs,
                    array_agg(lm) AS lms, array_agg(rr) AS rrs
             FROM (SELECT * FROM unnest($1::int4[], $2::int4[], $3::text[], $4::int8[], $5::int8[], $6::int4[],
                                        $7::int4[], $8::int8[], $9::int4[])
                        WITH ORDINALITY AS c(rn, nb, vid, fseq, block, rwm, tr, lm, rr, k)
                   ORDER BY rn, k) c
             GROUP BY rn
         ), u AS (
             SELECT * FROM unnest($10::int8[], $11::int8[], $12::text[], $13::text[], $14::text[], $15::int8[],
                                  $16::text[], $17::text[], $18::text[], $19::int8[], $20::text[], $21::bool[],
                                  $22::text[], $23::text[], $24::int8[], $25::int8[], $26::text[], $27::int4[],
                                  $28::int8[], $29::int2[], $30::text[], $31::bool[], $32::text[], $33::text[])
                  WITH ORDINALITY AS u(id, afid, di, rn, rg, size, dst, rurl, eurl, created, activity, verify, ds,
                                       pn, prio, age, avid, acopy, afseq, status, reasons, queued, link, link_vid,
                                       ord)
         )
         INSERT INTO retrieve_request (request_id, archive_file_id, disk_instance, requester_name, requester_group,
             size, dst_url, report_url, error_report_url, created_at, activity, verify_only, disk_system,
             policy_name, priority, min_request_age, copy_nbs, vids, fseqs, block_ids, retries_within_mount,
             total_retries, last_mount_with_failure, report_retries, active_vid, active_copy_nb, active_fseq,
             status, failure_reasons, queue_seq, repack, repack_vid)
         SELECT u.id, u.afid, u.di, u.rn, u.rg, u.size, u.dst, u.rurl, u.eurl, u.created, u.activity, u.verify,
                u.ds, u.pn, u.prio, u.age, coalesce(c.nbs, '{}'), coalesce(c.vids, '{}'), coalesce(c.fseqs, '{}'),
                coalesce(c.blocks, '{}'), coalesce(c.rwms, '{}'), coalesce(c.trs, '{}'), coalesce(c.lms, '{}'),
                coalesce(c.rrs, '{}'), u.avid, u.acopy, u.afseq, u.status,
                CASE WHEN u.reasons = '[]' THEN '{}'::text[]
                     ELSE ARRAY(SELECT e FROM jsonb_array_elements_text(u.reasons::jsonb)
                                WITH ORDINALITY AS x(e, n) ORDER BY n) END,
                CASE WHEN u.queued THEN s.seq END, u.link::json, u.link_vid
         FROM u LEFT JOIN c ON c.rn = u.ord CROSS JOIN (SELECT nextval('queue_seq') AS seq) s
         ORDER BY u.ord
         ON CONFLICT (request_id) DO NOTHING",
    )
    .bind(&c_row)
    .bind(&c_nb)
    .bind(&c_vid)
    .bind(&c_fseq)
    .bind(&c_block)
    .bind(&c_rwm)
    .bind(&c_tr)
    .bind(&c_lm)
    .bind(&c_rr)
    .bind(&cols.id)
    .bind(&cols.afid)
    .bind(&cols.instance)
    .bind(&cols.rname)
    .bind(&cols.rgroup)
    .bind(&cols.size)
    .bind(&cols.dst)
    .bind(&cols.rurl)
    .bind(&cols.eurl)
    .bind(&cols.created)
    .bind(&cols.activity)
    .bind(&cols.verify)
    .bind(&cols.dsys)
    .bind(&cols.pname)
    .bind(&cols.prio)
    .bind(&cols.age)
    .bind(&avid)
    .bind(&acopy)
    .bind(&afseq)
    .bind(&cols.status)
    .bind(&reasons)
    .bind(&cols.queued)
    .bind(&cols.link)
    .bind(&cols.link_vid)
    .execute(&mut **tx)
    .await?
    .rows_affected();
    Ok(inserted)
}

impl PgSchedulerDb {
    pub(super) async fn queue_repack_once(&self, r: &RepackRequest) -> Result<(), Fail> {
        let mut tx = self.begin().await?;
        let n = sqlx::query(
            "INSERT INTO repack_request (vid, seq, status, value) VALUES ($1, $2, $3, $4)
             ON CONFLICT (vid) DO NOTHING",
        )
        .bind(&r.vid)
        .bind(checked_i64("repack seq", r.seq)?)
        .bind(r.status.to_string())
        .bind(Json(r))
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if n == 0 {
            return Err(Fail::Fatal(Error::conflict(format!("tape {:?} already has a repack request", r.vid))));
        }
        Self::commit(tx).await
    }

    /// Every repack (sorted by VID), or the one of `vid`.
    pub(super) async fn repacks_once(&self, vid: Option<&str>) -> Result<Vec<RepackRequest>, Fail> {
        let mut conn = self.pool.acquire().await?;
        let v: Vec<Json<RepackRequest>> =
            sqlx::query_scalar("SELECT value FROM repack_request WHERE $1::text IS NULL OR vid = $1 ORDER BY vid")
                .bind(vid)
                .fetch_all(&mut *conn)
                .await?;
        Ok(v.into_iter().map(|j| j.0).collect())
    }

    pub(super) async fn update_repack_once(&self, vid: &str, update: &RepackUpdate) -> Result<RepackRequest, Fail> {
        let mut tx = self.begin().await?;
        let mut r = lock_repack(&mut tx, vid).await?.ok_or_else(|| no_repack(vid))?;
        update.apply(&mut r)?;
        write_repack(&mut tx, &r).await?;
        Self::commit(tx).await?;
        Ok(r)
    }

    pub(super) async fn queue_repack_subrequests_once(
        &self,
        vid: &str,
        subs: &[RetrieveRequest],
        update: &RepackUpdate,
        now: Timestamp,
    ) -> Result<(), Fail> {
        for r in subs {
            check_subrequest(vid, r)?;
        }
        let mut tx = self.begin().await?;
        let mut r = lock_repack(&mut tx, vid).await?.ok_or_else(|| no_repack(vid))?;
        update.apply(&mut r)?;
        let mut delta = Delta::default();
        if !subs.is_empty() {
            let inserted = insert_subrequests(&mut tx, subs, &mut delta).await?;
            if inserted != subs.len() as u64 {
                return Err(Fail::Fatal(Error::conflict(format!(
                    "{} of the {} subrequests of this pass of the repack of {vid:?} are already stored",
                    subs.len() as u64 - inserted,
                    subs.len()
                ))));
            }
        }
        write_repack(&mut tx, &r).await?;
        delta.apply(&mut tx, now).await?;
        Self::commit(tx).await
    }

    pub(super) async fn repack_reports_due_once(&self, max: u64) -> Result<Vec<RepackReport>, Fail> {
        let mut tx = self.begin().await?;
        // One snapshot for the list and the values read after it.
        sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ").execute(&mut *tx).await?;
        let limit = max.min(i64::MAX as u64) as i64;
        // Canonical order (`RepackReport::order_key`): archive file id, archive before retrieve,
        // then the request id (a repack archive's subrequest id is -(key + 1)).
        let due: Vec<(i32, i64)> = sqlx::query_as(
            "SELECT kind, id FROM (
                 SELECT DISTINCT r.file_id AS afid, 0 AS kind, j.archive_file_id AS id
                 FROM archive_job j JOIN archive_request r ON r.archive_file_id = j.archive_file_id
                 WHERE j.status IN (1, 2) AND j.archive_file_id < 0
                 UNION ALL
                 SELECT archive_file_id, 1, request_id FROM retrieve_request
                 WHERE status IN (1, 2) AND repack_vid IS NOT NULL
             ) d
             ORDER BY afid, kind, CASE WHEN kind = 0 THEN -(id + 1) ELSE id END
             LIMIT $1",
        )
        .bind(limit)
        .fetch_all(&mut *tx)
        .await?;
        let keys: Vec<u64> = due.iter().filter(|(k, _)| *k == 0).map(|(_, id)| *id as u64).collect();
        let rids: Vec<i64> = due.iter().filter(|(k, _)| *k == 1).map(|(_, id)| *id).collect();
        let mut w = Work::default();
        w.load_archives_with(&mut tx, &keys, false).await?;
        let rows = sqlx::query(concat!("SELECT ", rr_cols!(), " FROM retrieve_request r WHERE r.request_id = ANY($1)"))
            .bind(&rids)
            .fetch_all(&mut *tx)
            .await?;
        tx.rollback().await.ok();
        let mut retrieves = HashMap::with_capacity(rows.len());
        for row in &rows {
            let st = retrieve_of(row)?;
            retrieves.insert(st.request.request_id, st.request);
        }
        let mut out = Vec::with_capacity(due.len());
        for (kind, id) in due {
            let report = if kind == 0 {
                w.archives.remove(&(id as u64)).map(|st| RepackReport::Archive(st.request))
            } else {
                retrieves.remove(&(id as u64)).map(RepackReport::Retrieve)
            };
            out.extend(report);
        }
        Ok(out)
    }

    pub(super) async fn repack_reports_processed_once(
        &self,
        batch: &RepackReportBatch,
        now: Timestamp,
    ) -> Result<(), Fail> {
        if let Some(a) = batch.archives.iter().find(|a| a.repack.is_none()) {
            return Err(Fail::Fatal(Error::invalid(format!(
                "archive request {} of a repack report batch carries no repack link",
                a.archive_file_id
            ))));
        }
        if batch.is_empty() {
            return Ok(());
        }
        let mut tx = self.begin().await?;
        // 1. The repacks, locked in VID order; a repack that no longer exists is skipped.
        let mut vids: Vec<&str> = batch.updates.iter().map(|(v, _)| v.as_str()).collect();
        vids.sort_unstable();
        vids.dedup();
        let mut repacks: BTreeMap<String, RepackRequest> = BTreeMap::new();
        if !vids.is_empty() {
            let rows: Vec<Json<RepackRequest>> =
                sqlx::query_scalar("SELECT value FROM repack_request WHERE vid = ANY($1) ORDER BY vid FOR UPDATE")
                    .bind(&vids)
                    .fetch_all(&mut *tx)
                    .await?;
            repacks.extend(rows.into_iter().map(|Json(r)| (r.vid.clone(), r)));
        }
        for (vid, update) in &batch.updates {
            if let Some(r) = repacks.get_mut(vid) {
                update.apply(r)?;
            }
        }
        // 2. Retrieve subrequests accounted for: deleted.
        let mut w = Work::default();
        w.load_retrieves(&mut tx, &batch.retrieves).await?;
        for id in &batch.retrieves {
            let Some(st) = w.retrieves.get(id) else { continue };
            if st.request.repack.is_none() {
                continue;
            }
            if st.loc.queue_seq.is_some() {
                w.delta.remove(KIND_RETRIEVE, &st.request.active_vid, st.facts());
            }
            w.delete_retrieves.insert(*id);
        }
        // 3. Archive jobs accounted for: Complete or Failed; a request with nothing left to
        //    transfer or to account for is deleted.
        let keys: Vec<u64> = batch
            .archive_jobs
            .iter()
            .filter(|j| matches!(j.request, RequestId::RepackArchive(_)))
            .filter_map(|j| archive_key(j.request))
            .collect();
        w.load_archives(&mut tx, &keys).await?;
        for job in &batch.archive_jobs {
            let Some(key) = archive_key(job.request).filter(|_| matches!(job.request, RequestId::RepackArchive(_)))
            else {
                continue;
            };
            let Some(st) = w.archives.get_mut(&key) else { continue };
            let Some(i) = st.index(job.copy_nb) else { continue };
            let j = &mut st.request.jobs[i];
            j.status = match j.status {
                ArchiveJobStatus::ToReportForTransfer => ArchiveJobStatus::Complete,
                ArchiveJobStatus::ToReportForFailure => ArchiveJobStatus::Failed,
                _ => continue,
            };
            st.dirty_jobs.insert(i);
        }
        for (key, st) in &w.archives {
            let live = st.request.jobs.iter().any(|j| {
                matches!(
                    j.status,
                    ArchiveJobStatus::ToTransfer
                        | ArchiveJobStatus::ToReportForTransfer
                        | ArchiveJobStatus::ToReportForFailure
                )
            });
            if !live {
                w.delete_archives.insert(*key);
            }
        }
        // 4. New archive requests, queued in their pools' ArchiveForRepack queues (an id already
        //    stored is left as it is).
        let new: Vec<&ArchiveRequest> =
            batch.archives.iter().filter(|a| !w.archives.contains_key(&key_of(a))).collect();
        insert_archives(&mut tx, &new, &mut w.delta).await?;
        w.write(&mut tx, now).await?;
        for r in repacks.values() {
            write_repack(&mut tx, r).await?;
        }
        Self::commit(tx).await
    }

    pub(super) async fn cancel_repack_once(&self, vid: &str, now: Timestamp) -> Result<u64, Fail> {
        let mut tx = self.begin().await?;
        let gone = sqlx::query("DELETE FROM repack_request WHERE vid = $1").bind(vid).execute(&mut *tx).await?;
        if gone.rows_affected() == 0 {
            return Err(no_repack(vid));
        }
        // Rows are locked in key order before they are deleted (as every other writer does); the
        // deleted versions say whether each job was still queued.
        sqlx::query("SELECT 1 FROM retrieve_request WHERE repack_vid = $1 ORDER BY request_id FOR UPDATE")
            .bind(vid)
            .execute(&mut *tx)
            .await?;
        let retrieves: Vec<Deleted> = sqlx::query_as(
            "DELETE FROM retrieve_request WHERE repack_vid = $1
             RETURNING queue_seq, active_vid, size, created_at, priority, min_request_age, policy_name",
        )
        .bind(vid)
        .fetch_all(&mut *tx)
        .await?;
        sqlx::query("SELECT 1 FROM archive_request WHERE repack_vid = $1 ORDER BY archive_file_id FOR UPDATE")
            .bind(vid)
            .execute(&mut *tx)
            .await?;
        let jobs: Vec<Deleted> = sqlx::query_as(
            "DELETE FROM archive_job j USING archive_request r
             WHERE r.archive_file_id = j.archive_file_id AND r.repack_vid = $1
             RETURNING j.queue_seq, j.tape_pool, j.size, j.created_at, r.priority, r.min_request_age, r.policy_name",
        )
        .bind(vid)
        .fetch_all(&mut *tx)
        .await?;
        let archives = sqlx::query("DELETE FROM archive_request WHERE repack_vid = $1")
            .bind(vid)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        let mut delta = Delta::default();
        let queued = |kind: i16| {
            move |(seq, queue, size, created, prio, age, policy): &Deleted| {
                seq.map(|_| (kind, queue.clone(), *size, *created, *prio, *age, policy.clone()))
            }
        };
        let removed: Vec<_> = retrieves
            .iter()
            .filter_map(queued(KIND_RETRIEVE))
            .chain(jobs.iter().filter_map(queued(KIND_REPACK)))
            .collect();
        for (kind, queue, size, created_at, priority, min_age, policy) in &removed {
            let facts = JobFacts {
                size: *size as u64,
                created_at: *created_at,
                priority: *priority as u64,
                min_age: *min_age as u64,
                policy,
            };
            delta.remove(*kind, queue, facts);
        }
        delta.apply(&mut tx, now).await?;
        Self::commit(tx).await?;
        Ok(retrieves.len() as u64 + archives)
    }
}
