//! rix-gateway: the national gateway that verifies, validates, filters and merges the nodes'
//! signed feeds into the national catalogue and serves it.
//!
//! The ingest pipeline, trust store, catalogue, access filter, search and read APIs arrive with
//! issues 4 and 5. Until then this crate is an empty shell over the schema crate, so that the
//! workspace map of DESIGN.md §2 is in place; it serves nothing yet.

pub use rix_schema as schema;
