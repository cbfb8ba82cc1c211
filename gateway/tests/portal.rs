//! The researchers' portal against a real catalogue (SQLite, and PostgreSQL where it is cheap)
//! fed through the real ingest path with generated records: what the pages show, that their
//! links round-trip, that they show exactly what the JSON API shows the same reader, that
//! every user string renders as text, and the headers and weight of every page. What no page
//! may show to which reader is the leak suite's (`leak.rs`), which reads the pages too.

mod common;

use actix_web::body::MessageBody;
use actix_web::dev::{Service, ServiceResponse};
use actix_web::{App, test, web};
use common::{Backend, Gateway, Item, SigningNode, read_state};
use rix_gateway::{access, api, portal};
use rix_schema::RecordKind;
use rix_schema::sample::{SampleConfig, SampleGenerator, funding_project_index};
use rix_schema::sensitivity::Entitlements;
use serde_json::{Value, json};

const ACHIEVEMENTS: u64 = 120;
const XSS_TITLE: &str = "<script>alert(1)</script>";
const XSS_ABSTRACT: &str = "\"><img src=x onerror=alert(1)> 储能电池的测试摘要";
const TOKEN: &str = "portal-test-internal-token-0123456789";

/// A catalogue of generated achievements from a province (a fifth of them internal), the
/// projects that fund the first five (from a ministry), a planted battery result and the XSS
/// record; with an internal reader's token.
fn catalogue(backend: Backend) -> Gateway {
    let gw = Gateway::open(backend);
    let g = SampleGenerator::new(SampleConfig {
        share_internal: 0.2,
        share_classified: 0.0,
        share_commercial_secret: 0.0,
        ..SampleConfig::default()
    });
    let mut province = SigningNode::trusted(&gw.db, "prov-530000");
    let mut ministry = SigningNode::trusted(&gw.db, "most");
    let mut projects: Vec<Item> = Vec::new();
    let mut funded = std::collections::BTreeSet::new();
    for i in 0..5 {
        let index = funding_project_index(i);
        if funded.insert(index) {
            let mut p = serde_json::to_value(g.project(index)).unwrap();
            p["secrecy"] = json!({"level": "public"});
            projects.push((RecordKind::FundedProject, format!("p{index}"), 1, Some(p)));
        }
    }
    ministry.publish(&gw.ingest, projects, 50);
    let mut items: Vec<Item> = Vec::new();
    for i in 0..ACHIEVEMENTS {
        let mut a = serde_json::to_value(g.achievement(i)).unwrap();
        if i < 5 {
            a["secrecy"] = json!({"level": "public"});
        }
        if i == 1 {
            a["title"] = json!("固态锂电池储能系统关键技术");
        }
        if i == 2 {
            a["title"] = json!(XSS_TITLE);
            a["abstract"] = json!(XSS_ABSTRACT);
            a["keywords"] = json!(["<b>粗体</b>", "储能"]);
        }
        assert!(
            rix_schema::validate_record(RecordKind::Achievement, &a).is_ok(),
            "{:?}",
            rix_schema::validate_record(RecordKind::Achievement, &a)
        );
        items.push((RecordKind::Achievement, format!("a{i:05}"), 1, Some(a)));
    }
    // a00003 revised once: a version history of two.
    let mut revised = items[3].3.clone().unwrap();
    revised["abstract"] = json!("修订后的摘要：储能电池的第二版说明。");
    province.publish(&gw.ingest, items, 50);
    province.publish(
        &gw.ingest,
        vec![(RecordKind::Achievement, "a00003".into(), 2, Some(revised))],
        50,
    );
    access::add_token_value(
        &gw.db,
        "portal internal reader",
        Entitlements {
            internal: true,
            commercial: false,
            personal: false,
        },
        TOKEN,
    )
    .unwrap();
    gw
}

/// What a GET answered.
struct Got {
    status: u16,
    headers: actix_web::http::header::HeaderMap,
    body: String,
}

impl Got {
    fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }

    /// `<strong id="total">N</strong>`.
    fn total(&self) -> u64 {
        let at = self.body.find("id=\"total\">").expect("a total") + "id=\"total\">".len();
        self.body[at..]
            .split('<')
            .next()
            .unwrap()
            .trim()
            .parse()
            .unwrap()
    }
}

async fn get<S, B>(app: &S, uri: &str, token: Option<&str>) -> Got
where
    S: Service<actix_http::Request, Response = ServiceResponse<B>, Error = actix_web::Error>,
    B: MessageBody,
{
    get_with(app, uri, token, &[]).await
}

