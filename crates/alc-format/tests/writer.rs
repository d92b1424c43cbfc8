//! GGUF writer: round trips through the reader, the exact byte layout, determinism and
//! every writer error.

use alc_core::DType;
use alc_format::writer::{GgufWriter, TensorSink, MAX_TENSOR_NAME_BYTES};
use alc_format::{FormatError, GgufFile, TensorInfo, Value};
use std::io::Write;

/// Deterministic bytes for tensor `i` (a simple LCG; the content does not matter).
fn bytes_for(i: usize, n: u64) -> Vec<u8> {
    let mut x = 0x9E37_79B9_7F4A_7C15u64 ^ (i as u64 + 1);
    (0..n)
        .map(|_| {
            x = x
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            (x >> 56) as u8
        })
        .collect()
}

fn fill_all(i: usize, t: &TensorInfo, sink: &mut TensorSink<'_>) -> Result<(), FormatError> {
    sink.put(&bytes_for(i, t.bytes))
}

fn to_vec(w: &GgufWriter) -> Vec<u8> {
    let mut out = Vec::new();
    let n = w.write_to(&mut out, fill_all).unwrap();
    assert_eq!(n, out.len() as u64);
    out
}

fn every_value() -> Vec<(&'static str, Value)> {
    vec![
        ("t.u8", Value::U8(200)),
        ("t.i8", Value::I8(-100)),
        ("t.u16", Value::U16(60_000)),
        ("t.i16", Value::I16(-30_000)),
        ("t.u32", Value::U32(4_000_000_000)),
        ("t.i32", Value::I32(-2_000_000_000)),
        ("t.f32", Value::F32(-1.5e-3)),
        ("t.bool_true", Value::Bool(true)),
        ("t.bool_false", Value::Bool(false)),
        ("t.string", Value::String("héllo ▁wörld\n\u{1F600}".into())),
        ("t.empty_string", Value::String(String::new())),
        ("t.u64", Value::U64(u64::MAX)),
        ("t.i64", Value::I64(i64::MIN)),
        ("t.f64", Value::F64(std::f64::consts::PI)),
        (
            "t.arr_u8",
            Value::Array(vec![Value::U8(1), Value::U8(2), Value::U8(255)]),
        ),
        ("t.arr_i8", Value::Array(vec![Value::I8(-1), Value::I8(7)])),
        (
            "t.arr_u16",
            Value::Array(vec![Value::U16(1), Value::U16(65_535)]),
        ),
        ("t.arr_i16", Value::Array(vec![Value::I16(-2)])),
        ("t.arr_u32", Value::Array(vec![Value::U32(3); 5])),
        (
            "t.arr_i32",
            Value::Array(vec![Value::I32(-3), Value::I32(9)]),
        ),
        (
            "t.arr_f32",
            Value::Array(vec![Value::F32(0.5), Value::F32(-0.0), Value::F32(1e30)]),
        ),
        (
            "t.arr_bool",
            Value::Array(vec![Value::Bool(true), Value::Bool(false)]),
        ),
        (
            "t.arr_string",
            Value::Array(vec![
                Value::String("a".into()),
                Value::String(String::new()),
                Value::String("Ġthe".into()),
            ]),
        ),
        ("t.arr_u64", Value::Array(vec![Value::U64(1 << 40)])),
        ("t.arr_i64", Value::Array(vec![Value::I64(-(1 << 40))])),
        ("t.arr_f64", Value::Array(vec![Value::F64(1e-300)])),
        ("t.arr_empty", Value::Array(vec![])),
        (
            "t.arr_nested",
            Value::Array(vec![
                Value::Array(vec![Value::U32(1), Value::U32(2)]),
                Value::Array(vec![]),
                Value::Array(vec![Value::U32(3)]),
            ]),
        ),
        (
            // Arrays inside arrays may have different element types each.
            "t.arr_nested_mixed_inner",
            Value::Array(vec![
                Value::Array(vec![Value::String("x".into())]),
                Value::Array(vec![Value::F32(2.0)]),
            ]),
        ),
        (
            // Four levels of arrays: the deepest the reader accepts.
            "t.arr_depth4",
            Value::Array(vec![Value::Array(vec![Value::Array(vec![Value::Array(
                vec![Value::I16(4), Value::I16(5)],
            )])])]),
        ),
    ]
}

