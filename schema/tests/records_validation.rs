//! Validation of records: valid fixtures pass and round-trip through the serde types; each
//! invalid document is refused with an error at the expected JSON Pointer.

use rix_schema::record::{Achievement, FundedProject};
use rix_schema::validate::validate_record;
use rix_schema::{FieldError, RecordKind};
use serde_json::{Value, json};

fn fixture(kind: RecordKind) -> Value {
    let text = match kind {
        RecordKind::Achievement => include_str!("fixtures/achievement.json"),
        RecordKind::FundedProject => include_str!("fixtures/funded_project.json"),
    };
    serde_json::from_str(text).unwrap()
}

#[test]
fn fixtures_are_valid() {
    for kind in RecordKind::ALL {
        assert_eq!(validate_record(kind, &fixture(kind)), Ok(()), "{kind}");
    }
}

#[test]
fn serde_types_round_trip_exactly() {
    let a = fixture(RecordKind::Achievement);
    let typed: Achievement = serde_json::from_value(a.clone()).unwrap();
    assert_eq!(serde_json::to_value(&typed).unwrap(), a);
    let p = fixture(RecordKind::FundedProject);
    let typed: FundedProject = serde_json::from_value(p.clone()).unwrap();
    assert_eq!(serde_json::to_value(&typed).unwrap(), p);
    // Integer and decimal amounts keep their written form, so signed bytes never change.
    assert_eq!(
        serde_json::to_string(&typed.budget.unwrap().total).unwrap(),
        "3000"
    );
}

/// Sets (or, with `None`, removes) the value at `pointer`.
fn set(doc: &mut Value, pointer: &str, value: Option<Value>) {
    let (parent, last) = pointer.rsplit_once('/').unwrap();
    let parent = doc
        .pointer_mut(parent)
        .unwrap_or_else(|| panic!("{pointer}"));
    match (parent, value) {
        (Value::Object(o), Some(v)) => {
            o.insert(last.to_owned(), v);
        }
        (Value::Object(o), None) => {
            o.remove(last);
        }
        (Value::Array(a), Some(v)) => {
            let i: usize = last.parse().unwrap();
            if i == a.len() { a.push(v) } else { a[i] = v }
        }
        (Value::Array(a), None) => {
            a.remove(last.parse().unwrap());
        }
        _ => panic!("cannot set {pointer}"),
    }
}

