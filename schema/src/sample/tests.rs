//! Tests of the sample generator: validity, determinism (with golden digests of its output),
//! the funding link, identifiers, shares, and the soundness of its vocabulary files.

use super::achievements::cn_patent_number;
use super::calendar::Ymd;
use super::generator::SLOTS;
use super::parties::uscc_for;
use super::projects::{PROGRAMS, permute};
use super::vocabulary::{FILES, places, vocabulary};
use super::{NodeProfile, SampleConfig, SampleGenerator, funding_project_index};
use crate::codes::{Issuer, PROVINCES, RegistrationNumber, check_region, check_uscc};
use crate::record::{
    Achievement, Category, FundedProject, FundingRef, Institution, ProjectStatus, Secrecy,
};
use crate::secrecy::SecrecyLevel;
use crate::{RecordKind, validate_record};
use serde_json::Value;
use std::collections::{BTreeSet, HashMap, HashSet};

fn province() -> SampleGenerator {
    SampleGenerator::new(SampleConfig::default())
}

fn ministry() -> SampleGenerator {
    SampleGenerator::new(SampleConfig {
        node: NodeProfile::ministry("most", "科技部", "348"),
        ..SampleConfig::default()
    })
}

fn json<T: serde::Serialize>(record: &T) -> Value {
    serde_json::to_value(record).unwrap()
}

fn assert_valid(kind: RecordKind, record: &Value, what: &str) {
    if let Err(errors) = validate_record(kind, record) {
        panic!(
            "{what} does not validate: {errors:#?}\n{}",
            serde_json::to_string_pretty(record).unwrap()
        );
    }
}

/// Every institution a record names, with where it is named.
fn institutions_of(a: &Achievement) -> impl Iterator<Item = &Institution> {
    a.institutions.iter()
}

#[test]
fn every_record_of_both_node_kinds_validates_and_round_trips() {
    for (name, generator) in [("province", province()), ("ministry", ministry())] {
        for i in 0..2_500 {
            let a = generator.achievement(i);
            let value = json(&a);
            assert_valid(
                RecordKind::Achievement,
                &value,
                &format!("{name} achievement {i}"),
            );
            assert_eq!(serde_json::from_value::<Achievement>(value).unwrap(), a);
            let p = generator.project(i);
            let value = json(&p);
            assert_valid(
                RecordKind::FundedProject,
                &value,
                &format!("{name} project {i}"),
            );
            assert_eq!(serde_json::from_value::<FundedProject>(value).unwrap(), p);
        }
    }
    let generator = province();
    for i in 0..600 {
        let value = json(&generator.shared_achievement(i));
        assert_valid(
            RecordKind::Achievement,
            &value,
            &format!("shared achievement {i}"),
        );
        let value = json(&generator.shared_project(i));
        assert_valid(
            RecordKind::FundedProject,
            &value,
            &format!("shared project {i}"),
        );
    }
}

#[test]
fn every_province_node_generates_valid_records() {
    for (code, _) in PROVINCES
        .iter()
        .filter(|(p, _)| !["71", "81", "82"].contains(p))
    {
        let generator = SampleGenerator::new(SampleConfig {
            node: NodeProfile::province(&format!("{code}0000")),
            ..SampleConfig::default()
        });
        for i in 0..60 {
            assert_valid(
                RecordKind::Achievement,
                &json(&generator.achievement(i)),
                code,
            );
            assert_valid(
                RecordKind::FundedProject,
                &json(&generator.project(i)),
                code,
            );
        }
    }
}

#[test]
fn records_are_random_access_and_deterministic() {
    let (a, b) = (province(), province());
    let forward: Vec<Achievement> = a.achievements(0..300).collect();
    let mut backward: Vec<Achievement> = (0..300).rev().map(|i| b.achievement(i)).collect();
    backward.reverse();
    assert_eq!(forward, backward);
    let projects: Vec<FundedProject> = a.projects(0..100).collect();
    for i in (0..100).rev() {
        assert_eq!(b.project(i), projects[i as usize]);
    }
    // Neighbours differ, and titles are varied rather than cycling through a few.
    for i in 0..299 {
        assert_ne!(forward[i], forward[i + 1], "achievements {i} and {}", i + 1);
    }
    let titles: HashSet<&str> = forward.iter().map(|a| a.title.as_str()).collect();
    assert!(
        titles.len() > 285,
        "only {} distinct titles in 300",
        titles.len()
    );
    // Another seed or another node gives other records.
    let reseeded = SampleGenerator::new(SampleConfig {
        seed: 7,
        ..SampleConfig::default()
    });
    assert_ne!(reseeded.achievement(0), a.achievement(0));
    assert_ne!(ministry().achievement(0).title, a.achievement(0).title);
    assert_ne!(ministry().project(0).project_no, a.project(0).project_no);
}

