//! Checks shared by `safetensors_parse` and `safetensors_index`: everything an opened
//! checkpoint hands out must agree with the bytes it was opened from.

use alc_format::safetensors::{Dtype, HfTensor, HfTensors};
use alc_format::FormatError;

/// IEEE binary16 to f32 the textbook way: the reference for the library's F16C /
/// `half` path.
fn f16_ref(h: u16) -> f32 {
    let sign = if h & 0x8000 != 0 { -1.0f32 } else { 1.0 };
    let exp = i32::from((h >> 10) & 0x1f);
    let man = f32::from(h & 0x3ff);
    match exp {
        0 => sign * man * 2f32.powi(-24),
        31 if man == 0.0 => sign * f32::INFINITY,
        31 => f32::NAN,
        e => sign * (1.0 + man / 1024.0) * 2f32.powi(e - 15),
    }
}

/// Element `i` of `data` as f32, decoded independently of the library.
fn reference(dtype: Dtype, data: &[u8], i: usize) -> f32 {
    let b = |n: usize| &data[i * n..(i + 1) * n];
    match dtype {
        Dtype::F32 => f32::from_le_bytes(b(4).try_into().unwrap()),
        Dtype::BF16 => {
            f32::from_bits(u32::from(u16::from_le_bytes(b(2).try_into().unwrap())) << 16)
        }
        Dtype::F16 => f16_ref(u16::from_le_bytes(b(2).try_into().unwrap())),
        Dtype::F64 => f64::from_le_bytes(b(8).try_into().unwrap()) as f32,
        _ => unreachable!("not convertible"),
    }
}

fn same(a: f32, b: f32) -> bool {
    (a.is_nan() && b.is_nan()) || a.to_bits() == b.to_bits()
}

fn convertible(d: Dtype) -> bool {
    matches!(d, Dtype::F32 | Dtype::F16 | Dtype::BF16 | Dtype::F64)
}

fn check_tensor(st: &HfTensors, t: &HfTensor, file: &[u8]) {
    let elems = t
        .shape
        .iter()
        .try_fold(1u64, |a, &d| a.checked_mul(d))
        .expect("an accepted shape's element count overflows u64");
    assert_eq!(t.n_elements(), elems);
    let (off, n) = (t.file_offset(), t.n_bytes());
    let end = off.checked_add(n).expect("data range overflows");
    assert!(
        end <= file.len() as u64,
        "data {off}..{end} outside a file of {}",
        file.len()
    );
    // Size matches dtype × shape (sub-byte dtypes: bits).
    assert_eq!(
        u128::from(elems) * t.dtype.bitsize() as u128,
        u128::from(n) * 8,
        "tensor '{}' {:?} {:?}: {n} bytes",
        t.name,
        t.dtype,
        t.shape
    );
    // The by-name lookup finds this very entry.
    assert!(std::ptr::eq(
        st.get(&t.name).expect("listed tensor not found"),
        t
    ));
    assert!(std::ptr::eq(st.tensor(&t.name).unwrap(), t));
    let (d, raw) = st.raw(&t.name).unwrap();
    assert_eq!(d, t.dtype);
    assert_eq!(raw, &file[off as usize..end as usize]);
    assert!(std::ptr::eq(raw, st.data(t)));
    if let Some(core) = t.core_dtype() {
        if elems > 0 {
            assert_eq!(core.tensor_bytes(&[elems]).ok(), Some(n), "{core}");
        }
    }

    let n_el = elems as usize;
    match st.to_f32(&t.name) {
        Ok(v) => {
            assert!(convertible(t.dtype), "{:?} converted", t.dtype);
            assert_eq!(v.len(), n_el);
            for (i, &x) in v.iter().enumerate() {
                let r = reference(t.dtype, raw, i);
                assert!(same(x, r), "'{}'[{i}]: {x} vs reference {r}", t.name);
            }
            // Reused buffers are cleared first.
            let mut buf = vec![7.0f32; 3];
            st.to_f32_into(&t.name, &mut buf).unwrap();
            assert!(buf.len() == v.len() && buf.iter().zip(&v).all(|(a, b)| same(*a, *b)));
            let ranges = [
                0..n_el,
                0..1,
                n_el / 2..n_el,
                n_el.saturating_sub(1)..n_el + 5,
                // Reversed (start past end): empty.
                std::ops::Range { start: 5, end: 3 },
                n_el + 1..n_el + 10,
                usize::MAX - 1..usize::MAX,
                1..usize::MAX,
            ];
            for r in ranges {
                let mut buf = vec![f32::NAN; 5];
                st.range_f32_into(&t.name, r.clone(), &mut buf).unwrap();
                let e = r.end.min(n_el);
                let want = &v[r.start.min(e)..e];
                assert!(
                    buf.len() == want.len() && buf.iter().zip(want).all(|(a, b)| same(*a, *b)),
                    "range {r:?} of '{}'",
                    t.name
                );
            }
        }
        Err(FormatError::UnsupportedDtype { tensor, .. }) => {
            assert!(!convertible(t.dtype), "{:?} refused", t.dtype);
            assert_eq!(tensor, t.name);
            let mut buf = Vec::new();
            assert!(st.range_f32_into(&t.name, 0..1, &mut buf).is_err());
        }
        Err(e) => panic!("to_f32('{}'): unexpected error {e}", t.name),
    }
    st.release(&t.name).unwrap();
}

/// Check an opened checkpoint against the bytes of its shards (`files[i]` is shard
/// `i`): tensors listed shard by shard, each shard's tensors contiguous from the end
/// of its header to the end of its file, every tensor's bytes and conversions right.
pub fn exercise(st: &HfTensors, files: &[&[u8]]) {
    assert_eq!(st.shards().len(), files.len());
    assert_eq!(st.len(), st.tensors().len());
    assert_eq!(st.is_empty(), st.tensors().is_empty());
    let _ = format!("{st:?}");
    let mut cursor: Vec<u64> = files
        .iter()
        .map(|f| 8 + u64::from_le_bytes(f[..8].try_into().unwrap()))
        .collect();
    let mut shard = 0;
    for t in st.tensors() {
        assert!(t.shard < files.len());
        assert!(t.shard >= shard, "tensors not listed shard by shard");
        shard = t.shard;
        assert_eq!(
            t.file_offset(),
            cursor[t.shard],
            "'{}' not contiguous",
            t.name
        );
        cursor[t.shard] += t.n_bytes();
        check_tensor(st, t, files[t.shard]);
    }
    for (i, c) in cursor.iter().enumerate() {
        assert_eq!(
            *c,
            files[i].len() as u64,
            "shard {i}: data does not end at its end"
        );
    }
    for bogus in ["", "\u{0}", "model.embed_tokens.weight.extra"] {
        if st.get(bogus).is_none() {
            assert!(matches!(
                st.raw(bogus),
                Err(FormatError::UnknownTensor { .. })
            ));
            assert!(st.to_f32(bogus).is_err());
            assert!(st.release(bogus).is_err());
        }
    }
}