/// One `<a>` of a page: its unescaped `href`, its opening tag and its text.
#[derive(Debug, Clone)]
struct Anchor {
    href: String,
    tag: String,
    text: String,
}

/// Text as the templates escape it (askama: numeric references for `& < > " '`).
fn esc(s: &str) -> String {
    s.replace('&', "&#38;")
        .replace('<', "&#60;")
        .replace('>', "&#62;")
        .replace('"', "&#34;")
        .replace('\'', "&#39;")
}

fn unescape(s: &str) -> String {
    s.replace("&#60;", "<")
        .replace("&#62;", ">")
        .replace("&#34;", "\"")
        .replace("&#39;", "'")
        .replace("&#38;", "&")
}

fn anchors(html: &str) -> Vec<Anchor> {
    let mut out = Vec::new();
    let mut rest = html;
    while let Some(start) = rest.find("<a ") {
        rest = &rest[start..];
        let end_tag = rest.find('>').unwrap();
        let tag = rest[..=end_tag].to_owned();
        let close = rest.find("</a>").unwrap();
        let inner = &rest[end_tag + 1..close];
        let mut text = String::new();
        let mut in_tag = false;
        for c in inner.chars() {
            match c {
                '<' => in_tag = true,
                '>' => in_tag = false,
                c if !in_tag => text.push(c),
                _ => {}
            }
        }
        let href = tag
            .split("href=\"")
            .nth(1)
            .and_then(|h| h.split('"').next())
            .map(unescape)
            .unwrap_or_default();
        out.push(Anchor {
            href,
            tag,
            text: unescape(text.trim()),
        });
        rest = &rest[close..];
    }
    out
}

macro_rules! portal_app {
    ($db:expr) => {
        test::init_service(
            App::new()
                .app_data(web::Data::new(read_state($db)))
                .configure(api::configure)
                .configure(portal::configure),
        )
        .await
    };
}

async fn search_page_shows_results_and_its_facet_links_round_trip(backend: Backend) {
    let gw = catalogue(backend);
    let app = portal_app!(&gw.db);
    let home = get(&app, "/", None).await;
    assert_eq!(home.status, 200, "{}", home.body);
    assert!(home.header("content-type").starts_with("text/html"));
    assert!(
        home.body
            .starts_with("<!DOCTYPE html>\n<html lang=\"zh-CN\">")
    );
    let api: Value = serde_json::from_str(&get(&app, "/v1/search", None).await.body).unwrap();
    assert_eq!(
        home.total(),
        api["total"].as_u64().unwrap(),
        "the API's total"
    );
    assert!(home.total() > 20, "a next page");
    assert!(
        anchors(&home.body)
            .iter()
            .any(|a| a.tag.contains("rel=\"next\"") && a.href.contains("cursor=")),
        "a link to the next page"
    );
    // Facets show provinces by name, with the API's counts.
    let regions: Vec<Anchor> = anchors(&home.body)
        .into_iter()
        .filter(|a| a.tag.contains("data-facet=\"region\""))
        .collect();
    assert!(!regions.is_empty());
    let first = &regions[0];
    let (label, count) = first.text.rsplit_once(' ').unwrap();
    let count: u64 = count.parse().unwrap();
    let code = api["facets"]["region"][0]["value"].as_str().unwrap();
    assert_eq!(
        label,
        rix_schema::codes::province_name(code).unwrap(),
        "a province name, not {code}"
    );
    assert_eq!(count, api["facets"]["region"][0]["count"]);
    for group in ["field", "category", "program", "year", "trl_min"] {
        assert!(
            home.body.contains(&format!("data-facet=\"{group}\"")),
            "facet {group}"
        );
    }
    // Clicking the facet finds exactly the count it showed, and shows it as a chip.
    let filtered = get(&app, &first.href, None).await;
    assert_eq!(filtered.status, 200);
    assert_eq!(filtered.total(), count, "{}", first.href);
    let chip = anchors(&filtered.body)
        .into_iter()
        .find(|a| a.tag.contains("class=\"chip\""))
        .expect("an active filter chip");
    assert!(chip.text.contains(label), "{chip:?}");
    // Removing the chip gives the whole search back.
    let unfiltered = get(&app, &chip.href, None).await;
    assert_eq!(unfiltered.total(), home.total(), "{}", chip.href);
    assert!(!unfiltered.body.contains("class=\"chip\""));

    // Full text: highlighted titles.
    let found = get(&app, "/?q=%E9%94%82%E7%94%B5%E6%B1%A0", None).await;
    assert_eq!(found.total(), 1, "{}", found.body);
    assert!(
        found.body.contains("固态<mark>锂电池</mark>储能系统"),
        "{}",
        found.body
    );
    // The download links are the export of the same search.
    let csv = anchors(&found.body)
        .into_iter()
        .find(|a| a.href.starts_with("/v1/export?format=csv") || a.href.contains("format=csv"))
        .expect("a CSV download");
    let export = get(&app, &csv.href, None).await;
    assert_eq!(export.status, 200, "{}", csv.href);
    assert_eq!(export.body.lines().count(), 2, "{}", export.body);
    assert!(export.body.contains("固态锂电池储能系统关键技术"));

    // Nothing found: a helpful empty state, not an empty page.
    let none = get(
        &app,
        "/?q=%E4%B8%8D%E5%AD%98%E5%9C%A8%E7%9A%84%E8%AF%8D",
        None,
    )
    .await;
    assert_eq!(none.status, 200);
    assert_eq!(none.total(), 0);
    assert!(none.body.contains("没有找到结果"));
    assert!(none.body.contains("清除全部条件"));
}

