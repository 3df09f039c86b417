//! The state file (`state_dir/state.json`): what is live, what was live before, which release,
//! when, and a short deployment history. It is a record, not the truth: the nginx include is
//! the truth, and where they disagree the include wins and a warning is logged.

use crate::error::Result;
use crate::stage_table::Stage;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// How many history entries are kept (a deployment is 4-6 of them: `nonstop history` shows
/// the last few dozen).
const HISTORY: usize = 200;

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
    pub action: Action,
    pub slot: String,
    pub release: Option<String>,
    pub outcome: Outcome,
    pub duration_ms: u64,
    /// The app's version in `release` ([`crate::releases::jar_version`]), kept here because
    /// the release folder may be pruned later.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// Who ran it, from where ([`by`]): `codedeploy (group G)`, `ssh ec2-user from 10.0.0.5`,
    /// `ec2-user`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub by: Option<String>,
    /// A [`Action::Watch`] event: what the watch concluded, with its figures.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub verdict: Option<crate::watch::verdict::Verdict>,
    /// What happened, in words, where the action alone does not say it (a [`Action::Restore`]:
    /// what removed the table, and when).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// What an [`Event`] records. In `state.json` it is the string [`Action::as_string`] gives
/// (`"switch"`, `"canary 10%"`, `"deploy-second"`, ...); a string this version does not know
/// (a newer or older nonstop's) loads as [`Action::Other`] and is written back unchanged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    Stop,
    Start,
    Health,
    Switch,
    /// `switch --canary PERCENT`.
    Canary(u8),
    Promote,
    Abort,
    DeploySecond,
    /// `nonstop deploy`'s summary of its run.
    Deploy,
    /// `nonstop rollback`'s summary of its run.
    Rollback,
    /// The watch after a switch (`--watch`); its [`Event::verdict`] holds the figures.
    Watch,
    /// The steering unit loaded the nftables table again after someone removed it (a ruleset
    /// flush); its [`Event::note`] says when and by whom.
    Restore,
    /// Any other string, kept as it was read.
    Other(String),
}

impl From<Stage> for Action {
    /// A stage's run, named in the history as the stage table names it.
    fn from(stage: Stage) -> Self {
        match stage {
            Stage::Stop => Action::Stop,
            Stage::Start => Action::Start,
            Stage::Health => Action::Health,
            Stage::Switch => Action::Switch,
            Stage::DeploySecond => Action::DeploySecond,
        }
    }
}

impl Default for Action {
    /// An event without an `action` field (as serde's default before this type existed).
    fn default() -> Self {
        Action::Other(String::new())
    }
}

impl Action {
    /// The name as recorded in `state.json` and shown by `status`.
    pub fn as_string(&self) -> String {
        match self {
            Action::Stop => Stage::Stop.name().into(),
            Action::Start => Stage::Start.name().into(),
            Action::Health => Stage::Health.name().into(),
            Action::Switch => Stage::Switch.name().into(),
            Action::Canary(p) => format!("canary {p}%"),
            Action::Promote => "promote".into(),
            Action::Abort => "abort".into(),
            Action::DeploySecond => Stage::DeploySecond.name().into(),
            Action::Deploy => "deploy".into(),
            Action::Rollback => "rollback".into(),
            Action::Watch => "watch".into(),
            Action::Restore => "restore".into(),
            Action::Other(s) => s.clone(),
        }
    }

    /// The action a recorded name stands for; never fails (unknown names are [`Action::Other`]).
    pub fn parse(s: &str) -> Action {
        if let Some(stage) = Stage::of_name(s) {
            return stage.into();
        }
        let a = match s {
            "promote" => Action::Promote,
            "abort" => Action::Abort,
            "deploy" => Action::Deploy,
            "rollback" => Action::Rollback,
            "watch" => Action::Watch,
            "restore" => Action::Restore,
            _ => match s
                .strip_prefix("canary ")
                .and_then(|p| p.strip_suffix('%'))
                .and_then(|p| p.parse().ok())
            {
                Some(p) => Action::Canary(p),
                None => Action::Other(s.into()),
            },
        };
        // Only what is written back byte for byte is recognised (`canary 010%` stays Other).
        if a.as_string() == s {
            a
        } else {
            Action::Other(s.into())
        }
    }

    /// Steps that make a slot live, and so record the release it serves from then on.
    pub fn makes_live(&self) -> bool {
        matches!(self, Action::Switch | Action::Promote)
    }
}

