//! nginx's configuration as nginx reads it, rebuilt from an `nginx -T` dump, for `nonstop
//! validate`: every statement with its file and line, blocks nested, and each `include`
//! replaced by the statements of the files it matched (in nginx's glob order, i.e. sorted), so
//! `server` blocks come out in the order nginx sees them. On top of that: the `server` blocks of
//! `http` with their `listen` addresses and names, which of them include a given file (the
//! include nonstop owns), and which server is the default for an address:port.
//!
//! It reads only what `nginx -T` printed (nginx already resolved the config); it is no general
//! nginx parser (no `map`/`if` semantics, `[...]` globs are matched literally).

use crate::nginx_tokens::{self, Token};
use std::path::Path;

/// One statement: its words (quotes removed), where it starts, and its block.
#[derive(Debug, Clone, Default)]
pub struct Stmt {
    pub words: Vec<String>,
    pub file: String,
    pub line: usize,
    /// The `{ ... }` contents; for an `include`, the statements of the files it includes.
    pub block: Vec<Stmt>,
    /// For an `include`: the files it matched, in nginx's order.
    pub included: Vec<String>,
}

impl Stmt {
    fn is(&self, name: &str) -> bool {
        self.words.first().is_some_and(|w| w == name)
    }
    fn is_include(&self) -> bool {
        self.is("include") && self.words.len() >= 2
    }
    /// `FILE:LINE`
    pub fn at(&self) -> String {
        format!("{}:{}", self.file, self.line)
    }
}

/// True if `a` (as nginx printed it) and `b` name the same file.
pub fn same_file(a: &str, b: &Path) -> bool {
    Path::new(a) == b
        || matches!((std::fs::canonicalize(a), std::fs::canonicalize(b)), (Ok(x), Ok(y)) if x == y)
}

/// The statements of one file (read by [`nginx_tokens`]; a statement is at its first word's
/// line, a block without words at its `{`).
pub fn parse_file(file: &str, text: &str) -> Vec<Stmt> {
    let mut levels: Vec<Vec<Stmt>> = vec![vec![]];
    let mut heads: Vec<Stmt> = vec![];
    let mut words: Vec<String> = vec![];
    let mut first_line = 0usize;
    for t in nginx_tokens::tokens(text).0 {
        match t.token {
            Token::Word(w) => {
                if words.is_empty() {
                    first_line = t.line;
                }
                words.push(w);
            }
            Token::End => {
                if !words.is_empty() {
                    let s = Stmt {
                        words: std::mem::take(&mut words),
                        file: file.to_string(),
                        line: first_line,
                        ..Stmt::default()
                    };
                    levels.last_mut().expect("never empty").push(s);
                }
            }
            Token::Open => {
                heads.push(Stmt {
                    line: if words.is_empty() { t.line } else { first_line },
                    words: std::mem::take(&mut words),
                    file: file.to_string(),
                    ..Stmt::default()
                });
                levels.push(vec![]);
            }
            Token::Close => {
                words.clear();
                if let (Some(mut head), true) = (heads.pop(), levels.len() > 1) {
                    head.block = levels.pop().expect("checked");
                    levels.last_mut().expect("never empty").push(head);
                }
            }
        }
    }
    // Unclosed blocks (nginx -T passed, so only in a truncated dump): close them.
    while let (Some(mut head), true) = (heads.pop(), levels.len() > 1) {
        head.block = levels.pop().expect("checked");
        levels.last_mut().expect("never empty").push(head);
    }
    levels.pop().unwrap_or_default()
}

/// The whole configuration from a dump's files (path, text) in the order nginx read them: the
/// first file is the main one; includes are expanded in place.
pub fn load(files: &[(String, String)]) -> Vec<Stmt> {
    let Some((main, text)) = files.first() else {
        return vec![];
    };
    let dir = Path::new(main).parent().unwrap_or(Path::new("/"));
    expand(parse_file(main, text), files, dir, 0)
}

fn expand(stmts: Vec<Stmt>, files: &[(String, String)], dir: &Path, depth: usize) -> Vec<Stmt> {
    stmts
        .into_iter()
        .map(|mut s| {
            if s.is_include() && depth < 16 {
                let pat = dir.join(&s.words[1]);
                let pat = pat.to_string_lossy();
                let mut matched: Vec<&(String, String)> = files
                    .iter()
                    .filter(|(p, _)| path_matches(&pat, p))
                    .collect();
                matched.sort_by(|a, b| a.0.cmp(&b.0));
                matched.dedup_by(|a, b| a.0 == b.0);
                s.included = matched.iter().map(|(p, _)| p.clone()).collect();
                s.block = matched
                    .iter()
                    .flat_map(|(p, t)| expand(parse_file(p, t), files, dir, depth + 1))
                    .collect();
            } else {
                s.block = expand(std::mem::take(&mut s.block), files, dir, depth);
            }
            s
        })
        .collect()
}

