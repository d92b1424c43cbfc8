//! alc-engine: sessions over a model owned by one run-loop thread.
//!
//! Design note: [`Engine::open`] starts a dedicated thread that loads the model, the
//! tokenizer and the compute backend and then owns them (and every session's KV cache)
//! for its whole life; callers on any thread hold cheap handles and talk to it over
//! channels. Each step the loop takes — load, tokenize, every prefill chunk, every
//! decode step, sampling — is announced to a [`watchdog::Tracker`] with its start time;
//! a caller waiting for results checks the stage's deadline and, on expiry, gets
//! [`EngineError::Timeout`] naming the stage, the chunk/step, the backend and the
//! elapsed time instead of waiting forever. Prefill runs in chunks whose sizes are the
//! graph variants ar1 / ar32 / ar128 / ar512 ("whole prompt" up to 512), picked per
//! prompt length unless `ubatch` overrides.

pub mod bench;
pub mod classify;
pub mod embed;
pub mod sampler;
pub mod watchdog;

use alc_format::GgufFile;
use alc_kernels::cpu::CpuBackend;
use alc_kernels::Backend;
use alc_models::{HParams, Logits, Model, ModelError, Scratch, Seg, State, VisionModel};
use alc_tokenizer::{ChatMessage, ChatTemplate, Tokenizer, TokenizerError};
use std::collections::{HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender, TryRecvError};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

pub use bench::{BenchReport, BenchSpec, BenchTest};
pub use classify::{Centroids, Classification, Intents, DEFAULT_THRESHOLD};
pub use embed::{EmbedRuntime, Embedder, Embedding};
pub use sampler::{Sampler, SamplingParams};
pub use watchdog::{Deadlines, Stage, Tracker};

/// Prefill chunk sizes (graph variants): ar1 is decode; the largest is "whole prompt".
pub const PREFILL_VARIANTS: [usize; 4] = [1, 32, 128, 512];

/// Tokens in the next prefill chunk. The variant chosen is the smallest of
/// [`PREFILL_VARIANTS`] that holds the rest of the prompt ("whole prompt" past the
/// largest), capped by the micro-batch (`--ubatch`, default 512; a longer prompt runs
/// in several chunks). The CPU backend needs no padding, so a variant is a capacity and
/// the chunk runs at the rest's exact length: the result is `min(remaining,
/// max_ubatch)`.
pub fn prefill_chunk(remaining: usize, max_ubatch: usize) -> usize {
    remaining.min(max_ubatch)
}

/// KV-cache budget that caps the default context (`EngineConfig::kv_budget_bytes`).
pub const DEFAULT_KV_BUDGET_BYTES: u64 = 1 << 30;

/// The context the engine uses when `--ctx` is not given: the model's training context,
/// capped so that the KV cache (sliding-window layers holding only their window, see
/// `HParams::kv_cache_bytes`) fits `kv_budget_bytes`, and at least the ar32 variant.
pub fn default_ctx(hp: &alc_models::HParams, kv_budget_bytes: u64) -> usize {
    let ub = PREFILL_VARIANTS[3];
    let fits = |ctx: usize| hp.kv_cache_bytes(ctx, ub) <= kv_budget_bytes;
    // The cache grows with the context: the largest fitting one by bisection.
    let (mut lo, mut hi) = (0usize, hp.ctx_train);
    while lo < hi {
        let mid = lo + (hi - lo).div_ceil(2);
        if fits(mid) {
            lo = mid;
        } else {
            hi = mid - 1;
        }
    }
    lo.max(PREFILL_VARIANTS[1])
}

/// How often a waiting caller re-checks the watchdog.
const WATCH_POLL: Duration = Duration::from_millis(50);

/// Errors of the engine.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error(transparent)]
    Model(#[from] ModelError),
    #[error(transparent)]
    Tokenizer(#[from] TokenizerError),
    #[error(transparent)]
    Onnx(#[from] alc_ort::OrtError),
    #[error(transparent)]
    Image(#[from] alc_image::ImageError),
    #[error("stage '{stage}' ({detail}) exceeded its deadline of {limit:?} on backend {backend} after {elapsed:?}; the engine was asked to stop. Raise the deadline with --deadline-scale or report the model and prompt")]
    Timeout {
        stage: &'static str,
        detail: String,
        backend: String,
        elapsed: Duration,
        limit: Duration,
    },
    #[error("the prompt is empty; pass some text with -p or on stdin")]
    EmptyPrompt,
    #[error("the prompt has {n} tokens but the context holds {ctx} (one more is needed to generate); shorten the prompt or raise --ctx (the model was trained for {ctx_train})")]
    PromptTooLong {
        n: usize,
        ctx: usize,
        ctx_train: usize,
    },
    #[error("{0}")]
    BadRequest(String),
    /// A mistake in an input file (intents, labelled set): where (file and line) and
    /// what is wrong.
    #[error("{at}: {why}")]
    BadInput { at: String, why: String },
    #[error("this model has no chat template (tokenizer.chat_template); use `alc run` with a raw prompt")]
    NoChatTemplate,
    #[error("the engine thread has stopped: {0}")]
    Stopped(String),
}

/// How to size and run the engine.
#[derive(Clone, Debug)]
pub struct EngineConfig {
    pub threads: usize,
    /// Context length; default: the model's training context capped by `kv_budget_bytes`.
    pub ctx: Option<usize>,
    /// Fixed prefill chunk size (overrides the automatic variant choice).
    pub ubatch: Option<usize>,
    /// Upper bound on KV-cache bytes when the context is chosen automatically.
    pub kv_budget_bytes: u64,
    pub deadlines: Deadlines,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            threads: default_threads(),
            ctx: None,
            ubatch: None,
            kv_budget_bytes: DEFAULT_KV_BUDGET_BYTES,
            deadlines: Deadlines::default(),
        }
    }
}

/// Logical CPUs available to this process (`available_parallelism`; counts SMT
/// siblings, respects affinity masks and cgroup quotas).
pub fn default_threads() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
}

/// What the engine loaded, for front ends.
#[derive(Clone, Debug)]
pub struct ModelInfo {
    pub path: PathBuf,
    pub hp: HParams,
    pub n_params: u64,
    pub backend: String,
    pub ctx: usize,
    pub max_ubatch: usize,
    pub chat_template: Option<String>,
    pub load_time: Duration,
    pub bytes_per_token: u64,
    pub vocab_size: usize,
    /// The vision tower of a vision-language package.
    pub vision: Option<VisionInfo>,
}

/// The vision side of a vision-language package.
#[derive(Clone, Debug)]
pub struct VisionInfo {
    pub params: alc_models::VisionParams,
    /// The image processor the package's preprocessor config describes.
    pub processor: alc_image::ProcessorConfig,
}

