//! The stages of a migration and the rules for changing them.
//!
//! `off -> dual-write -> shadow -> live -> rampdown -> complete`: forward one stage at a time;
//! back to any earlier stage while not `complete` (which is final); `live` (the target becomes
//! authoritative) only after a clean verify and with a window of the bridge's counters whose
//! mismatch rate is at most the configured maximum ([`LiveEvidence`], [`GateConfig`]), unless
//! forced (the force is recorded).

use tapesched_scheduler::{Error, ErrorKind, Result};

use crate::record::VerifyRecord;

/// The stages and their order are the bridge's: one definition for the bridge and its tools.
pub use tapesched_bridge::Stage;

/// One recorded stage change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StageChange {
    /// The new stage.
    pub stage: Stage,
    /// The stage before (`None` for the set-up).
    pub previous: Option<Stage>,
    /// Who changed it.
    pub who: String,
    /// When (epoch seconds).
    pub at: i64,
    /// Why.
    pub reason: String,
    /// Forced past a refusal.
    pub forced: bool,
}

impl StageChange {
    /// A change made now.
    pub fn new(stage: Stage, previous: Option<Stage>, who: &str, reason: &str, forced: bool) -> StageChange {
        let at = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64);
        StageChange { stage, previous, who: who.to_string(), at, reason: reason.to_string(), forced }
    }
}

/// The gate of `live`'s settings, stored in the record (`migrate init` / `migrate config`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GateConfig {
    /// The highest mismatch rate (mismatched / compared, ignored comparisons left out) allowed
    /// over the window; 0.0 (the default): any mismatch no rule ignores refuses `live`.
    pub max_mismatch_rate: f64,
    /// The window, seconds back from the stage change (default 600).
    pub window_secs: i64,
}

impl Default for GateConfig {
    fn default() -> Self {
        GateConfig { max_mismatch_rate: 0.0, window_secs: 600 }
    }
}

impl GateConfig {
    /// Checks the settings: a rate in 0..=1, a window of at least one second.
    pub fn check(&self) -> Result<()> {
        if !(0.0..=1.0).contains(&self.max_mismatch_rate) {
            return Err(Error::invalid(format!(
                "the maximum mismatch rate must lie between 0 and 1, not {}",
                self.max_mismatch_rate
            )));
        }
        if self.window_secs < 1 {
            return Err(Error::invalid(format!("the window must be at least 1 second, not {}", self.window_secs)));
        }
        Ok(())
    }
}

/// What the gate of `live` looks at: the last verify, and the bridge's counters over the
/// configured window (every process's, from the record).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LiveEvidence {
    /// The last verify run, if any.
    pub last_verify: Option<VerifyRecord>,
    /// The gate's settings.
    pub config: GateConfig,
    /// Comparisons in the window whose answers were equal.
    pub matched: u64,
    /// Comparisons in the window that found a divergence no rule ignores.
    pub mismatched: u64,
    /// Comparisons in the window an ignore rule covered (left out of the rate).
    pub ignored: u64,
}

impl LiveEvidence {
    /// The mismatch rate of the window (ignored comparisons left out); None when nothing was
    /// compared.
    pub fn mismatch_rate(&self) -> Option<f64> {
        let compared = self.matched + self.mismatched;
        (compared > 0).then(|| self.mismatched as f64 / compared as f64)
    }

    /// Why `live` is refused on this evidence (empty: it is not).
    pub fn refusals(&self) -> Vec<String> {
        let mut why = Vec::new();
        match &self.last_verify {
            None => {
                why.push("it needs a clean verify first and none was run: run `tapesched migrate verify`".to_string())
            }
            Some(v) if v.differences > 0 => why.push(format!(
                "it needs a clean verify, and the last one found {} difference(s): run `tapesched migrate repair`, \
                 then `tapesched migrate verify` again",
                v.differences
            )),
            Some(_) => {}
        }
        let window = self.config.window_secs;
        match self.mismatch_rate() {
            None => why.push(format!(
                "nothing was compared in the last {window} s (no evidence that the target answers as legacy does): \
                 run the bridge's processes in shadow with traffic, their counters reach this record within seconds{}",
                if self.ignored > 0 {
                    format!(" ({} comparisons were all ignored by rules)", self.ignored)
                } else {
                    String::new()
                }
            )),
            Some(rate) if rate > self.config.max_mismatch_rate => why.push(format!(
                "the mismatch rate of the last {window} s is {rate:.4} ({} mismatched of {} compared, {} ignored \
                 apart), above the configured maximum {:.4}: see `tapesched migrate status`, repair \
                 (`tapesched migrate repair`) and wait for a clean window, or change the maximum with \
                 `tapesched migrate config --max-mismatch-rate R`",
                self.mismatched,
                self.matched + self.mismatched,
                self.ignored,
                self.config.max_mismatch_rate
            )),
            Some(_) => {}
        }
        why
    }
}

