//! Backend conformance kit: every op of every backend against the scalar reference
//! backend on random inputs, including odd sizes, with named tolerances. A new backend
//! (CUDA, Vulkan, …) joins by adding itself to `backends()`.

use alc_core::DType;
use alc_kernels::cpu::CpuBackend;
use alc_kernels::reference::ReferenceBackend;
use alc_kernels::{AttnShape, Backend, RopeStyle, Weight};
use half::f16;
use rand::{rngs::SmallRng, Rng, SeedableRng};

/// matmul: |a - b| <= MATMUL_REL * Σ|w·x| per output (same integer sums; float
/// accumulation order differs).
const MATMUL_REL: f32 = 1e-4;
/// Elementwise ops computed with the same formulas: relative 1e-5.
const ELEMENTWISE_REL: f32 = 1e-5;
/// Attention: the CPU backend rounds queries to f16 (as llama.cpp does; keys and
/// values are f16 in both) and sums in a different order; the reference keeps f32
/// queries. Observed up to 1e-4; relative to max |v|. (4e-3 while the CPU backend
/// kept llama.cpp's f16 value accumulator below 64 query tokens.)
const ATTN_REL: f32 = 5e-4;

fn backends() -> Vec<(String, Box<dyn Backend>)> {
    vec![
        (
            "cpu-1".into(),
            Box::new(CpuBackend::new(1)) as Box<dyn Backend>,
        ),
        ("cpu-3".into(), Box::new(CpuBackend::new(3))),
        // Where the CPU has AVX-512F the two above run its prompt attention; this
        // one keeps the AVX2 kernels (the same backend elsewhere).
        (
            "cpu-2-avx2".into(),
            Box::new(CpuBackend::new(2).without_avx512()),
        ),
    ]
}

fn rand_vec(rng: &mut SmallRng, n: usize, scale: f32) -> Vec<f32> {
    (0..n).map(|_| rng.gen_range(-scale..scale)).collect()
}

fn close(a: &[f32], b: &[f32], tol: impl Fn(usize) -> f32, what: &str) {
    assert_eq!(a.len(), b.len(), "{what}: lengths");
    for (i, (x, y)) in a.iter().zip(b).enumerate() {
        assert!(
            (x - y).abs() <= tol(i),
            "{what}: element {i}: {x} vs {y} (tol {})",
            tol(i)
        );
    }
}

#[test]
fn matmul_every_type_odd_shapes() {
    let mut rng = SmallRng::seed_from_u64(1);
    let reference = ReferenceBackend;
    for &dt in &alc_core::EXECUTED_TYPES {
        for &(rows, cols, n) in &[
            (1usize, 256usize, 1usize),
            (17, 512, 3),
            (33, 256, 5),
            (64, 768, 9),
            (3, 1024, 130),
            (21, 4096, 97),
            (8, 256, 1),
            (24, 512, 7),
            (48, 1024, 130),
        ] {
            // (the last one spans several L2 token blocks of the CPU backend)
            let w = rand_vec(&mut rng, rows * cols, 1.0);
            let mut wq = vec![0u8; dt.row_bytes(cols as u64).unwrap() as usize * rows];
            alc_quant::quantize(dt, &w, &mut wq).unwrap();
            let mut wd = vec![0f32; rows * cols];
            alc_quant::dequantize(dt, &wq, &mut wd).unwrap();
            let x = rand_vec(&mut rng, n * cols, 2.0);
            let weight = Weight::row_major(dt, rows, cols, &wq);
            let mut want = vec![0f32; n * rows];
            reference.matmul(&weight, &x, n, &mut want);
            let mag: Vec<f32> = (0..n * rows)
                .map(|i| {
                    let (t, r) = (i / rows, i % rows);
                    (0..cols)
                        .map(|c| (wd[r * cols + c] * x[t * cols + c]).abs())
                        .sum::<f32>()
                })
                .collect();
            for (name, be) in backends() {
                let mut got = vec![0f32; n * rows];
                be.matmul(&weight, &x, n, &mut got);
                close(
                    &got,
                    &want,
                    |i| MATMUL_REL * mag[i] + 1e-6,
                    &format!("{name} matmul {dt} {rows}x{cols} n={n}"),
                );
                // The backend's own packed layout, where it has one; the reference
                // must accept it too.
                if let Some(p) = be.pack(&weight) {
                    let pw = weight.with_packed(&p);
                    for (what, b) in [("packed", &*be), ("reference on packed", &reference)] {
                        got.fill(0.0);
                        b.matmul(&pw, &x, n, &mut got);
                        close(
                            &got,
                            &want,
                            |i| MATMUL_REL * mag[i] + 1e-6,
                            &format!("{name} {what} matmul {dt} {rows}x{cols} n={n}"),
                        );
                    }
                }
            }
        }
    }
}

