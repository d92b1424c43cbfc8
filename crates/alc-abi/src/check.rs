//! Checking an inspected artifact against a profile (and a runtime library), giving a
//! [`Report`].
//!
//! # The rules
//!
//! Names are compared without Mach-O's leading underscore ([`crate::symbol_key`]).
//!
//! A member *references* a symbol when the symbol is undefined in it (weak or strong),
//! or when it defines a TVM context slot `__NAME` for a `NAME` that the profile's
//! `expected` or `forbidden` patterns match (TVM shared libraries built without dynamic
//! lookup hold such a pointer, which the runtime fills by name at load time).
//!
//! 1. `forbidden-symbol` (error): a member references a forbidden symbol. The report's
//!    message is then `Model uses <forbidden_label> (<symbol>). Expected
//!    <expected_label> (<replacement>)`, naming the first such symbol in profile order.
//! 2. `forbidden-export` (error): a member exports forbidden symbols and no expected
//!    one: it is (or bundles) a runtime of the other ABI.
//! 3. `no-expected-symbol` (error): the artifact as a whole references the runtime's API
//!    (symbols matching `api_prefixes`, `expected` or `forbidden`) but no expected
//!    symbol, and nothing forbidden either. Judged over all members together, since
//!    e.g. `devc.o` may use only one of the API functions `lib0.o` uses.
//! 4. `mixed-api` (error): some members use the expected API and others (or the same
//!    ones) the forbidden one: objects from two toolchains.
//! 5. `no-runtime-api` (info): nothing references the runtime's API.
//!
//! With a runtime library, every strong undefined symbol of every member that no member
//! of the same artifact exports is *needed*, and is sorted into one of three classes:
//!
//! - *runtime API*: it matches the profile's `api_prefixes`, `expected` or `forbidden`.
//!   The runtime must export it, else `missing-runtime-symbol` (error).
//! - *system*: a C library, math library, C++ standard library or compiler runtime
//!   symbol ([`is_system_symbol`]: `__`-prefixed compiler and libc internals,
//!   `_Unwind_*`, `pthread_*`, C++ `std::` and `operator new/delete`, and a list of libc
//!   and libm functions), or a symbol the runtime itself imports (then the device's
//!   system provides it to the runtime too). Not required from the runtime.
//! - *other*: anything else. If the runtime does not export it, `unresolved-symbol`
//!   (warning): some other library on the device must provide it.
//!
//! `runtime-api-mismatch` (error): the runtime exports forbidden symbols and no expected
//! one.
//!
//! Findings recorded while reading the artifact (unsafe tar members are errors, skipped
//! members warnings or info) come first. The verdict is `failed` when any finding is an
//! error.

use crate::error::clean;
use crate::inspect::{Artifact, ArtifactKind, Member};
use crate::profile::{match_index, Pattern, Profile};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet, HashSet};

/// The `schema` value of reports this version writes.
pub const REPORT_SCHEMA: &str = "alc.abi/1";

/// How much a finding matters. Any `error` makes the verdict `failed`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Error,
    Warning,
    Info,
}

/// What a finding is about (stable identifiers, kebab-case in JSON).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FindingCode {
    ForbiddenSymbol,
    ForbiddenExport,
    NoExpectedSymbol,
    MixedApi,
    NoRuntimeApi,
    MissingRuntimeSymbol,
    UnresolvedSymbol,
    RuntimeApiMismatch,
    UnsafeMember,
    SkippedMember,
}

/// One finding. `symbols` hold comparison names (no Mach-O underscore).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Finding {
    pub severity: Severity,
    pub code: FindingCode,
    /// The member concerned; `None` for findings about the whole artifact.
    pub member: Option<String>,
    pub symbols: Vec<String>,
    pub message: String,
}

/// The outcome of a check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    Ok,
    Failed,
}

/// Class of a needed symbol in the runtime check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SymbolClass {
    RuntimeApi,
    System,
    Other,
}

/// A needed symbol the runtime does not export.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MissingSymbol {
    pub symbol: String,
    pub class: SymbolClass,
    /// Members that reference it.
    pub members: Vec<String>,
}

