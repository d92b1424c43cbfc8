//! BERT-style ONNX encoders run through ONNX Runtime (`alc embed` on `.onnx` files).
//!
//! # What this crate owns
//!
//! - Finding and loading the ONNX Runtime shared library at run time ([`find_library`],
//!   [`runtime`]). Nothing is linked or downloaded at build time: the `ort` crate is used with
//!   `load-dynamic` and its default features (binary download, ndarray, tracing) off.
//! - [`OrtEncoder`]: one ONNX Runtime session over an encoder with int64 `input_ids`,
//!   `attention_mask` and optionally `token_type_ids`, whose first rank-3 float output is
//!   `[batch, seq, hidden]`. [`OrtEncoder::run`] pads a batch, runs it once and returns each
//!   sentence's token rows with the padding removed.
//! - [`mean_pool_normalize`]: mean pooling (in f64) and L2 normalisation of those rows.
//!
//! Tokenisation, truncation and batching policy belong to the caller (`alc-engine`).
//!
//! # How the library is found
//!
//! `ORT_DYLIB_PATH` when set (the file must exist); otherwise python is asked where the
//! `onnxruntime` wheel lives and the highest-versioned `capi/libonnxruntime.so*` there is
//! taken. The file is checked (exists, regular file), then probed by this crate with
//! `dlopen` (keeping dlerror's reason), `OrtGetApiBase` and a version check (≥ 1.17, ort's
//! API level), and only then handed to `ort::init_from`; every failure is an [`OrtError`]
//! that says how to fix it, and the ort call is wrapped in `catch_unwind` as a last resort.
//! No other `ort` API is touched before that succeeds: `ort` panics when an API is used
//! before a library is loaded, so everything goes through [`runtime`] first.
//!
//! The runtime (library + `ort` environment) is initialised once per process and kept for
//! its lifetime. A failed attempt is not cached: a later call tries again (with whatever
//! `ORT_DYLIB_PATH` says then), but once a library is loaded it stays the one in use.
//!
//! # Threading
//!
//! Each [`OrtEncoder`] has its own session with `threads` intra-op threads (0 lets ONNX
//! Runtime choose) and one inter-op thread, full graph optimisation. `ort`'s `Session::run`
//! takes `&mut self`, so the session sits behind a `Mutex`: `OrtEncoder` is `Send + Sync`
//! and concurrent `run` calls are serialised (each one already uses all intra-op threads).

use std::borrow::Cow;
use std::ffi::CStr;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

use ort::environment::Environment;
use ort::session::builder::{GraphOptimizationLevel, SessionBuilder};
use ort::session::{Session, SessionInputValue};
use ort::value::{Tensor, TensorElementType, ValueType};

/// How to get a usable ONNX Runtime; appended to every library error.
const INSTALL_HINT: &str = "install it with `python3 -m pip install onnxruntime==1.32.0` or set ORT_DYLIB_PATH to libonnxruntime.so";

