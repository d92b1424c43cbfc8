//! One dispatcher thread per served model, fed by a bounded FIFO queue.
//!
//! A language model gets `parallel` slots: each slot is a thread holding one engine
//! [`alc_engine::Session`] (its own KV cache). The dispatcher hands each job, in
//! arrival order, to an idle slot — the one whose previous prompt shares the longest
//! prefix with the job's (a chat's next turn finds its KV cache again), else the one
//! idle the shortest time — and waits for a slot when all are busy. The slots'
//! generations run concurrently on the engine's run loop, which batches them into one
//! forward pass per step (continuous batching). An embedding model has one worker
//! running one job at a time (each job is itself a batch).
//!
//! Admission is counted with a ticket: a request holds one from the moment it is
//! queued until its job is finished, so the count is "running + waiting" and never
//! passes the queue's capacity.

use alc_engine::{Embedder, Embedding, Engine, EngineError, Event, GenRequest, GenStats};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::Instant;
use tokio::sync::{mpsc as tmpsc, oneshot};

/// Cancellation shared by the HTTP side and the worker: set by the client's going
/// away (or a deadline), forwarded to the running generation once it exists.
#[derive(Default)]
pub struct Cancel {
    flag: AtomicBool,
    generation: Mutex<Option<Arc<AtomicBool>>>,
}

impl Cancel {
    pub fn cancel(&self) {
        self.flag.store(true, Ordering::Relaxed);
        if let Some(g) = &*self.generation.lock().unwrap_or_else(|e| e.into_inner()) {
            g.store(true, Ordering::Relaxed);
        }
    }

    pub fn is_cancelled(&self) -> bool {
        self.flag.load(Ordering::Relaxed)
    }

    fn attach(&self, g: Arc<AtomicBool>) {
        let mut slot = self.generation.lock().unwrap_or_else(|e| e.into_inner());
        if self.is_cancelled() {
            g.store(true, Ordering::Relaxed);
        }
        *slot = Some(g);
    }
}

/// Cancels when dropped: held by whatever serves the client (a handler future, a
/// streaming task), so a disconnect stops the work.
pub struct CancelOnDrop(pub Arc<Cancel>);

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        self.0.cancel();
    }
}

/// What a generation job sends back.
pub enum GenMsg {
    Token(String),
    Done(GenStats),
    Error(EngineError),
}

pub enum Work {
    Generate {
        req: GenRequest,
        tx: tmpsc::UnboundedSender<GenMsg>,
    },
    Embed {
        texts: Vec<String>,
        tx: oneshot::Sender<Result<Vec<Embedding>, EngineError>>,
    },
}

pub struct Job {
    pub work: Work,
    pub cancel: Arc<Cancel>,
    pub deadline: Instant,
    pub ticket: Ticket,
}

/// One admitted request; dropping it frees its place in the queue.
pub struct Ticket(Arc<AtomicUsize>);

impl Drop for Ticket {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// The bounded queue in front of one worker.
pub struct Queue {
    depth: Arc<AtomicUsize>,
    capacity: usize,
    tx: Mutex<mpsc::Sender<Job>>,
}

impl Queue {
    /// A place in the queue, or `None` when `capacity` requests are already admitted.
    pub fn admit(&self) -> Option<Ticket> {
        self.depth
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |d| {
                (d < self.capacity).then_some(d + 1)
            })
            .ok()
            .map(|_| Ticket(self.depth.clone()))
    }

    /// Requests admitted now (running + waiting).
    pub fn depth(&self) -> usize {
        self.depth.load(Ordering::Acquire)
    }

    /// Hand a job to the worker; `false` if the worker has stopped.
    pub fn push(&self, job: Job) -> bool {
        self.tx
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .send(job)
            .is_ok()
    }
}

/// What a worker serves.
pub enum Runner {
    Language(Engine),
    Embedding(Box<Embedder>),
}

/// Start the worker threads of `runner` with a queue of `capacity` and (language
/// models) `parallel` slots.
pub fn start(
    name: &str,
    runner: Runner,
    capacity: usize,
    parallel: usize,
) -> std::io::Result<Queue> {
    let (tx, rx) = mpsc::channel::<Job>();
    match runner {
        Runner::Language(engine) => {
            let slots = (0..parallel.max(1))
                .map(|i| start_slot(name, i, &engine))
                .collect::<std::io::Result<Vec<_>>>()?;
            std::thread::Builder::new()
                .name(format!("alc-serve-{name}"))
                .spawn(move || dispatch(slots, rx))?;
        }
        Runner::Embedding(embedder) => {
            std::thread::Builder::new()
                .name(format!("alc-serve-{name}"))
                .spawn(move || run_embedding(embedder, rx))?;
        }
    }
    Ok(Queue {
        depth: Arc::new(AtomicUsize::new(0)),
        capacity,
        tx: Mutex::new(tx),
    })
}

fn timeout_error(what: &str) -> EngineError {
    EngineError::BadRequest(format!("the request {what} its deadline"))
}

