//! The C entry points called directly with bad input: every case returns the right
//! status and a message, and nothing crashes.

use std::ffi::{c_char, c_int, c_void, CStr, CString};
use std::ptr::{null, null_mut};
use std::sync::OnceLock;

use alc_capi::*;

const SMOLLM: &str = "smollm2-135m-instruct-q4_1.gguf";

fn last_error() -> String {
    let p = alc_last_error();
    assert!(!p.is_null());
    unsafe { CStr::from_ptr(p) }
        .to_str()
        .expect("UTF-8 message")
        .to_string()
}

/// Assert a status and that the message mentions `needle`.
fn expect(s: Status, want: Status, needle: &str) {
    let msg = last_error();
    assert_eq!(s, want, "message: {msg}");
    assert!(
        msg.contains(needle),
        "message {msg:?} does not mention {needle:?}"
    );
}

fn cstr(s: &str) -> CString {
    CString::new(s).unwrap()
}

fn open(path: &std::path::Path, ctx: u32) -> *mut AlcModel {
    let p = cstr(path.to_str().unwrap());
    let mut m = null_mut();
    let s = unsafe { alc_open(p.as_ptr(), 2, ctx, &mut m) };
    assert_eq!(s, Status::Ok, "{}", last_error());
    assert!(!m.is_null());
    m
}

/// One SmolLM2 shared by the tests (ctx 64), or None when models are skipped.
fn shared() -> Option<*mut AlcModel> {
    static M: OnceLock<Option<usize>> = OnceLock::new();
    M.get_or_init(|| alc_testdata::model(SMOLLM).map(|p| open(&p, 64).addr()))
        .map(std::ptr::without_provenance_mut)
}

fn session(m: *mut AlcModel) -> *mut AlcSession {
    let mut s = null_mut();
    assert_eq!(unsafe { alc_session_new(m, &mut s) }, Status::Ok);
    s
}

fn greedy(max_tokens: u32) -> AlcParams {
    let mut p = unsafe { std::mem::zeroed::<AlcParams>() };
    assert_eq!(unsafe { alc_params_default(&mut p) }, Status::Ok);
    p.temperature = 0.0;
    p.max_tokens = max_tokens;
    p
}

unsafe extern "C" fn collect(t: *const c_char, len: usize, ud: *mut c_void) -> c_int {
    let out = unsafe { &mut *(ud as *mut String) };
    let bytes = unsafe { std::slice::from_raw_parts(t.cast::<u8>(), len) };
    assert_eq!(unsafe { *t.add(len) }, 0, "text is NUL-terminated");
    out.push_str(std::str::from_utf8(bytes).expect("UTF-8 token"));
    1
}

unsafe extern "C" fn stop_after_two(_t: *const c_char, _len: usize, ud: *mut c_void) -> c_int {
    let n = unsafe { &mut *(ud as *mut usize) };
    *n += 1;
    (*n < 2) as c_int
}

#[test]
fn version_and_status_names() {
    let v = unsafe { CStr::from_ptr(alc_version()) }.to_str().unwrap();
    assert_eq!(v, env!("CARGO_PKG_VERSION"));
    let name = |s: i32| {
        unsafe { CStr::from_ptr(alc_status_name(s)) }
            .to_str()
            .unwrap()
    };
    assert_eq!(name(0), "OK");
    assert_eq!(name(-2), "INVALID_HANDLE");
    assert_eq!(name(12345), "UNKNOWN");
}