#[actix_web::test]
async fn search_page_shows_results_and_its_facet_links_round_trip_sqlite() {
    search_page_shows_results_and_its_facet_links_round_trip(Backend::Sqlite).await;
}

#[actix_web::test]
async fn search_page_shows_results_and_its_facet_links_round_trip_postgres() {
    search_page_shows_results_and_its_facet_links_round_trip(Backend::Postgres).await;
}

#[actix_web::test]
async fn record_page_shows_labelled_fields_links_and_verification() {
    let gw = catalogue(Backend::Sqlite);
    let app = portal_app!(&gw.db);
    let api: Value =
        serde_json::from_str(&get(&app, "/v1/records/prov-530000/a00001", None).await.body)
            .unwrap();
    let page = get(&app, "/records/prov-530000/a00001", None).await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(page.body.contains("<h1>固态锂电池储能系统关键技术</h1>"));
    let record = &api["record"];
    for label in [
        "成果类别",
        "简介",
        "关键词",
        "完成单位",
        "统一社会信用代码",
        "完成人",
    ] {
        assert!(page.body.contains(label), "label {label}");
    }
    let institution = &record["institutions"][0];
    assert!(page.body.contains(institution["name"].as_str().unwrap()));
    assert!(page.body.contains(institution["uscc"].as_str().unwrap()));
    assert!(page.body.contains(record["category"].as_str().unwrap()));
    // The funded project, as a link that leads to it and back.
    let linked = &api["links"][0];
    let link = anchors(&page.body)
        .into_iter()
        .find(|a| a.href.starts_with("/entries/") && a.text == linked["title"])
        .unwrap_or_else(|| panic!("a link to {linked}"));
    let project = get(&app, &link.href, None).await;
    assert_eq!(project.status, 200, "{}", link.href);
    assert!(project.body.contains("项目编号"));
    assert!(
        anchors(&project.body)
            .iter()
            .any(|a| a.text == "固态锂电池储能系统关键技术"),
        "the project links back"
    );
    // The verification box: who signed, with which key, in which batch, the proof.
    let v = &api["sources"][0]["verification"];
    assert!(page.body.contains("已验证"));
    for value in [
        v["header"]["key_id"].as_str().unwrap(),
        v["header"]["merkle_root"].as_str().unwrap(),
    ] {
        assert!(page.body.contains(value), "{value}");
    }
    for p in v["inclusion_proof"]["path"].as_array().unwrap() {
        assert!(page.body.contains(p.as_str().unwrap()));
    }
    let download = anchors(&page.body)
        .into_iter()
        .find(|a| a.href == "/v1/records/prov-530000/a00001")
        .expect("the verification material");
    assert_eq!(get(&app, &download.href, None).await.status, 200);
    assert!(page.body.contains("openssl pkeyutl -verify"));
    // An entry's page by its name is the same page.
    let by_name = get(
        &app,
        &format!("/entries/{}", api["unified_id"].as_str().unwrap()),
        None,
    )
    .await;
    assert!(by_name.body.contains("<h1>固态锂电池储能系统关键技术</h1>"));
}