/// The `--runtime` part of a report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuntimeCheck {
    /// The runtime library's path as given.
    pub runtime: String,
    /// Distinct symbols the model needs from outside itself.
    pub needed: usize,
    /// How many of them the runtime exports.
    pub provided: usize,
    /// How many of the rest are system symbols (not required from the runtime).
    pub system: usize,
    /// The others: runtime-API symbols (errors) and other symbols (warnings).
    pub missing: Vec<MissingSymbol>,
}

/// The result of checking one artifact; saved as `<file>.abi.json`. Field order and
/// names are stable within one `schema` value (docs/ABI.md).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// `alc.abi/1`.
    pub schema: String,
    /// The artifact's path as given.
    pub file: String,
    pub kind: ArtifactKind,
    /// The profile's name.
    pub profile: String,
    pub verdict: Verdict,
    /// One line saying why the check failed (`None` when it passed).
    pub message: Option<String>,
    /// What to do about it (`None` when it passed).
    pub fix: Option<String>,
    pub findings: Vec<Finding>,
    /// Present when a runtime library was given.
    pub runtime: Option<RuntimeCheck>,
    /// Every object inspected, with its symbols.
    pub members: Vec<Member>,
}

impl Report {
    /// True when the verdict is `ok`.
    pub fn passed(&self) -> bool {
        self.verdict == Verdict::Ok
    }
}

/// The profile's patterns, ready to match.
struct Matcher<'p> {
    profile: &'p Profile,
    expected: Vec<Pattern<'p>>,
    forbidden: Vec<Pattern<'p>>,
}

impl<'p> Matcher<'p> {
    fn new(profile: &'p Profile) -> Self {
        Matcher {
            profile,
            expected: profile.expected.iter().map(|s| Pattern::new(s)).collect(),
            forbidden: profile.forbidden.iter().map(|s| Pattern::new(s)).collect(),
        }
    }

    fn is_expected(&self, key: &str) -> bool {
        self.expected.iter().any(|p| p.matches(key))
    }

    fn is_forbidden(&self, key: &str) -> bool {
        self.forbidden.iter().any(|p| p.matches(key))
    }

    fn is_api(&self, key: &str) -> bool {
        self.profile
            .api_prefixes
            .iter()
            .any(|p| key.starts_with(p.as_str()))
            || self.is_expected(key)
            || self.is_forbidden(key)
    }

    /// Sort key putting symbols in the order of the profile's forbidden list.
    fn forbidden_rank(&self, key: &str) -> (usize, String) {
        (
            match_index(&self.profile.forbidden, key).unwrap_or(usize::MAX),
            key.to_string(),
        )
    }

    /// The expected symbol to name next to forbidden `key`.
    fn replacement(&self, key: &str) -> String {
        if let Some(r) = self.profile.replacements.get(key) {
            return r.clone();
        }
        self.profile
            .expected
            .iter()
            .find(|p| !p.ends_with('*'))
            .or(self.profile.expected.first())
            .cloned()
            .unwrap_or_else(|| "-".to_string())
    }
}

/// The symbols a member references (see the module documentation), as comparison names.
fn references<'m>(member: &'m Member, m: &Matcher) -> BTreeSet<&'m str> {
    let mut refs: BTreeSet<&str> = member.referenced_keys().collect();
    for key in member.exported_keys() {
        if let Some(target) = key.strip_prefix("__") {
            if m.is_expected(target) || m.is_forbidden(target) {
                refs.insert(target);
            }
        }
    }
    refs
}

/// Up to `max` names, comma-separated (control characters escaped), then "and N more".
fn list(symbols: &[String], max: usize) -> String {
    let mut s = symbols
        .iter()
        .take(max)
        .map(|n| clean(n))
        .collect::<Vec<_>>()
        .join(", ");
    if symbols.len() > max {
        s.push_str(&format!(" and {} more", symbols.len() - max));
    }
    s
}

