//! Packages `alc compile` writes load unchanged in llama.cpp, and llama.cpp computes
//! the model the checkpoint defines.
//!
//! Every tiny checkpoint (tests/fixtures/hf) is compiled to f32, q8f16_1 and
//! q4f16_1 (all GGUF standard tensor types) and handed to llama.cpp through
//! scripts/llamacpp_check.py, which drives the `xllamacpp` wheel (llama.cpp's
//! server as a Python extension; CI installs the version pinned in .ci/run,
//! 2026.10.11549 = llama.cpp b11549). The script returns llama.cpp's
//! full-vocabulary log-softmax at each of the 39 positions of the hf-tiny golden
//! sequence, 24 greedily decoded tokens after it, and the ids of the tokenizer
//! golden's 20 texts. Checked per package:
//!
//! - it loads;
//! - tokenization equals the `tokenizers` library's ids (tests/goldens/hf-tiny/tokenizer.json);
//! - the hyperparameters llama.cpp reports (sliding window, which layers slide,
//!   rope bases, q scale) are the ones alc reads from the same file;
//! - llama.cpp's logits agree with alc's on the same package (CPU backend),
//!   compared as rows centred to mean 0 (the server gives log-softmax, which
//!   fixes the logits up to a per-row constant). Relative L2 error at most 3e-3
//!   for f32 (measured 2e-5 to 3e-4, summation order) and 3e-2 for the quantized
//!   packages. Quantized, most positions agree to 2e-7 (alc's kernels do ggml's
//!   arithmetic), but where a float difference of 1e-7 moves one activation
//!   across a rounding step of ggml's 8-bit activation quantization, that
//!   position (and, through K/V, later ones) moves by about 1e-2; measured
//!   overall 2e-7 to 1.2e-2. Conversion mistakes move logits by 0.08 to 1.1
//!   (scripts/goldens/README.md). For f32 also with no top-1 flip where alc's
//!   top two differ by more than 1e-2;
//! - f32 only: llama.cpp's logits agree with transformers' float32 logits
//!   (tests/goldens/hf-tiny) within 3e-3 (hf_tiny.rs bounds alc's CPU backend at
//!   2.5e-3; llama.cpp also keeps K/V in f16; measured 1.1e-3 to 1.5e-3), with no
//!   top-1 flip where transformers' top two differ by more than 1e-2;
//! - llama.cpp's greedy continuation equals alc's (end-of-generation ids
//!   excluded on both sides) up to the first step whose top-2 margin is within
//!   twice the largest logit difference seen between the two engines, and for at
//!   least 16 tokens unless such a near tie comes first.
//!
//! Known difference, checked rather than hidden: llama.cpp ignores
//! `{arch}.attention.scale` for gemma2 and gemma3. It derives the q scale from
//! the layer count (1/sqrt(n_embd/n_head) for the 27B sizes, else
//! 1/sqrt(head_dim)): `load_hparams`, cases LLM_ARCH_GEMMA2 / LLM_ARCH_GEMMA3, in
//! src/llama-model.cpp of ggml-org/llama.cpp@00342301, and
//! `llama_model_gemma2::load_arch_hparams` in src/models/gemma2.cpp of
//! ggml-org/llama.cpp@82234e08 (the per-model layout of b11549, which has
//! `llama_model_gemma3::load_arch_hparams` too); b11549 logs
//! `f_attn_scale = 2.5e-01` for both fixtures. The fixtures set
//! query_pre_attn_scalar to 24 and 32 with head_dim 16 on purpose, so llama.cpp
//! cannot reproduce transformers there (relative error 0.081 and 0.16, the
//! values scripts/goldens/gen_tiny_hf.py --parts check lists for a
//! "1/sqrt(head_dim) scale" mistake). Published Gemma 2/3 checkpoints set
//! query_pre_attn_scalar to what llama.cpp derives. For such packages the test
//! asserts that llama.cpp loads and runs them, and that its logits equal alc's
//! on a copy of the package whose `attention.scale` holds llama.cpp's value: the
//! scale is then the only difference (measured 2e-7 to 1.6e-4).
//!
//! Not affected: the sliding-window layer pattern. llama.cpp b11549 runs the
//! gemma3 fixture's layers as [sliding, full], alc's per-layer
//! `gemma3.attention.sliding_window_pattern`, not its built-in 5:1 pattern
//! (older llama.cpp hard-coded `set_swa_pattern(6)` for gemma3 in the function
//! cited above, @00342301, and ignored the key); gemma2's [sliding, full] is
//! also llama.cpp's default period of 2.
//!
//! A package whose `general.name` contains "phi3" or "phi-3" does not load when
//! its vocabulary lacks any of "</s>", "<unk>", "<s>", "<|endoftext|>": see
//! `phi3_name_rule` below. The test then also checks a copy with the name changed,
//! to show whether that is the only problem (it stays a failure).
//!
//! Skipped (passes, with a message) when `python3 -c "import xllamacpp"` fails.
//! Set ALC_PYTHON to use another interpreter.

