//! `--runtime`: a model's needs against the exports of a runtime shared library built
//! here with `cc -shared -fPIC`.

mod common;

use alc_abi::{
    builtin_profiles, check, inspect, ArtifactKind, FindingCode, Limits, Profile, SymbolClass,
    Verdict,
};
use common::*;

fn profile(name: &str) -> Profile {
    builtin_profiles()
        .into_iter()
        .find(|p| p.name == name)
        .unwrap()
}

/// A runtime exporting two of the FFI functions the model calls. It defines a third one
/// with hidden visibility (not exported) and imports `memcpy` itself.
const PARTIAL_RUNTIME: &str = r#"
typedef struct { int type_index; int pad; long long v; } Any;
extern void* memcpy(void*, const void*, unsigned long);
int TVMFFIFunctionCall(void* f, Any* a, int n, Any* r) { memcpy(r, a, (unsigned long)n * sizeof(Any)); return n; }
void TVMFFIErrorSetRaisedFromCStr(const char* k, const char* m) { (void)k; (void)m; }
__attribute__((visibility("hidden")))
int TVMFFIEnvModRegisterSystemLibSymbol(const char* n, void* s) { (void)n; (void)s; return 0; }
static int internal_helper(int x) { return x; }
int runtime_version(void) { return internal_helper(2); }
"#;

/// A runtime with everything the tvm-ffi model needs.
const FULL_RUNTIME: &str = r#"
typedef struct { int type_index; int pad; long long v; } Any;
int TVMFFIFunctionCall(void* f, Any* a, int n, Any* r) { (void)f; (void)a; (void)r; return n; }
void TVMFFIErrorSetRaisedFromCStr(const char* k, const char* m) { (void)k; (void)m; }
int TVMFFIEnvModRegisterSystemLibSymbol(const char* n, void* s) { (void)n; (void)s; return 0; }
static char ws[64];
void* TVMBackendAllocWorkspace(int dt, int id, unsigned long long n, int c, int b) {
  (void)dt; (void)id; (void)n; (void)c; (void)b; return ws;
}
"#;

/// A legacy runtime.
const LEGACY_RUNTIME: &str = r#"
typedef union { long long v_int64; void* v_handle; } TVMValue;
int TVMFuncCall(void* f, TVMValue* a, int* c, int n, TVMValue* r, int* rc) {
  (void)f; (void)a; (void)c; (void)r; (void)rc; return n;
}
void TVMAPISetLastError(const char* m) { (void)m; }
static char ws[64];
void* TVMBackendAllocWorkspace(int dt, int id, unsigned long long n, int c, int b) {
  (void)dt; (void)id; (void)n; (void)c; (void)b; return ws;
}
"#;

#[test]
fn missing_runtime_symbols_are_listed() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let lib0 = cc_object(d, "lib0.o", FFI_LIB0);
    let devc = cc_object(d, "devc.o", FFI_DEVC);
    let extra = cc_object(
        d,
        "extra.o",
        "extern int vendor_blas_sgemm(int); int extra_kernel(int n) { return vendor_blas_sgemm(n); }",
    );
    let model = ar(d, "libmodel.a", &[&lib0, &devc, &extra]);
    let rt_path = cc_shared(d, "libpartial_runtime.so", PARTIAL_RUNTIME);
    let rt = inspect(&rt_path, &Limits::default()).unwrap();
    assert_eq!(rt.kind, ArtifactKind::SharedLibrary);
    let exports = &rt.members[0].exported;
    assert!(exports.contains(&"TVMFFIFunctionCall".to_string()));
    assert!(exports.contains(&"runtime_version".to_string()));
    assert!(!exports.contains(&"TVMFFIEnvModRegisterSystemLibSymbol".to_string()));
    assert!(!exports.contains(&"internal_helper".to_string()));
    assert!(rt.members[0].undefined.contains(&"memcpy".to_string()));

    let a = inspect(&model, &Limits::default()).unwrap();
    let r = check(&a, &profile("tvm-ffi"), Some(&rt));
    assert_eq!(r.verdict, Verdict::Failed);
    let rc = r.runtime.as_ref().unwrap();
    assert_eq!(rc.runtime, rt_path.display().to_string());
    let missing: Vec<(&str, SymbolClass, Vec<String>)> = rc
        .missing
        .iter()
        .map(|m| (m.symbol.as_str(), m.class, m.members.clone()))
        .collect();
    assert_eq!(
        missing,
        vec![
            (
                "TVMBackendAllocWorkspace",
                SymbolClass::RuntimeApi,
                vec!["lib0.o".to_string()]
            ),
            (
                "TVMFFIEnvModRegisterSystemLibSymbol",
                SymbolClass::RuntimeApi,
                vec!["devc.o".to_string()]
            ),
            (
                "vendor_blas_sgemm",
                SymbolClass::Other,
                vec!["extra.o".to_string()]
            ),
        ]
    );
    // devc_helper comes from devc.o; memcpy and expf from the system (memcpy is also
    // what the runtime itself imports).
    assert_eq!(rc.provided, 2);
    assert!(rc.system >= 2, "{rc:?}");
    assert_eq!(
        rc.needed,
        rc.provided + rc.system + rc.missing.len(),
        "{rc:?}"
    );
    assert_eq!(
        r.message.as_deref(),
        Some("Runtime libpartial_runtime.so does not export 2 symbol(s) the model needs: TVMBackendAllocWorkspace, TVMFFIEnvModRegisterSystemLibSymbol")
    );
    assert!(r
        .fix
        .as_deref()
        .unwrap()
        .contains("same TVM / MLC-LLM version"));
    let err = r
        .findings
        .iter()
        .find(|f| f.code == FindingCode::MissingRuntimeSymbol)
        .unwrap();
    assert_eq!(
        err.symbols,
        vec![
            "TVMBackendAllocWorkspace",
            "TVMFFIEnvModRegisterSystemLibSymbol"
        ]
    );
    let warn = r
        .findings
        .iter()
        .find(|f| f.code == FindingCode::UnresolvedSymbol)
        .unwrap();
    assert_eq!(warn.symbols, vec!["vendor_blas_sgemm"]);
}

