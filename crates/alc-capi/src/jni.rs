//! Java natives for `java/ai/alc/{Alc,Session}.java` (package `ai.alc`). Handles are
//! the same table numbers as the C API's, carried in a Java `long`; errors are thrown
//! as `ai.alc.AlcException(status, message)`. Every native runs under `catch_unwind`
//! so no panic unwinds into the JVM. Token callbacks (`GenerateListener.onToken`) run
//! on the thread that called `generate`; a Java exception thrown by the listener
//! cancels the generation and is left pending for the caller.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;
use std::sync::Arc;

use jni::objects::{JByteArray, JClass, JObject, JObjectArray, JString, JValue};
use jni::sys::{jboolean, jfloat, jfloatArray, jint, jlong, jstring, JNI_FALSE};
use jni::JNIEnv;

use crate::error::{panic_message, CapiError, Result, Status};
use crate::handles::{self, Obj};
use crate::objects::{GenOptions, ModelObj, OpenOptions, SessionObj};

const EXCEPTION: &str = "ai/alc/AlcException";

fn jerr(e: jni::errors::Error) -> CapiError {
    CapiError::Internal(format!("JNI: {e}"))
}

/// Throw `AlcException(status, message)` (unless a Java exception is already pending).
fn throw(env: &mut JNIEnv, status: Status, msg: &str) {
    if env.exception_check().unwrap_or(false) {
        return;
    }
    let made = (|| -> jni::errors::Result<()> {
        let m = env.new_string(msg)?;
        let ex = env.new_object(
            EXCEPTION,
            "(ILjava/lang/String;)V",
            &[JValue::Int(status as i32), JValue::Object(&m)],
        )?;
        env.throw(jni::objects::JThrowable::from(ex))
    })();
    if made.is_err() {
        let _ = env.exception_clear();
        let _ = env.throw_new("java/lang/RuntimeException", msg);
    }
}

/// Run a native's body; on error or panic throw and return `fallback`.
fn run<T>(env: &mut JNIEnv, fallback: T, f: impl FnOnce(&mut JNIEnv) -> Result<T>) -> T {
    match catch_unwind(AssertUnwindSafe(|| f(env))) {
        Ok(Ok(v)) => v,
        Ok(Err(e)) => {
            throw(env, e.status(), &e.to_string());
            fallback
        }
        Err(p) => {
            let msg = format!(
                "internal error (a bug in alc): panic: {}",
                panic_message(p.as_ref())
            );
            throw(env, Status::Internal, &msg);
            fallback
        }
    }
}

fn string(env: &mut JNIEnv, s: &JString, what: &'static str) -> Result<String> {
    if s.is_null() {
        return Err(CapiError::Null { what });
    }
    Ok(env.get_string(s).map_err(jerr)?.into())
}

fn handle(h: jlong) -> usize {
    h as u64 as usize
}

fn register_model(m: ModelObj) -> jlong {
    handles::insert(Obj::Model(Arc::new(m))) as jlong
}

fn open_opts(threads: jint, ctx: jint) -> Result<OpenOptions> {
    if threads < 0 || ctx < 0 {
        return Err(CapiError::Invalid(format!(
            "threads ({threads}) and ctx ({ctx}) must be >= 0 (0 = default)"
        )));
    }
    Ok(OpenOptions {
        threads: threads as usize,
        ctx: ctx as usize,
    })
}

#[no_mangle]
pub extern "system" fn Java_ai_alc_Alc_nativeVersion<'l>(
    mut env: JNIEnv<'l>,
    _c: JClass<'l>,
) -> jstring {
    run(&mut env, std::ptr::null_mut(), |env| {
        Ok(env
            .new_string(env!("CARGO_PKG_VERSION"))
            .map_err(jerr)?
            .into_raw())
    })
}

