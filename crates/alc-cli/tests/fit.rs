//! `alc devices` and `alc fit` through the binary: the estimate against the measured
//! peak RSS of `alc run` on the three real models, verdicts and exit codes, device
//! profile files, `--recommend` over a registry, and bad input.

mod common;

use common::alc;
use serde_json::Value;
use std::path::{Path, PathBuf};

const SMOL: &str = "smollm2-135m-instruct-q4_1.gguf";
const QWEN: &str = "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf";
const GEMMA: &str = "gemma-3-270m-q4_k_m.gguf";

fn json(home: &Path, args: &[&str]) -> Value {
    let out = alc(home, args);
    assert!(out.status.success(), "alc {args:?} failed");
    serde_json::from_slice(&out.stdout).unwrap()
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// Peak RSS in bytes that `alc run --timings` reports.
fn measured_peak(home: &Path, model: &Path, ctx: usize) -> f64 {
    let ctx = ctx.to_string();
    let out = alc(
        home,
        &[
            "run",
            s(model),
            "-p",
            "The capital of France is",
            "-n",
            "8",
            "--temp",
            "0",
            "--ctx",
            &ctx,
            "-t",
            "2",
            "--timings",
        ],
    );
    assert!(out.status.success());
    let err = String::from_utf8(out.stderr).unwrap();
    let mib: f64 = err
        .split("peak RSS ")
        .nth(1)
        .and_then(|r| r.split(" MiB").next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no peak RSS in {err}"));
    mib * (1u64 << 20) as f64
}

/// The honesty test: for the three real models at 512, 2048 and 8192 tokens
/// the measured peak RSS of `alc run` is within ±10 % of `alc fit`'s estimate.
#[test]
fn estimate_matches_measured_peak_rss() {
    let tmp = tempfile::tempdir().unwrap();
    let mut worst: f64 = 0.0;
    for m in [SMOL, QWEN, GEMMA] {
        let Some(model) = alc_testdata::model(m) else {
            return;
        };
        for ctx in [512usize, 2048, 8192] {
            let v = json(
                tmp.path(),
                &[
                    "fit",
                    s(&model),
                    "--ctx",
                    &ctx.to_string(),
                    "-t",
                    "2",
                    "--json",
                ],
            );
            let est = v["total_bytes"].as_f64().unwrap();
            let e = &v["estimate"];
            let parts: u64 = [
                "weights_bytes",
                "embedding_rows_bytes",
                "kv_cache_bytes",
                "activations_bytes",
                "backend_scratch_bytes",
                "header_bytes",
                "metadata_heap_bytes",
                "tokenizer_bytes",
                "sampler_bytes",
                "runtime_bytes",
            ]
            .iter()
            .map(|k| e[*k].as_u64().unwrap_or_else(|| panic!("{k} missing")))
            .sum();
            assert_eq!(parts as f64, est, "total_bytes is the sum of the parts");
            assert_eq!(e["ctx"], ctx);
            let got = measured_peak(tmp.path(), &model, ctx);
            let ratio = got / est;
            eprintln!("{m} ctx {ctx}: measured {got:.0} B, estimate {est:.0} B, ratio {ratio:.3}");
            assert!(
                (0.9..=1.1).contains(&ratio),
                "{m} at ctx {ctx}: measured peak RSS {got} vs estimate {est} (ratio {ratio:.3})"
            );
            worst = worst.max((ratio - 1.0).abs());
        }
    }
    eprintln!("worst deviation {:.1} %", worst * 100.0);
}

fn tiny_device_file(dir: &Path, usable_mib: u64) -> PathBuf {
    let p = dir.join("devices.toml");
    std::fs::write(
        &p,
        format!(
            "[[device]]\nid = \"lab-glasses\"\nname = \"Lab glasses\"\nclass = \"android-wearable\"\nram_mib = {}\nos_reserve_mib = 256\ngpu = \"none\"\nbackend = \"cpu\"\n",
            usable_mib + 256
        ),
    )
    .unwrap();
    p
}

#[test]
fn verdicts_largest_context_and_exit_codes() {
    let Some(model) = alc_testdata::model(SMOL) else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let home = tmp.path();

    let d = json(home, &["devices", "--json"]);
    assert_eq!(d["schema"], "alc.devices/1");
    let list = d["devices"].as_array().unwrap();
    assert_eq!(list.len(), 15);
    for x in list {
        let (ram, res, use_) = (
            x["ram_bytes"].as_u64().unwrap(),
            x["os_reserve_bytes"].as_u64().unwrap(),
            x["usable_bytes"].as_u64().unwrap(),
        );
        assert_eq!(ram - res, use_, "{x}");
    }

    // Every device gets a verdict without --device.
    let v = json(home, &["fit", s(&model), "--ctx", "2048", "--json"]);
    assert_eq!(v["schema"], "alc.fit/1");
    assert_eq!(v["devices"].as_array().unwrap().len(), 15);
    assert!(v.get("verdict").is_none());
    let total = v["total_bytes"].as_u64().unwrap();

    // A device with room for 1.5× the estimate: fits; for 1.05×: tight; 0.8×: no.
    for (factor, verdict, code) in [
        (1.5, "fits", 0),
        (1.05, "tight", 0),
        (0.8, "does-not-fit", 1),
    ] {
        let usable = ((total as f64 * factor) as u64).div_ceil(1 << 20);
        let f = tiny_device_file(home, usable);
        let out = alc(
            home,
            &[
                "fit",
                s(&model),
                "--ctx",
                "2048",
                "--device",
                "lab-glasses",
                "--devices",
                s(&f),
                "--json",
            ],
        );
        assert_eq!(out.status.code(), Some(code), "factor {factor}");
        let r: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(r["verdict"], verdict, "factor {factor}");
        let dev = &r["devices"][0];
        assert_eq!(dev["device"]["source"], s(&f));
        assert_eq!(dev["verdict"], verdict);
        // The largest context: its estimate fits, one more token does not (unless
        // it is the model's training context).
        let usable_b = dev["device"]["usable_bytes"].as_u64().unwrap();
        let max_ctx = dev["max_ctx"].as_u64().unwrap();
        let at = |c: u64| {
            json(home, &["fit", s(&model), "--ctx", &c.to_string(), "--json"])["total_bytes"]
                .as_u64()
                .unwrap()
        };
        assert!(at(max_ctx) <= usable_b);
        if max_ctx < 8192 {
            assert!(
                at(max_ctx + 1) > usable_b,
                "factor {factor}: max_ctx {max_ctx}"
            );
        }
        assert_eq!(
            max_ctx >= 2048,
            code == 0,
            "factor {factor}: max_ctx {max_ctx}"
        );
    }

    // Text output names the device, the verdict and the largest context.
    let out = alc(
        home,
        &["fit", s(&model), "--device", "hmt-1", "--ctx", "2048"],
    );
    assert!(out.status.success());
    let t = String::from_utf8(out.stdout).unwrap();
    assert!(t.contains("KV cache") && t.contains("total"), "{t}");
    assert!(
        t.contains("realwear-hmt-1 (RealWear HMT-1")
            && t.contains(": fits (")
            && t.contains("largest context 8192"),
        "{t}"
    );
}

/// Exit code `code` and one `error:` line naming `want`.
#[track_caller]
fn fails(home: &Path, args: &[&str], code: i32, want: &str) {
    let out = alc(home, args);
    assert_eq!(out.status.code(), Some(code), "alc {args:?}");
    let err = String::from_utf8(out.stderr).unwrap();
    let lines: Vec<&str> = err.lines().filter(|l| !l.is_empty()).collect();
    assert_eq!(lines.len(), 1, "{err}");
    assert!(
        lines[0].starts_with("error: ") && lines[0].contains(want),
        "want {want:?}: {err}"
    );
}

#[test]
fn bad_input() {
    let Some(model) = alc_testdata::model(SMOL) else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let home = tmp.path();
    let m = s(&model);
    fails(
        home,
        &["fit", m, "--device", "hmt-2"],
        1,
        "unknown device 'hmt-2'",
    );
    fails(
        home,
        &["fit", m, "--ctx", "0"],
        1,
        "--ctx 0 is out of range",
    );
    fails(home, &["fit", m, "--ubatch", "9000"], 1, "--ubatch 9000");
    fails(home, &["fit", m, "-t", "0"], 1, "--threads");
    let bad = home.join("bad.toml");
    std::fs::write(
        &bad,
        "[[device]]\nid = \"x\"\nclass = \"fridge\"\nram_mib = 1\n",
    )
    .unwrap();
    fails(
        home,
        &["devices", "--devices", s(&bad)],
        1,
        "line 3: unknown variant `fridge`",
    );

    // A truncated package: exit 2, the file named.
    let bytes = std::fs::read(&model).unwrap();
    let cut = home.join("cut.gguf");
    std::fs::write(&cut, &bytes[..4096]).unwrap();
    fails(home, &["fit", s(&cut)], 2, "cut.gguf");
    fails(home, &["fit", s(&home.join("none.gguf"))], 2, "none.gguf");

    // A sealed package is refused with the way out.
    let key = home.join("k.key");
    let sealed = home.join("smol.ava3");
    let out = alc(
        home,
        &["seal", m, "-o", s(&sealed), "--new-key-file", s(&key)],
    );
    assert!(out.status.success());
    fails(home, &["fit", s(&sealed)], 2, "is sealed");
}

#[test]
fn recommend_ranks_the_registry() {
    let (Some(smol), Some(gemma)) = (alc_testdata::model(SMOL), alc_testdata::model(GEMMA)) else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let home = tmp.path().join("home");
    for (p, name) in [(&smol, "smol"), (&gemma, "gemma")] {
        let out = alc(&home, &["add", s(p), "--name", name]);
        assert!(out.status.success());
    }
    // A registered file that is not a runnable model: listed as unreadable.
    let junk = tmp.path().join("junk.gguf");
    std::fs::write(
        &junk,
        alc_testdata::gguf_bytes(&[(
            "general.architecture",
            alc_testdata::Kv::Str("llama".into()),
        )]),
    )
    .unwrap();
    assert!(alc(&home, &["add", s(&junk), "--name", "junk"])
        .status
        .success());

    // A phone: both fit, the larger model first.
    let v = json(
        &home,
        &[
            "fit",
            "--device",
            "galaxy-s24",
            "--recommend",
            "--ctx",
            "2048",
            "--json",
        ],
    );
    let names: Vec<&str> = v["packages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["gemma", "smol"]);
    assert_eq!(v["unreadable"][0]["name"], "junk");
    // A device with 250 MiB usable: only SmolLM2 (about 170 MiB at 2048) fits.
    let f = tiny_device_file(tmp.path(), 250);
    let v = json(
        &home,
        &[
            "fit",
            "--device",
            "lab-glasses",
            "--devices",
            s(&f),
            "--recommend",
            "--ctx",
            "2048",
            "--json",
        ],
    );
    let p = v["packages"].as_array().unwrap();
    assert_eq!(p[0]["name"], "smol");
    assert_eq!(p[0]["report"]["verdict"], "fits");
    assert_eq!(p[1]["name"], "gemma");
    assert_eq!(p[1]["report"]["verdict"], "does-not-fit");
    // ALC_HOME/devices.toml is read without --devices.
    std::fs::copy(&f, home.join("devices.toml")).unwrap();
    let out = alc(
        &home,
        &[
            "fit",
            "--device",
            "lab-glasses",
            "--recommend",
            "--ctx",
            "2048",
        ],
    );
    assert!(out.status.success());
    let t = String::from_utf8(out.stdout).unwrap();
    assert!(
        t.contains("lab-glasses (Lab glasses") && t.contains("junk: cannot estimate"),
        "{t}"
    );
}

/// A vision-language package's estimate has its vision parts: the tower's bytes
/// exactly (and out of `weights_bytes`), one image's working set (at least the
/// largest grid's pixels), both in the total; a text-only package has neither.
#[test]
fn vision_language_packages_count_the_tower_and_one_image() {
    let home = tempfile::tempdir().unwrap();
    let out = tempfile::tempdir().unwrap();
    let fixture = alc_testdata::workspace().join("tests/fixtures/hf/idefics3");
    let o = alc(
        home.path(),
        &[
            "compile",
            s(&fixture),
            "--quant",
            "q8f16_1",
            "--out",
            s(out.path()),
            "--no-register",
            "--name",
            "vlm.alm",
        ],
    );
    assert!(o.status.success(), "compile failed");
    let pkg = out.path().join("vlm.alm");
    let v = json(home.path(), &["fit", s(&pkg), "--ctx", "256", "--json"]);
    let e = &v["estimate"];
    let f = alc_format::GgufFile::open(&pkg).unwrap();
    let (mut vision, mut all) = (0u64, 0u64);
    for t in f.tensors() {
        all += t.bytes;
        if t.name.starts_with("v.") || t.name.starts_with("mm.") {
            vision += t.bytes;
        }
    }
    assert!(vision > 0);
    assert_eq!(e["vision_weights_bytes"].as_u64(), Some(vision));
    // The text weights are every other tensor, less an untied embedding table (its
    // own part, `embedding_rows_bytes`).
    let emb = f.tensor("token_embd.weight").unwrap().bytes;
    let untied = f.tensor("output.weight").is_some();
    let text = all - vision - if untied { emb } else { 0 };
    assert_eq!(e["weights_bytes"].as_u64(), Some(text));
    // The fixture's processor: 64-px tiles, longest edge 256 → 4 x 4 + 1 tiles of
    // 3 x 64 x 64 floats.
    let pixels = 17 * 3 * 64 * 64 * 4;
    let image = e["image_bytes"].as_u64().unwrap();
    assert!(image > pixels, "image_bytes {image}");
    let parts: u64 = e
        .as_object()
        .unwrap()
        .iter()
        .filter(|(k, _)| k.ends_with("_bytes") && *k != "total_bytes")
        .map(|(_, v)| v.as_u64().unwrap())
        .sum();
    assert_eq!(e["total_bytes"].as_u64(), Some(parts));
    // Text-only: no vision parts.
    if let Some(smol) = alc_testdata::model(SMOL) {
        let t = json(home.path(), &["fit", s(&smol), "--ctx", "256", "--json"]);
        assert_eq!(t["estimate"]["vision_weights_bytes"], 0);
        assert_eq!(t["estimate"]["image_bytes"], 0);
    }
}
