//! Claims: taking jobs from the front of a queue for a mount (`pop_jobs`, with the batch cut in
//! SQL), claiming named jobs (`claim_jobs`), and the `mount_claim` record of what a claim took.

use super::*;

/// The mount jobs of the rows a claim returned (`aj_cols!, ar_cols!, rank`), with the
/// siblings of multi-copy requests read in one more query; records each job in `claim` and its
/// removal from its queue in `delta`.
pub(super) async fn archive_jobs_of_claim(
    tx: &mut Tx,
    rows: &[PgRow],
    claim: &mut Claim,
    delta: &mut Delta,
) -> Result<Vec<(i32, MountJob)>, Fail> {
    let Some(first) = rows.first() else { return Ok(vec![]) };
    let (aj, ar) = (columns_at(first, &AJ_NAMES)?, columns_at(first, &AR_NAMES)?);
    let rank = ar + AR_NAMES.len();
    if first.columns().get(rank).map(|c| c.name()) != Some("rank") {
        return Err(Fail::Fatal(Error::internal("claim result has no rank after the request columns")));
    }
    let mut claimed = Vec::with_capacity(rows.len());
    let mut multi: Vec<i64> = Vec::new();
    for row in rows {
        let request = archive_request_at(row, ar)?;
        let (job, _, loc) = archive_job_at(row, aj)?;
        let key = key_of(&request) as i64;
        if row.try_get::<i32, _>(ar + 14)? > 1 {
            multi.push(key);
        }
        claim.archive(key, job.copy_nb, loc.owned_op);
        delta.remove(archive_kind(&request), &job.tape_pool, archive_facts(&request));
        claimed.push((row.try_get::<i32, _>(rank)?, request, job));
    }
    let mut siblings: HashMap<u64, Vec<ArchiveJob>> = HashMap::new();
    if !multi.is_empty() {
        multi.sort_unstable();
        multi.dedup();
        let jobs = sqlx::query(concat!(
            "SELECT ",
            aj_cols!(),
            " FROM archive_job j WHERE j.archive_file_id = ANY($1) ORDER BY j.archive_file_id, j.position"
        ))
        .bind(&multi)
        .fetch_all(&mut **tx)
        .await?;
        if let Some(first) = jobs.first() {
            let aj = columns_at(first, &AJ_NAMES)?;
            for row in &jobs {
                let afid = row.try_get::<i64, _>(aj)? as u64;
                siblings.entry(afid).or_default().push(archive_job_at(row, aj)?.0);
            }
        }
    }
    Ok(claimed
        .into_iter()
        .map(|(rank, mut request, job)| {
            let copy_nb = job.copy_nb;
            request.jobs = match siblings.get(&key_of(&request)) {
                Some(all) => all.clone(),
                None => vec![job],
            };
            (rank, MountJob::Archive { request, copy_nb })
        })
        .collect())
}

/// The jobs one claim gave a mount, recorded in `mount_claim` (see migration 4) so that the
/// mount's holdings can be found when it ends or dies.
#[derive(Default)]
pub(super) struct Claim {
    pub(super) op: Option<i64>,
    pub(super) archive_ids: Vec<i64>,
    pub(super) archive_copies: Vec<i32>,
    pub(super) retrieve_ids: Vec<i64>,
}

impl Claim {
    pub(super) fn archive(&mut self, key: i64, copy_nb: u32, op: Option<i64>) {
        self.op = self.op.or(op);
        self.archive_ids.push(key);
        self.archive_copies.push(copy_nb as i32);
    }

    pub(super) fn retrieve(&mut self, st: &RetrieveState) -> Result<(), Fail> {
        self.op = self.op.or(st.loc.owned_op);
        self.retrieve_ids.push(checked_i64("request id", st.request.request_id)?);
        Ok(())
    }