/// Errors of this crate.
#[derive(Debug, thiserror::Error)]
pub enum OrtError {
    #[error("ONNX Runtime library not found: {INSTALL_HINT}")]
    LibraryNotFound,
    #[error("ORT_DYLIB_PATH={path} does not exist or is not a file: point it at libonnxruntime.so (e.g. onnxruntime/capi/libonnxruntime.so.1.32.0 of the onnxruntime wheel) or unset it")]
    LibraryPathMissing { path: PathBuf },
    #[error("cannot load ONNX Runtime from {path}: {reason}; {INSTALL_HINT}")]
    LibraryLoad { path: PathBuf, reason: String },
    #[error("ONNX Runtime environment failed to start: {reason}")]
    Environment { reason: String },
    #[error("ONNX model {path} not found: check the path")]
    ModelMissing { path: PathBuf },
    #[error("cannot load the ONNX model {what}: {reason}; is it a valid .onnx file?")]
    ModelLoad { what: String, reason: String },
    #[error("cannot configure the ONNX Runtime session ({setting}): {reason}")]
    SessionOptions {
        setting: &'static str,
        reason: String,
    },
    #[error("not a BERT-shaped encoder: input `{name}` is missing (inputs: {found}); the model needs int64 input_ids and attention_mask")]
    MissingInput { name: &'static str, found: String },
    #[error(
        "not a BERT-shaped encoder: input `{name}` is {ty}, expected an int64 tensor [batch, seq]"
    )]
    InputType { name: String, ty: String },
    #[error("not a BERT-shaped encoder: required input `{name}` is not one of input_ids, attention_mask, token_type_ids; export the model without it")]
    UnsupportedInput { name: String },
    #[error("not a BERT-shaped encoder: {reason}")]
    NotEncoder { reason: String },
    #[error(
        "ONNX Runtime failed to run the encoder on a batch of {batch} × {seq} tokens: {reason}"
    )]
    Run {
        batch: usize,
        seq: usize,
        reason: String,
    },
    #[error("the encoder returned output `{name}` of shape {got:?}, expected [{batch}, {seq}, {hidden}]")]
    OutputShape {
        name: String,
        got: Vec<i64>,
        batch: usize,
        seq: usize,
        hidden: usize,
    },
}

/// The process-wide ONNX Runtime: where it was loaded from, its version and the `ort`
/// environment that sessions are built on.
pub struct Runtime {
    path: PathBuf,
    version: String,
    env: Environment,
}

impl Runtime {
    /// The library file that was loaded.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// ONNX Runtime's own version string, e.g. `1.32.0`.
    pub fn version(&self) -> &str {
        &self.version
    }
}

impl std::fmt::Debug for Runtime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runtime")
            .field("path", &self.path)
            .field("version", &self.version)
            .finish_non_exhaustive()
    }
}

static RUNTIME: OnceLock<Runtime> = OnceLock::new();
static INIT: Mutex<()> = Mutex::new(());

/// Where the ONNX Runtime library is: `ORT_DYLIB_PATH` if set (it must exist), else the
/// highest `capi/libonnxruntime.so*` of python's `onnxruntime` package.
pub fn find_library() -> Result<PathBuf, OrtError> {
    if let Some(p) = std::env::var_os("ORT_DYLIB_PATH").filter(|p| !p.is_empty()) {
        let path = PathBuf::from(p);
        return if path.is_file() {
            Ok(path)
        } else {
            Err(OrtError::LibraryPathMissing { path })
        };
    }
    python_wheel_library().ok_or(OrtError::LibraryNotFound)
}

/// The library inside the `onnxruntime` python package, if python has one.
fn python_wheel_library() -> Option<PathBuf> {
    let out = std::process::Command::new("python3")
        .args([
            "-c",
            "import onnxruntime,os;print(os.path.dirname(onnxruntime.__file__))",
        ])
        .stdin(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    let dir = PathBuf::from(String::from_utf8(out.stdout).ok()?.trim()).join("capi");
    newest_library_in(&dir)
}

/// The `libonnxruntime.so*` (or `libonnxruntime*.dylib`) in `dir` with the highest version
/// suffix; the unversioned name counts as the lowest.
fn newest_library_in(dir: &Path) -> Option<PathBuf> {
    let mut best: Option<(Vec<u64>, PathBuf)> = None;
    for entry in std::fs::read_dir(dir).ok()?.flatten() {
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        let version = if let Some(rest) = name.strip_prefix("libonnxruntime.so") {
            rest.trim_start_matches('.')
        } else if let Some(rest) = name
            .strip_prefix("libonnxruntime")
            .and_then(|r| r.strip_suffix(".dylib"))
        {
            rest.trim_start_matches('.')
        } else {
            continue;
        };
        let key: Vec<u64> = version
            .split('.')
            .filter(|s| !s.is_empty())
            .map(|s| s.parse().unwrap_or(0))
            .collect();
        let path = entry.path();
        if !path.is_file() {
            continue;
        }
        if best.as_ref().is_none_or(|(k, _)| key > *k) {
            best = Some((key, path));
        }
    }
    best.map(|(_, p)| p)
}

/// The process-wide ONNX Runtime, loaded on first use from [`find_library`].
pub fn runtime() -> Result<&'static Runtime, OrtError> {
    if let Some(rt) = RUNTIME.get() {
        return Ok(rt);
    }
    let _guard = INIT.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(rt) = RUNTIME.get() {
        return Ok(rt);
    }
    let rt = load_runtime(&find_library()?)?;
    Ok(RUNTIME.get_or_init(|| rt))
}

