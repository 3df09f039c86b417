//! The one load client of the tests, the system tests, `make bench` and `make demo`: a strict
//! keep-alive HTTP/1.1 client. It reads every response to its framed end (`Content-Length` or
//! `chunked`; a response framed any other way, or with a length it cannot parse, is an error),
//! and names each request's outcome by [`Kind`]: ok, status, reset, EOF in headers, body cut,
//! timeout, refused, malformed. [`Client::send`] retries only where a browser or Go's
//! `net/http` would: an idempotent request (GET, HEAD) on a reused connection that failed before
//! any byte of the response came back (reset or EOF); never a POST, never a timeout, never a
//! request whose response had begun. Before reusing a kept connection it drops it if the server
//! has already closed it (Go's read loop does the same). The unit tests are in tests/client.rs.

use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

/// How one request ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    /// A 2xx or 3xx response, read to its framed end.
    Ok,
    /// A whole response with another status (4xx, 5xx, 1xx).
    Status,
    /// The connection was reset (or the request could not be written) before any byte of the
    /// response.
    Reset,
    /// The connection ended (EOF or reset) after the request was sent and before the end of
    /// the response's header block (with no byte at all, or inside it).
    EofInHeaders,
    /// The header block was whole, the body ended before its framed end (EOF or reset).
    BodyCut,
    /// Connect, write or read took longer than the client's timeout.
    Timeout,
    /// The connection could not be made (refused, unreachable).
    Refused,
    /// Not an HTTP/1.x response framed by Content-Length or chunked (a bad status line, an
    /// unparseable or conflicting length, neither length nor chunking, a bad chunk size).
    Malformed,
}

impl Kind {
    /// Every kind, in report order.
    pub const ALL: [Kind; 8] = [
        Kind::Ok,
        Kind::Status,
        Kind::Reset,
        Kind::EofInHeaders,
        Kind::BodyCut,
        Kind::Timeout,
        Kind::Refused,
        Kind::Malformed,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Kind::Ok => "ok",
            Kind::Status => "status",
            Kind::Reset => "reset",
            Kind::EofInHeaders => "eof in headers",
            Kind::BodyCut => "body cut",
            Kind::Timeout => "timeout",
            Kind::Refused => "refused",
            Kind::Malformed => "malformed",
        }
    }
}

impl std::fmt::Display for Kind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// One attempt that got no whole response.
#[derive(Debug, Clone)]
pub struct Fail {
    pub kind: Kind,
    /// The connection had served a response before this attempt.
    pub reused: bool,
    /// A byte of the response had arrived before it failed.
    pub got_byte: bool,
    /// The status, when the header block was whole (a cut body); else 0.
    pub status: u16,
    pub err: String,
}

/// One logical request as [`Client::send`] saw it: the final attempt's result, and the first
/// attempt's failure when it was retried.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub kind: Kind,
    /// The final status (0: no whole header block).
    pub status: u16,
    pub body: String,
    /// Why the final attempt failed (`None` for a whole response).
    pub error: Option<String>,
    /// The first attempt's failure, when the request was sent again.
    pub retried: Option<Fail>,
    /// The final attempt's failure (`None` for a whole response).
    pub fail: Option<Fail>,
    /// The kept connection had been closed by the server while idle and was replaced before
    /// this request was sent (not a failure: nothing was sent on it).
    pub after_server_close: bool,
}

impl Outcome {
    /// The first attempt's outcome: what a client that never retries would have seen.
    pub fn raw_kind(&self) -> Kind {
        self.retried.as_ref().map_or(self.kind, |f| f.kind)
    }

    /// The first attempt was sent on a kept connection that the server closed (reset or EOF)
    /// before a byte of the response: what a reload's old worker does to the idle keep-alive
    /// connections it closes at the moment a request arrives on one.
    pub fn unanswered_on_reused(&self) -> bool {
        self.retried
            .as_ref()
            .or(self.fail.as_ref())
            .is_some_and(|f| {
                f.reused && !f.got_byte && matches!(f.kind, Kind::Reset | Kind::EofInHeaders)
            })
    }
}

/// Whether a method is one Go's `net/http` and browsers replay after a connection failure.
fn idempotent(method: &str) -> bool {
    matches!(method, "GET" | "HEAD" | "OPTIONS" | "TRACE")
}

/// A keep-alive HTTP/1.1 client to one address.
pub struct Client {
    addr: SocketAddr,
    conn: Option<BufReader<TcpStream>>,
    /// Responses read on the current connection.
    served: usize,
    timeout: Duration,
}

