//! Keys from text, files and the environment; lengths named in errors.

mod common;

use alc_seal::{Key, KeySource, SealError, SealOptions, KEY_ENV, PASSPHRASE_ENV};
use base64::Engine as _;
use common::*;

fn b64(b: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(b)
}

#[test]
fn hex_and_base64_keys() {
    let raw = [0xA5u8; 32];
    let id = Key::from_bytes(&raw).unwrap().id();
    let forms = [
        hex::encode(raw),
        hex::encode(raw).to_uppercase(),
        format!("  {}\n", hex::encode(raw)),
        b64(&raw),
        b64(&raw).trim_end_matches('=').to_string(),
        base64::engine::general_purpose::URL_SAFE.encode(raw),
    ];
    for f in &forms {
        assert_eq!(Key::parse(f, "test").unwrap().id(), id, "{f:?}");
    }
    // Key ids are stable: SHA-256("alc-seal key id v1\0" ‖ key)[..8].
    assert_eq!(
        Key::from_bytes(&[0u8; 32]).unwrap().id().to_string().len(),
        16
    );
    assert_ne!(
        Key::from_bytes(&[0u8; 32]).unwrap().id(),
        Key::from_bytes(&[1u8; 32]).unwrap().id()
    );
    // Debug shows the id, never the key.
    let k = Key::from_bytes(&raw).unwrap();
    let dbg = format!("{k:?}");
    assert!(
        dbg.contains(&id.to_string()) && !dbg.contains("a5a5a5"),
        "{dbg}"
    );
    assert_eq!(Key::parse(&k.to_hex(), "t").unwrap().id(), id);
}

#[test]
fn wrong_lengths_are_named() {
    let cases = [
        (
            hex::encode([1u8; 16]),
            "hex text decodes to 16 bytes; a key must be 32 bytes",
        ),
        (hex::encode([1u8; 33]), "hex text decodes to 33 bytes"),
        (b64(&[1u8; 31]), "base64 text decodes to 31 bytes"),
        (b64(&[1u8; 48]), "base64 text decodes to 48 bytes"),
        ("not a key!".to_string(), "neither hex nor base64"),
        ("".to_string(), "empty"),
    ];
    for (text, want) in cases {
        let e = Key::parse(&text, "ALC_SEAL_KEY").unwrap_err();
        let s = e.to_string();
        assert!(s.starts_with("ALC_SEAL_KEY: "), "{s}");
        assert!(s.contains(want), "{text:?}: {s}");
    }
    let e = Key::from_bytes(&[0u8; 20]).unwrap_err();
    assert!(e.to_string().contains("got 20 bytes"), "{e}");
}

#[test]
fn key_files() {
    let dir = tempfile::tempdir().unwrap();
    // 32 raw bytes (not text).
    let raw: Vec<u8> = (0u8..32).collect();
    let f = dir.path().join("raw.key");
    std::fs::write(&f, &raw).unwrap();
    let ks = KeySource::from_key_file(&f).unwrap();
    assert_eq!(ks.key_ids(), vec![Key::from_bytes(&raw).unwrap().id()]);
    // Raw bytes of the wrong length.
    std::fs::write(&f, &raw[..31]).unwrap();
    let e = KeySource::from_key_file(&f).unwrap_err();
    assert!(
        e.to_string()
            .contains("31 bytes of binary data; a raw key file must be exactly 32 bytes"),
        "{e}"
    );
    std::fs::write(&f, [raw.clone(), vec![0]].concat()).unwrap();
    let e = KeySource::from_key_file(&f).unwrap_err();
    assert!(e.to_string().contains("33 bytes of binary data"), "{e}");
    // Hex text with a comment and two keys: a key ring.
    let t = dir.path().join("ring.key");
    std::fs::write(
        &t,
        format!(
            "# device keys\n{}\n{}\n",
            hex::encode([0x11u8; 32]),
            b64(&[0x22u8; 32])
        ),
    )
    .unwrap();
    let ring = KeySource::from_key_file(&t).unwrap();
    assert_eq!(ring.key_ids(), vec![key_a().id(), key_b().id()]);
    let sealed = alc_seal::seal_bytes(b"abc", &keys_b(), &SealOptions::default()).unwrap();
    assert_eq!(alc_seal::unseal_bytes("x", &sealed, &ring).unwrap(), b"abc");
    // A text file with a short key names the file, the key and the length.
    std::fs::write(&t, format!("{}\n", hex::encode([1u8; 24]))).unwrap();
    let e = KeySource::from_key_file(&t).unwrap_err();
    let s = e.to_string();
    assert!(
        s.contains("ring.key (key 1)") && s.contains("decodes to 24 bytes"),
        "{s}"
    );
    // An empty file, a missing file.
    std::fs::write(&t, "# nothing\n").unwrap();
    let e = KeySource::from_key_file(&t).unwrap_err();
    assert!(e.to_string().contains("holds no key"), "{e}");
    let e = KeySource::from_key_file(&dir.path().join("missing.key")).unwrap_err();
    assert!(matches!(e, SealError::Io { .. }), "{e}");
    assert!(e.to_string().contains("missing.key"), "{e}");
}

/// The only test that touches the process environment.
#[test]
fn keys_from_the_environment() {
    std::env::remove_var(KEY_ENV);
    std::env::remove_var(PASSPHRASE_ENV);
    assert!(KeySource::from_env().unwrap().is_none());

    std::env::set_var(KEY_ENV, hex::encode([0x11u8; 32]));
    let ks = KeySource::from_env().unwrap().unwrap();
    assert_eq!(ks.key_ids(), vec![key_a().id()]);

    std::env::set_var(
        KEY_ENV,
        format!("{},{}", hex::encode([0x11u8; 32]), b64(&[0x22u8; 32])),
    );
    let ks = KeySource::key_from_env().unwrap().unwrap();
    assert_eq!(ks.key_ids(), vec![key_a().id(), key_b().id()]);

    std::env::set_var(KEY_ENV, hex::encode([0x11u8; 16]));
    let e = KeySource::from_env().unwrap_err();
    let s = e.to_string();
    assert!(
        s.starts_with("ALC_SEAL_KEY (key 1): hex text decodes to 16 bytes; a key must be 32 bytes"),
        "{s}"
    );

    std::env::set_var(KEY_ENV, b64(&[7u8; 40]));
    let e = KeySource::from_env().unwrap_err();
    assert!(
        e.to_string().contains("base64 text decodes to 40 bytes"),
        "{e}"
    );

    std::env::remove_var(KEY_ENV);
    std::env::set_var(PASSPHRASE_ENV, "open sesame");
    let ks = KeySource::from_env().unwrap().unwrap();
    assert!(matches!(ks, KeySource::Passphrase(_)));
    assert!(ks.key_ids().is_empty());
    assert!(!format!("{ks:?}").contains("sesame"));
    std::env::set_var(PASSPHRASE_ENV, "");
    assert!(KeySource::passphrase_from_env().unwrap().is_none());
    std::env::remove_var(PASSPHRASE_ENV);
    assert!(KeySource::passphrase("").is_err());
}
