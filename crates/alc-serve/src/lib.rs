//! alc-serve: an OpenAI-compatible HTTP server (`alc serve`) over alc's engines.
//!
//! Design note. Each served model gets a dispatcher thread (`worker.rs`) in front
//! of its handle: a language model's [`Engine`] (whose own run-loop thread owns the
//! weights and every KV cache) with `--parallel` slots, each a thread holding one
//! [`alc_engine::Session`]; or an [`Embedder`]. HTTP runs on a small tokio runtime
//! (axum, HTTP/1.1) and never computes: a handler parses and checks the body
//! (`api.rs`: every field read by name, so a wrong type or range comes back as
//! OpenAI's `{"error": {"message", "type", "param", "code"}}` naming the parameter),
//! takes a ticket from the model's bounded queue (`--queue`, counting running and
//! waiting requests; full → 429 with `Retry-After`) and hands the job to the
//! dispatcher, which gives it to an idle slot — preferring the slot whose last
//! prompt shares the longest prefix with this one, so a chat's next turn reuses its
//! KV cache. The slots' generations run together on the engine's run loop:
//! continuous batching, one forward pass per step for every running sequence, new
//! requests joining between steps and finished ones leaving. Tokens come back over a
//! channel and are written as they arrive (SSE for `stream: true`). A client that
//! goes away drops the response; the guard it held cancels the generation
//! (`Generation::cancel`), which stops after the current step and frees the slot.
//! Every request has a deadline (`--timeout`, queue time included); the engine's
//! watchdog deadlines still bound each step. Errors are decided before the first
//! byte of a response: the handler waits for the first event, so a prompt past the
//! context is a 400 naming both token counts even when streaming was asked for.
//!
//! `frequency_penalty` and `presence_penalty` are accepted and ignored; tools,
//! log-probabilities and `n > 1` are refused with a 400.

mod api;
mod metrics;
mod worker;

pub use api::ApiError;

use alc_engine::{Embedder, Engine, GenRequest, GenStats, PreparedImage, Prompt, StopReason};
use api::{EncodingFormat, GenParams};
use axum::body::{Body, Bytes};
use axum::extract::{Path, Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use metrics::Metrics;
use serde_json::{json, Value};
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::sync::{mpsc as tmpsc, oneshot};
use worker::{Cancel, CancelOnDrop, GenMsg, Job, Queue, Runner, Work};

/// Errors of starting the server.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("no models to serve; name at least one model file or registry name")]
    NoModels,
    #[error("two models would be served as '{0}'; serve each model once")]
    DuplicateId(String),
    #[error("--queue {0} must be at least 1")]
    BadQueue(usize),
    #[error("--parallel {parallel} must be in 1..=--queue ({queue}): more slots than admitted requests would never fill")]
    BadParallel { parallel: usize, queue: usize },
    #[error("--max-body {0} must be at least 1024 bytes")]
    BadMaxBody(usize),
    #[error("A/B slot '{slot}': {why}")]
    BadAbSlot { slot: String, why: String },
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: String,
        source: std::io::Error,
    },
    #[error("cannot start the server's threads: {0}")]
    Runtime(std::io::Error),
    #[error("the server stopped: {0}")]
    Serve(std::io::Error),
}

/// How to run the server.
#[derive(Clone, Debug)]
pub struct ServeConfig {
    pub host: String,
    pub port: u16,
    /// Requests admitted per model: those running plus those waiting.
    pub queue: usize,
    /// Generations of one language model that run at once, batched together (each
    /// holds its own KV cache of the engine's context).
    pub parallel: usize,
    /// Largest request body in bytes.
    pub max_body: usize,
    /// Deadline of one request, from arrival to its last byte.
    pub request_timeout: Duration,
    /// A/B slots: names that resolve per request to one of several served models.
    pub ab_slots: Vec<AbSlot>,
}

