//! The library's module graph, read from its source, against ARCHITECTURE.md's reading order.
//!
//! Each file under `src/` (the binaries in `src/bin/` aside) is a node; it points at every file
//! it names a path into: `use crate::…`, `crate::…`, `super::…`, `self::…` and a child module's
//! `name::…`, each path resolved to the file of its longest module prefix, and through that
//! file's re-exports (`pub use`, a glob included) to the file that defines the item. Comments,
//! string literals, `#[cfg(test)]` items and test-only files are left out: a unit test may
//! reach any layer.
//!
//! ARCHITECTURE.md's section "Reading order, bottom-up" lists the layers, lowest first, each
//! with its modules. The test asserts that every file belongs to exactly one layer, that no file
//! names a file of a later layer, and that the graph has no circle at all (within a layer
//! neither), so the code can be read from the first layer up without a forward reference.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Rust source without comments and with every string and char literal emptied, so that a
/// path in a doc comment or a message is not read as a use.
fn strip(src: &str) -> String {
    let c: Vec<char> = src.chars().collect();
    let mut out = String::with_capacity(src.len());
    let mut i = 0;
    let ident = |ch: char| ch.is_alphanumeric() || ch == '_';
    while i < c.len() {
        let at = |k: usize| c.get(k).copied().unwrap_or('\0');
        if c[i] == '/' && at(i + 1) == '/' {
            while i < c.len() && c[i] != '\n' {
                i += 1;
            }
        } else if c[i] == '/' && at(i + 1) == '*' {
            let mut depth = 0;
            while i < c.len() {
                if c[i] == '/' && at(i + 1) == '*' {
                    depth += 1;
                    i += 2;
                } else if c[i] == '*' && at(i + 1) == '/' {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    i += 1;
                }
            }
            out.push(' ');
        } else if (c[i] == 'r' || (c[i] == 'b' && at(i + 1) == 'r'))
            && (i == 0 || !ident(c[i - 1]))
            && {
                let mut k = i + if c[i] == 'b' { 2 } else { 1 };
                while at(k) == '#' {
                    k += 1;
                }
                at(k) == '"'
            }
        {
            // A raw string: r"…", r#"…"#, br"…".
            let mut k = i + if c[i] == 'b' { 2 } else { 1 };
            let mut hashes = 0;
            while at(k) == '#' {
                hashes += 1;
                k += 1;
            }
            k += 1;
            loop {
                if k >= c.len() {
                    break;
                }
                if c[k] == '"' && (1..=hashes).all(|h| at(k + h) == '#') {
                    k += 1 + hashes;
                    break;
                }
                k += 1;
            }
            out.push_str("\"\"");
            i = k;
        } else if c[i] == '"' {
            i += 1;
            while i < c.len() && c[i] != '"' {
                i += if c[i] == '\\' { 2 } else { 1 };
            }
            i += 1;
            out.push_str("\"\"");
        } else if c[i] == '\'' && (at(i + 1) == '\\' || at(i + 2) == '\'') {
            // A char literal ('x', '\n', '\''); a lifetime ('a) has no closing quote.
            i += 1;
            while i < c.len() && c[i] != '\'' {
                i += if c[i] == '\\' { 2 } else { 1 };
            }
            i += 1;
            out.push_str("' '");
        } else {
            out.push(c[i]);
            i += 1;
        }
    }
    drop_cfg_test(&out)
}

/// `src` without the items marked `#[cfg(test)]` (a `mod tests { … }`, a test-only `fn`).
fn drop_cfg_test(src: &str) -> String {
    let mut out = String::new();
    let mut rest = src;
    while let Some(at) = rest.find("#[cfg(test)]") {
        out.push_str(&rest[..at]);
        let item = &rest[at..];
        let end = match (item.find('{'), item.find(';')) {
            (Some(b), s) if s.is_none_or(|s| b < s) => {
                let mut depth = 0;
                let mut end = item.len();
                for (k, ch) in item.char_indices().skip(b) {
                    match ch {
                        '{' => depth += 1,
                        '}' => {
                            depth -= 1;
                            if depth == 0 {
                                end = k + 1;
                                break;
                            }
                        }
                        _ => {}
                    }
                }
                end
            }
            (_, Some(s)) => s + 1,
            _ => item.len(),
        };
        rest = &item[end..];
    }
    out.push_str(rest);
    out
}