#[actix_web::test]
async fn user_strings_render_as_text_on_every_page() {
    let gw = catalogue(Backend::Sqlite);
    let app = portal_app!(&gw.db);
    let pages = [
        get(&app, "/records/prov-530000/a00002", None).await,
        get(&app, "/?q=alert", None).await,
        get(&app, "/?q=%E5%82%A8%E8%83%BD&limit=100", None).await,
        get(
            &app,
            "/?q=%22%3E%3Cimg%20src%3Dx%20onerror%3Dalert(1)%3E%3Cscript%3Ealert(1)%3C%2Fscript%3E",
            None,
        )
        .await,
    ];
    // The one script a page names is htmx, from this origin.
    let htmx = format!("<script src=\"{}\" defer></script>", portal::htmx_src());
    for page in &pages {
        assert_eq!(page.status, 200, "{}", page.body);
        let body = page.body.replacen(&htmx, "", 1);
        assert!(!body.contains("<script"), "{}", page.body);
        assert!(!page.body.contains("<img"), "{}", page.body);
        assert!(!page.body.contains("<b>"), "{}", page.body);
        assert!(!page.body.contains("onerror=alert(1)>"));
    }
    let record = &pages[0].body;
    assert!(record.contains(&format!("<h1>{}</h1>", esc(XSS_TITLE))));
    assert!(record.contains(&esc(XSS_ABSTRACT)));
    assert!(record.contains(&esc("<b>粗体</b>")));
    // The highlight marks the match and escapes the text around it.
    assert!(
        pages[1].body.contains(&format!(
            "{}<mark>alert</mark>(1){}",
            esc("<script>"),
            esc("</script>")
        )),
        "{}",
        pages[1].body
    );
    // The query is echoed in the box as text.
    assert!(
        pages[3]
            .body
            .contains(&esc("\"><img src=x onerror=alert(1)>"))
    );
}

#[actix_web::test]
async fn every_page_carries_a_strict_policy_and_stays_light() {
    let gw = catalogue(Backend::Sqlite);
    let app = portal_app!(&gw.db);
    let home = get(&app, "/", None).await;
    let css = anchors(&home.body);
    assert!(
        css.iter().all(|a| !a.href.starts_with("http")),
        "same origin"
    );
    let css_href = home
        .body
        .split("rel=\"stylesheet\" href=\"")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .unwrap()
        .to_owned();
    assert!(css_href.starts_with("/static/portal.") && css_href.ends_with(".css"));
    for (uri, status) in [
        ("/", 200),
        ("/?lang=en", 200),
        ("/?q=%E5%82%A8%E8%83%BD&sort=date", 200),
        ("/records/prov-530000/a00001", 200),
        ("/stats", 200),
        ("/stats.csv?by=region", 200),
        ("/about", 200),
        (css_href.as_str(), 200),
        ("/records/prov-530000/no-such-record", 404),
        ("/?trl_min=high", 400),
        ("/?colour=red", 400),
        ("/static/portal.0000.css", 404),
    ] {
        let page = get(&app, uri, None).await;
        assert_eq!(page.status, status, "{uri}: {}", page.body);
        let csp = page.header("content-security-policy");
        assert_eq!(csp, portal::CSP, "{uri}");
        assert!(csp.contains("default-src 'self'") && !csp.contains("unsafe"));
        assert_eq!(page.header("x-content-type-options"), "nosniff", "{uri}");
        assert_eq!(page.header("referrer-policy"), "same-origin", "{uri}");
        if page.header("content-type").starts_with("text/html") {
            // Nothing the policy would block, so nothing breaks under it: the one script is
            // htmx, from this origin, with nothing inline.
            for script in page.body.split("<script").skip(1) {
                assert!(
                    script.starts_with(&format!(" src=\"{}\" defer></script>", portal::htmx_src())),
                    "{uri}: <script{}",
                    &script[..script.len().min(80)]
                );
            }
            assert!(!page.body.contains("<style"), "{uri}");
            assert!(!page.body.contains(" style="), "{uri}");
            assert!(!page.body.contains("http://") && !page.body.contains("https://"));
            assert!(
                page.body.len() <= 100 * 1024,
                "{uri} weighs {} bytes",
                page.body.len()
            );
        }
    }
    let asset = get(&app, &css_href, None).await;
    assert!(asset.header("content-type").starts_with("text/css"));
    assert!(asset.header("cache-control").contains("max-age=31536000"));
    assert!(asset.header("cache-control").contains("immutable"));
    // Errors are pages too, in the reader's language, naming the bad parameter.
    let bad = get(&app, "/?trl_min=high&lang=en", None).await;
    assert!(bad.header("content-type").starts_with("text/html"));
    assert!(bad.body.contains("<html lang=\"en\">"));
    assert!(bad.body.contains("/query/trl_min"));
    let missing = get(&app, "/records/prov-530000/no-such-record", None).await;
    assert!(missing.body.contains("没有这条记录"));
    // The heaviest page a reader can ask for stays under the bar too.
    let hundred = get(&app, "/?limit=100", None).await;
    assert!(hundred.body.len() <= 100 * 1024, "{}", hundred.body.len());
}

