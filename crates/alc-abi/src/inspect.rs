//! Reading a model library into an [`Artifact`]: the undefined and exported symbols of
//! each object it holds.
//!
//! The input's kind comes from its first bytes, never from its name: ELF (`7f 45 4c 46`),
//! Mach-O (`fe ed fa ce`, `fe ed fa cf` and their byte swaps), Mach-O universal
//! (`ca fe ba be`, `ca fe ba bf`), a static archive (`!<arch>\n`) or a tar (`ustar` at
//! offset 257, or a valid header checksum for pre-POSIX tars). Members of archives and
//! tars are read from the in-memory bytes; nothing is extracted or written, and links in
//! a tar are never followed.

use crate::check::{Finding, FindingCode, Severity};
use crate::error::{clean, AbiError};
use object::read::archive::ArchiveFile;
use object::read::macho::{FatArch, MachOFatFile32, MachOFatFile64};
use object::{Object, ObjectSymbol, SymbolKind, SymbolScope};
use serde::{Deserialize, Serialize};
use std::io::Read;
use std::path::{Component, Path};

/// Bounds on what one input may make this crate read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Largest input file, in bytes (default 2 GiB).
    pub max_file_bytes: u64,
    /// Most bytes that the members of one archive, tar or universal binary may add up
    /// to, as their headers declare them (default 1 GiB). Checked before a member is
    /// read, so a tar that declares a huge member fails at once.
    pub max_member_bytes: u64,
    /// Most members (tar entries of any type, archive members, universal slices) in one
    /// input (default 10 000).
    pub max_members: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_file_bytes: 2 << 30,
            max_member_bytes: 1 << 30,
            max_members: 10_000,
        }
    }
}

/// What kind of file the input is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ArtifactKind {
    /// A relocatable object (`.o`).
    Object,
    /// A static archive of objects (`.a`).
    StaticArchive,
    /// A shared library (`.so`, `.dylib`).
    SharedLibrary,
    /// An executable.
    Executable,
    /// A tar of objects (MLC's `model.tar`).
    Tar,
    /// A Mach-O universal ("fat") binary; each slice is a member named by its
    /// architecture.
    Universal,
}

/// Object file format of a member.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum BinaryFormat {
    Elf,
    MachO,
}

/// Object kind of a member.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ObjectType {
    Relocatable,
    SharedLibrary,
    Executable,
    Other,
}

/// The symbols of one object (the input itself, or a member of it).
///
/// Names are raw, as stored (Mach-O names keep their leading underscore); lists are
/// sorted and free of duplicates. [`Member::key`] gives the name used for comparisons.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    /// The member's name: the file name for a plain object or library, the member path
    /// for an archive or tar member, `outer(inner)` for an archive inside a tar or a
    /// universal binary, the architecture for a universal slice.
    pub name: String,
    pub format: BinaryFormat,
    pub kind: ObjectType,
    /// Architecture as the `object` crate names it, lower case (`x86_64`, `aarch64`).
    pub arch: String,
    /// Undefined symbols (strong references).
    pub undefined: Vec<String>,
    /// Undefined weak references (may stay unresolved at run time).
    pub weak_undefined: Vec<String>,
    /// Defined global or weak symbols: non-local ones for a relocatable object, the
    /// dynamically visible ones for a shared library or executable.
    pub exported: Vec<String>,
}

impl Member {
    /// The name used for comparisons: Mach-O's leading underscore removed.
    pub fn key<'a>(&self, raw: &'a str) -> &'a str {
        symbol_key(self.format, raw)
    }

    /// Comparison names of the strong undefined symbols.
    pub fn undefined_keys(&self) -> impl Iterator<Item = &str> {
        self.undefined.iter().map(|s| self.key(s))
    }

    /// Comparison names of all undefined symbols, weak ones included.
    pub fn referenced_keys(&self) -> impl Iterator<Item = &str> {
        self.undefined
            .iter()
            .chain(&self.weak_undefined)
            .map(|s| self.key(s))
    }

    /// Comparison names of the exported symbols.
    pub fn exported_keys(&self) -> impl Iterator<Item = &str> {
        self.exported.iter().map(|s| self.key(s))
    }
}

