//! `alc_embed` through the C ABI on a real embedding package: all-MiniLM-L6-v2
//! (models/all-minilm-l6-v2, a Hugging Face checkpoint) compiled to a native INT8
//! package by the `alc` binary, then opened with `alc_open`.
//!
//! - The vectors are 384 wide, finite and unit-norm, and equal (cosine ≥ 0.9999) what
//!   `alc_engine::Embedder` gives for the same package and texts, in one batched call
//!   and text by text, including texts past the model's token limit (cut, not an
//!   error) that make the batch span several forward passes.
//! - The width alone (`n = 0`), and two threads embedding on one model.
//! - Paraphrases are closer to each other than to an unrelated sentence.
//! - Bad input (NULL or non-UTF-8 text, empty or whitespace-only text, too small an
//!   output array, NULL outputs, NULL / freed / garbage handles, a session handle, a
//!   language model) returns the documented status with a message, writes nothing,
//!   and leaves the model usable.
//!
//! A missing checkpoint fails the test unless `ALC_SKIP_MODEL_TESTS=1` (alc-testdata);
//! the `alc` binary is found or built by `support::alc_bin` (or `$ALC_BIN`).

mod support;

use std::ffi::{c_char, CStr, CString};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::ptr::{null, null_mut};
use std::sync::OnceLock;

use alc_capi::*;
use alc_engine::Embedder;

const DIM: usize = 384;
const SMOLLM: &str = "smollm2-135m-instruct-q4_1.gguf";
/// Written into output arrays before a call, to see what the call wrote.
const SENTINEL: f32 = -12345.0;

fn last_error() -> String {
    let p = alc_last_error();
    assert!(!p.is_null());
    unsafe { CStr::from_ptr(p) }
        .to_str()
        .expect("UTF-8 message")
        .to_string()
}

/// Assert a status and that the message (read right after the call) mentions
/// `needle`.
fn expect(s: Status, want: Status, needle: &str) {
    let msg = last_error();
    assert_eq!(s, want, "message: {msg}");
    if want == Status::Ok {
        assert_eq!(msg, "", "a successful call clears the message");
    } else {
        assert!(
            msg.contains(needle),
            "message {msg:?} does not mention {needle:?}"
        );
    }
}

fn cstr(s: &str) -> CString {
    CString::new(s).unwrap()
}

/// The MiniLM checkpoint compiled to a native INT8 package (once per test process;
/// `alc compile` is a no-op when the package is up to date), or None when model tests
/// are skipped.
fn package() -> Option<PathBuf> {
    static P: OnceLock<Option<PathBuf>> = OnceLock::new();
    P.get_or_init(|| {
        let dir = alc_testdata::model("all-minilm-l6-v2")?;
        let out = Path::new(env!("CARGO_TARGET_TMPDIR")).join("alc-capi-embed");
        std::fs::create_dir_all(&out).unwrap();
        let name = "minilm-int8.AON";
        let o = Command::new(support::alc_bin())
            .arg("compile")
            .arg(&dir)
            .args([
                "--quant",
                "int8",
                "--name",
                name,
                "--no-register",
                "--force",
            ])
            .args(["-t", "2", "--out"])
            .arg(&out)
            .env("ALC_HOME", out.join("home"))
            .stdin(std::process::Stdio::null())
            .output()
            .expect("run alc compile");
        assert!(
            o.status.success(),
            "alc compile failed:\n{}",
            String::from_utf8_lossy(&o.stderr)
        );
        let pkg = out.join(name);
        assert!(pkg.exists(), "{} was not written", pkg.display());
        Some(pkg)
    })
    .clone()
}

fn open(path: &Path) -> *mut AlcModel {
    let p = cstr(path.to_str().unwrap());
    let mut m = null_mut();
    let s = unsafe { alc_open(p.as_ptr(), 2, 0, &mut m) };
    expect(s, Status::Ok, "");
    assert!(!m.is_null());
    m
}

