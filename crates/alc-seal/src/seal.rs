//! Sealing: a file, a byte slice, or every file of a directory.

use crate::cipher::FileCipher;
use crate::header::{
    check_block_size, Cipher, Header, Kdf, DEFAULT_BLOCK_SIZE, EXTENSION, FORMAT_VERSION,
    HEADER_LEN, MAX_PLAINTEXT, TAG_LEN,
};
use crate::key::{Argon2Params, Key, KeyId, KeySource};
use crate::pipe::{self, ChunkHasher};
use crate::{Result, SealError};
use alc_format::AtomicFile;
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

/// Seals blocks in order and produces the header at the end. The blocks do not depend
/// on the plaintext digest (their AAD is the header's first 80 bytes, which hold the
/// length and the file nonce, not the digest), so the digest can be computed at the
/// same time as the blocks and put into the header last.
struct Sealer {
    header: Header,
    cipher: FileCipher,
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
            next: 0,
        })
    }

    /// Encrypts the next `count` blocks: `plain` is their plaintext
    /// (`header.span_len(next, count)` bytes), `out` receives the sealed bytes (each
    /// block's ciphertext then its tag: `plain.len() + 16·count` bytes).
    fn seal_chunk(&mut self, count: u64, plain: &[u8], out: &mut [u8]) {
        let blocks = self.header.blocks();
        debug_assert!(self.next + count <= blocks);
        debug_assert_eq!(plain.len() as u64, self.header.span_len(self.next, count));
        debug_assert_eq!(out.len(), plain.len() + TAG_LEN * count as usize);
        let (mut p, mut o) = (0, 0);
        for i in self.next..self.next + count {
            let n = self.header.block_len(i);
            let (ct, rest) = out[o..o + n + TAG_LEN].split_at_mut(n);
            let tag = self
                .cipher
                .seal_block_to(i, i + 1 == blocks, &plain[p..p + n], ct);
            rest.copy_from_slice(&tag);
            p += n;
            o += n + TAG_LEN;
        }
        self.next += count;
    }

    /// The finished header, given the plaintext digest of every block sealed.
    fn finish(mut self, digest: &[u8; 32]) -> ([u8; HEADER_LEN], Header) {
        debug_assert_eq!(self.next, self.header.blocks());
        let (ct, tag) = self.cipher.seal_digest(digest);
        self.header.sealed_digest = ct;
        self.header.tag = tag;
        (self.header.to_bytes(), self.header)
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

/// Seals a byte slice in memory and returns the sealed file's bytes. Large inputs are
/// hashed on a second thread while this one encrypts.
pub fn seal_bytes(plaintext: &[u8], keys: &KeySource, opts: &SealOptions) -> Result<Vec<u8>> {
    seal_bytes_with(
        plaintext,
        keys,
        opts,
        pipe::want_thread(plaintext.len() as u64),
    )
}

/// [`seal_bytes`], hashing on a second thread when `threaded`.
pub(crate) fn seal_bytes_with(
    plaintext: &[u8],
    keys: &KeySource,
    opts: &SealOptions,
    threaded: bool,
) -> Result<Vec<u8>> {
    let sk = SealKey::new(keys, opts)?;
    check_len(plaintext.len() as u64, Path::new("plaintext"))?;
    let mut s = Sealer::new(&sk, plaintext.len() as u64, opts.block_size)?;
    let blocks = s.header.blocks();
    let per = pipe::blocks_per_chunk(opts.block_size);
    // Each block is encrypted straight from `plaintext` into its place in `out`.
    let mut out = pipe::zeroed_vec(s.header.sealed_len() as usize);
    let digest = std::thread::scope(|scope| {
        let mut hasher = ChunkHasher::new(scope, threaded);
        let (mut pos, mut o) = (0usize, HEADER_LEN);
        while s.next < blocks {
            let count = per.min(blocks - s.next);
            let n = s.header.span_len(s.next, count) as usize;
            let m = n + TAG_LEN * count as usize;
            let plain = &plaintext[pos..pos + n];
            // The hash thread reads the chunk while this one encrypts it.
            hasher.feed(plain);
            s.seal_chunk(count, plain, &mut out[o..o + m]);
            pos += n;
            o += m;
        }
        debug_assert_eq!((pos, o), (plaintext.len(), out.len()));
        hasher.finish()
    });
    let (header, _) = s.finish(&digest);
    out[..HEADER_LEN].copy_from_slice(&header);
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
    seal_one(src, out, &sk, opts, None, progress)
}

fn same_file(a: &Path, b: &Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(x), Ok(y)) => x == y,
        _ => false,
    }
}