/// The tensors of the round trip: (name, type, ggml dims).
fn tensor_set() -> Vec<(&'static str, DType, Vec<u64>)> {
    vec![
        ("f32.vec", DType::F32, vec![5]),
        ("f32.mat", DType::F32, vec![7, 3]),
        ("f16.mat", DType::F16, vec![64, 2]),
        ("bf16.vec", DType::BF16, vec![9]),
        ("q8_0.mat", DType::Q8_0, vec![64, 3]),
        ("q4_0.r3", DType::Q4_0, vec![32, 1, 2]),
        ("q4_k.mat", DType::Q4_K, vec![512, 2]),
        ("q4_k.r4", DType::Q4_K, vec![256, 1, 2, 1]),
        ("i32.vec", DType::I32, vec![3]),
    ]
}

fn build(alignment: Option<u32>) -> GgufWriter {
    let mut w = GgufWriter::new();
    w.set("general.architecture", Value::String("llama".into()))
        .unwrap();
    if let Some(a) = alignment {
        w.set("general.alignment", Value::U32(a)).unwrap();
    }
    for (k, v) in every_value() {
        w.set(k, v).unwrap();
    }
    for (name, dtype, dims) in tensor_set() {
        w.add_tensor(name, dtype, &dims).unwrap();
    }
    w
}

fn check_round_trip(w: &GgufWriter, bytes: Vec<u8>, alignment: u64) {
    assert_eq!(bytes.len() as u64, w.total_len());
    assert_eq!(w.alignment(), alignment);
    assert_eq!(w.total_len() % alignment, 0);
    let f = GgufFile::from_bytes("rt", bytes.clone()).unwrap();
    assert_eq!(f.version, 3);
    assert_eq!(f.alignment(), alignment);
    assert_eq!(f.data_offset(), w.header_len());
    assert_eq!(f.file_len(), w.total_len());

    // Metadata: same keys, same values, same order.
    let want: Vec<(&str, &Value)> = w.metadata().collect();
    let got: Vec<(&str, &Value)> = f.metadata().iter().map(|(k, v)| (k.as_str(), v)).collect();
    assert_eq!(got, want);

    // Tensors: same infos (offsets included) and bytes; padding is zeros.
    assert_eq!(f.tensors(), w.tensors());
    let mut expect_end = w.header_len();
    for (i, t) in f.tensors().iter().enumerate() {
        let abs = w.tensor_offset(i).unwrap();
        assert_eq!(abs, f.data_offset() + t.offset);
        assert_eq!(abs % alignment, 0, "{}", t.name);
        assert_eq!(t.offset % alignment, 0, "{}", t.name);
        // each tensor starts where the previous one's padding ends
        assert_eq!(abs, expect_end, "{}", t.name);
        assert_eq!(f.tensor_data(t), &bytes_for(i, t.bytes)[..], "{}", t.name);
        expect_end = (abs + t.bytes).div_ceil(alignment) * alignment;
        let pad = &bytes[(abs + t.bytes) as usize..expect_end as usize];
        assert!(pad.iter().all(|&b| b == 0), "{}", t.name);
    }
    assert_eq!(expect_end, w.total_len());
    assert_eq!(w.tensor_offset(f.tensors().len()), None);
}

#[test]
fn round_trip_every_value_and_tensor_type() {
    let w = build(None);
    let bytes = to_vec(&w);
    check_round_trip(&w, bytes, 32);
    let f = GgufFile::from_bytes("rt", to_vec(&w)).unwrap();
    assert_eq!(f.tensor("q4_k.mat").unwrap().bytes, 2 * 2 * 144);
    assert_eq!(f.tensor("q8_0.mat").unwrap().bytes, 3 * 2 * 34);
    assert_eq!(f.tensor("q4_0.r3").unwrap().bytes, 2 * 18);
    assert_eq!(f.tensor("f16.mat").unwrap().bytes, 64 * 2 * 2);
}

