//! Vision-language packages through the engine as `alc run --image` drives it: the
//! tiny Idefics3 checkpoint (tests/fixtures/hf/idefics3) compiled to a package,
//! images decoded and preprocessed by `Engine::prepare_image`, the prompt rendered
//! with the model's chat template (typed content parts) and expanded, the vision
//! encoder and projector run per tile / image, their rows placed at the `<image>`
//! positions during prefill. The next token must be transformers' (golden logits of
//! scripts/goldens/gen_tiny_vlm.py), the prompt must have its token count; stages
//! are timed; the watchdog names the vision stage and tile; bad input is refused.

mod common;

use alc_convert::{compile, Outcome};
use alc_engine::{
    Deadlines, Engine, EngineConfig, EngineError, Event, GenRequest, GenStats, Prompt,
    SamplingParams, StopReason,
};
use alc_tokenizer::ChatMessage;
use common::*;
use std::path::{Path, PathBuf};
use std::time::Duration;

fn goldens() -> PathBuf {
    alc_testdata::workspace().join("tests/goldens/vlm-tiny")
}

fn package(out: &Path) -> PathBuf {
    match compile(&options(&fixture("idefics3"), out, "f32"), &mut |_| {}).unwrap() {
        Outcome::Built(r) => r.package,
        Outcome::UpToDate { .. } => panic!("fresh output dir reported up to date"),
    }
}

fn open(pkg: &Path, deadlines: Deadlines) -> Engine {
    Engine::open(
        pkg,
        EngineConfig {
            threads: 2,
            ctx: Some(512),
            deadlines,
            ..EngineConfig::default()
        },
    )
    .unwrap()
}

fn req(engine: &Engine, text: &str, images: &[&str], case: &str) -> GenRequest {
    let images = images
        .iter()
        .map(|f| {
            let bytes = std::fs::read(goldens().join(case).join(f)).unwrap();
            engine.prepare_image(&bytes).unwrap()
        })
        .collect();
    GenRequest {
        prompt: Prompt::Chat(vec![ChatMessage::new("user", text)]),
        sampling: SamplingParams::greedy(),
        max_tokens: 1,
        stop: vec![],
        images,
    }
}

fn run(engine: &Engine, r: GenRequest) -> Result<(Vec<u32>, GenStats), EngineError> {
    let s = engine.session()?;
    let mut ids = Vec::new();
    for ev in s.generate(r)? {
        match ev? {
            Event::Token { id, .. } if id != u32::MAX => ids.push(id),
            Event::Token { .. } => {}
            Event::Done(st) => return Ok((ids, st)),
        }
    }
    panic!("no Done event");
}

/// The golden's last-position logits: (argmax, margin to the runner-up).
fn golden_next(case: &str) -> (u32, f32) {
    let b = std::fs::read(goldens().join(case).join("logits.bin")).unwrap();
    let v: Vec<f32> = b
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
        .collect();
    let m: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(goldens().join("manifest.json")).unwrap())
            .unwrap();
    let vocab = m["vocab_size"].as_u64().unwrap() as usize;
    let last = &v[v.len() - vocab..];
    let top = argmax(last);
    let mut s = last.to_vec();
    s.sort_by(|a, b| b.total_cmp(a));
    (top as u32, s[0] - s[1])
}

fn case_tokens(case: &str) -> (usize, usize) {
    let m: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(goldens().join("manifest.json")).unwrap())
            .unwrap();
    let c = &m["cases"][case];
    (
        c["n_tokens"].as_u64().unwrap() as usize,
        c["n_tiles"].as_u64().unwrap() as usize,
    )
}

