//! The table as text: the steering it means ([`Steering`]: live port and rotation), the one
//! rule and the comment that records the steering, the whole `nft -f` transaction, and the
//! reading back of a listing or of the kernel's echo, each checked against what it must mean.

use crate::config::Config;
use crate::nginx::{Member, Rotation};
use crate::traffic::Doubt;

/// `nonstop_<app>` with `-` as `_` (nft identifiers; one table per app, see [`crate::registry`]).
pub fn table_name(cfg: &Config) -> String {
    crate::registry::table(&cfg.app.name)
}

/// `state_dir/traffic.nft`: the ruleset last applied, for the boot unit.
pub fn ruleset_path(cfg: &Config) -> std::path::PathBuf {
    cfg.state_dir.join("traffic.nft")
}

/// What the table says: the live port and the rotation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Steering {
    pub live: Option<u16>,
    pub rotation: Rotation,
}

pub(super) fn front(cfg: &Config) -> u16 {
    cfg.traffic.port.unwrap_or(0)
}

/// Where new connections go: (port, weight) of every slot that gets traffic.
pub(super) fn targets(cfg: &Config, s: &Steering) -> Vec<(u16, u32)> {
    targets_for(cfg.balanced(), s)
}

pub(super) fn targets_for(balanced: bool, s: &Steering) -> Vec<(u16, u32)> {
    if balanced {
        s.rotation
            .iter()
            .filter_map(|(p, m)| match m {
                Member::Up(w) if *w > 0 => Some((*p, *w)),
                _ => None,
            })
            .collect()
    } else {
        s.live.map(|p| vec![(p, 1)]).unwrap_or_default()
    }
}

/// The rule line (as `nft list` prints it) for `s`, or `None` when no slot gets traffic.
pub fn rule(cfg: &Config, s: &Steering) -> Option<String> {
    rule_for(front(cfg), cfg.balanced(), s)
}

/// [`rule`] from the values alone (the root helper has the registry's, not a config).
pub(super) fn rule_for(front: u16, balanced: bool, s: &Steering) -> Option<String> {
    let t = targets_for(balanced, s);
    let head = format!("ip daddr 127.0.0.1 tcp dport {front} ");
    match t.as_slice() {
        [] => None,
        [(p, _)] => Some(format!("{head}dnat to 127.0.0.1:{p}")),
        many => {
            let total: u32 = many.iter().map(|(_, w)| w).sum();
            let mut at = 0;
            let entries: Vec<String> = many
                .iter()
                .map(|(p, w)| {
                    let key = if *w == 1 {
                        at.to_string()
                    } else {
                        format!("{at}-{}", at + w - 1)
                    };
                    at += w;
                    format!("{key} : 127.0.0.1 . {p}")
                })
                .collect();
            Some(format!(
                "{head}dnat ip to numgen random mod {total} map {{ {} }}",
                entries.join(", ")
            ))
        }
    }
}

/// The table's comment for `s`: `nonstop live=8081 rotation=8081:1,8082:down`.
pub(super) fn comment(s: &Steering) -> String {
    let rot: Vec<String> = s
        .rotation
        .iter()
        .map(|(p, m)| match m {
            Member::Up(w) => format!("{p}:{w}"),
            Member::Down => format!("{p}:down"),
        })
        .collect();
    format!(
        "nonstop live={} rotation={}",
        s.live.map_or("none".into(), |p| p.to_string()),
        rot.join(",")
    )
}

pub(super) fn parse_comment(text: &str) -> Option<Steering> {
    let rest = text.trim().strip_prefix("nonstop ")?;
    let mut live = None;
    let mut rotation = vec![];
    for part in rest.split_whitespace() {
        match part.split_once('=')? {
            ("live", "none") => {}
            ("live", p) => live = Some(p.parse().ok()?),
            ("rotation", r) => {
                for e in r.split(',').filter(|e| !e.is_empty()) {
                    let (p, m) = e.split_once(':')?;
                    let m = match m {
                        "down" => Member::Down,
                        w => Member::Up(w.parse().ok()?),
                    };
                    rotation.push((p.parse().ok()?, m));
                }
            }
            _ => return None,
        }
    }
    Some(Steering { live, rotation })
}

/// The whole transaction for `s`: the table replaced atomically.
pub fn render(cfg: &Config, s: &Steering) -> String {
    render_for(
        &cfg.app.name,
        &table_name(cfg),
        front(cfg),
        cfg.balanced(),
        s,
    )
}

