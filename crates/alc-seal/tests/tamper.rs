//! Every kind of damage to a sealed file is detected, with its own message, and no
//! plaintext output remains after a failed unseal.

mod common;

use alc_seal::{KeySource, SealError, SealOptions};
use common::*;

/// A 4.5-block file: blocks 0..=3 full, block 4 half.
fn sealed_a(seed: u64) -> (Vec<u8>, Vec<u8>) {
    let plain = random_bytes(4 * BS + BS / 2, seed);
    let sealed = alc_seal::seal_bytes(&plain, &keys_a(), &SealOptions::default()).unwrap();
    (plain, sealed)
}

#[derive(Debug, PartialEq, Clone, Copy)]
enum Want {
    NotSealed,
    Newer,
    Corrupt,
    Cipher,
    Kdf,
    WrongKey,
    Tampered,
}

fn want_for(off: usize, bit: u32) -> Want {
    match off {
        0..=7 => Want::NotSealed,
        8 if bit == 0 => Want::Corrupt, // version 1 → 0
        8 | 9 => Want::Newer,
        10 | 11 => Want::Corrupt, // header length
        12 => Want::Cipher,
        13 if bit == 0 => Want::Corrupt, // raw → Argon2id with zero parameters
        13 => Want::Kdf,
        14 | 15 => Want::Corrupt, // reserved
        16..=23 => Want::WrongKey,
        24..=27 => Want::Corrupt,        // block size
        28..=55 => Want::Corrupt,        // KDF fields of a raw-key file
        63 if bit >= 4 => Want::Corrupt, // plaintext length ≥ 2^60
        56..=127 => Want::Tampered,
        _ => unreachable!(),
    }
}

fn matches_want(e: &SealError, w: Want) -> bool {
    let s = e.to_string();
    match w {
        Want::NotSealed => {
            matches!(e, SealError::NotSealed { .. }) && s.contains("not a sealed package")
        }
        Want::Newer => {
            matches!(e, SealError::NewerVersion { .. })
                && s.contains("upgrade alc")
                && s.contains("newer than this alc supports (up to 1)")
        }
        Want::Corrupt => {
            matches!(e, SealError::HeaderCorrupt { .. }) && s.contains("corrupt header")
        }
        Want::Cipher => {
            matches!(e, SealError::UnknownCipher { .. }) && s.contains("unknown cipher id")
        }
        Want::Kdf => {
            matches!(e, SealError::UnknownKdf { .. }) && s.contains("unknown key derivation id")
        }
        Want::WrongKey => matches!(e, SealError::WrongKey { .. }) && s.contains("wrong key"),
        Want::Tampered => {
            matches!(e, SealError::HeaderTampered { .. })
                && s.contains("header failed authentication")
        }
    }
}

#[test]
fn every_header_bit_flip_has_its_own_error() {
    let (_, sealed) = sealed_a(1);
    let dir = tempfile::tempdir().unwrap();
    let mut seen = std::collections::BTreeMap::new();
    for off in 0..HDR {
        for bit in 0..8u32 {
            let mut s = sealed.clone();
            s[off] ^= 1 << bit;
            let w = want_for(off, bit);
            let e = mem_err(&s, &keys_a());
            assert!(
                matches_want(&e, w),
                "byte {off} bit {bit}: expected {w:?}, got: {e}"
            );
            assert!(!e.to_string().contains('\n'), "one line: {e}");
            // read_header (no key) already refuses all but the fields only the key
            // can check.
            if !matches!(w, Want::WrongKey | Want::Tampered) {
                let f = dir.path().join("h.ava3");
                std::fs::write(&f, &s).unwrap();
                let e = alc_seal::read_header(&f).unwrap_err();
                assert!(matches_want(&e, w), "read_header byte {off} bit {bit}: {e}");
            }
            seen.entry(format!("{w:?}"))
                .or_insert((off, bit, e.to_string()));
        }
    }
    assert_eq!(seen.len(), 7, "{seen:#?}");
    for (w, (off, bit, msg)) in &seen {
        eprintln!("{w:>9}  e.g. byte {off} bit {bit}: {msg}");
    }
    // One flip per field class through the file entry points too (no output left).
    for (off, bit) in [
        (0, 0),
        (8, 1),
        (10, 0),
        (12, 1),
        (13, 1),
        (16, 0),
        (24, 3),
        (60, 0),
    ] {
        let mut s = sealed.clone();
        s[off] ^= 1 << bit;
        let w = want_for(off, bit);
        check_all_fail(dir.path(), &s, &keys_a(), &|e| matches_want(e, w));
    }
}

