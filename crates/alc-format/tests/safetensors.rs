//! Hugging Face checkpoints: single files, shards with an index, conversions, and each
//! error. The files are written with the `safetensors` crate's own serializer.

use alc_core::DType;
use alc_format::safetensors::{Dtype, HfTensors};
use alc_format::FormatError;
use safetensors::tensor::TensorView;
use std::path::Path;

/// (name, dtype, shape, bytes)
type Spec = (&'static str, Dtype, Vec<usize>, Vec<u8>);

fn f32_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

fn write_st(path: &Path, tensors: &[Spec]) {
    let views: Vec<(&str, TensorView<'_>)> = tensors
        .iter()
        .map(|(n, d, s, b)| (*n, TensorView::new(*d, s.clone(), b).unwrap()))
        .collect();
    std::fs::write(path, safetensors::serialize(views, None).unwrap()).unwrap();
}

fn small() -> Vec<Spec> {
    vec![
        (
            "model.embed_tokens.weight",
            Dtype::F32,
            vec![3, 2],
            f32_bytes(&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0]),
        ),
        (
            "model.norm.weight",
            Dtype::BF16,
            vec![2],
            vec![0x80, 0x3f, 0x00, 0xc0], // 1.0, -2.0
        ),
        (
            "lm_head.weight",
            Dtype::F16,
            vec![2, 2],
            vec![0x00, 0x3c, 0x00, 0x40, 0x00, 0xbc, 0x00, 0x00], // 1, 2, -1, 0
        ),
    ]
}

fn err_of(r: Result<HfTensors, FormatError>) -> FormatError {
    match r {
        Ok(h) => panic!("expected an error, opened {h:?}"),
        Err(e) => e,
    }
}

#[test]
fn single_model_safetensors() {
    let dir = tempfile::tempdir().unwrap();
    write_st(&dir.path().join("model.safetensors"), &small());
    let h = HfTensors::open(dir.path()).unwrap();
    assert_eq!(h.len(), 3);
    assert_eq!(h.index_path(), None);
    assert_eq!(h.shards(), [dir.path().join("model.safetensors")]);
    assert_eq!(h.dir(), dir.path());
    let t = h.get("model.embed_tokens.weight").unwrap();
    assert_eq!(
        (t.dtype, t.shape.clone(), t.shard),
        (Dtype::F32, vec![3, 2], 0)
    );
    assert_eq!(t.n_elements(), 6);
    assert_eq!(t.n_bytes(), 24);
    assert_eq!(t.core_dtype(), Some(DType::F32));
    let (d, raw) = h.raw("model.embed_tokens.weight").unwrap();
    assert_eq!(d, Dtype::F32);
    assert_eq!(raw, f32_bytes(&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0]));
    assert_eq!(
        h.to_f32("model.embed_tokens.weight").unwrap(),
        [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]
    );
    assert_eq!(h.to_f32("model.norm.weight").unwrap(), [1.0, -2.0]);
    assert_eq!(h.to_f32("lm_head.weight").unwrap(), [1.0, 2.0, -1.0, 0.0]);
    // Tensors are listed in the order of their data in the file.
    let offsets: Vec<u64> = h.tensors().iter().map(|t| t.file_offset()).collect();
    assert!(offsets.windows(2).all(|w| w[0] < w[1]), "{offsets:?}");
    // A path to the file itself works too.
    let h2 = HfTensors::open(dir.path().join("model.safetensors")).unwrap();
    assert_eq!(h2.tensors(), h.tensors());
}

#[test]
fn single_file_with_another_name() {
    let dir = tempfile::tempdir().unwrap();
    write_st(&dir.path().join("consolidated.safetensors"), &small());
    std::fs::write(dir.path().join("config.json"), "{}").unwrap();
    let h = HfTensors::open(dir.path()).unwrap();
    assert_eq!(h.len(), 3);
}

