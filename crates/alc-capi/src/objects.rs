//! The objects behind the handles and the operations the C and JNI entry points
//! share. Nothing here knows about raw pointers or JNI.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use alc_engine::{
    Embedder, Engine, EngineConfig, Event, GenRequest, GenStats, Generation, Prompt,
    SamplingParams, Session, StopReason,
};
use alc_format::GgufFile;
use alc_tokenizer::ChatMessage;

use crate::error::{CapiError, Result, Status};

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// A loaded model: a language model on its engine run loop, or an embedding package.
pub enum ModelObj {
    Lm(Engine),
    /// Embeddings run on the calling thread, one call at a time per model.
    Embed(Box<Mutex<Embedder>>),
}

/// How to size the engine (0 = default for both).
#[derive(Clone, Copy, Debug, Default)]
pub struct OpenOptions {
    pub threads: usize,
    pub ctx: usize,
}

impl OpenOptions {
    fn engine_config(self) -> EngineConfig {
        let mut cfg = EngineConfig::default();
        if self.threads > 0 {
            cfg.threads = self.threads;
        }
        if self.ctx > 0 {
            cfg.ctx = Some(self.ctx);
        }
        cfg
    }
}

impl ModelObj {
    /// Open a parsed GGUF: `bert` packages become embedders, anything else a language
    /// model on a new engine.
    pub fn from_gguf(file: GgufFile, opts: OpenOptions) -> Result<ModelObj> {
        let arch = file.get_str("general.architecture").ok().flatten();
        if arch == Some("bert") {
            let cfg = opts.engine_config();
            let e = Embedder::open_gguf(file, cfg.threads)?;
            return Ok(ModelObj::Embed(Box::new(Mutex::new(e))));
        }
        Ok(ModelObj::Lm(Engine::open_gguf(file, opts.engine_config())?))
    }

    pub fn open(path: &Path, opts: OpenOptions) -> Result<ModelObj> {
        Self::from_gguf(GgufFile::open(path)?, opts)
    }

    /// A GGUF image in memory (copied by the caller into `bytes`).
    pub fn open_bytes(bytes: Vec<u8>, opts: OpenOptions) -> Result<ModelObj> {
        Self::from_gguf(GgufFile::from_bytes("<buffer>", bytes)?, opts)
    }

    /// A sealed package (`.ava3`), decrypted in memory. `key`: hex or base64 of the
    /// 32-byte key; `None` takes ALC_SEAL_KEY / ALC_SEAL_PASSPHRASE from the
    /// environment.
    pub fn open_sealed(path: &Path, key: Option<&str>, opts: OpenOptions) -> Result<ModelObj> {
        let keys = match key {
            Some(k) => alc_seal::KeySource::key(alc_seal::Key::parse(k, "key")?),
            None => alc_seal::KeySource::from_env()?.ok_or_else(|| {
                CapiError::Invalid(format!(
                    "no key given and neither {} nor {} is set",
                    alc_seal::KEY_ENV,
                    alc_seal::PASSPHRASE_ENV
                ))
            })?,
        };
        let bytes = alc_seal::open_in_memory(path, &keys)?;
        Self::from_gguf(GgufFile::from_bytes(path, bytes)?, opts)
    }

    pub fn engine(&self) -> Result<&Engine> {
        match self {
            ModelObj::Lm(e) => Ok(e),
            ModelObj::Embed(_) => Err(CapiError::Invalid(
                "this is an embedding model: it has no sessions; use alc_embed".into(),
            )),
        }
    }

