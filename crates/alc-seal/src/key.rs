//! Keys, key ids and where keys come from (docs/SEALED.md, "Keys").

use crate::header::{Header, Kdf};
use crate::{Result, SealError};
use base64::Engine as _;
use sha2::{Digest, Sha256};
use std::fmt;
use std::path::Path;
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

/// Length of a key in bytes.
pub const KEY_LEN: usize = 32;
/// Environment variable holding a key (hex or base64 of 32 bytes), or several keys
/// separated by commas or white space (a key ring).
pub const KEY_ENV: &str = "ALC_SEAL_KEY";
/// Environment variable holding a passphrase.
pub const PASSPHRASE_ENV: &str = "ALC_SEAL_PASSPHRASE";

/// Domain separation of the key id hash.
const KEY_ID_CONTEXT: &[u8] = b"alc-seal key id v1\0";

/// The public 8-byte id of a key: the first 8 bytes of
/// SHA-256("alc-seal key id v1\0" ‖ key). Not secret; shown as 16 hex digits.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct KeyId(pub [u8; 8]);

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl fmt::Debug for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyId({self})")
    }
}

/// Argon2id cost parameters (RFC 9106 names: m, t, p).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Argon2Params {
    /// Memory in KiB.
    pub m_kib: u32,
    /// Passes over the memory.
    pub iterations: u32,
    /// Lanes.
    pub parallelism: u32,
}

impl Argon2Params {
    /// The default for sealing: 64 MiB, 3 passes, 1 lane (about 0.2 s on one core).
    pub const DEFAULT: Argon2Params = Argon2Params {
        m_kib: 64 * 1024,
        iterations: 3,
        parallelism: 1,
    };
    pub(crate) const ZERO: Argon2Params = Argon2Params {
        m_kib: 0,
        iterations: 0,
        parallelism: 0,
    };
    /// Largest memory accepted (2 GiB), so a corrupt header cannot ask for more.
    pub const MAX_M_KIB: u32 = 2 * 1024 * 1024;
    /// Most passes accepted.
    pub const MAX_ITERATIONS: u32 = 32;
    /// Most lanes accepted.
    pub const MAX_PARALLELISM: u32 = 16;

    /// Checks the bounds (also applied to headers being read).
    pub fn check(&self) -> std::result::Result<(), String> {
        let p = self.parallelism;
        if !(1..=Self::MAX_PARALLELISM).contains(&p) {
            return Err(format!(
                "Argon2id parallelism {p} is outside 1..={}",
                Self::MAX_PARALLELISM
            ));
        }
        if !(1..=Self::MAX_ITERATIONS).contains(&self.iterations) {
            return Err(format!(
                "Argon2id iterations {} is outside 1..={}",
                self.iterations,
                Self::MAX_ITERATIONS
            ));
        }
        let min_m = 8 * p;
        if !(min_m..=Self::MAX_M_KIB).contains(&self.m_kib) {
            return Err(format!(
                "Argon2id memory {} KiB is outside {min_m}..={} KiB",
                self.m_kib,
                Self::MAX_M_KIB
            ));
        }
        Ok(())
    }
}

impl Default for Argon2Params {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// A 32-byte master key, zeroised on drop. `Debug` shows only its id.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct Key {
    bytes: [u8; KEY_LEN],
}

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Key(id {})", self.id())
    }
}

fn bad_key(what: &str, detail: impl Into<String>) -> SealError {
    SealError::BadKey {
        what: what.to_string(),
        detail: detail.into(),
    }
}

impl Key {
    /// A key from exactly 32 bytes.
    pub fn from_bytes(bytes: &[u8]) -> Result<Key> {
        Self::from_bytes_named(bytes, "key")
    }

    fn from_bytes_named(bytes: &[u8], what: &str) -> Result<Key> {
        if bytes.len() != KEY_LEN {
            return Err(bad_key(
                what,
                format!("a key must be {KEY_LEN} bytes, got {} bytes", bytes.len()),
            ));
        }
        let mut k = Key {
            bytes: [0; KEY_LEN],
        };
        k.bytes.copy_from_slice(bytes);
        Ok(k)
    }

