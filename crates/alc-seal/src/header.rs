//! The 128-byte header of a sealed file (docs/SEALED.md, "Header").

use crate::key::{Argon2Params, KeyId};
use crate::{Result, SealError};
use std::path::Path;

/// The first 8 bytes of every sealed file.
pub const MAGIC: [u8; 8] = *b"AVA3SEAL";
/// The format version this crate writes and the newest it reads.
pub const FORMAT_VERSION: u16 = 1;
/// Length of the version 1 header.
pub const HEADER_LEN: usize = 128;
/// Plaintext bytes per block written by default (64 KiB).
pub const DEFAULT_BLOCK_SIZE: u32 = 64 * 1024;
/// Smallest block size accepted (a power of two between this and [`MAX_BLOCK_SIZE`]).
pub const MIN_BLOCK_SIZE: u32 = 4 * 1024;
/// Largest block size accepted.
pub const MAX_BLOCK_SIZE: u32 = 16 * 1024 * 1024;
/// Bytes of the GCM tag after each block's ciphertext.
pub const TAG_LEN: usize = 16;
/// File name extension of a sealed file (`model.gguf` → `model.gguf.ava3`).
pub const EXTENSION: &str = "ava3";

/// Largest plaintext length accepted (2^60 bytes); keeps all size arithmetic exact.
pub(crate) const MAX_PLAINTEXT: u64 = 1 << 60;
/// Bytes of the header covered as AAD (everything before the encrypted digest).
pub(crate) const AAD_LEN: usize = 80;

const CIPHER_AES256GCM: u8 = 1;
const KDF_RAW: u8 = 0;
const KDF_ARGON2ID: u8 = 1;

// Field offsets (docs/SEALED.md).
const OFF_VERSION: usize = 8;
const OFF_HEADER_LEN: usize = 10;
const OFF_CIPHER: usize = 12;
const OFF_KDF: usize = 13;
const OFF_RESERVED: usize = 14;
const OFF_KEY_ID: usize = 16;
const OFF_BLOCK_SIZE: usize = 24;
const OFF_M: usize = 28;
const OFF_T: usize = 32;
const OFF_P: usize = 36;
const OFF_SALT: usize = 40;
const OFF_LEN: usize = 56;
const OFF_NONCE: usize = 64;
const OFF_DIGEST: usize = 80;
const OFF_TAG: usize = 112;

/// The cipher of the blocks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cipher {
    /// AES-256-GCM with a per-file key from HKDF-SHA256 (id 1).
    Aes256Gcm,
}

impl Cipher {
    /// Display name.
    pub fn name(self) -> &'static str {
        match self {
            Cipher::Aes256Gcm => "AES-256-GCM",
        }
    }
}

/// How the 32-byte master key is obtained.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Kdf {
    /// A raw 32-byte key (id 0).
    Raw,
    /// Argon2id (version 0x13) over a passphrase (id 1).
    Argon2id {
        params: Argon2Params,
        salt: [u8; 16],
    },
}

impl Kdf {
    /// Display name.
    pub fn name(&self) -> &'static str {
        match self {
            Kdf::Raw => "raw key",
            Kdf::Argon2id { .. } => "Argon2id passphrase",
        }
    }
}

/// A parsed header. Fields read without a key are not yet authenticated: the header
/// tag is checked only when a key is given ([`crate::SealedReader::new`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Header {
    pub version: u16,
    pub cipher: Cipher,
    pub kdf: Kdf,
    pub key_id: KeyId,
    /// Plaintext bytes per block (the last block may be shorter).
    pub block_size: u32,
    pub plaintext_len: u64,
    /// Random per file; the salt of the per-file key.
    pub file_nonce: [u8; 16],
    /// The plaintext SHA-256, encrypted under the file key.
    pub(crate) sealed_digest: [u8; 32],
    /// GCM tag over the encrypted digest with bytes 0..80 as AAD.
    pub(crate) tag: [u8; 16],
}

fn u16_at(b: &[u8], off: usize) -> u16 {
    u16::from_le_bytes([b[off], b[off + 1]])
}

fn u32_at(b: &[u8], off: usize) -> u32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(&b[off..off + 4]);
    u32::from_le_bytes(a)
}

fn u64_at(b: &[u8], off: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[off..off + 8]);
    u64::from_le_bytes(a)
}

fn array<const N: usize>(b: &[u8], off: usize) -> [u8; N] {
    let mut a = [0u8; N];
    a.copy_from_slice(&b[off..off + N]);
    a
}

