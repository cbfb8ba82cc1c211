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

// ---- Issue 11 §4: intake that cannot be tricked ------------------------------------------------

fn errors_at(kind: RecordKind, doc: &Value) -> Vec<String> {
    match validate_record(kind, doc) {
        Ok(()) => Vec::new(),
        Err(errors) => errors.into_iter().map(|e| e.pointer).collect(),
    }
}

#[test]
fn control_and_bidi_characters_are_refused_at_each_field() {
    let mut doc = fixture(RecordKind::Achievement);
    set(&mut doc, "/title", Some(json!("固态电池\u{202E}txt.exe")));
    set(&mut doc, "/completers/1/name", Some(json!("李\u{0}华")));
    set(&mut doc, "/keywords/0", Some(json!("固态\u{85}电池")));
    set(
        &mut doc,
        "/ip/0/number",
        Some(json!("ZL2021\u{2066}10123456.7")),
    );
    set(
        &mut doc,
        "/institutions/0/name",
        Some(json!("昆明\u{1b}[2J理工大学")),
    );
    set(
        &mut doc,
        "/transfer/conditions",
        Some(json!("独占\u{7f}许可")),
    );
    let errors = validate_record(RecordKind::Achievement, &doc).unwrap_err();
    let pointers: Vec<&str> = errors.iter().map(|e| e.pointer.as_str()).collect();
    assert_eq!(
        pointers,
        [
            "/completers/1/name",
            "/institutions/0/name",
            "/ip/0/number",
            "/keywords/0",
            "/title",
            "/transfer/conditions",
        ],
        "{errors:?}"
    );
    let title = errors.iter().find(|e| e.pointer == "/title").unwrap();
    assert!(
        title.message.contains("U+202E") && title.message.contains("character 5"),
        "{title}"
    );
    // The funded project kind applies the same rule.
    let mut project = fixture(RecordKind::FundedProject);
    set(&mut project, "/lead/name", Some(json!("单位\u{2069}")));
    assert_eq!(
        errors_at(RecordKind::FundedProject, &project),
        ["/lead/name"]
    );
}

#[test]
fn line_breaks_only_in_multi_line_fields() {
    let mut doc = fixture(RecordKind::Achievement);
    set(
        &mut doc,
        "/abstract",
        Some(json!(
            "第一段：研制了高离子电导率硫化物固态电解质。\n第二段：\t突破了界面稳定化技术。"
        )),
    );
    set(
        &mut doc,
        "/completers/0/contribution",
        Some(json!("总体方案\n工艺设计")),
    );
    set(
        &mut doc,
        "/evaluation/conclusion",
        Some(json!("整体达到\n国际先进水平")),
    );
    assert_eq!(validate_record(RecordKind::Achievement, &doc), Ok(()));

    set(
        &mut doc,
        "/title",
        Some(json!("面向新能源汽车的\n高安全固态锂电池")),
    );
    set(&mut doc, "/completers/0/name", Some(json!("张\n明")));
    set(&mut doc, "/funding/0/funder", Some(json!("科学技术部\n")));
    set(
        &mut doc,
        "/contact/address",
        Some(json!("昆明市\n一二一大街")),
    );
    // A carriage return is refused even where lines are allowed.
    set(
        &mut doc,
        "/application/social_benefit",
        Some(json!("第一行\r\n第二行")),
    );
    assert_eq!(
        errors_at(RecordKind::Achievement, &doc),
        [
            "/application/social_benefit",
            "/completers/0/name",
            "/contact/address",
            "/funding/0/funder",
            "/title",
        ]
    );
    // A tab is fine anywhere; the implicit direction marks (LRM, RLM) are allowed.
    let mut doc = fixture(RecordKind::Achievement);
    set(
        &mut doc,
        "/title",
        Some(json!("固态锂电池\t\u{200F}ئۇيغۇرچە\u{200E} 400 Wh/kg")),
    );
    assert_eq!(validate_record(RecordKind::Achievement, &doc), Ok(()));
}

#[test]
fn multi_line_fields_are_declared_in_the_schema_files() {
    assert_eq!(
        rix_schema::validate::multiline_fields(RecordKind::Achievement),
        [
            "/abstract",
            "/application/industries",
            "/application/social_benefit",
            "/completers/*/contribution",
            "/evaluation/conclusion",
            "/technical_indicators",
            "/transfer/conditions",
        ]
    );
    assert_eq!(
        rix_schema::validate::multiline_fields(RecordKind::FundedProject),
        [
            "/abstract",
            "/pi/contribution",
            "/transfer_obligation/description"
        ]
    );
}

