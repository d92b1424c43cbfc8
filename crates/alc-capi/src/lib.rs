//! alc-capi: the C ABI (`include/alc.h`) and, behind the `jni` feature, the Java
//! natives of `java/ai/alc/*.java`, over alc-engine.
//!
//! Design note. Every handle given to C or Java (`alc_model *`, `alc_session *`,
//! `alc_stream *`, a Java `long`) is a number registered in one process-wide table
//! ([`handles`]), never an object's address: each call looks the number up and checks
//! its kind, so NULL, a freed handle, a double free or a session passed as a model is
//! `ALC_STATUS_INVALID_HANDLE` with a message, not undefined behaviour. The table holds
//! `Arc`s, so freeing a handle while another thread is inside a call on it only
//! unregisters it; the object goes when that call returns. Every entry point runs its
//! body under `catch_unwind` (the release profile unwinds), returns an
//! [`error::Status`] and leaves a message in a thread-local buffer (`alc_last_error`,
//! cleared by each successful call). Text crossing the boundary is checked: C strings
//! must be UTF-8, messages handed out never hold an interior NUL.
//!
//! Threads: language-model work runs on the engine's run-loop thread (alc-engine); any
//! thread may call any function. A session runs one generation at a time (a second
//! one gets `ALC_STATUS_BUSY`); generations of different sessions of one model are
//! queued on its run loop. `alc_generate` blocks its caller and calls the token
//! callback on that thread; the stream API (`alc_generate_start` /
//! `alc_stream_next`) lets a caller pull tokens instead. `alc_cancel` may be called
//! from any thread. Embedding packages run on the calling thread, one call at a time
//! per model. The objects and their shared operations are in [`objects`], used by
//! both the C functions below and [`jni`] (see docs/CAPI.md).

#![allow(clippy::missing_safety_doc)] // each extern fn has its Safety in the header text

pub mod error;
pub mod handles;
pub mod objects;

/// cbindgen:ignore
#[cfg(feature = "jni")]
pub mod jni;

use std::ffi::{c_char, c_int, c_void, CStr};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;
use std::sync::Arc;

use alc_engine::{GenStats, SamplingParams, StopReason};

use error::{clear_last_error, last_error_ptr, panic_message, set_last_error, Result};
pub use error::{CapiError, Status};
use handles::Obj;
use objects::{GenOptions, ModelObj, Next, OpenOptions, SessionObj, StreamObj};

/// A loaded model (language model or embedding package). Opaque.
pub struct AlcModel {
    _opaque: [u8; 0],
}

/// A conversation with its own KV cache. Opaque.
pub struct AlcSession {
    _opaque: [u8; 0],
}

/// A generation whose tokens are pulled with `alc_stream_next`. Opaque.
pub struct AlcStream {
    _opaque: [u8; 0],
}

/// Kind of a loaded model.
#[repr(i32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AlcModelKind {
    /// A language model: create sessions and generate.
    Language = 1,
    /// An embedding package (BERT): call `alc_embed`.
    Embedding = 2,
}

/// Why a generation ended.
#[repr(i32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AlcStop {
    /// The model produced an end-of-generation token.
    EndOfGeneration = 0,
    /// One of `alc_params.stop` appeared (it is not part of the output).
    StopString = 1,
    /// `alc_params.max_tokens` were generated.
    MaxTokens = 2,
    /// The context is full.
    ContextFull = 3,
    /// Cancelled by the callback or `alc_cancel`.
    Cancelled = 4,
}

/// What `alc_model_get_info` reports.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct AlcModelInfo {
    pub kind: AlcModelKind,
    /// Context length in tokens (language model) or longest input (embedding model).
    pub n_ctx: u64,
    /// Vocabulary size (language model; 0 for embedding models).
    pub n_vocab: u64,
    /// Width of each embedding vector (embedding model; 0 for language models).
    pub embed_dim: u64,
    /// Parameters (language model; 0 for embedding models).
    pub n_params: u64,
}

