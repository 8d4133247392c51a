//! Where audit lines go: a file rotated by size, stdout, or any writer.
//!
//! Runs on the audit writer thread only, with blocking I/O. Lines are gathered
//! into one buffer and written together when the queue runs dry (or the buffer
//! is large), so a busy log costs one `write` per batch, not per line, and an
//! idle one still writes each line as it comes.
//!
//! Rotation is a few renames, written here rather than taken from
//! `file-rotate` 0.8: that crate opens the file with `.ok()` and then writes
//! nothing and reports success when the open failed (silent loss of evidence),
//! panics (`assert!`, `expect`) on file-system surprises, cuts `Bytes(n)` files
//! in the middle of a line, and pulls in `chrono` and `flate2`, which nothing
//! here needs.

use std::ffi::OsString;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

/// Pending bytes above which a batch is written without waiting for the queue
/// to run dry.
const FLUSH_AT: usize = 64 * 1024;

/// Lines that could not be written, and why.
#[derive(Debug)]
pub(super) struct Failure {
    pub lost: u64,
    pub error: io::Error,
}

pub(super) enum Out {
    File(RotatingFile),
    Stdout,
    Writer(Box<dyn Write + Send>),
}

/// An output and the lines gathered for it.
pub(super) struct Sink {
    out: Out,
    pending: Vec<u8>,
    pending_lines: u64,
}

impl Sink {
    pub fn new(out: Out) -> Sink {
        Sink {
            out,
            pending: Vec::with_capacity(FLUSH_AT),
            pending_lines: 0,
        }
    }

    /// Adds one line (ending in `\n`). Writes what is pending first when the
    /// line would take the file over its size limit, then rotates, so a line is
    /// never split across two files. Returns the lines written on the way.
    pub fn push(&mut self, line: &[u8]) -> Result<u64, Failure> {
        let mut result = Ok(0);
        if let Out::File(f) = &self.out {
            if f.would_overflow(self.pending.len(), line.len()) {
                result = self.flush();
                if let (Ok(_), Out::File(f)) = (&result, &mut self.out) {
                    f.rotate();
                }
            }
        }
        // Whatever happened to the lines before, this one waits for the next
        // flush (which reopens a file that failed).
        self.pending.extend_from_slice(line);
        self.pending_lines += 1;
        if result.is_ok() && self.pending.len() >= FLUSH_AT {
            let before = result.unwrap_or(0);
            result = self.flush().map(|n| n + before);
        }
        result
    }

    /// Writes what is pending; returns how many lines that was. On an error
    /// the pending lines are lost (and reported): retrying them would let one
    /// bad disk hold every later line.
    pub fn flush(&mut self) -> Result<u64, Failure> {
        if self.pending.is_empty() {
            return Ok(0);
        }
        let result = match &mut self.out {
            Out::File(f) => f.write(&self.pending),
            Out::Stdout => {
                let mut out = io::stdout().lock();
                out.write_all(&self.pending).and_then(|()| out.flush())
            }
            Out::Writer(w) => w.write_all(&self.pending).and_then(|()| w.flush()),
        };
        let lines = self.pending_lines;
        self.pending.clear();
        self.pending_lines = 0;
        result
            .map(|()| lines)
            .map_err(|error| Failure { lost: lines, error })
    }

    /// Writes what is pending and asks the file system to keep it.
    pub fn finish(&mut self) -> Result<u64, Failure> {
        let written = self.flush()?;
        if let Out::File(f) = &mut self.out {
            f.sync().map_err(|error| Failure { lost: 0, error })?;
        }
        Ok(written)
    }
}

/// `audit.log`, rotated to `audit.log.1` … `audit.log.<keep>` by size.
pub(super) struct RotatingFile {
    path: PathBuf,
    /// `None` after an error: the next write opens the file again.
    file: Option<File>,
    size: u64,
    max_bytes: u64,
    keep: usize,
    /// A rotation failed and was logged; cleared when one succeeds.
    rotate_failing: bool,
}

impl RotatingFile {
    /// Opens (or creates) the file now, so a bad path fails at start-up.
    pub fn open(path: PathBuf, max_bytes: u64, keep: usize) -> io::Result<RotatingFile> {
        let mut f = RotatingFile {
            path,
            file: None,
            size: 0,
            max_bytes,
            keep,
            rotate_failing: false,
        };
        f.open_current()?;
        Ok(f)
    }

    /// Whether a line of `line` bytes, after `pending` bytes not yet written,
    /// would take a non-empty file over the limit (a single line larger than
    /// the limit gets a file of its own).
    fn would_overflow(&self, pending: usize, line: usize) -> bool {
        let used = self.size + pending as u64;
        used > 0 && used + line as u64 > self.max_bytes
    }

    fn write(&mut self, bytes: &[u8]) -> io::Result<()> {
        if self.file.is_none() {
            self.open_current()?;
        }
        let file = self.file.as_mut().expect("opened above");
        match file.write_all(bytes) {
            Ok(()) => {
                self.size += bytes.len() as u64;
                Ok(())
            }
            Err(e) => {
                // Part of the batch may be in the file: reopening checks for a
                // torn last line.
                self.file = None;
                Err(e)
            }
        }
    }

    fn sync(&mut self) -> io::Result<()> {
        match &self.file {
            Some(f) => f.sync_all(),
            None => Ok(()),
        }
    }

