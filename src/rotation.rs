//! Balanced mode: which slots are in rotation, and the two moves on it. Taking a slot out
//! marks it `down` through the traffic seam ([`crate::traffic`]: the upstream file and a
//! reload, or the nftables map), then waits until no TCP connection to its port is established
//! (its in-flight requests finished; the app's side of a connection has the slot's port as its
//! local port in both modes) or `stop.drain` passes. Putting a slot in marks it up. The
//! rotation changes together with the live port in one transaction, so the two never
//! disagree. The last healthy slot in rotation is never taken out.

use crate::config::{Config, Slot};
use crate::error::{Error, Refusal, Result};
use crate::nginx::{Member, Rotation};
use crate::run::Run;
use crate::{health, interrupt, process};
use std::time::{Duration, Instant};

/// The rotation now, from the traffic seam's truth (the upstream file, or the nftables
/// table); blue/green: only the live slot is up.
pub fn read(run: &Run) -> Result<Rotation> {
    run.traffic.rotation(&run.cfg)
}

/// The member entry of `slot`.
pub fn member(rot: &Rotation, slot: &Slot) -> Member {
    rot.iter()
        .find(|(p, _)| *p == slot.port)
        .map_or(Member::Down, |(_, m)| *m)
}

/// Set `slot`'s member in `rot`.
pub fn set(rot: &mut Rotation, slot: &Slot, m: Member) {
    for e in rot.iter_mut() {
        if e.0 == slot.port {
            e.1 = m;
        }
    }
}

/// Make `rot` the rotation (and `live` the live port, when given) through the traffic seam.
pub fn apply(run: &Run, rot: &Rotation, live: Option<u16>) -> Result<Duration> {
    run.traffic.apply(&run.cfg, rot, live, false)
}

/// Take `slot` out of rotation and drain it. Refuses if no other slot in rotation is healthy.
/// Returns how many connections were still open when the drain gave up (0 = fully drained).
pub fn take_out(run: &Run, slot: &Slot) -> Result<usize> {
    swap(run, None, slot)
}

/// Put `back_in` (a slot just rolled and healthy, if any) into rotation and take `slot` out,
/// in one nginx transaction (one reload: each reload closes nginx's idle keep-alive client
/// connections), then drain `slot`. Refuses if no other slot in rotation would be healthy.
pub fn swap(run: &Run, back_in: Option<&Slot>, slot: &Slot) -> Result<usize> {
    let cfg = &run.cfg;
    let mut rot = read(run)?;
    if let Some(b) = back_in {
        set(&mut rot, b, Member::Up(1));
    }
    if member(&rot, slot) == Member::Down {
        log::info!("slot {} is already out of rotation", slot.name);
        if back_in.is_some() {
            apply(run, &rot, None)?;
        }
    } else {
        let others: Vec<&Slot> = cfg
            .slots
            .iter()
            .filter(|s| s.name != slot.name && member(&rot, s) != Member::Down)
            .collect();
        let healthy = others.iter().find(|s| health::check_once(cfg, s).1.is_ok());
        let Some(h) = healthy else {
            return Err(Error::refused(
                Refusal::LastInRotation {
                    slot: slot.name.clone(),
                },
                format!(
                "refusing to take slot {} out of rotation: it is the last healthy slot in rotation",
                slot.name
            ),
            ));
        };
        match back_in {
            Some(b) => log::info!(
                "putting slot {} back in and taking slot {} out of rotation in one {} (slot {} stays healthy in it)",
                b.name,
                slot.name,
                run.traffic.change(),
                h.name
            ),
            None => log::info!(
                "taking slot {} out of rotation (slot {} stays healthy in it)",
                slot.name,
                h.name
            ),
        }
        set(&mut rot, slot, Member::Down);
        apply(run, &rot, None)?;
    }
    drain(cfg, slot)
}

