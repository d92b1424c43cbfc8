//! Single-thread throughput of sealing and unsealing, against the primitives.
//!
//! cargo run --release -p alc-seal --example sealbench -- [MiB in memory (1024)] [MiB on file (256)] [rounds (3)]
//!
//! Prints GB/s (10^9 bytes per second of plaintext), best of the rounds, for: a
//! plain copy into a freshly allocated Vec (the page-fault cost every in-memory
//! result pays); SHA-256 alone; AES-256-GCM alone (64 KiB blocks in place); `seal_bytes` and
//! `unseal_bytes` in memory; `SealedReader` read sequentially through `Read`;
//! `seal_file` / `unseal_file` / `verify_sealed` on a file in the page cache (the
//! system temp directory).

use aes_gcm::aead::AeadInOut;
use aes_gcm::{Aes256Gcm, KeyInit};
use alc_seal::{Key, KeySource, SealOptions, SealedReader};
use sha2::{Digest, Sha256};
use std::hint::black_box;
use std::io::Read;
use std::time::Instant;

fn best(rounds: usize, bytes: usize, mut f: impl FnMut()) -> f64 {
    let mut best = f64::INFINITY;
    for _ in 0..rounds {
        let t = Instant::now();
        f();
        best = best.min(t.elapsed().as_secs_f64());
    }
    bytes as f64 / best / 1e9
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let arg = |i: usize, d: usize| args.get(i).and_then(|s| s.parse().ok()).unwrap_or(d);
    let mem_mib = arg(1, 1024);
    let file_mib = arg(2, 256);
    let rounds = arg(3, 3);
    let n = mem_mib << 20;

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
        "sealbench: {mem_mib} MiB in memory, {file_mib} MiB on file, best of {rounds}, one thread"
    );
    #[cfg(target_arch = "x86_64")]
    println!(
        "cpu: aes={} pclmulqdq={} sha={} vaes={} vpclmulqdq={} avx2={}",
        std::arch::is_x86_feature_detected!("aes"),
        std::arch::is_x86_feature_detected!("pclmulqdq"),
        std::arch::is_x86_feature_detected!("sha"),
        std::arch::is_x86_feature_detected!("vaes"),
        std::arch::is_x86_feature_detected!("vpclmulqdq"),
        std::arch::is_x86_feature_detected!("avx2"),
    );

    let gbs = best(rounds, n, || {
        black_box(black_box(&data).to_vec());
    });
    println!(
        "{:<40} {gbs:6.2} GB/s",
        "copy into a fresh Vec (page faults)"
    );

    let gbs = best(rounds, n, || {
        black_box(Sha256::digest(black_box(&data)));
    });
    println!("{:<40} {gbs:6.2} GB/s", "SHA-256 (sha2, plaintext)");

    let aead = Aes256Gcm::new(&[7u8; 32].into());
    let mut buf = data.clone();
    let gbs = best(rounds, n, || {
        for (i, b) in buf.chunks_mut(64 << 10).enumerate() {
            let mut nonce = [0u8; 12];
            nonce[..8].copy_from_slice(&(i as u64).to_be_bytes());
            black_box(
                aead.encrypt_inout_detached(&nonce.into(), b"aad", b.into())
                    .expect("encrypt"),
            );
        }
    });
    println!(
        "{:<40} {gbs:6.2} GB/s",
        "AES-256-GCM (aes-gcm, 64 KiB blocks)"
    );
    drop(buf);

    let mut sealed = Vec::new();
    let gbs = best(rounds, n, || {
        sealed = alc_seal::seal_bytes(&data, &keys, &opts).expect("seal");
    });
    println!("{:<40} {gbs:6.2} GB/s", "seal_bytes (GCM + SHA-256)");

    let gbs = best(rounds, n, || {
        let p = alc_seal::unseal_bytes("bench", &sealed, &keys).expect("unseal");
        assert_eq!(p.len(), n);
        black_box(p);
    });
    println!("{:<40} {gbs:6.2} GB/s", "unseal_bytes (GCM + SHA-256)");

    let mut chunk = vec![0u8; 1 << 20];
    let gbs = best(rounds, n, || {
        let mut r = SealedReader::from_bytes("bench", &sealed, &keys).expect("open");
        let mut total = 0;
        loop {
            let k = r.read(&mut chunk).expect("read");
            if k == 0 {
                break;
            }
            total += k;
        }
        assert_eq!(total, n);
    });
    println!("{:<40} {gbs:6.2} GB/s", "SealedReader::read, 1 MiB reads");
    let gbs = best(rounds, n, || {
        let mut r = SealedReader::from_bytes("bench", &sealed, &keys)
            .expect("open")
            .with_digest_check(false);
        let mut total = 0;
        loop {
            let k = r.read(&mut chunk).expect("read");
            if k == 0 {
                break;
            }
            total += k;
        }
        assert_eq!(total, n);
    });
    println!("{:<40} {gbs:6.2} GB/s", "  same, no SHA-256 (GCM only)");
    drop(sealed);

    // Files in the page cache.
    let fsize = file_mib << 20;
    let dir = std::env::temp_dir().join(format!("alc-sealbench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let src = dir.join("plain.bin");
    let out = dir.join("plain.bin.ava3");
    let back = dir.join("back.bin");
    std::fs::write(&src, &data[..fsize.min(n)]).expect("write source");
    let fsize = fsize.min(n);
    drop(data);
    let gbs = best(rounds, fsize, || {
        alc_seal::seal_file(&src, &out, &keys, &opts).expect("seal_file");
    });
    println!("{:<40} {gbs:6.2} GB/s", "seal_file (incl. fsync)");
    let gbs = best(rounds, fsize, || {
        alc_seal::verify_sealed(&out, &keys).expect("verify");
    });
    println!("{:<40} {gbs:6.2} GB/s", "verify_sealed");
    let gbs = best(rounds, fsize, || {
        alc_seal::unseal_file(&out, &back, &keys).expect("unseal_file");
    });
    println!("{:<40} {gbs:6.2} GB/s", "unseal_file (incl. fsync)");
    let gbs = best(rounds, fsize, || {
        black_box(alc_seal::open_in_memory(&out, &keys).expect("open_in_memory"));
    });
    println!("{:<40} {gbs:6.2} GB/s", "open_in_memory");
    let gbs = best(rounds, fsize, || {
        let r = SealedReader::open(&out, &keys).expect("open");
        black_box(r.with_digest_check(false).read_to_vec().expect("read"));
    });
    println!("{:<40} {gbs:6.2} GB/s", "  same, no SHA-256 (GCM only)");
    let _ = std::fs::remove_dir_all(&dir);
}
