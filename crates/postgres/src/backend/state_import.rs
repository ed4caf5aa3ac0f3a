//! Imports and deletions of [`StateItem`]s (`tapesched_scheduler::state`), each call one
//! transaction with the summaries changed in it.
//!
//! An import reads what is stored under the items' keys first: an item stored and the same is
//! left alone, one stored and different is deleted and written again (a mount is updated in
//! place, since its claims go with its row). Rows are written with bulk `UNNEST` inserts:
//!
//! - a queued job keeps its order within its queue: its `queue_seq` is the exported position
//!   shifted below every position the `queue_seq` sequence gives (`- 2^62`), so backfilled jobs,
//!   which predate the jobs mirrored since dual-write began, come first; a job to transfer whose
//!   position is unknown (on its way back to its queue) goes to the tail;
//! - a held job keeps its mount and order (`owned_op`, `owned_rank`), and each (mount, op) gets its
//!   `mount_claim` row (extended if present), so ending or collecting the mount finds it; a job
//!   held by a mount that does not exist goes back to its queue;
//! - the mount-id sequence is moved past every imported mount.

use tapesched_scheduler::state::{JobPlace, StateItem, StateKey};

use super::state::read_keys;
use super::*;

/// Exported positions are shifted by this much below the sequence's values.
const POSITION_SHIFT: i64 = 1 << 62;

/// Where a job row goes: its queue position (`tail`: the next one), its mount.
#[derive(Default, Clone, Copy)]
struct Row {
    qseq: Option<i64>,
    tail: bool,
    mount: Option<i64>,
    op: Option<i64>,
    rank: Option<i32>,
}

fn row_of(place: JobPlace, to_transfer: bool, mounts: &BTreeSet<i64>) -> Row {
    match place {
        JobPlace::Queued { position } if to_transfer => {
            if position == i64::MAX {
                Row { tail: true, ..Row::default() }
            } else {
                let qseq = if position >= 0 { position - POSITION_SHIFT } else { position };
                Row { qseq: Some(qseq), ..Row::default() }
            }
        }
        JobPlace::Held { mount, order } if mounts.contains(&(mount as i64)) => Row {
            mount: Some(mount as i64),
            op: Some(order.0),
            rank: Some(order.1.clamp(i32::MIN as i64, i32::MAX as i64) as i32),
            ..Row::default()
        },
        _ if to_transfer => Row { tail: true, ..Row::default() },
        _ => Row::default(),
    }
}

/// Claims to record: (mount, op) -> (archive keys, copies, retrieve ids).
type Claims = BTreeMap<(i64, i64), (Vec<i64>, Vec<i32>, Vec<i64>)>;

impl PgSchedulerDb {
    pub(super) async fn import_state_once(&self, items: &[StateItem], now: Timestamp) -> Result<(), Fail> {
        let mut tx = self.begin().await?;
        let keys: Vec<StateKey> = items.iter().map(StateItem::key).collect();
        let stored: HashMap<StateKey, StateItem> =
            read_keys(&mut tx, &keys).await?.into_iter().map(|i| (i.key(), i)).collect();
        let mut replace = Vec::new();
        let mut fresh: Vec<&StateItem> = Vec::new();
        for item in items {
            match stored.get(&item.key()) {
                Some(s) if s.same(item) => {}
                Some(_) => {
                    if !matches!(item, StateItem::Mount { .. }) {
                        replace.push(item.key());
                    }
                    fresh.push(item);
                }
                None => fresh.push(item),
            }
        }
        delete_keys(&mut tx, &replace, now).await?;
        insert_items(&mut tx, &fresh, now).await?;
        Self::commit(tx).await
    }

    pub(super) async fn delete_state_once(&self, keys: &[StateKey], now: Timestamp) -> Result<(), Fail> {
        let mut tx = self.begin().await?;
        delete_keys(&mut tx, keys, now).await?;
        Self::commit(tx).await
    }
}

