//! The check framework: a check's verdict and its line as `validate` prints it, and the
//! report that ends a run (the count per verdict; exit 1 naming the failed checks).

use crate::error::{failed, Result};

/// The verdict of one check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Ok,
    /// Worth knowing, not a failure.
    Warn,
    Fail,
    /// Not checked (what it needs is missing or failed).
    Skip,
}

/// One check's line.
#[derive(Debug, Clone)]
pub struct Check {
    pub verdict: Verdict,
    pub name: String,
    pub detail: String,
}

impl std::fmt::Display for Check {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let v = match self.verdict {
            Verdict::Ok => "ok",
            Verdict::Warn => "warn",
            Verdict::Fail => "FAIL",
            Verdict::Skip => "skip",
        };
        write!(f, "{v:<5} {:<21} {}", self.name, self.detail)
    }
}

pub fn check(verdict: Verdict, name: &str, detail: impl Into<String>) -> Check {
    Check {
        verdict,
        name: name.into(),
        detail: detail.into(),
    }
}

/// The run's last line: how many checks had each verdict; `Err` (exit 1) naming the failed
/// ones when any failed.
pub fn report(all: &[Check]) -> Result<()> {
    let failed_names: Vec<&str> = all
        .iter()
        .filter(|c| c.verdict == Verdict::Fail)
        .map(|c| c.name.as_str())
        .collect();
    let ok = all.iter().filter(|c| c.verdict == Verdict::Ok).count();
    crate::outln!(
        "{} checks: {ok} ok, {} failed, {} warnings, {} skipped",
        all.len(),
        failed_names.len(),
        all.iter().filter(|c| c.verdict == Verdict::Warn).count(),
        all.iter().filter(|c| c.verdict == Verdict::Skip).count()
    );
    if failed_names.is_empty() {
        Ok(())
    } else {
        Err(failed(format!(
            "{} of {} checks failed: {}",
            failed_names.len(),
            all.len(),
            failed_names.join(", ")
        )))
    }
}
