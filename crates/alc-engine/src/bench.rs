//! `alc bench`: prompt processing (ppN) and generation (tgN) throughput, the way
//! llama.cpp's llama-bench defines them (random tokens, one warm-up run, the cache
//! emptied before each repetition and, at a depth D, filled with D untimed tokens:
//! "pp512 @ d2048"), plus time to first token, load time, peak RSS and
//! model-bandwidth utilisation against a read bandwidth measured in the same run.

use crate::sampler::{Sampler, SamplingParams};
use crate::watchdog::{Stage, Tracker};
use crate::{EngineError, ModelInfo};
use alc_kernels::cpu::CpuBackend;
use alc_models::{Logits, Model};
use std::time::Instant;

/// What to measure.
#[derive(Clone, Debug)]
pub struct BenchSpec {
    pub prompt_lens: Vec<usize>,
    pub gen_len: usize,
    pub reps: usize,
    /// Tokens already in the cache when each test starts (llama-bench's `-d`);
    /// every test runs once per depth. Empty means `[0]`.
    pub depths: Vec<usize>,
    /// Bytes of the bandwidth probe buffer (0 skips the probe).
    pub bandwidth_probe_bytes: usize,
}

/// One test's results.
#[derive(Clone, Debug, serde::Serialize)]
pub struct BenchTest {
    pub name: String,
    pub n_prompt: usize,
    pub n_gen: usize,
    /// Tokens in the cache before the test (untimed).
    pub n_depth: usize,
    pub reps: usize,
    pub tok_s_median: f64,
    pub tok_s_min: f64,
    pub tok_s_max: f64,
    pub ttft_ms_median: Option<f64>,
    /// Model-bandwidth utilisation (generation tests only): the report's
    /// `bytes_per_token` (weights) × tok/s ÷ the measured read bandwidth.
    pub mbu: Option<f64>,
    /// Generation tests: mean KV-cache bytes attention reads per generated token
    /// (not 0 at depth 0: the keys generated so far count).
    pub kv_bytes_per_token: Option<u64>,
    /// Generation tests: [`BenchTest::mbu`] with the KV-cache bytes counted too
    /// (`bytes_per_token + kv_bytes_per_token`): what bounds generation at depth.
    pub mbu_kv: Option<f64>,
    /// Prefill chunk sizes used (prompt tests only).
    pub chunks: Vec<usize>,
}

/// The whole report (`alc bench --json` prints it; docs/FORMAT.md pins the schema).
#[derive(Clone, Debug, serde::Serialize)]
pub struct BenchReport {
    /// Schema id of this report's JSON form ("alc.bench/1"; bumped on breaking changes).
    pub schema: &'static str,
    pub model: String,
    pub arch: String,
    pub threads: usize,
    pub backend: String,
    pub load_ms: f64,
    pub peak_rss_bytes: u64,
    pub mem_read_gbs: Option<f64>,
    pub bytes_per_token: u64,
    pub tests: Vec<BenchTest>,
}

/// Schema id of the bench report (docs/FORMAT.md).
pub const BENCH_SCHEMA: &str = "alc.bench/1";

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// Peak resident set size of this process (VmHWM), 0 where unknown.
pub fn peak_rss_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines().find(|l| l.starts_with("VmHWM:")).and_then(|l| {
                l.split_whitespace()
                    .nth(1)
                    .and_then(|k| k.parse::<u64>().ok())
            })
        })
        .map(|kb| kb * 1024)
        .unwrap_or(0)
}

/// Empty the cache and fill it with `depth` random tokens (untimed).
fn fill(
    model: &Model,
    be: &CpuBackend,
    st: &mut alc_models::State,
    depth: usize,
    max_ubatch: usize,
    rand_tok: &mut dyn FnMut() -> u32,
) -> Result<(), EngineError> {
    st.truncate(0);
    let toks: Vec<u32> = (0..depth).map(|_| rand_tok()).collect();
    let mut i = 0;
    while i < depth {
        let n = crate::prefill_chunk(depth - i, max_ubatch);
        model.forward(be, st, &toks[i..i + n], Logits::None)?;
        i += n;
    }
    Ok(())
}