/// Deletes the items of `keys` (requests with their jobs and queue summaries, repacks, markers,
/// then mounts that hold nothing).
async fn delete_keys(tx: &mut Tx, keys: &[StateKey], now: Timestamp) -> Result<(), Fail> {
    if keys.is_empty() {
        return Ok(());
    }
    let mut work = Work::default();
    let archives: Vec<u64> = keys
        .iter()
        .filter_map(|k| match k {
            StateKey::Archive(a) => archive_key(RequestId::Archive(*a)),
            StateKey::RepackArchive(s) => archive_key(RequestId::RepackArchive(*s)),
            _ => None,
        })
        .collect();
    let retrieves: Vec<u64> =
        keys.iter().filter_map(|k| if let StateKey::Retrieve(r) = k { Some(*r) } else { None }).collect();
    work.load_archives(tx, &archives).await?;
    work.load_retrieves(tx, &retrieves).await?;
    for (key, st) in &work.archives {
        for (i, job) in st.request.jobs.iter().enumerate() {
            if st.locs[i].queue_seq.is_some() {
                work.delta.remove(archive_kind(&st.request), &job.tape_pool, st.facts());
            }
        }
        work.delete_archives.insert(*key);
    }
    for (id, st) in &work.retrieves {
        if st.loc.queue_seq.is_some() {
            work.delta.remove(KIND_RETRIEVE, &st.request.active_vid, st.facts());
        }
        work.delete_retrieves.insert(*id);
    }
    work.write(tx, now).await?;
    let repacks: Vec<&str> =
        keys.iter().filter_map(|k| if let StateKey::Repack(v) = k { Some(v.as_str()) } else { None }).collect();
    if !repacks.is_empty() {
        sqlx::query("DELETE FROM repack_request WHERE vid = ANY($1)").bind(&repacks).execute(&mut **tx).await?;
    }
    let markers: Vec<&str> =
        keys.iter().filter_map(|k| if let StateKey::Marker(v) = k { Some(v.as_str()) } else { None }).collect();
    if !markers.is_empty() {
        sqlx::query(
            "UPDATE queue_summary SET cleanup = false, sleep_disk_system = NULL, sleep_until = NULL
             WHERE kind = 2 AND container = ANY($1)",
        )
        .bind(&markers)
        .execute(&mut **tx)
        .await?;
        sqlx::query("DELETE FROM queue_summary WHERE kind = 2 AND container = ANY($1) AND files <= 0")
            .bind(&markers)
            .execute(&mut **tx)
            .await?;
    }
    let mounts: Vec<i64> =
        keys.iter().filter_map(|k| if let StateKey::Mount(m) = k { Some(*m as i64) } else { None }).collect();
    if !mounts.is_empty() {
        sqlx::query(
            "DELETE FROM mount m WHERE m.mount_id = ANY($1)
               AND NOT EXISTS (SELECT 1 FROM archive_job j WHERE j.mount_id = m.mount_id)
               AND NOT EXISTS (SELECT 1 FROM retrieve_request r WHERE r.mount_id = m.mount_id)",
        )
        .bind(&mounts)
        .execute(&mut **tx)
        .await?;
    }
    Ok(())
}