/// The ONNX Runtime version, loading the library if needed.
pub fn version() -> Result<&'static str, OrtError> {
    runtime().map(Runtime::version)
}

fn load_runtime(path: &Path) -> Result<Runtime, OrtError> {
    let load_err = |reason: String| OrtError::LibraryLoad {
        path: path.to_path_buf(),
        reason,
    };
    // An absolute path: ort resolves relative ones against the executable's directory and
    // panics when that is unknown.
    let path = path
        .canonicalize()
        .map_err(|e| load_err(format!("cannot resolve the path: {e}")))?;
    let load_err = |reason: String| OrtError::LibraryLoad {
        path: path.clone(),
        reason,
    };
    if !path.is_file() {
        return Err(load_err("not a regular file".into()));
    }
    // Our own probe first: it keeps dlopen's reason (ort's error drops it) and reads the
    // version.
    let version = probe_library(&path).map_err(load_err)?;
    let builder = catch_unwind(AssertUnwindSafe(|| ort::init_from(&path)))
        .map_err(|p| load_err(format!("ONNX Runtime loader panicked: {}", panic_text(&p))))?
        .map_err(|e| load_err(clean(e)))?;
    // The library is loaded now (ort keeps it open for the process), so other ort APIs are
    // safe to use from here on.
    let env = catch_unwind(AssertUnwindSafe(|| {
        builder.with_name("alc").with_telemetry(false).build()
    }))
    .map_err(|p| OrtError::Environment {
        reason: format!("panicked: {}", panic_text(&p)),
    })?
    .map_err(|e| OrtError::Environment { reason: clean(e) })?;
    Ok(Runtime { path, version, env })
}

/// Oldest ONNX Runtime minor version (1.x) that ort's API level needs.
const MIN_MINOR: u32 = ort::MINOR_VERSION;

/// `dlopen`s `path`, checks that it is ONNX Runtime ≥ 1.[`MIN_MINOR`] and returns its
/// version string. The handle is kept open for the process on success (ort opens the same
/// file next, which only raises the reference count).
fn probe_library(path: &Path) -> Result<String, String> {
    // SAFETY: loading a shared library runs its initialisers; that is the point of
    // ORT_DYLIB_PATH, and the file was chosen by the user or by the onnxruntime wheel.
    let lib = unsafe { libloading::Library::new(path) }.map_err(|e| error_chain(&e))?;
    // SAFETY: `OrtGetApiBase` has this signature in every ONNX Runtime release.
    let get_base: libloading::Symbol<unsafe extern "C" fn() -> *const ort::sys::OrtApiBase> =
        unsafe { lib.get(b"OrtGetApiBase") }.map_err(|_| {
            "the file does not export `OrtGetApiBase`, so it is not ONNX Runtime".to_string()
        })?;
    // SAFETY: a C function without arguments that returns a static table or null.
    let base = unsafe { get_base() };
    if base.is_null() {
        return Err("OrtGetApiBase returned null".into());
    }
    // SAFETY: `base` points at the library's static OrtApiBase; GetVersionString returns a
    // static NUL-terminated string or null.
    let version = unsafe {
        let s = ((*base).GetVersionString)();
        if s.is_null() {
            return Err("GetVersionString returned null".into());
        }
        CStr::from_ptr(s).to_string_lossy().into_owned()
    };
    let mut parts = version.split('.').map(|p| p.parse::<u32>().ok());
    let (major, minor) = (parts.next().flatten(), parts.next().flatten());
    if major != Some(1) || minor.is_none_or(|m| m < MIN_MINOR) {
        return Err(format!(
            "ONNX Runtime {version} is too old or unrecognised (need 1.{MIN_MINOR} or newer)"
        ));
    }
    std::mem::forget(lib);
    Ok(version)
}

