//! The kernel's socket table: who listens on a port, the connections to it (accepted, queued,
//! mid-handshake, and conntrack's steered SYNs), asked through netlink sock_diag with
//! /proc/net/tcp{,6} as the fallback, and which process holds which socket.

use super::procfs::all_pids;
use std::fs;
use std::time::{Duration, Instant};

/// TCP socket states from /proc/net/tcp.
const TCP_ESTABLISHED: u8 = 0x01;
const TCP_SYN_RECV: u8 = 0x03;
const TCP_LISTEN: u8 = 0x0A;

/// One row of /proc/net/tcp{,6}: local port, remote port, state, inode.
#[derive(Debug, Clone, Copy)]
pub struct TcpRow {
    pub local_port: u16,
    pub remote_port: u16,
    pub state: u8,
    pub inode: u64,
}

/// The IPv4 and IPv6 TCP sockets of this network namespace whose state is in `states`.
/// Asks the kernel through netlink sock_diag (as `ss` does), which filters by state before
/// anything is copied: a busy host can hold 100,000 TIME_WAIT sockets, and /proc/net/tcp
/// lists every one of them (seconds of CPU per read). Falls back to /proc/net/tcp{,6}.
pub fn tcp_sockets(states: &[u8]) -> Vec<TcpRow> {
    let mask = states.iter().fold(0u32, |m, s| m | (1 << s));
    match sock_diag(mask) {
        Ok(rows) => rows,
        Err(e) => {
            log::debug!("sock_diag unavailable ({e}); reading /proc/net/tcp");
            proc_net_tcp()
                .into_iter()
                .filter(|r| states.contains(&r.state))
                .collect()
        }
    }
}

/// One inet_diag dump per address family (AF_INET, AF_INET6) for TCP sockets in `mask`.
fn sock_diag(mask: u32) -> std::io::Result<Vec<TcpRow>> {
    use rustix::net::{
        netlink, recv, send, socket, AddressFamily, RecvFlags, SendFlags, SocketType,
    };
    const SOCK_DIAG_BY_FAMILY: u16 = 20;
    const NLM_F_REQUEST_DUMP: u16 = 0x1 | 0x300;
    const NLMSG_ERROR: u16 = 2;
    const NLMSG_DONE: u16 = 3;
    let fd = socket(
        AddressFamily::NETLINK,
        SocketType::RAW,
        Some(netlink::SOCK_DIAG),
    )?;
    let mut rows = vec![];
    let mut buf = vec![0u8; 64 * 1024];
    for (seq, family) in [(1u32, 2u8), (2, 10)] {
        // struct nlmsghdr (16 bytes) + struct inet_diag_req_v2 (56 bytes)
        let mut req = Vec::with_capacity(72);
        req.extend_from_slice(&72u32.to_ne_bytes());
        req.extend_from_slice(&SOCK_DIAG_BY_FAMILY.to_ne_bytes());
        req.extend_from_slice(&NLM_F_REQUEST_DUMP.to_ne_bytes());
        req.extend_from_slice(&seq.to_ne_bytes());
        req.extend_from_slice(&0u32.to_ne_bytes());
        req.extend_from_slice(&[family, 6 /* IPPROTO_TCP */, 0, 0]);
        req.extend_from_slice(&mask.to_ne_bytes());
        req.extend_from_slice(&[0u8; 48]);
        send(&fd, &req, SendFlags::empty())?;
        'dump: loop {
            let (n, _) = recv(&fd, &mut buf[..], RecvFlags::empty())?;
            if n == 0 {
                break;
            }
            let mut off = 0;
            while off + 16 <= n {
                let word = |at: usize| u32::from_ne_bytes(buf[at..at + 4].try_into().unwrap());
                let len = word(off) as usize;
                let kind = u16::from_ne_bytes([buf[off + 4], buf[off + 5]]);
                if len < 16 || off + len > n {
                    return Err(std::io::Error::other("malformed sock_diag reply"));
                }
                match kind {
                    NLMSG_DONE => break 'dump,
                    NLMSG_ERROR => {
                        let code = word(off + 16) as i32;
                        return Err(std::io::Error::from_raw_os_error(-code));
                    }
                    _ if len >= 16 + 72 => {
                        // struct inet_diag_msg: state at 1, sport/dport (big endian) at 4/6,
                        // inode at 68.
                        let m = &buf[off + 16..off + len];
                        rows.push(TcpRow {
                            state: m[1],
                            local_port: u16::from_be_bytes([m[4], m[5]]),
                            remote_port: u16::from_be_bytes([m[6], m[7]]),
                            inode: u64::from(u32::from_ne_bytes(m[68..72].try_into().unwrap())),
                        });
                    }
                    _ => {}
                }
                off += (len + 3) & !3;
            }
        }
    }
    Ok(rows)
}