/// One generation request.
#[derive(Clone, Debug)]
pub struct GenRequest {
    pub prompt: Prompt,
    pub sampling: SamplingParams,
    pub max_tokens: usize,
    pub stop: Vec<String>,
    /// Images for a vision-language package ([`Engine::prepare_image`]), in the
    /// order of the prompt's `<image>` placeholders.
    pub images: Vec<PreparedImage>,
}

/// An image turned into the model's tiles ([`Engine::prepare_image`], on the
/// caller's thread): decoded, oriented, resized, split and normalised.
#[derive(Clone, Debug)]
pub struct PreparedImage {
    /// `[n_tiles][3][S][S]` pixel values (the tiles of the grid, then the global view).
    pub pixels: Vec<f32>,
    /// The tile grid (0 × 0: not split, one tile).
    pub rows: u32,
    pub cols: u32,
    pub n_tiles: usize,
    /// The decoded image's size.
    pub width: u32,
    pub height: u32,
    /// Decode + preprocessing time.
    pub preprocess: Duration,
}

/// Times of the image stages of one generation.
#[derive(Clone, Debug, Default)]
pub struct ImageStats {
    pub images: usize,
    pub tiles: usize,
    /// Decode + preprocessing of all images (caller side).
    pub preprocess: Duration,
    /// The vision encoder, per tile, in order.
    pub encode_tiles: Vec<Duration>,
    /// The modality projector, all images.
    pub project: Duration,
}

impl ImageStats {
    /// The vision encoder over all tiles.
    pub fn encode(&self) -> Duration {
        self.encode_tiles.iter().sum()
    }
}

#[derive(Clone, Debug)]
pub enum Prompt {
    /// Raw text; `add_special` adds BOS/EOS per the model, `parse_special` turns
    /// special-token text into special tokens.
    Text {
        text: String,
        add_special: bool,
        parse_special: bool,
    },
    /// Chat messages rendered with the model's template (generation prompt added).
    Chat(Vec<ChatMessage>),
    Tokens(Vec<u32>),
}

/// Why generation ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StopReason {
    EndOfGeneration,
    StopString,
    MaxTokens,
    ContextFull,
    Cancelled,
}

/// Timings and counts of a finished generation.
#[derive(Clone, Debug)]
pub struct GenStats {
    pub prompt_tokens: usize,
    /// Prompt tokens reused from the session's KV cache.
    pub cached_tokens: usize,
    pub generated: usize,
    pub prefill: Duration,
    pub decode: Duration,
    pub ttft: Duration,
    pub stop: StopReason,
    /// Prefill chunk sizes used, in order.
    pub chunks: Vec<usize>,
    /// The most sequences that shared one forward pass with this one (1: it ran
    /// alone; more: continuous batching with other sessions' generations).
    pub peak_batch: usize,
    /// Token-embedding lookups and LM-head time over this generation's forward
    /// passes (a pass shared with other sequences counts whole for each).
    pub embed: Duration,
    pub lm_head: Duration,
    /// The image stages, when the request had images.
    pub image: Option<ImageStats>,
}

/// Streamed results.
#[derive(Clone, Debug)]
pub enum Event {
    /// A sampled token and the text it completes (may be empty while a multi-byte
    /// character or a possible stop string is held back).
    Token {
        id: u32,
        text: String,
    },
    Done(GenStats),
}

enum Cmd {
    NewSession(u64),
    DropSession(u64),
    Generate(GenCmd),
    Tokenize {
        text: String,
        add_special: bool,
        parse_special: bool,
        reply: Sender<Result<Vec<u32>, EngineError>>,
    },
    Render {
        messages: Vec<ChatMessage>,
        reply: Sender<Result<String, EngineError>>,
    },
    Bench {
        spec: BenchSpec,
        reply: Sender<Result<BenchReport, EngineError>>,
    },
}

struct GenCmd {
    session: u64,
    req: GenRequest,
    events: Sender<Result<Event, EngineError>>,
    cancel: Arc<AtomicBool>,
}

struct Inner {
    tx: Sender<Cmd>,
    tracker: Arc<Tracker>,
    deadlines: Deadlines,
    info: ModelInfo,
    next_id: AtomicU64,
    join: std::sync::Mutex<Option<JoinHandle<()>>>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        // Closing the channel ends the loop; join so the model is freed before return.
        let (tx, _) = mpsc::channel();
        drop(std::mem::replace(&mut self.tx, tx));
        if let Some(h) = self.join.lock().unwrap_or_else(|e| e.into_inner()).take() {
            let _ = h.join();
        }
    }
}

/// Handle to a running engine; clone freely.
#[derive(Clone)]
pub struct Engine {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Engine({})", self.inner.info.path.display())
    }
}

impl Engine {
    /// Start the run loop and load `path` on it (under the load deadline).
    pub fn open(path: impl AsRef<Path>, cfg: EngineConfig) -> Result<Engine, EngineError> {
        let path = path.as_ref().to_path_buf();
        let p = path.clone();
        Self::open_with(path, cfg, move || {
            Ok(Arc::new(GgufFile::open(&p).map_err(ModelError::from)?))
        })
    }

    /// Start the run loop on a model already in memory (e.g. a sealed package
    /// decrypted by the caller: its plaintext never touches disk). The file's path
    /// labels messages.
    pub fn open_gguf(file: GgufFile, cfg: EngineConfig) -> Result<Engine, EngineError> {
        let path = file.path().to_path_buf();
        Self::open_with(path, cfg, move || Ok(Arc::new(file)))
    }

    fn open_with(
        path: PathBuf,
        cfg: EngineConfig,
        source: impl FnOnce() -> Result<Arc<GgufFile>, EngineError> + Send + 'static,
    ) -> Result<Engine, EngineError> {
        let tracker = Arc::new(Tracker::default());
        let (tx, rx) = mpsc::channel::<Cmd>();
        let (ready_tx, ready_rx) = mpsc::channel::<Result<ModelInfo, EngineError>>();
        let t2 = tracker.clone();
        let cfg2 = cfg.clone();
        let p2 = path.clone();
        let join = std::thread::Builder::new()
            .name("alc-run-loop".into())
            .spawn(move || {
                t2.enter(Stage::Load, 0);
                let started = Instant::now();
                match source().and_then(|f| RunLoop::load(&p2, f, &cfg2, t2.clone())) {
                    Ok(mut rl) => {
                        rl.info.load_time = started.elapsed();
                        t2.enter(Stage::Idle, 0);
                        if ready_tx.send(Ok(rl.info.clone())).is_ok() {
                            rl.serve(rx);
                        }
                    }
                    Err(e) => {
                        t2.enter(Stage::Idle, 0);
                        let _ = ready_tx.send(Err(e));
                    }
                }
            })
            .map_err(|e| EngineError::Stopped(format!("cannot start the run-loop thread: {e}")))?;
        let info = wait_watched(&ready_rx, &tracker, &cfg.deadlines, "cpu", || {})?;
        tracing::debug!(
            "loaded {} in {:.1} ms: {} layers, backend {}",
            path.display(),
            info.load_time.as_secs_f64() * 1e3,
            info.hp.n_layer,
            info.backend
        );
        Ok(Engine {
            inner: Arc::new(Inner {
                tx,
                tracker,
                deadlines: cfg.deadlines,
                info,
                next_id: AtomicU64::new(1),
                join: std::sync::Mutex::new(Some(join)),
            }),
        })
    }