fn shares(generator: &SampleGenerator, n: u64) -> (f64, f64, f64, HashMap<SecrecyLevel, u64>) {
    let mut levels: HashMap<SecrecyLevel, u64> = HashMap::new();
    let mut commercial = 0;
    for i in 0..n {
        let a = generator.achievement(i);
        let p = generator.project(i);
        for (secrecy, fields) in [
            (&a.secrecy, &a.confidential_fields),
            (&p.secrecy, &p.confidential_fields),
        ] {
            *levels.entry(secrecy.level).or_default() += 1;
            commercial += u64::from(fields.is_some());
            match secrecy.level {
                SecrecyLevel::Secret => assert_eq!(secrecy.term_years, Some(10)),
                SecrecyLevel::Confidential => assert_eq!(secrecy.term_years, Some(20)),
                SecrecyLevel::TopSecret => assert_eq!(secrecy.term_years, Some(30)),
                _ => assert_eq!(secrecy.term_years, None),
            }
        }
    }
    let total = (2 * n) as f64;
    let count = |l| levels.get(&l).copied().unwrap_or(0) as f64;
    let classified = count(SecrecyLevel::Secret)
        + count(SecrecyLevel::Confidential)
        + count(SecrecyLevel::TopSecret);
    (
        count(SecrecyLevel::Internal) / total,
        classified / total,
        commercial as f64 / total,
        levels,
    )
}

#[test]
fn secrecy_and_commercial_shares_follow_the_config() {
    let (internal, classified, commercial, levels) = shares(&province(), 10_000);
    assert!((internal - 0.10).abs() < 0.012, "internal share {internal}");
    assert!(
        (classified - 0.03).abs() < 0.007,
        "classified share {classified}"
    );
    assert!(
        (commercial - 0.15).abs() < 0.015,
        "commercial share {commercial}"
    );
    for level in [
        SecrecyLevel::Secret,
        SecrecyLevel::Confidential,
        SecrecyLevel::TopSecret,
    ] {
        assert!(
            levels.get(&level).copied().unwrap_or(0) > 20,
            "{level}: {levels:?}"
        );
    }
    assert!(levels[&SecrecyLevel::Secret] > levels[&SecrecyLevel::TopSecret]);

    let skewed = SampleGenerator::new(SampleConfig {
        share_internal: 0.5,
        share_classified: 0.2,
        share_commercial_secret: 0.4,
        ..SampleConfig::default()
    });
    let (internal, classified, commercial, _) = shares(&skewed, 2_000);
    assert!((internal - 0.5).abs() < 0.04, "internal share {internal}");
    assert!(
        (classified - 0.2).abs() < 0.03,
        "classified share {classified}"
    );
    assert!(
        (commercial - 0.4).abs() < 0.04,
        "commercial share {commercial}"
    );

    let open = SampleGenerator::new(SampleConfig {
        share_internal: 0.0,
        share_classified: 0.0,
        share_commercial_secret: 0.0,
        ..SampleConfig::default()
    });
    let (internal, classified, commercial, levels) = shares(&open, 1_000);
    assert_eq!((internal, classified, commercial), (0.0, 0.0, 0.0));
    assert_eq!(levels[&SecrecyLevel::Public], 2_000);
    // The shares decide secrecy only: the content is the same.
    let mut open_record = open.achievement(5);
    let mut default_record = province().achievement(5);
    for record in [&mut open_record, &mut default_record] {
        record.secrecy = Secrecy::at(SecrecyLevel::Public);
        record.confidential_fields = None;
    }
    assert_eq!(open_record, default_record);
}

#[test]
fn achievements_cite_the_project_that_funds_them() {
    assert_eq!(funding_project_index(0), 0);
    assert_eq!(funding_project_index(5), 1);
    for generator in [province(), ministry()] {
        for i in 0..1_500 {
            let a = generator.achievement(i);
            let p = generator.project(funding_project_index(i));
            let funding = a.funding.as_ref().expect("every sample result is funded");
            assert_eq!(
                funding[0],
                FundingRef {
                    program: p.program.clone(),
                    sub_program: p.sub_program.clone(),
                    project_no: p.project_no.clone(),
                    funder: Some(p.funder.name.clone()),
                },
                "achievement {i}"
            );
            assert_eq!(a.research_period.start, p.period.start);
            assert!(a.research_period.end <= p.period.end);
        }
    }
    let generator = province();
    for i in 0..300 {
        let funding = generator.shared_achievement(i).funding.unwrap();
        let p = generator.shared_project(funding_project_index(i));
        assert_eq!(
            (&funding[0].program, &funding[0].project_no),
            (&p.program, &p.project_no)
        );
    }
}

