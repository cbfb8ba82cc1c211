//! The `rix` binary: see the `rix_ops` library for the commands.

// A faster allocator for every thread: the index build and the JSON work allocate heavily.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> anyhow::Result<()> {
    rix_ops::main()
}