    pub fn info(&self) -> &ModelInfo {
        &self.inner.info
    }

    fn send(&self, c: Cmd) -> Result<(), EngineError> {
        self.inner
            .tx
            .send(c)
            .map_err(|_| EngineError::Stopped("the run loop exited".into()))
    }

    fn call<T>(
        &self,
        make: impl FnOnce(Sender<Result<T, EngineError>>) -> Cmd,
    ) -> Result<T, EngineError> {
        let (tx, rx) = mpsc::channel();
        self.send(make(tx))?;
        wait_watched(
            &rx,
            &self.inner.tracker,
            &self.inner.deadlines,
            &self.inner.info.backend,
            || {},
        )
    }

    /// A new session with its own KV cache (allocated lazily on first use).
    pub fn session(&self) -> Result<Session, EngineError> {
        let id = self.inner.next_id.fetch_add(1, Ordering::Relaxed);
        self.send(Cmd::NewSession(id))?;
        Ok(Session {
            id,
            engine: self.clone(),
        })
    }

    pub fn tokenize(
        &self,
        text: &str,
        add_special: bool,
        parse_special: bool,
    ) -> Result<Vec<u32>, EngineError> {
        let text = text.to_string();
        self.call(|reply| Cmd::Tokenize {
            text,
            add_special,
            parse_special,
            reply,
        })
    }

    /// Render chat messages with the model's template (generation prompt added).
    pub fn render_chat(&self, messages: &[ChatMessage]) -> Result<String, EngineError> {
        let messages = messages.to_vec();
        self.call(|reply| Cmd::Render { messages, reply })
    }

    /// Decode and preprocess an image file's bytes for this vision-language model
    /// (on the caller's thread, so the run loop keeps serving others meanwhile).
    pub fn prepare_image(&self, bytes: &[u8]) -> Result<PreparedImage, EngineError> {
        let info = &self.inner.info;
        let v = info.vision.as_ref().ok_or_else(|| {
            EngineError::BadRequest(format!(
                "{} is a text-only model; images need a vision-language package (alc compile of a SmolVLM / Idefics3 checkpoint)",
                info.path.display()
            ))
        })?;
        let t = Instant::now();
        let img = alc_image::decode(bytes, &alc_image::DecodeOptions::default())?;
        let p = alc_image::preprocess(&img, &v.processor)?;
        Ok(PreparedImage {
            pixels: p.pixel_values,
            rows: p.rows,
            cols: p.cols,
            n_tiles: p.n_tiles,
            width: img.width,
            height: img.height,
            preprocess: t.elapsed(),
        })
    }

    /// Run a benchmark on the run loop.
    pub fn bench(&self, spec: BenchSpec) -> Result<BenchReport, EngineError> {
        self.call(|reply| Cmd::Bench { spec, reply })
    }
}

/// Wait for one reply while enforcing the current stage's deadline.
fn wait_watched<T>(
    rx: &Receiver<Result<T, EngineError>>,
    tracker: &Tracker,
    deadlines: &Deadlines,
    backend: &str,
    on_timeout: impl FnOnce(),
) -> Result<T, EngineError> {
    loop {
        match rx.recv_timeout(WATCH_POLL) {
            Ok(r) => return r,
            Err(RecvTimeoutError::Disconnected) => {
                return Err(EngineError::Stopped(
                    "the run loop exited without replying".into(),
                ))
            }
            Err(RecvTimeoutError::Timeout) => {
                if let Some(expired) = tracker.expired(deadlines) {
                    on_timeout();
                    return Err(timeout_error(expired, deadlines, backend));
                }
            }
        }
    }
}

/// The error for a stage that overran its deadline, from [`Tracker::expired`].
fn timeout_error(
    (stage, detail, elapsed): (Stage, u64, Duration),
    deadlines: &Deadlines,
    backend: &str,
) -> EngineError {
    EngineError::Timeout {
        stage: stage.name(),
        detail: stage_detail(stage, detail),
        backend: backend.to_string(),
        elapsed,
        limit: deadlines.for_stage(stage).unwrap_or_default(),
    }
}

fn stage_detail(s: Stage, d: u64) -> String {
    match s {
        Stage::Prefill => format!("chunk {d}"),
        Stage::Decode => format!("step {d}"),
        Stage::VisionEncode => format!("tile {d}"),
        Stage::Project => format!("image {d}"),
        _ => format!("#{d}"),
    }
}

/// A conversation / sequence with its own KV cache on the run loop.
pub struct Session {
    id: u64,
    engine: Engine,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Session({})", self.id)
    }
}

impl Session {
    /// Start generating; tokens arrive through the returned stream. Prompt tokens that
    /// match what this session already holds are reused from the KV cache.
    pub fn generate(&self, req: GenRequest) -> Result<Generation, EngineError> {
        req.sampling.validate().map_err(EngineError::BadRequest)?;
        let (tx, rx) = mpsc::channel();
        let cancel = Arc::new(AtomicBool::new(false));
        self.engine.send(Cmd::Generate(GenCmd {
            session: self.id,
            req,
            events: tx,
            cancel: cancel.clone(),
        }))?;
        Ok(Generation {
            rx,
            cancel,
            engine: self.engine.clone(),
            finished: false,
        })
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        let _ = self.engine.send(Cmd::DropSession(self.id));
    }
}

/// A stream of generation events.
pub struct Generation {
    rx: Receiver<Result<Event, EngineError>>,
    cancel: Arc<AtomicBool>,
    engine: Engine,
    finished: bool,
}

impl Generation {
    /// Ask the run loop to stop after the current step; `next` then yields `Done`
    /// with `StopReason::Cancelled`.
    pub fn cancel(&self) {
        self.cancel.store(true, Ordering::Relaxed);
    }

    /// A handle that cancels this generation from another thread.
    pub fn canceller(&self) -> Arc<AtomicBool> {
        self.cancel.clone()
    }

    /// Next event, or `None` after `Done`. Enforces stage deadlines.
    pub fn next_event(&mut self) -> Option<Result<Event, EngineError>> {
        if self.finished {
            return None;
        }
        let i = &self.engine.inner;
        let cancel = self.cancel.clone();
        let r = wait_watched(&self.rx, &i.tracker, &i.deadlines, &i.info.backend, || {
            cancel.store(true, Ordering::Relaxed)
        });
        if !matches!(r, Ok(Event::Token { .. })) {
            self.finished = true;
        }
        Some(r)
    }
}

