//! Reading a jar the way `nonstop validate` needs it: the names in its central directory and
//! the main section of its manifest (`META-INF/MANIFEST.MF`), and from those whether it is a
//! Spring Boot executable jar. A small reader of the zip format (the end of central directory
//! record, zip64 included, the central directory, one local header), with `miniz_oxide` for a
//! deflated manifest; nothing is extracted to disk. A launch script in front of the zip (Spring
//! Boot's "fully executable" jars) is allowed: offsets are taken relative to where the central
//! directory really is.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

/// The largest central directory read (a jar with ~300,000 entries); beyond it, refuse.
const MAX_DIRECTORY: u64 = 64 << 20;
/// The largest manifest read.
const MAX_MANIFEST: u64 = 1 << 20;

/// What a jar holds, as far as nonstop looks.
#[derive(Debug, Clone)]
pub struct Jar {
    /// Every entry's name, in central directory order.
    pub names: Vec<String>,
    /// The manifest's main section, if the jar has a manifest.
    pub manifest: Option<Manifest>,
    /// Spring Boot's packaged configuration: each `BOOT-INF/classes/application*.properties`,
    /// `.yml` and `.yaml` as (entry name, text), in central directory order.
    pub app_config: Vec<(String, String)>,
}

/// Whether `name` is a configuration file Spring Boot reads from the jar's classpath root.
fn is_app_config(name: &str) -> bool {
    name.strip_prefix("BOOT-INF/classes/application")
        .is_some_and(|rest| {
            !rest.contains('/')
                && [".properties", ".yml", ".yaml"]
                    .iter()
                    .any(|ext| rest.ends_with(ext))
        })
}

/// One stored or deflated entry's bytes, from its local header at `local + shift`.
fn read_entry(
    f: &mut File,
    (method, comp, full, local): (u64, u64, u64, u64),
    shift: u64,
    what: &str,
) -> Result<Vec<u8>, String> {
    let io = |e: std::io::Error| format!("cannot read it: {e}");
    if comp > MAX_MANIFEST || full > MAX_MANIFEST {
        return Err(format!("its {what} is implausibly large ({full} bytes)"));
    }
    let at = local + shift;
    let head = read_at(f, at, 30).map_err(io)?;
    if head[..4] != [0x50, 0x4b, 0x03, 0x04] {
        return Err(format!("the {what}'s local header is missing"));
    }
    let data_at = at + 30 + u16_at(&head, 26) + u16_at(&head, 28);
    let data = read_at(f, data_at, comp).map_err(io)?;
    match method {
        0 => Ok(data),
        8 => miniz_oxide::inflate::decompress_to_vec_with_limit(&data, MAX_MANIFEST as usize)
            .map_err(|e| format!("cannot inflate its {what}: {e:?}")),
        m => Err(format!("its {what} is compressed with method {m}")),
    }
}

/// A manifest's main section: `Name: value` attributes, continuation lines joined.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Manifest {
    pub attrs: Vec<(String, String)>,
}

impl Manifest {
    /// Parse the main section of a manifest (up to the first empty line).
    pub fn parse(text: &str) -> Manifest {
        let mut attrs: Vec<(String, String)> = vec![];
        for line in text.split('\n').map(|l| l.strip_suffix('\r').unwrap_or(l)) {
            if line.is_empty() {
                break;
            }
            if let Some(more) = line.strip_prefix(' ') {
                if let Some((_, v)) = attrs.last_mut() {
                    v.push_str(more);
                }
                continue;
            }
            if let Some((k, v)) = line.split_once(':') {
                attrs.push((k.trim().to_string(), v.trim_start().to_string()));
            }
        }
        Manifest { attrs }
    }

    /// An attribute's value; names are case-insensitive, as the jar specification says.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.attrs
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// What kind of jar it is, for `java -jar`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    /// A Spring Boot executable jar whose manifest and contents agree.
    SpringBoot {
        version: String,
        start_class: String,
    },
    /// It claims to be a Spring Boot jar (its launcher, `Spring-Boot-*` attributes or
    /// `BOOT-INF/`), but is not a complete one: why.
    BrokenSpringBoot(String),
    /// A runnable jar that is not Spring Boot: its `Main-Class`.
    Plain { main_class: String },
    /// `java -jar` cannot run it: why (no manifest, no `Main-Class`).
    NotRunnable(String),
}