/// Generation settings. Fill with `alc_params_default`, then change fields.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct AlcParams {
    /// Must be `sizeof(alc_params)` (set by `alc_params_default`).
    pub size: u32,
    /// Most tokens to generate; 0 = until end of generation or a full context.
    pub max_tokens: u32,
    /// 0 = greedy (deterministic argmax). Default 0.8.
    pub temperature: f32,
    /// 0 = off. Default 40.
    pub top_k: u32,
    /// In 0..=1; 1 = off. Default 0.95.
    pub top_p: f32,
    /// In 0..=1; 0 = off. Default 0.05.
    pub min_p: f32,
    /// > 0; 1 = off (default).
    pub repeat_penalty: f32,
    /// Tokens looked back at by the repeat penalty. Default 64.
    pub repeat_last_n: u32,
    /// Seed of the sampler's random numbers.
    pub seed: u64,
    /// Non-zero: the prompt is one user message rendered with the model's chat
    /// template (`ALC_STATUS_UNSUPPORTED` if it has none). Default 0: raw text.
    pub chat: i32,
    /// `n_stop` UTF-8 stop strings (may be NULL when `n_stop` is 0).
    pub stop: *const *const c_char,
    pub n_stop: usize,
}

/// Counts and timings of a finished generation.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct AlcStats {
    pub prompt_tokens: u64,
    /// Prompt tokens reused from the session's KV cache.
    pub cached_tokens: u64,
    pub generated: u64,
    pub prefill_ms: f64,
    pub decode_ms: f64,
    /// Time to first token.
    pub ttft_ms: f64,
    pub stop: AlcStop,
}

/// Receives each piece of generated text: `len` bytes of UTF-8 at `token` (followed by
/// a NUL that is not counted), valid only during the call. Return non-zero to go on,
/// 0 to cancel the generation.
pub type AlcTokenCallback =
    Option<unsafe extern "C" fn(token: *const c_char, len: usize, user_data: *mut c_void) -> c_int>;

// ---- plumbing -------------------------------------------------------------------

/// Run an entry point's body: catch panics, map errors to a status and message.
fn guard(f: impl FnOnce() -> Result<Status>) -> Status {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(Ok(s)) => {
            clear_last_error();
            s
        }
        Ok(Err(e)) => {
            set_last_error(&e.to_string());
            e.status()
        }
        Err(p) => {
            set_last_error(&format!(
                "internal error (a bug in alc): panic: {}",
                panic_message(p.as_ref())
            ));
            Status::Internal
        }
    }
}

/// A required C string as UTF-8.
unsafe fn c_str<'a>(p: *const c_char, what: &'static str) -> Result<&'a str> {
    if p.is_null() {
        return Err(CapiError::Null { what });
    }
    // SAFETY: the caller passes a NUL-terminated string (documented in the header).
    let bytes = unsafe { CStr::from_ptr(p) }.to_bytes();
    std::str::from_utf8(bytes).map_err(|e| CapiError::Utf8 {
        what,
        at: e.valid_up_to(),
    })
}

fn handle<T>(p: *const T) -> usize {
    p.addr()
}

/// The body of every `alc_*_free`: NULL is a no-op, anything else must be a live
/// handle of `kind` (else INVALID_HANDLE); the removed object is returned.
fn free_handle<T>(p: *const T, kind: &'static str) -> Result<Option<Obj>> {
    if p.is_null() {
        return Ok(None);
    }
    handles::remove(handle(p), kind).map(Some)
}

fn to_ptr<T>(h: usize) -> *mut T {
    std::ptr::without_provenance_mut(h)
}

/// Check an output pointer and clear what it points to.
unsafe fn out_handle<T>(out: *mut *mut T, what: &'static str) -> Result<()> {
    if out.is_null() {
        return Err(CapiError::Null { what });
    }
    // SAFETY: non-NULL and, per the header, pointing to writable storage.
    unsafe { out.write(std::ptr::null_mut()) };
    Ok(())
}

fn opts(threads: u32, ctx: u32) -> OpenOptions {
    OpenOptions {
        threads: threads as usize,
        ctx: ctx as usize,
    }
}