/// An include pattern against a file nginx loaded: equal paths, or `*`/`?` per component.
fn path_matches(pat: &str, path: &str) -> bool {
    if !pat.contains(['*', '?']) {
        return same_file(path, Path::new(pat));
    }
    let p: Vec<&str> = pat
        .split('/')
        .filter(|c| !c.is_empty() && *c != ".")
        .collect();
    let n: Vec<&str> = path
        .split('/')
        .filter(|c| !c.is_empty() && *c != ".")
        .collect();
    p.len() == n.len()
        && p.iter()
            .zip(&n)
            .all(|(a, b)| crate::releases::glob_match(a, b))
}

/// The statements at one level with includes expanded (the include statements dropped).
fn level(stmts: &[Stmt]) -> Vec<&Stmt> {
    let mut out = vec![];
    for s in stmts {
        if s.is_include() {
            out.extend(level(&s.block));
        } else {
            out.push(s);
        }
    }
    out
}

/// One `listen` of a server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listen {
    /// `*` (any IPv4 address), `127.0.0.1`, `[::]`, ...
    pub addr: String,
    pub port: u16,
    /// `default_server` (or the old `default`).
    pub default: bool,
    /// `ssl` or `quic`: not plain HTTP.
    pub tls: bool,
}

impl std::fmt::Display for Listen {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.addr, self.port)
    }
}

/// Parse a `listen` statement's words; `None` for a unix socket or a form nginx would reject.
pub fn parse_listen(words: &[String]) -> Option<Listen> {
    let a = words.get(1)?;
    if a.starts_with("unix:") {
        return None;
    }
    let (host, port) = if let Some(rest) = a.strip_prefix('[') {
        let (h, after) = rest.split_once(']')?;
        let port = match after.strip_prefix(':') {
            Some(p) => p.parse().ok()?,
            None if after.is_empty() => 80,
            None => return None,
        };
        (format!("[{h}]"), port)
    } else if a.chars().all(|c| c.is_ascii_digit()) {
        ("*".to_string(), a.parse().ok()?)
    } else {
        match a.rsplit_once(':') {
            Some((h, p)) => (h.to_string(), p.parse().ok()?),
            None => (a.clone(), 80),
        }
    };
    let addr = match host.as_str() {
        "0.0.0.0" => "*".to_string(),
        "localhost" => "127.0.0.1".to_string(),
        "[::0]" | "[0:0:0:0:0:0:0:0]" => "[::]".to_string(),
        _ => host,
    };
    let params = &words[2..];
    Some(Listen {
        addr,
        port,
        default: params
            .iter()
            .any(|p| p == "default_server" || p == "default"),
        tls: params.iter().any(|p| p == "ssl" || p == "quic"),
    })
}

/// A `server` block of `http`.
#[derive(Debug, Clone)]
pub struct Server {
    /// Where its `server {` is.
    pub at: String,
    pub listens: Vec<Listen>,
    pub names: Vec<String>,
    /// `Some(path)` when this server includes the file asked about: the plain path of the
    /// location the include sits in (`/` at server level or in a regex location).
    pub includes: Option<String>,
}

impl Server {
    /// The names a request can be sent with to reach this server by name, without catch-alls
    /// (`_`, `""`, `localhost`), wildcards and regexes.
    pub fn real_names(&self) -> Vec<&str> {
        self.names
            .iter()
            .map(String::as_str)
            .filter(|n| {
                !n.is_empty()
                    && !matches!(*n, "_" | "localhost")
                    && !n.starts_with('~')
                    && !n.contains('*')
                    && !n.starts_with('.')
            })
            .collect()
    }
}

/// The `server` blocks of every `http` block, in nginx's order; `includes` is set for those
/// that include `target`.
pub fn servers(tree: &[Stmt], target: &Path) -> Vec<Server> {
    let mut out = vec![];
    for h in level(tree).into_iter().filter(|s| s.is("http")) {
        for s in level(&h.block).into_iter().filter(|s| s.is("server")) {
            let direct = level(&s.block);
            let mut listens: Vec<Listen> = direct
                .iter()
                .filter(|d| d.is("listen"))
                .filter_map(|d| parse_listen(&d.words))
                .collect();
            if !direct.iter().any(|d| d.is("listen")) {
                // nginx's default: *:80 when run as root (*:8000 otherwise).
                listens.push(Listen {
                    addr: "*".into(),
                    port: 80,
                    default: false,
                    tls: false,
                });
            }
            let names = direct
                .iter()
                .filter(|d| d.is("server_name"))
                .flat_map(|d| d.words[1..].iter().cloned())
                .collect();
            out.push(Server {
                at: s.at(),
                listens,
                names,
                includes: find_include(&s.block, target, None),
            });
        }
    }
    out
}