/// The paths a `use` tree names, each as its segments and the name it binds (`self` in braces
/// names the prefix, a glob binds `*`).
fn use_paths(prefix: &[String], tree: &str, out: &mut Vec<(Vec<String>, String)>) {
    let tree = tree.trim();
    if let Some(open) = tree.find('{') {
        let head: Vec<String> = segments(tree[..open].trim_end_matches(':'));
        let mut base = prefix.to_vec();
        base.extend(head);
        let inner = &tree[open + 1..tree.rfind('}').unwrap_or(tree.len())];
        let mut depth = 0;
        let mut from = 0;
        for (k, ch) in inner.char_indices() {
            match ch {
                '{' => depth += 1,
                '}' => depth -= 1,
                ',' if depth == 0 => {
                    use_paths(&base, &inner[from..k], out);
                    from = k + 1;
                }
                _ => {}
            }
        }
        use_paths(&base, &inner[from..], out);
        return;
    }
    let (tree, alias) = match tree.split_once(" as ") {
        Some((t, a)) => (t.trim(), Some(a.trim().to_string())),
        None => (tree, None),
    };
    if tree.is_empty() {
        return;
    }
    let mut p = prefix.to_vec();
    for s in segments(tree) {
        if s == "self" && !p.is_empty() || s == "*" {
            continue;
        }
        p.push(s);
    }
    let name = if tree.ends_with('*') {
        "*".to_string()
    } else {
        alias.unwrap_or_else(|| p.last().cloned().unwrap_or_default())
    };
    out.push((p, name));
}

fn segments(path: &str) -> Vec<String> {
    path.split("::")
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(String::from)
        .collect()
}

/// One source file of the library.
struct File {
    rel: String,
    /// Its module path: `supervisor::builtin` (empty for lib.rs).
    module: Vec<String>,
    text: String,
}

fn files() -> Vec<File> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                if p.file_name().unwrap() != "bin" || dir != root().join("src") {
                    walk(&p, out);
                }
            } else if p.extension().is_some_and(|x| x == "rs") {
                out.push(p);
            }
        }
    }
    let mut paths = vec![];
    walk(&root().join("src"), &mut paths);
    paths.sort();
    // A file declared only for tests (`#[cfg(test)] mod tests;`) is a unit test: left out.
    let raw: Vec<(PathBuf, String)> = paths
        .into_iter()
        .map(|p| {
            let t = std::fs::read_to_string(&p).unwrap();
            (p, t)
        })
        .collect();
    let mut test_only = BTreeSet::new();
    for (p, t) in &raw {
        let dir = match p.file_name().unwrap().to_str().unwrap() {
            "mod.rs" | "lib.rs" => p.parent().unwrap().to_path_buf(),
            _ => p.with_extension(""),
        };
        let mut rest = t.as_str();
        while let Some(at) = rest.find("#[cfg(test)]") {
            rest = &rest[at + 12..];
            let item: Vec<&str> = rest.split_whitespace().take(3).collect();
            if let ["mod", name, ..] | ["pub", "mod", name] = item.as_slice() {
                if let Some(name) = name.strip_suffix(';') {
                    test_only.insert(dir.join(format!("{name}.rs")));
                    test_only.insert(dir.join(name).join("mod.rs"));
                }
            }
        }
    }
    raw.into_iter()
        .filter(|(p, _)| !test_only.contains(p))
        .map(|(p, raw)| {
            let rel = p
                .strip_prefix(root())
                .unwrap()
                .to_string_lossy()
                .into_owned();
            let mut module: Vec<String> = rel
                .trim_start_matches("src/")
                .trim_end_matches(".rs")
                .split('/')
                .map(String::from)
                .collect();
            if matches!(module.last().map(String::as_str), Some("mod" | "lib")) {
                module.pop();
            }
            let text = strip(&raw);
            File { rel, module, text }
        })
        .collect()
}

