//! Bad input: truncated and garbage objects, empty files, tar bombs (many members, a huge
//! declared size), links and `..` / absolute paths in tars, truncated tars, broken
//! archives. Each gives a one-line error naming the file (and member) or a finding,
//! never a panic, and nothing is written.

mod common;

use alc_abi::{
    builtin_profiles, check, inspect, inspect_bytes, AbiError, FindingCode, Limits, Severity,
    Verdict,
};
use common::*;

fn ffi_profile() -> alc_abi::Profile {
    builtin_profiles().into_iter().next().unwrap()
}

fn one_line(e: &AbiError) -> String {
    let s = e.to_string();
    assert!(!s.contains('\n'), "{s}");
    s
}

#[test]
fn truncated_elf_is_an_error_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let obj = std::fs::read(cc_object(dir.path(), "lib0.o", FFI_LIB0)).unwrap();
    for cut in [4, 16, 63, 64, 200, obj.len() / 2, obj.len() - 1] {
        let path = dir.path().join("cut.o");
        std::fs::write(&path, &obj[..cut]).unwrap();
        let e = inspect(&path, &Limits::default()).unwrap_err();
        let msg = one_line(&e);
        assert!(
            matches!(e, AbiError::Malformed { format: "ELF", .. }),
            "cut at {cut}: {msg}"
        );
        assert!(msg.contains("cut.o: malformed ELF: "), "{msg}");
    }
    // Inside a tar, the message names the member too.
    let tar = tar_of(&[("lib0.o", &obj[..obj.len() / 2])]);
    let e = inspect_bytes("model.tar", &tar, &Limits::default()).unwrap_err();
    assert!(
        one_line(&e).starts_with("model.tar: member lib0.o: malformed ELF: "),
        "{e}"
    );
}

#[test]
fn garbage_empty_compressed_and_directories() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let garbage = d.join("model.so");
    std::fs::write(&garbage, b"<?xml version=\"1.0\"?><not-a-library/>").unwrap();
    let e = inspect(&garbage, &Limits::default()).unwrap_err();
    assert_eq!(
        one_line(&e),
        format!(
            "{}: not an ELF or Mach-O object, static archive, shared library or tar (first bytes: 3c 3f 78 6d 6c 20 76 65)",
            garbage.display()
        )
    );

    let empty = d.join("empty.o");
    std::fs::write(&empty, b"").unwrap();
    let e = inspect(&empty, &Limits::default()).unwrap_err();
    assert!(matches!(e, AbiError::Empty { .. }), "{e}");
    assert!(one_line(&e).contains("empty.o: empty file"));

    let gz = d.join("model.tar.gz");
    std::fs::write(&gz, [0x1f, 0x8b, 8, 0, 0, 0, 0, 0]).unwrap();
    let e = inspect(&gz, &Limits::default()).unwrap_err();
    assert!(one_line(&e).contains("gzip-compressed"), "{e}");

    let e = inspect(d, &Limits::default()).unwrap_err();
    assert!(matches!(e, AbiError::NotAFile { .. }), "{e}");
    let e = inspect(&d.join("absent.o"), &Limits::default()).unwrap_err();
    assert!(
        matches!(e, AbiError::Io { .. }) && one_line(&e).contains("absent.o"),
        "{e}"
    );

    // Over the input size limit: refused before reading.
    let small = Limits {
        max_file_bytes: 10,
        ..Limits::default()
    };
    let e = inspect(&garbage, &small).unwrap_err();
    assert!(matches!(e, AbiError::TooLarge { limit: 10, .. }), "{e}");

    // A garbage "Mach-O" and a garbage "universal binary".
    let e = inspect_bytes(
        "x.o",
        &[0xcf, 0xfa, 0xed, 0xfe, 1, 2, 3],
        &Limits::default(),
    )
    .unwrap_err();
    assert!(one_line(&e).starts_with("x.o: malformed Mach-O"), "{e}");
    let mut fat = vec![0xca, 0xfe, 0xba, 0xbe, 0, 0, 0, 1];
    fat.extend_from_slice(&[0u8; 20]);
    fat[16..20].copy_from_slice(&1_000_000u32.to_be_bytes());
    fat[20..24].copy_from_slice(&64u32.to_be_bytes());
    let e = inspect_bytes("fat", &fat, &Limits::default()).unwrap_err();
    assert!(
        one_line(&e).contains("malformed Mach-O universal binary"),
        "{e}"
    );
    assert!(listing(d).iter().all(|n| !n.ends_with(".abi.json")));
}

#[test]
fn broken_and_thin_archives() {
    let e = inspect_bytes(
        "libx.a",
        b"!<arch>\nlib0.o/         garbage",
        &Limits::default(),
    )
    .unwrap_err();
    assert!(
        one_line(&e).starts_with("libx.a: malformed static archive"),
        "{e}"
    );
    let e = inspect_bytes("libx.a", b"!<thin>\n", &Limits::default()).unwrap_err();
    assert!(
        one_line(&e).contains("thin archive is not supported"),
        "{e}"
    );
    // An archive with only non-objects has nothing to check.
    let dir = tempfile::tempdir().unwrap();
    let txt = dir.path().join("notes.txt");
    std::fs::write(&txt, "hello\n").unwrap();
    let a = ar(dir.path(), "libempty.a", &[&txt]);
    let e = inspect(&a, &Limits::default()).unwrap_err();
    assert!(
        matches!(e, AbiError::NoObjects { .. }) && one_line(&e).contains("notes.txt"),
        "{e}"
    );
}

