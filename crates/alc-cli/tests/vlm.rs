//! `alc` on a vision-language package (the tiny Idefics3 checkpoint in
//! tests/fixtures/hf/idefics3, compiled here): `inspect` shows the vision tower,
//! projector and image-token layout; `run --image` streams text and `--timings`
//! prints every stage; bad images and images on a text-only model are one-line
//! errors with a non-zero exit.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

fn alc(home: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_alc"))
        .args(args)
        .env("ALC_HOME", home)
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

fn ok(o: &Output) -> String {
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn one_line_error(o: &Output) -> String {
    assert!(!o.status.success());
    let e = String::from_utf8_lossy(&o.stderr).trim().to_string();
    assert!(e.starts_with("error:") && !e.contains('\n'), "{e}");
    e
}

fn compile(home: &Path, out: &Path) -> PathBuf {
    let fixture = alc_testdata::workspace().join("tests/fixtures/hf/idefics3");
    ok(&alc(
        home,
        &[
            "compile",
            fixture.to_str().unwrap(),
            "--quant",
            "f16",
            "--out",
            out.to_str().unwrap(),
            "--no-register",
        ],
    ));
    std::fs::read_dir(out)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e.eq_ignore_ascii_case("alm")))
        .expect("a package")
}

fn image(name: &str) -> String {
    alc_testdata::workspace()
        .join("tests/goldens/vlm-tiny/photo")
        .join(name)
        .to_string_lossy()
        .into_owned()
}

#[test]
fn inspect_run_and_bad_images() {
    let home = tempfile::tempdir().unwrap();
    let out = tempfile::tempdir().unwrap();
    let pkg = compile(home.path(), out.path());
    let pkg = pkg.to_str().unwrap();
    let h = home.path();

    let text = ok(&alc(h, &["inspect", pkg]));
    assert!(
        text.contains("vision tower") && text.contains("projector"),
        "{text}"
    );
    assert!(text.contains("pixel shuffle x2"), "{text}");
    let j: serde_json::Value =
        serde_json::from_str(&ok(&alc(h, &["inspect", pkg, "--json"]))).unwrap();
    assert_eq!(j["vision"]["seq_len"], 4);
    assert_eq!(j["vision"]["image_size"], 64);
    assert_eq!(j["supported"], true);

    let img = image("chelsea.png");
    let o = alc(
        h,
        &[
            "run",
            pkg,
            "--image",
            &img,
            "--chat",
            "-p",
            "What is in this picture?",
            "-n",
            "3",
            "--temp",
            "0",
            "--timings",
            "-t",
            "2",
        ],
    );
    ok(&o);
    let err = String::from_utf8_lossy(&o.stderr);
    for stage in [
        "vision encoder",
        "modality projector",
        "token embedding",
        "prefill",
        "decode",
        "LM head",
        "image to first token",
        "13 tiles",
    ] {
        assert!(err.contains(stage), "no '{stage}' in --timings:\n{err}");
    }

    // alc chat: `/image FILE` attaches an image to the next message; a bad path is
    // reported and the chat goes on.
    let mut child = Command::new(env!("CARGO_BIN_EXE_alc"))
        .args([
            "chat",
            pkg,
            "-n",
            "2",
            "--temp",
            "0",
            "-t",
            "2",
            "--timings",
        ])
        .env("ALC_HOME", h)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().unwrap();
        write!(
            stdin,
            "/image /nonexistent.png\n/image {img}\nWhat is in this picture?\nAnd now?\n"
        )
        .unwrap();
    }
    let o = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    assert!(err.contains("/nonexistent.png"), "{err}");
    // The first reply saw the image (13 tiles); the second turn keeps it in context.
    assert_eq!(err.matches("13 tiles").count(), 2, "{err}");

    // alc bench --image: per-stage times over repetitions.
    let j: serde_json::Value = serde_json::from_str(&ok(&alc(
        h,
        &[
            "bench", pkg, "--image", &img, "-n", "4", "-r", "2", "-t", "2", "--json",
        ],
    )))
    .unwrap();
    assert_eq!(j["schema"], "alc.vlm-bench/1");
    assert_eq!(j["tiles"], 13);
    assert_eq!(j["grid"], serde_json::json!([3, 4]));
    assert!(j["vision_encoder"]["median_ms"].as_f64().unwrap() > 0.0);
    assert!(j["image_to_first_token"]["median_ms"].as_f64().unwrap() > 0.0);

    // Bad images: missing, corrupt, not an image; and --image on a text-only model.
    let e = one_line_error(&alc(
        h,
        &["run", pkg, "--image", "/nonexistent.png", "-p", "x"],
    ));
    assert!(e.contains("/nonexistent.png"), "{e}");
    let bad = out.path().join("broken.png");
    let png = std::fs::read(&img).unwrap();
    std::fs::write(&bad, &png[..png.len() / 2]).unwrap();
    let e = one_line_error(&alc(
        h,
        &[
            "run",
            pkg,
            "--image",
            bad.to_str().unwrap(),
            "-p",
            "x",
            "-n",
            "1",
        ],
    ));
    assert!(e.contains("broken.png"), "{e}");
    let junk = out.path().join("junk.jpg");
    std::fs::write(&junk, b"GIF89a this is not a supported image").unwrap();
    let e = one_line_error(&alc(
        h,
        &["run", pkg, "--image", junk.to_str().unwrap(), "-p", "x"],
    ));
    assert!(e.contains("junk.jpg"), "{e}");
    if let Some(smol) = alc_testdata::model("smollm2-135m-instruct-q4_1.gguf") {
        let e = one_line_error(&alc(
            h,
            &["run", smol.to_str().unwrap(), "--image", &img, "-p", "x"],
        ));
        assert!(e.contains("text-only"), "{e}");
    }
}