struct Case {
    name: &'static str,
    kind: RecordKind,
    edits: Vec<(&'static str, Option<Value>)>,
    expected_pointer: &'static str,
}

fn case(
    name: &'static str,
    kind: RecordKind,
    edits: Vec<(&'static str, Option<Value>)>,
    expected_pointer: &'static str,
) -> Case {
    Case {
        name,
        kind,
        edits,
        expected_pointer,
    }
}

fn cases() -> Vec<Case> {
    use RecordKind::{Achievement as A, FundedProject as P};
    let many_keywords: Vec<String> = (0..11).map(|i| format!("关键词{i}")).collect();
    vec![
        case(
            "title of wrong type",
            A,
            vec![("/title", Some(json!(42)))],
            "/title",
        ),
        case("missing title", A, vec![("/title", None)], "/title"),
        case(
            "title too short",
            A,
            vec![("/title", Some(json!("电")))],
            "/title",
        ),
        case(
            "title too long",
            A,
            vec![("/title", Some(json!("电".repeat(201))))],
            "/title",
        ),
        case(
            "missing abstract",
            A,
            vec![("/abstract", None)],
            "/abstract",
        ),
        case(
            "unknown category",
            A,
            vec![("/category", Some(json!("应用研究")))],
            "/category",
        ),
        case("TRL 10", A, vec![("/trl", Some(json!(10)))], "/trl"),
        case("TRL 0", A, vec![("/trl", Some(json!(0)))], "/trl"),
        case("TRL as text", A, vec![("/trl", Some(json!("7")))], "/trl"),
        case(
            "applied technology without TRL",
            A,
            vec![("/trl", None)],
            "/trl",
        ),
        case(
            "too many keywords",
            A,
            vec![("/keywords", Some(json!(many_keywords)))],
            "/keywords",
        ),
        case(
            "no keywords",
            A,
            vec![("/keywords", Some(json!([])))],
            "/keywords",
        ),
        case(
            "duplicate keyword",
            A,
            vec![("/keywords/4", Some(json!(" 固态电池")))],
            "/keywords/4",
        ),
        case(
            "bad USCC check character",
            A,
            vec![("/institutions/0/uscc", Some(json!("11100000000019713E")))],
            "/institutions/0/uscc",
        ),
        case(
            "USCC with a forbidden letter",
            A,
            vec![("/institutions/1/uscc", Some(json!("91330100799655058O")))],
            "/institutions/1/uscc",
        ),
        case(
            "USCC too short",
            A,
            vec![("/institutions/0/uscc", Some(json!("1110000000001971")))],
            "/institutions/0/uscc",
        ),
        case(
            "unknown province in region",
            A,
            vec![("/institutions/0/region", Some(json!("990100")))],
            "/institutions/0/region",
        ),
        case(
            "county without city",
            A,
            vec![("/institutions/0/region", Some(json!("530012")))],
            "/institutions/0/region",
        ),
        case(
            "region not six digits",
            A,
            vec![("/institutions/1/region", Some(json!("33010")))],
            "/institutions/1/region",
        ),
        case(
            "no institutions",
            A,
            vec![("/institutions", Some(json!([])))],
            "/institutions",
        ),
        case(
            "institution missing its code",
            A,
            vec![("/institutions/1/uscc", None)],
            "/institutions/1/uscc",
        ),
        case(
            "end before start",
            A,
            vec![("/research_period/end", Some(json!("2019-12-31")))],
            "/research_period/end",
        ),
        case(
            "not a calendar date",
            A,
            vec![("/research_period/start", Some(json!("2020-02-30")))],
            "/research_period/start",
        ),
        case(
            "date in the wrong format",
            A,
            vec![("/evaluation/date", Some(json!("2024/06/18")))],
            "/evaluation/date",
        ),
        case(
            "unknown secrecy level",
            A,
            vec![("/secrecy/level", Some(json!("classified")))],
            "/secrecy/level",
        ),
        case("missing secrecy", A, vec![("/secrecy", None)], "/secrecy"),
        case(
            "unknown form",
            A,
            vec![("/forms/1", Some(json!("专著")))],
            "/forms/1",
        ),
        case(
            "repeated form",
            A,
            vec![("/forms/1", Some(json!("专利")))],
            "/forms",
        ),
        case(
            "negative price",
            A,
            vec![("/transfer/price", Some(json!(-1)))],
            "/transfer/price",
        ),
        case(
            "unknown transfer mode",
            A,
            vec![("/transfer/modes/0", Some(json!("赠与")))],
            "/transfer/modes/0",
        ),
        case(
            "bad e-mail",
            A,
            vec![("/completers/0/email", Some(json!("not an address")))],
            "/completers/0/email",
        ),
        case(
            "bad phone",
            A,
            vec![("/completers/0/phone", Some(json!("call me")))],
            "/completers/0/phone",
        ),
        case(
            "completer without name",
            A,
            vec![("/completers/1/name", None)],
            "/completers/1/name",
        ),
        case(
            "unknown field",
            A,
            vec![("/colour", Some(json!("蓝色")))],
            "/colour",
        ),
        case(
            "unknown nested field",
            A,
            vec![("/contact/wechat", Some(json!("wx123")))],
            "/contact/wechat",
        ),
        case(
            "confidential pointer to nothing",
            A,
            vec![("/confidential_fields/0", Some(json!("/transfer/royalty")))],
            "/confidential_fields/0",
        ),
        case(
            "confidential pointer that is not a pointer",
            A,
            vec![("/confidential_fields/0", Some(json!("transfer")))],
            "/confidential_fields/0",
        ),
        case(
            "confidential title",
            A,
            vec![("/confidential_fields/0", Some(json!("/title")))],
            "/confidential_fields/0",
        ),
        case(
            "registration number malformed",
            A,
            vec![("/registration_no", Some(json!("2024-Y-12")))],
            "/registration_no",
        ),
        case(
            "registration flag of another category",
            A,
            vec![("/registration_no", Some(json!("5300002024J0012")))],
            "/registration_no",
        ),
        case(
            "registration issuer unknown",
            A,
            vec![("/registration_no", Some(json!("9900002024Y0012")))],
            "/registration_no",
        ),
        case(
            "project number with spaces",
            A,
            vec![("/funding/0/project_no", Some(json!("2021 YFB")))],
            "/funding/0/project_no",
        ),
        case(
            "funding without program",
            A,
            vec![("/funding/0/program", None)],
            "/funding/0/program",
        ),
        case(
            "not an object",
            A,
            vec![("/classification", Some(json!("新能源")))],
            "/classification",
        ),
        case(
            "unknown technology field",
            A,
            vec![("/classification/field", Some(json!("区块链")))],
            "/classification/field",
        ),
        case(
            "project end before start",
            P,
            vec![("/period/end", Some(json!("2021-01-01")))],
            "/period/end",
        ),
        case(
            "budget parts do not add up",
            P,
            vec![("/budget/self_raised", Some(json!(400)))],
            "/budget/total",
        ),
        case(
            "negative budget",
            P,
            vec![("/budget/central_fiscal", Some(json!(-2000)))],
            "/budget/central_fiscal",
        ),
        case(
            "accepted project without acceptance",
            P,
            vec![("/acceptance", None)],
            "/acceptance",
        ),
        case(
            "accepted project that failed",
            P,
            vec![("/acceptance/conclusion", Some(json!("不通过")))],
            "/acceptance/conclusion",
        ),
        case(
            "acceptance before start",
            P,
            vec![("/acceptance/date", Some(json!("2020-01-01")))],
            "/acceptance/date",
        ),
        case(
            "unknown project status",
            P,
            vec![("/status", Some(json!("完成")))],
            "/status",
        ),
        case(
            "project without number",
            P,
            vec![("/project_no", None)],
            "/project_no",
        ),
        case(
            "bad lead USCC",
            P,
            vec![("/lead/uscc", Some(json!("91330100799655058C")))],
            "/lead/uscc",
        ),
        case(
            "bad funder region",
            P,
            vec![("/funder/region", Some(json!("000000")))],
            "/funder/region",
        ),
        case(
            "decision that changes nothing",
            P,
            vec![("/secrecy/decision/previous_level", Some(json!("internal")))],
            "/secrecy/decision/previous_level",
        ),
        case(
            "decision without reference",
            P,
            vec![("/secrecy/decision/reference", None)],
            "/secrecy/decision/reference",
        ),
        case(
            "bad PI identity number",
            P,
            vec![("/pi/id_number", Some(json!("12345")))],
            "/pi/id_number",
        ),
    ]
}

#[test]
fn invalid_documents_are_refused_at_the_right_pointer() {
    let cases = cases();
    assert!(
        cases.len() >= 30,
        "the issue asks for at least 30 distinct invalid documents"
    );
    let mut failures = Vec::new();
    for case in &cases {
        let mut doc = fixture(case.kind);
        for (pointer, value) in &case.edits {
            set(&mut doc, pointer, value.clone());
        }
        match validate_record(case.kind, &doc) {
            Ok(()) => failures.push(format!("{}: accepted", case.name)),
            Err(errors) => {
                if !errors.iter().any(|e| e.pointer == case.expected_pointer) {
                    failures.push(format!(
                        "{}: expected an error at {}, got {:?}",
                        case.name, case.expected_pointer, errors
                    ));
                }
                if errors.iter().any(|e| e.message.trim().is_empty()) {
                    failures.push(format!("{}: an error without a message", case.name));
                }
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn all_errors_are_reported_together() {
    let mut doc = fixture(RecordKind::Achievement);
    set(&mut doc, "/trl", Some(json!(12)));
    set(
        &mut doc,
        "/institutions/0/uscc",
        Some(json!("11100000000019713E")),
    );
    set(&mut doc, "/research_period/end", Some(json!("2001-01-01")));
    let errors = validate_record(RecordKind::Achievement, &doc).unwrap_err();
    let pointers: Vec<&str> = errors.iter().map(|e| e.pointer.as_str()).collect();
    assert_eq!(
        pointers,
        ["/institutions/0/uscc", "/research_period/end", "/trl"],
        "{errors:?}"
    );
}

#[test]
fn messages_say_what_is_wrong() {
    let mut doc = fixture(RecordKind::Achievement);
    set(
        &mut doc,
        "/institutions/0/uscc",
        Some(json!("11100000000019713E")),
    );
    set(&mut doc, "/abstract", Some(json!("摘".repeat(6000))));
    let errors = validate_record(RecordKind::Achievement, &doc).unwrap_err();
    let uscc = errors
        .iter()
        .find(|e| e.pointer == "/institutions/0/uscc")
        .unwrap();
    assert!(uscc.message.contains("check character"), "{uscc}");
    let long = errors.iter().find(|e| e.pointer == "/abstract").unwrap();
    assert!(long.message.chars().count() < 300, "{long}");
    assert_eq!(
        FieldError::new("/trl", "x").to_string(),
        "/trl: x",
        "Display gives pointer and message"
    );
}

#[test]
fn a_document_that_is_not_an_object_is_refused_at_the_root() {
    for doc in [json!([]), json!("成果"), json!(null)] {
        let errors = validate_record(RecordKind::Achievement, &doc).unwrap_err();
        assert_eq!(errors[0].pointer, "", "{errors:?}");
    }
}
