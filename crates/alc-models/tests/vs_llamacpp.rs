//! Teacher-forced next-token distributions against llama.cpp on the same GGUF files.
//! Goldens: tests/goldens/logits/*.json, made by scripts/goldens/gen_goldens.py
//! (llama.cpp 0.3.36, top-16 log-probabilities per position over ≥ 2,100 tokens).
//!
//! Metrics per model: top-1 agreement (our argmax equals llama.cpp's) and the mean
//! KL divergence KL(llama.cpp ‖ alc) over llama.cpp's top-16 tokens plus one bucket for
//! the remaining mass (a lower bound of the full-vocabulary KL).

use alc_kernels::cpu::CpuBackend;
use alc_models::Logits;

/// Top-1 agreement required where llama.cpp's choice is decisive (issue #2's figure).
const MIN_TOP1_AGREEMENT: f64 = 0.995;
/// A position is decisive when llama.cpp's top-1 log-prob exceeds its top-2 by this
/// much. Below it, llama.cpp disagrees with itself: its own batch-size and
/// flash-attention paths flip ~5 % of top-1 choices, all at margins under ~0.3 nat
/// (scripts/goldens/README.md), so no other engine can agree there by more than chance.
const DECISIVE_MARGIN: f64 = 0.5;
/// Overall top-1 agreement floor including near-ties. llama.cpp agrees with itself
/// across its own batch-size or flash-attention paths on ~95.3 % of positions (12
/// flips in 256, scripts/goldens/README.md); measured here (2026-11-23): smollm2
/// 96.5 %, qwen2 97.9 %, gemma3 94.95 % (its decisive positions: 99.87 %). A floor,
/// not the criterion: the decisive-position check above is the strict one.
const MIN_TOP1_ALL: f64 = 0.94;
const MAX_MEAN_KL: f64 = 0.005;
/// Chunk size used for teacher forcing (llama.cpp's goldens used one 512-token ubatch
/// per chunk; ours splits further, which changes only rounding).
const CHUNK: usize = 128;

use alc_testdata::model as model_path;

struct Stats {
    positions: usize,
    top1: f64,
    decisive: usize,
    top1_decisive: f64,
    mean_kl: f64,
    max_kl: f64,
}