/// An A/B slot served under its own name: a request naming it goes to one arm,
/// chosen from the request's `user` by the registry's deterministic bucketing
/// ([`alc_registry::ab_bucket`], the same as `alc ab pick`); a request without a
/// `user` gets a bucket of its own (weighted random). Responses name the arm's
/// model in their `model` field.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AbSlot {
    pub id: String,
    /// (served model id, weight > 0), in the slot's order.
    pub arms: Vec<(String, u64)>,
}

impl Default for ServeConfig {
    fn default() -> Self {
        ServeConfig {
            host: "127.0.0.1".into(),
            port: 8080,
            queue: 16,
            parallel: 4,
            max_body: 4 << 20,
            request_timeout: Duration::from_secs(600),
            ab_slots: Vec::new(),
        }
    }
}

/// A loaded model.
pub enum ModelHandle {
    Language(Engine),
    Embedding(Box<Embedder>),
}

/// A model and the id clients name it by.
pub struct ServedModel {
    pub id: String,
    pub handle: ModelHandle,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Language,
    Embedding,
}

struct Served {
    id: String,
    kind: Kind,
    /// Language models: context and vocabulary; embedding models: vector width.
    ctx: usize,
    n_vocab: usize,
    dim: usize,
    queue: Queue,
    /// A language model's engine (images are prepared on it before queueing).
    engine: Option<Engine>,
}

struct App {
    models: Vec<Served>,
    cfg: ServeConfig,
    metrics: Metrics,
    created: u64,
    next_id: AtomicU64,
}

/// A bound, not yet running server.
pub struct Server {
    rt: tokio::runtime::Runtime,
    listener: tokio::net::TcpListener,
    app: Arc<App>,
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

impl Server {
    /// Start a worker per model and bind `host:port` (port 0 picks a free one; see
    /// [`Server::local_addr`]).
    pub fn bind(models: Vec<ServedModel>, cfg: ServeConfig) -> Result<Server, ServeError> {
        if models.is_empty() {
            return Err(ServeError::NoModels);
        }
        if cfg.queue == 0 {
            return Err(ServeError::BadQueue(cfg.queue));
        }
        if cfg.parallel == 0 || cfg.parallel > cfg.queue {
            return Err(ServeError::BadParallel {
                parallel: cfg.parallel,
                queue: cfg.queue,
            });
        }
        if cfg.max_body < 1024 {
            return Err(ServeError::BadMaxBody(cfg.max_body));
        }
        let mut served = Vec::with_capacity(models.len());
        for m in models {
            if served.iter().any(|s: &Served| s.id == m.id) {
                return Err(ServeError::DuplicateId(m.id));
            }
            let mut engine = None;
            let (kind, ctx, n_vocab, dim, runner) = match m.handle {
                ModelHandle::Language(e) => {
                    let (ctx, n_vocab) = (e.info().ctx, e.info().hp.n_vocab);
                    engine = Some(e.clone());
                    (Kind::Language, ctx, n_vocab, 0, Runner::Language(e))
                }
                ModelHandle::Embedding(e) => {
                    let dim = e.dim();
                    (Kind::Embedding, e.max_tokens, 0, dim, Runner::Embedding(e))
                }
            };
            let queue = worker::start(&m.id, runner, cfg.queue, cfg.parallel)
                .map_err(ServeError::Runtime)?;
            served.push(Served {
                id: m.id,
                kind,
                ctx,
                n_vocab,
                dim,
                queue,
                engine,
            });
        }
        for ab in &cfg.ab_slots {
            let bad = |why: String| ServeError::BadAbSlot {
                slot: ab.id.clone(),
                why,
            };
            if served.iter().any(|s| s.id == ab.id) {
                return Err(bad("a served model has the same name".into()));
            }
            if ab.arms.is_empty() || ab.arms.iter().any(|(_, w)| *w == 0) {
                return Err(bad("it needs at least one arm, each of weight > 0".into()));
            }
            let mut kinds = Vec::new();
            for (arm, _) in &ab.arms {
                match served.iter().find(|s| &s.id == arm) {
                    Some(s) => kinds.push(s.kind),
                    None => return Err(bad(format!("its arm '{arm}' is not served"))),
                }
            }
            if kinds.iter().any(|k| *k != kinds[0]) {
                return Err(bad("its arms mix language and embedding models".into()));
            }
        }
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("alc-serve-http")
            .enable_all()
            .build()
            .map_err(ServeError::Runtime)?;
        let addr = format!("{}:{}", cfg.host, cfg.port);
        let listener = rt
            .block_on(tokio::net::TcpListener::bind(&addr))
            .map_err(|source| ServeError::Bind {
                addr: addr.clone(),
                source,
            })?;
        Ok(Server {
            rt,
            listener,
            app: Arc::new(App {
                models: served,
                cfg,
                metrics: Metrics::default(),
                created: unix_now(),
                next_id: AtomicU64::new(1),
            }),
        })
    }