impl Iterator for Generation {
    type Item = Result<Event, EngineError>;
    fn next(&mut self) -> Option<Self::Item> {
        self.next_event()
    }
}

impl Drop for Generation {
    fn drop(&mut self) {
        self.cancel.store(true, Ordering::Relaxed);
    }
}

struct Sess {
    state: Option<State>,
    /// Tokens whose keys/values are in the cache.
    tokens: Vec<u32>,
    /// Position of the first image token in `tokens`: the cache past it holds one
    /// particular image, which the same token ids in another prompt need not be.
    image_from: Option<usize>,
}

/// Everything the run-loop thread owns.
struct RunLoop {
    model: Model,
    vision: Option<VisionModel>,
    tok: Tokenizer,
    template: Option<ChatTemplate>,
    backend: CpuBackend,
    tracker: Arc<Tracker>,
    /// The stages' deadlines, checked again as each stage ends: a waiter polls the
    /// tracker only every [`WATCH_POLL`], so a stage that overran and then finished
    /// between two polls would otherwise pass unnoticed.
    deadlines: Deadlines,
    info: ModelInfo,
    sessions: HashMap<u64, Sess>,
    /// Generations running, in arrival order; they advance together, one forward
    /// pass per step.
    active: Vec<Active>,
    /// Generations for a session that is busy with another one.
    waiting: VecDeque<GenCmd>,
    /// Activations for every forward pass (all sequences share them).
    scratch: Scratch,
    /// Per-step lists, kept so that a step allocates only its segment list.
    step_buf: StepBuf,
}

/// The lists [`RunLoop::step`] fills each step; taken out of the run loop for the
/// step and put back after it, so their capacity is reused.
#[derive(Default)]
struct StepBuf {
    /// (active index, tokens) of the batch.
    members: Vec<(usize, usize)>,
    /// The members' KV states, out of their sessions for the forward pass.
    states: Vec<State>,
    /// Each member's sampled token (decode rows).
    pending: Vec<[u32; 1]>,
    /// Image rows each member's chunk consumes.
    used: Vec<usize>,
}

impl RunLoop {
    fn load(
        path: &Path,
        file: Arc<GgufFile>,
        cfg: &EngineConfig,
        tracker: Arc<Tracker>,
    ) -> Result<RunLoop, EngineError> {
        if file.get_str("general.architecture").ok().flatten() == Some("bert") {
            return Err(EngineError::BadRequest(format!(
                "{} is an embedding model (bert), not a language model; use `alc embed`",
                path.display()
            )));
        }
        let tok = Tokenizer::from_gguf(&file)?;
        let mut model = Model::from_gguf(file.clone())?;
        let backend = CpuBackend::new(cfg.threads);
        for t in model.weight_types() {
            if !backend.supports(t) {
                return Err(ModelError::UnsupportedType {
                    path: path.display().to_string(),
                    tensor: "(any)".into(),
                    dtype: t,
                    supported: alc_core::executed_type_list(),
                }
                .into());
            }
        }
        let mut vision = VisionModel::from_gguf(file.clone())?;
        let t_pack = std::time::Instant::now();
        let mut packed = model.pack_weights(&backend);
        if let Some(v) = vision.as_mut() {
            packed += v.pack_weights(&backend);
        }
        tracing::debug!(
            "repacked {:.1} MiB of weights for the {} kernels in {:?}",
            packed as f64 / (1 << 20) as f64,
            backend.name(),
            t_pack.elapsed()
        );
        let hp = &model.hp;
        let ctx = match cfg.ctx {
            Some(c) => {
                if c == 0 || c > 1 << 20 {
                    return Err(ModelError::BadContext {
                        ctx: c,
                        why: "must be in 1..=1048576".into(),
                    }
                    .into());
                }
                c
            }
            None => default_ctx(hp, cfg.kv_budget_bytes),
        };
        if let Some(u) = cfg.ubatch {
            if u == 0 || u > 8192 {
                return Err(EngineError::BadRequest(format!(
                    "--ubatch {u} must be in 1..=8192"
                )));
            }
        }
        let max_ubatch = cfg
            .ubatch
            .unwrap_or(*PREFILL_VARIANTS.last().expect("non-empty"))
            .min(ctx);
        let template = match tok.chat_template() {
            Ok(t) => Some(t),
            Err(TokenizerError::NoChatTemplate) => None,
            Err(e) => return Err(e.into()),
        };
        let info = ModelInfo {
            path: path.to_path_buf(),
            hp: hp.clone(),
            n_params: file.tensors().iter().map(|t| t.n_elements()).sum(),
            backend: backend.name(),
            ctx,
            max_ubatch,
            chat_template: tok.chat_template_source().map(str::to_string),
            load_time: Duration::ZERO,
            bytes_per_token: model.bytes_per_token(),
            vocab_size: tok.vocab_size(),
            vision: match &vision {
                Some(v) => Some(vision_info(path, v, hp)?),
                None => None,
            },
        };
        let scratch = model.new_scratch(info.max_ubatch);
        Ok(RunLoop {
            model,
            vision,
            tok,
            template,
            backend,
            tracker,
            scratch,
            info,
            sessions: HashMap::new(),
            active: Vec::new(),
            step_buf: StepBuf::default(),
            waiting: VecDeque::new(),
            deadlines: cfg.deadlines.clone(),
        })
    }

    fn serve(&mut self, rx: Receiver<Cmd>) {
        loop {
            // Block for a command only when nothing is being computed; otherwise take
            // what has arrived and run one step. New requests join between steps.
            if self.active.is_empty() {
                match rx.recv() {
                    Ok(cmd) => self.handle(cmd),
                    Err(_) => return,
                }
            }
            loop {
                match rx.try_recv() {
                    Ok(cmd) => self.handle(cmd),
                    Err(TryRecvError::Empty) => break,
                    // Handles are gone; finish what is running (no one can hold a
                    // Generation without an Engine handle, so this is shutdown).
                    Err(TryRecvError::Disconnected) if self.active.is_empty() => return,
                    Err(TryRecvError::Disconnected) => break,
                }
            }
            if !self.active.is_empty() {
                self.step();
            }
            self.tracker.enter(Stage::Idle, 0);
        }
    }