#[test]
fn release_keeps_the_bytes_readable() {
    let dir = tempfile::tempdir().unwrap();
    let big: Vec<f32> = (0..(1 << 20)).map(|i| i as f32).collect();
    write_st(
        &dir.path().join("model.safetensors"),
        &[
            ("a", Dtype::F32, vec![1 << 20], f32_bytes(&big)),
            ("b", Dtype::F32, vec![2], f32_bytes(&[7.0, 8.0])),
        ],
    );
    let h = HfTensors::open(dir.path()).unwrap();
    let (_, before) = h.raw("a").unwrap();
    let sum: u64 = before.iter().map(|&b| b as u64).sum();
    h.release("a").unwrap();
    h.release("b").unwrap();
    // Borrowed bytes stay valid and unchanged: the pages refault from the file.
    assert_eq!(before.iter().map(|&b| b as u64).sum::<u64>(), sum);
    assert_eq!(h.to_f32("a").unwrap(), big);
    assert_eq!(h.to_f32("b").unwrap(), [7.0, 8.0]);
    assert!(matches!(
        h.release("nope"),
        Err(FormatError::UnknownTensor { .. })
    ));
}

/// On Linux the process's file-backed resident set shows the effect of `release`.
#[cfg(target_os = "linux")]
#[test]
fn release_drops_resident_pages() {
    fn rss_file_kib() -> Option<u64> {
        let s = std::fs::read_to_string("/proc/self/status").ok()?;
        let line = s.lines().find(|l| l.starts_with("RssFile:"))?;
        line.split_whitespace().nth(1)?.parse().ok()
    }
    let dir = tempfile::tempdir().unwrap();
    let n = 16 << 20; // 64 MiB of f32
    let data: Vec<u8> = (0..n).flat_map(|i: u32| (i as f32).to_le_bytes()).collect();
    write_st(
        &dir.path().join("model.safetensors"),
        &[("big", Dtype::F32, vec![n as usize], data)],
    );
    let h = HfTensors::open(dir.path()).unwrap();
    let (_, bytes) = h.raw("big").unwrap();
    // Touch every page.
    let mut acc = 0u8;
    for b in bytes.iter().step_by(4096) {
        acc = acc.wrapping_add(*b);
    }
    std::hint::black_box(acc);
    let Some(before) = rss_file_kib() else {
        return;
    };
    h.release("big").unwrap();
    let after = rss_file_kib().unwrap();
    assert!(
        before >= after + 48 * 1024,
        "RssFile {before} KiB -> {after} KiB"
    );
}

#[test]
fn conversions_are_exact() {
    // Every f16 and bf16 bit pattern.
    let all: Vec<u8> = (0..=u16::MAX).flat_map(|b| b.to_le_bytes()).collect();
    let dir = tempfile::tempdir().unwrap();
    let f64s = [0.1f64, -1e300, 1e-50, 65504.0, f64::INFINITY];
    write_st(
        &dir.path().join("model.safetensors"),
        &[
            ("f16", Dtype::F16, vec![256, 256], all.clone()),
            ("bf16", Dtype::BF16, vec![65536], all),
            (
                "f64",
                Dtype::F64,
                vec![5],
                f64s.iter().flat_map(|x| x.to_le_bytes()).collect(),
            ),
        ],
    );
    let h = HfTensors::open(dir.path()).unwrap();

    // f16 reference: decode the fields by hand.
    fn f16_ref(h: u16) -> f32 {
        let sign = if h & 0x8000 != 0 { -1.0f32 } else { 1.0 };
        let exp = ((h >> 10) & 0x1f) as i32;
        let man = (h & 0x3ff) as f32;
        match exp {
            0 => sign * man * 2f32.powi(-24),
            31 if man == 0.0 => sign * f32::INFINITY,
            31 => f32::NAN,
            e => sign * (1.0 + man / 1024.0) * 2f32.powi(e - 15),
        }
    }
    let got = h.to_f32("f16").unwrap();
    assert_eq!(got.len(), 65536);
    for (bits, &g) in (0..=u16::MAX).zip(&got) {
        let want = f16_ref(bits);
        if want.is_nan() {
            assert!(g.is_nan(), "{bits:#06x}");
        } else {
            assert_eq!(g.to_bits(), want.to_bits(), "{bits:#06x}: {g} vs {want}");
        }
    }
    let got = h.to_f32("bf16").unwrap();
    for (bits, &g) in (0..=u16::MAX).zip(&got) {
        assert_eq!(g.to_bits(), (bits as u32) << 16, "{bits:#06x}");
    }
    let got = h.to_f32("f64").unwrap();
    let want: Vec<f32> = f64s.iter().map(|&x| x as f32).collect();
    assert_eq!(got, want);

    // The reused-buffer form gives the same and clears the buffer first.
    let mut buf = vec![9.0; 3];
    h.to_f32_into("bf16", &mut buf).unwrap();
    assert_eq!(buf.len(), 65536);
}

