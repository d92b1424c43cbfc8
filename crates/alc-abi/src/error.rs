//! The crate's error type. Every message names the file, and the member of an archive or
//! tar where there is one, so that one line on stderr says what to look at.

use std::io;
use std::path::PathBuf;

/// `s` with control characters (newlines included) written as escapes, so that a name
/// or a parser's message taken from the input keeps an error on one line.
pub(crate) fn clean(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if c.is_control() {
            out.extend(c.escape_debug());
        } else {
            out.push(c);
        }
    }
    out
}

/// `file` or `file: member NAME`.
fn at(file: &str, member: &Option<String>) -> String {
    match member {
        Some(m) => format!("{file}: member {m}"),
        None => file.to_string(),
    }
}

/// Errors of inspecting a model library, loading ABI profiles and saving reports.
#[derive(Debug, thiserror::Error)]
pub enum AbiError {
    #[error("cannot read {}: {source}", path.display())]
    Io { path: PathBuf, source: io::Error },
    #[error("{} is not a file; give a model library (.o, .a, .so, .dylib or .tar)", path.display())]
    NotAFile { path: PathBuf },
    #[error("{file}: empty file; expected an ELF or Mach-O object, a static archive, a shared library or a tar")]
    Empty { file: String },
    #[error("{file}: {size} bytes is over the limit of {limit} bytes for one input")]
    TooLarge { file: String, size: u64, limit: u64 },
    #[error(
        "{}: not an ELF or Mach-O object, static archive, shared library or tar (first bytes: {magic})",
        at(file, member)
    )]
    UnknownFormat {
        file: String,
        member: Option<String>,
        magic: String,
    },
    #[error("{}: {what} is not supported; {hint}", at(file, member))]
    Unsupported {
        file: String,
        member: Option<String>,
        what: String,
        hint: String,
    },
    #[error("{}: malformed {format}: {detail}", at(file, member))]
    Malformed {
        file: String,
        member: Option<String>,
        format: &'static str,
        detail: String,
    },
    #[error("{}: {detail}", at(file, member))]
    LimitExceeded {
        file: String,
        member: Option<String>,
        detail: String,
    },
    #[error("{file}: contains no ELF or Mach-O object ({detail})")]
    NoObjects { file: String, detail: String },
    #[error("ABI profile file {}: {detail}", path.display())]
    ProfileFile { path: PathBuf, detail: String },
    #[error("unknown ABI profile '{name}'; available: {available}")]
    UnknownProfile { name: String, available: String },
    #[error("cannot write the ABI report {}: {source}", path.display())]
    WriteReport { path: PathBuf, source: io::Error },
}
