//! `alc verify` through the binary, on a real package (SmolLM2-135M compiled to
//! q8f16_1) and on copies of it damaged in the ways packages break in transit:
//! a flipped byte in a tensor, an edited metadata value, a wrong self-check
//! record, a newer format version, truncation; plus a plain GGUF file and
//! non-GGUF input. Exit codes: 0 ok, 1 a check failed, 2 unreadable.

mod common;

use alc_format::GgufFile;
use common::alc;
use serde_json::Value as Json;
use std::path::{Path, PathBuf};
use std::process::Command;

/// `alc verify --json FILE`: exit code and the report.
fn verify(home: &Path, file: &Path) -> (i32, Json) {
    let out = alc(home, &["verify", "--json", file.to_str().unwrap()]);
    let code = out.status.code().unwrap();
    let report = serde_json::from_slice(&out.stdout).unwrap_or(Json::Null);
    (code, report)
}

fn check<'a>(r: &'a Json, name: &str) -> &'a Json {
    r["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == name)
        .unwrap()
}

fn status(r: &Json, name: &str) -> String {
    check(r, name)["status"].as_str().unwrap().to_string()
}

/// All findings of a check as "what: problem; fix" lines.
fn findings(r: &Json, name: &str) -> String {
    check(r, name)["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            let s = |k: &str| f[k].as_str().unwrap().to_string();
            format!("{}: {}; fix: {}", s("what"), s("problem"), s("fix"))
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// A copy of `pkg` with `bytes` written at `at`.
fn damaged(pkg: &Path, dir: &Path, name: &str, at: u64, bytes: &[u8]) -> PathBuf {
    let mut data = std::fs::read(pkg).unwrap();
    data[at as usize..at as usize + bytes.len()].copy_from_slice(bytes);
    let p = dir.join(name);
    std::fs::write(&p, data).unwrap();
    p
}

#[test]
fn verify_real_package_and_damaged_copies() {
    let src = alc_testdata::models_dir().join("smollm2-135m-instruct-q4_1.gguf");
    if !src.is_file() {
        eprintln!("SKIP: {} missing (scripts/fetch-models.sh)", src.display());
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let home = tmp.path().join("home");
    let out = alc(
        &home,
        &[
            "compile",
            src.to_str().unwrap(),
            "--quant",
            "q8f16_1",
            "--out",
            tmp.path().to_str().unwrap(),
            "--name",
            "smol.alm",
            "--no-register",
        ],
    );
    assert!(out.status.success());
    let pkg = tmp.path().join("smol.alm");

    // Intact: every check passes, and the whole-file digest is recorded.
    let (code, r) = verify(&home, &pkg);
    assert_eq!(code, 0, "{r}");
    assert_eq!(r["passed"], true);
    assert_eq!(r["format_version"], 1);
    for c in ["digests", "structure", "compatibility", "self_check"] {
        assert_eq!(status(&r, c), "ok", "{c}: {r}");
    }
    assert!(check(&r, "digests")["summary"]
        .as_str()
        .unwrap()
        .starts_with("file sha256, 272 tensor digests"));
    // The text form says the same.
    let text = alc(&home, &["verify", pkg.to_str().unwrap()]);
    assert!(text.status.success());
    assert!(String::from_utf8_lossy(&text.stdout).contains(": ok (alc package, format 1, llama)"));

    let f = GgufFile::open(&pkg).unwrap();
    // 1. One byte of one tensor: that tensor's digest and the file's fail.
    let t = f.tensor("blk.7.ffn_down.weight").unwrap();
    let at = f.data_offset() + t.offset + 1000;
    let flipped = [f.bytes()[at as usize] ^ 0x10];
    let p = damaged(&pkg, tmp.path(), "tensor.alm", at, &flipped);
    let (code, r) = verify(&home, &p);
    assert_eq!(code, 1);
    assert_eq!(status(&r, "digests"), "failed");
    let fd = findings(&r, "digests");
    assert!(
        fd.contains("tensor blk.7.ffn_down.weight") && fd.contains("alc.sha256"),
        "{fd}"
    );
    assert_eq!(fd.lines().count(), 2, "{fd}");
    assert_eq!(status(&r, "structure"), "ok");

    // 2. A metadata value no tensor digest covers (the compile date): the file's
    // digest fails, alone.
    let at = f.value_offset("alc.compile_date").unwrap();
    let p = damaged(&pkg, tmp.path(), "meta.alm", at, b"1999");
    let (code, r) = verify(&home, &p);
    assert_eq!(code, 1);
    let fd = findings(&r, "digests");
    assert!(fd.starts_with("alc.sha256: the file's sha256 is"), "{fd}");
    assert_eq!(fd.lines().count(), 1, "{fd}");

    // 3. A self-check record that the model does not reproduce: the least likely
    // token of SmolLM2 is nats away from its top-1.
    let at = f.value_offset("alc.selfcheck.expected").unwrap();
    let p = damaged(
        &pkg,
        tmp.path(),
        "selfcheck.alm",
        at + 8,
        &7u32.to_le_bytes(),
    );
    let (code, r) = verify(&home, &p);
    assert_eq!(code, 1);
    assert_eq!(status(&r, "self_check"), "failed");
    let fs = findings(&r, "self_check");
    assert!(
        fs.contains("position 2: the reference now picks") && fs.contains("recorded 7"),
        "{fs}"
    );

    // 4. A newer format: compatibility fails with the fix; no self-check.
    let at = f.value_offset("alc.format_version").unwrap();
    let p = damaged(&pkg, tmp.path(), "newer.alm", at, &2u32.to_le_bytes());
    let (code, r) = verify(&home, &p);
    assert_eq!(code, 1);
    let fc = findings(&r, "compatibility");
    assert!(
        fc.contains("2 is newer than this alc reads") && fc.contains("upgrade alc"),
        "{fc}"
    );
    assert_eq!(status(&r, "self_check"), "skipped");

    // 5. Truncated inside the tensor data: unreadable, exit 2, one error line.
    let p = tmp.path().join("short.alm");
    let data = std::fs::read(&pkg).unwrap();
    std::fs::write(&p, &data[..data.len() / 2]).unwrap();
    let out = alc(&home, &["verify", p.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("short.alm") && err.contains("unreadable"),
        "{err}"
    );

    // 6. Several files: the worst exit code wins (1 over 0; 2 over 1).
    let good = pkg.to_str().unwrap();
    let bad = tmp.path().join("meta.alm");
    let out = alc(
        &home,
        &["verify", "--no-self-check", good, bad.to_str().unwrap()],
    );
    assert_eq!(out.status.code(), Some(1));
    let out = alc(
        &home,
        &[
            "verify",
            "--no-self-check",
            bad.to_str().unwrap(),
            p.to_str().unwrap(),
        ],
    );
    assert_eq!(out.status.code(), Some(2));

    // 7. Sealed: verify authenticates it in memory and checks the package inside;
    // run opens it the same way. A flipped ciphertext byte fails authentication
    // (exit 1); no key at all is exit 2.
    let sealed = tmp.path().join("smol.alm.ava3");
    let key = tmp.path().join("seal.key");
    let s = |p: &Path| p.to_str().unwrap().to_string();
    let out = alc(
        &home,
        &[
            "seal",
            &s(&pkg),
            "-o",
            &s(&sealed),
            "--new-key-file",
            &s(&key),
        ],
    );
    assert!(out.status.success());
    let with_key = |args: &[&str]| {
        let mut v: Vec<&str> = args.to_vec();
        let k = s(&key);
        v.extend(["--key-file", &k]);
        alc(&home, &v)
    };
    let out = with_key(&["verify", "--json", &s(&sealed)]);
    assert_eq!(out.status.code(), Some(0));
    let r: Json = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(status(&r, "digests"), "ok", "{r}");
    let out = with_key(&["run", &s(&sealed), "-p", "hi", "-n", "2", "--temp", "0"]);
    assert!(out.status.success());
    let mut data = std::fs::read(&sealed).unwrap();
    data[200_000] ^= 1;
    let bad_seal = tmp.path().join("bad.alm.ava3");
    std::fs::write(&bad_seal, data).unwrap();
    let out = with_key(&["verify", &s(&bad_seal)]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("failed authentication"));
    let out = Command::new(env!("CARGO_BIN_EXE_alc"))
        .args(["verify", &s(&sealed)])
        .env("ALC_HOME", &home)
        .env_remove("ALC_SEAL_KEY")
        .env_remove("ALC_SEAL_PASSPHRASE")
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // 8. The original GGUF: no manifest, so no digests; the rest holds.
    let (code, r) = verify(&home, &src);
    assert_eq!(code, 0, "{r}");
    assert_eq!(r["alc_package"], false);
    assert_eq!(status(&r, "digests"), "skipped");
    assert_eq!(status(&r, "self_check"), "ok");
}

#[test]
fn verify_unreadable_inputs() {
    let tmp = tempfile::tempdir().unwrap();
    let home = tmp.path().join("home");
    let junk = tmp.path().join("junk.alm");
    std::fs::write(&junk, b"this is not a package").unwrap();
    for p in [junk, tmp.path().join("missing.alm")] {
        let out = alc(&home, &["verify", p.to_str().unwrap()]);
        assert_eq!(out.status.code(), Some(2), "{}", p.display());
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(
            err.contains(p.file_name().unwrap().to_str().unwrap()),
            "{err}"
        );
    }
}