/// A symbol's comparison name: for Mach-O, without the C compiler's leading underscore.
pub fn symbol_key(format: BinaryFormat, raw: &str) -> &str {
    match format {
        BinaryFormat::MachO => raw.strip_prefix('_').unwrap_or(raw),
        BinaryFormat::Elf => raw,
    }
}

/// An inspected input: its objects and their symbols, and notes on members that were
/// skipped (links, unsafe paths, files that are not objects).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Artifact {
    /// The input's path as given (or the name given to [`inspect_bytes`]).
    pub path: String,
    pub kind: ArtifactKind,
    pub members: Vec<Member>,
    /// Findings made while reading (skipped or unsafe members); [`crate::check`]
    /// copies them into the report.
    pub notes: Vec<Finding>,
}

/// Read and inspect the file at `path`. See [`inspect_bytes`].
pub fn inspect(path: &Path, limits: &Limits) -> Result<Artifact, AbiError> {
    let io_err = |source| AbiError::Io {
        path: path.to_path_buf(),
        source,
    };
    let meta = std::fs::metadata(path).map_err(io_err)?;
    if meta.is_dir() {
        return Err(AbiError::NotAFile {
            path: path.to_path_buf(),
        });
    }
    let display = clean(&path.display().to_string());
    if meta.len() > limits.max_file_bytes {
        return Err(AbiError::TooLarge {
            file: display,
            size: meta.len(),
            limit: limits.max_file_bytes,
        });
    }
    let file = std::fs::File::open(path).map_err(io_err)?;
    let mut data = Vec::with_capacity(meta.len() as usize);
    // One byte over the limit tells a file that grew since the metadata call.
    file.take(limits.max_file_bytes + 1)
        .read_to_end(&mut data)
        .map_err(io_err)?;
    if data.len() as u64 > limits.max_file_bytes {
        return Err(AbiError::TooLarge {
            file: display,
            size: data.len() as u64,
            limit: limits.max_file_bytes,
        });
    }
    let name = path
        .file_name()
        .map(|n| clean(&n.to_string_lossy()))
        .unwrap_or_else(|| display.clone());
    let mut artifact = inspect_named(&display, &name, &data, limits)?;
    artifact.path = display;
    Ok(artifact)
}

/// Inspect an input already in memory. `name` is used in messages and as the member
/// name of a plain object. Never panics on any bytes; malformed input is an error
/// naming `name` and the member.
pub fn inspect_bytes(name: &str, data: &[u8], limits: &Limits) -> Result<Artifact, AbiError> {
    let name = clean(name);
    inspect_named(&name, &name, data, limits)
}

