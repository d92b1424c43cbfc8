//! GGUF v3 writer: the counterpart of the reader in [`crate::gguf`].
//!
//! Layout written (all integers little-endian):
//!
//! ```text
//! "GGUF" | u32 version = 3 | u64 tensor count | u64 key count
//! key/value pairs, in first-insertion order:
//!     u64 key length | key bytes | u32 value type | value
//! tensor infos, in the order of `add_tensor`:
//!     u64 name length | name bytes | u32 rank | u64 dims[rank] (ggml order, ne0 first)
//!     | u32 ggml type id | u64 offset of the data inside the data section
//! zero padding up to a multiple of the alignment   (always, also with no tensors)
//! data section: for each tensor in declared order, its bytes, then zero padding up
//! to a multiple of the alignment (after the last tensor too)
//! ```
//!
//! Values: u8 0, i8 1, u16 2, i16 3, u32 4, i32 5, f32 6, bool 7 (one byte, 0 or 1),
//! string 8 (u64 length + UTF-8 bytes, no terminator), array 9 (u32 element type, u64
//! count, the elements without their own type tags; an element that is an array is
//! again u32 type + u64 count + elements), u64 10, i64 11, f64 12. An empty array is
//! written with element type u8 unless [`GgufWriter::set_empty_array`] names one.
//!
//! The alignment is 32, or `general.alignment` when the caller sets it (a `Value::U32`
//! power of two up to 1 MiB; it is written as an ordinary key). Every offset is fixed
//! when a tensor is added, so [`GgufWriter::header_len`], [`GgufWriter::tensor_offset`]
//! and [`GgufWriter::total_len`] are known before anything is written, and the same
//! keys, tensors and bytes always give the same file, byte for byte.
//!
//! Errors: building the plan returns [`FormatError`]. Writing is generic over the
//! caller's error type `E: From<FormatError>`: the data callback returns `Result<(), E>`
//! and its error comes back unchanged; the writer's own errors (a wrong tensor length,
//! an I/O failure) are converted with `E::from`. `E = FormatError` and `anyhow::Error`
//! both work.

use crate::atomic::AtomicFile;
use crate::gguf::{
    TensorInfo, Value, DEFAULT_ALIGNMENT, MAX_ARRAY_DEPTH, MAX_ARRAY_ELEMENTS, MAX_DIMS,
    MAX_METADATA_KEYS, MAX_TENSORS,
};
use crate::FormatError;
use alc_core::DType;
use std::collections::HashMap;
use std::io::Write;
use std::path::Path;

/// The GGUF version written.
pub const GGUF_VERSION: u32 = 3;
/// The longest tensor name ggml accepts: `GGML_MAX_NAME` is 64 bytes including the
/// terminating NUL, so names have at most 63 bytes.
pub const MAX_TENSOR_NAME_BYTES: usize = 63;
/// The GGUF specification limits keys to 65 535 bytes.
pub const MAX_KEY_BYTES: usize = 65_535;
/// The largest alignment the reader accepts.
pub const MAX_ALIGNMENT: u64 = 1 << 20;
/// The largest dimension the reader accepts.
pub const MAX_DIM: u64 = 1 << 40;
/// The key that sets the alignment.
pub const ALIGNMENT_KEY: &str = "general.alignment";

/// Label used in I/O errors of [`GgufWriter::write_to`], which has no path.
const STREAM_LABEL: &str = "<GGUF output stream>";

struct Entry {
    key: String,
    value: Value,
    /// Element type id written for an empty top-level array.
    empty_elem: u32,
    /// Array elements in the value, nested ones included (the reader's limit counts them).
    elements: u64,
    /// Encoded size of the whole pair (key, type, value).
    encoded: u64,
}

/// A GGUF v3 file being planned. Add keys with [`set`](Self::set) and tensors with
/// [`add_tensor`](Self::add_tensor), then stream it with [`write_file`](Self::write_file)
/// or [`write_to`](Self::write_to).
pub struct GgufWriter {
    kv: Vec<Entry>,
    kv_index: HashMap<String, usize>,
    kv_bytes: u64,
    array_elements: u64,
    tensors: Vec<TensorInfo>,
    tensor_index: HashMap<String, usize>,
    info_bytes: u64,
    alignment: u64,
    /// Length of the data section, padding after the last tensor included.
    data_len: u64,
}

