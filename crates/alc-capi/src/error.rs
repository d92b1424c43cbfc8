//! The crate's error type, its mapping onto [`Status`], and the thread-local last
//! error message behind `alc_last_error`.

use std::cell::RefCell;
use std::ffi::{c_char, CString};

use alc_engine::EngineError;
use alc_format::FormatError;
use alc_models::ModelError;
use alc_seal::SealError;

/// Status of every `alc_*` call (`alc_status` in C: an `int32_t`). 0 and positive
/// values are successes, negative values are errors with a message in
/// `alc_last_error()`.
#[repr(i32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    /// Success.
    Ok = 0,
    /// `alc_stream_next`: the generation has finished; no token was written.
    Done = 1,
    /// An argument is wrong: a NULL pointer where one is required, text that is not
    /// UTF-8, a value out of range, an operation the model kind does not support.
    InvalidArgument = -1,
    /// A handle that is NULL, was already freed, or is of another kind.
    InvalidHandle = -2,
    /// The model file does not exist.
    NotFound = -3,
    /// The file is not a usable model: not GGUF, truncated, corrupt, a missing tensor.
    BadModel = -4,
    /// A valid model this build cannot run (unknown architecture, tensor type, no chat
    /// template, missing ONNX Runtime).
    Unsupported = -5,
    /// The session is already generating (one generation per session at a time).
    Busy = -6,
    /// The generation was cancelled (callback returned 0, or `alc_cancel`).
    Cancelled = -7,
    /// A stage exceeded its watchdog deadline; the engine was asked to stop.
    Timeout = -8,
    /// The prompt does not fit the context.
    ContextFull = -9,
    /// An output buffer is too small; the size needed was written to the length output.
    BufferTooSmall = -10,
    /// Reading a file failed for a reason other than its absence.
    Io = -11,
    /// A sealed package: the key is wrong or missing, or the file failed
    /// authentication.
    BadKey = -12,
    /// A bug in alc (a caught panic, a stopped engine thread).
    Internal = -100,
}

impl Status {
    /// The constant's name without the prefix, e.g. `"INVALID_HANDLE"`.
    pub fn name(self) -> &'static str {
        match self {
            Status::Ok => "OK",
            Status::Done => "DONE",
            Status::InvalidArgument => "INVALID_ARGUMENT",
            Status::InvalidHandle => "INVALID_HANDLE",
            Status::NotFound => "NOT_FOUND",
            Status::BadModel => "BAD_MODEL",
            Status::Unsupported => "UNSUPPORTED",
            Status::Busy => "BUSY",
            Status::Cancelled => "CANCELLED",
            Status::Timeout => "TIMEOUT",
            Status::ContextFull => "CONTEXT_FULL",
            Status::BufferTooSmall => "BUFFER_TOO_SMALL",
            Status::Io => "IO",
            Status::BadKey => "BAD_KEY",
            Status::Internal => "INTERNAL",
        }
    }
}