unsafe fn register_model(out: *mut *mut AlcModel, m: ModelObj) -> Result<Status> {
    let h = handles::insert(Obj::Model(Arc::new(m)));
    // SAFETY: checked by out_handle before the model was opened.
    unsafe { out.write(to_ptr(h)) };
    Ok(Status::Ok)
}

fn default_params() -> AlcParams {
    let s = SamplingParams::default();
    AlcParams {
        size: std::mem::size_of::<AlcParams>() as u32,
        max_tokens: 0,
        temperature: s.temperature,
        top_k: s.top_k as u32,
        top_p: s.top_p,
        min_p: s.min_p,
        repeat_penalty: s.repeat_penalty,
        repeat_last_n: s.repeat_last_n as u32,
        seed: s.seed,
        chat: 0,
        stop: std::ptr::null(),
        n_stop: 0,
    }
}

unsafe fn gen_options(p: *const AlcParams) -> Result<GenOptions> {
    if p.is_null() {
        return Ok(GenOptions::default());
    }
    // SAFETY: non-NULL; read the size first, then the whole struct once it is known to
    // be the version this library was built with.
    let size = unsafe { std::ptr::addr_of!((*p).size).read() };
    if size as usize != std::mem::size_of::<AlcParams>() {
        return Err(CapiError::Invalid(format!(
            "params->size is {size}, expected sizeof(alc_params) = {}; fill the struct with alc_params_default",
            std::mem::size_of::<AlcParams>()
        )));
    }
    let p = unsafe { p.read() };
    let mut stop = Vec::with_capacity(p.n_stop.min(64));
    if p.n_stop > 0 {
        if p.stop.is_null() {
            return Err(CapiError::Null {
                what: "params->stop (with params->n_stop > 0)",
            });
        }
        for i in 0..p.n_stop {
            // SAFETY: the header asks for n_stop readable pointers.
            let s = unsafe { c_str(p.stop.add(i).read(), "a stop string")? };
            if s.is_empty() {
                return Err(CapiError::Invalid(format!("stop string {i} is empty")));
            }
            stop.push(s.to_string());
        }
    }
    Ok(GenOptions {
        sampling: SamplingParams {
            temperature: p.temperature,
            top_k: p.top_k as usize,
            top_p: p.top_p,
            min_p: p.min_p,
            repeat_penalty: p.repeat_penalty,
            repeat_last_n: p.repeat_last_n as usize,
            seed: p.seed,
        },
        max_tokens: p.max_tokens as usize,
        chat: p.chat != 0,
        stop,
    })
}

pub(crate) fn stop_code(s: StopReason) -> AlcStop {
    match s {
        StopReason::EndOfGeneration => AlcStop::EndOfGeneration,
        StopReason::StopString => AlcStop::StopString,
        StopReason::MaxTokens => AlcStop::MaxTokens,
        StopReason::ContextFull => AlcStop::ContextFull,
        StopReason::Cancelled => AlcStop::Cancelled,
    }
}

fn c_stats(s: &GenStats) -> AlcStats {
    let ms = |d: std::time::Duration| d.as_secs_f64() * 1e3;
    AlcStats {
        prompt_tokens: s.prompt_tokens as u64,
        cached_tokens: s.cached_tokens as u64,
        generated: s.generated as u64,
        prefill_ms: ms(s.prefill),
        decode_ms: ms(s.decode),
        ttft_ms: ms(s.ttft),
        stop: stop_code(s.stop),
    }
}

// ---- entry points -------------------------------------------------------------------

/// The library version, e.g. "0.1.0" (a static string; never NULL).
#[no_mangle]
pub extern "C" fn alc_version() -> *const c_char {
    concat!(env!("CARGO_PKG_VERSION"), "\0").as_ptr().cast()
}