impl Default for GgufWriter {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for GgufWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GgufWriter")
            .field("metadata", &self.kv.len())
            .field("tensors", &self.tensors.len())
            .field("alignment", &self.alignment)
            .field("total_len", &self.total_len())
            .finish()
    }
}

fn type_id(v: &Value) -> u32 {
    match v {
        Value::U8(_) => 0,
        Value::I8(_) => 1,
        Value::U16(_) => 2,
        Value::I16(_) => 3,
        Value::U32(_) => 4,
        Value::I32(_) => 5,
        Value::F32(_) => 6,
        Value::Bool(_) => 7,
        Value::String(_) => 8,
        Value::Array(_) => 9,
        Value::U64(_) => 10,
        Value::I64(_) => 11,
        Value::F64(_) => 12,
    }
}

/// Encoded size of a value without its type tag.
fn payload_len(v: &Value) -> u64 {
    match v {
        Value::U8(_) | Value::I8(_) | Value::Bool(_) => 1,
        Value::U16(_) | Value::I16(_) => 2,
        Value::U32(_) | Value::I32(_) | Value::F32(_) => 4,
        Value::U64(_) | Value::I64(_) | Value::F64(_) => 8,
        Value::String(s) => 8 + s.len() as u64,
        Value::Array(a) => 12 + a.iter().map(payload_len).sum::<u64>(),
    }
}

/// Append a value without its type tag. `empty_elem` is the element type of an empty
/// array at this level.
fn encode(v: &Value, empty_elem: u32, out: &mut Vec<u8>) {
    match v {
        Value::U8(x) => out.push(*x),
        Value::I8(x) => out.extend(x.to_le_bytes()),
        Value::U16(x) => out.extend(x.to_le_bytes()),
        Value::I16(x) => out.extend(x.to_le_bytes()),
        Value::U32(x) => out.extend(x.to_le_bytes()),
        Value::I32(x) => out.extend(x.to_le_bytes()),
        Value::F32(x) => out.extend(x.to_le_bytes()),
        Value::Bool(b) => out.push(*b as u8),
        Value::String(s) => {
            out.extend((s.len() as u64).to_le_bytes());
            out.extend(s.as_bytes());
        }
        Value::Array(a) => {
            let elem = a.first().map(type_id).unwrap_or(empty_elem);
            out.extend(elem.to_le_bytes());
            out.extend((a.len() as u64).to_le_bytes());
            for e in a {
                encode(e, 0, out);
            }
        }
        Value::U64(x) => out.extend(x.to_le_bytes()),
        Value::I64(x) => out.extend(x.to_le_bytes()),
        Value::F64(x) => out.extend(x.to_le_bytes()),
    }
}

fn align_up(x: u64, a: u64) -> Option<u64> {
    x.checked_add(a - 1).map(|v| v / a * a)
}

impl GgufWriter {
    pub fn new() -> Self {
        GgufWriter {
            kv: Vec::new(),
            kv_index: HashMap::new(),
            kv_bytes: 0,
            array_elements: 0,
            tensors: Vec::new(),
            tensor_index: HashMap::new(),
            info_bytes: 0,
            alignment: DEFAULT_ALIGNMENT,
            data_len: 0,
        }
    }

    fn key_err(key: &str, what: impl Into<String>) -> FormatError {
        FormatError::WriterKey {
            key: key.into(),
            what: what.into(),
        }
    }

    fn tensor_err(name: &str, what: impl Into<String>) -> FormatError {
        FormatError::WriterTensor {
            tensor: name.into(),
            what: what.into(),
        }
    }