    pub fn embedder(&self) -> Result<MutexGuard<'_, Embedder>> {
        match self {
            ModelObj::Embed(e) => Ok(lock(e)),
            ModelObj::Lm(_) => Err(CapiError::Invalid(
                "this is a language model, not an embedding model; open an embedding package (architecture bert) for alc_embed".into(),
            )),
        }
    }

    /// Embed `texts` into `out` (row-major, `texts.len() × dim`); returns `dim`.
    /// A too-small `out` is reported before any work.
    pub fn embed_into(&self, texts: &[&str], out: &mut [f32]) -> Result<usize> {
        let e = self.embedder()?;
        let dim = e.dim();
        let need = texts.len() * dim;
        if out.len() < need {
            return Err(CapiError::BufferTooSmall {
                what: "the output array",
                need,
                cap: out.len(),
            });
        }
        let embs = e.embed(texts)?;
        for (row, emb) in out.chunks_exact_mut(dim).zip(&embs) {
            if emb.vector.len() != dim {
                return Err(CapiError::Internal(format!(
                    "embedding of width {} from a model of width {dim}",
                    emb.vector.len()
                )));
            }
            row.copy_from_slice(&emb.vector);
        }
        Ok(dim)
    }
}

/// A session: one KV cache on the run loop, one generation at a time.
pub struct SessionObj {
    session: Session,
    busy: AtomicBool,
    /// The running generation's cancel flag.
    cancel: Mutex<Option<Arc<AtomicBool>>>,
}

/// Held while a generation runs on a session; dropping it frees the session.
pub struct BusyGuard(Arc<SessionObj>);

impl Drop for BusyGuard {
    fn drop(&mut self) {
        *lock(&self.0.cancel) = None;
        self.0.busy.store(false, Ordering::Release);
    }
}

/// What a generation asks for, independent of the binding.
#[derive(Clone, Debug, Default)]
pub struct GenOptions {
    pub sampling: SamplingParams,
    /// 0: until end of generation or a full context.
    pub max_tokens: usize,
    /// Render the prompt as one user message with the model's chat template.
    pub chat: bool,
    pub stop: Vec<String>,
}

impl GenOptions {
    fn request(&self, prompt: &str) -> Result<GenRequest> {
        if prompt.is_empty() {
            return Err(CapiError::Engine(alc_engine::EngineError::EmptyPrompt));
        }
        self.sampling
            .validate()
            .map_err(|m| CapiError::Invalid(format!("sampling parameters: {m}")))?;
        let prompt = if self.chat {
            Prompt::Chat(vec![ChatMessage::new("user", prompt)])
        } else {
            Prompt::Text {
                text: prompt.to_string(),
                add_special: true,
                parse_special: false,
            }
        };
        Ok(GenRequest {
            prompt,
            sampling: self.sampling.clone(),
            max_tokens: if self.max_tokens == 0 {
                usize::MAX
            } else {
                self.max_tokens
            },
            stop: self.stop.clone(),
            images: Vec::new(),
        })
    }
}

impl SessionObj {
    pub fn new(model: &ModelObj) -> Result<SessionObj> {
        Ok(SessionObj {
            session: model.engine()?.session()?,
            busy: AtomicBool::new(false),
            cancel: Mutex::new(None),
        })
    }

    fn acquire(self: &Arc<Self>) -> Result<BusyGuard> {
        if self
            .busy
            .compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire)
            .is_err()
        {
            return Err(CapiError::Busy);
        }
        Ok(BusyGuard(self.clone()))
    }

    fn start(self: &Arc<Self>, prompt: &str, opts: &GenOptions) -> Result<(BusyGuard, Generation)> {
        let guard = self.acquire()?;
        let req = opts.request(prompt)?;
        let gen = self.session.generate(req)?;
        *lock(&self.cancel) = Some(gen.canceller());
        Ok((guard, gen))
    }

    /// Ask the running generation (if any) to stop after its current step.
    pub fn cancel(&self) {
        if let Some(c) = lock(&self.cancel).as_ref() {
            c.store(true, Ordering::Relaxed);
        }
    }

    /// Generate on the calling thread, handing each piece of text to `on_token`
    /// (return `false` to cancel). A cancelled generation returns its stats with
    /// `StopReason::Cancelled`.
    pub fn generate(
        self: &Arc<Self>,
        prompt: &str,
        opts: &GenOptions,
        mut on_token: impl FnMut(&str) -> bool,
    ) -> Result<GenStats> {
        let (_guard, gen) = self.start(prompt, opts)?;
        let cancel = gen.canceller();
        let mut stopped = false;
        for ev in gen {
            match ev? {
                Event::Token { text, .. } => {
                    if !stopped && !text.is_empty() && !on_token(&text) {
                        cancel.store(true, Ordering::Relaxed);
                        stopped = true;
                    }
                }
                Event::Done(stats) => return Ok(stats),
            }
        }
        Err(CapiError::Internal(
            "the generation ended without its final event".into(),
        ))
    }
}