impl Jar {
    /// Classify the jar (see [`Kind`]).
    pub fn kind(&self) -> Kind {
        let Some(m) = &self.manifest else {
            return Kind::NotRunnable("it has no META-INF/MANIFEST.MF".into());
        };
        let main = m.get("Main-Class").unwrap_or("");
        let launcher = main.starts_with("org.springframework.boot.loader.");
        let boot_attrs = m
            .attrs
            .iter()
            .any(|(k, _)| k.to_ascii_lowercase().starts_with("spring-boot-"));
        let boot_inf = self.names.iter().any(|n| n.starts_with("BOOT-INF/"));
        if !(launcher || boot_attrs || boot_inf) {
            return if main.is_empty() {
                Kind::NotRunnable("its manifest has no Main-Class".into())
            } else {
                Kind::Plain {
                    main_class: main.to_string(),
                }
            };
        }
        let claim = if launcher {
            format!("Main-Class {main}")
        } else if boot_attrs {
            "Spring-Boot-* manifest attributes".to_string()
        } else {
            "BOOT-INF/ entries".to_string()
        };
        let mut lacks = vec![];
        if !launcher {
            lacks.push(if main.is_empty() {
                "a Main-Class".to_string()
            } else {
                format!("Spring Boot's launcher as Main-Class (it is {main})")
            });
        }
        let start = m.get("Start-Class").unwrap_or("");
        if start.is_empty() {
            lacks.push("Start-Class".into());
        }
        let version = m.get("Spring-Boot-Version").unwrap_or("");
        if version.is_empty() {
            lacks.push("Spring-Boot-Version".into());
        }
        if !start.is_empty() {
            let classes = m
                .get("Spring-Boot-Classes")
                .unwrap_or("BOOT-INF/classes/")
                .trim_end_matches('/');
            let class = format!("{classes}/{}.class", start.replace('.', "/"));
            if !self.names.contains(&class) {
                lacks.push(format!("{class} (the Start-Class)"));
            }
        }
        if lacks.is_empty() {
            Kind::SpringBoot {
                version: version.to_string(),
                start_class: start.to_string(),
            }
        } else {
            Kind::BrokenSpringBoot(format!(
                "it claims to be a Spring Boot jar ({claim}) but lacks {}",
                lacks.join(", ")
            ))
        }
    }
}

/// The property that turns Actuator's readiness and liveness groups on or off (Spring Boot
/// 2.3.0 and 2.3.1 named it `management.health.probes.enabled`).
pub const PROBES: &str = "management.endpoint.health.probes.enabled";
const PROBES_OLD: &str = "management.health.probes.enabled";

/// Whether a Spring Boot app serves `/actuator/health/readiness`, as far as nonstop can see: it
/// exists from Spring Boot 2.3 on, when [`PROBES`] is true, which Spring Boot 4 makes the
/// default and 2.3–3.x only on Kubernetes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Probes {
    /// `Spring-Boot-Version`.
    pub version: String,
    /// Where [`PROBES`] is set and to what, the place that wins first.
    pub set: Option<(bool, String)>,
}

impl Probes {
    fn major_minor(&self) -> (u32, u32) {
        let mut it = self
            .version
            .split(|c: char| !c.is_ascii_digit())
            .map(|n| n.parse().unwrap_or(0));
        (it.next().unwrap_or(0), it.next().unwrap_or(0))
    }

    /// Whether the readiness group exists in the app (outside Kubernetes).
    pub fn served(&self) -> bool {
        let (major, minor) = self.major_minor();
        match &self.set {
            _ if (major, minor) < (2, 3) => false,
            Some((on, _)) => *on,
            None => major >= 4,
        }
    }