/// An error and its sources, joined with `: ` (libloading keeps dlerror's text in the
/// source).
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(inner) = cur {
        let t = inner.to_string();
        if !s.contains(&t) {
            s.push_str(": ");
            s.push_str(&t);
        }
        cur = inner.source();
    }
    s
}

/// An ort error's message without trailing punctuation (it is embedded in ours).
fn clean(e: impl std::fmt::Display) -> String {
    e.to_string().trim_end().trim_end_matches('.').to_string()
}

fn panic_text(p: &Box<dyn std::any::Any + Send>) -> String {
    p.downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| p.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".into())
}

/// A BERT-style encoder session.
pub struct OrtEncoder {
    session: Mutex<Session>,
    input_names: Vec<String>,
    has_token_type_ids: bool,
    output: String,
    hidden: usize,
}

impl std::fmt::Debug for OrtEncoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OrtEncoder")
            .field("inputs", &self.input_names)
            .field("output", &self.output)
            .field("hidden", &self.hidden)
            .finish_non_exhaustive()
    }
}

const INPUT_IDS: &str = "input_ids";
const ATTENTION_MASK: &str = "attention_mask";
const TOKEN_TYPE_IDS: &str = "token_type_ids";

impl OrtEncoder {
    /// Opens the `.onnx` file at `path` (external data files next to it are found) with
    /// `threads` intra-op threads (0: ONNX Runtime's default).
    pub fn open(path: &Path, threads: usize) -> Result<OrtEncoder, OrtError> {
        if !path.is_file() {
            return Err(OrtError::ModelMissing {
                path: path.to_path_buf(),
            });
        }
        let mut builder = session_builder(threads)?;
        let session = builder
            .commit_from_file(path)
            .map_err(|e| OrtError::ModelLoad {
                what: path.display().to_string(),
                reason: clean(e),
            })?;
        Self::from_session(session)
    }

    /// Builds the encoder from the bytes of an `.onnx` model held in memory.
    pub fn from_bytes(model: &[u8], threads: usize) -> Result<OrtEncoder, OrtError> {
        let mut builder = session_builder(threads)?;
        let session = builder
            .commit_from_memory(model)
            .map_err(|e| OrtError::ModelLoad {
                what: format!("({} bytes in memory)", model.len()),
                reason: clean(e),
            })?;
        Self::from_session(session)
    }

    fn from_session(session: Session) -> Result<OrtEncoder, OrtError> {
        let input_names: Vec<String> = session
            .inputs()
            .iter()
            .map(|i| i.name().to_string())
            .collect();
        for input in session.inputs() {
            let name = input.name();
            if ![INPUT_IDS, ATTENTION_MASK, TOKEN_TYPE_IDS].contains(&name) {
                return Err(OrtError::UnsupportedInput {
                    name: name.to_string(),
                });
            }
            let ok = matches!(input.dtype(), ValueType::Tensor { ty: TensorElementType::Int64, shape, .. } if shape.len() == 2);
            if !ok {
                return Err(OrtError::InputType {
                    name: name.to_string(),
                    ty: input.dtype().to_string(),
                });
            }
        }
        for required in [INPUT_IDS, ATTENTION_MASK] {
            if !input_names.iter().any(|n| n == required) {
                return Err(OrtError::MissingInput {
                    name: required,
                    found: input_names.join(", "),
                });
            }
        }
        let has_token_type_ids = input_names.iter().any(|n| n == TOKEN_TYPE_IDS);

        let outputs: Vec<String> = session
            .outputs()
            .iter()
            .map(|o| format!("{}: {}", o.name(), o.dtype()))
            .collect();
        let rank3 = session
            .outputs()
            .iter()
            .find(|o| o.dtype().tensor_shape().is_some_and(|s| s.len() == 3))
            .ok_or_else(|| OrtError::NotEncoder {
                reason: format!(
                    "no rank-3 [batch, seq, hidden] output (outputs: {})",
                    outputs.join(", ")
                ),
            })?;
        let output = rank3.name().to_string();
        if rank3.dtype().tensor_type() != Some(TensorElementType::Float32) {
            return Err(OrtError::NotEncoder {
                reason: format!("output `{output}` is {}, expected float32", rank3.dtype()),
            });
        }
        let declared_hidden = rank3.dtype().tensor_shape().map_or(-1, |s| s[2]);
        let mut enc = OrtEncoder {
            session: Mutex::new(session),
            input_names,
            has_token_type_ids,
            output,
            hidden: usize::try_from(declared_hidden).unwrap_or(0),
        };
        if enc.hidden == 0 {
            // A symbolic hidden size: learn it from one token.
            enc.hidden = enc.probe_hidden()?;
        }
        Ok(enc)
    }

