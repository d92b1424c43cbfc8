//! One worker thread per served model, fed by a bounded FIFO queue.
//!
//! The worker owns the model handle (an [`Engine`] session, or an [`Embedder`]) and
//! runs one job at a time, in arrival order. Admission is counted with a ticket: a
//! request holds one from the moment it is queued until the worker has finished it,
//! so the count is "running + waiting" and never passes the queue's capacity.

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

/// Start the worker thread of `runner` with a queue of `capacity`.
pub fn start(name: &str, runner: Runner, capacity: usize) -> std::io::Result<Queue> {
    let (tx, rx) = mpsc::channel::<Job>();
    std::thread::Builder::new()
        .name(format!("alc-serve-{name}"))
        .spawn(move || match runner {
            Runner::Language(engine) => run_language(engine, rx),
            Runner::Embedding(embedder) => run_embedding(embedder, rx),
        })?;
    Ok(Queue {
        depth: Arc::new(AtomicUsize::new(0)),
        capacity,
        tx: Mutex::new(tx),
    })
}

fn timeout_error(what: &str) -> EngineError {
    EngineError::BadRequest(format!("the request {what} its deadline"))
}

fn run_language(engine: Engine, rx: mpsc::Receiver<Job>) {
    // One session for every request: a prompt that shares a prefix with the last
    // one (a chat's next turn) reuses its KV cache.
    let session = match engine.session() {
        Ok(s) => s,
        Err(e) => {
            tracing::error!("cannot start a session: {e}");
            return;
        }
    };
    for job in rx {
        let Job {
            work,
            cancel,
            deadline,
            ticket,
        } = job;
        let Work::Generate { req, tx } = work else {
            continue;
        };
        if cancel.is_cancelled() {
            continue;
        }
        if Instant::now() >= deadline {
            let _ = tx.send(GenMsg::Error(timeout_error("waited in the queue past")));
            continue;
        }
        let mut generation = match session.generate(req) {
            Ok(g) => g,
            Err(e) => {
                let _ = tx.send(GenMsg::Error(e));
                continue;
            }
        };
        cancel.attach(generation.canceller());
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
                Ok(Event::Done(stats)) => GenMsg::Done(stats),
                Err(e) => GenMsg::Error(e),
            };
            if tx.send(msg).is_err() {
                // The client is gone: stop after the current step.
                generation.cancel();
            }
        }
        drop(ticket);
    }
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
        let _ = tx.send(embedder.embed(&refs));
    }
}
