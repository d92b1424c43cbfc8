//! The registry through the `alc` binary, with `ALC_HOME` in a temp dir: add, list,
//! show, tag, ab, rm, and `alc run NAME` loading a registered package.

mod common;

use alc_testdata::{gguf_bytes, Kv};
use common::alc;
use std::path::{Path, PathBuf};

#[track_caller]
fn ok(home: &Path, args: &[&str]) -> String {
    let out = alc(home, args);
    assert!(out.status.success(), "alc {args:?} failed");
    String::from_utf8(out.stdout).unwrap()
}

/// Exit code 1 and one `error:` line on stderr; returns it.
#[track_caller]
fn fails(home: &Path, args: &[&str]) -> String {
    let out = alc(home, args);
    assert_eq!(out.status.code(), Some(1), "alc {args:?} should fail");
    let err = String::from_utf8(out.stderr).unwrap();
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 1, "{err}");
    assert!(lines[0].starts_with("error: "), "{err}");
    lines[0].to_string()
}

fn tiny(dir: &Path, file: &str, name: &str) -> PathBuf {
    let p = dir.join(file);
    std::fs::write(
        &p,
        gguf_bytes(&[
            ("general.architecture", Kv::Str("llama".into())),
            ("general.name", Kv::Str(name.into())),
            ("alc.verification", Kv::Str("verified".into())),
            ("alc.context", Kv::U32(1024)),
        ]),
    )
    .unwrap();
    p
}

#[test]
fn registry_commands() {
    let tmp = tempfile::tempdir().unwrap();
    let home = tmp.path().join("home");
    let a = tiny(tmp.path(), "AVA-GE2-2B16.ALM", "a");
    let b = tiny(tmp.path(), "AVA-GE3-4B16.ALM", "b");

    let out = ok(&home, &["list"]);
    assert!(out.contains("no packages"), "{out}");
    let out = ok(&home, &["add", a.to_str().unwrap()]);
    assert!(out.starts_with("added AVA-GE2-2B16 (sha256 "), "{out}");
    ok(&home, &["add", b.to_str().unwrap()]);
    ok(&home, &["tag", "AVA-GE2-2B16", "stable"]);

    let v: serde_json::Value = serde_json::from_str(&ok(&home, &["list", "--json"])).unwrap();
    assert_eq!(v["schema"], "alc.registry/1");
    let pk = v["packages"].as_array().unwrap();
    let names: Vec<&str> = pk.iter().map(|p| p["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["AVA-GE2-2B16", "AVA-GE3-4B16", "stable"]);
    assert_eq!(pk[0]["meta"]["verification"], "verified");
    assert_eq!(pk[0]["meta"]["context"], 1024);
    assert_eq!(pk[2]["kind"], "tag");
    assert_eq!(pk[2]["digest"], pk[0]["digest"]);

    let v: serde_json::Value =
        serde_json::from_str(&ok(&home, &["show", "stable", "--json"])).unwrap();
    assert_eq!(v["package"]["aliases"][0], "AVA-GE2-2B16");
    let text = ok(&home, &["show", "AVA-GE3-4B16"]);
    assert!(text.contains("verification  verified"), "{text}");

    let out = ok(
        &home,
        &["ab", "set", "chat", "AVA-GE2-2B16=50,AVA-GE3-4B16=50"],
    );
    assert!(out.starts_with("chat  AVA-GE2-2B16=50 (50.0 %)"), "{out}");
    let arm = ok(&home, &["ab", "pick", "chat", "--user", "u123"]);
    for _ in 0..3 {
        assert_eq!(ok(&home, &["ab", "pick", "chat", "--user", "u123"]), arm);
    }
    let v: serde_json::Value = serde_json::from_str(&ok(
        &home,
        &["ab", "pick", "chat", "--user", "u123", "--json"],
    ))
    .unwrap();
    assert_eq!(v["pick"]["arm"].as_str().unwrap(), arm.trim());
    let v: serde_json::Value = serde_json::from_str(&ok(&home, &["ab", "show", "--json"])).unwrap();
    assert_eq!(v["slots"][0]["total_weight"], 100);

    let e = fails(&home, &["ab", "set", "chat", "AVA-GE2-2B16=50,nope=50"]);
    assert!(e.contains("no package named 'nope'"), "{e}");
    let e = fails(&home, &["rm", "AVA-GE3-4B16"]);
    assert!(e.contains("A/B slot 'chat'"), "{e}");
    ok(&home, &["ab", "rm", "chat"]);
    let out = ok(&home, &["rm", "AVA-GE3-4B16"]);
    assert!(out.contains("file deleted"), "{out}");
    let out = ok(&home, &["rm", "AVA-GE2-2B16"]);
    assert!(out.contains("file kept"), "{out}");
    let e = fails(&home, &["show", "AVA-GE2-2B16"]);
    assert!(
        e.contains("no package named 'AVA-GE2-2B16'") && e.contains("alc list"),
        "{e}"
    );

    // A name that is neither a file nor registered.
    let e = fails(&home, &["run", "no-such-model", "-p", "hi", "-n", "1"]);
    assert!(e.contains("no package named 'no-such-model'"), "{e}");
    assert!(e.contains(&home.display().to_string()), "{e}");
}

#[test]
fn run_resolves_a_registered_name() {
    let src = alc_testdata::models_dir().join("smollm2-135m-instruct-q4_1.gguf");
    if !src.is_file() {
        eprintln!("SKIP: {} missing (scripts/fetch-models.sh)", src.display());
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let home = tmp.path().join("home");
    // A copy, so the store's read-only mode does not reach the file in models/.
    let p = tmp.path().join("smol.gguf");
    std::fs::copy(&src, &p).unwrap();
    ok(&home, &["add", p.to_str().unwrap(), "--name", "smol"]);
    let by_name = ok(
        &home,
        &["run", "smol", "-p", "hi", "-n", "2", "--temp", "0"],
    );
    let by_path = ok(
        &home,
        &[
            "run",
            p.to_str().unwrap(),
            "-p",
            "hi",
            "-n",
            "2",
            "--temp",
            "0",
        ],
    );
    assert!(!by_name.trim().is_empty());
    assert_eq!(by_name, by_path);
    // inspect resolves names too; the report differs only in the file it names.
    let info = |m: &str| {
        let mut j: serde_json::Value =
            serde_json::from_str(&ok(&home, &["inspect", m, "--json"])).unwrap();
        j.as_object_mut().unwrap().remove("file");
        j
    };
    assert_eq!(info("smol"), info(p.to_str().unwrap()));
}
