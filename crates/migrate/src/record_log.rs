//! The bridge's counters and divergences in the migration record (`migrations/0010_migration_log.sql`).
//!
//! Every process running the bridge flushes its [`LogDelta`]s here ([`crate::LogFlusher`]): one
//! [`FlushBatch`] per flush, written in one transaction and at most once (the batch's name is
//! recorded with it, so a flush retried after an unknown commit outcome is not counted twice).
//! The readers add the counters of every process up ([`Record::counters`], in total or since a
//! wall-clock second), list the stored divergences ([`Record::divergences`]) and mark them
//! repaired ([`Record::mark_repaired`]). [`Record::memory`] keeps the same in this process.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::json;
use sqlx::Row;
use tapesched_bridge::{Answer, Concern, Divergence, Histogram, LogDelta, OpCounts, Stage};
use tapesched_scheduler::Result;

use crate::record::{db_error, now_secs, Place, Record};

/// One flush of a process's log: the delta and the wall-clock window it covers.
#[derive(Debug, Clone, Default)]
pub struct FlushBatch {
    /// The process's name (shown by `migrate status`; unique per process, e.g. host and pid).
    pub process: String,
    /// Names the flush among the process's: (`instance`, `batch`) is written at most once.
    pub instance: String,
    /// The flush's number within its instance.
    pub batch: u64,
    /// Wall-clock epoch seconds the window starts at.
    pub window_start: i64,
    /// Wall-clock epoch seconds the window ends at.
    pub window_end: i64,
    /// What was counted and recorded in the window.
    pub delta: LogDelta,
}

/// A divergence as the record keeps it.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredDivergence {
    /// Its number in the record (order of storing).
    pub id: i64,
    /// The process that recorded it.
    pub process: String,
    /// Wall-clock epoch seconds of its recording.
    pub recorded_at: i64,
    /// The divergence (its `seq` is its number in its process's log).
    pub divergence: Divergence,
    /// When it was repaired (wall-clock epoch seconds), if it was.
    pub repaired_at: Option<i64>,
    /// What the repair said about it (why nothing was repairable, for instance).
    pub repair_note: Option<String>,
}

/// Which stored divergences [`Record::divergences`] lists.
#[derive(Debug, Clone)]
pub struct DivergenceQuery {
    /// Only those not repaired yet and not covered by an ignore rule.
    pub unrepaired: bool,
    /// Only those of this operation kind.
    pub op: Option<String>,
    /// At most this many.
    pub limit: usize,
    /// Newest first (otherwise oldest first).
    pub newest_first: bool,
    /// Only those stored after this id (paging, oldest first).
    pub after_id: Option<i64>,
}

impl Default for DivergenceQuery {
    fn default() -> Self {
        DivergenceQuery { unrepaired: false, op: None, limit: 100, newest_first: false, after_id: None }
    }
}

/// The counters of one operation kind as a row.
#[derive(Debug, Clone)]
struct CounterRow {
    window_end: i64,
    op: String,
    counts: OpCounts,
}

/// The log as [`Record::memory`] keeps it.
#[derive(Debug, Default)]
pub(crate) struct MemoryLog {
    batches: BTreeSet<(String, u64)>,
    counters: Vec<CounterRow>,
    divergences: Vec<StoredDivergence>,
}

