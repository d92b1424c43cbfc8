//! End-to-end engine tests on the real models: greedy continuations against llama.cpp
//! (tests/goldens/greedy/*.json, scripts/goldens/gen_goldens.py), chat-template
//! rendering, tokenization, and the engine's contracts (watchdog, context limits,
//! cancellation, KV-prefix reuse, prefill variants).

use alc_engine::{
    Deadlines, Engine, EngineConfig, EngineError, Event, GenRequest, GenStats, Prompt,
    SamplingParams, StopReason,
};
use alc_tokenizer::ChatMessage;
use std::time::Duration;

/// Tokens that must match llama.cpp's greedy continuation (issue #2).
const MIN_MATCH: usize = 32;
/// A divergence is accepted only where llama.cpp's own top-1/top-2 log-prob margin is
/// below this: such near-ties flip between llama.cpp's own batch sizes and attention
/// paths (all such flips measured under ~0.3 nat; same bound as the logits test).
const NEAR_TIE: f64 = 0.5;

use alc_testdata::model as model_path;

fn open(file: &str, cfg: EngineConfig) -> Option<Engine> {
    Some(Engine::open(model_path(file)?, cfg).unwrap())
}

fn small_cfg() -> EngineConfig {
    EngineConfig {
        threads: 2,
        ctx: Some(1024),
        ..EngineConfig::default()
    }
}

fn collect(gen: alc_engine::Generation) -> Result<(Vec<u32>, String, GenStats), EngineError> {
    let (mut ids, mut text) = (Vec::new(), String::new());
    for ev in gen {
        match ev? {
            Event::Token { id, text: t } => {
                if id != u32::MAX {
                    ids.push(id);
                }
                text.push_str(&t);
            }
            Event::Done(s) => return Ok((ids, text, s)),
        }
    }
    panic!("no Done event");
}

fn greedy(golden: &str) {
    let g: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(alc_testdata::golden("greedy", golden)).unwrap(),
    )
    .unwrap();
    let Some(engine) = open(g["model"].as_str().unwrap(), small_cfg()) else {
        return;
    };
    for (ci, case) in g["cases"].as_array().unwrap().iter().enumerate() {
        let rendered = case["rendered"].as_str().unwrap();
        let prompt_ids: Vec<u32> = case["prompt_ids"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_u64().unwrap() as u32)
            .collect();
        if let Some(msgs) = case["messages"].as_array() {
            let msgs: Vec<ChatMessage> = msgs
                .iter()
                .map(|m| {
                    ChatMessage::new(m["role"].as_str().unwrap(), m["content"].as_str().unwrap())
                })
                .collect();
            assert_eq!(
                engine.render_chat(&msgs).unwrap(),
                rendered,
                "{golden} case {ci}: chat template"
            );
        }
        assert_eq!(
            engine.tokenize(rendered, true, true).unwrap(),
            prompt_ids,
            "{golden} case {ci}: prompt ids"
        );
        let want: Vec<u32> = case["output_ids"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_u64().unwrap() as u32)
            .collect();
        let margins: Vec<f64> = case["top2_margins"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap())
            .collect();
        let s = engine.session().unwrap();
        let gen = s
            .generate(GenRequest {
                prompt: Prompt::Tokens(prompt_ids),
                sampling: SamplingParams::greedy(),
                max_tokens: want.len(),
                stop: vec![],
                images: vec![],
            })
            .unwrap();
        let (got, _, stats) = collect(gen).unwrap();
        // llama.cpp's list ends with the end-of-generation token when it stopped.
        let want_gen: Vec<u32> = if case["stop_reason"] == "eog" {
            want[..want.len() - 1].to_vec()
        } else {
            want.clone()
        };
        let same = got
            .iter()
            .zip(&want_gen)
            .take_while(|(a, b)| a == b)
            .count();
        let need = MIN_MATCH.min(want_gen.len());
        eprintln!(
            "{golden} case {ci}: {same}/{} tokens identical ({:?})",
            want_gen.len(),
            stats.stop
        );
        if same < need {
            assert!(
                margins[same] < NEAR_TIE,
                "{golden} case {ci}: diverged at token {same} (llama.cpp {} vs alc {}) where llama.cpp's top-2 margin is {:.3} (≥ {NEAR_TIE})",
                want_gen[same],
                got.get(same).copied().unwrap_or(u32::MAX),
                margins[same]
            );
        }
        if same == want_gen.len() && case["stop_reason"] == "eog" {
            assert_eq!(
                stats.stop,
                StopReason::EndOfGeneration,
                "{golden} case {ci}"
            );
        }
    }
}