    /// Why [`Probes::served`] says what it says, as a clause.
    pub fn why(&self) -> String {
        let v = &self.version;
        let (major, minor) = self.major_minor();
        match &self.set {
            _ if (major, minor) < (2, 3) => {
                format!("Spring Boot {v} has no readiness group (Actuator's probes came with 2.3)")
            }
            Some((on, place)) => format!("{place} sets {PROBES}={on} (Spring Boot {v})"),
            None if major >= 4 => format!("Spring Boot {v} turns {PROBES} on by default"),
            None => format!(
                "Spring Boot {v} turns {PROBES} on by itself only on Kubernetes (the default from \
                 Spring Boot 4), and neither app.java_opts, app.args, app.env nor the jar's \
                 application properties set it"
            ),
        }
    }
}

/// [`Probes`] of a Spring Boot `jar` started with `java_opts`, `args`, `env` and the Spring
/// profiles `profiles`; `None` for a jar that is not Spring Boot. The places are read in Spring's
/// order, first wins: `--KEY=V` in `args`, `-DKEY=V` in `java_opts`, `app.env`'s
/// `MANAGEMENT_ENDPOINT_HEALTH_PROBES_ENABLED`, the jar's `application-PROFILE` files, then its
/// `application` files (`.properties` before `.yml`). What the host adds outside the config
/// (an external `application.properties`, the service's environment) nonstop cannot see.
pub fn probes(
    jar: &Jar,
    java_opts: &[String],
    args: &[String],
    env: &std::collections::BTreeMap<String, String>,
    profiles: &[&str],
) -> Option<Probes> {
    let Kind::SpringBoot { version, .. } = jar.kind() else {
        return None;
    };
    let truth = |v: &str| match v.trim().to_ascii_lowercase().as_str() {
        "true" => Some(true),
        "false" => Some(false),
        _ => None,
    };
    let keys = [PROBES, PROBES_OLD];
    let from_flag = |list: &[String], prefix: &str, place: &str| {
        list.iter().rev().find_map(|a| {
            let (k, v) = a.strip_prefix(prefix)?.split_once('=')?;
            keys.contains(&k)
                .then(|| truth(v))
                .flatten()
                .map(|on| (on, format!("{place} {a}")))
        })
    };
    let mut set =
        from_flag(args, "--", "app.args").or_else(|| from_flag(java_opts, "-D", "app.java_opts"));
    if set.is_none() {
        set = [
            "MANAGEMENT_ENDPOINT_HEALTH_PROBES_ENABLED",
            "MANAGEMENT_HEALTH_PROBES_ENABLED",
        ]
        .iter()
        .find_map(|k| {
            let v = env.get(*k)?;
            truth(v).map(|on| (on, format!("app.env {k}")))
        });
    }
    if set.is_none() {
        let mut stems: Vec<String> = profiles
            .iter()
            .flat_map(|p| p.split(','))
            .map(|p| format!("application-{}", p.trim()))
            .collect();
        stems.push("application".into());
        'files: for stem in &stems {
            for ext in ["properties", "yml", "yaml"] {
                let name = format!("BOOT-INF/classes/{stem}.{ext}");
                let Some((_, text)) = jar.app_config.iter().find(|(n, _)| *n == name) else {
                    continue;
                };
                let value = if ext == "properties" {
                    property(text, &keys)
                } else {
                    yaml_property(text, &keys)
                };
                if let Some(on) = value.as_deref().and_then(truth) {
                    set = Some((
                        on,
                        format!("the jar's {}", &name["BOOT-INF/classes/".len()..]),
                    ));
                    break 'files;
                }
            }
        }
    }
    Some(Probes { version, set })
}

/// The last value of one of `keys` in a `.properties` text (`key=value`, `key: value`).
fn property(text: &str, keys: &[&str]) -> Option<String> {
    text.lines()
        .rev()
        .map(str::trim)
        .filter(|l| !l.starts_with('#') && !l.starts_with('!'))
        .find_map(|l| {
            let at = l.find(['=', ':'])?;
            let (k, v) = (l[..at].trim(), l[at + 1..].trim());
            keys.contains(&k).then(|| v.to_string())
        })
}

