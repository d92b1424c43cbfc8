//! Sealing and unsealing give the plaintext back, through every entry point.

mod common;

use alc_seal::{
    Argon2Params, Cipher, Kdf, KeySource, SealOptions, SealedReader, DEFAULT_BLOCK_SIZE,
    FORMAT_VERSION,
};
use common::*;
use proptest::prelude::*;
use sha2::{Digest, Sha256};
use std::io::{Read, Seek, SeekFrom};

fn round_trip_file(plain: &[u8]) {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("model.bin");
    std::fs::write(&src, plain).unwrap();
    let out = dir.path().join("model.bin.ava3");
    let keys = keys_a();
    let mut last = (0, 0);
    let rep = alc_seal::seal_file_with(&src, &out, &keys, &SealOptions::default(), &mut |d, t| {
        last = (d, t)
    })
    .unwrap();
    let n = plain.len() as u64;
    assert_eq!(last, (n, n), "progress ends at the total");
    let blocks = (plain.len().div_ceil(BS)).max(1) as u64;
    assert_eq!(rep.plaintext_len, n);
    assert_eq!(rep.blocks, blocks);
    assert_eq!(
        rep.sealed_len,
        (HDR + plain.len() + TAG * blocks as usize) as u64
    );
    assert_eq!(std::fs::metadata(&out).unwrap().len(), rep.sealed_len);
    assert_eq!(rep.key_id, key_a().id());
    let digest: [u8; 32] = Sha256::digest(plain).into();
    assert_eq!(rep.plaintext_sha256, digest);

    // Header without a key.
    let h = alc_seal::read_header(&out).unwrap();
    assert_eq!(h.version, FORMAT_VERSION);
    assert_eq!(h.cipher, Cipher::Aes256Gcm);
    assert_eq!(h.kdf, Kdf::Raw);
    assert_eq!(h.key_id, key_a().id());
    assert_eq!(h.block_size, DEFAULT_BLOCK_SIZE);
    assert_eq!(h.plaintext_len, n);
    assert_eq!(h.blocks(), blocks);
    assert!(alc_seal::is_sealed(&out));
    assert!(!alc_seal::is_sealed(&src) || plain.starts_with(b"AVA3SEAL"));

    // Verify, unseal to a file, in memory, through the reader.
    let info = alc_seal::verify_sealed(&out, &keys).unwrap();
    assert_eq!(info.plaintext_sha256, digest);
    assert_eq!(info.sealed_len, rep.sealed_len);
    assert_eq!(info.header, h);
    let back = dir.path().join("back.bin");
    let info2 = alc_seal::unseal_file(&out, &back, &keys).unwrap();
    assert_eq!(info2, info);
    assert_eq!(std::fs::read(&back).unwrap(), plain);
    assert_eq!(alc_seal::open_in_memory(&out, &keys).unwrap(), plain);
    let sealed = std::fs::read(&out).unwrap();
    assert_eq!(alc_seal::unseal_bytes("x", &sealed, &keys).unwrap(), plain);
    let mut r = SealedReader::open(&out, &keys).unwrap();
    assert_eq!(r.len(), n);
    assert_eq!(r.plaintext_sha256(), digest);
    let mut v = Vec::new();
    r.read_to_end(&mut v).unwrap();
    assert_eq!(v, plain);
    // No temporary files left behind.
    assert_eq!(listing(dir.path()), vec![back, src, out]);
}

#[test]
fn sizes_round_trip() {
    for (i, n) in [0usize, 1, 65535, 65536, 65537, 3 * 1024 * 1024 + 12345]
        .into_iter()
        .enumerate()
    {
        round_trip_file(&random_bytes(n, i as u64));
    }
}

#[test]
fn seal_bytes_matches_seal_file_layout() {
    let plain = random_bytes(200_000, 9);
    let sealed = alc_seal::seal_bytes(&plain, &keys_a(), &SealOptions::default()).unwrap();
    assert_eq!(sealed.len(), HDR + plain.len() + 4 * TAG);
    assert_eq!(&sealed[..8], b"AVA3SEAL");
    assert_eq!(
        alc_seal::unseal_bytes("x", &sealed, &keys_a()).unwrap(),
        plain
    );
    // Two seals of the same data differ (random file nonce) and both open.
    let again = alc_seal::seal_bytes(&plain, &keys_a(), &SealOptions::default()).unwrap();
    assert_ne!(sealed, again);
    assert_eq!(
        alc_seal::unseal_bytes("x", &again, &keys_a()).unwrap(),
        plain
    );
    // The plaintext does not appear in the sealed bytes.
    assert!(!sealed.windows(32).any(|w| w == &plain[1000..1032]));
}

