//! The OAI-PMH provider at `/oai` against a real catalogue (SQLite and PostgreSQL) fed through
//! the real ingest path with genuinely signed batches: every verb, every error code the
//! repository can give, paging with sealed resumption tokens, deletions, and secrecy — an entry
//! the public never could see is absent from every list, count and error. Every response is
//! validated with `xmllint` against the official OAI-PMH.xsd together with oai_dc.xsd and rix's
//! rix-1.0.xsd (`tests/oai/responses.xsd`), so each record's payload is validated too. A stock
//! harvester (Python's Sickle, `tests/harvester.py`) harvests everything, then incrementally,
//! and must end with exactly the public catalogue the JSON API shows.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use actix_web::body::MessageBody;
use actix_web::dev::{Service, ServiceResponse};
use actix_web::{App, test, web};
use common::{Backend, Gateway, Item, SigningNode, read_state};
use rix_gateway::oai::OaiConfig;
use rix_gateway::{access, api, oai};
use rix_schema::RecordKind;
use rix_schema::sample::{SampleConfig, SampleGenerator};
use rix_schema::sensitivity::Entitlements;
use serde_json::{Value, json};

const ACHIEVEMENTS: u64 = 40;
const PROJECTS: u64 = 6;
const PAGE: u32 = 7;
const REPOSITORY: &str = "rix.example.invalid";
const INTERNAL_TOKEN: &str = "oai-test-internal-token-0123456789";

/// The catalogue: a province's achievements (a quarter internal, their titles marked
/// `MKINT`), a ministry's public projects, and an internal achievement that is later withdrawn
/// (`a-never`): never public, so never anything to a public harvester.
fn catalogue(backend: Backend) -> (Gateway, SigningNode) {
    let gw = Gateway::open(backend);
    let g = SampleGenerator::new(SampleConfig {
        share_internal: 0.25,
        share_classified: 0.0,
        share_commercial_secret: 0.0,
        ..SampleConfig::default()
    });
    let mut province = SigningNode::trusted(&gw.db, "prov-530000");
    let mut ministry = SigningNode::trusted(&gw.db, "most");
    let mut projects: Vec<Item> = Vec::new();
    for i in 0..PROJECTS {
        let mut p = serde_json::to_value(g.project(i)).unwrap();
        p["secrecy"] = json!({"level": "public"});
        projects.push((RecordKind::FundedProject, format!("p{i:03}"), 1, Some(p)));
    }
    ministry.publish(&gw.ingest, projects, 50);
    let mut items: Vec<Item> = Vec::new();
    for i in 0..ACHIEVEMENTS {
        let mut a = serde_json::to_value(g.achievement(i)).unwrap();
        if i < 6 {
            a["secrecy"] = json!({"level": "public"});
        }
        if a["secrecy"]["level"] == "internal" {
            a["title"] = json!(format!("内部成果 MKINT{i:05}"));
        }
        if i == 1 {
            // Text XML must escape, and a character it cannot carry at all.
            a["title"] = json!("储能 <电池> & \"材料\" ]]> 'x'");
        }
        items.push((RecordKind::Achievement, format!("a{i:05}"), 1, Some(a)));
    }
    let mut never = serde_json::to_value(g.achievement(999)).unwrap();
    never["secrecy"] = json!({"level": "internal"});
    never["title"] = json!("内部成果 MKINT-never");
    items.push((RecordKind::Achievement, "a-never".into(), 1, Some(never)));
    province.publish(&gw.ingest, items, 25);
    province.publish(
        &gw.ingest,
        vec![(RecordKind::Achievement, "a-never".into(), 2, None)],
        25,
    );
    access::add_token_value(
        &gw.db,
        "oai internal reader",
        Entitlements {
            internal: true,
            ..Entitlements::PUBLIC
        },
        INTERNAL_TOKEN,
    )
    .unwrap();
    (gw, province)
}

/// Every response kept, to be validated with xmllint in one run.
struct Responses {
    dir: tempfile::TempDir,
    files: Vec<PathBuf>,
}

impl Responses {
    fn new() -> Responses {
        Responses {
            dir: tempfile::tempdir().unwrap(),
            files: Vec::new(),
        }
    }

    fn keep(&mut self, what: &str, body: &str) {
        let path = self
            .dir
            .path()
            .join(format!("{:04}-{}.xml", self.files.len(), sanitize(what)));
        std::fs::write(&path, body).unwrap();
        self.files.push(path);
    }

    /// Every response kept is valid: the OAI-PMH schema and the schemas of the payloads.
    fn validate(&self) {
        assert!(!self.files.is_empty());
        let (ok, report) = xmllint(&self.files);
        assert!(ok, "responses that do not validate:\n{report}");
    }
}

fn sanitize(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .take(60)
        .collect()
}

/// `xmllint --schema tests/oai/responses.xsd` over `files`, with no network.
fn xmllint(files: &[PathBuf]) -> (bool, String) {
    let schema = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/oai/responses.xsd");
    let output = std::process::Command::new("xmllint")
        .args(["--noout", "--nonet", "--schema"])
        .arg(&schema)
        .args(files)
        .output()
        .unwrap_or_else(|e| {
            panic!("cannot run xmllint (Debian's libxml2-utils, from ops/install-deps.sh): {e}")
        });
    let report = String::from_utf8_lossy(&output.stderr).into_owned();
    (output.status.success(), report)
}

/// One `/oai` request (GET), its body, kept for validation.
async fn oai_get<S, B>(
    app: &S,
    responses: &mut Responses,
    query: &str,
    token: Option<&str>,
) -> String
where
    S: Service<actix_http::Request, Response = ServiceResponse<B>, Error = actix_web::Error>,
    B: MessageBody,
{
    let mut req = test::TestRequest::get().uri(&format!("/oai?{query}"));
    if let Some(t) = token {
        req = req.insert_header(("Authorization", format!("Bearer {t}")));
    }
    let resp = test::call_service(app, req.to_request()).await;
    assert_eq!(resp.status().as_u16(), 200, "{query}");
    assert!(
        resp.headers()
            .get("content-type")
            .unwrap()
            .to_str()
            .unwrap()
            .starts_with("text/xml"),
        "{query}"
    );
    let body = String::from_utf8(test::read_body(resp).await.to_vec()).unwrap();
    responses.keep(query, &body);
    body
}

