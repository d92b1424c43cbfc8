//! Profile checks on real objects built here with the system C compiler: the tvm-ffi set,
//! the legacy set, a mix, none; static archives (`ar rcs`) and tars of several objects;
//! a shared library holding legacy context slots; Mach-O objects; user TOML profiles.

mod common;

use alc_abi::{
    builtin_profiles, check, find_profile, inspect, inspect_bytes, load_profiles, report_path,
    save_report, AbiError, ArtifactKind, BinaryFormat, FindingCode, Limits, ObjectType, Profile,
    Report, Severity, Verdict,
};
use common::*;
use std::path::Path;

fn profile(name: &str) -> Profile {
    builtin_profiles()
        .into_iter()
        .find(|p| p.name == name)
        .unwrap()
}

fn codes(r: &Report) -> Vec<FindingCode> {
    r.findings.iter().map(|f| f.code).collect()
}

fn object(dir: &Path, name: &str, src: &str) -> alc_abi::Artifact {
    let p = cc_object(dir, name, src);
    inspect(&p, &Limits::default()).unwrap()
}

#[test]
fn ffi_object_passes_tvm_ffi_and_fails_legacy() {
    let dir = tempfile::tempdir().unwrap();
    let a = object(dir.path(), "lib0.o", FFI_LIB0);
    assert_eq!(a.kind, ArtifactKind::Object);
    assert_eq!(a.members.len(), 1);
    let m = &a.members[0];
    assert_eq!(m.name, "lib0.o");
    assert_eq!(m.format, BinaryFormat::Elf);
    assert_eq!(m.kind, ObjectType::Relocatable);
    for s in [
        "TVMFFIFunctionCall",
        "TVMFFIErrorSetRaisedFromCStr",
        "TVMBackendAllocWorkspace",
        "devc_helper",
        "memcpy",
    ] {
        assert!(
            m.undefined.iter().any(|u| u == s),
            "{s} in {:?}",
            m.undefined
        );
    }
    assert_eq!(m.exported, vec!["model_kernel".to_string()]);

    let ok = check(&a, &profile("tvm-ffi"), None);
    assert_eq!(ok.verdict, Verdict::Ok, "{:#?}", ok.findings);
    assert!(ok.message.is_none() && ok.fix.is_none());
    assert!(ok.findings.is_empty(), "{:#?}", ok.findings);

    let bad = check(&a, &profile("tvm-legacy"), None);
    assert_eq!(bad.verdict, Verdict::Failed);
    assert_eq!(
        bad.message.as_deref(),
        Some("Model uses new FFI API (TVMFFIFunctionCall). Expected old TVM API (TVMFuncCall)")
    );
    assert!(bad
        .fix
        .as_deref()
        .unwrap()
        .contains("before the switch to tvm-ffi"));
    let f = &bad.findings[0];
    assert_eq!(f.code, FindingCode::ForbiddenSymbol);
    assert_eq!(f.member.as_deref(), Some("lib0.o"));
    assert_eq!(
        f.symbols,
        vec!["TVMFFIFunctionCall", "TVMFFIErrorSetRaisedFromCStr"]
    );
}

#[test]
fn legacy_object_fails_tvm_ffi_with_the_exact_message() {
    let dir = tempfile::tempdir().unwrap();
    let a = object(dir.path(), "lib0.o", LEGACY_LIB0);
    let r = check(&a, &profile("tvm-ffi"), None);
    assert_eq!(r.verdict, Verdict::Failed);
    assert_eq!(
        r.message.as_deref(),
        Some("Model uses old TVM API (TVMFuncCall). Expected new FFI API (TVMFFIFunctionCall)")
    );
    let fix = r.fix.as_deref().unwrap();
    assert!(fix.contains("tvm-ffi") && fix.contains("MLC-LLM"), "{fix}");
    assert_eq!(codes(&r), vec![FindingCode::ForbiddenSymbol]);
    // Profile order: the call, the error setter, the environment lookup.
    assert_eq!(
        r.findings[0].symbols,
        vec![
            "TVMFuncCall",
            "TVMAPISetLastError",
            "TVMBackendGetFuncFromEnv"
        ]
    );
    assert_eq!(
        r.findings[0].message,
        "lib0.o references the old TVM API: TVMFuncCall, TVMAPISetLastError, TVMBackendGetFuncFromEnv"
    );

    let ok = check(&a, &profile("tvm-legacy"), None);
    assert_eq!(ok.verdict, Verdict::Ok, "{:#?}", ok.findings);
}

