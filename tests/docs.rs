//! The user documentation against the code, so neither drifts from the other:
//!
//! - docs/configuration.md's key table lists exactly the keys `nonstop.yml` accepts. The key
//!   list is read from the parser itself: a config with an unknown key in each section makes
//!   the parser name every key that section accepts. Each documented default, written as YAML,
//!   must give the same configuration as leaving the key out; each `required` key must be one
//!   the parser cannot do without.
//! - every `nonstop` subcommand and flag in README.md and docs/ (shell blocks, and inline code
//!   such as `nonstop logs [SLOT] [-n N] [-f]`) exists, and
//!   so does every flag given to a hook binary (`bin/switch --canary 10`): each is looked up
//!   in the `--help` of the built binary (its clap definitions).
//! - the README stays short (at most 200 lines), every relative link in README.md and docs/
//!   reaches a file that exists and, with `#anchor`, a heading in it, and none of them speaks
//!   of the project's own work (seeds, issue numbers).

mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn read(rel: &str) -> String {
    std::fs::read_to_string(root().join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

// ---------- configuration reference ----------

/// Where a parse is made: the path only resolves relative paths; nothing is read.
fn cfg_path() -> PathBuf {
    PathBuf::from("/srv/docs-check/nonstop.yml")
}

fn parse(text: &str) -> Result<String, String> {
    nonstop::config::parse(text, &cfg_path())
        .map(|c| format!("{c:?}"))
        .map_err(|e| e.to_string())
}

/// The keys named by serde's "unknown field `bogus_key`, expected one of `a`, `b`, `c`" (or
/// "expected `a` or `b`", "expected `a`") in a parse error; `None` when the error is not about
/// the unknown key.
fn expected_fields(err: &str) -> Option<Vec<String>> {
    let tail = err.split("unknown field `bogus_key`, expected ").nth(1)?;
    let tail = tail.strip_prefix("one of ").unwrap_or(tail);
    Some(
        tail.split(", ")
            .flat_map(|f| f.split(" or "))
            .map(|f| f.trim().trim_matches('`').to_string())
            .filter(|f| !f.is_empty())
            .collect(),
    )
}

/// Every key `nonstop.yml` accepts, as `section.key`, `list` and `list[].key`, or `key` for
/// a top-level scalar; read from the parser's own errors.
fn accepted_keys() -> BTreeSet<String> {
    let top = expected_fields(&parse("app: {name: myapp}\nbogus_key: 1\n").unwrap_err())
        .expect("the parser names the top-level keys");
    assert!(top.len() > 5, "top-level keys: {top:?}");
    let mut keys = BTreeSet::new();
    for t in top {
        let as_map = if t == "app" {
            "app: {name: myapp, bogus_key: 1}\n".to_string()
        } else {
            format!("app: {{name: myapp}}\n{t}: {{bogus_key: 1}}\n")
        };
        let as_list = format!("app: {{name: myapp}}\n{t}: [{{bogus_key: 1}}, {{bogus_key: 1}}]\n");
        if let Some(fields) = parse(&as_map).err().as_deref().and_then(expected_fields) {
            keys.extend(fields.iter().map(|f| format!("{t}.{f}")));
        } else if let Some(fields) = parse(&as_list).err().as_deref().and_then(expected_fields) {
            keys.insert(t.clone());
            keys.extend(fields.iter().map(|f| format!("{t}[].{f}")));
        } else {
            keys.insert(t);
        }
    }
    keys
}

/// One row of the key table: key, default cell.
struct Row {
    key: String,
    default: String,
}

/// The `| key | default | meaning |` table of docs/configuration.md.
fn documented() -> Vec<Row> {
    let doc = read("docs/configuration.md");
    let mut rows = vec![];
    let mut in_table = false;
    for line in doc.lines() {
        if line.starts_with("| key | default | meaning |") {
            in_table = true;
            continue;
        }
        if !in_table {
            continue;
        }
        if !line.starts_with('|') {
            break;
        }
        if line.starts_with("|---") {
            continue;
        }
        let cells: Vec<&str> = line
            .split(" | ")
            .map(|c| c.trim_matches('|').trim())
            .collect();
        assert!(cells.len() >= 3, "a table row of three cells: {line}");
        let key = cells[0]
            .strip_prefix('`')
            .and_then(|k| k.strip_suffix('`'))
            .unwrap_or_else(|| panic!("the key cell is one `key`: {line}"));
        rows.push(Row {
            key: key.to_string(),
            default: cells[1].to_string(),
        });
    }
    assert!(rows.len() > 10, "docs/configuration.md has its key table");
    rows
}

/// The config text with `key` set to `value` (YAML) beside `app.name: myapp`.
fn with_key(key: &str, value: &str) -> String {
    match key.split_once('.') {
        Some(("app", k)) => format!("app:\n  name: myapp\n  {k}: {value}\n"),
        Some((section, k)) => format!("app:\n  name: myapp\n{section}:\n  {k}: {value}\n"),
        None => format!("app:\n  name: myapp\n{key}: {value}\n"),
    }
}

#[test]
fn configuration_reference_lists_every_key_the_parser_accepts_and_no_other() {
    let accepted = accepted_keys();
    let rows = documented();
    let mut seen = BTreeSet::new();
    for r in &rows {
        assert!(seen.insert(r.key.clone()), "{} is documented twice", r.key);
    }
    let missing: Vec<_> = accepted.difference(&seen).collect();
    let unknown: Vec<_> = seen.difference(&accepted).collect();
    assert!(
        missing.is_empty() && unknown.is_empty(),
        "docs/configuration.md and the parser disagree: accepted but not documented {missing:?}; \
         documented but unknown to the parser {unknown:?}"
    );
}

#[test]
fn configuration_reference_defaults_are_the_parsers_defaults() {
    let base = parse("app:\n  name: myapp\n").expect("a config with only app.name loads");
    for r in documented() {
        match r.default.as_str() {
            "required" => {
                // Without it the parser refuses: the section (or a list item) given empty.
                let (section, key) = match r.key.split_once("[].") {
                    Some((list, k)) => (format!("{list}: [{{}}, {{}}]"), k.to_string()),
                    None => {
                        let (s, k) = r.key.split_once('.').unwrap_or(("", &r.key));
                        (format!("{s}: {{}}"), k.to_string())
                    }
                };
                let text = if section.starts_with("app:") {
                    section
                } else {
                    format!("app: {{name: myapp}}\n{section}\n")
                };
                let err = parse(&text).expect_err(&format!("{} is required: {text}", r.key));
                assert!(
                    err.contains("missing field `"),
                    "{} is documented as required; leaving it out gives: {err}",
                    r.key
                );
                if !r.key.contains("[].") {
                    assert!(err.contains(&format!("missing field `{key}`")), "{err}");
                }
            }
            // Optional with no value: the base config (which sets none of them) loads.
            "unset" => {}
            cell => {
                let value = cell
                    .strip_prefix('`')
                    .and_then(|v| v.strip_suffix('`'))
                    .unwrap_or_else(|| {
                        panic!(
                            "{}: the default cell is `VALUE`, required or unset: {cell}",
                            r.key
                        )
                    })
                    .replace("<app.name>", "myapp");
                let text = with_key(&r.key, &value);
                let set = parse(&text).unwrap_or_else(|e| {
                    panic!(
                        "{}: the documented default {value} does not load: {e}",
                        r.key
                    )
                });
                assert_eq!(
                    set, base,
                    "{}: the documented default {value} is not what leaving the key out gives",
                    r.key
                );
            }
        }
    }
}

// ---------- README commands ----------

/// `PROGRAM ARGS --help`: its text, or why it failed.
fn help(program: &str, args: &[&str]) -> Result<String, String> {
    let exe = common::bin_dir().join(program);
    let o = Command::new(&exe)
        .args(args)
        .arg("--help")
        .output()
        .unwrap_or_else(|e| panic!("{}: {e}", exe.display()));
    let text = String::from_utf8_lossy(&o.stdout).into_owned();
    if o.status.success() {
        Ok(text)
    } else {
        Err(format!(
            "{}{}",
            text,
            String::from_utf8_lossy(&o.stderr).trim_end()
        ))
    }
}

/// The flags a `--help` text offers: `-o`, `--output` from its option lines.
fn flags_in(help: &str) -> BTreeSet<String> {
    let mut flags = BTreeSet::new();
    for line in help.lines().map(str::trim_start) {
        if !line.starts_with('-') {
            continue;
        }
        for word in line.split([' ', ',']) {
            if !word.starts_with('-') {
                if !word.is_empty() {
                    break;
                }
                continue;
            }
            let w = word
                .split(['<', '=', '['])
                .next()
                .unwrap()
                .trim_end_matches('.');
            flags.insert(w.to_string());
        }
    }
    flags
}

/// The binaries a shell block may run: `nonstop` (with subcommands) and the hooks.
const PROGRAMS: [&str; 6] = nonstop::stage_table::BINARIES;

/// One run of a nonstop binary in a ```sh block.
struct Run {
    file: String,
    line: String,
    program: String,
    sub: Option<String>,
    flags: Vec<String>,
}

/// Each run of a nonstop binary in the ```sh blocks of `rel`: `nonstop SUB --flag …` (also as
/// `…/bin/nonstop`, after `sudo`, or as ssh's remote command) and `bin/HOOK --flag …`.
fn runs_in(rel: &str) -> Vec<Run> {
    let text = read(rel);
    let mut runs = vec![];
    let mut in_sh = false;
    for line in text.lines() {
        if line.starts_with("```") {
            in_sh = !in_sh && line.trim() == "```sh";
            continue;
        }
        if !in_sh {
            // Inline code that runs a binary: `nonstop logs [SLOT] [-n N] [-f]`.
            for (i, span) in line.split('`').enumerate() {
                if i % 2 == 1
                    && (span.starts_with("nonstop ")
                        || PROGRAMS
                            .iter()
                            .any(|p| span.starts_with(&format!("bin/{p} "))))
                {
                    runs.extend(runs_of(rel, line, &span.replace(['[', ']'], " ")));
                }
            }
            continue;
        }
        runs.extend(runs_of(rel, line, line));
    }
    runs
}

/// The runs of a nonstop binary in one line of shell `code` (from `line` of `rel`).
fn runs_of(rel: &str, line: &str, code: &str) -> Vec<Run> {
    let mut runs = vec![];
    let code = code.split(" #").next().unwrap();
    let code = code.trim_start().strip_prefix("$ ").unwrap_or(code);
    // Quotes start a new command (ssh HOST "nonstop deploy …"); so do && || ; |.
    let seps = code.replace(['"', '\''], " ; ");
    let seps = seps.replace("&&", ";").replace("||", ";").replace('|', ";");
    for cmd in seps.split(';') {
        let words: Vec<&str> = cmd.split_whitespace().collect();
        let mut i = 0;
        while i < words.len() && (words[i] == "sudo" || words[i].contains('=')) {
            i += 1;
        }
        // ssh [-o OPT | -i KEY | -p PORT | -flags] USER@HOST COMMAND…
        if words.get(i) == Some(&"ssh") {
            i += 1;
            while let Some(w) = words.get(i).filter(|w| w.starts_with('-')) {
                i += if ["-o", "-i", "-p", "-l", "-F"].contains(w) {
                    2
                } else {
                    1
                };
            }
            i += 1;
        }
        let Some(first) = words.get(i) else { continue };
        let program = match first.rsplit_once("bin/") {
            Some((_, p)) if PROGRAMS.contains(&p) => p,
            _ if *first == "nonstop" => "nonstop",
            _ => continue,
        };
        let rest = &words[i + 1..];
        let sub = (program == "nonstop")
            .then(|| rest.first().filter(|w| !w.starts_with('-')))
            .flatten()
            .map(|w| w.to_string());
        let flags = rest
            .iter()
            .filter(|w| w.starts_with('-'))
            .map(|w| w.split('=').next().unwrap().to_string())
            .collect();
        runs.push(Run {
            file: rel.to_string(),
            line: line.to_string(),
            program: program.to_string(),
            sub,
            flags,
        });
    }
    runs
}

/// Every run that names a subcommand or flag the binary does not have.
fn unknown_in(runs: &[Run]) -> Vec<String> {
    let mut bad = vec![];
    for r in runs {
        let args: Vec<&str> = r.sub.iter().map(String::as_str).collect();
        let shown = format!("{} {}", r.program, args.join(" "));
        let text = match help(&r.program, &args) {
            Ok(t) => t,
            Err(e) => {
                bad.push(format!(
                    "{}: {}\n    {shown} --help failed: {e}",
                    r.file, r.line
                ));
                continue;
            }
        };
        let known = flags_in(&text);
        for f in &r.flags {
            if !known.contains(f) {
                bad.push(format!(
                    "{}: {}\n    {shown} has no {f} (it has {known:?})",
                    r.file, r.line
                ));
            }
        }
    }
    bad
}

#[test]
fn readme_commands_and_flags_exist_in_the_binary() {
    let runs = runs_in("README.md");
    let subs: BTreeSet<_> = runs.iter().filter_map(|r| r.sub.clone()).collect();
    for want in ["init", "bundle", "validate", "deploy"] {
        assert!(
            subs.contains(want),
            "README's recipes run nonstop {want}: found {subs:?}"
        );
    }
    let bad = unknown_in(&runs);
    assert!(
        bad.is_empty(),
        "README.md runs nonstop commands the binaries do not have:\n{}",
        bad.join("\n")
    );
}

#[test]
fn docs_commands_and_flags_exist_in_the_binaries() {
    let mut runs = vec![];
    for entry in std::fs::read_dir(root().join("docs")).unwrap() {
        let name = entry.unwrap().file_name().into_string().unwrap();
        if name.ends_with(".md") {
            runs.extend(runs_in(&format!("docs/{name}")));
        }
    }
    assert!(
        runs.iter().any(|r| r.program == "switch") && runs.iter().any(|r| r.sub.is_some()),
        "the docs' shell blocks run nonstop and the hooks"
    );
    let bad = unknown_in(&runs);
    assert!(
        bad.is_empty(),
        "docs/ runs nonstop commands the binaries do not have:\n{}",
        bad.join("\n")
    );
}

// ---------- the README's length, links ----------

#[test]
fn the_readme_stays_short() {
    let n = read("README.md").lines().count();
    assert!(
        n <= 200,
        "README.md has {n} lines: keep it at most 200 (what, install, the recipes, the commands, \
         links) and move the rest to a page in docs/"
    );
}

/// GitHub's anchor for a heading: lowercase, punctuation dropped, spaces to `-`.
fn slug(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter(|c| c.is_alphanumeric() || matches!(c, ' ' | '-' | '_'))
        .map(|c| if c == ' ' { '-' } else { c })
        .collect()
}

/// The anchors of a markdown file's headings (outside code blocks).
fn anchors(text: &str) -> BTreeSet<String> {
    let mut code = false;
    let mut out = BTreeSet::new();
    for line in text.lines() {
        if line.starts_with("```") {
            code = !code;
        } else if !code && line.starts_with('#') {
            out.insert(slug(line.trim_start_matches('#')));
        }
    }
    out
}

/// The `](target)` links of a markdown text.
fn links(text: &str) -> Vec<String> {
    text.split("](")
        .skip(1)
        .filter_map(|rest| rest.split_once(')').map(|(t, _)| t.to_string()))
        .filter(|t| !t.contains(' '))
        .collect()
}

#[test]
fn relative_links_in_the_readme_and_docs_reach_their_files_and_headings() {
    let mut files = vec!["README.md".to_string()];
    for entry in std::fs::read_dir(root().join("docs")).unwrap() {
        let name = entry.unwrap().file_name().into_string().unwrap();
        if name.ends_with(".md") {
            files.push(format!("docs/{name}"));
        }
    }
    let mut bad = vec![];
    for f in &files {
        let text = read(f);
        let dir = root().join(f).parent().unwrap().to_path_buf();
        for link in links(&text) {
            if link.starts_with("http://") || link.starts_with("https://") {
                continue;
            }
            let (path, anchor) = link.split_once('#').unwrap_or((&link, ""));
            let target = if path.is_empty() {
                root().join(f)
            } else {
                dir.join(path)
            };
            if !target.exists() {
                bad.push(format!("{f}: {link}: no such file"));
                continue;
            }
            if !anchor.is_empty() && target.extension().is_some_and(|e| e == "md") {
                let text = std::fs::read_to_string(&target).unwrap();
                if !anchors(&text).contains(anchor) {
                    bad.push(format!("{f}: {link}: no heading #{anchor} there"));
                }
            }
        }
    }
    assert!(bad.is_empty(), "broken links:\n{}", bad.join("\n"));
}

#[test]
fn user_docs_use_no_project_internal_words() {
    let mut files = vec!["README.md".to_string(), "scripts/INSTALL".to_string()];
    for entry in std::fs::read_dir(root().join("docs")).unwrap() {
        files.push(format!(
            "docs/{}",
            entry.unwrap().file_name().into_string().unwrap()
        ));
    }
    let mut bad = vec![];
    for f in &files {
        for (n, line) in read(f).lines().enumerate() {
            let l = line.to_lowercase();
            for word in ["seed", "issue ", "issue #", "correctness round"] {
                if l.contains(word) {
                    bad.push(format!("{f}:{}: {word:?} in {line}", n + 1));
                }
            }
        }
    }
    assert!(
        bad.is_empty(),
        "words of the project's own work in user docs:\n{}",
        bad.join("\n")
    );
}

#[test]
fn the_checks_see_a_wrong_flag_and_a_wrong_key() {
    assert_eq!(
        slug("Running the hooks as another user (`runas`)"),
        "running-the-hooks-as-another-user-runas"
    );
    assert_eq!(
        slug(" Blue/green or balanced: which to use"),
        "bluegreen-or-balanced-which-to-use"
    );
    // The README check: a subcommand's real flags are seen, a made-up one is not.
    let known = flags_in(&help("nonstop", &["bundle"]).unwrap());
    for f in [
        "--jar",
        "--appspec",
        "-o",
        "--output",
        "--config",
        "-c",
        "--slot",
    ] {
        assert!(known.contains(f), "{f} in {known:?}");
    }
    assert!(!known.contains("--force"));
    assert!(help("nonstop", &["no-such-command"]).is_err());
    assert!(flags_in(&help("switch", &[]).unwrap()).contains("--canary"));
    // The config check: the key list is the parser's, with the nested and list keys.
    let keys = accepted_keys();
    for k in [
        "app.name",
        "health.deadline",
        "slots",
        "slots[].port",
        "state_dir",
    ] {
        assert!(keys.contains(k), "{k} in {keys:?}");
    }
    assert!(!keys.contains("app.colour"));
}
