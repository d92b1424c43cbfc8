//! ABI profiles: which runtime symbols a model library may and may not use.
//!
//! # Where the built-in lists come from
//!
//! - `tvm-ffi`, the new ABI: the functions of apache/tvm-ffi's
//!   `include/tvm/ffi/c_api.h` (`TVMFFIFunctionCall`, `TVMFFIFunctionGetGlobal`,
//!   `TVMFFIFunctionSetGlobal`, `TVMFFIFunctionCreate`, `TVMFFIErrorSetRaised`,
//!   `TVMFFIErrorSetRaisedFromCStr`, `TVMFFIErrorMoveFromRaised`, `TVMFFIObjectIncRef`,
//!   `TVMFFIObjectDecRef`, ...) and `include/tvm/ffi/extra/c_env_api.h`
//!   (`TVMFFIEnvModLookupFromImports`, `TVMFFIEnvModRegisterContextSymbol`,
//!   `TVMFFIEnvModRegisterSystemLibSymbol`, `TVMFFIEnvRegisterCAPI`; earlier tvm-ffi
//!   releases named the first three `TVMFFIEnvLookupFromImports`,
//!   `TVMFFIEnvRegisterContextSymbol` and `TVMFFIEnvRegisterSystemLibSymbol`, which the
//!   `TVMFFI*` prefix also covers). Model objects built by MLC-LLM on tvm-ffi reference
//!   `TVMFFIFunctionCall`, `TVMFFIErrorSetRaisedFromCStr` and
//!   `TVMFFIEnvModRegisterSystemLibSymbol` (linker errors quoted in mlc-ai/mlc-llm
//!   issues #3284, July 2025, and #3435).
//! - `tvm-legacy`, the old ABI: apache/tvm's `include/tvm/runtime/c_runtime_api.h`
//!   (`TVMFuncCall`, `TVMAPISetLastError`, `TVMGetLastError`, `TVMFuncGetGlobal`,
//!   `TVMFuncRegisterGlobal`, `TVMFuncCreateFromCFunc`, `TVMFuncFree`,
//!   `TVMFuncListGlobalNames`, `TVMFuncRemoveGlobal`, `TVMCFuncSetReturn`,
//!   `TVMCbArgToReturn`, `TVMModLoadFromFile`, `TVMModImport`, `TVMModGetFunction`,
//!   `TVMModFree`, `TVMObjectRetain`, `TVMObjectFree`, `TVMObjectGetTypeIndex`) and
//!   `include/tvm/runtime/c_backend_api.h` (`TVMBackendGetFuncFromEnv`,
//!   `TVMBackendRegisterSystemLibSymbol`, `TVMBackendRegisterEnvCAPI`). TVM's LLVM code
//!   generator (`src/target/llvm/codegen_cpu.cc`) emits calls to `TVMFuncCall`,
//!   `TVMBackendGetFuncFromEnv`, `TVMAPISetLastError` and
//!   `TVMBackendRegisterSystemLibSymbol`; in a shared library without dynamic lookup it
//!   emits them as context slots `__TVMFuncCall` etc. that the runtime fills by name.
//! - `TVMBackendAllocWorkspace`, `TVMBackendFreeWorkspace`, `TVMBackendParallelLaunch`
//!   and `TVMBackendParallelBarrier` belong to neither list: both generations of
//!   generated code call them.
//! - The `replacements` pair each old function with its closest tvm-ffi counterpart by
//!   role (call, error, global registry, module environment); they only pick the name
//!   shown in "Expected ... (NAME)".

use crate::error::AbiError;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// An ABI profile. User profiles come from a TOML file with the same fields (see
/// [`load_profiles`] and docs/ABI.md).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Profile {
    /// The name given to `--abi`.
    pub name: String,
    /// One line on what the profile is for.
    #[serde(default)]
    pub description: String,
    /// Prefixes of the runtime's symbols: an undefined symbol starting with one of them
    /// (or matching `expected` / `forbidden`) counts as a reference to the runtime's API,
    /// and `--runtime` must export it. Empty: only `expected` and `forbidden` count.
    #[serde(default)]
    pub api_prefixes: Vec<String>,
    /// Symbols of the API the runtime provides: exact names, or prefixes ending in `*`.
    /// A model that references the runtime's API but none of these fails.
    #[serde(default)]
    pub expected: Vec<String>,
    /// What to call the expected API in messages ("new FFI API").
    #[serde(default = "default_expected_label")]
    pub expected_label: String,
    /// Symbols a model must not use (exact names or prefixes ending in `*`).
    #[serde(default)]
    pub forbidden: Vec<String>,
    /// What to call the forbidden API in messages ("old TVM API").
    #[serde(default = "default_forbidden_label")]
    pub forbidden_label: String,
    /// Forbidden symbol → the expected symbol that replaces it, for messages.
    #[serde(default)]
    pub replacements: BTreeMap<String, String>,
    /// How to fix a failing model: which toolchain to rebuild it with.
    #[serde(default)]
    pub toolchain: String,
}