#[actix_web::test]
async fn stats_page_draws_each_chart_with_its_table_and_csv() {
    let gw = catalogue(Backend::Sqlite);
    let app = portal_app!(&gw.db);
    let page = get(&app, "/stats", None).await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert_eq!(page.body.matches("<svg class=\"bars\"").count(), 4);
    assert_eq!(page.body.matches("<table>").count(), 4);
    let api: Value =
        serde_json::from_str(&get(&app, "/v1/stats?by=region", None).await.body).unwrap();
    assert_eq!(page.total(), api["total"].as_u64().unwrap());
    let code = api["counts"][0]["value"].as_str().unwrap();
    let name = rix_schema::codes::province_name(code).unwrap();
    assert!(
        page.body.contains(&format!(
            "<tr><th scope=\"row\">{name}</th><td>{}</td></tr>",
            api["counts"][0]["count"]
        )),
        "the region table"
    );
    let csvs: Vec<String> = anchors(&page.body)
        .into_iter()
        .filter(|a| a.href.starts_with("/stats.csv?"))
        .map(|a| a.href)
        .collect();
    assert_eq!(csvs.len(), 4, "{csvs:?}");
    for href in &csvs {
        let csv = get(&app, href, None).await;
        assert_eq!(csv.status, 200, "{href}");
        assert!(csv.body.starts_with("\u{feff}value,label,count\r\n"));
        let summed: u64 = csv
            .body
            .lines()
            .skip(1)
            .map(|l| l.rsplit(',').next().unwrap().parse::<u64>().unwrap())
            .sum();
        if href.contains("by=region") {
            assert_eq!(summed, page.total(), "every visible entry has one province");
            assert!(csv.body.contains(&format!("{code},{name},")));
        }
    }
}

#[actix_web::test]
async fn the_english_interface_keeps_its_language_in_every_link() {
    let gw = catalogue(Backend::Sqlite);
    let app = portal_app!(&gw.db);
    for uri in [
        "/?lang=en",
        "/records/prov-530000/a00001?lang=en",
        "/stats?lang=en",
    ] {
        let page = get(&app, uri, None).await;
        assert_eq!(page.status, 200, "{uri}");
        assert!(page.body.contains("<html lang=\"en\">"), "{uri}");
        for a in anchors(&page.body) {
            let internal_page = a.href.starts_with('/')
                && !a.href.starts_with("/v1/")
                && !a.href.starts_with("/stats.csv")
                && !a.href.starts_with("/openapi.json");
            if a.text == "中文" {
                assert!(!a.href.contains("lang=en"), "{uri}: {a:?}");
            } else if internal_page && !a.href.starts_with("/static/") {
                assert!(a.href.contains("lang=en"), "{uri}: {a:?}");
            }
        }
    }
    let home = get(&app, "/?lang=en", None).await;
    assert!(home.body.contains("Search terms"));
    assert!(home.body.contains("Province"));
    assert!(
        home.body.contains("name=\"lang\" value=\"en\""),
        "the form keeps it"
    );
}

#[actix_web::test]
async fn a_token_reads_the_pages_as_it_reads_the_api() {
    let gw = catalogue(Backend::Sqlite);
    let app = portal_app!(&gw.db);
    let anonymous = get(&app, "/", None).await;
    let internal = get(&app, "/", Some(TOKEN)).await;
    let api_internal: Value =
        serde_json::from_str(&get(&app, "/v1/search", Some(TOKEN)).await.body).unwrap();
    assert_eq!(internal.total(), api_internal["total"].as_u64().unwrap());
    assert!(internal.total() > anonymous.total());
    assert!(internal.header("vary").contains("Authorization"));
    assert!(internal.header("cache-control").contains("private"));
    // An internal record: a page for the token, absent for everyone else.
    let changes = get(&app, "/v1/changes?after=0&limit=10000", Some(TOKEN)).await;
    let internal_id = changes
        .body
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .find(|c| c["record"]["secrecy"]["level"] == "internal")
        .map(|c| c["id"].as_str().unwrap().to_owned())
        .expect("an internal record");
    let uri = format!("/records/prov-530000/{internal_id}");
    assert_eq!(get(&app, &uri, Some(TOKEN)).await.status, 200);
    assert_eq!(get(&app, &uri, None).await.status, 404);
    // An unknown token is refused, as the API refuses it, not read as public.
    let refused = get(&app, "/", Some("no-such-token-0123456789")).await;
    assert_eq!(refused.status, 401);
    assert!(refused.header("content-type").starts_with("text/html"));
}