#[test]
fn round_trip_alignment_64_and_128() {
    for a in [64u32, 128, 1] {
        let w = build(Some(a));
        let bytes = to_vec(&w);
        check_round_trip(&w, bytes, a as u64);
    }
}

#[test]
fn alignment_set_after_tensors_moves_the_offsets() {
    let mut w = GgufWriter::new();
    w.add_tensor("a", DType::F32, &[3]).unwrap();
    w.add_tensor("b", DType::F32, &[3]).unwrap();
    assert_eq!(w.tensors()[1].offset, 32);
    w.set("general.alignment", Value::U32(256)).unwrap();
    assert_eq!(w.tensors()[1].offset, 256);
    assert_eq!(w.data_len(), 512);
    assert_eq!(w.header_len(), 256);
    let bytes = to_vec(&w);
    check_round_trip(&w, bytes, 256);
}

#[test]
fn output_is_deterministic() {
    let a = to_vec(&build(Some(64)));
    let b = to_vec(&build(Some(64)));
    assert_eq!(a, b);
    // write_file produces the same bytes as write_to.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.gguf");
    let n = build(Some(64))
        .write_file(&path, |i, t, s: &mut TensorSink<'_>| {
            // in small pieces, to exercise row-by-row streaming
            for c in bytes_for(i, t.bytes).chunks(7) {
                s.put(c)?;
            }
            Ok::<(), FormatError>(())
        })
        .unwrap();
    assert_eq!(n, a.len() as u64);
    assert_eq!(std::fs::read(&path).unwrap(), a);
    // and GgufFile::open reads it back from the mmap
    let f = GgufFile::open(&path).unwrap();
    assert_eq!(f.tensors().len(), tensor_set().len());
}

/// The byte layout, pinned against the hand-built file of the reader's unit tests: one
/// u32 key, one string array, one F32 tensor of 4 elements.
#[test]
fn exact_bytes_of_a_small_file() {
    fn s(out: &mut Vec<u8>, v: &str) {
        out.extend((v.len() as u64).to_le_bytes());
        out.extend(v.as_bytes());
    }
    let mut want = Vec::new();
    want.extend(b"GGUF");
    want.extend(3u32.to_le_bytes());
    want.extend(1u64.to_le_bytes()); // tensors
    want.extend(2u64.to_le_bytes()); // keys
    s(&mut want, "llama.block_count");
    want.extend(4u32.to_le_bytes());
    want.extend(7u32.to_le_bytes());
    s(&mut want, "tokenizer.ggml.tokens");
    want.extend(9u32.to_le_bytes());
    want.extend(8u32.to_le_bytes());
    want.extend(2u64.to_le_bytes());
    s(&mut want, "a");
    s(&mut want, "b");
    s(&mut want, "w");
    want.extend(1u32.to_le_bytes()); // rank
    want.extend(4u64.to_le_bytes()); // ne0
    want.extend(0u32.to_le_bytes()); // F32
    want.extend(0u64.to_le_bytes()); // offset
    while want.len() % 32 != 0 {
        want.push(0);
    }
    for x in [1.0f32, 2.0, 3.0, 4.0] {
        want.extend(x.to_le_bytes());
    }
    want.resize(want.len().div_ceil(32) * 32, 0); // padding after the last tensor

    let mut w = GgufWriter::new();
    w.set("llama.block_count", Value::U32(7)).unwrap();
    w.set(
        "tokenizer.ggml.tokens",
        Value::Array(vec![Value::String("a".into()), Value::String("b".into())]),
    )
    .unwrap();
    assert_eq!(w.add_tensor("w", DType::F32, &[4]).unwrap(), 0);
    let mut got = Vec::new();
    w.write_to(&mut got, |_, _, s: &mut TensorSink<'_>| {
        for x in [1.0f32, 2.0, 3.0, 4.0] {
            s.put(&x.to_le_bytes())?;
        }
        Ok::<(), FormatError>(())
    })
    .unwrap();
    assert_eq!(got, want);
    assert_eq!(w.header_bytes(), want[..w.header_len() as usize]);
}