    /// Width of each token row.
    pub fn hidden(&self) -> usize {
        self.hidden
    }

    /// The model's input names, in the model's order.
    pub fn input_names(&self) -> &[String] {
        &self.input_names
    }

    /// Name of the output that is read (the first rank-3 output).
    pub fn output_name(&self) -> &str {
        &self.output
    }

    /// Runs a batch of token-id sentences in one session run (padded with id 0 to the
    /// longest; attention mask 1/0; token types 0). Returns, per sentence, its
    /// `len × hidden` token rows, row-major, padding removed. Empty sentences give empty
    /// rows; an empty batch gives an empty result without running.
    pub fn run(&self, batch: &[&[u32]]) -> Result<Vec<Vec<f32>>, OrtError> {
        let seq = batch.iter().map(|s| s.len()).max().unwrap_or(0);
        if seq == 0 {
            return Ok(vec![Vec::new(); batch.len()]);
        }
        let (data, got) = self.forward(batch, seq)?;
        let hidden = self.hidden;
        let want = [batch.len() as i64, seq as i64, hidden as i64];
        if got != want || data.len() != batch.len() * seq * hidden {
            return Err(OrtError::OutputShape {
                name: self.output.clone(),
                got,
                batch: batch.len(),
                seq,
                hidden,
            });
        }
        Ok(batch
            .iter()
            .enumerate()
            .map(|(b, s)| {
                let start = b * seq * hidden;
                data[start..start + s.len() * hidden].to_vec()
            })
            .collect())
    }

    fn probe_hidden(&self) -> Result<usize, OrtError> {
        let (data, got) = self.forward(&[&[0]], 1)?;
        match got.as_slice() {
            [1, 1, h] if *h > 0 && data.len() == *h as usize => Ok(*h as usize),
            _ => Err(OrtError::NotEncoder {
                reason: format!(
                    "output `{}` has shape {got:?} for one sentence of one token, expected [1, 1, hidden]",
                    self.output
                ),
            }),
        }
    }

    /// One session run over the padded batch; the output's data and shape.
    fn forward(&self, batch: &[&[u32]], seq: usize) -> Result<(Vec<f32>, Vec<i64>), OrtError> {
        let run_err = |reason: String| OrtError::Run {
            batch: batch.len(),
            seq,
            reason,
        };
        let n = batch.len() * seq;
        let mut ids = vec![0i64; n];
        let mut mask = vec![0i64; n];
        for (b, s) in batch.iter().enumerate() {
            for (t, &id) in s.iter().enumerate() {
                ids[b * seq + t] = i64::from(id);
                mask[b * seq + t] = 1;
            }
        }
        let shape = vec![batch.len() as i64, seq as i64];
        let tensor = |data: Vec<i64>| {
            Tensor::from_array((shape.clone(), data))
                .map(SessionInputValue::from)
                .map_err(|e| run_err(clean(e)))
        };
        let mut inputs: Vec<(Cow<'_, str>, SessionInputValue<'_>)> = vec![
            (INPUT_IDS.into(), tensor(ids)?),
            (ATTENTION_MASK.into(), tensor(mask)?),
        ];
        if self.has_token_type_ids {
            inputs.push((TOKEN_TYPE_IDS.into(), tensor(vec![0i64; n])?));
        }
        let mut session = self.session.lock().unwrap_or_else(|e| e.into_inner());
        let outputs = session.run(inputs).map_err(|e| run_err(clean(e)))?;
        let value = outputs
            .get(&self.output)
            .ok_or_else(|| run_err(format!("output `{}` missing", self.output)))?;
        let (shape, data) = value
            .try_extract_tensor::<f32>()
            .map_err(|e| run_err(clean(e)))?;
        Ok((data.to_vec(), shape.to_vec()))
    }
}

