//! `alc classify` through the binary: all-MiniLM-L6-v2 compiled to f32 and int8
//! packages, scored on the held-out set data/intents/heldout.tsv with the intents of
//! data/intents/headset.yaml (reference, f32 sentence-transformers: in-scope accuracy
//! 0.9662, unknown recall 0.95 at the leave-one-out threshold 0.437 — see
//! tests/goldens/embeddings/reference_quality.json); spot checks; the centroid cache;
//! and bad input (one-line errors, no panic).

mod common;

use common::alc;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn intents() -> String {
    repo()
        .join("data/intents/headset.yaml")
        .to_string_lossy()
        .into_owned()
}

fn heldout() -> String {
    repo()
        .join("data/intents/heldout.tsv")
        .to_string_lossy()
        .into_owned()
}

fn minilm() -> Option<PathBuf> {
    alc_testdata::model("all-minilm-l6-v2")
}

/// The f32 and int8 packages, compiled once per test run into the test target's
/// temporary directory (a later run finds them up to date).
fn packages() -> Option<&'static (PathBuf, PathBuf)> {
    static PKGS: OnceLock<Option<(PathBuf, PathBuf)>> = OnceLock::new();
    PKGS.get_or_init(|| {
        let src = minilm()?;
        let out = Path::new(env!("CARGO_TARGET_TMPDIR")).join("classify-packages");
        std::fs::create_dir_all(&out).unwrap();
        let home = tempfile::tempdir().unwrap();
        let build = |quant: &str| {
            let name = format!("minilm-{quant}.AON");
            let o = alc(
                home.path(),
                &[
                    "compile",
                    src.to_str().unwrap(),
                    "--quant",
                    quant,
                    "--out",
                    out.to_str().unwrap(),
                    "--name",
                    &name,
                    "--no-register",
                    "--force",
                    "-t",
                    "2",
                ],
            );
            assert!(o.status.success(), "alc compile --quant {quant} failed");
            out.join(name)
        };
        Some((build("f32"), build("int8")))
    })
    .as_ref()
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// `alc classify --eval` report.
fn eval(home: &Path, pkg: &Path) -> Value {
    let o = alc(
        home,
        &[
            "classify",
            s(pkg),
            "--intents",
            &intents(),
            "--eval",
            &heldout(),
            "--json",
            "-t",
            "2",
        ],
    );
    assert!(o.status.success(), "alc classify --eval failed");
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["schema"], "alc.classify.eval/1");
    v["report"].clone()
}

/// The quality bar: f32 in-scope accuracy ≥ 0.95 (reference 0.9662), int8
/// within 1 point of f32, unknown recall ≥ 0.8 at the default threshold.
#[test]
fn heldout_accuracy_f32_and_int8() {
    let Some((f32_pkg, int8_pkg)) = packages() else {
        return;
    };
    let home = tempfile::tempdir().unwrap();
    let f = eval(home.path(), f32_pkg);
    let q = eval(home.path(), int8_pkg);
    for (name, r) in [("f32", &f), ("int8", &q)] {
        eprintln!(
            "{name}: in-scope {} ({}/{}), at threshold {} {}, unknown recall {}, overall {}",
            r["accuracy_in_scope"],
            r["correct_in_scope"],
            r["n_in_scope"],
            r["threshold"],
            r["accuracy_in_scope_at_threshold"],
            r["unknown_recall"],
            r["accuracy_overall"]
        );
        assert_eq!(r["n_in_scope"], 148);
        assert_eq!(r["n_unknown"], 20);
        let unk = r["unknown_recall"].as_f64().unwrap();
        assert!(unk >= 0.8, "{name}: unknown recall {unk} < 0.8");
    }
    let fa = f["accuracy_in_scope"].as_f64().unwrap();
    let qa = q["accuracy_in_scope"].as_f64().unwrap();
    assert!(fa >= 0.95, "f32 in-scope accuracy {fa} < 0.95");
    assert!(
        (qa - fa).abs() <= 0.01 + 1e-9,
        "int8 in-scope accuracy {qa} is more than 1 point from f32's {fa}"
    );
}

fn classify_json(home: &Path, pkg: &Path, extra: &[&str], texts: &[&str]) -> (Value, String) {
    let intents = intents();
    let mut args = vec![
        "classify",
        s(pkg),
        "--intents",
        &intents,
        "--json",
        "-t",
        "2",
    ];
    args.extend_from_slice(extra);
    args.extend_from_slice(texts);
    let o = alc(home, &args);
    assert!(o.status.success(), "alc {args:?} failed");
    (
        serde_json::from_slice(&o.stdout).unwrap(),
        String::from_utf8(o.stderr).unwrap(),
    )
}