    fn handle(&mut self, cmd: Cmd) {
        match cmd {
            Cmd::NewSession(id) => {
                self.sessions.insert(
                    id,
                    Sess {
                        state: None,
                        tokens: Vec::new(),
                        image_from: None,
                    },
                );
            }
            Cmd::DropSession(id) => {
                self.sessions.remove(&id);
                // A generation on it ends; its caller has dropped the session.
                let mut i = 0;
                while i < self.active.len() {
                    if self.active[i].session == id {
                        let a = self.active.swap_remove(i);
                        self.finish(a, StopReason::Cancelled);
                    } else {
                        i += 1;
                    }
                }
                self.waiting.retain(|w| w.session != id);
            }
            Cmd::Tokenize {
                text,
                add_special,
                parse_special,
                reply,
            } => {
                self.tracker.enter(Stage::Tokenize, 0);
                let r = self
                    .tok
                    .encode(&text, add_special, parse_special)
                    .map_err(EngineError::from);
                let _ = reply.send(r);
            }
            Cmd::Render { messages, reply } => {
                let _ = reply.send(self.render(&messages));
            }
            Cmd::Generate(g) => {
                if self.active.iter().any(|a| a.session == g.session) {
                    // One generation per session at a time: this one waits its turn.
                    self.waiting.push_back(g);
                } else {
                    self.start(g);
                }
            }
            Cmd::Bench { spec, reply } => {
                let r = bench::run(&self.model, &self.backend, &self.tracker, &self.info, &spec);
                let _ = reply.send(r);
            }
        }
    }

    fn render(&self, messages: &[ChatMessage]) -> Result<String, EngineError> {
        let t = self.template.as_ref().ok_or(EngineError::NoChatTemplate)?;
        Ok(t.render(messages, true)?)
    }

    /// Admit a generation: tokenize, check, reuse the session's cached prefix. Its
    /// prompt is then evaluated by the next steps.
    fn start(&mut self, mut g: GenCmd) {
        let images = std::mem::take(&mut g.req.images);
        match self.prepare(&g, &images) {
            Ok((prompt, cached, image)) => self.active.push(Active {
                // One projected row per image token of the prompt.
                image_rows: Vec::with_capacity(match (&self.vision, &image) {
                    (Some(v), Some(st)) => st.tiles * v.hp.seq_len * v.hp.text_embd,
                    _ => 0,
                }),
                session: g.session,
                next: cached,
                cached,
                chunks: Vec::new(),
                t0: Instant::now(),
                prefill: Duration::ZERO,
                t1: Instant::now(),
                ttft: None,
                generated: 0,
                max_tokens: g.req.max_tokens,
                sampler: Sampler::new(g.req.sampling.clone()),
                text: TextStream::new(g.req.stop.clone()),
                prompt,
                events: g.events,
                cancel: g.cancel,
                pending: None,
                peak_batch: 0,
                embed: Duration::ZERO,
                lm_head: Duration::ZERO,
                image_next: 0,
                encoding: (!images.is_empty()).then_some(Encoding {
                    images,
                    image: 0,
                    tile: 0,
                }),
                image,
            }),
            Err(e) => {
                let _ = g.events.send(Err(e));
            }
        }
    }

    /// Tokenize and check a request; its images are checked here and encoded by
    /// the following steps ([`Self::encode_step`]).
    fn prepare(
        &mut self,
        g: &GenCmd,
        images: &[PreparedImage],
    ) -> Result<(Vec<u32>, usize, Option<ImageStats>), EngineError> {
        self.tracker.enter(Stage::Tokenize, 0);
        let vision = match (&self.vision, images.is_empty()) {
            (_, true) => None,
            (Some(v), false) => Some(v),
            (None, false) => {
                return Err(EngineError::BadRequest(format!(
                    "{} is a text-only model; images need a vision-language package",
                    self.info.path.display()
                )))
            }
        };
        // With images, each `<image>` placeholder becomes the image's tokens (row /
        // column markers and `seq_len` `<image>` tokens per tile), parsed as specials.
        let expand = |text: &str| -> Result<String, EngineError> {
            let Some(v) = vision else {
                return Ok(text.to_string());
            };
            let grids: Vec<(u32, u32)> = images.iter().map(|i| (i.rows, i.cols)).collect();
            Ok(alc_image::expand_prompt(text, &grids, v.hp.seq_len)?)
        };
        let prompt =
            match &g.req.prompt {
                Prompt::Text {
                    text,
                    add_special,
                    parse_special,
                } => {
                    let text = expand(text)?;
                    self.tok
                        .encode(&text, *add_special, *parse_special || vision.is_some())?
                }
                Prompt::Chat(m) => {
                    let text = expand(&self.render(m)?)?;
                    self.tok.encode_chat(&text)?
                }
                Prompt::Tokens(_) if vision.is_some() => return Err(EngineError::BadRequest(
                    "images need a text or chat prompt with <image> placeholders, not token ids"
                        .into(),
                )),
                Prompt::Tokens(t) => t.clone(),
            };
        if prompt.is_empty() {
            return Err(EngineError::EmptyPrompt);
        }
        let ctx = self.info.ctx;
        if prompt.len() >= ctx {
            return Err(EngineError::PromptTooLong {
                n: prompt.len(),
                ctx,
                ctx_train: self.info.hp.ctx_train,
            });
        }
        if let Some(&bad) = prompt.iter().find(|&&t| t as usize >= self.info.hp.n_vocab) {
            return Err(ModelError::BadToken {
                id: bad,
                vocab: self.info.hp.n_vocab,
            }
            .into());
        }
        let image_tok = vision.map(|v| v.hp.image_token);
        let first_image = image_tok.and_then(|t| prompt.iter().position(|&x| x == t));
        let image = match vision {
            None => None,
            Some(v) => {
                let n_tok = prompt.iter().filter(|&&x| Some(x) == image_tok).count();
                let tiles: usize = images.iter().map(|i| i.n_tiles).sum();
                if n_tok != tiles * v.hp.seq_len {
                    return Err(EngineError::BadRequest(format!(
                        "the prompt has {n_tok} image tokens but {} images of {tiles} tiles need {}; write <image> only where an image goes",
                        images.len(),
                        tiles * v.hp.seq_len
                    )));
                }
                let tf = v.tile_floats();
                for (ii, img) in images.iter().enumerate() {
                    if img.pixels.len() != img.n_tiles * tf {
                        return Err(EngineError::BadRequest(format!(
                            "image {ii} has {} pixel values for {} tiles of {}",
                            img.pixels.len(),
                            img.n_tiles,
                            tf
                        )));
                    }
                }
                Some(ImageStats {
                    images: images.len(),
                    tiles,
                    preprocess: images.iter().map(|i| i.preprocess).sum(),
                    ..ImageStats::default()
                })
            }
        };
        let session = g.session;
        let sess = self
            .sessions
            .get_mut(&session)
            .ok_or_else(|| EngineError::BadRequest(format!("session {session} does not exist")))?;
        if sess.state.is_none() {
            // KV cache only: activations live in the run loop's shared scratch.
            sess.state = Some(self.model.new_seq_state(ctx, self.info.max_ubatch)?);
        }
        // Reuse the cached prefix, up to the first image either side (the same image
        // token ids may stand for another image); always evaluate at least the last
        // prompt token.
        let common = sess
            .tokens
            .iter()
            .zip(&prompt)
            .take_while(|(a, b)| a == b)
            .count()
            .min(prompt.len() - 1)
            .min(sess.image_from.unwrap_or(usize::MAX))
            .min(first_image.unwrap_or(usize::MAX));
        let st = sess.state.as_mut().expect("allocated above");
        // The state may keep less (a sliding-window layer's keys may have slid out).
        st.truncate(common);
        let common = st.pos;
        sess.tokens.truncate(common);
        sess.image_from = first_image;
        Ok((prompt, common, image))
    }

