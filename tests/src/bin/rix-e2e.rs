//! The `rix` CLI, built as this package's binary for the end-to-end tests.
//!
//! Cargo builds a dependency's binaries only for that package's own tests, so the e2e tests,
//! which run `rix` as an operator would (separate processes, signals, restarts), get it built
//! here from the same entry as `ops`' own binary ([`rix_ops::main`]). Nothing else.

fn main() -> anyhow::Result<()> {
    rix_ops::main()
}
