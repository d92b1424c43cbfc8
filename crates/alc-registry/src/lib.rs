//! alc-registry: the local package store behind `alc add / list / show / rm / tag / ab`.
//!
//! Design note. A registry is a directory (`ALC_HOME`, default `<data dir>/alc`) holding
//! `registry.sqlite3` (an SQLite database: names, tags, package metadata, A/B slots) and
//! `blobs/sha256/<hex>` (the package files, named by the sha256 of their
//! bytes; copies are read-only, hard links keep the source's mode), plus `tmp/` for files on their way in. Layout and schema: docs/FORMAT.md,
//! Part E.
//!
//! - Content-addressed: a package file is stored once per digest, however many names
//!   and tags point at it. `add` first tries a hard link (no copy, no extra disk), else
//!   copies into `tmp/` while hashing, fsyncs, and links the result into place. A blob
//!   leaves the store when its last name or tag goes.
//! - Names and tags share one namespace (`refs`). A name is set by `add`; re-adding a
//!   name with other content re-points it. A tag is an alias set by `tag`; it points at
//!   the digest, not at the name, so it survives the name being re-pointed or removed.
//! - Metadata comes from the package header (`alc.*` keys written by `alc compile`,
//!   llama.cpp's keys otherwise), read once at `add`. A plain GGUF is accepted: the
//!   `alc.*` fields are null and its verification is `unverified`.
//! - A/B slots map a slot name to weighted arms (names or tags). `ab_pick` is
//!   deterministic: sha256(slot, 0, user) → u64 → bucket modulo the total weight →
//!   arm by cumulative weight. Changing a slot's weights moves users between arms.
//! - Concurrency: every write is one `BEGIN IMMEDIATE` transaction (SQLite's write
//!   lock) with a busy timeout, and a blob is linked into place or deleted inside the
//!   transaction that adds or drops its last reference, so two processes adding and
//!   removing the same package cannot leave a name without its file. Hashing and
//!   copying happen before the transaction.

use rusqlite::{params, Connection, ErrorCode, OptionalExtension, TransactionBehavior};
use serde::Serialize;
use sha2::{Digest, Sha256};
use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

/// The database file inside a registry directory.
pub const DB_FILE: &str = "registry.sqlite3";
/// Blob directory inside a registry directory (`<hex>` files).
pub const BLOB_DIR: &str = "blobs/sha256";
/// Directory for files being added.
pub const TMP_DIR: &str = "tmp";
/// The environment variable naming the registry directory.
pub const HOME_ENV: &str = "ALC_HOME";
/// Schema version this crate writes and understands.
pub const SCHEMA_VERSION: i64 = 1;
/// How long a write waits for another process's transaction.
pub const BUSY_TIMEOUT: Duration = Duration::from_secs(30);
/// Verification status of a package without `alc.verification`.
pub const UNVERIFIED: &str = "unverified";

/// Longest name, tag or slot.
const MAX_NAME: usize = 200;
/// Shortest digest prefix `show` accepts.
const MIN_PREFIX: usize = 6;

/// Errors of the registry. Each names the value, the file or directory, and the fix.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error(
        "cannot find a data directory for the package registry; set {HOME_ENV} to a directory"
    )]
    NoHome,
    #[error("{what} {path}: {source}")]
    Io {
        what: String,
        path: PathBuf,
        source: io::Error,
    },
    #[error("the registry database {path} is unreadable ({source}); move it aside to start an empty registry (the package files stay in {blobs})")]
    Corrupt {
        path: PathBuf,
        blobs: PathBuf,
        source: rusqlite::Error,
    },
    #[error("registry database {path}: {source}")]
    Db {
        path: PathBuf,
        source: rusqlite::Error,
    },
    #[error("the registry database {path} has schema version {found}; this alc understands up to version {supported}: use a newer alc")]
    SchemaTooNew {
        path: PathBuf,
        found: i64,
        supported: i64,
    },
    #[error("{path} is not a file; `alc add` takes a package file (.alm, .ALM or .gguf)")]
    NotAFile { path: PathBuf },
    #[error("{detail}; `alc add` takes a GGUF package (.alm, .ALM or .gguf)")]
    NotAPackage { path: PathBuf, detail: String },
    #[error("no package named '{name}' in the registry at {home}; `alc list` shows what is there")]
    NotFound { name: String, home: PathBuf },
    #[error("'{prefix}' matches {count} packages in the registry at {home} ({examples}); give more digits")]
    Ambiguous {
        prefix: String,
        count: usize,
        examples: String,
        home: PathBuf,
    },
    #[error("invalid {what} '{name}': {why}")]
    BadName {
        what: &'static str,
        name: String,
        why: String,
    },
    #[error("'{name}' is a tag in the registry at {home}; pick another name, or remove the tag first (`alc rm {name}`)")]
    NameIsTag { name: String, home: PathBuf },
    #[error("'{name}' is a package name in the registry at {home}, not a tag; pick another tag, or remove the name first (`alc rm {name}`)")]
    TagIsName { name: String, home: PathBuf },
    #[error("cannot remove '{name}': it is an arm of A/B slot '{slot}'; change the slot (`alc ab set {slot} …`) or remove it (`alc ab rm {slot}`) first")]
    InSlot { name: String, slot: String },
    #[error("bad A/B spec '{spec}' for slot '{slot}': {why}; write NAME=WEIGHT[,NAME=WEIGHT…] with integer weights > 0, e.g. 'A=50,B=50'")]
    AbSpec {
        slot: String,
        spec: String,
        why: String,
    },
    #[error("no A/B slot named '{slot}' in the registry at {home}; `alc ab show` lists the slots")]
    NoSlot { slot: String, home: PathBuf },
    #[error("package '{name}' (sha256 {digest}) is registered but its file {path} is missing; add it again with `alc add FILE --name {name}`")]
    BlobMissing {
        name: String,
        digest: String,
        path: PathBuf,
    },
}