async fn insert_items(tx: &mut Tx, items: &[&StateItem], now: Timestamp) -> Result<(), Fail> {
    if items.is_empty() {
        return Ok(());
    }
    insert_mounts(tx, items, now).await?;
    let repacks: Vec<&RepackRequest> =
        items.iter().filter_map(|i| if let StateItem::Repack(r) = i { Some(r) } else { None }).collect();
    if !repacks.is_empty() {
        let vids: Vec<&str> = repacks.iter().map(|r| r.vid.as_str()).collect();
        let seqs: Vec<i64> = repacks.iter().map(|r| r.seq as i64).collect();
        let status: Vec<String> = repacks.iter().map(|r| r.status.to_string()).collect();
        let values: Vec<String> = repacks.iter().map(|r| serde_json::to_string(r).unwrap_or_default()).collect();
        sqlx::query(
            "INSERT INTO repack_request (vid, seq, status, value)
             SELECT * FROM unnest($1::text[], $2::int8[], $3::text[], $4::jsonb[])
             ON CONFLICT (vid) DO UPDATE SET seq = excluded.seq, status = excluded.status, value = excluded.value",
        )
        .bind(&vids)
        .bind(&seqs)
        .bind(&status)
        .bind(&values)
        .execute(&mut **tx)
        .await?;
    }
    // Mounts that exist now, for the held jobs.
    let wanted: Vec<i64> = items
        .iter()
        .flat_map(|i| match i {
            StateItem::Archive { places, .. } => places.clone(),
            StateItem::Retrieve { place, .. } => vec![*place],
            _ => vec![],
        })
        .filter_map(|p| if let JobPlace::Held { mount, .. } = p { Some(mount as i64) } else { None })
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let mounts: BTreeSet<i64> = if wanted.is_empty() {
        BTreeSet::new()
    } else {
        sqlx::query_scalar::<_, i64>("SELECT mount_id FROM mount WHERE mount_id = ANY($1)")
            .bind(&wanted)
            .fetch_all(&mut **tx)
            .await?
            .into_iter()
            .collect()
    };
    let mut delta = Delta::default();
    let mut claims = Claims::new();
    insert_archive_items(tx, items, &mounts, &mut delta, &mut claims).await?;
    insert_retrieve_items(tx, items, &mounts, &mut delta, &mut claims).await?;
    for ((mount, op), (aids, copies, rids)) in claims {
        sqlx::query(
            "INSERT INTO mount_claim (mount_id, op, archive_ids, archive_copies, retrieve_ids)
             VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT (mount_id, op) DO UPDATE SET
                 archive_ids = mount_claim.archive_ids || excluded.archive_ids,
                 archive_copies = mount_claim.archive_copies || excluded.archive_copies,
                 retrieve_ids = mount_claim.retrieve_ids || excluded.retrieve_ids",
        )
        .bind(mount)
        .bind(op)
        .bind(&aids)
        .bind(&copies)
        .bind(&rids)
        .execute(&mut **tx)
        .await?;
    }
    for item in items {
        if let StateItem::Marker { vid, cleanup, sleep } = item {
            delta.set_cleanup(vid, *cleanup);
            if let Some(s) = sleep {
                delta.set_sleep(vid, &s.disk_system, s.until);
            }
        }
    }
    delta.apply(tx, now).await?;
    Ok(())
}

async fn insert_mounts(tx: &mut Tx, items: &[&StateItem], now: Timestamp) -> Result<(), Fail> {
    let (mut id, mut t, mut vid, mut pool, mut vo, mut drive, mut lib, mut abandoned) =
        (vec![], vec![], vec![], vec![], vec![], vec![], vec![], vec![]);
    for item in items {
        if let StateItem::Mount { id: m, spec, abandoned: a } = item {
            id.push(checked_i64("mount id", *m)?);
            t.push(spec.mount_type.to_string());
            vid.push(spec.vid.as_str());
            pool.push(spec.tape_pool.as_str());
            vo.push(spec.vo.as_str());
            drive.push(spec.drive.as_str());
            lib.push(spec.logical_library.as_str());
            abandoned.push(*a);
        }
    }
    if id.is_empty() {
        return Ok(());
    }
    sqlx::query(
        "INSERT INTO mount (mount_id, mount_type, vid, tape_pool, vo, drive, logical_library, created_at, heartbeat,
                            abandoned)
         SELECT m, t, v, p, vo, d, l, $9, $9, a
         FROM unnest($1::int8[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::bool[])
              AS u(m, t, v, p, vo, d, l, a)
         ON CONFLICT (mount_id) DO UPDATE SET mount_type = excluded.mount_type, vid = excluded.vid,
             tape_pool = excluded.tape_pool, vo = excluded.vo, drive = excluded.drive,
             logical_library = excluded.logical_library, abandoned = excluded.abandoned",
    )
    .bind(&id)
    .bind(&t)
    .bind(&vid)
    .bind(&pool)
    .bind(&vo)
    .bind(&drive)
    .bind(&lib)
    .bind(&abandoned)
    .bind(now)
    .execute(&mut **tx)
    .await?;
    let top = id.iter().copied().max().unwrap_or(0);
    sqlx::query(
        "SELECT setval('mount_id_seq', greatest($1, (SELECT CASE WHEN is_called THEN last_value ELSE 0 END
                                                    FROM mount_id_seq)))",
    )
    .bind(top)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