    /// A key from text: 64 hex digits, or base64 (standard or URL-safe alphabet,
    /// padding optional) of 32 bytes. Text made only of hex digits is read as hex.
    /// `what` names the source in errors (e.g. "ALC_SEAL_KEY").
    pub fn parse(text: &str, what: &str) -> Result<Key> {
        let t = text.trim();
        if t.is_empty() {
            return Err(bad_key(what, "empty; expected hex or base64 of 32 bytes"));
        }
        let all_hex = t.bytes().all(|c| c.is_ascii_hexdigit());
        if all_hex && t.len() & 1 == 1 {
            return Err(bad_key(
                what,
                format!(
                    "{} hex digits (an odd number); a key is 64 hex digits (32 bytes)",
                    t.len()
                ),
            ));
        }
        let bytes: Zeroizing<Vec<u8>> = if all_hex {
            Zeroizing::new(hex::decode(t).map_err(|e| bad_key(what, format!("bad hex: {e}")))?)
        } else {
            let engines = [
                &base64::engine::general_purpose::STANDARD,
                &base64::engine::general_purpose::STANDARD_NO_PAD,
                &base64::engine::general_purpose::URL_SAFE,
                &base64::engine::general_purpose::URL_SAFE_NO_PAD,
            ];
            match engines.iter().find_map(|e| e.decode(t).ok()) {
                Some(b) => Zeroizing::new(b),
                None => {
                    return Err(bad_key(
                        what,
                        format!(
                            "{} characters that are neither hex nor base64; a key is 64 hex \
                             digits or 44 base64 characters (32 bytes)",
                            t.chars().count()
                        ),
                    ))
                }
            }
        };
        if bytes.len() != KEY_LEN {
            let form = if all_hex { "hex" } else { "base64" };
            return Err(bad_key(
                what,
                format!(
                    "{form} text decodes to {} bytes; a key must be {KEY_LEN} bytes \
                     (64 hex digits or 44 base64 characters)",
                    bytes.len()
                ),
            ));
        }
        Self::from_bytes_named(&bytes, what)
    }

    /// A new random key from the operating system's generator.
    pub fn generate() -> Result<Key> {
        let mut k = Key {
            bytes: [0; KEY_LEN],
        };
        getrandom::getrandom(&mut k.bytes).map_err(|e| SealError::Random(e.to_string()))?;
        Ok(k)
    }

    /// Argon2id(passphrase, salt) with the given costs.
    pub fn from_passphrase(
        passphrase: &[u8],
        salt: &[u8; 16],
        params: &Argon2Params,
    ) -> Result<Key> {
        params.check().map_err(|e| bad_key("passphrase", e))?;
        let p = argon2::Params::new(
            params.m_kib,
            params.iterations,
            params.parallelism,
            Some(KEY_LEN),
        )
        .map_err(|e| bad_key("passphrase", format!("Argon2id parameters: {e}")))?;
        let a = argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, p);
        let mut k = Key {
            bytes: [0; KEY_LEN],
        };
        a.hash_password_into(passphrase, salt, &mut k.bytes)
            .map_err(|e| bad_key("passphrase", format!("Argon2id failed: {e}")))?;
        Ok(k)
    }

    /// This key's public id.
    pub fn id(&self) -> KeyId {
        let mut h = Sha256::new();
        h.update(KEY_ID_CONTEXT);
        h.update(self.bytes);
        let d = h.finalize();
        let mut id = [0u8; 8];
        id.copy_from_slice(&d[..8]);
        KeyId(id)
    }

    /// The key as 64 hex digits (for writing a key file).
    pub fn to_hex(&self) -> Zeroizing<String> {
        Zeroizing::new(hex::encode(self.bytes))
    }

    pub(crate) fn bytes(&self) -> &[u8; KEY_LEN] {
        &self.bytes
    }
}

/// Where the master key comes from.
///
/// - `Keys`: one or more raw keys (a key ring). Sealing uses the first; opening picks
///   the key whose id the header names.
/// - `Passphrase`: stretched with Argon2id; sealing draws a new salt, opening uses the
///   salt and costs in the header.
pub enum KeySource {
    Keys(Vec<Key>),
    Passphrase(Zeroizing<String>),
}

impl fmt::Debug for KeySource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeySource::Keys(k) => write!(f, "KeySource::Keys({})", ids(k)),
            KeySource::Passphrase(_) => f.write_str("KeySource::Passphrase(..)"),
        }
    }
}