/// Every row of /proc/net/tcp and /proc/net/tcp6 (the slow path).
fn proc_net_tcp() -> Vec<TcpRow> {
    let mut rows = vec![];
    for file in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let Ok(text) = fs::read_to_string(file) else {
            continue;
        };
        for line in text.lines().skip(1) {
            let f: Vec<&str> = line.split_whitespace().collect();
            let port = |addr: &str| {
                addr.rsplit(':')
                    .next()
                    .and_then(|p| u16::from_str_radix(p, 16).ok())
            };
            if let (Some(lp), Some(rp), Some(st), Some(ino)) = (
                f.get(1).and_then(|a| port(a)),
                f.get(2).and_then(|a| port(a)),
                f.get(3).and_then(|s| u8::from_str_radix(s, 16).ok()),
                f.get(9).and_then(|i| i.parse().ok()),
            ) {
                rows.push(TcpRow {
                    local_port: lp,
                    remote_port: rp,
                    state: st,
                    inode: ino,
                });
            }
        }
    }
    rows
}

/// Inodes of the sockets listening on `port`.
pub fn listen_inodes(port: u16) -> Vec<u64> {
    tcp_sockets(&[TCP_LISTEN])
        .into_iter()
        .filter(|r| r.local_port == port)
        .map(|r| r.inode)
        .collect()
}

/// True if some socket listens on `port`.
pub fn port_in_use(port: u16) -> bool {
    !listen_inodes(port).is_empty()
}

/// Established TCP connections to a server on `port` (accepted by it), counted once.
pub fn established_to(port: u16) -> usize {
    tcp_sockets(&[TCP_ESTABLISHED])
        .into_iter()
        .filter(|r| r.local_port == port && r.inode != 0)
        .count()
}

/// Connections to a server on `port` that it has to serve or cut: established, accepted or
/// still waiting in its listen queue (an established socket the app has not accepted yet has
/// no inode), and those whose handshake is under way (SYN_RECV). What a drain waits for.
pub fn in_flight_to(port: u16) -> usize {
    tcp_sockets(&[TCP_ESTABLISHED, TCP_SYN_RECV])
        .into_iter()
        .filter(|r| r.local_port == port)
        .count()
}

/// Connections to `port` that conntrack saw start but whose handshake has not completed
/// (`SYN_SENT`, `SYN_RECV`): a SYN steered (DNATed) to `port` that no socket table shows yet,
/// because the packet still waits in the loopback backlog. `None` when
/// /proc/net/nf_conntrack cannot be read (no conntrack, or no procfs view of it).
pub fn connecting_to(port: u16) -> Option<usize> {
    let text = fs::read_to_string("/proc/net/nf_conntrack").ok()?;
    Some(count_connecting(&text, port))
}

/// [`connecting_to`] on the text of /proc/net/nf_conntrack: a `tcp` entry in `SYN_SENT` or
/// `SYN_RECV` whose original destination port, or whose reply's source port (the port after
/// DNAT), is `port`.
fn count_connecting(text: &str, port: u16) -> usize {
    let want = port.to_string();
    text.lines()
        .filter(|l| {
            let w: Vec<&str> = l.split_whitespace().collect();
            w.get(2) == Some(&"tcp")
                && w.iter().any(|x| *x == "SYN_SENT" || *x == "SYN_RECV")
                && (w.iter().filter_map(|x| x.strip_prefix("dport=")).next() == Some(&want)
                    || w.iter().filter_map(|x| x.strip_prefix("sport=")).nth(1) == Some(&want))
        })
        .count()
}

/// Inodes of the sockets `pid` holds open.
pub fn socket_inodes(pid: i32) -> Vec<u64> {
    let Ok(dir) = fs::read_dir(format!("/proc/{pid}/fd")) else {
        return vec![];
    };
    dir.flatten()
        .filter_map(|e| {
            let l = fs::read_link(e.path()).ok()?;
            l.to_str()?
                .strip_prefix("socket:[")?
                .strip_suffix(']')?
                .parse()
                .ok()
        })
        .collect()
}