/// The portal in Debian's Chromium, driven by Playwright (`browser.py`): a gateway seeded with
/// the generated catalogue serves it on a loopback port; screenshots of every page go to
/// `target/portal-screenshots/`. Needs what `ops/install-deps.sh` installs (chromium, a CJK
/// font, playwright in the venv of `RIX_PYTHON`).
#[actix_web::test]
async fn the_portal_works_in_a_real_browser() {
    let gw = catalogue(Backend::Sqlite);
    let state = web::Data::new(read_state(&gw.db));
    let server = actix_web::HttpServer::new(move || {
        App::new()
            .app_data(state.clone())
            .configure(api::configure)
            .configure(portal::configure)
    })
    .workers(1)
    .bind(("127.0.0.1", 0))
    .unwrap();
    let addr = server.addrs()[0];
    let running = server.run();
    let handle = running.handle();
    actix_web::rt::spawn(running);
    // target/debug/deps/portal-… → target/
    let target = std::env::current_exe()
        .unwrap()
        .ancestors()
        .nth(3)
        .unwrap()
        .to_path_buf();
    let shots = target.join("portal-screenshots");
    let python = std::env::var("RIX_PYTHON").unwrap_or_else(|_| "python3".into());
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser.py");
    let output = tokio::process::Command::new(&python)
        .arg(&script)
        .arg(format!("http://{addr}"))
        .arg(&shots)
        .output()
        .await
        .unwrap_or_else(|e| {
            panic!("cannot run {python} (RIX_PYTHON from ops/start-services.sh): {e}")
        });
    handle.stop(true).await;
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "the browser test failed (chromium, fonts-noto-cjk and playwright come from \
         ops/install-deps.sh):\n{stdout}\n{stderr}"
    );
    assert!(stdout.contains(" passed, 0 failed"), "{stdout}");
    assert!(shots.join("search.png").exists());
}

/// A GET with extra request headers (htmx's).
async fn get_with<S, B>(app: &S, uri: &str, token: Option<&str>, headers: &[(&str, &str)]) -> Got
where
    S: Service<actix_http::Request, Response = ServiceResponse<B>, Error = actix_web::Error>,
    B: MessageBody,
{
    let mut req = test::TestRequest::get().uri(uri);
    if let Some(t) = token {
        req = req.insert_header(("Authorization", format!("Bearer {t}")));
    }
    for (name, value) in headers {
        req = req.insert_header((*name, *value));
    }
    let resp = test::call_service(app, req.to_request()).await;
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let body = test::read_body(resp).await;
    Got {
        status,
        headers,
        body: String::from_utf8(body.to_vec()).expect("UTF-8"),
    }
}

/// The links of a page's results, in order.
fn hits(g: &Got) -> Vec<String> {
    anchors(&g.body)
        .into_iter()
        .filter(|a| a.href.starts_with("/entries/"))
        .map(|a| a.href)
        .collect()
}

/// The href of the page's link marked `rel`.
fn rel(g: &Got, rel: &str) -> Option<String> {
    anchors(&g.body)
        .into_iter()
        .find(|a| a.tag.contains(&format!("rel=\"{rel}\"")))
        .map(|a| a.href)
}