/// `matmul_many` (several weights sharing one input, as q/k/v and gate/up) must give
/// each weight's `matmul` result: same dtype (one shared dispatch on the CPU backend)
/// and mixed dtypes (the fallback).
#[test]
fn matmul_many_equals_separate_matmuls() {
    let mut rng = SmallRng::seed_from_u64(7);
    let reference = ReferenceBackend;
    let cols = 512;
    for dts in [
        [DType::Q4_1; 3],
        [DType::Q4_0; 3],
        [DType::Q5_0, DType::Q5_0, DType::Q8_0],
        [DType::Q4_K, DType::Q6_K, DType::Q4_K],
    ] {
        for n in [1usize, 2, 5, 33] {
            let rows = [40usize, 8, 17];
            let data: Vec<Vec<u8>> = dts
                .iter()
                .zip(rows)
                .map(|(&dt, r)| {
                    let w = rand_vec(&mut rng, r * cols, 1.0);
                    let mut wq = vec![0u8; dt.row_bytes(cols as u64).unwrap() as usize * r];
                    alc_quant::quantize(dt, &w, &mut wq).unwrap();
                    wq
                })
                .collect();
            let ws: Vec<Weight> = dts
                .iter()
                .zip(rows)
                .zip(&data)
                .map(|((&dtype, rows), d)| Weight::row_major(dtype, rows, cols, d))
                .collect();
            let x = rand_vec(&mut rng, n * cols, 2.0);
            for (name, be) in backends() {
                // As loaded: the weights the backend packs (Q4_1 with rows % 8 == 0)
                // go in packed, next to row-major ones in the same group.
                let packs: Vec<Option<Vec<u8>>> = ws.iter().map(|w| be.pack(w)).collect();
                let ws: Vec<Weight> = ws
                    .iter()
                    .zip(&packs)
                    .map(|(w, p)| match p {
                        Some(p) => w.with_packed(p),
                        None => *w,
                    })
                    .collect();
                let mut outs: Vec<Vec<f32>> = rows.iter().map(|r| vec![0f32; n * r]).collect();
                {
                    let mut views: Vec<&mut [f32]> =
                        outs.iter_mut().map(|o| o.as_mut_slice()).collect();
                    be.matmul_many(&ws, &x, n, &mut views);
                }
                for (i, w) in ws.iter().enumerate() {
                    let mut want = vec![0f32; n * w.rows];
                    reference.matmul(w, &x, n, &mut want);
                    let scale = want.iter().fold(0f32, |m, v| m.max(v.abs())).max(1.0);
                    close(
                        &outs[i],
                        &want,
                        |_| 1e-4 * scale * 4.0,
                        &format!("{name} matmul_many #{i} {:?} n={n}", dts),
                    );
                }
            }
        }
    }
}