    /// Check a value the way the reader will read it; returns its array element count.
    fn check_value(key: &str, v: &Value, depth: u32) -> Result<u64, FormatError> {
        let Value::Array(a) = v else {
            return Ok(0);
        };
        if depth >= MAX_ARRAY_DEPTH {
            return Err(Self::key_err(
                key,
                format!("arrays nested deeper than {MAX_ARRAY_DEPTH} levels (the reader's limit)"),
            ));
        }
        let mut count = a.len() as u64;
        if let Some(first) = a.first() {
            let t0 = type_id(first);
            for (i, e) in a.iter().enumerate() {
                if type_id(e) != t0 {
                    return Err(Self::key_err(
                        key,
                        format!(
                            "array elements are not all one type: element 0 is {}, element {i} is {}",
                            first.type_name(),
                            e.type_name()
                        ),
                    ));
                }
                count = count.saturating_add(Self::check_value(key, e, depth + 1)?);
            }
        }
        Ok(count)
    }

    /// Set a metadata key. A key set again keeps its first position and takes the new
    /// value. `general.alignment` must be a `Value::U32` power of two up to 1 MiB; it
    /// changes the alignment of the data section (and the tensor offsets).
    pub fn set(&mut self, key: &str, value: Value) -> Result<(), FormatError> {
        self.insert(key, value, 0)
    }

    /// Set an empty array whose element type is that of `like` (e.g.
    /// `&Value::String(String::new())` for an empty `tokenizer.ggml.merges`): readers
    /// such as llama.cpp check the element type even of empty arrays. `set` writes an
    /// empty array with element type u8.
    pub fn set_empty_array(&mut self, key: &str, like: &Value) -> Result<(), FormatError> {
        self.insert(key, Value::Array(Vec::new()), type_id(like))
    }

    fn insert(&mut self, key: &str, value: Value, empty_elem: u32) -> Result<(), FormatError> {
        if key.is_empty() {
            return Err(Self::key_err(key, "the key is empty"));
        }
        if key.len() > MAX_KEY_BYTES {
            let short: String = key.chars().take(64).collect();
            return Err(Self::key_err(
                &format!("{short}…"),
                format!(
                    "the key is {} bytes long; GGUF keys have at most {MAX_KEY_BYTES}",
                    key.len()
                ),
            ));
        }
        let elements = Self::check_value(key, &value, 0)?;
        let old = self.kv_index.get(key).copied();
        let old_elements = old.map(|i| self.kv[i].elements).unwrap_or(0);
        let total = self.array_elements - old_elements + elements;
        if total > MAX_ARRAY_ELEMENTS {
            return Err(Self::key_err(
                key,
                format!(
                    "{elements} array elements bring the metadata to {total}, above the \
                     reader's limit of {MAX_ARRAY_ELEMENTS}"
                ),
            ));
        }
        if old.is_none() && self.kv.len() as u64 >= MAX_METADATA_KEYS {
            return Err(Self::key_err(
                key,
                format!("more than {MAX_METADATA_KEYS} keys (the reader's limit)"),
            ));
        }
        if key == ALIGNMENT_KEY {
            let a = match value {
                Value::U32(a) if a.is_power_of_two() && u64::from(a) <= MAX_ALIGNMENT => a,
                _ => {
                    return Err(Self::key_err(
                        key,
                        format!("{value:?} is not a Value::U32 power of two up to {MAX_ALIGNMENT}"),
                    ))
                }
            };
            self.relayout(u64::from(a))
                .map_err(|what| Self::key_err(key, what))?;
        }
        let encoded = 8 + key.len() as u64 + 4 + payload_len(&value);
        let entry = Entry {
            key: key.to_string(),
            value,
            empty_elem,
            elements,
            encoded,
        };
        self.array_elements = total;
        match old {
            Some(i) => {
                self.kv_bytes = self.kv_bytes - self.kv[i].encoded + encoded;
                self.kv[i] = entry;
            }
            None => {
                self.kv_bytes += encoded;
                self.kv_index.insert(key.to_string(), self.kv.len());
                self.kv.push(entry);
            }
        }
        Ok(())
    }