#[test]
fn project_and_registration_numbers_do_not_collide() {
    let yunnan = province();
    let liaoning = SampleGenerator::new(SampleConfig {
        node: NodeProfile::province("210000"),
        ..SampleConfig::default()
    });
    let most = ministry();
    let mut projects: HashMap<(String, String), String> = HashMap::new();
    for (name, generator) in [
        ("yunnan", &yunnan),
        ("liaoning", &liaoning),
        ("most", &most),
    ] {
        for j in 0..6_000 {
            let p = generator.project(j);
            let key = (p.program.clone(), p.project_no.clone());
            if let Some(earlier) = projects.insert(key, format!("{name} {j}")) {
                panic!(
                    "{} {} of {name} {j} was already {earlier}",
                    p.program, p.project_no
                );
            }
        }
    }
    for j in 0..6_000 {
        let p = yunnan.shared_project(j);
        assert!(
            projects
                .insert((p.program, p.project_no), format!("shared {j}"))
                .is_none(),
            "shared project {j}"
        );
    }
    let mut registrations = HashSet::new();
    for generator in [&yunnan, &most] {
        for i in 0..4_000 {
            let a = generator.achievement(i);
            if let Some(no) = a.registration_no {
                let parsed = RegistrationNumber::parse(&no).unwrap();
                assert_eq!(&parsed.issuer, generator.config().node.issuer());
                assert_eq!(parsed.flag, a.category.registration_flag());
                assert!(registrations.insert(no));
            }
        }
    }
    for i in 0..1_000 {
        if let Some(no) = yunnan.shared_achievement(i).registration_no {
            assert!(RegistrationNumber::parse(&no).unwrap().serial > 900_000);
            assert!(registrations.insert(no));
        }
    }
    // Project numbers take their programs' real shapes.
    for j in 0..500 {
        let p = yunnan.project(j);
        let no = p.project_no.as_str();
        match p.program.as_str() {
            "国家自然科学基金" => {
                assert!(
                    no.len() == 8 && no.bytes().all(|b| b.is_ascii_digit()),
                    "{no}"
                )
            }
            "国家重点研发计划" => {
                assert!(
                    no.len() == 14 && &no[4..6] == "YF" && no.ends_with("00"),
                    "{no}"
                )
            }
            _ => assert!(
                no.starts_with(&p.period.start[..4]),
                "{no} {}",
                p.period.start
            ),
        }
    }
}

#[test]
fn institutions_carry_valid_and_stable_credit_codes() {
    let mut seen: HashMap<String, (String, String)> = HashMap::new();
    let mut check = |institution: &Institution, node: &str| {
        check_uscc(&institution.uscc).unwrap_or_else(|e| panic!("{institution:?}: {e}"));
        check_region(&institution.region).unwrap();
        let identity = (institution.uscc.clone(), institution.region.clone());
        if let Some(earlier) = seen.insert(institution.name.clone(), identity.clone()) {
            assert_eq!(earlier, identity, "{} at {node}", institution.name);
        }
    };
    let mut in_yunnan = 0;
    let mut total = 0;
    let yunnan = province();
    for i in 0..2_000 {
        let a = yunnan.achievement(i);
        for institution in institutions_of(&a) {
            check(institution, "yunnan");
            total += 1;
            in_yunnan += usize::from(institution.region.starts_with("53"));
        }
        let p = yunnan.project(i);
        check(&p.lead, "yunnan");
        p.participants
            .iter()
            .flatten()
            .for_each(|x| check(x, "yunnan"));
        if let Some(uscc) = &p.funder.uscc {
            check_uscc(uscc).unwrap();
        }
    }
    assert!(
        in_yunnan * 100 > total * 75,
        "{in_yunnan} of {total} in Yunnan"
    );
    let mut provinces = HashSet::new();
    let most = ministry();
    for i in 0..2_000 {
        for institution in institutions_of(&most.achievement(i)) {
            check(institution, "most");
            provinces.insert(institution.region[..2].to_owned());
        }
    }
    assert!(
        provinces.len() >= 28,
        "ministry institutions from {} provinces",
        provinces.len()
    );
    assert!(seen.contains_key("云南大学") && seen.contains_key("昆明理工大学"));
}

