//! The `rix` CLI, built as this package's binary for the end-to-end tests.

fn main() -> anyhow::Result<()> {
    rix_ops::main()
}