#[test]
fn an_object_using_both_apis_fails_both_profiles() {
    let dir = tempfile::tempdir().unwrap();
    let a = object(dir.path(), "mixed.o", MIXED);
    let ffi = check(&a, &profile("tvm-ffi"), None);
    assert_eq!(ffi.verdict, Verdict::Failed);
    assert_eq!(
        ffi.message.as_deref(),
        Some("Model uses old TVM API (TVMAPISetLastError). Expected new FFI API (TVMFFIErrorSetRaisedFromCStr)")
    );
    assert_eq!(
        codes(&ffi),
        vec![FindingCode::ForbiddenSymbol, FindingCode::MixedApi]
    );
    let legacy = check(&a, &profile("tvm-legacy"), None);
    assert_eq!(legacy.verdict, Verdict::Failed);
    assert_eq!(
        legacy.message.as_deref(),
        Some("Model uses new FFI API (TVMFFIFunctionCall). Expected old TVM API (TVMFuncCall)")
    );
}

#[test]
fn an_object_without_runtime_calls_passes_with_a_note() {
    let dir = tempfile::tempdir().unwrap();
    let a = object(dir.path(), "plain.o", PLAIN);
    for name in ["tvm-ffi", "tvm-legacy"] {
        let r = check(&a, &profile(name), None);
        assert_eq!(r.verdict, Verdict::Ok, "{name}");
        assert_eq!(codes(&r), vec![FindingCode::NoRuntimeApi], "{name}");
        assert_eq!(r.findings[0].severity, Severity::Info);
    }
}

#[test]
fn runtime_api_without_any_expected_symbol_fails() {
    let dir = tempfile::tempdir().unwrap();
    let a = object(dir.path(), "ws.o", WORKSPACE_ONLY);
    let r = check(&a, &profile("tvm-ffi"), None);
    assert_eq!(r.verdict, Verdict::Failed);
    assert_eq!(codes(&r), vec![FindingCode::NoExpectedSymbol]);
    assert_eq!(
        r.findings[0].symbols,
        vec!["TVMBackendAllocWorkspace", "TVMBackendFreeWorkspace"]
    );
    assert!(
        r.message
            .as_deref()
            .unwrap()
            .starts_with("Model uses the runtime API (TVMBackendAllocWorkspace, TVMBackendFreeWorkspace) but none of the new FFI API (TVMFFIFunctionCall"),
        "{:?}",
        r.message
    );
}

#[test]
fn static_archive_names_the_member_of_every_symbol() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let lib0 = cc_object(d, "lib0.o", LEGACY_LIB0);
    let devc = cc_object(d, "devc.o", FFI_DEVC);
    let plain = cc_object(d, "plain.o", PLAIN);
    let readme = d.join("README");
    std::fs::write(&readme, "not an object\n").unwrap();
    let a_path = ar(d, "libmodel.a", &[&lib0, &devc, &plain, &readme]);
    let a = inspect(&a_path, &Limits::default()).unwrap();
    assert_eq!(a.kind, ArtifactKind::StaticArchive);
    let names: Vec<&str> = a.members.iter().map(|m| m.name.as_str()).collect();
    assert_eq!(names, vec!["lib0.o", "devc.o", "plain.o"]);
    assert_eq!(a.notes.len(), 1);
    assert_eq!(a.notes[0].code, FindingCode::SkippedMember);
    assert_eq!(a.notes[0].member.as_deref(), Some("README"));
    assert!(a.members[1]
        .undefined
        .contains(&"TVMFFIEnvModRegisterSystemLibSymbol".to_string()));
    assert!(a.members[1].exported.contains(&"devc_helper".to_string()));

    let r = check(&a, &profile("tvm-ffi"), None);
    assert_eq!(r.verdict, Verdict::Failed);
    let forbidden: Vec<_> = r
        .findings
        .iter()
        .filter(|f| f.code == FindingCode::ForbiddenSymbol)
        .collect();
    assert_eq!(forbidden.len(), 1);
    assert_eq!(forbidden[0].member.as_deref(), Some("lib0.o"));
    let mixed = r
        .findings
        .iter()
        .find(|f| f.code == FindingCode::MixedApi)
        .expect("mixed-api finding");
    assert!(
        mixed.message.contains("old TVM API (lib0.o)")
            && mixed.message.contains("new FFI API (devc.o)"),
        "{}",
        mixed.message
    );
    assert_eq!(
        r.message.as_deref(),
        Some("Model uses old TVM API (TVMFuncCall). Expected new FFI API (TVMFFIFunctionCall)")
    );

    // An all-tvm-ffi archive passes; devc.o alone uses only one FFI function, and the
    // expected-API rule is judged over the whole archive.
    let lib0_ffi = cc_object(d, "lib0.o", FFI_LIB0);
    std::fs::remove_file(&a_path).unwrap();
    let a_path = ar(d, "libmodel.a", &[&lib0_ffi, &devc]);
    let a = inspect(&a_path, &Limits::default()).unwrap();
    let r = check(&a, &profile("tvm-ffi"), None);
    assert_eq!(r.verdict, Verdict::Ok, "{:#?}", r.findings);
}

