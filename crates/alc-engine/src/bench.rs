//! `alc bench`: prompt processing (ppN) and generation (tgN) throughput, the way
//! llama.cpp's llama-bench defines them (random tokens, empty cache per repetition,
//! one warm-up run), plus time to first token, load time, peak RSS and model-bandwidth
//! utilisation against a read bandwidth measured in the same run.

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
    /// Bytes of the bandwidth probe buffer (0 skips the probe).
    pub bandwidth_probe_bytes: usize,
}

/// One test's results.
#[derive(Clone, Debug, serde::Serialize)]
pub struct BenchTest {
    pub name: String,
    pub n_prompt: usize,
    pub n_gen: usize,
    pub reps: usize,
    pub tok_s_median: f64,
    pub tok_s_min: f64,
    pub tok_s_max: f64,
    pub ttft_ms_median: Option<f64>,
    /// Model-bandwidth utilisation (generation tests only).
    pub mbu: Option<f64>,
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

pub(crate) fn run(
    model: &Model,
    be: &CpuBackend,
    tracker: &Tracker,
    info: &ModelInfo,
    spec: &BenchSpec,
) -> Result<BenchReport, EngineError> {
    tracker.enter(Stage::Bench, 0);
    let ctx_needed = spec
        .prompt_lens
        .iter()
        .copied()
        .max()
        .unwrap_or(0)
        .max(spec.gen_len)
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
    let mut tests = Vec::new();
    for &pp in &spec.prompt_lens {
        if pp == 0 {
            continue;
        }
        let mut rates = Vec::new();
        let mut ttfts = Vec::new();
        let mut chunks = Vec::new();
        for rep in 0..=reps {
            let toks: Vec<u32> = (0..pp).map(|_| rand_tok()).collect();
            st.truncate(0);
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
            name: format!("pp{pp}"),
            n_prompt: pp,
            n_gen: 0,
            reps,
            tok_s_median: median(&mut rates),
            tok_s_min: mn,
            tok_s_max: mx,
            ttft_ms_median: Some(median(&mut ttfts)),
            mbu: None,
            chunks: chunks.clone(),
        });
    }
    // The bandwidth probe runs right before each timed generation repetition (a
    // shared machine's bandwidth drifts by a third within minutes; a probe taken
    // once, apart from the runs it divides, swings MBU with it), and once at the end
    // when there is no generation test. Peak RSS is read before the probe exists.
    let probe_bytes = spec.bandwidth_probe_bytes;
    let mut peak_rss = None;
    let mut bws = Vec::new();
    if spec.gen_len > 0 {
        let mut rates = Vec::new();
        let mut mbus = Vec::new();
        let mut probe = None;
        let mut s = Sampler::new(SamplingParams::greedy());
        for rep in 0..=reps {
            let mut bw = None;
            if rep > 0 && probe_bytes > 0 {
                // After the warm-up, which touched every page the runs touch.
                peak_rss.get_or_insert_with(peak_rss_bytes);
                let p = probe
                    .get_or_insert_with(|| alc_kernels::bandwidth::ReadProbe::new(probe_bytes));
                bw = Some(p.measure(be.pool(), 3));
            }
            st.truncate(0);
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
                }
            }
        }
        let (mn, mx) = (
            rates.iter().copied().fold(f64::MAX, f64::min),
            rates.iter().copied().fold(0.0, f64::max),
        );
        tests.push(BenchTest {
            name: format!("tg{}", spec.gen_len),
            n_prompt: 0,
            n_gen: spec.gen_len,
            reps,
            tok_s_median: median(&mut rates),
            tok_s_min: mn,
            tok_s_max: mx,
            ttft_ms_median: None,
            mbu: (!mbus.is_empty()).then(|| median(&mut mbus)),
            chunks: vec![1],
        });
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
