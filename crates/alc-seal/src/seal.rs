//! Sealing: a file, a byte slice, or every file of a directory.

use crate::cipher::FileCipher;
use crate::header::{
    check_block_size, Cipher, Header, Kdf, DEFAULT_BLOCK_SIZE, EXTENSION, FORMAT_VERSION,
    HEADER_LEN, MAX_PLAINTEXT, TAG_LEN,
};
use crate::key::{Argon2Params, Key, KeyId, KeySource};
use crate::{Result, SealError};
use alc_format::AtomicFile;
use sha2::{Digest, Sha256};
use std::fs::File;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;
use zeroize::Zeroizing;

/// How to seal.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SealOptions {
    /// Plaintext bytes per block: a power of two from 4 KiB to 16 MiB (default 64 KiB).
    pub block_size: u32,
    /// Argon2id costs when the key is a passphrase.
    pub argon2: Argon2Params,
}

impl Default for SealOptions {
    fn default() -> Self {
        SealOptions {
            block_size: DEFAULT_BLOCK_SIZE,
            argon2: Argon2Params::DEFAULT,
        }
    }
}

/// What [`seal_file`] did.
#[derive(Clone, Debug)]
pub struct SealReport {
    pub src: PathBuf,
    pub out: PathBuf,
    pub plaintext_len: u64,
    pub sealed_len: u64,
    pub blocks: u64,
    pub key_id: KeyId,
    pub plaintext_sha256: [u8; 32],
    pub seconds: f64,
}

/// What [`seal_dir`] did: one report per sealed file, and the entries it skipped with
/// the reason (sub-directories, hidden files, files already named `*.ava3`).
#[derive(Clone, Debug, Default)]
pub struct BatchReport {
    pub sealed: Vec<SealReport>,
    pub skipped: Vec<(PathBuf, String)>,
}

/// The sealed name of a file: `model.gguf` → `model.gguf.ava3`.
pub fn sealed_name(src: &Path) -> PathBuf {
    let mut name = src.file_name().unwrap_or_default().to_os_string();
    name.push(".");
    name.push(EXTENSION);
    PathBuf::from(name)
}

/// A key resolved for sealing (a passphrase is stretched once).
struct SealKey {
    key: Key,
    kdf: Kdf,
}

impl SealKey {
    fn new(keys: &KeySource, opts: &SealOptions) -> Result<SealKey> {
        check_block_size(opts.block_size).map_err(|what| SealError::BadRequest { what })?;
        let (key, kdf) = keys.sealing_key(&opts.argon2)?;
        Ok(SealKey { key, kdf })
    }
}

/// Seals blocks in order and produces the header at the end.
struct Sealer {
    header: Header,
    cipher: FileCipher,
    hasher: Sha256,
    next: u64,
}

impl Sealer {
    fn new(sk: &SealKey, plaintext_len: u64, block_size: u32) -> Result<Sealer> {
        let mut file_nonce = [0u8; 16];
        getrandom::getrandom(&mut file_nonce).map_err(|e| SealError::Random(e.to_string()))?;
        let header = Header {
            version: FORMAT_VERSION,
            cipher: Cipher::Aes256Gcm,
            kdf: sk.kdf.clone(),
            key_id: sk.key.id(),
            block_size,
            plaintext_len,
            file_nonce,
            sealed_digest: [0; 32],
            tag: [0; 16],
        };
        let cipher = FileCipher::new(&sk.key, &header);
        Ok(Sealer {
            header,
            cipher,
            hasher: Sha256::new(),
            next: 0,
        })
    }

    /// Hashes and encrypts the next block in place (its length must be
    /// `header.block_len(next)`); returns the tag.
    fn seal_next(&mut self, buf: &mut [u8]) -> [u8; TAG_LEN] {
        let i = self.next;
        debug_assert_eq!(buf.len(), self.header.block_len(i));
        self.hasher.update(&*buf);
        let last = i + 1 == self.header.blocks();
        self.next += 1;
        self.cipher.seal_block(i, last, buf)
    }