/// An attempt's error on its way out of the reader, with whether a response byte had come.
struct E(Kind, String);

fn io_kind(e: &std::io::Error, got_byte: bool, body: bool) -> Kind {
    match e.kind() {
        ErrorKind::WouldBlock | ErrorKind::TimedOut => Kind::Timeout,
        _ if body => Kind::BodyCut,
        _ if got_byte => Kind::EofInHeaders,
        ErrorKind::UnexpectedEof => Kind::EofInHeaders,
        _ => Kind::Reset,
    }
}

impl Client {
    /// A client with a 2 s connect and 30 s read/write timeout.
    pub fn new(addr: SocketAddr) -> Client {
        Client {
            addr,
            conn: None,
            served: 0,
            timeout: Duration::from_secs(30),
        }
    }

    /// The same with `timeout` for connect, write and read.
    pub fn with_timeout(addr: SocketAddr, timeout: Duration) -> Client {
        Client {
            timeout,
            ..Client::new(addr)
        }
    }

    /// Drop the kept connection if the server has closed it while it was idle (EOF, or an
    /// error, waiting to be read): what Go's net/http does in its read loop, which takes a
    /// connection the server closed out of the pool before a request could be sent on it.
    /// Returns whether it dropped one.
    pub fn drop_if_server_closed(&mut self) -> bool {
        let Some(conn) = self.conn.as_ref() else {
            return false;
        };
        if !conn.buffer().is_empty() {
            // Bytes nobody asked for: the connection is unusable.
            self.conn = None;
            return true;
        }
        let s = conn.get_ref();
        let mut b = [0u8; 1];
        let closed = s.set_nonblocking(true).is_ok()
            && match s.peek(&mut b) {
                Ok(_) => true,
                Err(e) => e.kind() != ErrorKind::WouldBlock,
            };
        let _ = s.set_nonblocking(false);
        if closed {
            self.conn = None;
        }
        closed
    }

    /// One request as a browser or Go's net/http sends it: the kept connection checked first
    /// ([`Client::drop_if_server_closed`]), and sent once more on a fresh connection only when
    /// it is idempotent and failed on a reused connection before any byte of the response.
    pub fn send(&mut self, method: &str, path: &str, body: &[u8]) -> Outcome {
        self.send_with(method, path, body, true)
    }

    /// [`Client::send`] without the retry: every request is final, a GET as a POST.
    pub fn send_once(&mut self, method: &str, path: &str, body: &[u8]) -> Outcome {
        self.send_with(method, path, body, false)
    }

    fn send_with(&mut self, method: &str, path: &str, body: &[u8], retry: bool) -> Outcome {
        let after_server_close = self.drop_if_server_closed();
        let first = self.request(method, path, body);
        let (r, retried) = match first {
            Err(f)
                if retry
                    && f.reused
                    && !f.got_byte
                    && idempotent(method)
                    && matches!(f.kind, Kind::Reset | Kind::EofInHeaders) =>
            {
                (self.request(method, path, body), Some(f))
            }
            r => (r, None),
        };
        let mut o = match r {
            Ok((status, body)) => Outcome {
                kind: if (200..400).contains(&status) {
                    Kind::Ok
                } else {
                    Kind::Status
                },
                status,
                body,
                error: None,
                retried: None,
                fail: None,
                after_server_close,
            },
            Err(f) => Outcome {
                kind: f.kind,
                status: f.status,
                body: String::new(),
                error: Some(f.err.clone()),
                retried: None,
                fail: Some(f),
                after_server_close,
            },
        };
        o.retried = retried;
        o
    }

    /// One attempt, never retried: the status and body of a whole response, whatever its
    /// status, or the failure.
    pub fn request(
        &mut self,
        method: &str,
        path: &str,
        body: &[u8],
    ) -> Result<(u16, String), Fail> {
        if self.conn.is_none() {
            let s =
                TcpStream::connect_timeout(&self.addr, self.timeout.min(Duration::from_secs(2)))
                    .map_err(|e| Fail {
                        kind: match e.kind() {
                            ErrorKind::WouldBlock | ErrorKind::TimedOut => Kind::Timeout,
                            _ => Kind::Refused,
                        },
                        reused: false,
                        got_byte: false,
                        status: 0,
                        err: format!("connect: {e}"),
                    })?;
            s.set_read_timeout(Some(self.timeout)).unwrap();
            s.set_write_timeout(Some(self.timeout)).unwrap();
            s.set_nodelay(true).unwrap();
            self.conn = Some(BufReader::new(s));
            self.served = 0;
        }
        let reused = self.served > 0;
        let mut got_byte = false;
        let mut status = 0;
        match self.exchange(method, path, body, &mut got_byte, &mut status) {
            Ok((status, text, close)) => {
                self.served += 1;
                if close {
                    self.conn = None;
                }
                Ok((status, text))
            }
            Err(E(kind, err)) => {
                self.conn = None;
                Err(Fail {
                    kind,
                    reused,
                    got_byte,
                    status,
                    err,
                })
            }
        }
    }