/// The fused forms `matmul_add` (x += w·a) and `matmul_gated` (act(gate·x) · up·x)
/// give, bit for bit, what the same backend's separate ops give, on every executed
/// type, row-major and packed, at one token (decode), a few, and many (the CPU
/// backend's blocked GEMM for float weights), with row counts that are not
/// multiples of the tile; and the reference's fused result within tolerance.
#[test]
fn fused_matmuls_equal_separate_ops() {
    let mut rng = SmallRng::seed_from_u64(11);
    let reference = ReferenceBackend;
    let cols = 512;
    for &dt in &alc_core::EXECUTED_TYPES {
        for &(rows, n) in &[(40usize, 1usize), (24, 5), (17, 3), (48, 20)] {
            let mk = |rng: &mut SmallRng| {
                let w = rand_vec(rng, rows * cols, 1.0);
                let mut wq = vec![0u8; dt.row_bytes(cols as u64).unwrap() as usize * rows];
                alc_quant::quantize(dt, &w, &mut wq).unwrap();
                wq
            };
            let (gq, uq) = (mk(&mut rng), mk(&mut rng));
            let x = rand_vec(&mut rng, n * cols, 2.0);
            let resid = rand_vec(&mut rng, n * rows, 3.0);
            for (name, be) in backends() {
                let (gp, up) = (
                    be.pack(&Weight::row_major(dt, rows, cols, &gq)),
                    be.pack(&Weight::row_major(dt, rows, cols, &uq)),
                );
                for packed in [false, true] {
                    let (g, u) = match (packed, &gp, &up) {
                        (false, _, _) => (
                            Weight::row_major(dt, rows, cols, &gq),
                            Weight::row_major(dt, rows, cols, &uq),
                        ),
                        (true, Some(gp), Some(up)) => (
                            Weight::row_major(dt, rows, cols, &gq).with_packed(gp),
                            Weight::row_major(dt, rows, cols, &uq).with_packed(up),
                        ),
                        _ => continue,
                    };
                    let what = format!("{name} {dt} {rows}x{cols} n={n} packed={packed}");
                    // matmul_add
                    let mut sep = vec![0f32; n * rows];
                    be.matmul(&g, &x, n, &mut sep);
                    let want: Vec<f32> = resid.iter().zip(&sep).map(|(r, v)| r + v).collect();
                    let mut got = resid.clone();
                    be.matmul_add(&g, &x, n, &mut got);
                    assert_eq!(got, want, "{what}: matmul_add differs from matmul + add");
                    let mut refd = resid.clone();
                    reference.matmul_add(&g, &x, n, &mut refd);
                    let scale = refd.iter().fold(1f32, |m, v| m.max(v.abs()));
                    close(
                        &got,
                        &refd,
                        |_| 4e-4 * scale,
                        &format!("{what}: matmul_add vs reference"),
                    );
                    // matmul_gated
                    for gelu in [false, true] {
                        let (mut want, mut upw) = (vec![0f32; n * rows], vec![0f32; n * rows]);
                        be.matmul_many(&[g, u], &x, n, &mut [&mut want, &mut upw]);
                        be.gated_act(&mut want, &upw, gelu);
                        let (mut got, mut scratch) = (vec![0f32; n * rows], vec![0f32; n * rows]);
                        be.matmul_gated(&g, &u, &x, n, gelu, &mut got, &mut scratch);
                        assert_eq!(
                            got, want,
                            "{what} gelu={gelu}: matmul_gated differs from matmul_many + gated_act"
                        );
                        let (mut refd, mut rs) = (vec![0f32; n * rows], vec![0f32; n * rows]);
                        reference.matmul_gated(&g, &u, &x, n, gelu, &mut refd, &mut rs);
                        let scale = refd.iter().fold(1f32, |m, v| m.max(v.abs()));
                        close(
                            &got,
                            &refd,
                            |_| 4e-3 * scale,
                            &format!("{what} gelu={gelu}: matmul_gated vs reference"),
                        );
                    }
                }
            }
        }
    }
}

#[test]
fn norm_rope_act() {
    let mut rng = SmallRng::seed_from_u64(2);
    let reference = ReferenceBackend;
    for &(n, d) in &[(1usize, 64usize), (5, 576), (7, 33)] {
        let x = rand_vec(&mut rng, n * d, 3.0);
        let w = rand_vec(&mut rng, d, 1.5);
        let mut want = x.clone();
        reference.rms_norm(&mut want, &w, 1e-6);
        for (name, be) in backends() {
            let mut got = x.clone();
            be.rms_norm(&mut got, &w, 1e-6);
            close(
                &got,
                &want,
                |i| ELEMENTWISE_REL * want[i].abs().max(1.0),
                &format!("{name} rms_norm n={n} d={d}"),
            );
        }
        for &gelu in &[false, true] {
            let up = rand_vec(&mut rng, n * d, 2.0);
            let mut want = x.clone();
            reference.gated_act(&mut want, &up, gelu);
            for (name, be) in backends() {
                let mut got = x.clone();
                be.gated_act(&mut got, &up, gelu);
                close(
                    &got,
                    &want,
                    |i| ELEMENTWISE_REL * want[i].abs().max(1.0),
                    &format!("{name} gated_act gelu={gelu}"),
                );
            }
        }
    }
    for &style in &[RopeStyle::Normal, RopeStyle::Neox] {
        for &(n, heads, hd, rot) in &[
            (1usize, 3usize, 64usize, 64usize),
            (6, 2, 256, 256),
            (5, 4, 80, 32),
        ] {
            let x = rand_vec(&mut rng, n * heads * hd, 1.0);
            let mut want = x.clone();
            reference.rope(&mut want, heads, hd, rot, 37, 10_000.0, 1.0, style);
            for (name, be) in backends() {
                let mut got = x.clone();
                be.rope(&mut got, heads, hd, rot, 37, 10_000.0, 1.0, style);
                close(
                    &got,
                    &want,
                    |_| 1e-5,
                    &format!("{name} rope {style:?} hd={hd}"),
                );
            }
        }
    }
}

