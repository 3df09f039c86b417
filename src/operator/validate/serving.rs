//! Which server nginx picks for the app's listen addresses (no other `default_server`, no
//! earlier server there), and whether a request through nginx gets what the live slot answers
//! (one small HTTP/1.0 client, loopback only).

use super::check::{check, Check, CheckId, Verdict};
use crate::config::{Config, Slot};
use crate::operator::nginx_conf::{self, Listen, Server};
use std::time::Duration;

fn names_of(s: &Server) -> String {
    match s.real_names().as_slice() {
        [] => "no server_name".into(),
        n => format!("server_name {}", n.join(" ")),
    }
}

/// For each listen address of the server(s) that include the include: is that server the one
/// nginx picks for a request whose Host matches no server_name? Another `default_server` there,
/// or an earlier server block on the same address:port, takes those requests (Debian's
/// `sites-enabled/default`: the deploy "works" and users see "Welcome to nginx!"). A server
/// listening on a specific address takes the requests to that address from a wildcard listen.
pub(super) fn default_server_check(servers: &[Server]) -> Check {
    const NAME: CheckId = CheckId::NginxDefaultServer;
    let apps: Vec<&Server> = servers.iter().filter(|s| s.includes.is_some()).collect();
    if apps.is_empty() {
        return check(
            Verdict::Skip,
            NAME,
            "no `server` block of `http` includes the include (see nginx includes)",
        );
    }
    let mut problems = vec![];
    let mut fine = vec![];
    for app in &apps {
        for l in &app.listens {
            let mut taken = vec![];
            match nginx_conf::default_for(servers, l) {
                Some(d) if d.at != app.at => {
                    let marked = d
                        .listens
                        .iter()
                        .any(|x| x.addr == l.addr && x.port == l.port && x.default);
                    let why = if marked {
                        "is the default_server there"
                    } else {
                        "comes first there, so it is the default"
                    };
                    taken.push(format!(
                        "the server at {} ({}) {why}: requests to {l} whose Host matches no server_name go to it, not to the app's server at {}",
                        d.at,
                        names_of(d),
                        app.at
                    ));
                }
                _ => {}
            }
            if l.addr == "*" {
                // A specific IPv4 address on the same port takes the requests sent to it.
                let specific = servers.iter().filter(|o| o.at != app.at).find_map(|o| {
                    o.listens
                        .iter()
                        .find(|x| {
                            x.port == l.port
                                && x.addr != "*"
                                && !x.addr.starts_with('[')
                                && !app
                                    .listens
                                    .iter()
                                    .any(|a| a.addr == x.addr && a.port == x.port)
                        })
                        .map(|x| (o, x))
                });
                if let Some((o, x)) = specific {
                    taken.push(format!(
                        "the server at {} listens on {x}: requests to that address go to it, not to the app's server at {} (listen {l})",
                        o.at, app.at
                    ));
                }
            }
            if taken.is_empty() {
                fine.push(format!("{} is the default for {l}", app.at));
            } else {
                problems.extend(taken);
            }
        }
    }
    if problems.is_empty() {
        return check(Verdict::Ok, NAME, fine.join("; "));
    }
    let named = apps.iter().all(|a| !a.real_names().is_empty());
    if named {
        // The app's server is picked by its names; only other names (and bare IPs) miss it.
        check(
            Verdict::Warn,
            NAME,
            format!(
                "{}; requests for {} still reach the app",
                problems.join("; "),
                apps.iter()
                    .map(|a| names_of(a))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        )
    } else {
        check(
            Verdict::Fail,
            NAME,
            format!(
                "{} (add `default_server` to the app's listen, or remove the other server)",
                problems.join("; ")
            ),
        )
    }
}

/// One HTTP/1.0 answer, as the check shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    pub status: u16,
    pub body: String,
}

impl std::fmt::Display for Answer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut b: String = self
            .body
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
            .chars()
            .take(60)
            .collect();
        if self.body.chars().count() > 60 {
            b.push('…');
        }
        write!(f, "HTTP {} {b:?}", self.status)
    }
}