#[test]
fn no_tensors_and_no_keys() {
    let w = GgufWriter::new();
    let bytes = to_vec(&w);
    assert_eq!(bytes.len(), 32); // 24-byte header padded to the alignment
    let f = GgufFile::from_bytes("empty", bytes).unwrap();
    assert!(f.metadata().is_empty() && f.tensors().is_empty());
}

#[test]
fn set_replaces_in_place_and_keeps_order() {
    let mut w = GgufWriter::new();
    w.set("a", Value::U32(1)).unwrap();
    w.set("b", Value::String("x".into())).unwrap();
    w.set("c", Value::Bool(true)).unwrap();
    w.set("b", Value::Array(vec![Value::U8(1), Value::U8(2)]))
        .unwrap();
    let keys: Vec<&str> = w.metadata().map(|(k, _)| k).collect();
    assert_eq!(keys, ["a", "b", "c"]);
    let f = GgufFile::from_bytes("r", to_vec(&w)).unwrap();
    assert_eq!(
        f.get("b"),
        Some(&Value::Array(vec![Value::U8(1), Value::U8(2)]))
    );
    assert_eq!(f.metadata().len(), 3);
    assert_eq!(w.get("a"), Some(&Value::U32(1)));
}

#[test]
fn empty_array_element_type() {
    // The element type sits right after the key and the array type tag.
    fn elem_type(w: &GgufWriter, key: &str) -> u32 {
        let h = w.header_bytes();
        let pos = h
            .windows(key.len())
            .position(|s| s == key.as_bytes())
            .unwrap()
            + key.len();
        assert_eq!(u32::from_le_bytes(h[pos..pos + 4].try_into().unwrap()), 9);
        u32::from_le_bytes(h[pos + 4..pos + 8].try_into().unwrap())
    }
    let mut w = GgufWriter::new();
    w.set("plain", Value::Array(vec![])).unwrap();
    w.set_empty_array("merges", &Value::String(String::new()))
        .unwrap();
    w.set_empty_array("sections", &Value::I32(0)).unwrap();
    assert_eq!(elem_type(&w, "plain"), 0);
    assert_eq!(elem_type(&w, "merges"), 8);
    assert_eq!(elem_type(&w, "sections"), 5);
    let f = GgufFile::from_bytes("r", to_vec(&w)).unwrap();
    assert_eq!(f.get_str_array("merges").unwrap().unwrap().len(), 0);
}

fn key_err(r: Result<(), FormatError>, key: &str, needle: &str) {
    let e = r.unwrap_err();
    let msg = e.to_string();
    assert!(matches!(e, FormatError::WriterKey { .. }), "{msg}");
    assert!(msg.contains(&format!("'{key}'")), "{msg}");
    assert!(msg.contains(needle), "{msg}");
}

#[test]
fn metadata_errors() {
    let mut w = GgufWriter::new();
    key_err(w.set("", Value::U8(1)), "", "empty");
    key_err(
        w.set("mixed", Value::Array(vec![Value::U32(1), Value::I32(2)])),
        "mixed",
        "element 0 is u32, element 1 is i32",
    );
    key_err(
        w.set(
            "mixed.nested",
            Value::Array(vec![Value::Array(vec![
                Value::String("a".into()),
                Value::U8(1),
            ])]),
        ),
        "mixed.nested",
        "not all one type",
    );
    let deep = Value::Array(vec![Value::Array(vec![Value::Array(vec![Value::Array(
        vec![Value::Array(vec![Value::U8(1)])],
    )])])]);
    key_err(w.set("deep", deep), "deep", "nested deeper than 4");
    key_err(
        w.set("general.alignment", Value::U64(64)),
        "general.alignment",
        "power of two",
    );
    key_err(
        w.set("general.alignment", Value::U32(48)),
        "general.alignment",
        "power of two",
    );
    key_err(
        w.set("general.alignment", Value::U32(0)),
        "general.alignment",
        "power of two",
    );
    key_err(
        w.set("general.alignment", Value::U32(1 << 21)),
        "general.alignment",
        "power of two",
    );
    let long = "k".repeat(70_000);
    let e = w.set(&long, Value::U8(1)).unwrap_err().to_string();
    assert!(e.contains("70000 bytes long"), "{e}");
    // Nothing was stored by the failed calls.
    assert_eq!(w.metadata().count(), 0);
    assert_eq!(w.alignment(), 32);
}

