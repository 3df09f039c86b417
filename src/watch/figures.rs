//! A window's figures from its [`Sample`]s: request count, 5xx share, p50 and p99 latency.

use super::sample::Sample;
use serde::{Deserialize, Serialize};

/// What a set of requests looked like.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Figures {
    pub requests: u64,
    /// 5xx answers, nginx's own 502/504 included.
    pub errors: u64,
    pub p50_ms: u64,
    pub p99_ms: u64,
    /// The latency is a mean, not percentiles (counters such as Actuator's
    /// `http.server.requests` give a count and a total time only): `p50_ms` and `p99_ms` both
    /// hold the mean, and the p99 limit applies to it.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub mean_only: bool,
}

impl Figures {
    /// The figures of `samples` (percentiles by nearest rank).
    pub fn of<'a>(samples: impl IntoIterator<Item = &'a Sample>) -> Figures {
        let mut took = vec![];
        let mut errors = 0;
        for s in samples {
            took.push(s.took_ms);
            errors += s.is_error() as u64;
        }
        took.sort_unstable();
        let rank = |q: f64| -> u64 {
            if took.is_empty() {
                return 0;
            }
            let i = ((q * took.len() as f64).ceil() as usize).clamp(1, took.len());
            took[i - 1]
        };
        Figures {
            requests: took.len() as u64,
            errors,
            p50_ms: rank(0.50),
            p99_ms: rank(0.99),
            mean_only: false,
        }
    }

    /// Figures from counters: `requests` and `errors` with their mean latency.
    pub fn of_counts(requests: u64, errors: u64, mean_ms: u64) -> Figures {
        Figures {
            requests,
            errors,
            p50_ms: mean_ms,
            p99_ms: mean_ms,
            mean_only: true,
        }
    }

    /// `p99` (or `mean` for [`Figures::of_counts`]): what `p99_ms` holds.
    pub fn latency_name(&self) -> &'static str {
        if self.mean_only {
            "mean"
        } else {
            "p99"
        }
    }

    /// The 5xx share, 0 to 1 (0 without requests).
    pub fn error_share(&self) -> f64 {
        if self.requests == 0 {
            0.0
        } else {
            self.errors as f64 / self.requests as f64
        }
    }

    /// `5xx 0.4 % over 1,204 requests, p50 3 ms, p99 12 ms`
    pub fn describe(&self) -> String {
        if self.mean_only {
            return format!(
                "5xx {} over {} requests, mean {} ms",
                percent(self.error_share()),
                thousands(self.requests),
                self.p99_ms
            );
        }
        format!(
            "5xx {} over {} requests, p50 {} ms, p99 {} ms",
            percent(self.error_share()),
            thousands(self.requests),
            self.p50_ms,
            self.p99_ms
        )
    }
}

/// `31.0 %`
pub fn percent(share: f64) -> String {
    format!("{:.1} %", share * 100.0)
}

/// `1,204`
pub fn thousands(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(status: u16, took_ms: u64) -> Sample {
        Sample {
            at_ms: 0,
            status,
            took_ms,
            upstream_port: Some(8081),
        }
    }

    #[test]
    fn share_and_percentiles() {
        let mut v: Vec<Sample> = (1..=100).map(|ms| s(200, ms)).collect();
        v[0].status = 500;
        v[1].status = 502;
        v[2].status = 404;
        let f = Figures::of(&v);
        assert_eq!(f.requests, 100);
        assert_eq!(f.errors, 2);
        assert_eq!((f.p50_ms, f.p99_ms), (50, 99));
        assert!((f.error_share() - 0.02).abs() < 1e-9);
        assert_eq!(Figures::of(&[]), Figures::default());
        assert_eq!(Figures::of(&[s(200, 7)]).p99_ms, 7);
        assert_eq!(thousands(1204), "1,204");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1_000_000), "1,000,000");
        assert_eq!(percent(0.31), "31.0 %");
    }
}
