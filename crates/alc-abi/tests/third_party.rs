//! Real third-party libraries: the tvm-ffi runtime (`libtvm_ffi.so`) and a library built
//! against it (`libtvm_ffi_testing.so`), both shipped in the `apache-tvm-ffi` wheel
//! (`python3 -m pip install apache-tvm-ffi==0.1.15.post2`, as scripts/test.sh does).
//! Without the wheel the tests print why and pass without checking. `ALC_TVM_FFI_LIB_DIR`
//! may name the wheel's `tvm_ffi/lib` directory instead of asking python3.

use alc_abi::{
    builtin_profiles, check, inspect, ArtifactKind, FindingCode, Limits, Profile, Verdict,
};
use std::path::PathBuf;
use std::process::Command;

fn profile(name: &str) -> Profile {
    builtin_profiles()
        .into_iter()
        .find(|p| p.name == name)
        .unwrap()
}

/// The wheel's `tvm_ffi/lib` directory, found without importing the package.
fn tvm_ffi_lib_dir() -> Option<PathBuf> {
    if let Some(d) = std::env::var_os("ALC_TVM_FFI_LIB_DIR") {
        return Some(PathBuf::from(d));
    }
    let out = Command::new("python3")
        .args([
            "-c",
            "import importlib.util, os; s = importlib.util.find_spec('tvm_ffi'); \
             print(os.path.join(os.path.dirname(s.origin), 'lib') if s and s.origin else '')",
        ])
        .output()
        .ok()?;
    let dir = String::from_utf8_lossy(&out.stdout).trim().to_string();
    (out.status.success() && !dir.is_empty()).then(|| PathBuf::from(dir))
}

/// `(libtvm_ffi.so, libtvm_ffi_testing.so)`, or `None` after saying why the test skips.
fn wheel_libs(test: &str) -> Option<(PathBuf, PathBuf)> {
    let Some(dir) = tvm_ffi_lib_dir() else {
        eprintln!(
            "SKIP {test}: the apache-tvm-ffi wheel is not installed \
             (python3 -m pip install apache-tvm-ffi==0.1.15.post2)"
        );
        return None;
    };
    let rt = dir.join("libtvm_ffi.so");
    let testing = dir.join("libtvm_ffi_testing.so");
    if !rt.is_file() || !testing.is_file() {
        eprintln!(
            "SKIP {test}: {} lacks libtvm_ffi.so or libtvm_ffi_testing.so",
            dir.display()
        );
        return None;
    }
    Some((rt, testing))
}

#[test]
fn a_library_built_on_tvm_ffi_passes_against_the_real_runtime() {
    let Some((rt_path, testing_path)) = wheel_libs("a_library_built_on_tvm_ffi_passes") else {
        return;
    };
    let limits = Limits::default();
    let rt = inspect(&rt_path, &limits).unwrap();
    assert_eq!(rt.kind, ArtifactKind::SharedLibrary);
    let exported = &rt.members[0].exported;
    for s in [
        "TVMFFIFunctionCall",
        "TVMFFIFunctionGetGlobal",
        "TVMFFIErrorSetRaisedFromCStr",
        "TVMFFIEnvModRegisterSystemLibSymbol",
    ] {
        assert!(exported.iter().any(|e| e == s), "{s} not exported");
    }
    let model = inspect(&testing_path, &limits).unwrap();
    let undefined = &model.members[0].undefined;
    assert!(undefined.iter().any(|u| u == "TVMFFIFunctionGetGlobal"));

    let r = check(&model, &profile("tvm-ffi"), Some(&rt));
    assert_eq!(r.verdict, Verdict::Ok, "{:#?}", r.findings);
    let rc = r.runtime.unwrap();
    // The dynamic linker resolves all of them, so every runtime symbol must be found
    // and nothing may be left over.
    assert!(rc.missing.is_empty(), "{:#?}", rc.missing);
    assert!(rc.provided >= 10, "{rc:?}");
    assert_eq!(rc.needed, rc.provided + rc.system);
}

#[test]
fn the_real_tvm_ffi_libraries_fail_the_legacy_profile() {
    let Some((rt_path, testing_path)) = wheel_libs("the_real_tvm_ffi_libraries_fail_legacy") else {
        return;
    };
    let limits = Limits::default();
    let legacy = profile("tvm-legacy");
    let model = inspect(&testing_path, &limits).unwrap();
    let r = check(&model, &legacy, None);
    assert_eq!(r.verdict, Verdict::Failed);
    let msg = r.message.as_deref().unwrap();
    assert!(msg.starts_with("Model uses new FFI API (TVMFFI"), "{msg}");
    assert!(msg.contains(". Expected old TVM API (TVM"), "{msg}");

    // The runtime itself provides the new API and none of the old one.
    let rt = inspect(&rt_path, &limits).unwrap();
    let r = check(&rt, &legacy, None);
    assert_eq!(r.verdict, Verdict::Failed);
    assert_eq!(
        r.message.as_deref(),
        Some(
            "Library provides new FFI API (TVMFFIFunctionCall). Expected old TVM API (TVMFuncCall)"
        )
    );
    assert!(r
        .findings
        .iter()
        .any(|f| f.code == FindingCode::ForbiddenExport));
    assert_eq!(check(&rt, &profile("tvm-ffi"), None).verdict, Verdict::Ok);
}