/// The last value of one of `keys` in a YAML text, its documents flattened to dotted keys
/// (`management: {endpoint: {health: {probes: {enabled: true}}}}` as well as a dotted key).
fn yaml_property(text: &str, keys: &[&str]) -> Option<String> {
    use serde::Deserialize;
    fn walk(v: &serde_yaml::Value, prefix: &str, keys: &[&str], found: &mut Option<String>) {
        match v {
            serde_yaml::Value::Mapping(m) => {
                for (k, v) in m {
                    let k = match k {
                        serde_yaml::Value::String(s) => s.clone(),
                        serde_yaml::Value::Bool(b) => b.to_string(),
                        _ => continue,
                    };
                    let path = if prefix.is_empty() {
                        k
                    } else {
                        format!("{prefix}.{k}")
                    };
                    walk(v, &path, keys, found);
                }
            }
            serde_yaml::Value::Bool(b) if keys.contains(&prefix) => *found = Some(b.to_string()),
            serde_yaml::Value::String(s) if keys.contains(&prefix) => *found = Some(s.clone()),
            _ => {}
        }
    }
    let mut found = None;
    for doc in serde_yaml::Deserializer::from_str(text) {
        if let Ok(v) = serde_yaml::Value::deserialize(doc) {
            walk(&v, "", keys, &mut found);
        }
    }
    found
}

/// Little-endian integers at `at` in `b` (callers check the length first).
fn u16_at(b: &[u8], at: usize) -> u64 {
    u16::from_le_bytes([b[at], b[at + 1]]) as u64
}
fn u32_at(b: &[u8], at: usize) -> u64 {
    u32::from_le_bytes(b[at..at + 4].try_into().unwrap()) as u64
}
fn u64_at(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().unwrap())
}

fn read_at(f: &mut File, at: u64, len: u64) -> std::io::Result<Vec<u8>> {
    f.seek(SeekFrom::Start(at))?;
    let mut buf = vec![0; len as usize];
    f.read_exact(&mut buf)?;
    Ok(buf)
}