#[no_mangle]
pub extern "system" fn Java_ai_alc_Alc_nativeOpen<'l>(
    mut env: JNIEnv<'l>,
    _c: JClass<'l>,
    path: JString<'l>,
    threads: jint,
    ctx: jint,
) -> jlong {
    run(&mut env, 0, |env| {
        let p = string(env, &path, "path")?;
        let o = open_opts(threads, ctx)?;
        Ok(register_model(ModelObj::open(Path::new(&p), o)?))
    })
}

#[no_mangle]
pub extern "system" fn Java_ai_alc_Alc_nativeOpenBuffer<'l>(
    mut env: JNIEnv<'l>,
    _c: JClass<'l>,
    bytes: JByteArray<'l>,
    threads: jint,
    ctx: jint,
) -> jlong {
    run(&mut env, 0, |env| {
        if bytes.is_null() {
            return Err(CapiError::Null { what: "bytes" });
        }
        let v = env.convert_byte_array(&bytes).map_err(jerr)?;
        let o = open_opts(threads, ctx)?;
        Ok(register_model(ModelObj::open_bytes(v, o)?))
    })
}

#[no_mangle]
pub extern "system" fn Java_ai_alc_Alc_nativeOpenSealed<'l>(
    mut env: JNIEnv<'l>,
    _c: JClass<'l>,
    path: JString<'l>,
    key: JString<'l>,
    threads: jint,
    ctx: jint,
) -> jlong {
    run(&mut env, 0, |env| {
        let p = string(env, &path, "path")?;
        let k = if key.is_null() {
            None
        } else {
            Some(alc_seal::Zeroizing::new(string(env, &key, "key")?))
        };
        let o = open_opts(threads, ctx)?;
        let m = ModelObj::open_sealed(Path::new(&p), k.as_ref().map(|k| k.as_str()), o)?;
        Ok(register_model(m))
    })
}

#[no_mangle]
pub extern "system" fn Java_ai_alc_Alc_nativeFree<'l>(
    mut env: JNIEnv<'l>,
    _c: JClass<'l>,
    model: jlong,
) {
    run(&mut env, (), |_| {
        handles::remove(handle(model), "model")?;
        Ok(())
    })
}

#[no_mangle]
pub extern "system" fn Java_ai_alc_Alc_nativeSessionNew<'l>(
    mut env: JNIEnv<'l>,
    _c: JClass<'l>,
    model: jlong,
) -> jlong {
    run(&mut env, 0, |_| {
        let m = handles::model(handle(model))?;
        let s = SessionObj::new(&m)?;
        Ok(handles::insert(Obj::Session(Arc::new(s))) as jlong)
    })
}

/// Embeddings of `texts`, row-major in one array (`texts.length * dim` floats).
#[no_mangle]
pub extern "system" fn Java_ai_alc_Alc_nativeEmbed<'l>(
    mut env: JNIEnv<'l>,
    _c: JClass<'l>,
    model: jlong,
    texts: JObjectArray<'l>,
) -> jfloatArray {
    run(&mut env, std::ptr::null_mut(), |env| {
        let m = handles::model(handle(model))?;
        if texts.is_null() {
            return Err(CapiError::Null { what: "texts" });
        }
        let n = env.get_array_length(&texts).map_err(jerr)? as usize;
        let mut owned = Vec::with_capacity(n);
        for i in 0..n {
            let o = env
                .get_object_array_element(&texts, i as i32)
                .map_err(jerr)?;
            let s = JString::from(o);
            owned.push(string(env, &s, "a text")?);
            env.delete_local_ref(s).map_err(jerr)?;
        }
        let refs: Vec<&str> = owned.iter().map(String::as_str).collect();
        let dim = m.embedder()?.dim();
        let mut out = vec![0f32; n * dim];
        m.embed_into(&refs, &mut out)?;
        let arr = env.new_float_array(out.len() as i32).map_err(jerr)?;
        env.set_float_array_region(&arr, 0, &out).map_err(jerr)?;
        Ok(arr.into_raw())
    })
}

