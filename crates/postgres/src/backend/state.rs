//! The full state as [`StateItem`]s (`tapesched_scheduler::state`): the keyed export, reads by
//! key (a verifier's re-check) and the places of jobs from their rows.
//!
//! The export pages with keyset conditions on the primary keys, in one repeatable-read
//! read-only transaction per page (a request and its jobs are read from one snapshot): mounts by
//! id, repack requests by VID, user archive requests by key (>= 0), repack archive requests by
//! subrequest id (key -(id + 1), so descending keys), retrieve requests by id, markers by VID.
//! Imports and deletions are in `state_import`.

use sqlx::AssertSqlSafe;
use tapesched_scheduler::state::{JobPlace, StateItem, StateKey};

use super::*;

/// Which rows of a kind to read: those after a key (at most `limit`), or those of some keys.
pub(super) enum Pick<T> {
    After(Option<T>, i64),
    Keys(Vec<T>),
}

impl PgSchedulerDb {
    /// Up to `limit` items after `after`, in key order.
    pub(super) async fn export_state_once(
        &self,
        after: Option<&StateKey>,
        limit: usize,
    ) -> Result<Vec<StateItem>, Fail> {
        let mut tx = self.begin().await?;
        sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY").execute(&mut *tx).await?;
        let mut out: Vec<StateItem> = Vec::new();
        // Kinds in key order; each starts after `after` if `after` is of that kind, from its
        // beginning if `after` is of an earlier kind, and is skipped if of a later one.
        let rank = |k: &StateKey| match k {
            StateKey::Mount(_) => 0,
            StateKey::Repack(_) => 1,
            StateKey::Archive(_) => 2,
            StateKey::RepackArchive(_) => 3,
            StateKey::Retrieve(_) => 4,
            StateKey::Marker(_) => 5,
        };
        let start = after.map_or(0, rank);
        for kind in start..6 {
            let left = limit.saturating_sub(out.len()) as i64;
            if left == 0 {
                break;
            }
            let from = after.filter(|a| rank(a) == kind);
            match kind {
                0 => {
                    let a = from.map(|k| if let StateKey::Mount(m) = k { *m as i64 } else { 0 });
                    out.extend(read_mounts(&mut tx, Pick::After(a, left)).await?)
                }
                1 => {
                    let a = from.map(|k| if let StateKey::Repack(v) = k { v.clone() } else { String::new() });
                    out.extend(read_repacks(&mut tx, Pick::After(a, left)).await?)
                }
                2 => {
                    let a = from.map(|k| if let StateKey::Archive(a) = k { *a as i64 } else { 0 });
                    out.extend(read_archives(&mut tx, Pick::After(a, left), false).await?)
                }
                3 => {
                    let a = from.map(|k| if let StateKey::RepackArchive(s) = k { *s as i64 } else { 0 });
                    out.extend(read_archives(&mut tx, Pick::After(a, left), true).await?)
                }
                4 => {
                    let a = from.map(|k| if let StateKey::Retrieve(r) = k { *r as i64 } else { 0 });
                    out.extend(read_retrieves(&mut tx, Pick::After(a, left)).await?)
                }
                _ => {
                    let a = from.map(|k| if let StateKey::Marker(v) = k { v.clone() } else { String::new() });
                    out.extend(read_markers(&mut tx, Pick::After(a, left)).await?)
                }
            }
        }
        tx.rollback().await?;
        Ok(out)
    }

    /// The stored items of `keys`, in key order.
    pub(super) async fn read_state_once(&self, keys: &[StateKey]) -> Result<Vec<StateItem>, Fail> {
        let mut tx = self.begin().await?;
        sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY").execute(&mut *tx).await?;
        let out = read_keys(&mut tx, keys).await?;
        tx.rollback().await?;
        Ok(out)
    }
}

/// The stored items of `keys` in the transaction `tx`, in key order.
pub(super) async fn read_keys(tx: &mut Tx, keys: &[StateKey]) -> Result<Vec<StateItem>, Fail> {
    let (mut mounts, mut repacks, mut archives, mut rarchives, mut retrieves, mut markers) =
        (vec![], vec![], vec![], vec![], vec![], vec![]);
    for k in keys {
        match k {
            StateKey::Mount(m) => mounts.push(*m as i64),
            StateKey::Repack(v) => repacks.push(v.clone()),
            StateKey::Archive(a) => archives.push(*a as i64),
            StateKey::RepackArchive(s) => rarchives.push(*s as i64),
            StateKey::Retrieve(r) => retrieves.push(*r as i64),
            StateKey::Marker(v) => markers.push(v.clone()),
        }
    }
    let mut out = Vec::new();
    if !mounts.is_empty() {
        out.extend(read_mounts(tx, Pick::Keys(mounts)).await?);
    }
    if !repacks.is_empty() {
        out.extend(read_repacks(tx, Pick::Keys(repacks)).await?);
    }
    if !archives.is_empty() {
        out.extend(read_archives(tx, Pick::Keys(archives), false).await?);
    }
    if !rarchives.is_empty() {
        out.extend(read_archives(tx, Pick::Keys(rarchives), true).await?);
    }
    if !retrieves.is_empty() {
        out.extend(read_retrieves(tx, Pick::Keys(retrieves)).await?);
    }
    if !markers.is_empty() {
        out.extend(read_markers(tx, Pick::Keys(markers)).await?);
    }
    tapesched_scheduler::state::sort_items(&mut out);
    Ok(out)
}

