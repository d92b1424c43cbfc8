//! Throughput helpers: the plaintext SHA-256 on a second thread, chunking, and large
//! output buffers (docs/SEALED.md, "Performance").
//!
//! SHA-256 runs at about 1.6 GB/s per core with SHA-NI and AES-256-GCM at about
//! 2.2 GB/s, so hashing on the thread that encrypts or decrypts more than halves the
//! throughput. Sealing, opening, verifying and unsealing therefore hash on a second
//! thread ([`ChunkHasher`]) while the calling thread reads, encrypts or decrypts and
//! writes: the work goes in chunks of whole blocks (256 KiB), and the hash thread
//! takes each chunk after the caller is done with it (or, when sealing, while the
//! caller only reads it). The digest is the same as a single-threaded pass over the
//! same bytes, in the same order; only the timing changes.

use sha2::{Digest, Sha256};
use std::sync::mpsc::{channel, sync_channel, Receiver, SyncSender};
use std::thread::{Scope, ScopedJoinHandle};
use zeroize::Zeroizing;

/// Plaintext bytes per chunk of blocks (rounded down to whole blocks, at least one).
/// A chunk and its sealed bytes stay in a core's L2 cache; 64 KiB to 4 MiB measured
/// the same within noise, 256 KiB was best for GCM-only reads.
const CHUNK_BYTES: usize = 256 << 10;

/// Chunks queued for the hash thread before the producer waits.
const QUEUE: usize = 4;

/// Owned chunk buffers in flight (being filled, queued, being hashed) when buffers
/// are recycled.
pub(crate) const POOL: usize = QUEUE + 2;

/// Below this many plaintext bytes everything runs on the calling thread (starting a
/// thread costs more than it saves).
pub(crate) const THREAD_MIN: u64 = 4 << 20;

/// Blocks per chunk for a block size.
pub(crate) fn blocks_per_chunk(block_size: u32) -> u64 {
    (CHUNK_BYTES / block_size as usize).max(1) as u64
}

/// Chunk buffers for a [`ChunkHasher`]: the buffer just hashed inline is reused at
/// once; on a thread, new ones are made while fewer than [`POOL`] exist, then the
/// hash thread's finished ones are recycled. Each holds `cap` bytes, so a chunk
/// never reallocates (and plaintext is never left in a freed allocation).
pub(crate) struct BufPool {
    cap: usize,
    spare: Option<Zeroizing<Vec<u8>>>,
    made: usize,
}

impl BufPool {
    pub(crate) fn new(cap: usize) -> BufPool {
        BufPool {
            cap,
            spare: None,
            made: 0,
        }
    }

    /// A buffer of exactly `len` bytes (`len <= cap`) for the next chunk; the hash
    /// takes the buffer whole, so it must be exactly the chunk.
    pub(crate) fn take(
        &mut self,
        h: &mut ChunkHasher<'_, Zeroizing<Vec<u8>>>,
        len: usize,
    ) -> Zeroizing<Vec<u8>> {
        debug_assert!(len <= self.cap);
        let mut b = match self.spare.take() {
            Some(b) => b,
            None if self.made < POOL => {
                self.made += 1;
                Zeroizing::new(vec![0u8; self.cap])
            }
            None => h
                .recycled()
                .unwrap_or_else(|| Zeroizing::new(vec![0u8; self.cap])),
        };
        b.resize(len, 0);
        b
    }

    /// Hash `buf` (inline, or queued for the hash thread), keeping it for reuse when
    /// it comes straight back.
    pub(crate) fn hash(
        &mut self,
        h: &mut ChunkHasher<'_, Zeroizing<Vec<u8>>>,
        buf: Zeroizing<Vec<u8>>,
    ) {
        self.spare = h.feed(buf);
    }

    #[cfg(test)]
    fn made(&self) -> usize {
        self.made
    }
}

/// Whether hashing `len` plaintext bytes on a second thread is worth it: the input is
/// large enough and the process may run on more than one CPU.
pub(crate) fn want_thread(len: u64) -> bool {
    len >= THREAD_MIN && std::thread::available_parallelism().is_ok_and(|n| n.get() > 1)
}

/// SHA-256 over a sequence of chunks, in order: on a second thread when one could be
/// started (the caller goes on with the next chunk meanwhile), else inline.
pub(crate) struct ChunkHasher<'scope, T> {
    inner: Inner<'scope, T>,
}

enum Inner<'scope, T> {
    Inline(Sha256),
    Thread {
        tx: SyncSender<T>,
        back: Receiver<T>,
        handle: ScopedJoinHandle<'scope, [u8; 32]>,
    },
}