    /// One tile of the vision encoder and the projector for the oldest generation
    /// still encoding its images (each under the watchdog, naming the tile): one tile
    /// per step, so that the other sessions' generations keep decoding while a large
    /// image is encoded, and only one tile's encoder output is held at a time. A
    /// failure ends that generation only.
    fn encode_step(&mut self) {
        let Some(i) = self.active.iter().position(|a| a.encoding.is_some()) else {
            return;
        };
        let v = self
            .vision
            .as_ref()
            .expect("images were checked against the model");
        let a = &mut self.active[i];
        let enc = a.encoding.as_mut().expect("found above");
        let stats = a.image.as_mut().expect("set with the images");
        let tf = v.tile_floats();
        let img = &enc.images[enc.image];
        let tile = &img.pixels[enc.tile * tf..(enc.tile + 1) * tf];
        let n = stats.encode_tiles.len() as u64;
        let (tracker, deadlines) = (&self.tracker, &self.deadlines);
        let overran = || match tracker.expired(deadlines) {
            Some(e) => Err(timeout_error(e, deadlines, &self.info.backend)),
            None => Ok(()),
        };
        tracker.enter(Stage::VisionEncode, n);
        let t0 = Instant::now();
        let r = (|| -> Result<(), EngineError> {
            let hidden = v.encode(&self.backend, tile)?;
            stats.encode_tiles.push(t0.elapsed());
            overran()?;
            tracker.enter(Stage::Project, n);
            let t0 = Instant::now();
            let rows = v.project(&self.backend, &hidden)?;
            stats.project += t0.elapsed();
            overran()?;
            a.image_rows.extend_from_slice(&rows);
            enc.tile += 1;
            Ok(())
        })();
        if enc.tile == enc.images[enc.image].n_tiles {
            // The image is through: its pixels are not needed any more.
            enc.images[enc.image].pixels = Vec::new();
            enc.image += 1;
            enc.tile = 0;
        }
        match r {
            Err(e) => {
                let a = self.active.remove(i);
                let _ = a.events.send(Err(e));
            }
            Ok(()) if enc.image == enc.images.len() => {
                tracing::debug!(
                    "vision: {} images, {} tiles, encoder {:?}, projector {:?}",
                    stats.images,
                    stats.tiles,
                    stats.encode(),
                    stats.project
                );
                a.encoding = None;
            }
            Ok(()) => {}
        }
    }

    /// One step of every running generation: each one whose logits are ready samples
    /// its next token (and may finish); then one forward pass carries every sampled
    /// token (a decode row per sequence) plus, within the micro-batch, the next
    /// prefill chunk of the oldest generation still reading its prompt.
    fn step(&mut self) {
        // The per-step lists leave the run loop for the step (they are borrowed next
        // to its other fields) and come back with their capacity.
        let mut buf = std::mem::take(&mut self.step_buf);
        self.step_with(&mut buf);
        self.step_buf = buf;
    }

