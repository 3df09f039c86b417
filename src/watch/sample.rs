//! One line of nginx's access log in the format nonstop's site defines (`log_format
//! nonstop_<app>`), parsed into a typed [`Sample`].
//!
//! The format puts the fields that never hold a space first and quotes the upstream ones
//! (`$upstream_addr` lists every server tried, `"127.0.0.1:8081, 127.0.0.1:8082"`):
//!
//! ```text
//! 1733512345.123 200 0.004 "127.0.0.1:8082" "200" "0.004"
//! ```

/// The `log_format` body (inside nginx's single quotes) that [`parse`] reads; the site
/// template and the tests' nginx use exactly this.
pub const FORMAT: &str =
    r#"$msec $status $request_time "$upstream_addr" "$upstream_status" "$upstream_response_time""#;

/// One request as nginx logged it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sample {
    /// When nginx wrote the line (`$msec`), in milliseconds since the epoch.
    pub at_ms: u64,
    /// The status nginx sent (its own 502/504 included).
    pub status: u16,
    /// `$request_time` in milliseconds: from the first byte read to the last byte sent.
    pub took_ms: u64,
    /// The port of the last upstream server tried (`None`: nginx answered by itself).
    pub upstream_port: Option<u16>,
}

impl Sample {
    /// A 5xx answer: the app's own, or nginx's 502/504 when the app did not answer.
    pub fn is_error(&self) -> bool {
        self.status >= 500
    }
}

/// Why a line is not a [`Sample`] (another format, a line cut by a crash).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unparsed {
    /// Fewer fields than the format writes.
    Short,
    /// A field that is not what the format writes there.
    Field(&'static str),
}

/// Parse one line (without its newline).
pub fn parse(line: &str) -> Result<Sample, Unparsed> {
    let mut quoted = line.split('"');
    let head = quoted.next().ok_or(Unparsed::Short)?;
    let addr = quoted.next().ok_or(Unparsed::Short)?;
    let mut f = head.split_ascii_whitespace();
    let msec = f.next().ok_or(Unparsed::Short)?;
    let status = f.next().ok_or(Unparsed::Short)?;
    let took = f.next().ok_or(Unparsed::Short)?;
    Ok(Sample {
        at_ms: millis(msec).ok_or(Unparsed::Field("$msec"))?,
        status: status
            .parse()
            .ok()
            .filter(|s| (100..=999).contains(s))
            .ok_or(Unparsed::Field("$status"))?,
        took_ms: millis(took).ok_or(Unparsed::Field("$request_time"))?,
        upstream_port: addr
            .rsplit([',', ' '])
            .find(|a| !a.is_empty())
            .and_then(|a| a.rsplit_once(':'))
            .and_then(|(_, p)| p.parse().ok()),
    })
}

/// `1733512345.123` (seconds with milliseconds, as nginx writes `$msec` and `$request_time`)
/// in milliseconds.
fn millis(s: &str) -> Option<u64> {
    let (secs, frac) = s.split_once('.').unwrap_or((s, "0"));
    if secs.is_empty() || frac.len() > 3 || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let ms: u64 = format!("{frac:0<3}").parse().ok()?;
    secs.parse::<u64>().ok()?.checked_mul(1000)?.checked_add(ms)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_what_nginx_writes() {
        let s = parse(r#"1733512345.123 200 0.004 "127.0.0.1:8082" "200" "0.004""#).unwrap();
        assert_eq!(
            s,
            Sample {
                at_ms: 1_733_512_345_123,
                status: 200,
                took_ms: 4,
                upstream_port: Some(8082)
            }
        );
        assert!(!s.is_error());
        // nginx tried two servers: the last one answered.
        let s = parse(
            r#"1733512345.5 502 1.250 "127.0.0.1:8081, 127.0.0.1:8082" "502, 502" "0.000, 0.001""#,
        )
        .unwrap();
        assert_eq!(
            (s.status, s.took_ms, s.upstream_port),
            (502, 1250, Some(8082))
        );
        assert!(s.is_error());
        // nginx answered by itself (no upstream).
        let s = parse(r#"1733512345.000 499 0.000 "-" "-" "-""#).unwrap();
        assert_eq!(s.upstream_port, None);
        let s = parse(r#"1733512345.000 504 60.001 "[::1]:8081" "504" "60.000""#).unwrap();
        assert_eq!(s.upstream_port, Some(8081));
    }

    #[test]
    fn refuses_other_lines() {
        assert_eq!(parse(""), Err(Unparsed::Short));
        assert_eq!(parse("1733512345.123 200"), Err(Unparsed::Short));
        assert_eq!(
            parse(r#"127.0.0.1 - - [06/Dec/2026:10:00:00 +0000] "GET / HTTP/1.1" 200 5"#),
            Err(Unparsed::Field("$msec"))
        );
        assert_eq!(
            parse(r#"1733512345.123 ok 0.004 "-" "-" "-""#),
            Err(Unparsed::Field("$status"))
        );
        assert_eq!(
            parse(r#"1733512345.123 200 0.0041 "-" "-" "-""#),
            Err(Unparsed::Field("$request_time"))
        );
    }
}