/// The error code of a response, if it is an error.
fn error_code(body: &str) -> Option<&str> {
    let at = body.find("<error code=\"")? + "<error code=\"".len();
    body[at..].split('"').next()
}

/// The text of every `name` element in `body`, in order (`""` for an empty one).
fn texts<'b>(body: &'b str, name: &str) -> Vec<&'b str> {
    let open = format!("<{name}");
    let close = format!("</{name}>");
    let mut out = Vec::new();
    for (i, _) in body.match_indices(&open) {
        let rest = &body[i + open.len()..];
        if !rest.starts_with(['>', ' ', '/']) {
            continue;
        }
        let Some(end_of_tag) = rest.find('>') else {
            continue;
        };
        if rest[..end_of_tag].ends_with('/') {
            out.push("");
            continue;
        }
        let content = &rest[end_of_tag + 1..];
        if let Some(end) = content.find(&close) {
            out.push(&content[..end]);
        }
    }
    out
}

/// The headers of a list: identifier → deleted?
fn headers(body: &str) -> Vec<(String, bool)> {
    body.split("<header")
        .skip(1)
        .map(|h| {
            let deleted = h.starts_with(" status=\"deleted\"");
            (texts(h, "identifier")[0].to_owned(), deleted)
        })
        .collect()
}

/// The attribute `name` of the resumptionToken element, if any.
fn token_attr<'b>(body: &'b str, name: &str) -> Option<&'b str> {
    let element = &body[body.find("<resumptionToken")?..];
    let element = &element[..element.find('>')?];
    let at = element.find(&format!("{name}=\""))? + name.len() + 2;
    element[at..].split('"').next()
}

/// A whole list, page by page: every page's body.
async fn harvest<S, B>(
    app: &S,
    responses: &mut Responses,
    query: &str,
    token: Option<&str>,
) -> Vec<String>
where
    S: Service<actix_http::Request, Response = ServiceResponse<B>, Error = actix_web::Error>,
    B: MessageBody,
{
    let verb = query.split('&').next().unwrap().to_owned();
    let mut pages = vec![oai_get(app, responses, query, token).await];
    loop {
        let last = pages.last().unwrap();
        let next = texts(last, "resumptionToken")
            .first()
            .map(|t| t.to_string());
        match next {
            Some(t) if !t.is_empty() => {
                let q = format!("{verb}&resumptionToken={t}");
                pages.push(oai_get(app, responses, &q, token).await);
            }
            _ => return pages,
        }
        assert!(pages.len() < 1000, "a list that never ends");
    }
}

/// The entries as `/v1/changes` leaves them for a reader: unified id → record (`None`:
/// removed). Those with a record are the reader's catalogue.
async fn followed<S, B>(app: &S, token: Option<&str>) -> BTreeMap<String, Option<Value>>
where
    S: Service<actix_http::Request, Response = ServiceResponse<B>, Error = actix_web::Error>,
    B: MessageBody,
{
    let mut req = test::TestRequest::get().uri("/v1/changes?after=0&limit=10000");
    if let Some(t) = token {
        req = req.insert_header(("Authorization", format!("Bearer {t}")));
    }
    let resp = test::call_service(app, req.to_request()).await;
    assert_eq!(resp.status().as_u16(), 200);
    let body = String::from_utf8(test::read_body(resp).await.to_vec()).unwrap();
    let mut state = BTreeMap::new();
    for line in body.lines() {
        let change: Value = serde_json::from_str(line).unwrap();
        let uid = change["unified_id"].as_str().unwrap().to_owned();
        state.insert(uid, change.get("record").cloned());
    }
    state
}

fn identifier(unified_id: &str) -> String {
    format!("oai:{REPOSITORY}:{unified_id}")
}

fn unified_id_of(gw: &Gateway, node_id: &str, id: &str) -> String {
    use diesel::prelude::*;
    use rix_gateway::db::schema::records;
    records::table
        .find((node_id, id))
        .select(records::unified_id)
        .first(&mut *gw.db.conn().unwrap())
        .unwrap()
}

fn config() -> OaiConfig {
    OaiConfig {
        page_size: PAGE,
        base_url: Some("https://rix.example.invalid".into()),
        ..OaiConfig::default()
    }
}

/// Waits until the clock is in a second after every change so far; returns that second as a
/// datestamp (a `from` that selects only what happens next).
async fn next_second() -> String {
    let now = time::OffsetDateTime::now_utc();
    let next = now.replace_nanosecond(0).unwrap() + time::Duration::seconds(1);
    tokio::time::sleep(std::time::Duration::from_nanos(
        (next - now).whole_nanoseconds() as u64 + 50_000_000,
    ))
    .await;
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
        next.year(),
        next.month() as u8,
        next.day(),
        next.hour(),
        next.minute(),
        next.second()
    )
}