fn default_expected_label() -> String {
    "expected API".to_string()
}

fn default_forbidden_label() -> String {
    "forbidden API".to_string()
}

/// A symbol pattern: an exact name, or a prefix written with a trailing `*`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Pattern<'a> {
    Exact(&'a str),
    Prefix(&'a str),
}

impl<'a> Pattern<'a> {
    pub(crate) fn new(text: &'a str) -> Self {
        match text.strip_suffix('*') {
            Some(p) => Pattern::Prefix(p),
            None => Pattern::Exact(text),
        }
    }

    pub(crate) fn matches(&self, key: &str) -> bool {
        match self {
            Pattern::Exact(n) => key == *n,
            Pattern::Prefix(p) => key.starts_with(p),
        }
    }
}

/// Index of the first pattern in `list` that matches `key`.
pub(crate) fn match_index(list: &[String], key: &str) -> Option<usize> {
    list.iter().position(|p| Pattern::new(p).matches(key))
}

/// Legacy symbol → tvm-ffi counterpart, in the order messages prefer them.
const LEGACY_TO_FFI: &[(&str, &str)] = &[
    ("TVMFuncCall", "TVMFFIFunctionCall"),
    ("TVMAPISetLastError", "TVMFFIErrorSetRaisedFromCStr"),
    ("TVMBackendGetFuncFromEnv", "TVMFFIEnvModLookupFromImports"),
    (
        "TVMBackendRegisterSystemLibSymbol",
        "TVMFFIEnvModRegisterSystemLibSymbol",
    ),
    ("TVMFuncGetGlobal", "TVMFFIFunctionGetGlobal"),
    ("TVMGetLastError", "TVMFFIErrorMoveFromRaised"),
    ("TVMFuncRegisterGlobal", "TVMFFIFunctionSetGlobal"),
    ("TVMFuncCreateFromCFunc", "TVMFFIFunctionCreate"),
    ("TVMFuncFree", "TVMFFIObjectDecRef"),
    ("TVMObjectFree", "TVMFFIObjectDecRef"),
    ("TVMObjectRetain", "TVMFFIObjectIncRef"),
    ("TVMBackendRegisterEnvCAPI", "TVMFFIEnvRegisterCAPI"),
];

/// Legacy functions without a one-to-one tvm-ffi counterpart.
const LEGACY_OTHER: &[&str] = &[
    "TVMFuncListGlobalNames",
    "TVMFuncRemoveGlobal",
    "TVMCFuncSetReturn",
    "TVMCbArgToReturn",
    "TVMModLoadFromFile",
    "TVMModImport",
    "TVMModGetFunction",
    "TVMModFree",
    "TVMObjectGetTypeIndex",
];

/// tvm-ffi functions generated code and runtimes use most, in message order.
const FFI_CORE: &[&str] = &[
    "TVMFFIFunctionCall",
    "TVMFFIErrorSetRaisedFromCStr",
    "TVMFFIErrorSetRaisedFromCStrParts",
    "TVMFFIErrorSetRaised",
    "TVMFFIEnvModLookupFromImports",
    "TVMFFIEnvModRegisterSystemLibSymbol",
    "TVMFFIEnvModRegisterContextSymbol",
    "TVMFFIFunctionGetGlobal",
    "TVMFFIFunctionSetGlobal",
    "TVMFFIFunctionCreate",
    "TVMFFIErrorMoveFromRaised",
    "TVMFFIObjectIncRef",
    "TVMFFIObjectDecRef",
    "TVMFFIEnvRegisterCAPI",
];

/// Prefixes of TVM runtime symbols: the C API and the C++ `tvm::` namespace
/// (`_ZN3tvm`, `_ZNK3tvm`).
const TVM_API_PREFIXES: &[&str] = &["TVM", "_ZN3tvm", "_ZNK3tvm"];

fn strings(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

fn legacy_list() -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for (old, _) in LEGACY_TO_FFI {
        out.push(old.to_string());
    }
    out.extend(strings(LEGACY_OTHER));
    out
}

/// The built-in profiles: `tvm-ffi` and `tvm-legacy`. Sources of the symbol lists are in
/// this module's documentation.
pub fn builtin_profiles() -> Vec<Profile> {
    let mut ffi_expected = strings(FFI_CORE);
    ffi_expected.push("TVMFFI*".to_string());
    let ffi = Profile {
        name: "tvm-ffi".to_string(),
        description: "Apache TVM runtime with the tvm-ffi C ABI (TVMFFI* symbols, apache/tvm-ffi c_api.h and c_env_api.h), as MLC-LLM uses since mid-2025".to_string(),
        api_prefixes: strings(TVM_API_PREFIXES),
        expected: ffi_expected,
        expected_label: "new FFI API".to_string(),
        forbidden: legacy_list(),
        forbidden_label: "old TVM API".to_string(),
        replacements: LEGACY_TO_FFI
            .iter()
            .map(|(o, n)| (o.to_string(), n.to_string()))
            .collect(),
        toolchain: "rebuild the model library with an MLC-LLM / Apache TVM build whose runtime uses tvm-ffi (the TVMFFI* C ABI of apache/tvm-ffi; MLC-LLM builds from July 2025 on emit it, see mlc-ai/mlc-llm#3284), the same one the app's runtime was built from".to_string(),
    };
    let mut legacy_forbidden = strings(FFI_CORE);
    legacy_forbidden.push("TVMFFI*".to_string());
    let mut legacy_replacements = BTreeMap::new();
    for (old, new) in LEGACY_TO_FFI {
        // The first legacy function wins where two map to one tvm-ffi function.
        legacy_replacements
            .entry(new.to_string())
            .or_insert_with(|| old.to_string());
    }
    // tvm-ffi error setters without a legacy twin of their own.
    for new in ["TVMFFIErrorSetRaised", "TVMFFIErrorSetRaisedFromCStrParts"] {
        legacy_replacements
            .entry(new.to_string())
            .or_insert_with(|| "TVMAPISetLastError".to_string());
    }
    let legacy = Profile {
        name: "tvm-legacy".to_string(),
        description: "Apache TVM runtime with the legacy PackedFunc C API (TVMFuncCall, TVMAPISetLastError, TVMBackendGetFuncFromEnv; c_runtime_api.h and c_backend_api.h), before the switch to tvm-ffi".to_string(),
        api_prefixes: strings(TVM_API_PREFIXES),
        expected: legacy_list(),
        expected_label: "old TVM API".to_string(),
        forbidden: legacy_forbidden,
        forbidden_label: "new FFI API".to_string(),
        replacements: legacy_replacements,
        toolchain: "rebuild the model library with the MLC-LLM / Apache TVM version the app's runtime was built from (one from before the switch to tvm-ffi), or move the app to a tvm-ffi runtime and check with --abi tvm-ffi".to_string(),
    };
    vec![ffi, legacy]
}

/// Largest profile file read.
const MAX_PROFILE_FILE: u64 = 1 << 20;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ProfileFile {
    #[serde(default)]
    profile: Vec<Profile>,
}

/// Load user profiles from a TOML file: an array of `[[profile]]` tables with the fields
/// of [`Profile`] (`name` required; `expected` or `forbidden` must not both be empty;
/// patterns are names or prefixes with one trailing `*`). A name may not repeat or take
/// a built-in's name.
pub fn load_profiles(path: &Path) -> Result<Vec<Profile>, AbiError> {
    let err = |detail: String| AbiError::ProfileFile {
        path: path.to_path_buf(),
        detail,
    };
    let meta = std::fs::metadata(path).map_err(|e| AbiError::Io {
        path: path.to_path_buf(),
        source: e,
    })?;
    if meta.len() > MAX_PROFILE_FILE {
        return Err(err(format!(
            "{} bytes is over the {MAX_PROFILE_FILE}-byte limit for a profile file",
            meta.len()
        )));
    }
    let text = std::fs::read_to_string(path).map_err(|e| AbiError::Io {
        path: path.to_path_buf(),
        source: e,
    })?;
    let parsed: ProfileFile = toml::from_str(&text).map_err(|e| {
        err(e
            .to_string()
            .lines()
            .filter(|l| !l.trim().is_empty())
            .collect::<Vec<_>>()
            .join(" / "))
    })?;
    if parsed.profile.is_empty() {
        return Err(err(
            "defines no profile; add [[profile]] tables with a name and expected / forbidden symbols".to_string(),
        ));
    }
    let builtin: BTreeSet<String> = builtin_profiles().into_iter().map(|p| p.name).collect();
    let mut seen = BTreeSet::new();
    for p in &parsed.profile {
        validate(p).map_err(|d| err(format!("profile '{}': {d}", p.name)))?;
        if builtin.contains(&p.name) {
            return Err(err(format!(
                "profile '{}' has the name of a built-in profile; choose another name",
                p.name
            )));
        }
        if !seen.insert(p.name.clone()) {
            return Err(err(format!("profile '{}' is defined twice", p.name)));
        }
    }
    Ok(parsed.profile)
}

fn validate(p: &Profile) -> Result<(), String> {
    if p.name.is_empty()
        || !p
            .name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    {
        return Err("the name must be non-empty ASCII letters, digits, '-', '_' or '.'".into());
    }
    if p.expected.is_empty() && p.forbidden.is_empty() {
        return Err(
            "expected and forbidden are both empty; the profile would check nothing".into(),
        );
    }
    for (field, list) in [
        ("expected", &p.expected),
        ("forbidden", &p.forbidden),
        ("api_prefixes", &p.api_prefixes),
    ] {
        for s in list {
            let body = s.strip_suffix('*').unwrap_or(s);
            if body.is_empty() || body.contains('*') || s.chars().any(char::is_whitespace) {
                return Err(format!(
                    "{field} entry '{s}' must be a symbol name, or a non-empty prefix with one trailing '*'"
                ));
            }
        }
    }
    for (old, new) in &p.replacements {
        if old.is_empty() || new.is_empty() {
            return Err(format!("replacement '{old}' = '{new}' has an empty side"));
        }
    }
    Ok(())
}

/// The built-in profiles followed by those of `profiles_file`, if given.
pub fn all_profiles(profiles_file: Option<&Path>) -> Result<Vec<Profile>, AbiError> {
    let mut all = builtin_profiles();
    if let Some(path) = profiles_file {
        all.extend(load_profiles(path)?);
    }
    Ok(all)
}

/// The profile called `name`, among the built-ins and those of `profiles_file`.
pub fn find_profile(name: &str, profiles_file: Option<&Path>) -> Result<Profile, AbiError> {
    let all = all_profiles(profiles_file)?;
    let available = all
        .iter()
        .map(|p| p.name.as_str())
        .collect::<Vec<_>>()
        .join(", ");
    all.iter()
        .find(|p| p.name == name)
        .cloned()
        .ok_or_else(|| AbiError::UnknownProfile {
            name: name.to_string(),
            available,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtins_are_valid_and_mirror_each_other() {
        let b = builtin_profiles();
        assert_eq!(b.len(), 2);
        for p in &b {
            validate(p).unwrap();
        }
        let (ffi, legacy) = (&b[0], &b[1]);
        assert_eq!(ffi.forbidden, legacy.expected);
        assert_eq!(ffi.expected, legacy.forbidden);
        assert_eq!(ffi.replacements["TVMFuncCall"], "TVMFFIFunctionCall");
        assert_eq!(legacy.replacements["TVMFFIFunctionCall"], "TVMFuncCall");
        // Shared by both generations: in neither list.
        for s in ["TVMBackendAllocWorkspace", "TVMBackendParallelLaunch"] {
            assert!(match_index(&ffi.forbidden, s).is_none(), "{s}");
            assert!(match_index(&ffi.expected, s).is_none(), "{s}");
        }
        // The prefix covers tvm-ffi names not listed one by one.
        assert!(match_index(&ffi.expected, "TVMFFIEnvLookupFromImports").is_some());
    }

    #[test]
    fn patterns() {
        assert!(Pattern::new("TVMFFI*").matches("TVMFFIFunctionCall"));
        assert!(!Pattern::new("TVMFFI*").matches("TVMFuncCall"));
        assert!(Pattern::new("TVMFuncCall").matches("TVMFuncCall"));
        assert!(!Pattern::new("TVMFuncCall").matches("TVMFuncCallX"));
    }
}