#[test]
fn null_pointers() {
    unsafe {
        let mut m = null_mut();
        expect(
            alc_open(null(), 0, 0, &mut m),
            Status::InvalidArgument,
            "path is NULL",
        );
        let p = cstr("x.gguf");
        expect(
            alc_open(p.as_ptr(), 0, 0, null_mut()),
            Status::InvalidArgument,
            "out_model",
        );
        expect(
            alc_open_buffer(null(), 10, 0, 0, &mut m),
            Status::InvalidArgument,
            "bytes",
        );
        expect(
            alc_params_default(null_mut()),
            Status::InvalidArgument,
            "params",
        );
        expect(
            alc_session_new(null_mut(), null_mut()),
            Status::InvalidArgument,
            "out_session",
        );
        let mut s = null_mut();
        expect(
            alc_session_new(null_mut(), &mut s),
            Status::InvalidHandle,
            "model handle 0x0",
        );
        let prompt = cstr("hi");
        expect(
            alc_generate(
                null_mut(),
                prompt.as_ptr(),
                null(),
                None,
                null_mut(),
                null_mut(),
            ),
            Status::InvalidHandle,
            "session handle",
        );
        let mut len = 0;
        expect(
            alc_stream_next(null_mut(), null_mut(), 0, &mut len),
            Status::InvalidHandle,
            "stream",
        );
        expect(
            alc_cancel(null()),
            Status::InvalidHandle,
            "session or stream",
        );
        let mut dim = 0;
        expect(
            alc_embed(null_mut(), null(), 0, null_mut(), 0, &mut dim),
            Status::InvalidHandle,
            "model",
        );
        // Freeing NULL is a no-op, like free(3).
        assert_eq!(alc_model_free(null_mut()), Status::Ok);
        assert_eq!(alc_session_free(null_mut()), Status::Ok);
        assert_eq!(alc_stream_free(null_mut()), Status::Ok);
        assert_eq!(last_error(), "", "a successful call clears the message");
    }
}

#[test]
fn garbage_handles() {
    unsafe {
        for h in [1usize, 0x1234, 0xdead_beef, usize::MAX & !15] {
            let p = std::ptr::without_provenance_mut::<AlcModel>(h);
            expect(alc_model_free(p), Status::InvalidHandle, "not live");
            let mut info = std::mem::MaybeUninit::<AlcModelInfo>::uninit();
            expect(
                alc_model_get_info(p, info.as_mut_ptr()),
                Status::InvalidHandle,
                "model handle",
            );
            expect(
                alc_cancel(p as *const c_void),
                Status::InvalidHandle,
                "session or stream",
            );
        }
    }
}

#[test]
fn missing_and_bad_files() {
    let dir = tempfile::tempdir().unwrap();
    unsafe {
        let mut m = std::ptr::without_provenance_mut(0x77);
        let p = cstr(dir.path().join("nope.gguf").to_str().unwrap());
        expect(
            alc_open(p.as_ptr(), 0, 0, &mut m),
            Status::NotFound,
            "nope.gguf",
        );
        assert!(m.is_null(), "out_model is cleared on failure");

        // Not UTF-8.
        let bad = CString::new(vec![b'/', 0xff, 0xfe, b'x']).unwrap();
        expect(
            alc_open(bad.as_ptr(), 0, 0, &mut m),
            Status::InvalidArgument,
            "not valid UTF-8",
        );

        // Not a GGUF file.
        let junk = dir.path().join("junk.gguf");
        std::fs::write(&junk, b"this is not a model at all, just some text").unwrap();
        let p = cstr(junk.to_str().unwrap());
        expect(
            alc_open(p.as_ptr(), 0, 0, &mut m),
            Status::BadModel,
            "not a GGUF",
        );

        // A truncated GGUF, from a file and from memory.
        let whole = alc_testdata::gguf_bytes(&[
            (
                "general.architecture",
                alc_testdata::Kv::Str("llama".into()),
            ),
            ("general.name", alc_testdata::Kv::Str("tiny".into())),
        ]);
        let cut = &whole[..whole.len() - 7];
        let trunc = dir.path().join("trunc.gguf");
        std::fs::write(&trunc, cut).unwrap();
        let p = cstr(trunc.to_str().unwrap());
        expect(
            alc_open(p.as_ptr(), 0, 0, &mut m),
            Status::BadModel,
            "truncated",
        );
        expect(
            alc_open_buffer(cut.as_ptr(), cut.len(), 0, 0, &mut m),
            Status::BadModel,
            "truncated",
        );
        // A well-formed GGUF that is no model: the missing pieces are named.
        let s = alc_open_buffer(whole.as_ptr(), whole.len(), 0, 0, &mut m);
        assert!(
            matches!(s, Status::BadModel | Status::Unsupported),
            "{s:?}: {}",
            last_error()
        );
        assert!(m.is_null());

        // Sealed: missing file, malformed key.
        let key = cstr(&"ab".repeat(32));
        let p = cstr(dir.path().join("nope.ava3").to_str().unwrap());
        expect(
            alc_open_sealed(p.as_ptr(), key.as_ptr(), 0, 0, &mut m),
            Status::NotFound,
            "nope.ava3",
        );
        let short = cstr("abcd");
        let p = cstr(junk.to_str().unwrap());
        expect(
            alc_open_sealed(p.as_ptr(), short.as_ptr(), 0, 0, &mut m),
            Status::InvalidArgument,
            "key",
        );
    }
}