#[test]
fn wrong_key_names_the_wanted_key_id() {
    let (_, sealed) = sealed_a(2);
    let want = key_a().id().to_string();
    let have = key_b().id().to_string();
    let dir = tempfile::tempdir().unwrap();
    let e = check_all_fail(dir.path(), &sealed, &keys_b(), &|e| {
        matches!(e, SealError::WrongKey { .. })
    });
    let s = e.to_string();
    assert!(s.contains(&format!("sealed with key id {want}")), "{s}");
    assert!(s.contains(&have), "{s}");
    assert!(!e.is_integrity_failure());
}

#[test]
fn passphrase_mismatches() {
    let plain = random_bytes(5000, 3);
    let opts = SealOptions {
        argon2: alc_seal::Argon2Params {
            m_kib: 64,
            iterations: 1,
            parallelism: 1,
        },
        ..SealOptions::default()
    };
    let pass = KeySource::passphrase("right").unwrap();
    let sealed = alc_seal::seal_bytes(&plain, &pass, &opts).unwrap();
    let e = mem_err(&sealed, &KeySource::passphrase("wrong").unwrap());
    assert!(matches!(e, SealError::WrongPassphrase { .. }), "{e}");
    assert!(e.to_string().contains("wrong passphrase"), "{e}");
    // A raw key for a passphrase file, a passphrase for a raw-key file.
    let e = mem_err(&sealed, &keys_a());
    assert!(matches!(e, SealError::NeedPassphrase { .. }), "{e}");
    assert!(e.to_string().contains("pass --passphrase"), "{e}");
    let (_, raw) = sealed_a(4);
    let e = mem_err(&raw, &pass);
    assert!(matches!(e, SealError::NeedKey { .. }), "{e}");
    // Every bit of the salt and the costs: a wrong derived key, or out-of-range costs.
    for off in 28..56 {
        for bit in 0..8 {
            let mut s = sealed.clone();
            s[off] ^= 1 << bit;
            let e = mem_err(&s, &pass);
            let ok = matches!(
                e,
                SealError::WrongPassphrase { .. } | SealError::HeaderCorrupt { .. }
            );
            assert!(ok, "byte {off} bit {bit}: {e}");
        }
    }
    // Memory cost over the limit is refused before any work.
    let mut s = sealed.clone();
    s[28..32].copy_from_slice(&u32::MAX.to_le_bytes());
    let e = mem_err(&s, &pass);
    assert!(e.to_string().contains("Argon2id memory"), "{e}");
}

#[test]
fn bit_flips_in_every_block_name_the_block() {
    let (_, sealed) = sealed_a(5);
    let dir = tempfile::tempdir().unwrap();
    let blocks = 5;
    for i in 0..blocks {
        let start = block_off(i);
        let ct_len = if i + 1 == blocks { BS / 2 } else { BS };
        let tag = start + ct_len;
        let positions = [
            start,
            start + ct_len / 2,
            start + ct_len - 1,
            tag,
            tag + TAG / 2,
            tag + TAG - 1,
        ];
        for (k, &p) in positions.iter().enumerate() {
            for bit in [0u32, 7] {
                let mut s = sealed.clone();
                s[p] ^= 1 << bit;
                let e = mem_err(&s, &keys_a());
                assert!(
                    matches!(e, SealError::BlockAuth { block, blocks: 5, .. } if block == i as u64),
                    "block {i} pos {p}: {e}"
                );
                assert!(
                    e.to_string()
                        .contains(&format!("block {i} of 5 failed authentication")),
                    "{e}"
                );
                assert!(e.is_integrity_failure());
                if k == 1 && bit == 0 {
                    check_all_fail(
                        dir.path(),
                        &s,
                        &keys_a(),
                        &|e| matches!(e, SealError::BlockAuth { block, .. } if *block == i as u64),
                    );
                }
            }
        }
    }
}

#[test]
fn empty_plaintext_has_one_authenticated_block() {
    let sealed = alc_seal::seal_bytes(b"", &keys_a(), &SealOptions::default()).unwrap();
    assert_eq!(sealed.len(), HDR + TAG);
    for p in HDR..HDR + TAG {
        let mut s = sealed.clone();
        s[p] ^= 1;
        let e = mem_err(&s, &keys_a());
        assert!(
            matches!(
                e,
                SealError::BlockAuth {
                    block: 0,
                    blocks: 1,
                    ..
                }
            ),
            "{e}"
        );
    }
    // Without its tag it is truncated.
    let e = mem_err(&sealed[..HDR], &keys_a());
    assert!(matches!(e, SealError::Truncated { .. }), "{e}");
}

