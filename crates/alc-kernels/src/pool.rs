//! A persistent thread pool with a cheap fork-join barrier.
//!
//! The calling thread is worker 0 and takes part in every job, so `n` threads means
//! `n - 1` spawned workers. Workers spin briefly on a generation counter after each job
//! (a decode step dispatches a few hundred jobs, each microseconds long, so parking
//! between them would cost more than the work), then park until the next job.

use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle, Thread};

/// Spin iterations before a worker parks (≈ tens of microseconds).
const SPIN_BEFORE_PARK: u32 = 20_000;

type JobFn = dyn Fn(usize, usize) + Sync;

struct Shared {
    /// Incremented by the caller for every job; workers run a job when it changes.
    generation: AtomicUsize,
    /// Workers that have finished the current job.
    done: AtomicUsize,
    /// Thin pointer to a `&JobFn` on the caller's stack; valid while `run` waits for
    /// `done`.
    job: AtomicPtr<()>,
    shutdown: AtomicBool,
    n_threads: usize,
    /// Set when a job panicked on a worker; `run` re-raises it on the caller.
    panicked: AtomicBool,
}

// SAFETY: the raw job pointer is only dereferenced while the caller of `run` keeps the
// closure alive (it blocks until every worker has reported completion).
unsafe impl Send for Shared {}
unsafe impl Sync for Shared {}

/// Fixed-size pool of compute threads.
pub struct ThreadPool {
    shared: Arc<Shared>,
    workers: Vec<(JoinHandle<()>, Thread)>,
    /// Serializes `run` calls from different threads.
    gate: Mutex<()>,
}

impl std::fmt::Debug for ThreadPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ThreadPool({} threads)", self.shared.n_threads)
    }
}

impl ThreadPool {
    /// A pool of `n_threads` (>= 1) threads including the caller.
    pub fn new(n_threads: usize) -> Self {
        let n_threads = n_threads.max(1);
        let shared = Arc::new(Shared {
            generation: AtomicUsize::new(0),
            done: AtomicUsize::new(0),
            job: AtomicPtr::new(std::ptr::null_mut()),
            shutdown: AtomicBool::new(false),
            n_threads,
            panicked: AtomicBool::new(false),
        });
        let mut workers = Vec::new();
        for tid in 1..n_threads {
            let s = shared.clone();
            let h = thread::Builder::new()
                .name(format!("alc-compute-{tid}"))
                .spawn(move || worker_loop(s, tid))
                .expect("spawning a compute thread");
            let t = h.thread().clone();
            workers.push((h, t));
        }
        ThreadPool { shared, workers, gate: Mutex::new(()) }
    }

    pub fn n_threads(&self) -> usize {
        self.shared.n_threads
    }

    /// Run `f(thread_index, n_threads)` on every thread and wait for all of them.
    pub fn run<F: Fn(usize, usize) + Sync>(&self, f: F) {
        let n = self.shared.n_threads;
        if n == 1 {
            f(0, 1);
            return;
        }
        let _g = self.gate.lock().unwrap_or_else(|e| e.into_inner());
        let job: &(dyn Fn(usize, usize) + Sync + '_) = &f;
        // Workers read the job through this pointer; `run` does not return (and `job`
        // stays alive) until every worker has reported completion below.
        let erased = &job as *const &(dyn Fn(usize, usize) + Sync + '_) as *mut ();
        self.shared.job.store(erased, Ordering::Relaxed);
        self.shared.done.store(0, Ordering::Relaxed);
        self.shared.generation.fetch_add(1, Ordering::Release);
        for (_, t) in &self.workers {
            t.unpark();
        }
        let caller = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(0, n)));
        let mut spins = 0u32;
        while self.shared.done.load(Ordering::Acquire) < n - 1 {
            spins += 1;
            if spins < SPIN_BEFORE_PARK {
                std::hint::spin_loop();
            } else {
                thread::yield_now();
            }
        }
        if let Err(p) = caller {
            std::panic::resume_unwind(p);
        }
        if self.shared.panicked.swap(false, Ordering::Relaxed) {
            panic!("a compute thread panicked while running a job");
        }
    }
}

fn worker_loop(s: Arc<Shared>, tid: usize) {
    let mut seen = 0usize;
    loop {
        let mut spins = 0u32;
        let gen = loop {
            let g = s.generation.load(Ordering::Acquire);
            if g != seen {
                break g;
            }
            if s.shutdown.load(Ordering::Relaxed) {
                return;
            }
            spins += 1;
            if spins < SPIN_BEFORE_PARK {
                std::hint::spin_loop();
            } else {
                thread::park_timeout(std::time::Duration::from_millis(50));
            }
        };
        seen = gen;
        let ptr = s.job.load(Ordering::Relaxed) as *const &JobFn;
        // SAFETY: `run` stored a pointer to a live `&JobFn` before bumping `generation`
        // (Release/Acquire) and keeps it alive until `done` reaches n - 1.
        let job: &JobFn = unsafe { *ptr };
        if std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| job(tid, s.n_threads))).is_err() {
            s.panicked.store(true, Ordering::Relaxed);
        }
        s.done.fetch_add(1, Ordering::Release);
    }
}

impl Drop for ThreadPool {
    fn drop(&mut self) {
        self.shared.shutdown.store(true, Ordering::Relaxed);
        for (h, t) in self.workers.drain(..) {
            t.unpark();
            let _ = h.join();
        }
    }
}

/// Split `0..n` into `parts` near-equal ranges and return range `i`.
pub fn split_range(n: usize, parts: usize, i: usize) -> std::ops::Range<usize> {
    let base = n / parts;
    let rem = n % parts;
    let start = i * base + i.min(rem);
    let len = base + usize::from(i < rem);
    start..start + len
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_thread_runs_every_job() {
        for n in 1..=4 {
            let pool = ThreadPool::new(n);
            let hits = AtomicUsize::new(0);
            for _ in 0..1000 {
                pool.run(|_, nth| {
                    assert_eq!(nth, n);
                    hits.fetch_add(1, Ordering::Relaxed);
                });
            }
            assert_eq!(hits.load(Ordering::Relaxed), 1000 * n);
        }
    }

    #[test]
    fn split_covers_range() {
        for n in 0..50 {
            for p in 1..6 {
                let mut next = 0;
                for i in 0..p {
                    let r = split_range(n, p, i);
                    assert_eq!(r.start, next);
                    next = r.end;
                }
                assert_eq!(next, n);
            }
        }
    }
}