#[actix_web::test]
async fn previous_and_next_pages_walk_the_cursor_both_ways_from_the_url_alone() {
    let gw = catalogue(Backend::Sqlite);
    let app = portal_app!(&gw.db);
    let first = get(&app, "/?limit=4&sort=date", None).await;
    assert_eq!(first.status, 200);
    assert!(rel(&first, "prev").is_none(), "no page before the first");
    // Forward 22 pages, keeping every page as it was seen.
    let mut seen = vec![first];
    for _ in 0..22 {
        let next = rel(seen.last().unwrap(), "next").expect("a next page");
        let page = get(&app, &next, None).await;
        assert_eq!(page.status, 200, "{next}: {}", page.body);
        seen.push(page);
    }
    let pages: Vec<Vec<String>> = seen.iter().map(hits).collect();
    for (i, p) in pages.iter().enumerate() {
        assert_eq!(p.len(), 4, "page {}", i + 1);
        assert!(
            seen[i].body.contains(&format!("第 {} 页", i + 1)),
            "page {} says its number",
            i + 1
        );
    }
    let mut all: Vec<&String> = pages.iter().flatten().collect();
    all.sort();
    all.dedup();
    assert_eq!(all.len(), 4 * 23, "no result twice");
    // Back from page 23: each "previous" is exactly the page seen there, from its URL alone
    // (a fresh request, as a bookmark would make), down to where the trail is cut.
    let mut at = seen.pop().unwrap();
    let mut number = 23;
    while let Some(prev) = rel(&at, "prev") {
        assert!(
            prev.len() < 1600,
            "the URL stays short: {} bytes",
            prev.len()
        );
        at = get(&app, &prev, None).await;
        number -= 1;
        assert_eq!(hits(&at), pages[number - 1], "page {number} by {prev}");
        // And forward again from there: the same next page as before.
        assert_eq!(
            hits(&get(&app, &rel(&at, "next").unwrap(), None).await),
            pages[number],
            "page {} again",
            number + 1
        );
    }
    // The URL remembers 20 pages back (portal::pages::TRAIL_MAX); from there "first page".
    assert_eq!(number, 23 - portal::pages::TRAIL_MAX);
    let first_link = anchors(&at.body)
        .into_iter()
        .find(|a| a.tag.contains("class=\"first\""))
        .expect("a first-page link");
    assert_eq!(hits(&get(&app, &first_link.href, None).await), pages[0]);
    // From page 2 "previous" is the first page itself, without a cursor.
    let to_first = rel(&seen[1], "prev").unwrap();
    assert!(!to_first.contains("cursor"), "{to_first}");
    assert_eq!(hits(&get(&app, &to_first, None).await), pages[0]);
    // A trail this portal did not write is refused, named.
    for bad in [
        "/?back=z.z.&cursor=00",
        "/?back=00",
        "/?page=0",
        "/?page=many",
    ] {
        let page = get(&app, bad, None).await;
        assert_eq!(page.status, 400, "{bad}");
        assert!(
            page.body.contains("/query/back") || page.body.contains("/query/page"),
            "{bad}: {}",
            page.body
        );
    }
    // A filter, chip or sort starts again from the first page: no link but paging carries
    // the trail.
    for a in anchors(&seen[5].body) {
        // (The other language's link is this page in that language: it keeps its place.)
        if a.href.starts_with("/?") && !a.tag.contains("rel=") && !a.tag.contains("hreflang") {
            assert!(
                !a.href.contains("cursor=") && !a.href.contains("back="),
                "{a:?}"
            );
        }
    }
}

/// `html` with each sealed search cursor (sealed under a fresh nonce on every read) replaced
/// by `…`.
fn unsealed(html: &str) -> String {
    let mut out = String::with_capacity(html.len());
    let mut rest = html;
    while let Some(at) = rest.find("cursor=") {
        out.push_str(&rest[..at + "cursor=".len()]);
        rest = &rest[at + "cursor=".len()..];
        let end = rest
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '-' || c == '_'))
            .unwrap_or(rest.len());
        out.push('…');
        rest = &rest[end..];
    }
    out.push_str(rest);
    out
}