async fn every_verb_answers_by_the_protocol(backend: Backend) {
    let (gw, mut province) = catalogue(backend);
    let app = test::init_service(
        App::new()
            .app_data(web::Data::new(read_state(&gw.db)))
            .app_data(web::Data::new(config()))
            .configure(api::configure)
            .configure(oai::configure),
    )
    .await;
    let mut responses = Responses::new();
    let public = followed(&app, None).await;
    let public_ids: BTreeSet<String> = public
        .iter()
        .filter(|(_, r)| r.is_some())
        .map(|(u, _)| identifier(u))
        .collect();
    assert!(public_ids.len() > 20, "{}", public_ids.len());
    let never = identifier(&unified_id_of(&gw, "prov-530000", "a-never"));

    // Identify.
    let identify = oai_get(&app, &mut responses, "verb=Identify", None).await;
    assert_eq!(
        texts(&identify, "baseURL"),
        ["https://rix.example.invalid/oai"]
    );
    assert_eq!(texts(&identify, "deletedRecord"), ["persistent"]);
    assert_eq!(texts(&identify, "granularity"), ["YYYY-MM-DDThh:mm:ssZ"]);
    assert_eq!(texts(&identify, "protocolVersion"), ["2.0"]);
    assert!(texts(&identify, "earliestDatestamp")[0].ends_with('Z'));

    // ListMetadataFormats, of the repository and of an item.
    let formats = oai_get(&app, &mut responses, "verb=ListMetadataFormats", None).await;
    assert_eq!(texts(&formats, "metadataPrefix"), ["oai_dc", "rix"]);
    assert!(formats.contains("https://rix.example.invalid/oai/rix-1.0.xsd"));
    let first = public_ids.iter().next().unwrap().clone();
    let item_formats = oai_get(
        &app,
        &mut responses,
        &format!("verb=ListMetadataFormats&identifier={first}"),
        None,
    )
    .await;
    assert_eq!(texts(&item_formats, "metadataPrefix"), ["oai_dc", "rix"]);

    // ListSets: the hierarchies, and children from what the public catalogue holds.
    let sets = oai_get(&app, &mut responses, "verb=ListSets", None).await;
    let specs = texts(&sets, "setSpec");
    for expected in [
        "kind",
        "kind:achievement",
        "kind:funded_project",
        "region",
        "field",
        "program",
    ] {
        assert!(specs.contains(&expected), "{expected} in {specs:?}");
    }
    assert!(specs.iter().any(|s| s.starts_with("region:")), "{specs:?}");
    assert!(specs.iter().any(|s| s.starts_with("field:")), "{specs:?}");
    assert!(specs.iter().any(|s| s.starts_with("program:")), "{specs:?}");

    // ListIdentifiers: every public entry once, in pages of PAGE, with sealed tokens.
    let pages = harvest(
        &app,
        &mut responses,
        "verb=ListIdentifiers&metadataPrefix=oai_dc",
        None,
    )
    .await;
    assert_eq!(pages.len(), public_ids.len().div_ceil(PAGE as usize));
    let listed: Vec<(String, bool)> = pages.iter().flat_map(|p| headers(p)).collect();
    assert!(listed.iter().all(|(_, deleted)| !deleted));
    let listed_ids: BTreeSet<String> = listed.iter().map(|(i, _)| i.clone()).collect();
    assert_eq!(listed_ids.len(), listed.len(), "each entry once");
    assert_eq!(listed_ids, public_ids);
    for (n, page) in pages.iter().enumerate() {
        assert_eq!(
            token_attr(page, "completeListSize"),
            (pages.len() > 1)
                .then(|| public_ids.len().to_string())
                .as_deref(),
        );
        if pages.len() > 1 {
            assert_eq!(
                token_attr(page, "cursor"),
                Some((n * PAGE as usize).to_string().as_str())
            );
        }
    }
    assert_eq!(texts(pages.last().unwrap(), "resumptionToken"), [""]);
    assert!(
        pages
            .last()
            .unwrap()
            .contains("<resumptionToken completeListSize")
    );

    // ListRecords in both formats: the same entries, every payload valid (xmllint below).
    for prefix in ["oai_dc", "rix"] {
        let pages = harvest(
            &app,
            &mut responses,
            &format!("verb=ListRecords&metadataPrefix={prefix}"),
            None,
        )
        .await;
        let ids: BTreeSet<String> = pages
            .iter()
            .flat_map(|p| headers(p))
            .map(|(i, _)| i)
            .collect();
        assert_eq!(ids, public_ids, "{prefix}");
        let all = pages.concat();
        assert!(
            !all.contains("MKINT"),
            "{prefix}: an internal title reached the public"
        );
        assert!(all.contains("储能 &lt;电池&gt; &amp; &quot;材料&quot; ]]&gt; &apos;x&apos;"));
    }

    // GetRecord in both formats; the rix record is the API's record, losslessly (field by
    // field through the harvester test; here its title).
    let (uid, record) = public.iter().find(|(_, r)| r.is_some()).unwrap();
    let record = record.as_ref().unwrap();
    for prefix in ["oai_dc", "rix"] {
        let got = oai_get(
            &app,
            &mut responses,
            &format!(
                "verb=GetRecord&identifier={}&metadataPrefix={prefix}",
                identifier(uid)
            ),
            None,
        )
        .await;
        assert_eq!(error_code(&got), None, "{got}");
        let title = record["title"]
            .as_str()
            .unwrap()
            .replace('&', "&amp;")
            .replace('<', "&lt;")
            .replace('>', "&gt;")
            .replace('"', "&quot;")
            .replace('\'', "&apos;");
        assert!(got.contains(&title), "{prefix}: {got}");
        assert!(got.contains(&format!("https://rix.example.invalid/entries/{uid}")));
    }

    // Sets: a kind, and a province with the entries that are in it.
    let projects = harvest(
        &app,
        &mut responses,
        "verb=ListIdentifiers&metadataPrefix=oai_dc&set=kind:funded_project",
        None,
    )
    .await;
    let project_headers: Vec<(String, bool)> = projects.iter().flat_map(|p| headers(p)).collect();
    assert_eq!(project_headers.len(), PROJECTS as usize);
    let region = specs
        .iter()
        .find(|s| s.starts_with("region:"))
        .unwrap()
        .to_string();
    let in_region = harvest(
        &app,
        &mut responses,
        &format!("verb=ListRecords&metadataPrefix=oai_dc&set={region}"),
        None,
    )
    .await;
    let records_in_region: Vec<&str> = in_region
        .iter()
        .flat_map(|p| p.split("<record>").skip(1))
        .collect();
    assert!(!records_in_region.is_empty());
    for r in &records_in_region {
        assert!(r.contains(&format!("<setSpec>{region}</setSpec>")), "{r}");
    }
    assert!(records_in_region.len() < public_ids.len());

    // The internal reader harvests their own view: the internal entries too, never `a-never`
    // (withdrawn before anyone harvested: a deleted header for them, who could see it).
    let internal = harvest(
        &app,
        &mut responses,
        "verb=ListIdentifiers&metadataPrefix=oai_dc",
        Some(INTERNAL_TOKEN),
    )
    .await;
    let internal_headers: Vec<(String, bool)> = internal.iter().flat_map(|p| headers(p)).collect();
    assert!(internal_headers.len() > public_ids.len());
    assert!(internal_headers.contains(&(never.clone(), true)));
    let internal_records = harvest(
        &app,
        &mut responses,
        "verb=ListRecords&metadataPrefix=rix",
        Some(INTERNAL_TOKEN),
    )
    .await;
    assert!(
        internal_records.concat().contains("MKINT"),
        "positive control: the internal reader sees internal titles"
    );

    // Changes: one public achievement withdrawn, one made internal, one revised.
    let from = next_second().await;
    let public_achievements: Vec<String> = (0..6).map(|i| format!("a{i:05}")).collect();
    let held = |id: &str| {
        rix_gateway::catalogue::current_record(&mut gw.db.conn().unwrap(), "prov-530000", id, 1)
            .unwrap()
            .unwrap()
    };
    let mut to_internal = held("a00004");
    to_internal["secrecy"] = json!({"level": "internal"});
    to_internal["title"] = json!("改为内部 MKINT-later");
    let mut revised = held("a00005");
    revised["title"] = json!("修订后的公开成果");
    province.publish(
        &gw.ingest,
        vec![
            (
                RecordKind::Achievement,
                public_achievements[3].clone(),
                2,
                None,
            ),
            (
                RecordKind::Achievement,
                public_achievements[4].clone(),
                2,
                Some(to_internal),
            ),
            (
                RecordKind::Achievement,
                public_achievements[5].clone(),
                2,
                Some(revised),
            ),
        ],
        25,
    );
    let withdrawn = identifier(&unified_id_of(&gw, "prov-530000", "a00003"));
    let hidden_now = identifier(&unified_id_of(&gw, "prov-530000", "a00004"));
    let revised_id = identifier(&unified_id_of(&gw, "prov-530000", "a00005"));
    let since = harvest(
        &app,
        &mut responses,
        &format!("verb=ListRecords&metadataPrefix=oai_dc&from={from}"),
        None,
    )
    .await;
    let mut since_headers: Vec<(String, bool)> = since.iter().flat_map(|p| headers(p)).collect();
    since_headers.sort();
    let mut expected = vec![
        (withdrawn.clone(), true),
        (hidden_now.clone(), true),
        (revised_id.clone(), false),
    ];
    expected.sort();
    assert_eq!(since_headers, expected);
    assert!(since.concat().contains("修订后的公开成果"));
    assert!(!since.concat().contains("MKINT"));
    // Day granularity selects the same (the changes are today), and until before them nothing.
    let today = &from[..10];
    let by_day = harvest(
        &app,
        &mut responses,
        &format!("verb=ListIdentifiers&metadataPrefix=oai_dc&from={today}&until={today}"),
        None,
    )
    .await;
    let day_ids: BTreeSet<String> = by_day
        .iter()
        .flat_map(|p| headers(p))
        .map(|(i, _)| i)
        .collect();
    assert!(day_ids.contains(&withdrawn) && day_ids.contains(&revised_id));
    let before = oai_get(
        &app,
        &mut responses,
        "verb=ListIdentifiers&metadataPrefix=oai_dc&until=2000-01-01",
        None,
    )
    .await;
    assert_eq!(error_code(&before), Some("noRecordsMatch"));

    // A deleted record: its header, no metadata.
    let deleted = oai_get(
        &app,
        &mut responses,
        &format!("verb=GetRecord&identifier={withdrawn}&metadataPrefix=rix"),
        None,
    )
    .await;
    assert!(deleted.contains("<header status=\"deleted\">"), "{deleted}");
    assert!(!deleted.contains("<metadata>"));
    let hidden = oai_get(
        &app,
        &mut responses,
        &format!("verb=GetRecord&identifier={hidden_now}&metadataPrefix=oai_dc"),
        None,
    )
    .await;
    assert!(hidden.contains("<header status=\"deleted\">"), "{hidden}");
    assert!(!hidden.contains("MKINT"));

    // The whole list now: the two deleted headers, and the count says so.
    let after = harvest(
        &app,
        &mut responses,
        "verb=ListIdentifiers&metadataPrefix=oai_dc",
        None,
    )
    .await;
    let after_headers: Vec<(String, bool)> = after.iter().flat_map(|p| headers(p)).collect();
    assert_eq!(after_headers.len(), public_ids.len());
    assert_eq!(after_headers.iter().filter(|(_, d)| *d).count(), 2);
    assert_eq!(
        token_attr(&after[0], "completeListSize"),
        Some(public_ids.len().to_string().as_str())
    );

    // Never public: nowhere, not even deleted, and not counted; unknown to GetRecord and
    // ListMetadataFormats exactly like an identifier that names nothing.
    for page in pages.iter().chain(&after).chain(&since) {
        assert!(!page.contains(&never), "a never-public entry listed");
    }
    let absent = oai_get(
        &app,
        &mut responses,
        &format!("verb=GetRecord&identifier={never}&metadataPrefix=oai_dc"),
        None,
    )
    .await;
    let nothing = oai_get(
        &app,
        &mut responses,
        &format!(
            "verb=GetRecord&identifier={}&metadataPrefix=oai_dc",
            identifier("u000000000000000000000000")
        ),
        None,
    )
    .await;
    assert_eq!(error_code(&absent), Some("idDoesNotExist"));
    let nobody = identifier("u000000000000000000000000");
    assert_eq!(
        texts(&absent, "error")[0].replace(&never, "ID"),
        texts(&nothing, "error")[0].replace(&nobody, "ID"),
        "a never-public entry is answered exactly as one that does not exist"
    );
    let absent_formats = oai_get(
        &app,
        &mut responses,
        &format!("verb=ListMetadataFormats&identifier={never}"),
        None,
    )
    .await;
    assert_eq!(error_code(&absent_formats), Some("idDoesNotExist"));

    // POST: the same request as a form.
    let req = test::TestRequest::post()
        .uri("/oai")
        .insert_header(("Content-Type", "application/x-www-form-urlencoded"))
        .set_payload("verb=ListIdentifiers&metadataPrefix=oai_dc&set=kind%3Afunded_project")
        .to_request();
    let resp = test::call_service(&app, req).await;
    assert_eq!(resp.status().as_u16(), 200);
    let posted = String::from_utf8(test::read_body(resp).await.to_vec()).unwrap();
    responses.keep("post", &posted);
    assert_eq!(headers(&posted).len(), PROJECTS as usize);

    // Every error code the repository can give, each as the protocol says.
    let token = texts(&pages[0], "resumptionToken")[0].to_owned();
    let mut tampered = token.clone().into_bytes();
    tampered[10] = if tampered[10] == b'A' { b'B' } else { b'A' };
    let tampered = String::from_utf8(tampered).unwrap();
    for (query, code) in [
        ("", "badVerb"),
        ("verb=Harvest", "badVerb"),
        ("verb=Identify&verb=Identify", "badVerb"),
        ("verb=Identify&set=kind", "badArgument"),
        ("verb=ListRecords", "badArgument"),
        (
            "verb=ListRecords&metadataPrefix=oai_dc&metadataPrefix=rix",
            "badArgument",
        ),
        (
            "verb=ListRecords&metadataPrefix=oai_dc&from=2026-01-01&until=2026-12-31T00:00:00Z",
            "badArgument",
        ),
        (
            "verb=ListRecords&metadataPrefix=oai_dc&from=2026-02-30",
            "badArgument",
        ),
        (
            "verb=ListRecords&metadataPrefix=oai_dc&from=2026-12-31&until=2026-01-01",
            "badArgument",
        ),
        (
            "verb=ListRecords&metadataPrefix=oai_dc&set=no%20such%20set",
            "badArgument",
        ),
        ("verb=GetRecord&metadataPrefix=oai_dc", "badArgument"),
        (
            &format!("verb=ListIdentifiers&resumptionToken={token}&metadataPrefix=oai_dc"),
            "badArgument",
        ),
        (
            &format!("verb=ListIdentifiers&resumptionToken={tampered}"),
            "badResumptionToken",
        ),
        (
            &format!("verb=ListRecords&resumptionToken={token}"),
            "badResumptionToken",
        ),
        (
            "verb=ListIdentifiers&resumptionToken=abc",
            "badResumptionToken",
        ),
        ("verb=ListSets&resumptionToken=abc", "badResumptionToken"),
        (
            "verb=ListRecords&metadataPrefix=marc21",
            "cannotDisseminateFormat",
        ),
        (
            &format!("verb=GetRecord&identifier={first}&metadataPrefix=marc21"),
            "cannotDisseminateFormat",
        ),
        (
            "verb=GetRecord&identifier=oai:elsewhere.org:u1&metadataPrefix=oai_dc",
            "idDoesNotExist",
        ),
        (
            "verb=ListMetadataFormats&identifier=oai:rix.example.invalid:nothing",
            "idDoesNotExist",
        ),
        (
            "verb=ListRecords&metadataPrefix=oai_dc&from=2999-01-01",
            "noRecordsMatch",
        ),
        (
            "verb=ListRecords&metadataPrefix=oai_dc&set=kind:thesis",
            "noRecordsMatch",
        ),
        (
            "verb=ListRecords&metadataPrefix=oai_dc&set=region:990000&until=2000-01-01",
            "noRecordsMatch",
        ),
    ] {
        let body = oai_get(&app, &mut responses, query, None).await;
        assert_eq!(error_code(&body), Some(code), "{query}: {body}");
        // After badVerb and badArgument the request element carries no attributes.
        if matches!(code, "badVerb" | "badArgument") {
            assert!(
                body.contains("<request>https://rix.example.invalid/oai</request>"),
                "{query}: {body}"
            );
        } else {
            assert!(body.contains("<request verb="), "{query}: {body}");
        }
    }
    // A province with no entries lists only the deleted entries, whose sets are gone with
    // their views: a harvester of any set hears of every deletion.
    let empty_region = oai_get(
        &app,
        &mut responses,
        "verb=ListIdentifiers&metadataPrefix=oai_dc&set=region:990000",
        None,
    )
    .await;
    let mut empty_region = headers(&empty_region);
    empty_region.sort();
    let mut deleted_only = vec![(withdrawn.clone(), true), (hidden_now.clone(), true)];
    deleted_only.sort();
    assert_eq!(empty_region, deleted_only);
    // A token is good only for the reader it was given to.
    let theirs = oai_get(
        &app,
        &mut responses,
        &format!("verb=ListIdentifiers&resumptionToken={token}"),
        Some(INTERNAL_TOKEN),
    )
    .await;
    assert_eq!(error_code(&theirs), Some("badResumptionToken"));
    // noSetHierarchy and noMetadataFormats are never the answer: the repository has sets and
    // every item has both formats (asked above of every kind of item).
    assert!(responses.files.iter().all(|f| {
        let body = std::fs::read_to_string(f).unwrap();
        error_code(&body).is_none_or(|c| c != "noSetHierarchy" && c != "noMetadataFormats")
    }));

    // Positive control of the validator: a response with a broken payload is refused.
    let broken_path = responses.dir.path().join("broken.xml");
    std::fs::write(
        &broken_path,
        pages[0].replacen("<identifier>", "<identifer>", 1),
    )
    .unwrap();
    assert!(
        !xmllint(&[broken_path]).0,
        "xmllint would not catch a broken response"
    );
    // Any entry still public serves: `first` may since have been withdrawn or hidden, and a
    // deleted header has no payload to break.
    let still_public = public_ids
        .iter()
        .find(|id| **id != withdrawn && **id != hidden_now)
        .unwrap();
    let broken_payload = responses.dir.path().join("broken-payload.xml");
    let rix_page = oai_get(
        &app,
        &mut responses,
        &format!("verb=GetRecord&identifier={still_public}&metadataPrefix=rix"),
        None,
    )
    .await;
    let broken = rix_page.replacen("<rix:record>", "<rix:record><rix:bogus/>", 1);
    assert_ne!(broken, rix_page, "no rix payload to break: {rix_page}");
    std::fs::write(&broken_payload, broken).unwrap();
    assert!(
        !xmllint(&[broken_payload]).0,
        "xmllint would not check the rix payload"
    );
    responses.validate();
}