/// The paths a file names, as written (`crate::…`, `super::…`, a child module's `name::…`), and
/// the names it re-exports (`pub use`), each with the path it stands for.
struct Named {
    paths: Vec<Vec<String>>,
    reexports: BTreeMap<String, Vec<String>>,
    /// `pub use path::*`: the modules whose items it re-exports too.
    globs: Vec<Vec<String>>,
    /// The names it defines (`fn`, `struct`, `enum`, `trait`, `type`, `const`, `static`,
    /// `mod`, `macro_rules!`).
    defines: BTreeSet<String>,
}

fn named_paths(f: &File) -> Named {
    let words = |s: &str| -> Vec<String> {
        s.split(|c: char| !(c.is_alphanumeric() || c == '_'))
            .filter(|w| !w.is_empty())
            .map(String::from)
            .collect()
    };
    // Child modules declared here (`mod x;`, `pub mod x;`), which the file may name bare.
    let mut children = BTreeSet::new();
    for stmt in f.text.split([';', '{', '}']) {
        let w = words(stmt);
        if let Some(k) = w.iter().position(|x| x == "mod") {
            if k + 2 == w.len() && stmt.trim_end().ends_with(w[k + 1].as_str()) {
                children.insert(w[k + 1].clone());
            }
        }
    }
    let mut paths = vec![];
    let mut reexports = BTreeMap::new();
    let mut globs = vec![];
    // `use` trees.
    let mut rest = f.text.as_str();
    let mut plain = String::new();
    while let Some(at) = find_word(rest, "use") {
        let before = rest[..at].trim_end();
        let public = before.ends_with("pub")
            || (before.ends_with(')')
                && before
                    .rfind("pub(")
                    .is_some_and(|k| !before[k..].contains([';', '{', '}'])));
        plain.push_str(&rest[..at]);
        let stmt = &rest[at + 3..];
        let end = stmt.find(';').unwrap_or(stmt.len());
        let mut tree = vec![];
        use_paths(&[], &stmt[..end], &mut tree);
        for (p, name) in tree {
            if public && name == "*" {
                globs.push(p.clone());
            } else if public {
                reexports.insert(name, p.clone());
            }
            paths.push(p);
        }
        rest = &stmt[(end + 1).min(stmt.len())..];
    }
    plain.push_str(rest);
    // Inline paths: a word followed by `::`, and the words chained after it.
    let b = plain.as_bytes();
    let is_word = |c: u8| c.is_ascii_alphanumeric() || c == b'_';
    let mut i = 0;
    while i < b.len() {
        if !is_word(b[i]) || (i > 0 && (is_word(b[i - 1]) || b[i - 1] == b':' || b[i - 1] == b'$'))
        {
            i += 1;
            continue;
        }
        let mut segs = vec![];
        let mut k = i;
        loop {
            let s = k;
            while k < b.len() && is_word(b[k]) {
                k += 1;
            }
            segs.push(plain[s..k].to_string());
            if plain[k..].starts_with("::")
                && plain[k + 2..].starts_with(|c: char| c.is_alphanumeric() || c == '_')
            {
                k += 2;
            } else {
                break;
            }
        }
        i = k.max(i + 1);
        if segs.len() > 1 {
            paths.push(segs);
        }
    }
    let ours = |p: &Vec<String>| {
        matches!(p[0].as_str(), "crate" | "super" | "self") || children.contains(&p[0])
    };
    paths.retain(ours);
    reexports.retain(|_, p| ours(p));
    globs.retain(|p| !p.is_empty() && ours(p));
    let w = words(&f.text.replace("macro_rules!", "macro_rules "));
    let defines = w
        .windows(2)
        .filter(|p| {
            matches!(
                p[0].as_str(),
                "fn" | "struct"
                    | "enum"
                    | "trait"
                    | "type"
                    | "const"
                    | "static"
                    | "mod"
                    | "union"
                    | "macro_rules"
            )
        })
        .map(|p| p[1].clone())
        .collect();
    Named {
        paths,
        reexports,
        globs,
        defines,
    }
}