pub(crate) fn run(
    model: &Model,
    be: &CpuBackend,
    tracker: &Tracker,
    info: &ModelInfo,
    spec: &BenchSpec,
) -> Result<BenchReport, EngineError> {
    tracker.enter(Stage::Bench, 0);
    let depths: &[usize] = if spec.depths.is_empty() {
        &[0]
    } else {
        &spec.depths
    };
    let ctx_needed = spec
        .prompt_lens
        .iter()
        .copied()
        .max()
        .unwrap_or(0)
        .max(spec.gen_len)
        + depths.iter().copied().max().unwrap_or(0)
        + 1;
    if ctx_needed > info.ctx {
        return Err(EngineError::BadRequest(format!(
            "bench needs a context of {ctx_needed} tokens but the engine has {}; pass --ctx {ctx_needed}",
            info.ctx
        )));
    }
    let reps = spec.reps.max(1);
    let mut st = model.new_state(ctx_needed, info.max_ubatch)?;
    let vocab = model.hp.n_vocab as u64;
    let mut seed = 0x2545_F491_4F6C_DD1Du64;
    let mut rand_tok = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        (seed % vocab) as u32
    };
    let name = |base: String, depth: usize| {
        if depth == 0 {
            base
        } else {
            format!("{base} @ d{depth}")
        }
    };
    let mut tests = Vec::new();
    // The bandwidth probe runs right before each timed generation repetition (a
    // shared machine's bandwidth drifts by a third within minutes; a probe taken
    // once, apart from the runs it divides, swings MBU with it), and once at the end
    // when there is no generation test. Peak RSS is read before the probe exists.
    let probe_bytes = spec.bandwidth_probe_bytes;
    let mut peak_rss = None;
    let mut bws = Vec::new();
    let mut probe = None;
    for &depth in depths {
        for &pp in &spec.prompt_lens {
            if pp == 0 {
                continue;
            }
            let mut rates = Vec::new();
            let mut ttfts = Vec::new();
            let mut chunks = Vec::new();
            for rep in 0..=reps {
                fill(model, be, &mut st, depth, info.max_ubatch, &mut rand_tok)?;
                let toks: Vec<u32> = (0..pp).map(|_| rand_tok()).collect();
                chunks.clear();
                let t0 = Instant::now();
                let mut i = 0;
                while i < pp {
                    let remaining = pp - i;
                    let n = crate::prefill_chunk(remaining, info.max_ubatch);
                    let want = if i + n == pp {
                        Logits::Last
                    } else {
                        Logits::None
                    };
                    let logits = model.forward(be, &mut st, &toks[i..i + n], want)?;
                    if i + n == pp {
                        let mut s = Sampler::new(SamplingParams::greedy());
                        std::hint::black_box(s.sample(logits, &[]));
                    }
                    chunks.push(n);
                    i += n;
                }
                let el = t0.elapsed().as_secs_f64();
                if rep > 0 {
                    // rep 0 is the warm-up
                    rates.push(pp as f64 / el);
                    ttfts.push(el * 1e3);
                }
            }
            let (mn, mx) = (
                rates.iter().copied().fold(f64::MAX, f64::min),
                rates.iter().copied().fold(0.0, f64::max),
            );
            tests.push(BenchTest {
                name: name(format!("pp{pp}"), depth),
                n_prompt: pp,
                n_gen: 0,
                n_depth: depth,
                reps,
                tok_s_median: median(&mut rates),
                tok_s_min: mn,
                tok_s_max: mx,
                ttft_ms_median: Some(median(&mut ttfts)),
                mbu: None,
                kv_bytes_per_token: None,
                mbu_kv: None,
                chunks: chunks.clone(),
            });
        }
        if spec.gen_len > 0 {
            let mut rates = Vec::new();
            let mut mbus = Vec::new();
            let mut mbus_kv = Vec::new();
            let mut s = Sampler::new(SamplingParams::greedy());
            let kv_bytes = (depth..depth + spec.gen_len)
                .map(|p| model.kv_bytes_read(p))
                .sum::<u64>()
                / spec.gen_len as u64;
            for rep in 0..=reps {
                let mut bw = None;
                if rep > 0 && probe_bytes > 0 {
                    // After the warm-up, which touched every page the runs touch.
                    peak_rss.get_or_insert_with(peak_rss_bytes);
                    let p = probe
                        .get_or_insert_with(|| alc_kernels::bandwidth::ReadProbe::new(probe_bytes));
                    bw = Some(p.measure(be.pool(), 3));
                }
                fill(model, be, &mut st, depth, info.max_ubatch, &mut rand_tok)?;
                let mut tok = rand_tok();
                let t0 = Instant::now();
                for _ in 0..spec.gen_len {
                    let logits = model.forward(be, &mut st, &[tok], Logits::Last)?;
                    tok = s.sample(logits, &[]);
                }
                let el = t0.elapsed().as_secs_f64();
                if rep > 0 {
                    let rate = spec.gen_len as f64 / el;
                    rates.push(rate);
                    if let Some(bw) = bw {
                        bws.push(bw);
                        mbus.push(info.bytes_per_token as f64 * rate / bw);
                        mbus_kv.push((info.bytes_per_token + kv_bytes) as f64 * rate / bw);
                    }
                }
            }
            let (mn, mx) = (
                rates.iter().copied().fold(f64::MAX, f64::min),
                rates.iter().copied().fold(0.0, f64::max),
            );
            tests.push(BenchTest {
                name: name(format!("tg{}", spec.gen_len), depth),
                n_prompt: 0,
                n_gen: spec.gen_len,
                n_depth: depth,
                reps,
                tok_s_median: median(&mut rates),
                tok_s_min: mn,
                tok_s_max: mx,
                ttft_ms_median: None,
                mbu: (!mbus.is_empty()).then(|| median(&mut mbus)),
                kv_bytes_per_token: Some(kv_bytes),
                mbu_kv: (!mbus_kv.is_empty()).then(|| median(&mut mbus_kv)),
                chunks: vec![1],
            });
        }
    }
    // Before the probe, whose buffer would otherwise count as the model's memory.
    let peak_rss = peak_rss.unwrap_or_else(peak_rss_bytes);
    if probe_bytes > 0 && bws.is_empty() {
        bws.push(alc_kernels::bandwidth::read_bandwidth(
            be.pool(),
            probe_bytes,
            5,
        ));
    }
    let bw = (!bws.is_empty()).then(|| median(&mut bws));
    Ok(BenchReport {
        schema: BENCH_SCHEMA,
        model: info.path.display().to_string(),
        arch: info.hp.arch.clone(),
        threads: be.n_threads(),
        backend: info.backend.clone(),
        load_ms: info.load_time.as_secs_f64() * 1e3,
        peak_rss_bytes: peak_rss,
        mem_read_gbs: bw.map(|b| b / 1e9),
        bytes_per_token: info.bytes_per_token,
        tests,
    })
}
