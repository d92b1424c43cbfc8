//! The per-file AEAD: file key derivation, nonces, blocks and the header digest.

use crate::header::{Header, AAD_LEN, TAG_LEN};
use crate::key::Key;
use aes_gcm::aead::consts::U12;
use aes_gcm::aead::inout::InOutBuf;
use aes_gcm::aead::AeadInOut;
use aes_gcm::{Aes256Gcm, KeyInit, Tag};

type Nonce = aes_gcm::Nonce<U12>;
use hkdf::Hkdf;
use sha2::Sha256;
use zeroize::Zeroizing;

/// HKDF `info` of the file key.
const FILE_KEY_INFO: &[u8] = b"alc-seal v1 AES-256-GCM file key";

/// Kind byte (last nonce byte): a block that is not the last.
const KIND_BLOCK: u8 = 0;
/// Kind byte: the last block.
const KIND_LAST: u8 = 1;
/// Kind byte: the encrypted plaintext digest in the header.
const KIND_HEADER: u8 = 2;

/// AES-256-GCM under the file key, with the header's first 80 bytes as AAD.
pub(crate) struct FileCipher {
    aead: Aes256Gcm,
    aad: [u8; AAD_LEN],
}

fn nonce(index: u64, kind: u8) -> Nonce {
    let mut n = [0u8; 12];
    n[..8].copy_from_slice(&index.to_be_bytes());
    n[11] = kind;
    Nonce::from(n)
}

/// A failed tag check.
pub(crate) struct AuthFailed;

impl FileCipher {
    /// file key = HKDF-SHA256(ikm = master key, salt = file nonce, info).
    pub(crate) fn new(master: &Key, header: &Header) -> FileCipher {
        let hk = Hkdf::<Sha256>::new(Some(&header.file_nonce), master.bytes());
        let mut file_key = Zeroizing::new([0u8; 32]);
        hk.expand(FILE_KEY_INFO, &mut file_key[..])
            .expect("32 bytes is a valid HKDF-SHA256 output length");
        FileCipher {
            aead: Aes256Gcm::new(&(*file_key).into()),
            aad: header.aad(),
        }
    }

    fn kind(last: bool) -> u8 {
        if last {
            KIND_LAST
        } else {
            KIND_BLOCK
        }
    }

    /// Encrypts `plain` into `out` (same length) as block `index`; returns its tag.
    pub(crate) fn seal_block_to(
        &self,
        index: u64,
        last: bool,
        plain: &[u8],
        out: &mut [u8],
    ) -> [u8; TAG_LEN] {
        let n = nonce(index, Self::kind(last));
        let buf = InOutBuf::new(plain, out).expect("plaintext and output have one length");
        let tag = self
            .aead
            .encrypt_inout_detached(&n, &self.aad, buf)
            .expect("a block is far below the GCM message limit");
        tag.into()
    }

    /// Authenticates ciphertext `ct` as block `index` and decrypts it into `out`
    /// (same length). On failure nothing is written to `out`.
    pub(crate) fn open_block_to(
        &self,
        index: u64,
        last: bool,
        ct: &[u8],
        out: &mut [u8],
        tag: &[u8; TAG_LEN],
    ) -> Result<(), AuthFailed> {
        let n = nonce(index, Self::kind(last));
        let buf = InOutBuf::new(ct, out).expect("ciphertext and output have one length");
        self.aead
            .decrypt_inout_detached(&n, &self.aad, buf, &Tag::from(*tag))
            .map_err(|_| AuthFailed)
    }

    /// Authenticates and decrypts `buf` in place as block `index`. On failure `buf`
    /// is left as ciphertext.
    pub(crate) fn open_block(
        &self,
        index: u64,
        last: bool,
        buf: &mut [u8],
        tag: &[u8; TAG_LEN],
    ) -> Result<(), AuthFailed> {
        let n = nonce(index, Self::kind(last));
        self.aead
            .decrypt_inout_detached(&n, &self.aad, buf.into(), &Tag::from(*tag))
            .map_err(|_| AuthFailed)
    }

    /// Encrypts the plaintext digest for the header; returns (ciphertext, header tag).
    pub(crate) fn seal_digest(&self, digest: &[u8; 32]) -> ([u8; 32], [u8; TAG_LEN]) {
        let mut d = *digest;
        let tag = self
            .aead
            .encrypt_inout_detached(&nonce(0, KIND_HEADER), &self.aad, (&mut d[..]).into())
            .expect("32 bytes is below the GCM message limit");
        (d, tag.into())
    }

    /// Checks the header tag and returns the plaintext digest.
    pub(crate) fn open_digest(&self, header: &Header) -> Result<[u8; 32], AuthFailed> {
        let mut d = header.sealed_digest;
        self.aead
            .decrypt_inout_detached(
                &nonce(0, KIND_HEADER),
                &self.aad,
                (&mut d[..]).into(),
                &Tag::from(header.tag),
            )
            .map_err(|_| AuthFailed)?;
        Ok(d)
    }
}
