//! The `rix` binary: see the `rix_ops` library for the commands.
//!
//! Only the allocator is chosen here; everything else is in the library, so the end-to-end
//! tests build the very same program.

// A faster allocator for every thread: the index build and the JSON work allocate heavily.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> anyhow::Result<()> {
    rix_ops::main()
}
