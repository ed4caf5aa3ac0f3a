//! The stages of a migration and the rules for changing them.
//!
//! `off -> dual-write -> shadow -> live -> rampdown -> complete`: forward one stage at a time;
//! back to any earlier stage while not `complete` (which is final); `live` (the target becomes
//! authoritative) only after a clean verify, unless forced (the force is recorded).

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

/// Checks a stage change: `state_transition_refused` with the reason and what to do when it is
/// not allowed.
pub fn check_transition(from: Stage, to: Stage, last_verify: Option<&VerifyRecord>, force: bool) -> Result<()> {
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
        match last_verify {
            None => {
                return refuse(
                    "live makes the target authoritative and needs a clean verify first: run `tapesched migrate \
                     verify` (or pass --force, which is recorded)"
                        .into(),
                )
            }
            Some(v) if v.differences > 0 => {
                return refuse(format!(
                    "live needs a clean verify, and the last one found {} difference(s): run `tapesched migrate \
                     repair`, then `tapesched migrate verify` again (or pass --force, which is recorded)",
                    v.differences
                ))
            }
            Some(_) => {}
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

    #[test]
    fn forward_one_at_a_time_back_anywhere_until_complete() {
        assert!(check_transition(Stage::Off, Stage::DualWrite, None, false).is_ok());
        assert!(check_transition(Stage::Off, Stage::Shadow, None, false).is_err());
        assert!(check_transition(Stage::Shadow, Stage::Live, None, false).is_err());
        assert!(check_transition(Stage::Shadow, Stage::Live, Some(&clean()), false).is_ok());
        assert!(check_transition(Stage::Shadow, Stage::Live, None, true).is_ok());
        assert!(check_transition(Stage::Rampdown, Stage::Off, None, false).is_ok());
        assert!(check_transition(Stage::Complete, Stage::Rampdown, None, true).is_err());
        assert_eq!("dual-write".parse::<Stage>().unwrap(), Stage::DualWrite);
        assert!("dualwrite".parse::<Stage>().is_err());
    }
}