    /// The address the server listens on.
    pub fn local_addr(&self) -> Result<SocketAddr, ServeError> {
        self.listener.local_addr().map_err(ServeError::Runtime)
    }

    /// The ids of the served models.
    pub fn model_ids(&self) -> Vec<String> {
        self.app.models.iter().map(|m| m.id.clone()).collect()
    }

    /// Serve until Ctrl-C or SIGTERM.
    pub fn run(self) -> Result<(), ServeError> {
        let Server { rt, listener, app } = self;
        let router = router(app);
        rt.block_on(async move {
            axum::serve(listener, router)
                .with_graceful_shutdown(shutdown())
                .await
        })
        .map_err(ServeError::Serve)
    }
}

async fn shutdown() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
}

fn router(app: Arc<App>) -> Router {
    Router::new()
        .route("/v1/chat/completions", post(chat))
        .route("/v1/completions", post(completions))
        .route("/v1/embeddings", post(embeddings))
        .route("/v1/models", get(models))
        .route("/v1/models/{id}", get(model_one))
        .route("/health", get(health))
        .route("/metrics", get(metrics))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(axum::middleware::from_fn_with_state(app.clone(), count))
        .with_state(app)
}

type Res = Result<Response, ApiError>;

fn json_response(status: u16, v: &Value) -> Response {
    let mut r = Response::new(Body::from(v.to_string()));
    *r.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut r = json_response(self.status, &self.body());
        if self.status == 429 || self.status == 503 {
            r.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        r
    }
}

async fn count(State(app): State<Arc<App>>, req: Request, next: Next) -> Response {
    let ep = metrics::endpoint_label(req.uri().path());
    let r = next.run(req).await;
    app.metrics.count_request(ep, r.status().as_u16());
    r
}

async fn not_found(req: Request) -> ApiError {
    ApiError::invalid(
        None,
        format!(
            "no route {} {}; this server has POST /v1/chat/completions, /v1/completions, /v1/embeddings and GET /v1/models, /health, /metrics",
            req.method(),
            req.uri().path()
        ),
    )
    .with_status(404)
    .with_code("not_found")
}

async fn method_not_allowed(req: Request) -> ApiError {
    ApiError::invalid(
        None,
        format!("{} is not allowed on {}", req.method(), req.uri().path()),
    )
    .with_status(405)
    .with_code("method_not_allowed")
}

async fn health(State(app): State<Arc<App>>) -> Response {
    let ids: Vec<&str> = app.models.iter().map(|m| m.id.as_str()).collect();
    json_response(200, &json!({"status": "ok", "models": ids}))
}

async fn metrics(State(app): State<Arc<App>>) -> Response {
    let queues: Vec<(String, usize)> = app
        .models
        .iter()
        .map(|m| (m.id.clone(), m.queue.depth()))
        .collect();
    let mut r = Response::new(Body::from(app.metrics.render(&queues)));
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4"),
    );
    r
}