#[test]
fn images_through_the_engine_give_transformers_next_token() {
    let dir = tempfile::tempdir().unwrap();
    let pkg = package(dir.path());
    let engine = open(&pkg, Deadlines::default());
    assert!(engine.info().vision.is_some());
    for (case, text, files) in [
        (
            "photo",
            "<image>What is in this picture?",
            vec!["chelsea.png"],
        ),
        (
            "two_images",
            "<image>First<image>Compare these two pictures.",
            vec!["camera_gray.png", "coffee.png"],
        ),
    ] {
        let (ids, st) = run(&engine, req(&engine, text, &files, case)).unwrap();
        let (n_tokens, n_tiles) = case_tokens(case);
        assert_eq!(st.prompt_tokens, n_tokens, "{case}: expanded prompt length");
        let im = st.image.as_ref().expect("image stages timed");
        assert_eq!((im.images, im.tiles), (files.len(), n_tiles), "{case}");
        assert_eq!(im.encode_tiles.len(), n_tiles, "{case}: one time per tile");
        let (want, margin) = golden_next(case);
        // The engine's default f16 KV cache moves logits by ~1e-3 relative; only a
        // near-tie could flip, and these goldens have none (0.16 and 0.063).
        assert!(
            margin > 0.05,
            "{case}: the golden's top two are a near-tie ({margin})"
        );
        assert_eq!(ids, vec![want], "{case}: next token vs transformers");
    }
    // The session cache is not reused across images: the same prompt with the other
    // image gives the other image's answer, not a cached one.
    let s = engine.session().unwrap();
    let mut a = req(
        &engine,
        "<image>What is in this picture?",
        &["chelsea.png"],
        "photo",
    );
    a.max_tokens = 4;
    let first: Vec<_> = s.generate(a.clone()).unwrap().collect();
    let again: Vec<_> = s.generate(a).unwrap().collect();
    let stats = |v: &[Result<Event, EngineError>]| match v.last() {
        Some(Ok(Event::Done(st))) => st.clone(),
        other => panic!("{other:?}"),
    };
    let m: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(goldens().join("manifest.json")).unwrap())
            .unwrap();
    let image_token = m["image_token_id"].as_u64().unwrap();
    let first_image = m["cases"]["photo"]["input_ids"]
        .as_array()
        .unwrap()
        .iter()
        .position(|v| v.as_u64() == Some(image_token))
        .unwrap();
    let cached = stats(&again).cached_tokens;
    assert!(
        cached > 0 && cached <= first_image,
        "the second turn reused {cached} cached tokens; the first image token is at {first_image}"
    );
    assert_eq!(stats(&first).generated, stats(&again).generated);
}

/// Other sessions keep decoding while an image is encoded: the run loop encodes one
/// tile per step between the batched forward passes. A text request (12 tokens) and,
/// right after it, a 22-tile request: the text request ends before the image
/// request's first token. When the encoder ran all tiles at once on admission, the
/// image request's first token came two steps later, with the text request still
/// running (cancelled here, so it would end `Cancelled`).
#[test]
fn other_sessions_decode_while_an_image_is_encoded() {
    let dir = tempfile::tempdir().unwrap();
    let pkg = package(dir.path());
    let engine = open(&pkg, Deadlines::default());
    let (sa, sb) = (engine.session().unwrap(), engine.session().unwrap());
    let image_req = req(
        &engine,
        "<image>First<image>Compare these two pictures.",
        &["camera_gray.png", "coffee.png"],
        "two_images",
    );
    let mut text = req(&engine, "Tell me a story.", &[], "photo");
    text.max_tokens = 12;
    let b = sb.generate(text).unwrap();
    let mut a = sa.generate(image_req).unwrap();
    match a.next_event() {
        Some(Ok(Event::Token { .. })) => {}
        other => panic!("image request: {other:?}"),
    }
    b.cancel();
    let events: Vec<_> = b.map(|e| e.unwrap()).collect();
    match events.last() {
        Some(Event::Done(st)) => assert!(
            st.stop != StopReason::Cancelled,
            "the text request was still running at the image request's first token \
             ({} tokens generated)",
            st.generated
        ),
        other => panic!("text request: {other:?}"),
    }
    // The image request still completes, with every tile timed.
    let done = a.map(|e| e.unwrap()).last();
    match done {
        Some(Event::Done(st)) => {
            let im = st.image.expect("image stages");
            assert_eq!((im.tiles, im.encode_tiles.len()), (22, 22));
        }
        other => panic!("image request: {other:?}"),
    }
}