/// Checks a block size: a power of two in [MIN_BLOCK_SIZE, MAX_BLOCK_SIZE].
pub(crate) fn check_block_size(bs: u32) -> std::result::Result<(), String> {
    if bs.is_power_of_two() && (MIN_BLOCK_SIZE..=MAX_BLOCK_SIZE).contains(&bs) {
        Ok(())
    } else {
        Err(format!(
            "block size {bs} is not a power of two between {MIN_BLOCK_SIZE} and {MAX_BLOCK_SIZE}"
        ))
    }
}

impl Header {
    /// Parses and checks the header at the start of `bytes` (which may be the whole
    /// file or only its start). `path` names the file in errors. Needs no key; the
    /// header tag is not checked here.
    ///
    /// Checks, in order: magic, version, length, cipher, KDF, reserved bytes, block
    /// size, KDF parameters, plaintext length.
    pub fn parse(path: &Path, bytes: &[u8]) -> Result<Header> {
        let p = || path.to_path_buf();
        if bytes.len() < MAGIC.len() && MAGIC.starts_with(bytes) {
            // Empty, or the start of the magic: a sealed file cut short.
            return Err(SealError::HeaderTruncated {
                path: p(),
                need: HEADER_LEN,
                got: bytes.len() as u64,
            });
        }
        if bytes.len() < MAGIC.len() || bytes[..MAGIC.len()] != MAGIC {
            let n = bytes.len().min(MAGIC.len());
            let head = &bytes[..n];
            let found = if head.iter().all(|c| c.is_ascii_graphic() || *c == b' ') {
                format!("{:?}", String::from_utf8_lossy(head))
            } else {
                format!("bytes {}", hex::encode(head))
            };
            return Err(SealError::NotSealed { path: p(), found });
        }
        let corrupt = |what: String| SealError::HeaderCorrupt { path: p(), what };
        if bytes.len() >= OFF_VERSION + 2 {
            let version = u16_at(bytes, OFF_VERSION);
            if version > FORMAT_VERSION {
                return Err(SealError::NewerVersion {
                    path: p(),
                    version,
                    supported: FORMAT_VERSION,
                });
            }
            if version == 0 {
                return Err(corrupt("format version 0 does not exist".into()));
            }
        }
        if bytes.len() < HEADER_LEN {
            return Err(SealError::HeaderTruncated {
                path: p(),
                need: HEADER_LEN,
                got: bytes.len() as u64,
            });
        }
        let b = &bytes[..HEADER_LEN];
        let version = u16_at(b, OFF_VERSION);
        let hlen = u16_at(b, OFF_HEADER_LEN);
        if usize::from(hlen) != HEADER_LEN {
            return Err(corrupt(format!(
                "header length field is {hlen}, version {version} headers are {HEADER_LEN} bytes"
            )));
        }
        let cipher = match b[OFF_CIPHER] {
            CIPHER_AES256GCM => Cipher::Aes256Gcm,
            id => return Err(SealError::UnknownCipher { path: p(), id }),
        };
        let kdf_id = b[OFF_KDF];
        if kdf_id != KDF_RAW && kdf_id != KDF_ARGON2ID {
            return Err(SealError::UnknownKdf {
                path: p(),
                id: kdf_id,
            });
        }
        let reserved = u16_at(b, OFF_RESERVED);
        if reserved != 0 {
            return Err(corrupt(format!(
                "reserved bytes 14..16 are {reserved:#06x}, must be 0"
            )));
        }
        let block_size = u32_at(b, OFF_BLOCK_SIZE);
        check_block_size(block_size).map_err(corrupt)?;
        let params = Argon2Params {
            m_kib: u32_at(b, OFF_M),
            iterations: u32_at(b, OFF_T),
            parallelism: u32_at(b, OFF_P),
        };
        let salt: [u8; 16] = array(b, OFF_SALT);
        let kdf = if kdf_id == KDF_RAW {
            if params != Argon2Params::ZERO || salt != [0; 16] {
                return Err(corrupt(
                    "the file is sealed with a raw key but its KDF parameter bytes 28..56 \
                     are not all zero"
                        .into(),
                ));
            }
            Kdf::Raw
        } else {
            params.check().map_err(corrupt)?;
            Kdf::Argon2id { params, salt }
        };
        let plaintext_len = u64_at(b, OFF_LEN);
        if plaintext_len > MAX_PLAINTEXT {
            return Err(corrupt(format!(
                "plaintext length {plaintext_len} is over the limit of {MAX_PLAINTEXT} bytes"
            )));
        }
        Ok(Header {
            version,
            cipher,
            kdf,
            key_id: KeyId(array(b, OFF_KEY_ID)),
            block_size,
            plaintext_len,
            file_nonce: array(b, OFF_NONCE),
            sealed_digest: array(b, OFF_DIGEST),
            tag: array(b, OFF_TAG),
        })
    }