#[test]
fn tar_bomb_of_many_members() {
    let mut tar = Vec::new();
    for i in 0..10_001 {
        raw_file(&mut tar, &format!("m{i}.o"), b"");
    }
    raw_end(&mut tar);
    let e = inspect_bytes("bomb.tar", &tar, &Limits::default()).unwrap_err();
    assert!(matches!(e, AbiError::LimitExceeded { .. }), "{e}");
    assert_eq!(
        one_line(&e),
        "bomb.tar: member m10000.o: more than 10000 members (the limit; a tar or archive bomb?)"
    );
    // Under the limit, the empty members are skipped with warnings, and nothing is left.
    let mut tar = Vec::new();
    for i in 0..3 {
        raw_file(&mut tar, &format!("m{i}.o"), b"");
    }
    raw_end(&mut tar);
    let e = inspect_bytes("small.tar", &tar, &Limits::default()).unwrap_err();
    assert!(matches!(e, AbiError::NoObjects { .. }), "{e}");
}

#[test]
fn tar_bomb_of_a_huge_declared_size() {
    // One header declaring 5 GiB, with no data behind it: refused on the header.
    let mut tar = Vec::new();
    tar.extend_from_slice(&raw_header("lib0.o", 5 << 30, b'0', ""));
    raw_end(&mut tar);
    let e = inspect_bytes("bomb.tar", &tar, &Limits::default()).unwrap_err();
    assert_eq!(
        one_line(&e),
        "bomb.tar: member lib0.o: declares 5368709120 bytes; the members add up to more than the limit of 1073741824 bytes (a tar bomb?)"
    );
    // Many members that add up: the total counts.
    let limits = Limits {
        max_member_bytes: 3000,
        ..Limits::default()
    };
    let mut tar = Vec::new();
    for i in 0..4 {
        raw_file(&mut tar, &format!("m{i}.bin"), &[7u8; 1000]);
    }
    raw_end(&mut tar);
    let e = inspect_bytes("sum.tar", &tar, &limits).unwrap_err();
    assert!(
        one_line(&e).starts_with("sum.tar: member m3.bin: declares 1000 bytes"),
        "{e}"
    );
}

#[test]
fn truncated_tar_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let obj = std::fs::read(cc_object(dir.path(), "lib0.o", FFI_LIB0)).unwrap();
    let tar = tar_of(&[("lib0.o", &obj)]);
    // Cut inside the member's data.
    let e =
        inspect_bytes("model.tar", &tar[..512 + obj.len() / 2], &Limits::default()).unwrap_err();
    let msg = one_line(&e);
    assert!(
        msg.starts_with("model.tar: member lib0.o: malformed tar: "),
        "{msg}"
    );
    // A header with a broken checksum.
    let mut bad = tar.clone();
    bad[0] = b'X';
    let e = inspect_bytes("model.tar", &bad, &Limits::default()).unwrap_err();
    assert!(one_line(&e).contains("model.tar"), "{e}");
}