impl std::fmt::Display for Action {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.as_string())
    }
}

impl Serialize for Action {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(&self.as_string())
    }
}

impl<'de> Deserialize<'de> for Action {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        Ok(Action::parse(&String::deserialize(d)?))
    }
}

/// How an [`Event`] ended. In `state.json`: `"ok"`, `"failed: REASON"` (a stage), `"failed at
/// STAGE: REASON"` (a `nonstop deploy`/`rollback` run whose STAGE failed); any other string loads
/// as [`Outcome::Other`] and is written back unchanged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Ok,
    Failed(String),
    FailedAt {
        stage: Action,
        reason: String,
    },
    /// Any other string, kept as it was read; not a success.
    Other(String),
}

impl Default for Outcome {
    /// An event without an `outcome` field: not a success (as before this type existed).
    fn default() -> Self {
        Outcome::Other(String::new())
    }
}

impl Outcome {
    /// The outcome of a stage that returned `r`.
    pub fn of<T>(r: &Result<T>) -> Outcome {
        match r {
            Ok(_) => Outcome::Ok,
            Err(e) => Outcome::Failed(e.to_string()),
        }
    }

    pub fn is_ok(&self) -> bool {
        *self == Outcome::Ok
    }

    /// Why it failed (`None` for [`Outcome::Ok`]); an unknown outcome is its own reason.
    pub fn reason(&self) -> Option<&str> {
        match self {
            Outcome::Ok => None,
            Outcome::Failed(r) | Outcome::FailedAt { reason: r, .. } | Outcome::Other(r) => Some(r),
        }
    }

    /// The string recorded in `state.json`.
    pub fn as_string(&self) -> String {
        match self {
            Outcome::Ok => "ok".into(),
            Outcome::Failed(r) => format!("failed: {r}"),
            Outcome::FailedAt { stage, reason } => format!("failed at {stage}: {reason}"),
            Outcome::Other(s) => s.clone(),
        }
    }

    /// The outcome a recorded string stands for; never fails.
    pub fn parse(s: &str) -> Outcome {
        let o = if s == "ok" {
            Outcome::Ok
        } else if let Some(r) = s.strip_prefix("failed: ") {
            Outcome::Failed(r.into())
        } else if let Some((stage, r)) = s
            .strip_prefix("failed at ")
            .and_then(|rest| rest.split_once(": "))
        {
            Outcome::FailedAt {
                stage: Action::parse(stage),
                reason: r.into(),
            }
        } else {
            Outcome::Other(s.into())
        };
        if o.as_string() == s {
            o
        } else {
            Outcome::Other(s.into())
        }
    }
}

impl std::fmt::Display for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.as_string())
    }
}

impl Serialize for Outcome {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(&self.as_string())
    }
}

impl<'de> Deserialize<'de> for Outcome {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        Ok(Outcome::parse(&String::deserialize(d)?))
    }
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

/// Write the state atomically, without waiting for the disk: it is a record (the include or
/// the table is the truth), and the hooks' critical path should not wait on fsyncs.
pub fn save(state_dir: &Path, st: &State) -> Result<()> {
    crate::fsx::create_dirs(state_dir)
        .map_err(|e| crate::error::failed(format!("cannot create {}: {e}", state_dir.display())))?;
    let mut s = serde_json::to_string_pretty(st).expect("state serializes");
    s.push('\n');
    crate::fsx::write_atomic_record(&path(state_dir), s.as_bytes(), 0o644)
}

impl State {
    /// Append an event, keeping the newest [`HISTORY`].
    pub fn record(&mut self, ev: Event) {
        self.history.push(ev);
        let extra = self.history.len().saturating_sub(HISTORY);
        self.history.drain(..extra);
    }

    /// The release `slot` served when it was last switched live: the release recorded by the
    /// newest successful `switch` or `promote` to it (what `nonstop rollback` goes back to).
    pub fn served_release(&self, slot: &str) -> Option<String> {
        self.history
            .iter()
            .rev()
            .filter(|e| e.slot == slot && e.outcome.is_ok())
            .find(|e| e.action.makes_live())
            .and_then(|e| e.release.clone())
    }
}