    /// The 128 header bytes.
    pub fn to_bytes(&self) -> [u8; HEADER_LEN] {
        let mut b = [0u8; HEADER_LEN];
        b[..8].copy_from_slice(&MAGIC);
        b[OFF_VERSION..OFF_VERSION + 2].copy_from_slice(&self.version.to_le_bytes());
        b[OFF_HEADER_LEN..OFF_HEADER_LEN + 2].copy_from_slice(&(HEADER_LEN as u16).to_le_bytes());
        b[OFF_CIPHER] = match self.cipher {
            Cipher::Aes256Gcm => CIPHER_AES256GCM,
        };
        b[OFF_KEY_ID..OFF_KEY_ID + 8].copy_from_slice(&self.key_id.0);
        b[OFF_BLOCK_SIZE..OFF_BLOCK_SIZE + 4].copy_from_slice(&self.block_size.to_le_bytes());
        match &self.kdf {
            Kdf::Raw => b[OFF_KDF] = KDF_RAW,
            Kdf::Argon2id { params, salt } => {
                b[OFF_KDF] = KDF_ARGON2ID;
                b[OFF_M..OFF_M + 4].copy_from_slice(&params.m_kib.to_le_bytes());
                b[OFF_T..OFF_T + 4].copy_from_slice(&params.iterations.to_le_bytes());
                b[OFF_P..OFF_P + 4].copy_from_slice(&params.parallelism.to_le_bytes());
                b[OFF_SALT..OFF_SALT + 16].copy_from_slice(salt);
            }
        }
        b[OFF_LEN..OFF_LEN + 8].copy_from_slice(&self.plaintext_len.to_le_bytes());
        b[OFF_NONCE..OFF_NONCE + 16].copy_from_slice(&self.file_nonce);
        b[OFF_DIGEST..OFF_DIGEST + 32].copy_from_slice(&self.sealed_digest);
        b[OFF_TAG..OFF_TAG + 16].copy_from_slice(&self.tag);
        b
    }

    /// Bytes 0..80: the AAD of every block and of the header digest.
    pub(crate) fn aad(&self) -> [u8; AAD_LEN] {
        let b = self.to_bytes();
        let mut a = [0u8; AAD_LEN];
        a.copy_from_slice(&b[..AAD_LEN]);
        a
    }

    /// Number of blocks: ceil(plaintext_len / block_size), and 1 for an empty file.
    pub fn blocks(&self) -> u64 {
        self.plaintext_len
            .div_ceil(u64::from(self.block_size))
            .max(1)
    }

    /// Plaintext bytes of block `i` (`i < blocks()`).
    pub fn block_len(&self, i: u64) -> usize {
        let bs = u64::from(self.block_size);
        let start = i.saturating_mul(bs);
        self.plaintext_len.saturating_sub(start).min(bs) as usize
    }

    /// Offset of block `i` in the sealed file.
    pub fn block_offset(&self, i: u64) -> u64 {
        HEADER_LEN as u64 + i * (u64::from(self.block_size) + TAG_LEN as u64)
    }

    /// Plaintext offset of block `i`.
    pub fn block_start(&self, i: u64) -> u64 {
        i * u64::from(self.block_size)
    }

    /// Plaintext bytes of blocks `first..first + count` (`first + count <= blocks()`).
    pub(crate) fn span_len(&self, first: u64, count: u64) -> u64 {
        self.block_start(first + count).min(self.plaintext_len) - self.block_start(first)
    }

    /// Size of the sealed file: header + plaintext + one tag per block.
    pub fn sealed_len(&self) -> u64 {
        HEADER_LEN as u64 + self.plaintext_len + TAG_LEN as u64 * self.blocks()
    }

    /// How many whole blocks a sealed file of `len` bytes holds.
    pub(crate) fn complete_blocks(&self, len: u64) -> u64 {
        let n = self.blocks();
        if len < HEADER_LEN as u64 {
            return 0;
        }
        // Every block but the last is block_size + TAG_LEN bytes.
        let full = u64::from(self.block_size) + TAG_LEN as u64;
        let whole = ((len - HEADER_LEN as u64) / full).min(n - 1);
        if len >= self.sealed_len() {
            n
        } else {
            whole
        }
    }
}
