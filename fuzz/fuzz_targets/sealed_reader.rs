//! Fuzz the sealed-package reader (`alc_seal`: header parser, `SealedReader` over a
//! byte slice, `unseal_bytes`) with a fixed key ring.
//!
//! The first byte picks the mode:
//! - even: the rest is a sealed file. `Ok` or `Err` are both fine; a panic, a huge
//!   allocation or a hang is a bug. When it opens, `read_to_vec`, reading through
//!   `Read` at seeks chosen from the input, and `verify` must agree.
//! - odd: the rest (after two bytes of position) is a plaintext. It is sealed with the
//!   fixed key (4 KiB blocks, so a few hundred bytes span several blocks), must unseal
//!   to itself, and then one byte changed (xor with the first byte) or a cut at the
//!   position must make every reader refuse it: no change to a sealed file may pass.

#![no_main]

use alc_seal::{Header, Key, KeySource, SealOptions, SealedReader};
use libfuzzer_sys::fuzz_target;
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

#[path = "common/verbose.rs"]
mod verbose;
use verbose::say;

fn keys() -> KeySource {
    KeySource::Keys(vec![
        Key::from_bytes(&[0x11; 32]).expect("32 bytes"),
        Key::from_bytes(&[0x22; 32]).expect("32 bytes"),
    ])
}

fn parse_sealed(data: &[u8], keys: &KeySource) {
    let header = Header::parse(Path::new("fuzz.ava3"), data);
    let r = match SealedReader::from_bytes("fuzz.ava3", data, keys) {
        Ok(r) => r,
        Err(e) => return say!("refused: {e}"),
    };
    let h = header.expect("a file that opens has a parseable header");
    assert_eq!(&h, r.header());
    assert_eq!(h.sealed_len(), data.len() as u64);
    say!("opened: {} bytes in {} blocks", h.plaintext_len, h.blocks());
    let whole = r.read_to_vec();
    let mut r = SealedReader::from_bytes("fuzz.ava3", data, keys).expect("opened once");
    if let Ok(plain) = &whole {
        assert_eq!(plain.len() as u64, h.plaintext_len);
        // Reads at a few positions agree with the whole.
        for k in 0..4u64 {
            let pos = (h.plaintext_len * k) / 4;
            r.seek(SeekFrom::Start(pos)).expect("seek");
            let mut buf = vec![0u8; 5000];
            let n = r.read(&mut buf).expect("read of an authentic file");
            assert_eq!(&buf[..n], &plain[pos as usize..pos as usize + n]);
        }
    }
    let r = SealedReader::from_bytes("fuzz.ava3", data, keys).expect("opened once");
    let verified = r.verify(&mut |_, _| {});
    assert_eq!(
        verified.is_ok(),
        whole.is_ok(),
        "verify and read_to_vec disagree"
    );
}

fn seal_and_mutate(mode: u8, pos: usize, plain: &[u8], keys: &KeySource) {
    let opts = SealOptions {
        block_size: 4096,
        ..SealOptions::default()
    };
    let sealed = alc_seal::seal_bytes(plain, keys, &opts).expect("sealing in memory");
    let back = alc_seal::unseal_bytes("fuzz.ava3", &sealed, keys).expect("own seal opens");
    assert_eq!(back, plain);
    let mut bad = sealed.clone();
    let at = pos % sealed.len();
    if mode & 2 == 0 {
        bad[at] ^= mode; // mode is odd, so the byte changes
    } else {
        bad.truncate(at);
    }
    assert!(
        alc_seal::unseal_bytes("fuzz.ava3", &bad, keys).is_err(),
        "a changed sealed file was accepted (mode {mode:#x}, at {at})"
    );
    if let Ok(r) = SealedReader::from_bytes("fuzz.ava3", &bad, keys) {
        assert!(
            r.verify(&mut |_, _| {}).is_err(),
            "verify accepted a change"
        );
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let keys = keys();
    if mode & 1 == 0 {
        parse_sealed(rest, &keys);
    } else if rest.len() >= 2 {
        let pos = usize::from(u16::from_le_bytes([rest[0], rest[1]]));
        seal_and_mutate(mode, pos, &rest[2..], &keys);
    }
});