#[test]
fn attention_causal_gqa_window_softcap() {
    let mut rng = SmallRng::seed_from_u64(3);
    let reference = ReferenceBackend;
    let cases = [
        // (n_tokens, pos0, n_head, n_kv, hd, window, softcap)
        (1usize, 0usize, 4usize, 4usize, 64usize, None, None),
        (1, 200, 9, 3, 64, None, None),
        (13, 40, 4, 1, 256, Some(16usize), None),
        (7, 3, 8, 2, 80, None, Some(50.0f32)),
        (33, 0, 2, 2, 24, Some(5), None),
        (5, 10, 4, 2, 128, None, Some(30.0)),
        // Prompt shapes of the tiled path (>= 64 tokens): GQA groups of 3 and 7,
        // a partial last key block, windows that start inside a block.
        (64, 100, 9, 3, 64, None, None),
        (65, 0, 14, 2, 64, None, None),
        (70, 500, 4, 1, 256, Some(512), None),
        (80, 37, 6, 2, 128, Some(9), None),
        // Head sizes with a tail past the 32-wide pair loops, odd query counts.
        (66, 5, 3, 1, 40, None, None),
        (64, 0, 5, 1, 72, Some(20), None),
        (2, 0, 14, 2, 64, None, None),
        // Decode and short prompts at depth, with keys split into ranges whose
        // partial results are merged (`flash::SplitPlan`): GQA groups of 3, 4 and
        // 7, sliding windows starting inside a block, several token runs.
        (1, 2047, 9, 3, 64, None, None),
        (1, 1500, 4, 1, 256, Some(512), None),
        (1, 3000, 4, 1, 256, None, None),
        (1, 900, 14, 2, 64, None, None),
        (3, 1000, 9, 3, 64, Some(700), None),
        (5, 1000, 9, 3, 64, None, None),
        (40, 700, 14, 2, 64, None, None),
        (23, 600, 6, 2, 40, Some(301), None),
        // Queries read straight from the cache (decode512's direct path, up to 8
        // per KV head): two tokens of groups of 3 (query groups 3 + 3), 8 queries
        // per KV head (3 + 3 + 2 and 4 + 4), head size 48 (values one vector at a
        // time), and a span long enough for two ranges per thread.
        (2, 1200, 6, 2, 64, Some(1000), None),
        (2, 800, 4, 1, 256, None, None),
        (1, 300, 6, 3, 48, None, None),
        (1, 4500, 9, 3, 64, None, None),
    ];
    for &(n, pos0, nh, nkv, hd, window, softcap) in &cases {
        let ctx = pos0 + n + 3;
        let q = rand_vec(&mut rng, n * nh * hd, 1.0);
        // Keys grow with position and values drift from -0.75 to 0.75, so the
        // result depends on how the softmax weighs early against late keys (a
        // merge of key ranges that got their weights wrong fails; with uniform
        // noise every weighting averages to about 0).
        let drift = |j: usize, lo: f32, hi: f32| lo + (hi - lo) * j as f32 / ctx as f32;
        let row = nkv * hd;
        let k: Vec<f16> = rand_vec(&mut rng, ctx * row, 1.0)
            .into_iter()
            .enumerate()
            .map(|(i, x)| f16::from_f32(x * drift(i / row, 0.5, 2.5)))
            .collect();
        let v: Vec<f16> = rand_vec(&mut rng, ctx * row, 0.25)
            .into_iter()
            .enumerate()
            .map(|(i, x)| f16::from_f32(x + drift(i / row, -0.75, 0.75)))
            .collect();
        let s = AttnShape {
            n_tokens: n,
            pos0,
            n_head: nh,
            n_kv_head: nkv,
            head_dim: hd,
            ctx,
            scale: 1.0 / (hd as f32).sqrt(),
            window,
            softcap,
        };
        let mut want = vec![0f32; q.len()];
        reference.attention(&q, &k, &v, &s, &mut want);
        for (name, be) in backends() {
            let mut got = vec![0f32; q.len()];
            be.attention(&q, &k, &v, &s, &mut got);
            close(
                &got,
                &want,
                |_| ATTN_REL,
                &format!("{name} attention {s:?}"),
            );
        }
        // The f32 cache path holds the same values (f16-representable here), so it
        // must give the reference's f16-cache result exactly, on every backend.
        let (k32, v32): (Vec<f32>, Vec<f32>) = (
            k.iter().map(|x| x.to_f32()).collect(),
            v.iter().map(|x| x.to_f32()).collect(),
        );
        for (name, be) in backends() {
            let mut got = vec![0f32; q.len()];
            be.attention_f32(&q, &k32, &v32, &s, &mut got);
            assert_eq!(got, want, "{name} attention_f32 {s:?}");
        }
    }
}