/// True if `pid` holds one of `inodes` open.
pub fn holds_socket(pid: i32, inodes: &[u64]) -> bool {
    socket_inodes(pid).iter().any(|i| inodes.contains(i))
}

/// The listening sockets `pid` holds (for nginx: the master's listeners).
pub fn listening_sockets_of(pid: i32) -> Vec<u64> {
    let listening: std::collections::HashSet<u64> = tcp_sockets(&[TCP_LISTEN])
        .into_iter()
        .map(|r| r.inode)
        .collect();
    socket_inodes(pid)
        .into_iter()
        .filter(|i| listening.contains(i))
        .collect()
}

/// The process holding the LISTEN socket on `port`, if any can be seen.
pub fn listener(port: u16) -> Option<i32> {
    listeners(port).into_iter().next()
}

/// Every process holding a LISTEN socket on `port` (a socket inherited across fork is held by
/// parent and child; IPv4 and IPv6 sockets are separate), lowest pid first.
pub fn listeners(port: u16) -> Vec<i32> {
    let inodes = listen_inodes(port);
    if inodes.is_empty() {
        return vec![];
    }
    all_pids().filter(|&p| holds_socket(p, &inodes)).collect()
}

/// Wait until nothing listens on `port`, up to `limit`.
pub fn wait_port_free(port: u16, limit: Duration) -> bool {
    let t0 = Instant::now();
    loop {
        if !port_in_use(port) {
            return true;
        }
        if t0.elapsed() >= limit {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_connection_the_app_has_not_accepted_yet_is_in_flight() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let c = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        // The kernel completed the handshake; the connection waits in the listen queue.
        assert_eq!(established_to(port), 0, "an accepted-only count misses it");
        assert_eq!(in_flight_to(port), 1);
        let (a, _) = l.accept().unwrap();
        assert_eq!(in_flight_to(port), 1);
        drop((a, c));
    }

    #[test]
    fn conntrack_entries_mid_handshake_count_by_the_port_after_dnat() {
        let text = "\
ipv4     2 tcp      6 118 SYN_SENT src=127.0.0.1 dst=127.0.0.1 sport=40001 dport=18090 [UNREPLIED] src=127.0.0.1 dst=127.0.0.1 sport=8082 dport=40001 mark=0 use=1
ipv4     2 tcp      6 59 SYN_RECV src=127.0.0.1 dst=127.0.0.1 sport=40002 dport=8082 src=127.0.0.1 dst=127.0.0.1 sport=8082 dport=40002 mark=0 use=1
ipv4     2 tcp      6 431999 ESTABLISHED src=127.0.0.1 dst=127.0.0.1 sport=40003 dport=18090 src=127.0.0.1 dst=127.0.0.1 sport=8082 dport=40003 [ASSURED] mark=0 use=1
ipv4     2 tcp      6 118 SYN_SENT src=127.0.0.1 dst=127.0.0.1 sport=40004 dport=18090 [UNREPLIED] src=127.0.0.1 dst=127.0.0.1 sport=8081 dport=40004 mark=0 use=1
ipv4     2 udp      17 29 src=127.0.0.1 dst=127.0.0.1 sport=8082 dport=53 [UNREPLIED] src=127.0.0.1 dst=127.0.0.1 sport=53 dport=8082 mark=0 use=1
";
        assert_eq!(count_connecting(text, 8082), 2);
        assert_eq!(count_connecting(text, 8081), 1);
        assert_eq!(count_connecting(text, 18090), 2);
    }

    #[test]
    fn sock_diag_agrees_with_proc() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let c = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        let (_a, _) = l.accept().unwrap();
        let fast =
            sock_diag((1 << TCP_LISTEN) | (1 << TCP_ESTABLISHED)).expect("sock_diag works here");
        let slow = proc_net_tcp();
        for rows in [&fast, &slow] {
            assert!(rows
                .iter()
                .any(|r| r.state == TCP_LISTEN && r.local_port == port));
            assert_eq!(
                rows.iter()
                    .filter(|r| r.state == TCP_ESTABLISHED && r.local_port == port)
                    .count(),
                1
            );
        }
        assert!(fast
            .iter()
            .all(|r| r.state == TCP_LISTEN || r.state == TCP_ESTABLISHED));
        assert_eq!(established_to(port), 1);
        assert_eq!(in_flight_to(port), 1);
        assert!(port_in_use(port));
        assert_eq!(listener(port), Some(std::process::id() as i32));
        drop(c);
    }
}