/// Seals one file; `threaded` forces hashing on a second thread or inline (tests),
/// `None` decides by size and CPUs.
fn seal_one(
    src: &Path,
    out: &Path,
    sk: &SealKey,
    opts: &SealOptions,
    threaded: Option<bool>,
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
    let threaded = threaded.unwrap_or_else(|| pipe::want_thread(len));
    let digest = seal_stream(&mut f, src, &mut s, &mut af, threaded, progress)?;
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
    let (header_bytes, header) = s.finish(&digest);
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

/// Reads the plaintext from `f` in chunks of whole blocks, seals each chunk into one
/// buffer of sealed bytes written with one call, and returns the plaintext SHA-256.
///
/// Each chunk is read once into a plaintext buffer; the blocks are encrypted from it
/// (out of place), then the buffer goes to the hash thread (when `threaded`), which
/// hashes chunk k while this thread reads, encrypts and writes chunk k+1. The bytes
/// hashed are exactly the bytes encrypted (one read, one buffer, never changed),
/// even if the source changes while it is sealed. Plaintext buffers are zeroised
/// when dropped.
fn seal_stream(
    f: &mut File,
    src: &Path,
    s: &mut Sealer,
    af: &mut AtomicFile,
    threaded: bool,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<[u8; 32]> {
    let len = s.header.plaintext_len;
    let blocks = s.header.blocks();
    let per = pipe::blocks_per_chunk(s.header.block_size);
    let cap = s.header.span_len(0, per.min(blocks)) as usize;
    let mut sealed = vec![0u8; cap + TAG_LEN * per.min(blocks) as usize];
    std::thread::scope(|scope| -> Result<[u8; 32]> {
        let mut hasher = ChunkHasher::<Zeroizing<Vec<u8>>>::new(scope, threaded);
        let mut pool = pipe::BufPool::new(cap);
        let mut done = 0u64;
        while s.next < blocks {
            let count = per.min(blocks - s.next);
            let n = s.header.span_len(s.next, count) as usize;
            let m = n + TAG_LEN * count as usize;
            let mut buf = pool.take(&mut hasher, n);
            read_full(f, &mut buf, src, done, len)?;
            s.seal_chunk(count, &buf, &mut sealed[..m]);
            af.write_all(&sealed[..m])
                .map_err(|e| af.error("writing", e))?;
            pool.hash(&mut hasher, buf);
            done += n as u64;
            progress(done, len);
        }
        Ok(hasher.finish())
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
        let r = seal_one(&path, &out, &sk, opts, None, &mut |d, t| {
            progress(&path, d, t)
        })?;
        report.sealed.push(r);
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;
    use sha2::{Digest, Sha256};
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
        let mut out = vec![0u8; s.header.sealed_len() as usize];
        let blocks = s.header.blocks();
        s.seal_chunk(blocks, &plain, &mut out[HEADER_LEN..]);
        let (header, _) = s.finish(&Sha256::digest(b"something else").into());
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

    fn keys() -> KeySource {
        KeySource::key(Key::from_bytes(&[9; 32]).unwrap())
    }

    /// Several chunks, a partial last chunk and a partial last block, and large
    /// enough that the public functions hash on a second thread (on a machine with
    /// more than one CPU).
    fn big_plain() -> Vec<u8> {
        (0..(5 << 20) + 12_345u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
            .collect()
    }

    fn is_mismatch(e: &SealError) -> bool {
        matches!(e, SealError::HashMismatch { .. })
    }

    /// The digest check on the second thread catches a wrong digest exactly like the
    /// inline one, on every path that checks it; `verify_sealed` always checks it.
    #[test]
    fn concurrent_hash_mismatch_is_reported() {
        let keys = keys();
        let opts = SealOptions::default();
        let sk = SealKey::new(&keys, &opts).unwrap();
        let plain = big_plain();
        assert!(plain.len() as u64 >= super::pipe::THREAD_MIN);
        let mut s = Sealer::new(&sk, plain.len() as u64, opts.block_size).unwrap();
        let mut out = vec![0u8; s.header.sealed_len() as usize];
        let blocks = s.header.blocks();
        // The true digest of all but the last byte: off by one byte at the very end.
        let wrong: [u8; 32] = Sha256::digest(&plain[..plain.len() - 1]).into();
        s.seal_chunk(blocks, &plain, &mut out[HEADER_LEN..]);
        let (header, _) = s.finish(&wrong);
        out[..HEADER_LEN].copy_from_slice(&header);

        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("m.ava3");
        std::fs::write(&f, &out).unwrap();
        let o = dir.path().join("m.bin");
        for threaded in [false, true] {
            let r = crate::SealedReader::from_bytes("x", &out, &keys).unwrap();
            let e = r.read_to_vec_with(threaded).unwrap_err();
            assert!(is_mismatch(&e), "threaded {threaded}: {e}");
            assert!(e.is_integrity_failure());
            let r = crate::SealedReader::open(&f, &keys).unwrap();
            let e = r.verify_with(threaded, &mut |_, _| {}).unwrap_err();
            assert!(is_mismatch(&e), "threaded {threaded}: {e}");
            let r = crate::SealedReader::open(&f, &keys).unwrap();
            let e = crate::open::unseal_reader(r, &f, &o, threaded, &mut |_, _| {}).unwrap_err();
            assert!(is_mismatch(&e), "threaded {threaded}: {e}");
            assert!(!o.exists());
            assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
        }
        for e in [
            crate::verify_sealed(&f, &keys).unwrap_err(),
            crate::open_in_memory(&f, &keys).unwrap_err(),
            crate::unseal_bytes("x", &out, &keys).unwrap_err(),
            crate::unseal_file(&f, &o, &keys).unwrap_err(),
        ] {
            assert!(is_mismatch(&e), "{e}");
        }
        assert!(!o.exists());
        // Without the digest check the (authentic) blocks read fine.
        let r = crate::SealedReader::open(&f, &keys).unwrap();
        assert_eq!(r.with_digest_check(false).read_to_vec().unwrap(), plain);
    }

    /// Sealing with the hash on a second thread or inline gives files that open the
    /// same, for several sizes and block sizes, through every reading path.
    #[test]
    fn threaded_and_inline_paths_agree() {
        let keys = keys();
        let big = big_plain();
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("p.bin");
        let sealed_path = dir.path().join("p.bin.ava3");
        let back = dir.path().join("back.bin");
        let sizes = [
            0usize,
            1,
            4096,
            256 << 10,
            (256 << 10) + 1,
            1 << 20,
            big.len(),
        ];
        for block_size in [4096u32, 64 << 10, 1 << 20] {
            let opts = SealOptions {
                block_size,
                ..SealOptions::default()
            };
            for &n in &sizes {
                let plain = &big[..n];
                let sha: [u8; 32] = Sha256::digest(plain).into();
                std::fs::write(&src, plain).unwrap();
                for threaded in [false, true] {
                    let what = format!("block {block_size}, {n} bytes, threaded {threaded}");
                    let sealed = seal_bytes_with(plain, &keys, &opts, threaded).unwrap();
                    let r = crate::SealedReader::from_bytes("x", &sealed, &keys).unwrap();
                    assert_eq!(r.plaintext_sha256(), sha, "{what}");
                    assert_eq!(r.read_to_vec_with(threaded).unwrap(), plain, "{what}");
                    let r = crate::SealedReader::from_bytes("x", &sealed, &keys).unwrap();
                    assert_eq!(r.read_to_vec_with(!threaded).unwrap(), plain, "{what}");

                    let sk = SealKey::new(&keys, &opts).unwrap();
                    let mut seen = Vec::new();
                    let rep = seal_one(
                        &src,
                        &sealed_path,
                        &sk,
                        &opts,
                        Some(threaded),
                        &mut |d, t| seen.push((d, t)),
                    )
                    .unwrap();
                    assert_eq!(rep.plaintext_sha256, sha, "{what}");
                    assert_eq!(seen.last(), Some(&(n as u64, n as u64)), "{what}");
                    let file = std::fs::read(&sealed_path).unwrap();
                    assert_eq!(file.len(), sealed.len(), "{what}");
                    // Same layout as seal_bytes apart from the random file nonce.
                    assert_eq!(file[..64], sealed[..64], "{what}");

                    let mut seen = Vec::new();
                    let r = crate::SealedReader::open(&sealed_path, &keys).unwrap();
                    let info = r
                        .verify_with(threaded, &mut |d, t| seen.push((d, t)))
                        .unwrap();
                    assert_eq!(info.plaintext_sha256, sha, "{what}");
                    assert!(seen.windows(2).all(|w| w[0].0 <= w[1].0), "{what}");
                    assert_eq!(seen.last(), Some(&(n as u64, n as u64)), "{what}");

                    let r = crate::SealedReader::open(&sealed_path, &keys).unwrap();
                    let info = crate::open::unseal_reader(
                        r,
                        &sealed_path,
                        &back,
                        threaded,
                        &mut |_, _| {},
                    )
                    .unwrap();
                    assert_eq!(info.plaintext_sha256, sha, "{what}");
                    assert_eq!(std::fs::read(&back).unwrap(), plain, "{what}");
                }
            }
        }
    }

    /// A damaged block in a later chunk is reported with its index, before the digest,
    /// on both paths; unsealing leaves no output.
    #[test]
    fn damaged_block_in_a_later_chunk_threaded_or_not() {
        let keys = keys();
        let plain = big_plain();
        let mut sealed = crate::seal_bytes(&plain, &keys, &SealOptions::default()).unwrap();
        let bad = 37u64;
        let at = HEADER_LEN + bad as usize * (DEFAULT_BLOCK_SIZE as usize + TAG_LEN) + 1000;
        sealed[at] ^= 0x20;
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("m.ava3");
        std::fs::write(&f, &sealed).unwrap();
        let o = dir.path().join("m.bin");
        let block_auth =
            |e: &SealError| matches!(e, SealError::BlockAuth { block, .. } if *block == bad);
        for threaded in [false, true] {
            for check in [false, true] {
                let r = crate::SealedReader::from_bytes("x", &sealed, &keys).unwrap();
                let e = r
                    .with_digest_check(check)
                    .read_to_vec_with(threaded && check)
                    .unwrap_err();
                assert!(block_auth(&e), "{e}");
            }
            let r = crate::SealedReader::open(&f, &keys).unwrap();
            let e = r.verify_with(threaded, &mut |_, _| {}).unwrap_err();
            assert!(block_auth(&e), "{e}");
            let r = crate::SealedReader::open(&f, &keys).unwrap();
            let e = crate::open::unseal_reader(r, &f, &o, threaded, &mut |_, _| {}).unwrap_err();
            assert!(block_auth(&e), "{e}");
            assert!(!o.exists());
        }
    }
}