fn find_word(s: &str, w: &str) -> Option<usize> {
    let b = s.as_bytes();
    let mut from = 0;
    while let Some(k) = s[from..].find(w) {
        let at = from + k;
        let before = at == 0 || !(b[at - 1].is_ascii_alphanumeric() || b[at - 1] == b'_');
        let after = b.get(at + w.len()).is_some_and(|c| c.is_ascii_whitespace());
        if before && after {
            return Some(at);
        }
        from = at + w.len();
    }
    None
}

/// `path` as written in the module `module`, made absolute (from the crate root).
fn absolute(module: &[String], path: &[String]) -> Vec<String> {
    let mut full = module.to_vec();
    let mut segs = path;
    match segs[0].as_str() {
        "crate" => {
            full.clear();
            segs = &segs[1..];
        }
        "self" => segs = &segs[1..],
        _ => {}
    }
    while segs.first().is_some_and(|s| s == "super") {
        full.pop();
        segs = &segs[1..];
    }
    full.extend(segs.iter().cloned());
    full
}

/// The file each file points at (itself left out). A path resolves to the file of its longest
/// module prefix; when the item after that prefix is one the file re-exports (`pub use`), to
/// the file the re-export names: a file that uses `crate::config::Config` depends on the file
/// defining `Config`, not on every file `config/mod.rs` gathers.
fn graph(files: &[File]) -> BTreeMap<String, BTreeSet<String>> {
    let named: BTreeMap<&[String], (&File, Named)> = files
        .iter()
        .map(|f| (f.module.as_slice(), (f, named_paths(f))))
        .collect();
    let resolve = |full: Vec<String>| -> &str {
        let mut full = full;
        for _ in 0..16 {
            let n = (0..=full.len())
                .rev()
                .find(|&n| named.contains_key(&full[..n]))
                .unwrap();
            let (file, names) = &named[&full[..n]];
            let Some(item) = full.get(n) else {
                return file.rel.as_str();
            };
            let to = names
                .reexports
                .get(item)
                .map(|to| absolute(&file.module, to));
            // Through a glob: the globbed module that defines or re-exports the item.
            let to = to.or_else(|| {
                if names.defines.contains(item) {
                    return None;
                }
                names
                    .globs
                    .iter()
                    .map(|g| absolute(&file.module, g))
                    .find(|g| {
                        named.get(g.as_slice()).is_some_and(|(_, m)| {
                            m.defines.contains(item) || m.reexports.contains_key(item)
                        })
                    })
                    .map(|mut g| {
                        g.push(item.clone());
                        g
                    })
            });
            match to {
                Some(mut next) => {
                    next.extend(full[n + 1..].iter().cloned());
                    full = next;
                }
                None => return file.rel.as_str(),
            }
        }
        panic!("re-exports in a loop at {}", full.join("::"))
    };
    let mut g = BTreeMap::new();
    for f in files {
        let mut to = BTreeSet::new();
        for p in &named[f.module.as_slice()].1.paths {
            let target = resolve(absolute(&f.module, p));
            if target != f.rel {
                to.insert(target.to_string());
            }
        }
        g.insert(f.rel.clone(), to);
    }
    g
}

