//! The registry on real GGUF packages written with `GgufWriter` (and SmolLM2 from
//! `models/` when it is there): content addressing, names and tags, removal, A/B
//! slots and their bucketing, concurrent writers, a damaged database, `ALC_HOME`.

use alc_core::DType;
use alc_format::{GgufWriter, Value};
use alc_registry::{
    ab_bucket, arm_for_bucket, parse_ab_spec, Arm, RefKind, Registry, RegistryError, BLOB_DIR,
    DB_FILE, UNVERIFIED,
};
use std::path::{Path, PathBuf};

/// A small package: llama metadata, a 4-token vocabulary, `alc.*` keys when `alc`,
/// and one 8×4 F32 tensor whose values depend on `seed` (so seeds give digests).
fn package(dir: &Path, file: &str, seed: u32, alc: bool) -> PathBuf {
    let mut w = GgufWriter::new();
    let s = |v: &str| Value::String(v.to_string());
    w.set("general.architecture", s("llama")).unwrap();
    w.set("general.name", s(file)).unwrap();
    w.set("llama.context_length", Value::U32(4096)).unwrap();
    w.set(
        "tokenizer.ggml.tokens",
        Value::Array(["<s>", "</s>", "a", "b"].iter().map(|t| s(t)).collect()),
    )
    .unwrap();
    if alc {
        w.set("alc.format_version", Value::U32(1)).unwrap();
        w.set("alc.version", s("0.1.0")).unwrap();
        w.set("alc.build_key", s("0123456789abcdef")).unwrap();
        w.set("alc.source.architecture", s("LlamaForCausalLM"))
            .unwrap();
        w.set("alc.source.sha256", s(&"ab".repeat(32))).unwrap();
        w.set("alc.target", s("cpu")).unwrap();
        w.set("alc.quant", s("q4f16_1")).unwrap();
        w.set("alc.context", Value::U32(2048)).unwrap();
        w.set("alc.vocab_size", Value::U32(4)).unwrap();
        w.set("alc.parameter_count", Value::U64(32)).unwrap();
        w.set("alc.compile_date", s("2026-01-02")).unwrap();
        w.set("alc.verification", s("verified")).unwrap();
    }
    w.add_tensor("token_embd.weight", DType::F32, &[8, 4])
        .unwrap();
    let p = dir.join(file);
    w.write_file(&p, |_, t, sink| {
        let v: Vec<u8> = (0..t.bytes / 4)
            .flat_map(|i| (i as f32 * 0.5 + seed as f32).to_le_bytes())
            .collect();
        sink.put(&v)
    })
    .map_err(|e: alc_format::FormatError| e)
    .unwrap();
    p
}

struct Fixture {
    _tmp: tempfile::TempDir,
    src: PathBuf,
    home: PathBuf,
}

fn fixture() -> Fixture {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    std::fs::create_dir_all(&src).unwrap();
    let home = tmp.path().join("home");
    Fixture {
        src,
        home,
        _tmp: tmp,
    }
}