#[test]
fn links_and_escaping_paths_in_a_tar_are_never_followed_or_read() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let lib0 = std::fs::read(cc_object(d, "lib0.o", FFI_LIB0)).unwrap();
    let legacy = std::fs::read(cc_object(d, "legacy.o", LEGACY_LIB0)).unwrap();
    std::fs::remove_file(d.join("lib0.o")).unwrap();
    std::fs::remove_file(d.join("legacy.o")).unwrap();
    let before = listing(d);

    // A harmless symlink: skipped with a warning; the check still passes.
    let mut tar = Vec::new();
    raw_file(&mut tar, "lib0.o", &lib0);
    tar.extend_from_slice(&raw_header("alias.o", 0, b'2', "lib0.o"));
    raw_end(&mut tar);
    let a = inspect_bytes("model.tar", &tar, &Limits::default()).unwrap();
    assert_eq!(a.members.len(), 1);
    assert_eq!(a.notes.len(), 1);
    assert_eq!(a.notes[0].code, FindingCode::SkippedMember);
    assert_eq!(a.notes[0].severity, Severity::Warning);
    assert_eq!(
        a.notes[0].message,
        "skipped alias.o: a symlink to lib0.o; links are not followed"
    );
    assert_eq!(check(&a, &ffi_profile(), None).verdict, Verdict::Ok);

    // A symlink out of the tree, a hard link to an absolute path, a `..` member holding
    // a legacy object, and an absolute one: errors, and their contents are not read.
    let mut tar = Vec::new();
    raw_file(&mut tar, "lib0.o", &lib0);
    tar.extend_from_slice(&raw_header("evil.o", 0, b'2', "../../etc/passwd"));
    tar.extend_from_slice(&raw_header("hard.o", 0, b'1', "/etc/shadow"));
    raw_file(&mut tar, "../escape.o", &legacy);
    raw_file(&mut tar, "/abs/evil2.o", &legacy);
    raw_end(&mut tar);
    let path = d.join("model.tar");
    std::fs::write(&path, &tar).unwrap();
    let a = inspect(&path, &Limits::default()).unwrap();
    let names: Vec<&str> = a.members.iter().map(|m| m.name.as_str()).collect();
    assert_eq!(names, vec!["lib0.o"]);
    let unsafe_members: Vec<&str> = a
        .notes
        .iter()
        .filter(|n| n.code == FindingCode::UnsafeMember && n.severity == Severity::Error)
        .map(|n| n.member.as_deref().unwrap())
        .collect();
    assert_eq!(
        unsafe_members,
        vec!["evil.o", "hard.o", "../escape.o", "/abs/evil2.o"]
    );
    let r = check(&a, &ffi_profile(), None);
    assert_eq!(r.verdict, Verdict::Failed);
    // The legacy objects were not read, so no forbidden-symbol finding.
    assert!(r
        .findings
        .iter()
        .all(|f| f.code != FindingCode::ForbiddenSymbol));
    assert_eq!(
        r.message.as_deref(),
        Some("evil.o is a symlink to ../../etc/passwd, outside the tar's directory; not followed (an extractor could write outside its directory)")
    );
    assert_eq!(
        r.fix.as_deref(),
        Some("repack the tar with plain relative member paths and no links")
    );
    // Nothing was written or extracted.
    let mut expect = before.clone();
    expect.push("model.tar".to_string());
    expect.sort();
    assert_eq!(listing(d), expect);
    assert!(!d.join("escape.o").exists() && !d.parent().unwrap().join("escape.o").exists());
}

#[test]
fn names_from_the_input_keep_errors_on_one_line() {
    // Regression (found by fuzz/fuzz_targets/abi_inspect.rs): the tar reader's message
    // quoted a member name holding a newline.
    let mut h = raw_header("lib\n0.o", 10, b'0', "");
    h[124..136].copy_from_slice(b"zzzzzzzzzzz\0");
    h[148..156].copy_from_slice(b"        ");
    let sum: u32 = h.iter().map(|&b| u32::from(b)).sum();
    h[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
    let mut tar = h.to_vec();
    raw_end(&mut tar);
    let e = inspect_bytes("model.tar", &tar, &Limits::default()).unwrap_err();
    let msg = one_line(&e);
    assert!(msg.starts_with("model.tar: malformed tar: "), "{msg}");

    // A symlink whose name and target hold newlines: the finding stays on one line.
    let dir = tempfile::tempdir().unwrap();
    let lib0 = std::fs::read(cc_object(dir.path(), "lib0.o", FFI_LIB0)).unwrap();
    let mut tar = Vec::new();
    raw_file(&mut tar, "lib0.o", &lib0);
    tar.extend_from_slice(&raw_header("a\nb.o", 0, b'2', "c\nd.o"));
    raw_end(&mut tar);
    let a = inspect_bytes("model.tar", &tar, &Limits::default()).unwrap();
    assert_eq!(a.notes[0].member.as_deref(), Some("a\\nb.o"));
    assert_eq!(
        a.notes[0].message,
        "skipped a\\nb.o: a symlink to c\\nd.o; links are not followed"
    );
}

/// A deterministic xorshift generator for the mutation loop.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

#[test]
fn mutated_inputs_never_panic() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let lib0 = cc_object(d, "lib0.o", FFI_LIB0);
    let devc = cc_object(d, "devc.o", FFI_DEVC);
    let so = cc_shared(d, "librt.so", "int TVMFFIFunctionCall(void){return 0;}");
    let a = ar(d, "libm.a", &[&lib0, &devc]);
    let lib0_b = std::fs::read(&lib0).unwrap();
    let seeds = vec![
        lib0_b.clone(),
        std::fs::read(&so).unwrap(),
        std::fs::read(&a).unwrap(),
        tar_of(&[("lib0.o", &lib0_b)]),
    ];
    let limits = Limits::default();
    let profile = ffi_profile();
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut errors = 0;
    for seed in &seeds {
        for cut in (0..seed.len()).step_by(97) {
            if inspect_bytes("cut", &seed[..cut], &limits).is_err() {
                errors += 1;
            }
        }
        for _ in 0..300 {
            let mut b = seed.clone();
            for _ in 0..(1 + rng.next() % 8) {
                let i = (rng.next() as usize) % b.len();
                b[i] = rng.next() as u8;
            }
            if let Ok(art) = inspect_bytes("mutant", &b, &limits) {
                let _ = check(&art, &profile, Some(&art));
            } else {
                errors += 1;
            }
        }
    }
    // The loop must have exercised the error paths.
    assert!(errors > 100, "{errors}");
}
