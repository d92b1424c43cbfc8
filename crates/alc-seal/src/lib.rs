//! alc-seal: sealed packages (`.ava3`): a package file encrypted and authenticated in
//! 64 KiB blocks, so it can be shipped and stored on a device without exposing or
//! silently altering the model, and loaded by the engine without plaintext on disk.
//!
//! Design note. The byte layout and the threat model are in docs/SEALED.md.
//!
//! - One fixed 128-byte header (magic, version, cipher, KDF and its parameters, key id,
//!   block size, plaintext length, a random 16-byte file nonce, the plaintext SHA-256
//!   encrypted, and a header tag), then one AES-256-GCM block per 64 KiB of plaintext
//!   (ciphertext ‖ 16-byte tag). An empty file still has one (empty) block.
//! - Every file gets its own AES key: HKDF-SHA256(master key, salt = file nonce). The
//!   96-bit GCM nonce is the block index (u64, big-endian) ‖ three zero bytes ‖ a kind
//!   byte (0 = block, 1 = last block, 2 = the header's digest). Nonces never repeat
//!   under one file key, and blocks of two files never share a key.
//! - The header's first 80 bytes are the AAD of every block and of the header digest;
//!   the digest's tag is the header tag. So any change in the header is caught before
//!   a block is read ([`SealError::HeaderTampered`]), and a block is bound to its file
//!   (key), its position (index in the nonce), and the end of the file (last flag).
//!   The file size follows from the authenticated plaintext length and is checked
//!   before any block ([`SealError::Truncated`], [`SealError::Extended`]).
//! - Crypto comes from RustCrypto crates (`aes-gcm`, `hkdf`, `sha2`, `argon2`); nothing
//!   is home-made. AES-NI, PCLMULQDQ and SHA-NI are detected at run time.
//! - Keys ([`Key`]) are 32 bytes, zeroised on drop; a key id (8 bytes of a SHA-256 of
//!   the key) in the header lets a device hold several keys ([`KeySource`]). A
//!   passphrase is stretched with Argon2id (parameters and salt in the header).
//! - Writing goes through `alc_format::AtomicFile`: nothing appears at the output path
//!   until the whole file is written (and, for unsealing, authenticated and hashed).
//! - Reading ([`SealedReader`]) is `Read + Seek` over any `Read + Seek` source (a file,
//!   or a byte slice through `Cursor` for in-memory use and fuzzing); it authenticates
//!   each block as it is read and checks the plaintext SHA-256 when the blocks were
//!   read in order to the end.
//! - Throughput (`pipe.rs`, docs/SEALED.md "Performance"). SHA-256 (about 1.6 GB/s per
//!   core with SHA-NI) is slower than AES-256-GCM (about 2.2 GB/s), and both are needed.
//!   The blocks do not depend on the digest (their AAD is the header's first 80 bytes;
//!   the digest sits after them, sealed under its own nonce), so sealing encrypts and
//!   hashes the same chunk buffers at the same time, on two threads, and writes the
//!   header last. Opening, verifying and unsealing decrypt chunk k+1 while a second
//!   thread hashes chunk k. The SHA-256 check on opening is redundant with GCM (every
//!   block is authenticated, bound to its index, the file and the last-block flag, so
//!   the exact plaintext is authenticated already): it only guards against a faulty
//!   sealer. It is kept everywhere (`verify_sealed` always; `open_in_memory`,
//!   `unseal_bytes`, `unseal_file` too), on the second thread, where it costs a core
//!   but little wall time; `SealedReader::with_digest_check(false)` skips it.
//!   Inputs under 4 MiB, or a process limited to one CPU, hash inline. Blocks go in
//!   chunks of 256 KiB (one read and one write per chunk, encryption and decryption
//!   out of place, no per-block allocation), and a whole plaintext or sealed file in
//!   memory is advised `MADV_HUGEPAGE` (4 KiB page faults cost more than GCM).

mod cipher;
mod header;
mod key;
mod open;
mod pipe;
mod seal;

pub use header::{
    Cipher, Header, Kdf, DEFAULT_BLOCK_SIZE, EXTENSION, FORMAT_VERSION, HEADER_LEN, MAGIC,
    MAX_BLOCK_SIZE, MIN_BLOCK_SIZE, TAG_LEN,
};
pub use key::{Argon2Params, Key, KeyId, KeySource, KEY_ENV, KEY_LEN, PASSPHRASE_ENV};
pub use open::{
    is_sealed, open_in_memory, read_header, unseal_bytes, unseal_file, unseal_file_with,
    verify_sealed, verify_sealed_with, SealInfo, SealedReader,
};
/// Re-exported so callers can hold secrets (e.g. a passphrase read from a terminal) in
/// memory that is cleared on drop.
pub use zeroize::Zeroizing;

pub use seal::{
    seal_bytes, seal_dir, seal_file, seal_file_with, sealed_name, BatchReport, SealOptions,
    SealReport,
};