/// Errors of the C and JNI bindings.
#[derive(Debug, thiserror::Error)]
pub enum CapiError {
    #[error("{what} is NULL")]
    Null { what: &'static str },
    #[error("{what} is not valid UTF-8 (invalid byte at offset {at})")]
    Utf8 { what: &'static str, at: usize },
    #[error("{0}")]
    Invalid(String),
    #[error("{kind} handle {handle:#x} is not live: NULL, already freed, never returned by alc, or a handle of another kind")]
    Handle { kind: &'static str, handle: usize },
    #[error("the session is already generating: one generation per session at a time (use another session, or cancel and wait for the first)")]
    Busy,
    #[error("the generation was cancelled")]
    Cancelled,
    #[error("{what} is too small: {need} needed, {cap} given")]
    BufferTooSmall {
        what: &'static str,
        need: usize,
        cap: usize,
    },
    #[error(transparent)]
    Engine(#[from] EngineError),
    #[error(transparent)]
    Seal(#[from] SealError),
    #[error(transparent)]
    Format(#[from] FormatError),
    #[error("internal error (a bug in alc): {0}")]
    Internal(String),
    /// An error already reported once, given again (a finished stream).
    #[error("{1}")]
    Repeated(Status, String),
}

fn io_status(e: &std::io::Error) -> Status {
    if e.kind() == std::io::ErrorKind::NotFound {
        Status::NotFound
    } else {
        Status::Io
    }
}

fn format_status(e: &FormatError) -> Status {
    match e {
        FormatError::Io { source, .. } => io_status(source),
        _ => Status::BadModel,
    }
}

fn engine_status(e: &EngineError) -> Status {
    match e {
        EngineError::Model(m) => match m {
            ModelError::Format(f) => format_status(f),
            ModelError::UnknownArch { .. } | ModelError::UnsupportedType { .. } => {
                Status::Unsupported
            }
            ModelError::BadContext { .. } => Status::InvalidArgument,
            ModelError::ContextFull { .. } => Status::ContextFull,
            _ => Status::BadModel,
        },
        EngineError::Tokenizer(_) => Status::BadModel,
        EngineError::Onnx(_) => Status::Unsupported,
        EngineError::Timeout { .. } => Status::Timeout,
        EngineError::PromptTooLong { .. } => Status::ContextFull,
        EngineError::EmptyPrompt
        | EngineError::BadRequest(_)
        | EngineError::BadInput { .. }
        | EngineError::Image(_) => Status::InvalidArgument,
        EngineError::NoChatTemplate => Status::Unsupported,
        EngineError::Stopped(_) => Status::Internal,
    }
}

impl CapiError {
    pub fn status(&self) -> Status {
        match self {
            CapiError::Null { .. } | CapiError::Utf8 { .. } | CapiError::Invalid(_) => {
                Status::InvalidArgument
            }
            CapiError::Handle { .. } => Status::InvalidHandle,
            CapiError::Busy => Status::Busy,
            CapiError::Cancelled => Status::Cancelled,
            CapiError::BufferTooSmall { .. } => Status::BufferTooSmall,
            CapiError::Engine(e) => engine_status(e),
            CapiError::Format(e) => format_status(e),
            CapiError::Seal(e) => match e {
                SealError::Io { source, .. } => io_status(source),
                SealError::Write(f) => format_status(f),
                SealError::BadKey { .. } | SealError::BadRequest { .. } => Status::InvalidArgument,
                SealError::NotSealed { .. } => Status::BadModel,
                SealError::NewerVersion { .. }
                | SealError::UnknownCipher { .. }
                | SealError::UnknownKdf { .. } => Status::Unsupported,
                _ => Status::BadKey,
            },
            CapiError::Internal(_) => Status::Internal,
            CapiError::Repeated(s, _) => *s,
        }
    }
}

pub type Result<T> = std::result::Result<T, CapiError>;

thread_local! {
    static LAST_ERROR: RefCell<CString> = RefCell::new(CString::default());
}

/// A message as a C string: interior NULs (which C cannot carry) become `\0`.
pub fn c_message(msg: &str) -> CString {
    CString::new(msg.replace('\0', "\\0")).unwrap_or_default()
}

pub fn set_last_error(msg: &str) {
    let c = c_message(msg);
    LAST_ERROR.with(|m| *m.borrow_mut() = c);
}

pub fn clear_last_error() {
    LAST_ERROR.with(|m| {
        let mut m = m.borrow_mut();
        if !m.as_bytes().is_empty() {
            *m = CString::default();
        }
    });
}

/// The current thread's message; valid until the thread's next `alc_*` call.
pub fn last_error_ptr() -> *const c_char {
    LAST_ERROR.with(|m| m.borrow().as_ptr())
}

/// The text of a caught panic's payload.
pub fn panic_message(p: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = p.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = p.downcast_ref::<String>() {
        s.clone()
    } else {
        "panic with a non-text payload".to_string()
    }
}