#[test]
fn unsupported_types_are_reported() {
    for (_, be) in backends() {
        assert!(be.supports(DType::Q4_K));
        assert!(!be.supports(DType::Q2_K));
    }
}

/// Encoder ops (BERT) in f32 against the f64 references: layer norm and GELU to a
/// few f32 ulps, attention to 2e-6 of max |v| (f32 exp and accumulation).
#[test]
fn encoder_layer_norm_gelu_attention() {
    use alc_kernels::encoder::SegAttn;
    let mut rng = SmallRng::seed_from_u64(7);
    let reference = ReferenceBackend;
    for &(n, d) in &[(1usize, 384usize), (3, 33), (9, 1536), (70, 384)] {
        let x = rand_vec(&mut rng, n * d, 4.0);
        let r = rand_vec(&mut rng, n * d, 2.0);
        let rb = rand_vec(&mut rng, d, 0.5);
        let w = rand_vec(&mut rng, d, 1.5);
        let b = rand_vec(&mut rng, d, 0.3);
        for residual in [false, true] {
            let rr = residual.then_some((r.as_slice(), rb.as_slice()));
            let mut want = x.clone();
            reference.add_layer_norm(&mut want, rr, &w, &b, 1e-12);
            for (name, be) in backends() {
                let mut got = x.clone();
                be.add_layer_norm(&mut got, rr, &w, &b, 1e-12);
                close(
                    &got,
                    &want,
                    |_| 2e-5,
                    &format!("{name} add_layer_norm n={n} d={d} residual={residual}"),
                );
            }
        }
        let mut want = x.clone();
        reference.bias_gelu(&mut want, &rb);
        for (name, be) in backends() {
            let mut got = x.clone();
            be.bias_gelu(&mut got, &rb);
            close(
                &got,
                &want,
                |i| 1e-6 * want[i].abs().max(1.0),
                &format!("{name} bias_gelu n={n} d={d}"),
            );
        }
        let mut want = x.clone();
        reference.bias_gelu_tanh(&mut want, &rb);
        for (name, be) in backends() {
            let mut got = x.clone();
            be.bias_gelu_tanh(&mut got, &rb);
            close(
                &got,
                &want,
                |i| 2e-6 * want[i].abs().max(1.0),
                &format!("{name} bias_gelu_tanh n={n} d={d}"),
            );
        }
    }
    // Sentences (per-query loop) and image-tile lengths (GEMM form, >= GEMM_MIN_LEN),
    // with query-block tails.
    for lens in [
        vec![1usize],
        vec![7],
        vec![3, 1, 17, 5],
        vec![64, 2, 33],
        vec![97],
        vec![130, 5, 96],
    ] {
        let (nh, hd) = (3usize, 20usize);
        let rows: usize = lens.iter().sum();
        let q = rand_vec(&mut rng, rows * nh * hd, 2.0);
        let k = rand_vec(&mut rng, rows * nh * hd, 2.0);
        let v = rand_vec(&mut rng, rows * nh * hd, 1.0);
        let s = SegAttn {
            lens: &lens,
            n_head: nh,
            head_dim: hd,
            scale: 1.0 / (hd as f32).sqrt(),
        };
        let mut want = vec![0f32; q.len()];
        reference.attention_segments(&q, &k, &v, &s, &mut want);
        for (name, be) in backends() {
            let mut got = vec![f32::NAN; q.len()];
            be.attention_segments(&q, &k, &v, &s, &mut got);
            close(
                &got,
                &want,
                |_| 2e-6,
                &format!("{name} attention_segments lens={lens:?}"),
            );
        }
    }
}