impl<'scope, T: AsRef<[u8]> + Send + 'scope> ChunkHasher<'scope, T> {
    /// A hasher on its own thread in `scope` when `threaded` (and the thread starts),
    /// else an inline one.
    pub(crate) fn new<'env>(scope: &'scope Scope<'scope, 'env>, threaded: bool) -> Self {
        if threaded {
            let (tx, rx) = sync_channel::<T>(QUEUE);
            let (back_tx, back) = channel::<T>();
            let spawned = std::thread::Builder::new()
                .name("alc-seal-sha256".into())
                .spawn_scoped(scope, move || {
                    let mut h = Sha256::new();
                    for chunk in rx {
                        h.update(chunk.as_ref());
                        // The caller may not want its buffers back.
                        let _ = back_tx.send(chunk);
                    }
                    h.finalize().into()
                });
            if let Ok(handle) = spawned {
                return ChunkHasher {
                    inner: Inner::Thread { tx, back, handle },
                };
            }
        }
        ChunkHasher {
            inner: Inner::Inline(Sha256::new()),
        }
    }

    /// True when hashing runs on a second thread.
    #[cfg(test)]
    pub(crate) fn is_threaded(&self) -> bool {
        matches!(self.inner, Inner::Thread { .. })
    }

    /// Hashes the next chunk, or queues it for the hash thread (waiting while the
    /// queue is full). Returns the chunk when it was hashed inline, so its buffer can
    /// be reused at once; a queued chunk comes back through [`Self::recycled`].
    pub(crate) fn feed(&mut self, chunk: T) -> Option<T> {
        match &mut self.inner {
            Inner::Inline(h) => {
                h.update(chunk.as_ref());
                Some(chunk)
            }
            Inner::Thread { tx, .. } => {
                // A send fails only when the hash thread has ended, i.e. panicked;
                // `finish` re-raises that panic.
                let _ = tx.send(chunk);
                None
            }
        }
    }

    /// A chunk the hash thread is done with, waiting for one; `None` inline or when
    /// the hash thread has ended.
    pub(crate) fn recycled(&mut self) -> Option<T> {
        match &mut self.inner {
            Inner::Inline(_) => None,
            Inner::Thread { back, .. } => back.recv().ok(),
        }
    }

    /// The digest of every chunk fed, in order (waits for the hash thread).
    pub(crate) fn finish(self) -> [u8; 32] {
        match self.inner {
            Inner::Inline(h) => h.finalize().into(),
            Inner::Thread { tx, handle, .. } => {
                drop(tx);
                match handle.join() {
                    Ok(d) => d,
                    Err(panic) => std::panic::resume_unwind(panic),
                }
            }
        }
    }
}

/// A zeroed buffer of `len` bytes for a whole plaintext or sealed file in memory.
///
/// The allocation is fresh zero pages from the kernel; writing it the first time
/// costs one page fault per 4 KiB page, about 0.6 s per GB here (more than
/// AES-256-GCM itself). On Linux, large buffers are advised `MADV_HUGEPAGE` so that
/// the kernel can back them with 2 MiB pages (512 times fewer faults, and fewer TLB
/// misses for the engine that then reads the model); with transparent huge pages
/// off, or none free, the advice is ignored and nothing else changes.
pub(crate) fn zeroed_vec(len: usize) -> Vec<u8> {
    let mut v = vec![0u8; len];
    advise_huge(&mut v);
    v
}

#[cfg(target_os = "linux")]
fn advise_huge(v: &mut [u8]) {
    const HUGE: usize = 2 << 20;
    if v.len() < 4 * HUGE {
        return;
    }
    let start = v.as_mut_ptr() as usize;
    let (a, b) = (start.div_ceil(HUGE) * HUGE, (start + v.len()) / HUGE * HUGE);
    if b > a {
        // SAFETY: [a, b) is inside the allocation `v` (rounded inwards to 2 MiB, so
        // page aligned) and `v` is borrowed mutably for the call. MADV_HUGEPAGE only
        // changes how the kernel may back the pages, never their contents (the zeroed
        // bytes stay zero, written bytes stay). A failure (e.g. THP not built in)
        // leaves ordinary pages, so the result is ignored.
        let _ = unsafe { libc::madvise(a as *mut libc::c_void, b - a, libc::MADV_HUGEPAGE) };
    }
}

#[cfg(not(target_os = "linux"))]
fn advise_huge(_: &mut [u8]) {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn threaded_and_inline_digests_agree() {
        let data: Vec<u8> = (0..3_000_000u32).map(|i| (i * 7 + i / 251) as u8).collect();
        let want: [u8; 32] = Sha256::digest(&data).into();
        for threaded in [false, true] {
            let got = std::thread::scope(|s| {
                let mut h = ChunkHasher::new(s, threaded);
                assert_eq!(h.is_threaded(), threaded);
                for c in data.chunks(100_003) {
                    h.feed(c);
                }
                h.finish()
            });
            assert_eq!(got, want, "threaded {threaded}");
            // Owned buffers that come back for reuse.
            let got = std::thread::scope(|s| {
                let mut h = ChunkHasher::<Zeroizing<Vec<u8>>>::new(s, threaded);
                let mut pool = BufPool::new(65_536);
                for c in data.chunks(65_536) {
                    let mut buf = pool.take(&mut h, c.len());
                    buf.copy_from_slice(c);
                    pool.hash(&mut h, buf);
                }
                assert!(pool.made() <= POOL);
                h.finish()
            });
            assert_eq!(got, want, "threaded {threaded}, recycled buffers");
        }
    }

    #[test]
    fn zeroed_vec_is_zero() {
        for len in [0, 1, 4096, (9 << 20) + 5] {
            let v = zeroed_vec(len);
            assert_eq!(v.len(), len);
            assert!(v.iter().all(|&b| b == 0));
        }
    }

    #[test]
    fn chunk_sizes() {
        assert_eq!(blocks_per_chunk(64 << 10), 4);
        assert_eq!(blocks_per_chunk(4096), 64);
        assert_eq!(blocks_per_chunk(16 << 20), 1);
    }
}