type Result<T, E = RegistryError> = std::result::Result<T, E>;

fn io_err(what: impl Into<String>, path: &Path) -> impl FnOnce(io::Error) -> RegistryError {
    let what = what.into();
    let path = path.to_path_buf();
    move |source| RegistryError::Io { what, path, source }
}

/// Whether a registry entry is a package name (set by `add`) or a tag (set by `tag`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RefKind {
    Name,
    Tag,
}

impl RefKind {
    fn parse(s: &str) -> RefKind {
        if s == "tag" {
            RefKind::Tag
        } else {
            RefKind::Name
        }
    }
}

/// Metadata read from a package's header when it entered the registry.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct PackageMeta {
    /// `general.architecture`.
    pub architecture: Option<String>,
    /// `general.name`.
    pub model_name: Option<String>,
    /// `alc.format_version` (null for a plain GGUF).
    pub format_version: Option<u64>,
    /// `alc.version`: the alc that compiled it.
    pub alc_version: Option<String>,
    /// `alc.quant`, else the dominant type of the matrices (lower case, e.g. `q4_1`).
    pub quant: Option<String>,
    /// `alc.context`, else `{arch}.context_length`.
    pub context: Option<u64>,
    /// `alc.vocab_size`, else the length of `tokenizer.ggml.tokens`.
    pub vocab_size: Option<u64>,
    /// `alc.parameter_count`, else the elements of all tensors.
    pub parameters: Option<u64>,
    /// `alc.target`.
    pub target: Option<String>,
    /// `alc.compile_date`.
    pub compile_date: Option<String>,
    /// `alc.verification` (`verified`), else `unverified`.
    pub verification: String,
    /// `alc.source.architecture`.
    pub source_architecture: Option<String>,
    /// `alc.source.sha256`: digest of the checkpoint it was compiled from.
    pub source_sha256: Option<String>,
    /// `alc.build_key`.
    pub build_key: Option<String>,
}

impl PackageMeta {
    /// Read the metadata of an opened package.
    pub fn from_gguf(f: &alc_format::GgufFile) -> PackageMeta {
        // Informational only: a key of an unexpected type reads as absent.
        let s = |k: &str| f.get_str(k).ok().flatten().map(|v| v.trim().to_string());
        let u = |k: &str| f.get_u64(k).ok().flatten();
        let architecture = s("general.architecture");
        let context = u("alc.context").or_else(|| {
            architecture
                .as_deref()
                .and_then(|a| u(&format!("{a}.context_length")))
        });
        let vocab_size = u("alc.vocab_size").or_else(|| {
            f.get_array("tokenizer.ggml.tokens")
                .ok()
                .flatten()
                .map(|a| a.len() as u64)
        });
        let parameters = u("alc.parameter_count").or_else(|| {
            (!f.tensors().is_empty())
                .then(|| f.tensors().iter().map(|t| t.n_elements()).sum::<u64>())
        });
        let quant = s("alc.quant").or_else(|| dominant_matrix_type(f));
        PackageMeta {
            architecture,
            model_name: s("general.name"),
            format_version: u("alc.format_version"),
            alc_version: s("alc.version"),
            quant,
            context,
            vocab_size,
            parameters,
            target: s("alc.target"),
            compile_date: s("alc.compile_date"),
            verification: s("alc.verification")
                .filter(|v| !v.is_empty())
                .unwrap_or_else(|| UNVERIFIED.to_string()),
            source_architecture: s("alc.source.architecture"),
            source_sha256: s("alc.source.sha256"),
            build_key: s("alc.build_key"),
        }
    }
}

/// The tensor type holding the most bytes among the matrices (rank ≥ 2), lower case.
fn dominant_matrix_type(f: &alc_format::GgufFile) -> Option<String> {
    let mut by_type: Vec<(&'static str, u64)> = Vec::new();
    for t in f.tensors().iter().filter(|t| t.dims.len() >= 2) {
        let n = t.dtype.name();
        match by_type.iter_mut().find(|(k, _)| *k == n) {
            Some((_, b)) => *b += t.bytes,
            None => by_type.push((n, t.bytes)),
        }
    }
    by_type
        .into_iter()
        .max_by_key(|&(_, b)| b)
        .map(|(n, _)| n.to_ascii_lowercase())
}

/// One name or tag and the package it points at.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Entry {
    pub name: String,
    pub kind: RefKind,
    /// sha256 of the package file, 64 lower-case hex digits.
    pub digest: String,
    /// Bytes.
    pub size: u64,
    /// The stored file (`<home>/blobs/sha256/<digest>`).
    pub path: PathBuf,
    /// When this name or tag was last set (UTC, `YYYY-MM-DDTHH:MM:SSZ`).
    pub added: String,
    /// When the file first entered the store (UTC).
    pub stored: String,
    /// The path it was first added from.
    pub source_path: Option<String>,
    /// The other names and tags pointing at the same file.
    pub aliases: Vec<String>,
    pub meta: PackageMeta,
}

/// What `rm` did.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Removed {
    pub name: String,
    pub kind: RefKind,
    pub digest: String,
    /// Whether the file left the store (no other name or tag pointed at it).
    pub blob_deleted: bool,
}

/// One arm of an A/B slot.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Arm {
    /// A package name or tag.
    pub name: String,
    pub weight: u64,
}

/// An A/B slot: weighted arms, in the order they were given.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Slot {
    pub slot: String,
    pub arms: Vec<Arm>,
    pub total_weight: u64,
    /// When the slot was last set (UTC).
    pub updated: String,
}

/// The arm `ab_pick` chose for a user.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Pick {
    pub slot: String,
    pub user: String,
    /// The chosen arm (a package name or tag).
    pub arm: String,
    pub digest: String,
    /// The package file.
    pub path: PathBuf,
    /// sha256(slot, 0, user) as a u64, modulo `total_weight`.
    pub bucket: u64,
    pub total_weight: u64,
}

