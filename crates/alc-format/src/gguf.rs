//! GGUF v2/v3 reader. Byte layout: docs/FORMAT.md ("GGUF container").

use crate::FormatError;
use alc_core::DType;
use std::collections::HashMap;
use std::fs::File;
use std::path::{Path, PathBuf};

const MAGIC: &[u8; 4] = b"GGUF";
/// ggml's limit on tensor rank.
pub const MAX_DIMS: u32 = 4;
/// Default alignment of the tensor data section.
pub const DEFAULT_ALIGNMENT: u64 = 32;
/// Nesting limit for arrays of arrays (GGUF writers use at most one level).
pub(crate) const MAX_ARRAY_DEPTH: u32 = 4;
/// Limit on the metadata array elements of one file, all arrays (nested ones included)
/// together. Each element becomes a 32-byte [`Value`], so without it a file could make
/// the parser allocate 32 times its own size (a 1 GiB array of u8 would ask for 32 GiB).
/// Real vocabularies stay far below: Gemma 3's 262 144 tokens, scores and types, or
/// Qwen 2.5's 151 936 tokens and 151 387 merges, are under a million elements in all.
pub const MAX_ARRAY_ELEMENTS: u64 = 1 << 24;
/// Limits on the key/value pairs and tensor records of one file. Each costs some 150
/// bytes once parsed (entry, name, index) against 13 or 27 bytes of file at least; real
/// models have tens of keys and at most a few thousand tensors.
pub const MAX_METADATA_KEYS: u64 = 1 << 20;
pub const MAX_TENSORS: u64 = 1 << 20;

/// A metadata value.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    U8(u8),
    I8(i8),
    U16(u16),
    I16(i16),
    U32(u32),
    I32(i32),
    F32(f32),
    Bool(bool),
    String(String),
    Array(Vec<Value>),
    U64(u64),
    I64(i64),
    F64(f64),
}

impl Value {
    /// Heap bytes this value owns (see [`alc_core::heap_alloc_bytes`]), not counting
    /// the `Value` itself.
    pub fn heap_bytes(&self) -> u64 {
        match self {
            Value::String(s) => alc_core::heap_alloc_bytes(s.capacity()),
            Value::Array(a) => {
                alc_core::heap_vec_bytes::<Value>(a.capacity())
                    + a.iter().map(Value::heap_bytes).sum::<u64>()
            }
            _ => 0,
        }
    }

    pub fn type_name(&self) -> &'static str {
        match self {
            Value::U8(_) => "u8",
            Value::I8(_) => "i8",
            Value::U16(_) => "u16",
            Value::I16(_) => "i16",
            Value::U32(_) => "u32",
            Value::I32(_) => "i32",
            Value::F32(_) => "f32",
            Value::Bool(_) => "bool",
            Value::String(_) => "string",
            Value::Array(_) => "array",
            Value::U64(_) => "u64",
            Value::I64(_) => "i64",
            Value::F64(_) => "f64",
        }
    }

    /// Any integer type that fits u64 without loss.
    pub fn as_u64(&self) -> Option<u64> {
        match *self {
            Value::U8(v) => Some(v as u64),
            Value::U16(v) => Some(v as u64),
            Value::U32(v) => Some(v as u64),
            Value::U64(v) => Some(v),
            Value::I8(v) if v >= 0 => Some(v as u64),
            Value::I16(v) if v >= 0 => Some(v as u64),
            Value::I32(v) if v >= 0 => Some(v as u64),
            Value::I64(v) if v >= 0 => Some(v as u64),
            Value::Bool(b) => Some(b as u64),
            _ => None,
        }
    }

    pub fn as_i64(&self) -> Option<i64> {
        match *self {
            Value::I8(v) => Some(v as i64),
            Value::I16(v) => Some(v as i64),
            Value::I32(v) => Some(v as i64),
            Value::I64(v) => Some(v),
            _ => self.as_u64().and_then(|v| i64::try_from(v).ok()),
        }
    }

    pub fn as_f64(&self) -> Option<f64> {
        match *self {
            Value::F32(v) => Some(v as f64),
            Value::F64(v) => Some(v),
            _ => self.as_i64().map(|v| v as f64),
        }
    }

    pub fn as_bool(&self) -> Option<bool> {
        match *self {
            Value::Bool(b) => Some(b),
            _ => None,
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::String(s) => Some(s),
            _ => None,
        }
    }

    pub fn as_array(&self) -> Option<&[Value]> {
        match self {
            Value::Array(a) => Some(a),
            _ => None,
        }
    }
}