mod common;

use alc_convert::{compile, ConvertError, Outcome};
use alc_kernels::Backend;
use alc_models::Logits;
use common::*;
use serde_json::Value as Json;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

const ARCHS: [&str; 7] = [
    "llama", "mistral", "qwen2", "qwen3", "gemma2", "gemma3", "phi3",
];
const QUANTS: [&str; 3] = ["f32", "q8f16_1", "q4f16_1"];
/// Greedy tokens decoded after the golden sequence.
const GREEDY: usize = 24;
/// Greedy tokens that must agree unless a near tie comes first.
const GREEDY_MIN: usize = 16;

fn python() -> String {
    std::env::var("ALC_PYTHON").unwrap_or_else(|_| "python3".into())
}

/// Why the test cannot run here, if it cannot.
fn xllamacpp_missing() -> Option<String> {
    match Command::new(python())
        .args(["-c", "import xllamacpp"])
        .output()
    {
        Ok(o) if o.status.success() => None,
        Ok(o) => Some(
            String::from_utf8_lossy(&o.stderr)
                .lines()
                .last()
                .unwrap_or("")
                .to_string(),
        ),
        Err(e) => Some(format!("cannot run {}: {e}", python())),
    }
}

fn workspace() -> PathBuf {
    alc_testdata::workspace()
}

fn read_json(path: &Path) -> Json {
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

fn u32s(v: &Json) -> Vec<u32> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_u64().unwrap() as u32)
        .collect()
}

fn rows(v: &Json) -> Vec<Vec<f32>> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|r| {
            r.as_array()
                .unwrap()
                .iter()
                // null: probability 0 in float32
                .map(|x| x.as_f64().map_or(f32::NEG_INFINITY, |f| f as f32))
                .collect()
        })
        .collect()
}