#[test]
fn spot_checks_and_the_centroid_cache() {
    let Some((_, pkg)) = packages() else {
        return;
    };
    let home = tempfile::tempdir().unwrap();
    let texts = [
        "turn on the flashlight",
        "the purple giraffe negotiates tax law with clouds",
    ];
    let (v, err) = classify_json(home.path(), pkg, &[], &texts);
    assert!(err.contains("cache miss"), "{err}");
    assert_eq!(v["schema"], "alc.classify/1");
    let r = &v["results"];
    assert_eq!(r[0]["text"], texts[0]);
    assert_eq!(r[0]["intent"], "flashlight_on");
    assert_eq!(r[0]["unknown"], false);
    assert_eq!(r[0]["top"].as_array().unwrap().len(), 2);
    assert_eq!(r[0]["top"][1], r[0]["runner_up"]);
    assert_eq!(r[1]["intent"], "unknown", "{}", r[1]);
    assert_eq!(r[1]["unknown"], true);
    assert!(r[1]["score"].as_f64().unwrap() < 0.437);

    // Second run: centroids from the cache, same answers.
    let (v2, err) = classify_json(home.path(), pkg, &[], &texts);
    assert!(err.contains("cache hit"), "{err}");
    assert_eq!(v2["cache"], "hit");
    assert_eq!(v2["results"], v["results"]);

    // --no-cache neither reads nor writes; a damaged cache file is ignored and rewritten.
    let (_, err) = classify_json(home.path(), pkg, &["--no-cache"], &texts[..1]);
    assert!(err.contains("cache off"), "{err}");
    let dir = home.path().join("cache/centroids");
    let files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(files.len(), 1, "{files:?}");
    let mut b = std::fs::read(&files[0]).unwrap();
    let mid = b.len() / 2;
    b[mid] ^= 0x55;
    std::fs::write(&files[0], &b).unwrap();
    let (v3, err) = classify_json(home.path(), pkg, &[], &texts);
    assert!(
        err.contains("ignored") && err.contains("cache miss"),
        "{err}"
    );
    assert_eq!(v3["results"], v["results"]);
    let (_, err) = classify_json(home.path(), pkg, &[], &texts[..1]);
    assert!(err.contains("cache hit"), "{err}");

    // --threshold and --top; the text output.
    let (v4, _) = classify_json(
        home.path(),
        pkg,
        &["--threshold", "0.99", "--top", "4"],
        &texts[..1],
    );
    assert_eq!(v4["results"][0]["intent"], "unknown");
    assert_eq!(v4["results"][0]["top"].as_array().unwrap().len(), 4);
    let o = alc(
        home.path(),
        &["classify", s(pkg), "--intents", &intents(), texts[0]],
    );
    assert!(o.status.success());
    let out = String::from_utf8(o.stdout).unwrap();
    assert!(
        out.starts_with("flashlight_on 0.") && out.contains("(runner-up "),
        "{out}"
    );
}

/// Mistakes are reported as one line on stderr with a non-zero exit, before the model
/// is loaded (so these run without the model).
#[test]
fn bad_input_is_one_line_error() {
    let home = tempfile::tempdir().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let pkg = dir.path().join("no-such-package.AON");
    let write = |name: &str, text: &str| {
        let p = dir.path().join(name);
        std::fs::write(&p, text).unwrap();
        p.to_string_lossy().into_owned()
    };
    let good = write("good.yaml", "a:\n  - hello there\nb:\n  - good night\n");
    let cases: Vec<(Vec<String>, &str)> = vec![
        (
            vec![
                write("dup.yaml", "a:\n  - x\nb:\n  - y\na:\n  - z\n"),
                "hi".into(),
            ],
            "dup.yaml line 5: duplicate intent 'a'",
        ),
        (
            vec![write("empty.yaml", "a:\n  - x\nb: []\n"), "hi".into()],
            "'b' has no utterances",
        ),
        (
            vec![write("bad.yaml", "a: [x\nb:\n  - y\n"), "hi".into()],
            "not valid YAML",
        ),
        (
            vec![write("one.yaml", "a:\n  - x\n"), "hi".into()],
            "at least 2",
        ),
        (
            vec![write("twice.yaml", "a:\n  - x\nb:\n  - X\n"), "hi".into()],
            "both intent 'a'",
        ),
        (
            vec![
                dir.path().join("missing.yaml").to_string_lossy().into(),
                "hi".into(),
            ],
            "cannot read the intents file",
        ),
        (vec![good.clone(), "".into()], "text 1 is empty"),
        (
            vec![good.clone(), "hi".into(), "  ".into()],
            "text 2 is empty",
        ),
        (
            vec![good.clone(), "hi".into(), "--top".into(), "0".into()],
            "--top",
        ),
        (
            vec![good.clone(), "hi".into(), "--threshold".into(), "2".into()],
            "--threshold",
        ),
        (
            vec![
                good.clone(),
                "--eval".into(),
                write("eval.tsv", "hello\tc\n"),
            ],
            "eval.tsv line 1: label 'c'",
        ),
        (vec![good.clone(), "hi".into()], "no-such-package.AON"),
    ];
    for (args, want) in cases {
        let mut a = vec!["classify", s(&pkg), "--intents"];
        a.extend(args.iter().map(String::as_str));
        let o = alc(home.path(), &a);
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(!o.status.success(), "{a:?} succeeded");
        assert!(!err.contains("panicked"), "{a:?}: {err}");
        assert_eq!(err.trim_end().lines().count(), 1, "{a:?}: {err}");
        assert!(
            err.starts_with("error: ") && err.contains(want),
            "{a:?}: wanted {want:?} in {err}"
        );
    }
}
