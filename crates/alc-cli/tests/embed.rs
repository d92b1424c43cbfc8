//! `alc embed` and `alc compile` of embedding models through the binary: both
//! runtimes (a native INT8 package, and the published INT8 ONNX file through ONNX
//! Runtime with --tokenizer) agree with each other, and bad input — empty and
//! whitespace-only texts, invalid UTF-8, a 100k-character text, an ONNX graph that is
//! not a BERT encoder, a missing tokenizer, a missing ONNX Runtime library — gives a
//! one-line error and a non-zero exit (or, for the long text, a warning), never a
//! panic.

mod common;

use common::alc;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// A failed run: non-zero exit, exactly one `error:` line on stderr (compile's
/// progress lines aside) that contains `want`, no panic.
fn one_line_error(o: &Output, want: &str) {
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success(), "expected failure, got success: {err}");
    assert!(!err.contains("panicked"), "panic: {err}");
    let lines: Vec<&str> = err
        .lines()
        .filter(|l| !l.starts_with("compile: "))
        .collect();
    assert_eq!(lines.len(), 1, "not one line: {err}");
    assert!(lines[0].starts_with("error: "), "{err}");
    assert!(lines[0].contains(want), "{err:?} lacks {want:?}");
}

fn vectors(o: &Output) -> Vec<Vec<f64>> {
    assert!(o.status.success());
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    v["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            d["embedding"]
                .as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_f64().unwrap())
                .collect()
        })
        .collect()
}

fn cosine(a: &[f64], b: &[f64]) -> f64 {
    let dot: f64 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let na: f64 = a.iter().map(|x| x * x).sum::<f64>().sqrt();
    let nb: f64 = b.iter().map(|x| x * x).sum::<f64>().sqrt();
    dot / (na * nb)
}

#[test]
fn embed_both_runtimes_and_bad_input() {
    let (Some(dir), Some(onnx)) = (
        alc_testdata::model("all-minilm-l6-v2"),
        alc_testdata::model("all-minilm-l6-v2-int8.onnx"),
    ) else {
        return;
    };
    let home = tempfile::tempdir().unwrap();
    let out = tempfile::tempdir().unwrap();
    let h = home.path();
    let o = alc(
        h,
        &[
            "compile",
            s(&dir),
            "--quant",
            "int8",
            "--out",
            s(out.path()),
            "--no-register",
        ],
    );
    assert!(o.status.success());
    let pkg = out.path().join("AVA-384-Base-INT8.AON");
    let pkg = s(&pkg);
    let texts = ["turn on the flashlight", "what time is it in Tokyo?"];

    // Both runtimes, JSON output.
    let mut args = vec!["embed", pkg, "--json", "-t", "2"];
    args.extend(texts);
    let native = alc(h, &args);
    let native_v = vectors(&native);
    let mut args = vec![
        "embed",
        s(&onnx),
        "--tokenizer",
        s(&dir),
        "--json",
        "-t",
        "2",
    ];
    args.extend(texts);
    let ort = alc(h, &args);
    let v: Value = serde_json::from_slice(&ort.stdout).unwrap();
    assert!(
        v["runtime"].as_str().unwrap().starts_with("onnxruntime"),
        "{v}"
    );
    assert_eq!(v["dim"], 384);
    for (a, b) in native_v.iter().zip(&vectors(&ort)) {
        let c = cosine(a, b);
        assert!(c > 0.99, "native vs ONNX Runtime cosine {c}");
    }

    // Empty, whitespace / control-only texts.
    one_line_error(&alc(h, &["embed", pkg, ""]), "text 1");
    one_line_error(&alc(h, &["embed", pkg, "ok", " \t\u{1} "]), "text 2");
    // Invalid UTF-8 in a file: its line is named.
    let bad = out.path().join("bad.txt");
    std::fs::write(&bad, b"fine\nstill fine\n\xff\xfe broken\n").unwrap();
    one_line_error(
        &alc(h, &["embed", pkg, "-f", s(&bad)]),
        "line 3 is not valid UTF-8",
    );
    // 100k characters: cut to the model's length with a warning, not an error.
    let long = "flashlight ".repeat(10_000);
    let o = alc(h, &["embed", pkg, &long]);
    assert!(o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("longer than the model's 256 tokens"));
    // No text at all.
    let o = Command::new(env!("CARGO_BIN_EXE_alc"))
        .args(["embed", pkg])
        .env("ALC_HOME", h)
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    one_line_error(&o, "no text to embed");

    // An ONNX graph that is not a BERT encoder (a pooled [batch, seq] output).
    let pooled = repo().join("crates/alc-ort/tests/fixtures/pooled_output.onnx");
    one_line_error(
        &alc(h, &["embed", s(&pooled), "--tokenizer", s(&dir), "x"]),
        "not a BERT-shaped encoder",
    );
    one_line_error(
        &alc(
            h,
            &[
                "compile",
                s(&pooled),
                "--tokenizer",
                s(&dir),
                "--out",
                s(out.path()),
                "--no-register",
            ],
        ),
        "not a BERT-style encoder",
    );
    // Garbage bytes named .onnx.
    let junk = out.path().join("junk.onnx");
    std::fs::write(&junk, b"this is not protobuf").unwrap();
    one_line_error(
        &alc(
            h,
            &[
                "compile",
                s(&junk),
                "--tokenizer",
                s(&dir),
                "--out",
                s(out.path()),
                "--no-register",
            ],
        ),
        "not a valid ONNX model",
    );
    // An .onnx file with no tokenizer beside it and none given.
    one_line_error(&alc(h, &["embed", s(&onnx), "x"]), "--tokenizer DIR");
    // ONNX Runtime missing: ORT_DYLIB_PATH pointing nowhere.
    let o = Command::new(env!("CARGO_BIN_EXE_alc"))
        .args(["embed", s(&onnx), "--tokenizer", s(&dir), "x"])
        .env("ALC_HOME", h)
        .env(
            "ORT_DYLIB_PATH",
            out.path().join("no-such-libonnxruntime.so"),
        )
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    one_line_error(&o, "ORT_DYLIB_PATH");
    // An ONNX-runtime compile of a directory that is not a BERT checkpoint.
    let o = alc(
        h,
        &[
            "compile",
            s(out.path()),
            "--runtime",
            "onnxruntime",
            "--out",
            s(out.path()),
            "--no-register",
        ],
    );
    one_line_error(&o, "not one");
    one_line_error(
        &alc(
            h,
            &[
                "compile",
                s(&dir),
                "--runtime",
                "tvm",
                "--out",
                s(out.path()),
            ],
        ),
        "--runtime tvm",
    );
}