#[test]
fn tar_of_objects_like_model_tar_and_its_saved_report() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let lib0 = std::fs::read(cc_object(d, "lib0.o", FFI_LIB0)).unwrap();
    let devc = std::fs::read(cc_object(d, "devc.o", FFI_DEVC)).unwrap();
    std::fs::remove_file(d.join("lib0.o")).unwrap();
    std::fs::remove_file(d.join("devc.o")).unwrap();
    let tar = tar_of(&[("lib0.o", &lib0), ("devc.o", &devc), ("mod.json", b"{}")]);
    let tar_path = d.join("model.tar");
    std::fs::write(&tar_path, &tar).unwrap();

    let a = inspect(&tar_path, &Limits::default()).unwrap();
    assert_eq!(a.kind, ArtifactKind::Tar);
    assert_eq!(a.path, tar_path.display().to_string());
    let names: Vec<&str> = a.members.iter().map(|m| m.name.as_str()).collect();
    assert_eq!(names, vec!["lib0.o", "devc.o"]);
    assert_eq!(a.notes.len(), 1, "{:#?}", a.notes);
    assert_eq!(a.notes[0].severity, Severity::Info);

    let r = check(&a, &profile("tvm-ffi"), None);
    assert_eq!(r.verdict, Verdict::Ok, "{:#?}", r.findings);
    assert_eq!(r.schema, "alc.abi/1");

    let saved = save_report(&r, &tar_path).unwrap();
    assert_eq!(saved, d.join("model.tar.abi.json"));
    assert_eq!(saved, report_path(&tar_path));
    assert_eq!(listing(d), vec!["model.tar", "model.tar.abi.json"]);
    let text = std::fs::read_to_string(&saved).unwrap();
    let back: Report = serde_json::from_str(&text).unwrap();
    assert_eq!(back, r);
    // Stable top-level layout.
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    let keys: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
    let mut sorted = keys.clone();
    sorted.sort();
    let mut expect = vec![
        "schema", "file", "kind", "profile", "verdict", "message", "fix", "findings", "runtime",
        "members",
    ];
    expect.sort();
    assert_eq!(sorted, expect);
    assert!(
        text.starts_with("{\n  \"schema\": \"alc.abi/1\",\n  \"file\": "),
        "{text}"
    );
    assert_eq!(v["kind"], "tar");
    assert_eq!(v["verdict"], "ok");
    assert_eq!(v["members"][0]["format"], "elf");
    assert_eq!(v["members"][0]["kind"], "relocatable");

    // Saving again replaces the report in place and leaves no temporary file.
    let failed = check(&a, &profile("tvm-legacy"), None);
    save_report(&failed, &tar_path).unwrap();
    assert_eq!(listing(d), vec!["model.tar", "model.tar.abi.json"]);
    let again: Report = serde_json::from_str(&std::fs::read_to_string(&saved).unwrap()).unwrap();
    assert_eq!(again.verdict, Verdict::Failed);
}