fn inspect_named(
    file: &str,
    member_name: &str,
    data: &[u8],
    limits: &Limits,
) -> Result<Artifact, AbiError> {
    if data.len() as u64 > limits.max_file_bytes {
        return Err(AbiError::TooLarge {
            file: file.to_string(),
            size: data.len() as u64,
            limit: limits.max_file_bytes,
        });
    }
    let mut ctx = Ctx {
        file: file.to_string(),
        limits,
        members: Vec::new(),
        notes: Vec::new(),
        count: 0,
        bytes: 0,
    };
    let kind = match sniff(data) {
        Sniff::Empty => {
            return Err(AbiError::Empty {
                file: file.to_string(),
            })
        }
        Sniff::Elf | Sniff::MachO => {
            let member = ctx.parse_object(member_name, None, data)?;
            let kind = match member.kind {
                ObjectType::SharedLibrary => ArtifactKind::SharedLibrary,
                ObjectType::Executable => ArtifactKind::Executable,
                ObjectType::Relocatable | ObjectType::Other => ArtifactKind::Object,
            };
            ctx.members.push(member);
            kind
        }
        Sniff::Fat { is64 } => {
            ctx.parse_fat(data, is64)?;
            ArtifactKind::Universal
        }
        Sniff::Archive => {
            ctx.parse_archive(None, data)?;
            ArtifactKind::StaticArchive
        }
        Sniff::ThinArchive => return Err(ctx.thin_archive(None)),
        Sniff::Tar => {
            ctx.parse_tar(data)?;
            ArtifactKind::Tar
        }
        Sniff::Compressed(what) => {
            return Err(AbiError::Unsupported {
                file: file.to_string(),
                member: None,
                what: format!("a {what}-compressed file"),
                hint: "decompress it first (model.tar is an uncompressed tar)".to_string(),
            })
        }
        Sniff::Unknown => {
            return Err(AbiError::UnknownFormat {
                file: file.to_string(),
                member: None,
                magic: magic_hex(data),
            })
        }
    };
    if ctx.members.is_empty() {
        let detail = if ctx.notes.is_empty() {
            "it has no members".to_string()
        } else {
            let names: Vec<&str> = ctx
                .notes
                .iter()
                .filter_map(|n| n.member.as_deref())
                .take(5)
                .collect();
            format!(
                "{} member(s) skipped: {}",
                ctx.notes.len(),
                if names.is_empty() {
                    "-".to_string()
                } else {
                    names.join(", ")
                }
            )
        };
        return Err(AbiError::NoObjects {
            file: file.to_string(),
            detail,
        });
    }
    Ok(Artifact {
        path: file.to_string(),
        kind,
        members: ctx.members,
        notes: ctx.notes,
    })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Sniff {
    Empty,
    Elf,
    MachO,
    Fat { is64: bool },
    Archive,
    ThinArchive,
    Tar,
    Compressed(&'static str),
    Unknown,
}

fn sniff(data: &[u8]) -> Sniff {
    if data.is_empty() {
        return Sniff::Empty;
    }
    if data.starts_with(b"\x7fELF") {
        return Sniff::Elf;
    }
    if data.starts_with(b"!<arch>\n") {
        return Sniff::Archive;
    }
    if data.starts_with(b"!<thin>\n") {
        return Sniff::ThinArchive;
    }
    if let Some(m) = data.get(..4) {
        match m {
            [0xfe, 0xed, 0xfa, 0xce | 0xcf] | [0xce | 0xcf, 0xfa, 0xed, 0xfe] => {
                return Sniff::MachO
            }
            [0xca, 0xfe, 0xba, 0xbe] => return Sniff::Fat { is64: false },
            [0xca, 0xfe, 0xba, 0xbf] => return Sniff::Fat { is64: true },
            _ => {}
        }
    }
    if is_tar(data) {
        return Sniff::Tar;
    }
    if data.starts_with(&[0x1f, 0x8b]) {
        return Sniff::Compressed("gzip");
    }
    if data.starts_with(b"\xfd7zXZ\0") {
        return Sniff::Compressed("xz");
    }
    if data.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        return Sniff::Compressed("zstd");
    }
    if data.starts_with(b"BZh") {
        return Sniff::Compressed("bzip2");
    }
    Sniff::Unknown
}

/// A tar starts with a 512-byte header: POSIX and GNU ones say `ustar` at offset 257;
/// older ones are recognised by the header checksum (bytes 148..156, octal, computed
/// with those bytes as spaces).
fn is_tar(data: &[u8]) -> bool {
    let Some(header) = data.get(..512) else {
        return false;
    };
    if &header[257..262] == b"ustar" {
        return true;
    }
    let field = &header[148..156];
    let digits: Vec<u8> = field
        .iter()
        .copied()
        .skip_while(|&b| b == b' ')
        .take_while(|b| (b'0'..=b'7').contains(b))
        .collect();
    if digits.is_empty() {
        return false;
    }
    let mut stored: u64 = 0;
    for d in digits {
        stored = stored.saturating_mul(8).saturating_add(u64::from(d - b'0'));
    }
    let computed: u64 = header
        .iter()
        .enumerate()
        .map(|(i, &b)| {
            if (148..156).contains(&i) {
                u64::from(b' ')
            } else {
                u64::from(b)
            }
        })
        .sum();
    // An all-zero block sums to 256 and stores nothing: not a header.
    stored == computed && header[0] != 0
}

fn magic_hex(data: &[u8]) -> String {
    data.iter()
        .take(8)
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Is a tar member path absolute or does it climb out with `..`? Both `/` and `\`
/// separate components here, and a Windows drive prefix counts as absolute.
fn unsafe_path(p: &str) -> bool {
    if p.starts_with('/') || p.starts_with('\\') {
        return true;
    }
    let b = p.as_bytes();
    if b.len() >= 2 && b[1] == b':' && b[0].is_ascii_alphabetic() {
        return true;
    }
    if p.split(['/', '\\']).any(|c| c == "..") {
        return true;
    }
    Path::new(p)
        .components()
        .any(|c| matches!(c, Component::RootDir | Component::Prefix(_)))
}

struct Ctx<'l> {
    file: String,
    limits: &'l Limits,
    members: Vec<Member>,
    notes: Vec<Finding>,
    count: usize,
    bytes: u64,
}

impl Ctx<'_> {
    fn malformed(
        &self,
        member: Option<&str>,
        format: &'static str,
        detail: impl ToString,
    ) -> AbiError {
        AbiError::Malformed {
            file: self.file.clone(),
            member: member.map(str::to_string),
            format,
            detail: clean(&detail.to_string()),
        }
    }

    fn thin_archive(&self, member: Option<&str>) -> AbiError {
        AbiError::Unsupported {
            file: self.file.clone(),
            member: member.map(str::to_string),
            what: "a thin archive".to_string(),
            hint: "its members live in other files, which are not followed; build a normal archive (ar rcs)".to_string(),
        }
    }

    fn note(&mut self, severity: Severity, code: FindingCode, member: &str, message: String) {
        self.notes.push(Finding {
            severity,
            code,
            member: Some(member.to_string()),
            symbols: Vec::new(),
            message,
        });
    }

    /// Count one member of `size` declared bytes against the limits.
    fn admit(&mut self, member: &str, size: u64) -> Result<(), AbiError> {
        self.count += 1;
        if self.count > self.limits.max_members {
            return Err(AbiError::LimitExceeded {
                file: self.file.clone(),
                member: Some(member.to_string()),
                detail: format!(
                    "more than {} members (the limit; a tar or archive bomb?)",
                    self.limits.max_members
                ),
            });
        }
        self.bytes = self.bytes.saturating_add(size);
        if self.bytes > self.limits.max_member_bytes {
            return Err(AbiError::LimitExceeded {
                file: self.file.clone(),
                member: Some(member.to_string()),
                detail: format!(
                    "declares {size} bytes; the members add up to more than the limit of {} bytes (a tar bomb?)",
                    self.limits.max_member_bytes
                ),
            });
        }
        Ok(())
    }

    /// Parse one ELF or Mach-O object. `member` is `None` for the input itself.
    fn parse_object(
        &self,
        name: &str,
        member: Option<&str>,
        data: &[u8],
    ) -> Result<Member, AbiError> {
        let fmt_name = if data.starts_with(b"\x7fELF") {
            "ELF"
        } else {
            "Mach-O"
        };
        let file = object::File::parse(data).map_err(|e| self.malformed(member, fmt_name, e))?;
        let format = match file.format() {
            object::BinaryFormat::Elf => BinaryFormat::Elf,
            object::BinaryFormat::MachO => BinaryFormat::MachO,
            other => {
                return Err(AbiError::Unsupported {
                    file: self.file.clone(),
                    member: member.map(str::to_string),
                    what: clean(&format!("object format {other:?}")),
                    hint: "only ELF and Mach-O are checked".to_string(),
                })
            }
        };
        let kind = match file.kind() {
            object::ObjectKind::Relocatable => ObjectType::Relocatable,
            object::ObjectKind::Dynamic => ObjectType::SharedLibrary,
            object::ObjectKind::Executable => ObjectType::Executable,
            _ => ObjectType::Other,
        };
        let linked = matches!(kind, ObjectType::SharedLibrary | ObjectType::Executable);
        // An ELF library's interface is its dynamic symbol table (a stripped library has
        // only that one); Mach-O keeps one table and marks exports by scope.
        let symbols =
            if format == BinaryFormat::Elf && linked && file.dynamic_symbol_table().is_some() {
                file.dynamic_symbols()
            } else {
                file.symbols()
            };
        let mut undefined = Vec::new();
        let mut weak_undefined = Vec::new();
        let mut exported = Vec::new();
        for sym in symbols {
            if matches!(sym.kind(), SymbolKind::Section | SymbolKind::File) {
                continue;
            }
            let raw = sym
                .name_bytes()
                .map_err(|e| self.malformed(member, fmt_name, e))?;
            if raw.is_empty() {
                continue;
            }
            let name = String::from_utf8_lossy(raw).into_owned();
            if sym.is_undefined() {
                if sym.is_weak() {
                    weak_undefined.push(name);
                } else {
                    undefined.push(name);
                }
            } else if sym.is_local() {
                continue;
            } else if !linked || sym.scope() == SymbolScope::Dynamic {
                exported.push(name);
            }
        }
        for list in [&mut undefined, &mut weak_undefined, &mut exported] {
            list.sort();
            list.dedup();
        }
        Ok(Member {
            name: name.to_string(),
            format,
            kind,
            arch: format!("{:?}", file.architecture()).to_lowercase(),
            undefined,
            weak_undefined,
            exported,
        })
    }

    /// Members of a static archive; `outer` names the tar member or universal slice
    /// holding it (members are then named `outer(member)`).
    fn parse_archive(&mut self, outer: Option<&str>, data: &[u8]) -> Result<(), AbiError> {
        let archive =
            ArchiveFile::parse(data).map_err(|e| self.malformed(outer, "static archive", e))?;
        if archive.is_thin() {
            return Err(self.thin_archive(outer));
        }
        for member in archive.members() {
            let member = member.map_err(|e| self.malformed(outer, "static archive", e))?;
            let inner = clean(&String::from_utf8_lossy(member.name()));
            let name = match outer {
                Some(o) => format!("{o}({inner})"),
                None => inner,
            };
            self.admit(&name, member.size())?;
            let bytes = member
                .data(data)
                .map_err(|e| self.malformed(Some(&name), "static archive", e))?;
            match sniff(bytes) {
                Sniff::Elf | Sniff::MachO => {
                    let m = self.parse_object(&name, Some(&name), bytes)?;
                    self.members.push(m);
                }
                Sniff::Empty => self.note(
                    Severity::Warning,
                    FindingCode::SkippedMember,
                    &name,
                    format!("skipped {name}: empty member"),
                ),
                _ => self.note(
                    Severity::Info,
                    FindingCode::SkippedMember,
                    &name,
                    format!(
                        "skipped {name}: not an ELF or Mach-O object (first bytes: {})",
                        magic_hex(bytes)
                    ),
                ),
            }
        }
        Ok(())
    }

    /// Slices of a Mach-O universal binary, named by architecture.
    fn parse_fat(&mut self, data: &[u8], is64: bool) -> Result<(), AbiError> {
        let fmt = "Mach-O universal binary";
        let mut slices: Vec<(String, &[u8])> = Vec::new();
        if is64 {
            let fat = MachOFatFile64::parse(data).map_err(|e| self.malformed(None, fmt, e))?;
            for arch in fat.arches() {
                let name = format!("{:?}", arch.architecture()).to_lowercase();
                let bytes = arch
                    .data(data)
                    .map_err(|e| self.malformed(Some(&name), fmt, e))?;
                slices.push((name, bytes));
            }
        } else {
            let fat = MachOFatFile32::parse(data).map_err(|e| self.malformed(None, fmt, e))?;
            for arch in fat.arches() {
                let name = format!("{:?}", arch.architecture()).to_lowercase();
                let bytes = arch
                    .data(data)
                    .map_err(|e| self.malformed(Some(&name), fmt, e))?;
                slices.push((name, bytes));
            }
        }
        for (name, bytes) in slices {
            self.admit(&name, bytes.len() as u64)?;
            match sniff(bytes) {
                Sniff::MachO | Sniff::Elf => {
                    let m = self.parse_object(&name, Some(&name), bytes)?;
                    self.members.push(m);
                }
                Sniff::Archive => self.parse_archive(Some(&name), bytes)?,
                Sniff::ThinArchive => return Err(self.thin_archive(Some(&name))),
                _ => self.note(
                    Severity::Warning,
                    FindingCode::SkippedMember,
                    &name,
                    format!(
                        "skipped slice {name}: not a Mach-O object or archive (first bytes: {})",
                        magic_hex(bytes)
                    ),
                ),
            }
        }
        Ok(())
    }

    /// Entries of a tar, read into memory one at a time. Links are never followed and
    /// members with absolute or `..` paths are not read.
    fn parse_tar(&mut self, data: &[u8]) -> Result<(), AbiError> {
        let fmt = "tar";
        let mut archive = tar::Archive::new(data);
        let entries = archive
            .entries()
            .map_err(|e| self.malformed(None, fmt, e))?;
        for entry in entries {
            let mut entry = entry.map_err(|e| self.malformed(None, fmt, e))?;
            let name = clean(&String::from_utf8_lossy(&entry.path_bytes()));
            let etype = entry.header().entry_type();
            let declared = if etype.is_file() || etype == tar::EntryType::Continuous {
                entry.size()
            } else {
                0
            };
            self.admit(&name, declared)?;
            let bad_path = unsafe_path(&name);
            match etype {
                tar::EntryType::Regular | tar::EntryType::Continuous => {}
                tar::EntryType::Directory => {
                    if bad_path {
                        self.unsafe_member(&name, "directory");
                    }
                    continue;
                }
                tar::EntryType::Symlink | tar::EntryType::Link => {
                    let target = entry
                        .link_name_bytes()
                        .map(|t| clean(&String::from_utf8_lossy(&t)))
                        .unwrap_or_default();
                    let what = if etype == tar::EntryType::Symlink {
                        "symlink"
                    } else {
                        "hard link"
                    };
                    if bad_path || unsafe_path(&target) {
                        self.note(
                            Severity::Error,
                            FindingCode::UnsafeMember,
                            &name,
                            format!(
                                "{name} is a {what} to {target}, outside the tar's directory; not followed (an extractor could write outside its directory)"
                            ),
                        );
                    } else {
                        self.note(
                            Severity::Warning,
                            FindingCode::SkippedMember,
                            &name,
                            format!("skipped {name}: a {what} to {target}; links are not followed"),
                        );
                    }
                    continue;
                }
                // Metadata entries (PAX and GNU long names are applied by the tar reader).
                tar::EntryType::XGlobalHeader
                | tar::EntryType::XHeader
                | tar::EntryType::GNULongName
                | tar::EntryType::GNULongLink => continue,
                other => {
                    self.note(
                        Severity::Warning,
                        FindingCode::SkippedMember,
                        &name,
                        format!("skipped {name}: tar entry type {other:?} is not a regular file"),
                    );
                    continue;
                }
            }
            if bad_path {
                self.unsafe_member(&name, "file");
                continue;
            }
            if declared > data.len() as u64 {
                return Err(self.malformed(
                    Some(&name),
                    fmt,
                    format!(
                        "declares {declared} bytes but the whole tar has {} (truncated)",
                        data.len()
                    ),
                ));
            }
            let mut bytes = Vec::with_capacity(declared as usize);
            (&mut entry)
                .take(declared)
                .read_to_end(&mut bytes)
                .map_err(|e| self.malformed(Some(&name), fmt, e))?;
            if bytes.len() as u64 != declared {
                return Err(self.malformed(
                    Some(&name),
                    fmt,
                    format!(
                        "declares {declared} bytes, only {} present (truncated)",
                        bytes.len()
                    ),
                ));
            }
            match sniff(&bytes) {
                Sniff::Elf | Sniff::MachO => {
                    let m = self.parse_object(&name, Some(&name), &bytes)?;
                    self.members.push(m);
                }
                Sniff::Archive => self.parse_archive(Some(&name), &bytes)?,
                Sniff::ThinArchive => return Err(self.thin_archive(Some(&name))),
                Sniff::Empty => self.note(
                    Severity::Warning,
                    FindingCode::SkippedMember,
                    &name,
                    format!("skipped {name}: empty member"),
                ),
                Sniff::Tar => self.note(
                    Severity::Warning,
                    FindingCode::SkippedMember,
                    &name,
                    format!("skipped {name}: a tar inside the tar is not inspected"),
                ),
                Sniff::Fat { .. } => self.note(
                    Severity::Warning,
                    FindingCode::SkippedMember,
                    &name,
                    format!("skipped {name}: a universal binary inside a tar is not inspected"),
                ),
                Sniff::Compressed(_) | Sniff::Unknown => self.note(
                    Severity::Info,
                    FindingCode::SkippedMember,
                    &name,
                    format!(
                        "skipped {name}: not an ELF or Mach-O object (first bytes: {})",
                        magic_hex(&bytes)
                    ),
                ),
            }
        }
        Ok(())
    }

    fn unsafe_member(&mut self, name: &str, what: &str) {
        self.note(
            Severity::Error,
            FindingCode::UnsafeMember,
            name,
            format!(
                "{what} member {name} has an absolute or '..' path; not read (an extractor could write outside its directory)"
            ),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sniffs_by_content() {
        assert_eq!(sniff(b""), Sniff::Empty);
        assert_eq!(sniff(b"\x7fELF\x02"), Sniff::Elf);
        assert_eq!(sniff(&[0xcf, 0xfa, 0xed, 0xfe, 7]), Sniff::MachO);
        assert_eq!(sniff(b"!<arch>\nxx"), Sniff::Archive);
        assert_eq!(sniff(b"!<thin>\nxx"), Sniff::ThinArchive);
        assert_eq!(sniff(&[0x1f, 0x8b, 8, 0]), Sniff::Compressed("gzip"));
        assert_eq!(sniff(b"hello world"), Sniff::Unknown);
        assert_eq!(sniff(&[0u8; 1024]), Sniff::Unknown);
    }

    #[test]
    fn unsafe_paths() {
        for p in [
            "/etc/passwd",
            "../x.o",
            "a/../../x.o",
            "a\\..\\x.o",
            "C:x.o",
            "\\x",
        ] {
            assert!(unsafe_path(p), "{p}");
        }
        for p in ["lib0.o", "./lib0.o", "a/b/devc.o", "x..o", "..x.o"] {
            assert!(!unsafe_path(p), "{p}");
        }
    }

    #[test]
    fn mach_o_key_strips_one_underscore() {
        assert_eq!(
            symbol_key(BinaryFormat::MachO, "_TVMFuncCall"),
            "TVMFuncCall"
        );
        assert_eq!(symbol_key(BinaryFormat::MachO, "___tvm_ctx"), "__tvm_ctx");
        assert_eq!(
            symbol_key(BinaryFormat::Elf, "_TVMFuncCall"),
            "_TVMFuncCall"
        );
    }
}