#[test]
fn a_complete_runtime_passes() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let lib0 = std::fs::read(cc_object(d, "lib0.o", FFI_LIB0)).unwrap();
    let devc = std::fs::read(cc_object(d, "devc.o", FFI_DEVC)).unwrap();
    let tar_path = d.join("model.tar");
    std::fs::write(&tar_path, tar_of(&[("lib0.o", &lib0), ("devc.o", &devc)])).unwrap();
    let rt = inspect(
        &cc_shared(d, "libtvm_runtime.so", FULL_RUNTIME),
        &Limits::default(),
    )
    .unwrap();
    let a = inspect(&tar_path, &Limits::default()).unwrap();
    let r = check(&a, &profile("tvm-ffi"), Some(&rt));
    assert_eq!(r.verdict, Verdict::Ok, "{:#?}", r.findings);
    let rc = r.runtime.unwrap();
    assert!(rc.missing.is_empty(), "{rc:?}");
    assert_eq!(rc.provided, 4);
}

#[test]
fn a_legacy_runtime_for_an_ffi_model_is_a_mismatch() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let a = inspect(&cc_object(d, "lib0.o", FFI_LIB0), &Limits::default()).unwrap();
    let rt = inspect(
        &cc_shared(d, "libtvm_runtime.so", LEGACY_RUNTIME),
        &Limits::default(),
    )
    .unwrap();
    let r = check(&a, &profile("tvm-ffi"), Some(&rt));
    assert_eq!(r.verdict, Verdict::Failed);
    let kinds: Vec<FindingCode> = r.findings.iter().map(|f| f.code).collect();
    assert_eq!(
        kinds,
        vec![
            FindingCode::MissingRuntimeSymbol,
            FindingCode::UnresolvedSymbol,
            FindingCode::RuntimeApiMismatch
        ]
    );
    // lib0.o alone: devc_helper would come from devc.o.
    assert_eq!(r.findings[1].symbols, vec!["devc_helper"]);
    assert_eq!(
        r.findings[2].message,
        "Runtime libtvm_runtime.so provides old TVM API (TVMFuncCall) but none of the new FFI API (TVMFFIFunctionCall)"
    );
    assert_eq!(
        r.findings[0].symbols,
        vec!["TVMFFIErrorSetRaisedFromCStr", "TVMFFIFunctionCall"]
    );

    // The same legacy runtime given as the file to check: it provides the old API.
    let r = check(&rt, &profile("tvm-ffi"), None);
    assert_eq!(
        r.message.as_deref(),
        Some(
            "Library provides old TVM API (TVMFuncCall). Expected new FFI API (TVMFFIFunctionCall)"
        )
    );
    assert_eq!(r.findings[0].code, FindingCode::ForbiddenExport);
}