/// The name of a status, e.g. "INVALID_HANDLE" (a static string; "UNKNOWN" for a
/// value that is not an `alc_status`).
#[no_mangle]
pub extern "C" fn alc_status_name(status: i32) -> *const c_char {
    const ALL: [Status; 15] = [
        Status::Ok,
        Status::Done,
        Status::InvalidArgument,
        Status::InvalidHandle,
        Status::NotFound,
        Status::BadModel,
        Status::Unsupported,
        Status::Busy,
        Status::Cancelled,
        Status::Timeout,
        Status::ContextFull,
        Status::BufferTooSmall,
        Status::Io,
        Status::BadKey,
        Status::Internal,
    ];
    static NAMES: std::sync::LazyLock<Vec<(i32, std::ffi::CString)>> =
        std::sync::LazyLock::new(|| {
            ALL.iter()
                .map(|s| (*s as i32, error::c_message(s.name())))
                .collect()
        });
    NAMES
        .iter()
        .find(|(v, _)| *v == status)
        .map(|(_, n)| n.as_ptr())
        .unwrap_or(c"UNKNOWN".as_ptr())
}

/// The message of the last failed `alc_*` call on this thread ("" after a successful
/// call). Valid until this thread's next `alc_*` call; never NULL; UTF-8 without
/// interior NULs.
#[no_mangle]
pub extern "C" fn alc_last_error() -> *const c_char {
    last_error_ptr()
}

/// Fill `*params` with the defaults (llama.cpp's sampling defaults, raw-text prompt,
/// no token limit) and set `params->size`.
///
/// Errors: INVALID_ARGUMENT if `params` is NULL.
#[no_mangle]
pub unsafe extern "C" fn alc_params_default(params: *mut AlcParams) -> Status {
    guard(|| {
        if params.is_null() {
            return Err(CapiError::Null { what: "params" });
        }
        // SAFETY: non-NULL, points to an alc_params (header).
        unsafe { params.write(default_params()) };
        Ok(Status::Ok)
    })
}

/// Load a model file (GGUF language model or BERT embedding package; memory-mapped).
/// `threads`: compute threads, 0 = all logical CPUs. `ctx`: context length, 0 = the
/// model's training context capped so the KV cache fits 1 GiB. On success `*out_model`
/// is the new handle; on failure it is set to NULL.
///
/// Errors: INVALID_ARGUMENT (NULL or non-UTF-8 path, bad ctx), NOT_FOUND, IO,
/// BAD_MODEL (not GGUF, truncated, corrupt), UNSUPPORTED (architecture or tensor
/// type), TIMEOUT (load deadline).
#[no_mangle]
pub unsafe extern "C" fn alc_open(
    path: *const c_char,
    threads: u32,
    ctx: u32,
    out_model: *mut *mut AlcModel,
) -> Status {
    guard(|| unsafe {
        out_handle(out_model, "out_model")?;
        let path = c_str(path, "path")?;
        let m = ModelObj::open(Path::new(path), opts(threads, ctx))?;
        register_model(out_model, m)
    })
}

/// Load a model from `len` bytes of GGUF in memory (for example a package the app
/// decrypted itself). The bytes are copied: the caller may free them when this
/// returns. Otherwise as `alc_open`.
#[no_mangle]
pub unsafe extern "C" fn alc_open_buffer(
    bytes: *const u8,
    len: usize,
    threads: u32,
    ctx: u32,
    out_model: *mut *mut AlcModel,
) -> Status {
    guard(|| unsafe {
        out_handle(out_model, "out_model")?;
        if bytes.is_null() {
            return Err(CapiError::Null { what: "bytes" });
        }
        // SAFETY: the header asks for `len` readable bytes.
        let v = std::slice::from_raw_parts(bytes, len).to_vec();
        let m = ModelObj::open_bytes(v, opts(threads, ctx))?;
        register_model(out_model, m)
    })
}