#[test]
fn freed_and_double_freed_handles() {
    let Some(path) = alc_testdata::model(SMOLLM) else {
        return;
    };
    let m = open(&path, 64);
    let s = session(m);
    unsafe {
        // A session passed as a model, a model as a session.
        let mut info = std::mem::MaybeUninit::<AlcModelInfo>::uninit();
        expect(
            alc_model_get_info(s as *const AlcModel, info.as_mut_ptr()),
            Status::InvalidHandle,
            "model handle",
        );
        expect(
            alc_session_free(m as *mut AlcSession),
            Status::InvalidHandle,
            "session handle",
        );
        expect(
            alc_cancel(m as *const c_void),
            Status::InvalidHandle,
            "session or stream",
        );

        assert_eq!(alc_model_free(m), Status::Ok);
        expect(alc_model_free(m), Status::InvalidHandle, "already freed");
        let mut s2 = null_mut();
        expect(
            alc_session_new(m, &mut s2),
            Status::InvalidHandle,
            "model handle",
        );
        // The session outlives its model handle.
        let mut out = String::new();
        let p = greedy(4);
        let prompt = cstr("The capital of France is");
        let st = alc_generate(
            s,
            prompt.as_ptr(),
            &p,
            Some(collect),
            &mut out as *mut String as *mut c_void,
            null_mut(),
        );
        assert_eq!(st, Status::Ok, "{}", last_error());
        assert!(out.contains("Paris"), "{out:?}");
        assert_eq!(alc_session_free(s), Status::Ok);
        expect(alc_session_free(s), Status::InvalidHandle, "already freed");
        expect(
            alc_generate(s, prompt.as_ptr(), &p, None, null_mut(), null_mut()),
            Status::InvalidHandle,
            "session handle",
        );
    }
}

