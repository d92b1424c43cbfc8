//! Dropping resident pages of read-only file maps (shared by the GGUF and safetensors
//! readers).

/// Advise the kernel that the whole pages inside `map[start..start + len]` are not
/// needed any more (`MADV_DONTNEED`). Partial pages at either end are left alone, so a
/// neighbouring tensor that shares a page is not affected. Unix only; a no-op elsewhere
/// and for ranges outside the map.
#[cfg_attr(not(unix), allow(unused_variables))]
pub(crate) fn release_range(map: &memmap2::Mmap, start: usize, len: usize) {
    #[cfg(unix)]
    {
        let Some(end) = start.checked_add(len) else {
            return;
        };
        if end > map.len() {
            return;
        }
        // The system's page size (4 KiB on x86-64 Linux, 16 KiB on Apple silicon and
        // some Android kernels); only whole pages are advised.
        // SAFETY: sysconf has no preconditions.
        let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
        let page = if page > 0 { page as usize } else { 4096 };
        let (a, b) = (start.div_ceil(page) * page, end / page * page);
        if b > a {
            // SAFETY: the map is a read-only shared file mapping, never written; after
            // MADV_DONTNEED its pages refault from the file with the same contents, so
            // outstanding borrows keep reading the same bytes. The range is inside the
            // map (checked above) and the map's base is page aligned. A failure only
            // leaves the pages resident.
            let _ =
                unsafe { map.unchecked_advise_range(memmap2::UncheckedAdvice::DontNeed, a, b - a) };
        }
    }
}