/// `alc_embed` of `texts` into an array of exactly `n * DIM` floats (plus a guard
/// tail that must stay untouched); returns one row per text.
fn embed(m: *mut AlcModel, texts: &[&str]) -> Vec<Vec<f32>> {
    let owned: Vec<CString> = texts.iter().map(|t| cstr(t)).collect();
    let ptrs: Vec<*const c_char> = owned.iter().map(|c| c.as_ptr()).collect();
    let need = texts.len() * DIM;
    let mut out = vec![SENTINEL; need + 16];
    let mut dim = 0usize;
    let s = unsafe {
        alc_embed(
            m,
            ptrs.as_ptr(),
            ptrs.len(),
            out.as_mut_ptr(),
            need,
            &mut dim,
        )
    };
    expect(s, Status::Ok, "");
    assert_eq!(dim, DIM);
    assert!(
        out[need..].iter().all(|&x| x == SENTINEL),
        "alc_embed wrote past cap"
    );
    out.truncate(need);
    out.chunks_exact(DIM).map(<[f32]>::to_vec).collect()
}

fn dot(a: &[f32], b: &[f32]) -> f64 {
    a.iter().zip(b).map(|(&x, &y)| x as f64 * y as f64).sum()
}

fn norm(a: &[f32]) -> f64 {
    dot(a, a).sqrt()
}

fn cosine(a: &[f32], b: &[f32]) -> f64 {
    dot(a, b) / (norm(a) * norm(b))
}

const PARAPHRASE_A: &str = "How do I reset my password?";
const PARAPHRASE_B: &str = "I forgot my password, how can I change it?";
const UNRELATED: &str = "The giraffe is the tallest animal on the savanna.";

fn texts() -> Vec<String> {
    let mut v: Vec<String> = [
        PARAPHRASE_A,
        PARAPHRASE_B,
        UNRELATED,
        "A man is playing a guitar.",
        "Someone is strumming an acoustic guitar.",
        "Stock markets fell sharply after the announcement.",
        "naïve café — 東京 🚀",
        "x",
    ]
    .map(String::from)
    .to_vec();
    // Past the 256-token limit (cut, not an error), and enough rows that the batch
    // spans several forward passes (2048 tokens each).
    for i in 0..10 {
        v.push(
            format!("sentence {i}: ") + &"the quick brown fox jumps over the lazy dog ".repeat(40),
        );
    }
    v
}