/// Read `path`'s central directory and manifest. `Err` says why it is not a readable zip.
pub fn read(path: &Path) -> Result<Jar, String> {
    let mut f = File::open(path).map_err(|e| format!("cannot read it: {e}"))?;
    let size = f
        .metadata()
        .map_err(|e| format!("cannot read it: {e}"))?
        .len();
    let io = |e: std::io::Error| format!("cannot read it: {e}");
    // The end of central directory record: 22 bytes plus a comment of up to 65,535.
    let tail_len = size.min(22 + 65_535);
    let tail = read_at(&mut f, size - tail_len, tail_len).map_err(io)?;
    let eocd = (0..tail.len().saturating_sub(21))
        .rev()
        .find(|&i| tail[i..i + 4] == [0x50, 0x4b, 0x05, 0x06])
        .ok_or("no zip end of central directory record (not a zip)")?;
    let eocd_pos = size - tail_len + eocd as u64;
    let e = &tail[eocd..];
    let (mut count, mut dir_size, mut dir_offset) = (u16_at(e, 10), u32_at(e, 12), u32_at(e, 16));
    let mut dir_end = eocd_pos;
    if count == 0xffff || dir_size == 0xffff_ffff || dir_offset == 0xffff_ffff {
        // zip64: a locator 20 bytes before the record names the zip64 record.
        if eocd < 20 || tail[eocd - 20..eocd - 16] != [0x50, 0x4b, 0x06, 0x07] {
            return Err("zip64 sizes without a zip64 locator".into());
        }
        let rec_at = u64_at(&tail, eocd - 12);
        let rec = read_at(&mut f, rec_at.min(size), 56.min(size - rec_at.min(size))).map_err(io)?;
        if rec.len() < 56 || rec[..4] != [0x50, 0x4b, 0x06, 0x06] {
            return Err("bad zip64 end of central directory record".into());
        }
        count = u64_at(&rec, 32);
        dir_size = u64_at(&rec, 40);
        dir_offset = u64_at(&rec, 48);
        dir_end = rec_at;
    }
    if dir_size > MAX_DIRECTORY || dir_size > dir_end {
        return Err(format!("implausible central directory size {dir_size}"));
    }
    // Where the directory really starts; the difference to its recorded offset is whatever
    // precedes the zip (a launch script), and every recorded offset shifts by it.
    let dir_at = dir_end - dir_size;
    let shift = dir_at
        .checked_sub(dir_offset)
        .ok_or("the central directory's offset points past its place")?;
    let dir = read_at(&mut f, dir_at, dir_size).map_err(io)?;
    let mut names = Vec::with_capacity(count.min(1 << 20) as usize);
    let mut manifest_entry = None;
    let mut config_entries = vec![];
    let mut p = 0usize;
    while p + 46 <= dir.len() {
        if dir[p..p + 4] != [0x50, 0x4b, 0x01, 0x02] {
            return Err(format!("bad central directory entry at byte {p}"));
        }
        let method = u16_at(&dir, p + 10);
        let mut comp = u32_at(&dir, p + 20);
        let mut full = u32_at(&dir, p + 24);
        let (n, x, c) = (
            u16_at(&dir, p + 28) as usize,
            u16_at(&dir, p + 30) as usize,
            u16_at(&dir, p + 32) as usize,
        );
        let mut local = u32_at(&dir, p + 42);
        let end = p + 46 + n + x + c;
        if end > dir.len() {
            return Err("truncated central directory".into());
        }
        let name = String::from_utf8_lossy(&dir[p + 46..p + 46 + n]).into_owned();
        // zip64 extra field: the 0xffffffff values, in this order.
        let mut extra = &dir[p + 46 + n..p + 46 + n + x];
        while extra.len() >= 4 {
            let (id, len) = (u16_at(extra, 0), u16_at(extra, 2) as usize);
            let body = &extra[4..(4 + len).min(extra.len())];
            if id == 1 {
                let mut q = 0;
                for v in [&mut full, &mut comp, &mut local] {
                    if *v == 0xffff_ffff && q + 8 <= body.len() {
                        *v = u64_at(body, q);
                        q += 8;
                    }
                }
            }
            extra = &extra[(4 + len).min(extra.len())..];
        }
        if name.eq_ignore_ascii_case("META-INF/MANIFEST.MF") {
            manifest_entry = Some((method, comp, full, local));
        } else if is_app_config(&name) {
            config_entries.push((name.clone(), (method, comp, full, local)));
        }
        names.push(name);
        p = end;
    }
    let manifest = match manifest_entry {
        None => None,
        Some(entry) => {
            let bytes = read_entry(&mut f, entry, shift, "manifest")?;
            Some(Manifest::parse(&String::from_utf8_lossy(&bytes)))
        }
    };
    // Configuration that cannot be read is only not known: the jar is not refused for it.
    let app_config = config_entries
        .into_iter()
        .filter_map(|(name, entry)| {
            let bytes = read_entry(&mut f, entry, shift, &name).ok()?;
            Some((name, String::from_utf8_lossy(&bytes).into_owned()))
        })
        .collect();
    Ok(Jar {
        names,
        manifest,
        app_config,
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A zip of `files` (deflated when `deflate`), after `prefix` bytes (a launch script).
    fn zip(prefix: &[u8], files: &[(&str, &[u8])], deflate: bool) -> Vec<u8> {
        let mut out = prefix.to_vec();
        let mut dir = vec![];
        for (name, data) in files {
            let body = if deflate {
                miniz_oxide::deflate::compress_to_vec(data, 6)
            } else {
                data.to_vec()
            };
            let method: u16 = if deflate { 8 } else { 0 };
            let local = (out.len() - prefix.len()) as u32;
            let mut h = vec![0x50, 0x4b, 0x03, 0x04, 20, 0, 0, 0];
            h.extend(method.to_le_bytes());
            h.extend([0u8; 8]); // time, date, crc (not checked)
            h.extend((body.len() as u32).to_le_bytes());
            h.extend((data.len() as u32).to_le_bytes());
            h.extend((name.len() as u16).to_le_bytes());
            h.extend(0u16.to_le_bytes());
            out.extend(&h);
            out.extend(name.as_bytes());
            out.extend(&body);
            let mut c = vec![0x50, 0x4b, 0x01, 0x02, 20, 0, 20, 0, 0, 0];
            c.extend(method.to_le_bytes());
            c.extend([0u8; 8]);
            c.extend((body.len() as u32).to_le_bytes());
            c.extend((data.len() as u32).to_le_bytes());
            c.extend((name.len() as u16).to_le_bytes());
            c.extend([0u8; 12]); // extra, comment, disk, internal and external attributes
            c.extend(local.to_le_bytes());
            c.extend(name.as_bytes());
            dir.extend(c);
        }
        let dir_offset = (out.len() - prefix.len()) as u32;
        out.extend(&dir);
        let mut e = vec![0x50, 0x4b, 0x05, 0x06, 0, 0, 0, 0];
        e.extend((files.len() as u16).to_le_bytes());
        e.extend((files.len() as u16).to_le_bytes());
        e.extend((dir.len() as u32).to_le_bytes());
        e.extend(dir_offset.to_le_bytes());
        e.extend(0u16.to_le_bytes());
        out.extend(e);
        out
    }

    fn read_bytes(bytes: &[u8]) -> Result<Jar, String> {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("app.jar");
        std::fs::write(&p, bytes).unwrap();
        read(&p)
    }

    const BOOT: &[u8] = b"Manifest-Version: 1.0\r\nMain-Class: org.springframework.boot.loader.launch.JarLauncher\r\nStart-Class: com.example.shop.ShopApplicat\r\n ion\r\nSpring-Boot-Version: 3.5.7\r\nSpring-Boot-Classes: BOOT-INF/classes/\r\n\r\nName: x\r\nStart-Class: not.This\r\n";

    /// A Spring Boot `version` jar holding `config` files under BOOT-INF/classes/.
    pub(crate) fn boot_jar(version: &str, config: &[(&str, &str)]) -> Jar {
        let manifest = String::from_utf8_lossy(BOOT).replace("3.5.7", version);
        let mut files: Vec<(String, Vec<u8>)> = vec![
            ("META-INF/MANIFEST.MF".into(), manifest.into_bytes()),
            (
                "BOOT-INF/classes/com/example/shop/ShopApplication.class".into(),
                b"\xca\xfe".to_vec(),
            ),
        ];
        for (name, text) in config {
            files.push((format!("BOOT-INF/classes/{name}"), text.as_bytes().to_vec()));
        }
        let refs: Vec<(&str, &[u8])> = files.iter().map(|(n, b)| (n.as_str(), &b[..])).collect();
        read_bytes(&zip(b"", &refs, true)).unwrap()
    }

    #[test]
    fn readiness_is_served_per_spring_boot_version_and_setting() {
        let none = std::collections::BTreeMap::new();
        let p = |jar: &Jar, opts: &[&str], profiles: &[&str]| {
            let opts: Vec<String> = opts.iter().map(|o| o.to_string()).collect();
            probes(jar, &opts, &[], &none, profiles).unwrap()
        };
        // Spring Boot 4: on by default; off only when something sets it false.
        let four = p(&boot_jar("4.0.3", &[]), &[], &[]);
        assert!(four.served(), "{}", four.why());
        assert_eq!(
            four.why(),
            format!("Spring Boot 4.0.3 turns {PROBES} on by default")
        );
        let off = p(
            &boot_jar("4.0.3", &[("application.yml", "management:\n  endpoint:\n    health:\n      probes:\n        enabled: false\n")]),
            &[],
            &[],
        );
        assert!(!off.served());
        assert!(
            off.why().starts_with(
                "the jar's application.yml sets management.endpoint.health.probes.enabled=false"
            ),
            "{}",
            off.why()
        );
        // Spring Boot 3: off outside Kubernetes unless set; the jar's files are read.
        let three = p(&boot_jar("3.5.7", &[]), &[], &[]);
        assert!(!three.served());
        assert!(
            three
                .why()
                .contains("only on Kubernetes (the default from Spring Boot 4)"),
            "{}",
            three.why()
        );
        let jar = boot_jar(
            "3.5.7",
            &[
                (
                    "application.properties",
                    "# probes\nmanagement.endpoint.health.probes.enabled = true\n",
                ),
                (
                    "application-real2.properties",
                    "management.endpoint.health.probes.enabled=false\n",
                ),
            ],
        );
        assert_eq!(jar.app_config.len(), 2);
        let on = p(&jar, &[], &["real1"]);
        assert!(on.served());
        assert_eq!(
            on.why(),
            format!("the jar's application.properties sets {PROBES}=true (Spring Boot 3.5.7)")
        );
        // The profile's file wins over application.properties, a -D over both.
        assert!(!p(&jar, &[], &["real2"]).served());
        let d = p(
            &jar,
            &["-Xmx1g", "-Dmanagement.endpoint.health.probes.enabled=true"],
            &["real2"],
        );
        assert!(d.served());
        assert!(
            d.why()
                .starts_with("app.java_opts -Dmanagement.endpoint.health.probes.enabled=true"),
            "{}",
            d.why()
        );
        // Before 2.3 there is no readiness group at all.
        let old = p(
            &boot_jar(
                "2.2.13.RELEASE",
                &[(
                    "application.properties",
                    "management.health.probes.enabled=true\n",
                )],
            ),
            &[],
            &[],
        );
        assert!(!old.served());
        assert!(old.why().contains("no readiness group"), "{}", old.why());
        // Not a Spring Boot jar: nothing to say.
        let plain = read_bytes(&zip(
            b"",
            &[("META-INF/MANIFEST.MF", b"Main-Class: Demo\r\n")],
            false,
        ))
        .unwrap();
        assert!(probes(&plain, &[], &[], &none, &[]).is_none());
    }

    #[test]
    fn reads_a_deflated_manifest_after_a_launch_script() {
        let files: [(&str, &[u8]); 2] = [
            ("META-INF/MANIFEST.MF", BOOT),
            (
                "BOOT-INF/classes/com/example/shop/ShopApplication.class",
                b"\xca\xfe",
            ),
        ];
        for (prefix, deflate) in [
            (&b""[..], false),
            (&b"#!/bin/bash\nexec java -jar $0\n"[..], true),
        ] {
            let jar = read_bytes(&zip(prefix, &files, deflate)).unwrap();
            assert_eq!(jar.names.len(), 2);
            let m = jar.manifest.as_ref().unwrap();
            assert_eq!(
                m.get("start-class"),
                Some("com.example.shop.ShopApplication")
            );
            assert_eq!(
                jar.kind(),
                Kind::SpringBoot {
                    version: "3.5.7".into(),
                    start_class: "com.example.shop.ShopApplication".into()
                }
            );
        }
    }

    #[test]
    fn names_what_a_jar_lacks() {
        let no_class: [(&str, &[u8]); 1] = [("META-INF/MANIFEST.MF", BOOT)];
        let k = read_bytes(&zip(b"", &no_class, true)).unwrap().kind();
        assert!(
            matches!(&k, Kind::BrokenSpringBoot(w) if w.contains("BOOT-INF/classes/com/example/shop/ShopApplication.class")),
            "{k:?}"
        );
        let half: [(&str, &[u8]); 1] = [(
            "META-INF/MANIFEST.MF",
            b"Main-Class: org.springframework.boot.loader.launch.JarLauncher\n",
        )];
        let k = read_bytes(&zip(b"", &half, false)).unwrap().kind();
        assert!(
            matches!(&k, Kind::BrokenSpringBoot(w) if w.contains("lacks Start-Class, Spring-Boot-Version")),
            "{k:?}"
        );
        let plain: [(&str, &[u8]); 2] = [
            ("META-INF/MANIFEST.MF", b"Manifest-Version: 1.0\n"),
            ("com/example/A.class", b""),
        ];
        let k = read_bytes(&zip(b"", &plain, false)).unwrap().kind();
        assert_eq!(
            k,
            Kind::NotRunnable("its manifest has no Main-Class".into())
        );
        let runnable: [(&str, &[u8]); 1] = [("META-INF/MANIFEST.MF", b"Main-Class: DemoApp\n")];
        let k = read_bytes(&zip(b"", &runnable, false)).unwrap().kind();
        assert_eq!(
            k,
            Kind::Plain {
                main_class: "DemoApp".into()
            }
        );
        let none: [(&str, &[u8]); 1] = [("a.txt", b"x")];
        let k = read_bytes(&zip(b"", &none, false)).unwrap().kind();
        assert!(matches!(k, Kind::NotRunnable(_)), "{k:?}");
        assert!(read_bytes(b"PK\x03\x04 not really").is_err());
        assert!(read_bytes(b"").is_err());
    }
}