/// How a finished stream ended.
enum End {
    Done,
    Failed(Status, String),
}

struct StreamState {
    gen: Option<Generation>,
    guard: Option<BusyGuard>,
    /// Text taken from the engine but not yet handed out (the caller's buffer was
    /// too small).
    pending: Option<String>,
    stats: Option<GenStats>,
    end: Option<End>,
}

/// A pull-style generation.
pub struct StreamObj {
    state: Mutex<StreamState>,
    cancel: Arc<AtomicBool>,
}

/// One step of a stream.
pub enum Next {
    Text(String),
    Done,
}

impl StreamObj {
    pub fn start(session: &Arc<SessionObj>, prompt: &str, opts: &GenOptions) -> Result<StreamObj> {
        let (guard, gen) = session.start(prompt, opts)?;
        Ok(StreamObj {
            cancel: gen.canceller(),
            state: Mutex::new(StreamState {
                gen: Some(gen),
                guard: Some(guard),
                pending: None,
                stats: None,
                end: None,
            }),
        })
    }

    pub fn cancel(&self) {
        self.cancel.store(true, Ordering::Relaxed);
    }

    /// The next non-empty piece of text, `Done`, or the generation's error (repeated
    /// on later calls). A cancelled stream ends with `CapiError::Cancelled`.
    /// `fits(text)`: whether the caller can take this text now; if not, it is kept for
    /// the next call and `BufferTooSmall` is returned.
    pub fn next(&self, fits: impl Fn(&str) -> Result<()>) -> Result<Next> {
        let mut st = lock(&self.state);
        loop {
            if let Some(p) = st.pending.take() {
                if let Err(e) = fits(&p) {
                    st.pending = Some(p);
                    return Err(e);
                }
                return Ok(Next::Text(p));
            }
            match &st.end {
                Some(End::Done) => return Ok(Next::Done),
                Some(End::Failed(s, m)) => {
                    return Err(if *s == Status::Cancelled {
                        CapiError::Cancelled
                    } else {
                        CapiError::Repeated(*s, m.clone())
                    })
                }
                None => {}
            }
            let ev = st.gen.as_mut().and_then(|g| g.next_event());
            match ev {
                Some(Ok(Event::Token { text, .. })) => {
                    if !text.is_empty() {
                        st.pending = Some(text);
                    }
                }
                Some(Ok(Event::Done(stats))) => {
                    let cancelled = stats.stop == StopReason::Cancelled;
                    st.stats = Some(stats);
                    st.gen = None;
                    st.guard = None;
                    if cancelled {
                        st.end = Some(End::Failed(
                            Status::Cancelled,
                            "the generation was cancelled".into(),
                        ));
                        return Err(CapiError::Cancelled);
                    }
                    st.end = Some(End::Done);
                }
                Some(Err(e)) => {
                    st.gen = None;
                    st.guard = None;
                    let e = CapiError::from(e);
                    st.end = Some(End::Failed(e.status(), e.to_string()));
                    return Err(e);
                }
                None => {
                    st.gen = None;
                    st.guard = None;
                    st.end = Some(End::Failed(
                        Status::Internal,
                        "the generation ended without its final event".into(),
                    ));
                }
            }
        }
    }

    /// Stats of the finished generation.
    pub fn stats(&self) -> Option<GenStats> {
        lock(&self.state).stats.clone()
    }
}

impl Drop for StreamObj {
    fn drop(&mut self) {
        // Generation's drop cancels the run loop's work; the guard frees the session.
        self.cancel();
    }
}
