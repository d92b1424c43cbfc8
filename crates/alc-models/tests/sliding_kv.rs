//! Gemma-3's sliding-window layers keep only the keys they can still see (a cache
//! of `W − 1 + max(ubatch, W)` rows that slides). The llama.cpp comparison
//! (vs_llamacpp.rs, 2,100 tokens in 128-token chunks) checks the result against
//! llama.cpp; here: the same tokens through different chunkings (so the caches slide
//! at different positions) give the same next-token distributions, and truncating
//! a slid cache keeps what is still valid and forgets what is not.

use alc_kernels::cpu::CpuBackend;
use alc_models::{Logits, Model, State};

fn tokens() -> Vec<u32> {
    let g: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(alc_testdata::golden("logits", "gemma3.json")).unwrap(),
    )
    .unwrap();
    g["tokens"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap() as u32)
        .collect()
}

/// Feed `toks` in chunks of `chunk` and return the last position's logits.
fn run(m: &Model, be: &CpuBackend, st: &mut State, toks: &[u32], chunk: usize) -> Vec<f32> {
    let mut last = Vec::new();
    for c in toks.chunks(chunk) {
        last = m.forward(be, st, c, Logits::Last).unwrap().to_vec();
    }
    last
}

fn argmax(v: &[f32]) -> usize {
    v.iter()
        .enumerate()
        .max_by(|a, b| a.1.total_cmp(b.1))
        .unwrap()
        .0
}

/// KL(a ‖ b) of the two next-token distributions, over the whole vocabulary.
fn kl(a: &[f32], b: &[f32]) -> f64 {
    let logp = |v: &[f32]| {
        let m = v.iter().cloned().fold(f32::NEG_INFINITY, f32::max) as f64;
        let lse = m + v.iter().map(|&x| (x as f64 - m).exp()).sum::<f64>().ln();
        v.iter().map(|&x| x as f64 - lse).collect::<Vec<f64>>()
    };
    let (la, lb) = (logp(a), logp(b));
    la.iter().zip(&lb).map(|(x, y)| x.exp() * (x - y)).sum()
}

/// Rounding differs between chunkings (the key blocks of the tiled attention start
/// at other rows, and a flipped 8-bit activation quant propagates); llama.cpp's
/// own paths differ from each other by more (mean KL vs ours ≈ 0.004 here).
const MAX_KL: f64 = 0.01;

#[test]
fn gemma3_sliding_cache_is_chunking_independent_and_truncates_safely() {
    let Some(path) = alc_testdata::model("gemma-3-270m-q4_k_m.gguf") else {
        return;
    };
    let mut m = alc_models::load(&path).unwrap();
    let be = CpuBackend::new(2);
    m.pack_weights(&be);
    let w = m.hp.swa_window.expect("gemma3 has a sliding window");
    let toks = tokens();
    let n = 1400.min(toks.len());
    assert!(n > 2 * w + 100, "need a prompt that slides the cache");
    let ctx = 1600;

    // The sliding layers hold far less than the context.
    let swa = (0..m.hp.n_layer).find(|&l| m.hp.swa_layers[l]).unwrap();
    assert_eq!(m.hp.kv_rows(swa, ctx, 512), w - 1 + w);
    let n_swa = m.hp.swa_layers.iter().filter(|&&s| s).count();
    let per_row = (m.hp.kv_bytes_per_token() / m.hp.n_layer) as u64;
    let full = (m.hp.n_layer - n_swa) as u64;
    assert_eq!(
        m.hp.kv_cache_bytes(ctx, 512),
        (full * ctx as u64 + n_swa as u64 * (2 * w - 1) as u64) * per_row
    );
    // At the training context (32 Ki) the cache is a fraction of a full one.
    let big = m.hp.ctx_train;
    assert!(m.hp.kv_cache_bytes(big, 512) * 4 < (big * m.hp.kv_bytes_per_token()) as u64);

    // Three chunkings: the caches slide at different positions.
    let mut st_a = m.new_state(ctx, 512).unwrap();
    let a = run(&m, &be, &mut st_a, &toks[..n], 512);
    let mut st_b = m.new_state(ctx, 100).unwrap();
    let b = run(&m, &be, &mut st_b, &toks[..n], 100);
    let mut st_c = m.new_state(ctx, 128).unwrap();
    let mut c = run(&m, &be, &mut st_c, &toks[..n - 20], 128);
    for &t in &toks[n - 20..n] {
        c = m
            .forward(&be, &mut st_c, &[t], Logits::Last)
            .unwrap()
            .to_vec();
    }
    assert_eq!(argmax(&a), argmax(&b));
    assert_eq!(argmax(&a), argmax(&c));
    assert!(kl(&a, &b) < MAX_KL, "KL {}", kl(&a, &b));
    assert!(kl(&a, &c) < MAX_KL, "KL {}", kl(&a, &c));

    // Truncating to a recent position keeps the cache: re-running the dropped
    // tokens gives the same logits as before.
    st_a.truncate(n - 10);
    assert_eq!(st_a.pos, n - 10);
    let again = run(&m, &be, &mut st_a, &toks[n - 10..n], 512);
    assert_eq!(argmax(&a), argmax(&again));
    assert!(kl(&a, &again) < MAX_KL, "KL {}", kl(&a, &again));
    // Truncating to a position whose window slid out forgets everything.
    st_a.truncate(100);
    assert_eq!(st_a.pos, 0);
    let fresh = run(&m, &be, &mut st_a, &toks[..n], 512);
    assert_eq!(
        a, fresh,
        "a reset cache must give the same result as a new one"
    );
}