/// Who runs this process and from where, for the history: the CodeDeploy agent (it sets
/// `DEPLOYMENT_GROUP_NAME` for the hooks), an ssh session (`SSH_CONNECTION`: the client's
/// address first), else the user.
pub fn by() -> String {
    let var = |k: &str| std::env::var(k).ok().filter(|v| !v.trim().is_empty());
    let clean = |v: String| -> String {
        v.chars()
            .filter(|c| !c.is_control())
            .take(64)
            .collect::<String>()
    };
    let user = var("USER")
        .or_else(|| var("LOGNAME"))
        .map(clean)
        .unwrap_or_else(|| format!("uid {}", rustix::process::geteuid().as_raw()));
    if let Some(group) = var("DEPLOYMENT_GROUP_NAME") {
        return format!("codedeploy (group {})", clean(group));
    }
    match var("SSH_CONNECTION").and_then(|c| c.split_whitespace().next().map(str::to_string)) {
        Some(from) => format!("ssh {user} from {}", clean(from)),
        None => user,
    }
}

/// Append one event (time now, the run's `deployment_id`, [`by`]) to the history, with the
/// app's `version` in `release`. A state file that cannot be written is logged, not fatal: the
/// event is a record, the include is the truth.
pub fn record_event(
    state_dir: &Path,
    deployment_id: Option<&str>,
    action: Action,
    slot: &str,
    (release, version): (Option<String>, Option<String>),
    started: std::time::Instant,
    outcome: Outcome,
) {
    let ev = Event {
        time: crate::log::utc_millis(std::time::SystemTime::now()),
        deployment_id: deployment_id.map(str::to_string),
        action: action.clone(),
        slot: slot.into(),
        release,
        outcome,
        duration_ms: started.elapsed().as_millis() as u64,
        version,
        by: Some(by()),
        verdict: None,
        note: None,
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

    type Cases<T> = Vec<(T, &'static str)>;

    /// Every action and outcome, and the exact string `state.json` has held for it.
    fn every_variant() -> (Cases<Action>, Cases<Outcome>) {
        let actions = vec![
            (Action::Stop, "stop"),
            (Action::Start, "start"),
            (Action::Health, "health"),
            (Action::Switch, "switch"),
            (Action::Canary(10), "canary 10%"),
            (Action::Canary(99), "canary 99%"),
            (Action::Promote, "promote"),
            (Action::Abort, "abort"),
            (Action::DeploySecond, "deploy-second"),
            (Action::Deploy, "deploy"),
            (Action::Rollback, "rollback"),
            (Action::Restore, "restore"),
            (Action::Other("warm-up".into()), "warm-up"),
            (Action::Other("canary 010%".into()), "canary 010%"),
            (Action::Other("canary 300%".into()), "canary 300%"),
            (Action::Other(String::new()), ""),
        ];
        let outcomes = vec![
            (Outcome::Ok, "ok"),
            (
                Outcome::Failed("slot blue not healthy after 2 s".into()),
                "failed: slot blue not healthy after 2 s",
            ),
            (
                Outcome::Failed("at: odd: reason".into()),
                "failed: at: odd: reason",
            ),
            (
                Outcome::FailedAt {
                    stage: Action::Health,
                    reason: "slot blue not healthy: HTTP 503".into(),
                },
                "failed at health: slot blue not healthy: HTTP 503",
            ),
            (
                Outcome::FailedAt {
                    stage: Action::DeploySecond,
                    reason: "deploy-second stopped at slot red: x".into(),
                },
                "failed at deploy-second: deploy-second stopped at slot red: x",
            ),
            (
                Outcome::FailedAt {
                    stage: Action::Other("warm-up".into()),
                    reason: "r".into(),
                },
                "failed at warm-up: r",
            ),
            (Outcome::Other("skipped".into()), "skipped"),
            (
                Outcome::Other("failed at nothing".into()),
                "failed at nothing",
            ),
            (Outcome::Other("OK".into()), "OK"),
            (Outcome::Other(String::new()), ""),
        ];
        (actions, outcomes)
    }

    #[test]
    fn actions_and_outcomes_are_todays_json_strings() {
        let (actions, outcomes) = every_variant();
        for (a, text) in actions {
            let json = serde_json::to_string(&a).unwrap();
            assert_eq!(json, serde_json::to_string(text).unwrap(), "{a:?}");
            assert_eq!(serde_json::from_str::<Action>(&json).unwrap(), a, "{json}");
        }
        for (o, text) in outcomes {
            let json = serde_json::to_string(&o).unwrap();
            assert_eq!(json, serde_json::to_string(text).unwrap(), "{o:?}");
            assert_eq!(serde_json::from_str::<Outcome>(&json).unwrap(), o, "{json}");
        }
        assert!(Outcome::Ok.is_ok());
        assert!(!Outcome::Other("OK".into()).is_ok());
        assert_eq!(
            Outcome::of(&Err::<(), _>(crate::error::failed("port in use"))),
            Outcome::Failed("port in use".into())
        );
    }

    /// A state.json as nonstop wrote it before history was typed (with an action and an
    /// outcome this version does not know): it loads, reads typed, and saves byte for byte.
    const OLD_STATE: &str = r#"{
  "live": "blue",
  "previous": "green",
  "release": "d-2",
  "jar": "/opt/nonstop/demo/releases/d-2/demo-v2.jar",
  "time": "2026-11-22T06:00:02.000Z",
  "canary": null,
  "history": [
    {
      "time": "2026-11-22T05:00:00.100Z",
      "deployment_id": "d-1",
      "action": "switch",
      "slot": "green",
      "release": "d-1",
      "outcome": "ok",
      "duration_ms": 150
    },
    {
      "time": "2026-11-22T05:30:00.000Z",
      "deployment_id": "deploy-20261122T053000.000Z",
      "action": "deploy",
      "slot": "blue",
      "release": null,
      "outcome": "failed at health: slot blue not healthy after 2 s (last: HTTP 503)",
      "duration_ms": 2300
    },
    {
      "time": "2026-11-22T05:40:00.000Z",
      "deployment_id": null,
      "action": "canary 10%",
      "slot": "blue",
      "release": "d-2",
      "outcome": "failed: no other slot is in rotation",
      "duration_ms": 20
    },
    {
      "time": "2026-11-22T05:50:00.000Z",
      "deployment_id": "d-9",
      "action": "warm-up",
      "slot": "blue",
      "release": null,
      "outcome": "skipped",
      "duration_ms": 0
    },
    {
      "time": "2026-11-22T06:00:02.000Z",
      "deployment_id": "d-2",
      "action": "switch",
      "slot": "blue",
      "release": "d-2",
      "outcome": "ok",
      "duration_ms": 140
    }
  ]
}
"#;

    #[test]
    fn an_old_state_file_loads_typed_and_saves_unchanged() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(path(d.path()), OLD_STATE).unwrap();
        let st = load(d.path());
        assert_eq!(st.live.as_deref(), Some("blue"), "not rejected");
        let h = &st.history;
        assert_eq!(h.len(), 5);
        assert_eq!(
            (&h[0].action, &h[0].outcome),
            (&Action::Switch, &Outcome::Ok)
        );
        assert_eq!(h[1].action, Action::Deploy);
        assert_eq!(
            h[1].outcome,
            Outcome::FailedAt {
                stage: Action::Health,
                reason: "slot blue not healthy after 2 s (last: HTTP 503)".into()
            }
        );
        assert_eq!(h[2].action, Action::Canary(10));
        assert_eq!(h[2].outcome.reason(), Some("no other slot is in rotation"));
        assert_eq!(h[3].action, Action::Other("warm-up".into()));
        assert_eq!(h[3].outcome, Outcome::Other("skipped".into()));
        assert_eq!(st.served_release("blue").as_deref(), Some("d-2"));
        assert_eq!(st.served_release("green").as_deref(), Some("d-1"));
        assert_eq!(st.served_release("red"), None);
        save(d.path(), &st).unwrap();
        assert_eq!(std::fs::read_to_string(path(d.path())).unwrap(), OLD_STATE);
        // An event missing fields (older files) loads too, as neither ok nor a known action.
        std::fs::write(
            path(d.path()),
            r#"{"history": [{"slot": "blue", "release": "d-1"}]}"#,
        )
        .unwrap();
        let st = load(d.path());
        assert_eq!(st.history[0].action, Action::Other(String::new()));
        assert!(!st.history[0].outcome.is_ok());
        assert_eq!(st.served_release("blue"), None);
    }

    #[test]
    fn history_is_bounded() {
        let mut s = State::default();
        for i in 0..HISTORY + 10 {
            s.record(Event {
                action: Action::Other(format!("a{i}")),
                ..Default::default()
            });
        }
        assert_eq!(s.history.len(), HISTORY);
        assert_eq!(
            s.history[0].action.as_string(),
            "a10",
            "the oldest go first"
        );
        assert_eq!(
            s.history.last().unwrap().action.as_string(),
            format!("a{}", HISTORY + 9)
        );
    }
}
