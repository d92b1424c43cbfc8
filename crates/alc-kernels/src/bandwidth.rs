//! Memory read bandwidth, measured on the same pool that runs the model, so that
//! model-bandwidth utilisation compares like with like.

use crate::pool::{split_range, ThreadPool};
use std::time::Instant;

/// Best-of-`reps` read bandwidth in bytes/s over a buffer of `bytes` (use a size well
/// beyond the last-level cache, e.g. 256 MiB).
pub fn read_bandwidth(pool: &ThreadPool, bytes: usize, reps: usize) -> f64 {
    ReadProbe::new(bytes).measure(pool, reps)
}

/// A read-bandwidth probe whose buffer is allocated (and every page touched) once,
/// so that it can be measured again and again, e.g. right before each timed
/// repetition of a benchmark on a machine whose bandwidth drifts.
pub struct ReadProbe {
    buf: Vec<u64>,
}

impl ReadProbe {
    /// A probe over a buffer of `bytes` (at least 8 KiB).
    pub fn new(bytes: usize) -> Self {
        let n = (bytes / 8).max(1024);
        // Touch every page so the timing measures reads, not page faults.
        ReadProbe {
            buf: (0..n as u64).collect(),
        }
    }

    /// Best-of-`reps` read bandwidth in bytes/s: one job per repetition on `pool`,
    /// each thread summing its share of the buffer.
    pub fn measure(&self, pool: &ThreadPool, reps: usize) -> f64 {
        let (buf, n) = (&self.buf, self.buf.len());
        let sums: Vec<std::sync::atomic::AtomicU64> =
            (0..pool.n_threads()).map(|_| Default::default()).collect();
        let mut best = f64::MAX;
        for _ in 0..reps.max(1) {
            let t = Instant::now();
            // One chunk per thread: a claimed 1/n_threads of the buffer each.
            let nth = pool.n_threads();
            pool.run(nth, |tid, c| {
                let s = sum(&buf[split_range(n, nth, c)]);
                sums[tid].fetch_add(s, std::sync::atomic::Ordering::Relaxed);
            });
            best = best.min(t.elapsed().as_secs_f64());
        }
        std::hint::black_box(&sums);
        (n * 8) as f64 / best
    }
}

/// Bytes ahead of the sum that it prefetches. Without a software prefetch the probe
/// read 42-46 GB/s on a Zen 5 VM while decode, which prefetches, streamed weights at up
/// to 44 GB/s (MBU above 1). Measured there: 1 KiB 43-44 GB/s, 2 KiB 47-49, 4 KiB
/// 49-51, 8 KiB 48-49; the probe takes the best, so MBU is not flattered.
#[cfg(target_arch = "x86_64")]
const PREFETCH: usize = 4096;

/// Sum with several independent accumulators so that the loop is load-bound, one
/// 64-byte line at a time, prefetching [`PREFETCH`] bytes ahead.
fn sum(xs: &[u64]) -> u64 {
    let mut acc = [0u64; 8];
    let mut chunks = xs.chunks_exact(8);
    for c in &mut chunks {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: prefetch is a hint; it never faults, whatever the address.
        unsafe {
            use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
            _mm_prefetch::<_MM_HINT_T0>(c.as_ptr().cast::<i8>().wrapping_add(PREFETCH));
        }
        for i in 0..8 {
            acc[i] = acc[i].wrapping_add(c[i]);
        }
    }
    let mut s = chunks
        .remainder()
        .iter()
        .fold(0u64, |a, &b| a.wrapping_add(b));
    for a in acc {
        s = s.wrapping_add(a);
    }
    s
}
