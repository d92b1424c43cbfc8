//! Bad inputs to `alc compile`: each fails with one line that names the problem
//! (the file, key, tensor or option) and how to fix it, without a panic and
//! without leaving anything in the output directory.
//!
//! Two cases also go through the `alc` binary (exit status, one `error:` line).
//! The binary belongs to alc-cli, so `CARGO_BIN_EXE_alc` does not exist here and
//! `cargo test --workspace` does not build `target/<profile>/alc`; the test runs
//! `cargo build -p alc-cli --bin alc` for the profile it was built with (a no-op
//! when the binary is current) and takes the path cargo reports. `ALC_BIN`
//! overrides that.

mod common;

use alc_convert::{compile, CompileOptions};
use common::*;
use safetensors::Dtype;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// A copy of a fixture in a temp dir (`<tmp>/<arch>`), its options (q4f16_1, out
/// dir `<tmp>/out`) and the temp dir.
fn copied(arch: &str) -> (tempfile::TempDir, PathBuf, CompileOptions) {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join(arch);
    std::fs::create_dir_all(&dir).unwrap();
    for e in std::fs::read_dir(fixture(arch)).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), dir.join(e.file_name())).unwrap();
    }
    let o = options(&dir, &tmp.path().join("out"), "q4f16_1");
    (tmp, dir, o)
}