fn tensor_err(r: Result<usize, FormatError>, name: &str, needle: &str) {
    let e = r.unwrap_err();
    let msg = e.to_string();
    assert!(matches!(e, FormatError::WriterTensor { .. }), "{msg}");
    assert!(msg.contains(&format!("tensor '{name}'")), "{msg}");
    assert!(msg.contains(needle), "{msg}");
}

#[test]
fn tensor_errors() {
    let mut w = GgufWriter::new();
    let max_name = "n".repeat(MAX_TENSOR_NAME_BYTES);
    assert_eq!(w.add_tensor(&max_name, DType::F32, &[1]).unwrap(), 0);
    let long = "n".repeat(MAX_TENSOR_NAME_BYTES + 1);
    tensor_err(
        w.add_tensor(&long, DType::F32, &[1]),
        &long,
        "64 bytes long",
    );
    tensor_err(w.add_tensor("", DType::F32, &[1]), "", "empty");
    w.add_tensor("dup", DType::F32, &[4]).unwrap();
    tensor_err(w.add_tensor("dup", DType::F32, &[4]), "dup", "added twice");
    tensor_err(w.add_tensor("r0", DType::F32, &[]), "r0", "rank 0");
    tensor_err(
        w.add_tensor("r5", DType::F32, &[1, 1, 1, 1, 1]),
        "r5",
        "rank 5",
    );
    tensor_err(
        w.add_tensor("zero", DType::F32, &[4, 0]),
        "zero",
        "dimension 1 = 0",
    );
    tensor_err(
        w.add_tensor("huge", DType::F32, &[(1 << 40) + 1]),
        "huge",
        "outside 1..=2^40",
    );
    tensor_err(
        w.add_tensor("ragged", DType::Q4_0, &[48, 2]),
        "ragged",
        "not a multiple of the Q4_0 block size 32",
    );
    tensor_err(
        w.add_tensor("ragged_k", DType::Q4_K, &[4096 + 32]),
        "ragged_k",
        "block size 256",
    );
    tensor_err(
        w.add_tensor("elems", DType::F32, &[1 << 40, 1 << 40]),
        "elems",
        "2^63 - 1 elements",
    );
    tensor_err(
        w.add_tensor("bytes", DType::F64, &[1 << 40, 1 << 21]),
        "bytes",
        "overflows",
    );
    // The failed calls added nothing.
    assert_eq!(w.tensors().len(), 2);
    assert_eq!(w.tensor_index("dup"), Some(1));
}

#[test]
fn callback_giving_too_few_bytes() {
    let mut w = GgufWriter::new();
    w.add_tensor("blk.0.attn_q.weight", DType::Q8_0, &[64, 2])
        .unwrap();
    let e = w
        .write_to(&mut Vec::new(), |_, t, s: &mut TensorSink<'_>| {
            s.put(&vec![0; t.bytes as usize - 1])
        })
        .unwrap_err();
    let msg = e.to_string();
    assert!(
        matches!(
            e,
            FormatError::TensorSize {
                expected: 136,
                got: 135,
                ..
            }
        ),
        "{msg}"
    );
    assert!(
        msg.contains("'blk.0.attn_q.weight'")
            && msg.contains("Q8_0")
            && msg.contains("gave 135 bytes, expected 136"),
        "{msg}"
    );
}