#[actix_web::test]
async fn htmx_gets_the_results_region_alone_from_the_same_read() {
    let gw = catalogue(Backend::Sqlite);
    let app = portal_app!(&gw.db);
    let uri = "/?q=%E5%82%A8%E8%83%BD&limit=5";
    let page = get(&app, uri, None).await;
    let region = get_with(&app, uri, None, &[("HX-Request", "true")]).await;
    assert_eq!(region.status, 200);
    // The page's title (for the tab), then the region.
    let (title, body) = region.body.split_once('\n').unwrap();
    let body = body.trim_start();
    assert_eq!(title, "<title>储能 · 国家科技成果信息查询</title>");
    assert!(body.starts_with("<div id=\"region\""), "{body}");
    assert!(!region.body.contains("<html") && !region.body.contains("<footer"));
    // The region is the page's own region, byte for byte (but the sealed cursors, fresh on
    // every read): one template, one read.
    assert!(
        unsealed(&page.body).contains(&unsealed(body.trim())),
        "{}",
        region.body
    );
    // A query in the title is text, as everywhere.
    let xss = get_with(&app, "/?q=%3Cscript%3E", None, &[("HX-Request", "true")]).await;
    assert!(
        xss.body.starts_with("<title>&#60;script&#62; · "),
        "{}",
        xss.body
    );
    assert_eq!(region.total(), page.total());
    assert!(region.header("vary").contains("HX-Request"));
    assert_eq!(region.header("content-security-policy"), portal::CSP);
    // The same access filter: a token's region has the token's total.
    let internal = get(&app, "/", Some(TOKEN)).await;
    let internal_region = get_with(&app, "/", Some(TOKEN), &[("HX-Request", "true")]).await;
    assert_eq!(internal_region.total(), internal.total());
    assert!(internal_region.total() > get(&app, "/", None).await.total());
    // A history restore gets the whole page back.
    let restore = get_with(
        &app,
        uri,
        None,
        &[
            ("HX-Request", "true"),
            ("HX-History-Restore-Request", "true"),
        ],
    )
    .await;
    assert!(restore.body.starts_with("<!DOCTYPE html>"));
    // Every enhanced link asks htmx for exactly what the plain link loads, and the region
    // pushes that URL, so the address bar holds the whole query either way.
    assert!(region.body.contains("hx-push-url=\"true\""));
    let mut enhanced = 0;
    for a in anchors(&region.body) {
        if let Some(hx) = a.tag.split("hx-get=\"").nth(1) {
            assert_eq!(unescape(hx.split('"').next().unwrap()), a.href, "{a:?}");
            enhanced += 1;
        }
    }
    assert!(enhanced > 10, "facets, chips, sort and paging: {enhanced}");
    assert!(region.body.contains(
        "<form class=\"query\" method=\"get\" action=\"/\" role=\"search\" hx-get=\"/\">"
    ));
    // htmx itself: vendored, same origin, under a versioned name, cached for a year, with its
    // inline indicator styles (which the policy would block) switched off.
    let src = page
        .body
        .split("<script src=\"")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .unwrap()
        .to_owned();
    assert!(
        src.starts_with("/static/htmx-2.0.11.") && src.ends_with(".js"),
        "{src}"
    );
    assert!(page.body.contains("\"includeIndicatorStyles\":false"));
    assert!(page.body.contains("\"allowEval\":false"));
    let js = get(&app, &src, None).await;
    assert_eq!(js.status, 200);
    assert!(js.header("content-type").starts_with("text/javascript"));
    assert_eq!(
        js.header("cache-control"),
        "public, max-age=31536000, immutable"
    );
    assert_eq!(
        js.body,
        include_str!("../static/htmx-2.0.11.min.js"),
        "the vendored file as committed"
    );
}

#[actix_web::test]
async fn the_footer_and_about_say_what_the_readers_view_is() {
    let gw = catalogue(Backend::Sqlite);
    let app = portal_app!(&gw.db);
    for uri in ["/", "/stats", "/about", "/records/prov-530000/a00001"] {
        let anonymous = get(&app, uri, None).await;
        assert!(
            anonymous.body.contains(
                "当前视图展示：公开记录（未使用访问令牌）；不含：内部记录、商业信息、个人信息；国家秘密从不展示。"
            ),
            "{uri}: {}",
            anonymous.body
        );
        let internal = get(&app, uri, Some(TOKEN)).await;
        assert!(
            internal.body.contains(
                "当前视图展示：公开记录、内部记录（按访问令牌的权限）；不含：商业信息、个人信息；国家秘密从不展示。"
            ),
            "{uri}: {}",
            internal.body
        );
        // The old footer told a token holder they saw public records only.
        assert!(!internal.body.contains("仅展示公开信息"), "{uri}");
    }
    let about = get(&app, "/about?lang=en", Some(TOKEN)).await;
    assert!(about.body.contains(
        "This view shows: public records, internal records (as your access token allows); not: commercial information, personal data; state secrets are never shown."
    ));
}

#[actix_web::test]
async fn the_openapi_document_lists_the_portal_pages_as_html() {
    let gw = catalogue(Backend::Sqlite);
    let app = portal_app!(&gw.db);
    let doc: Value = serde_json::from_str(&get(&app, "/openapi.json", None).await.body).unwrap();
    for (path, content_type) in [
        ("/", "text/html"),
        ("/records/{node_id}/{id}", "text/html"),
        ("/entries/{unified_id}", "text/html"),
        ("/stats", "text/html"),
        ("/stats.csv", "text/csv"),
        ("/about", "text/html"),
    ] {
        let ok = &doc["paths"][path]["get"]["responses"]["200"];
        assert!(ok["content"].get(content_type).is_some(), "{path}: {ok}");
    }
    let params: Vec<&str> = doc["paths"]["/"]["get"]["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    for name in ["q", "region", "cursor", "back", "page", "lang"] {
        assert!(params.contains(&name), "{name} in {params:?}");
    }
}
