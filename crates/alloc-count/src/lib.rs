//! Test support: a global allocator that counts the allocations made on the current thread.
//!
//! The allocation tests of the protocol cores (`dtls-proto`'s `alloc_record`, `enet-proto`'s
//! `alloc_steady_state`) check that a steady-state path allocates nothing (or a known
//! number of buffers) per datagram. They install [`CountingAlloc`] as the test binary's
//! global allocator and wrap the path in [`counted`].
//!
//! Only allocations (`alloc`, `realloc`) made on the calling thread while [`counted`] runs
//! are counted; frees are not. Everything is forwarded to [`System`]. Memory that C code
//! (OpenSSL, libc) allocates with `malloc` does not go through Rust's allocator and is not
//! seen.
//!
//! This crate holds the only `unsafe` outside `dtls-proto`'s `ffi` module: implementing
//! [`GlobalAlloc`] requires it. It is a dev-dependency only and never linked into a
//! library or binary that ships.
//!
//! # Example
//!
//! ```
//! use alloc_count::{counted, CountingAlloc};
//!
//! #[global_allocator]
//! static GLOBAL: CountingAlloc = CountingAlloc;
//!
//! fn main() {
//!     let (v, allocs) = counted(|| vec![1u8; 16]);
//!     assert_eq!(v.len(), 16);
//!     assert_eq!(allocs, 1);
//!     let ((), none) = counted(|| ());
//!     assert_eq!(none, 0);
//! }
//! ```

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

/// A global allocator that forwards to [`System`] and counts this thread's allocations
/// while [`counted`] runs. Install it with `#[global_allocator]` in the test binary.
#[derive(Debug, Clone, Copy, Default)]
pub struct CountingAlloc;

thread_local! {
    static TRACK: Cell<bool> = const { Cell::new(false) };
    static COUNT: Cell<u64> = const { Cell::new(0) };
}

fn note() {
    // `try_with`: the allocator can run while this thread's locals are torn down.
    if TRACK.try_with(|t| t.get()).unwrap_or(false) {
        let _ = COUNT.try_with(|c| c.set(c.get() + 1));
    }
}

// SAFETY: every method forwards to `System` unchanged; counting touches only thread-locals
// through `try_with`, which never allocates.
unsafe impl GlobalAlloc for CountingAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note();
        // SAFETY: forwarding the caller's layout to the system allocator.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` was allocated by `System` with `layout`.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note();
        // SAFETY: forwarding to the system allocator that made `ptr`.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

/// Runs `f` with this thread's allocations counted; returns its result and the count.
///
/// The count is meaningful only when [`CountingAlloc`] is the global allocator; otherwise
/// it is always 0.
pub fn counted<R>(f: impl FnOnce() -> R) -> (R, u64) {
    COUNT.with(|c| c.set(0));
    TRACK.with(|t| t.set(true));
    let r = f();
    TRACK.with(|t| t.set(false));
    (r, COUNT.with(|c| c.get()))
}