    pub(super) async fn record(self, tx: &mut Tx, mount: MountId) -> Result<(), Fail> {
        let Some(op) = self.op else { return Ok(()) };
        sqlx::query(
            "INSERT INTO mount_claim (mount_id, op, archive_ids, archive_copies, retrieve_ids)
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(mount as i64)
        .bind(op)
        .bind(&self.archive_ids)
        .bind(&self.archive_copies)
        .bind(&self.retrieve_ids)
        .execute(&mut **tx)
        .await?;
        Ok(())
    }
}

/// The claim of the next part of an archive queue's front, for the queue kind whose jobs match
/// `$pred` (the sign of the key: user archives `>= 0`, repack archives `< 0`, migration 8).
/// Parameters: `$1` the pool, `$2` the rows locked at most, `$3` the bytes left in the batch,
/// `$4` the mount, `$5` whether the first row is taken whatever its size (the batch's first
/// part), `$6` the rank of the part's first row less one, `$7` the claim's op (NULL: a new one).
macro_rules! archive_pop_sql {
    ($pred:literal) => {
        concat!(
            "WITH cand AS (
                             SELECT ctid AS row_tid, size, queue_seq FROM archive_job
                             WHERE tape_pool = $1 AND queue_seq IS NOT NULL AND ",
            $pred,
            "
                             ORDER BY queue_seq
                             LIMIT $2
                             FOR UPDATE SKIP LOCKED
                         ), win AS (
                             SELECT row_tid, row_number() OVER w AS rn, sum(size) OVER w AS cum
                             FROM cand WINDOW w AS (ORDER BY queue_seq)
                         ), op AS (SELECT coalesce($7::int8, nextval('op_seq')) AS op)
                         UPDATE archive_job j
                         SET queue_seq = NULL, mount_id = $4, owned_op = op.op, owned_rank = (win.rn + $6)::int4,
                             times_claimed = j.times_claimed + 1
                         FROM win, op, archive_request r
                         WHERE j.ctid = win.row_tid
                           AND r.archive_file_id = j.archive_file_id AND (($5 AND win.rn = 1) OR win.cum <= $3)
                         RETURNING ",
            aj_cols!(),
            ", ",
            ar_cols!(),
            ", (win.rn + $6)::int4 AS rank, win.cum::int8 AS cum, op.op AS op"
        )
    };
}

/// How many rows a part of a claim locks: the files that `bytes` holds at the queue's mean size
/// (`queued_files`, `queued_bytes` from its summary), with a margin, at least `floor`, at most
/// `files`. A claim takes its batch in parts until a part ends short (the budget cut it, or the
/// queue ran out), so a low guess costs one more statement, never a wrong batch; a high one
/// locks rows the batch does not take, held until the claim commits.
fn part_limit(files: u64, bytes: u64, queued_files: i64, queued_bytes: i64, floor: u64) -> u64 {
    let guess = match (u64::try_from(queued_files), u64::try_from(queued_bytes)) {
        (Ok(f), Ok(b)) if f > 0 && b > 0 => {
            let fit = u128::from(bytes) * u128::from(f) / u128::from(b);
            u64::try_from(fit + fit / 4 + 8).unwrap_or(u64::MAX)
        }
        _ => 1024,
    };
    guess.max(floor).clamp(1, files.max(1))
}

