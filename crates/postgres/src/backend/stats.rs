//! Retrieve-queue statistics as an operation's router sees them (`StatsView`).

use super::*;

// --- queue statistics for routing ----------------------------------------------------------------

#[derive(Debug, Default, Clone)]
pub(super) struct VidStats {
    pub(super) loaded: bool,
    pub(super) files: u64,
    pub(super) bytes: u64,
    pub(super) priorities: BTreeMap<u64, u64>,
}

/// Retrieve-queue statistics as an operation's router sees them: the committed summaries plus
/// the additions the operation chose to make visible.
#[derive(Debug, Default)]
pub(super) struct StatsView {
    pub(super) vids: HashMap<String, VidStats>,
}

pub(super) fn parse_counts(v: &serde_json::Value) -> BTreeMap<String, u64> {
    v.as_object()
        .map(|o| o.iter().filter_map(|(k, n)| n.as_i64().filter(|n| *n > 0).map(|n| (k.clone(), n as u64))).collect())
        .unwrap_or_default()
}

pub(super) fn parse_u64_counts(v: &serde_json::Value) -> BTreeMap<u64, u64> {
    parse_counts(v).into_iter().filter_map(|(k, n)| k.parse::<u64>().ok().map(|k| (k, n))).collect()
}

impl StatsView {
    pub(super) async fn load(&mut self, tx: &mut Tx, vids: &[String]) -> Result<(), Fail> {
        let missing: Vec<String> = vids
            .iter()
            .filter(|v| !self.vids.get(*v).is_some_and(|s| s.loaded))
            .cloned()
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        if missing.is_empty() {
            return Ok(());
        }
        let rows = sqlx::query(
            "SELECT container, files, least(bytes, 9223372036854775807)::int8 AS bytes, priorities FROM queue_summary
             WHERE kind = 2 AND container = ANY($1)",
        )
        .bind(&missing)
        .fetch_all(&mut **tx)
        .await?;
        for v in &missing {
            self.vids.entry(v.clone()).or_default().loaded = true;
        }
        for row in rows {
            let vid: String = row.try_get("container")?;
            let s = self.vids.entry(vid).or_default();
            s.files += row.try_get::<i64, _>("files")?.max(0) as u64;
            s.bytes = s.bytes.saturating_add(row.try_get::<i64, _>("bytes")?.max(0) as u64);
            for (p, n) in parse_u64_counts(&row.try_get::<serde_json::Value, _>("priorities")?) {
                *s.priorities.entry(p).or_default() += n;
            }
        }
        Ok(())
    }

    pub(super) fn stats(&self, vids: &[String]) -> Vec<QueueStats> {
        vids.iter()
            .map(|v| {
                let s = self.vids.get(v).cloned().unwrap_or_default();
                QueueStats {
                    vid: v.clone(),
                    files_queued: s.files,
                    bytes_queued: s.bytes,
                    priority: s.priorities.keys().next_back().copied().unwrap_or(0),
                }
            })
            .collect()
    }

    pub(super) fn add(&mut self, vid: &str, size: u64, priority: u64) {
        let s = self.vids.entry(vid.to_string()).or_default();
        s.files += 1;
        s.bytes = s.bytes.saturating_add(size);
        *s.priorities.entry(priority).or_default() += 1;
    }

    pub(super) fn set_empty(&mut self, vid: &str) {
        self.vids.insert(vid.to_string(), VidStats { loaded: true, ..VidStats::default() });
    }

    pub(super) async fn route(
        &mut self,
        tx: &mut Tx,
        request: &RetrieveRequest,
        router: &dyn RetrieveRouter,
    ) -> Result<Option<String>, Fail> {
        let candidates = router.candidates(request);
        if candidates.is_empty() {
            return Ok(None);
        }
        self.load(tx, &candidates).await?;
        Ok(router.choose(request, &self.stats(&candidates)))
    }
}
