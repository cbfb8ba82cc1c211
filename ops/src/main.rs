//! The `rix` binary: see the `rix_ops` library for the commands.
//!
//! Only the allocators are chosen here; everything else is in the library, so the end-to-end
//! tests build the very same program.

// A faster allocator for every thread: the index build and the JSON work allocate heavily.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> anyhow::Result<()> {
    limit_c_heap_arenas();
    rix_ops::main()
}

/// SQLite's page caches (and whatever else C code allocates) come from glibc's malloc, not from
/// the allocator above. glibc gives threads that allocate at the same time arenas of their own,
/// up to eight per core, and hands little of an arena's freed memory back; a gateway's dozens of
/// threads took turns on eight SQLite connections, so each connection's cache was spread over
/// many arenas. Two arenas: a backfill of 300,000 records from 40 nodes peaked 450 MB lower
/// (2.1 → 1.6 GB) at the same speed (ops/BENCHMARKS.md, "The C heap's arenas"). An operator's
/// own `MALLOC_ARENA_MAX` is left to rule. Before any thread starts.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn limit_c_heap_arenas() {
    if std::env::var_os("MALLOC_ARENA_MAX").is_none() {
        // SAFETY: mallopt only sets a tunable of glibc's allocator, before any other thread
        // exists; M_ARENA_MAX takes any positive count.
        unsafe {
            libc::mallopt(libc::M_ARENA_MAX, 2);
        }
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn limit_c_heap_arenas() {}
