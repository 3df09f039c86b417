//! The nginx checks of a host: the master runs, `nginx -T` passes, and the files it lists
//! load the include and use its variable (balanced mode: the upstream file and its name); the
//! include names a slot. nftables mode goes on in [`super::nftables`]; which server answers,
//! and what, in [`super::serving`].

use super::check::{check, Check, CheckId, Verdict};
use super::nftables::nftables_checks;
use super::serving::{default_server_check, serves_live_check};
use crate::config::Config;
use crate::nginx;
use crate::nginx_tokens::words;
use crate::operator::nginx_conf::{self, same_file};

/// The test command with `-t` turned into `-T` (test and dump the whole configuration).
pub fn dump_command(cfg: &Config) -> Option<Vec<String>> {
    let mut argv = cfg.nginx.test.clone();
    let i = argv.iter().position(|a| a == "-t")?;
    argv[i] = "-T".into();
    Some(argv)
}

/// The files of an `nginx -T` dump: (path, text) in the order nginx read them.
pub fn parse_dump(out: &str) -> Vec<(String, String)> {
    let mut files: Vec<(String, String)> = vec![];
    for line in out.lines() {
        if let Some(p) = line
            .strip_prefix("# configuration file ")
            .and_then(|r| r.strip_suffix(':'))
        {
            files.push((p.to_string(), String::new()));
        } else if let Some((_, text)) = files.last_mut() {
            text.push_str(line);
            text.push('\n');
        }
    }
    files
}

/// True if `arg` uses `$var` (and not a longer name that starts with it).
pub(super) fn uses_var(arg: &str, var: &str) -> bool {
    let want = format!("${var}");
    let braced = format!("${{{var}}}");
    arg.contains(&braced)
        || arg.match_indices(&want).any(|(i, _)| {
            !arg[i + want.len()..].starts_with(|c: char| c.is_ascii_alphanumeric() || c == '_')
        })
}