#[test]
fn greedy_smollm2_matches_llamacpp() {
    greedy("smollm2.json");
}

#[test]
fn greedy_qwen2_matches_llamacpp() {
    greedy("qwen2.json");
}

#[test]
fn greedy_gemma3_matches_llamacpp() {
    greedy("gemma3.json");
}

const SMOL: &str = "smollm2-135m-instruct-q4_1.gguf";

fn text(t: &str) -> Prompt {
    Prompt::Text {
        text: t.into(),
        add_special: true,
        parse_special: false,
    }
}

fn req(p: Prompt, n: usize) -> GenRequest {
    GenRequest {
        prompt: p,
        sampling: SamplingParams::greedy(),
        max_tokens: n,
        stop: vec![],
        images: vec![],
    }
}

#[test]
fn watchdog_names_the_stage_that_overran() {
    let cfg = EngineConfig {
        deadlines: Deadlines {
            prefill_chunk: Duration::from_nanos(1),
            ..Deadlines::default()
        },
        ..small_cfg()
    };
    let Some(engine) = open(SMOL, cfg) else {
        return;
    };
    let s = engine.session().unwrap();
    let long = "The history of the printing press is long. ".repeat(40);
    let err = collect(s.generate(req(text(&long), 4)).unwrap()).unwrap_err();
    let msg = err.to_string();
    assert!(
        matches!(
            err,
            EngineError::Timeout {
                stage: "prefill",
                ..
            }
        ),
        "{msg}"
    );
    assert!(
        msg.contains("prefill") && msg.contains("(chunk 0)") && msg.contains("cpu"),
        "{msg}"
    );
    // The engine stays usable after a timeout (the overrun was cancelled).
    let cfg_ok = small_cfg();
    drop(s);
    drop(engine);
    let engine = open(SMOL, cfg_ok).unwrap();
    let (ids, _, _) = collect(
        engine
            .session()
            .unwrap()
            .generate(req(text("Hello"), 3))
            .unwrap(),
    )
    .unwrap();
    assert_eq!(ids.len(), 3);
}

#[test]
fn bad_prompts_are_clear_errors() {
    let Some(engine) = open(
        SMOL,
        EngineConfig {
            ctx: Some(64),
            ..small_cfg()
        },
    ) else {
        return;
    };
    let s = engine.session().unwrap();
    let e = collect(s.generate(req(text(""), 4)).unwrap()).unwrap_err();
    assert!(matches!(e, EngineError::EmptyPrompt), "{e}");
    let e = collect(s.generate(req(text(&"word ".repeat(100)), 4)).unwrap()).unwrap_err();
    assert!(
        matches!(e, EngineError::PromptTooLong { ctx: 64, .. }),
        "{e}"
    );
    assert!(e.to_string().contains("--ctx"), "{e}");
    let e = collect(
        s.generate(req(Prompt::Tokens(vec![1, 999_999]), 4))
            .unwrap(),
    )
    .unwrap_err();
    assert!(e.to_string().contains("999999"), "{e}");
    let bad = GenRequest {
        sampling: SamplingParams {
            top_p: 7.0,
            ..SamplingParams::greedy()
        },
        ..req(text("hi"), 2)
    };
    assert!(s.generate(bad).is_err());
    // Generation that reaches the end of the context stops cleanly.
    let (_, _, st) = collect(s.generate(req(text("Once upon a time"), 1000)).unwrap()).unwrap();
    assert!(
        matches!(
            st.stop,
            StopReason::ContextFull | StopReason::EndOfGeneration
        ),
        "{:?}",
        st.stop
    );
}

#[test]
fn cancel_stops_generation() {
    let Some(engine) = open(SMOL, small_cfg()) else {
        return;
    };
    let s = engine.session().unwrap();
    let mut gen = s
        .generate(req(text("Count from one to one thousand: one, two,"), 500))
        .unwrap();
    let mut n = 0;
    while let Some(ev) = gen.next_event() {
        match ev.unwrap() {
            Event::Token { .. } => {
                n += 1;
                if n == 5 {
                    gen.cancel();
                }
            }
            Event::Done(st) => {
                assert_eq!(st.stop, StopReason::Cancelled);
                assert!(st.generated < 20, "{}", st.generated);
                return;
            }
        }
    }
    panic!("no Done after cancel");
}