/// Runs a compile that must fail; returns its message after checking it is one
/// line and that the output directory holds nothing (no package, temp file or
/// work dir).
fn fails(o: &CompileOptions) -> String {
    let msg = match compile(o, &mut |_| {}) {
        Ok(r) => panic!("compile succeeded: {r:?}"),
        Err(e) => e.to_string(),
    };
    eprintln!("{msg}");
    assert!(!msg.trim().is_empty());
    assert!(!msg.contains('\n'), "not one line: {msg:?}");
    let left: Vec<String> = std::fs::read_dir(&o.out_dir)
        .map(|rd| {
            rd.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    assert!(left.is_empty(), "left in the out dir: {left:?}");
    msg
}

#[track_caller]
fn has(msg: &str, wants: &[&str]) {
    for w in wants {
        assert!(
            msg.to_lowercase().contains(&w.to_lowercase()),
            "'{w}' not in: {msg}"
        );
    }
}

fn f32_zeros(name: &str, shape: &[usize]) -> Owned {
    let n: usize = shape.iter().product();
    (name.into(), Dtype::F32, shape.to_vec(), vec![0u8; 4 * n])
}

fn edit_config(dir: &Path, edit: impl FnOnce(&mut serde_json::Value)) {
    let p = dir.join("config.json");
    let mut cfg: serde_json::Value = serde_json::from_slice(&std::fs::read(&p).unwrap()).unwrap();
    edit(&mut cfg);
    std::fs::write(&p, serde_json::to_vec_pretty(&cfg).unwrap()).unwrap();
}

// ---------------------------------------------------------------------------
// The checkpoint directory and its files.

#[test]
fn missing_directory() {
    let tmp = tempfile::tempdir().unwrap();
    let nope = tmp.path().join("no-such-checkpoint");
    let msg = fails(&options(&nope, &tmp.path().join("out"), "q4f16_1"));
    has(
        &msg,
        &["no-such-checkpoint", "missing", "checkpoint directory"],
    );
}

#[test]
fn directory_without_config_json() {
    let (_t, dir, o) = copied("llama");
    std::fs::remove_file(dir.join("config.json")).unwrap();
    let msg = fails(&o);
    has(&msg, &["config.json", "missing"]);
}

#[test]
fn config_json_is_not_json() {
    let (_t, dir, o) = copied("llama");
    std::fs::write(dir.join("config.json"), "{\"architectures\": [\"Llama").unwrap();
    let msg = fails(&o);
    has(&msg, &["config.json", "not valid JSON"]);
}

#[test]
fn unsupported_architecture_lists_the_supported_ones() {
    let (_t, dir, o) = copied("llama");
    edit_config(&dir, |c| {
        c["architectures"] = serde_json::json!(["MambaForCausalLM"])
    });
    let msg = fails(&o);
    has(
        &msg,
        &[
            "MambaForCausalLM",
            "not supported",
            "supported:",
            "LlamaForCausalLM",
            "MistralForCausalLM",
            "Phi3ForCausalLM",
            "Qwen2ForCausalLM",
            "Qwen3ForCausalLM",
            "Gemma2ForCausalLM",
            "Gemma3ForCausalLM",
        ],
    );
}

#[test]
fn missing_tokenizer_json() {
    let (_t, dir, o) = copied("llama");
    std::fs::remove_file(dir.join("tokenizer.json")).unwrap();
    let msg = fails(&o);
    has(&msg, &["tokenizer.json", "missing"]);
}

// ---------------------------------------------------------------------------
// Tensors.

#[test]
fn tensor_with_the_wrong_shape() {
    let (_t, dir, o) = copied("llama");
    rewrite_safetensors(&dir.join("model.safetensors"), |ts| {
        let t = ts
            .iter_mut()
            .find(|t| t.0 == "model.layers.0.self_attn.q_proj.weight")
            .unwrap();
        *t = f32_zeros(&t.0, &[48, 64]);
    });
    let msg = fails(&o);
    has(
        &msg,
        &[
            "model.layers.0.self_attn.q_proj.weight",
            "[48, 64]",
            "expected [64, 64]",
            "config.json",
        ],
    );
}

#[test]
fn missing_required_tensor() {
    let (_t, dir, o) = copied("llama");
    rewrite_safetensors(&dir.join("model.safetensors"), |ts| {
        ts.retain(|t| t.0 != "model.layers.1.mlp.down_proj.weight");
    });
    let msg = fails(&o);
    has(&msg, &["lacks tensor", "re-download"]);
    assert!(
        msg.contains("blk.1.ffn_down.weight")
            || msg.contains("model.layers.1.mlp.down_proj.weight"),
        "the missing tensor is not named: {msg}"
    );
}

#[test]
fn unexpected_extra_tensor() {
    let (_t, dir, o) = copied("llama");
    let st = dir.join("model.safetensors");
    rewrite_safetensors(&st, |ts| {
        ts.push(f32_zeros("model.layers.0.mlp.extra_proj.weight", &[8, 64]))
    });
    let msg = fails(&o);
    has(
        &msg,
        &[
            "model.layers.0.mlp.extra_proj.weight",
            "not part of a llama model",
            "architectures",
        ],
    );

    // A layer the config does not have.
    let (_t2, dir, o) = copied("llama");
    rewrite_safetensors(&dir.join("model.safetensors"), |ts| {
        ts.push(f32_zeros(
            "model.layers.7.self_attn.q_proj.weight",
            &[64, 64],
        ))
    });
    let msg = fails(&o);
    has(
        &msg,
        &[
            "model.layers.7.self_attn.q_proj.weight",
            "num_hidden_layers",
        ],
    );
}

#[test]
fn shard_listed_in_the_index_is_missing() {
    let (_t, dir, o) = copied("qwen2");
    std::fs::remove_file(dir.join("model-00002-of-00002.safetensors")).unwrap();
    let msg = fails(&o);
    has(
        &msg,
        &[
            "model-00002-of-00002.safetensors",
            "model.safetensors.index.json",
            "missing",
            "re-download",
        ],
    );
}

#[test]
fn truncated_safetensors_file() {
    let (_t, dir, o) = copied("llama");
    let p = dir.join("model.safetensors");
    let len = std::fs::metadata(&p).unwrap().len();
    std::fs::File::options()
        .write(true)
        .open(&p)
        .unwrap()
        .set_len(len - 1000)
        .unwrap();
    let msg = fails(&o);
    has(&msg, &["model.safetensors", "truncated", "re-download"]);

    // Cut inside the header too.
    std::fs::File::options()
        .write(true)
        .open(&p)
        .unwrap()
        .set_len(100)
        .unwrap();
    let msg = fails(&o);
    has(&msg, &["model.safetensors", "truncated", "re-download"]);
}

// ---------------------------------------------------------------------------
// Options.

#[test]
fn unknown_target() {
    let tmp = tempfile::tempdir().unwrap();
    let mut o = options(&fixture("llama"), tmp.path(), "q4f16_1");
    o.target = "tpu".into();
    let msg = fails(&o);
    has(&msg, &["--target", "tpu", "supported", "cpu", "vulkan"]);
}

#[test]
fn unknown_quant() {
    let tmp = tempfile::tempdir().unwrap();
    let msg = fails(&options(&fixture("llama"), tmp.path(), "int3"));
    has(
        &msg,
        &["--quant", "int3", "supported", "q4f16_1", "q8f16_1"],
    );
}

/// The issue's own example: alc's bf16-scaled block type is not a vulkan type.
#[test]
fn q4bf16_1_on_vulkan_points_to_q4f16_1() {
    let tmp = tempfile::tempdir().unwrap();
    let mut o = options(&fixture("llama"), tmp.path(), "q4bf16_1");
    o.target = "vulkan".into();
    let msg = fails(&o);
    has(&msg, &["Q4BF16_1", "vulkan", "--quant q4f16_1"]);
    assert_eq!(
        std::fs::read_dir(tmp.path()).unwrap().count(),
        0,
        "nothing written"
    );
}

#[test]
fn ctx_beyond_the_trained_context() {
    let tmp = tempfile::tempdir().unwrap();
    let mut o = options(&fixture("llama"), tmp.path(), "q4f16_1");
    o.ctx = Some(100_000);
    let msg = fails(&o);
    // The fixture's max_position_embeddings is 256.
    has(&msg, &["--ctx 100000", "256", "--ctx 256 or less"]);
}

#[test]
fn ctx_zero() {
    let tmp = tempfile::tempdir().unwrap();
    let mut o = options(&fixture("llama"), tmp.path(), "q4f16_1");
    o.ctx = Some(0);
    let msg = fails(&o);
    has(&msg, &["--ctx 0", "at least 1"]);
}

#[test]
fn tensor_type_overrides() {
    let tmp = tempfile::tempdir().unwrap();
    let mut o = options(&fixture("llama"), tmp.path(), "q4f16_1");

    o.overrides = vec!["blk.*.ffn_down.weight=q2_k".into()];
    let msg = fails(&o);
    has(&msg, &["--tensor-type", "q2_k", "supported", "q8_0"]);

    o.overrides = vec!["blk.*.ffn_down.weight".into()];
    let msg = fails(&o);
    has(&msg, &["--tensor-type", "PATTERN=TYPE"]);

    // The fixture's rows are 64 long; q4_K blocks are 256.
    o.overrides = vec!["blk.*.ffn_gate.weight=q4_k".into()];
    let msg = fails(&o);
    has(
        &msg,
        &[
            "--tensor-type",
            "blk.0.ffn_gate.weight",
            "64",
            "q4_k",
            "256",
        ],
    );
}

/// A llama checkpoint with rows of 256 (so q4_k_m picks K-quants) and zero
/// weights, in `<tmp>/wide`.
fn wide_checkpoint(tmp: &Path) -> PathBuf {
    let dir = tmp.join("wide");
    std::fs::create_dir_all(&dir).unwrap();
    for f in ["tokenizer.json", "tokenizer_config.json"] {
        std::fs::copy(fixture("llama").join(f), dir.join(f)).unwrap();
    }
    std::fs::copy(
        fixture("llama").join("config.json"),
        dir.join("config.json"),
    )
    .unwrap();
    let (d, ff, hd, heads, kv) = (256, 512, 64, 4, 2);
    edit_config(&dir, |c| {
        c["hidden_size"] = d.into();
        c["intermediate_size"] = ff.into();
        c["num_hidden_layers"] = 1.into();
        c["num_attention_heads"] = heads.into();
        c["num_key_value_heads"] = kv.into();
        c["head_dim"] = hd.into();
    });
    let p = "model.layers.0.";
    let ts = vec![
        f32_zeros("model.embed_tokens.weight", &[384, d]),
        f32_zeros("model.norm.weight", &[d]),
        f32_zeros(&format!("{p}input_layernorm.weight"), &[d]),
        f32_zeros(&format!("{p}post_attention_layernorm.weight"), &[d]),
        f32_zeros(&format!("{p}self_attn.q_proj.weight"), &[heads * hd, d]),
        f32_zeros(&format!("{p}self_attn.k_proj.weight"), &[kv * hd, d]),
        f32_zeros(&format!("{p}self_attn.v_proj.weight"), &[kv * hd, d]),
        f32_zeros(&format!("{p}self_attn.o_proj.weight"), &[d, heads * hd]),
        f32_zeros(&format!("{p}mlp.gate_proj.weight"), &[ff, d]),
        f32_zeros(&format!("{p}mlp.up_proj.weight"), &[ff, d]),
        f32_zeros(&format!("{p}mlp.down_proj.weight"), &[d, ff]),
    ];
    write_safetensors(&dir.join("model.safetensors"), &ts);
    dir
}

#[test]
fn vulkan_target_with_k_quants_fails_before_converting() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = wide_checkpoint(tmp.path());
    let mut o = options(&dir, &tmp.path().join("out"), "q4_k_m");
    o.target = "vulkan".into();
    let msg = fails(&o);
    has(
        &msg,
        &["vulkan", "would be", "does not run", "--quant q4f16_1"],
    );
    assert!(!o.out_dir.exists(), "failed after creating the out dir");
}

#[test]
fn name_with_a_path_separator() {
    let tmp = tempfile::tempdir().unwrap();
    for bad in ["sub/pkg.alm", "../escape.alm", "a\\b.alm", ".hidden.alm"] {
        let mut o = options(&fixture("llama"), &tmp.path().join("out"), "q4f16_1");
        o.name = Some(bad.into());
        let msg = fails(&o);
        has(&msg, &["--name", bad, "plain file name"]);
    }
    assert!(!tmp.path().join("escape.alm").exists());
}

// ---------------------------------------------------------------------------
// Through the binary.

/// The `alc` binary of this build profile (see the module comment).
fn alc_bin() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        if let Some(p) = std::env::var_os("ALC_BIN") {
            return PathBuf::from(p);
        }
        // <target>/<profile dir>/deps/<this test binary>
        let exe = std::env::current_exe().unwrap();
        let profile_dir = exe.parent().and_then(Path::parent).unwrap();
        let profile = match profile_dir.file_name().unwrap().to_str().unwrap() {
            "debug" => "dev",
            other => other,
        };
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let mut cmd = Command::new(cargo);
        cmd.arg("build")
            .arg("--manifest-path")
            .arg(alc_testdata::workspace().join("Cargo.toml"))
            .args(["-p", "alc-cli", "--bin", "alc", "--profile", profile])
            .arg("--message-format=json-render-diagnostics");
        let target = profile_dir.parent().unwrap();
        if target.join("CACHEDIR.TAG").exists() {
            cmd.arg("--target-dir").arg(target);
        }
        let out = cmd.output().expect("running cargo to build the alc binary");
        assert!(
            out.status.success(),
            "cargo build -p alc-cli failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let stdout = String::from_utf8(out.stdout).unwrap();
        stdout
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter(|m| m["reason"] == "compiler-artifact" && m["target"]["name"] == "alc")
            .find_map(|m| m["executable"].as_str().map(PathBuf::from))
            .expect("cargo reported no alc executable")
    })
}