#[test]
fn commercial_secret_pointers_resolve_to_present_fields() {
    let identity = [
        "title",
        "category",
        "secrecy",
        "confidential_fields",
        "registration_no",
        "registration_date",
        "project_no",
        "program",
        "status",
    ];
    let generator = province();
    let mut checked = 0;
    for i in 0..3_000 {
        let values = [json(&generator.achievement(i)), json(&generator.project(i))];
        for value in values {
            let Some(pointers) = value.get("confidential_fields").and_then(Value::as_array) else {
                continue;
            };
            assert!((1..=3).contains(&pointers.len()));
            let distinct: HashSet<&str> = pointers.iter().filter_map(Value::as_str).collect();
            assert_eq!(distinct.len(), pointers.len());
            for pointer in distinct {
                assert!(value.pointer(pointer).is_some(), "{pointer} in {value}");
                let first = pointer.split('/').nth(1).unwrap();
                assert!(!identity.contains(&first), "{pointer}");
                checked += 1;
            }
        }
    }
    assert!(checked > 1_000, "only {checked} pointers");
}

#[test]
fn shared_records_are_identical_on_every_node() {
    let (yunnan, most) = (province(), ministry());
    for i in 0..300 {
        let a = yunnan.shared_achievement(i);
        assert_eq!(a, most.shared_achievement(i), "shared achievement {i}");
        assert_eq!(
            yunnan.shared_project(i),
            most.shared_project(i),
            "shared project {i}"
        );
        assert_eq!(a.secrecy.level, SecrecyLevel::Public);
        assert_ne!(a.title, yunnan.achievement(i).title);
    }
    let reseeded = SampleGenerator::new(SampleConfig {
        seed: 1,
        ..SampleConfig::default()
    });
    assert_ne!(reseeded.shared_achievement(0), yunnan.shared_achievement(0));
    // Patents are part of what a merge can match on.
    let with_patents = (0..100)
        .map(|i| (yunnan.shared_achievement(i), most.shared_achievement(i)))
        .filter(|(a, _)| a.ip.is_some())
        .count();
    assert!(with_patents > 30);
}

#[test]
fn declassification_lowers_to_public_with_the_decision() {
    let generator = province();
    let (i, original) = (0..)
        .map(|i| (i, generator.achievement(i)))
        .find(|(_, a)| a.secrecy.level >= SecrecyLevel::Secret)
        .unwrap();
    let mut a = original.clone();
    assert!(generator.declassify(&mut a, "云科密解〔2025〕7号"));
    let decision = a.secrecy.decision.as_ref().unwrap();
    assert_eq!(a.secrecy.level, SecrecyLevel::Public);
    assert_eq!(a.secrecy.term_years, None);
    assert_eq!(decision.previous_level, original.secrecy.level);
    assert_eq!(decision.reference, "云科密解〔2025〕7号");
    assert_eq!(decision.authority.as_deref(), Some("云南省科学技术厅"));
    assert!(decision.date.as_str() > original.research_period.end.as_str());
    assert_valid(
        RecordKind::Achievement,
        &json(&a),
        &format!("declassified {i}"),
    );
    // Only the secrecy changed, and a public record stays as it is.
    let mut unchanged = a.clone();
    assert!(!generator.declassify(&mut unchanged, "again"));
    assert_eq!(unchanged, a);
    a.secrecy = original.secrecy.clone();
    assert_eq!(a, original);

    let mut p = (0..)
        .map(|j| generator.project(j))
        .find(|p| p.secrecy.level == SecrecyLevel::Internal)
        .unwrap();
    assert!(generator.declassify_project(&mut p, "云科密解〔2025〕8号"));
    assert_eq!(
        p.secrecy.decision.as_ref().unwrap().previous_level,
        SecrecyLevel::Internal
    );
    assert_valid(RecordKind::FundedProject, &json(&p), "declassified project");
}

