//! The nginx and kernel checks of nftables mode: nginx proxies to the front port with no
//! upstream keepalive, and the kernel's table steers it to the live slot.

use super::check::{check, Check, CheckId, Verdict};
use crate::config::Config;
use crate::nginx_tokens::words;

/// nftables mode: nginx proxies to the front port with no upstream keepalive, nft is there,
/// the kernel accepts nonstop's table, and the table loaded matches the state.
pub(super) fn nftables_checks(cfg: &Config, files: &[(String, String)]) -> Vec<Check> {
    use crate::traffic::nft;
    let front = cfg.traffic.port.unwrap_or(0);
    let target = format!("127.0.0.1:{front}");
    let users: Vec<&str> = files
        .iter()
        .filter(|(_, text)| {
            words(text).iter().any(|w| {
                w[0] == "proxy_pass"
                    && w.get(1).is_some_and(|a| {
                        let rest = a.split_once("://").map_or(a.as_str(), |(_, r)| r);
                        rest.split('/').next() == Some(target.as_str())
                    })
            })
        })
        .map(|(p, _)| p.as_str())
        .collect();
    let keepalive: Vec<&str> = files
        .iter()
        .filter(|(_, text)| words(text).iter().any(|w| w[0] == "keepalive"))
        .map(|(p, _)| p.as_str())
        .collect();
    let mut out = vec![if users.is_empty() {
        check(
            Verdict::Fail,
            CheckId::NginxFrontPort,
            format!("no `proxy_pass http://{target};` in any file nginx loads: nftables steers connections to that port only"),
        )
    } else {
        check(
            Verdict::Ok,
            CheckId::NginxFrontPort,
            format!("proxy_pass http://{target} in {}", users.join(", ")),
        )
    }];
    out.push(if keepalive.is_empty() {
        check(Verdict::Ok, CheckId::NginxKeepalive, "no upstream keepalive: every new upstream connection is steered")
    } else {
        check(
            Verdict::Fail,
            CheckId::NginxKeepalive,
            format!("`keepalive` in {}: a kept upstream connection stays on the slot it was opened to, whatever the table says", keepalive.join(", ")),
        )
    });
    let state = crate::state::load(&cfg.state_dir);
    let roles = crate::slots::roles(cfg, &state);
    out.push(match roles {
        Ok(r) => match &r.doubt {
            None => check(
                Verdict::Ok,
                CheckId::Nftables,
                format!(
                    "table ip {} steers 127.0.0.1:{front} to {}",
                    nft::table_name(cfg),
                    r.live.map_or("no slot yet".into(), |l| format!(
                        "slot {} (port {})",
                        l.name, l.port
                    ))
                ),
            ),
            Some(d) => check(Verdict::Fail, CheckId::Nftables, d.describe(cfg)),
        },
        Err(e) => check(Verdict::Fail, CheckId::Nftables, e.to_string()),
    });
    out
}