    /// The finished header and the plaintext digest.
    fn finish(mut self) -> ([u8; HEADER_LEN], [u8; 32], Header) {
        debug_assert_eq!(self.next, self.header.blocks());
        let digest: [u8; 32] = self.hasher.finalize().into();
        let (ct, tag) = self.cipher.seal_digest(&digest);
        self.header.sealed_digest = ct;
        self.header.tag = tag;
        (self.header.to_bytes(), digest, self.header)
    }
}

fn check_len(len: u64, path: &Path) -> Result<()> {
    if len > MAX_PLAINTEXT {
        return Err(SealError::BadRequest {
            what: format!(
                "{}: {len} bytes is over the sealed format's limit of {MAX_PLAINTEXT} bytes",
                path.display()
            ),
        });
    }
    Ok(())
}

/// Seals a byte slice in memory and returns the sealed file's bytes.
pub fn seal_bytes(plaintext: &[u8], keys: &KeySource, opts: &SealOptions) -> Result<Vec<u8>> {
    let sk = SealKey::new(keys, opts)?;
    check_len(plaintext.len() as u64, Path::new("plaintext"))?;
    let mut s = Sealer::new(&sk, plaintext.len() as u64, opts.block_size)?;
    let sealed_len = s.header.sealed_len() as usize;
    let mut out = Vec::with_capacity(sealed_len);
    out.extend_from_slice(&[0u8; HEADER_LEN]);
    let mut pos = 0usize;
    for i in 0..s.header.blocks() {
        let n = s.header.block_len(i);
        let start = out.len();
        out.extend_from_slice(&plaintext[pos..pos + n]);
        pos += n;
        let tag = s.seal_next(&mut out[start..]);
        out.extend_from_slice(&tag);
    }
    let (header, _, _) = s.finish();
    out[..HEADER_LEN].copy_from_slice(&header);
    debug_assert_eq!(out.len(), sealed_len);
    Ok(out)
}

/// [`seal_file_with`] without progress reports.
pub fn seal_file(
    src: &Path,
    out: &Path,
    keys: &KeySource,
    opts: &SealOptions,
) -> Result<SealReport> {
    seal_file_with(src, out, keys, opts, &mut |_, _| {})
}

/// Seals `src` into `out`, atomically: the sealed bytes go to a temporary file in
/// `out`'s directory, which is fsynced and renamed over `out` only when complete. On
/// any error nothing is left at `out` (a file already there is untouched).
/// `progress(done, total)` gets plaintext bytes after each block.
pub fn seal_file_with(
    src: &Path,
    out: &Path,
    keys: &KeySource,
    opts: &SealOptions,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<SealReport> {
    let sk = SealKey::new(keys, opts)?;
    seal_one(src, out, &sk, opts, progress)
}

fn same_file(a: &Path, b: &Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(x), Ok(y)) => x == y,
        _ => false,
    }
}

