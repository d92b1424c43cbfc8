//! Hugging Face safetensors checkpoints, read from read-only memory maps.
//!
//! [`HfTensors::open`] takes a checkpoint directory holding, in this order of
//! preference:
//! 1. `model.safetensors.index.json` and the shards its `weight_map` names;
//! 2. `model.safetensors`;
//! 3. exactly one `*.safetensors.index.json` (and its shards), or else exactly one
//!    `*.safetensors` file.
//!
//! A path to a `.safetensors` file or to an `*.index.json` file is accepted too.
//! [`HfTensors::from_bytes`] and [`HfTensors::from_index_bytes`] read the same two
//! layouts from memory (fuzzing, tests), through the same header and index checks.
//!
//! Every shard header is parsed and validated by the `safetensors` crate at open
//! (offsets contiguous, sizes matching dtype × shape, the data ending exactly at the
//! end of the file); tensor bytes are never copied until asked for. Shards are kept in
//! file-name order and [`HfTensors::tensors`] lists tensors shard by shard in the order
//! of their data in the file, which is the order that reads the maps sequentially.
//! [`HfTensors::release`] drops a tensor's resident pages once it has been converted, so
//! streaming through a checkpoint larger than RAM keeps the resident set small.

use crate::FormatError;
use alc_core::DType;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fs::File;
use std::path::{Path, PathBuf};

/// The element type of a safetensors tensor (re-exported from the `safetensors` crate).
pub use ::safetensors::Dtype;

/// Dtypes [`HfTensors::to_f32`] converts.
pub const F32_CONVERTIBLE: &str = "F32, F16, BF16, F64";

/// Bytes before the JSON header of a safetensors file (its u64 length).
const LEN_PREFIX: usize = 8;

/// One tensor of the checkpoint.
#[derive(Clone, Debug, PartialEq)]
pub struct HfTensor {
    pub name: String,
    pub dtype: Dtype,
    /// As in the file: PyTorch order, outermost first (`[rows, cols]` for a matrix).
    /// The reverse of ggml's `dims`.
    pub shape: Vec<u64>,
    /// Index into [`HfTensors::shards`].
    pub shard: usize,
    /// Byte range of the data inside the shard file.
    start: usize,
    len: usize,
}

impl HfTensor {
    pub fn n_elements(&self) -> u64 {
        self.shape.iter().product()
    }
    /// Size of the data in bytes.
    pub fn n_bytes(&self) -> u64 {
        self.len as u64
    }
    /// Absolute offset of the data inside its shard file.
    pub fn file_offset(&self) -> u64 {
        self.start as u64
    }
    /// The ggml type with the same element layout (little-endian), for tensors that can
    /// be copied into a GGUF file unchanged: F32, F16, BF16, F64, I8, I16, I32, I64.
    pub fn core_dtype(&self) -> Option<DType> {
        Some(match self.dtype {
            Dtype::F32 => DType::F32,
            Dtype::F16 => DType::F16,
            Dtype::BF16 => DType::BF16,
            Dtype::F64 => DType::F64,
            Dtype::I8 => DType::I8,
            Dtype::I16 => DType::I16,
            Dtype::I32 => DType::I32,
            Dtype::I64 => DType::I64,
            _ => return None,
        })
    }
}

enum Map {
    Mmap(memmap2::Mmap),
    /// Bytes in memory ([`HfTensors::from_bytes`]), or a zero-length file (it cannot
    /// be mapped; its header check fails).
    Owned(Vec<u8>),
}

impl std::ops::Deref for Map {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match self {
            Map::Mmap(m) => m,
            Map::Owned(v) => v,
        }
    }
}

struct Shard {
    path: PathBuf,
    map: Map,
}

/// An opened checkpoint; see the module documentation.
pub struct HfTensors {
    dir: PathBuf,
    index_path: Option<PathBuf>,
    shards: Vec<Shard>,
    tensors: Vec<HfTensor>,
    by_name: HashMap<String, usize>,
}

impl std::fmt::Debug for HfTensors {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HfTensors")
            .field("dir", &self.dir)
            .field("index", &self.index_path)
            .field("shards", &self.shards.len())
            .field("tensors", &self.tensors.len())
            .finish()
    }
}