#[test]
fn callback_giving_too_many_bytes_is_refused_before_writing() {
    let mut w = GgufWriter::new();
    w.add_tensor("t", DType::F16, &[4]).unwrap();
    let mut out = Vec::new();
    let e = w
        .write_to(&mut out, |_, _, s: &mut TensorSink<'_>| {
            s.put(&[1; 6])?;
            assert_eq!(s.remaining(), 2);
            s.put(&[2; 3])
        })
        .unwrap_err();
    assert!(
        matches!(
            e,
            FormatError::TensorSize {
                expected: 8,
                got: 9,
                ..
            }
        ),
        "{e}"
    );
    // header + the 6 accepted bytes, none of the refused 3
    assert_eq!(out.len() as u64, w.header_len() + 6);
    assert!(out.ends_with(&[1; 6]));
}

#[test]
fn sink_as_io_write() {
    let mut w = GgufWriter::new();
    w.add_tensor("t", DType::F32, &[2]).unwrap();
    let mut out = Vec::new();
    w.write_to(&mut out, |_, _, s: &mut TensorSink<'_>| {
        s.write_all(&1.0f32.to_le_bytes())
            .and_then(|_| s.write_all(&2.0f32.to_le_bytes()))
            .map_err(|e| FormatError::WriterTensor {
                tensor: "t".into(),
                what: e.to_string(),
            })
    })
    .unwrap();
    let f = GgufFile::from_bytes("r", out).unwrap();
    assert_eq!(f.tensor_data(&f.tensors()[0]), [0, 0, 128, 63, 0, 0, 0, 64]);
}

#[derive(Debug)]
enum MyError {
    Format(FormatError),
    Quantize(String),
}

impl From<FormatError> for MyError {
    fn from(e: FormatError) -> Self {
        MyError::Format(e)
    }
}

#[test]
fn callback_errors_pass_through() {
    let mut w = GgufWriter::new();
    w.add_tensor("a", DType::F32, &[1]).unwrap();
    w.add_tensor("b", DType::F32, &[1]).unwrap();
    let mut calls = Vec::new();
    let e = w
        .write_to(&mut Vec::new(), |i, t, s: &mut TensorSink<'_>| {
            calls.push(i);
            if t.name == "b" {
                return Err(MyError::Quantize("NaN in row 0".into()));
            }
            s.put(&[0; 4])?;
            Ok(())
        })
        .unwrap_err();
    assert!(matches!(e, MyError::Quantize(ref m) if m == "NaN in row 0"));
    assert_eq!(calls, [0, 1]);
    // and the writer's own errors arrive through From<FormatError>
    let e = w
        .write_to(&mut Vec::new(), |_, _, _: &mut TensorSink<'_>| {
            Ok::<(), MyError>(())
        })
        .unwrap_err();
    assert!(matches!(e, MyError::Format(FormatError::TensorSize { .. })));
}

/// A writer that fails with `kind` once `limit` bytes have been accepted.
struct Failing {
    limit: usize,
    written: usize,
    kind: std::io::ErrorKind,
}

impl Write for Failing {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if self.written + buf.len() > self.limit {
            return Err(std::io::Error::from(self.kind));
        }
        self.written += buf.len();
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn io_errors_name_what_was_being_written() {
    let mut w = GgufWriter::new();
    w.add_tensor("tok", DType::F32, &[1024]).unwrap();
    let header = w.header_len() as usize;
    for (limit, needle) in [
        (10, "writing the GGUF header"),
        (header + 100, "writing tensor 'tok'"),
    ] {
        let mut out = Failing {
            limit,
            written: 0,
            kind: std::io::ErrorKind::StorageFull,
        };
        let e = w.write_to(&mut out, fill_all).unwrap_err();
        let msg = e.to_string();
        assert!(matches!(e, FormatError::Write { .. }), "{msg}");
        assert!(msg.contains(needle), "{msg}");
        assert!(msg.contains("free space on the disk"), "{msg}");
        assert!(msg.contains("<GGUF output stream>"), "{msg}");
    }
    let mut out = Failing {
        limit: header + 100,
        written: 0,
        kind: std::io::ErrorKind::PermissionDenied,
    };
    let msg = w.write_to(&mut out, fill_all).unwrap_err().to_string();
    assert!(msg.contains("writable"), "{msg}");
    // A callback that swallows the sink's I/O error does not produce a file silently.
    let mut out = Failing {
        limit: header + 100,
        written: 0,
        kind: std::io::ErrorKind::Other,
    };
    let e = w
        .write_to(&mut out, |i, t, s: &mut TensorSink<'_>| {
            let _ = s.put(&bytes_for(i, t.bytes));
            Ok::<(), FormatError>(())
        })
        .unwrap_err();
    assert!(e.to_string().contains("failed earlier"), "{e}");
}