/// The circles of the graph: its strongly connected components of more than one file.
fn circles(g: &BTreeMap<String, BTreeSet<String>>) -> Vec<Vec<String>> {
    // Tarjan's algorithm.
    struct T<'a> {
        g: &'a BTreeMap<String, BTreeSet<String>>,
        index: BTreeMap<&'a str, usize>,
        low: BTreeMap<&'a str, usize>,
        stack: Vec<&'a str>,
        on: BTreeSet<&'a str>,
        out: Vec<Vec<String>>,
    }
    fn visit<'a>(t: &mut T<'a>, v: &'a str) {
        let n = t.index.len();
        t.index.insert(v, n);
        t.low.insert(v, n);
        t.stack.push(v);
        t.on.insert(v);
        for w in &t.g[v] {
            let w = w.as_str();
            if !t.index.contains_key(w) {
                visit(t, w);
                let l = t.low[w].min(t.low[v]);
                t.low.insert(v, l);
            } else if t.on.contains(w) {
                let l = t.index[w].min(t.low[v]);
                t.low.insert(v, l);
            }
        }
        if t.low[v] == t.index[v] {
            let mut comp = vec![];
            loop {
                let w = t.stack.pop().unwrap();
                t.on.remove(w);
                comp.push(w.to_string());
                if w == v {
                    break;
                }
            }
            if comp.len() > 1 {
                comp.sort();
                t.out.push(comp);
            }
        }
    }
    let mut t = T {
        g,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: vec![],
        on: BTreeSet::new(),
        out: vec![],
    };
    for v in g.keys() {
        if !t.index.contains_key(v.as_str()) {
            visit(&mut t, v);
        }
    }
    t.out
}

/// ARCHITECTURE.md's layers, lowest first: `N. **Name** (`module`, `module::sub`): …`.
fn layers() -> Vec<(String, Vec<String>)> {
    let doc = std::fs::read_to_string(root().join("ARCHITECTURE.md")).unwrap();
    let section = doc
        .split("\n## ")
        .find(|s| s.starts_with("Reading order, bottom-up"))
        .expect("ARCHITECTURE.md has a section \"Reading order, bottom-up\"");
    // The numbered items, each with its indented continuation lines.
    let mut items: Vec<String> = vec![];
    for line in section.lines() {
        let numbered = line
            .split_once(". **")
            .is_some_and(|(n, _)| !n.is_empty() && n.chars().all(|c| c.is_ascii_digit()));
        if numbered {
            items.push(line.to_string());
        } else if line.starts_with(' ') && !items.is_empty() {
            let last = items.last_mut().unwrap();
            last.push(' ');
            last.push_str(line.trim());
        } else if !items.is_empty() {
            break;
        }
    }
    let mut out = vec![];
    for item in &items {
        let (_, rest) = item.split_once(". **").unwrap();
        let (name, rest) = rest.split_once("**").unwrap();
        let list = rest
            .trim_start()
            .strip_prefix('(')
            .and_then(|r| r.split_once(')'))
            .unwrap_or_else(|| panic!("layer {name}: want `(`module`, …)` after its name"))
            .0;
        let modules: Vec<String> = list
            .split(',')
            .map(|m| m.trim().trim_matches('`').to_string())
            .collect();
        out.push((name.to_string(), modules));
    }
    assert!(out.len() > 1, "no layers found in the reading order");
    let mut seen: BTreeSet<String> = BTreeSet::new();
    for (name, modules) in &out {
        for m in modules {
            assert!(
                seen.insert(m.clone()),
                "layer {name} lists {m} a second time"
            );
        }
    }
    out
}

/// The layer of a file: the one listing the longest prefix of its module path (`lib.rs`, the
/// crate root, is listed as `lib`).
fn layer_of(f: &File, layers: &[(String, Vec<String>)]) -> Option<usize> {
    let module = if f.module.is_empty() {
        "lib".to_string()
    } else {
        f.module.join("::")
    };
    layers
        .iter()
        .enumerate()
        .flat_map(|(n, (_, ms))| ms.iter().map(move |m| (n, m)))
        .filter(|(_, m)| module == **m || module.starts_with(&format!("{m}::")))
        .max_by_key(|(_, m)| m.len())
        .map(|(n, _)| n)
}

#[test]
fn the_module_graph_has_no_circle() {
    let g = graph(&files());
    let c = circles(&g);
    assert!(
        c.is_empty(),
        "import circles (each a set of files that reach each other; the whole graph: \
         cargo test --test architecture -- --ignored --nocapture):\n{}",
        c.iter()
            .map(|c| format!("  {}", c.join(" ")))
            .collect::<Vec<_>>()
            .join("\n")
    );
}

