//! Writing a file so that it appears under its name only when complete.
//!
//! [`AtomicFile::create`] makes a temporary file `.<name>.<random>.tmp` in the
//! destination's directory (so the final rename stays on one file system). Writes go
//! through a 1 MiB buffer. [`AtomicFile::commit`] flushes, fsyncs the file, renames it
//! over the final name and fsyncs the directory (Unix). Dropping an `AtomicFile`
//! without committing (an error, a panic) deletes the temporary file; a file already at
//! the final name is never touched before the rename. The committed file gets the
//! usual permissions of a new file (0666 less the umask on Unix).

use crate::FormatError;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

const BUF_BYTES: usize = 1 << 20;

/// A file being written under a temporary name; see the module documentation.
pub struct AtomicFile {
    path: PathBuf,
    temp_path: PathBuf,
    /// `None` only while committing or dropping.
    out: Option<BufWriter<tempfile::NamedTempFile>>,
}

impl std::fmt::Debug for AtomicFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AtomicFile")
            .field("path", &self.path)
            .field("temp_path", &self.temp_path)
            .finish()
    }
}

impl AtomicFile {
    /// Start writing `path`. The directory must exist; `path` must not be a directory.
    pub fn create(path: impl AsRef<Path>) -> Result<Self, FormatError> {
        let path = path.as_ref().to_path_buf();
        let Some(name) = path.file_name() else {
            return Err(FormatError::write_failed(
                &path,
                "creating the output",
                io::Error::new(io::ErrorKind::InvalidInput, "the path has no file name"),
            ));
        };
        if path.is_dir() {
            return Err(FormatError::write_failed(
                &path,
                "creating the output",
                io::Error::new(
                    io::ErrorKind::IsADirectory,
                    "it is a directory; name a file inside it",
                ),
            ));
        }
        let dir = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let mut builder = tempfile::Builder::new();
        let prefix = format!(".{}.", name.to_string_lossy());
        builder.prefix(&prefix).suffix(".tmp");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            // Masked by the umask at creation, as for File::create.
            builder.permissions(std::fs::Permissions::from_mode(0o666));
        }
        let tmp = builder.tempfile_in(&dir).map_err(|e| {
            FormatError::write_failed(
                &path,
                format!("creating a temporary file in {}", dir.display()),
                e,
            )
        })?;
        Ok(AtomicFile {
            temp_path: tmp.path().to_path_buf(),
            path,
            out: Some(BufWriter::with_capacity(BUF_BYTES, tmp)),
        })
    }

    /// The final name.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The temporary file being written.
    pub fn temp_path(&self) -> &Path {
        &self.temp_path
    }

    /// A [`FormatError::Write`] naming the final path, for an I/O error the caller got
    /// from writing to this file (`std::io::Write` can only return `io::Error`).
    pub fn error(&self, what: impl Into<String>, source: io::Error) -> FormatError {
        FormatError::write_failed(&self.path, what, source)
    }

    /// Flush, fsync, rename over the final name, fsync the directory. On an error
    /// before the rename the temporary file is deleted and an older file at the final
    /// name is left as it was. If only the directory fsync fails, the new file is
    /// already in place but the rename may not survive a power loss; the error says so.
    pub fn commit(mut self) -> Result<(), FormatError> {
        let Some(out) = self.out.take() else {
            return Ok(());
        };
        let tmp = out
            .into_inner()
            .map_err(|e| self.error("writing (flushing the last buffer)", e.into_error()))?;
        tmp.as_file()
            .sync_all()
            .map_err(|e| self.error("syncing the written data to disk", e))?;
        tmp.persist(&self.path).map_err(|e| {
            self.error(
                format!("renaming {} over it", self.temp_path.display()),
                e.error,
            )
        })?;
        #[cfg(unix)]
        {
            let dir = match self.path.parent() {
                Some(p) if !p.as_os_str().is_empty() => p,
                _ => Path::new("."),
            };
            std::fs::File::open(dir)
                .and_then(|d| d.sync_all())
                .map_err(|e| {
                    self.error(
                        format!(
                            "syncing the directory {} after the rename (the new file is in \
                             place but may not survive a power loss)",
                            dir.display()
                        ),
                        e,
                    )
                })?;
        }
        Ok(())
    }

    fn out(&mut self) -> io::Result<&mut BufWriter<tempfile::NamedTempFile>> {
        self.out
            .as_mut()
            .ok_or_else(|| io::Error::other("the atomic file was already committed"))
    }
}

impl Write for AtomicFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.out()?.write(buf)
    }
    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        self.out()?.write_all(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.out()?.flush()
    }
}

impl Drop for AtomicFile {
    fn drop(&mut self) {
        if let Some(out) = self.out.take() {
            // Discard the buffer instead of flushing it into a file about to be
            // deleted; dropping the NamedTempFile removes the temporary file.
            let (tmp, _unwritten) = out.into_parts();
            drop(tmp);
        }
    }
}