#[test]
fn chat_turns_reuse_the_kv_prefix_and_prefill_uses_variants() {
    let Some(engine) = open(SMOL, small_cfg()) else {
        return;
    };
    let s = engine.session().unwrap();
    let mut msgs = vec![ChatMessage::new("user", "Name three colours.")];
    let (_, reply, st1) =
        collect(s.generate(req(Prompt::Chat(msgs.clone()), 16)).unwrap()).unwrap();
    assert_eq!(st1.cached_tokens, 0);
    msgs.push(ChatMessage::new("assistant", reply));
    msgs.push(ChatMessage::new("user", "And three animals?"));
    let (_, _, st2) = collect(s.generate(req(Prompt::Chat(msgs), 8)).unwrap()).unwrap();
    assert!(
        st2.cached_tokens >= st1.prompt_tokens,
        "cached {} of first prompt {}",
        st2.cached_tokens,
        st1.prompt_tokens
    );
    // A 300-token prompt runs as one "whole prompt" chunk (ar512); 600 as 512 + 88.
    let s2 = engine.session().unwrap();
    let ids: Vec<u32> = (0..300).map(|i| 100 + i).collect();
    let (_, _, st) = collect(s2.generate(req(Prompt::Tokens(ids), 1)).unwrap()).unwrap();
    assert_eq!(st.chunks, vec![300]);
    let s3 = engine.session().unwrap();
    let ids: Vec<u32> = (0..600).map(|i| 100 + i).collect();
    let (_, _, st) = collect(s3.generate(req(Prompt::Tokens(ids), 1)).unwrap()).unwrap();
    assert_eq!(st.chunks, vec![512, 88]);
}

#[test]
fn stop_strings_and_seeded_sampling() {
    let Some(engine) = open(SMOL, small_cfg()) else {
        return;
    };
    let s = engine.session().unwrap();
    let r = GenRequest {
        stop: vec![",".into()],
        ..req(text("Apples, pears, plums"), 40)
    };
    let (_, t, st) = collect(s.generate(r).unwrap()).unwrap();
    if st.stop == StopReason::StopString {
        assert!(!t.contains(','), "{t:?}");
    }
    let sample = |seed| {
        let p = SamplingParams {
            temperature: 1.0,
            seed,
            ..SamplingParams::default()
        };
        let r = GenRequest {
            sampling: p,
            ..req(text("My favourite food is"), 12)
        };
        collect(engine.session().unwrap().generate(r).unwrap())
            .unwrap()
            .0
    };
    assert_eq!(sample(7), sample(7));
}

/// Continuous batching: generations on several sessions advance together, one
/// forward pass per step, and each produces exactly what it produces alone (SmolLM2's
/// Q4_1 rows are batch-invariant; alc-models' batch test bounds the K-quant models).
/// A late request joins running ones between steps (its prompt's prefill rides with
/// their decode rows); a second request on a busy session waits for the first.
#[test]
fn concurrent_sessions_decode_together_and_match_alone() {
    let Some(engine) = open(SMOL, small_cfg()) else {
        return;
    };
    let prompts = [
        "The three primary colours are",
        "def fibonacci(n):\n    ",
        "Paris is the capital of",
        "A haiku about the sea:\n",
    ];
    let n = 24;
    let alone: Vec<Vec<u32>> = prompts
        .iter()
        .map(|p| {
            let s = engine.session().unwrap();
            let (ids, _, st) = collect(s.generate(req(text(p), n)).unwrap()).unwrap();
            assert_eq!(st.peak_batch, 1);
            ids
        })
        .collect();

    let sessions: Vec<_> = (0..4).map(|_| engine.session().unwrap()).collect();
    // Three start together; read a few tokens of the first, then the fourth joins.
    let mut gens: Vec<_> = (0..3)
        .map(|i| sessions[i].generate(req(text(prompts[i]), n)).unwrap())
        .collect();
    let mut early = Vec::new();
    while early.len() < 4 {
        if let Event::Token { id, .. } = gens[0].next_event().unwrap().unwrap() {
            early.push(id);
        }
    }
    gens.push(sessions[3].generate(req(text(prompts[3]), n)).unwrap());
    // Queued behind the fourth's generation on the same session.
    let queued = sessions[3].generate(req(text(prompts[0]), 6)).unwrap();
    let results: Vec<_> = gens.into_iter().map(|g| collect(g).unwrap()).collect();
    for (i, (ids, _, st)) in results.iter().enumerate() {
        let ids = if i == 0 {
            [early.clone(), ids.clone()].concat()
        } else {
            ids.clone()
        };
        assert_eq!(ids, alone[i], "prompt {i} batched vs alone");
        assert!(st.peak_batch >= 2, "prompt {i} never shared a step: {st:?}");
    }
    let (ids, _, _) = collect(queued).unwrap();
    assert_eq!(ids, alone[0][..6], "queued request on a busy session");

    // Dropping a session mid-generation ends its generation; the others go on.
    let a = engine.session().unwrap();
    let b = engine.session().unwrap();
    let mut ga = a.generate(req(text(prompts[1]), 200)).unwrap();
    let gb = b.generate(req(text(prompts[2]), n)).unwrap();
    ga.next_event().unwrap().unwrap();
    drop(a);
    let (ids, _, _) = collect(gb).unwrap();
    assert_eq!(ids, alone[2]);
    let rest: Vec<_> = ga.collect();
    assert!(
        rest.len() < 200,
        "the dropped session's generation kept going"
    );
}

