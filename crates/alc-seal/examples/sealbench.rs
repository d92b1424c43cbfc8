//! Throughput of sealing and unsealing, against the primitives.
//!
//! cargo run --release -p alc-seal --example sealbench -- [MiB in memory (1024)] [MiB on file (256)] [rounds (3)]
//!
//! For each operation, best of the rounds: GB/s of plaintext (10^9 bytes per second of
//! wall time); the threads it keeps busy; GB/s per core used, i.e. bytes / (wall ×
//! threads); and, on Linux, GB per CPU-second (bytes / the process's user + system
//! CPU time during the operation, which also counts the kernel's page faults and
//! copies). A row measured while other processes kept a CPU busy says so. Sealing, opening, verifying and unsealing a large input hash the plaintext
//! on a second thread when the process may use more than one CPU; run under
//! `taskset -c 0` to measure them on one thread.
//!
//! Operations: a plain copy into a freshly allocated Vec (the page-fault cost every
//! in-memory result pays); SHA-256 alone; AES-256-GCM alone (64 KiB blocks in place);
//! `seal_bytes` and `unseal_bytes` in memory; `SealedReader` read sequentially through
//! `Read`; `seal_file` / `verify_sealed` / `unseal_file` / `open_in_memory` on a file in
//! the page cache (the system temp directory), with writing the same bytes plus fsync as
//! the disk's bound for the two that write a file. "no SHA-256" rows read with
//! `SealedReader::with_digest_check(false)`: every block still authenticated by GCM.

use aes_gcm::aead::AeadInOut;
use aes_gcm::{Aes256Gcm, KeyInit};
use alc_seal::{Key, KeySource, SealOptions, SealedReader};
use sha2::{Digest, Sha256};
use std::hint::black_box;
use std::io::{Read, Write};
use std::time::Instant;

/// Below this many plaintext bytes the crate hashes on the calling thread (the
/// crate's `pipe::THREAD_MIN`).
const THREAD_MIN: usize = 4 << 20;

/// User + system CPU seconds of this process so far.
#[cfg(target_os = "linux")]
fn cpu_seconds() -> Option<f64> {
    let mut ru = std::mem::MaybeUninit::<libc::rusage>::zeroed();
    // SAFETY: getrusage writes a rusage into the pointer it is given.
    let r = unsafe { libc::getrusage(libc::RUSAGE_SELF, ru.as_mut_ptr()) };
    if r != 0 {
        return None;
    }
    // SAFETY: getrusage succeeded, so it initialised the struct.
    let ru = unsafe { ru.assume_init() };
    let s = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 * 1e-6;
    Some(s(ru.ru_utime) + s(ru.ru_stime))
}

#[cfg(not(target_os = "linux"))]
fn cpu_seconds() -> Option<f64> {
    None
}

/// CPU seconds all CPUs spent busy (or stolen by the hypervisor) so far, from
/// /proc/stat; with [`cpu_seconds`] it tells whether something else ran during a round.
#[cfg(target_os = "linux")]
fn system_busy_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let line = stat.lines().next()?.strip_prefix("cpu ")?;
    let v: Vec<u64> = line
        .split_whitespace()
        .map(|x| x.parse().unwrap_or(0))
        .collect();
    // user nice system idle iowait irq softirq steal
    let busy: u64 = [0, 1, 2, 5, 6, 7].iter().filter_map(|&i| v.get(i)).sum();
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    Some(busy as f64 / if hz > 0 { hz as f64 } else { 100.0 })
}

#[cfg(not(target_os = "linux"))]
fn system_busy_seconds() -> Option<f64> {
    None
}

struct Bench {
    rounds: usize,
    parallel: usize,
}

impl Bench {
    /// Runs `f` `rounds` times and prints the best round's rates; `threads` is how
    /// many threads the operation keeps busy.
    fn run(&self, name: &str, bytes: usize, threads: usize, mut f: impl FnMut()) {
        let (mut wall, mut cpu, mut others) = (f64::INFINITY, f64::NAN, f64::NAN);
        for _ in 0..self.rounds {
            let (c0, s0) = (cpu_seconds(), system_busy_seconds());
            let t = Instant::now();
            f();
            let w = t.elapsed().as_secs_f64();
            if w < wall {
                wall = w;
                if let (Some(a), Some(b)) = (c0, cpu_seconds()) {
                    cpu = b - a;
                    if let (Some(x), Some(y)) = (s0, system_busy_seconds()) {
                        // CPUs busy with other processes (or stolen) on average.
                        others = ((y - x - cpu) / w).max(0.0);
                    }
                }
            }
        }
        let gb = bytes as f64 / 1e9;
        let per_cpu_s = if cpu.is_finite() && cpu > 0.0 {
            format!("{:6.2}", gb / cpu)
        } else {
            "     -".into()
        };
        // Other load during the best round (tick-granular): a flag, not a correction.
        let busy = if others > 0.25 {
            format!("  (other load {others:.1} CPU)")
        } else {
            String::new()
        };
        println!(
            "{name:<40} {:6.2} GB/s  {threads} thr  {:6.2} GB/s/core  {per_cpu_s} GB/CPU-s{busy}",
            gb / wall,
            gb / (wall * threads as f64),
        );
    }