common::on_both_backends!(
    every_verb_answers_by_the_protocol_and_validates,
    every_verb_answers_by_the_protocol
);

/// The OpenAPI document lists `/oai`, GET and POST.
#[actix_web::test]
async fn the_openapi_document_lists_the_oai_provider() {
    let gw = Gateway::open(Backend::Sqlite);
    let app = test::init_service(
        App::new()
            .app_data(web::Data::new(read_state(&gw.db)))
            .configure(api::configure)
            .configure(oai::configure),
    )
    .await;
    let doc: Value = test::call_and_read_body_json(
        &app,
        test::TestRequest::get().uri("/openapi.json").to_request(),
    )
    .await;
    let oai = &doc["paths"]["/oai"];
    assert!(oai["get"].is_object(), "{oai}");
    assert!(oai["post"].is_object(), "{oai}");
    assert!(
        oai["get"]["responses"]["200"]["content"]["text/xml"].is_object(),
        "{oai}"
    );
    // The native format's schema is served where ListMetadataFormats says.
    let xsd = test::call_service(
        &app,
        test::TestRequest::get()
            .uri("/oai/rix-1.0.xsd")
            .to_request(),
    )
    .await;
    assert_eq!(xsd.status().as_u16(), 200);
    let body = test::read_body(xsd).await;
    assert!(
        String::from_utf8_lossy(&body)
            .contains("targetNamespace=\"https://example.invalid/rix/oai/rix/1.0\"")
    );
    // An empty catalogue still has its set hierarchy, and says it has no records.
    let mut responses = Responses::new();
    let sets = oai_get(&app, &mut responses, "verb=ListSets", None).await;
    assert_eq!(
        texts(&sets, "setSpec"),
        ["kind", "region", "field", "program"]
    );
    let none = oai_get(
        &app,
        &mut responses,
        "verb=ListIdentifiers&metadataPrefix=oai_dc",
        None,
    )
    .await;
    assert_eq!(error_code(&none), Some("noRecordsMatch"));
    responses.validate();
}

