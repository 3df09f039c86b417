//! `nonstop logs -f` on the builtin supervisor's log file: what is appended, across rotation
//! and copytruncate, until interrupted or until stdout's reader is gone.

use crate::error::Result;
use crate::interrupt;
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::MetadataExt;
use std::time::Duration;

/// How many bytes before the read position are remembered to notice a copytruncate.
const FINGERPRINT: u64 = 256;

/// `logs -f`: print what is appended to `path` until interrupted or until stdout's reader is
/// gone (`nonstop logs -f | head -1` ends once head has its line, even when the app writes
/// nothing more). Starts over at byte 0 when the file was replaced (another inode: rotated),
/// shrank, or no longer holds the bytes last read just before the position (logrotate's
/// copytruncate, after which the app may already have written past the old size).
pub(super) fn follow_file(path: &std::path::Path) -> Result<()> {
    let mut pos = 0;
    let mut ino = None;
    let mut seen: Vec<u8> = Vec::new();
    if let Ok(mut f) = std::fs::File::open(path) {
        let m = f.metadata().ok();
        pos = m.as_ref().map_or(0, |m| m.len());
        ino = m.map(|m| m.ino());
        seen = read_range(&mut f, pos.saturating_sub(FINGERPRINT), pos);
    }
    let mut partial = Vec::new();
    loop {
        if interrupt::sleep(Duration::from_millis(200), "logs").is_err()
            || crate::out::stdout_closed()
        {
            return Ok(());
        }
        let Ok(mut f) = std::fs::File::open(path) else {
            continue;
        };
        let Ok(meta) = f.metadata() else { continue };
        let len = meta.len();
        let from = pos.saturating_sub(seen.len() as u64);
        let restart = ino != Some(meta.ino()) || len < pos || read_range(&mut f, from, pos) != seen;
        if restart && pos > 0 {
            log::debug!(
                "{} was rotated or truncated: reading it from the start",
                path.display()
            );
        }
        if restart {
            pos = 0;
            ino = Some(meta.ino());
            partial.clear();
        }
        if len == pos || f.seek(SeekFrom::Start(pos)).is_err() {
            seen = read_range(&mut f, pos.saturating_sub(FINGERPRINT), pos);
            continue;
        }
        let mut buf = Vec::new();
        if f.read_to_end(&mut buf).is_ok() {
            pos += buf.len() as u64;
            let keep = buf.len().saturating_sub(FINGERPRINT as usize);
            seen = if buf.len() as u64 >= FINGERPRINT {
                buf[keep..].to_vec()
            } else {
                read_range(&mut f, pos.saturating_sub(FINGERPRINT), pos)
            };
            partial.extend_from_slice(&buf);
            if let Some(end) = partial.iter().rposition(|&b| b == b'\n') {
                crate::out::out_raw(&partial[..=end]);
                partial.drain(..=end);
            }
            let _ = std::io::stdout().flush();
        }
    }
}

/// The bytes of `f` from `from` to `to` (fewer if the file is shorter).
fn read_range(f: &mut std::fs::File, from: u64, to: u64) -> Vec<u8> {
    let mut buf = Vec::new();
    if to > from && f.seek(SeekFrom::Start(from)).is_ok() {
        let _ = f.take(to - from).read_to_end(&mut buf);
    }
    buf
}