/// One tensor's header entry.
#[derive(Clone, Debug, PartialEq)]
pub struct TensorInfo {
    pub name: String,
    /// ggml order: dims[0] is the contiguous (row) dimension.
    pub dims: Vec<u64>,
    pub dtype: DType,
    /// Offset from the start of the data section.
    pub offset: u64,
    /// Size in bytes of the tensor data.
    pub bytes: u64,
}

impl TensorInfo {
    pub fn n_elements(&self) -> u64 {
        self.dims.iter().product()
    }
    /// Row length (dims[0]) and number of rows (product of the rest).
    pub fn rows_cols(&self) -> (u64, u64) {
        let cols = self.dims.first().copied().unwrap_or(1);
        let rows = self.dims.iter().skip(1).product();
        (rows, cols)
    }
}

enum Bytes {
    Mmap(memmap2::Mmap),
    Owned(Vec<u8>),
}

impl std::ops::Deref for Bytes {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match self {
            Bytes::Mmap(m) => m,
            Bytes::Owned(v) => v,
        }
    }
}

/// An opened GGUF file: parsed header plus borrowed tensor data.
pub struct GgufFile {
    path: PathBuf,
    bytes: Bytes,
    pub version: u32,
    metadata: Vec<(String, Value)>,
    index: HashMap<String, usize>,
    tensors: Vec<TensorInfo>,
    tensor_index: HashMap<String, usize>,
    /// Per metadata entry, the file offset of its payload (see `value_offset`).
    value_offsets: Vec<u64>,
    data_offset: u64,
    alignment: u64,
}

impl std::fmt::Debug for GgufFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GgufFile")
            .field("path", &self.path)
            .field("version", &self.version)
            .field("metadata", &self.metadata.len())
            .field("tensors", &self.tensors.len())
            .finish()
    }
}