/// Runs the Sickle harvester (`harvester.py`) against `base_url` into `state`; returns its
/// summary line.
async fn sickle(
    base_url: &str,
    state: &Path,
    method: &str,
    window: Option<(&str, &str)>,
) -> String {
    let python = std::env::var("RIX_PYTHON").unwrap_or_else(|_| "python3".into());
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/harvester.py");
    let mut command = tokio::process::Command::new(&python);
    command.arg(&script).arg(base_url).arg(state).arg(method);
    if let Some((from, until)) = window {
        command.arg(from).arg(until);
    }
    let output = command.output().await.unwrap_or_else(|e| {
        panic!("cannot run {python} (RIX_PYTHON from ops/start-services.sh): {e}")
    });
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "the harvester failed (sickle comes from ops/install-deps.sh):\n{stdout}\n{stderr}"
    );
    stdout
}

/// What the harvester holds: identifier → record (deleted ones left out).
fn harvested(state: &Path) -> BTreeMap<String, Value> {
    let held: BTreeMap<String, Value> =
        serde_json::from_str(&std::fs::read_to_string(state).unwrap()).unwrap();
    held.into_iter().filter(|(_, r)| !r.is_null()).collect()
}

/// The public catalogue as the JSON API gives it: identifier → record.
async fn public_catalogue<S, B>(app: &S) -> BTreeMap<String, Value>
where
    S: Service<actix_http::Request, Response = ServiceResponse<B>, Error = actix_web::Error>,
    B: MessageBody,
{
    followed(app, None)
        .await
        .into_iter()
        .filter_map(|(u, r)| r.map(|r| (identifier(&u), r)))
        .collect()
}

