//! Cost of a thread-pool job boundary: microseconds per `ThreadPool::run` of
//! `chunks` chunks that each spin for `work_ns` nanoseconds (0: empty jobs, the
//! pure hand-off): `cargo run --release -p alc-kernels --example poolbench
//! [threads chunks work_ns jobs]`. A decode step of SmolLM2 runs about 121 jobs.
#[path = "common/args.rs"]
mod args;
use alc_kernels::pool::ThreadPool;
use std::time::{Duration, Instant};

fn main() {
    let [threads, chunks, work_ns, jobs] = args::positional([2, 16, 0, 200_000]);
    let (chunks, jobs) = (chunks.max(1), jobs.max(1));
    let pool = ThreadPool::new(threads);
    let work = Duration::from_nanos(work_ns as u64);
    let job = |_: usize, _: usize| {
        if work_ns > 0 {
            let t = Instant::now();
            while t.elapsed() < work {
                std::hint::spin_loop();
            }
        }
    };
    for _ in 0..1000 {
        pool.run(chunks, job);
    }
    let t = Instant::now();
    for _ in 0..jobs {
        pool.run(chunks, job);
    }
    let per = t.elapsed().as_secs_f64() / jobs as f64;
    let ideal = (chunks as f64 * work_ns as f64 * 1e-9) / threads as f64;
    println!(
        "{:.2} us per job ({:.2} us over the ideal split of the work), {threads} threads, {chunks} chunks of {work_ns} ns",
        per * 1e6,
        (per - ideal) * 1e6
    );
}