/// Load a sealed package (`.ava3`, docs/SEALED.md), decrypted in memory only. `key`:
/// the 32-byte key as 64 hex digits or base64; NULL takes ALC_SEAL_KEY or
/// ALC_SEAL_PASSPHRASE from the environment. Otherwise as `alc_open`.
///
/// Errors: as `alc_open`, plus BAD_KEY (wrong key, failed authentication) and
/// INVALID_ARGUMENT (malformed key).
#[no_mangle]
pub unsafe extern "C" fn alc_open_sealed(
    path: *const c_char,
    key: *const c_char,
    threads: u32,
    ctx: u32,
    out_model: *mut *mut AlcModel,
) -> Status {
    guard(|| unsafe {
        out_handle(out_model, "out_model")?;
        let path = c_str(path, "path")?;
        let key = if key.is_null() {
            None
        } else {
            Some(c_str(key, "key")?)
        };
        let m = ModelObj::open_sealed(Path::new(path), key, opts(threads, ctx))?;
        register_model(out_model, m)
    })
}

/// Describe a model.
///
/// Errors: INVALID_HANDLE, INVALID_ARGUMENT (`out` NULL).
#[no_mangle]
pub unsafe extern "C" fn alc_model_get_info(
    model: *const AlcModel,
    out: *mut AlcModelInfo,
) -> Status {
    guard(|| {
        let m = handles::model(handle(model))?;
        if out.is_null() {
            return Err(CapiError::Null { what: "out" });
        }
        let info = match &*m {
            ModelObj::Lm(e) => {
                let i = e.info();
                AlcModelInfo {
                    kind: AlcModelKind::Language,
                    n_ctx: i.ctx as u64,
                    n_vocab: i.vocab_size as u64,
                    embed_dim: 0,
                    n_params: i.n_params,
                }
            }
            ModelObj::Embed(_) => {
                let e = m.embedder()?;
                AlcModelInfo {
                    kind: AlcModelKind::Embedding,
                    n_ctx: e.max_tokens as u64,
                    n_vocab: 0,
                    embed_dim: e.dim() as u64,
                    n_params: 0,
                }
            }
        };
        // SAFETY: non-NULL, points to an alc_model_info.
        unsafe { out.write(info) };
        Ok(Status::Ok)
    })
}

/// Release a model handle. Sessions made from it stay usable; the model's memory is
/// freed when the model and all its sessions are freed. NULL is a no-op (OK).
///
/// Errors: INVALID_HANDLE (freed twice, or not a model).
#[no_mangle]
pub unsafe extern "C" fn alc_model_free(model: *mut AlcModel) -> Status {
    guard(|| free_handle(model, "model").map(|_| Status::Ok))
}

/// A new session (its own KV cache, allocated on first use) on a language model.
/// Successive generations on a session reuse the cached prefix of their prompts.
///
/// Errors: INVALID_HANDLE, INVALID_ARGUMENT (`out_session` NULL, or an embedding
/// model).
#[no_mangle]
pub unsafe extern "C" fn alc_session_new(
    model: *mut AlcModel,
    out_session: *mut *mut AlcSession,
) -> Status {
    guard(|| unsafe {
        out_handle(out_session, "out_session")?;
        let m = handles::model(handle(model))?;
        let s = SessionObj::new(&m)?;
        let h = handles::insert(Obj::Session(Arc::new(s)));
        out_session.write(to_ptr(h));
        Ok(Status::Ok)
    })
}

/// Release a session; a generation running on it is cancelled. NULL is a no-op.
///
/// Errors: INVALID_HANDLE.
#[no_mangle]
pub unsafe extern "C" fn alc_session_free(session: *mut AlcSession) -> Status {
    guard(|| {
        if let Some(Obj::Session(s)) = free_handle(session, "session")? {
            s.cancel();
        }
        Ok(Status::Ok)
    })
}