#[test]
fn unsupported_dtype_names_tensor_dtype_and_supported() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("model.safetensors");
    write_st(
        &path,
        &[
            ("ids", Dtype::I32, vec![2], vec![1, 0, 0, 0, 2, 0, 0, 0]),
            ("mask", Dtype::BOOL, vec![2], vec![1, 0]),
        ],
    );
    let h = HfTensors::open(dir.path()).unwrap();
    let e = h.to_f32("ids").unwrap_err();
    let msg = e.to_string();
    assert!(matches!(e, FormatError::UnsupportedDtype { .. }), "{msg}");
    assert!(
        msg.contains("'ids'")
            && msg.contains("I32")
            && msg.contains("F32, F16, BF16, F64")
            && msg.contains(&path.display().to_string()),
        "{msg}"
    );
    assert_eq!(h.get("ids").unwrap().core_dtype(), Some(DType::I32));
    assert_eq!(h.get("mask").unwrap().core_dtype(), None);
    assert!(h.to_f32("mask").unwrap_err().to_string().contains("BOOL"));
    let e = h.to_f32("missing").unwrap_err().to_string();
    assert!(e.contains("no tensor named 'missing'"), "{e}");
}

/// Three shards and an index as `transformers` writes them.
fn sharded(dir: &Path) {
    write_st(
        &dir.join("model-00001-of-00003.safetensors"),
        &[
            ("a.weight", Dtype::F32, vec![2], f32_bytes(&[1.0, 2.0])),
            ("b.weight", Dtype::F16, vec![1], vec![0x00, 0x3c]),
        ],
    );
    write_st(
        &dir.join("model-00002-of-00003.safetensors"),
        &[("c.weight", Dtype::BF16, vec![1, 1], vec![0x40, 0x40])],
    );
    write_st(
        &dir.join("model-00003-of-00003.safetensors"),
        &[("d.weight", Dtype::F32, vec![1], f32_bytes(&[4.0]))],
    );
    write_index(
        dir,
        &[
            ("a.weight", "model-00001-of-00003.safetensors"),
            ("b.weight", "model-00001-of-00003.safetensors"),
            ("c.weight", "model-00002-of-00003.safetensors"),
            ("d.weight", "model-00003-of-00003.safetensors"),
        ],
    );
}

fn write_index(dir: &Path, map: &[(&str, &str)]) {
    let wm: serde_json::Map<String, serde_json::Value> = map
        .iter()
        .map(|(t, s)| (t.to_string(), serde_json::Value::String(s.to_string())))
        .collect();
    let j = serde_json::json!({"metadata": {"total_size": 16}, "weight_map": wm});
    std::fs::write(
        dir.join("model.safetensors.index.json"),
        serde_json::to_string_pretty(&j).unwrap(),
    )
    .unwrap();
}

#[test]
fn sharded_with_index() {
    let dir = tempfile::tempdir().unwrap();
    sharded(dir.path());
    let h = HfTensors::open(dir.path()).unwrap();
    assert_eq!(
        h.index_path(),
        Some(dir.path().join("model.safetensors.index.json").as_path())
    );
    assert_eq!(h.shards().len(), 3);
    let names: Vec<&str> = h.tensors().iter().map(|t| t.name.as_str()).collect();
    assert_eq!(names, ["a.weight", "b.weight", "c.weight", "d.weight"]);
    let shards: Vec<usize> = h.tensors().iter().map(|t| t.shard).collect();
    assert_eq!(shards, [0, 0, 1, 2]);
    assert!(h.shards()[1].ends_with("model-00002-of-00003.safetensors"));
    assert_eq!(h.to_f32("a.weight").unwrap(), [1.0, 2.0]);
    assert_eq!(h.to_f32("b.weight").unwrap(), [1.0]);
    assert_eq!(h.to_f32("c.weight").unwrap(), [3.0]);
    assert_eq!(h.get("c.weight").unwrap().shape, [1, 1]);
    assert_eq!(h.to_f32("d.weight").unwrap(), [4.0]);
    // The index file itself can be passed.
    let h2 = HfTensors::open(dir.path().join("model.safetensors.index.json")).unwrap();
    assert_eq!(h2.tensors(), h.tensors());
}