fn ids(keys: &[Key]) -> String {
    if keys.is_empty() {
        return "none".into();
    }
    keys.iter()
        .map(|k| k.id().to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

/// Reads an environment variable into zeroised memory; `None` when unset or empty.
fn env_secret(name: &str) -> Result<Option<Zeroizing<String>>> {
    match std::env::var_os(name) {
        None => Ok(None),
        Some(v) => {
            let s = Zeroizing::new(
                v.into_string()
                    .map_err(|_| bad_key(name, "not valid UTF-8; use hex or base64 text"))?,
            );
            Ok(if s.trim().is_empty() { None } else { Some(s) })
        }
    }
}

impl KeySource {
    /// One raw key.
    pub fn key(key: Key) -> KeySource {
        KeySource::Keys(vec![key])
    }

    /// A passphrase (must not be empty).
    pub fn passphrase(passphrase: impl Into<String>) -> Result<KeySource> {
        let p = Zeroizing::new(passphrase.into());
        if p.is_empty() {
            return Err(bad_key("passphrase", "empty"));
        }
        Ok(KeySource::Passphrase(p))
    }

    /// One or more keys from text: hex or base64 keys separated by commas, spaces or
    /// new lines; lines starting with `#` are comments. `what` names the source.
    pub fn parse_keys(text: &str, what: &str) -> Result<KeySource> {
        let mut keys = Vec::new();
        for line in text.lines() {
            let line = line.trim();
            if line.starts_with('#') {
                continue;
            }
            for word in line.split(|c: char| c == ',' || c.is_whitespace()) {
                if !word.is_empty() {
                    let n = keys.len() + 1;
                    keys.push(Key::parse(word, &format!("{what} (key {n})"))?);
                }
            }
        }
        if keys.is_empty() {
            return Err(bad_key(
                what,
                "holds no key; expected hex or base64 of 32 bytes",
            ));
        }
        Ok(KeySource::Keys(keys))
    }

    /// Keys from a key file: exactly 32 raw bytes (not all printable ASCII), or text
    /// as [`KeySource::parse_keys`] reads it.
    pub fn from_key_file(path: &Path) -> Result<KeySource> {
        let bytes = Zeroizing::new(
            std::fs::read(path).map_err(|e| SealError::io("reading the key file", path, e))?,
        );
        let what = format!("key file {}", path.display());
        let printable = bytes
            .iter()
            .all(|&c| c.is_ascii_graphic() || c.is_ascii_whitespace());
        if !printable {
            if bytes.len() == KEY_LEN {
                return Ok(KeySource::key(Key::from_bytes_named(&bytes, &what)?));
            }
            return Err(bad_key(
                &what,
                format!(
                    "{} bytes of binary data; a raw key file must be exactly {KEY_LEN} bytes \
                     (or hold the key as hex or base64 text)",
                    bytes.len()
                ),
            ));
        }
        let text = std::str::from_utf8(&bytes).map_err(|_| bad_key(&what, "not UTF-8 text"))?;
        Self::parse_keys(text, &what)
    }

    /// The key(s) in `ALC_SEAL_KEY`; `None` when it is unset or empty.
    pub fn key_from_env() -> Result<Option<KeySource>> {
        match env_secret(KEY_ENV)? {
            None => Ok(None),
            Some(s) => Self::parse_keys(&s, KEY_ENV).map(Some),
        }
    }

    /// The passphrase in `ALC_SEAL_PASSPHRASE`; `None` when it is unset or empty.
    pub fn passphrase_from_env() -> Result<Option<KeySource>> {
        Ok(env_secret(PASSPHRASE_ENV)?.map(KeySource::Passphrase))
    }

    /// `ALC_SEAL_KEY` if set, else `ALC_SEAL_PASSPHRASE` if set, else `None`.
    pub fn from_env() -> Result<Option<KeySource>> {
        match Self::key_from_env()? {
            Some(k) => Ok(Some(k)),
            None => Self::passphrase_from_env(),
        }
    }

    /// The ids of the raw keys (empty for a passphrase).
    pub fn key_ids(&self) -> Vec<KeyId> {
        match self {
            KeySource::Keys(k) => k.iter().map(Key::id).collect(),
            KeySource::Passphrase(_) => Vec::new(),
        }
    }

    /// The key to seal with, and the KDF recorded in the header.
    pub(crate) fn sealing_key(&self, params: &Argon2Params) -> Result<(Key, Kdf)> {
        match self {
            KeySource::Keys(keys) => match keys.first() {
                Some(k) => Ok((k.clone(), Kdf::Raw)),
                None => Err(bad_key("key ring", "holds no key")),
            },
            KeySource::Passphrase(p) => {
                let mut salt = [0u8; 16];
                getrandom::getrandom(&mut salt).map_err(|e| SealError::Random(e.to_string()))?;
                let key = Key::from_passphrase(p.as_bytes(), &salt, params)?;
                Ok((
                    key,
                    Kdf::Argon2id {
                        params: *params,
                        salt,
                    },
                ))
            }
        }
    }

    /// The key that opens a file with this header.
    pub(crate) fn opening_key(&self, path: &Path, h: &Header) -> Result<Key> {
        match self {
            KeySource::Keys(keys) => {
                if let Some(k) = keys.iter().find(|k| k.id() == h.key_id) {
                    return Ok(k.clone());
                }
                match h.kdf {
                    Kdf::Raw => Err(SealError::WrongKey {
                        path: path.to_path_buf(),
                        want: h.key_id,
                        have: ids(keys),
                    }),
                    Kdf::Argon2id { .. } => Err(SealError::NeedPassphrase {
                        path: path.to_path_buf(),
                        want: h.key_id,
                        have: ids(keys),
                    }),
                }
            }
            KeySource::Passphrase(p) => match &h.kdf {
                Kdf::Raw => Err(SealError::NeedKey {
                    path: path.to_path_buf(),
                    want: h.key_id,
                }),
                Kdf::Argon2id { params, salt } => {
                    let k = Key::from_passphrase(p.as_bytes(), salt, params)?;
                    let got = k.id();
                    if got != h.key_id {
                        return Err(SealError::WrongPassphrase {
                            path: path.to_path_buf(),
                            want: h.key_id,
                            got,
                        });
                    }
                    Ok(k)
                }
            },
        }
    }
}