    fn exchange(
        &mut self,
        method: &str,
        path: &str,
        body: &[u8],
        got_byte: &mut bool,
        status_out: &mut u16,
    ) -> Result<(u16, String, bool), E> {
        let conn = self.conn.as_mut().unwrap();
        let mut head = format!("{method} {path} HTTP/1.1\r\nHost: localhost\r\n");
        if method != "GET" && method != "HEAD" || !body.is_empty() {
            head += &format!("Content-Length: {}\r\n", body.len());
        }
        head += "\r\n";
        let s = conn.get_mut();
        let write = |e: std::io::Error| E(io_kind(&e, false, false), format!("write: {e}"));
        s.write_all(head.as_bytes()).map_err(write)?;
        s.write_all(body).map_err(write)?;

        // The header block, line by line; EOF anywhere in it is an error.
        let mut line = Vec::new();
        let read_line = |conn: &mut BufReader<TcpStream>,
                         line: &mut Vec<u8>,
                         got: &mut bool|
         -> Result<(), E> {
            line.clear();
            let n = conn
                .by_ref()
                .take(16 * 1024)
                .read_until(b'\n', line)
                .map_err(|e| {
                    E(
                        io_kind(&e, *got, false),
                        format!("reading the headers: {e}"),
                    )
                })?;
            if n > 0 {
                *got = true;
            }
            if n == 0 || line.last() != Some(&b'\n') {
                let what = if *got { "inside" } else { "before" };
                return Err(if n >= 16 * 1024 {
                    E(Kind::Malformed, "a header line over 16 KiB".into())
                } else {
                    E(
                        Kind::EofInHeaders,
                        format!("connection closed {what} the response's header block"),
                    )
                });
            }
            Ok(())
        };
        read_line(conn, &mut line, got_byte)?;
        let status_line = String::from_utf8_lossy(&line).trim_end().to_string();
        let mut parts = status_line.splitn(3, ' ');
        let version = parts.next().unwrap_or("");
        let status: u16 = match (version, parts.next()) {
            ("HTTP/1.1" | "HTTP/1.0", Some(code)) if code.len() == 3 => code
                .parse()
                .map_err(|_| E(Kind::Malformed, format!("bad status line {status_line:?}")))?,
            _ => {
                return Err(E(
                    Kind::Malformed,
                    format!("bad status line {status_line:?}"),
                ))
            }
        };
        let mut close = version == "HTTP/1.0";
        let mut len: Option<usize> = None;
        let mut chunked = false;
        let mut lines = 0;
        loop {
            read_line(conn, &mut line, got_byte)?;
            let l = String::from_utf8_lossy(&line).trim_end().to_string();
            if l.is_empty() {
                break;
            }
            lines += 1;
            if lines > 100 {
                return Err(E(Kind::Malformed, "over 100 header lines".into()));
            }
            let Some((name, value)) = l.split_once(':') else {
                return Err(E(Kind::Malformed, format!("bad header line {l:?}")));
            };
            let (name, value) = (name.trim().to_ascii_lowercase(), value.trim());
            match name.as_str() {
                "content-length" => {
                    let n: usize = (!value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()))
                        .then(|| value.parse().ok())
                        .flatten()
                        .ok_or_else(|| {
                            E(Kind::Malformed, format!("bad Content-Length {value:?}"))
                        })?;
                    if len.is_some_and(|l| l != n) {
                        return Err(E(Kind::Malformed, "conflicting Content-Length".into()));
                    }
                    len = Some(n);
                }
                "transfer-encoding" => {
                    let last = value.rsplit(',').next().unwrap_or("").trim();
                    if !last.eq_ignore_ascii_case("chunked") {
                        return Err(E(
                            Kind::Malformed,
                            format!("Transfer-Encoding {value:?} without chunked last"),
                        ));
                    }
                    chunked = true;
                }
                "connection" => {
                    let v = value.to_ascii_lowercase();
                    if v.contains("close") {
                        close = true;
                    } else if v.contains("keep-alive") {
                        close = false;
                    }
                }
                _ => {}
            }
        }
        *status_out = status;
        let cut = |e: std::io::Error, at: usize, want: String| {
            E(
                io_kind(&e, true, true),
                format!("HTTP {status}: body ended at byte {at} of {want}: {e}"),
            )
        };
        if method == "HEAD" || status == 204 || status == 304 || (100..200).contains(&status) {
            if (100..200).contains(&status) {
                return Err(E(Kind::Malformed, format!("an unexpected HTTP {status}")));
            }
            return Ok((status, String::new(), close));
        }
        if chunked {
            if len.is_some() {
                return Err(E(Kind::Malformed, "both Content-Length and chunked".into()));
            }
            let mut buf = vec![];
            loop {
                line.clear();
                let n = conn
                    .by_ref()
                    .take(1024)
                    .read_until(b'\n', &mut line)
                    .map_err(|e| cut(e, buf.len(), "a chunked body".into()))?;
                if n == 0 || line.last() != Some(&b'\n') {
                    if n >= 1024 {
                        return Err(E(Kind::Malformed, "a chunk size line over 1 KiB".into()));
                    }
                    return Err(E(
                        Kind::BodyCut,
                        format!(
                            "HTTP {status}: chunked body ended at byte {} before its last chunk",
                            buf.len()
                        ),
                    ));
                }
                let text = String::from_utf8_lossy(&line);
                let size = text.trim().split(';').next().unwrap_or("").trim();
                let size = usize::from_str_radix(size, 16)
                    .ok()
                    .filter(|_| !size.is_empty() && size.len() <= 8)
                    .ok_or_else(|| E(Kind::Malformed, format!("bad chunk size {text:?}")))?;
                if size == 0 {
                    // Trailers, up to the empty line.
                    loop {
                        line.clear();
                        let n = conn
                            .read_until(b'\n', &mut line)
                            .map_err(|e| cut(e, buf.len(), "a chunked body".into()))?;
                        if n == 0 || line.last() != Some(&b'\n') {
                            return Err(E(
                                Kind::BodyCut,
                                format!("HTTP {status}: chunked body ended in its trailers"),
                            ));
                        }
                        if line == b"\r\n" || line == b"\n" {
                            break;
                        }
                    }
                    break;
                }
                let at = buf.len();
                buf.resize(at + size, 0);
                conn.read_exact(&mut buf[at..])
                    .map_err(|e| cut(e, at, "a chunk".into()))?;
                let mut crlf = [0u8; 2];
                conn.read_exact(&mut crlf)
                    .map_err(|e| cut(e, buf.len(), "a chunk's CRLF".into()))?;
                if &crlf != b"\r\n" {
                    return Err(E(Kind::Malformed, "a chunk not ended by CRLF".into()));
                }
            }
            return Ok((status, String::from_utf8_lossy(&buf).into_owned(), close));
        }
        let Some(len) = len else {
            return Err(E(
                Kind::Malformed,
                format!("HTTP {status} with neither Content-Length nor chunked"),
            ));
        };
        let mut buf = vec![0; len];
        let mut at = 0;
        while at < len {
            match conn.read(&mut buf[at..]) {
                Ok(0) => {
                    return Err(E(
                        Kind::BodyCut,
                        format!("HTTP {status}: body ended at byte {at} of {len}"),
                    ))
                }
                Ok(n) => at += n,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => return Err(cut(e, at, len.to_string())),
            }
        }
        // A response longer than its length: the extra bytes already here would be read as the
        // next response.
        if !conn.buffer().is_empty() || unsolicited(conn.get_ref()) {
            return Err(E(
                Kind::Malformed,
                format!("HTTP {status}: more bytes than its Content-Length {len}"),
            ));
        }
        Ok((status, String::from_utf8_lossy(&buf).into_owned(), close))
    }
}

/// Whether bytes are waiting on `s` that no request asked for.
fn unsolicited(s: &TcpStream) -> bool {
    let mut b = [0u8; 1];
    let waiting = s.set_nonblocking(true).is_ok() && matches!(s.peek(&mut b), Ok(n) if n > 0);
    let _ = s.set_nonblocking(false);
    waiting
}
