//! The `rix` binary: see the `rix_ops` library for the commands.

fn main() -> anyhow::Result<()> {
    rix_ops::main()
}