/// `Engine::bench` on SmolLM2: one pp and one tg test with plausible rates, and a
/// model-bandwidth utilisation from a probe taken beside each timed generation
/// repetition (a fraction of the measured bandwidth, not a made-up number); no
/// probe, no MBU.
#[test]
fn bench_reports_rates_and_paired_bandwidth() {
    use alc_engine::BenchSpec;
    let Some(eng) = open("smollm2-135m-instruct-q4_1.gguf", small_cfg()) else {
        return;
    };
    let spec = BenchSpec {
        prompt_lens: vec![40],
        gen_len: 6,
        reps: 3,
        depths: vec![],
        bandwidth_probe_bytes: 0,
    };
    // Without a probe first: peak RSS is a process-wide high-water mark.
    let r = eng.bench(spec.clone()).unwrap();
    assert!(r.mem_read_gbs.is_none() && r.tests[1].mbu.is_none());
    let peak0 = r.peak_rss_bytes;

    let r = eng
        .bench(BenchSpec {
            bandwidth_probe_bytes: 64 << 20,
            ..spec.clone()
        })
        .unwrap();
    let names: Vec<&str> = r.tests.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(names, ["pp40", "tg6"]);
    let (pp, tg) = (&r.tests[0], &r.tests[1]);
    assert_eq!(pp.chunks.iter().sum::<usize>(), 40);
    for t in &r.tests {
        assert!(
            t.tok_s_min <= t.tok_s_median && t.tok_s_median <= t.tok_s_max,
            "{t:?}"
        );
        assert!(t.tok_s_min > 1.0, "{t:?}");
    }
    assert!(pp.mbu.is_none() && pp.ttft_ms_median.is_some());
    let bw = r.mem_read_gbs.expect("probe ran");
    assert!(bw > 0.1, "{bw} GB/s");
    let mbu = tg.mbu.expect("tg has an MBU");
    // Weight bytes streamed per second over the bandwidth: far below 1 would mean
    // the rate or the bytes are wrong, far above that the probe is.
    assert!(mbu > 0.02 && mbu < 2.0, "MBU {mbu}");
    assert!(r.bytes_per_token > 50_000_000, "{}", r.bytes_per_token);
    // The probe's 64 MiB buffer is not counted as the model's memory.
    assert!(
        r.peak_rss_bytes < peak0 + (32 << 20),
        "peak RSS {} with the probe, {peak0} without",
        r.peak_rss_bytes
    );

    // Depths (llama-bench's -d): every test again with 50 tokens cached first.
    let r = eng
        .bench(BenchSpec {
            depths: vec![0, 50],
            bandwidth_probe_bytes: 64 << 20,
            ..spec.clone()
        })
        .unwrap();
    let names: Vec<&str> = r.tests.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(names, ["pp40", "tg6", "pp40 @ d50", "tg6 @ d50"]);
    let depths: Vec<usize> = r.tests.iter().map(|t| t.n_depth).collect();
    assert_eq!(depths, [0, 0, 50, 50]);
    // SmolLM2: 30 layers x 3 KV heads x 64 dims, f16 keys and values = 768 bytes a
    // layer and key; generated tokens see positions 0..=p, for p in 0..6 / 50..56.
    assert_eq!(r.tests[1].kv_bytes_per_token, Some(30 * 768 * 7 / 2));
    assert_eq!(r.tests[3].kv_bytes_per_token, Some(30 * 768 * 107 / 2));
    assert!(r.tests[0].kv_bytes_per_token.is_none() && r.tests[0].mbu_kv.is_none());
    // With the KV bytes counted, utilisation is higher by their share.
    let (m, mk) = (r.tests[3].mbu.unwrap(), r.tests[3].mbu_kv.unwrap());
    let share = (r.bytes_per_token + 30 * 768 * 107 / 2) as f64 / r.bytes_per_token as f64;
    assert!((mk / m - share).abs() < 1e-3 * share, "{m} {mk} {share}");
    // A depth past the context is refused before anything runs, naming the fix.
    let e = eng
        .bench(BenchSpec {
            depths: vec![1 << 20],
            ..spec
        })
        .unwrap_err()
        .to_string();
    assert!(e.contains("--ctx"), "{e}");
}