fn seal_one(
    src: &Path,
    out: &Path,
    sk: &SealKey,
    opts: &SealOptions,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<SealReport> {
    let t0 = Instant::now();
    if same_file(src, out) {
        return Err(SealError::BadRequest {
            what: format!(
                "the output {} is the input file; name another output",
                out.display()
            ),
        });
    }
    let mut f = File::open(src).map_err(|e| SealError::io("opening", src, e))?;
    let meta = f
        .metadata()
        .map_err(|e| SealError::io("reading the size of", src, e))?;
    if !meta.is_file() {
        return Err(SealError::BadRequest {
            what: format!(
                "{} is not a regular file (use --batch for a directory)",
                src.display()
            ),
        });
    }
    let len = meta.len();
    check_len(len, src)?;
    let mut s = Sealer::new(sk, len, opts.block_size)?;
    let mut af = AtomicFile::create(out)?;
    af.write_all(&[0u8; HEADER_LEN])
        .map_err(|e| af.error("writing", e))?;
    let mut buf = Zeroizing::new(vec![0u8; opts.block_size as usize]);
    let mut done = 0u64;
    for i in 0..s.header.blocks() {
        let n = s.header.block_len(i);
        let b = &mut buf[..n];
        read_full(&mut f, b, src, done, len)?;
        let tag = s.seal_next(b);
        af.write_all(b).map_err(|e| af.error("writing", e))?;
        af.write_all(&tag).map_err(|e| af.error("writing", e))?;
        done += n as u64;
        progress(done, len);
    }
    let mut probe = [0u8; 1];
    match f.read(&mut probe) {
        Ok(0) => {}
        Ok(_) => {
            return Err(SealError::SourceChanged {
                path: src.to_path_buf(),
                detail: format!("it grew past the {len} bytes it had when sealing began"),
            })
        }
        Err(e) => return Err(SealError::io("reading", src, e)),
    }
    let (header_bytes, digest, header) = s.finish();
    af.flush().map_err(|e| af.error("writing", e))?;
    write_header(&af, &header_bytes)?;
    af.commit()?;
    Ok(SealReport {
        src: src.to_path_buf(),
        out: out.to_path_buf(),
        plaintext_len: len,
        sealed_len: header.sealed_len(),
        blocks: header.blocks(),
        key_id: header.key_id,
        plaintext_sha256: digest,
        seconds: t0.elapsed().as_secs_f64(),
    })
}

/// Reads exactly `buf.len()` bytes; a short read means the file shrank.
fn read_full(f: &mut File, buf: &mut [u8], src: &Path, done: u64, len: u64) -> Result<()> {
    let mut got = 0;
    while got < buf.len() {
        match f.read(&mut buf[got..]) {
            Ok(0) => {
                return Err(SealError::SourceChanged {
                    path: src.to_path_buf(),
                    detail: format!(
                        "it had {len} bytes when sealing began, but ended after {}",
                        done + got as u64
                    ),
                })
            }
            Ok(n) => got += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(SealError::io("reading", src, e)),
        }
    }
    Ok(())
}

/// Writes the finished header over the placeholder at offset 0 of the (flushed)
/// temporary file; `AtomicFile::commit` then fsyncs and renames it.
fn write_header(af: &AtomicFile, header: &[u8; HEADER_LEN]) -> Result<()> {
    let tmp = af.temp_path();
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(tmp)
        .map_err(|e| af.error("reopening the temporary file to write the header", e))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileExt;
        f.write_all_at(header, 0)
            .map_err(|e| af.error("writing the header", e))?;
    }
    #[cfg(not(unix))]
    {
        use std::io::{Seek, SeekFrom};
        let mut f = f;
        f.seek(SeekFrom::Start(0))
            .and_then(|_| f.write_all(header))
            .map_err(|e| af.error("writing the header", e))?;
    }
    Ok(())
}