#[test]
fn truncation_anywhere_is_reported_with_counts() {
    let (_, sealed) = sealed_a(6);
    let total = sealed.len();
    let mut cuts = vec![
        0,
        1,
        5,
        7,
        8,
        9,
        10,
        64,
        127,
        128,
        129,
        144,
        total - 1,
        total - 16,
    ];
    for i in 0..5 {
        let o = block_off(i);
        cuts.extend([o - 1, o, o + 1, o + BS / 2, o + BS - 1, o + BS, o + BS + 15]);
    }
    cuts.retain(|&c| c < total);
    cuts.sort();
    cuts.dedup();
    let dir = tempfile::tempdir().unwrap();
    for &c in &cuts {
        let e = mem_err(&sealed[..c], &keys_a());
        if c < HDR {
            assert!(
                matches!(e, SealError::HeaderTruncated { need: 128, got, .. } if got == c as u64),
                "cut {c}: {e}"
            );
            assert!(e.to_string().contains("truncated header"), "{e}");
        } else {
            // Whole blocks that fit in the first c bytes.
            let complete = (0..5)
                .filter(|&i| {
                    let end = if i == 4 {
                        total
                    } else {
                        block_off(i) + BS + TAG
                    };
                    end <= c
                })
                .count() as u64;
            match &e {
                SealError::Truncated {
                    expected_blocks: 5,
                    expected_bytes,
                    got_blocks,
                    got_bytes,
                    ..
                } => {
                    assert_eq!(*expected_bytes, total as u64);
                    assert_eq!(*got_bytes, c as u64);
                    assert_eq!(*got_blocks, complete, "cut {c}");
                }
                _ => panic!("cut {c}: {e}"),
            }
            let s = e.to_string();
            assert!(
                s.contains(&format!(
                    "truncated: expected 5 blocks ({total} bytes), got {complete} complete blocks ({c} bytes)"
                )),
                "{s}"
            );
        }
        assert!(e.is_integrity_failure());
    }
    for c in [64, total / 2, total - 1] {
        check_all_fail(dir.path(), &sealed[..c], &keys_a(), &|e| {
            matches!(
                e,
                SealError::Truncated { .. } | SealError::HeaderTruncated { .. }
            )
        });
    }
}

#[test]
fn extension_is_reported() {
    let (_, sealed) = sealed_a(7);
    let dir = tempfile::tempdir().unwrap();
    for extra in [1usize, 16, BS + TAG] {
        let mut s = sealed.clone();
        s.extend(random_bytes(extra, 99));
        let e = mem_err(&s, &keys_a());
        assert!(matches!(e, SealError::Extended { .. }), "{e}");
        assert!(
            e.to_string().contains(&format!(
                "{extra} bytes of trailing data after the last block"
            )),
            "{e}"
        );
        assert!(e.is_integrity_failure());
    }
    // A copy of the last block appended.
    let mut s = sealed.clone();
    let last = sealed[block_off(4)..].to_vec();
    s.extend(last);
    check_all_fail(dir.path(), &s, &keys_a(), &|e| {
        matches!(e, SealError::Extended { .. })
    });
}

#[test]
fn swapped_blocks_are_caught() {
    let (_, sealed) = sealed_a(8);
    let mut s = sealed.clone();
    let (a, b) = (block_off(1), block_off(2));
    let blk1 = sealed[a..a + BS + TAG].to_vec();
    let blk2 = sealed[b..b + BS + TAG].to_vec();
    s[a..a + BS + TAG].copy_from_slice(&blk2);
    s[b..b + BS + TAG].copy_from_slice(&blk1);
    let e = mem_err(&s, &keys_a());
    assert!(matches!(e, SealError::BlockAuth { block: 1, .. }), "{e}");
    // Moving the short last block forward and cutting: a length mismatch.
    let dir = tempfile::tempdir().unwrap();
    check_all_fail(dir.path(), &s, &keys_a(), &|e| {
        matches!(e, SealError::BlockAuth { block: 1, .. })
    });
    // Dropping a middle block (file shorter by one block): truncated.
    let mut s = sealed[..block_off(2)].to_vec();
    s.extend_from_slice(&sealed[block_off(3)..]);
    let e = mem_err(&s, &keys_a());
    assert!(matches!(e, SealError::Truncated { .. }), "{e}");
}