fn model_object(app: &App, m: &Served) -> Value {
    let mut v = json!({
        "id": m.id,
        "object": "model",
        "created": app.created,
        "owned_by": "alc",
    });
    match m.kind {
        Kind::Language => v["context_length"] = json!(m.ctx),
        Kind::Embedding => v["dimensions"] = json!(m.dim),
    }
    v
}

/// An A/B slot in /v1/models: its arms and weights.
fn ab_object(app: &App, slot: &AbSlot) -> Value {
    let arms: Vec<Value> = slot
        .arms
        .iter()
        .map(|(id, w)| json!({"model": id, "weight": w}))
        .collect();
    json!({
        "id": slot.id,
        "object": "model",
        "created": app.created,
        "owned_by": "alc",
        "ab_arms": arms,
    })
}

async fn models(State(app): State<Arc<App>>) -> Response {
    let mut data: Vec<Value> = app.models.iter().map(|m| model_object(&app, m)).collect();
    data.extend(app.cfg.ab_slots.iter().map(|s| ab_object(&app, s)));
    json_response(200, &json!({"object": "list", "data": data}))
}

async fn model_one(State(app): State<Arc<App>>, Path(id): Path<String>) -> Res {
    if let Some(slot) = app.cfg.ab_slots.iter().find(|s| s.id == id) {
        return Ok(json_response(200, &ab_object(&app, slot)));
    }
    let m = app.lookup(Some(id), None, None)?;
    Ok(json_response(200, &model_object(&app, m)))
}

/// The body, refused past `max` bytes (413) before reading more.
async fn read_body(req: Request, max: usize) -> Result<Bytes, ApiError> {
    let too_large = |n: String| {
        ApiError::invalid(
            None,
            format!("the request body has {n} bytes, more than this server's limit of {max} (--max-body)"),
        )
        .with_status(413)
        .with_code("request_too_large")
    };
    if let Some(len) = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
    {
        if len > max as u64 {
            return Err(too_large(len.to_string()));
        }
    }
    let mut stream = req.into_body().into_data_stream();
    let mut buf = Vec::new();
    while let Some(chunk) =
        std::future::poll_fn(|cx| futures_core::Stream::poll_next(Pin::new(&mut stream), cx)).await
    {
        let c = chunk
            .map_err(|e| ApiError::invalid(None, format!("cannot read the request body: {e}")))?;
        if buf.len() + c.len() > max {
            return Err(too_large("more than that".into()));
        }
        buf.extend_from_slice(&c);
    }
    Ok(Bytes::from(buf))
}

