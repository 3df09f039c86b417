//! `appspec.yml` against the CodeDeploy agent's rules (shared/reference/codedeploy-hooks.md):
//! version, os, files, the lifecycle events and each hook's entry; the hooks themselves are
//! judged in [`super::hooks`].

use serde_yaml::Value;

/// The lifecycle events that may run scripts, in the order the agent runs them.
pub const EVENTS: [&str; 9] = [
    "BeforeBlockTraffic",
    "AfterBlockTraffic",
    "ApplicationStop",
    "BeforeInstall",
    "AfterInstall",
    "ApplicationStart",
    "ValidateService",
    "BeforeAllowTraffic",
    "AfterAllowTraffic",
];
/// The agent's default and largest hook timeout, in seconds.
pub const MAX_TIMEOUT: u64 = 3600;

/// One hook entry as written.
#[derive(Debug, Clone)]
pub struct Hook {
    pub event: String,
    pub location: String,
    pub timeout: Option<u64>,
    /// `runas: USER`: the agent runs the hook as that user.
    pub runas: Option<String>,
}

/// The agent's rules on the document itself: `Ok(summary)` or the problems found; also the
/// hooks when their structure is readable.
pub fn appspec_format(text: &str) -> (std::result::Result<String, Vec<String>>, Option<Vec<Hook>>) {
    let doc: Value = match serde_yaml::from_str(text) {
        Ok(v) => v,
        Err(e) => return (Err(vec![format!("not YAML: {e}")]), None),
    };
    let Some(map) = doc.as_mapping() else {
        return (Err(vec!["the document is not a mapping".into()]), None);
    };
    let mut problems = vec![];
    match map.get("version") {
        Some(Value::Number(n)) if n.as_f64() == Some(0.0) => {}
        Some(Value::String(s)) => problems.push(format!(
            "version is the string {s:?}: the agent wants the number (write `version: 0.0` without quotes)"
        )),
        Some(other) => problems.push(format!("version is {}, not 0.0", yaml_short(other))),
        None => problems.push("no `version: 0.0`".into()),
    }
    match map.get("os") {
        Some(Value::String(s)) if s == "linux" => {}
        Some(other) => problems.push(format!(
            "os is {}: the agent wants `os: linux` (lower case)",
            yaml_short(other)
        )),
        None => problems.push("no `os: linux`".into()),
    }
    if let Some(files) = map.get("files") {
        match files.as_sequence() {
            None if !files.is_null() => problems.push("files is not a list".into()),
            None => {}
            Some(items) => {
                for (i, f) in items.iter().enumerate() {
                    let has = |k: &str| f.get(k).is_some_and(|v| v.is_string());
                    if !has("source") || !has("destination") {
                        problems.push(format!("files[{i}] needs source and destination"));
                    }
                }
            }
        }
    }
    if let Some(b) = map.get("file_exists_behavior") {
        if !matches!(b.as_str(), Some("DISALLOW" | "OVERWRITE" | "RETAIN")) {
            problems.push(format!(
                "file_exists_behavior is {}: want DISALLOW, OVERWRITE or RETAIN",
                yaml_short(b)
            ));
        }
    }
    let mut hooks = vec![];
    let mut readable = true;
    match map.get("hooks") {
        None => problems.push("no hooks".into()),
        Some(h) => match h.as_mapping() {
            None => {
                problems.push("hooks is not a mapping of event names".into());
                readable = false;
            }
            Some(events) => {
                for (k, v) in events {
                    let ev = k.as_str().unwrap_or("?").to_string();
                    if !EVENTS.contains(&ev.as_str()) {
                        problems.push(format!(
                            "unknown lifecycle event {ev:?} (the agent rejects it; events: {})",
                            EVENTS.join(", ")
                        ));
                    }
                    let Some(list) = v.as_sequence() else {
                        problems.push(format!("{ev}: must be a list of `- location: ...` entries (a mapping crashes the agent)"));
                        readable = false;
                        continue;
                    };
                    for (i, item) in list.iter().enumerate() {
                        let Some(location) = item.get("location").and_then(Value::as_str) else {
                            problems.push(format!("{ev}[{i}]: no location"));
                            continue;
                        };
                        let timeout = match item.get("timeout") {
                            None => None,
                            Some(Value::Number(n)) => match n.as_u64() {
                                Some(0) => {
                                    problems.push(format!(
                                        "{ev} {location}: timeout 0 is rejected by the agent"
                                    ));
                                    None
                                }
                                Some(t) if t > MAX_TIMEOUT => {
                                    problems.push(format!("{ev} {location}: timeout {t} is above the agent's maximum of {MAX_TIMEOUT}"));
                                    None
                                }
                                Some(t) => Some(t),
                                None => {
                                    problems.push(format!("{ev} {location}: timeout must be a whole number of seconds"));
                                    None
                                }
                            },
                            Some(other) => {
                                problems.push(format!(
                                    "{ev} {location}: timeout is {}, not a number of seconds",
                                    yaml_short(other)
                                ));
                                None
                            }
                        };
                        if item.get("sudo").and_then(Value::as_bool) == Some(true) {
                            problems.push(format!("{ev} {location}: `sudo: true` drops DEPLOYMENT_ID and the other CodeDeploy variables; use runas or run as root"));
                        }
                        hooks.push(Hook {
                            event: ev.clone(),
                            location: location.to_string(),
                            timeout,
                            runas: item
                                .get("runas")
                                .and_then(Value::as_str)
                                .map(str::to_string),
                        });
                    }
                }
            }
        },
    }
    let summary = format!(
        "version 0.0, os linux, {} hooks in {} events",
        hooks.len(),
        hooks
            .iter()
            .map(|h| h.event.as_str())
            .collect::<std::collections::BTreeSet<_>>()
            .len()
    );
    (
        if problems.is_empty() {
            Ok(summary)
        } else {
            Err(problems)
        },
        readable.then_some(hooks),
    )
}

fn yaml_short(v: &Value) -> String {
    serde_yaml::to_string(v)
        .unwrap_or_default()
        .trim()
        .chars()
        .take(40)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_agents_rules() {
        let good = include_str!("../../../appspec/appspec.yml");
        let (r, hooks) = appspec_format(good);
        assert!(r.is_ok(), "{r:?}");
        let hooks = hooks.unwrap();
        assert_eq!(hooks[0].event, "AfterInstall");
        assert_eq!(hooks[0].location, "bin/stop");
        let bad = good.replace("version: 0.0", "version: \"0.0\"");
        let (r, _) = appspec_format(&bad);
        assert!(r.unwrap_err()[0].contains("the string \"0.0\""));
        let bad = good.replace("os: linux", "os: Linux");
        assert!(appspec_format(&bad).0.is_err());
        let bad = good.replace("timeout: 180", "timeout: 0");
        assert!(appspec_format(&bad).0.unwrap_err()[0].contains("timeout 0"));
        let bad = good.replace("AfterInstall:", "AfterInstal:");
        assert!(appspec_format(&bad).0.unwrap_err()[0].contains("unknown lifecycle event"));
        let bad = "version: 0.0\nos: linux\nhooks:\n  AfterInstall:\n    location: bin/stop\n";
        let (r, hooks) = appspec_format(bad);
        assert!(r.unwrap_err()[0].contains("must be a list"));
        assert!(hooks.is_none());
    }
}
