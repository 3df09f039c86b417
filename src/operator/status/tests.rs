//! `status`'s unit tests: the history's deployments, the last watch and restore, the rendering.

use super::*;

fn ev(id: &str, action: &str, slot: &str, time: &str, ms: u64, outcome: &str) -> Event {
    Event {
        time: time.into(),
        deployment_id: Some(id.into()),
        action: Action::parse(action),
        slot: slot.into(),
        release: (action != "stop").then(|| format!("{id}-rel")),
        outcome: state::Outcome::parse(outcome),
        duration_ms: ms,
        ..Default::default()
    }
}

#[test]
fn groups_history_into_deployments() {
    let h = vec![
        ev(
            "d-1",
            "stop",
            "green",
            "2026-11-22T06:00:00.100Z",
            100,
            "ok",
        ),
        ev(
            "d-1",
            "start",
            "green",
            "2026-11-22T06:00:00.200Z",
            50,
            "ok",
        ),
        ev(
            "d-1",
            "switch",
            "green",
            "2026-11-22T06:00:02.000Z",
            150,
            "ok",
        ),
        // The harness and runs by hand reuse one id: a new stop starts a new deployment.
        ev("d-1", "stop", "blue", "2026-11-22T06:01:00.000Z", 10, "ok"),
        ev("d-1", "start", "blue", "2026-11-22T06:01:00.100Z", 40, "ok"),
        ev(
            "d-2",
            "stop",
            "green",
            "2026-11-22T06:02:00.000Z",
            10,
            "failed: refused",
        ),
        ev(
            "r-1",
            "switch",
            "green",
            "2026-11-22T06:03:00.000Z",
            140,
            "ok",
        ),
        ev(
            "r-1",
            "rollback",
            "green",
            "2026-11-22T06:03:00.010Z",
            160,
            "ok",
        ),
    ];
    let d = deployments(&h);
    assert_eq!(d.len(), 4, "{d:#?}");
    assert_eq!(d[0].id.as_deref(), Some("r-1"));
    assert_eq!(d[0].outcome, "ok");
    assert_eq!(d[0].steps, ["switch", "rollback"]);
    assert_eq!(d[1].outcome, "failed at stop: refused");
    assert_eq!(d[2].outcome, "incomplete (last step: start)");
    assert_eq!(d[3].outcome, "ok");
    assert_eq!(d[3].slot, "green");
    assert_eq!(d[3].time, "2026-11-22T06:00:00.000Z");
    assert_eq!(d[3].duration_ms, 2000);
    assert_eq!(d[3].release.as_deref(), Some("d-1-rel"));
    let mut manual = ev("x", "stop", "green", "2026-11-22T06:04:00.000Z", 5, "ok");
    manual.deployment_id = None;
    assert_eq!(deployments(&[manual])[0].outcome, "by hand: stop");
}
