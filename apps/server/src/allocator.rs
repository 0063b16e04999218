//! The allocator of the server and of the benchmarks that measure it: mimalloc, with freed
//! memory kept for reuse a few seconds before it goes back to the system.
//!
//! The neural models allocate and free tensors of tens of megabytes per frame. The system
//! allocator maps and unmaps each of them, and the page faults that follow cost a fifth of a
//! frame's time (`just bench-algorithms`); mimalloc keeps and reuses that memory. It is built
//! without transparent huge pages (`no_thp`): with them, each small allocation touched a whole
//! 2 MiB page, and the idle server held 49 MB of such pages (`just bench-api`).
//!
//! The benchmarks include this file with `#[path]`, so there is one definition to keep right.

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// mimalloc's option number for the purge delay (`mi_option_purge_delay`, which the bindings
/// do not name).
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// How long freed memory stays with the allocator before it is returned to the system.
const PURGE_DELAY_MS: std::ffi::c_long = 5_000;

/// Keeps freed memory for reuse for [`PURGE_DELAY_MS`] (mimalloc's default is one second).
/// Call it first thing in `main`, before any other thread starts: mimalloc's option setter is
/// not thread safe.
///
/// A live pipeline allocates and frees the same tens of megabytes every frame, and a SoftMatcher
/// frame takes about two seconds. With the default delay, memory freed in one frame went back
/// to the system before the next frame asked for it again, and zeroing the pages faulted back in
/// took a tenth of the frame. Memory not reused within the delay still goes back, so an idle
/// server does not keep its peak.
pub fn keep_freed_memory() {
    // SAFETY: documented above: called before any other thread exists.
    unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, PURGE_DELAY_MS) };
}