use std::path::PathBuf;

/// Errors of sealing and unsealing. Each is one line naming the file and the values.
#[derive(Debug, thiserror::Error)]
pub enum SealError {
    #[error("{what} {path}: {source}")]
    Io {
        what: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Write(#[from] alc_format::FormatError),
    #[error("{path}: not a sealed package (starts with {found}, expected \"AVA3SEAL\"); seal it with `alc seal`")]
    NotSealed { path: PathBuf, found: String },
    #[error("{path}: sealed format version {version} is newer than this alc supports (up to {supported}); upgrade alc")]
    NewerVersion {
        path: PathBuf,
        version: u16,
        supported: u16,
    },
    #[error("{path}: unknown cipher id {id} (this alc knows 1 = AES-256-GCM); the header is corrupt or the file needs a newer alc")]
    UnknownCipher { path: PathBuf, id: u8 },
    #[error("{path}: unknown key derivation id {id} (this alc knows 0 = raw key, 1 = Argon2id); the header is corrupt or the file needs a newer alc")]
    UnknownKdf { path: PathBuf, id: u8 },
    #[error("{path}: corrupt header: {what}")]
    HeaderCorrupt { path: PathBuf, what: String },
    #[error("{path}: truncated header: it needs {need} bytes, the file has {got}")]
    HeaderTruncated {
        path: PathBuf,
        need: usize,
        got: u64,
    },
    #[error("{path}: wrong key: the file was sealed with key id {want}, the given key(s) have id(s) {have}; pass the key with that id (--key-file or ALC_SEAL_KEY)")]
    WrongKey {
        path: PathBuf,
        want: KeyId,
        have: String,
    },
    #[error("{path}: wrong passphrase: it derives key id {got}, the file was sealed with key id {want} (or the key derivation parameters in the header were altered)")]
    WrongPassphrase {
        path: PathBuf,
        want: KeyId,
        got: KeyId,
    },
    #[error("{path}: the file was sealed with a passphrase (Argon2id, key id {want}) and none of the given keys ({have}) has that id; pass --passphrase")]
    NeedPassphrase {
        path: PathBuf,
        want: KeyId,
        have: String,
    },
    #[error("{path}: the file was sealed with a raw key (key id {want}), not a passphrase; pass --key-file or ALC_SEAL_KEY")]
    NeedKey { path: PathBuf, want: KeyId },
    #[error("{path}: header failed authentication: it was altered after sealing (the key id matches, so the key is right)")]
    HeaderTampered { path: PathBuf },
    #[error("{path}: block {block} of {blocks} failed authentication (altered, reordered, or taken from another file)")]
    BlockAuth {
        path: PathBuf,
        block: u64,
        blocks: u64,
    },
    #[error("{path}: truncated: expected {expected_blocks} blocks ({expected_bytes} bytes), got {got_blocks} complete blocks ({got_bytes} bytes)")]
    Truncated {
        path: PathBuf,
        expected_blocks: u64,
        expected_bytes: u64,
        got_blocks: u64,
        got_bytes: u64,
    },
    #[error("{path}: extended: {} bytes of trailing data after the last block (expected {expected_bytes} bytes, the file has {got_bytes})", got_bytes - expected_bytes)]
    Extended {
        path: PathBuf,
        expected_bytes: u64,
        got_bytes: u64,
    },
    #[error("{path}: plaintext SHA-256 mismatch: the header says {expected}, the decrypted data hashes to {got}")]
    HashMismatch {
        path: PathBuf,
        expected: String,
        got: String,
    },
    #[error("{what}: {detail}")]
    BadKey { what: String, detail: String },
    #[error("{path} changed while it was being sealed ({detail}); seal it again when nothing writes to it")]
    SourceChanged { path: PathBuf, detail: String },
    #[error("{what}")]
    BadRequest { what: String },
    #[error("random number generator failed: {0}")]
    Random(String),
}

impl SealError {
    /// True when the file was readable and sealed in a format this crate knows, but is
    /// not authentic: altered header or block, truncated, extended, or a plaintext hash
    /// mismatch (`alc verify` exits 1 for these). A wrong key, an unreadable file, a
    /// file that is not sealed or needs a newer alc are not integrity failures (exit 2).
    pub fn is_integrity_failure(&self) -> bool {
        matches!(
            self,
            SealError::HeaderCorrupt { .. }
                | SealError::HeaderTruncated { .. }
                | SealError::HeaderTampered { .. }
                | SealError::BlockAuth { .. }
                | SealError::Truncated { .. }
                | SealError::Extended { .. }
                | SealError::HashMismatch { .. }
        )
    }

    pub(crate) fn io(what: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        SealError::Io {
            what,
            path: path.into(),
            source,
        }
    }
}

/// Result of this crate.
pub type Result<T, E = SealError> = std::result::Result<T, E>;