fn blob_files(home: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(home.join(BLOB_DIR))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

fn tmp_files(home: &Path) -> usize {
    std::fs::read_dir(home.join("tmp")).unwrap().count()
}

#[test]
fn add_twice_same_content_one_blob() {
    let f = fixture();
    let p = package(&f.src, "AVA-LL-1B16.ALM", 1, true);
    let reg = Registry::open(&f.home).unwrap();
    let a = reg.add(&p, None).unwrap();
    let b = reg.add(&p, None).unwrap();
    assert_eq!(a.name, "AVA-LL-1B16");
    assert_eq!(a.kind, RefKind::Name);
    assert_eq!(a.digest, b.digest);
    assert_eq!(a.added, b.added, "re-adding the same bytes keeps the entry");
    assert_eq!(blob_files(&f.home), vec![a.digest.clone()]);
    assert_eq!(reg.list().unwrap().len(), 1);
    assert_eq!(tmp_files(&f.home), 0, "nothing left in tmp/");
    // The stored bytes are the file's; a hard link leaves the user's file's mode alone.
    assert_eq!(std::fs::read(&a.path).unwrap(), std::fs::read(&p).unwrap());
    assert!(!std::fs::metadata(&p).unwrap().permissions().readonly());
    assert_eq!(a.size, std::fs::metadata(&p).unwrap().len());
    assert_eq!(a.digest.len(), 64);
}

#[test]
fn two_names_same_content_one_blob() {
    let f = fixture();
    let p = package(&f.src, "m.alm", 1, true);
    let reg = Registry::open(&f.home).unwrap();
    let a = reg.add(&p, Some("chat-small")).unwrap();
    let b = reg.add(&p, Some("chat-small-cuda")).unwrap();
    assert_eq!(a.digest, b.digest);
    assert_eq!(blob_files(&f.home).len(), 1);
    assert_eq!(b.aliases, vec!["chat-small".to_string()]);
    let names: Vec<_> = reg.list().unwrap().into_iter().map(|e| e.name).collect();
    assert_eq!(names, ["chat-small", "chat-small-cuda"]);
}

#[test]
fn metadata_from_alc_keys_and_plain_gguf() {
    let f = fixture();
    let reg = Registry::open(&f.home).unwrap();
    let e = reg.add(package(&f.src, "a.alm", 1, true), None).unwrap();
    let m = &e.meta;
    assert_eq!(m.architecture.as_deref(), Some("llama"));
    assert_eq!(m.format_version, Some(1));
    assert_eq!(m.alc_version.as_deref(), Some("0.1.0"));
    assert_eq!(m.quant.as_deref(), Some("q4f16_1"));
    assert_eq!(m.context, Some(2048));
    assert_eq!(m.vocab_size, Some(4));
    assert_eq!(m.parameters, Some(32));
    assert_eq!(m.target.as_deref(), Some("cpu"));
    assert_eq!(m.compile_date.as_deref(), Some("2026-01-02"));
    assert_eq!(m.verification, "verified");
    assert_eq!(m.source_sha256.as_deref(), Some("ab".repeat(32).as_str()));
    assert_eq!(m.build_key.as_deref(), Some("0123456789abcdef"));
    assert!(e.source_path.as_deref().unwrap().ends_with("a.alm"));

    let e = reg
        .add(package(&f.src, "plain.gguf", 2, false), None)
        .unwrap();
    let m = &e.meta;
    assert_eq!(e.name, "plain");
    assert_eq!(m.verification, UNVERIFIED);
    assert_eq!(m.format_version, None);
    assert_eq!(m.target, None);
    assert_eq!(m.context, Some(4096), "falls back to llama.context_length");
    assert_eq!(m.vocab_size, Some(4), "falls back to tokenizer.ggml.tokens");
    assert_eq!(
        m.parameters,
        Some(32),
        "falls back to the tensors' elements"
    );
    assert_eq!(m.quant.as_deref(), Some("f32"), "dominant matrix type");
}

#[test]
fn show_by_name_tag_and_digest_prefix() {
    let f = fixture();
    let reg = Registry::open(&f.home).unwrap();
    let e = reg.add(package(&f.src, "a.alm", 1, true), None).unwrap();
    reg.tag("a", "prod").unwrap();
    assert_eq!(reg.show("a").unwrap().digest, e.digest);
    let t = reg.show("prod").unwrap();
    assert_eq!(
        (t.kind, t.digest.as_str()),
        (RefKind::Tag, e.digest.as_str())
    );
    let d = reg.show(&e.digest[..8]).unwrap();
    assert_eq!((d.name.as_str(), d.kind), ("a", RefKind::Name));
    assert_eq!(
        reg.show(&format!("sha256:{}", &e.digest[..12]))
            .unwrap()
            .name,
        "a"
    );
    let err = reg.show("nope").unwrap_err();
    assert!(matches!(err, RegistryError::NotFound { .. }));
    let msg = err.to_string();
    assert!(
        msg.contains("'nope'")
            && msg.contains(&f.home.display().to_string())
            && msg.contains("alc list"),
        "{msg}"
    );
}

#[test]
fn tag_resolves_and_outlives_the_name() {
    let f = fixture();
    let reg = Registry::open(&f.home).unwrap();
    let e = reg.add(package(&f.src, "a.alm", 1, true), None).unwrap();
    let t = reg.tag("a", "stable").unwrap();
    assert_eq!(t.digest, e.digest);
    assert_eq!(reg.resolve("stable").unwrap(), Some(e.path.clone()));
    assert_eq!(reg.resolve("a").unwrap(), Some(e.path.clone()));
    assert_eq!(reg.resolve("zzz").unwrap(), None);

    // Re-pointing the name leaves the tag where it was.
    let e2 = reg
        .add(package(&f.src, "a2.alm", 2, true), Some("a"))
        .unwrap();
    assert_ne!(e2.digest, e.digest);
    assert_eq!(reg.show("stable").unwrap().digest, e.digest);
    assert_eq!(blob_files(&f.home).len(), 2);

    // A tag cannot take a name's place, nor a name a tag's.
    let err = reg.tag("stable", "a").unwrap_err();
    assert!(matches!(err, RegistryError::TagIsName { .. }), "{err}");
    let err = reg
        .add(package(&f.src, "x.alm", 3, true), Some("stable"))
        .unwrap_err();
    assert!(matches!(err, RegistryError::NameIsTag { .. }), "{err}");
    assert!(err.to_string().contains("'stable' is a tag"), "{err}");
    // Nothing of the refused add stayed.
    assert_eq!(blob_files(&f.home).len(), 2);
    assert_eq!(tmp_files(&f.home), 0);

    // Moving the tag to the new file drops the old, now unreferenced, one.
    reg.tag("a", "stable").unwrap();
    assert_eq!(blob_files(&f.home), vec![e2.digest.clone()]);
}

#[test]
fn rm_keeps_blob_while_referenced() {
    let f = fixture();
    let reg = Registry::open(&f.home).unwrap();
    let p = package(&f.src, "a.alm", 1, true);
    let e = reg.add(&p, Some("one")).unwrap();
    reg.add(&p, Some("two")).unwrap();
    reg.tag("one", "t").unwrap();

    let r = reg.rm("one").unwrap();
    assert!(!r.blob_deleted);
    assert!(e.path.is_file());
    let r = reg.rm("t").unwrap();
    assert_eq!(r.kind, RefKind::Tag);
    assert!(!r.blob_deleted);
    assert!(e.path.is_file());
    let r = reg.rm("two").unwrap();
    assert!(r.blob_deleted);
    assert!(!e.path.exists());
    assert!(blob_files(&f.home).is_empty());
    assert!(reg.list().unwrap().is_empty());
    assert!(p.is_file(), "the source file stays");

    let err = reg.rm("two").unwrap_err();
    assert!(matches!(err, RegistryError::NotFound { .. }), "{err}");
}

#[test]
fn readd_other_content_repoints_and_collects_old() {
    let f = fixture();
    let reg = Registry::open(&f.home).unwrap();
    let a = reg
        .add(package(&f.src, "v1.alm", 1, true), Some("m"))
        .unwrap();
    let b = reg
        .add(package(&f.src, "v2.alm", 2, true), Some("m"))
        .unwrap();
    assert_ne!(a.digest, b.digest);
    assert_eq!(blob_files(&f.home), vec![b.digest.clone()]);
    assert_eq!(reg.resolve("m").unwrap(), Some(b.path));
}

#[test]
fn rm_refused_while_in_ab_slot() {
    let f = fixture();
    let reg = Registry::open(&f.home).unwrap();
    reg.add(package(&f.src, "A.alm", 1, true), None).unwrap();
    reg.add(package(&f.src, "B.alm", 2, true), None).unwrap();
    reg.ab_set("chat", "A=50,B=50").unwrap();
    let err = reg.rm("B").unwrap_err();
    assert!(matches!(err, RegistryError::InSlot { .. }));
    let msg = err.to_string();
    assert!(msg.contains("'B'") && msg.contains("'chat'"), "{msg}");
    assert!(reg.resolve("B").unwrap().is_some(), "nothing was removed");
    reg.ab_set("chat", "A=1").unwrap();
    reg.rm("B").unwrap();
    reg.ab_rm("chat").unwrap();
    reg.rm("A").unwrap();
    assert!(reg.ab_show().unwrap().is_empty());
    let err = reg.ab_rm("chat").unwrap_err();
    assert!(matches!(err, RegistryError::NoSlot { .. }), "{err}");
}

#[test]
fn ab_set_validation() {
    let f = fixture();
    let reg = Registry::open(&f.home).unwrap();
    reg.add(package(&f.src, "A.alm", 1, true), None).unwrap();
    reg.add(package(&f.src, "B.alm", 2, true), None).unwrap();
    let cases: &[(&str, &str)] = &[
        ("", "it is empty"),
        ("A=50,", "empty item"),
        ("A", "'A' has no '=WEIGHT'"),
        ("=5", "no name before '='"),
        ("A=0,B=1", "the weight of 'A' is 0"),
        ("A=-1", "not a positive integer"),
        ("A=1.5", "not a positive integer"),
        ("A=x", "not a positive integer"),
        ("A=99999999999", "is above"),
        ("A=1,A=2", "'A' appears twice"),
        ("A=50,C=50", "no package named 'C'"),
    ];
    for (spec, want) in cases {
        let err = reg.ab_set("chat", spec).unwrap_err();
        assert!(matches!(err, RegistryError::AbSpec { .. }), "{spec}: {err}");
        let msg = err.to_string();
        assert!(msg.contains(want), "{spec}: {msg}");
        assert!(
            msg.contains("'chat'") && msg.contains("NAME=WEIGHT"),
            "{msg}"
        );
        assert!(!msg.contains('\n'), "one line: {msg}");
    }
    assert!(
        reg.ab_show().unwrap().is_empty(),
        "no failed set was stored"
    );
    let err = reg.ab_set("bad slot", "A=1").unwrap_err();
    assert!(matches!(err, RegistryError::BadName { .. }), "{err}");
    // Spaces around items are fine; tags are arms too.
    reg.tag("B", "b-tag").unwrap();
    let s = reg.ab_set("chat", " A = 3 , b-tag=1 ").unwrap();
    assert_eq!(
        s.arms,
        vec![
            Arm {
                name: "A".into(),
                weight: 3
            },
            Arm {
                name: "b-tag".into(),
                weight: 1
            }
        ]
    );
    assert_eq!(s.total_weight, 4);
    assert_eq!(reg.ab_show().unwrap(), vec![s]);
}

#[test]
fn ab_pick_is_deterministic() {
    let f = fixture();
    let reg = Registry::open(&f.home).unwrap();
    let a = reg.add(package(&f.src, "A.alm", 1, true), None).unwrap();
    let b = reg.add(package(&f.src, "B.alm", 2, true), None).unwrap();
    reg.ab_set("chat", "A=50,B=50").unwrap();
    let mut seen = [0usize; 2];
    for u in 0..200 {
        let user = format!("user-{u}");
        let p = reg.ab_pick("chat", &user).unwrap();
        // Same answer from a second handle (another process would get it too).
        let again = Registry::open(&f.home)
            .unwrap()
            .ab_pick("chat", &user)
            .unwrap();
        assert_eq!(p, again);
        assert_eq!(p.bucket, ab_bucket("chat", &user, 100));
        match p.arm.as_str() {
            "A" => {
                assert_eq!(p.path, a.path);
                seen[0] += 1
            }
            "B" => {
                assert_eq!(p.path, b.path);
                seen[1] += 1
            }
            other => panic!("arm {other}"),
        }
    }
    assert!(seen[0] > 0 && seen[1] > 0, "{seen:?}");
    // Pinned (Python: int.from_bytes(sha256(b"chat\x0042").digest()[:8], "big")): the
    // bucket function must not change between releases, or users would move.
    assert_eq!(ab_bucket("chat", "42", u64::MAX), 0x3135_5e03_cc7f_a53d);
    let err = reg.ab_pick("nope", "1").unwrap_err();
    assert!(matches!(err, RegistryError::NoSlot { .. }), "{err}");
}

#[test]
fn ab_bucketing_follows_weights() {
    for (spec, want) in [("A=50,B=50", [0.5, 0.5]), ("A=90,B=10", [0.9, 0.1])] {
        let arms = parse_ab_spec("chat", spec).unwrap();
        let total: u64 = arms.iter().map(|a| a.weight).sum();
        let mut n = [0usize; 2];
        let users = 10_000;
        for u in 0..users {
            let b = ab_bucket("chat", &format!("user-{u}"), total);
            let arm = arm_for_bucket(&arms, b).unwrap();
            n[usize::from(arm.name == "B")] += 1;
        }
        for i in 0..2 {
            let share = n[i] as f64 / users as f64;
            assert!(
                (share - want[i]).abs() <= 0.03,
                "{spec}: arm {i} got {share:.4}, want {} ± 0.03",
                want[i]
            );
        }
    }
    // Other slots bucket the same users independently.
    let same = (0..1000)
        .filter(|u| {
            let user = format!("user-{u}");
            (ab_bucket("x", &user, 2) == 0) == (ab_bucket("y", &user, 2) == 0)
        })
        .count();
    assert!((400..600).contains(&same), "{same}");
}

#[test]
fn concurrent_adds_do_not_corrupt() {
    let f = fixture();
    let files: Vec<PathBuf> = (0..3)
        .map(|i| package(&f.src, &format!("p{i}.alm"), i, true))
        .collect();
    let shared = std::sync::Arc::new(Registry::open(&f.home).unwrap());
    std::thread::scope(|s| {
        for t in 0..4 {
            let files = &files;
            let home = f.home.clone();
            let shared = shared.clone();
            s.spawn(move || {
                // Threads 0 and 1 use their own handle (as two processes would), 2 and
                // 3 share one.
                let own;
                let reg: &Registry = if t < 2 {
                    own = Registry::open(&home).unwrap();
                    &own
                } else {
                    &shared
                };
                for round in 0..5 {
                    for (i, p) in files.iter().enumerate() {
                        reg.add(p, Some(&format!("t{t}-p{i}"))).unwrap();
                        reg.add(p, Some(&format!("common-p{i}"))).unwrap();
                        if round % 2 == 1 {
                            reg.rm(&format!("t{t}-p{i}")).unwrap();
                        }
                    }
                }
            });
        }
    });
    let reg = Registry::open(&f.home).unwrap();
    let list = reg.list().unwrap();
    // Every thread ends on an even round (re-added, not removed): 4×3 + 3 names.
    assert_eq!(
        list.len(),
        15,
        "{:?}",
        list.iter().map(|e| &e.name).collect::<Vec<_>>()
    );
    let mut digests: Vec<String> = list.iter().map(|e| e.digest.clone()).collect();
    digests.sort();
    digests.dedup();
    assert_eq!(digests.len(), 3);
    assert_eq!(blob_files(&f.home), digests);
    for e in &list {
        assert_eq!(std::fs::read(&e.path).unwrap().len() as u64, e.size);
    }
    assert_eq!(tmp_files(&f.home), 0);
}

#[test]
fn concurrent_add_and_rm_of_one_package_keep_files() {
    // One handle removes what the other adds, over and over: a name the registry
    // lists always has its file.
    let f = fixture();
    let p = package(&f.src, "p.alm", 7, true);
    Registry::open(&f.home).unwrap();
    std::thread::scope(|s| {
        for t in 0..2 {
            let home = f.home.clone();
            let p = p.clone();
            s.spawn(move || {
                let reg = Registry::open(&home).unwrap();
                let name = format!("n{t}");
                for _ in 0..20 {
                    reg.add(&p, Some(&name)).unwrap();
                    assert!(reg.resolve(&name).unwrap().unwrap().is_file());
                    reg.rm(&name).unwrap();
                }
                reg.add(&p, Some(&name)).unwrap();
            });
        }
    });
    let reg = Registry::open(&f.home).unwrap();
    for e in reg.list().unwrap() {
        assert!(e.path.is_file(), "{}", e.name);
    }
    assert_eq!(blob_files(&f.home).len(), 1);
}

#[test]
fn corrupt_database_is_a_clear_error() {
    let f = fixture();
    std::fs::create_dir_all(&f.home).unwrap();
    let db = f.home.join(DB_FILE);
    std::fs::write(&db, b"this is not an SQLite database, just some garbage bytes..........................................................................................").unwrap();
    let err = Registry::open(&f.home).unwrap_err();
    assert!(matches!(err, RegistryError::Corrupt { .. }), "{err}");
    let msg = err.to_string();
    assert!(msg.contains(&db.display().to_string()), "{msg}");
    assert!(msg.contains("move it aside"), "{msg}");
}

#[test]
fn newer_schema_is_refused() {
    let f = fixture();
    Registry::open(&f.home).unwrap();
    let c = rusqlite::Connection::open(f.home.join(DB_FILE)).unwrap();
    c.execute("UPDATE schema_version SET version = 99", [])
        .unwrap();
    drop(c);
    let err = Registry::open(&f.home).unwrap_err();
    assert!(
        matches!(err, RegistryError::SchemaTooNew { found: 99, .. }),
        "{err}"
    );
    assert!(err.to_string().contains("newer alc"), "{err}");
}

#[test]
fn bad_inputs_name_the_file() {
    let f = fixture();
    let reg = Registry::open(&f.home).unwrap();
    let junk = f.src.join("notes.txt");
    std::fs::write(&junk, b"hello, not a model").unwrap();
    let err = reg.add(&junk, None).unwrap_err();
    assert!(matches!(err, RegistryError::NotAPackage { .. }), "{err}");
    let msg = err.to_string();
    assert!(msg.contains("notes.txt") && msg.contains("GGUF"), "{msg}");
    assert_eq!(tmp_files(&f.home), 0);
    assert!(blob_files(&f.home).is_empty());

    let err = reg.add(f.src.join("missing.alm"), None).unwrap_err();
    assert!(err.to_string().contains("missing.alm"), "{err}");
    let err = reg.add(&f.src, Some("dir")).unwrap_err();
    assert!(matches!(err, RegistryError::NotAFile { .. }), "{err}");

    let p = package(&f.src, "ok.alm", 1, true);
    for bad in ["", "a/b", "a b", "a,b", "a=b", "-x", ".x"] {
        let err = reg.add(&p, Some(bad)).unwrap_err();
        assert!(
            matches!(err, RegistryError::BadName { .. }),
            "{bad:?}: {err}"
        );
    }
}

#[test]
fn alc_home_is_honoured() {
    // The only test that touches the environment (tests run in threads).
    let f = fixture();
    let old = std::env::var_os("ALC_HOME");
    std::env::set_var("ALC_HOME", &f.home);
    assert_eq!(alc_registry::default_home().unwrap(), f.home);
    let reg = Registry::open_default().unwrap();
    assert_eq!(reg.home(), f.home);
    reg.add(package(&f.src, "a.alm", 1, true), None).unwrap();
    assert!(f.home.join(DB_FILE).is_file());
    assert_eq!(blob_files(&f.home).len(), 1);
    std::env::set_var("ALC_HOME", "");
    let d = alc_registry::default_home().unwrap();
    assert!(d.ends_with("alc"), "{}", d.display());
    match old {
        Some(v) => std::env::set_var("ALC_HOME", v),
        None => std::env::remove_var("ALC_HOME"),
    }
    // open_existing does not create a registry.
    let none = f._tmp.path().join("nothing-here");
    assert!(Registry::open_existing(&none).unwrap().is_none());
    assert!(!none.exists());
}

#[test]
fn real_smollm2_package() {
    let src = alc_testdata::models_dir().join("smollm2-135m-instruct-q4_1.gguf");
    if !src.is_file() {
        eprintln!("SKIP: {} missing (scripts/fetch-models.sh)", src.display());
        return;
    }
    let f = fixture();
    // A copy, so the store's read-only mode does not reach the file in models/.
    let p = f.src.join("smollm2.gguf");
    std::fs::copy(&src, &p).unwrap();
    let reg = Registry::open(&f.home).unwrap();
    let e = reg.add(&p, None).unwrap();
    assert_eq!(e.name, "smollm2");
    let m = &e.meta;
    assert_eq!(m.architecture.as_deref(), Some("llama"));
    assert_eq!(m.quant.as_deref(), Some("q4_1"));
    assert_eq!(m.vocab_size, Some(49152));
    assert_eq!(m.context, Some(8192));
    assert_eq!(m.verification, UNVERIFIED);
    assert!(m.parameters.unwrap() > 130_000_000, "{:?}", m.parameters);
    assert_eq!(e.size, std::fs::metadata(&p).unwrap().len());
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        // Same file system: the blob is a hard link of the source, not a copy.
        assert_eq!(
            std::fs::metadata(&e.path).unwrap().ino(),
            std::fs::metadata(&p).unwrap().ino()
        );
    }
    let again = reg.add(&p, Some("smol")).unwrap();
    assert_eq!(again.digest, e.digest);
    assert_eq!(blob_files(&f.home).len(), 1);
}

