//! Weight matrices and their repacked copies, shared by every architecture.

use alc_format::{GgufFile, TensorInfo};
use alc_kernels::{Backend, Weight};

/// A weight matrix: its tensor in the mapped file, and where in the model's packed
/// arena the copy the backend repacked at load lies ([`pack`]); matmuls use that
/// copy when present.
pub(crate) struct Mat {
    pub t: TensorInfo,
    pub packed: Option<std::ops::Range<usize>>,
}

impl From<TensorInfo> for Mat {
    fn from(t: TensorInfo) -> Self {
        Mat { t, packed: None }
    }
}

fn view<'a>(file: &'a GgufFile, t: &TensorInfo) -> Weight<'a> {
    let (rows, cols) = t.rows_cols();
    Weight::row_major(t.dtype, rows as usize, cols as usize, file.tensor_data(t))
}

/// Let the backend repack every matrix of `mats` it has a faster layout for, into
/// one anonymous arena (huge pages where the kernel gives them: one page fault per
/// 2 MiB instead of per 4 KiB at load); each repacked matrix's mapped pages are
/// dropped, so one copy stays resident. Returns the arena (`None` when nothing was
/// repacked, or no memory was left for it: then the mapped rows are used as they
/// are) and the bytes repacked.
pub(crate) fn pack(
    file: &GgufFile,
    be: &dyn Backend,
    mats: Vec<&mut Mat>,
) -> (Option<memmap2::MmapMut>, u64) {
    // Offsets in one arena, each matrix 64-byte aligned.
    let mut total = 0usize;
    let mut plan = Vec::with_capacity(mats.len());
    for m in &mats {
        let at = total.next_multiple_of(64);
        let len = be.packed_len(&view(file, &m.t));
        if let Some(len) = len {
            total = at + len;
        }
        plan.push(len.map(|len| at..at + len));
    }
    if total == 0 {
        return (None, 0);
    }
    let mut arena = match memmap2::MmapMut::map_anon(total) {
        Ok(a) => a,
        Err(e) => {
            tracing::warn!("no memory to repack {total} bytes of weights ({e}); running unpacked");
            return (None, 0);
        }
    };
    #[cfg(target_os = "linux")]
    let _ = arena.advise(memmap2::Advice::HugePage);
    let mut bytes = 0;
    for (m, r) in mats.into_iter().zip(plan) {
        let Some(r) = r else { continue };
        pack_one(file, be, &m.t, &mut arena[r.clone()]);
        bytes += r.len() as u64;
        m.packed = Some(r);
        // The mapped original is not read again; keep one copy resident.
        file.release_tensor_pages(&m.t);
    }
    (Some(arena), bytes)
}

/// Source bytes repacked per step of a large matrix: its mapped pages are dropped
/// step by step, so the transient second copy is one step, not the whole matrix (a
/// 136 MiB Q8_0 output matrix would otherwise add its size to the peak RSS at load).
const PACK_STEP_BYTES: usize = 4 << 20;

/// Repack `t` into `out`: in steps of whole 8-row groups when the backend's layout
/// is group-major (the packed length of a group range is that range's share), else
/// in one call.
fn pack_one(file: &GgufFile, be: &dyn Backend, t: &TensorInfo, out: &mut [u8]) {
    let w = view(file, t);
    let (rows, cols) = (w.rows, w.cols);
    let data = file.tensor_data(t);
    const G: usize = alc_quant::packed::ROWS;
    let groups = rows / G;
    let src_group = data.len().checked_div(rows).unwrap_or(0) * G;
    let step = (PACK_STEP_BYTES / src_group.max(1)).max(1);
    let chunked = rows.is_multiple_of(G) && groups > step && out.len().is_multiple_of(groups) && {
        let sub = Weight::row_major(t.dtype, step * G, cols, &data[..step * src_group]);
        be.packed_len(&sub) == Some(out.len() / groups * step)
    };
    if !chunked {
        be.pack_into(&w, out);
        return;
    }
    let dst_group = out.len() / groups;
    let mut g0 = 0;
    while g0 < groups {
        let g1 = (g0 + step).min(groups);
        let src = &data[g0 * src_group..g1 * src_group];
        let sub = Weight::row_major(t.dtype, (g1 - g0) * G, cols, src);
        be.pack_into(&sub, &mut out[g0 * dst_group..g1 * dst_group]);
        file.release_tensor_range(t, g0 * src_group, src.len());
        g0 = g1;
    }
}

/// The matrix as the backend runs it: the repacked copy in `arena` when there is
/// one, else the mapped rows.
pub(crate) fn weight<'a>(
    file: &'a GgufFile,
    arena: Option<&'a memmap2::MmapMut>,
    m: &'a Mat,
) -> Weight<'a> {
    let w = view(file, &m.t);
    match (&m.packed, arena) {
        (Some(r), Some(a)) => w.with_packed(&a[r.clone()]),
        _ => w,
    }
}