#[derive(serde::Deserialize)]
struct IndexJson {
    weight_map: BTreeMap<String, String>,
}

fn io_err(path: &Path) -> impl Fn(std::io::Error) -> FormatError + '_ {
    move |source| FormatError::Io {
        path: path.to_path_buf(),
        source,
    }
}

fn file_name(p: &Path) -> String {
    p.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| p.display().to_string())
}

/// Parse and validate the header of one shard, given the shard's whole bytes (`path`
/// labels errors, `index` is the shard's place in [`HfTensors::shards`]); returns
/// its tensors in data order. The one header parser of the file and memory paths.
fn parse_shard(bytes: &[u8], path: &Path, index: usize) -> Result<Vec<HfTensor>, FormatError> {
    let (n, meta) = ::safetensors::SafeTensors::read_metadata(bytes).map_err(|e| {
        FormatError::BadSafetensors {
            path: path.to_path_buf(),
            what: e.to_string(),
        }
    })?;
    // `read_metadata` checked that the data section (contiguous tensors, each of
    // exactly dtype × shape bytes, computed without overflow) ends at the end of
    // `bytes`, so every range below lies inside it.
    let data_start = LEN_PREFIX + n;
    let mut tensors = Vec::new();
    for name in meta.offset_keys() {
        let Some(info) = meta.info(&name) else {
            continue;
        };
        let (s, e) = info.data_offsets;
        tensors.push(HfTensor {
            dtype: info.dtype,
            shape: info.shape.iter().map(|&d| d as u64).collect(),
            shard: index,
            start: data_start + s,
            len: e - s,
            name,
        });
    }
    Ok(tensors)
}

/// Map one shard file and parse its header; returns the shard and its tensors in data
/// order.
fn open_shard(path: PathBuf, index: usize) -> Result<(Shard, Vec<HfTensor>), FormatError> {
    let file = File::open(&path).map_err(io_err(&path))?;
    let len = file.metadata().map_err(io_err(&path))?.len();
    let map = if len == 0 {
        Map::Owned(Vec::new())
    } else {
        // SAFETY: the map is read-only; a file truncated or rewritten by another
        // process while mapped is outside what any mmap-based loader can defend
        // against (the same stance as `GgufFile::open`).
        Map::Mmap(unsafe { memmap2::Mmap::map(&file) }.map_err(io_err(&path))?)
    };
    let tensors = parse_shard(&map, &path, index)?;
    Ok((Shard { path, map }, tensors))
}

/// The directory that holds `file` (`.` for a bare file name).
fn parent_dir(file: &Path) -> PathBuf {
    match file.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// Names in `dir` that end with `suffix`, sorted.
fn list_with_suffix(dir: &Path, suffix: &str) -> Result<Vec<String>, FormatError> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(io_err(dir))? {
        let entry = entry.map_err(io_err(dir))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.ends_with(suffix) && entry.path().is_file() {
            out.push(name);
        }
    }
    out.sort();
    Ok(out)
}

enum Layout {
    Single(PathBuf),
    Index(PathBuf),
}

fn locate(path: &Path) -> Result<Layout, FormatError> {
    let meta = match std::fs::metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(FormatError::CheckpointNotFound {
                path: path.to_path_buf(),
            })
        }
        Err(e) => return Err(io_err(path)(e)),
    };
    if meta.is_file() {
        return Ok(if file_name(path).ends_with(".index.json") {
            Layout::Index(path.to_path_buf())
        } else {
            Layout::Single(path.to_path_buf())
        });
    }
    let index = path.join("model.safetensors.index.json");
    if index.is_file() {
        return Ok(Layout::Index(index));
    }
    let single = path.join("model.safetensors");
    if single.is_file() {
        return Ok(Layout::Single(single));
    }
    let indexes = list_with_suffix(path, ".safetensors.index.json")?;
    match indexes.len() {
        0 => {}
        1 => return Ok(Layout::Index(path.join(&indexes[0]))),
        count => {
            return Err(FormatError::AmbiguousCheckpoint {
                path: path.to_path_buf(),
                count,
                files: indexes.join(", "),
            })
        }
    }
    let files = list_with_suffix(path, ".safetensors")?;
    match files.len() {
        0 => Err(FormatError::NoSafetensors {
            path: path.to_path_buf(),
        }),
        1 => Ok(Layout::Single(path.join(&files[0]))),
        count => Err(FormatError::AmbiguousCheckpoint {
            path: path.to_path_buf(),
            count,
            files: files.join(", "),
        }),
    }
}