fn compare(golden: &str) -> Option<Stats> {
    let g: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(alc_testdata::golden("logits", golden)).unwrap(),
    )
    .unwrap();
    let path = model_path(g["model"].as_str().unwrap())?;
    let tokens: Vec<u32> = g["tokens"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap() as u32)
        .collect();
    let top_ids = g["top_ids"].as_array().unwrap();
    let top_lp = g["top_logprobs"].as_array().unwrap();
    let mut model = alc_models::load(&path).unwrap();
    let be = CpuBackend::new(2);
    // As the engine runs it: with the backend's repacked weights.
    model.pack_weights(&be);
    let mut st = model.new_state(tokens.len(), CHUNK).unwrap();
    let nv = model.hp.n_vocab;
    let (mut agree, mut kl_sum, mut kl_max) = (0usize, 0f64, 0f64);
    let (mut decisive, mut agree_decisive) = (0usize, 0usize);
    let mut logp = vec![0f64; nv];
    for (c, chunk) in tokens.chunks(CHUNK).enumerate() {
        let logits = model.forward(&be, &mut st, chunk, Logits::All).unwrap();
        for (j, row) in logits.chunks_exact(nv).enumerate() {
            let pos = c * CHUNK + j;
            let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64;
            let lse = max
                + row
                    .iter()
                    .map(|&v| (v as f64 - max).exp())
                    .sum::<f64>()
                    .ln();
            for (o, &v) in logp.iter_mut().zip(row) {
                *o = v as f64 - lse;
            }
            let ids: Vec<usize> = top_ids[pos]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_u64().unwrap() as usize)
                .collect();
            let lps: Vec<f64> = top_lp[pos]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_f64().unwrap())
                .collect();
            let argmax = row
                .iter()
                .enumerate()
                .max_by(|a, b| a.1.total_cmp(b.1))
                .unwrap()
                .0;
            agree += usize::from(argmax == ids[0]);
            if lps[0] - lps[1] >= DECISIVE_MARGIN {
                decisive += 1;
                agree_decisive += usize::from(argmax == ids[0]);
            }
            if argmax != ids[0] && std::env::var_os("ALC_DEBUG_FLIPS").is_some() {
                eprintln!("flip at {pos}: llama.cpp {} ({:.3}) vs ours {argmax}; golden margin {:.4}, our lp of theirs {:.3}", ids[0], lps[0], lps[0] - lps[1], logp[ids[0]]);
            }
            let (mut kl, mut p_rest, mut q_rest) = (0f64, 1f64, 1f64);
            for (&id, &lp) in ids.iter().zip(&lps) {
                let p = lp.exp();
                kl += p * (lp - logp[id]);
                p_rest -= p;
                q_rest -= logp[id].exp();
            }
            if p_rest > 1e-9 {
                kl += p_rest * (p_rest.ln() - q_rest.max(1e-12).ln());
            }
            kl_sum += kl;
            kl_max = kl_max.max(kl);
        }
    }
    let n = tokens.len();
    let s = Stats {
        positions: n,
        top1: agree as f64 / n as f64,
        decisive,
        top1_decisive: agree_decisive as f64 / decisive.max(1) as f64,
        mean_kl: kl_sum / n as f64,
        max_kl: kl_max,
    };
    eprintln!(
        "{golden}: {} positions, top-1 agreement {:.2}% (decisive {}: {:.2}%), mean KL {:.5}, max KL {:.4}",
        s.positions,
        s.top1 * 100.0,
        s.decisive,
        s.top1_decisive * 100.0,
        s.mean_kl,
        s.max_kl
    );
    Some(s)
}

fn check(golden: &str) {
    if let Some(s) = compare(golden) {
        assert!(s.positions >= 2000, "golden too short: {}", s.positions);
        assert!(
            s.decisive >= s.positions / 2,
            "{golden}: only {} decisive positions",
            s.decisive
        );
        assert!(
            s.top1_decisive >= MIN_TOP1_AGREEMENT,
            "{golden}: top-1 agreement on decisive positions {:.4} < {MIN_TOP1_AGREEMENT}",
            s.top1_decisive
        );
        assert!(
            s.top1 >= MIN_TOP1_ALL,
            "{golden}: top-1 agreement {:.4} < {MIN_TOP1_ALL}",
            s.top1
        );
        assert!(
            s.mean_kl <= MAX_MEAN_KL,
            "{golden}: mean KL {:.5} > {MAX_MEAN_KL}",
            s.mean_kl
        );
    }
}

#[test]
fn smollm2_q4_1_matches_llamacpp() {
    check("smollm2.json");
}

#[test]
fn qwen2_q4_k_m_matches_llamacpp() {
    check("qwen2.json");
}

#[test]
fn gemma3_q4_k_m_matches_llamacpp() {
    check("gemma3.json");
}

/// The packed Q4_0 path against llama.cpp (its own repacked Q4_0 GEMM). The Q4_0
/// file is made from the Q4_1 one by llama-quantize (`scripts/build-llamacpp.sh
/// --make-q4_0`, which the benchmark script runs); CI does not build llama.cpp, so
/// without the file this test says so and passes.
#[test]
fn smollm2_q4_0_matches_llamacpp() {
    let file = "smollm2-135m-instruct-q4_0.gguf";
    if !alc_testdata::models_dir().join(file).exists() {
        eprintln!("SKIP: {file} missing (make it with scripts/build-llamacpp.sh --make-q4_0)");
        return;
    }
    check("smollm2-q4_0.json");
}