/// Parse an A/B spec `NAME=WEIGHT[,NAME=WEIGHT…]` (spaces around items allowed).
/// Checks the form only: integer weights > 0, no duplicate names, at least one arm.
pub fn parse_ab_spec(slot: &str, spec: &str) -> Result<Vec<Arm>> {
    let bad = |why: String| RegistryError::AbSpec {
        slot: slot.to_string(),
        spec: spec.to_string(),
        why,
    };
    if spec.trim().is_empty() {
        return Err(bad("it is empty".into()));
    }
    let mut arms: Vec<Arm> = Vec::new();
    for item in spec.split(',') {
        let item = item.trim();
        if item.is_empty() {
            return Err(bad(
                "it has an empty item (two commas, or a trailing comma)".into(),
            ));
        }
        let Some((name, w)) = item.rsplit_once('=') else {
            return Err(bad(format!("'{item}' has no '=WEIGHT'")));
        };
        let (name, w) = (name.trim(), w.trim());
        if name.is_empty() {
            return Err(bad(format!("'{item}' has no name before '='")));
        }
        let weight: u64 = match w.parse::<u64>() {
            Ok(0) => return Err(bad(format!("the weight of '{name}' is 0"))),
            Ok(v) if v > u32::MAX as u64 => {
                return Err(bad(format!(
                    "the weight of '{name}' ({v}) is above {}",
                    u32::MAX
                )))
            }
            Ok(v) => v,
            Err(_) => {
                return Err(bad(format!(
                    "the weight of '{name}' is '{w}', not a positive integer"
                )))
            }
        };
        if arms.iter().any(|a| a.name == name) {
            return Err(bad(format!("'{name}' appears twice")));
        }
        arms.push(Arm {
            name: name.to_string(),
            weight,
        });
    }
    Ok(arms)
}

/// The deterministic bucket of `user` in `slot`: sha256(slot, 0, user)'s first 8 bytes
/// (big-endian) modulo `total`. `total` must be > 0.
pub fn ab_bucket(slot: &str, user: &str, total: u64) -> u64 {
    let mut h = Sha256::new();
    h.update(slot.as_bytes());
    h.update([0u8]);
    h.update(user.as_bytes());
    let d = h.finalize();
    let mut b = [0u8; 8];
    b.copy_from_slice(&d[..8]);
    u64::from_be_bytes(b) % total
}

/// The arm a bucket falls in (cumulative weights, in order).
pub fn arm_for_bucket(arms: &[Arm], bucket: u64) -> Option<&Arm> {
    let mut acc = 0u64;
    arms.iter().find(|a| {
        acc += a.weight;
        bucket < acc
    })
}

/// Check a package name, tag or slot name.
pub fn check_name(what: &'static str, name: &str) -> Result<()> {
    let bad = |why: &str| RegistryError::BadName {
        what,
        name: name.to_string(),
        why: why.to_string(),
    };
    if name.is_empty() {
        return Err(bad("it is empty"));
    }
    if name.len() > MAX_NAME {
        return Err(bad(&format!("it is longer than {MAX_NAME} bytes")));
    }
    if name.starts_with('-') || name.starts_with('.') {
        return Err(bad("it must not start with '-' or '.'"));
    }
    if let Some(c) = name
        .chars()
        .find(|c| c.is_whitespace() || c.is_control() || matches!(c, '/' | '\\' | ',' | '='))
    {
        return Err(bad(&format!(
            "it contains {c:?} (names may not contain spaces, '/', '\\', ',' or '=')"
        )));
    }
    Ok(())
}

/// `ALC_HOME` if set and non-empty, else `<data dir>/alc` (`$XDG_DATA_HOME/alc` or
/// `~/.local/share/alc` on Linux, `~/Library/Application Support/alc` on macOS,
/// `%APPDATA%\alc` on Windows).
pub fn default_home() -> Result<PathBuf> {
    match std::env::var_os(HOME_ENV) {
        Some(h) if !h.is_empty() => Ok(PathBuf::from(h)),
        _ => dirs::data_dir()
            .map(|d| d.join("alc"))
            .ok_or(RegistryError::NoHome),
    }
}

/// The package store in one directory; see the crate documentation.
pub struct Registry {
    home: PathBuf,
    db_path: PathBuf,
    conn: Mutex<Connection>,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry")
            .field("home", &self.home)
            .finish()
    }
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS blobs (
    digest TEXT PRIMARY KEY NOT NULL,
    size INTEGER NOT NULL,
    stored_at TEXT NOT NULL,
    source_path TEXT,
    architecture TEXT,
    model_name TEXT,
    format_version INTEGER,
    alc_version TEXT,
    quant TEXT,
    context INTEGER,
    vocab_size INTEGER,
    parameters INTEGER,
    target TEXT,
    compile_date TEXT,
    verification TEXT NOT NULL,
    source_architecture TEXT,
    source_sha256 TEXT,
    build_key TEXT
) STRICT;
CREATE TABLE IF NOT EXISTS refs (
    name TEXT PRIMARY KEY NOT NULL,
    kind TEXT NOT NULL CHECK (kind IN ('name', 'tag')),
    digest TEXT NOT NULL REFERENCES blobs(digest),
    added_at TEXT NOT NULL
) STRICT;
CREATE INDEX IF NOT EXISTS refs_digest ON refs(digest);
CREATE TABLE IF NOT EXISTS ab_slots (
    slot TEXT PRIMARY KEY NOT NULL,
    updated_at TEXT NOT NULL
) STRICT;
CREATE TABLE IF NOT EXISTS ab_arms (
    slot TEXT NOT NULL REFERENCES ab_slots(slot) ON DELETE CASCADE,
    position INTEGER NOT NULL,
    ref TEXT NOT NULL REFERENCES refs(name),
    weight INTEGER NOT NULL CHECK (weight > 0),
    PRIMARY KEY (slot, position)
) STRICT;
CREATE INDEX IF NOT EXISTS ab_arms_ref ON ab_arms(ref);
";