#[test]
fn reader_seeks_and_reads_anywhere() {
    let plain = random_bytes(5 * BS + 777, 3);
    let sealed = alc_seal::seal_bytes(&plain, &keys_a(), &SealOptions::default()).unwrap();
    let mut r = SealedReader::from_bytes("x", &sealed, &keys_a()).unwrap();
    let mut rng_pos = 12345u64;
    for _ in 0..300 {
        rng_pos = rng_pos
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let pos = (rng_pos >> 20) % (plain.len() as u64 + 10);
        let len = ((rng_pos >> 8) % 200_000) as usize;
        assert_eq!(r.seek(SeekFrom::Start(pos)).unwrap(), pos);
        let mut buf = vec![0u8; len];
        let mut got = 0;
        loop {
            let k = r.read(&mut buf[got..]).unwrap();
            if k == 0 {
                break;
            }
            got += k;
        }
        let p = (pos as usize).min(plain.len());
        let want = &plain[p..(p + len).min(plain.len())];
        assert_eq!(&buf[..got], want, "at {pos} len {len}");
    }
    assert_eq!(r.seek(SeekFrom::End(-10)).unwrap(), plain.len() as u64 - 10);
    assert_eq!(
        r.seek(SeekFrom::Current(4)).unwrap(),
        plain.len() as u64 - 6
    );
    assert!(r.seek(SeekFrom::Current(-(plain.len() as i64))).is_err());
    // Blocks one by one.
    for i in 0..r.header().blocks() {
        let s = (i as usize) * BS;
        let b = r.read_block(i).unwrap().to_vec();
        assert_eq!(b, plain[s..(s + BS).min(plain.len())]);
    }
    assert!(r.read_block(99).is_err());
    // The digest-free mode reads the same bytes.
    let v = SealedReader::from_bytes("x", &sealed, &keys_a())
        .unwrap()
        .with_digest_check(false)
        .read_to_vec()
        .unwrap();
    assert_eq!(v, plain);
}

#[test]
fn small_and_large_block_sizes() {
    for bs in [4096u32, 1 << 20] {
        let plain = random_bytes(3 * bs as usize + 5, u64::from(bs));
        let opts = SealOptions {
            block_size: bs,
            ..SealOptions::default()
        };
        let sealed = alc_seal::seal_bytes(&plain, &keys_a(), &opts).unwrap();
        assert_eq!(sealed.len(), HDR + plain.len() + 4 * TAG);
        assert_eq!(
            alc_seal::unseal_bytes("x", &sealed, &keys_a()).unwrap(),
            plain
        );
    }
    for bad in [0u32, 1000, 2048, 65535, 32 << 20] {
        let opts = SealOptions {
            block_size: bad,
            ..SealOptions::default()
        };
        let e = alc_seal::seal_bytes(b"x", &keys_a(), &opts).unwrap_err();
        assert!(e.to_string().contains(&format!("block size {bad}")), "{e}");
    }
}

/// Small Argon2id costs so the tests stay fast (the default is 64 MiB, 3 passes).
pub fn quick_argon() -> SealOptions {
    SealOptions {
        argon2: Argon2Params {
            m_kib: 256,
            iterations: 1,
            parallelism: 1,
        },
        ..SealOptions::default()
    }
}