/// Run scripts/llamacpp_check.py on a package.
fn llamacpp(pkg: &Path, tokens: &[u32], texts: &Path) -> Json {
    let toks: Vec<String> = tokens.iter().map(|t| t.to_string()).collect();
    let out = Command::new(python())
        .arg(workspace().join("scripts/llamacpp_check.py"))
        .arg(pkg)
        .args(["--tokens", &toks.join(",")])
        .args(["--greedy", &GREEDY.to_string()])
        .arg("--texts-json")
        .arg(texts)
        // One thread: the results do not depend on it, and on a busy 2-core
        // machine it is the fastest for these tiny models.
        .args(["--threads", "1"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    match serde_json::from_str::<Json>(stdout.trim()) {
        Ok(j) => j,
        Err(_) => panic!(
            "{}: llamacpp_check.py failed ({}):\n{}",
            pkg.display(),
            out.status,
            String::from_utf8_lossy(&out.stderr)
        ),
    }
}

/// The model of a package (as bytes), ready on a backend.
fn model(bytes: Vec<u8>, be: &dyn Backend) -> alc_models::Model {
    let f = Arc::new(alc_format::GgufFile::from_bytes("package", bytes).unwrap());
    let mut m = alc_models::Model::from_gguf(f).unwrap();
    m.pack_weights(be);
    m
}

/// All-position logits.
fn logits(m: &alc_models::Model, be: &dyn Backend, tokens: &[u32]) -> Vec<Vec<f32>> {
    let mut st = m.new_state(tokens.len(), tokens.len()).unwrap();
    m.forward(be, &mut st, tokens, Logits::All)
        .unwrap()
        .chunks(m.hp.n_vocab)
        .map(|c| c.to_vec())
        .collect()
}

/// Greedy continuation that never picks an end-of-generation id, with each step's
/// top-2 margin.
fn greedy(
    m: &alc_models::Model,
    be: &dyn Backend,
    prompt: &[u32],
    n: usize,
    eog: &[u32],
) -> Vec<(u32, f32)> {
    let mut st = m.new_state(prompt.len() + n, prompt.len()).unwrap();
    let mut l = m
        .forward(be, &mut st, prompt, Logits::Last)
        .unwrap()
        .to_vec();
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let mut best = (u32::MAX, f32::NEG_INFINITY);
        let mut second = f32::NEG_INFINITY;
        for (i, &v) in l.iter().enumerate() {
            if eog.contains(&(i as u32)) {
                continue;
            }
            if v > best.1 {
                second = best.1;
                best = (i as u32, v);
            } else if v > second {
                second = v;
            }
        }
        out.push((best.0, best.1 - second));
        l = m
            .forward(be, &mut st, &[best.0], Logits::Last)
            .unwrap()
            .to_vec();
    }
    out
}

fn centred(r: &[f32]) -> Vec<f64> {
    let mean = r.iter().map(|&x| f64::from(x)).sum::<f64>() / r.len() as f64;
    r.iter().map(|&x| f64::from(x) - mean).collect()
}

/// ‖a − b‖ / ‖b‖ over all positions of mean-centred rows, and the largest
/// absolute difference.
fn rel_err(a: &[Vec<f32>], b: &[Vec<f32>]) -> (f64, f64) {
    assert_eq!(a.len(), b.len());
    let (mut num, mut den, mut mx) = (0f64, 0f64, 0f64);
    for (ra, rb) in a.iter().zip(b) {
        assert_eq!(ra.len(), rb.len());
        for (x, y) in centred(ra).into_iter().zip(centred(rb)) {
            num += (x - y) * (x - y);
            den += y * y;
            mx = mx.max((x - y).abs());
        }
    }
    ((num / den).sqrt(), mx)
}

/// Overwrite the value of a float32 metadata key in GGUF bytes (the key is
/// stored as u64 length, bytes, then type 6 = FLOAT32 and the value).
fn patch_f32(bytes: &mut [u8], key: &str, v: f32) -> bool {
    let mut pat = (key.len() as u64).to_le_bytes().to_vec();
    pat.extend_from_slice(key.as_bytes());
    pat.extend_from_slice(&6u32.to_le_bytes());
    match bytes.windows(pat.len()).position(|w| w == pat) {
        Some(i) => {
            let at = i + pat.len();
            bytes[at..at + 4].copy_from_slice(&v.to_le_bytes());
            true
        }
        None => false,
    }
}

/// A number from llama.cpp's `print_info` lines.
fn info_f32(info: &Json, key: &str) -> Option<f32> {
    info.get(key)?.as_str()?.trim().parse().ok()
}

/// Relative difference of two hyperparameters, with llama.cpp's 2-digit printing.
fn differs(a: f32, b: f32) -> bool {
    (a - b).abs() > 0.02 * b.abs().max(1e-6)
}

struct Line {
    name: String,
    vs_hf: (f64, usize),
    vs_alc: f64,
    greedy: String,
    note: String,
}

/// What every package of one architecture is checked against.
struct Refs<'a> {
    tokens: Vec<u32>,
    hf_logits: Vec<Vec<f32>>,
    cases: &'a [Json],
    texts: &'a Path,
    be: &'a dyn Backend,
}