impl App {
    /// The model a request names — an A/B slot resolves to one of its arms by
    /// `user` — or, without a name, the only model of `kind`.
    fn lookup(
        &self,
        name: Option<String>,
        kind: Option<Kind>,
        user: Option<&str>,
    ) -> Result<&Served, ApiError> {
        let name = name.map(|n| match self.cfg.ab_slots.iter().find(|s| s.id == n) {
            Some(slot) => self.ab_arm(slot, user).to_string(),
            None => n,
        });
        let list = || {
            self.models
                .iter()
                .map(|m| m.id.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        };
        let m = match name {
            Some(n) => self.models.iter().find(|m| m.id == n).ok_or_else(|| {
                ApiError::invalid(
                    Some("model"),
                    format!(
                        "the model '{n}' is not served here; served models: {}",
                        list()
                    ),
                )
                .with_status(404)
                .with_code("model_not_found")
            })?,
            None => {
                let mut of_kind = self.models.iter().filter(|m| Some(m.kind) == kind);
                match (of_kind.next(), of_kind.next()) {
                    (Some(m), None) => m,
                    (None, _) => {
                        let what = match kind {
                            Some(Kind::Embedding) => "no embedding model",
                            _ => "no language model",
                        };
                        return Err(ApiError::invalid(
                            Some("model"),
                            format!("{what} is served here; served models: {}", list()),
                        ));
                    }
                    _ => {
                        return Err(ApiError::invalid(
                            Some("model"),
                            format!("'model' is required; served models: {}", list()),
                        ))
                    }
                }
            }
        };
        match (kind, m.kind) {
            (Some(Kind::Language), Kind::Embedding) => Err(ApiError::invalid(
                Some("model"),
                format!("'{}' is an embedding model; use /v1/embeddings", m.id),
            )),
            (Some(Kind::Embedding), Kind::Language) => Err(ApiError::invalid(
                Some("model"),
                format!(
                    "'{}' is a language model, not an embedding model; use /v1/chat/completions or /v1/completions",
                    m.id
                ),
            )),
            _ => Ok(m),
        }
    }

    /// The model a request body names (its `model`, and `user` for A/B slots).
    fn model_for(
        &self,
        obj: &serde_json::Map<String, Value>,
        kind: Kind,
    ) -> Result<&Served, ApiError> {
        let user = api::user(obj)?;
        self.lookup(api::model_name(obj)?, Some(kind), user.as_deref())
    }

    /// The arm of `slot` for `user` (a fresh bucket per request without one).
    fn ab_arm<'a>(&self, slot: &'a AbSlot, user: Option<&str>) -> &'a str {
        let total: u64 = slot.arms.iter().map(|(_, w)| w).sum();
        let anon;
        let key = match user {
            Some(u) => u,
            None => {
                anon = format!(
                    "\u{0}anonymous request {}",
                    self.next_id.fetch_add(1, Ordering::Relaxed)
                );
                &anon
            }
        };
        let bucket = alc_registry::ab_bucket(&slot.id, key, total);
        let mut acc = 0;
        slot.arms
            .iter()
            .find(|(_, w)| {
                acc += w;
                bucket < acc
            })
            .map(|(id, _)| id.as_str())
            .expect("bucket < total weight")
    }

    fn admit(&self, m: &Served) -> Result<worker::Ticket, ApiError> {
        m.queue.admit().ok_or_else(|| {
            self.metrics
                .rejected_queue_full
                .fetch_add(1, Ordering::Relaxed);
            ApiError {
                status: 429,
                message: format!(
                    "the model '{}' is busy: {} requests are already admitted (--queue {}); retry later",
                    m.id, self.cfg.queue, self.cfg.queue
                ),
                kind: "rate_limit_error",
                param: None,
                code: Some("queue_full"),
            }
        })
    }

    fn timeout(&self) -> ApiError {
        ApiError::server(
            504,
            format!(
                "the request passed its deadline of {} s (--timeout)",
                self.cfg.request_timeout.as_secs_f64()
            ),
        )
        .with_code("timeout")
    }

    fn record(&self, s: &GenStats) {
        let m = &self.metrics;
        m.tokens_generated
            .fetch_add(s.generated as u64, Ordering::Relaxed);
        m.prompt_tokens
            .fetch_add(s.prompt_tokens as u64, Ordering::Relaxed);
        if s.generated > 0 {
            m.ttft.observe(s.ttft.as_secs_f64());
        }
        let d = s.decode.as_secs_f64();
        if s.generated > 1 && d > 0.0 {
            m.tokens_per_second.observe(s.generated as f64 / d);
        }
        if s.peak_batch > 0 {
            m.peak_batch.observe(s.peak_batch as f64);
        }
    }

    fn request_id(&self, prefix: &str) -> String {
        let n = self.next_id.fetch_add(1, Ordering::Relaxed);
        format!("{prefix}-{:x}{n:06x}", self.created)
    }
}

/// A seed for requests that name none.
fn fresh_seed(app: &App) -> u64 {
    let t = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    t ^ app.next_id.load(Ordering::Relaxed).rotate_left(32)
}