#[test]
fn shared_library_with_legacy_context_slots_fails_tvm_ffi() {
    // A TVM shared library built without dynamic lookup holds pointers named after the
    // runtime functions, which the runtime fills when it loads the library.
    let dir = tempfile::tempdir().unwrap();
    let so = cc_shared(
        dir.path(),
        "model.so",
        r#"
void* __TVMFuncCall = 0;
void* __TVMAPISetLastError = 0;
void* __TVMBackendGetFuncFromEnv = 0;
void* __tvm_module_ctx = 0;
int default_function(int x) { return x * 2; }
"#,
    );
    let a = inspect(&so, &Limits::default()).unwrap();
    assert_eq!(a.kind, ArtifactKind::SharedLibrary);
    assert_eq!(a.members[0].kind, ObjectType::SharedLibrary);
    assert!(a.members[0].exported.contains(&"__TVMFuncCall".to_string()));
    let r = check(&a, &profile("tvm-ffi"), None);
    assert_eq!(
        r.message.as_deref(),
        Some("Model uses old TVM API (TVMFuncCall). Expected new FFI API (TVMFFIFunctionCall)")
    );
    assert_eq!(check(&a, &profile("tvm-legacy"), None).verdict, Verdict::Ok);
}

/// A small Mach-O relocatable object written with `object`'s writer (no Mach-O
/// toolchain exists on Linux test machines): undefined references and one definition.
fn macho_object(undefined: &[&str], defined: &str) -> Vec<u8> {
    use object::write::{Object as WObject, StandardSection, Symbol, SymbolSection};
    use object::{
        Architecture, BinaryFormat as WFormat, Endianness, SymbolFlags, SymbolKind, SymbolScope,
    };
    let mut obj = WObject::new(WFormat::MachO, Architecture::Aarch64, Endianness::Little);
    let text = obj.section_id(StandardSection::Text);
    let off = obj.append_section_data(text, &[0xc0, 0x03, 0x5f, 0xd6], 4);
    obj.add_symbol(Symbol {
        name: defined.as_bytes().to_vec(),
        value: off,
        size: 4,
        kind: SymbolKind::Text,
        scope: SymbolScope::Dynamic,
        weak: false,
        section: SymbolSection::Section(text),
        flags: SymbolFlags::None,
    });
    for u in undefined {
        obj.add_symbol(Symbol {
            name: u.as_bytes().to_vec(),
            value: 0,
            size: 0,
            kind: SymbolKind::Text,
            scope: SymbolScope::Dynamic,
            weak: false,
            section: SymbolSection::Undefined,
            flags: SymbolFlags::None,
        });
    }
    obj.write().unwrap()
}

#[test]
fn mach_o_objects_compare_without_the_leading_underscore() {
    let legacy = macho_object(&["TVMFuncCall", "TVMAPISetLastError"], "legacy_kernel");
    let a = inspect_bytes("lib0.o", &legacy, &Limits::default()).unwrap();
    let m = &a.members[0];
    assert_eq!(m.format, BinaryFormat::MachO);
    assert_eq!(m.arch, "aarch64");
    // Raw names keep the underscore.
    assert_eq!(m.undefined, vec!["_TVMAPISetLastError", "_TVMFuncCall"]);
    assert_eq!(m.exported, vec!["_legacy_kernel"]);
    let r = check(&a, &profile("tvm-ffi"), None);
    assert_eq!(
        r.message.as_deref(),
        Some("Model uses old TVM API (TVMFuncCall). Expected new FFI API (TVMFFIFunctionCall)")
    );
    assert_eq!(
        r.findings[0].symbols,
        vec!["TVMFuncCall", "TVMAPISetLastError"]
    );

    let ffi = macho_object(
        &["TVMFFIFunctionCall", "TVMFFIEnvModRegisterSystemLibSymbol"],
        "ffi_kernel",
    );
    let a = inspect_bytes("lib0.o", &ffi, &Limits::default()).unwrap();
    assert_eq!(check(&a, &profile("tvm-ffi"), None).verdict, Verdict::Ok);
    assert_eq!(
        check(&a, &profile("tvm-legacy"), None).verdict,
        Verdict::Failed
    );

    // The same objects in a Mach-O universal binary (header written here: one arm64
    // slice at offset 4096) and in a tar.
    let mut fat = Vec::new();
    fat.extend_from_slice(&0xcafe_babe_u32.to_be_bytes());
    fat.extend_from_slice(&1u32.to_be_bytes());
    fat.extend_from_slice(&0x0100_000c_u32.to_be_bytes()); // CPU_TYPE_ARM64
    fat.extend_from_slice(&0u32.to_be_bytes());
    fat.extend_from_slice(&4096u32.to_be_bytes());
    fat.extend_from_slice(&(legacy.len() as u32).to_be_bytes());
    fat.extend_from_slice(&12u32.to_be_bytes());
    fat.resize(4096, 0);
    fat.extend_from_slice(&legacy);
    let a = inspect_bytes("libmodel", &fat, &Limits::default()).unwrap();
    assert_eq!(a.kind, ArtifactKind::Universal);
    assert_eq!(a.members[0].name, "aarch64");
    assert_eq!(
        check(&a, &profile("tvm-ffi"), None).verdict,
        Verdict::Failed
    );

    let tar = tar_of(&[("lib0.o", &ffi)]);
    let a = inspect_bytes("model.tar", &tar, &Limits::default()).unwrap();
    assert_eq!(a.members[0].format, BinaryFormat::MachO);
    assert_eq!(check(&a, &profile("tvm-ffi"), None).verdict, Verdict::Ok);
}