async fn insert_archive_items(
    tx: &mut Tx,
    items: &[&StateItem],
    mounts: &BTreeSet<i64>,
    delta: &mut Delta,
    claims: &mut Claims,
) -> Result<(), Fail> {
    let archives: Vec<(&ArchiveRequest, &Vec<JobPlace>)> = items
        .iter()
        .filter_map(|i| if let StateItem::Archive { request, places } = i { Some((request, places)) } else { None })
        .collect();
    if archives.is_empty() {
        return Ok(());
    }
    let requests: Vec<&ArchiveRequest> = archives.iter().map(|(r, _)| *r).collect();
    let stored = super::queueing::insert_archive_rows(tx, &requests).await?;
    let mut c = JobColumns::default();
    for (r, places) in &archives {
        let key = key_of(r);
        if !stored.contains(&key) {
            continue;
        }
        for (pos, j) in r.jobs.iter().enumerate() {
            let place = places.get(pos).copied().unwrap_or(JobPlace::of_archive_status(j.status));
            let row = row_of(place, j.status == ArchiveJobStatus::ToTransfer, mounts);
            if row.qseq.is_some() || row.tail {
                delta.add(archive_kind(r), &j.tape_pool, archive_facts(r));
            }
            if let (Some(m), Some(op)) = (row.mount, row.op) {
                let e = claims.entry((m, op)).or_default();
                e.0.push(key as i64);
                e.1.push(j.copy_nb as i32);
            }
            c.push(key as i64, pos as i32, r, j, row);
        }
    }
    c.insert(tx).await
}

/// Column arrays of archive job rows.
#[derive(Default)]
struct JobColumns {
    key: Vec<i64>,
    copy: Vec<i32>,
    pos: Vec<i32>,
    pool: Vec<String>,
    status: Vec<i16>,
    size: Vec<i64>,
    created: Vec<i64>,
    qseq: Vec<Option<i64>>,
    tail: Vec<bool>,
    mount: Vec<Option<i64>>,
    op: Vec<Option<i64>>,
    rank: Vec<Option<i32>>,
    rwm: Vec<i32>,
    tr: Vec<i32>,
    lm: Vec<Option<i64>>,
    rr: Vec<i32>,
    reasons: Vec<String>,
    w_copy: Vec<Option<i32>>,
    w_vid: Vec<Option<String>>,
    w_fseq: Vec<Option<i64>>,
    w_block: Vec<Option<i64>>,
}

impl JobColumns {
    fn push(&mut self, key: i64, pos: i32, r: &ArchiveRequest, j: &ArchiveJob, row: Row) {
        self.key.push(key);
        self.copy.push(j.copy_nb as i32);
        self.pos.push(pos);
        self.pool.push(j.tape_pool.clone());
        self.status.push(archive_code(j.status));
        self.size.push(r.size as i64);
        self.created.push(r.created_at);
        self.qseq.push(row.qseq);
        self.tail.push(row.tail);
        self.mount.push(row.mount);
        self.op.push(row.op);
        self.rank.push(row.rank);
        self.rwm.push(j.retries.retries_within_mount as i32);
        self.tr.push(j.retries.total_retries as i32);
        self.lm.push(j.retries.last_mount_with_failure.map(|m| m as i64));
        self.rr.push(j.retries.report_retries as i32);
        self.reasons.push(json_strings(&j.failure_reasons));
        self.w_copy.push(j.written.as_ref().map(|w| w.copy_nb as i32));
        self.w_vid.push(j.written.as_ref().map(|w| w.vid.clone()));
        self.w_fseq.push(j.written.as_ref().map(|w| w.fseq as i64));
        self.w_block.push(j.written.as_ref().map(|w| w.block_id as i64));
    }