/// Check `artifact` against `profile`, and its needs against `runtime` if given.
///
/// Findings: forbidden symbols referenced (per member), forbidden API exported, the
/// runtime's API used without any expected symbol (over all members), both APIs mixed,
/// and with a runtime, needed symbols it does not export and a runtime of the other ABI.
/// The rules, and the order in which they pick the report's one-line `message`, are in
/// docs/ABI.md ("What is checked", "The --runtime check").
pub fn check(artifact: &Artifact, profile: &Profile, runtime: Option<&Artifact>) -> Report {
    let m = Matcher::new(profile);
    let mut findings: Vec<Finding> = artifact.notes.clone();
    let mut headline: Option<(u8, String, String)> = None;
    let mut set_headline = |rank: u8, message: String, fix: String| {
        if headline.as_ref().is_none_or(|(r, _, _)| rank < *r) {
            headline = Some((rank, message, fix));
        }
    };
    if let Some(f) = findings
        .iter()
        .find(|f| f.code == FindingCode::UnsafeMember)
    {
        set_headline(
            0,
            f.message.clone(),
            "repack the tar with plain relative member paths and no links".to_string(),
        );
    }

    // Per-member API use.
    let mut all_refs: BTreeSet<&str> = BTreeSet::new();
    let mut first_forbidden: Option<String> = None;
    let mut forbidden_members: Vec<&str> = Vec::new();
    let mut expected_members: Vec<&str> = Vec::new();
    for member in &artifact.members {
        let refs = references(member, &m);
        let mut forbidden: Vec<&str> = refs.iter().copied().filter(|k| m.is_forbidden(k)).collect();
        forbidden.sort_by_key(|k| m.forbidden_rank(k));
        if refs.iter().any(|k| m.is_expected(k)) {
            expected_members.push(&member.name);
        }
        if !forbidden.is_empty() {
            forbidden_members.push(&member.name);
            let best = forbidden[0];
            if first_forbidden
                .as_deref()
                .is_none_or(|cur| m.forbidden_rank(best) < m.forbidden_rank(cur))
            {
                first_forbidden = Some(best.to_string());
            }
            let symbols: Vec<String> = forbidden.iter().map(|s| s.to_string()).collect();
            findings.push(Finding {
                severity: Severity::Error,
                code: FindingCode::ForbiddenSymbol,
                member: Some(member.name.clone()),
                message: format!(
                    "{} references the {}: {}",
                    member.name,
                    profile.forbidden_label,
                    list(&symbols, 8)
                ),
                symbols,
            });
        }
        // A library exporting the forbidden API and none of the expected one is a
        // runtime of the other ABI (or bundles one).
        let exports: Vec<&str> = member.exported_keys().collect();
        let mut provided_forbidden: Vec<&str> = exports
            .iter()
            .copied()
            .filter(|k| m.is_forbidden(k))
            .collect();
        if !provided_forbidden.is_empty() && !exports.iter().any(|k| m.is_expected(k)) {
            provided_forbidden.sort_by_key(|k| m.forbidden_rank(k));
            let best = provided_forbidden[0];
            set_headline(
                2,
                format!(
                    "Library provides {} ({}). Expected {} ({})",
                    profile.forbidden_label,
                    clean(best),
                    profile.expected_label,
                    m.replacement(best)
                ),
                profile.toolchain.clone(),
            );
            let symbols: Vec<String> = provided_forbidden.iter().map(|s| s.to_string()).collect();
            findings.push(Finding {
                severity: Severity::Error,
                code: FindingCode::ForbiddenExport,
                member: Some(member.name.clone()),
                message: format!(
                    "{} exports the {} and none of the {}: {}",
                    member.name,
                    profile.forbidden_label,
                    profile.expected_label,
                    list(&symbols, 8)
                ),
                symbols,
            });
        }
        all_refs.extend(refs);
    }
    if let Some(sym) = &first_forbidden {
        set_headline(
            1,
            format!(
                "Model uses {} ({}). Expected {} ({})",
                profile.forbidden_label,
                clean(sym),
                profile.expected_label,
                m.replacement(sym)
            ),
            profile.toolchain.clone(),
        );
    }
    let api_refs: Vec<String> = all_refs
        .iter()
        .filter(|k| m.is_api(k))
        .map(|k| k.to_string())
        .collect();
    if first_forbidden.is_none() && !api_refs.is_empty() && expected_members.is_empty() {
        let expected_names = list(&profile.expected, 4);
        let message = format!(
            "Model uses the runtime API ({}) but none of the {} ({expected_names})",
            list(&api_refs, 3),
            profile.expected_label
        );
        set_headline(3, message.clone(), profile.toolchain.clone());
        findings.push(Finding {
            severity: Severity::Error,
            code: FindingCode::NoExpectedSymbol,
            member: None,
            symbols: api_refs.clone(),
            message,
        });
    }
    if !forbidden_members.is_empty() && !expected_members.is_empty() {
        let message = format!(
            "the model mixes the {} ({}) and the {} ({}); all its objects must come from one toolchain",
            profile.forbidden_label,
            forbidden_members.join(", "),
            profile.expected_label,
            expected_members.join(", ")
        );
        set_headline(6, message.clone(), profile.toolchain.clone());
        findings.push(Finding {
            severity: Severity::Error,
            code: FindingCode::MixedApi,
            member: None,
            symbols: Vec::new(),
            message,
        });
    }
    if api_refs.is_empty() && first_forbidden.is_none() {
        findings.push(Finding {
            severity: Severity::Info,
            code: FindingCode::NoRuntimeApi,
            member: None,
            symbols: Vec::new(),
            message: format!(
                "no member references the runtime API of profile {}; nothing to check against it",
                profile.name
            ),
        });
    }

    let runtime_check = runtime.map(|rt| {
        let (rc, mut fs, head) = check_runtime(artifact, rt, &m);
        if let Some((rank, message, fix)) = head {
            set_headline(rank, message, fix);
        }
        findings.append(&mut fs);
        rc
    });

    let failed = findings.iter().any(|f| f.severity == Severity::Error);
    let (message, fix) = match (failed, headline) {
        (false, _) => (None, None),
        (true, Some((_, msg, fix))) => (Some(msg), Some(fix)),
        (true, None) => {
            let first = findings
                .iter()
                .find(|f| f.severity == Severity::Error)
                .map(|f| f.message.clone());
            (first, None)
        }
    };
    Report {
        schema: REPORT_SCHEMA.to_string(),
        file: artifact.path.clone(),
        kind: artifact.kind,
        profile: profile.name.clone(),
        verdict: if failed { Verdict::Failed } else { Verdict::Ok },
        message,
        fix,
        findings,
        runtime: runtime_check,
        members: artifact.members.clone(),
    }
}

