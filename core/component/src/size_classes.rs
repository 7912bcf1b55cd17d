//! The component's global allocator: free lists of small blocks in front of
//! wasi-libc's dlmalloc.
//!
//! A get allocates and frees a few dozen small blocks inside the component
//! (the host's copies of the key and tags through `cabi_realloc`, core's
//! keys, commands and replies), and dlmalloc spent about a sixth of the
//! component's time on them. Here a block of up to [`LARGEST`] bytes is
//! rounded up to a power of two and recycled through a free list of its size:
//! a pop or a push, with no search, no splitting and no merging. Larger or
//! more aligned blocks go to dlmalloc as before.
//!
//! Freed small blocks stay on their list (they are not given back to
//! dlmalloc), so the memory held is the peak number of live blocks of each
//! size, at most twice their requested size.
//!
//! `wasm32-wasip2` has no threads (the instance is never entered by two
//! threads at once: wasmtime's `Store` is `&mut`), which is what lets the
//! lists live in a plain cell; the allocator is only compiled for wasm
//! without the `atomics` feature.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::UnsafeCell;
use std::ptr;

/// The smallest block: room for a free-list link, and 16-byte alignment.
const SMALLEST: usize = 16;

/// The number of sizes: 16, 32, ... 2048 bytes.
const CLASSES: usize = 8;

/// The largest block served from the lists.
const LARGEST: usize = SMALLEST << (CLASSES - 1);

/// Free lists of small blocks in front of the system allocator.
pub(crate) struct SizeClasses {
    /// The first free block of each size; a free block holds the next one's address.
    heads: UnsafeCell<[*mut u8; CLASSES]>,
}

// SAFETY: compiled only for single-threaded wasm (see the module docs), so no
// two threads ever touch `heads`.
unsafe impl Sync for SizeClasses {}

impl SizeClasses {
    /// Creates the allocator, with empty lists.
    pub(crate) const fn new() -> Self {
        SizeClasses { heads: UnsafeCell::new([ptr::null_mut(); CLASSES]) }
    }
}

/// Returns the list that serves `layout`, or `None` for dlmalloc.
#[inline]
fn class(layout: Layout) -> Option<usize> {
    if layout.size() > LARGEST || layout.align() > SMALLEST {
        return None;
    }
    let size = layout.size().max(SMALLEST).next_power_of_two();
    Some((size.trailing_zeros() - SMALLEST.trailing_zeros()) as usize)
}

/// Returns the layout of a block of list `class`.
#[inline]
fn block(class: usize) -> Layout {
    // A power of two between 16 and 2048, aligned to 16: always a valid layout.
    match Layout::from_size_align(SMALLEST << class, SMALLEST) {
        Ok(layout) => layout,
        Err(_) => Layout::new::<[u8; SMALLEST]>(),
    }
}

// SAFETY: a block handed out is at least `layout.size()` bytes, aligned to at
// least `layout.align()` (both checked by `class`), and is on no list until it
// is freed; GlobalAlloc's callers free with the layout they allocated with, so
// `class` puts a freed block back on the list it came from.
unsafe impl GlobalAlloc for SizeClasses {
    #[inline]
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let Some(class) = class(layout) else {
            // SAFETY: forwarded as received.
            return unsafe { System.alloc(layout) };
        };
        // SAFETY: single-threaded (see `Sync`); no reference to `heads` outlives this call.
        let heads = unsafe { &mut *self.heads.get() };
        let head = heads[class];
        if head.is_null() {
            // SAFETY: `block` is a valid, non-zero-sized layout.
            return unsafe { System.alloc(block(class)) };
        }
        // SAFETY: a free block starts with the address of the next free block.
        heads[class] = unsafe { head.cast::<*mut u8>().read() };
        head
    }

    #[inline]
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        let Some(class) = class(layout) else {
            // SAFETY: a block of this layout came from `System`.
            return unsafe { System.dealloc(ptr, layout) };
        };
        // SAFETY: single-threaded; the block is at least 16 bytes, aligned to 16,
        // and its owner gave it up.
        unsafe {
            let heads = &mut *self.heads.get();
            ptr.cast::<*mut u8>().write(heads[class]);
            heads[class] = ptr;
        }
    }

    #[inline]
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let old = class(layout);
        // SAFETY: GlobalAlloc's contract: `align` with `new_size` is a valid layout.
        let new_layout = unsafe { Layout::from_size_align_unchecked(new_size, layout.align()) };
        let new = class(new_layout);
        match (old, new) {
            // The block already has room.
            (Some(a), Some(b)) if a == b => ptr,
            // Both large: dlmalloc may grow in place.
            // SAFETY: forwarded as received.
            (None, None) => unsafe { System.realloc(ptr, layout, new_size) },
            _ => {
                // SAFETY: a fresh block of the new layout, the old one copied and freed.
                unsafe {
                    let moved = self.alloc(new_layout);
                    if !moved.is_null() {
                        ptr::copy_nonoverlapping(ptr, moved, layout.size().min(new_size));
                        self.dealloc(ptr, layout);
                    }
                    moved
                }
            }
        }
    }
}