#[test]
fn bad_prompts_and_params() {
    let Some(m) = shared() else { return };
    let s = session(m);
    unsafe {
        let p = greedy(2);
        expect(
            alc_generate(s, null(), &p, None, null_mut(), null_mut()),
            Status::InvalidArgument,
            "prompt is NULL",
        );
        let bad = CString::new(vec![b'h', b'i', 0xc3, 0x28]).unwrap();
        expect(
            alc_generate(s, bad.as_ptr(), &p, None, null_mut(), null_mut()),
            Status::InvalidArgument,
            "prompt is not valid UTF-8",
        );
        let empty = cstr("");
        expect(
            alc_generate(s, empty.as_ptr(), &p, None, null_mut(), null_mut()),
            Status::InvalidArgument,
            "empty",
        );
        let ok = cstr("Hello");
        let mut q = p;
        q.size = 8;
        expect(
            alc_generate(s, ok.as_ptr(), &q, None, null_mut(), null_mut()),
            Status::InvalidArgument,
            "alc_params_default",
        );
        let mut q = p;
        q.temperature = f32::NAN;
        expect(
            alc_generate(s, ok.as_ptr(), &q, None, null_mut(), null_mut()),
            Status::InvalidArgument,
            "--temp",
        );
        let mut q = p;
        q.n_stop = 2;
        expect(
            alc_generate(s, ok.as_ptr(), &q, None, null_mut(), null_mut()),
            Status::InvalidArgument,
            "params->stop",
        );
        let mut out = null_mut();
        expect(
            alc_generate_start(s, bad.as_ptr(), &p, &mut out),
            Status::InvalidArgument,
            "UTF-8",
        );
        assert!(out.is_null());
        // The session still works after all that.
        assert_eq!(
            alc_generate(s, ok.as_ptr(), &p, None, null_mut(), null_mut()),
            Status::Ok,
            "{}",
            last_error()
        );
        // A language model does not embed.
        let mut dim = 0;
        expect(
            alc_embed(m, null(), 0, null_mut(), 0, &mut dim),
            Status::InvalidArgument,
            "not an embedding model",
        );
        alc_session_free(s);
    }
}

#[test]
fn prompt_past_the_context() {
    let Some(m) = shared() else { return };
    let s = session(m);
    let long = cstr(&"the quick brown fox jumps over the lazy dog ".repeat(20));
    let p = greedy(4);
    unsafe {
        expect(
            alc_generate(s, long.as_ptr(), &p, None, null_mut(), null_mut()),
            Status::ContextFull,
            "context holds 64",
        );
        let mut st = null_mut();
        assert_eq!(
            alc_generate_start(s, long.as_ptr(), &p, &mut st),
            Status::Ok
        );
        let mut buf = [0 as c_char; 64];
        let mut len = 0;
        expect(
            alc_stream_next(st, buf.as_mut_ptr(), buf.len(), &mut len),
            Status::ContextFull,
            "shorten the prompt",
        );
        // Repeated, and the session is free again.
        expect(
            alc_stream_next(st, buf.as_mut_ptr(), buf.len(), &mut len),
            Status::ContextFull,
            "shorten the prompt",
        );
        assert_eq!(alc_stream_free(st), Status::Ok);
        expect(alc_stream_free(st), Status::InvalidHandle, "already freed");
        let ok = cstr("Hi");
        assert_eq!(
            alc_generate(s, ok.as_ptr(), &p, None, null_mut(), null_mut()),
            Status::Ok,
            "{}",
            last_error()
        );
        alc_session_free(s);
    }
}

