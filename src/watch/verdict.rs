//! Judging the new release's [`Figures`] against the old release's baseline: a [`Verdict`]
//! that carries the figures it was made from (recorded as is in the state history).

use super::figures::{percent, thousands, Figures};
use crate::config::Watch;
use serde::{Deserialize, Serialize};

/// The limits a verdict applies (from `watch:` in nonstop.yml).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Thresholds {
    pub min_requests: u64,
    /// The 5xx share always tolerated (0.01 is 1 %).
    pub errors: f64,
    pub errors_factor: f64,
    pub p99_factor: f64,
    pub p99_margin_ms: u64,
}

impl Thresholds {
    pub fn of(w: &Watch) -> Thresholds {
        Thresholds {
            min_requests: w.min_requests,
            errors: w.errors,
            errors_factor: w.errors_factor,
            p99_factor: w.p99_factor,
            p99_margin_ms: w.p99_margin.as_millis() as u64,
        }
    }
}

/// Which limit the new release broke, and that limit.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Breach {
    /// The 5xx share went above `limit` (a share, 0 to 1).
    Errors { limit: f64 },
    /// p99 went above `limit_ms`.
    Latency { limit_ms: u64 },
    /// A `watch.probes` path failed on the new slot: no answer, or 400 and above (`got`).
    Probe { path: String, got: String },
}

/// What the watch concluded.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "verdict", rename_all = "snake_case")]
pub enum Verdict {
    /// Within every limit.
    Ok { now: Figures, before: Figures },
    /// Fewer than `min_requests`: not judged, the release is kept.
    Inconclusive {
        now: Figures,
        before: Figures,
        min_requests: u64,
    },
    /// A limit broken: the release is switched back.
    Bad {
        breach: Breach,
        now: Figures,
        before: Figures,
    },
}

/// The fewest requests whose p99 is not simply their slowest one (nearest rank): below this,
/// one slow request (a fresh JVM's first calls) would be the p99.
pub const P99_MIN_REQUESTS: u64 = 100;

/// Judge `now` (the new release since the switch) against `before` (the old one just before).
///
/// 5xx share above max(`errors`, `errors_factor` × the baseline's share) is bad; p99 above
/// `p99_factor` × the baseline's p99 + `p99_margin` is bad, judged only when both sides have
/// `min_requests` and [`P99_MIN_REQUESTS`] (a p99 of a handful of requests is their slowest).
pub fn judge(now: Figures, before: Figures, t: &Thresholds) -> Verdict {
    if now.requests < t.min_requests {
        return Verdict::Inconclusive {
            now,
            before,
            min_requests: t.min_requests,
        };
    }
    let limit = t.errors.max(t.errors_factor * before.error_share());
    if now.error_share() > limit {
        return Verdict::Bad {
            breach: Breach::Errors { limit },
            now,
            before,
        };
    }
    let enough = t.min_requests.max(P99_MIN_REQUESTS);
    if before.requests >= enough && now.requests >= enough {
        let limit_ms = (t.p99_factor * before.p99_ms as f64).ceil() as u64 + t.p99_margin_ms;
        if now.p99_ms > limit_ms {
            return Verdict::Bad {
                breach: Breach::Latency { limit_ms },
                now,
                before,
            };
        }
    }
    Verdict::Ok { now, before }
}

/// `v`, or a probe breach when `probe` names a failed probe and `v` is not bad already.
pub fn with_probe(v: Verdict, probe: Option<(String, String)>) -> Verdict {
    match (v, probe) {
        (v @ Verdict::Bad { .. }, _) | (v, None) => v,
        (
            Verdict::Ok { now, before } | Verdict::Inconclusive { now, before, .. },
            Some((path, got)),
        ) => Verdict::Bad {
            breach: Breach::Probe { path, got },
            now,
            before,
        },
    }
}

impl Verdict {
    pub fn is_bad(&self) -> bool {
        matches!(self, Verdict::Bad { .. })
    }

    /// A breach of the p99 limit (confirmed by a second judgement before it counts).
    pub fn is_slow(&self) -> bool {
        matches!(
            self,
            Verdict::Bad {
                breach: Breach::Latency { .. },
                ..
            }
        )
    }