/// GET `path` from `addr` with `Host: host`: one HTTP/1.0 request (no keep-alive, no chunks),
/// 2 s for the connect and 2 s for the whole answer, at most 64 KiB of body.
pub fn get(
    addr: std::net::SocketAddr,
    host: &str,
    path: &str,
) -> std::result::Result<Answer, String> {
    use std::io::{Read, Write};
    use std::time::Instant;
    let limit = Duration::from_secs(2);
    let mut s = std::net::TcpStream::connect_timeout(&addr, limit).map_err(|e| e.to_string())?;
    let t0 = Instant::now();
    s.set_write_timeout(Some(limit))
        .map_err(|e| e.to_string())?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: {host}\r\nUser-Agent: nonstop-validate\r\nAccept: */*\r\n\r\n")
        .map_err(|e| e.to_string())?;
    let mut buf = vec![];
    let mut chunk = [0u8; 8192];
    loop {
        let left = limit.saturating_sub(t0.elapsed());
        if left.is_zero() {
            return Err("no complete answer within 2 s".into());
        }
        s.set_read_timeout(Some(left)).map_err(|e| e.to_string())?;
        match s.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => {
                buf.extend_from_slice(&chunk[..n]);
                if buf.len() > 64 * 1024 {
                    break;
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e.to_string()),
        }
    }
    let text = String::from_utf8_lossy(&buf);
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .lines()
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| {
            format!(
                "not an HTTP answer: {:?}",
                head.chars().take(40).collect::<String>()
            )
        })?;
    Ok(Answer {
        status,
        body: body.to_string(),
    })
}

/// True for the pages nginx makes itself (its welcome page, its error pages).
fn nginx_page(body: &str) -> bool {
    body.contains("Welcome to nginx") || body.contains("<center>nginx")
}

/// Where a loopback client reaches `l`, or `None` when it listens on another address or TLS.
fn loopback(l: &Listen) -> Option<std::net::SocketAddr> {
    if l.tls {
        return None;
    }
    let ip: std::net::IpAddr = match l.addr.as_str() {
        "*" | "127.0.0.1" => std::net::Ipv4Addr::LOCALHOST.into(),
        "[::]" | "[::1]" => std::net::Ipv6Addr::LOCALHOST.into(),
        _ => return None,
    };
    Some((ip, l.port).into())
}

/// GET the include's location through nginx's listen port (loopback only) and straight from
/// the live slot; they must agree. Nothing live: skip. The slot not answering: nginx must
/// answer as a proxy with nothing behind it (502/504), not with a page of its own.
pub(super) fn serves_live_check(cfg: &Config, servers: &[Server], live: Option<&Slot>) -> Check {
    const NAME: CheckId = CheckId::NginxServesLive;
    let Some(slot) = live else {
        return check(
            Verdict::Skip,
            NAME,
            "no slot is live yet: nothing to compare",
        );
    };
    let Some(app) = servers.iter().find(|s| s.includes.is_some()) else {
        return check(Verdict::Skip, NAME, "no server block includes the include");
    };
    let mut ls: Vec<&Listen> = app.listens.iter().collect();
    ls.sort_by_key(|l| l.addr.starts_with('['));
    let Some((l, addr)) = ls.iter().find_map(|l| loopback(l).map(|a| (*l, a))) else {
        return check(
            Verdict::Skip,
            NAME,
            format!(
                "the app's server at {} listens on {} only: no plain HTTP on loopback to probe",
                app.at,
                app.listens
                    .iter()
                    .map(|l| l.to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        );
    };
    let path = app.includes.clone().unwrap_or_else(|| "/".into());
    let host = app
        .real_names()
        .first()
        .map(|n| n.to_string())
        .unwrap_or_else(|| addr.to_string());
    let via = match get(addr, &host, &path) {
        Ok(a) => a,
        Err(e) => {
            return check(
                Verdict::Fail,
                NAME,
                format!(
                    "GET {path} on {addr} (listen {l} of {}): no answer: {e}",
                    app.at
                ),
            )
        }
    };
    // The slot as nginx reaches it: nginx.host (what the include names) and its port.
    let h = cfg.nginx.host.trim_start_matches('[').trim_end_matches(']');
    let slot_addr = std::net::ToSocketAddrs::to_socket_addrs(&(h, slot.port))
        .ok()
        .and_then(|mut a| a.next())
        .unwrap_or_else(|| (std::net::Ipv4Addr::LOCALHOST, slot.port).into());
    let direct = get(
        slot_addr,
        &format!("{}:{}", cfg.nginx.host, slot.port),
        &path,
    );
    let shown = format!("GET {path} through nginx ({addr}, Host {host})");
    match direct {
        Err(e) if matches!(via.status, 502 | 504) => check(
            Verdict::Ok,
            NAME,
            format!(
                "{shown}: {} while slot {} (port {}) does not answer ({e}): nginx proxies to it",
                via, slot.name, slot.port
            ),
        ),
        Err(e) => check(
            Verdict::Warn,
            NAME,
            format!(
                "{shown}: {via}, but slot {} (port {}) does not answer ({e}): that answer comes from elsewhere (an error_page, or another server); probe again once the slot runs",
                slot.name, slot.port
            ),
        ),
        Ok(d) if d == via => check(
            Verdict::Ok,
            NAME,
            format!(
                "{shown} and on slot {} (port {}) answer the same: HTTP {}, {} bytes",
                slot.name,
                slot.port,
                d.status,
                d.body.len()
            ),
        ),
        Ok(d) if d.status == via.status && !nginx_page(&via.body) => check(
            Verdict::Warn,
            NAME,
            format!(
                "{shown}: {via}; slot {} (port {}): {d}: same status, other body (fine if the page changes per request)",
                slot.name, slot.port
            ),
        ),
        Ok(d) => check(
            Verdict::Fail,
            NAME,
            format!(
                "{shown}: {via}; slot {} (port {}) itself: {d}: nginx does not serve the live slot",
                slot.name, slot.port
            ),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    #[test]
    fn a_default_server_elsewhere_fails_unless_the_app_is_named() {
        let dump = |app_names: &str, flag: &str| {
            vec![
                ("/n/nginx.conf".to_string(), "http {\n include /n/sites/*;\n}\n".to_string()),
                (
                    "/n/sites/a-default".to_string(),
                    format!("server {{\n listen 80{flag};\n server_name _;\n}}\n"),
                ),
                (
                    "/n/sites/b-app".to_string(),
                    format!("server {{\n listen 80;\n{app_names} location / {{ include /n/x.inc; }}\n}}\n"),
                ),
                ("/n/x.inc".to_string(), "set $service_url http://127.0.0.1:8081;\n".to_string()),
            ]
        };
        let run = |d: Vec<(String, String)>| {
            let tree = nginx_conf::load(&d);
            default_server_check(&nginx_conf::servers(&tree, Path::new("/n/x.inc")))
        };
        let c = run(dump("", " default_server"));
        assert_eq!(c.verdict, Verdict::Fail, "{c}");
        assert!(
            c.detail
                .contains("/n/sites/a-default:1 (no server_name) is the default_server"),
            "{c}"
        );
        let c = run(dump("", ""));
        assert_eq!(c.verdict, Verdict::Fail, "{c}");
        assert!(c.detail.contains("comes first there"), "{c}");
        let c = run(dump(" server_name app.example.com;\n", " default_server"));
        assert_eq!(c.verdict, Verdict::Warn, "{c}");
        assert!(
            c.detail
                .contains("requests for server_name app.example.com still reach the app"),
            "{c}"
        );
        // Alone on its port, or on another port: fine.
        let mut d = dump("", " default_server");
        d[1].1 = "server {\n listen 81 default_server;\n}\n".into();
        assert_eq!(run(d).verdict, Verdict::Ok);
        // A specific address on the same port takes what is sent to it.
        let mut d = dump("", "");
        d[1].1 = "server {\n listen 127.0.0.1:80;\n}\n".into();
        let c = run(d);
        assert_eq!(c.verdict, Verdict::Fail, "{c}");
        assert!(c.detail.contains("listens on 127.0.0.1:80"), "{c}");
    }
}