impl PgSchedulerDb {
    pub(super) async fn pop_once(
        &self,
        mount: MountId,
        max_files: u64,
        max_bytes: u64,
        now: Timestamp,
    ) -> Result<Vec<MountJob>, Fail> {
        let mut tx = self.begin().await?;
        let (mount_type, vid, pool) = Self::touch_mount(&mut tx, mount, now).await?;
        let (kind, queue) = match mount_type {
            MountType::Retrieve => (KIND_RETRIEVE, &vid),
            MountType::ArchiveForRepack => (KIND_REPACK, &pool),
            _ => (KIND_ARCHIVE, &pool),
        };
        // A queue with nothing queued (no summary row, or no file) is answered without reading its
        // index, where the jobs just taken still have entries until they are vacuumed. The
        // summary is not locked: claims of one queue run side by side, each passing over the
        // rows the others hold (SKIP LOCKED), and only wait for each other to update it at the end.
        let (files, bytes): (i64, i64) = sqlx::query_as(
            "SELECT files, least(bytes, 9223372036854775807)::int8 FROM queue_summary \
             WHERE kind = $1 AND container = $2",
        )
        .bind(kind)
        .bind(queue)
        .fetch_optional(&mut *tx)
        .await?
        .unwrap_or((0, 0));
        if files <= 0 {
            Self::commit(tx).await?;
            return Ok(Vec::new());
        }
        // The claim must walk its queue index in order and stop after `limit` rows. Without
        // statistics (a new table, no autovacuum yet) the planner may instead fetch every queued
        // row of the queue and sort it, which is as slow as the queue is long: leave it only the
        // ordered index scan, for this transaction.
        sqlx::raw_sql("SET LOCAL enable_bitmapscan = off; SET LOCAL enable_seqscan = off").execute(&mut *tx).await?;
        let max_bytes = max_bytes.min(i64::MAX as u64);
        // The batch is taken in parts (see `part_limit`): each part locks the next rows of the
        // queue's front and takes those that fit what is left of the budget.
        let (mut taken, mut used, mut op, mut limit) = (0u64, 0u64, None::<i64>, 0u64);
        let mut delta = Delta::default();
        let mut claim = Claim::default();
        let mut jobs: Vec<(i32, MountJob)> = Vec::new();
        // The first row is taken whatever its size, as the objectstore's cut does.
        while taken < max_files && (taken == 0 || used < max_bytes) {
            let left = max_bytes.saturating_sub(used);
            limit = part_limit(max_files - taken, left, files, bytes, limit.saturating_mul(2));
            let part = match mount_type {
                MountType::Retrieve => sqlx::query(concat!(
                    "WITH cand AS (
                         SELECT request_id, size, active_fseq, queue_seq FROM retrieve_request
                         WHERE active_vid = $1 AND queue_seq IS NOT NULL
                         ORDER BY active_fseq, queue_seq
                         LIMIT $2
                         FOR UPDATE SKIP LOCKED
                     ), win AS (
                         SELECT request_id, row_number() OVER w AS rn, sum(size) OVER w AS cum
                         FROM cand WINDOW w AS (ORDER BY active_fseq, queue_seq)
                     ), op AS (SELECT coalesce($7::int8, nextval('op_seq')) AS op)
                     UPDATE retrieve_request r
                     SET queue_seq = NULL, mount_id = $4, owned_op = op.op, owned_rank = (win.rn + $6)::int4,
                         times_claimed = r.times_claimed + 1
                     FROM win, op
                     WHERE r.request_id = win.request_id AND (($5 AND win.rn = 1) OR win.cum <= $3)
                     RETURNING ",
                    rr_cols!(),
                    ", (win.rn + $6)::int4 AS rank, win.cum::int8 AS cum, op.op AS op"
                )),
                MountType::ArchiveForRepack => sqlx::query(archive_pop_sql!("archive_file_id < 0")),
                _ => sqlx::query(archive_pop_sql!("archive_file_id >= 0")),
            };
            let rows = part
                .bind(queue)
                .bind(limit.min(i64::MAX as u64) as i64)
                .bind(left as i64)
                .bind(mount as i64)
                .bind(taken == 0)
                .bind(taken.min(i32::MAX as u64) as i32)
                .bind(op)
                .fetch_all(&mut *tx)
                .await?;
            let Some(first) = rows.first() else { break };
            op = Some(first.try_get("op")?);
            // The part's bytes: the cumulated size at its last row (rows come in no set order).
            let mut part_bytes = 0i64;
            for row in &rows {
                part_bytes = part_bytes.max(row.try_get("cum")?);
            }
            used = used.saturating_add(u64::try_from(part_bytes).unwrap_or(0));
            if mount_type == MountType::Retrieve {
                for row in &rows {
                    let st = retrieve_of(row)?;
                    claim.retrieve(&st)?;
                    delta.remove(KIND_RETRIEVE, &vid, st.facts());
                    jobs.push((row.try_get("rank")?, MountJob::Retrieve { request: st.request }));
                }
            } else {
                jobs.extend(archive_jobs_of_claim(&mut tx, &rows, &mut claim, &mut delta).await?);
            }
            taken += rows.len() as u64;
            if (rows.len() as u64) < limit {
                // The budget cut this part, or the queue has nothing more to give.
                break;
            }
        }
        claim.record(&mut tx, mount).await?;
        delta.apply(&mut tx, now).await?;
        Self::commit(tx).await?;
        jobs.sort_by_key(|(rank, _)| *rank);
        Ok(jobs.into_iter().map(|(_, j)| j).collect())
    }

    pub(super) async fn claim_once(
        &self,
        mount: MountId,
        ids: &[JobId],
        now: Timestamp,
    ) -> Result<Vec<MountJob>, Fail> {
        let mut tx = self.begin().await?;
        // Named jobs are found by key. Left a choice, the planner hashed a sequential scan of
        // the whole table into the join (a profile of the bridge's dual-write claims, where
        // PostgreSQL claims what Redis popped, showed it): 2.5x the time of a pop of as many jobs.
        sqlx::raw_sql("SET LOCAL enable_seqscan = off").execute(&mut *tx).await?;
        Self::touch_mount(&mut tx, mount, now).await?;
        let mut seen = BTreeSet::new();
        let (mut a_ids, mut a_copies, mut a_ord, mut r_ids, mut r_ord) = (vec![], vec![], vec![], vec![], vec![]);
        for (i, id) in ids.iter().enumerate() {
            let key = match id.request {
                RequestId::Retrieve(r) => (1u8, r, 0),
                other => (0u8, archive_key(other).expect("an archive id"), id.copy_nb),
            };
            if !seen.insert(key) {
                continue;
            }
            match id.request {
                RequestId::Retrieve(r) => {
                    r_ids.push(r as i64);
                    r_ord.push(i as i32);
                }
                _ => {
                    a_ids.push(key.1 as i64);
                    a_copies.push(id.copy_nb as i32);
                    a_ord.push(i as i32);
                }
            }
        }
        let op: i64 = sqlx::query_scalar("SELECT nextval('op_seq')").fetch_one(&mut *tx).await?;
        let mut delta = Delta::default();
        let mut claim = Claim::default();
        let mut jobs: Vec<(i32, MountJob)> = Vec::new();
        if !a_ids.is_empty() {
            let rows = sqlx::query(concat!(
                "WITH want AS (
                     SELECT * FROM unnest($1::int8[], $2::int4[], $3::int4[]) AS w(afid, copy_nb, ord)
                 ), cand AS (
                     SELECT j.archive_file_id, j.copy_nb, want.ord FROM archive_job j
                     JOIN want ON j.archive_file_id = want.afid AND j.copy_nb = want.copy_nb
                     WHERE j.queue_seq IS NOT NULL AND j.status = 0
                     ORDER BY j.archive_file_id, j.copy_nb
                     FOR UPDATE OF j SKIP LOCKED
                 )
                 UPDATE archive_job j
                 SET queue_seq = NULL, mount_id = $4, owned_op = $5, owned_rank = cand.ord,
                     times_claimed = j.times_claimed + 1
                 FROM cand, archive_request r
                 WHERE j.archive_file_id = cand.archive_file_id AND j.copy_nb = cand.copy_nb
                   AND r.archive_file_id = j.archive_file_id
                 RETURNING ",
                aj_cols!(),
                ", ",
                ar_cols!(),
                ", cand.ord AS rank"
            ))
            .bind(&a_ids)
            .bind(&a_copies)
            .bind(&a_ord)
            .bind(mount as i64)
            .bind(op)
            .fetch_all(&mut *tx)
            .await?;
            jobs.extend(archive_jobs_of_claim(&mut tx, &rows, &mut claim, &mut delta).await?);
        }
        if !r_ids.is_empty() {
            let rows = sqlx::query(concat!(
                "WITH want AS (
                     SELECT * FROM unnest($1::int8[], $2::int4[]) AS w(id, ord)
                 ), cand AS (
                     SELECT r.request_id, want.ord FROM retrieve_request r
                     JOIN want ON r.request_id = want.id
                     WHERE r.queue_seq IS NOT NULL AND r.status = 0
                     ORDER BY r.request_id
                     FOR UPDATE OF r SKIP LOCKED
                 )
                 UPDATE retrieve_request r
                 SET queue_seq = NULL, mount_id = $3, owned_op = $4, owned_rank = cand.ord,
                     times_claimed = r.times_claimed + 1
                 FROM cand
                 WHERE r.request_id = cand.request_id
                 RETURNING ",
                rr_cols!(),
                ", cand.ord AS rank"
            ))
            .bind(&r_ids)
            .bind(&r_ord)
            .bind(mount as i64)
            .bind(op)
            .fetch_all(&mut *tx)
            .await?;
            for row in &rows {
                let st = retrieve_of(row)?;
                claim.retrieve(&st)?;
                delta.remove(KIND_RETRIEVE, &st.request.active_vid, st.facts());
                jobs.push((row.try_get("rank")?, MountJob::Retrieve { request: st.request }));
            }
        }
        claim.record(&mut tx, mount).await?;
        delta.apply(&mut tx, now).await?;
        Self::commit(tx).await?;
        jobs.sort_by_key(|(rank, _)| *rank);
        Ok(jobs.into_iter().map(|(_, j)| j).collect())
    }
}