    /// Opens the current file for appending. A file whose last line was cut
    /// (a crash, a full disk) gets a newline first, so the next line starts on
    /// a line of its own and stays valid JSON.
    fn open_current(&mut self) -> io::Result<()> {
        let mut file = OpenOptions::new()
            .create(true)
            .append(true)
            .read(true)
            .open(&self.path)?;
        let mut size = file.metadata()?.len();
        if size > 0 {
            let mut last = [0u8];
            file.seek(SeekFrom::End(-1))?;
            file.read_exact(&mut last)?;
            if last[0] != b'\n' {
                file.write_all(b"\n")?;
                size += 1;
            }
        }
        self.file = Some(file);
        self.size = size;
        Ok(())
    }

    /// `audit.log.<keep-1>` -> `audit.log.<keep>` … `audit.log` -> `audit.log.1`,
    /// then a new `audit.log`. On failure, logs once and goes on appending to
    /// the current file: an oversized file is better than lost evidence.
    fn rotate(&mut self) {
        self.file = None;
        let shifted = self.shift();
        match &shifted {
            Ok(()) if self.rotate_failing => {
                self.rotate_failing = false;
                tracing::info!(path = %self.path.display(), "audit log rotates again");
            }
            Ok(()) => {}
            Err(e) if !self.rotate_failing => {
                self.rotate_failing = true;
                tracing::error!(
                    path = %self.path.display(),
                    error = %e,
                    "audit log rotation failed; appending to the current file"
                );
            }
            Err(_) => {}
        }
        // A failed open is reported by the next write, which tries again.
        let _ = self.open_current();
    }

    fn shift(&self) -> io::Result<()> {
        if self.keep == 0 {
            return fs::remove_file(&self.path);
        }
        remove_if_exists(&numbered(&self.path, self.keep))?;
        for i in (1..self.keep).rev() {
            let from = numbered(&self.path, i);
            if from.exists() {
                fs::rename(from, numbered(&self.path, i + 1))?;
            }
        }
        fs::rename(&self.path, numbered(&self.path, 1))
    }
}

/// `audit.log` + 3 -> `audit.log.3`.
pub(super) fn numbered(path: &Path, i: usize) -> PathBuf {
    let mut s: OsString = path.as_os_str().to_owned();
    s.push(format!(".{i}"));
    PathBuf::from(s)
}

fn remove_if_exists(path: &Path) -> io::Result<()> {
    match fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines_of(path: &Path) -> Vec<String> {
        fs::read_to_string(path)
            .unwrap_or_default()
            .lines()
            .map(str::to_owned)
            .collect()
    }

    fn file_sink(path: &Path, max_bytes: u64, keep: usize) -> Sink {
        Sink::new(Out::File(
            RotatingFile::open(path.to_owned(), max_bytes, keep).unwrap(),
        ))
    }

    #[test]
    fn rotates_before_a_line_would_cross_the_limit() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.log");
        let mut s = file_sink(&path, 20, 2);
        // 10-byte lines: two per file, never split.
        for i in 0..5 {
            s.push(format!("line-{i:04}\n").as_bytes()).unwrap();
        }
        s.finish().unwrap();
        assert_eq!(lines_of(&numbered(&path, 2)), ["line-0000", "line-0001"]);
        assert_eq!(lines_of(&numbered(&path, 1)), ["line-0002", "line-0003"]);
        assert_eq!(lines_of(&path), ["line-0004"]);
        assert!(!numbered(&path, 3).exists());
    }

    #[test]
    fn a_line_larger_than_the_limit_gets_a_file_of_its_own() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.log");
        let mut s = file_sink(&path, 8, 3);
        s.push(b"a\n").unwrap();
        s.push(b"a-very-long-line\n").unwrap();
        s.push(b"b\n").unwrap();
        s.finish().unwrap();
        assert_eq!(lines_of(&numbered(&path, 2)), ["a"]);
        assert_eq!(lines_of(&numbered(&path, 1)), ["a-very-long-line"]);
        assert_eq!(lines_of(&path), ["b"]);
    }

    #[test]
    fn keep_zero_keeps_no_old_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.log");
        let mut s = file_sink(&path, 4, 0);
        for l in [b"1\n", b"2\n", b"3\n"] {
            s.push(l).unwrap();
        }
        s.finish().unwrap();
        assert_eq!(lines_of(&path), ["3"]);
        assert!(!numbered(&path, 1).exists());
    }

    #[test]
    fn reopening_appends_and_mends_a_torn_last_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.log");
        fs::write(&path, "{\"whole\":1}\n{\"cut\":").unwrap();
        let mut s = file_sink(&path, 1 << 20, 1);
        s.push(b"{\"next\":2}\n").unwrap();
        s.finish().unwrap();
        assert_eq!(
            lines_of(&path),
            ["{\"whole\":1}", "{\"cut\":", "{\"next\":2}"]
        );
    }

    #[test]
    fn size_counts_what_was_already_in_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.log");
        fs::write(&path, "old-line\n").unwrap();
        let mut s = file_sink(&path, 12, 1);
        s.push(b"new-line\n").unwrap();
        s.finish().unwrap();
        assert_eq!(lines_of(&numbered(&path, 1)), ["old-line"]);
        assert_eq!(lines_of(&path), ["new-line"]);
    }

    #[test]
    fn a_failing_writer_reports_the_lines_it_lost() {
        struct Broken;
        impl Write for Broken {
            fn write(&mut self, _: &[u8]) -> io::Result<usize> {
                Err(io::Error::other("disk on fire"))
            }
            fn flush(&mut self) -> io::Result<()> {
                Ok(())
            }
        }
        let mut s = Sink::new(Out::Writer(Box::new(Broken)));
        s.push(b"a\n").unwrap();
        s.push(b"b\n").unwrap();
        let f = s.flush().unwrap_err();
        assert_eq!(f.lost, 2);
        assert!(f.error.to_string().contains("disk on fire"));
        // Nothing is retried: the next flush has nothing pending.
        assert_eq!(s.flush().unwrap(), 0);
    }
}