#[test]
fn missing_dir_and_no_safetensors() {
    let dir = tempfile::tempdir().unwrap();
    let gone = dir.path().join("nope");
    let e = err_of(HfTensors::open(&gone));
    assert!(matches!(e, FormatError::CheckpointNotFound { .. }), "{e}");
    assert!(e.to_string().contains(&gone.display().to_string()));

    std::fs::write(dir.path().join("pytorch_model.bin"), b"x").unwrap();
    let e = err_of(HfTensors::open(dir.path()));
    let msg = e.to_string();
    assert!(matches!(e, FormatError::NoSafetensors { .. }), "{msg}");
    assert!(msg.contains("no .safetensors file"), "{msg}");
}

#[test]
fn several_files_without_index() {
    let dir = tempfile::tempdir().unwrap();
    write_st(&dir.path().join("a.safetensors"), &small());
    write_st(&dir.path().join("b.safetensors"), &small());
    let e = err_of(HfTensors::open(dir.path()));
    let msg = e.to_string();
    assert!(
        matches!(e, FormatError::AmbiguousCheckpoint { count: 2, .. }),
        "{msg}"
    );
    assert!(msg.contains("a.safetensors, b.safetensors"), "{msg}");
}

#[test]
fn index_unparsable() {
    let dir = tempfile::tempdir().unwrap();
    sharded(dir.path());
    let index = dir.path().join("model.safetensors.index.json");
    for (text, needle) in [
        ("{\"weight_map\": {\"a\": ", "invalid JSON"),
        ("{\"metadata\": {}}", "weight_map"),
        ("{\"weight_map\": {}}", "empty"),
        ("{\"weight_map\": {\"a\": 3}}", "invalid JSON"),
        (
            "{\"weight_map\": {\"a.weight\": \"../model-00001-of-00003.safetensors\"}}",
            "not a file name",
        ),
    ] {
        std::fs::write(&index, text).unwrap();
        let e = err_of(HfTensors::open(dir.path()));
        let msg = e.to_string();
        assert!(matches!(e, FormatError::BadIndex { .. }), "{msg}");
        assert!(msg.contains(needle), "{text}: {msg}");
        assert!(msg.contains(&index.display().to_string()), "{msg}");
    }
}

#[test]
fn index_names_a_missing_shard() {
    let dir = tempfile::tempdir().unwrap();
    sharded(dir.path());
    std::fs::remove_file(dir.path().join("model-00002-of-00003.safetensors")).unwrap();
    let e = err_of(HfTensors::open(dir.path()));
    assert!(matches!(e, FormatError::MissingShard { .. }), "{e}");
    assert_eq!(
        e.to_string(),
        format!(
            "model-00002-of-00003.safetensors listed in {} is missing; re-download the checkpoint",
            dir.path().join("model.safetensors.index.json").display()
        )
    );
}

#[test]
fn tensor_in_index_but_not_in_its_shard() {
    let dir = tempfile::tempdir().unwrap();
    sharded(dir.path());
    write_index(
        dir.path(),
        &[
            ("a.weight", "model-00001-of-00003.safetensors"),
            ("b.weight", "model-00001-of-00003.safetensors"),
            ("c.weight", "model-00001-of-00003.safetensors"), // wrong shard
            ("d.weight", "model-00003-of-00003.safetensors"),
        ],
    );
    let e = err_of(HfTensors::open(dir.path()));
    let msg = e.to_string();
    assert!(matches!(e, FormatError::TensorNotInShard { .. }), "{msg}");
    assert!(
        msg.contains("model-00001-of-00003.safetensors")
            && msg.contains("'c.weight'")
            && msg.contains("listed in model.safetensors.index.json"),
        "{msg}"
    );
}