async fn chat(State(app): State<Arc<App>>, req: Request) -> Res {
    let body = read_body(req, app.cfg.max_body).await?;
    let obj = api::parse_body(&body)?;
    let m = app.model_for(&obj, Kind::Language)?;
    let (msgs, image_bytes) = api::messages(&obj)?;
    let p = api::gen_params(&obj, m.ctx, fresh_seed(&app))?;
    let images = prepare_images(m, image_bytes).await?;
    generate(app.clone(), m, Prompt::Chat(msgs), p, true, images).await
}

/// Decode and preprocess a request's images off the async threads.
async fn prepare_images(m: &Served, bytes: Vec<Vec<u8>>) -> Result<Vec<PreparedImage>, ApiError> {
    if bytes.is_empty() {
        return Ok(Vec::new());
    }
    let engine = match &m.engine {
        Some(e) if e.info().vision.is_some() => e.clone(),
        _ => {
            return Err(ApiError::invalid(
                Some("messages"),
                format!(
                    "'{}' is a text-only model; image_url parts need a vision-language model",
                    m.id
                ),
            ))
        }
    };
    tokio::task::spawn_blocking(move || {
        bytes
            .iter()
            .enumerate()
            .map(|(i, b)| {
                engine.prepare_image(b).map_err(|e| {
                    ApiError::invalid(Some("messages"), format!("image {i} of the request: {e}"))
                })
            })
            .collect::<Result<Vec<_>, _>>()
    })
    .await
    .map_err(|_| ApiError::server(500, "image preparation stopped unexpectedly"))?
}

async fn completions(State(app): State<Arc<App>>, req: Request) -> Res {
    let body = read_body(req, app.cfg.max_body).await?;
    let obj = api::parse_body(&body)?;
    let m = app.model_for(&obj, Kind::Language)?;
    let prompt = api::prompt(&obj)?;
    if let Prompt::Tokens(t) = &prompt {
        if let Some(bad) = t.iter().find(|&&id| id as usize >= m.n_vocab) {
            return Err(ApiError::invalid(
                Some("prompt"),
                format!(
                    "token id {bad} is outside this model's vocabulary of {} tokens",
                    m.n_vocab
                ),
            ));
        }
    }
    if field_is_true(&obj, "echo") {
        return Err(ApiError::invalid(
            Some("echo"),
            "'echo' is not supported by this server",
        ));
    }
    let p = api::gen_params(&obj, m.ctx, fresh_seed(&app))?;
    generate(app.clone(), m, prompt, p, false, Vec::new()).await
}

fn field_is_true(obj: &serde_json::Map<String, Value>, name: &str) -> bool {
    obj.get(name).and_then(Value::as_bool) == Some(true)
}

fn finish_reason(s: StopReason) -> &'static str {
    match s {
        StopReason::MaxTokens | StopReason::ContextFull => "length",
        StopReason::EndOfGeneration | StopReason::StopString | StopReason::Cancelled => "stop",
    }
}

fn usage(s: &GenStats) -> Value {
    json!({
        "prompt_tokens": s.prompt_tokens,
        "completion_tokens": s.generated,
        "total_tokens": s.prompt_tokens + s.generated,
    })
}

/// What a response's objects share.
struct Reply {
    id: String,
    created: u64,
    model: String,
    chat: bool,
}

