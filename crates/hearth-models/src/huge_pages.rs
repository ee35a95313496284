//! Transparent huge pages (2 MiB) for the repacked weights, which every step streams
//! (~100 MB for the default model): with 4 KiB pages each of them missed the TLB every
//! step. Linux backs memory with huge pages where a process asks (`madvise`) and the
//! system allows it (`transparent_hugepage` of `always` or `madvise`, the usual
//! defaults); elsewhere these calls change nothing. The K/V pools keep small pages:
//! backed lazily, as blocks are first written, a huge page stalled the step that
//! crossed into it for compaction (c8 runs alternated between ~1230 and ~1470 tok/s),
//! and backing the whole pool at start-up took 2.5 s for 1 GB.

use std::sync::Mutex;

/// Bytes of a huge page.
const HUGE: usize = 2 << 20;

/// Buffers noted for `collapse_noted`, as address ranges.
static NOTED: Mutex<Vec<(usize, usize)>> = Mutex::new(Vec::new());

/// A vector of `len` copies of `value` whose buffer the kernel is asked to back with
/// huge pages before the values are written (pages touched before the request keep
/// their size), and noted for `collapse_noted`: a matrix smaller than a huge page
/// shares one with its neighbours only once they are all loaded.
pub(crate) fn filled<T: Clone>(len: usize, value: T) -> Vec<T> {
    let mut v = Vec::with_capacity(len);
    advise(&v);
    v.resize(len, value);
    note(&v);
    v
}

/// Asks for huge pages over `v`'s buffer where it is at least one huge page long
/// (from the page it starts in: for an allocation that large, the allocator's own
/// mapping).
fn advise<T>(v: &Vec<T>) {
    let (start, end) = span(v);
    if end - start >= HUGE {
        madvise(start / 4096 * 4096, end, MADV_HUGEPAGE);
    }
}

/// Remembers `v`'s buffer for `collapse_noted`.
fn note<T>(v: &Vec<T>) {
    if let Ok(mut noted) = NOTED.lock() {
        noted.push(span(v));
    }
}

/// Backs every whole huge page inside the buffers the loaders noted (the quantized
/// weights), taken together where they lie near each other, with a huge page now,
/// copying their contents (`MADV_COLLAPSE`, Linux 6.1 and later; elsewhere it fails and
/// nothing changes); then forgets them. A matrix smaller than a huge page shares one
/// with its neighbours only this way. Call once a model is loaded, after any
/// `malloc_trim` (which gives back freed chunks between the matrices page by page, and
/// so splits the huge pages around them). Free pages inside those huge pages become
/// resident again: a few MB, for a 1-sequence step 3% faster and a served c8 3% higher
/// (BENCHMARKS.md, eleventh session).
pub fn collapse_noted() {
    let mut noted = match NOTED.lock() {
        Ok(mut n) => std::mem::take(&mut *n),
        Err(_) => return,
    };
    noted.sort_unstable();
    // Between a model's matrices lie allocator headers, page slack and the freed
    // copies of file bytes they were repacked from; the pages across such gaps are
    // collapsed too (their contents kept), so a matrix smaller than a huge page
    // shares one with its neighbours.
    const GAP: usize = 2 * HUGE;
    let mut runs: Vec<(usize, usize)> = Vec::new();
    for (s, e) in noted {
        match runs.last_mut() {
            Some(last) if s <= last.1 + GAP => last.1 = last.1.max(e),
            _ => runs.push((s, e)),
        }
    }
    for (s, e) in runs {
        let mut page = s.div_ceil(HUGE) * HUGE;
        while page + HUGE <= e {
            madvise(page, page + HUGE, MADV_COLLAPSE);
            page += HUGE;
        }
    }
}

/// `v`'s buffer (its capacity) as an address range.
fn span<T>(v: &Vec<T>) -> (usize, usize) {
    let start = v.as_ptr() as usize;
    (start, start + v.capacity() * std::mem::size_of::<T>())
}

const MADV_HUGEPAGE: i32 = 14;
/// Linux's value (uapi `mman-common.h`); not every libc target names it.
const MADV_COLLAPSE: i32 = 25;

/// `madvise(start, end - start, advice)`; a refusal is only logged: the pages keep
/// their size and nothing else changes.
#[allow(unused_variables)]
fn madvise(start: usize, end: usize, advice: i32) {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: both advices change how pages are backed, never their contents, and
        // the ranges lie in this process's own heap allocations.
        let rc = unsafe { libc::madvise(start as *mut libc::c_void, end - start, advice) };
        if rc != 0 {
            tracing::debug!(
                "madvise({advice}) on {} bytes: {}",
                end - start,
                std::io::Error::last_os_error()
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Collapsing copies pages: every noted matrix, and the data between them, must
    /// read back as written.
    #[test]
    fn collapse_keeps_every_value() {
        // Matrices smaller and larger than a huge page, as a model's are.
        let sizes = [300_000usize, 700_000, 3_000_000, 150_000, 900_000];
        let mats: Vec<Vec<u32>> = sizes
            .iter()
            .enumerate()
            .map(|(m, &n)| {
                let mut v = filled(n, 0u32);
                for (i, x) in v.iter_mut().enumerate() {
                    *x = (i as u32).wrapping_mul(2654435761) ^ m as u32;
                }
                v
            })
            .collect();
        let between: Vec<u64> = (0..50_000u64).map(|i| i * 7 + 1).collect();
        collapse_noted();
        for (m, v) in mats.iter().enumerate() {
            assert_eq!(v.len(), sizes[m]);
            assert!(v
                .iter()
                .enumerate()
                .all(|(i, &x)| x == (i as u32).wrapping_mul(2654435761) ^ m as u32));
        }
        assert!(between
            .iter()
            .enumerate()
            .all(|(i, &x)| x == i as u64 * 7 + 1));
        // Forgotten once collapsed.
        assert!(NOTED.lock().map(|n| n.is_empty()).unwrap_or(false));
    }
}