/// A shard name from an index must be a plain file name in the checkpoint directory.
fn plain_file_name(name: &str) -> bool {
    let mut c = Path::new(name).components();
    matches!(
        (c.next(), c.next()),
        (Some(std::path::Component::Normal(n)), None) if n == std::ffi::OsStr::new(name)
    )
}

impl HfTensors {
    /// Open a checkpoint directory (or one `.safetensors` / `*.index.json` file).
    pub fn open(path: impl AsRef<Path>) -> Result<Self, FormatError> {
        let path = path.as_ref();
        match locate(path)? {
            Layout::Single(file) => {
                let dir = file
                    .parent()
                    .map(Path::to_path_buf)
                    .unwrap_or_else(|| PathBuf::from("."));
                let (shard, tensors) = open_shard(file, 0)?;
                Self::build(dir, None, vec![shard], vec![tensors])
            }
            Layout::Index(index) => {
                let text = std::fs::read(&index).map_err(io_err(&index))?;
                Self::with_index(index, &text, |_, path, i| {
                    if !path.is_file() {
                        return Ok(None);
                    }
                    open_shard(path, i).map(Some)
                })
            }
        }
    }

    /// A single-file checkpoint held in memory: `bytes` is a whole `.safetensors`
    /// file, validated as [`open`](Self::open) validates a file (same parser). `name`
    /// is the shard's path in [`shards`](Self::shards) and error messages; the
    /// filesystem is not touched. [`release`](Self::release) is a no-op.
    pub fn from_bytes(name: impl Into<PathBuf>, bytes: Vec<u8>) -> Result<Self, FormatError> {
        let path = name.into();
        let tensors = parse_shard(&bytes, &path, 0)?;
        let shard = Shard {
            path,
            map: Map::Owned(bytes),
        };
        Self::build(parent_dir(&shard.path), None, vec![shard], vec![tensors])
    }

    /// A sharded checkpoint held in memory: `index` is the text of the index file
    /// named `index_name` (e.g. `model.safetensors.index.json`), and `shards` maps each
    /// shard's file name, as the index's `weight_map` spells it, to its whole bytes.
    /// Validated as [`open`](Self::open) validates an index and its shards; shards
    /// the index does not name are ignored, a named one that is absent is
    /// [`FormatError::MissingShard`]. The filesystem is not touched.
    pub fn from_index_bytes(
        index_name: impl Into<PathBuf>,
        index: &[u8],
        shards: impl IntoIterator<Item = (String, Vec<u8>)>,
    ) -> Result<Self, FormatError> {
        let mut files: HashMap<String, Vec<u8>> = shards.into_iter().collect();
        Self::with_index(index_name.into(), index, |name, path, i| {
            let Some(bytes) = files.remove(name) else {
                return Ok(None);
            };
            let tensors = parse_shard(&bytes, &path, i)?;
            Ok(Some((
                Shard {
                    path,
                    map: Map::Owned(bytes),
                },
                tensors,
            )))
        })
    }