/// Vector width of an embedding model.
#[no_mangle]
pub extern "system" fn Java_ai_alc_Alc_nativeEmbedDim<'l>(
    mut env: JNIEnv<'l>,
    _c: JClass<'l>,
    model: jlong,
) -> jint {
    run(&mut env, 0, |_| {
        let m = handles::model(handle(model))?;
        let d = m.embedder()?.dim();
        Ok(d as jint)
    })
}

/// Generate; returns the whole text. Sets `this.lastStopReason` (the `alc_stop`
/// code). `listener` may be null.
#[no_mangle]
#[allow(clippy::too_many_arguments)]
pub extern "system" fn Java_ai_alc_Session_nativeGenerate<'l>(
    mut env: JNIEnv<'l>,
    this: JObject<'l>,
    session: jlong,
    prompt: JString<'l>,
    max_tokens: jint,
    temperature: jfloat,
    seed: jlong,
    chat: jboolean,
    listener: JObject<'l>,
) -> jstring {
    run(&mut env, std::ptr::null_mut(), |env| {
        let s = handles::session(handle(session))?;
        let prompt = string(env, &prompt, "prompt")?;
        if max_tokens < 0 {
            return Err(CapiError::Invalid(format!(
                "maxTokens {max_tokens} must be >= 0 (0 = no limit)"
            )));
        }
        let mut o = GenOptions {
            max_tokens: max_tokens as usize,
            chat: chat != JNI_FALSE,
            ..GenOptions::default()
        };
        o.sampling.temperature = temperature;
        o.sampling.seed = seed as u64;
        let mut all = String::new();
        let mut jerror: Option<CapiError> = None;
        let stats = s.generate(&prompt, &o, |text| {
            all.push_str(text);
            if listener.is_null() {
                return true;
            }
            let r = (|| -> jni::errors::Result<bool> {
                let t = env.new_string(text)?;
                let r = env.call_method(
                    &listener,
                    "onToken",
                    "(Ljava/lang/String;)Z",
                    &[JValue::Object(&t)],
                );
                env.delete_local_ref(t)?;
                r?.z()
            })();
            match r {
                Ok(go) => go,
                Err(e) => {
                    // A Java exception from the listener stays pending for the caller.
                    if !env.exception_check().unwrap_or(false) {
                        jerror = Some(jerr(e));
                    }
                    false
                }
            }
        })?;
        if let Some(e) = jerror {
            return Err(e);
        }
        if env.exception_check().unwrap_or(false) {
            return Ok(std::ptr::null_mut());
        }
        env.set_field(
            &this,
            "lastStopReason",
            "I",
            JValue::Int(crate::stop_code(stats.stop) as i32),
        )
        .map_err(jerr)?;
        Ok(env.new_string(all).map_err(jerr)?.into_raw())
    })
}

#[no_mangle]
pub extern "system" fn Java_ai_alc_Session_nativeCancel<'l>(
    mut env: JNIEnv<'l>,
    _c: JClass<'l>,
    session: jlong,
) {
    run(&mut env, (), |_| {
        handles::session(handle(session))?.cancel();
        Ok(())
    })
}

#[no_mangle]
pub extern "system" fn Java_ai_alc_Session_nativeFree<'l>(
    mut env: JNIEnv<'l>,
    _c: JClass<'l>,
    session: jlong,
) {
    run(&mut env, (), |_| {
        if let Obj::Session(s) = handles::remove(handle(session), "session")? {
            s.cancel();
        }
        Ok(())
    })
}

/// Live handles (models, sessions, streams) as `int[3]`, for leak tests.
#[no_mangle]
pub extern "system" fn Java_ai_alc_Alc_nativeLiveHandles<'l>(
    mut env: JNIEnv<'l>,
    _c: JClass<'l>,
) -> jni::sys::jintArray {
    run(&mut env, std::ptr::null_mut(), |env| {
        let (m, s, t) = handles::live_counts();
        let arr = env.new_int_array(3).map_err(jerr)?;
        env.set_int_array_region(&arr, 0, &[m as i32, s as i32, t as i32])
            .map_err(jerr)?;
        Ok(arr.into_raw())
    })
}