/// Seals every regular file directly inside `src_dir` (not recursive, sorted by name)
/// into `out_dir` (created if missing) as `name.ava3`, each atomically. Hidden files,
/// sub-directories and files already named `*.ava3` are skipped and listed. A
/// passphrase is stretched once for the whole batch (one salt, every file still gets
/// its own file key). `progress(file, done, total)` reports plaintext bytes. On an
/// error the files sealed so far stay; the error names the failing file.
pub fn seal_dir(
    src_dir: &Path,
    out_dir: &Path,
    keys: &KeySource,
    opts: &SealOptions,
    progress: &mut dyn FnMut(&Path, u64, u64),
) -> Result<BatchReport> {
    if !src_dir.is_dir() {
        return Err(SealError::BadRequest {
            what: format!(
                "{} is not a directory (--batch needs one)",
                src_dir.display()
            ),
        });
    }
    if out_dir.exists() && same_file(src_dir, out_dir) {
        return Err(SealError::BadRequest {
            what: format!(
                "the output directory {} is the input directory; name another one",
                out_dir.display()
            ),
        });
    }
    let mut entries = Vec::new();
    let rd = std::fs::read_dir(src_dir).map_err(|e| SealError::io("listing", src_dir, e))?;
    for e in rd {
        let e = e.map_err(|e| SealError::io("listing", src_dir, e))?;
        entries.push(e.path());
    }
    entries.sort();
    let sk = SealKey::new(keys, opts)?;
    std::fs::create_dir_all(out_dir)
        .map_err(|e| SealError::io("creating the output directory", out_dir, e))?;
    let mut report = BatchReport::default();
    for path in entries {
        let name = path.file_name().unwrap_or_default().to_string_lossy();
        let skip = if name.starts_with('.') {
            Some("hidden file")
        } else if !path.is_file() {
            Some("not a regular file")
        } else if path.extension().is_some_and(|e| e == EXTENSION) {
            Some("already sealed (.ava3)")
        } else {
            None
        };
        if let Some(why) = skip {
            report.skipped.push((path, why.to_string()));
            continue;
        }
        let out = out_dir.join(sealed_name(&path));
        let r = seal_one(&path, &out, &sk, opts, &mut |d, t| progress(&path, d, t))?;
        report.sealed.push(r);
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    /// A file whose blocks are authentic but whose header records another plaintext
    /// digest (only a faulty sealer could write one): every reader that checks the
    /// digest refuses it.
    #[test]
    fn plaintext_hash_mismatch_is_reported() {
        let keys = KeySource::key(Key::from_bytes(&[3; 32]).unwrap());
        let opts = SealOptions::default();
        let sk = SealKey::new(&keys, &opts).unwrap();
        let plain = vec![5u8; 150_000];
        let mut s = Sealer::new(&sk, plain.len() as u64, opts.block_size).unwrap();
        let mut out = vec![0u8; HEADER_LEN];
        let mut pos = 0;
        for i in 0..s.header.blocks() {
            let n = s.header.block_len(i);
            let start = out.len();
            out.extend_from_slice(&plain[pos..pos + n]);
            pos += n;
            let tag = s.seal_next(&mut out[start..]);
            out.extend_from_slice(&tag);
        }
        s.hasher = Sha256::new();
        s.hasher.update(b"something else");
        let (header, _, _) = s.finish();
        out[..HEADER_LEN].copy_from_slice(&header);

        let e = crate::unseal_bytes("x", &out, &keys).unwrap_err();
        assert!(matches!(e, SealError::HashMismatch { .. }), "{e}");
        assert!(e.to_string().contains("plaintext SHA-256 mismatch"), "{e}");
        assert!(e.is_integrity_failure());

        let mut r = crate::SealedReader::from_bytes("x", &out, &keys).unwrap();
        let mut v = Vec::new();
        let io = r.read_to_end(&mut v).unwrap_err();
        assert!(io.to_string().contains("SHA-256 mismatch"), "{io}");
        assert!(r.read_block(0).is_err(), "the failure sticks");

        let r = crate::SealedReader::from_bytes("x", &out, &keys).unwrap();
        let e = r.verify(&mut |_, _| {}).unwrap_err();
        assert!(matches!(e, SealError::HashMismatch { .. }), "{e}");

        // Without the digest check the (authentic) blocks read fine.
        let r = crate::SealedReader::from_bytes("x", &out, &keys)
            .unwrap()
            .with_digest_check(false);
        assert_eq!(r.read_to_vec().unwrap(), plain);

        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("m.ava3");
        std::fs::write(&f, &out).unwrap();
        let o = dir.path().join("m.bin");
        let e = crate::unseal_file(&f, &o, &keys).unwrap_err();
        assert!(matches!(e, SealError::HashMismatch { .. }), "{e}");
        assert!(!o.exists());
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }
}