/// Checks a stage change: `state_transition_refused` with the reason and what to do when it is
/// not allowed. `live` (the target becomes authoritative) is refused while the last verify is
/// not clean (or none was run), while the mismatch rate of the last window is above the
/// configured maximum, and when nothing was compared in that window; `force` overrides these
/// (the caller records it), never the order of stages.
pub fn check_transition(from: Stage, to: Stage, evidence: &LiveEvidence, force: bool) -> Result<()> {
    let refuse = |m: String| Err(Error::new(ErrorKind::StateTransitionRefused, m));
    if from == Stage::Complete {
        return refuse("the migration is complete, which is final: no stage change is possible".into());
    }
    if to == from {
        return refuse(format!("the migration is already at stage {to}"));
    }
    // Forward one stage at a time, back to any earlier stage: the bridge's rule.
    Stage::check_transition(from, to)?;
    if to == Stage::Live && !force {
        let why = evidence.refusals();
        if !why.is_empty() {
            return refuse(format!(
                "live (the target becomes authoritative) refused: {} (or pass --force, which is recorded)",
                why.join("; ")
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn clean() -> VerifyRecord {
        VerifyRecord { at: 0, items: 1, differences: 0, summary: String::new() }
    }

    fn evidence(verify: Option<VerifyRecord>, matched: u64, mismatched: u64, ignored: u64) -> LiveEvidence {
        LiveEvidence { last_verify: verify, config: GateConfig::default(), matched, mismatched, ignored }
    }

    #[test]
    fn forward_one_at_a_time_back_anywhere_until_complete() {
        let none = LiveEvidence::default();
        let good = evidence(Some(clean()), 10, 0, 0);
        assert!(check_transition(Stage::Off, Stage::DualWrite, &none, false).is_ok());
        assert!(check_transition(Stage::Off, Stage::Shadow, &none, false).is_err());
        assert!(check_transition(Stage::Shadow, Stage::Live, &none, false).is_err());
        assert!(check_transition(Stage::Shadow, Stage::Live, &good, false).is_ok());
        assert!(check_transition(Stage::Shadow, Stage::Live, &none, true).is_ok());
        assert!(check_transition(Stage::Rampdown, Stage::Off, &none, false).is_ok());
        assert!(check_transition(Stage::Complete, Stage::Rampdown, &none, true).is_err());
        assert!(check_transition(Stage::DualWrite, Stage::Live, &good, true).is_err(), "force never skips");
        assert_eq!("dual-write".parse::<Stage>().unwrap(), Stage::DualWrite);
        assert!("dualwrite".parse::<Stage>().is_err());
    }

    #[test]
    fn live_needs_a_clean_verify_and_a_window_of_evidence_under_the_threshold() {
        let refused = |e: &LiveEvidence| {
            let err = check_transition(Stage::Shadow, Stage::Live, e, false).expect_err("refused");
            assert_eq!(err.kind, ErrorKind::StateTransitionRefused);
            assert!(check_transition(Stage::Shadow, Stage::Live, e, true).is_ok(), "--force overrides");
            err.message
        };
        // No verify, no evidence: both reasons.
        let m = refused(&evidence(None, 0, 0, 0));
        assert!(m.contains("none was run") && m.contains("nothing was compared in the last 600 s"), "{m}");
        assert!(m.contains("no evidence") && m.contains("--force"), "{m}");
        // A verify that found differences.
        let m = refused(&evidence(Some(VerifyRecord { differences: 2, ..clean() }), 10, 0, 0));
        assert!(m.contains("found 2 difference(s)") && !m.contains("nothing was compared"), "{m}");
        // Default threshold 0: one mismatch refuses; ignored comparisons count for nothing.
        let m = refused(&evidence(Some(clean()), 999, 1, 50));
        assert!(
            m.contains("mismatch rate of the last 600 s is 0.0010 (1 mismatched of 1000 compared, 50 ignored"),
            "{m}"
        );
        assert!(check_transition(Stage::Shadow, Stage::Live, &evidence(Some(clean()), 999, 0, 50), false).is_ok());
        // Only ignored comparisons: no evidence.
        let m = refused(&evidence(Some(clean()), 0, 0, 7));
        assert!(m.contains("no evidence") && m.contains("7 comparisons were all ignored"), "{m}");
        // A threshold: at it passes, above it refuses.
        let config = GateConfig { max_mismatch_rate: 0.01, window_secs: 60 };
        let at = LiveEvidence { config, ..evidence(Some(clean()), 99, 1, 0) };
        assert!(check_transition(Stage::Shadow, Stage::Live, &at, false).is_ok());
        let above = LiveEvidence { config, ..evidence(Some(clean()), 98, 2, 0) };
        assert!(refused(&above).contains("last 60 s is 0.0200"));
        // The gate is for live only.
        assert!(check_transition(Stage::Live, Stage::Rampdown, &LiveEvidence::default(), false).is_ok());
        assert!(GateConfig { max_mismatch_rate: 1.5, window_secs: 1 }.check().is_err());
        assert!(GateConfig { max_mismatch_rate: 0.5, window_secs: 0 }.check().is_err());
    }
}
