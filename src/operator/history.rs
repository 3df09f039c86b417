//! `nonstop history`: the deployments recorded in the state file, newest first, one line each:
//! id, when, how long, slot, the app's version, the release folder, the outcome and who ran it
//! (the CodeDeploy agent with its group, ssh with the client's address, or a user). Reads only
//! and takes no lock; the grouping of the history's events into deployments is
//! [`super::status::deployments`], the same as `nonstop status` shows.

use super::status::{deployments, deployments_table};
use crate::error::{Context, Result};
use crate::run::Run;
use crate::state;

/// Print the last `n` deployments (all recorded when `n` is `None`) as a table or JSON.
pub fn run(run: &Run, n: Option<usize>, json: bool) -> Result<()> {
    let cfg = &run.cfg;
    let st = state::load(&cfg.state_dir);
    let mut ds = deployments(&st.history);
    if let Some(n) = n {
        ds.truncate(n);
    }
    if json {
        let text = serde_json::to_string_pretty(&ds).context("cannot encode the history")?;
        crate::cli::out(text);
    } else if ds.is_empty() {
        crate::cli::out(format!(
            "no deployment recorded in {}",
            state::path(&cfg.state_dir).display()
        ));
    } else {
        crate::cli::out_raw(deployments_table(&ds, true).as_bytes());
    }
    Ok(())
}