    /// `ok`, `inconclusive`, `bad`
    pub fn kind(&self) -> &'static str {
        match self {
            Verdict::Ok { .. } => "ok",
            Verdict::Inconclusive { .. } => "inconclusive",
            Verdict::Bad { .. } => "bad",
        }
    }

    /// The figures as words: `5xx 31.0 % over 1,204 requests vs 0.1 % before (limit 1.0 %)`.
    pub fn describe(&self) -> String {
        self.describe_against("before")
    }

    /// [`Verdict::describe`] with the baseline named `against` (`before`, `on slot green`).
    pub fn describe_against(&self, against: &str) -> String {
        match self {
            Verdict::Bad {
                breach: Breach::Errors { limit },
                now,
                before,
            } => format!(
                "5xx {} over {} requests vs {} {against} (limit {})",
                percent(now.error_share()),
                thousands(now.requests),
                percent(before.error_share()),
                percent(*limit)
            ),
            Verdict::Bad {
                breach: Breach::Latency { limit_ms },
                now,
                before,
            } => format!(
                "{} {} ms over {} requests vs {} ms {against} (limit {limit_ms} ms)",
                now.latency_name(),
                now.p99_ms,
                thousands(now.requests),
                before.p99_ms
            ),
            Verdict::Bad {
                breach: Breach::Probe { path, got },
                now,
                ..
            } => format!(
                "probe {path}: {got} (want an answer below 400); {}",
                now.describe()
            ),
            Verdict::Ok { now, before } => format!(
                "{} vs 5xx {}, {} {} ms {against}",
                now.describe(),
                percent(before.error_share()),
                before.latency_name(),
                before.p99_ms
            ),
            Verdict::Inconclusive {
                now, min_requests, ..
            } => format!(
                "only {} requests, fewer than watch.min_requests {min_requests}: not judged",
                thousands(now.requests)
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: Thresholds = Thresholds {
        min_requests: 50,
        errors: 0.01,
        errors_factor: 2.0,
        p99_factor: 2.0,
        p99_margin_ms: 100,
    };

    fn f(requests: u64, errors: u64, p99_ms: u64) -> Figures {
        Figures {
            requests,
            errors,
            p50_ms: p99_ms / 2,
            p99_ms,
            mean_only: false,
        }
    }

    #[test]
    fn too_few_requests_is_inconclusive() {
        let v = judge(f(49, 49, 9000), f(1000, 0, 10), &T);
        assert_eq!(v.kind(), "inconclusive");
        assert!(
            v.describe().contains("only 49 requests"),
            "{}",
            v.describe()
        );
    }

    #[test]
    fn errors_above_the_floor_or_twice_the_baseline_are_bad() {
        // 1 % floor: 1 of 100 is fine, 2 of 100 is not.
        assert_eq!(judge(f(100, 1, 10), f(1000, 0, 10), &T).kind(), "ok");
        let v = judge(f(100, 2, 10), f(1000, 0, 10), &T);
        assert!(matches!(
            v,
            Verdict::Bad {
                breach: Breach::Errors { .. },
                ..
            }
        ));
        assert!(
            v.describe()
                .starts_with("5xx 2.0 % over 100 requests vs 0.0 % before"),
            "{}",
            v.describe()
        );
        // The baseline had 5 %: up to 10 % is tolerated.
        assert_eq!(judge(f(100, 10, 10), f(1000, 50, 10), &T).kind(), "ok");
        assert_eq!(judge(f(100, 11, 10), f(1000, 50, 10), &T).kind(), "bad");
        // No baseline at all: the floor alone.
        assert_eq!(judge(f(100, 1, 10), Figures::default(), &T).kind(), "ok");
        assert_eq!(judge(f(100, 31, 10), Figures::default(), &T).kind(), "bad");
    }

    #[test]
    fn p99_above_twice_the_baseline_plus_margin_is_bad() {
        // 2 × 20 + 100 = 140 ms.
        assert_eq!(judge(f(100, 0, 140), f(100, 0, 20), &T).kind(), "ok");
        let v = judge(f(100, 0, 141), f(100, 0, 20), &T);
        assert_eq!(
            v,
            Verdict::Bad {
                breach: Breach::Latency { limit_ms: 140 },
                now: f(100, 0, 141),
                before: f(100, 0, 20)
            }
        );
        // A baseline below min_requests does not judge latency.
        assert_eq!(judge(f(100, 0, 5000), f(49, 0, 20), &T).kind(), "ok");
        // Nor fewer than 100 requests on either side: their p99 is their slowest one.
        assert_eq!(judge(f(99, 0, 5000), f(1000, 0, 20), &T).kind(), "ok");
        assert_eq!(judge(f(1000, 0, 5000), f(99, 0, 20), &T).kind(), "ok");
    }

    #[test]
    fn a_failed_probe_is_a_breach_whatever_the_traffic() {
        let v = with_probe(
            judge(f(3, 0, 10), f(1000, 0, 10), &T),
            Some(("/smoke".into(), "HTTP 500".into())),
        );
        assert_eq!(v.kind(), "bad");
        assert!(
            v.describe().starts_with(
                "probe /smoke: HTTP 500 (want an answer below 400); 5xx 0.0 % over 3 requests"
            ),
            "{}",
            v.describe()
        );
        let j = serde_json::to_value(&v).unwrap();
        assert_eq!(j["breach"]["kind"], "probe");
        assert_eq!(j["breach"]["path"], "/smoke");
        assert_eq!(
            with_probe(judge(f(100, 0, 10), f(100, 0, 10), &T), None).kind(),
            "ok"
        );
    }

    #[test]
    fn verdicts_round_trip_as_tagged_json() {
        let v = judge(f(100, 31, 10), f(1000, 1, 10), &T);
        let j = serde_json::to_value(&v).unwrap();
        assert_eq!(j["verdict"], "bad");
        assert_eq!(j["breach"]["kind"], "errors");
        assert_eq!(j["now"]["errors"], 31);
        assert_eq!(serde_json::from_value::<Verdict>(j).unwrap(), v);
    }
}