    /// Recompute every tensor offset for a new alignment.
    fn relayout(&mut self, alignment: u64) -> Result<(), String> {
        let mut offsets = Vec::with_capacity(self.tensors.len());
        let mut at = 0u64;
        for t in &self.tensors {
            offsets.push(at);
            at = at
                .checked_add(t.bytes)
                .and_then(|e| align_up(e, alignment))
                .ok_or_else(|| {
                    format!("alignment {alignment}: the data section overflows 64 bits")
                })?;
        }
        for (t, o) in self.tensors.iter_mut().zip(offsets) {
            t.offset = o;
        }
        self.alignment = alignment;
        self.data_len = at;
        Ok(())
    }

    /// Declare a tensor. `dims` are in ggml order (`dims[0]` = ne0, the row length),
    /// as in [`TensorInfo`]. Returns its index, which the write callback receives.
    pub fn add_tensor(
        &mut self,
        name: &str,
        dtype: DType,
        dims: &[u64],
    ) -> Result<usize, FormatError> {
        let err = |what: String| Self::tensor_err(name, what);
        if name.is_empty() {
            return Err(err("the name is empty".into()));
        }
        if name.len() > MAX_TENSOR_NAME_BYTES {
            return Err(err(format!(
                "the name is {} bytes long; ggml allows at most {MAX_TENSOR_NAME_BYTES} \
                 (GGML_MAX_NAME 64 with the terminating NUL)",
                name.len()
            )));
        }
        if self.tensor_index.contains_key(name) {
            return Err(err("added twice".into()));
        }
        if self.tensors.len() as u64 >= MAX_TENSORS {
            return Err(err(format!(
                "more than {MAX_TENSORS} tensors (the reader's limit)"
            )));
        }
        if dims.is_empty() || dims.len() > MAX_DIMS as usize {
            return Err(err(format!(
                "rank {} is outside 1..={MAX_DIMS} (dims {dims:?})",
                dims.len()
            )));
        }
        for (d, &v) in dims.iter().enumerate() {
            if v == 0 || v > MAX_DIM {
                return Err(err(format!(
                    "dimension {d} = {v} is outside 1..=2^40 (dims {dims:?})"
                )));
            }
        }
        let elements = dims.iter().try_fold(1u64, |acc, &d| acc.checked_mul(d));
        if elements.is_none_or(|n| n > i64::MAX as u64) {
            return Err(err(format!(
                "dims {dims:?} have more than 2^63 - 1 elements"
            )));
        }
        let bytes = dtype
            .tensor_bytes(dims)
            .map_err(|e| err(format!("{e} (dims {dims:?})")))?;
        let offset = self.data_len;
        let end = offset
            .checked_add(bytes)
            .and_then(|e| align_up(e, self.alignment))
            .ok_or_else(|| err("the data section overflows 64 bits".into()))?;
        let info_len = 8 + name.len() as u64 + 4 + 8 * dims.len() as u64 + 4 + 8;
        self.data_len = end;
        self.info_bytes += info_len;
        self.tensor_index
            .insert(name.to_string(), self.tensors.len());
        self.tensors.push(TensorInfo {
            name: name.to_string(),
            dims: dims.to_vec(),
            dtype,
            offset,
            bytes,
        });
        Ok(self.tensors.len() - 1)
    }