/// Where `target` is included under `stmts`: the innermost plain location path, or `/`.
fn find_include(stmts: &[Stmt], target: &Path, loc: Option<&str>) -> Option<String> {
    for s in stmts {
        if s.is_include() {
            if s.included.iter().any(|f| same_file(f, target)) {
                return Some(loc.unwrap_or("/").to_string());
            }
            if let Some(r) = find_include(&s.block, target, loc) {
                return Some(r);
            }
        } else if s.is("location") {
            let path = match s.words.get(1).map(String::as_str) {
                Some("=" | "^~") => s.words.get(2).map(String::as_str),
                Some(p) if p.starts_with('/') => Some(p),
                _ => None, // a regex or named location: no path to send
            };
            let here = path.filter(|p| p.starts_with('/')).or(loc);
            if let Some(r) = find_include(&s.block, target, here) {
                return Some(r);
            }
        } else if let Some(r) = find_include(&s.block, target, loc) {
            return Some(r);
        }
    }
    None
}

/// The server that gets a request to `l`'s address:port whose Host matches no server_name:
/// the one marked `default_server` there, else the first one listening there.
pub fn default_for<'a>(servers: &'a [Server], l: &Listen) -> Option<&'a Server> {
    let on = |s: &&Server| {
        s.listens
            .iter()
            .any(|x| x.addr == l.addr && x.port == l.port)
    };
    servers
        .iter()
        .filter(on)
        .find(|s| {
            s.listens
                .iter()
                .any(|x| x.addr == l.addr && x.port == l.port && x.default)
        })
        .or_else(|| servers.iter().find(on))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dump() -> Vec<(String, String)> {
        vec![
            (
                "/etc/nginx/nginx.conf".into(),
                "user www-data;\nhttp {\n  include /etc/nginx/conf.d/*.conf;\n  include /etc/nginx/sites-enabled/*;\n}\n".into(),
            ),
            (
                "/etc/nginx/sites-enabled/myapp".into(),
                "server {\n  listen 80;\n  server_name _;\n  location /app/ {\n    include /etc/nginx/conf.d/service-url.inc;\n    proxy_pass $service_url;\n  }\n}\n".into(),
            ),
            (
                "/etc/nginx/sites-enabled/default".into(),
                "# Default server configuration\nserver {\n\tlisten 80 default_server;\n\tlisten [::]:80 default_server;\n\troot /var/www/html; # the welcome page\n\tserver_name \"_\";\n\tlocation / { try_files $uri ${uri}/ =404; }\n}\n".into(),
            ),
            (
                "/etc/nginx/conf.d/service-url.inc".into(),
                "set $service_url http://127.0.0.1:8081;\n".into(),
            ),
        ]
    }

    #[test]
    fn servers_come_in_nginx_order_with_their_listens_and_the_include() {
        let tree = load(&dump());
        let s = servers(&tree, Path::new("/etc/nginx/conf.d/service-url.inc"));
        assert_eq!(s.len(), 2, "{s:#?}");
        // sites-enabled/* sorts default before myapp.
        assert_eq!(s[0].at, "/etc/nginx/sites-enabled/default:2");
        assert_eq!(s[0].listens.len(), 2);
        assert!(s[0].listens.iter().all(|l| l.default && l.port == 80));
        assert_eq!(s[0].listens[1].addr, "[::]");
        assert_eq!(s[0].names, ["_"]);
        assert_eq!(s[0].includes, None);
        assert_eq!(s[1].at, "/etc/nginx/sites-enabled/myapp:1");
        assert_eq!(s[1].includes.as_deref(), Some("/app/"));
        assert!(s[1].real_names().is_empty());
        let l = &s[1].listens[0];
        assert_eq!((l.addr.as_str(), l.port, l.default), ("*", 80, false));
        assert_eq!(default_for(&s, l).unwrap().at, s[0].at);
    }

    #[test]
    fn listen_forms() {
        let l = |a: &str| {
            let mut w = vec!["listen".to_string()];
            w.extend(a.split_whitespace().map(String::from));
            parse_listen(&w)
        };
        assert_eq!(l("8080").unwrap().to_string(), "*:8080");
        assert_eq!(l("127.0.0.1:81").unwrap().to_string(), "127.0.0.1:81");
        assert_eq!(l("localhost:81").unwrap().to_string(), "127.0.0.1:81");
        assert_eq!(l("0.0.0.0:80").unwrap().to_string(), "*:80");
        assert_eq!(l("10.0.0.5").unwrap().to_string(), "10.0.0.5:80");
        assert_eq!(l("[::1]").unwrap().to_string(), "[::1]:80");
        assert!(l("443 ssl default").unwrap().tls);
        assert!(l("443 ssl default").unwrap().default);
        assert!(l("unix:/run/x.sock").is_none());
    }

    #[test]
    fn statements_keep_their_lines_and_quotes() {
        let t = parse_file("f", "a 1;\n# x { ;\nb \"q ; {\" 'r' {\n  c ${x}y;\n}\n");
        assert_eq!(t.len(), 2);
        assert_eq!(
            (t[0].words.clone(), t[0].line),
            (vec!["a".into(), "1".into()], 1)
        );
        assert_eq!(t[1].words, ["b", "q ; {", "r"]);
        assert_eq!(t[1].line, 3);
        assert_eq!(t[1].block[0].words, ["c", "${x}y"]);
        assert_eq!(t[1].block[0].line, 4);
    }
}