/// Generate from `prompt` (NUL-terminated UTF-8) on the calling thread, calling
/// `callback(token, len, user_data)` with each piece of text as it is produced
/// (`callback` may be NULL). Returns when generation ends. `params` may be NULL for
/// the defaults. `out_stats` may be NULL; otherwise it receives the counts and timings
/// (also when cancelled).
///
/// Errors: INVALID_HANDLE, INVALID_ARGUMENT (NULL or non-UTF-8 prompt, empty prompt,
/// bad params), BUSY (the session is generating), CONTEXT_FULL (prompt longer than the
/// context), CANCELLED (the callback returned 0 or `alc_cancel` was called), TIMEOUT,
/// UNSUPPORTED (chat without a template).
#[no_mangle]
pub unsafe extern "C" fn alc_generate(
    session: *mut AlcSession,
    prompt: *const c_char,
    params: *const AlcParams,
    callback: AlcTokenCallback,
    user_data: *mut c_void,
    out_stats: *mut AlcStats,
) -> Status {
    guard(|| unsafe {
        let s = handles::session(handle(session))?;
        let prompt = c_str(prompt, "prompt")?;
        let o = gen_options(params)?;
        let mut buf: Vec<u8> = Vec::new();
        let stats = s.generate(prompt, &o, |text| match callback {
            None => true,
            Some(cb) => {
                buf.clear();
                buf.extend_from_slice(text.as_bytes());
                buf.push(0);
                // SAFETY: a C function pointer given by the caller; the text lives
                // for the call.
                cb(buf.as_ptr().cast(), text.len(), user_data) != 0
            }
        })?;
        if !out_stats.is_null() {
            out_stats.write(c_stats(&stats));
        }
        if stats.stop == StopReason::Cancelled {
            return Err(CapiError::Cancelled);
        }
        Ok(Status::Ok)
    })
}

/// Start a generation whose text is pulled with `alc_stream_next`. The session is
/// busy until the stream ends or is freed. Errors in the prompt found by the engine
/// (e.g. CONTEXT_FULL) are reported by the first `alc_stream_next`.
///
/// Errors: as `alc_generate`, without CANCELLED.
#[no_mangle]
pub unsafe extern "C" fn alc_generate_start(
    session: *mut AlcSession,
    prompt: *const c_char,
    params: *const AlcParams,
    out_stream: *mut *mut AlcStream,
) -> Status {
    guard(|| unsafe {
        out_handle(out_stream, "out_stream")?;
        let s = handles::session(handle(session))?;
        let prompt = c_str(prompt, "prompt")?;
        let o = gen_options(params)?;
        let st = StreamObj::start(&s, prompt, &o)?;
        let h = handles::insert(Obj::Stream(Arc::new(st)));
        out_stream.write(to_ptr(h));
        Ok(Status::Ok)
    })
}

/// Wait for the next piece of text and copy it into `buf` (`cap` bytes) with a
/// terminating NUL; `*out_len` receives its length without the NUL. Returns OK with a
/// piece, DONE when the generation has finished (nothing written, `*out_len` = 0).
/// If `cap` is less than the length + 1, returns BUFFER_TOO_SMALL with the length
/// needed (without the NUL) in `*out_len`; the piece is kept for the next call.
///
/// Errors: INVALID_HANDLE, INVALID_ARGUMENT (`buf` NULL with `cap` > 0, `out_len`
/// NULL), BUFFER_TOO_SMALL, CANCELLED (the stream was cancelled; repeated by later
/// calls), and the generation's errors (CONTEXT_FULL, TIMEOUT, ...).
#[no_mangle]
pub unsafe extern "C" fn alc_stream_next(
    stream: *mut AlcStream,
    buf: *mut c_char,
    cap: usize,
    out_len: *mut usize,
) -> Status {
    guard(|| unsafe {
        let st = handles::stream(handle(stream))?;
        if out_len.is_null() {
            return Err(CapiError::Null { what: "out_len" });
        }
        out_len.write(0);
        if buf.is_null() && cap > 0 {
            return Err(CapiError::Null {
                what: "buf (with cap > 0)",
            });
        }
        let r = st.next(|t| {
            if t.len() < cap {
                Ok(())
            } else {
                out_len.write(t.len());
                Err(CapiError::BufferTooSmall {
                    what: "buf",
                    need: t.len() + 1,
                    cap,
                })
            }
        })?;
        match r {
            Next::Done => Ok(Status::Done),
            Next::Text(t) => {
                // SAFETY: t.len() + 1 <= cap bytes are writable at buf.
                std::ptr::copy_nonoverlapping(t.as_ptr(), buf.cast::<u8>(), t.len());
                buf.add(t.len()).write(0);
                out_len.write(t.len());
                Ok(Status::Ok)
            }
        }
    })
}