#[test]
fn check_text_names_the_character_and_its_position() {
    use rix_schema::validate::check_text;
    assert_eq!(check_text("普通文本 plain\ttext", false), Ok(()));
    assert!(check_text("a\nb", false).unwrap_err().contains("one line"));
    assert_eq!(check_text("a\nb", true), Ok(()));
    for bad in [
        "\u{0}", "\u{1}", "\r", "\u{7f}", "\u{80}", "\u{9f}", "\u{2028}", "\u{2029}",
    ] {
        assert!(check_text(bad, true).is_err(), "{bad:?}");
    }
    for c in ('\u{202A}'..='\u{202E}').chain('\u{2066}'..='\u{2069}') {
        let e = check_text(&format!("ab{c}"), true).unwrap_err();
        assert!(
            e.contains("character 3") && e.contains("bidirectional"),
            "{e}"
        );
    }
    // Neighbours of the refused ranges, and characters sharing their lead bytes, pass.
    for ok in [
        "\u{a0}",
        "\u{2027}",
        "\u{202F}",
        "\u{2065}",
        "\u{206A}",
        "“—…”",
        "\u{200E}\u{200F}\u{61C}",
    ] {
        assert_eq!(check_text(ok, false), Ok(()), "{ok:?}");
    }
}

#[test]
fn a_million_bad_keys_cost_a_hundred_errors_and_a_count() {
    let mut doc = fixture(RecordKind::Achievement);
    let obj = doc.as_object_mut().unwrap();
    for i in 0..1_000_000 {
        obj.insert(format!("x{i}"), json!(1));
    }
    let errors = validate_record(RecordKind::Achievement, &doc).unwrap_err();
    assert_eq!(errors.len(), rix_schema::validate::MAX_ERRORS);
    let bounded = rix_schema::validate::validate_record_bounded(RecordKind::Achievement, &doc, 10)
        .unwrap_err();
    assert_eq!(bounded.errors.len(), 10);
    assert_eq!(bounded.total, 1_000_000);
    assert!(bounded.truncated());
    // A short list is exact.
    let mut doc = fixture(RecordKind::Achievement);
    set(&mut doc, "/trl", Some(json!(12)));
    let one = rix_schema::validate::validate_record_bounded(RecordKind::Achievement, &doc, 10)
        .unwrap_err();
    assert_eq!((one.errors.len(), one.total), (1, 1));
    assert!(!one.truncated());
}

#[test]
fn lowering_the_secrecy_level_needs_the_decision() {
    use rix_schema::SecrecyLevel::{Internal, Public, Secret};
    use rix_schema::validate::check_level_change;
    let pointers = |r: Result<(), Vec<FieldError>>| -> Vec<String> {
        r.err()
            .unwrap_or_default()
            .into_iter()
            .map(|e| e.pointer)
            .collect()
    };
    let mut doc = fixture(RecordKind::Achievement);
    doc["secrecy"] = json!({"level": "public"});
    assert_eq!(
        pointers(check_level_change(Secret, &doc)),
        ["/secrecy/decision"]
    );
    // Keeping or raising the level needs nothing.
    assert_eq!(check_level_change(Public, &doc), Ok(()));
    doc["secrecy"] = json!({"level": "secret"});
    assert_eq!(check_level_change(Internal, &doc), Ok(()));
    // A full decision from the level in force.
    doc["secrecy"] = json!({"level": "public", "decision": {
        "reference": "云科密解〔2026〕7号", "date": "2026-06-01",
        "authority": "云南省科学技术厅", "previous_level": "secret"}});
    assert_eq!(check_level_change(Secret, &doc), Ok(()));
    assert_eq!(validate_record(RecordKind::Achievement, &doc), Ok(()));
    // A decision that lowers from some other level does not cover this one.
    assert_eq!(
        pointers(check_level_change(Internal, &doc)),
        ["/secrecy/decision/previous_level"]
    );
    // Who decided must be named.
    doc["secrecy"]["decision"]
        .as_object_mut()
        .unwrap()
        .remove("authority");
    assert_eq!(
        pointers(check_level_change(Secret, &doc)),
        ["/secrecy/decision/authority"]
    );
    // A level no one can read is refused, never taken for public.
    doc["secrecy"] = json!({"level": "unclassified"});
    assert_eq!(
        pointers(check_level_change(Public, &doc)),
        ["/secrecy/level"]
    );
}