const NOW: &str = "strftime('%Y-%m-%dT%H:%M:%SZ', 'now')";

const ENTRY_SELECT: &str = "SELECT r.name, r.kind, r.digest, r.added_at, b.size, b.stored_at,
    b.source_path, b.architecture, b.model_name, b.format_version, b.alc_version, b.quant,
    b.context, b.vocab_size, b.parameters, b.target, b.compile_date, b.verification,
    b.source_architecture, b.source_sha256, b.build_key
    FROM refs r JOIN blobs b ON b.digest = r.digest";

impl Registry {
    /// Open (creating if needed) the registry in `home`.
    pub fn open(home: impl AsRef<Path>) -> Result<Registry> {
        let home = home.as_ref().to_path_buf();
        for d in [home.join(BLOB_DIR), home.join(TMP_DIR)] {
            fs::create_dir_all(&d).map_err(io_err("cannot create the registry directory", &d))?;
        }
        let db_path = home.join(DB_FILE);
        let reg = Registry {
            conn: Mutex::new(
                Connection::open(&db_path).map_err(|source| RegistryError::Db {
                    path: db_path.clone(),
                    source,
                })?,
            ),
            db_path,
            home,
        };
        reg.init()?;
        reg.sweep_tmp();
        Ok(reg)
    }

    /// Remove what killed runs left under `tmp/`: files `in-{pid}-…` whose process is
    /// gone (on Linux, no `/proc/{pid}`; elsewhere, older than a day). Best effort:
    /// a file that cannot be removed is left for the next open.
    fn sweep_tmp(&self) {
        let Ok(entries) = fs::read_dir(self.home.join(TMP_DIR)) else {
            return;
        };
        let own = std::process::id();
        for e in entries.flatten() {
            let name = e.file_name();
            let Some(pid) = name
                .to_str()
                .and_then(|n| n.strip_prefix("in-"))
                .and_then(|n| n.split('-').next())
                .and_then(|p| p.parse::<u32>().ok())
            else {
                continue;
            };
            if pid != own && !process_alive(pid, &e) {
                let _ = fs::remove_file(e.path());
            }
        }
    }

    /// Open the registry in [`default_home`].
    pub fn open_default() -> Result<Registry> {
        Registry::open(default_home()?)
    }

    /// Open the registry in `home` if its database exists; `None` otherwise (nothing is
    /// created).
    pub fn open_existing(home: impl AsRef<Path>) -> Result<Option<Registry>> {
        let home = home.as_ref();
        if home.join(DB_FILE).is_file() {
            Registry::open(home).map(Some)
        } else {
            Ok(None)
        }
    }

    /// The registry directory.
    pub fn home(&self) -> &Path {
        &self.home
    }

    /// The stored file of a digest (it may not exist).
    pub fn blob_path(&self, digest: &str) -> PathBuf {
        self.home.join(BLOB_DIR).join(digest)
    }

