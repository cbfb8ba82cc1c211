//! The JSON Schema files, embedded in the crate so that the node, the gateway and the adapters
//! serve and apply exactly the same contract (`GET /v1/schema/{kind}`).
//!
//! Why embedded (`include_str!`): two services built from one commit cannot disagree about the
//! contract, and nothing is fetched at run time — the schemas reference nothing remote, and
//! `jsonschema` is built without HTTP or file retrieval.
//!
//! What it may not touch: rules. This module holds the files, parses each once and resolves
//! `$ref`s between them; [`crate::validate`] compiles them into validators and
//! [`crate::sensitivity`] reads their `x-sensitivity` marks.

use crate::RecordKind;
use serde_json::Value;
use std::sync::OnceLock;

/// One embedded JSON Schema (draft 2020-12) file.
#[derive(Debug)]
pub struct SchemaFile {
    /// Short name used in URLs and file names: `common`, `achievement`, `funded_project`, `batch`.
    pub name: &'static str,
    /// The stable `$id`. It never changes for a published version; a breaking change gets `/v2/`.
    pub id: &'static str,
    /// The file's text, exactly as shipped.
    pub text: &'static str,
}

/// Shared definitions (`$defs`) that the record kinds reference.
pub const COMMON: SchemaFile = SchemaFile {
    name: "common",
    id: "https://schema.rix.cn/v1/common.json",
    text: include_str!("../schemas/common.json"),
};

/// 科技成果.
pub const ACHIEVEMENT: SchemaFile = SchemaFile {
    name: "achievement",
    id: "https://schema.rix.cn/v1/achievement.json",
    text: include_str!("../schemas/achievement.json"),
};

/// 科技计划项目.
pub const FUNDED_PROJECT: SchemaFile = SchemaFile {
    name: "funded_project",
    id: "https://schema.rix.cn/v1/funded_project.json",
    text: include_str!("../schemas/funded_project.json"),
};

/// The signed batch envelope.
pub const BATCH: SchemaFile = SchemaFile {
    name: "batch",
    id: "https://schema.rix.cn/v1/batch.json",
    text: include_str!("../schemas/batch.json"),
};

/// Every embedded file.
pub const ALL: [&SchemaFile; 4] = [&COMMON, &ACHIEVEMENT, &FUNDED_PROJECT, &BATCH];

/// The schema file of a record kind.
pub fn for_kind(kind: RecordKind) -> &'static SchemaFile {
    match kind {
        RecordKind::Achievement => &ACHIEVEMENT,
        RecordKind::FundedProject => &FUNDED_PROJECT,
    }
}

/// The file with the given short name (`achievement`, `funded_project`, `batch`, `common`).
pub fn by_name(name: &str) -> Option<&'static SchemaFile> {
    ALL.into_iter().find(|f| f.name == name)
}

/// The file with the given `$id`, or the relative reference (`common.json`) used inside files.
pub fn by_reference(reference: &str) -> Option<&'static SchemaFile> {
    ALL.into_iter()
        .find(|f| f.id == reference || f.id.rsplit('/').next() == Some(reference))
}

impl SchemaFile {
    /// Where the `$ref` `reference`, written in this file, points: the file and the node in it.
    /// Panics on a reference the shipped files do not resolve (a build-time fact, tested).
    pub fn resolve(&'static self, reference: &str) -> (&'static SchemaFile, &'static Value) {
        let (file, fragment) = match reference.split_once('#') {
            Some(("", fragment)) => (self, fragment),
            Some((doc, fragment)) => (by_reference(doc).expect("known $ref"), fragment),
            None => (by_reference(reference).expect("known $ref"), ""),
        };
        let node = file
            .json()
            .pointer(fragment)
            .unwrap_or_else(|| panic!("unresolvable $ref {reference}"));
        (file, node)
    }

    /// The file parsed as JSON; parsed once per process.
    pub fn json(&'static self) -> &'static Value {
        static PARSED: OnceLock<Vec<Value>> = OnceLock::new();
        let parsed = PARSED.get_or_init(|| {
            ALL.iter()
                .map(|f| {
                    serde_json::from_str(f.text).expect("embedded schema files are valid JSON")
                })
                .collect()
        });
        let index = ALL
            .iter()
            .position(|f| f.name == self.name)
            .expect("every SchemaFile is listed in ALL");
        &parsed[index]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_file_declares_its_own_id_and_draft() {
        for file in ALL {
            let json = file.json();
            assert_eq!(json["$id"], file.id, "{}", file.name);
            assert_eq!(
                json["$schema"], "https://json-schema.org/draft/2020-12/schema",
                "{}",
                file.name
            );
            assert_eq!(by_name(file.name).unwrap().id, file.id);
            assert_eq!(
                by_reference(&format!("{}.json", file.name)).unwrap().id,
                file.id
            );
        }
    }
}