#[test]
fn content_has_the_words_search_tests_look_for() {
    let generator = province();
    let records: Vec<Achievement> = generator.achievements(0..3_000).collect();
    for term in [
        "电池",
        "芯片",
        "疫苗",
        "大豆",
        "光伏",
        "中药",
        "水稻",
        "石墨烯",
        "5G",
        "AI",
        "CRISPR",
    ] {
        assert!(
            records.iter().any(|a| a.title.contains(term)),
            "no title contains {term}"
        );
        assert!(
            records.iter().any(|a| a.keywords.iter().any(|k| k == term)
                || a.keywords.iter().any(|k| k.contains(term))),
            "no keyword {term}"
        );
    }
    for term in ["电池", "芯片", "疫苗", "大豆", "光伏"] {
        assert!(
            records.iter().any(|a| a.keywords.iter().any(|k| k == term)),
            "{term}"
        );
        assert!(
            records.iter().any(|a| a.abstract_text.contains(term)),
            "{term}"
        );
    }
    let categories: HashSet<Category> = records.iter().map(|a| a.category).collect();
    assert_eq!(categories.len(), 3);
    for a in &records {
        assert!(a.keywords.len() <= 10 && !a.keywords.is_empty());
        assert!(a.title.chars().count() <= 200 && a.abstract_text.chars().count() >= 10);
    }
}

#[test]
fn province_and_ministry_nodes_fund_their_own_programs() {
    let programs = |generator: &SampleGenerator| -> HashSet<String> {
        generator.projects(0..1_500).map(|p| p.program).collect()
    };
    let yunnan = programs(&province());
    for program in [
        "国家自然科学基金",
        "国家重点研发计划",
        "国家科技重大专项",
        "技术创新引导专项",
        "基地和人才专项",
        "云南省重点研发计划",
        "云南省基础研究计划",
    ] {
        assert!(
            yunnan.contains(program),
            "{program} missing from {yunnan:?}"
        );
    }
    let most = programs(&ministry());
    assert_eq!(most.len(), 5, "{most:?}");
    assert!(most.iter().all(|p| !p.contains('省')));
    // A provincial program funds its own province's institutions, and the province's
    // department is the funder.
    for p in province().projects(0..1_000) {
        if p.program.starts_with("云南省") {
            assert!(
                p.lead.region.starts_with("53"),
                "{} led from {}",
                p.project_no,
                p.lead.region
            );
            assert_eq!(p.funder.name, "云南省科学技术厅");
            assert_eq!(p.funder.region.as_deref(), Some("530000"));
        }
    }
    let statuses: HashSet<ProjectStatus> =
        province().projects(0..3_000).map(|p| p.status).collect();
    assert!(statuses.len() >= 5, "{statuses:?}");
}

#[test]
fn profiles_name_their_node() {
    let yunnan = NodeProfile::province("530000");
    assert_eq!(yunnan.node_id(), "prov-530000");
    assert_eq!(yunnan.name(), "云南省科学技术厅");
    assert_eq!(yunnan.issuer(), &Issuer::Region("530000".into()));
    assert_eq!(yunnan.province_code(), Some("530000"));
    let most = NodeProfile::ministry("most", "科技部", "348");
    assert_eq!((most.node_id(), most.name()), ("most", "科技部"));
    assert_eq!(most.issuer(), &Issuer::Department("348".into()));
    assert_eq!(most.province_code(), None);
    for place in places() {
        assert!(
            PROVINCES.iter().any(|(p, _)| *p == &place.code[..2]),
            "{}",
            place.code
        );
        check_region(&place.code).unwrap();
        for city in &place.cities {
            check_region(&city.code).unwrap();
            assert_eq!(&city.code[..2], &place.code[..2]);
            assert_eq!(city.postcode.len(), 6);
        }
    }
}

#[test]
#[should_panic(expected = "mainland province-level division")]
fn a_city_code_is_not_a_province_node() {
    NodeProfile::province("530100");
}

#[test]
#[should_panic(expected = "three digits")]
fn a_department_code_has_three_digits() {
    NodeProfile::ministry("most", "科技部", "3480");
}

#[test]
fn the_number_permutation_is_a_bijection() {
    for n in [1, 7, 1_000, 65_000] {
        let mut seen = vec![false; n as usize];
        for j in 0..n {
            let k = permute(j, n, 12_345) as usize;
            assert!(!seen[k], "{j} of {n}");
            seen[k] = true;
        }
    }
    for program in PROGRAMS {
        assert!(program.capacity() / SLOTS > 60_000, "{program:?}");
    }
}