/// Runs `alc compile ARGS` (stdin closed, not a terminal); returns the exit code
/// and stderr's lines.
fn alc_compile(args: &[&str]) -> (Option<i32>, Vec<String>, String) {
    // A compile that succeeded would register its package: never in the user's store.
    let home = tempfile::tempdir().unwrap();
    let out = Command::new(alc_bin())
        .env("ALC_HOME", home.path())
        .arg("compile")
        .args(args)
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    let stderr = String::from_utf8(out.stderr).unwrap();
    eprint!("{stderr}");
    (
        out.status.code(),
        stderr.lines().map(str::to_string).collect(),
        String::from_utf8(out.stdout).unwrap(),
    )
}

/// Exactly one `error:` line, the last one; anything before it is a progress
/// line (`compile: ...`, what the CLI prints on stderr when it is not a terminal).
#[track_caller]
fn one_error_line(lines: &[String]) -> &str {
    let errors: Vec<&String> = lines.iter().filter(|l| l.starts_with("error:")).collect();
    assert_eq!(errors.len(), 1, "stderr: {lines:#?}");
    assert!(lines.last().unwrap().starts_with("error:"), "{lines:#?}");
    for l in &lines[..lines.len() - 1] {
        let json_event =
            serde_json::from_str::<serde_json::Value>(l).is_ok_and(|v| v.get("event").is_some());
        assert!(
            l.starts_with("compile: ") || json_event,
            "unexpected stderr line {l:?}"
        );
    }
    lines.last().unwrap()
}