    /// Parse and check the index `text` of file `index`, then load every shard its
    /// `weight_map` names through `load(file name, path, shard index)` (`Ok(None)`: the shard
    /// does not exist) and check that each tensor is where the index says. Shared by
    /// the file and memory paths.
    fn with_index(
        index: PathBuf,
        text: &[u8],
        mut load: impl FnMut(
            &str,
            PathBuf,
            usize,
        ) -> Result<Option<(Shard, Vec<HfTensor>)>, FormatError>,
    ) -> Result<Self, FormatError> {
        let dir = parent_dir(&index);
        let index_name = file_name(&index);
        let bad = |what: String| FormatError::BadIndex {
            path: index.clone(),
            what,
        };
        let parsed: IndexJson =
            serde_json::from_slice(text).map_err(|e| bad(format!("invalid JSON: {e}")))?;
        if parsed.weight_map.is_empty() {
            return Err(bad("its weight_map is empty".into()));
        }
        let mut names = BTreeSet::new();
        for (tensor, shard) in &parsed.weight_map {
            if !plain_file_name(shard) {
                return Err(bad(format!(
                    "weight_map puts tensor '{tensor}' in '{shard}', which is not a file name \
                     inside the checkpoint directory"
                )));
            }
            names.insert(shard.as_str());
        }
        let mut shards = Vec::with_capacity(names.len());
        let mut lists = Vec::with_capacity(names.len());
        let mut shard_of = HashMap::with_capacity(names.len());
        for (i, name) in names.into_iter().enumerate() {
            let Some((shard, tensors)) = load(name, dir.join(name), i)? else {
                return Err(FormatError::MissingShard {
                    index: index.clone(),
                    shard: name.to_string(),
                });
            };
            shard_of.insert(name, i);
            shards.push(shard);
            lists.push(tensors);
        }
        let present: std::collections::HashSet<(usize, &str)> = lists
            .iter()
            .flatten()
            .map(|t| (t.shard, t.name.as_str()))
            .collect();
        for (tensor, shard) in &parsed.weight_map {
            let Some(&i) = shard_of.get(shard.as_str()) else {
                continue;
            };
            if !present.contains(&(i, tensor.as_str())) {
                return Err(FormatError::TensorNotInShard {
                    path: shards[i].path.clone(),
                    tensor: tensor.clone(),
                    index: index_name,
                });
            }
        }
        Self::build(dir, Some(index), shards, lists)
    }

    fn build(
        dir: PathBuf,
        index_path: Option<PathBuf>,
        shards: Vec<Shard>,
        lists: Vec<Vec<HfTensor>>,
    ) -> Result<Self, FormatError> {
        let total = lists.iter().map(Vec::len).sum();
        let mut tensors: Vec<HfTensor> = Vec::with_capacity(total);
        let mut by_name = HashMap::with_capacity(total);
        for t in lists.into_iter().flatten() {
            if let Some(&j) = by_name.get(&t.name) {
                let first: &HfTensor = &tensors[j];
                return Err(FormatError::DuplicateTensor {
                    tensor: t.name.clone(),
                    first: shards[first.shard].path.clone(),
                    second: shards[t.shard].path.clone(),
                });
            }
            by_name.insert(t.name.clone(), tensors.len());
            tensors.push(t);
        }
        Ok(HfTensors {
            dir,
            index_path,
            shards,
            tensors,
            by_name,
        })
    }

    /// The checkpoint directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
    /// The index file, for a sharded checkpoint.
    pub fn index_path(&self) -> Option<&Path> {
        self.index_path.as_deref()
    }
    /// The shard files, in file-name order ([`HfTensor::shard`] indexes this).
    pub fn shards(&self) -> Vec<&Path> {
        self.shards.iter().map(|s| s.path.as_path()).collect()
    }
    /// Every tensor, shard by shard, in the order of their data in the file.
    pub fn tensors(&self) -> &[HfTensor] {
        &self.tensors
    }
    pub fn len(&self) -> usize {
        self.tensors.len()
    }
    pub fn is_empty(&self) -> bool {
        self.tensors.is_empty()
    }
    pub fn get(&self, name: &str) -> Option<&HfTensor> {
        self.by_name.get(name).map(|&i| &self.tensors[i])
    }

    /// The tensor, or an error naming the checkpoint.
    pub fn tensor(&self, name: &str) -> Result<&HfTensor, FormatError> {
        self.get(name).ok_or_else(|| FormatError::UnknownTensor {
            path: self.index_path.clone().unwrap_or_else(|| {
                self.shards
                    .first()
                    .map(|s| s.path.clone())
                    .unwrap_or_else(|| self.dir.clone())
            }),
            tensor: name.to_string(),
        })
    }

    /// The bytes of a tensor as stored (little-endian, row-major, PyTorch order).
    pub fn data(&self, t: &HfTensor) -> &[u8] {
        self.shards
            .get(t.shard)
            .and_then(|s| s.map.get(t.start..t.start + t.len))
            .unwrap_or(&[])
    }

    /// A tensor's dtype and bytes, by name.
    pub fn raw(&self, name: &str) -> Result<(Dtype, &[u8]), FormatError> {
        let t = self.tensor(name)?;
        Ok((t.dtype, self.data(t)))
    }