#[test]
fn embeddings_match_the_engine() {
    let Some(pkg) = package() else { return };
    let m = open(&pkg);
    unsafe {
        let mut info = std::mem::MaybeUninit::<AlcModelInfo>::uninit();
        expect(alc_model_get_info(m, info.as_mut_ptr()), Status::Ok, "");
        let info = info.assume_init();
        assert_eq!(info.kind, AlcModelKind::Embedding);
        assert_eq!(info.embed_dim, DIM as u64);
        assert_eq!(info.n_vocab, 0);
        assert!(
            (128..=512).contains(&info.n_ctx),
            "longest input {}",
            info.n_ctx
        );

        // The width alone: no texts, no output.
        let mut dim = 0;
        expect(
            alc_embed(m, null(), 0, null_mut(), 0, &mut dim),
            Status::Ok,
            "",
        );
        assert_eq!(dim, DIM);
    }

    let owned = texts();
    let texts: Vec<&str> = owned.iter().map(String::as_str).collect();
    let rows = embed(m, &texts);
    assert_eq!(rows.len(), texts.len());
    for (t, r) in texts.iter().zip(&rows) {
        assert!(r.iter().all(|x| x.is_finite()), "{t:?}: not finite");
        let n = norm(r);
        assert!((n - 1.0).abs() < 1e-4, "{t:?}: norm {n}");
    }

    // The Rust engine on the same package and texts.
    let e = Embedder::open(&pkg, 2).expect("Embedder::open");
    assert_eq!(e.dim(), DIM);
    let want = e.embed(&texts).expect("Embedder::embed");
    assert!(
        want[8].truncated,
        "the long text should have been cut at the model's limit"
    );
    for (i, (r, w)) in rows.iter().zip(&want).enumerate() {
        let c = cosine(r, &w.vector);
        assert!(
            c >= 0.9999,
            "text {i} {:?}: cosine {c} with Embedder",
            texts[i]
        );
    }

    // One text per call gives the batched rows.
    for (i, t) in texts.iter().enumerate().take(8) {
        let one = embed(m, &[t]);
        let c = cosine(&one[0], &rows[i]);
        assert!(c >= 0.9999, "text {i} {t:?}: alone vs batched cosine {c}");
    }

    // Semantics: the paraphrases are closer to each other than to the unrelated text.
    let para = cosine(&rows[0], &rows[1]);
    let far_a = cosine(&rows[0], &rows[2]);
    let far_b = cosine(&rows[1], &rows[2]);
    eprintln!("paraphrases {para:.4}, unrelated {far_a:.4} / {far_b:.4}");
    assert!(
        para > far_a + 0.2 && para > far_b + 0.2,
        "paraphrases {para}, unrelated {far_a} / {far_b}"
    );
    let guitar = cosine(&rows[3], &rows[4]);
    assert!(
        guitar > cosine(&rows[3], &rows[5]) + 0.2,
        "guitar paraphrases {guitar}"
    );

    // Two threads on one model (one call at a time per model) get the same vectors.
    let h = m.addr();
    let threads: Vec<_> = (0..2)
        .map(|_| {
            std::thread::spawn(move || {
                embed(
                    std::ptr::without_provenance_mut(h),
                    &[PARAPHRASE_A, UNRELATED],
                )
            })
        })
        .collect();
    for t in threads {
        let got = t.join().expect("embedding thread");
        assert!(cosine(&got[0], &rows[0]) >= 0.9999);
        assert!(cosine(&got[1], &rows[2]) >= 0.9999);
    }

    unsafe {
        expect(alc_model_free(m), Status::Ok, "");
    }
}

/// One call with `texts` (NULL entries allowed) into `cap` floats of a sentinel-filled
/// array: the status, `*out_dim`, and whether the array was left untouched.
unsafe fn embed_raw(
    m: *mut AlcModel,
    texts: &[*const c_char],
    cap: usize,
) -> (Status, usize, bool) {
    let mut out = vec![SENTINEL; cap.max(1)];
    let mut dim = 0usize;
    let s = unsafe {
        alc_embed(
            m,
            texts.as_ptr(),
            texts.len(),
            out.as_mut_ptr(),
            cap,
            &mut dim,
        )
    };
    (s, dim, out.iter().all(|&x| x == SENTINEL))
}