#[test]
fn busy_cancel_and_small_buffers() {
    let Some(m) = shared() else { return };
    let s = session(m);
    let prompt = cstr("The capital of France is");
    let p = greedy(8);
    unsafe {
        let mut st = null_mut();
        assert_eq!(
            alc_generate_start(s, prompt.as_ptr(), &p, &mut st),
            Status::Ok
        );
        expect(
            alc_generate(s, prompt.as_ptr(), &p, None, null_mut(), null_mut()),
            Status::Busy,
            "already generating",
        );
        let mut st2 = null_mut();
        expect(
            alc_generate_start(s, prompt.as_ptr(), &p, &mut st2),
            Status::Busy,
            "already generating",
        );
        // Too small a buffer: the length needed comes back and the piece is kept.
        let mut len = 0;
        expect(
            alc_stream_next(st, null_mut(), 0, &mut len),
            Status::BufferTooSmall,
            "needed",
        );
        assert!(len > 0);
        let need = len;
        let mut buf = vec![0 as c_char; need + 1];
        assert_eq!(
            alc_stream_next(st, buf.as_mut_ptr(), buf.len(), &mut len),
            Status::Ok
        );
        assert_eq!(len, need);
        let first = CStr::from_ptr(buf.as_ptr()).to_str().unwrap().to_string();
        assert_eq!(first, " Paris");
        expect(
            alc_stream_stats(st, &mut std::mem::zeroed()),
            Status::InvalidArgument,
            "not finished",
        );
        // Cancel through the stream: the rest ends in CANCELLED.
        assert_eq!(alc_cancel(st as *const c_void), Status::Ok);
        let mut big = [0 as c_char; 256];
        let end = loop {
            let r = alc_stream_next(st, big.as_mut_ptr(), big.len(), &mut len);
            if r != Status::Ok {
                break r;
            }
        };
        expect(end, Status::Cancelled, "cancelled");
        let mut stats = std::mem::zeroed::<AlcStats>();
        assert_eq!(alc_stream_stats(st, &mut stats), Status::Ok);
        assert_eq!(stats.stop, AlcStop::Cancelled);
        assert_eq!(alc_stream_free(st), Status::Ok);

        // A callback returning 0 cancels.
        let mut n = 0usize;
        let mut stats = std::mem::zeroed::<AlcStats>();
        let r = alc_generate(
            s,
            prompt.as_ptr(),
            &p,
            Some(stop_after_two),
            &mut n as *mut usize as *mut c_void,
            &mut stats,
        );
        expect(r, Status::Cancelled, "cancelled");
        assert_eq!(n, 2);
        assert_eq!(stats.stop, AlcStop::Cancelled);
        assert!(stats.generated < 8);

        // alc_cancel on the session from another thread.
        let sh = s.addr();
        let mut q = p;
        q.max_tokens = 0;
        let t = std::thread::spawn(move || {
            std::thread::sleep(std::time::Duration::from_millis(300));
            alc_cancel(std::ptr::without_provenance::<c_void>(sh))
        });
        let long = cstr("Write a long story about a dragon.");
        let r = alc_generate(s, long.as_ptr(), &q, None, null_mut(), &mut stats);
        assert_eq!(t.join().unwrap(), Status::Ok);
        // Unless the model finished (end of generation or full context) first.
        if r != Status::Ok {
            expect(r, Status::Cancelled, "cancelled");
        }
        alc_session_free(s);
    }
}

#[test]
fn sealed_package_in_memory() {
    let Some(path) = alc_testdata::model(SMOLLM) else {
        return;
    };
    let key = alc_seal::Key::generate().unwrap();
    let hex = key.to_hex();
    let keys = alc_seal::KeySource::key(key);
    let plain = std::fs::read(&path).unwrap();
    let sealed = alc_seal::seal_bytes(&plain, &keys, &Default::default()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("smollm.ava3");
    std::fs::write(&f, sealed).unwrap();
    let p = cstr(f.to_str().unwrap());
    unsafe {
        let mut m = null_mut();
        let wrong = cstr(&"11".repeat(32));
        expect(
            alc_open_sealed(p.as_ptr(), wrong.as_ptr(), 2, 64, &mut m),
            Status::BadKey,
            "wrong key",
        );
        let k = cstr(hex.as_str());
        assert_eq!(
            alc_open_sealed(p.as_ptr(), k.as_ptr(), 2, 64, &mut m),
            Status::Ok,
            "{}",
            last_error()
        );
        let s = session(m);
        let mut out = String::new();
        let prompt = cstr("The capital of France is");
        let r = alc_generate(
            s,
            prompt.as_ptr(),
            &greedy(3),
            Some(collect),
            &mut out as *mut String as *mut c_void,
            null_mut(),
        );
        assert_eq!(r, Status::Ok, "{}", last_error());
        assert!(out.starts_with(" Paris"), "{out:?}");
        alc_session_free(s);
        alc_model_free(m);
    }
}

#[test]
fn messages_never_hold_nul() {
    let c = alc_capi::error::c_message("a\0b");
    assert_eq!(c.to_str().unwrap(), "a\\0b");
}