/// Run one package through llama.cpp and compare; `None` when it does not load.
fn check(
    c: &Refs,
    name: &str,
    quant: &str,
    pkg: &Path,
    failures: &mut Vec<String>,
    t_llama: &mut f64,
) -> Option<Line> {
    let mut fail = |m: String| failures.push(m);
    let tl = std::time::Instant::now();
    let ll = llamacpp(pkg, &c.tokens, c.texts);
    *t_llama += tl.elapsed().as_secs_f64();
    if ll["loaded"] != Json::Bool(true) {
        fail(format!(
            "{name}: llama.cpp does not load the package{}:\n{}",
            phi3_name_rule(pkg),
            ll["error"].as_str().unwrap_or("?")
        ));
        return None;
    }

    // Tokenization.
    for (got, case) in ll["tokenize"].as_array().unwrap().iter().zip(c.cases) {
        if u32s(&got["ids"]) != u32s(&case["ids"]) {
            fail(format!(
                "{name}: llama.cpp tokenizes {:?} as {:?}, tokenizers as {:?}",
                case["text"].as_str().unwrap(),
                u32s(&got["ids"]),
                u32s(&case["ids"])
            ));
        }
    }

    // Hyperparameters as llama.cpp read them, against alc's reading.
    let bytes = std::fs::read(pkg).unwrap();
    let mut m = model(bytes.clone(), c.be);
    let info = &ll["model_info"];
    let hp = &m.hp;
    let mut note = String::new();
    let ll_swa: Vec<bool> = info["swa_layers"]
        .as_array()
        .map(|a| a.iter().map(|b| b.as_bool().unwrap()).collect())
        .unwrap_or_default();
    if ll_swa != hp.swa_layers {
        fail(format!(
            "{name}: llama.cpp runs sliding-window attention in layers {ll_swa:?}, \
             the package says {:?} (attention.sliding_window_pattern)",
            hp.swa_layers
        ));
    }
    if ll_swa.iter().any(|&s| s) {
        let n_swa = info_f32(info, "n_swa").unwrap_or(0.0) as usize;
        if Some(n_swa) != hp.swa_window {
            fail(format!(
                "{name}: llama.cpp's sliding window is {n_swa}, alc's {:?}",
                hp.swa_window
            ));
        }
        let base = info_f32(info, "freq_base_swa").unwrap_or(0.0);
        if differs(base, hp.rope_base_swa) {
            fail(format!(
                "{name}: llama.cpp's rope base of sliding layers is {base}, alc's {}",
                hp.rope_base_swa
            ));
        }
    }
    let base = info_f32(info, "freq_base_train").unwrap_or(0.0);
    if differs(base, hp.rope_base) {
        fail(format!(
            "{name}: llama.cpp's rope base is {base}, alc's {}",
            hp.rope_base
        ));
    }
    let ll_scale = match info_f32(info, "f_attn_scale") {
        Some(s) if s > 0.0 => s,
        _ => 1.0 / (hp.head_dim as f32).sqrt(),
    };
    let scale_ignored = differs(ll_scale, hp.attn_scale);
    if scale_ignored {
        // The known gemma difference (module note): llama.cpp's own q
        // scale instead of the package's attention.scale. Compare with
        // alc running llama.cpp's scale.
        let key = format!("{}.attention.scale", hp.arch);
        let mut patched = bytes;
        assert!(
            patch_f32(&mut patched, &key, ll_scale),
            "{name}: llama.cpp's q scale {ll_scale} differs from alc's {} \
             and the package has no {key} to explain it",
            hp.attn_scale
        );
        note = format!(
            "llama.cpp ignores {key} = {:.4}, uses {:.4}; compared with alc at {:.4}",
            hp.attn_scale, ll_scale, ll_scale
        );
        m = model(patched, c.be);
    }

    // Logits.
    let ll_rows = rows(&ll["logprobs"]);
    let alc_rows = logits(&m, c.be, &c.tokens);
    let (vs_alc, max_abs) = rel_err(&ll_rows, &alc_rows);
    let bound_alc = if quant == "f32" { 3e-3 } else { 3e-2 };
    if vs_alc > bound_alc {
        let per: Vec<String> = (0..c.tokens.len())
            .map(|i| format!("{:.0e}", rel_err(&ll_rows[i..=i], &alc_rows[i..=i]).0))
            .collect();
        fail(format!(
            "{name}: llama.cpp vs alc on the same package: relative error \
             {vs_alc:.3e} > {bound_alc:e}; per position: {}",
            per.join(" ")
        ));
    }
    if quant == "f32" {
        let flips = top1_flips(&ll_rows, &alc_rows);
        if flips > 0 {
            fail(format!(
                "{name}: llama.cpp and alc disagree on the top-1 at {flips} decisive positions"
            ));
        }
    }
    // transformers: for f32 only (the quantized packages differ from it by
    // their quantization error; shown in the table), and not where llama.cpp
    // runs another q scale (module note).
    let (rel, _) = rel_err(&ll_rows, &c.hf_logits);
    let flips = top1_flips(&ll_rows, &c.hf_logits);
    let vs_hf = (rel, flips);
    if quant == "f32" && !scale_ignored {
        if rel > 3e-3 {
            fail(format!(
                "{name}: llama.cpp vs transformers: relative error {rel:.3e} > 3e-3"
            ));
        }
        if flips > 0 {
            fail(format!(
                "{name}: llama.cpp vs transformers: top-1 differs at {flips} decisive positions"
            ));
        }
    }

    // Greedy continuation.
    let file = alc_format::GgufFile::open(pkg).unwrap();
    let eog = alc_tokenizer::Tokenizer::from_gguf(&file)
        .unwrap()
        .eog_ids();
    let ours = greedy(&m, c.be, &c.tokens, GREEDY, &eog);
    let theirs = u32s(&ll["greedy"]["ids"]);
    let tie = (2.0 * max_abs as f32).max(1e-2);
    let same = ours
        .iter()
        .zip(&theirs)
        .take_while(|((a, _), b)| a == *b)
        .count();
    let greedy_note = if same == GREEDY && theirs.len() == GREEDY {
        format!("{same}/{GREEDY}")
    } else if same < theirs.len().min(GREEDY) && ours[same].1 <= tie {
        format!(
            "{same}/{GREEDY} (then a near tie, margin {:.1e})",
            ours[same].1
        )
    } else {
        fail(format!(
            "{name}: greedy ids differ at step {same}: llama.cpp {theirs:?}, alc {:?}",
            ours.iter().map(|x| x.0).collect::<Vec<_>>()
        ));
        format!("{same}/{GREEDY} DIFFER")
    };
    if same < GREEDY_MIN && !greedy_note.contains("near tie") {
        fail(format!(
            "{name}: only {same} greedy tokens agree (want {GREEDY_MIN})"
        ));
    }
    Some(Line {
        name: name.to_string(),
        vs_hf,
        vs_alc,
        greedy: greedy_note,
        note,
    })
}

