//! Opening: header reads, the block reader, verification, unsealing.

use crate::cipher::FileCipher;
use crate::header::{Header, HEADER_LEN, MAGIC, TAG_LEN};
use crate::key::KeySource;
use crate::pipe::{self, ChunkHasher};
use crate::{Result, SealError};
use alc_format::AtomicFile;
use sha2::{Digest, Sha256};
use std::fs::File;
use std::io::{self, Cursor, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use zeroize::Zeroizing;

/// What a full verification established.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SealInfo {
    /// The header (authenticated).
    pub header: Header,
    /// SHA-256 of the plaintext (decrypted from the header and checked against the
    /// data).
    pub plaintext_sha256: [u8; 32],
    /// Size of the sealed file.
    pub sealed_len: u64,
}

/// Reads up to `buf.len()` bytes; returns how many (fewer only at end of input).
fn read_up_to(r: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut got = 0;
    while got < buf.len() {
        match r.read(&mut buf[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(got)
}

/// The header of a sealed file, without a key (so not authenticated).
pub fn read_header(path: &Path) -> Result<Header> {
    let mut f = File::open(path).map_err(|e| SealError::io("opening", path, e))?;
    let mut b = [0u8; HEADER_LEN];
    let n = read_up_to(&mut f, &mut b).map_err(|e| SealError::io("reading", path, e))?;
    Header::parse(path, &b[..n])
}

/// True when the file starts with the sealed magic (`AVA3SEAL`). False for a file
/// that cannot be read.
pub fn is_sealed(path: &Path) -> bool {
    let mut b = [0u8; 8];
    File::open(path)
        .and_then(|mut f| read_up_to(&mut f, &mut b))
        .is_ok_and(|n| n == MAGIC.len() && b == MAGIC)
}

/// A reader of the plaintext of a sealed file that decrypts and authenticates one
/// block at a time, on demand. `Read` and `Seek` work in plaintext offsets; an error
/// (an altered block, the file shrinking under it) is an `io::Error` of kind
/// `InvalidData` wrapping the [`SealError`].
///
/// When every block has been read in order from the first (as `read_to_end` does,
/// seeks in between are fine), reading the last block also checks the plaintext
/// SHA-256 against the header and fails with [`SealError::HashMismatch`].
pub struct SealedReader<R> {
    inner: R,
    path: PathBuf,
    header: Header,
    cipher: FileCipher,
    digest: [u8; 32],
    /// The decrypted block `cached` (its plaintext length is `block_len(cached)`).
    plain: Zeroizing<Vec<u8>>,
    cached: Option<u64>,
    /// Plaintext position.
    pos: u64,
    /// Running hash of blocks 0..hashed.
    hasher: Sha256,
    hashed: u64,
    /// The digest check failed; every later block read fails too.
    digest_failed: Option<[u8; 32]>,
    /// Whether to hash the plaintext and check the header's SHA-256.
    check_digest: bool,
    /// Sealed bytes of a chunk of blocks (ciphertext and tags, nothing secret).
    stage: Vec<u8>,
}

impl<R> std::fmt::Debug for SealedReader<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SealedReader")
            .field("path", &self.path)
            .field("header", &self.header)
            .field("pos", &self.pos)
            .finish()
    }
}

impl SealedReader<File> {
    /// Opens a sealed file; see [`SealedReader::new`].
    pub fn open(path: &Path, keys: &KeySource) -> Result<Self> {
        let f = File::open(path).map_err(|e| SealError::io("opening", path, e))?;
        SealedReader::new(path, f, keys)
    }
}

impl<'a> SealedReader<Cursor<&'a [u8]>> {
    /// A reader over a sealed file held in memory (`name` is used in errors).
    pub fn from_bytes(
        name: impl Into<PathBuf>,
        sealed: &'a [u8],
        keys: &KeySource,
    ) -> Result<Self> {
        SealedReader::new(name, Cursor::new(sealed), keys)
    }
}

impl<R: Read + Seek> SealedReader<R> {
    /// Reads and checks the header, picks the key by its id, authenticates the header,
    /// and checks the sealed size against the plaintext length (truncated or extended
    /// files are refused here, before any block is read). `path` names the source in
    /// errors.
    pub fn new(path: impl Into<PathBuf>, mut inner: R, keys: &KeySource) -> Result<Self> {
        let path = path.into();
        let mut b = [0u8; HEADER_LEN];
        inner
            .seek(SeekFrom::Start(0))
            .map_err(|e| SealError::io("seeking in", &path, e))?;
        let n = read_up_to(&mut inner, &mut b).map_err(|e| SealError::io("reading", &path, e))?;
        let header = Header::parse(&path, &b[..n])?;
        let key = keys.opening_key(&path, &header)?;
        let cipher = FileCipher::new(&key, &header);
        drop(key);
        let digest = cipher
            .open_digest(&header)
            .map_err(|_| SealError::HeaderTampered { path: path.clone() })?;
        // Room for one block up front, so the block buffer never reallocates (a
        // reallocation would leave plaintext behind in freed memory).
        let cap = u64::from(header.block_size).min(header.plaintext_len) as usize;
        let mut r = SealedReader {
            inner,
            path,
            plain: Zeroizing::new(Vec::with_capacity(cap)),
            header,
            cipher,
            digest,
            cached: None,
            pos: 0,
            hasher: Sha256::new(),
            hashed: 0,
            digest_failed: None,
            check_digest: true,
            stage: Vec::new(),
        };
        let len = r
            .inner
            .seek(SeekFrom::End(0))
            .map_err(|e| SealError::io("seeking in", &r.path, e))?;
        r.check_size(len)?;
        Ok(r)
    }

    fn check_size(&self, len: u64) -> Result<()> {
        let h = &self.header;
        let expected = h.sealed_len();
        if len < expected {
            return Err(SealError::Truncated {
                path: self.path.clone(),
                expected_blocks: h.blocks(),
                expected_bytes: expected,
                got_blocks: h.complete_blocks(len),
                got_bytes: len,
            });
        }
        if len > expected {
            return Err(SealError::Extended {
                path: self.path.clone(),
                expected_bytes: expected,
                got_bytes: len,
            });
        }
        Ok(())
    }

    /// Whether reading checks the plaintext SHA-256 (default: yes). Without it, every
    /// block is still authenticated by its GCM tag, bound to its position, to this
    /// file and to the authenticated length, which already detects any change; the
    /// SHA-256 is a second, independent check (against a faulty sealer) that costs
    /// about as much CPU as the decryption itself. [`Self::read_to_vec`] runs it on a
    /// second thread for large files, so it costs a core rather than wall time
    /// (docs/SEALED.md, "Performance"). [`Self::verify`] always checks it.
    pub fn with_digest_check(mut self, on: bool) -> Self {
        self.check_digest = on;
        self
    }

    /// The authenticated header.
    pub fn header(&self) -> &Header {
        &self.header
    }

    /// The plaintext SHA-256 recorded (encrypted and authenticated) in the header.
    pub fn plaintext_sha256(&self) -> [u8; 32] {
        self.digest
    }

    /// Plaintext length.
    pub fn len(&self) -> u64 {
        self.header.plaintext_len
    }

    /// True for an empty plaintext.
    pub fn is_empty(&self) -> bool {
        self.header.plaintext_len == 0
    }

    /// Reads block `i`'s ciphertext and tag into `dst` (its plaintext length) and
    /// decrypts it in place.
    fn decrypt_into(&mut self, i: u64, dst: &mut [u8]) -> Result<()> {
        let h = &self.header;
        debug_assert_eq!(dst.len(), h.block_len(i));
        let blocks = h.blocks();
        self.inner
            .seek(SeekFrom::Start(h.block_offset(i)))
            .map_err(|e| SealError::io("seeking in", &self.path, e))?;
        let mut tag = [0u8; TAG_LEN];
        let res = self
            .inner
            .read_exact(dst)
            .and_then(|_| self.inner.read_exact(&mut tag));
        if let Err(e) = res {
            if e.kind() == io::ErrorKind::UnexpectedEof {
                // The file shrank after it was opened.
                let len = self.inner.seek(SeekFrom::End(0)).unwrap_or(0);
                self.check_size(len)?;
            }
            return Err(SealError::io("reading", &self.path, e));
        }
        self.cipher
            .open_block(i, i + 1 == blocks, dst, &tag)
            .map_err(|_| SealError::BlockAuth {
                path: self.path.clone(),
                block: i,
                blocks,
            })
    }

    /// Reads blocks `first..first + count` with one seek and one read, authenticates
    /// each in order and decrypts it into its place in `dst` (their plaintext,
    /// `span_len(first, count)` bytes). On a failure the blocks before the failing
    /// one are in `dst`, the failing one is not written.
    fn read_chunk(&mut self, first: u64, count: u64, dst: &mut [u8]) -> Result<()> {
        let blocks = self.header.blocks();
        debug_assert!(first + count <= blocks);
        debug_assert_eq!(dst.len() as u64, self.header.span_len(first, count));
        let m = dst.len() + TAG_LEN * count as usize;
        self.stage.resize(m, 0);
        self.inner
            .seek(SeekFrom::Start(self.header.block_offset(first)))
            .map_err(|e| SealError::io("seeking in", &self.path, e))?;
        if let Err(e) = self.inner.read_exact(&mut self.stage) {
            if e.kind() == io::ErrorKind::UnexpectedEof {
                // The file shrank after it was opened.
                let len = self.inner.seek(SeekFrom::End(0)).unwrap_or(0);
                self.check_size(len)?;
            }
            return Err(SealError::io("reading", &self.path, e));
        }
        let (mut p, mut o) = (0, 0);
        for i in first..first + count {
            let n = self.header.block_len(i);
            let (ct, tag) = self.stage[o..o + n + TAG_LEN].split_at(n);
            let tag: &[u8; TAG_LEN] = tag.try_into().expect("a tag is 16 bytes");
            self.cipher
                .open_block_to(i, i + 1 == blocks, ct, &mut dst[p..p + n], tag)
                .map_err(|_| SealError::BlockAuth {
                    path: self.path.clone(),
                    block: i,
                    blocks,
                })?;
            p += n;
            o += n + TAG_LEN;
        }
        Ok(())
    }

    /// Reads every block in order, a chunk of blocks at a time, passes each chunk's
    /// authenticated plaintext to `sink`, and returns the plaintext SHA-256, computed
    /// on a second thread when `threaded` (it hashes chunk k while this thread reads,
    /// decrypts and sinks chunk k+1). Chunk buffers are reused and zeroised on drop.
    fn stream_chunks(
        &mut self,
        threaded: bool,
        sink: &mut dyn FnMut(&[u8]) -> Result<()>,
    ) -> Result<[u8; 32]> {
        let blocks = self.header.blocks();
        let per = pipe::blocks_per_chunk(self.header.block_size);
        let cap = self.header.span_len(0, per.min(blocks)) as usize;
        std::thread::scope(|scope| -> Result<[u8; 32]> {
            let mut hasher = ChunkHasher::<Zeroizing<Vec<u8>>>::new(scope, threaded);
            let mut pool = pipe::BufPool::new(cap);
            let mut i = 0;
            while i < blocks {
                let count = per.min(blocks - i);
                let n = self.header.span_len(i, count) as usize;
                let mut buf = pool.take(&mut hasher, n);
                self.read_chunk(i, count, &mut buf)?;
                sink(&buf)?;
                pool.hash(&mut hasher, buf);
                i += count;
            }
            Ok(hasher.finish())
        })
    }

    fn compare_digest(&self, got: &[u8; 32]) -> Result<()> {
        if *got != self.digest {
            return Err(SealError::HashMismatch {
                path: self.path.clone(),
                expected: hex::encode(self.digest),
                got: hex::encode(got),
            });
        }
        Ok(())
    }

    /// The plaintext of block `i`, authenticated (`i < header().blocks()`).
    pub fn read_block(&mut self, i: u64) -> Result<&[u8]> {
        let blocks = self.header.blocks();
        if i >= blocks {
            return Err(SealError::BadRequest {
                what: format!(
                    "{}: block {i} does not exist (the file has {blocks})",
                    self.path.display()
                ),
            });
        }
        if let Some(got) = self.digest_failed {
            self.compare_digest(&got)?;
        }
        let n = self.header.block_len(i);
        if self.cached != Some(i) {
            self.cached = None;
            let mut plain = std::mem::take(&mut self.plain);
            plain.resize(n, 0);
            let r = self.decrypt_into(i, &mut plain);
            self.plain = plain;
            r?;
            self.cached = Some(i);
            // Feed the running hash when this block is the next in order; after the
            // last block, compare with the header's digest.
            if self.check_digest && i == self.hashed {
                self.hasher.update(&self.plain[..n]);
                self.hashed += 1;
                if self.hashed == blocks {
                    let got: [u8; 32] = std::mem::take(&mut self.hasher).finalize().into();
                    if got != self.digest {
                        self.digest_failed = Some(got);
                        self.cached = None;
                        self.compare_digest(&got)?;
                    }
                }
            }
        }
        Ok(&self.plain[..n])
    }

    /// Reads every block in order into one buffer, authenticating each and checking
    /// the plaintext SHA-256 at the end. The buffer is the plaintext length, which was
    /// checked against the source's size at open, so a corrupt header cannot make it
    /// allocate more than the source holds.
    ///
    /// Blocks are decrypted straight into the buffer, a chunk (256 KiB) at a time;
    /// for large files the SHA-256 runs on a second thread, one chunk behind, so it
    /// costs a second core instead of doubling the time.
    pub fn read_to_vec(self) -> Result<Vec<u8>> {
        let threaded = self.check_digest && pipe::want_thread(self.header.plaintext_len);
        self.read_to_vec_with(threaded)
    }

    /// [`Self::read_to_vec`], hashing on a second thread when `threaded`.
    pub(crate) fn read_to_vec_with(mut self, threaded: bool) -> Result<Vec<u8>> {
        let len =
            usize::try_from(self.header.plaintext_len).map_err(|_| SealError::BadRequest {
                what: format!(
                    "{}: {} bytes do not fit in memory on this platform",
                    self.path.display(),
                    self.header.plaintext_len
                ),
            })?;
        let mut out = pipe::zeroed_vec(len);
        let blocks = self.header.blocks();
        let per = pipe::blocks_per_chunk(self.header.block_size);
        let check = self.check_digest;
        let got = std::thread::scope(|scope| -> Result<Option<[u8; 32]>> {
            let mut hasher = check.then(|| ChunkHasher::new(scope, threaded));
            let mut rest: &mut [u8] = &mut out;
            let mut i = 0;
            while i < blocks {
                let count = per.min(blocks - i);
                let n = self.header.span_len(i, count) as usize;
                let (chunk, tail) = std::mem::take(&mut rest).split_at_mut(n);
                rest = tail;
                self.read_chunk(i, count, chunk)?;
                if let Some(h) = &mut hasher {
                    // Authenticated plaintext, never written again.
                    let chunk: &[u8] = chunk;
                    h.feed(chunk);
                }
                i += count;
            }
            Ok(hasher.map(ChunkHasher::finish))
        })?;
        if let Some(got) = got {
            self.compare_digest(&got)?;
        }
        Ok(out)
    }

    /// Authenticates every block and the plaintext SHA-256 without keeping the
    /// plaintext; `progress(done, total)` gets plaintext bytes. The SHA-256 is always
    /// checked (on a second thread for large files).
    pub fn verify(self, progress: &mut dyn FnMut(u64, u64)) -> Result<SealInfo> {
        let threaded = pipe::want_thread(self.header.plaintext_len);
        self.verify_with(threaded, progress)
    }

    /// [`Self::verify`], hashing on a second thread when `threaded`.
    pub(crate) fn verify_with(
        mut self,
        threaded: bool,
        progress: &mut dyn FnMut(u64, u64),
    ) -> Result<SealInfo> {
        let total = self.header.plaintext_len;
        let mut done = 0u64;
        let got = self.stream_chunks(threaded, &mut |chunk| {
            done += chunk.len() as u64;
            progress(done, total);
            Ok(())
        })?;
        self.compare_digest(&got)?;
        Ok(SealInfo {
            sealed_len: self.header.sealed_len(),
            plaintext_sha256: self.digest,
            header: self.header,
        })
    }

    /// The source back.
    pub fn into_inner(self) -> R {
        self.inner
    }
}

fn to_io(e: SealError) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, e)
}