#[test]
fn user_profiles_from_toml() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let toml_path = d.join("profiles.toml");
    std::fs::write(
        &toml_path,
        r#"
[[profile]]
name = "myrt-2"
description = "MyRuntime 2 C ABI"
api_prefixes = ["MYRT", "OLDRT"]
expected = ["MYRT_*"]
expected_label = "MyRuntime 2 API"
forbidden = ["OLDRT_call", "OLDRT_*"]
forbidden_label = "MyRuntime 1 API"
toolchain = "rebuild with myrt-compiler 2"

[profile.replacements]
OLDRT_call = "MYRT_call"
"#,
    )
    .unwrap();
    let profiles = load_profiles(&toml_path).unwrap();
    assert_eq!(profiles.len(), 1);
    let p = find_profile("myrt-2", Some(&toml_path)).unwrap();
    assert_eq!(p, profiles[0]);
    // Built-ins are still there.
    assert_eq!(
        find_profile("tvm-ffi", Some(&toml_path)).unwrap().name,
        "tvm-ffi"
    );

    let a = object(
        d,
        "old.o",
        "extern int OLDRT_call(int); extern int OLDRT_free(int); int k(int x){return OLDRT_call(x)+OLDRT_free(x);}",
    );
    let r = check(&a, &p, None);
    assert_eq!(
        r.message.as_deref(),
        Some("Model uses MyRuntime 1 API (OLDRT_call). Expected MyRuntime 2 API (MYRT_call)")
    );
    assert_eq!(r.fix.as_deref(), Some("rebuild with myrt-compiler 2"));
    let a = object(
        d,
        "new.o",
        "extern int MYRT_call(int); int k(int x){return MYRT_call(x);}",
    );
    assert_eq!(check(&a, &p, None).verdict, Verdict::Ok);

    // Errors name the file and the profile.
    let bad = |text: &str| -> String {
        std::fs::write(&toml_path, text).unwrap();
        let e = load_profiles(&toml_path).unwrap_err();
        assert!(matches!(e, AbiError::ProfileFile { .. }), "{e:?}");
        let msg = e.to_string();
        assert!(msg.contains("profiles.toml"), "{msg}");
        msg
    };
    assert!(
        bad("[[profile]]\nname = \"x\"\nexpected = [\"A\"]\nexpectd = []\n").contains("expectd")
    );
    assert!(bad("[[profile]]\nname = \"x\"\n").contains("profile 'x'"));
    assert!(bad("[[profile]]\nname = \"tvm-ffi\"\nexpected = [\"A\"]\n").contains("built-in"));
    assert!(bad("[[profile]]\nname = \"x\"\nexpected = [\"A*B\"]\n").contains("A*B"));
    assert!(bad("[[profile]]\nname = \"x\"\nexpected = [\"A\"]\n[[profile]]\nname = \"x\"\nexpected = [\"B\"]\n").contains("twice"));
    assert!(bad("[[profile]\nname = ").contains("profiles.toml"));
    assert!(bad("").contains("no profile"));

    let e = find_profile("nope", None).unwrap_err();
    assert_eq!(
        e.to_string(),
        "unknown ABI profile 'nope'; available: tvm-ffi, tvm-legacy"
    );
    let e = load_profiles(&d.join("missing.toml")).unwrap_err();
    assert!(e.to_string().contains("missing.toml"), "{e}");
}