#[test]
fn generated_check_characters_are_right() {
    assert_eq!(uscc_for("12", "530000", "云南大学", false).len(), 18);
    assert_eq!(
        check_uscc(&uscc_for("91", "530100", "昆明华创锂电科技有限公司", true)),
        Ok(())
    );
    // GB 11643: the published example 11010519491231002X.
    let mut id = String::from("11010519491231002");
    let sum: u32 = id
        .bytes()
        .zip([7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2])
        .map(|(b, w)| u32::from(b - b'0') * w)
        .sum();
    id.push(b"10X98765432"[(sum % 11) as usize] as char);
    assert_eq!(id, "11010519491231002X");
    // CN patent numbers: ZL201510000001.X style, check over the 12 digits.
    let number = cn_patent_number(2021, 1, 1_234_567);
    assert!(
        number.starts_with("ZL202111234567.") && number.len() == 16,
        "{number}"
    );
    assert_eq!(Ymd::new(2024, 2, 29).plus_years(1), Ymd::new(2025, 2, 28));
    assert_eq!(
        Ymd::new(2021, 12, 1).plus_months(35).month_end(),
        Ymd::new(2024, 11, 30)
    );
    assert_eq!(Ymd::parse("2024-02-30"), None);
}

/// SHA-256 (hex) over the canonical JSON of each record, one record per line.
fn digest<T: serde::Serialize>(records: impl Iterator<Item = T>) -> String {
    let mut bytes = Vec::new();
    for record in records {
        bytes.extend(crate::canonical::to_canonical_vec(&record).unwrap());
        bytes.push(b'\n');
    }
    crate::canonical::sha256_hex(&bytes)
}

/// The digests [`GOLDEN`] pins, named `{generator} {what}`.
fn golden_digests() -> Vec<(String, String)> {
    let generators = [
        ("province", province()),
        ("ministry", ministry()),
        (
            "seed 7",
            SampleGenerator::new(SampleConfig {
                seed: 7,
                ..SampleConfig::default()
            }),
        ),
        (
            "beijing",
            SampleGenerator::new(SampleConfig {
                node: NodeProfile::province("110000"),
                ..SampleConfig::default()
            }),
        ),
    ];
    let mut out = Vec::new();
    for (name, g) in &generators {
        out.push((
            format!("{name} achievements"),
            digest(g.achievements(0..2_000)),
        ));
        out.push((format!("{name} projects"), digest(g.projects(0..500))));
        out.push((
            format!("{name} shared achievements"),
            digest((0..200).map(|i| g.shared_achievement(i))),
        ));
        out.push((
            format!("{name} shared projects"),
            digest((0..200).map(|i| g.shared_project(i))),
        ));
    }
    // Every province's table row is used by its own node.
    let every_province: Vec<SampleGenerator> = PROVINCES
        .iter()
        .filter(|(p, _)| !["71", "81", "82"].contains(p))
        .map(|(code, _)| {
            SampleGenerator::new(SampleConfig {
                node: NodeProfile::province(&format!("{code}0000")),
                ..SampleConfig::default()
            })
        })
        .collect();
    out.push((
        "every province achievements".to_owned(),
        digest(every_province.iter().flat_map(|g| g.achievements(0..40))),
    ));
    out.push((
        "every province projects".to_owned(),
        digest(every_province.iter().flat_map(|g| g.projects(0..40))),
    ));
    out
}