impl<R: Read + Seek> Read for SealedReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() || self.pos >= self.header.plaintext_len {
            return Ok(0);
        }
        let bs = u64::from(self.header.block_size);
        let i = self.pos / bs;
        let off = (self.pos % bs) as usize;
        let data = self.read_block(i).map_err(to_io)?;
        let n = (data.len() - off).min(buf.len());
        buf[..n].copy_from_slice(&data[off..off + n]);
        self.pos += n as u64;
        Ok(n)
    }
}

impl<R: Read + Seek> Seek for SealedReader<R> {
    fn seek(&mut self, to: SeekFrom) -> io::Result<u64> {
        let new = match to {
            SeekFrom::Start(p) => Some(p),
            SeekFrom::End(d) => self.header.plaintext_len.checked_add_signed(d),
            SeekFrom::Current(d) => self.pos.checked_add_signed(d),
        };
        match new {
            Some(p) => {
                self.pos = p;
                Ok(p)
            }
            None => Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "seek to a negative or overflowing position",
            )),
        }
    }
}

/// The whole plaintext of a sealed file in memory (every block authenticated, the
/// SHA-256 checked); no plaintext touches the disk.
pub fn open_in_memory(path: &Path, keys: &KeySource) -> Result<Vec<u8>> {
    SealedReader::open(path, keys)?.read_to_vec()
}