fn session_builder(threads: usize) -> Result<SessionBuilder, OrtError> {
    let rt = runtime()?;
    let opt = |setting: &'static str| {
        move |e: ort::Error<SessionBuilder>| OrtError::SessionOptions {
            setting,
            reason: clean(e),
        }
    };
    Session::builder(&rt.env)
        .map_err(|e| OrtError::SessionOptions {
            setting: "create",
            reason: clean(e),
        })?
        .with_optimization_level(GraphOptimizationLevel::All)
        .map_err(opt("optimization level"))?
        .with_intra_threads(threads)
        .map_err(opt("intra-op threads"))?
        .with_inter_threads(1)
        .map_err(opt("inter-op threads"))
}

/// Mean of the `rows.len() / hidden` rows of width `hidden` (accumulated in f64), then
/// L2-normalised when `normalize`. No rows (or `hidden == 0`) gives zeros; a zero vector
/// stays zero.
pub fn mean_pool_normalize(rows: &[f32], hidden: usize, normalize: bool) -> Vec<f32> {
    if hidden == 0 {
        return Vec::new();
    }
    let n = rows.len() / hidden;
    let mut acc = vec![0f64; hidden];
    for row in rows.chunks_exact(hidden) {
        for (a, &x) in acc.iter_mut().zip(row) {
            *a += f64::from(x);
        }
    }
    if n > 0 {
        for a in &mut acc {
            *a /= n as f64;
        }
    }
    if normalize {
        let norm = acc.iter().map(|a| a * a).sum::<f64>().sqrt();
        if norm > 0.0 {
            for a in &mut acc {
                *a /= norm;
            }
        }
    }
    acc.into_iter().map(|a| a as f32).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mean_pool_and_normalize() {
        let rows = [1.0, 2.0, 3.0, 6.0];
        assert_eq!(mean_pool_normalize(&rows, 2, false), vec![2.0, 4.0]);
        let v = mean_pool_normalize(&rows, 2, true);
        assert!((v[0] - 1.0 / 5f32.sqrt()).abs() < 1e-7);
        assert!((v[1] - 2.0 / 5f32.sqrt()).abs() < 1e-7);
        assert_eq!(mean_pool_normalize(&[], 2, true), vec![0.0, 0.0]);
        assert!(mean_pool_normalize(&rows, 0, true).is_empty());
    }

    #[test]
    fn newest_library_is_highest_version() {
        let dir = std::env::temp_dir().join(format!("alc-ort-find-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        for name in [
            "libonnxruntime.so",
            "libonnxruntime.so.1.9.0",
            "libonnxruntime.so.1.32.0",
            "libonnxruntime_providers_shared.so",
        ] {
            std::fs::write(dir.join(name), b"x").unwrap();
        }
        let got = newest_library_in(&dir).unwrap();
        assert_eq!(got.file_name().unwrap(), "libonnxruntime.so.1.32.0");
        std::fs::remove_dir_all(&dir).unwrap();
        assert!(newest_library_in(&dir).is_none());
    }

    #[test]
    fn encoder_is_send_sync() {
        fn check<T: Send + Sync>() {}
        check::<OrtEncoder>();
        check::<Runtime>();
    }
}