/// What the generator produced before its vocabulary moved into data files (issue 13), and
/// still produces after: tests, benchmarks and demo data depend on the same seed giving the
/// same bytes. Correcting a term in `vocabulary/*.toml` changes records on purpose; then
/// replace these digests with the ones the failure prints, and say why in the commit.
const GOLDEN: &[(&str, &str)] = &[
    (
        "province achievements",
        "5fe039afc9771d47803592edccf7a4993a37036c065512eb89797dca9d1b7dd7",
    ),
    (
        "province projects",
        "767e199c9914c57153115b785d090d49b36defd195bceffc76cfa3d89e535fd7",
    ),
    (
        "province shared achievements",
        "40655a7e3647b88bb4880137fe6dbce0b4573924952e876604771606fcdd2769",
    ),
    (
        "province shared projects",
        "a511994712e8e146caac464ca7a3b56cd132a9e952228d4910db8ab3ab9f97ba",
    ),
    (
        "ministry achievements",
        "567c8f4f31df1ac446aa0129c15c0b9f85ae95f91204902b60f6b3c3382a5391",
    ),
    (
        "ministry projects",
        "3e45dd9ba62e7a2dcb73acf4ce23becb4e80ca2daab451567aca0e5817577214",
    ),
    (
        "ministry shared achievements",
        "40655a7e3647b88bb4880137fe6dbce0b4573924952e876604771606fcdd2769",
    ),
    (
        "ministry shared projects",
        "a511994712e8e146caac464ca7a3b56cd132a9e952228d4910db8ab3ab9f97ba",
    ),
    (
        "seed 7 achievements",
        "02ca9f94369dbb00b599eb50913ce540d5437869cb404c071ca2f464a48c895d",
    ),
    (
        "seed 7 projects",
        "461bc1d9284809daf7dbe66c64f871bbf2bf678f994f8e366076a96193944712",
    ),
    (
        "seed 7 shared achievements",
        "cc14ae43889e9349616a8816504a466a021d58d39ac3b57b1f9fcfbca8b36a7c",
    ),
    (
        "seed 7 shared projects",
        "e2dcd02daaf675cf096d4be44c2b7a17625d9b9cb6462329e81323246f679d5b",
    ),
    (
        "beijing achievements",
        "b1622a0c5fea01112899f0f55397946904e0ad53b47fe4eaa91fa2dc5a4c3554",
    ),
    (
        "beijing projects",
        "c4a4cda2847f5184e38c9c361ae00edc127b472effcd7ff1b1ecaeb7fd85670e",
    ),
    (
        "beijing shared achievements",
        "40655a7e3647b88bb4880137fe6dbce0b4573924952e876604771606fcdd2769",
    ),
    (
        "beijing shared projects",
        "a511994712e8e146caac464ca7a3b56cd132a9e952228d4910db8ab3ab9f97ba",
    ),
    (
        "every province achievements",
        "1f8ae85e4b445fa454b79550364dd36015d59f4358f2cf8fd164c9744f60d214",
    ),
    (
        "every province projects",
        "7a23698786b266f08e55adbfc973af5a78d603d300062a85dc7d8fc85be9b0fb",
    ),
];

#[test]
fn the_same_seed_gives_byte_identical_records() {
    let digests = golden_digests();
    let printed: String = digests
        .iter()
        .map(|(name, hex)| format!("        (\"{name}\", \"{hex}\"),\n"))
        .collect();
    assert_eq!(digests.len(), GOLDEN.len(), "digests now:\n{printed}");
    for ((name, hex), (golden_name, golden_hex)) in digests.iter().zip(GOLDEN) {
        assert_eq!(name, golden_name);
        assert_eq!(hex, golden_hex, "{name} changed; digests now:\n{printed}");
    }
}

/// Every list of every vocabulary file, by `file: path`, for the checks below.
fn lists() -> Vec<(String, Vec<String>)> {
    let v = vocabulary();
    let mut out: Vec<(String, Vec<String>)> = Vec::new();
    let mut add = |name: String, list: Vec<String>| out.push((name, list));
    let owned = |list: &[String]| list.to_vec();
    for p in &v.places {
        add(
            format!("places.toml: {} cities", p.full),
            p.cities.iter().map(|c| c.name.clone()).collect(),
        );
        add(
            format!("places.toml: {} city codes", p.full),
            p.cities.iter().map(|c| c.code.clone()).collect(),
        );
    }
    add(
        "places.toml: codes".into(),
        v.places.iter().map(|p| p.code.clone()).collect(),
    );
    add(
        "places.toml: short names".into(),
        v.places.iter().map(|p| p.short.clone()).collect(),
    );
    for d in &v.domains {
        let f = d.field.as_str();
        for (key, list) in [
            ("subjects", &d.subjects),
            ("short", &d.short),
            ("keywords", &d.keywords),
            ("aspects", &d.aspects),
            ("mechanisms", &d.mechanisms),
            ("problems", &d.problems),
            ("techs", &d.techs),
            ("applications", &d.applications),
            ("clc", &d.clc),
            ("disciplines", &d.disciplines),
            ("industries", &d.industries),
            ("key_rd", &d.key_rd),
            ("companies", &d.companies),
        ] {
            add(format!("domains.toml: {f} {key}"), owned(list));
        }
        add(
            format!("domains.toml: {f} metrics"),
            d.metrics.iter().map(|m| m.name.clone()).collect(),
        );
        add(
            format!("domains.toml: {f} forms"),
            d.forms.iter().map(|x| x.as_str().to_owned()).collect(),
        );
    }
    let p = &v.programs;
    add(
        "programs.toml: nsfc.types".into(),
        p.nsfc.types.iter().map(|t| t.name.clone()).collect(),
    );
    add(
        "programs.toml: guide.sub_programs".into(),
        owned(&p.guide.sub_programs),
    );
    add(
        "programs.toml: base_talent.sub_programs".into(),
        owned(&p.base_talent.sub_programs),
    );
    add(
        "programs.toml: province.basic_types".into(),
        owned(&p.province.basic_types),
    );
    add(
        "programs.toml: province.talent_types".into(),
        owned(&p.province.talent_types),
    );
    add(
        "programs.toml: transfer.obligations".into(),
        owned(&p.transfer.obligations),
    );
    let i = &v.institutions;
    add("institutions.toml: brands".into(), owned(&i.brands));
    add("institutions.toml: roads".into(), owned(&i.roads));
    add(
        "institutions.toml: hospitals".into(),
        i.hospitals.iter().map(|x| x.source().to_owned()).collect(),
    );
    let people = &v.people;
    add(
        "people.toml: surnames".into(),
        people.surnames.iter().map(|x| x.name.clone()).collect(),
    );
    add(
        "people.toml: given".into(),
        people.given.iter().map(|x| x.name.clone()).collect(),
    );
    add(
        "people.toml: contributions".into(),
        owned(&people.contributions),
    );
    let ph = &v.phrases;
    for (key, list) in [
        ("qualifiers", &ph.qualifiers),
        ("soft_aspects", &ph.soft_aspects),
        ("soft_methods", &ph.soft_methods),
        ("social_benefits", &ph.social_benefits),
        ("transfer_conditions", &ph.transfer_conditions),
        ("software_words", &ph.software_words),
        ("invention_endings", &ph.invention_endings),
        ("utility_endings", &ph.utility_endings),
    ] {
        add(format!("phrases.toml: {key}"), owned(list));
    }
    out
}