    async fn insert(self, tx: &mut Tx) -> Result<(), Fail> {
        if self.key.is_empty() {
            return Ok(());
        }
        sqlx::query(
            "INSERT INTO archive_job (archive_file_id, copy_nb, position, tape_pool, status, size, created_at,
                 queue_seq, mount_id, owned_op, owned_rank, retries_within_mount, total_retries,
                 last_mount_with_failure, report_retries, failure_reasons, written_copy_nb, written_vid,
                 written_fseq, written_block_id)
             SELECT k, c, p, pool, st, sz, cr, CASE WHEN tail THEN nextval('queue_seq') ELSE q END, m, op, rk,
                    rwm, tr, lm, rr,
                    CASE WHEN reasons = '[]' THEN '{}'::text[]
                         ELSE ARRAY(SELECT e FROM jsonb_array_elements_text(reasons::jsonb)
                                    WITH ORDINALITY AS x(e, n) ORDER BY n) END,
                    wc, wv, wf, wb
             FROM unnest($1::int8[], $2::int4[], $3::int4[], $4::text[], $5::int2[], $6::int8[], $7::int8[],
                         $8::int8[], $9::bool[], $10::int8[], $11::int8[], $12::int4[], $13::int4[], $14::int4[],
                         $15::int8[], $16::int4[], $17::text[], $18::int4[], $19::text[], $20::int8[], $21::int8[])
                  WITH ORDINALITY AS u(k, c, p, pool, st, sz, cr, q, tail, m, op, rk, rwm, tr, lm, rr, reasons,
                                       wc, wv, wf, wb, ord)
             ORDER BY ord",
        )
        .bind(&self.key)
        .bind(&self.copy)
        .bind(&self.pos)
        .bind(&self.pool)
        .bind(&self.status)
        .bind(&self.size)
        .bind(&self.created)
        .bind(&self.qseq)
        .bind(&self.tail)
        .bind(&self.mount)
        .bind(&self.op)
        .bind(&self.rank)
        .bind(&self.rwm)
        .bind(&self.tr)
        .bind(&self.lm)
        .bind(&self.rr)
        .bind(&self.reasons)
        .bind(&self.w_copy)
        .bind(&self.w_vid)
        .bind(&self.w_fseq)
        .bind(&self.w_block)
        .execute(&mut **tx)
        .await?;
        Ok(())
    }
}

async fn insert_retrieve_items(
    tx: &mut Tx,
    items: &[&StateItem],
    mounts: &BTreeSet<i64>,
    delta: &mut Delta,
    claims: &mut Claims,
) -> Result<(), Fail> {
    let mut rows: Vec<(&RetrieveRequest, Row)> = Vec::new();
    for item in items {
        if let StateItem::Retrieve { request, place } = item {
            let row = row_of(*place, request.status == RetrieveStatus::ToTransfer, mounts);
            rows.push((request, row));
        }
    }
    if rows.is_empty() {
        return Ok(());
    }
    let mut v = RetrieveColumns::default();
    for (r, row) in &rows {
        v.push(r, *row)?;
    }
    let inserted: BTreeSet<i64> = v.insert(tx).await?.into_iter().collect();
    for (r, row) in rows {
        if !inserted.contains(&(r.request_id as i64)) {
            continue;
        }
        if row.qseq.is_some() || row.tail {
            let facts = JobFacts {
                size: r.size,
                created_at: r.created_at,
                priority: r.policy.priority,
                min_age: r.policy.min_request_age,
                policy: &r.policy.name,
            };
            delta.add(KIND_RETRIEVE, &r.active_vid, facts);
        }
        if let (Some(m), Some(op)) = (row.mount, row.op) {
            claims.entry((m, op)).or_default().2.push(r.request_id as i64);
        }
    }
    Ok(())
}