type Headline = Option<(u8, String, String)>;

fn check_runtime(
    artifact: &Artifact,
    rt: &Artifact,
    m: &Matcher,
) -> (RuntimeCheck, Vec<Finding>, Headline) {
    let rt_name = rt
        .members
        .first()
        .filter(|_| rt.members.len() == 1)
        .map(|mm| mm.name.clone())
        .unwrap_or_else(|| rt.path.clone());
    let rt_exports: HashSet<&str> = rt
        .members
        .iter()
        .flat_map(|mm| mm.exported_keys())
        .collect();
    let rt_imports: HashSet<&str> = rt
        .members
        .iter()
        .flat_map(|mm| mm.referenced_keys())
        .collect();
    let own_exports: HashSet<&str> = artifact
        .members
        .iter()
        .flat_map(|mm| mm.exported_keys())
        .collect();
    // Needed symbol → members referencing it.
    let mut needed: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    for member in &artifact.members {
        for key in member.undefined_keys() {
            if !own_exports.contains(key) {
                needed.entry(key).or_default().insert(&member.name);
            }
        }
    }
    let mut provided = 0;
    let mut system = 0;
    let mut missing = Vec::new();
    for (key, members) in &needed {
        if rt_exports.contains(key) {
            provided += 1;
            continue;
        }
        let class = if m.is_api(key) {
            SymbolClass::RuntimeApi
        } else if is_system_symbol(key) || rt_imports.contains(key) {
            SymbolClass::System
        } else {
            SymbolClass::Other
        };
        if class == SymbolClass::System {
            system += 1;
            continue;
        }
        missing.push(MissingSymbol {
            symbol: key.to_string(),
            class,
            members: members.iter().map(|s| s.to_string()).collect(),
        });
    }
    let mut findings = Vec::new();
    let mut headline: Headline = None;
    let api_missing: Vec<String> = missing
        .iter()
        .filter(|s| s.class == SymbolClass::RuntimeApi)
        .map(|s| s.symbol.clone())
        .collect();
    if !api_missing.is_empty() {
        let message = format!(
            "Runtime {rt_name} does not export {} symbol(s) the model needs: {}",
            api_missing.len(),
            list(&api_missing, 8)
        );
        headline = Some((
            4,
            message.clone(),
            format!(
                "deploy the model with a runtime built from the same TVM / MLC-LLM version as the model library, or {}",
                m.profile.toolchain
            ),
        ));
        findings.push(Finding {
            severity: Severity::Error,
            code: FindingCode::MissingRuntimeSymbol,
            member: None,
            symbols: api_missing,
            message,
        });
    }
    let other_missing: Vec<String> = missing
        .iter()
        .filter(|s| s.class == SymbolClass::Other)
        .map(|s| s.symbol.clone())
        .collect();
    if !other_missing.is_empty() {
        findings.push(Finding {
            severity: Severity::Warning,
            code: FindingCode::UnresolvedSymbol,
            member: None,
            message: format!(
                "{} symbol(s) the model needs are not exported by the runtime {rt_name}; another library on the device must provide them: {}",
                other_missing.len(),
                list(&other_missing, 8)
            ),
            symbols: other_missing,
        });
    }
    // The runtime's own ABI.
    let mut rt_forbidden: Vec<&str> = rt_exports
        .iter()
        .copied()
        .filter(|k| m.is_forbidden(k))
        .collect();
    if !rt_forbidden.is_empty() && !rt_exports.iter().any(|k| m.is_expected(k)) {
        rt_forbidden.sort_by_key(|k| m.forbidden_rank(k));
        let best = rt_forbidden[0];
        let message = format!(
            "Runtime {rt_name} provides {} ({}) but none of the {} ({})",
            m.profile.forbidden_label,
            clean(best),
            m.profile.expected_label,
            m.replacement(best)
        );
        if headline.is_none() {
            headline = Some((
                5,
                message.clone(),
                "use a runtime library built with the toolchain the profile names".to_string(),
            ));
        }
        findings.push(Finding {
            severity: Severity::Error,
            code: FindingCode::RuntimeApiMismatch,
            member: None,
            symbols: rt_forbidden
                .iter()
                .take(32)
                .map(|s| s.to_string())
                .collect(),
            message,
        });
    }
    (
        RuntimeCheck {
            runtime: rt.path.clone(),
            needed: needed.len(),
            provided,
            system,
            missing,
        },
        findings,
        headline,
    )
}