#[test]
fn passphrase_round_trip() {
    let plain = random_bytes(100_000, 5);
    let pass = KeySource::passphrase("correct horse battery staple").unwrap();
    let sealed = alc_seal::seal_bytes(&plain, &pass, &quick_argon()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("p.ava3");
    std::fs::write(&f, &sealed).unwrap();
    let h = alc_seal::read_header(&f).unwrap();
    match h.kdf {
        Kdf::Argon2id { params, salt } => {
            assert_eq!(params, quick_argon().argon2);
            assert_ne!(salt, [0; 16]);
        }
        Kdf::Raw => panic!("expected Argon2id"),
    }
    assert_eq!(alc_seal::unseal_bytes("p", &sealed, &pass).unwrap(), plain);
    // The derived key works as a raw key too (same id).
    let Kdf::Argon2id { params, salt } = h.kdf else {
        unreachable!()
    };
    let derived =
        alc_seal::Key::from_passphrase(b"correct horse battery staple", &salt, &params).unwrap();
    assert_eq!(derived.id(), h.key_id);
    assert_eq!(
        alc_seal::unseal_bytes("p", &sealed, &KeySource::key(derived)).unwrap(),
        plain
    );
}

#[test]
fn default_argon2_costs_work() {
    let pass = KeySource::passphrase("pw").unwrap();
    let t = std::time::Instant::now();
    let sealed = alc_seal::seal_bytes(b"hello", &pass, &SealOptions::default()).unwrap();
    eprintln!("Argon2id 64 MiB, t=3: {:.2} s", t.elapsed().as_secs_f64());
    assert_eq!(
        alc_seal::unseal_bytes("p", &sealed, &pass).unwrap(),
        b"hello"
    );
}

#[test]
fn key_ring_picks_the_key_by_id() {
    let plain = random_bytes(1000, 1);
    let sealed_b = alc_seal::seal_bytes(&plain, &keys_b(), &SealOptions::default()).unwrap();
    let ring = KeySource::Keys(vec![key_a(), key_b()]);
    assert_eq!(
        alc_seal::unseal_bytes("x", &sealed_b, &ring).unwrap(),
        plain
    );
    // Sealing with a ring uses its first key.
    let sealed_ring = alc_seal::seal_bytes(&plain, &ring, &SealOptions::default()).unwrap();
    assert_eq!(
        alc_seal::unseal_bytes("x", &sealed_ring, &keys_a()).unwrap(),
        plain
    );
}

#[test]
fn batch_seals_every_file_of_a_directory() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("models");
    std::fs::create_dir(&src).unwrap();
    let files = [("a.gguf", 0usize), ("b.bin", 70_000), ("c", 1)];
    for (i, (name, n)) in files.iter().enumerate() {
        std::fs::write(src.join(name), random_bytes(*n, i as u64)).unwrap();
    }
    std::fs::create_dir(src.join("sub")).unwrap();
    std::fs::write(src.join(".hidden"), b"x").unwrap();
    std::fs::write(src.join("old.ava3"), b"x").unwrap();
    let out = dir.path().join("encoded");
    let mut seen = Vec::new();
    let rep = alc_seal::seal_dir(
        &src,
        &out,
        &keys_a(),
        &SealOptions::default(),
        &mut |p, d, t| {
            if d == t {
                seen.push(p.file_name().unwrap().to_string_lossy().into_owned());
            }
        },
    )
    .unwrap();
    assert_eq!(seen, ["a.gguf", "b.bin", "c"]);
    assert_eq!(rep.sealed.len(), 3);
    let skipped: Vec<String> = rep
        .skipped
        .iter()
        .map(|(p, _)| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(skipped, [".hidden", "old.ava3", "sub"]);
    for (i, (name, n)) in files.iter().enumerate() {
        let sealed = out.join(format!("{name}.ava3"));
        let plain = alc_seal::open_in_memory(&sealed, &keys_a()).unwrap();
        assert_eq!(plain, random_bytes(*n, i as u64));
    }
    assert_eq!(listing(&out).len(), 3);
    // The output directory may not be the input directory.
    let e = alc_seal::seal_dir(
        &src,
        &src,
        &keys_a(),
        &SealOptions::default(),
        &mut |_, _, _| {},
    )
    .unwrap_err();
    assert!(e.to_string().contains("is the input directory"), "{e}");
    // A file is not a directory.
    let e = alc_seal::seal_dir(
        &src.join("c"),
        &out,
        &keys_a(),
        &SealOptions::default(),
        &mut |_, _, _| {},
    )
    .unwrap_err();
    assert!(e.to_string().contains("not a directory"), "{e}");
}

#[test]
fn real_model_round_trip() {
    let Some(model) = alc_testdata::model("smollm2-135m-instruct-q4_1.gguf") else {
        return;
    };
    let plain = std::fs::read(&model).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("smollm2.gguf.ava3");
    let rep = alc_seal::seal_file(&model, &out, &keys_a(), &SealOptions::default()).unwrap();
    assert_eq!(rep.plaintext_len, plain.len() as u64);
    let digest: [u8; 32] = Sha256::digest(&plain).into();
    assert_eq!(rep.plaintext_sha256, digest);
    let info = alc_seal::verify_sealed(&out, &keys_a()).unwrap();
    assert_eq!(info.plaintext_sha256, digest);
    // The engine's path: plaintext only in memory, parsed as GGUF.
    let mem = alc_seal::open_in_memory(&out, &keys_a()).unwrap();
    assert!(mem == plain, "plaintext differs");
    let from_sealed = alc_format::GgufFile::from_bytes("smollm2.gguf.ava3", mem).unwrap();
    let direct = alc_format::GgufFile::open(&model).unwrap();
    assert_eq!(from_sealed.tensors().len(), direct.tensors().len());
    assert!(!from_sealed.tensors().is_empty());
    // A flipped bit in the middle of the model is found.
    let mut sealed = std::fs::read(&out).unwrap();
    let mid = sealed.len() / 2;
    sealed[mid] ^= 0x40;
    let e = mem_err(&sealed, &keys_a());
    assert!(matches!(e, alc_seal::SealError::BlockAuth { .. }), "{e}");
}

#[test]
fn seal_refuses_bad_sources_and_keeps_existing_output() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.ava3");
    std::fs::write(&out, b"precious").unwrap();
    let missing = dir.path().join("missing.bin");
    let e = alc_seal::seal_file(&missing, &out, &keys_a(), &SealOptions::default()).unwrap_err();
    assert!(e.to_string().contains("missing.bin"), "{e}");
    let e = alc_seal::seal_file(dir.path(), &out, &keys_a(), &SealOptions::default()).unwrap_err();
    assert!(e.to_string().contains("not a regular file"), "{e}");
    let e = alc_seal::seal_file(&out, &out, &keys_a(), &SealOptions::default()).unwrap_err();
    assert!(e.to_string().contains("is the input file"), "{e}");
    assert_eq!(std::fs::read(&out).unwrap(), b"precious");
    assert_eq!(listing(dir.path()), vec![out.clone()]);
    // A successful seal replaces it.
    let src = dir.path().join("src.bin");
    std::fs::write(&src, b"data").unwrap();
    alc_seal::seal_file(&src, &out, &keys_a(), &SealOptions::default()).unwrap();
    assert_eq!(alc_seal::open_in_memory(&out, &keys_a()).unwrap(), b"data");
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    /// Any size and content round-trips, and any single changed byte of the sealed
    /// file is refused.
    #[test]
    fn any_content_round_trips_and_any_change_is_caught(
        len in 0usize..40_000,
        seed in any::<u64>(),
        flip_at in any::<prop::sample::Index>(),
        flip in 1u8..=255,
    ) {
        let plain = random_bytes(len, seed);
        let opts = SealOptions { block_size: 4096, ..SealOptions::default() };
        let mut sealed = alc_seal::seal_bytes(&plain, &keys_a(), &opts).unwrap();
        prop_assert_eq!(sealed.len(), HDR + len + TAG * len.div_ceil(4096).max(1));
        prop_assert_eq!(alc_seal::unseal_bytes("p", &sealed, &keys_a()).unwrap(), plain);
        let i = flip_at.index(sealed.len());
        sealed[i] ^= flip;
        prop_assert!(alc_seal::unseal_bytes("p", &sealed, &keys_a()).is_err());
    }
}

