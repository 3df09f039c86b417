//! The load client itself (tests/common/http.rs) against a tiny TCP server in the test that
//! answers each request from a script: whole responses, headers cut, bodies cut, resets, lies
//! about the length, silence. Every way a response can go wrong must come back as its own
//! kind, and only a GET that failed on a reused connection before any byte is sent again.

mod common;
use common::*;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::Duration;

/// What the server does with one request.
#[derive(Clone)]
enum Step {
    /// Write these bytes and keep the connection for the next request.
    Answer(&'static [u8]),
    /// Write these bytes, then close (FIN).
    AnswerClose(&'static [u8]),
    /// Write these bytes, then reset (RST: SO_LINGER 0).
    AnswerReset(&'static [u8]),
    /// Write these bytes, then wait for the client to give up.
    AnswerHang(&'static [u8]),
}

const OK: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 11\r\n\r\nv1 real1 80";

/// A server on a loopback port: connection `c` serves the steps `script[c]` in order, one per
/// request; a connection closes once its steps are done. Returns its address and the number
/// of connections it accepted when joined.
fn server(script: Vec<Vec<Step>>) -> (SocketAddr, std::thread::JoinHandle<usize>) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    let h = std::thread::spawn(move || {
        let mut accepted = 0;
        for steps in script {
            let (mut s, _) = l.accept().unwrap();
            accepted += 1;
            for step in steps {
                read_request(&mut s);
                let (bytes, then) = match step {
                    Step::Answer(b) => (b, 0),
                    Step::AnswerClose(b) => (b, 1),
                    Step::AnswerReset(b) => (b, 2),
                    Step::AnswerHang(b) => (b, 3),
                };
                s.write_all(bytes).unwrap();
                s.flush().unwrap();
                match then {
                    1 => {
                        let _ = s.shutdown(std::net::Shutdown::Write);
                        std::thread::sleep(Duration::from_millis(50));
                        break;
                    }
                    2 => {
                        reset(s);
                        break;
                    }
                    3 => {
                        std::thread::sleep(Duration::from_millis(700));
                        break;
                    }
                    _ => {}
                }
            }
        }
        accepted
    });
    (addr, h)
}

/// Read one request's header block (and a Content-Length body).
fn read_request(s: &mut TcpStream) {
    let mut head = Vec::new();
    let mut b = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if s.read(&mut b).unwrap() == 0 {
            return;
        }
        head.push(b[0]);
    }
    let text = String::from_utf8_lossy(&head).to_ascii_lowercase();
    let len: usize = text
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .map_or(0, |v| v.trim().parse().unwrap());
    let mut body = vec![0; len];
    s.read_exact(&mut body).unwrap();
}

/// Close with a reset instead of a FIN.
fn reset(s: TcpStream) {
    rustix::net::sockopt::set_socket_linger(&s, Some(Duration::ZERO)).unwrap();
    drop(s);
}

/// One GET through [`Client::send`] against a server answering `bytes` and then doing `step`.
fn one(step: Step) -> Outcome {
    let (addr, h) = server(vec![vec![step]]);
    let o = Client::with_timeout(addr, Duration::from_millis(300)).send("GET", "/", b"");
    h.join().unwrap();
    o
}

#[test]
fn a_whole_response_is_ok_and_the_connection_is_kept() {
    let (addr, h) = server(vec![vec![
        Step::Answer(OK),
        Step::Answer(OK),
        Step::AnswerClose(OK),
    ]]);
    let mut c = Client::new(addr);
    for _ in 0..3 {
        let o = c.send("GET", "/", b"");
        assert_eq!(
            (o.kind, o.status, o.body.as_str()),
            (Kind::Ok, 200, "v1 real1 80")
        );
        assert!(o.retried.is_none());
    }
    assert_eq!(h.join().unwrap(), 1, "one connection served all three");
}

#[test]
fn a_chunked_response_is_read_to_its_last_chunk() {
    let o = one(Step::AnswerClose(
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nv1 \r\n8;x=y\r\nreal1 80\r\n0\r\nX-T: 1\r\n\r\n",
    ));
    assert_eq!(
        (o.kind, o.body.as_str()),
        (Kind::Ok, "v1 real1 80"),
        "{o:?}"
    );
}

#[test]
fn a_status_line_then_eof_is_eof_in_headers_not_a_200() {
    let o = one(Step::AnswerClose(b"HTTP/1.1 200 OK\r\n"));
    assert_eq!(o.kind, Kind::EofInHeaders, "{o:?}");
    let o = one(Step::AnswerClose(b"HTTP/1.1 200 OK\r\nContent-Len"));
    assert_eq!(o.kind, Kind::EofInHeaders, "{o:?}");
    let o = one(Step::AnswerReset(
        b"HTTP/1.1 200 OK\r\nContent-Length: 11\r\n",
    ));
    assert_eq!(o.kind, Kind::EofInHeaders, "{o:?}");
}

#[test]
fn a_body_shorter_than_its_length_is_a_cut_body() {
    let o = one(Step::AnswerClose(
        b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nv1 real1 80",
    ));
    assert_eq!((o.kind, o.status), (Kind::BodyCut, 200), "{o:?}");
    let o = one(Step::AnswerReset(
        b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nv1 real1 80",
    ));
    assert_eq!((o.kind, o.status), (Kind::BodyCut, 200), "{o:?}");
    let o = one(Step::AnswerClose(
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nb\r\nv1 real1 80\r\n",
    ));
    assert_eq!(o.kind, Kind::BodyCut, "no last chunk: {o:?}");
    let o = one(Step::AnswerClose(
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n64\r\nv1 real1 80",
    ));
    assert_eq!(o.kind, Kind::BodyCut, "a chunk cut: {o:?}");
}

#[test]
fn a_body_longer_than_its_length_or_unframed_is_malformed() {
    let o = one(Step::AnswerClose(
        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nv1 real1 80",
    ));
    assert_eq!(o.kind, Kind::Malformed, "more than its length: {o:?}");
    let o = one(Step::AnswerClose(b"HTTP/1.1 200 OK\r\n\r\nv1 real1 80"));
    assert_eq!(o.kind, Kind::Malformed, "read-to-close framing: {o:?}");
    let o = one(Step::AnswerClose(
        b"HTTP/1.1 200 OK\r\nContent-Length: 1x\r\n\r\nv1 real1 80",
    ));
    assert_eq!(o.kind, Kind::Malformed, "unparseable length: {o:?}");
    let o = one(Step::AnswerClose(
        b"HTTP/1.1 200 OK\r\nContent-Length: 11\r\nContent-Length: 12\r\n\r\nv1 real1 80",
    ));
    assert_eq!(o.kind, Kind::Malformed, "two lengths: {o:?}");
    let o = one(Step::AnswerClose(
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
    ));
    assert_eq!(o.kind, Kind::Malformed, "bad chunk size: {o:?}");
    let o = one(Step::AnswerClose(
        b"HTTP/1.1 2000 OK\r\nContent-Length: 0\r\n\r\n",
    ));
    assert_eq!(o.kind, Kind::Malformed, "bad status: {o:?}");
}

#[test]
fn a_502_is_a_status_failure_and_a_hang_a_timeout() {
    let o = one(Step::AnswerClose(
        b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 3\r\n\r\nbad",
    ));
    assert_eq!(
        (o.kind, o.status, o.body.as_str()),
        (Kind::Status, 502, "bad")
    );
    let o = one(Step::AnswerHang(
        b"HTTP/1.1 200 OK\r\nContent-Length: 11\r\n\r\nv1",
    ));
    assert_eq!((o.kind, o.status), (Kind::Timeout, 200), "{o:?}");
    let o = one(Step::AnswerHang(b""));
    assert_eq!(o.kind, Kind::Timeout, "{o:?}");
    assert!(o.retried.is_none(), "a timeout is never retried: {o:?}");
}

#[test]
fn nothing_listening_is_refused() {
    let port = free_port();
    let o = Client::new(SocketAddr::from(([127, 0, 0, 1], port))).send("GET", "/", b"");
    assert_eq!(o.kind, Kind::Refused, "{o:?}");
}

#[test]
fn a_reset_before_any_byte_on_a_fresh_connection_is_not_retried() {
    let o = one(Step::AnswerReset(b""));
    assert_eq!(o.kind, Kind::Reset, "{o:?}");
    assert!(o.retried.is_none(), "a fresh connection: {o:?}");
}

/// A server that answers one request on the first connection, then, when the second request
/// arrives on it, resets (`reset`) or closes it without a byte; a second connection answers.
fn reused_then_dropped(reset_it: bool) -> (SocketAddr, std::thread::JoinHandle<usize>) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    let h = std::thread::spawn(move || {
        let (mut s, _) = l.accept().unwrap();
        read_request(&mut s);
        s.write_all(OK).unwrap();
        read_request(&mut s);
        if reset_it {
            reset(s);
        } else {
            drop(s);
        }
        // The retry (if any) comes on a new connection.
        l.set_nonblocking(true).unwrap();
        let mut accepted = 1;
        let t0 = std::time::Instant::now();
        while t0.elapsed() < Duration::from_millis(500) {
            if let Ok((mut s, _)) = l.accept() {
                s.set_nonblocking(false).unwrap();
                accepted += 1;
                read_request(&mut s);
                s.write_all(OK).unwrap();
                std::thread::sleep(Duration::from_millis(50));
                break;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        accepted
    });
    (addr, h)
}

#[test]
fn a_get_failing_before_any_byte_on_a_reused_connection_is_retried_once() {
    for reset_it in [true, false] {
        let (addr, h) = reused_then_dropped(reset_it);
        let mut c = Client::new(addr);
        assert_eq!(c.send("GET", "/", b"").kind, Kind::Ok);
        // `request`, not `send`: `send` would see the close while idle and never use it.
        let o = {
            let first = c.request("GET", "/", b"");
            let f = first.expect_err("the server dropped it");
            assert!(f.reused && !f.got_byte, "{f:?}");
            assert!(matches!(f.kind, Kind::Reset | Kind::EofInHeaders), "{f:?}");
            f
        };
        // The same through `send`, with the server dropping the connection after the request.
        let (addr2, h2) = reused_then_dropped(reset_it);
        let mut c2 = Client::new(addr2);
        assert_eq!(c2.send("GET", "/", b"").kind, Kind::Ok);
        let r = c2.send("GET", "/", b"");
        assert_eq!(r.kind, Kind::Ok, "retried on a new connection: {r:?}");
        assert_eq!(r.raw_kind(), o.kind, "the raw failure is kept: {r:?}");
        assert!(r.retried.is_some());
        assert_eq!(h2.join().unwrap(), 2);
        drop(c);
        h.join().unwrap();
    }
}

#[test]
fn a_post_failing_on_a_reused_connection_is_never_retried() {
    let (addr, h) = reused_then_dropped(true);
    let mut c = Client::new(addr);
    assert_eq!(c.send("GET", "/", b"").kind, Kind::Ok);
    let o = c.send("POST", "/", b"order=42");
    assert!(matches!(o.kind, Kind::Reset | Kind::EofInHeaders), "{o:?}");
    assert!(o.retried.is_none(), "{o:?}");
    assert_eq!(h.join().unwrap(), 1, "no second connection");
}

#[test]
fn a_get_whose_response_had_begun_is_never_retried() {
    let (addr, h) = server(vec![
        vec![
            Step::Answer(OK),
            Step::AnswerClose(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nv1"),
        ],
        vec![Step::AnswerClose(OK)],
    ]);
    let mut c = Client::new(addr);
    assert_eq!(c.send("GET", "/", b"").kind, Kind::Ok);
    let o = c.send("GET", "/", b"");
    assert_eq!(o.kind, Kind::BodyCut, "{o:?}");
    assert!(o.retried.is_none(), "{o:?}");
    // The next request takes a new connection and is served.
    assert_eq!(c.send("GET", "/", b"").kind, Kind::Ok);
    assert_eq!(h.join().unwrap(), 2);
}

#[test]
fn a_connection_the_server_closed_while_idle_is_replaced_before_use() {
    let (addr, h) = server(vec![
        vec![Step::AnswerClose(OK)],
        vec![Step::AnswerClose(OK)],
    ]);
    let mut c = Client::new(addr);
    assert_eq!(c.send("POST", "/", b"x").kind, Kind::Ok);
    std::thread::sleep(Duration::from_millis(20));
    let o = c.send("POST", "/", b"x");
    assert_eq!(o.kind, Kind::Ok, "{o:?}");
    assert!(o.after_server_close && o.retried.is_none(), "{o:?}");
    assert_eq!(h.join().unwrap(), 2);
}

#[test]
fn a_tally_counts_each_kind_raw_and_after_the_retry() {
    let mut t = Tally::default();
    let (addr, h) = reused_then_dropped(true);
    let mut c = Client::new(addr);
    t.record("GET", &c.send("GET", "/", b""));
    t.record("GET", &c.send("GET", "/", b""));
    h.join().unwrap();
    t.record(
        "GET",
        &one(Step::AnswerClose(
            b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nv2",
        )),
    );
    assert_eq!(t.requests, 3);
    assert_eq!(t.raw_failed(), 2, "{}", t.summary());
    assert_eq!(t.failed(), 1, "{}", t.summary());
    assert_eq!(t.raw_of(Kind::BodyCut), 1, "{}", t.summary());
    assert_eq!(t.retried, 1);
    assert_eq!(t.versions.get("v1"), Some(&2), "{}", t.summary());
    assert!(
        !t.versions.contains_key("v2"),
        "a cut body names no version"
    );
}