#[test]
fn the_watchdog_names_the_vision_stage_and_tile() {
    let dir = tempfile::tempdir().unwrap();
    let pkg = package(dir.path());
    let engine = Engine::open(
        &pkg,
        EngineConfig {
            threads: 2,
            ctx: Some(16384),
            deadlines: Deadlines {
                vision_tile: Duration::from_nanos(1),
                ..Deadlines::default()
            },
            ..EngineConfig::default()
        },
    )
    .unwrap();
    // The first tile overruns its 1 ns deadline; the run loop checks each stage's
    // deadline as the stage ends, so this does not depend on a waiter's poll
    // landing inside the encoder (the tiny encoder may finish between two polls).
    let r = req(&engine, "<image>", &["chelsea.png"], "photo");
    let e = run(&engine, r).unwrap_err();
    let m = e.to_string();
    assert!(
        matches!(
            e,
            EngineError::Timeout {
                stage: "vision encoder",
                ..
            }
        ),
        "{m}"
    );
    assert!(m.contains("(tile 0)") && m.contains("cpu"), "{m}");
    eprintln!("{m}");
}

/// CRC-32 (PNG's) of `b`, to forge a valid IHDR chunk.
fn crc32(b: &[u8]) -> u32 {
    let mut c = 0xffff_ffffu32;
    for &x in b {
        c ^= x as u32;
        for _ in 0..8 {
            c = if c & 1 != 0 {
                0xedb8_8320 ^ (c >> 1)
            } else {
                c >> 1
            };
        }
    }
    !c
}

#[test]
fn bad_images_and_prompts_are_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let pkg = package(dir.path());
    let engine = open(&pkg, Deadlines::default());
    let png = std::fs::read(goldens().join("photo/chelsea.png")).unwrap();
    // Truncated, junk, and a header claiming a huge image.
    let e = engine.prepare_image(&png[..png.len() / 3]).unwrap_err();
    assert!(!e.to_string().is_empty());
    let e = engine.prepare_image(b"not an image at all").unwrap_err();
    assert!(e.to_string().contains("PNG"), "{e}");
    let mut bomb = png[..33].to_vec();
    bomb[16..20].copy_from_slice(&100_000u32.to_be_bytes());
    bomb[20..24].copy_from_slice(&100_000u32.to_be_bytes());
    let crc = crc32(&bomb[12..29]);
    bomb[29..33].copy_from_slice(&crc.to_be_bytes());
    // A small IDAT (zlib of zeros) and IEND, as a real bomb file has.
    for chunk in [&b"IDATx\x9c\x63\x00\x00\x00\x01\x00\x01"[..], b"IEND"] {
        bomb.extend_from_slice(&(chunk.len() as u32 - 4).to_be_bytes());
        bomb.extend_from_slice(chunk);
        bomb.extend_from_slice(&crc32(chunk).to_be_bytes());
    }
    let e = engine.prepare_image(&bomb).unwrap_err();
    assert!(e.to_string().contains("100000"), "{e}");

    // Placeholders and images must agree.
    let r = req(&engine, "no placeholder", &["chelsea.png"], "photo");
    let e = run(&engine, r).unwrap_err();
    assert!(e.to_string().contains("placeholder"), "{e}");
    // More images than the context holds (8 x 86 tokens > 512): a clear
    // prompt-too-long error, before any tile is encoded.
    let files = vec!["chelsea.png"; 8];
    let r = req(&engine, &"<image>".repeat(8), &files, "photo");
    let e = run(&engine, r).unwrap_err();
    assert!(matches!(e, EngineError::PromptTooLong { .. }), "{e}");
    // Token-id prompts cannot carry images.
    let mut r = req(&engine, "<image>x", &["chelsea.png"], "photo");
    r.prompt = Prompt::Tokens(vec![1, 2, 3]);
    assert!(run(&engine, r).is_err());
    // The engine still serves after all that.
    let r = req(
        &engine,
        "<image>What is in this picture?",
        &["chelsea.png"],
        "photo",
    );
    assert!(run(&engine, r).is_ok());
}