    /// A tensor converted to f32 (F32, F16 and BF16 exactly; F64 rounded to nearest).
    /// Other dtypes give [`FormatError::UnsupportedDtype`].
    pub fn to_f32(&self, name: &str) -> Result<Vec<f32>, FormatError> {
        let mut out = Vec::new();
        self.to_f32_into(name, &mut out)?;
        Ok(out)
    }

    /// [`to_f32`](Self::to_f32) into a reused buffer (cleared first).
    pub fn to_f32_into(&self, name: &str, out: &mut Vec<f32>) -> Result<(), FormatError> {
        let n = self.tensor(name)?.n_elements() as usize;
        self.range_f32_into(name, 0..n, out)
    }

    /// Elements `range` (in storage order: rows `r0..r1` of a `[rows, cols]` matrix
    /// are `r0 * cols..r1 * cols`) converted to f32 into a reused buffer (cleared
    /// first), so a converter can stream a big tensor in blocks. Conversion as
    /// [`to_f32`](Self::to_f32); a range past the tensor is clamped to its elements.
    pub fn range_f32_into(
        &self,
        name: &str,
        range: std::ops::Range<usize>,
        out: &mut Vec<f32>,
    ) -> Result<(), FormatError> {
        let t = self.tensor(name)?;
        let esize = match t.dtype {
            Dtype::F32 => 4,
            Dtype::BF16 | Dtype::F16 => 2,
            Dtype::F64 => 8,
            other => {
                return Err(FormatError::UnsupportedDtype {
                    path: self.shards[t.shard].path.clone(),
                    tensor: t.name.clone(),
                    dtype: other.to_string(),
                    supported: F32_CONVERTIBLE,
                })
            }
        };
        let all = self.data(t);
        let end = range.end.min(all.len() / esize);
        let bytes = &all[range.start.min(end) * esize..end * esize];
        out.clear();
        match t.dtype {
            Dtype::F32 => out.extend(
                bytes
                    .chunks_exact(4)
                    .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])),
            ),
            Dtype::BF16 => out.extend(
                bytes
                    .chunks_exact(2)
                    .map(|c| f32::from_bits(u32::from(u16::from_le_bytes([c[0], c[1]])) << 16)),
            ),
            Dtype::F16 => f16_to_f32(bytes, out),
            _ => out.extend(
                bytes
                    .chunks_exact(8)
                    .map(|c| f64::from_le_bytes(c.try_into().unwrap_or([0; 8])) as f32),
            ),
        }
        Ok(())
    }

    /// Drop the resident pages of a tensor's bytes (`MADV_DONTNEED` on the whole pages
    /// inside its range; Unix only, a no-op elsewhere). Call it after converting the
    /// tensor. Slices handed out earlier stay valid: a later read faults the pages back
    /// in from the file, unchanged. Errors only for an unknown name.
    pub fn release(&self, name: &str) -> Result<(), FormatError> {
        let t = self.tensor(name)?;
        if let Some(Shard {
            map: Map::Mmap(m), ..
        }) = self.shards.get(t.shard)
        {
            crate::pages::release_range(m, t.start, t.len);
        }
        Ok(())
    }
}

