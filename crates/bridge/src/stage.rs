//! The stages of a migration and the rules between them.
//!
//! `off -> dual-write -> shadow -> live -> rampdown -> complete`. Each stage says which side is
//! authoritative (answers callers), whether writes are mirrored to the other side and whether
//! reads are compared. A migration moves forward one stage at a time and may go back to any
//! earlier stage until it reaches `complete`, which is final.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use tapesched_scheduler::{Error, Result};

/// One side of the bridge.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Side {
    /// The backend being migrated from (the objectstore).
    Legacy,
    /// The backend being migrated to (PostgreSQL).
    Target,
}

impl Side {
    /// `legacy` or `target`.
    pub fn as_str(self) -> &'static str {
        match self {
            Side::Legacy => "legacy",
            Side::Target => "target",
        }
    }

    /// The other side.
    pub fn other(self) -> Side {
        match self {
            Side::Legacy => Side::Target,
            Side::Target => Side::Legacy,
        }
    }
}

impl fmt::Display for Side {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A stage of the migration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Stage {
    /// Legacy only.
    #[serde(rename = "off")]
    Off,
    /// Legacy authoritative; writes mirrored to the target.
    #[serde(rename = "dual-write")]
    DualWrite,
    /// As dual-write, and reads compared with the target's.
    #[serde(rename = "shadow")]
    Shadow,
    /// Target authoritative; writes mirrored to legacy; reads compared.
    #[serde(rename = "live")]
    Live,
    /// Target authoritative; writes still mirrored to legacy; no comparison.
    #[serde(rename = "rampdown")]
    Rampdown,
    /// Target only. Final.
    #[serde(rename = "complete")]
    Complete,
}

impl Stage {
    /// Every stage, in migration order.
    pub const ALL: [Stage; 6] =
        [Stage::Off, Stage::DualWrite, Stage::Shadow, Stage::Live, Stage::Rampdown, Stage::Complete];

    /// The stage's spelling (`off`, `dual-write`, `shadow`, `live`, `rampdown`, `complete`).
    pub fn as_str(self) -> &'static str {
        match self {
            Stage::Off => "off",
            Stage::DualWrite => "dual-write",
            Stage::Shadow => "shadow",
            Stage::Live => "live",
            Stage::Rampdown => "rampdown",
            Stage::Complete => "complete",
        }
    }

    /// Every stage's spelling, comma-separated, in order (for messages and help texts).
    pub fn names() -> String {
        Stage::ALL.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", ")
    }

    /// The stage of a spelling; anything else is `invalid_argument` naming the valid ones.
    pub fn parse(name: &str) -> Result<Stage> {
        Stage::ALL.iter().copied().find(|s| s.as_str() == name).ok_or_else(|| {
            let shown: String = name.chars().take(64).collect();
            Error::invalid(format!("unknown migration stage {shown:?}; the stages are {}", Stage::names()))
        })
    }

    /// The position of the stage in migration order (0 for `off`).
    pub fn index(self) -> usize {
        self as usize
    }

    /// The side whose answers callers get: legacy in off, dual-write and shadow; the target in
    /// live, rampdown and complete.
    pub fn authority(self) -> Side {
        match self {
            Stage::Off | Stage::DualWrite | Stage::Shadow => Side::Legacy,
            Stage::Live | Stage::Rampdown | Stage::Complete => Side::Target,
        }
    }

    /// True when writes go to both sides (dual-write, shadow, live, rampdown).
    pub fn mirrors_writes(self) -> bool {
        !matches!(self, Stage::Off | Stage::Complete)
    }

    /// True when reads and decisions are also asked of the other side and compared (shadow,
    /// live).
    pub fn compares_reads(self) -> bool {
        matches!(self, Stage::Shadow | Stage::Live)
    }

    /// Checks a change of stage: forward one stage at a time, back to any earlier stage unless
    /// `from` is `complete` (final); the same stage is a no-op. Anything else is
    /// `state_transition_refused` with a message saying what is allowed from `from`.
    pub fn check_transition(from: Stage, to: Stage) -> Result<()> {
        if from == to {
            return Ok(());
        }
        if from == Stage::Complete {
            return Err(Error::refused(format!(
                "the migration is complete, which is final: it cannot go back to {to}"
            )));
        }
        if to.index() == from.index() + 1 || to.index() < from.index() {
            return Ok(());
        }
        let next = Stage::ALL[from.index() + 1];
        let back = Stage::ALL[..from.index()].iter().map(|s| s.as_str()).collect::<Vec<_>>();
        let back = if back.is_empty() { String::new() } else { format!(", or back to {}", back.join(", ")) };
        Err(Error::refused(format!(
            "cannot go from {from} to {to}: a migration moves forward one stage at a time; from {from} it may go to {next}{back}"
        )))
    }
}

impl fmt::Display for Stage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Stage {
    type Err = Error;
    fn from_str(s: &str) -> Result<Stage> {
        Stage::parse(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tapesched_scheduler::ErrorKind;

    #[test]
    fn spellings_round_trip_and_unknown_names_list_the_stages() {
        for s in Stage::ALL {
            assert_eq!(Stage::parse(s.as_str()).ok(), Some(s));
            assert_eq!(s.to_string().parse::<Stage>().ok(), Some(s));
            assert_eq!(serde_json::to_value(s).ok(), Some(serde_json::Value::from(s.as_str())));
        }
        let e = Stage::parse("dualwrite").expect_err("unknown");
        assert_eq!(e.kind, ErrorKind::InvalidArgument);
        assert_eq!(
            e.message,
            "unknown migration stage \"dualwrite\"; the stages are off, dual-write, shadow, live, rampdown, complete"
        );
    }

    #[test]
    fn authority_mirroring_and_comparison_by_stage() {
        let table: Vec<(Side, bool, bool)> =
            Stage::ALL.iter().map(|s| (s.authority(), s.mirrors_writes(), s.compares_reads())).collect();
        assert_eq!(
            table,
            vec![
                (Side::Legacy, false, false),
                (Side::Legacy, true, false),
                (Side::Legacy, true, true),
                (Side::Target, true, true),
                (Side::Target, true, false),
                (Side::Target, false, false),
            ]
        );
        assert_eq!(Side::Legacy.other(), Side::Target);
    }

    #[test]
    fn forward_one_at_a_time_back_anywhere_until_complete() {
        for from in Stage::ALL {
            for to in Stage::ALL {
                let allowed = from == to
                    || (from != Stage::Complete && (to.index() == from.index() + 1 || to.index() < from.index()));
                let got = Stage::check_transition(from, to);
                assert_eq!(got.is_ok(), allowed, "{from} -> {to}");
                if let Err(e) = got {
                    assert_eq!(e.kind, ErrorKind::StateTransitionRefused);
                }
            }
        }
    }

    #[test]
    fn refusals_say_what_is_allowed() {
        let e = Stage::check_transition(Stage::DualWrite, Stage::Live).expect_err("skips shadow");
        assert_eq!(
            e.message,
            "cannot go from dual-write to live: a migration moves forward one stage at a time; from dual-write it may go to shadow, or back to off"
        );
        let e = Stage::check_transition(Stage::Off, Stage::Shadow).expect_err("skips dual-write");
        assert!(e.message.ends_with("from off it may go to dual-write"), "{}", e.message);
        let e = Stage::check_transition(Stage::Complete, Stage::Rampdown).expect_err("final");
        assert_eq!(e.message, "the migration is complete, which is final: it cannot go back to rampdown");
    }
}