/// A stock harvester (Sickle) harvests everything, then — after a withdrawal, a record made
/// internal, a revision, a new public record and a new internal one — incrementally with
/// from/until (over POST), and ends with exactly the public catalogue, record for record.
async fn a_stock_harvester_ends_with_exactly_the_public_catalogue(backend: Backend) {
    let (gw, mut province) = catalogue(backend);
    let state = web::Data::new(read_state(&gw.db));
    let oai_config = web::Data::new(OaiConfig {
        page_size: PAGE,
        ..OaiConfig::default()
    });
    let api_app =
        test::init_service(App::new().app_data(state.clone()).configure(api::configure)).await;
    let server = actix_web::HttpServer::new(move || {
        App::new()
            .app_data(state.clone())
            .app_data(oai_config.clone())
            .configure(api::configure)
            .configure(oai::configure)
    })
    .workers(1)
    .bind(("127.0.0.1", 0))
    .unwrap();
    let base_url = format!("http://{}/oai", server.addrs()[0]);
    let running = server.run();
    let handle = running.handle();
    actix_web::rt::spawn(running);
    let dir = tempfile::tempdir().unwrap();
    let held = dir.path().join("harvest.json");

    let full = sickle(&base_url, &held, "GET", None).await;
    let before = public_catalogue(&api_app).await;
    assert!(before.len() > 20);
    assert_eq!(harvested(&held), before, "{full}");

    let from = next_second().await;
    let current = |id: &str| {
        rix_gateway::catalogue::current_record(&mut gw.db.conn().unwrap(), "prov-530000", id, 1)
            .unwrap()
            .unwrap()
    };
    let mut to_internal = current("a00001");
    to_internal["secrecy"] = json!({"level": "internal"});
    let mut revised = current("a00002");
    revised["abstract"] = json!("修订后的摘要：第二版。");
    let g = SampleGenerator::new(SampleConfig {
        seed: 77,
        share_classified: 0.0,
        ..SampleConfig::default()
    });
    let mut new_public = serde_json::to_value(g.achievement(0)).unwrap();
    new_public["secrecy"] = json!({"level": "public"});
    new_public["title"] = json!("新登记的公开成果");
    let mut new_internal = serde_json::to_value(g.achievement(1)).unwrap();
    new_internal["secrecy"] = json!({"level": "internal"});
    new_internal["title"] = json!("新登记的内部成果 MKINT-new");
    province.publish(
        &gw.ingest,
        vec![
            (RecordKind::Achievement, "a00000".into(), 2, None),
            (
                RecordKind::Achievement,
                "a00001".into(),
                2,
                Some(to_internal),
            ),
            (RecordKind::Achievement, "a00002".into(), 2, Some(revised)),
            (
                RecordKind::Achievement,
                "a-new-public".into(),
                1,
                Some(new_public),
            ),
            (
                RecordKind::Achievement,
                "a-new-internal".into(),
                1,
                Some(new_internal),
            ),
        ],
        25,
    );
    let until = {
        let now = time::OffsetDateTime::now_utc();
        format!(
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
            now.year(),
            now.month() as u8,
            now.day(),
            now.hour(),
            now.minute(),
            now.second()
        )
    };
    let incremental = sickle(&base_url, &held, "POST", Some((&from, &until))).await;
    assert!(
        incremental.starts_with("harvested 4 records (2 deleted)"),
        "the two removals, the revision and the new public record: {incremental}"
    );
    let after = public_catalogue(&api_app).await;
    assert_ne!(after, before);
    let holding = harvested(&held);
    assert_eq!(holding, after);
    assert!(holding.values().any(|r| r["title"] == "新登记的公开成果"));
    assert!(
        !std::fs::read_to_string(&held).unwrap().contains("MKINT"),
        "nothing internal reached the public harvester"
    );
    handle.stop(true).await;
}

