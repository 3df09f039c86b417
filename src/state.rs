//! The state file (`state_dir/state.json`): what is live, what was live before, which release,
//! when, and a short deployment history. It is a record, not the truth: the nginx include is
//! the truth, and where they disagree the include wins and a warning is logged.

use crate::error::Result;
use crate::fsx::write_atomic;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// How many history entries are kept.
const HISTORY: usize = 20;

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct State {
    /// Slot nginx points at after the last switch.
    pub live: Option<String>,
    /// Slot that was live before it: the instant rollback target.
    pub previous: Option<String>,
    /// Release (folder name under workdir/releases) serving on `live`.
    pub release: Option<String>,
    /// Jar serving on `live`.
    pub jar: Option<PathBuf>,
    /// UTC time of the last switch.
    pub time: Option<String>,
    /// Balanced mode: a canary in progress.
    pub canary: Option<Canary>,
    /// Newest last.
    pub history: Vec<Event>,
}

/// A canary started by `switch --canary`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Canary {
    pub slot: String,
    pub percent: u8,
}

/// One recorded step of a deployment.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct Event {
    pub time: String,
    pub deployment_id: Option<String>,
    pub action: String,
    pub slot: String,
    pub release: Option<String>,
    pub outcome: String,
    pub duration_ms: u64,
}

/// `state_dir/state.json`
pub fn path(state_dir: &Path) -> PathBuf {
    state_dir.join("state.json")
}

/// Load the state; a missing file is an empty state, a corrupt one is logged and ignored
/// (the include is the truth; the next write replaces it).
pub fn load(state_dir: &Path) -> State {
    let p = path(state_dir);
    match std::fs::read(&p) {
        Err(_) => State::default(),
        Ok(bytes) => serde_json::from_slice(&bytes).unwrap_or_else(|e| {
            log::warn!(
                "state file {} is unreadable ({e}); ignoring it and trusting the nginx include",
                p.display()
            );
            State::default()
        }),
    }
}

/// Write the state atomically.
pub fn save(state_dir: &Path, st: &State) -> Result<()> {
    std::fs::create_dir_all(state_dir)
        .map_err(|e| crate::error::failed(format!("cannot create {}: {e}", state_dir.display())))?;
    let mut s = serde_json::to_string_pretty(st).expect("state serializes");
    s.push('\n');
    write_atomic(&path(state_dir), s.as_bytes(), 0o644)
}

impl State {
    /// Append an event, keeping the newest [`HISTORY`].
    pub fn record(&mut self, ev: Event) {
        self.history.push(ev);
        let extra = self.history.len().saturating_sub(HISTORY);
        self.history.drain(..extra);
    }
}

/// Append one event (time now, this run's `DEPLOYMENT_ID`) to the history. A state file that
/// cannot be written is logged, not fatal: the event is a record, the include is the truth.
pub fn record_event(
    state_dir: &Path,
    action: &str,
    slot: &str,
    release: Option<String>,
    started: std::time::Instant,
    outcome: String,
) {
    let ev = Event {
        time: crate::log::utc_millis(std::time::SystemTime::now()),
        deployment_id: std::env::var("DEPLOYMENT_ID")
            .ok()
            .filter(|v| !v.is_empty()),
        action: action.into(),
        slot: slot.into(),
        release,
        outcome,
        duration_ms: started.elapsed().as_millis() as u64,
    };
    if let Err(e) = update(state_dir, |s| s.record(ev)) {
        log::warn!("could not record {action} in the state file: {e}");
    }
}

/// Load, change, save: the one way binaries update the state.
pub fn update(state_dir: &Path, f: impl FnOnce(&mut State)) -> Result<State> {
    let mut st = load(state_dir);
    f(&mut st);
    save(state_dir, &st)?;
    Ok(st)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn corrupt_state_is_empty_and_replaced() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(path(d.path()), b"{not json").unwrap();
        assert_eq!(load(d.path()), State::default());
        update(d.path(), |s| s.live = Some("green".into())).unwrap();
        assert_eq!(load(d.path()).live.as_deref(), Some("green"));
    }

    #[test]
    fn history_is_bounded() {
        let mut s = State::default();
        for i in 0..30 {
            s.record(Event {
                action: format!("a{i}"),
                ..Default::default()
            });
        }
        assert_eq!(s.history.len(), HISTORY);
        assert_eq!(s.history.last().unwrap().action, "a29");
    }
}