#[test]
fn every_file_uses_only_its_own_layer_and_the_ones_below() {
    let files = files();
    let layers = layers();
    let g = graph(&files);
    let layer: BTreeMap<&str, usize> = files
        .iter()
        .map(|f| {
            let n = layer_of(f, &layers).unwrap_or_else(|| {
                panic!(
                    "{} is in no layer: add its module to one in ARCHITECTURE.md's \
                     \"Reading order, bottom-up\"",
                    f.rel
                )
            });
            (f.rel.as_str(), n)
        })
        .collect();
    let mut upward = vec![];
    for (from, tos) in &g {
        for to in tos {
            let (a, b) = (layer[from.as_str()], layer[to.as_str()]);
            if b > a {
                upward.push(format!(
                    "  {from} ({}) uses {to} ({})",
                    layers[a].0, layers[b].0
                ));
            }
        }
    }
    assert!(
        upward.is_empty(),
        "files that use a later layer of ARCHITECTURE.md's reading order (move the code \
         down, or the module up a layer):\n{}",
        upward.join("\n")
    );
    for (name, modules) in &layers {
        for m in modules {
            let known = files.iter().any(|f| {
                let module = f.module.join("::");
                (f.module.is_empty() && m == "lib")
                    || module == *m
                    || module.starts_with(&format!("{m}::"))
            });
            assert!(known, "layer {name} lists {m}, which is no module of src/");
        }
    }
}

#[test]
fn the_reader_sees_paths_in_code_only() {
    let f = File {
        rel: "src/a/b.rs".into(),
        module: vec!["a".into(), "b".into()],
        text: strip(
            "//! see [`crate::x`]\nuse crate::{c::{self, d}, e as f};\nuse super::g;\npub mod h;\n\
             fn k() { let s = \"crate::y\"; let c = '\"'; h::z(); crate::m::n(); }\n\
             #[cfg(test)]\nmod tests { use crate::t; }\n",
        ),
    };
    let mut p: Vec<String> = named_paths(&f).paths.iter().map(|p| p.join("::")).collect();
    p.sort();
    assert_eq!(
        p,
        [
            "crate::c",
            "crate::c::d",
            "crate::e",
            "crate::m::n",
            "h::z",
            "super::g"
        ]
    );
}

#[test]
fn the_graph_follows_re_exports_and_finds_circles() {
    let file = |rel: &str, module: &[&str], text: &str| File {
        rel: rel.into(),
        module: module.iter().map(|m| m.to_string()).collect(),
        text: strip(text),
    };
    let files = [
        file("src/lib.rs", &[], "pub mod a;\npub mod c;\n"),
        file(
            "src/a/mod.rs",
            &["a"],
            "pub mod b;\npub use b::X;\nfn f() { c(); }\n",
        ),
        file("src/a/b.rs", &["a", "b"], "pub struct X;\n"),
        file("src/c.rs", &["c"], "use crate::a::X;\n"),
    ];
    let g = graph(&files);
    assert_eq!(g["src/c.rs"], BTreeSet::from(["src/a/b.rs".to_string()]));
    assert_eq!(
        g["src/a/mod.rs"],
        BTreeSet::from(["src/a/b.rs".to_string()])
    );
    assert!(circles(&g).is_empty());
    let mut files = files;
    files[1] = file("src/a/mod.rs", &["a"], "pub mod b;\npub use b::*;\n");
    assert_eq!(
        graph(&files)["src/c.rs"],
        BTreeSet::from(["src/a/b.rs".to_string()])
    );
    files[2] = file("src/a/b.rs", &["a", "b"], "pub struct X(crate::c::Y);\n");
    assert_eq!(
        circles(&graph(&files)),
        [["src/a/b.rs".to_string(), "src/c.rs".to_string()]]
    );
}

/// Prints the graph and its circles: `cargo test --test architecture -- --ignored --nocapture`.
#[test]
#[ignore]
fn print_the_graph() {
    let g = graph(&files());
    for (from, tos) in &g {
        println!(
            "{from} -> {}",
            tos.iter().cloned().collect::<Vec<_>>().join(" ")
        );
    }
    for c in circles(&g) {
        println!("circle: {}", c.join(" "));
    }
}
