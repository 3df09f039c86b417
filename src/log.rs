//! Logging: one event per line on stderr, UTC time with milliseconds, level, binary name, and
//! the CodeDeploy deployment id and lifecycle event when the agent set them. Also the small UTC
//! time helpers the rest of the crate uses for release names and the state file.

use std::io::Write;
use std::time::{SystemTime, UNIX_EPOCH};

/// Start logging for `binary`. `verbose` adds debug lines; `RUST_LOG` still overrides.
pub fn init(binary: &'static str, verbose: u8) {
    let level = match verbose {
        0 => log::LevelFilter::Info,
        1 => log::LevelFilter::Debug,
        _ => log::LevelFilter::Trace,
    };
    let context = hook_context();
    let mut b = env_logger::Builder::new();
    b.filter_level(level)
        .filter_module("ureq", log::LevelFilter::Warn)
        .filter_module("ureq_proto", log::LevelFilter::Warn)
        .parse_default_env()
        .write_style(env_logger::WriteStyle::Auto)
        .format(move |buf, rec| {
            let style = buf.default_level_style(rec.level());
            writeln!(
                buf,
                "{} {style}{:<5}{style:#} {binary}{context}: {}",
                utc_millis(SystemTime::now()),
                rec.level(),
                rec.args()
            )
        });
    let _ = b.try_init();
}

/// `[d-ABC123 AfterInstall]` when run by the CodeDeploy agent, else empty.
fn hook_context() -> String {
    let parts: Vec<String> = ["DEPLOYMENT_ID", "LIFECYCLE_EVENT"]
        .iter()
        .filter_map(|k| std::env::var(k).ok().filter(|v| !v.is_empty()))
        .collect();
    if parts.is_empty() {
        String::new()
    } else {
        format!(" [{}]", parts.join(" "))
    }
}

/// Broken-down UTC time: (year, month, day, hour, minute, second, millisecond).
pub fn utc_parts(t: SystemTime) -> (i64, u32, u32, u32, u32, u32, u32) {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = d.as_secs() as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (
        year,
        month,
        day,
        (rem / 3600) as u32,
        (rem % 3600 / 60) as u32,
        (rem % 60) as u32,
        d.subsec_millis(),
    )
}

/// `2026-11-22T06:40:01.123Z`
pub fn utc_millis(t: SystemTime) -> String {
    let (y, mo, d, h, mi, s, ms) = utc_parts(t);
    format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}.{ms:03}Z")
}

/// `20261122T064001Z`, used to name a release when no DEPLOYMENT_ID is set.
pub fn utc_compact(t: SystemTime) -> String {
    let (y, mo, d, h, mi, s, _) = utc_parts(t);
    format!("{y:04}{mo:02}{d:02}T{h:02}{mi:02}{s:02}Z")
}

/// A size as a person reads it: `812 KB`, `48.3 MB`.
pub fn human_bytes(n: u64) -> String {
    if n < 1_000_000 {
        format!("{} KB", n.div_ceil(1000))
    } else {
        format!("{:.1} MB", n as f64 / 1e6)
    }
}

/// A duration as a person reads it: `850 ms`, `2.31 s`.
pub fn human(d: std::time::Duration) -> String {
    if d.as_millis() < 1000 {
        format!("{} ms", d.as_millis())
    } else {
        format!("{:.2} s", d.as_secs_f64())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn formats_utc() {
        let t = UNIX_EPOCH + Duration::from_millis(1_795_329_601_123);
        assert_eq!(utc_millis(t), "2026-11-22T06:40:01.123Z");
        assert_eq!(utc_compact(t), "20261122T064001Z");
        assert_eq!(utc_millis(UNIX_EPOCH), "1970-01-01T00:00:00.000Z");
        assert_eq!(
            utc_millis(UNIX_EPOCH + Duration::from_secs(951_782_400)),
            "2000-02-29T00:00:00.000Z"
        );
    }
}