    /// The value set for `key`.
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.kv_index.get(key).map(|&i| &self.kv[i].value)
    }
    /// Keys and values in the order they will be written.
    pub fn metadata(&self) -> impl Iterator<Item = (&str, &Value)> {
        self.kv.iter().map(|e| (e.key.as_str(), &e.value))
    }
    /// The declared tensors; `offset` is relative to the data section, as the reader
    /// reports it.
    pub fn tensors(&self) -> &[TensorInfo] {
        &self.tensors
    }
    /// The index of a declared tensor.
    pub fn tensor_index(&self, name: &str) -> Option<usize> {
        self.tensor_index.get(name).copied()
    }
    /// The alignment of the data section (32 unless `general.alignment` is set).
    pub fn alignment(&self) -> u64 {
        self.alignment
    }

    /// Bytes before the data section: header, key/value pairs, tensor infos and the
    /// padding to the alignment. Equals the reader's `GgufFile::data_offset()`.
    pub fn header_len(&self) -> u64 {
        let raw = 24 + self.kv_bytes + self.info_bytes;
        raw.div_ceil(self.alignment) * self.alignment
    }
    /// Absolute file offset of tensor `i`'s first data byte.
    pub fn tensor_offset(&self, i: usize) -> Option<u64> {
        self.tensors.get(i).map(|t| self.header_len() + t.offset)
    }
    /// Absolute file offset of the payload of metadata `key`: a scalar's bytes, a
    /// string's UTF-8 (after its length), an array's first element (after its element
    /// type and count). For patching fixed-size values of a written file in place;
    /// `None` for an unknown key.
    pub fn value_offset(&self, key: &str) -> Option<u64> {
        let i = *self.kv_index.get(key)?;
        let before: u64 = self.kv[..i].iter().map(|e| e.encoded).sum();
        let e = &self.kv[i];
        let head = match e.value {
            Value::Array(_) => 12,
            Value::String(_) => 8,
            _ => 0,
        };
        Some(24 + before + 8 + e.key.len() as u64 + 4 + head)
    }

    /// Length of the data section, including the padding after the last tensor.
    pub fn data_len(&self) -> u64 {
        self.data_len
    }
    /// Length of the whole file.
    pub fn total_len(&self) -> u64 {
        self.header_len() + self.data_len
    }

    /// The header bytes (everything before the data section, padding included).
    pub fn header_bytes(&self) -> Vec<u8> {
        let len = self.header_len();
        let mut b = Vec::with_capacity(len as usize);
        b.extend(b"GGUF");
        b.extend(GGUF_VERSION.to_le_bytes());
        b.extend((self.tensors.len() as u64).to_le_bytes());
        b.extend((self.kv.len() as u64).to_le_bytes());
        for e in &self.kv {
            b.extend((e.key.len() as u64).to_le_bytes());
            b.extend(e.key.as_bytes());
            b.extend(type_id(&e.value).to_le_bytes());
            encode(&e.value, e.empty_elem, &mut b);
        }
        for t in &self.tensors {
            b.extend((t.name.len() as u64).to_le_bytes());
            b.extend(t.name.as_bytes());
            b.extend((t.dims.len() as u32).to_le_bytes());
            for d in &t.dims {
                b.extend(d.to_le_bytes());
            }
            b.extend(t.dtype.id().to_le_bytes());
            b.extend(t.offset.to_le_bytes());
        }
        debug_assert!(b.len() as u64 <= len, "header size accounting");
        b.resize(len as usize, 0);
        b
    }

    /// Write the file to `path` through an [`AtomicFile`]: the file appears under its
    /// name only when complete (an error or a panic leaves any older file untouched
    /// and no temporary file behind). `fill(i, info, sink)` is called once per tensor,
    /// in declared order, and must put exactly `info.bytes` bytes into `sink`.
    /// Returns the file length.
    pub fn write_file<E, F>(&self, path: impl AsRef<Path>, fill: F) -> Result<u64, E>
    where
        E: From<FormatError>,
        F: FnMut(usize, &TensorInfo, &mut TensorSink<'_>) -> Result<(), E>,
    {
        let path = path.as_ref();
        let mut file = AtomicFile::create(path)?;
        let n = self.write_impl(&mut file, path, fill)?;
        file.commit()?;
        Ok(n)
    }

    /// Write the file to `out` (wrap unbuffered writers in a `BufWriter`). Like
    /// [`write_file`](Self::write_file) but without the atomic rename; I/O errors name
    /// the output `<GGUF output stream>`. Returns the number of bytes written.
    pub fn write_to<W, E, F>(&self, out: &mut W, fill: F) -> Result<u64, E>
    where
        W: Write,
        E: From<FormatError>,
        F: FnMut(usize, &TensorInfo, &mut TensorSink<'_>) -> Result<(), E>,
    {
        self.write_impl(out, Path::new(STREAM_LABEL), fill)
    }

    fn write_impl<W, E, F>(&self, out: &mut W, label: &Path, mut fill: F) -> Result<u64, E>
    where
        W: Write,
        E: From<FormatError>,
        F: FnMut(usize, &TensorInfo, &mut TensorSink<'_>) -> Result<(), E>,
    {
        let header = self.header_bytes();
        out.write_all(&header)
            .map_err(|e| FormatError::write_failed(label, "writing the GGUF header", e))?;
        let mut pos = header.len() as u64;
        for (i, t) in self.tensors.iter().enumerate() {
            let mut sink = TensorSink {
                out: &mut *out,
                label,
                info: t,
                written: 0,
                failed: false,
            };
            fill(i, t, &mut sink)?;
            if sink.failed {
                return Err(Self::tensor_err(
                    &t.name,
                    "a write of its data failed earlier and the callback went on",
                )
                .into());
            }
            if sink.written != t.bytes {
                return Err(FormatError::TensorSize {
                    tensor: t.name.clone(),
                    dtype: t.dtype,
                    dims: t.dims.clone(),
                    expected: t.bytes,
                    got: sink.written,
                }
                .into());
            }
            pos += t.bytes;
            let end =
                self.header_len() + self.tensors.get(i + 1).map_or(self.data_len, |n| n.offset);
            write_zeros(out, end - pos).map_err(|e| {
                FormatError::write_failed(
                    label,
                    format!("writing the padding after tensor '{}'", t.name),
                    e,
                )
            })?;
            pos = end;
        }
        out.flush()
            .map_err(|e| FormatError::write_failed(label, "flushing the GGUF output", e))?;
        debug_assert_eq!(pos, self.total_len());
        Ok(pos)
    }
}

fn write_zeros<W: Write + ?Sized>(out: &mut W, mut n: u64) -> std::io::Result<()> {
    const ZEROS: [u8; 4096] = [0; 4096];
    while n > 0 {
        let k = n.min(ZEROS.len() as u64) as usize;
        out.write_all(&ZEROS[..k])?;
        n -= k as u64;
    }
    Ok(())
}

/// Where the write callback puts one tensor's bytes. It passes them straight to the
/// output (nothing is buffered here beyond the output's own buffer), so a tensor can be
/// produced row by row. Putting more than the declared size is refused before anything
/// of the excess is written.
pub struct TensorSink<'a> {
    out: &'a mut dyn Write,
    label: &'a Path,
    info: &'a TensorInfo,
    written: u64,
    failed: bool,
}

impl TensorSink<'_> {
    /// Append bytes of the tensor's data.
    pub fn put(&mut self, bytes: &[u8]) -> Result<(), FormatError> {
        let t = self.info;
        if self.failed {
            return Err(FormatError::WriterTensor {
                tensor: t.name.clone(),
                what: "a write of its data failed earlier".into(),
            });
        }
        let got = self.written.saturating_add(bytes.len() as u64);
        if got > t.bytes {
            return Err(FormatError::TensorSize {
                tensor: t.name.clone(),
                dtype: t.dtype,
                dims: t.dims.clone(),
                expected: t.bytes,
                got,
            });
        }
        if let Err(e) = self.out.write_all(bytes) {
            self.failed = true;
            return Err(FormatError::write_failed(
                self.label,
                format!("writing tensor '{}'", t.name),
                e,
            ));
        }
        self.written = got;
        Ok(())
    }
    /// The tensor being written.
    pub fn info(&self) -> &TensorInfo {
        self.info
    }
    /// Bytes put so far.
    pub fn written(&self) -> u64 {
        self.written
    }
    /// Bytes still expected.
    pub fn remaining(&self) -> u64 {
        self.info.bytes - self.written
    }
    /// The output's name in error messages (the file path, or `<GGUF output stream>`).
    pub fn output(&self) -> &Path {
        self.label
    }
}

/// `std::io::Write` over [`TensorSink::put`], for code that writes through a generic
/// writer; the [`FormatError`] travels inside the `io::Error` (`ErrorKind::Other`).
impl Write for TensorSink<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.put(buf).map_err(std::io::Error::other)?;
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