#[test]
fn packages_load_and_agree_in_llamacpp() {
    if let Some(why) = xllamacpp_missing() {
        eprintln!(
            "skipped: xllamacpp is not importable with {} ({why}); \
             install it with `python3 -m pip install xllamacpp` (version: .ci/run)",
            python()
        );
        return;
    }
    let t0 = std::time::Instant::now();
    let dir = tempfile::tempdir().unwrap();
    let tok_golden = read_json(&workspace().join("tests/goldens/hf-tiny/tokenizer.json"));
    let cases = tok_golden["cases"].as_array().unwrap();
    let texts: Vec<&str> = cases.iter().map(|c| c["text"].as_str().unwrap()).collect();
    let texts_path = dir.path().join("texts.json");
    std::fs::write(&texts_path, serde_json::to_vec(&texts).unwrap()).unwrap();
    let be = alc_kernels::cpu::CpuBackend::new(2);

    let mut failures: Vec<String> = Vec::new();
    let mut not_built: Vec<String> = Vec::new();
    let mut lines: Vec<Line> = Vec::new();
    let (mut t_compile, mut t_llama) = (0f64, 0f64);
    for arch in ARCHS {
        let golden = read_json(&workspace().join(format!("tests/goldens/hf-tiny/{arch}.json")));
        let refs = Refs {
            tokens: u32s(&golden["token_ids"]),
            hf_logits: rows(&golden["logits"]),
            cases,
            texts: &texts_path,
            be: &be,
        };
        for quant in QUANTS {
            let name = format!("{arch}/{quant}");
            let out = dir.path().join(quant);
            let tc = std::time::Instant::now();
            let pkg = match compile(&options(&fixture(arch), &out, quant), &mut |_| {}) {
                Ok(Outcome::Built(r)) => r.package,
                Ok(Outcome::UpToDate { .. }) => panic!("{name}: fresh output dir up to date"),
                // The compiler's own self-check (reference vs CPU backend) is not
                // this test's subject; a quantized package it refuses is listed.
                Err(e @ ConvertError::SelfCheck(_)) if quant != "f32" => {
                    not_built.push(format!("{name}: {e}"));
                    continue;
                }
                Err(e) => {
                    failures.push(format!("{name}: compile failed: {e}"));
                    continue;
                }
            };
            t_compile += tc.elapsed().as_secs_f64();
            match check(&refs, &name, quant, &pkg, &mut failures, &mut t_llama) {
                Some(line) => lines.push(line),
                None if !phi3_name_rule(&pkg).is_empty() => {
                    // Diagnosis only (the failure above stands): the same package
                    // with "phi3" taken out of general.name.
                    let mut bytes = std::fs::read(&pkg).unwrap();
                    assert!(rename_phi3(&mut bytes));
                    let copy = pkg.with_extension("renamed.gguf");
                    std::fs::write(&copy, bytes).unwrap();
                    let diag = format!("{name} (renamed)");
                    if let Some(mut line) =
                        check(&refs, &diag, quant, &copy, &mut failures, &mut t_llama)
                    {
                        line.note = "diagnosis: general.name without \"phi3\" loads".into();
                        lines.push(line);
                    }
                }
                None => {}
            }
        }
    }

    eprintln!(
        "{:22} {:>22} {:>10} {:>28}  note",
        "package", "vs transformers (flips)", "vs alc", "greedy agreement"
    );
    for l in &lines {
        let hf = format!("{:.2e} ({})", l.vs_hf.0, l.vs_hf.1);
        eprintln!(
            "{:22} {:>22} {:>10.2e} {:>28}  {}",
            l.name, hf, l.vs_alc, l.greedy, l.note
        );
    }
    for n in &not_built {
        eprintln!("not built (compile self-check): {n}");
    }
    eprintln!(
        "llamacpp test: {:.1} s (compile {t_compile:.1} s, llama.cpp {t_llama:.1} s)",
        t0.elapsed().as_secs_f64()
    );
    assert!(failures.is_empty(), "{failures:#?}");
}

