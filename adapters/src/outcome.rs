//! What a mapped row becomes: a record ready for a node, or the reasons it is not — the
//! contract between [`crate::mapping`] (which makes them), [`crate::report`] (which writes the
//! refusals for a person) and [`crate::push`] (which sends the records).
//!
//! What it may not touch: how either was made or where it goes.

use std::sync::Arc;

use rix_schema::RecordKind;
use serde::Serialize;
use serde_json::Value;

use crate::mapping::target::Pointer;
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
    /// The 登记日期 a historical record was registered on, if the source has it; only with a
    /// [`MappedRecord::registration_no`] (the node dates a new record itself when it approves
    /// it). The node keeps it instead of dating the import.
    pub registration_date: Option<String>,
    /// Which source column each value came from, for naming the column of a refusal that only
    /// the node can make.
    pub columns: SourceColumns,
}

/// Which source column each value of a mapped record came from: the mapper's own bookkeeping
/// (which field, default or constant wrote which element), kept so that a refusal made later —
/// by the node, with a pointer into the record — can name the column a person must correct.
///
/// Why not the column names themselves: most records are accepted, and a row of fifty values
/// would carry fifty strings for nothing. The texts are shared by every row of a table
/// ([`Arc`]) and a pointer is resolved only when asked ([`SourceColumns::column_of`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SourceColumns {
    writers: Option<Arc<[Writer]>>,
    /// Each value written: its writer (an index into `writers`) and the element of a `*`/`-`
    /// target.
    written: Vec<(usize, Option<usize>)>,
}

/// A field, default or constant of a mapping, as the rows of one table see it.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Writer {
    /// Where it writes.
    pub(crate) target: Pointer,
    /// What it reads: the header text, the tree path, `(默认值)` or `(常量)`.
    pub(crate) column: String,
    /// A `[[field]]` (not a default or constant).
    pub(crate) field: bool,
}

impl SourceColumns {
    pub(crate) fn new(writers: Arc<[Writer]>, written: Vec<(usize, Option<usize>)>) -> Self {
        SourceColumns {
            writers: Some(writers),
            written,
        }
    }

    fn writer(&self, w: usize) -> Option<&Writer> {
        self.writers.as_deref().and_then(|all| all.get(w))
    }

    /// Every value written: its pointer in the record and its writer.
    pub(crate) fn written(&self) -> impl Iterator<Item = (String, usize)> + '_ {
        self.written.iter().filter_map(|&(w, index)| {
            self.writer(w)
                .map(|writer| (writer.target.concrete(index), w))
        })
    }

    /// The writer a pointer into the record came from: the value written there, or the
    /// innermost value containing it; else the field that would have written it (a value the
    /// row left empty).
    pub(crate) fn writer_at(&self, pointer: &str) -> Option<usize> {
        let mut best: Option<(usize, usize)> = None;
        for (at, w) in self.written() {
            let inside =
                pointer == at || (pointer.starts_with(&at) && pointer[at.len()..].starts_with('/'));
            if inside && best.is_none_or(|(len, _)| at.len() > len) {
                best = Some((at.len(), w));
            }
        }
        if let Some((_, w)) = best {
            return Some(w);
        }
        self.writers
            .as_deref()?
            .iter()
            .position(|writer| writer.field && writer.target.matches(pointer))
    }

    /// The source column (header text or tree path) the value at `pointer` came from, or the
    /// value containing it, or the field that would have given it; `(默认值)` / `(常量)` for a
    /// value of the mapping itself; `None` when no column is concerned (the record as a whole).
    pub fn column_of(&self, pointer: &str) -> Option<&str> {
        let w = self.writer_at(pointer)?;
        Some(self.writer(w)?.column.as_str()).filter(|c| !c.is_empty())
    }
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