pub(super) fn nginx_checks(cfg: &Config) -> Vec<Check> {
    let mut out = vec![];
    out.push(match nginx::master_pid(cfg) {
        Ok(pid) => check(
            Verdict::Ok,
            CheckId::NginxRunning,
            format!("master pid {pid} ({})", cfg.nginx.pid_file.display()),
        ),
        Err(e) => check(Verdict::Fail, CheckId::NginxRunning, e.to_string()),
    });
    let names = [
        CheckId::NginxIncludes,
        CheckId::NginxUsesVar,
        CheckId::NginxDefaultServer,
        CheckId::NginxServesLive,
    ];
    let Some(argv) = dump_command(cfg) else {
        out.push(check(
            Verdict::Fail,
            CheckId::NginxDump,
            format!(
                "cannot derive a dump command from nginx.test {:?}: it has no -t to turn into -T",
                cfg.nginx.test
            ),
        ));
        out.extend(names.map(|n| check(Verdict::Skip, n, "needs `nginx -T`")));
        return out;
    };
    let shown = argv.join(" ");
    let dump = match nginx::run(&argv) {
        Ok((true, text)) => text,
        Ok((false, text)) => {
            let why = text
                .lines()
                .find(|l| l.contains("[emerg]") || l.contains("failed"))
                .unwrap_or("no output")
                .trim()
                .to_string();
            out.push(check(
                Verdict::Fail,
                CheckId::NginxDump,
                format!("`{shown}` failed: {why}"),
            ));
            out.extend(names.map(|n| check(Verdict::Skip, n, "needs `nginx -T`")));
            return out;
        }
        Err(e) => {
            out.push(check(Verdict::Fail, CheckId::NginxDump, e.to_string()));
            out.extend(names.map(|n| check(Verdict::Skip, n, "needs `nginx -T`")));
            return out;
        }
    };
    let files = parse_dump(&dump);
    out.push(check(
        Verdict::Ok,
        CheckId::NginxDump,
        format!(
            "`{shown}` passed: {} file{} loaded",
            files.len(),
            if files.len() == 1 { "" } else { "s" }
        ),
    ));
    if cfg.traffic.via == crate::traffic::Via::Nftables {
        out.extend(nftables_checks(cfg, &files));
        return out;
    }
    let include = &cfg.nginx.include;
    out.push(if files.iter().any(|(p, _)| same_file(p, include)) {
        check(
            Verdict::Ok,
            CheckId::NginxIncludes,
            format!("{} is loaded by nginx", include.display()),
        )
    } else {
        check(
            Verdict::Fail,
            CheckId::NginxIncludes,
            format!(
                "no file nginx loads includes {}: add `include {};` inside the location that proxies (nginx -T lists {} files, not that one)",
                include.display(),
                include.display(),
                files.len()
            ),
        )
    });
    let var = &cfg.nginx.variable;
    let users: Vec<&str> = files
        .iter()
        .filter(|(p, _)| !same_file(p, include))
        .filter(|(_, text)| {
            words(text)
                .iter()
                .any(|w| w[0] == "proxy_pass" && w.get(1).is_some_and(|a| uses_var(a, var)))
        })
        .map(|(p, _)| p.as_str())
        .collect();
    out.push(if users.is_empty() {
        check(
            Verdict::Fail,
            CheckId::NginxUsesVar,
            format!("no `proxy_pass ${var};` in any file nginx loads: the include would set ${var} and nothing would use it"),
        )
    } else {
        check(
            Verdict::Ok,
            CheckId::NginxUsesVar,
            format!("proxy_pass ${var} in {}", users.join(", ")),
        )
    });
    if let Some(up) = &cfg.nginx.upstream_file {
        let name = &cfg.nginx.upstream_name;
        let loaded = files.iter().any(|(p, _)| same_file(p, up));
        let used = files.iter().any(|(_, text)| {
            words(text).iter().any(|w| {
                w[0] == "proxy_pass"
                    && w.get(1).is_some_and(|a| {
                        let rest = a.split_once("://").map_or(a.as_str(), |(_, r)| r);
                        rest.split(['/', '$']).next() == Some(name.as_str())
                    })
            })
        });
        out.push(match (loaded, used) {
            (true, true) => check(
                Verdict::Ok,
                CheckId::NginxUpstream,
                format!("{} is loaded and `proxy_pass http://{name}` uses it", up.display()),
            ),
            (false, _) => check(
                Verdict::Fail,
                CheckId::NginxUpstream,
                format!("no file nginx loads includes {} (include it at the http level)", up.display()),
            ),
            (true, false) => check(
                Verdict::Fail,
                CheckId::NginxUpstream,
                format!("no `proxy_pass http://{name}` in any file nginx loads: balanced mode would balance nothing"),
            ),
        });
    }
    let servers = nginx_conf::servers(&nginx_conf::load(&files), include);
    out.push(default_server_check(&servers));
    let live = nginx::read_include_port(cfg)
        .ok()
        .flatten()
        .and_then(|p| cfg.slots.iter().find(|s| s.port == p));
    out.push(match nginx::read_include_port(cfg) {
        Ok(None) => check(
            Verdict::Ok,
            CheckId::Include,
            format!(
                "{} is not written yet: the first deploy goes to slot {}",
                include.display(),
                cfg.slots[0].name
            ),
        ),
        Ok(Some(p)) => match cfg.slots.iter().find(|s| s.port == p) {
            Some(s) => check(
                Verdict::Ok,
                CheckId::Include,
                format!("{} points at port {p} (slot {})", include.display(), s.name),
            ),
            None => check(
                Verdict::Warn,
                CheckId::Include,
                format!(
                    "{} points at port {p}, which is no slot: the first deploy takes over from it",
                    include.display()
                ),
            ),
        },
        Err(e) => check(Verdict::Fail, CheckId::Include, e.to_string()),
    });
    out.push(serves_live_check(cfg, &servers, live));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_files_and_variable_uses_in_a_dump() {
        let dump = "# configuration file /etc/nginx/nginx.conf:\nhttp { include /etc/nginx/sites/*.conf; }\n\n# configuration file /etc/nginx/sites/a.conf:\nserver { location / { include /x/service-url.inc; proxy_pass $service_url; } }\n\n# configuration file /x/service-url.inc:\nset $service_url http://127.0.0.1:8081;\n";
        let files = parse_dump(dump);
        assert_eq!(files.len(), 3);
        assert_eq!(files[2].0, "/x/service-url.inc");
        assert!(words(&files[1].1)
            .iter()
            .any(|w| w[0] == "proxy_pass" && uses_var(&w[1], "service_url")));
        assert!(uses_var("$service_url/api", "service_url"));
        assert!(uses_var("http://${service_url}", "service_url"));
        assert!(!uses_var("$service_url2", "service_url"));
    }
}
