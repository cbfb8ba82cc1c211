//! The schema crate's example records, as an institution submits them.

use serde_json::Value;

/// A record as an institution submits it: without the fields the node assigns
/// (`registration_no`, `registration_date`) and without `confidential_fields`; its secrecy as
/// given.
pub fn as_submission(mut record: Value) -> Value {
    if let Some(obj) = record.as_object_mut() {
        obj.remove("registration_no");
        obj.remove("registration_date");
        obj.remove("confidential_fields");
    }
    record
}

/// [`as_submission`], made public (`secrecy.level = public`).
pub fn as_public_submission(record: Value) -> Value {
    let mut record = as_submission(record);
    record["secrecy"] = serde_json::json!({"level": "public"});
    record
}

/// The schema's fixture of `kind` (`achievement`, else the funded project) without the fields
/// the node assigns; its secrecy and `confidential_fields` as the fixture has them.
pub fn fixture(kind: &str) -> Value {
    let text = match kind {
        "achievement" => include_str!("../../../schema/tests/fixtures/achievement.json"),
        _ => include_str!("../../../schema/tests/fixtures/funded_project.json"),
    };
    let mut v: Value = serde_json::from_str(text).unwrap();
    let obj = v.as_object_mut().unwrap();
    obj.remove("registration_no");
    obj.remove("registration_date");
    v
}