/// The whole plaintext of a sealed file held in memory; `name` is used in errors.
pub fn unseal_bytes(name: &str, sealed: &[u8], keys: &KeySource) -> Result<Vec<u8>> {
    SealedReader::from_bytes(name, sealed, keys)?.read_to_vec()
}

/// [`verify_sealed_with`] without progress reports.
pub fn verify_sealed(path: &Path, keys: &KeySource) -> Result<SealInfo> {
    verify_sealed_with(path, keys, &mut |_, _| {})
}

/// Authenticates the whole file (header, size, every block, plaintext SHA-256)
/// without writing anything.
pub fn verify_sealed_with(
    path: &Path,
    keys: &KeySource,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<SealInfo> {
    SealedReader::open(path, keys)?.verify(progress)
}

/// [`unseal_file_with`] without progress reports.
pub fn unseal_file(sealed: &Path, out: &Path, keys: &KeySource) -> Result<SealInfo> {
    unseal_file_with(sealed, out, keys, &mut |_, _| {})
}

/// Decrypts `sealed` into `out`. The plaintext goes to a temporary file in `out`'s
/// directory; only when every block authenticated, the length and the SHA-256 match,
/// it is fsynced and renamed over `out`. On any failure the temporary file is removed
/// and a file already at `out` is untouched.
pub fn unseal_file_with(
    sealed: &Path,
    out: &Path,
    keys: &KeySource,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<SealInfo> {
    let r = SealedReader::open(sealed, keys)?;
    let threaded = pipe::want_thread(r.len());
    unseal_reader(r, sealed, out, threaded, progress)
}

/// [`unseal_file_with`] on an open reader, hashing on a second thread when
/// `threaded`.
pub(crate) fn unseal_reader(
    mut r: SealedReader<File>,
    sealed: &Path,
    out: &Path,
    threaded: bool,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<SealInfo> {
    if let (Ok(a), Ok(b)) = (sealed.canonicalize(), out.canonicalize()) {
        if a == b {
            return Err(SealError::BadRequest {
                what: format!(
                    "the output {} is the sealed input; name another output",
                    out.display()
                ),
            });
        }
    }
    let total = r.len();
    let mut af = AtomicFile::create(out)?;
    let mut written = 0u64;
    // This thread reads, decrypts and writes chunk k+1 while the hash thread hashes
    // chunk k; nothing is renamed into place before the digest matched.
    let got = r.stream_chunks(threaded, &mut |data| {
        af.write_all(data).map_err(|e| af.error("writing", e))?;
        written += data.len() as u64;
        progress(written, total);
        Ok(())
    })?;
    r.compare_digest(&got)?;
    if written != total {
        return Err(SealError::BadRequest {
            what: format!(
                "{}: internal error: wrote {written} of {total} bytes",
                sealed.display()
            ),
        });
    }
    af.commit()?;
    Ok(SealInfo {
        sealed_len: r.header().sealed_len(),
        plaintext_sha256: r.plaintext_sha256(),
        header: r.header().clone(),
    })
}
