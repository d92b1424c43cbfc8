//! Helpers shared by the alc-seal test files.
#![allow(dead_code)]

use alc_seal::{Key, KeySource, SealError, SealedReader};
use rand::{rngs::SmallRng, RngCore, SeedableRng};
use std::io::Read;
use std::path::{Path, PathBuf};

pub const BS: usize = 64 * 1024;
pub const TAG: usize = 16;
pub const HDR: usize = 128;

pub fn key_a() -> Key {
    Key::from_bytes(&[0x11; 32]).unwrap()
}

pub fn key_b() -> Key {
    Key::from_bytes(&[0x22; 32]).unwrap()
}

pub fn keys_a() -> KeySource {
    KeySource::key(key_a())
}

pub fn keys_b() -> KeySource {
    KeySource::key(key_b())
}

pub fn random_bytes(n: usize, seed: u64) -> Vec<u8> {
    let mut v = vec![0u8; n];
    SmallRng::seed_from_u64(seed).fill_bytes(&mut v);
    v
}

/// Offset of block `i` in a sealed file with 64 KiB blocks.
pub fn block_off(i: usize) -> usize {
    HDR + i * (BS + TAG)
}

/// The error of unsealing `sealed` in memory (panics if it succeeds).
pub fn mem_err(sealed: &[u8], keys: &KeySource) -> SealError {
    match alc_seal::unseal_bytes("t.ava3", sealed, keys) {
        Ok(_) => panic!("unsealing succeeded but should have failed"),
        Err(e) => e,
    }
}

/// Files in `dir`, sorted.
pub fn listing(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    v.sort();
    v
}

/// Writes `sealed` to a file and checks that every file entry point fails with an
/// error that `expect` accepts: `unseal_file` (over an existing output, which must stay
/// untouched, with no temporary file left), `unseal_file` to a new path (which must not
/// appear), `verify_sealed`, `open_in_memory`, and reading all through `SealedReader`.
/// Returns the `unseal_file` error.
pub fn check_all_fail(
    dir: &Path,
    sealed: &[u8],
    keys: &KeySource,
    expect: &dyn Fn(&SealError) -> bool,
) -> SealError {
    let sub = tempfile::tempdir_in(dir).unwrap();
    let d = sub.path();
    let src = d.join("in.ava3");
    std::fs::write(&src, sealed).unwrap();
    let existing = d.join("existing.bin");
    std::fs::write(&existing, b"precious").unwrap();
    let fresh = d.join("fresh.bin");

    let e1 = alc_seal::unseal_file(&src, &existing, keys).expect_err("unseal over existing");
    assert!(expect(&e1), "unseal_file: unexpected error: {e1}");
    assert_eq!(std::fs::read(&existing).unwrap(), b"precious");
    let e2 = alc_seal::unseal_file(&src, &fresh, keys).expect_err("unseal to new");
    assert!(expect(&e2), "unseal_file (new): unexpected error: {e2}");
    assert!(!fresh.exists(), "a failed unseal left {}", fresh.display());
    assert_eq!(
        listing(d),
        vec![existing.clone(), src.clone()],
        "a failed unseal left a temporary file"
    );
    let e3 = alc_seal::verify_sealed(&src, keys).expect_err("verify");
    assert!(expect(&e3), "verify_sealed: unexpected error: {e3}");
    let e4 = alc_seal::open_in_memory(&src, keys).expect_err("open_in_memory");
    assert!(expect(&e4), "open_in_memory: unexpected error: {e4}");
    let e5 = match SealedReader::open(&src, keys) {
        Err(e) => e,
        Ok(mut r) => {
            let mut v = Vec::new();
            let io = r
                .read_to_end(&mut v)
                .expect_err("SealedReader::read_to_end");
            *io.into_inner()
                .expect("an io::Error wrapping a SealError")
                .downcast::<SealError>()
                .expect("a SealError")
        }
    };
    assert!(expect(&e5), "SealedReader: unexpected error: {e5}");
    e1
}