#[test]
fn bad_input_gives_status_and_message() {
    let Some(pkg) = package() else { return };
    let m = open(&pkg);
    let good = cstr(PARAPHRASE_A);
    let empty = cstr("");
    let blank = cstr("  \t\n ");
    let bad_utf8 = CString::new(vec![b'o', b'k', 0xff, 0xfe]).unwrap();
    unsafe {
        // NULL text array, NULL entry, non-UTF-8, empty and whitespace-only texts.
        let mut dim = 0;
        let mut out = vec![SENTINEL; 2 * DIM];
        expect(
            alc_embed(m, null(), 2, out.as_mut_ptr(), out.len(), &mut dim),
            Status::InvalidArgument,
            "texts is NULL",
        );
        let (s, _, untouched) = embed_raw(m, &[good.as_ptr(), null()], 2 * DIM);
        expect(s, Status::InvalidArgument, "a text is NULL");
        assert!(untouched);
        let (s, _, untouched) = embed_raw(m, &[good.as_ptr(), bad_utf8.as_ptr()], 2 * DIM);
        expect(
            s,
            Status::InvalidArgument,
            "not valid UTF-8 (invalid byte at offset 2)",
        );
        assert!(untouched);
        let (s, _, untouched) = embed_raw(m, &[good.as_ptr(), empty.as_ptr()], 2 * DIM);
        expect(s, Status::InvalidArgument, "text 2");
        assert!(
            last_error().contains("nothing to embed"),
            "{}",
            last_error()
        );
        assert!(untouched);
        let (s, _, untouched) = embed_raw(m, &[blank.as_ptr()], DIM);
        expect(s, Status::InvalidArgument, "text 1");
        assert!(untouched);

        // Too small an output array: BUFFER_TOO_SMALL with the width, nothing written;
        // out = NULL, cap = 0 is the documented way to ask for the width.
        let (s, dim, untouched) = embed_raw(m, &[good.as_ptr(), good.as_ptr()], 2 * DIM - 1);
        expect(s, Status::BufferTooSmall, "768 needed, 767 given");
        assert_eq!(dim, DIM);
        assert!(untouched);
        let ptrs = [good.as_ptr(), good.as_ptr()];
        let mut dim = 0;
        expect(
            alc_embed(m, ptrs.as_ptr(), 2, null_mut(), 0, &mut dim),
            Status::BufferTooSmall,
            "768 needed, 0 given",
        );
        assert_eq!(dim, DIM);

        // NULL outputs.
        expect(
            alc_embed(m, ptrs.as_ptr(), 2, null_mut(), 2 * DIM, &mut dim),
            Status::InvalidArgument,
            "out (with cap > 0) is NULL",
        );
        let mut out = vec![SENTINEL; 2 * DIM];
        expect(
            alc_embed(m, ptrs.as_ptr(), 2, out.as_mut_ptr(), out.len(), null_mut()),
            Status::InvalidArgument,
            "out_dim is NULL",
        );
        assert!(out.iter().all(|&x| x == SENTINEL));

        // Handles that are not an embedding model.
        for h in [0usize, 1, 0x1234, 0xdead_beef] {
            let (s, _, untouched) =
                embed_raw(std::ptr::without_provenance_mut(h), &[good.as_ptr()], DIM);
            expect(s, Status::InvalidHandle, "model handle");
            assert!(untouched);
        }
        // An embedding model has no sessions.
        let mut sess = null_mut();
        expect(
            alc_session_new(m, &mut sess),
            Status::InvalidArgument,
            "embedding model",
        );
        assert!(sess.is_null());

        // After all that, the model still embeds, and success clears the message.
        let rows = embed(m, &[PARAPHRASE_A]);
        assert!((norm(&rows[0]) - 1.0).abs() < 1e-4);

        // A freed model is an invalid handle, also for a second free.
        expect(alc_model_free(m), Status::Ok, "");
        let (s, _, untouched) = embed_raw(m, &[good.as_ptr()], DIM);
        expect(s, Status::InvalidHandle, "not live");
        assert!(untouched);
        expect(alc_model_free(m), Status::InvalidHandle, "not live");
    }
}

#[test]
fn language_model_and_session_handles_are_refused() {
    let Some(lm) = alc_testdata::model(SMOLLM) else {
        return;
    };
    let m = open(&lm);
    let good = cstr(PARAPHRASE_A);
    unsafe {
        // A language model: INVALID_ARGUMENT naming the fix, nothing written.
        let (s, _, untouched) = embed_raw(m, &[good.as_ptr()], DIM);
        expect(s, Status::InvalidArgument, "not an embedding model");
        assert!(untouched);
        // A session handle where a model is expected: INVALID_HANDLE.
        let mut sess = null_mut();
        expect(alc_session_new(m, &mut sess), Status::Ok, "");
        let (s, _, untouched) = embed_raw(sess.cast(), &[good.as_ptr()], DIM);
        expect(s, Status::InvalidHandle, "model handle");
        assert!(untouched);
        expect(alc_session_free(sess), Status::Ok, "");
        expect(alc_model_free(m), Status::Ok, "");
    }
}