/// A file sealed by an earlier implementation (the one that hashed and encrypted
/// block by block on one thread) still opens, through every entry point: the format
/// did not change. Key: 32 bytes of 0x5a; block size 4096; plaintext
/// `(i * 31 % 251) as u8` for i in 0..10000.
#[test]
fn file_sealed_by_an_earlier_version_opens() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/v1-4k.ava3");
    let keys = KeySource::key(alc_seal::Key::from_bytes(&[0x5a; 32]).unwrap());
    let plain: Vec<u8> = (0..10_000u32).map(|i| (i * 31 % 251) as u8).collect();
    let sha: [u8; 32] = Sha256::digest(&plain).into();
    assert_eq!(
        hex::encode(sha),
        "358b97b49110d556c95a92a50bd6a85d6087e894dbf60989b9bc89983288b251"
    );
    let info = alc_seal::verify_sealed(&path, &keys).unwrap();
    assert_eq!(info.plaintext_sha256, sha);
    assert_eq!(info.header.block_size, 4096);
    assert_eq!(info.header.plaintext_len, 10_000);
    assert_eq!(alc_seal::open_in_memory(&path, &keys).unwrap(), plain);
    let sealed = std::fs::read(&path).unwrap();
    assert_eq!(alc_seal::unseal_bytes("v1", &sealed, &keys).unwrap(), plain);
    let mut r = SealedReader::open(&path, &keys).unwrap();
    let mut v = Vec::new();
    r.read_to_end(&mut v).unwrap();
    assert_eq!(v, plain);
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("v1.bin");
    alc_seal::unseal_file(&path, &out, &keys).unwrap();
    assert_eq!(std::fs::read(&out).unwrap(), plain);
}