/// The place of a job from its location and status.
pub(super) fn place_of(loc: &Loc, idle: JobPlace) -> JobPlace {
    match (loc.queue_seq, loc.mount_id) {
        (Some(position), _) => JobPlace::Queued { position },
        (None, Some(mount)) => {
            JobPlace::Held { mount, order: (loc.owned_op.unwrap_or(0), loc.owned_rank.map_or(0, i64::from)) }
        }
        (None, None) => idle,
    }
}

async fn read_mounts(tx: &mut Tx, pick: Pick<i64>) -> Result<Vec<StateItem>, Fail> {
    const COLS: &str = "SELECT mount_id, mount_type, vid, tape_pool, vo, drive, logical_library, abandoned FROM mount";
    let rows = match pick {
        Pick::After(a, n) => {
            sqlx::query(AssertSqlSafe(format!("{COLS} WHERE mount_id > $1 ORDER BY mount_id LIMIT $2")))
                .bind(a.unwrap_or(i64::MIN))
                .bind(n)
                .fetch_all(&mut **tx)
                .await?
        }
        Pick::Keys(ids) => {
            sqlx::query(AssertSqlSafe(format!("{COLS} WHERE mount_id = ANY($1) ORDER BY mount_id")))
                .bind(ids)
                .fetch_all(&mut **tx)
                .await?
        }
    };
    rows.iter()
        .map(|row| {
            let t: String = row.try_get("mount_type")?;
            Ok(StateItem::Mount {
                id: row.try_get::<i64, _>("mount_id")? as u64,
                spec: MountSpec {
                    mount_type: t.parse::<MountType>().map_err(|e| Error::internal(e.message))?,
                    vid: row.try_get("vid")?,
                    tape_pool: row.try_get("tape_pool")?,
                    vo: row.try_get("vo")?,
                    drive: row.try_get("drive")?,
                    logical_library: row.try_get("logical_library")?,
                },
                abandoned: row.try_get("abandoned")?,
            })
        })
        .collect()
}

async fn read_repacks(tx: &mut Tx, pick: Pick<String>) -> Result<Vec<StateItem>, Fail> {
    let values: Vec<Json<RepackRequest>> = match pick {
        Pick::After(a, n) => {
            sqlx::query_scalar(
                "SELECT value FROM repack_request WHERE $1::text IS NULL OR vid > $1 ORDER BY vid LIMIT $2",
            )
            .bind(a)
            .bind(n)
            .fetch_all(&mut **tx)
            .await?
        }
        Pick::Keys(vids) => {
            sqlx::query_scalar("SELECT value FROM repack_request WHERE vid = ANY($1) ORDER BY vid")
                .bind(vids)
                .fetch_all(&mut **tx)
                .await?
        }
    };
    Ok(values.into_iter().map(|v| StateItem::Repack(v.0)).collect())
}