/// IEEE half to f32 (exact), through `half`'s slice conversion (F16C when the CPU has
/// it), in stack-sized chunks because the bytes need not be 2-byte aligned.
fn f16_to_f32(bytes: &[u8], out: &mut Vec<f32>) {
    use half::slice::HalfFloatSliceExt;
    const CHUNK: usize = 1024;
    let mut tmp = [half::f16::ZERO; CHUNK];
    out.reserve(bytes.len() / 2);
    for chunk in bytes.chunks(2 * CHUNK) {
        let n = chunk.len() / 2;
        for (d, c) in tmp.iter_mut().zip(chunk.chunks_exact(2)) {
            *d = half::f16::from_bits(u16::from_le_bytes([c[0], c[1]]));
        }
        let at = out.len();
        out.resize(at + n, 0.0);
        tmp[..n].convert_to_f32_slice(&mut out[at..]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ::safetensors::tensor::TensorView;

    fn file(tensors: &[(&str, Dtype, Vec<usize>, Vec<u8>)]) -> Vec<u8> {
        let views: Vec<(&str, TensorView<'_>)> = tensors
            .iter()
            .map(|(n, d, s, b)| (*n, TensorView::new(*d, s.clone(), b).unwrap()))
            .collect();
        ::safetensors::serialize(views, None).unwrap()
    }

    fn two() -> Vec<u8> {
        file(&[
            (
                "a",
                Dtype::F32,
                vec![2],
                [1f32, -2.0].iter().flat_map(|x| x.to_le_bytes()).collect(),
            ),
            ("b", Dtype::BF16, vec![1, 1], vec![0x80, 0x3f]),
        ])
    }

    #[test]
    fn from_bytes_reads_what_open_reads() {
        let bytes = two();
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("model.safetensors"), &bytes).unwrap();
        let opened = HfTensors::open(dir.path()).unwrap();
        let mem = HfTensors::from_bytes("model.safetensors", bytes.clone()).unwrap();
        assert_eq!(mem.tensors().len(), 2);
        for (a, b) in opened.tensors().iter().zip(mem.tensors()) {
            assert_eq!(
                (a.name.as_str(), a.dtype, &a.shape),
                (b.name.as_str(), b.dtype, &b.shape)
            );
            assert_eq!(
                (a.file_offset(), a.n_bytes()),
                (b.file_offset(), b.n_bytes())
            );
            assert_eq!(opened.data(a), mem.data(b));
        }
        assert_eq!(mem.to_f32("a").unwrap(), [1.0, -2.0]);
        assert_eq!(mem.to_f32("b").unwrap(), [1.0]);
        assert_eq!(mem.shards(), [Path::new("model.safetensors")]);
        assert_eq!(mem.dir(), Path::new("."));
        mem.release("a").unwrap();
        assert_eq!(mem.to_f32("a").unwrap(), [1.0, -2.0]);
    }

    #[test]
    fn from_bytes_validates_like_open() {
        let mut bytes = two();
        bytes.pop();
        let e = HfTensors::from_bytes("x.safetensors", bytes).unwrap_err();
        assert!(
            matches!(&e, FormatError::BadSafetensors { path, .. } if path == Path::new("x.safetensors")),
            "{e}"
        );
        let e = HfTensors::from_bytes("x.safetensors", Vec::new()).unwrap_err();
        assert!(matches!(e, FormatError::BadSafetensors { .. }), "{e}");
    }

    #[test]
    fn from_index_bytes_reads_shards_by_name() {
        let s1 = two();
        let s2 = file(&[("c", Dtype::F16, vec![1], vec![0x00, 0x3c])]);
        let index = br#"{"weight_map": {"a": "m-1.safetensors", "b": "m-1.safetensors",
                        "c": "m-2.safetensors"}}"#;
        let shards = || {
            [
                ("m-2.safetensors".to_string(), s2.clone()),
                ("m-1.safetensors".to_string(), s1.clone()),
                ("unused.safetensors".to_string(), Vec::new()),
            ]
        };
        let h = HfTensors::from_index_bytes("dir/model.safetensors.index.json", index, shards())
            .unwrap();
        assert_eq!(
            h.shards(),
            [
                Path::new("dir/m-1.safetensors"),
                Path::new("dir/m-2.safetensors")
            ]
        );
        assert_eq!(h.get("c").unwrap().shard, 1);
        assert_eq!(h.to_f32("c").unwrap(), [1.0]);
        assert_eq!(
            h.index_path(),
            Some(Path::new("dir/model.safetensors.index.json"))
        );

        let missing = HfTensors::from_index_bytes(
            "model.safetensors.index.json",
            index,
            [("m-1.safetensors".to_string(), s1.clone())],
        )
        .unwrap_err();
        assert!(
            matches!(&missing, FormatError::MissingShard { shard, .. } if shard == "m-2.safetensors"),
            "{missing}"
        );
        let wrong = br#"{"weight_map": {"c": "m-1.safetensors"}}"#;
        let e = HfTensors::from_index_bytes("i.json", wrong, shards()).unwrap_err();
        assert!(matches!(e, FormatError::TensorNotInShard { .. }), "{e}");
        let escape = br#"{"weight_map": {"c": "../m-2.safetensors"}}"#;
        let e = HfTensors::from_index_bytes("i.json", escape, shards()).unwrap_err();
        assert!(matches!(e, FormatError::BadIndex { .. }), "{e}");
    }
}