/// [`render`] from the values alone.
pub(super) fn render_for(app: &str, t: &str, front: u16, balanced: bool, s: &Steering) -> String {
    let rule = rule_for(front, balanced, s).map_or(String::new(), |r| format!("\t\t{r}\n"));
    format!(
        "# Managed by nonstop for {app}: steers new connections to 127.0.0.1:{front}. `nonstop status` shows it.\n\
         add table ip {t}\n\
         delete table ip {t}\n\
         table ip {t} {{\n\
         \tcomment \"{comment}\"\n\
         \tchain out {{\n\
         \t\ttype nat hook output priority -100; policy accept;\n\
         {rule}\
         \t}}\n\
         }}\n",
        comment = comment(s),
    )
}

/// True when `echo` (what `nft -f FILE -e` printed: the kernel's own notification of each object
/// the committed batch created, and the new generation) is the table `want` means: the table,
/// its chain, and exactly `want`'s rule. Anything else, or nothing, is not a confirmation (an
/// nft without `--echo`, or one printing another format): the caller lists the table.
pub(super) fn echoed(cfg: &Config, want: &Steering, echo: &str) -> bool {
    echoed_for(&table_name(cfg), rule(cfg, want), echo)
}

/// [`echoed`] from the values alone: table `t` with exactly `want_rule`.
pub(super) fn echoed_for(t: &str, want_rule: Option<String>, echo: &str) -> bool {
    let chain =
        format!("add chain ip {t} out {{ type nat hook output priority -100; policy accept; }}");
    let rule_head = format!("add rule ip {t} out ");
    let (mut table_seen, mut chain_seen, mut committed) = (false, false, false);
    let mut rules = vec![];
    for l in echo.lines().map(str::trim).filter(|l| !l.is_empty()) {
        if l == format!("add table ip {t}") {
            table_seen = true;
        } else if l == chain {
            chain_seen = true;
        } else if let Some(r) = l.strip_prefix(&rule_head) {
            rules.push(r.to_string());
        } else if l.starts_with("# new generation ") {
            committed = true;
        } else {
            return false;
        }
    }
    table_seen && chain_seen && committed && rules == want_rule.into_iter().collect::<Vec<_>>()
}

/// The rule lines of a listing, read whole: the rules of chain `out` after its `type … hook
/// output …` line, or `Err` naming the first thing in the table nonstop never writes (another
/// chain, a set, a second hook line, a line outside the chain). `nft list table` prints one
/// object or rule per line, each block closed by a `}` of its own.
pub(super) fn rule_lines(listing: &str) -> std::result::Result<Vec<String>, String> {
    let mut rules = vec![];
    // 0: before the table, 1: in the table, 2: in chain `out`, 3: after the table.
    let (mut depth, mut hook) = (0, false);
    for l in listing.lines().map(str::trim).filter(|l| !l.is_empty()) {
        let foreign = |l: &str| Err(format!("it holds `{l}`, which nonstop did not write"));
        match depth {
            0 if l.starts_with("table ip ") && l.ends_with('{') => depth = 1,
            1 if l.starts_with("comment \"") => {}
            1 if l == "chain out {" && !hook => depth = 2,
            1 if l == "}" => depth = 3,
            2 if l.starts_with("type nat hook output ") && !hook => hook = true,
            2 if l == "}" => depth = 1,
            2 if hook => rules.push(l.to_string()),
            _ => return foreign(l),
        }
    }
    if depth != 3 || !hook {
        return Err("its chain `out` with the output hook is missing or not closed".into());
    }
    Ok(rules)
}

/// The steering a table's comment line says, in a listing or a kept ruleset.
pub(super) fn steering_in(text: &str) -> Option<Steering> {
    text.lines()
        .find_map(|l| {
            l.trim()
                .strip_prefix("comment \"")
                .and_then(|c| c.strip_suffix('"'))
        })
        .and_then(parse_comment)
}

/// What a listing says, checked: its comment's state must mean its rule.
pub(super) fn parse_listing(
    text: &str,
    front: u16,
    balanced: bool,
) -> std::result::Result<Steering, Doubt> {
    let st = steering_in(text)
        .ok_or_else(|| Doubt::TableUnreadable("its comment does not say nonstop's state".into()))?;
    let want: Vec<String> = rule_for(front, balanced, &st).into_iter().collect();
    let have = rule_lines(text).map_err(Doubt::TableDiffers)?;
    if have != want {
        return Err(Doubt::TableDiffers(format!(
            "its rule is {:?}, but its state ({}) means {:?}",
            have.join("; "),
            comment(&st),
            want.join("; ")
        )));
    }
    Ok(st)
}