/// Names of the slots out of rotation now (for messages); empty if that cannot be read.
pub fn out_of_rotation(run: &Run) -> Vec<String> {
    read(run)
        .map(|rot| {
            run.cfg
                .slots
                .iter()
                .filter(|s| member(&rot, s) == Member::Down)
                .map(|s| s.name.clone())
                .collect()
        })
        .unwrap_or_default()
}

/// How long after the rotation changed a drain looks before it may conclude: a connection
/// steered to the slot just before the change (its SYN still in the loopback backlog, in no
/// socket table yet) has reached the slot's listen queue or conntrack by then.
pub const SETTLE: Duration = Duration::from_millis(100);

/// Wait until no connection to `slot`'s port is in flight (established, queued to be
/// accepted, mid-handshake, or a SYN on its way), looking for at least [`SETTLE`], up to
/// `stop.drain`. Returns how many were left (logged as cut when above zero).
pub fn drain(cfg: &Config, slot: &Slot) -> Result<usize> {
    let t0 = Instant::now();
    let mut last = usize::MAX;
    let mut logged = t0;
    let mut progress =
        crate::progress::Progress::new(format!("slot {} drain", slot.name), cfg.stop.drain);
    loop {
        // Established (accepted or waiting in its listen queue) or mid-handshake; once the
        // sockets show none after the settle, a SYN conntrack saw steered to the port that no
        // socket shows yet (read only then: a busy host's conntrack table is large).
        let settled = t0.elapsed() >= SETTLE.min(cfg.stop.drain);
        let n = match process::in_flight_to(slot.port) {
            0 if settled => process::connecting_to(slot.port).unwrap_or(0),
            n => n,
        };
        if n == 0 && settled {
            progress.finish();
            log::info!(
                "slot {} drained in {}: no connection in flight",
                slot.name,
                crate::log::human(t0.elapsed())
            );
            return Ok(0);
        }
        if n > 0 && n != last && (last == usize::MAX || logged.elapsed() >= Duration::from_secs(1))
        {
            progress.finish();
            log::info!("draining slot {}: {n} connection(s) in flight", slot.name);
            last = n;
            logged = Instant::now();
        }
        if t0.elapsed() >= cfg.stop.drain {
            progress.finish();
            log::warn!(
                "drain of slot {} gave up after {:?} with {n} connection(s) still open; stopping will cut them",
                slot.name,
                cfg.stop.drain
            );
            return Ok(n);
        }
        if n > 0 {
            progress.update(&format!("{n} connection(s) in flight"));
        }
        interrupt::sleep(Duration::from_millis(50), "drain")?;
    }
}

/// Put `slot` back into rotation with the default weight; the include is left as it is.
pub fn put_in(run: &Run, slot: &Slot) -> Result<Duration> {
    let mut rot = read(run)?;
    set(&mut rot, slot, Member::Up(1));
    apply(run, &rot, None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_server_that_is_no_slot_is_refused_not_dropped() {
        let d = tempfile::tempdir().unwrap();
        let up = d.path().join("up.conf");
        let cfg = crate::config::parse(
            &format!(
                "app:\n  name: shop\nnginx:\n  include: {}/x.inc\n  upstream_file: {}\n",
                d.path().display(),
                up.display()
            ),
            &d.path().join("nonstop.yml"),
        )
        .unwrap();
        let run = Run::with_id(cfg, None);
        std::fs::write(
            &up,
            "upstream shop {\n  server 127.0.0.1:8081;\n  server 127.0.0.1:8082 down;\n}\n",
        )
        .unwrap();
        assert_eq!(
            read(&run).unwrap(),
            vec![(8081, Member::Up(1)), (8082, Member::Down)]
        );
        std::fs::write(
            &up,
            "upstream shop {\n  server 127.0.0.1:8081;\n  server 10.0.0.9:9000 backup;\n}\n",
        )
        .unwrap();
        let e = read(&run).unwrap_err().to_string();
        assert!(e.contains("`server …:9000`, which is no slot"), "{e}");
    }
}