    fn step_with(&mut self, buf: &mut StepBuf) {
        // 1. Sample.
        let ctx = self.info.ctx;
        let mut i = 0;
        while i < self.active.len() {
            let a = &mut self.active[i];
            let stop = if a.cancel.load(Ordering::Relaxed) {
                Some(StopReason::Cancelled)
            } else if a.next < a.prompt.len() || a.pending.is_some() {
                None // still reading its prompt, or its token waits for a batch slot
            } else if a.generated >= a.max_tokens {
                Some(StopReason::MaxTokens)
            } else {
                self.tracker.enter(Stage::Sample, a.generated as u64);
                let sess = self.sessions.get(&a.session).expect("active session");
                let st = sess.state.as_ref().expect("allocated at start");
                let id = a.sampler.sample(st.logits(), &sess.tokens);
                a.ttft.get_or_insert_with(|| a.t0.elapsed());
                if self.tok.is_eog(id) {
                    Some(StopReason::EndOfGeneration)
                } else {
                    a.generated += 1;
                    let (chunk, hit_stop) = a.text.push(self.tok.token_bytes(id));
                    if a.events.send(Ok(Event::Token { id, text: chunk })).is_err() {
                        Some(StopReason::Cancelled)
                    } else if hit_stop {
                        Some(StopReason::StopString)
                    } else if st.pos >= ctx {
                        Some(StopReason::ContextFull)
                    } else {
                        a.pending = Some(id);
                        None
                    }
                }
            };
            match stop {
                Some(stop) => {
                    let a = self.active.remove(i);
                    self.finish(a, stop);
                }
                None => i += 1,
            }
        }

        // 2. Images: one tile of the oldest generation still encoding them.
        self.encode_step();

        // 3. The batch: decode rows first (oldest first), then one prefill chunk.
        let budget = self.info.max_ubatch;
        let mut rows = 0;
        let members = &mut buf.members;
        members.clear();
        for (i, a) in self.active.iter().enumerate() {
            if a.pending.is_some() && rows < budget {
                members.push((i, 1));
                rows += 1;
            }
        }
        let n_decode = members.len();
        if rows < budget {
            let reading = |a: &Active| a.next < a.prompt.len() && a.encoding.is_none();
            if let Some(i) = self.active.iter().position(reading) {
                let a = &self.active[i];
                let n = prefill_chunk(a.prompt.len() - a.next, budget - rows);
                members.push((i, n));
            }
        }
        if members.is_empty() {
            return;
        }
        let prefilling = members.len() > n_decode;
        match members.last() {
            Some(&(i, _)) if prefilling => self
                .tracker
                .enter(Stage::Prefill, self.active[i].chunks.len() as u64),
            _ => self
                .tracker
                .enter(Stage::Decode, self.active[members[0].0].generated as u64),
        }

        // 4. One forward pass; the states leave their sessions for the call.
        let StepBuf {
            members,
            states,
            pending,
            used,
        } = buf;
        states.clear();
        states.extend(members.iter().map(|&(i, _)| {
            let s = self.sessions.get_mut(&self.active[i].session);
            s.and_then(|s| s.state.take())
                .expect("active session state")
        }));
        pending.clear();
        pending.extend(
            members
                .iter()
                .map(|&(i, _)| [self.active[i].pending.unwrap_or(0)]),
        );
        let d = self.info.hp.n_embd;
        let image_tok = self.vision.as_ref().map(|v| v.hp.image_token);
        used.clear();
        used.resize(members.len(), 0);
        let mut segs: Vec<Seg> = Vec::with_capacity(members.len());
        for (((&(i, n), st), p), used) in members
            .iter()
            .zip(states.iter_mut())
            .zip(pending.iter())
            .zip(used.iter_mut())
        {
            let a = &self.active[i];
            let (tokens, logits) = if a.pending.is_some() {
                (&p[..], Logits::Last)
            } else {
                let last = a.next + n == a.prompt.len();
                (
                    &a.prompt[a.next..a.next + n],
                    if last { Logits::Last } else { Logits::None },
                )
            };
            // This chunk's image tokens take the next projected rows.
            let embeds = match image_tok {
                Some(tok) if !a.image_rows.is_empty() && a.pending.is_none() => {
                    *used = tokens.iter().filter(|&&t| t == tok).count();
                    let r = &a.image_rows[a.image_next * d..(a.image_next + *used) * d];
                    Some((tok, r))
                }
                _ => None,
            };
            segs.push(Seg {
                state: st,
                tokens,
                logits,
                embeds,
            });
        }
        let r = self
            .model
            .forward_batch(&self.backend, &mut self.scratch, &mut segs);
        drop(segs);
        let overran = self.tracker.expired(&self.deadlines);
        let times = self.scratch.take_times();
        for (&(i, _), st) in members.iter().zip(states.drain(..)) {
            let sess = self.sessions.get_mut(&self.active[i].session);
            sess.expect("active session").state = Some(st);
        }

        // 5. Book-keeping, or the error to everyone in the batch: the pass failed,
        // or its stage (a prefill chunk, a decode step) overran its deadline.
        let failure = match (r, overran) {
            (Err(e), _) => Some(Err(e.to_string())),
            (Ok(()), Some(o)) => Some(Ok(o)),
            (Ok(()), None) => None,
        };
        if let Some(f) = failure {
            let mut gone: Vec<usize> = members.iter().map(|&(i, _)| i).collect();
            gone.sort_unstable();
            for &i in gone.iter().rev() {
                let a = self.active.remove(i);
                let e = match &f {
                    Err(msg) => {
                        EngineError::Stopped(format!("a batched forward pass failed: {msg}"))
                    }
                    Ok(o) => timeout_error(*o, &self.deadlines, &self.info.backend),
                };
                let _ = a.events.send(Err(e));
            }
            return;
        }
        for (&(i, n), &used) in members.iter().zip(used.iter()) {
            let a = &mut self.active[i];
            a.peak_batch = a.peak_batch.max(members.len());
            a.embed += times.embed;
            a.lm_head += times.lm_head;
            a.image_next += used;
            let sess = self.sessions.get_mut(&a.session).expect("active session");
            if let Some(id) = a.pending.take() {
                sess.tokens.push(id);
            } else {
                sess.tokens.extend_from_slice(&a.prompt[a.next..a.next + n]);
                a.chunks.push(n);
                a.next += n;
                if a.next == a.prompt.len() {
                    a.prefill = a.t0.elapsed();
                    a.t1 = Instant::now();
                    tracing::debug!(
                        "prefill {} tokens ({} cached) in chunks {:?}: {:?}",
                        a.prompt.len() - a.cached,
                        a.cached,
                        a.chunks,
                        a.prefill
                    );
                }
            }
        }
    }

    /// End a generation: flush held-back text and send its statistics.
    fn finish(&mut self, mut a: Active, stop: StopReason) {
        let prefilled = a.next == a.prompt.len();
        let tail = a.text.finish(stop == StopReason::StopString);
        if !tail.is_empty() {
            let _ = a.events.send(Ok(Event::Token {
                id: u32::MAX,
                text: tail,
            }));
        }
        let prefill = if prefilled { a.prefill } else { a.t0.elapsed() };
        let stats = GenStats {
            prompt_tokens: a.prompt.len(),
            cached_tokens: a.cached,
            generated: a.generated,
            prefill,
            decode: if prefilled {
                a.t1.elapsed()
            } else {
                Duration::ZERO
            },
            ttft: a.ttft.unwrap_or(prefill),
            stop,
            chunks: std::mem::take(&mut a.chunks),
            peak_batch: a.peak_batch,
            embed: a.embed,
            lm_head: a.lm_head,
            image: a.image.take(),
        };
        let _ = a.events.send(Ok(Event::Done(stats)));
        // The session's next queued generation may start now.
        if let Some(w) = self.waiting.iter().position(|w| w.session == a.session) {
            let g = self.waiting.remove(w).expect("index in range");
            self.start(g);
        }
    }
}

/// Check a package's vision tower against its processor config and text model.
fn vision_info(path: &Path, v: &VisionModel, hp: &HParams) -> Result<VisionInfo, EngineError> {
    let p = &v.hp;
    let processor = alc_image::ProcessorConfig::from_json(
        &p.preprocessor_config,
        p.processor_config.as_deref(),
    )?;
    let bad = |why: String| {
        EngineError::BadRequest(format!(
            "{}: vision-language package: {why}",
            path.display()
        ))
    };
    if processor.max_image_size as usize != p.image_size {
        return Err(bad(format!(
            "the processor makes {0}x{0} tiles but the vision encoder takes {1}x{1}",
            processor.max_image_size, p.image_size
        )));
    }
    if processor.image_seq_len != p.seq_len {
        return Err(bad(format!(
            "the processor puts {} image tokens per tile but the projector makes {}",
            processor.image_seq_len, p.seq_len
        )));
    }
    if p.text_embd != hp.n_embd {
        return Err(bad(format!(
            "the projector outputs {} features but the text model is {} wide",
            p.text_embd, hp.n_embd
        )));
    }
    if p.image_token as usize >= hp.n_vocab {
        return Err(bad(format!(
            "alc.image.token_id {} is outside the vocabulary of {}",
            p.image_token, hp.n_vocab
        )));
    }
    Ok(VisionInfo {
        params: p.clone(),
        processor,
    })
}