#[test]
fn cli_reports_one_error_line() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let out_s = out.to_str().unwrap();

    let nope = tmp.path().join("no-such-checkpoint");
    let (code, lines, stdout) = alc_compile(&[
        nope.to_str().unwrap(),
        "--quant",
        "q4f16_1",
        "--out",
        out_s,
        "--name-scheme",
        "plain",
        "--json",
    ]);
    assert_eq!(code, Some(1));
    let e = one_error_line(&lines);
    has(
        e,
        &["no-such-checkpoint", "missing", "checkpoint directory"],
    );
    assert_eq!(stdout, "", "nothing on stdout for a failure");

    let (code, lines, stdout) = alc_compile(&[
        fixture("llama").to_str().unwrap(),
        "--quant",
        "int3",
        "--out",
        out_s,
        "--name-scheme",
        "plain",
    ]);
    assert_eq!(code, Some(1));
    let e = one_error_line(&lines);
    has(e, &["--quant", "int3", "supported", "q4f16_1"]);
    assert_eq!(stdout, "");
    assert!(!out.exists() || std::fs::read_dir(&out).unwrap().next().is_none());
}

/// An I/O error's cause must not be printed twice: `ConvertError::Io` already
/// shows its source, and the CLI joins the whole `source()` chain.
#[test]
fn cli_prints_an_io_cause_once() {
    let (tmp, dir, _) = copied("llama");
    std::fs::remove_file(dir.join("config.json")).unwrap();
    std::fs::create_dir(dir.join("config.json")).unwrap();
    let out = tmp.path().join("out");
    let (code, lines, _) = alc_compile(&[
        dir.to_str().unwrap(),
        "--quant",
        "q4f16_1",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(code, Some(1));
    let e = one_error_line(&lines);
    has(e, &["config.json"]);
    assert_eq!(e.matches("os error").count(), 1, "cause repeated: {e}");
}

/// `--json`: the report on stdout, progress as JSON lines on stderr (a good compile,
/// for contrast with the failures above).
#[test]
fn cli_json_progress_is_json_lines() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let (code, lines, stdout) = alc_compile(&[
        fixture("llama").to_str().unwrap(),
        "--quant",
        "q8f16_1",
        "--out",
        out.to_str().unwrap(),
        "--json",
    ]);
    assert_eq!(code, Some(0), "{lines:#?}");
    let report: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(report["verification"], "verified");
    let events: Vec<serde_json::Value> = lines
        .iter()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l:?}: {e}")))
        .collect();
    let tensors: Vec<&serde_json::Value> =
        events.iter().filter(|e| e["event"] == "tensor").collect();
    let n = report["tensors"].as_array().unwrap().len();
    assert_eq!(tensors.len(), n);
    assert_eq!(tensors.last().unwrap()["count"], n);
    assert!(events.iter().any(|e| e["stage"] == "self-check"));
}