/// Replace "phi3" / "phi-3" (any case) in the `general.name` string of GGUF bytes
/// by a same-length spelling llama.cpp's rule does not match.
fn rename_phi3(bytes: &mut [u8]) -> bool {
    let key = "general.name";
    let mut pat = (key.len() as u64).to_le_bytes().to_vec();
    pat.extend_from_slice(key.as_bytes());
    pat.extend_from_slice(&8u32.to_le_bytes()); // STRING
    let Some(i) = bytes.windows(pat.len()).position(|w| w == pat) else {
        return false;
    };
    let at = i + pat.len();
    let len = u64::from_le_bytes(bytes[at..at + 8].try_into().unwrap()) as usize;
    let s = &mut bytes[at + 8..at + 8 + len];
    let mut changed = false;
    for j in 0..s.len() {
        let rest = s[j..].to_ascii_lowercase();
        if rest.starts_with(b"phi3") || rest.starts_with(b"phi-3") {
            s[j + 2] = b'_';
            changed = true;
        }
    }
    changed
}

/// llama.cpp's vocabulary loader (src/llama-vocab.cpp, `llama_vocab::impl::load`)
/// sets Phi-3 token attributes when the lower-cased `general.name` contains
/// "phi-3" or "phi3", looking the tokens "</s>", "<unk>", "<s>" and
/// "<|endoftext|>" up with `token_to_id.at(...)`, which throws (`_Map_base::at`)
/// when one is missing. `alc compile` writes the package name (`phi3-1M-f32`)
/// as `general.name`, so its Phi-3 packages with a byte-level BPE vocabulary
/// (the fixture; also Phi-4-mini) hit this. alc's tokenizer mirrors the rule but
/// skips missing tokens, so it loads them, and then strips the whitespace after
/// special tokens, which the `tokenizers` library does not do for them. Says
/// so when it applies to a package.
fn phi3_name_rule(pkg: &Path) -> String {
    let f = alc_format::GgufFile::open(pkg).unwrap();
    let name = f
        .get_str("general.name")
        .unwrap()
        .unwrap_or("")
        .to_lowercase();
    if !(name.contains("phi3") || name.contains("phi-3")) {
        return String::new();
    }
    let tokens = f
        .get_str_array("tokenizer.ggml.tokens")
        .unwrap()
        .unwrap_or_default();
    let missing: Vec<&str> = ["</s>", "<unk>", "<s>", "<|endoftext|>"]
        .into_iter()
        .filter(|t| !tokens.contains(t))
        .collect();
    if missing.is_empty() {
        return String::new();
    }
    format!(
        " (its general.name {name:?} contains \"phi3\", so llama.cpp's vocabulary loader \
         applies its Phi-3 token attributes and fails on the missing tokens {missing:?}; \
         src/llama-vocab.cpp, `_contains_any(model_name, {{\"phi-3\", \"phi3\"}})`)"
    )
}