/// A generation on the run loop.
struct Active {
    session: u64,
    prompt: Vec<u32>,
    /// Next prompt position to evaluate (`prompt.len()` once prefilled).
    next: usize,
    /// Prompt tokens reused from the session's cache.
    cached: usize,
    chunks: Vec<usize>,
    t0: Instant,
    prefill: Duration,
    /// When decoding began.
    t1: Instant,
    ttft: Option<Duration>,
    generated: usize,
    max_tokens: usize,
    sampler: Sampler,
    text: TextStream,
    events: Sender<Result<Event, EngineError>>,
    cancel: Arc<AtomicBool>,
    /// The token sampled this step, to be fed by the next forward pass.
    pending: Option<u32>,
    peak_batch: usize,
    embed: Duration,
    lm_head: Duration,
    /// Projected image rows, one per image token of the prompt, in order; and how
    /// many the prefill has consumed.
    image_rows: Vec<f32>,
    image_next: usize,
    /// Images not yet through the encoder and projector (`None` once done): the
    /// prompt is not evaluated before.
    encoding: Option<Encoding>,
    image: Option<ImageStats>,
}

/// Where a generation's image encoding stands.
struct Encoding {
    images: Vec<PreparedImage>,
    /// The image being encoded, and its next tile.
    image: usize,
    tile: usize,
}

/// Turns token bytes into text: holds incomplete UTF-8 sequences and any suffix that
/// could start a stop string; cuts the text at the first stop string.
struct TextStream {
    stops: Vec<String>,
    bytes: Vec<u8>,
    text: String,
    emitted: usize,
}

impl TextStream {
    fn new(stops: Vec<String>) -> Self {
        let stops = stops.into_iter().filter(|s| !s.is_empty()).collect();
        TextStream {
            stops,
            bytes: Vec::new(),
            text: String::new(),
            emitted: 0,
        }
    }

    /// Add a token's bytes; returns the text now safe to show and whether a stop
    /// string was reached.
    fn push(&mut self, b: &[u8]) -> (String, bool) {
        self.bytes.extend_from_slice(b);
        loop {
            match std::str::from_utf8(&self.bytes) {
                Ok(s) => {
                    self.text.push_str(s);
                    self.bytes.clear();
                    break;
                }
                Err(e) => {
                    let good = e.valid_up_to();
                    self.text
                        .push_str(std::str::from_utf8(&self.bytes[..good]).expect("valid prefix"));
                    match e.error_len() {
                        None => {
                            self.bytes.drain(..good);
                            break;
                        }
                        Some(bad) => {
                            self.text.push('\u{FFFD}');
                            self.bytes.drain(..good + bad);
                        }
                    }
                }
            }
        }
        // Stop strings: search the part that could contain a new match.
        let max_stop = self.stops.iter().map(|s| s.len()).max().unwrap_or(0);
        let mut from = self.emitted.saturating_sub(max_stop);
        while !self.text.is_char_boundary(from) {
            from -= 1;
        }
        let hit = self
            .stops
            .iter()
            .filter_map(|s| self.text[from..].find(s.as_str()).map(|i| from + i))
            .min();
        if let Some(at) = hit {
            let out = self.text[self.emitted..at.max(self.emitted)].to_string();
            self.emitted = self.text.len();
            self.text.truncate(at);
            return (out, true);
        }
        // Hold back the longest suffix that is a prefix of a stop string.
        let mut safe = self.text.len();
        for s in &self.stops {
            for k in (1..s.len().min(self.text.len() + 1)).rev() {
                if self.text.ends_with(&s[..k]) && s.is_char_boundary(k) {
                    safe = safe.min(self.text.len() - k);
                    break;
                }
            }
        }
        let safe = safe.max(self.emitted);
        let out = self.text[self.emitted..safe].to_string();
        self.emitted = safe;
        (out, false)
    }

    /// Whatever is still held back (nothing after a stop string).
    fn finish(&mut self, stopped: bool) -> String {
        if stopped {
            return String::new();
        }
        if !self.bytes.is_empty() {
            self.text.push_str(&String::from_utf8_lossy(&self.bytes));
            self.bytes.clear();
        }
        let out = self.text[self.emitted.min(self.text.len())..].to_string();
        self.emitted = self.text.len();
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A stage that never ends (no reply ever comes) is reported by the waiter's
    /// poll, by name and detail, and the waiter's cancel hook runs; a reply that
    /// comes in time passes through.
    #[test]
    fn a_waiter_reports_a_stage_that_never_ends() {
        let tracker = Tracker::default();
        let deadlines = Deadlines {
            decode_step: Duration::from_millis(20),
            ..Deadlines::default()
        };
        let (tx, rx) = mpsc::channel::<Result<u32, EngineError>>();
        tx.send(Ok(7)).unwrap();
        tracker.enter(Stage::Decode, 41);
        assert_eq!(
            wait_watched(&rx, &tracker, &deadlines, "cpu", || ()).unwrap(),
            7
        );
        let mut cancelled = false;
        let t0 = Instant::now();
        let e = wait_watched(&rx, &tracker, &deadlines, "cpu", || cancelled = true).unwrap_err();
        assert!(cancelled);
        assert!(t0.elapsed() >= Duration::from_millis(20));
        let m = e.to_string();
        assert!(
            matches!(
                e,
                EngineError::Timeout {
                    stage: "decode",
                    ..
                }
            ),
            "{m}"
        );
        assert!(m.contains("step 41") && m.contains("cpu"), "{m}");
        drop(tx);
    }

    #[test]
    fn prefill_chunks_follow_the_micro_batch() {
        assert_eq!(prefill_chunk(5, 512), 5);
        assert_eq!(prefill_chunk(600, 512), 512);
        assert_eq!(prefill_chunk(88, 512), 88);
        // --ubatch above the largest variant is honoured, and below it caps chunks.
        assert_eq!(prefill_chunk(600, 1000), 600);
        assert_eq!(prefill_chunk(600, 32), 32);
    }

    fn run(stops: &[&str], pieces: &[&[u8]]) -> (String, bool) {
        let mut t = TextStream::new(stops.iter().map(|s| s.to_string()).collect());
        let mut out = String::new();
        for p in pieces {
            let (s, hit) = t.push(p);
            out.push_str(&s);
            if hit {
                return (out, true);
            }
        }
        out.push_str(&t.finish(false));
        (out, false)
    }

    #[test]
    fn utf8_split_across_tokens() {
        let e = "é".as_bytes();
        let smile = "😀".as_bytes();
        assert_eq!(
            run(&[], &[b"a", &e[..1], &e[1..], &smile[..2], &smile[2..]]).0,
            "aé😀"
        );
        assert_eq!(run(&[], &[b"x", &[0xff], b"y"]).0, "x\u{FFFD}y");
    }

    #[test]
    fn stop_string_cuts_text_and_holds_prefixes() {
        assert_eq!(
            run(&["END"], &[b"hello E", b"N", b"D more"]),
            ("hello ".to_string(), true)
        );
        assert_eq!(
            run(&["END"], &[b"hello E", b"x"]),
            ("hello Ex".to_string(), false)
        );
        assert_eq!(run(&["\n\n"], &[b"a\n", b"\nb"]), ("a".to_string(), true));
    }
}