/// libc and libm functions that a compiled model library may call and that the device's
/// C library provides, not the model runtime.
const LIBC_LIBM: &[&str] = &[
    "abort",
    "aligned_alloc",
    "atexit",
    "bsearch",
    "calloc",
    "clock",
    "clock_gettime",
    "dladdr",
    "dlclose",
    "dlerror",
    "dlopen",
    "dlsym",
    "exit",
    "fclose",
    "fflush",
    "fopen",
    "fprintf",
    "fputc",
    "fputs",
    "fread",
    "free",
    "fwrite",
    "getenv",
    "gettimeofday",
    "malloc",
    "memchr",
    "memcmp",
    "memcpy",
    "memmove",
    "memset",
    "nanosleep",
    "posix_memalign",
    "printf",
    "putchar",
    "puts",
    "qsort",
    "realloc",
    "sched_yield",
    "snprintf",
    "sprintf",
    "stderr",
    "stdin",
    "stdout",
    "strchr",
    "strcmp",
    "strcpy",
    "strlen",
    "strncmp",
    "strncpy",
    "strrchr",
    "strstr",
    "strtod",
    "strtol",
    "sysconf",
    "time",
    "usleep",
    "vfprintf",
    "vsnprintf",
    "write",
    "errno",
    // libm
    "acos",
    "acosf",
    "acosh",
    "acoshf",
    "asin",
    "asinf",
    "asinh",
    "asinhf",
    "atan",
    "atan2",
    "atan2f",
    "atanf",
    "atanh",
    "atanhf",
    "cbrt",
    "cbrtf",
    "ceil",
    "ceilf",
    "copysign",
    "copysignf",
    "cos",
    "cosf",
    "cosh",
    "coshf",
    "erf",
    "erfc",
    "erfcf",
    "erff",
    "exp",
    "exp10",
    "exp10f",
    "exp2",
    "exp2f",
    "expf",
    "expm1",
    "expm1f",
    "fabs",
    "fabsf",
    "floor",
    "floorf",
    "fma",
    "fmaf",
    "fmax",
    "fmaxf",
    "fmin",
    "fminf",
    "fmod",
    "fmodf",
    "frexp",
    "frexpf",
    "hypot",
    "hypotf",
    "ldexp",
    "ldexpf",
    "lgamma",
    "lgammaf",
    "llround",
    "llroundf",
    "log",
    "log10",
    "log10f",
    "log1p",
    "log1pf",
    "log2",
    "log2f",
    "logf",
    "lround",
    "lroundf",
    "modf",
    "modff",
    "nearbyint",
    "nearbyintf",
    "pow",
    "powf",
    "remainder",
    "remainderf",
    "rint",
    "rintf",
    "round",
    "roundf",
    "sin",
    "sincos",
    "sincosf",
    "sinf",
    "sinh",
    "sinhf",
    "sqrt",
    "sqrtf",
    "tan",
    "tanf",
    "tanh",
    "tanhf",
    "tgamma",
    "tgammaf",
    "trunc",
    "truncf",
];