#[actix_web::test]
async fn a_stock_harvester_ends_with_exactly_the_public_catalogue_sqlite() {
    a_stock_harvester_ends_with_exactly_the_public_catalogue(Backend::Sqlite).await;
}

#[actix_web::test]
async fn a_stock_harvester_ends_with_exactly_the_public_catalogue_postgres() {
    a_stock_harvester_ends_with_exactly_the_public_catalogue(Backend::Postgres).await;
}

/// A list from a date starts at that date (through the index on change times), and from/until
/// select by the time of each entry's newest change: the projects, stamped years ago, are
/// listed only by windows that hold their time, and counted so.
async fn from_and_until_select_by_the_time_of_each_entrys_newest_change(backend: Backend) {
    use diesel::prelude::*;
    use rix_gateway::db::schema::changes;
    let (gw, _) = catalogue(backend);
    // The ministry's projects were the first changes: stamp them as applied in 2020.
    let backdated = diesel::update(changes::table.filter(changes::node_id.eq("most")))
        .set(changes::at.eq("2020-06-01T08:00:00.25Z"))
        .execute(&mut *gw.db.conn().unwrap())
        .unwrap();
    assert_eq!(backdated, PROJECTS as usize);
    let app = test::init_service(
        App::new()
            .app_data(web::Data::new(read_state(&gw.db)))
            .app_data(web::Data::new(config()))
            .configure(api::configure)
            .configure(oai::configure),
    )
    .await;
    let mut responses = Responses::new();
    let public: BTreeSet<String> = public_catalogue(&app).await.into_keys().collect();
    let projects: BTreeSet<String> = (0..PROJECTS)
        .map(|i| identifier(&unified_id_of(&gw, "most", &format!("p{i:03}"))))
        .collect();
    let listed = |pages: &[String]| -> BTreeSet<String> {
        pages
            .iter()
            .flat_map(|p| headers(p))
            .map(|(i, _)| i)
            .collect()
    };
    for (window, expected) in [
        (
            "from=2021-01-01",
            public
                .difference(&projects)
                .cloned()
                .collect::<BTreeSet<_>>(),
        ),
        ("until=2020-12-31", projects.clone()),
        ("from=2020-06-01&until=2020-06-01", projects.clone()),
        (
            "from=2020-06-01T08:00:00Z&until=2020-06-01T08:00:00Z",
            projects.clone(),
        ),
        ("from=2019-01-01", public.clone()),
    ] {
        let pages = harvest(
            &app,
            &mut responses,
            &format!("verb=ListIdentifiers&metadataPrefix=oai_dc&{window}"),
            None,
        )
        .await;
        assert_eq!(listed(&pages), expected, "{window}");
        if pages.len() > 1 {
            assert_eq!(
                token_attr(&pages[0], "completeListSize"),
                Some(expected.len().to_string().as_str()),
                "{window}"
            );
        }
        let datestamps: Vec<&str> = pages.iter().flat_map(|p| texts(p, "datestamp")).collect();
        if window.starts_with("until") {
            assert!(
                datestamps.iter().all(|d| *d == "2020-06-01T08:00:00Z"),
                "{datestamps:?}"
            );
        }
    }
    for window in [
        "from=2020-06-01T08:00:01Z&until=2020-12-31T00:00:00Z",
        "until=2020-05-31",
    ] {
        let body = oai_get(
            &app,
            &mut responses,
            &format!("verb=ListIdentifiers&metadataPrefix=oai_dc&{window}"),
            None,
        )
        .await;
        assert_eq!(error_code(&body), Some("noRecordsMatch"), "{window}");
    }
    let identify = oai_get(&app, &mut responses, "verb=Identify", None).await;
    assert_eq!(
        texts(&identify, "earliestDatestamp"),
        ["2020-06-01T08:00:00Z"]
    );
    responses.validate();
}

#[actix_web::test]
async fn from_and_until_select_by_the_time_of_each_entrys_newest_change_sqlite() {
    from_and_until_select_by_the_time_of_each_entrys_newest_change(Backend::Sqlite).await;
}

#[actix_web::test]
async fn from_and_until_select_by_the_time_of_each_entrys_newest_change_postgres() {
    from_and_until_select_by_the_time_of_each_entrys_newest_change(Backend::Postgres).await;
}

