//! Saving a report next to its artifact, atomically.

use crate::check::Report;
use crate::error::AbiError;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// Suffix appended to the artifact's file name.
pub const REPORT_SUFFIX: &str = ".abi.json";

/// Where the report of `artifact` goes: `<artifact>.abi.json` in the same directory.
pub fn report_path(artifact: &Path) -> PathBuf {
    let mut name = artifact
        .file_name()
        .map(|n| n.to_os_string())
        .unwrap_or_default();
    name.push(REPORT_SUFFIX);
    artifact.with_file_name(name)
}

/// The report as pretty-printed JSON, ending with a newline.
pub fn report_json(report: &Report) -> String {
    // Serialising plain structs of strings, numbers and enums cannot fail.
    let mut s = serde_json::to_string_pretty(report).unwrap_or_else(|e| {
        unreachable!("serialising an ABI report failed: {e}");
    });
    s.push('\n');
    s
}

static COUNTER: AtomicU64 = AtomicU64::new(0);

/// Write `report` to [`report_path`]`(artifact)`: a temporary file in the same directory
/// (`.<name>.<pid>.<n>.tmp`), flushed and synced, then renamed over the final name, so
/// a reader sees the old report or the new one, never a part. Returns the path written.
pub fn save_report(report: &Report, artifact: &Path) -> Result<PathBuf, AbiError> {
    let path = report_path(artifact);
    let err = |source: io::Error| AbiError::WriteReport {
        path: path.clone(),
        source,
    };
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(
        ".{name}.{}.{}.tmp",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    let result = (|| -> io::Result<()> {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&tmp)?;
        f.write_all(report_json(report).as_bytes())?;
        f.sync_all()?;
        drop(f);
        std::fs::rename(&tmp, &path)?;
        #[cfg(unix)]
        {
            // Make the rename durable; a directory that cannot be synced is no error.
            if let Ok(d) = std::fs::File::open(&dir) {
                let _ = d.sync_all();
            }
        }
        Ok(())
    })();
    if let Err(e) = result {
        let _ = std::fs::remove_file(&tmp);
        return Err(err(e));
    }
    Ok(path)
}