/// Prefixes of symbols provided by the C library or the compiler's runtime
/// (compiler-rt, libgcc): `__`-prefixed builtins and libc internals
/// (`__stack_chk_fail`, `__aeabi_*`, `__truncsfhf2`, `__cxa_*`, `__errno_location`),
/// the unwinder, POSIX threads, transactional-memory hooks, C++ ABI type info and
/// `operator new` / `delete`.
const SYSTEM_PREFIXES: &[&str] = &[
    "__",
    "_Unwind_",
    "pthread_",
    "_ITM_",
    "_ZTVN10__cxxabiv1",
    "_ZTIN10__cxxabiv1",
    "_Znw",
    "_Zna",
    "_Zdl",
    "_Zda",
    "_GLOBAL_OFFSET_TABLE_",
    "_DYNAMIC",
    "dyld_stub_binder",
];

/// Is `key` an Itanium-mangled name in namespace `std` (`_ZSt…`, `_ZNSt…`, `_ZNKSt…`, the
/// abbreviations `Sa Sb Ss Si So Sd` for allocator, basic_string, string, istream,
/// ostream, iostream, and the vtable, typeinfo and VTT of such a name)?
fn is_cxx_std(key: &str) -> bool {
    let Some(mut rest) = key.strip_prefix("_Z") else {
        return false;
    };
    // Special names: _ZTV (vtable), _ZTI (typeinfo), _ZTS (typeinfo name), _ZTT (VTT).
    if let Some(r) = rest.strip_prefix('T') {
        match r.as_bytes().first() {
            Some(b'V' | b'I' | b'S' | b'T') => rest = &r[1..],
            _ => return false,
        }
    }
    let rest = rest.strip_prefix('N').unwrap_or(rest);
    let rest = rest.trim_start_matches(['K', 'V', 'r']);
    let b = rest.as_bytes();
    b.len() >= 2 && b[0] == b'S' && b"tabsiod".contains(&b[1])
}

/// Is `key` provided by the system (libc, libm, C++ standard library, compiler runtime)
/// rather than by the model runtime? True for a list of libc and libm functions, names
/// starting with `__`, `_Unwind_`, `pthread_` or `_ITM_`, C++ ABI type info, `operator
/// new` / `delete`, and Itanium-mangled names in namespace `std`.
pub fn is_system_symbol(key: &str) -> bool {
    LIBC_LIBM.contains(&key)
        || SYSTEM_PREFIXES.iter().any(|p| key.starts_with(p))
        || is_cxx_std(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn system_symbols() {
        for s in [
            "memcpy",
            "expf",
            "__stack_chk_fail",
            "__aeabi_memcpy",
            "__truncsfhf2",
            "_Unwind_Resume",
            "_ZNSt6thread6_StateD2Ev",
            "_ZNKSt5ctypeIcE8do_widenEc",
            "_ZSt9terminatev",
            "_ZNSo5flushEv",
            "_ZNSdD2Ev",
            "_ZTVSt9exception",
            "_ZTTNSt7__cxx1118basic_stringstreamIcSt11char_traitsIcESaIcEEE",
            "_ZTISt9exception",
            "_Znwm",
            "_ZdlPvm",
            "_ITM_registerTMCloneTable",
        ] {
            assert!(is_system_symbol(s), "{s}");
        }
        for s in [
            "TVMFFIFunctionCall",
            "_ZN3tvm3ffi6StringC1Ev",
            "_ZNK3tvm3ffi3Any4typeEv",
            "vendor_blas_sgemm",
            "_ZTVN3tvm3ffi6ObjectE",
            "_Z3foov",
            "_ZN5SomeNS1fEv",
        ] {
            assert!(!is_system_symbol(s), "{s}");
        }
    }
}