    /// Threads of an operation that hashes `bytes` of plaintext (the crate's rule).
    fn hashing(&self, bytes: usize) -> usize {
        if bytes >= THREAD_MIN && self.parallel > 1 {
            2
        } else {
            1
        }
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let arg = |i: usize, d: usize| args.get(i).and_then(|s| s.parse().ok()).unwrap_or(d);
    let mem_mib = arg(1, 1024);
    let file_mib = arg(2, 256);
    let rounds = arg(3, 3);
    let n = mem_mib << 20;
    let parallel = std::thread::available_parallelism().map_or(1, |n| n.get());
    let b = Bench { rounds, parallel };

    // Pseudo-random plaintext (xorshift), cheap to make.
    let mut data = vec![0u8; n];
    let mut x = 0x9E37_79B9_7F4A_7C15u64;
    for c in data.chunks_mut(8) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        c.copy_from_slice(&x.to_le_bytes()[..c.len()]);
    }
    let key = Key::generate().expect("random key");
    let keys = KeySource::key(key);
    let opts = SealOptions::default();
    println!(
        "sealbench: {mem_mib} MiB in memory, {file_mib} MiB on file, best of {rounds}, \
         {parallel} CPU(s) available"
    );
    #[cfg(target_arch = "x86_64")]
    println!(
        "cpu: aes={} pclmulqdq={} sha={} vaes={} vpclmulqdq={} avx2={} avx512f={}",
        std::arch::is_x86_feature_detected!("aes"),
        std::arch::is_x86_feature_detected!("pclmulqdq"),
        std::arch::is_x86_feature_detected!("sha"),
        std::arch::is_x86_feature_detected!("vaes"),
        std::arch::is_x86_feature_detected!("vpclmulqdq"),
        std::arch::is_x86_feature_detected!("avx2"),
        std::arch::is_x86_feature_detected!("avx512f"),
    );

    b.run("copy into a fresh Vec (page faults)", n, 1, || {
        black_box(black_box(&data).to_vec());
    });
    b.run("SHA-256 (sha2, plaintext)", n, 1, || {
        black_box(Sha256::digest(black_box(&data)));
    });
    let aead = Aes256Gcm::new(&[7u8; 32].into());
    let mut buf = data.clone();
    b.run("AES-256-GCM (aes-gcm, 64 KiB blocks)", n, 1, || {
        for (i, b) in buf.chunks_mut(64 << 10).enumerate() {
            let mut nonce = [0u8; 12];
            nonce[..8].copy_from_slice(&(i as u64).to_be_bytes());
            black_box(
                aead.encrypt_inout_detached(&nonce.into(), b"aad", b.into())
                    .expect("encrypt"),
            );
        }
    });
    drop(buf);

    let mut sealed = Vec::new();
    b.run("seal_bytes", n, b.hashing(n), || {
        sealed = alc_seal::seal_bytes(&data, &keys, &opts).expect("seal");
    });
    b.run("unseal_bytes", n, b.hashing(n), || {
        let p = alc_seal::unseal_bytes("bench", &sealed, &keys).expect("unseal");
        assert_eq!(p.len(), n);
        black_box(p);
    });
    b.run("  same, no SHA-256 (GCM only)", n, 1, || {
        let r = SealedReader::from_bytes("bench", &sealed, &keys).expect("open");
        let p = r.with_digest_check(false).read_to_vec().expect("read");
        assert_eq!(p.len(), n);
        black_box(p);
    });

    let mut chunk = vec![0u8; 1 << 20];
    let mut read_all = |check: bool| {
        let r = SealedReader::from_bytes("bench", &sealed, &keys).expect("open");
        let mut r = r.with_digest_check(check);
        let mut total = 0;
        loop {
            let k = r.read(&mut chunk).expect("read");
            if k == 0 {
                break;
            }
            total += k;
        }
        assert_eq!(total, n);
    };
    b.run("SealedReader::read, 1 MiB reads", n, 1, || read_all(true));
    b.run("  same, no SHA-256 (GCM only)", n, 1, || read_all(false));
    drop(sealed);

    // Files in the page cache.
    let fsize = (file_mib << 20).min(n);
    let dir = std::env::temp_dir().join(format!("alc-sealbench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let src = dir.join("plain.bin");
    let out = dir.join("plain.bin.ava3");
    let back = dir.join("back.bin");
    let raw = dir.join("raw.bin");
    std::fs::write(&src, &data[..fsize]).expect("write source");
    b.run("write + fsync, no crypto (disk bound)", fsize, 1, || {
        let mut f = std::fs::File::create(&raw).expect("create");
        for c in data[..fsize].chunks(1 << 20) {
            f.write_all(c).expect("write");
        }
        f.sync_all().expect("fsync");
    });
    drop(data);
    let _ = std::fs::remove_file(&raw);
    b.run("seal_file (incl. fsync)", fsize, b.hashing(fsize), || {
        alc_seal::seal_file(&src, &out, &keys, &opts).expect("seal_file");
    });
    b.run("verify_sealed", fsize, b.hashing(fsize), || {
        alc_seal::verify_sealed(&out, &keys).expect("verify");
    });
    b.run("unseal_file (incl. fsync)", fsize, b.hashing(fsize), || {
        alc_seal::unseal_file(&out, &back, &keys).expect("unseal_file");
    });
    b.run("open_in_memory", fsize, b.hashing(fsize), || {
        black_box(alc_seal::open_in_memory(&out, &keys).expect("open_in_memory"));
    });
    b.run("  same, no SHA-256 (GCM only)", fsize, 1, || {
        let r = SealedReader::open(&out, &keys).expect("open");
        black_box(r.with_digest_check(false).read_to_vec().expect("read"));
    });
    let _ = std::fs::remove_dir_all(&dir);
}