fn to_i64(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

fn hist_json(h: &Histogram) -> serde_json::Value {
    serde_json::to_value(h).unwrap_or_default()
}

/// Divergences of a batch are inserted this many per statement.
const CHUNK: usize = 2000;

impl Record {
    /// Writes one flush in one transaction; answers false when that batch was already written
    /// (a retry after an unknown outcome), which writes nothing more.
    pub async fn write_log(&self, b: &FlushBatch) -> Result<bool> {
        if let Some(mut m) = self.mem() {
            if !m.log.batches.insert((b.instance.clone(), b.batch)) {
                return Ok(false);
            }
            for (op, counts) in &b.delta.stats {
                m.log.counters.push(CounterRow { window_end: b.window_end, op: op.clone(), counts: counts.clone() });
            }
            for p in &b.delta.divergences {
                let id = m.log.divergences.len() as i64 + 1;
                m.log.divergences.push(StoredDivergence {
                    id,
                    process: b.process.clone(),
                    recorded_at: p.recorded_at,
                    divergence: p.divergence.clone(),
                    repaired_at: None,
                    repair_note: None,
                });
            }
            return Ok(true);
        }
        let Place::Postgres { pool, .. } = &*self.place else { unreachable!("memory handled above") };
        let mut tx = pool.begin().await.map_err(db_error)?;
        let fresh = sqlx::query(
            "INSERT INTO migration_log_batch (process, batch, written_at) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
        )
        .bind(&b.instance)
        .bind(to_i64(b.batch))
        .bind(now_secs())
        .execute(&mut *tx)
        .await
        .map_err(db_error)?
        .rows_affected();
        if fresh == 0 {
            tx.rollback().await.map_err(db_error)?;
            return Ok(false);
        }
        if !b.delta.stats.is_empty() {
            let rows: Vec<serde_json::Value> = b
                .delta
                .stats
                .iter()
                .map(|(op, c)| {
                    json!({
                        "op": op, "calls": to_i64(c.calls), "compared": to_i64(c.compared),
                        "matched": to_i64(c.matched), "mismatched": to_i64(c.mismatched),
                        "ignored": c.ignored, "legacy_errors": to_i64(c.legacy_errors),
                        "target_errors": to_i64(c.target_errors),
                        "legacy_latency": hist_json(&c.legacy_latency),
                        "target_latency": hist_json(&c.target_latency), "dropped": to_i64(c.dropped),
                    })
                })
                .collect();
            sqlx::query(
                "INSERT INTO migration_counters (process, window_start, window_end, op, calls, compared, matched,
                     mismatched, ignored, legacy_errors, target_errors, legacy_latency, target_latency, dropped)
                 SELECT $1, $2, $3, r->>'op', (r->>'calls')::bigint, (r->>'compared')::bigint,
                     (r->>'matched')::bigint, (r->>'mismatched')::bigint, r->'ignored',
                     (r->>'legacy_errors')::bigint, (r->>'target_errors')::bigint, r->'legacy_latency',
                     r->'target_latency', (r->>'dropped')::bigint
                 FROM jsonb_array_elements($4) r",
            )
            .bind(&b.process)
            .bind(b.window_start)
            .bind(b.window_end)
            .bind(sqlx::types::Json(rows))
            .execute(&mut *tx)
            .await
            .map_err(db_error)?;
        }
        for chunk in b.delta.divergences.chunks(CHUNK) {
            let rows: Vec<serde_json::Value> = chunk
                .iter()
                .map(|p| {
                    let d = &p.divergence;
                    json!({
                        "process_seq": to_i64(d.seq), "recorded_at": p.recorded_at, "at": d.at, "op": d.op,
                        "stage": d.stage.as_str(), "concerns": d.concerns, "legacy": d.legacy,
                        "target": d.target, "note": d.note, "ignored_by": d.ignored_by,
                    })
                })
                .collect();
            sqlx::query(
                "INSERT INTO migration_divergence (process, process_seq, recorded_at, at, op, stage, concerns, legacy,
                     target, note, ignored_by)
                 SELECT $1, (r->>'process_seq')::bigint, (r->>'recorded_at')::bigint, (r->>'at')::bigint, r->>'op',
                     r->>'stage', r->'concerns', r->'legacy', r->'target', r->>'note', r->>'ignored_by'
                 FROM jsonb_array_elements($2) r",
            )
            .bind(&b.process)
            .bind(sqlx::types::Json(rows))
            .execute(&mut *tx)
            .await
            .map_err(db_error)?;
        }
        tx.commit().await.map_err(db_error)?;
        Ok(true)
    }

    /// The counters of every process added up per operation kind: all of them (`since` None),
    /// or those of the flush windows ending after `since` (wall-clock epoch seconds).
    pub async fn counters(&self, since: Option<i64>) -> Result<BTreeMap<String, OpCounts>> {
        let since = since.unwrap_or(i64::MIN);
        if let Some(m) = self.mem() {
            let mut out: BTreeMap<String, OpCounts> = BTreeMap::new();
            for r in m.log.counters.iter().filter(|r| r.window_end > since) {
                out.entry(r.op.clone()).or_default().merge(&r.counts);
            }
            return Ok(out);
        }
        let Place::Postgres { pool, .. } = &*self.place else { unreachable!("memory handled above") };
        let big = |col: &str| format!("LEAST(sum({col}), 9223372036854775807)::bigint AS {col}");
        let side = |s: &str| {
            format!(
                "LEAST(sum(({s}_latency->>'count')::numeric), 9223372036854775807)::bigint AS {s}_count,
                 LEAST(sum(({s}_latency->>'total_micros')::numeric), 9223372036854775807)::bigint AS {s}_total,
                 LEAST(max(({s}_latency->>'max_micros')::numeric), 9223372036854775807)::bigint AS {s}_max"
            )
        };
        let cols = ["calls", "compared", "matched", "mismatched", "legacy_errors", "target_errors", "dropped"];
        let sql = format!(
            "SELECT op, {}, {}, {} FROM migration_counters WHERE window_end > $1 GROUP BY op",
            cols.iter().map(|c| big(c)).collect::<Vec<_>>().join(", "),
            side("legacy"),
            side("target")
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(since).fetch_all(pool).await.map_err(db_error)?;
        let mut out: BTreeMap<String, OpCounts> = BTreeMap::new();
        let get = |r: &sqlx::postgres::PgRow, c: &str| -> Result<u64> {
            Ok(r.try_get::<i64, _>(c).map_err(db_error)?.max(0) as u64)
        };
        for r in &rows {
            let op: String = r.try_get("op").map_err(db_error)?;
            let c = out.entry(op).or_default();
            c.calls = get(r, "calls")?;
            c.compared = get(r, "compared")?;
            c.matched = get(r, "matched")?;
            c.mismatched = get(r, "mismatched")?;
            c.legacy_errors = get(r, "legacy_errors")?;
            c.target_errors = get(r, "target_errors")?;
            c.dropped = get(r, "dropped")?;
            for (s, h) in [("legacy", &mut c.legacy_latency), ("target", &mut c.target_latency)] {
                h.count = get(r, &format!("{s}_count"))?;
                h.total_micros = get(r, &format!("{s}_total"))?;
                h.max_micros = get(r, &format!("{s}_max"))?;
            }
        }
        let ignored = sqlx::query(
            "SELECT c.op, e.key, sum(e.value::bigint)::bigint AS n
             FROM migration_counters c, jsonb_each_text(c.ignored) e
             WHERE c.window_end > $1 GROUP BY c.op, e.key",
        )
        .bind(since)
        .fetch_all(pool)
        .await
        .map_err(db_error)?;
        for r in &ignored {
            let op: String = r.try_get("op").map_err(db_error)?;
            let rule: String = r.try_get("key").map_err(db_error)?;
            out.entry(op).or_default().ignored.insert(rule, get(r, "n")?);
        }
        let buckets = sqlx::query(
            "SELECT c.op, 'legacy' AS side, b.key::int AS bucket, sum(b.value::bigint)::bigint AS n
             FROM migration_counters c, jsonb_each_text(c.legacy_latency->'buckets') b
             WHERE c.window_end > $1 GROUP BY c.op, b.key
             UNION ALL
             SELECT c.op, 'target', b.key::int, sum(b.value::bigint)::bigint
             FROM migration_counters c, jsonb_each_text(c.target_latency->'buckets') b
             WHERE c.window_end > $1 GROUP BY c.op, b.key",
        )
        .bind(since)
        .fetch_all(pool)
        .await
        .map_err(db_error)?;
        for r in &buckets {
            let op: String = r.try_get("op").map_err(db_error)?;
            let side: String = r.try_get("side").map_err(db_error)?;
            let bucket: i32 = r.try_get("bucket").map_err(db_error)?;
            let c = out.entry(op).or_default();
            let h = if side == "legacy" { &mut c.legacy_latency } else { &mut c.target_latency };
            h.buckets.insert(bucket.clamp(0, i32::from(u16::MAX)) as u16, get(r, "n")?);
        }
        Ok(out)
    }

    /// The stored divergences `q` selects.
    pub async fn divergences(&self, q: &DivergenceQuery) -> Result<Vec<StoredDivergence>> {
        if let Some(m) = self.mem() {
            let keep = |s: &&StoredDivergence| {
                (!q.unrepaired || (s.repaired_at.is_none() && s.divergence.ignored_by.is_none()))
                    && q.op.as_ref().is_none_or(|op| &s.divergence.op == op)
                    && q.after_id.is_none_or(|a| s.id > a)
            };
            let mut out: Vec<StoredDivergence> = m.log.divergences.iter().filter(keep).cloned().collect();
            if q.newest_first {
                out.reverse();
            }
            out.truncate(q.limit);
            return Ok(out);
        }
        let Place::Postgres { pool, .. } = &*self.place else { unreachable!("memory handled above") };
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT seq, process, process_seq, recorded_at, at, op, stage, concerns, legacy, target, note, ignored_by,
                 repaired_at, repair_note
             FROM migration_divergence
             WHERE ($1 = false OR (repaired_at IS NULL AND ignored_by IS NULL))
               AND ($2::text IS NULL OR op = $2) AND ($3::bigint IS NULL OR seq > $3)
             ORDER BY seq {} LIMIT $4",
            if q.newest_first { "DESC" } else { "ASC" }
        )))
        .bind(q.unrepaired)
        .bind(q.op.as_deref())
        .bind(q.after_id)
        .bind(to_i64(q.limit as u64))
        .fetch_all(pool)
        .await
        .map_err(db_error)?;
        rows.iter().map(stored).collect()
    }

    /// How many stored divergences no rule ignores: all of them, or those not repaired yet.
    pub async fn count_divergences(&self, unrepaired: bool) -> Result<u64> {
        if let Some(m) = self.mem() {
            let n = m
                .log
                .divergences
                .iter()
                .filter(|s| s.divergence.ignored_by.is_none() && (!unrepaired || s.repaired_at.is_none()))
                .count();
            return Ok(n as u64);
        }
        let Place::Postgres { pool, .. } = &*self.place else { unreachable!("memory handled above") };
        let n: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM migration_divergence WHERE ignored_by IS NULL AND ($1 = false OR repaired_at IS NULL)",
        )
        .bind(unrepaired)
        .fetch_one(pool)
        .await
        .map_err(db_error)?;
        Ok(n.max(0) as u64)
    }

    /// Marks stored divergences repaired now, with an optional note; answers how many were
    /// not marked before.
    pub async fn mark_repaired(&self, ids: &[i64], note: Option<&str>) -> Result<u64> {
        let now = now_secs();
        if let Some(mut m) = self.mem() {
            let wanted: BTreeSet<i64> = ids.iter().copied().collect();
            let mut n = 0;
            for s in m.log.divergences.iter_mut().filter(|s| wanted.contains(&s.id) && s.repaired_at.is_none()) {
                s.repaired_at = Some(now);
                s.repair_note = note.map(str::to_string);
                n += 1;
            }
            return Ok(n);
        }
        let Place::Postgres { pool, .. } = &*self.place else { unreachable!("memory handled above") };
        let n = sqlx::query(
            "UPDATE migration_divergence SET repaired_at = $2, repair_note = $3
             WHERE seq = ANY($1) AND repaired_at IS NULL",
        )
        .bind(ids)
        .bind(now)
        .bind(note)
        .execute(pool)
        .await
        .map_err(db_error)?
        .rows_affected();
        Ok(n)
    }

    /// Divergences no rule ignores over time: per wall-clock slot of `slot_secs` seconds (its
    /// start) and operation kind, how many were stored; oldest slot first.
    pub async fn divergence_timeline(&self, slot_secs: i64) -> Result<Vec<(i64, String, u64)>> {
        let slot = slot_secs.max(1);
        if let Some(m) = self.mem() {
            let mut out: BTreeMap<(i64, String), u64> = BTreeMap::new();
            for s in m.log.divergences.iter().filter(|s| s.divergence.ignored_by.is_none()) {
                *out.entry((s.recorded_at.div_euclid(slot) * slot, s.divergence.op.clone())).or_default() += 1;
            }
            return Ok(out.into_iter().map(|((t, op), n)| (t, op, n)).collect());
        }
        let Place::Postgres { pool, .. } = &*self.place else { unreachable!("memory handled above") };
        let rows = sqlx::query(
            "SELECT floor(recorded_at::numeric / $1)::bigint * $1 AS slot, op, count(*) AS n
             FROM migration_divergence WHERE ignored_by IS NULL GROUP BY 1, 2 ORDER BY 1, 2",
        )
        .bind(slot)
        .fetch_all(pool)
        .await
        .map_err(db_error)?;
        rows.iter()
            .map(|r| {
                Ok((
                    r.try_get("slot").map_err(db_error)?,
                    r.try_get("op").map_err(db_error)?,
                    r.try_get::<i64, _>("n").map_err(db_error)?.max(0) as u64,
                ))
            })
            .collect()
    }

    /// The wall-clock seconds of the first and the last divergence no rule ignores (None: none).
    pub async fn divergence_span(&self) -> Result<Option<(i64, i64)>> {
        if let Some(m) = self.mem() {
            let times = m.log.divergences.iter().filter(|s| s.divergence.ignored_by.is_none()).map(|s| s.recorded_at);
            let (lo, hi) = times.fold((i64::MAX, i64::MIN), |(lo, hi), t| (lo.min(t), hi.max(t)));
            return Ok((lo <= hi).then_some((lo, hi)));
        }
        let Place::Postgres { pool, .. } = &*self.place else { unreachable!("memory handled above") };
        let row: (Option<i64>, Option<i64>) = sqlx::query_as(
            "SELECT min(recorded_at), max(recorded_at) FROM migration_divergence WHERE ignored_by IS NULL",
        )
        .fetch_one(pool)
        .await
        .map_err(db_error)?;
        Ok(row.0.zip(row.1))
    }
}