#[test]
fn every_vocabulary_file_parses_and_its_lists_are_sound() {
    // Each file on its own, so a broken file is named.
    for (name, source) in FILES {
        if let Err(e) = source.parse::<toml::Table>() {
            panic!("vocabulary/{name} is not valid TOML: {e}");
        }
    }
    let v = vocabulary();
    assert_eq!(v.places.len(), 31, "places.toml: the 31 mainland divisions");
    // Lists where a repeat would be a mistake: none is empty, none repeats an entry.
    for (name, list) in lists() {
        assert!(!list.is_empty(), "{name} is empty");
        let mut seen = BTreeSet::new();
        for entry in &list {
            assert!(!entry.trim().is_empty(), "{name} has an empty entry");
            assert_eq!(
                entry.trim(),
                entry,
                "{name}: {entry:?} has spaces around it"
            );
            assert!(seen.insert(entry), "{name} lists {entry:?} twice");
        }
    }
    // Lists where a repeat is a weight: none is empty.
    let i = &v.institutions;
    assert!(!i.company_suffixes.is_empty());
    assert!(!i.university_shapes.is_empty());
    for (name, shapes) in &i.university_shapes {
        assert!(
            !shapes.is_empty(),
            "institutions.toml: university_shapes.{name}"
        );
    }
    let t = &v.people.titles;
    for (name, list) in [
        ("university", &t.university),
        ("company", &t.company),
        ("hospital", &t.hospital),
        ("other", &t.other),
    ] {
        assert!(!list.is_empty(), "people.toml: titles.{name} is empty");
    }
    // What the generator relies on beyond non-empty lists.
    for p in &v.places {
        assert!(!p.cities.is_empty(), "places.toml: {} has no city", p.full);
        assert!(
            p.full.starts_with(&p.short),
            "places.toml: {} / {}",
            p.full,
            p.short
        );
    }
    for person in v.people.surnames.iter().chain(&v.people.given) {
        assert!(
            !person.pinyin.is_empty() && person.pinyin.bytes().all(|b| b.is_ascii_lowercase()),
            "people.toml: pinyin {:?} of {} (lower-case letters, no tones)",
            person.pinyin,
            person.name
        );
    }
    for d in &v.domains {
        assert!(
            d.weight > 0,
            "domains.toml: {} has weight 0",
            d.field.as_str()
        );
        for m in &d.metrics {
            assert!(
                m.lo <= m.hi,
                "domains.toml: metric {} runs {}..{}",
                m.name,
                m.lo,
                m.hi
            );
        }
        assert!(!d.university_shapes.is_empty());
    }
    assert_eq!(
        v.domains.iter().filter(|d| d.soft_science).count(),
        1,
        "domains.toml: exactly one soft-science area"
    );
    // The words search tests look for are some area's two-character words.
    for term in ["电池", "芯片", "疫苗", "大豆", "光伏"] {
        assert!(
            v.domains.iter().any(|d| d.short.iter().any(|s| s == term)),
            "no area has the short word {term}"
        );
    }
}