/// Counts and timings of a stream's generation, once `alc_stream_next` has returned
/// DONE or CANCELLED.
///
/// Errors: INVALID_HANDLE, INVALID_ARGUMENT (`out` NULL, or the stream has not
/// finished).
#[no_mangle]
pub unsafe extern "C" fn alc_stream_stats(stream: *mut AlcStream, out: *mut AlcStats) -> Status {
    guard(|| {
        let st = handles::stream(handle(stream))?;
        if out.is_null() {
            return Err(CapiError::Null { what: "out" });
        }
        let s = st.stats().ok_or_else(|| {
            CapiError::Invalid(
                "the stream has not finished; call alc_stream_next until it returns DONE".into(),
            )
        })?;
        // SAFETY: non-NULL, points to an alc_stats.
        unsafe { out.write(c_stats(&s)) };
        Ok(Status::Ok)
    })
}

/// Release a stream, cancelling its generation if it is still running (the session is
/// free for the next generation once the run loop has stopped this one). NULL is a
/// no-op.
///
/// Errors: INVALID_HANDLE.
#[no_mangle]
pub unsafe extern "C" fn alc_stream_free(stream: *mut AlcStream) -> Status {
    guard(|| free_handle(stream, "stream").map(|_| Status::Ok))
}

/// Cancel a generation from any thread: `handle` is an `alc_stream *` (that stream)
/// or an `alc_session *` (the generation running on it, if any). The generation stops
/// after its current step; `alc_generate` then returns CANCELLED, `alc_stream_next`
/// returns the text already produced and then CANCELLED.
///
/// Errors: INVALID_HANDLE (NULL, freed, or a model handle).
#[no_mangle]
pub unsafe extern "C" fn alc_cancel(handle: *const c_void) -> Status {
    guard(|| {
        let h = handle.addr();
        match handles::get(h) {
            Some(Obj::Stream(s)) => s.cancel(),
            Some(Obj::Session(s)) => s.cancel(),
            _ => {
                return Err(CapiError::Handle {
                    kind: "session or stream",
                    handle: h,
                })
            }
        }
        Ok(Status::Ok)
    })
}

/// Embed `n` NUL-terminated UTF-8 texts with an embedding package, writing `n * dim`
/// floats (row-major, one row per text, L2-normalised when the package says so) to
/// `out` (room for `cap` floats). `*out_dim` receives the vector width. With
/// `cap` < `n * dim` nothing is computed and BUFFER_TOO_SMALL is returned (so
/// `out = NULL, cap = 0` asks for the width). Runs on the calling thread.
///
/// Errors: INVALID_HANDLE, INVALID_ARGUMENT (NULL or non-UTF-8 text, a language
/// model, `out_dim` NULL), BUFFER_TOO_SMALL.
#[no_mangle]
pub unsafe extern "C" fn alc_embed(
    model: *mut AlcModel,
    texts: *const *const c_char,
    n: usize,
    out: *mut f32,
    cap: usize,
    out_dim: *mut usize,
) -> Status {
    guard(|| unsafe {
        let m = handles::model(handle(model))?;
        if out_dim.is_null() {
            return Err(CapiError::Null { what: "out_dim" });
        }
        out_dim.write(m.embedder()?.dim());
        if texts.is_null() && n > 0 {
            return Err(CapiError::Null { what: "texts" });
        }
        if out.is_null() && cap > 0 {
            return Err(CapiError::Null {
                what: "out (with cap > 0)",
            });
        }
        let mut v = Vec::with_capacity(n.min(1 << 16));
        for i in 0..n {
            v.push(c_str(texts.add(i).read(), "a text")?);
        }
        let mut empty = [];
        let dst: &mut [f32] = if out.is_null() {
            &mut empty
        } else {
            // SAFETY: the header asks for `cap` writable floats at `out`.
            std::slice::from_raw_parts_mut(out, cap)
        };
        m.embed_into(&v, dst)?;
        Ok(Status::Ok)
    })
}