fn stored(r: &sqlx::postgres::PgRow) -> Result<StoredDivergence> {
    let json = |c: &str| -> Result<serde_json::Value> {
        r.try_get::<sqlx::types::Json<serde_json::Value>, _>(c).map(|j| j.0).map_err(db_error)
    };
    let parse = |c: &str| -> Answer {
        let v = json(c).unwrap_or_default();
        serde_json::from_value(v.clone()).unwrap_or(Answer::Value(v))
    };
    let stage: String = r.try_get("stage").map_err(db_error)?;
    let concerns: Vec<Concern> = serde_json::from_value(json("concerns")?).unwrap_or_default();
    Ok(StoredDivergence {
        id: r.try_get("seq").map_err(db_error)?,
        process: r.try_get("process").map_err(db_error)?,
        recorded_at: r.try_get("recorded_at").map_err(db_error)?,
        divergence: Divergence {
            seq: r.try_get::<i64, _>("process_seq").map_err(db_error)?.max(0) as u64,
            op: r.try_get("op").map_err(db_error)?,
            concerns,
            stage: stage.parse::<Stage>()?,
            legacy: parse("legacy"),
            target: parse("target"),
            note: r.try_get("note").map_err(db_error)?,
            at: r.try_get("at").map_err(db_error)?,
            ignored_by: r.try_get("ignored_by").map_err(db_error)?,
        },
        repaired_at: r.try_get("repaired_at").map_err(db_error)?,
        repair_note: r.try_get("repair_note").map_err(db_error)?,
    })
}