/// User archive requests (`repack` false, keyed by archive file id) or repack archive requests
/// (`repack` true, keyed by subrequest id), with their jobs.
async fn read_archives(tx: &mut Tx, pick: Pick<i64>, repack: bool) -> Result<Vec<StateItem>, Fail> {
    let head = concat!("SELECT ", ar_cols!(), " FROM archive_request r");
    let page = matches!(pick, Pick::After(..));
    let reqs = match (pick, repack) {
        (Pick::After(a, n), false) => {
            sqlx::query(AssertSqlSafe(format!(
                "{head} WHERE r.archive_file_id > $1 ORDER BY r.archive_file_id LIMIT $2"
            )))
            .bind(a.unwrap_or(-1))
            .bind(n)
            .fetch_all(&mut **tx)
            .await?
        }
        // Subrequest id s is stored as -(s + 1): ascending ids are descending keys.
        (Pick::After(a, n), true) => {
            sqlx::query(AssertSqlSafe(format!(
                "{head} WHERE r.archive_file_id < $1 ORDER BY r.archive_file_id DESC LIMIT $2"
            )))
            .bind(a.map_or(0, |s| -(s + 1)))
            .bind(n)
            .fetch_all(&mut **tx)
            .await?
        }
        (Pick::Keys(ids), repack) => {
            let keys: Vec<i64> = ids.iter().map(|i| if repack { -(i + 1) } else { *i }).collect();
            sqlx::query(AssertSqlSafe(format!("{head} WHERE r.archive_file_id = ANY($1)")))
                .bind(keys)
                .fetch_all(&mut **tx)
                .await?
        }
    };
    let Some(first) = reqs.first() else { return Ok(vec![]) };
    let ar = columns_at(first, &AR_NAMES)?;
    let mut keys = Vec::with_capacity(reqs.len());
    let mut states: Vec<(ArchiveRequest, Vec<JobPlace>)> = Vec::with_capacity(reqs.len());
    let mut index: HashMap<i64, usize> = HashMap::with_capacity(reqs.len());
    for row in &reqs {
        let key: i64 = row.try_get(ar)?;
        index.insert(key, states.len());
        keys.push(key);
        states.push((archive_request_at(row, ar)?, vec![]));
    }
    let jobs = if page {
        // A page holds every request between its first and last key: their jobs are a range of
        // the primary key. (Given the page's 10 000 keys as a list instead, the planner scanned
        // the whole table for them, every page: 25 ms a page at 200 000 jobs against 2.5 ms.)
        let (lo, hi) = (keys.iter().min().copied().unwrap_or(0), keys.iter().max().copied().unwrap_or(0));
        sqlx::query(concat!(
            "SELECT ",
            aj_cols!(),
            " FROM archive_job j WHERE j.archive_file_id BETWEEN $1 AND $2 ORDER BY j.archive_file_id, j.position"
        ))
        .bind(lo)
        .bind(hi)
        .fetch_all(&mut **tx)
        .await?
    } else {
        sqlx::query(concat!(
            "SELECT ",
            aj_cols!(),
            " FROM archive_job j WHERE j.archive_file_id = ANY($1) ORDER BY j.archive_file_id, j.position"
        ))
        .bind(&keys)
        .fetch_all(&mut **tx)
        .await?
    };
    if let Some(first) = jobs.first() {
        let aj = columns_at(first, &AJ_NAMES)?;
        for row in &jobs {
            let key: i64 = row.try_get(aj)?;
            let (job, _, loc) = archive_job_at(row, aj)?;
            if let Some(&i) = index.get(&key) {
                let place = place_of(&loc, JobPlace::of_archive_status(job.status));
                states[i].0.jobs.push(job);
                states[i].1.push(place);
            }
        }
    }
    let mut out: Vec<StateItem> =
        states.into_iter().map(|(request, places)| StateItem::Archive { request, places }).collect();
    tapesched_scheduler::state::sort_items(&mut out);
    Ok(out)
}

async fn read_retrieves(tx: &mut Tx, pick: Pick<i64>) -> Result<Vec<StateItem>, Fail> {
    let head = concat!("SELECT ", rr_cols!(), " FROM retrieve_request r");
    let rows = match pick {
        Pick::After(a, n) => {
            sqlx::query(AssertSqlSafe(format!("{head} WHERE r.request_id > $1 ORDER BY r.request_id LIMIT $2")))
                .bind(a.unwrap_or(-1))
                .bind(n)
                .fetch_all(&mut **tx)
                .await?
        }
        Pick::Keys(ids) => {
            sqlx::query(AssertSqlSafe(format!("{head} WHERE r.request_id = ANY($1) ORDER BY r.request_id")))
                .bind(ids)
                .fetch_all(&mut **tx)
                .await?
        }
    };
    rows.iter()
        .map(|row| {
            let st = retrieve_of(row)?;
            let place = place_of(&st.loc, JobPlace::of_retrieve_status(st.request.status));
            Ok(StateItem::Retrieve { request: st.request, place })
        })
        .collect()
}

async fn read_markers(tx: &mut Tx, pick: Pick<String>) -> Result<Vec<StateItem>, Fail> {
    const COLS: &str = "SELECT container, cleanup, sleep_disk_system, sleep_until FROM queue_summary
                        WHERE kind = 2 AND (cleanup OR sleep_until IS NOT NULL)";
    let rows = match pick {
        Pick::After(a, n) => {
            sqlx::query(AssertSqlSafe(format!(
                "{COLS} AND ($1::text IS NULL OR container > $1) ORDER BY container LIMIT $2"
            )))
            .bind(a)
            .bind(n)
            .fetch_all(&mut **tx)
            .await?
        }
        Pick::Keys(vids) => {
            sqlx::query(AssertSqlSafe(format!("{COLS} AND container = ANY($1) ORDER BY container")))
                .bind(vids)
                .fetch_all(&mut **tx)
                .await?
        }
    };
    rows.iter()
        .map(|row| {
            let until: Option<i64> = row.try_get("sleep_until")?;
            let ds: Option<String> = row.try_get("sleep_disk_system")?;
            Ok(StateItem::Marker {
                vid: row.try_get("container")?,
                cleanup: row.try_get("cleanup")?,
                sleep: until.map(|until| QueueSleep { disk_system: ds.unwrap_or_default(), until }),
            })
        })
        .collect()
}