/// The served gateway (`serve::start`) answers `/oai` with its `[oai]` settings, and bounds the
/// lists like the change feed: with every slot of the feed taken a list is refused with 429,
/// while Identify still answers.
#[actix_web::test]
async fn the_served_gateway_answers_oai_with_its_settings_and_bounds_lists() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = rix_gateway::config::Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        data_dir: dir.path().to_owned(),
        limits: toml::from_str("[changes]\nconcurrent = 1\nqueue_ms = 0\n").unwrap(),
        ..Default::default()
    };
    config.oai.base_url = Some("https://rix.example.cn/".into());
    config.oai.admin_email = "harvest@example.cn".into();
    let gateway = rix_gateway::serve::start(config).await.unwrap();
    let url = gateway.url();
    let http = reqwest::Client::new();
    let identify = http
        .get(format!("{url}/oai?verb=Identify"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(texts(&identify, "baseURL"), ["https://rix.example.cn/oai"]);
    assert_eq!(texts(&identify, "adminEmail"), ["harvest@example.cn"]);
    let slot = gateway
        .limits()
        .hold(rix_gateway::limits::Heavy::Changes)
        .unwrap();
    let list = http
        .get(format!("{url}/oai?verb=ListRecords&metadataPrefix=oai_dc"))
        .send()
        .await
        .unwrap();
    assert_eq!(list.status(), 429);
    assert!(list.headers().get("retry-after").is_some());
    let identify = http
        .get(format!("{url}/oai?verb=Identify"))
        .send()
        .await
        .unwrap();
    assert_eq!(identify.status(), 200);
    drop(slot);
    let list = http
        .get(format!("{url}/oai?verb=ListRecords&metadataPrefix=oai_dc"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(error_code(&list), Some("noRecordsMatch"));
    gateway.stop().await;
}

/// An internal record made public that joins a public entry (its registration number now that
/// of a public result) leaves its internal entry behind. That entry was never public: a public
/// harvester is not told of it, not even as deleted, and it is not counted; an internal reader,
/// who could see it, gets its deleted header.
async fn a_record_made_public_leaves_no_trace_of_its_internal_entry(backend: Backend) {
    let (gw, mut province) = catalogue(backend);
    let current = |id: &str| {
        rix_gateway::catalogue::current_record(&mut gw.db.conn().unwrap(), "prov-530000", id, 1)
            .unwrap()
            .unwrap()
    };
    let internal_id = (6..ACHIEVEMENTS)
        .map(|i| format!("a{i:05}"))
        .find(|id| current(id)["secrecy"]["level"] == "internal")
        .unwrap();
    let internal_entry = identifier(&unified_id_of(&gw, "prov-530000", &internal_id));
    let public_entry = identifier(&unified_id_of(&gw, "prov-530000", "a00000"));
    let mut declassified = current(&internal_id);
    declassified["secrecy"] = json!({"level": "public"});
    declassified["title"] = json!("解密后并入公开成果");
    declassified["registration_no"] = current("a00000")["registration_no"].clone();
    province.publish(
        &gw.ingest,
        vec![(
            RecordKind::Achievement,
            internal_id.clone(),
            2,
            Some(declassified),
        )],
        25,
    );
    assert_eq!(
        identifier(&unified_id_of(&gw, "prov-530000", &internal_id)),
        public_entry,
        "the record moved into the public entry"
    );
    let app = test::init_service(
        App::new()
            .app_data(web::Data::new(read_state(&gw.db)))
            .app_data(web::Data::new(config()))
            .configure(api::configure)
            .configure(oai::configure),
    )
    .await;
    let mut responses = Responses::new();
    let public = public_catalogue(&app).await;
    let pages = harvest(
        &app,
        &mut responses,
        "verb=ListIdentifiers&metadataPrefix=oai_dc",
        None,
    )
    .await;
    let listed: Vec<(String, bool)> = pages.iter().flat_map(|p| headers(p)).collect();
    assert!(
        listed.iter().all(|(i, _)| *i != internal_entry),
        "the internal entry was listed"
    );
    assert_eq!(
        listed
            .iter()
            .map(|(i, _)| i.clone())
            .collect::<BTreeSet<_>>(),
        public.keys().cloned().collect::<BTreeSet<_>>()
    );
    assert_eq!(
        token_attr(&pages[0], "completeListSize"),
        Some(listed.len().to_string().as_str()),
        "the count is of what is listed"
    );
    let since = harvest(
        &app,
        &mut responses,
        "verb=ListIdentifiers&metadataPrefix=oai_dc&from=2000-01-01",
        None,
    )
    .await;
    assert_eq!(
        token_attr(&since[0], "completeListSize"),
        Some(listed.len().to_string().as_str())
    );
    let absent = oai_get(
        &app,
        &mut responses,
        &format!("verb=GetRecord&identifier={internal_entry}&metadataPrefix=oai_dc"),
        None,
    )
    .await;
    assert_eq!(error_code(&absent), Some("idDoesNotExist"));
    let joined = oai_get(
        &app,
        &mut responses,
        &format!("verb=GetRecord&identifier={public_entry}&metadataPrefix=oai_dc"),
        None,
    )
    .await;
    assert!(!joined.contains("status=\"deleted\""), "{joined}");
    // The internal reader could see the entry the record left: it is deleted, for them.
    let theirs = harvest(
        &app,
        &mut responses,
        "verb=ListIdentifiers&metadataPrefix=oai_dc",
        Some(INTERNAL_TOKEN),
    )
    .await;
    let theirs: Vec<(String, bool)> = theirs.iter().flat_map(|p| headers(p)).collect();
    assert!(theirs.contains(&(internal_entry.clone(), true)));
    responses.validate();
}

#[actix_web::test]
async fn a_record_made_public_leaves_no_trace_of_its_internal_entry_sqlite() {
    a_record_made_public_leaves_no_trace_of_its_internal_entry(Backend::Sqlite).await;
}

#[actix_web::test]
async fn a_record_made_public_leaves_no_trace_of_its_internal_entry_postgres() {
    a_record_made_public_leaves_no_trace_of_its_internal_entry(Backend::Postgres).await;
}