/// Column arrays of retrieve request rows (the copies as one JSON array per row).
#[derive(Default)]
struct RetrieveColumns {
    id: Vec<i64>,
    afid: Vec<i64>,
    instance: Vec<String>,
    rname: Vec<String>,
    rgroup: Vec<String>,
    size: Vec<i64>,
    dst: Vec<String>,
    rurl: Vec<Option<String>>,
    eurl: Vec<Option<String>>,
    created: Vec<i64>,
    activity: Vec<Option<String>>,
    verify: Vec<bool>,
    disk_system: Vec<Option<String>>,
    pname: Vec<String>,
    prio: Vec<i64>,
    age: Vec<i64>,
    copies: Vec<String>,
    active_vid: Vec<String>,
    active_copy: Vec<i32>,
    active_fseq: Vec<i64>,
    status: Vec<i16>,
    reasons: Vec<String>,
    qseq: Vec<Option<i64>>,
    tail: Vec<bool>,
    mount: Vec<Option<i64>>,
    op: Vec<Option<i64>>,
    rank: Vec<Option<i32>>,
    link: Vec<Option<String>>,
    link_vid: Vec<Option<String>>,
}

impl RetrieveColumns {
    fn push(&mut self, r: &RetrieveRequest, row: Row) -> Result<(), Fail> {
        self.id.push(checked_i64("request id", r.request_id)?);
        self.afid.push(checked_i64("archive file id", r.archive_file_id)?);
        self.instance.push(r.disk_instance.clone());
        self.rname.push(r.requester.name.clone());
        self.rgroup.push(r.requester.group.clone());
        self.size.push(checked_i64("size", r.size)?);
        self.dst.push(r.dst_url.clone());
        self.rurl.push(r.report_url.clone());
        self.eurl.push(r.error_report_url.clone());
        self.created.push(r.created_at);
        self.activity.push(r.activity.clone());
        self.verify.push(r.verify_only);
        self.disk_system.push(r.disk_system.clone());
        self.pname.push(r.policy.name.clone());
        self.prio.push(r.policy.priority as i64);
        self.age.push(r.policy.min_request_age as i64);
        let copies: Vec<serde_json::Value> = r
            .copies
            .iter()
            .map(|c| {
                serde_json::json!([
                    c.copy_nb,
                    c.vid,
                    c.fseq as i64,
                    c.block_id as i64,
                    c.retries.retries_within_mount,
                    c.retries.total_retries,
                    c.retries.last_mount_with_failure.map(|m| m as i64),
                    c.retries.report_retries
                ])
            })
            .collect();
        self.copies.push(serde_json::Value::Array(copies).to_string());
        self.active_vid.push(r.active_vid.clone());
        self.active_copy.push(active_copy_nb(r) as i32);
        self.active_fseq.push(active_fseq(r) as i64);
        self.status.push(retrieve_code(r.status));
        self.reasons.push(json_strings(&r.failure_reasons));
        self.qseq.push(row.qseq);
        self.tail.push(row.tail);
        self.mount.push(row.mount);
        self.op.push(row.op);
        self.rank.push(row.rank);
        self.link.push(r.repack.as_ref().map(|l| serde_json::to_string(l).unwrap_or_default()));
        self.link_vid.push(r.repack.as_ref().map(|l| l.vid.clone()));
        Ok(())
    }

