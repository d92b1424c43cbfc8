//! alc-abi: checks that a foreign model library (MLC / Apache TVM) was built against the
//! runtime ABI the device has, before it is deployed (`alc verify --abi`).
//!
//! Design note. A model library built against the wrong TVM C API links and packages
//! fine and fails only on the device (`UnsatisfiedLinkError`, `undefined symbol:
//! TVMFFIFunctionCall`). Symbols tell the two ABIs apart, so the check is a symbol-table
//! comparison; nothing is executed, linked or extracted.
//!
//! - [`inspect`] / [`inspect_bytes`] read an input by its magic bytes: ELF or Mach-O
//!   relocatable objects, shared libraries, static archives (the `object` crate's
//!   reader), Mach-O universal binaries, and tars of objects (MLC's `model.tar` with
//!   `lib0.o` and `devc.o`, read with the `tar` crate entry by entry into memory). Each
//!   object becomes a [`Member`] with its undefined and exported symbols. Malformed,
//!   truncated or empty input is an [`AbiError`] naming the file and member; bounds in
//!   [`Limits`] (input size, members' declared bytes, member count) stop tar bombs
//!   before anything large is read. Links and absolute or `..` paths in a tar are not
//!   followed or read; they become findings.
//! - [`Profile`]s say which runtime API a model must use: `expected` and `forbidden`
//!   symbol patterns, labels for messages, and the toolchain to rebuild with. Built-in:
//!   `tvm-ffi` and `tvm-legacy` (sources of the symbol lists in [`profile`]'s docs);
//!   more come from a TOML file ([`load_profiles`]).
//! - [`check`] applies a profile, and optionally a runtime library's exports, to an
//!   artifact and gives a [`Report`]: verdict, a one-line message such as `Model uses
//!   old TVM API (TVMFuncCall). Expected new FFI API (TVMFFIFunctionCall)`, the fix,
//!   findings per member, and every member's symbols. The rules are in docs/ABI.md and
//!   at the top of `src/check.rs`.
//! - [`save_report`] writes the report as JSON to `<artifact>.abi.json`, atomically.
//!   That file is the only thing this crate writes.
//!
//! Names are compared without Mach-O's leading underscore; reports keep raw names in the
//! member listings. The JSON schema, the TOML schema and the exit codes of the CLI are
//! in docs/ABI.md.

mod check;
mod error;
mod inspect;
pub mod profile;
mod report;

pub use check::{
    check, is_system_symbol, Finding, FindingCode, MissingSymbol, Report, RuntimeCheck, Severity,
    SymbolClass, Verdict, REPORT_SCHEMA,
};
pub use error::AbiError;
pub use inspect::{
    inspect, inspect_bytes, symbol_key, Artifact, ArtifactKind, BinaryFormat, Limits, Member,
    ObjectType,
};
pub use profile::{all_profiles, builtin_profiles, find_profile, load_profiles, Profile};
pub use report::{report_json, report_path, save_report, REPORT_SUFFIX};