#[cfg(target_os = "linux")]
#[test]
fn disk_full_says_free_space() {
    let Ok(mut full) = std::fs::OpenOptions::new().write(true).open("/dev/full") else {
        return;
    };
    let mut w = GgufWriter::new();
    w.add_tensor("t", DType::F32, &[4]).unwrap();
    let msg = w.write_to(&mut full, fill_all).unwrap_err().to_string();
    assert!(msg.contains("No space left on device"), "{msg}");
    assert!(msg.contains("free space on the disk"), "{msg}");
}

#[test]
fn write_file_failure_leaves_the_old_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("out.gguf");
    std::fs::write(&path, b"old model").unwrap();
    let mut w = GgufWriter::new();
    w.add_tensor("a", DType::F32, &[1 << 20]).unwrap();
    w.add_tensor("b", DType::F32, &[4]).unwrap();
    let e = w
        .write_file(&path, |i, t, s: &mut TensorSink<'_>| {
            if i == 1 {
                return Err(FormatError::WriterTensor {
                    tensor: t.name.clone(),
                    what: "conversion failed".into(),
                });
            }
            s.put(&bytes_for(i, t.bytes))
        })
        .unwrap_err();
    assert!(e.to_string().contains("conversion failed"));
    assert_eq!(std::fs::read(&path).unwrap(), b"old model");
    let names: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, ["out.gguf"]);
}

#[test]
fn value_offsets_point_at_the_payloads() {
    let mut w = GgufWriter::new();
    w.set("a.u32", Value::U32(0xDEAD_BEEF)).unwrap();
    w.set("b.str", Value::String("hello".into())).unwrap();
    w.set("c.arr", Value::Array(vec![Value::U64(7), Value::U64(9)]))
        .unwrap();
    let h = w.header_bytes();
    let at = |k: &str| w.value_offset(k).unwrap() as usize;
    assert_eq!(
        &h[at("a.u32")..at("a.u32") + 4],
        &0xDEAD_BEEFu32.to_le_bytes()
    );
    assert_eq!(&h[at("b.str")..at("b.str") + 5], b"hello");
    assert_eq!(&h[at("c.arr")..at("c.arr") + 8], &7u64.to_le_bytes());
    assert_eq!(&h[at("c.arr") + 8..at("c.arr") + 16], &9u64.to_le_bytes());
    assert_eq!(w.value_offset("missing"), None);
}

/// The reader's value offsets are the writer's, for every value type.
#[test]
fn reader_and_writer_agree_on_value_offsets() {
    let w = build(None);
    let bytes = to_vec(&w);
    let f = GgufFile::from_bytes("offsets.gguf", bytes).unwrap();
    let mut n = 0;
    for (k, _) in w.metadata() {
        assert_eq!(f.value_offset(k), w.value_offset(k), "{k}");
        n += 1;
    }
    assert!(n >= 10);
    assert_eq!(f.value_offset("no.such.key"), None);
    // A string's offset is its first UTF-8 byte.
    let (k, s) = w
        .metadata()
        .find_map(|(k, v)| match v {
            Value::String(s) if !s.is_empty() => Some((k, s.clone())),
            _ => None,
        })
        .unwrap();
    let at = f.value_offset(k).unwrap() as usize;
    assert_eq!(&f.bytes()[at..at + s.len()], s.as_bytes());
}