    fn db(&self) -> impl Fn(rusqlite::Error) -> RegistryError + '_ {
        move |source| {
            let corrupt = matches!(
                source.sqlite_error_code(),
                Some(ErrorCode::NotADatabase | ErrorCode::DatabaseCorrupt)
            );
            if corrupt {
                RegistryError::Corrupt {
                    path: self.db_path.clone(),
                    blobs: self.home.join(BLOB_DIR),
                    source,
                }
            } else {
                RegistryError::Db {
                    path: self.db_path.clone(),
                    source,
                }
            }
        }
    }

    fn conn(&self) -> std::sync::MutexGuard<'_, Connection> {
        // A panic while holding the lock leaves the connection usable (transactions
        // roll back on drop).
        self.conn.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Run `f` in one write transaction (`BEGIN IMMEDIATE`), committed when it returns
    /// Ok.
    fn write<T>(&self, f: impl FnOnce(&rusqlite::Transaction<'_>) -> Result<T>) -> Result<T> {
        let mut conn = self.conn();
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(self.db())?;
        let v = f(&tx)?;
        tx.commit().map_err(self.db())?;
        Ok(v)
    }

    fn init(&self) -> Result<()> {
        {
            let conn = self.conn();
            conn.busy_timeout(BUSY_TIMEOUT).map_err(self.db())?;
            conn.pragma_update(None, "foreign_keys", true)
                .map_err(self.db())?;
        }
        self.write(|tx| {
            tx.execute_batch(
                "CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL) STRICT;",
            )
            .map_err(self.db())?;
            let v: Option<i64> = tx
                .query_row("SELECT max(version) FROM schema_version", [], |r| r.get(0))
                .map_err(self.db())?;
            match v {
                Some(v) if v > SCHEMA_VERSION => Err(RegistryError::SchemaTooNew {
                    path: self.db_path.clone(),
                    found: v,
                    supported: SCHEMA_VERSION,
                }),
                // Migrations from older versions go here.
                Some(_) => Ok(()),
                None => {
                    tx.execute_batch(SCHEMA).map_err(self.db())?;
                    tx.execute(
                        "INSERT INTO schema_version (version) VALUES (?1)",
                        [SCHEMA_VERSION],
                    )
                    .map_err(self.db())?;
                    Ok(())
                }
            }
        })
    }

    /// Add the package file `path` under `name` (default: the file name without its
    /// extension). The file is hashed and stored once per digest (hard link, else a
    /// copy). Re-adding a name with other content re-points it; the old file stays
    /// only while another name or tag points at it.
    pub fn add(&self, path: impl AsRef<Path>, name: Option<&str>) -> Result<Entry> {
        let path = path.as_ref();
        let name = match name {
            Some(n) => n.to_string(),
            None => default_name(path),
        };
        check_name("package name", &name)?;
        let md = fs::metadata(path).map_err(io_err("cannot read", path))?;
        if !md.is_file() {
            return Err(RegistryError::NotAFile {
                path: path.to_path_buf(),
            });
        }
        // A clear error for a file that is not a package, before any copying.
        alc_format::GgufFile::open(path).map_err(|e| RegistryError::NotAPackage {
            path: path.to_path_buf(),
            detail: e.to_string(),
        })?;

        let incoming = self.take_in(path)?;
        let gguf = alc_format::GgufFile::open(incoming.path()).map_err(|e| {
            RegistryError::NotAPackage {
                path: path.to_path_buf(),
                detail: e.to_string().replace(
                    &incoming.path().display().to_string(),
                    &path.display().to_string(),
                ),
            }
        })?;
        let meta = PackageMeta::from_gguf(&gguf);
        drop(gguf);
        let source_path = fs::canonicalize(path)
            .unwrap_or_else(|_| path.to_path_buf())
            .display()
            .to_string();
        let digest = incoming.digest.clone();
        let size = incoming.size;
        let blob = self.blob_path(&digest);

        self.write(|tx| {
            if let Some(kind) = ref_kind(tx, &name).map_err(self.db())? {
                if kind == RefKind::Tag {
                    return Err(RegistryError::NameIsTag {
                        name: name.clone(),
                        home: self.home.clone(),
                    });
                }
            }
            // The file goes into place under the write lock, so a concurrent `rm` of
            // the last reference cannot delete it between here and the commit.
            incoming.place(&blob)?;
            let m = &meta;
            tx.execute(
                &format!(
                    "INSERT INTO blobs (digest, size, stored_at, source_path, architecture,
                       model_name, format_version, alc_version, quant, context, vocab_size,
                       parameters, target, compile_date, verification, source_architecture,
                       source_sha256, build_key)
                     VALUES (?1, ?2, {NOW}, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13,
                       ?14, ?15, ?16, ?17)
                     ON CONFLICT (digest) DO NOTHING"
                ),
                params![
                    digest,
                    size as i64,
                    source_path,
                    m.architecture,
                    m.model_name,
                    m.format_version.map(|v| v as i64),
                    m.alc_version,
                    m.quant,
                    m.context.map(|v| v as i64),
                    m.vocab_size.map(|v| v as i64),
                    m.parameters.map(|v| v as i64),
                    m.target,
                    m.compile_date,
                    m.verification,
                    m.source_architecture,
                    m.source_sha256,
                    m.build_key,
                ],
            )
            .map_err(self.db())?;
            let old: Option<String> = tx
                .query_row("SELECT digest FROM refs WHERE name = ?1", [&name], |r| {
                    r.get(0)
                })
                .optional()
                .map_err(self.db())?;
            tx.execute(
                &format!(
                    "INSERT INTO refs (name, kind, digest, added_at) VALUES (?1, 'name', ?2, {NOW})
                     ON CONFLICT (name) DO UPDATE SET digest = excluded.digest,
                       added_at = CASE WHEN refs.digest = excluded.digest THEN refs.added_at
                                       ELSE excluded.added_at END"
                ),
                params![name, digest],
            )
            .map_err(self.db())?;
            if let Some(old) = old.filter(|o| *o != digest) {
                self.drop_if_unreferenced(tx, &old)?;
            }
            Ok(())
        })?;
        self.show(&name)
    }

    /// Hash `src` into a file under `tmp/`: a hard link if the file system allows it,
    /// else a copy (fsynced). The digest is of the bytes now in the temp file.
    fn take_in(&self, src: &Path) -> Result<Incoming> {
        let tmp_dir = self.home.join(TMP_DIR);
        fs::create_dir_all(&tmp_dir).map_err(io_err("cannot create", &tmp_dir))?;
        let unique = format!(
            "in-{}-{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or(0)
        );
        // Hard link first: the temp name is ours, the inode is the source's.
        for i in 0..16 {
            let t = tmp_dir.join(format!("{unique}-{i}"));
            match fs::hard_link(src, &t) {
                Ok(()) => {
                    let guard = TempGuard(Some(t));
                    let p = guard.path().to_path_buf();
                    let mut f = File::open(&p).map_err(io_err("cannot read", src))?;
                    let (digest, size) = hash_reader(&mut f, None, src)?;
                    // The data may still be in the page cache only (a compile that just
                    // finished); make it durable before the registry refers to it.
                    f.sync_all().map_err(io_err("cannot sync", src))?;
                    return Ok(Incoming {
                        tmp: guard,
                        linked: true,
                        digest,
                        size,
                    });
                }
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
                Err(_) => break,
            }
        }
        // Copy while hashing.
        let mut out = tempfile::Builder::new()
            .prefix(&format!("{unique}-copy-"))
            .tempfile_in(&tmp_dir)
            .map_err(io_err("cannot create a temporary file in", &tmp_dir))?;
        let mut f = File::open(src).map_err(io_err("cannot read", src))?;
        let (digest, size) = {
            let mut w = io::BufWriter::with_capacity(1 << 20, out.as_file_mut());
            let r = hash_reader(&mut f, Some(&mut w), src)?;
            w.flush().map_err(io_err("cannot write a copy of", src))?;
            r
        };
        out.as_file()
            .sync_all()
            .map_err(io_err("cannot sync the copy of", src))?;
        let (_, t) = out.keep().map_err(|e| RegistryError::Io {
            what: "cannot keep the temporary copy of".into(),
            path: src.to_path_buf(),
            source: e.error,
        })?;
        Ok(Incoming {
            tmp: TempGuard(Some(t)),
            linked: false,
            digest,
            size,
        })
    }

    /// Delete a blob row and file when no name or tag points at it. Inside `tx`.
    fn drop_if_unreferenced(&self, tx: &rusqlite::Transaction<'_>, digest: &str) -> Result<bool> {
        let n: i64 = tx
            .query_row(
                "SELECT count(*) FROM refs WHERE digest = ?1",
                [digest],
                |r| r.get(0),
            )
            .map_err(self.db())?;
        if n > 0 {
            return Ok(false);
        }
        tx.execute("DELETE FROM blobs WHERE digest = ?1", [digest])
            .map_err(self.db())?;
        let p = self.blob_path(digest);
        match fs::remove_file(&p) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(io_err("cannot delete the package file", &p)(e)),
        }
        sync_dir(&self.home.join(BLOB_DIR));
        Ok(true)
    }

    /// Every name and tag, sorted by name.
    pub fn list(&self) -> Result<Vec<Entry>> {
        let conn = self.conn();
        let mut st = conn
            .prepare(&format!("{ENTRY_SELECT} ORDER BY r.name"))
            .map_err(self.db())?;
        let rows = st
            .query_map([], |r| self.entry_row(r))
            .map_err(self.db())?
            .collect::<Result<Vec<_>, _>>()
            .map_err(self.db())?;
        drop(st);
        let mut out = rows;
        for e in &mut out {
            e.aliases = aliases(&conn, &e.digest, &e.name).map_err(self.db())?;
        }
        Ok(out)
    }

    /// One package by name, tag, or digest prefix (≥ 6 hex digits, `sha256:` allowed).
    /// For a digest, the entry is the first name (else tag) pointing at it.
    pub fn show(&self, query: &str) -> Result<Entry> {
        let conn = self.conn();
        let by_name = |name: &str| -> Result<Option<Entry>> {
            let e = conn
                .query_row(&format!("{ENTRY_SELECT} WHERE r.name = ?1"), [name], |r| {
                    self.entry_row(r)
                })
                .optional()
                .map_err(self.db())?;
            match e {
                Some(mut e) => {
                    e.aliases = aliases(&conn, &e.digest, &e.name).map_err(self.db())?;
                    Ok(Some(e))
                }
                None => Ok(None),
            }
        };
        if let Some(e) = by_name(query)? {
            return Ok(e);
        }
        let hex = query.strip_prefix("sha256:").unwrap_or(query);
        if hex.len() >= MIN_PREFIX && hex.len() <= 64 && hex.bytes().all(|b| b.is_ascii_hexdigit())
        {
            let hex = hex.to_ascii_lowercase();
            let mut st = conn
                .prepare(
                    "SELECT digest FROM blobs WHERE substr(digest, 1, length(?1)) = ?1 ORDER BY digest",
                )
                .map_err(self.db())?;
            let digests = st
                .query_map([&hex], |r| r.get::<_, String>(0))
                .map_err(self.db())?
                .collect::<Result<Vec<_>, _>>()
                .map_err(self.db())?;
            match digests.len() {
                0 => {}
                1 => {
                    let first: Option<String> = conn
                        .query_row(
                            "SELECT name FROM refs WHERE digest = ?1
                             ORDER BY kind = 'tag', name LIMIT 1",
                            [&digests[0]],
                            |r| r.get(0),
                        )
                        .optional()
                        .map_err(self.db())?;
                    if let Some(e) = first.map(|n| by_name(&n)).transpose()?.flatten() {
                        return Ok(e);
                    }
                }
                n => {
                    return Err(RegistryError::Ambiguous {
                        prefix: query.to_string(),
                        count: n,
                        examples: digests
                            .iter()
                            .take(3)
                            .map(|d| d.get(..12).unwrap_or(d))
                            .collect::<Vec<_>>()
                            .join(", "),
                        home: self.home.clone(),
                    })
                }
            }
        }
        Err(self.not_found(query))
    }

    fn not_found(&self, name: &str) -> RegistryError {
        RegistryError::NotFound {
            name: name.to_string(),
            home: self.home.clone(),
        }
    }

    fn entry_row(&self, r: &rusqlite::Row<'_>) -> rusqlite::Result<Entry> {
        let digest: String = r.get(2)?;
        let u = |i: usize| -> rusqlite::Result<Option<u64>> {
            Ok(r.get::<_, Option<i64>>(i)?.map(|v| v as u64))
        };
        Ok(Entry {
            name: r.get(0)?,
            kind: RefKind::parse(&r.get::<_, String>(1)?),
            path: self.blob_path(&digest),
            digest,
            added: r.get(3)?,
            size: r.get::<_, i64>(4)? as u64,
            stored: r.get(5)?,
            source_path: r.get(6)?,
            aliases: Vec::new(),
            meta: PackageMeta {
                architecture: r.get(7)?,
                model_name: r.get(8)?,
                format_version: u(9)?,
                alc_version: r.get(10)?,
                quant: r.get(11)?,
                context: u(12)?,
                vocab_size: u(13)?,
                parameters: u(14)?,
                target: r.get(15)?,
                compile_date: r.get(16)?,
                verification: r.get(17)?,
                source_architecture: r.get(18)?,
                source_sha256: r.get(19)?,
                build_key: r.get(20)?,
            },
        })
    }

    /// The package file of a name or tag (exact match; no digests), `None` when the
    /// registry has no such name. A registered file that is missing is an error.
    pub fn resolve(&self, name: &str) -> Result<Option<PathBuf>> {
        let digest: Option<String> = self
            .conn()
            .query_row("SELECT digest FROM refs WHERE name = ?1", [name], |r| {
                r.get(0)
            })
            .optional()
            .map_err(self.db())?;
        let Some(digest) = digest else {
            return Ok(None);
        };
        let p = self.blob_path(&digest);
        if !p.is_file() {
            return Err(RegistryError::BlobMissing {
                name: name.to_string(),
                digest,
                path: p,
            });
        }
        Ok(Some(p))
    }

    /// Remove a name or tag. The file leaves the store when nothing else points at it.
    /// Refused while an A/B slot uses the name.
    pub fn rm(&self, name: &str) -> Result<Removed> {
        self.write(|tx| {
            let row: Option<(String, String)> = tx
                .query_row(
                    "SELECT kind, digest FROM refs WHERE name = ?1",
                    [name],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .optional()
                .map_err(self.db())?;
            let Some((kind, digest)) = row else {
                return Err(self.not_found(name));
            };
            let slot: Option<String> = tx
                .query_row(
                    "SELECT slot FROM ab_arms WHERE ref = ?1 ORDER BY slot LIMIT 1",
                    [name],
                    |r| r.get(0),
                )
                .optional()
                .map_err(self.db())?;
            if let Some(slot) = slot {
                return Err(RegistryError::InSlot {
                    name: name.to_string(),
                    slot,
                });
            }
            tx.execute("DELETE FROM refs WHERE name = ?1", [name])
                .map_err(self.db())?;
            let blob_deleted = self.drop_if_unreferenced(tx, &digest)?;
            Ok(Removed {
                name: name.to_string(),
                kind: RefKind::parse(&kind),
                digest,
                blob_deleted,
            })
        })
    }

    /// Make `tag` an alias of the package `name` (a name, tag or digest prefix) points
    /// at. An existing tag of that name is re-pointed.
    pub fn tag(&self, name: &str, tag: &str) -> Result<Entry> {
        check_name("tag", tag)?;
        let target = self.show(name)?;
        self.write(|tx| {
            let old: Option<(String, String)> = tx
                .query_row(
                    "SELECT kind, digest FROM refs WHERE name = ?1",
                    [tag],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .optional()
                .map_err(self.db())?;
            if let Some((kind, _)) = &old {
                if RefKind::parse(kind) == RefKind::Name {
                    return Err(RegistryError::TagIsName {
                        name: tag.to_string(),
                        home: self.home.clone(),
                    });
                }
            }
            // `target` was read outside this transaction: check it is still stored.
            let still: i64 = tx
                .query_row(
                    "SELECT count(*) FROM blobs WHERE digest = ?1",
                    [&target.digest],
                    |r| r.get(0),
                )
                .map_err(self.db())?;
            if still == 0 {
                return Err(self.not_found(name));
            }
            tx.execute(
                &format!(
                    "INSERT INTO refs (name, kind, digest, added_at) VALUES (?1, 'tag', ?2, {NOW})
                     ON CONFLICT (name) DO UPDATE SET digest = excluded.digest,
                       added_at = excluded.added_at"
                ),
                params![tag, target.digest],
            )
            .map_err(self.db())?;
            if let Some((_, d)) = old.filter(|(_, d)| *d != target.digest) {
                self.drop_if_unreferenced(tx, &d)?;
            }
            Ok(())
        })?;
        self.show(tag)
    }

    /// Set A/B slot `slot` from `spec` (`NAME=WEIGHT,…`); every arm must be a name or
    /// tag in the registry. Replaces the slot's arms.
    pub fn ab_set(&self, slot: &str, spec: &str) -> Result<Slot> {
        check_name("A/B slot name", slot)?;
        let arms = parse_ab_spec(slot, spec)?;
        self.write(|tx| {
            for a in &arms {
                let n: i64 = tx
                    .query_row("SELECT count(*) FROM refs WHERE name = ?1", [&a.name], |r| {
                        r.get(0)
                    })
                    .map_err(self.db())?;
                if n == 0 {
                    return Err(RegistryError::AbSpec {
                        slot: slot.to_string(),
                        spec: spec.to_string(),
                        why: format!(
                            "no package named '{}' in the registry at {} (`alc list` shows what is there)",
                            a.name,
                            self.home.display()
                        ),
                    });
                }
            }
            tx.execute(
                &format!(
                    "INSERT INTO ab_slots (slot, updated_at) VALUES (?1, {NOW})
                     ON CONFLICT (slot) DO UPDATE SET updated_at = excluded.updated_at"
                ),
                [slot],
            )
            .map_err(self.db())?;
            tx.execute("DELETE FROM ab_arms WHERE slot = ?1", [slot])
                .map_err(self.db())?;
            for (i, a) in arms.iter().enumerate() {
                tx.execute(
                    "INSERT INTO ab_arms (slot, position, ref, weight) VALUES (?1, ?2, ?3, ?4)",
                    params![slot, i as i64, a.name, a.weight as i64],
                )
                .map_err(self.db())?;
            }
            Ok(())
        })?;
        self.ab_slot(slot)
    }

    /// Remove A/B slot `slot`.
    pub fn ab_rm(&self, slot: &str) -> Result<()> {
        self.write(|tx| {
            let n = tx
                .execute("DELETE FROM ab_slots WHERE slot = ?1", [slot])
                .map_err(self.db())?;
            if n == 0 {
                return Err(RegistryError::NoSlot {
                    slot: slot.to_string(),
                    home: self.home.clone(),
                });
            }
            Ok(())
        })
    }

    /// One A/B slot.
    pub fn ab_slot(&self, slot: &str) -> Result<Slot> {
        let conn = self.conn();
        read_slot(&conn, slot)
            .map_err(self.db())?
            .ok_or_else(|| RegistryError::NoSlot {
                slot: slot.to_string(),
                home: self.home.clone(),
            })
    }

    /// Every A/B slot, sorted by name.
    pub fn ab_show(&self) -> Result<Vec<Slot>> {
        let conn = self.conn();
        let names = {
            let mut st = conn
                .prepare("SELECT slot FROM ab_slots ORDER BY slot")
                .map_err(self.db())?;
            let v = st
                .query_map([], |r| r.get::<_, String>(0))
                .map_err(self.db())?
                .collect::<Result<Vec<_>, _>>()
                .map_err(self.db())?;
            v
        };
        let mut out = Vec::with_capacity(names.len());
        for n in names {
            if let Some(s) = read_slot(&conn, &n).map_err(self.db())? {
                out.push(s);
            }
        }
        Ok(out)
    }

    /// The arm of `slot` for `user`: deterministic ([`ab_bucket`], [`arm_for_bucket`]).
    pub fn ab_pick(&self, slot: &str, user: &str) -> Result<Pick> {
        let s = self.ab_slot(slot)?;
        if s.total_weight == 0 {
            // Only a database edited by hand gets here (arms have weights > 0).
            return Err(RegistryError::AbSpec {
                slot: slot.to_string(),
                spec: String::new(),
                why: "the slot has no arms".into(),
            });
        }
        let bucket = ab_bucket(slot, user, s.total_weight);
        let arm = arm_for_bucket(&s.arms, bucket)
            .expect("bucket < total weight falls in an arm")
            .name
            .clone();
        let path = self.resolve(&arm)?.ok_or_else(|| self.not_found(&arm))?;
        let digest = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        Ok(Pick {
            slot: slot.to_string(),
            user: user.to_string(),
            arm,
            digest,
            path,
            bucket,
            total_weight: s.total_weight,
        })
    }
}

fn ref_kind(tx: &Connection, name: &str) -> rusqlite::Result<Option<RefKind>> {
    tx.query_row("SELECT kind FROM refs WHERE name = ?1", [name], |r| {
        r.get::<_, String>(0)
    })
    .optional()
    .map(|k| k.map(|k| RefKind::parse(&k)))
}

fn aliases(conn: &Connection, digest: &str, except: &str) -> rusqlite::Result<Vec<String>> {
    let mut st =
        conn.prepare("SELECT name FROM refs WHERE digest = ?1 AND name != ?2 ORDER BY name")?;
    let v = st
        .query_map([digest, except], |r| r.get(0))?
        .collect::<rusqlite::Result<Vec<String>>>()?;
    Ok(v)
}

fn read_slot(conn: &Connection, slot: &str) -> rusqlite::Result<Option<Slot>> {
    let Some(updated) = conn
        .query_row(
            "SELECT updated_at FROM ab_slots WHERE slot = ?1",
            [slot],
            |r| r.get::<_, String>(0),
        )
        .optional()?
    else {
        return Ok(None);
    };
    let mut st =
        conn.prepare("SELECT ref, weight FROM ab_arms WHERE slot = ?1 ORDER BY position")?;
    let arms = st
        .query_map([slot], |r| {
            Ok(Arm {
                name: r.get(0)?,
                weight: r.get::<_, i64>(1)? as u64,
            })
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(Some(Slot {
        slot: slot.to_string(),
        total_weight: arms.iter().map(|a| a.weight).sum(),
        arms,
        updated,
    }))
}

/// The default package name of a file: its name without the last extension.
pub fn default_name(path: &Path) -> String {
    path.file_stem()
        .or_else(|| path.file_name())
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// Stream `r` through sha256 (and into `copy`); returns (hex digest, bytes).
fn hash_reader(
    r: &mut File,
    mut copy: Option<&mut dyn Write>,
    src: &Path,
) -> Result<(String, u64)> {
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut n = 0u64;
    loop {
        let k = match r.read(&mut buf) {
            Ok(0) => break,
            Ok(k) => k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(io_err("cannot read", src)(e)),
        };
        h.update(&buf[..k]);
        if let Some(w) = copy.as_mut() {
            w.write_all(&buf[..k])
                .map_err(io_err("cannot write a copy of", src))?;
        }
        n += k as u64;
    }
    let d = h.finalize();
    let mut hex = String::with_capacity(64);
    for b in d {
        hex.push_str(&format!("{b:02x}"));
    }
    Ok((hex, n))
}

fn sync_dir(_dir: &Path) {
    #[cfg(unix)]
    {
        // Best effort: the rename/link is done; a failed directory sync only weakens
        // durability across a power loss.
        let _ = File::open(_dir).and_then(|d| d.sync_all());
    }
}

/// Whether the process that named temp file `e` may still be writing it.
fn process_alive(pid: u32, e: &fs::DirEntry) -> bool {
    if cfg!(target_os = "linux") {
        return Path::new("/proc").join(pid.to_string()).exists();
    }
    let day = std::time::Duration::from_secs(24 * 3600);
    e.metadata()
        .and_then(|m| m.modified())
        .map(|t| t.elapsed().map_or(true, |age| age < day))
        .unwrap_or(true)
}

/// A file under `tmp/` that is removed on drop.
struct TempGuard(Option<PathBuf>);

impl TempGuard {
    fn path(&self) -> &Path {
        self.0.as_deref().expect("temp path present until drop")
    }
}

impl Drop for TempGuard {
    fn drop(&mut self) {
        if let Some(p) = self.0.take() {
            let _ = fs::remove_file(p);
        }
    }
}

/// A hashed file under `tmp/`, ready to be linked into the blob directory.
struct Incoming {
    tmp: TempGuard,
    /// The same inode as the user's file: its mode is the user's business.
    linked: bool,
    digest: String,
    size: u64,
}

impl Incoming {
    fn path(&self) -> &Path {
        self.tmp.path()
    }

    /// Link into `blob` unless a file is already there (same digest, same bytes); a
    /// copy is made read-only (a hard link shares the user's file, whose mode is left
    /// alone). The temp name is removed when `self` drops.
    fn place(&self, blob: &Path) -> Result<()> {
        if blob.is_file() {
            return Ok(());
        }
        match fs::hard_link(self.path(), blob) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => return Ok(()),
            Err(e) => return Err(io_err("cannot store the package as", blob)(e)),
        }
        if self.linked {
            if let Some(d) = blob.parent() {
                sync_dir(d);
            }
            return Ok(());
        }
        let mut perm = fs::metadata(blob)
            .map_err(io_err("cannot read", blob))?
            .permissions();
        perm.set_readonly(true);
        fs::set_permissions(blob, perm).map_err(io_err("cannot make read-only", blob))?;
        if let Some(d) = blob.parent() {
            sync_dir(d);
        }
        Ok(())
    }
}
