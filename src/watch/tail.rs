//! Reading nginx's access log from an offset as it grows, surviving rotation (the file
//! renamed and a new one created: what is left in the old file is read first, then the new
//! one from its start) and truncation (copytruncate: read again from the start).

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// What one [`Tail::read`] found, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LogEvent {
    /// A whole line (without its newline).
    Line(String),
    /// The file at the path is a new one (the old one was renamed away); reading goes on in it.
    Rotated,
    /// The file got shorter than what was read (copytruncate); reading starts over.
    Truncated,
}

/// An access log read incrementally.
#[derive(Debug)]
pub struct Tail {
    path: PathBuf,
    file: Option<File>,
    /// (device, inode) of `file`.
    id: (u64, u64),
    offset: u64,
    /// The start of a line nginx has not finished writing.
    partial: Vec<u8>,
}

impl Tail {
    /// Follow `path` from its current end (from its start when it does not exist yet).
    pub fn at_end(path: &Path) -> Tail {
        let mut t = Tail {
            path: path.to_path_buf(),
            file: None,
            id: (0, 0),
            offset: 0,
            partial: vec![],
        };
        if let Ok(f) = File::open(path) {
            if let Ok(m) = f.metadata() {
                t.id = (m.dev(), m.ino());
                t.offset = m.len();
                t.file = Some(f);
            }
        }
        t
    }

    /// The offset read up to in the current file.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// Everything written since the last call.
    pub fn read(&mut self) -> Vec<LogEvent> {
        let mut out = vec![];
        if self.file.is_some() {
            self.drain(&mut out);
        }
        // A new file at the path: the old one has been read to its end above.
        let now = std::fs::metadata(&self.path)
            .ok()
            .map(|m| (m.dev(), m.ino()));
        match (now, &self.file) {
            (Some(id), Some(_)) if id != self.id => {
                out.push(LogEvent::Rotated);
                self.open_new(&mut out);
            }
            (Some(_), None) => self.open_new(&mut out),
            _ => {}
        }
        out
    }

    fn open_new(&mut self, out: &mut Vec<LogEvent>) {
        self.file = None;
        self.partial.clear();
        self.offset = 0;
        if let Ok(f) = File::open(&self.path) {
            if let Ok(m) = f.metadata() {
                self.id = (m.dev(), m.ino());
                self.file = Some(f);
                self.drain(out);
            }
        }
    }

    /// Read the current file from `offset` to its end.
    fn drain(&mut self, out: &mut Vec<LogEvent>) {
        let Some(f) = self.file.as_mut() else { return };
        let len = f.metadata().map(|m| m.len()).unwrap_or(0);
        if len < self.offset {
            out.push(LogEvent::Truncated);
            self.offset = 0;
            self.partial.clear();
        }
        if f.seek(SeekFrom::Start(self.offset)).is_err() {
            return;
        }
        let mut buf = vec![];
        let Ok(n) = f.read_to_end(&mut buf) else {
            return;
        };
        self.offset += n as u64;
        let mut rest = &buf[..];
        while let Some(i) = rest.iter().position(|&b| b == b'\n') {
            self.partial.extend_from_slice(&rest[..i]);
            let line = String::from_utf8_lossy(&self.partial).into_owned();
            self.partial.clear();
            out.push(LogEvent::Line(line));
            rest = &rest[i + 1..];
        }
        self.partial.extend_from_slice(rest);
    }
}

/// The whole lines of the last `max_bytes` of `path` before `end` (what was logged just
/// before a watch began), oldest first; nothing when the file cannot be read.
pub fn lines_before(path: &Path, end: u64, max_bytes: u64) -> Vec<String> {
    let Ok(mut f) = File::open(path) else {
        return vec![];
    };
    let start = end.saturating_sub(max_bytes);
    if f.seek(SeekFrom::Start(start)).is_err() {
        return vec![];
    }
    let mut buf = vec![];
    if f.take(end - start).read_to_end(&mut buf).is_err() {
        return vec![];
    }
    let text = String::from_utf8_lossy(&buf);
    let mut lines: Vec<&str> = text.split('\n').collect();
    lines.pop(); // after the last newline: an unfinished line, or nothing
    if start > 0 && !lines.is_empty() {
        lines.remove(0); // begins mid-line
    }
    lines.into_iter().map(str::to_string).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn append(p: &Path, s: &str) {
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(p)
            .unwrap()
            .write_all(s.as_bytes())
            .unwrap();
    }

    fn lines(ev: &[LogEvent]) -> Vec<&str> {
        ev.iter()
            .filter_map(|e| match e {
                LogEvent::Line(l) => Some(l.as_str()),
                _ => None,
            })
            .collect()
    }

    fn kinds(ev: &[LogEvent]) -> Vec<&'static str> {
        ev.iter()
            .map(|e| match e {
                LogEvent::Line(_) => "line",
                LogEvent::Rotated => "rotated",
                LogEvent::Truncated => "truncated",
            })
            .collect()
    }

    #[test]
    fn reads_from_the_end_and_keeps_partial_lines() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("access.log");
        append(&p, "old 1\nold 2\n");
        let mut t = Tail::at_end(&p);
        assert!(t.read().is_empty());
        append(&p, "new 1\nnew ");
        assert_eq!(lines(&t.read()), ["new 1"]);
        append(&p, "2\n");
        assert_eq!(lines(&t.read()), ["new 2"]);
        assert_eq!(lines_before(&p, t.offset(), 1 << 20).len(), 4);
        // Cut mid-line: the partial first line is left out.
        assert_eq!(lines_before(&p, 12, 8), ["old 2"]);
    }

    #[test]
    fn follows_a_rotation_after_reading_the_old_file_out() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("access.log");
        append(&p, "a\n");
        let mut t = Tail::at_end(&p);
        append(&p, "b\n");
        std::fs::rename(&p, d.path().join("access.log.1")).unwrap();
        // nginx still writes to the renamed file until it reopens its logs.
        append(&d.path().join("access.log.1"), "c\n");
        assert_eq!(lines(&t.read()), ["b", "c"]);
        append(&p, "d\n");
        let ev = t.read();
        assert_eq!(kinds(&ev), ["rotated", "line"]);
        assert_eq!(lines(&ev), ["d"]);
        append(&p, "e\n");
        assert_eq!(lines(&t.read()), ["e"]);
    }

    #[test]
    fn starts_over_after_a_truncation() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("access.log");
        append(&p, "a long line\n");
        let mut t = Tail::at_end(&p);
        std::fs::write(&p, "").unwrap();
        append(&p, "x\n");
        let ev = t.read();
        assert_eq!(kinds(&ev), ["truncated", "line"]);
        assert_eq!(lines(&ev), ["x"]);
    }

    #[test]
    fn waits_for_a_file_that_does_not_exist_yet() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("access.log");
        let mut t = Tail::at_end(&p);
        assert!(t.read().is_empty());
        append(&p, "first\n");
        assert_eq!(lines(&t.read()), ["first"]);
    }
}