    /// Inserts the rows not stored yet; returns the ids inserted.
    async fn insert(self, tx: &mut Tx) -> Result<Vec<i64>, Fail> {
        let ids = sqlx::query_scalar(
            "WITH u AS (
                 SELECT * FROM unnest($1::int8[], $2::int8[], $3::text[], $4::text[], $5::text[], $6::int8[],
                     $7::text[], $8::text[], $9::text[], $10::int8[], $11::text[], $12::bool[], $13::text[],
                     $14::text[], $15::int8[], $16::int8[], $17::text[], $18::text[], $19::int4[], $20::int8[],
                     $21::int2[], $22::text[], $23::int8[], $24::bool[], $25::int8[], $26::int8[], $27::int4[],
                     $28::text[], $29::text[])
                     WITH ORDINALITY AS u(id, afid, di, rn, rg, sz, dst, rurl, eurl, cr, act, vo, ds, pn, prio,
                                          age, copies, avid, acopy, afseq, st, reasons, q, tail, m, op, rk, link,
                                          lvid, ord)
             )
             INSERT INTO retrieve_request (request_id, archive_file_id, disk_instance, requester_name,
                 requester_group, size, dst_url, report_url, error_report_url, created_at, activity, verify_only,
                 disk_system, policy_name, priority, min_request_age, copy_nbs, vids, fseqs, block_ids,
                 retries_within_mount, total_retries, last_mount_with_failure, report_retries, active_vid,
                 active_copy_nb, active_fseq, status, failure_reasons, queue_seq, mount_id, owned_op, owned_rank,
                 repack, repack_vid)
             SELECT id, afid, di, rn, rg, sz, dst, rurl, eurl, cr, act, vo, ds, pn, prio, age,
                 ARRAY(SELECT (e->>0)::int4 FROM jsonb_array_elements(copies::jsonb) WITH ORDINALITY x(e, n) ORDER BY n),
                 ARRAY(SELECT e->>1 FROM jsonb_array_elements(copies::jsonb) WITH ORDINALITY x(e, n) ORDER BY n),
                 ARRAY(SELECT (e->>2)::int8 FROM jsonb_array_elements(copies::jsonb) WITH ORDINALITY x(e, n) ORDER BY n),
                 ARRAY(SELECT (e->>3)::int8 FROM jsonb_array_elements(copies::jsonb) WITH ORDINALITY x(e, n) ORDER BY n),
                 ARRAY(SELECT (e->>4)::int4 FROM jsonb_array_elements(copies::jsonb) WITH ORDINALITY x(e, n) ORDER BY n),
                 ARRAY(SELECT (e->>5)::int4 FROM jsonb_array_elements(copies::jsonb) WITH ORDINALITY x(e, n) ORDER BY n),
                 ARRAY(SELECT (e->>6)::int8 FROM jsonb_array_elements(copies::jsonb) WITH ORDINALITY x(e, n) ORDER BY n),
                 ARRAY(SELECT (e->>7)::int4 FROM jsonb_array_elements(copies::jsonb) WITH ORDINALITY x(e, n) ORDER BY n),
                 avid, acopy, afseq, st,
                 ARRAY(SELECT e FROM jsonb_array_elements_text(reasons::jsonb) WITH ORDINALITY x(e, n) ORDER BY n),
                 CASE WHEN tail THEN nextval('queue_seq') ELSE q END, m, op, rk, link::json, lvid
             FROM u ORDER BY ord
             ON CONFLICT (request_id) DO NOTHING
             RETURNING request_id",
        )
        .bind(&self.id)
        .bind(&self.afid)
        .bind(&self.instance)
        .bind(&self.rname)
        .bind(&self.rgroup)
        .bind(&self.size)
        .bind(&self.dst)
        .bind(&self.rurl)
        .bind(&self.eurl)
        .bind(&self.created)
        .bind(&self.activity)
        .bind(&self.verify)
        .bind(&self.disk_system)
        .bind(&self.pname)
        .bind(&self.prio)
        .bind(&self.age)
        .bind(&self.copies)
        .bind(&self.active_vid)
        .bind(&self.active_copy)
        .bind(&self.active_fseq)
        .bind(&self.status)
        .bind(&self.reasons)
        .bind(&self.qseq)
        .bind(&self.tail)
        .bind(&self.mount)
        .bind(&self.op)
        .bind(&self.rank)
        .bind(&self.link)
        .bind(&self.link_vid)
        .fetch_all(&mut **tx)
        .await?;
        Ok(ids)
    }
}