#[test]
fn tensor_in_two_shards() {
    let dir = tempfile::tempdir().unwrap();
    sharded(dir.path());
    write_st(
        &dir.path().join("model-00003-of-00003.safetensors"),
        &[
            ("a.weight", Dtype::F32, vec![2], f32_bytes(&[1.0, 2.0])),
            ("d.weight", Dtype::F32, vec![1], f32_bytes(&[4.0])),
        ],
    );
    let e = err_of(HfTensors::open(dir.path()));
    let msg = e.to_string();
    assert!(matches!(e, FormatError::DuplicateTensor { .. }), "{msg}");
    assert!(
        msg.contains("'a.weight'")
            && msg.contains("model-00001-of-00003.safetensors")
            && msg.contains("model-00003-of-00003.safetensors"),
        "{msg}"
    );
}

#[test]
fn corrupt_and_truncated_files() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("model.safetensors");
    write_st(&path, &small());
    let good = std::fs::read(&path).unwrap();
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("empty", vec![]),
        ("short", good[..5].to_vec()),
        ("truncated data", good[..good.len() - 3].to_vec()),
        ("truncated header", good[..20].to_vec()),
        ("garbage header", {
            let mut b = good.clone();
            b[8..16].copy_from_slice(b"not json");
            b
        }),
        ("huge header length", {
            let mut b = good.clone();
            b[..8].copy_from_slice(&u64::MAX.to_le_bytes());
            b
        }),
        ("extra bytes", {
            let mut b = good.clone();
            b.extend([0; 4]);
            b
        }),
    ];
    for (what, bytes) in cases {
        std::fs::write(&path, &bytes).unwrap();
        let e = err_of(HfTensors::open(dir.path()));
        let msg = e.to_string();
        assert!(
            matches!(e, FormatError::BadSafetensors { .. }),
            "{what}: {msg}"
        );
        assert!(msg.contains(&path.display().to_string()), "{what}: {msg}");
        assert!(msg.contains("re-download"), "{what}: {msg}");
    }
}

#[test]
fn corrupt_shard_names_the_shard() {
    let dir = tempfile::tempdir().unwrap();
    sharded(dir.path());
    let shard = dir.path().join("model-00003-of-00003.safetensors");
    let b = std::fs::read(&shard).unwrap();
    std::fs::write(&shard, &b[..b.len() - 1]).unwrap();
    let msg = err_of(HfTensors::open(dir.path())).to_string();
    assert!(msg.contains(&shard.display().to_string()), "{msg}");
}

/// The tiny checkpoints under tests/fixtures/hf were written by `transformers` itself
/// (qwen2 sharded with an index): every one opens, and every float tensor converts.
/// Skipped where the fixtures are absent.
#[test]
fn real_checkpoints_from_transformers() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/hf");
    let Ok(entries) = std::fs::read_dir(&root) else {
        return;
    };
    let mut opened = 0;
    for entry in entries {
        let dir = entry.unwrap().path();
        if !dir.is_dir() {
            continue;
        }
        let h = HfTensors::open(&dir).unwrap_or_else(|e| panic!("{e}"));
        assert!(!h.is_empty(), "{}", dir.display());
        for t in h.tensors() {
            let (_, raw) = h.raw(&t.name).unwrap();
            assert_eq!(raw.len() as u64, t.n_bytes());
            if matches!(t.dtype, Dtype::F32 | Dtype::F16 | Dtype::BF16) {
                let v = h.to_f32(&t.name).unwrap();
                assert_eq!(v.len() as u64, t.n_elements(), "{}", t.name);
            }
            h.release(&t.name).unwrap();
        }
        if dir.ends_with("qwen2") {
            assert!(h.index_path().is_some() && h.shards().len() == 2);
        }
        opened += 1;
    }
    assert!(opened > 0);
}

#[test]
fn element_ranges_convert_like_the_whole_tensor() {
    let dir = tempfile::tempdir().unwrap();
    write_st(&dir.path().join("model.safetensors"), &small());
    let h = HfTensors::open(dir.path()).unwrap();
    let mut out = Vec::new();
    for name in [
        "model.embed_tokens.weight",
        "model.norm.weight",
        "lm_head.weight",
    ] {
        let all = h.to_f32(name).unwrap();
        for a in 0..=all.len() {
            for b in a..=all.len() + 2 {
                h.range_f32_into(name, a..b, &mut out).unwrap();
                assert_eq!(out, all[a..b.min(all.len())], "{name} {a}..{b}");
            }
        }
    }
}