/// A slot: its thread's job channel, told when the slot is idle again.
struct Slot {
    jobs: mpsc::Sender<(Job, mpsc::Sender<usize>)>,
    /// The last prompt's text, to route a continuation to the slot holding its cache.
    last: String,
    /// When it became idle (a counter: larger is more recent).
    idle_since: u64,
}

fn start_slot(name: &str, i: usize, engine: &Engine) -> std::io::Result<Slot> {
    let (tx, rx) = mpsc::channel::<(Job, mpsc::Sender<usize>)>();
    let engine = engine.clone();
    std::thread::Builder::new()
        .name(format!("alc-serve-{name}-{i}"))
        .spawn(move || {
            let session = match engine.session() {
                Ok(s) => s,
                Err(e) => {
                    tracing::error!("cannot start a session: {e}");
                    return;
                }
            };
            for (job, idle) in rx {
                run_generation(&session, job);
                if idle.send(i).is_err() {
                    return;
                }
            }
        })?;
    Ok(Slot {
        jobs: tx,
        last: String::new(),
        idle_since: 0,
    })
}

/// The text a prompt starts with, for routing: chat messages in order, or the raw
/// text. Only compared for common prefixes, never parsed.
fn prompt_key(req: &GenRequest) -> String {
    match &req.prompt {
        alc_engine::Prompt::Text { text, .. } => text.clone(),
        alc_engine::Prompt::Chat(m) => m
            .iter()
            .map(|m| format!("\u{1}{}\u{2}{}", m.role, m.content))
            .collect(),
        alc_engine::Prompt::Tokens(t) => t.iter().map(|t| format!("{t},")).collect(),
    }
}

fn common_prefix(a: &str, b: &str) -> usize {
    a.bytes().zip(b.bytes()).take_while(|(x, y)| x == y).count()
}

fn dispatch(mut slots: Vec<Slot>, rx: mpsc::Receiver<Job>) {
    let (idle_tx, idle_rx) = mpsc::channel::<usize>();
    let mut idle: Vec<usize> = (0..slots.len()).collect();
    let mut clock = 0u64;
    for job in rx {
        // Wait for a free slot, then take every slot freed meanwhile.
        if idle.is_empty() {
            match idle_rx.recv() {
                Ok(i) => {
                    clock += 1;
                    slots[i].idle_since = clock;
                    idle.push(i);
                }
                Err(_) => return,
            }
        }
        while let Ok(i) = idle_rx.try_recv() {
            clock += 1;
            slots[i].idle_since = clock;
            idle.push(i);
        }
        let key = match &job.work {
            Work::Generate { req, .. } => prompt_key(req),
            Work::Embed { .. } => String::new(),
        };
        let best = idle
            .iter()
            .enumerate()
            .max_by_key(|(_, &i)| (common_prefix(&slots[i].last, &key), slots[i].idle_since))
            .map(|(k, _)| k)
            .expect("an idle slot");
        let i = idle.swap_remove(best);
        slots[i].last = key;
        if slots[i].jobs.send((job, idle_tx.clone())).is_err() {
            tracing::error!("serving slot {i} stopped");
        }
    }
}

fn run_generation(session: &alc_engine::Session, job: Job) {
    let Job {
        work,
        cancel,
        deadline,
        ticket,
    } = job;
    let Work::Generate { req, tx } = work else {
        return;
    };
    if cancel.is_cancelled() {
        return;
    }
    if Instant::now() >= deadline {
        let _ = tx.send(GenMsg::Error(timeout_error("waited in the queue past")));
        return;
    }
    let mut generation = match session.generate(req) {
        Ok(g) => g,
        Err(e) => {
            let _ = tx.send(GenMsg::Error(e));
            return;
        }
    };
    cancel.attach(generation.canceller());
    let mut ticket = Some(ticket);
    while let Some(ev) = generation.next_event() {
        let msg = match ev {
            Ok(Event::Token { text, .. }) => {
                if Instant::now() >= deadline {
                    generation.cancel();
                }
                if text.is_empty() {
                    continue;
                }
                GenMsg::Token(text)
            }
            // The generation is over: free its place before the client hears so, or
            // a client that sends its next request at once could find it still taken.
            Ok(Event::Done(stats)) => {
                drop(ticket.take());
                GenMsg::Done(stats)
            }
            Err(e) => {
                drop(ticket.take());
                GenMsg::Error(e)
            }
        };
        if tx.send(msg).is_err() {
            // The client is gone: stop after the current step.
            generation.cancel();
        }
    }
    drop(ticket);
}

fn run_embedding(embedder: Box<Embedder>, rx: mpsc::Receiver<Job>) {
    for job in rx {
        let Work::Embed { texts, tx } = job.work else {
            continue;
        };
        if job.cancel.is_cancelled() {
            continue;
        }
        if Instant::now() >= job.deadline {
            let _ = tx.send(Err(timeout_error("waited in the queue past")));
            continue;
        }
        let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
        let r = embedder.embed(&refs);
        // Free the place before the client hears back (see run_generation).
        drop(job.ticket);
        let _ = tx.send(r);
    }
}
