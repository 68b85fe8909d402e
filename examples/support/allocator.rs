//! The examples' settings of the C library's allocator.

/// Keeps freed memory in the process instead of handing it back to the kernel. Training
/// allocates and frees tensors of the same few sizes at every step; by default glibc
/// serves blocks above a (self-raising) threshold with their own mappings and returns them
/// on free, and trims the heap top, so every step faults the same pages in again. On the
/// default world's main job (2 cores) that was 20 s of system time; with these settings
/// it is 1 s, with the same report. A no-op off glibc. The libraries change nothing: a
/// program that uses them chooses.
pub fn keep_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: `mallopt` only sets the allocator's parameters; it is called first thing in
    // `main`, before any other thread exists.
    unsafe {
        // Blocks up to 32 MiB (glibc's largest threshold) come from the heap, which is
        // trimmed only above 1 GiB of free space at its top and grows 256 MiB at a time.
        libc::mallopt(libc::M_MMAP_THRESHOLD, 32 << 20);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 1 << 30);
        libc::mallopt(libc::M_TOP_PAD, 256 << 20);
    }
}