#[test]
fn blocks_from_another_file_with_the_same_key_are_caught() {
    // The same plaintext sealed twice with the same key: only the file nonce differs.
    let plain = random_bytes(4 * BS + BS / 2, 10);
    let a = alc_seal::seal_bytes(&plain, &keys_a(), &SealOptions::default()).unwrap();
    let b = alc_seal::seal_bytes(&plain, &keys_a(), &SealOptions::default()).unwrap();
    for i in 0..5 {
        let o = block_off(i);
        let end = if i == 4 { a.len() } else { o + BS + TAG };
        let mut s = a.clone();
        s[o..end].copy_from_slice(&b[o..end]);
        let e = mem_err(&s, &keys_a());
        assert!(
            matches!(e, SealError::BlockAuth { block, .. } if block == i as u64),
            "block {i}: {e}"
        );
    }
    // The other file's (authentic) header on this file's blocks: block 0 fails.
    let mut s = a.clone();
    s[..HDR].copy_from_slice(&b[..HDR]);
    let e = mem_err(&s, &keys_a());
    assert!(matches!(e, SealError::BlockAuth { block: 0, .. }), "{e}");
    // This file's file nonce replaced by the other's: the header fails.
    let mut s = a.clone();
    s[64..80].copy_from_slice(&b[64..80]);
    let dir = tempfile::tempdir().unwrap();
    let e = check_all_fail(dir.path(), &s, &keys_a(), &|e| {
        matches!(e, SealError::HeaderTampered { .. })
    });
    assert!(e.is_integrity_failure());
}

#[test]
fn newer_version_asks_to_upgrade() {
    let (_, sealed) = sealed_a(11);
    let mut s = sealed.clone();
    s[8..10].copy_from_slice(&2u16.to_le_bytes());
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("v2.ava3");
    std::fs::write(&f, &s).unwrap();
    let e = alc_seal::read_header(&f).unwrap_err();
    assert_eq!(
        e.to_string(),
        format!(
            "{}: sealed format version 2 is newer than this alc supports (up to 1); upgrade alc",
            f.display()
        )
    );
    assert!(!e.is_integrity_failure());
    check_all_fail(dir.path(), &s, &keys_a(), &|e| {
        matches!(e, SealError::NewerVersion { version: 2, .. })
    });
}

#[test]
fn not_a_sealed_file() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("model.gguf");
    std::fs::write(&f, b"GGUF\x03\0\0\0rest of a model").unwrap();
    let e = alc_seal::read_header(&f).unwrap_err();
    assert!(matches!(e, SealError::NotSealed { .. }), "{e}");
    assert!(
        e.to_string().contains("starts with bytes 4747554603000000"),
        "{e}"
    );
    std::fs::write(&f, b"{\"json\": true}").unwrap();
    let e = alc_seal::read_header(&f).unwrap_err();
    assert!(
        e.to_string().contains("starts with \"{\\\"json\\\":\""),
        "{e}"
    );
    assert!(e.to_string().contains("seal it with `alc seal`"), "{e}");
    assert!(!alc_seal::is_sealed(&f));
    assert!(!alc_seal::is_sealed(&dir.path().join("missing")));
    let e = alc_seal::read_header(&dir.path().join("missing")).unwrap_err();
    assert!(matches!(e, SealError::Io { .. }), "{e}");
}

#[test]
fn damaged_block_through_read_is_invalid_data() {
    use std::io::{Read, Seek, SeekFrom};
    let (plain, mut sealed) = sealed_a(12);
    sealed[block_off(2) + 5] ^= 1;
    let mut r = alc_seal::SealedReader::from_bytes("x", &sealed, &keys_a()).unwrap();
    // Blocks before the damaged one read fine.
    let mut buf = vec![0u8; 2 * BS];
    r.read_exact(&mut buf).unwrap();
    assert_eq!(buf, plain[..2 * BS]);
    let e = r.read(&mut buf).unwrap_err();
    assert_eq!(e.kind(), std::io::ErrorKind::InvalidData);
    assert!(
        e.to_string().contains("block 2 of 5 failed authentication"),
        "{e}"
    );
    // And again (no cached plaintext of the bad block).
    assert!(r.read(&mut buf).is_err());
    // Past it, reading works (each block stands on its own).
    r.seek(SeekFrom::Start(3 * BS as u64)).unwrap();
    r.read_exact(&mut buf[..BS]).unwrap();
    assert_eq!(buf[..BS], plain[3 * BS..4 * BS]);
}