impl GgufFile {
    /// Memory-map and parse `path`.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, FormatError> {
        let path = path.as_ref().to_path_buf();
        let io = |source| FormatError::Io {
            path: path.clone(),
            source,
        };
        let file = File::open(&path).map_err(io)?;
        let meta = file.metadata().map_err(io)?;
        if meta.is_dir() {
            return Err(FormatError::Corrupt {
                path,
                what: "is a directory, not a GGUF file".into(),
            });
        }
        let bytes = if meta.len() == 0 {
            Bytes::Owned(Vec::new())
        } else {
            // SAFETY: the map is read-only; a file truncated by another process while
            // mapped is outside what any mmap-based loader can defend against.
            Bytes::Mmap(unsafe { memmap2::Mmap::map(&file) }.map_err(io)?)
        };
        Self::parse(path, bytes)
    }

    /// Parse an in-memory GGUF image (sealed packages, fuzzing). `name` labels errors.
    pub fn from_bytes(name: impl Into<PathBuf>, bytes: Vec<u8>) -> Result<Self, FormatError> {
        Self::parse(name.into(), Bytes::Owned(bytes))
    }

    fn parse(path: PathBuf, bytes: Bytes) -> Result<Self, FormatError> {
        let mut r = Reader {
            buf: &bytes,
            pos: 0,
            path: &path,
            array_elements: 0,
        };
        let magic: [u8; 4] = r.take(4, "magic")?.try_into().expect("4 bytes");
        if &magic != MAGIC {
            return Err(FormatError::BadMagic { path, found: magic });
        }
        let version = r.u32("version")?;
        if !(2..=3).contains(&version) {
            return Err(FormatError::BadVersion { path, version });
        }
        let n_tensors = r.u64("tensor count")?;
        let n_kv = r.u64("metadata count")?;
        // Every kv needs >= 12 bytes (key length + type), every tensor >= 24.
        r.check_count(n_kv, 12, "metadata count")?;
        r.check_count(n_tensors, 24, "tensor count")?;
        for (what, count, max) in [
            ("metadata count", n_kv, MAX_METADATA_KEYS),
            ("tensor count", n_tensors, MAX_TENSORS),
        ] {
            if count > max {
                return Err(r.corrupt(format!("{what} {count} is above the limit of {max}")));
            }
        }

        let mut metadata = Vec::with_capacity(n_kv as usize);
        let mut index = HashMap::with_capacity(n_kv as usize);
        let mut value_offsets = Vec::with_capacity(n_kv as usize);
        for i in 0..n_kv {
            let key = r.string(&format!("metadata key #{i}"))?;
            let ty = r.u32(&format!("type of '{key}'"))?;
            // Payload after a string's length or an array's element type and count.
            let head = match ty {
                8 => 8,
                9 => 12,
                _ => 0,
            };
            value_offsets.push((r.pos + head) as u64);
            let value = r.value(ty, &key, 0)?;
            if index.insert(key.clone(), metadata.len()).is_some() {
                return Err(r.corrupt(format!("metadata key '{key}' appears twice")));
            }
            metadata.push((key, value));
        }

        let alignment = match index.get("general.alignment").map(|&i| &metadata[i].1) {
            None => DEFAULT_ALIGNMENT,
            Some(v) => match v.as_u64() {
                Some(a) if a.is_power_of_two() && a <= 1 << 20 => a,
                _ => {
                    return Err(r.corrupt(format!(
                        "general.alignment = {v:?} is not a power of two up to 1 MiB"
                    )))
                }
            },
        };

        let mut tensors = Vec::with_capacity(n_tensors as usize);
        let mut tensor_index = HashMap::with_capacity(n_tensors as usize);
        for i in 0..n_tensors {
            let name = r.string(&format!("tensor #{i} name"))?;
            let n_dims = r.u32(&format!("tensor '{name}' rank"))?;
            if n_dims == 0 || n_dims > MAX_DIMS {
                return Err(FormatError::BadTensor {
                    path,
                    tensor: name,
                    what: format!("rank {n_dims} is outside 1..={MAX_DIMS}"),
                });
            }
            let mut dims = Vec::with_capacity(n_dims as usize);
            for d in 0..n_dims {
                let v = r.u64(&format!("tensor '{name}' dim {d}"))?;
                if v == 0 || v > (1 << 40) {
                    return Err(FormatError::BadTensor {
                        path,
                        tensor: name,
                        what: format!("dimension {d} = {v} is outside 1..=2^40"),
                    });
                }
                dims.push(v);
            }
            let type_id = r.u32(&format!("tensor '{name}' type"))?;
            let dtype = DType::from_id(type_id).map_err(|e| FormatError::BadTensor {
                path: path.clone(),
                tensor: name.clone(),
                what: e.to_string(),
            })?;
            let offset = r.u64(&format!("tensor '{name}' offset"))?;
            let bytes = dtype
                .tensor_bytes(&dims)
                .map_err(|e| FormatError::BadTensor {
                    path: path.clone(),
                    tensor: name.clone(),
                    what: e.to_string(),
                })?;
            if offset % alignment != 0 {
                return Err(FormatError::BadTensor {
                    path,
                    tensor: name,
                    what: format!(
                        "data offset {offset} is not a multiple of the alignment {alignment}"
                    ),
                });
            }
            if tensor_index.insert(name.clone(), tensors.len()).is_some() {
                return Err(r.corrupt(format!("tensor '{name}' appears twice")));
            }
            tensors.push(TensorInfo {
                name,
                dims,
                dtype,
                offset,
                bytes,
            });
        }

        let data_offset = (r.pos as u64).div_ceil(alignment) * alignment;
        let len = bytes.len() as u64;
        for t in &tensors {
            let end = data_offset
                .checked_add(t.offset)
                .and_then(|s| s.checked_add(t.bytes))
                .unwrap_or(u64::MAX);
            if end > len {
                return Err(FormatError::Truncated {
                    path,
                    what: format!("tensor '{}' data", t.name),
                    offset: data_offset.saturating_add(t.offset),
                    need: t.bytes,
                    len,
                });
            }
        }
        Ok(GgufFile {
            path,
            bytes,
            version,
            metadata,
            index,
            tensors,
            tensor_index,
            value_offsets,
            data_offset,
            alignment,
        })
    }

    /// Absolute file offset of the payload of metadata `key`, as
    /// `GgufWriter::value_offset` defines it: a scalar's bytes, a string's UTF-8
    /// (after its length), an array's first element (after its element type and
    /// count). `None` for an unknown key.
    pub fn value_offset(&self, key: &str) -> Option<u64> {
        self.index.get(key).map(|&i| self.value_offsets[i])
    }

    /// The whole file as read (mapped or owned).
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
    pub fn file_len(&self) -> u64 {
        self.bytes.len() as u64
    }
    pub fn alignment(&self) -> u64 {
        self.alignment
    }
    pub fn data_offset(&self) -> u64 {
        self.data_offset
    }
    /// Heap bytes of the parsed header: metadata keys and values (a string array
    /// holds one allocation per string), tensor entries and the lookup maps. With the
    /// header's own mapped pages (`data_offset` bytes, read while parsing) this is
    /// what an open file costs before any tensor is touched.
    pub fn heap_bytes(&self) -> u64 {
        use alc_core::{heap_alloc_bytes as a, heap_hashmap_bytes, heap_vec_bytes};
        let meta = heap_vec_bytes::<(String, Value)>(self.metadata.capacity())
            + self
                .metadata
                .iter()
                .map(|(k, v)| a(k.capacity()) + v.heap_bytes())
                .sum::<u64>()
            + heap_hashmap_bytes::<String, usize>(self.index.capacity())
            + self.index.keys().map(|k| a(k.capacity())).sum::<u64>()
            + heap_vec_bytes::<u64>(self.value_offsets.capacity());
        let tensors = heap_vec_bytes::<TensorInfo>(self.tensors.capacity())
            + self
                .tensors
                .iter()
                .map(|t| a(t.name.capacity()) + heap_vec_bytes::<u64>(t.dims.capacity()))
                .sum::<u64>()
            + heap_hashmap_bytes::<String, usize>(self.tensor_index.capacity())
            + self
                .tensor_index
                .keys()
                .map(|k| a(k.capacity()))
                .sum::<u64>();
        meta + tensors
    }
    pub fn metadata(&self) -> &[(String, Value)] {
        &self.metadata
    }
    pub fn tensors(&self) -> &[TensorInfo] {
        &self.tensors
    }
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.index.get(key).map(|&i| &self.metadata[i].1)
    }
    pub fn tensor(&self, name: &str) -> Option<&TensorInfo> {
        self.tensor_index.get(name).map(|&i| &self.tensors[i])
    }
    /// The bytes of a tensor (bounds were checked at open).
    pub fn tensor_data(&self, t: &TensorInfo) -> &[u8] {
        let start = (self.data_offset + t.offset) as usize;
        &self.bytes[start..start + t.bytes as usize]
    }

    /// Drop the resident pages of a tensor's bytes from this process (the whole
    /// pages inside its range; `MADV_DONTNEED` on the read-only file mapping). For a
    /// tensor that was copied elsewhere (a repacked weight), so that the copy does
    /// not double the resident set. The bytes stay valid: a later read faults them
    /// back in from the file, unchanged. A no-op for owned buffers and off Unix.
    pub fn release_tensor_pages(&self, t: &TensorInfo) {
        self.release_tensor_range(t, 0, t.bytes as usize);
    }

    /// [`release_tensor_pages`](Self::release_tensor_pages) for the bytes
    /// `start..start + len` of `t`'s data only (whole pages inside it); a range past
    /// the tensor is ignored.
    pub fn release_tensor_range(&self, t: &TensorInfo, start: usize, len: usize) {
        if start.checked_add(len).is_none_or(|e| e as u64 > t.bytes) {
            return;
        }
        if let Bytes::Mmap(m) = &self.bytes {
            let at = (self.data_offset + t.offset) as usize + start;
            crate::pages::release_range(m, at, len);
        }
    }

    fn wrong(&self, key: &str, expected: &'static str, v: &Value) -> FormatError {
        FormatError::WrongType {
            path: self.path.clone(),
            key: key.into(),
            expected,
            got: v.type_name(),
        }
    }
    fn missing(&self, key: &str) -> FormatError {
        FormatError::MissingKey {
            path: self.path.clone(),
            key: key.into(),
        }
    }

    /// Optional unsigned integer.
    pub fn get_u64(&self, key: &str) -> Result<Option<u64>, FormatError> {
        self.get(key)
            .map(|v| {
                v.as_u64()
                    .ok_or_else(|| self.wrong(key, "unsigned integer", v))
            })
            .transpose()
    }
    pub fn req_u64(&self, key: &str) -> Result<u64, FormatError> {
        self.get_u64(key)?.ok_or_else(|| self.missing(key))
    }
    pub fn get_f32(&self, key: &str) -> Result<Option<f32>, FormatError> {
        self.get(key)
            .map(|v| {
                v.as_f64()
                    .map(|x| x as f32)
                    .ok_or_else(|| self.wrong(key, "float", v))
            })
            .transpose()
    }
    pub fn req_f32(&self, key: &str) -> Result<f32, FormatError> {
        self.get_f32(key)?.ok_or_else(|| self.missing(key))
    }
    pub fn get_bool(&self, key: &str) -> Result<Option<bool>, FormatError> {
        self.get(key)
            .map(|v| v.as_bool().ok_or_else(|| self.wrong(key, "bool", v)))
            .transpose()
    }
    pub fn get_str(&self, key: &str) -> Result<Option<&str>, FormatError> {
        self.get(key)
            .map(|v| v.as_str().ok_or_else(|| self.wrong(key, "string", v)))
            .transpose()
    }
    pub fn req_str(&self, key: &str) -> Result<&str, FormatError> {
        self.get_str(key)?.ok_or_else(|| self.missing(key))
    }
    pub fn get_array(&self, key: &str) -> Result<Option<&[Value]>, FormatError> {
        self.get(key)
            .map(|v| v.as_array().ok_or_else(|| self.wrong(key, "array", v)))
            .transpose()
    }
    /// Array of strings (e.g. `tokenizer.ggml.tokens`).
    pub fn get_str_array(&self, key: &str) -> Result<Option<Vec<&str>>, FormatError> {
        let Some(arr) = self.get_array(key)? else {
            return Ok(None);
        };
        arr.iter()
            .map(|v| {
                v.as_str()
                    .ok_or_else(|| self.wrong(key, "array of string", v))
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Some)
    }
    /// Array of numbers as f32 (e.g. `tokenizer.ggml.scores`).
    pub fn get_f32_array(&self, key: &str) -> Result<Option<Vec<f32>>, FormatError> {
        let Some(arr) = self.get_array(key)? else {
            return Ok(None);
        };
        arr.iter()
            .map(|v| {
                v.as_f64()
                    .map(|x| x as f32)
                    .ok_or_else(|| self.wrong(key, "array of number", v))
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Some)
    }
    /// Array of integers as i64 (e.g. `tokenizer.ggml.token_type`).
    pub fn get_i64_array(&self, key: &str) -> Result<Option<Vec<i64>>, FormatError> {
        let Some(arr) = self.get_array(key)? else {
            return Ok(None);
        };
        arr.iter()
            .map(|v| {
                v.as_i64()
                    .ok_or_else(|| self.wrong(key, "array of integer", v))
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Some)
    }
}

struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
    path: &'a Path,
    /// Metadata array elements read so far (checked against `MAX_ARRAY_ELEMENTS`).
    array_elements: u64,
}

impl Reader<'_> {
    fn corrupt(&self, what: String) -> FormatError {
        FormatError::Corrupt {
            path: self.path.to_path_buf(),
            what,
        }
    }

    fn take(&mut self, n: u64, what: &str) -> Result<&[u8], FormatError> {
        let remaining = (self.buf.len() - self.pos) as u64;
        if n > remaining {
            return Err(FormatError::Truncated {
                path: self.path.to_path_buf(),
                what: what.to_string(),
                offset: self.pos as u64,
                need: n,
                len: self.buf.len() as u64,
            });
        }
        let s = &self.buf[self.pos..self.pos + n as usize];
        self.pos += n as usize;
        Ok(s)
    }

    /// Reject counts that could not possibly fit in the remaining bytes.
    fn check_count(&self, count: u64, min_each: u64, what: &str) -> Result<(), FormatError> {
        let remaining = (self.buf.len() - self.pos) as u64;
        if count.saturating_mul(min_each) > remaining {
            return Err(self.corrupt(format!(
                "{what} {count} cannot fit in the {remaining} bytes that remain"
            )));
        }
        Ok(())
    }

    fn arr<const N: usize>(&mut self, what: &str) -> Result<[u8; N], FormatError> {
        Ok(self.take(N as u64, what)?.try_into().expect("exact length"))
    }
    fn u32(&mut self, what: &str) -> Result<u32, FormatError> {
        Ok(u32::from_le_bytes(self.arr(what)?))
    }
    fn u64(&mut self, what: &str) -> Result<u64, FormatError> {
        Ok(u64::from_le_bytes(self.arr(what)?))
    }
    fn string(&mut self, what: &str) -> Result<String, FormatError> {
        let n = self.u64(what)?;
        let bytes = self.take(n, what)?;
        Ok(String::from_utf8_lossy(bytes).into_owned())
    }

    fn value(&mut self, ty: u32, key: &str, depth: u32) -> Result<Value, FormatError> {
        Ok(match ty {
            0 => Value::U8(self.arr::<1>(key)?[0]),
            1 => Value::I8(self.arr::<1>(key)?[0] as i8),
            2 => Value::U16(u16::from_le_bytes(self.arr(key)?)),
            3 => Value::I16(i16::from_le_bytes(self.arr(key)?)),
            4 => Value::U32(u32::from_le_bytes(self.arr(key)?)),
            5 => Value::I32(i32::from_le_bytes(self.arr(key)?)),
            6 => Value::F32(f32::from_le_bytes(self.arr(key)?)),
            7 => match self.arr::<1>(key)?[0] {
                0 => Value::Bool(false),
                1 => Value::Bool(true),
                b => return Err(self.corrupt(format!("'{key}': bool byte {b} is not 0 or 1"))),
            },
            8 => Value::String(self.string(key)?),
            9 => {
                if depth >= MAX_ARRAY_DEPTH {
                    return Err(self.corrupt(format!(
                        "'{key}': arrays nested deeper than {MAX_ARRAY_DEPTH}"
                    )));
                }
                let elem = self.u32(key)?;
                let count = self.u64(key)?;
                let min = match elem {
                    0 | 1 | 7 => 1,
                    2 | 3 => 2,
                    4..=6 => 4,
                    8 | 10..=12 => 8,
                    9 => 12,
                    other => {
                        return Err(
                            self.corrupt(format!("'{key}': unknown array element type {other}"))
                        )
                    }
                };
                self.check_count(count, min, &format!("'{key}' array length"))?;
                let total = self.array_elements.saturating_add(count);
                if total > MAX_ARRAY_ELEMENTS {
                    return Err(self.corrupt(format!(
                        "'{key}': an array of {count} elements brings the metadata to {total} \
                         array elements, above the limit of {MAX_ARRAY_ELEMENTS}"
                    )));
                }
                self.array_elements = total;
                let mut out = Vec::with_capacity(count as usize);
                for _ in 0..count {
                    out.push(self.value(elem, key, depth + 1)?);
                }
                Value::Array(out)
            }
            10 => Value::U64(u64::from_le_bytes(self.arr(key)?)),
            11 => Value::I64(i64::from_le_bytes(self.arr(key)?)),
            12 => Value::F64(f64::from_le_bytes(self.arr(key)?)),
            other => {
                return Err(
                    self.corrupt(format!("'{key}': unknown value type {other} (known 0-12)"))
                )
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(out: &mut Vec<u8>, v: &str) {
        out.extend((v.len() as u64).to_le_bytes());
        out.extend(v.as_bytes());
    }

    /// A minimal valid file: one u32 key, one string array, one F32 tensor of 4 elements.
    fn tiny() -> Vec<u8> {
        let mut b = Vec::new();
        b.extend(b"GGUF");
        b.extend(3u32.to_le_bytes());
        b.extend(1u64.to_le_bytes());
        b.extend(2u64.to_le_bytes());
        s(&mut b, "llama.block_count");
        b.extend(4u32.to_le_bytes());
        b.extend(7u32.to_le_bytes());
        s(&mut b, "tokenizer.ggml.tokens");
        b.extend(9u32.to_le_bytes());
        b.extend(8u32.to_le_bytes());
        b.extend(2u64.to_le_bytes());
        s(&mut b, "a");
        s(&mut b, "b");
        s(&mut b, "w");
        b.extend(1u32.to_le_bytes());
        b.extend(4u64.to_le_bytes());
        b.extend(0u32.to_le_bytes());
        b.extend(0u64.to_le_bytes());
        while b.len() % 32 != 0 {
            b.push(0);
        }
        for x in [1.0f32, 2.0, 3.0, 4.0] {
            b.extend(x.to_le_bytes());
        }
        b
    }

    #[test]
    fn parses_tiny_file() {
        let f = GgufFile::from_bytes("tiny", tiny()).unwrap();
        assert_eq!(f.req_u64("llama.block_count").unwrap(), 7);
        assert_eq!(
            f.get_str_array("tokenizer.ggml.tokens").unwrap().unwrap(),
            vec!["a", "b"]
        );
        let t = f.tensor("w").unwrap();
        assert_eq!(t.dims, vec![4]);
        let data = f.tensor_data(t);
        assert_eq!(f32::from_le_bytes(data[12..16].try_into().unwrap()), 4.0);
        assert!(matches!(
            f.req_str("llama.block_count"),
            Err(FormatError::WrongType { .. })
        ));
        assert!(matches!(
            f.req_u64("nope"),
            Err(FormatError::MissingKey { .. })
        ));
    }

    #[test]
    fn every_truncation_is_an_error() {
        let full = tiny();
        for n in 0..full.len() {
            let e = GgufFile::from_bytes("t", full[..n].to_vec()).unwrap_err();
            let msg = e.to_string();
            assert!(!msg.is_empty(), "{n}");
        }
    }

    #[test]
    fn hostile_counts_and_magic() {
        let mut b = tiny();
        b[0] = b'X';
        assert!(matches!(
            GgufFile::from_bytes("t", b).unwrap_err(),
            FormatError::BadMagic { .. }
        ));
        let mut b = tiny();
        b[4..8].copy_from_slice(&9u32.to_le_bytes());
        assert!(matches!(
            GgufFile::from_bytes("t", b).unwrap_err(),
            FormatError::BadVersion { .. }
        ));
        let mut b = tiny();
        b[16..24].copy_from_slice(&u64::MAX.to_le_bytes()); // kv count
        assert!(matches!(
            GgufFile::from_bytes("t", b).unwrap_err(),
            FormatError::Corrupt { .. }
        ));
        let mut b = tiny();
        b[8..16].copy_from_slice(&(1u64 << 60).to_le_bytes()); // tensor count
        assert!(matches!(
            GgufFile::from_bytes("t", b).unwrap_err(),
            FormatError::Corrupt { .. }
        ));
    }

    /// A file with one key whose value is `value` (type id `ty`) and no tensors.
    fn one_key(ty: u32, value: &[u8]) -> Vec<u8> {
        let mut b = Vec::new();
        b.extend(b"GGUF");
        b.extend(3u32.to_le_bytes());
        b.extend(0u64.to_le_bytes());
        b.extend(1u64.to_le_bytes());
        s(&mut b, "big");
        b.extend(ty.to_le_bytes());
        b.extend(value);
        b
    }

    fn u8_array(count: u64) -> Vec<u8> {
        let mut v = Vec::new();
        v.extend(0u32.to_le_bytes()); // element type u8
        v.extend(count.to_le_bytes());
        v.resize(v.len() + count as usize, 7);
        v
    }

    /// Found while setting up fuzzing (docs/FUZZING.md; the fuzz inputs are too small to
    /// show it): a 64 MiB file holding one u8 array made the parser allocate 2 GiB (one
    /// 32-byte `Value` per byte of file), so a 1 GiB file would ask for 32 GiB and abort
    /// the process. The elements of all arrays are now
    /// limited to `MAX_ARRAY_ELEMENTS`, checked before the array is allocated.
    #[test]
    fn array_elements_are_limited_before_allocation() {
        let n = MAX_ARRAY_ELEMENTS + 1;
        let e = GgufFile::from_bytes("t", one_key(9, &u8_array(n))).unwrap_err();
        let msg = e.to_string();
        assert!(matches!(e, FormatError::Corrupt { .. }), "{msg}");
        assert!(
            msg.contains("'big'") && msg.contains(&n.to_string()),
            "{msg}"
        );
        assert!(msg.contains(&MAX_ARRAY_ELEMENTS.to_string()), "{msg}");

        // Nested arrays count together: one outer element plus a full inner array.
        let mut nested = Vec::new();
        nested.extend(9u32.to_le_bytes()); // element type array
        nested.extend(1u64.to_le_bytes());
        nested.extend(u8_array(MAX_ARRAY_ELEMENTS));
        let msg = GgufFile::from_bytes("t", one_key(9, &nested))
            .unwrap_err()
            .to_string();
        assert!(msg.contains(&(MAX_ARRAY_ELEMENTS + 1).to_string()), "{msg}");

        // Below the limit is fine.
        let f = GgufFile::from_bytes("t", one_key(9, &u8_array(1000))).unwrap();
        assert_eq!(f.get_array("big").unwrap().unwrap().len(), 1000);
    }

    /// Same class as above: key/value pairs and tensor records cost about ten times
    /// their smallest encoding once parsed, so their counts are limited too.
    #[test]
    fn key_and_tensor_counts_are_limited() {
        for (at, max, what) in [
            (16, MAX_METADATA_KEYS, "metadata count"),
            (8, MAX_TENSORS, "tensor count"),
        ] {
            let mut b = one_key(4, &7u32.to_le_bytes());
            b[at..at + 8].copy_from_slice(&(max + 1).to_le_bytes());
            // enough bytes that the count passes the fits-in-the-file check
            b.resize(b.len() + (max as usize + 1) * 24, 0);
            let e = GgufFile::from_bytes("t", b).unwrap_err();
            let msg = e.to_string();
            assert!(matches!(e, FormatError::Corrupt { .. }), "{msg}");
            assert!(
                msg.contains(&format!("{what} {} is above the limit of {max}", max + 1)),
                "{msg}"
            );
        }
    }
}
