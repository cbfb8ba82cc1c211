//! What a mapped row becomes: a record ready for a node, or the reasons it is not — the
//! contract between [`crate::mapping`] (which makes them), [`crate::report`] (which writes the
//! refusals for a person) and [`crate::push`] (which sends the records).
//!
//! What it may not touch: how either was made or where it goes.

use rix_schema::RecordKind;
use serde::Serialize;
use serde_json::Value;

use crate::row::Origin;

/// A row mapped to a record of the common schema that passed `rix-schema` validation.
#[derive(Debug, Clone, PartialEq)]
pub struct MappedRecord {
    /// The row it came from.
    pub origin: Origin,
    /// Achievement or funded project.
    pub kind: RecordKind,
    /// The row's identity in its source, stable across runs and edits of other rows: the
    /// mapping's name and the values of its declared identity fields (e.g. the 批准登记号, or
    /// the title with the first institution). A node registers one record per key, so an
    /// import run twice, or resumed, registers nothing twice.
    pub source_key: String,
    /// The record, as the node's API takes it.
    pub record: Value,
    /// The 批准登记号 a historical record already carries: it is imported as approved under
    /// that number rather than sent to review.
    pub registration_no: Option<String>,
}

/// One reason a row is refused. A row may have several; none of them blocks another row.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RowError {
    /// The row.
    pub origin: Origin,
    /// The source column (header text), XML path or JSON Pointer the value came from, when the
    /// error is about one value.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub column: Option<String>,
    /// JSON Pointer into the record the row would have become (`""`: the record as a whole).
    pub pointer: String,
    /// What is wrong and what to do, in Chinese.
    pub message_zh: String,
    /// The same in English.
    pub message_en: String,
}

/// A row's outcome.
pub type Mapped = Result<MappedRecord, Vec<RowError>>;