impl Reply {
    fn chunk(&self, text: Option<&str>, role: bool, finish: Option<&str>) -> Value {
        let choice = if self.chat {
            let mut delta = json!({});
            if role {
                delta["role"] = json!("assistant");
            }
            if let Some(t) = text {
                delta["content"] = json!(t);
            }
            json!({"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish})
        } else {
            json!({"index": 0, "text": text.unwrap_or(""), "logprobs": null, "finish_reason": finish})
        };
        json!({
            "id": self.id,
            "object": if self.chat { "chat.completion.chunk" } else { "text_completion" },
            "created": self.created,
            "model": self.model,
            "system_fingerprint": FINGERPRINT,
            "choices": [choice],
        })
    }

    fn whole(&self, text: &str, stats: &GenStats) -> Value {
        let finish = finish_reason(stats.stop);
        let choice = if self.chat {
            json!({"index": 0, "message": {"role": "assistant", "content": text}, "logprobs": null, "finish_reason": finish})
        } else {
            json!({"index": 0, "text": text, "logprobs": null, "finish_reason": finish})
        };
        json!({
            "id": self.id,
            "object": if self.chat { "chat.completion" } else { "text_completion" },
            "created": self.created,
            "model": self.model,
            "system_fingerprint": FINGERPRINT,
            "choices": [choice],
            "usage": usage(stats),
        })
    }
}

const FINGERPRINT: &str = concat!("alc-", env!("CARGO_PKG_VERSION"));

async fn next_msg(
    app: &App,
    rx: &mut tmpsc::UnboundedReceiver<GenMsg>,
    deadline: Instant,
) -> Result<GenMsg, ApiError> {
    match tokio::time::timeout_at(deadline.into(), rx.recv()).await {
        Err(_) => Err(app.timeout()),
        Ok(None) => Err(ApiError::server(
            500,
            "the model's worker stopped without finishing the request",
        )),
        Ok(Some(m)) => Ok(m),
    }
}

async fn generate(
    app: Arc<App>,
    m: &Served,
    prompt: Prompt,
    p: GenParams,
    chat: bool,
    images: Vec<PreparedImage>,
) -> Res {
    let param = if chat { "messages" } else { "prompt" };
    let ticket = app.admit(m)?;
    let (tx, mut rx) = tmpsc::unbounded_channel();
    let cancel = Arc::new(Cancel::default());
    let guard = CancelOnDrop(cancel.clone());
    let deadline = Instant::now() + app.cfg.request_timeout;
    let req = GenRequest {
        prompt,
        sampling: p.sampling,
        max_tokens: p.max_tokens.unwrap_or(m.ctx),
        stop: p.stop,
        images,
    };
    let job = Job {
        work: Work::Generate { req, tx },
        cancel,
        deadline,
        ticket,
    };
    if !m.queue.push(job) {
        return Err(ApiError::server(503, "the model's worker has stopped"));
    }
    // Errors (prompt past the context, ...) come before any token: answer them
    // with a status before committing to a stream.
    let first = next_msg(&app, &mut rx, deadline).await?;
    if let GenMsg::Error(e) = &first {
        return Err(ApiError::from_engine(e, param));
    }
    let reply = Reply {
        id: app.request_id(if chat { "chatcmpl" } else { "cmpl" }),
        created: unix_now(),
        model: m.id.clone(),
        chat,
    };
    if !p.stream {
        let mut text = String::new();
        let mut msg = first;
        let stats = loop {
            match msg {
                GenMsg::Token(t) => text.push_str(&t),
                GenMsg::Done(s) => break s,
                GenMsg::Error(e) => return Err(ApiError::from_engine(&e, param)),
            }
            msg = next_msg(&app, &mut rx, deadline).await?;
        };
        app.record(&stats);
        drop(guard);
        return Ok(json_response(200, &reply.whole(&text, &stats)));
    }
    let (btx, brx) = tmpsc::channel::<Bytes>(64);
    tokio::spawn(stream_task(
        app.clone(),
        reply,
        rx,
        first,
        guard,
        deadline,
        p.include_usage,
        btx,
    ));
    let mut r = Response::new(Body::from_stream(ChannelStream(brx)));
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    Ok(r)
}

fn sse(v: &Value) -> Bytes {
    Bytes::from(format!("data: {v}\n\n"))
}

#[allow(clippy::too_many_arguments)]
async fn stream_task(
    app: Arc<App>,
    reply: Reply,
    mut rx: tmpsc::UnboundedReceiver<GenMsg>,
    first: GenMsg,
    guard: CancelOnDrop,
    deadline: Instant,
    include_usage: bool,
    out: tmpsc::Sender<Bytes>,
) {
    // `guard` lives as long as this task: when the client goes away the sends fail,
    // the task returns and the generation is cancelled.
    let _guard = guard;
    let param = if reply.chat { "messages" } else { "prompt" };
    if reply.chat
        && out
            .send(sse(&reply.chunk(Some(""), true, None)))
            .await
            .is_err()
    {
        return;
    }
    let mut msg: Result<GenMsg, ApiError> = Ok(first);
    loop {
        let chunk = match msg {
            Ok(GenMsg::Token(t)) => sse(&reply.chunk(Some(&t), false, None)),
            Ok(GenMsg::Done(stats)) => {
                app.record(&stats);
                let fin = finish_reason(stats.stop);
                let mut b = sse(&reply.chunk(None, false, Some(fin))).to_vec();
                if include_usage {
                    let mut u = reply.chunk(None, false, None);
                    u["choices"] = json!([]);
                    u["usage"] = usage(&stats);
                    b.extend_from_slice(&sse(&u));
                }
                b.extend_from_slice(b"data: [DONE]\n\n");
                let _ = out.send(Bytes::from(b)).await;
                return;
            }
            Ok(GenMsg::Error(e)) => {
                let err = ApiError::from_engine(&e, param);
                let _ = out.send(sse(&err.body())).await;
                return;
            }
            Err(err) => {
                let _ = out.send(sse(&err.body())).await;
                return;
            }
        };
        if out.send(chunk).await.is_err() {
            return;
        }
        msg = next_msg(&app, &mut rx, deadline).await;
    }
}

/// A response body fed by a channel.
struct ChannelStream(tmpsc::Receiver<Bytes>);

impl futures_core::Stream for ChannelStream {
    type Item = Result<Bytes, std::convert::Infallible>;
    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.0.poll_recv(cx).map(|o| o.map(Ok))
    }
}

async fn embeddings(State(app): State<Arc<App>>, req: Request) -> Res {
    let body = read_body(req, app.cfg.max_body).await?;
    let obj = api::parse_body(&body)?;
    let m = app.model_for(&obj, Kind::Embedding)?;
    let (texts, format) = api::embed_input(&obj)?;
    api::embed_dimensions(&obj, m.dim)?;
    let ticket = app.admit(m)?;
    let (tx, rx) = oneshot::channel();
    let cancel = Arc::new(Cancel::default());
    let _guard = CancelOnDrop(cancel.clone());
    let deadline = Instant::now() + app.cfg.request_timeout;
    let job = Job {
        work: Work::Embed { texts, tx },
        cancel,
        deadline,
        ticket,
    };
    if !m.queue.push(job) {
        return Err(ApiError::server(503, "the model's worker has stopped"));
    }
    let vectors = match tokio::time::timeout_at(deadline.into(), rx).await {
        Err(_) => return Err(app.timeout()),
        Ok(Err(_)) => {
            return Err(ApiError::server(
                500,
                "the model's worker stopped without finishing the request",
            ))
        }
        Ok(Ok(Err(e))) => return Err(ApiError::from_engine(&e, "input")),
        Ok(Ok(Ok(v))) => v,
    };
    let tokens: usize = vectors.iter().map(|e| e.n_tokens).sum();
    app.metrics
        .prompt_tokens
        .fetch_add(tokens as u64, Ordering::Relaxed);
    let data: Vec<Value> = vectors
        .iter()
        .enumerate()
        .map(|(i, e)| {
            let embedding = match format {
                EncodingFormat::Float => json!(e.vector),
                EncodingFormat::Base64 => json!(api::base64_f32(&e.vector)),
            };
            json!({"object": "embedding", "index": i, "embedding": embedding})
        })
        .collect();
    Ok(json_response(
        200,
        &json!({
            "object": "list",
            "data": data,
            "model": m.id,
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
        }),
    ))
}
