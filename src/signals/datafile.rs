//! Read-only data files (MaxMind databases, Tor exit lists, CIDR and ASN lists):
//! reading one whole, walking its lines, and the one error type that names the
//! file (and the line) a problem came from.
//!
//! Data files are rebuilt off the hot path and swapped in whole, so every
//! problem surfaces here, at load, as a [`DataError`] the reload loop can log
//! and count while the previous snapshot keeps serving.

use std::fmt::Write as _;
use std::path::Path;

/// Why a data file could not be loaded. `Display` is `FILE:LINE: message` for a
/// malformed line and `FILE: message` for a problem with the file as a whole
/// (missing, unreadable, corrupt, empty).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DataError {
    #[error("{file}:{line}: {message}")]
    Line {
        file: String,
        /// 1-based line number.
        line: usize,
        message: String,
    },
    #[error("{file}: {message}")]
    File { file: String, message: String },
}

impl DataError {
    pub fn file(&self) -> &str {
        match self {
            DataError::Line { file, .. } | DataError::File { file, .. } => file,
        }
    }

    /// The 1-based line, for a malformed line.
    pub fn line(&self) -> Option<usize> {
        match self {
            DataError::Line { line, .. } => Some(*line),
            DataError::File { .. } => None,
        }
    }

    pub fn message(&self) -> &str {
        match self {
            DataError::Line { message, .. } | DataError::File { message, .. } => message,
        }
    }

    pub(crate) fn file_level(file: &str, message: impl Into<String>) -> DataError {
        DataError::File {
            file: file.to_owned(),
            message: message.into(),
        }
    }
}

/// How a file is named in errors: its path as configured.
pub(crate) fn display_name(path: &Path) -> String {
    path.display().to_string()
}

/// Reads a whole file into memory.
pub(crate) fn read(path: &Path) -> Result<Vec<u8>, DataError> {
    std::fs::read(path)
        .map_err(|e| DataError::file_level(&display_name(path), format!("cannot read: {e}")))
}

/// Calls `parse` with each line's content — `#` comments (whole-line or
/// trailing), surrounding whitespace and a `\r` before the `\n` removed — and
/// its 1-based number, skipping lines left blank. An `Err(message)` from
/// `parse` becomes a [`DataError::Line`]. Returns the number of lines passed to
/// `parse`, so callers can reject a file with no entries.
pub(crate) fn for_each_line(
    file: &str,
    bytes: &[u8],
    mut parse: impl FnMut(&str) -> Result<(), String>,
) -> Result<usize, DataError> {
    let mut seen = 0;
    for (i, raw) in bytes.split(|&b| b == b'\n').enumerate() {
        let line = i + 1;
        let at = |message: String| DataError::Line {
            file: file.to_owned(),
            line,
            message,
        };
        let text = std::str::from_utf8(raw).map_err(|_| at("not valid UTF-8".to_owned()))?;
        let text = match text.find('#') {
            Some(hash) => &text[..hash],
            None => text,
        };
        let text = text.trim();
        if text.is_empty() {
            continue;
        }
        seen += 1;
        parse(text).map_err(at)?;
    }
    Ok(seen)
}

/// A value from a data file quoted for an error message: escaped, and cut
/// after 64 characters so a garbage line cannot flood the log.
pub(crate) fn quoted(value: &str) -> String {
    const MAX: usize = 64;
    let mut out = String::with_capacity(value.len().min(MAX) + 8);
    match value.char_indices().nth(MAX) {
        Some((cut, _)) => {
            let _ = write!(out, "{:?}…", &value[..cut]);
        }
        None => {
            let _ = write!(out, "{value:?}");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn comments_blanks_and_crlf_are_skipped() {
        let mut texts = Vec::new();
        let text = "# header\r\n\r\n  a  # trailing\r\nb\n   \n#x\nc";
        let seen = for_each_line("f.txt", text.as_bytes(), |l| {
            texts.push(l.to_owned());
            Ok(())
        })
        .unwrap();
        assert_eq!(texts, ["a", "b", "c"]);
        assert_eq!(seen, 3);
    }

    #[test]
    fn errors_name_file_and_line() {
        let err = for_each_line("dir/f.txt", b"ok\n# c\n\nbad\n", |l| {
            if l == "bad" {
                Err(format!("{} is bad", quoted(l)))
            } else {
                Ok(())
            }
        })
        .unwrap_err();
        assert_eq!(err.to_string(), r#"dir/f.txt:4: "bad" is bad"#);
        assert_eq!(err.line(), Some(4));
        assert_eq!(err.file(), "dir/f.txt");
    }

    #[test]
    fn invalid_utf8_is_a_line_error() {
        let err = for_each_line("f", b"a\n\xff\xfe\n", |_| Ok(())).unwrap_err();
        assert_eq!(err.to_string(), "f:2: not valid UTF-8");
    }

    #[test]
    fn file_level_errors_have_no_line() {
        let err = read(Path::new("/nonexistent/tollgate/x.txt")).unwrap_err();
        assert!(err.line().is_none());
        assert!(
            err.to_string()
                .starts_with("/nonexistent/tollgate/x.txt: cannot read: "),
            "{err}"
        );
    }

    #[test]
    fn quoted_values_are_bounded() {
        assert_eq!(quoted("a\"b"), r#""a\"b""#);
        let long = "x".repeat(500);
        let q = quoted(&long);
        assert!(q.chars().count() < 70, "{q}");
        assert!(q.ends_with('…'));
    }
}