#[test]
fn copy_when_hard_link_is_impossible() {
    // The store on another file system than the source: the file is copied.
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        let f = fixture();
        let shm = Path::new("/dev/shm");
        let dev = |p: &Path| std::fs::metadata(p).map(|m| m.dev()).ok();
        if dev(shm).is_none() || dev(shm) == dev(&f.src) {
            eprintln!("SKIP: no second file system at /dev/shm");
            return;
        }
        let home = tempfile::tempdir_in(shm).unwrap();
        let reg = Registry::open(home.path()).unwrap();
        let p = package(&f.src, "a.alm", 1, true);
        let e = reg.add(&p, None).unwrap();
        assert_ne!(dev(&e.path), dev(&p));
        assert_eq!(std::fs::read(&e.path).unwrap(), std::fs::read(&p).unwrap());
        assert!(std::fs::metadata(&e.path).unwrap().permissions().readonly());
        assert!(
            !std::fs::metadata(&p).unwrap().permissions().readonly(),
            "a copied source keeps its mode"
        );
        assert_eq!(reg.add(&p, Some("b")).unwrap().digest, e.digest);
        assert_eq!(blob_files(home.path()).len(), 1);
        assert_eq!(tmp_files(home.path()), 0);
    }
}

/// What a killed `add` left under tmp/ goes on the next open; a file of a process
/// that still runs, and files not named by the registry, stay.
#[test]
fn open_sweeps_temp_files_of_dead_processes() {
    let f = fixture();
    drop(Registry::open(&f.home).unwrap());
    let mut done = std::process::Command::new("true").spawn().unwrap();
    let dead = done.id();
    done.wait().unwrap();
    let mut running = std::process::Command::new("sleep")
        .arg("30")
        .spawn()
        .unwrap();
    let tmp = f.home.join("tmp");
    let names = [
        format!("in-{dead}-1234-0"),
        format!("in-{dead}-1234-copy-x"),
        format!("in-{}-1234-0", running.id()),
        format!("in-{}-1234-0", std::process::id()),
        "unrelated".to_string(),
    ];
    for n in &names {
        std::fs::write(tmp.join(n), b"partial").unwrap();
    }
    drop(Registry::open(&f.home).unwrap());
    let mut left: Vec<String> = std::fs::read_dir(&tmp)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    left.sort();
    let _ = running.kill();
    let _ = running.wait();
    let mut want = names[2..].to_vec();
    want.sort();
    if cfg!(target_os = "linux") {
        assert_eq!(left, want);
    } else {
        // Elsewhere only day-old files go: these are fresh.
        assert_eq!(left.len(), names.len());
    }
}
