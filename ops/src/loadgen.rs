//! `rix loadgen`: registers generated records at a running node through its public HTTP API,
//! as institutions and reviewers do — batch submits with a submitter token, bulk approvals with
//! a reviewer token — and reports the rates. `rix demo` seeds its nodes with the same code.
//!
//! Records come from the seeded generator ([`rix_schema::sample`]): record `i` of a profile and
//! seed is always the same document. Each submit carries an `Idempotency-Key` named after what
//! it holds (kind, profile, seed, index range), so running the same command again registers
//! nothing twice: the node answers the retry with the first reply, and only records still
//! waiting for review are approved. For more records, move `--start` or change `--seed`.
//!
//! What it does not do: it never writes to a node's database, and it does not wait for the
//! gateway — publishing is the node's business once a record is approved.

use std::collections::{HashMap, HashSet};
use std::time::Instant;

use anyhow::{Context, Result, bail};
use rix_schema::RecordKind;
use rix_schema::sample::{NodeProfile, SampleConfig, SampleGenerator};
use serde_json::{Value, json};

/// The node's collection path for a kind (`/v1/{collection}`).
pub fn collection(kind: RecordKind) -> &'static str {
    match kind {
        RecordKind::Achievement => "achievements",
        RecordKind::FundedProject => "projects",
    }
}

/// Which records `rix loadgen` generates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LoadKind {
    /// Results (科技成果).
    Achievement,
    /// Funded projects (科技计划项目).
    Project,
}

impl From<LoadKind> for RecordKind {
    fn from(k: LoadKind) -> RecordKind {
        match k {
            LoadKind::Achievement => RecordKind::Achievement,
            LoadKind::Project => RecordKind::FundedProject,
        }
    }
}

/// The two-digit prefixes of the 31 mainland province-level divisions the generator knows.
const PROVINCES: [&str; 31] = [
    "11", "12", "13", "14", "15", "21", "22", "23", "31", "32", "33", "34", "35", "36", "37", "41",
    "42", "43", "44", "45", "46", "50", "51", "52", "53", "54", "61", "62", "63", "64", "65",
];

/// A generator profile from the command line: a province's region code (`530000`) or `most`
/// (the Ministry of Science and Technology, department code 348).
pub fn parse_profile(text: &str) -> Result<NodeProfile, String> {
    if text == "most" {
        return Ok(NodeProfile::ministry("most", "科学技术部", "348"));
    }
    let province =
        text.len() == 6 && text.ends_with("0000") && PROVINCES.iter().any(|p| text.starts_with(p));
    if province {
        Ok(NodeProfile::province(text))
    } else {
        Err(format!(
            "{text:?} is neither `most` nor the PP0000 code of a mainland province (530000 Yunnan, 210000 Liaoning…)"
        ))
    }
}

/// A generated record as an institution submits it: the node assigns the registration number
/// and date on approval and refuses a submission that brings its own.
pub fn submission(mut record: Value) -> Value {
    if let Some(obj) = record.as_object_mut() {
        obj.remove("registration_no");
        obj.remove("registration_date");
    }
    record
}

/// The USCCs of a record's institutions (an achievement's `institutions`, a project's `lead`
/// and `participants`) — the node lets a submitter register only records that name its own.
fn institutions_of(kind: RecordKind, doc: &Value) -> Vec<&Value> {
    match kind {
        RecordKind::Achievement => doc["institutions"]
            .as_array()
            .map(|a| a.iter().collect())
            .unwrap_or_default(),
        RecordKind::FundedProject => {
            let mut all: Vec<&Value> = doc.get("lead").into_iter().collect();
            if let Some(parts) = doc["participants"].as_array() {
                all.extend(parts);
            }
            all
        }
    }
}

/// Makes `institution` one of the record's institutions (a co-completing institution of a
/// result, a participant of a project) unless it already is: a submitter token acts for one
/// institution, and generated records name many.
pub fn adopt(kind: RecordKind, doc: &mut Value, institution: &Value) {
    let uscc = &institution["uscc"];
    if institutions_of(kind, doc)
        .iter()
        .any(|i| &i["uscc"] == uscc)
    {
        return;
    }
    let list = match kind {
        RecordKind::Achievement => "institutions",
        RecordKind::FundedProject => "participants",
    };
    match doc.get_mut(list).and_then(Value::as_array_mut) {
        Some(list) => list.push(institution.clone()),
        None => doc[list] = json!([institution]),
    }
}

/// The institution with `uscc` as the generator writes it (name, USCC, region, unit type),
/// looked up among its first records; `None` if the profile never generates it.
pub fn sample_institution(generator: &SampleGenerator, uscc: &str) -> Option<Value> {
    (0..2000u64).find_map(|i| {
        let achievement = serde_json::to_value(generator.achievement(i)).ok()?;
        let project = serde_json::to_value(generator.project(i)).ok()?;
        institutions_of(RecordKind::Achievement, &achievement)
            .into_iter()
            .chain(institutions_of(RecordKind::FundedProject, &project))
            .find(|inst| inst["uscc"] == uscc)
            .cloned()
    })
}

/// Where and as whom records are registered.
#[derive(Debug, Clone)]
pub struct Target {
    /// The node's base URL.
    pub url: String,
    /// A submitter token (or an admin token, which registers for any institution).
    pub submitter_token: String,
    /// A reviewer (or admin) token.
    pub reviewer_token: String,
}

/// What [`register`] did.
#[derive(Debug, Clone, Default)]
pub struct Registered {
    /// The node's id of every document, in the order given (the same ids on a retry).
    pub ids: Vec<String>,
    /// Records this call approved (those a previous run approved are not counted).
    pub approved_now: usize,
    /// Time spent submitting, seconds.
    pub submit_secs: f64,
    /// Time spent approving, seconds.
    pub approve_secs: f64,
}

/// A reply that is not what the call needs: what was asked, the status and the start of the
/// body.
#[derive(Debug, thiserror::Error)]
#[error("{what} answered {status}: {body}")]
pub struct Refused {
    what: String,
    /// The reply's status.
    pub status: reqwest::StatusCode,
    body: String,
}

impl Refused {
    /// Whether asking again may succeed: the node timed out reading the request (408, a
    /// client slower than its request timeout on a loaded machine) or was unavailable (503).
    pub fn is_transient(&self) -> bool {
        matches!(self.status.as_u16(), 408 | 503)
    }
}

/// A reply that is not what the call needs, with the start of its body.
async fn refused(what: &str, response: reqwest::Response) -> anyhow::Error {
    let status = response.status();
    let body = response.text().await.unwrap_or_default();
    anyhow::Error::new(Refused {
        what: what.to_owned(),
        status,
        body: body.chars().take(800).collect(),
    })
}

/// Submits `docs` in batches of `batch` (each with the Idempotency-Key `{key_prefix}-{n}`) and
/// approves them in bulk. Documents must be submissions ([`submission`]) that name the
/// submitter's institution ([`adopt`]) unless the token is an admin's.
pub async fn register(
    http: &reqwest::Client,
    target: &Target,
    kind: RecordKind,
    docs: &[Value],
    batch: usize,
    key_prefix: &str,
) -> Result<Registered> {
    let batch = batch.clamp(1, 1000);
    let url = target.url.trim_end_matches('/');
    let coll = collection(kind);
    let mut done = Registered::default();

    let started = Instant::now();
    for (n, chunk) in docs.chunks(batch).enumerate() {
        let response = http
            .post(format!("{url}/v1/{coll}/batch"))
            .bearer_auth(&target.submitter_token)
            .header("Idempotency-Key", format!("{key_prefix}-{n}"))
            .json(chunk)
            .send()
            .await
            .with_context(|| format!("submitting to {url} (is the node running?)"))?;
        if !response.status().is_success() {
            let error = refused(
                &format!("submitting {} {coll} to {url}", chunk.len()),
                response,
            )
            .await;
            // The usual first stumble: a submitter token and records of other institutions.
            if error
                .to_string()
                .contains("must be one of the record's institutions")
            {
                return Err(error.context(
                    "a submitter token registers only its own institution's records: name it in \
                     every record (rix loadgen --institution USCC), or submit with an admin token",
                ));
            }
            return Err(error);
        }
        let reply: Value = response.json().await.context("reading the submit reply")?;
        let ids: Vec<String> = reply["items"]
            .as_array()
            .map(|items| {
                items
                    .iter()
                    .filter_map(|i| i["id"].as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default();
        if ids.len() != chunk.len() {
            bail!(
                "submitting {} {coll} to {url} returned {} ids: {reply}",
                chunk.len(),
                ids.len()
            );
        }
        done.ids.extend(ids);
    }
    done.submit_secs = started.elapsed().as_secs_f64();

    let started = Instant::now();
    // Filled on the first refusal: which of the node's records still wait for review (a retry
    // of an earlier run finds some or all of its records approved already).
    let mut waiting: Option<HashSet<String>> = None;
    for chunk in done.ids.chunks(batch) {
        let ids: Vec<&String> = match &waiting {
            Some(w) => chunk.iter().filter(|id| w.contains(*id)).collect(),
            None => chunk.iter().collect(),
        };
        if ids.is_empty() {
            continue;
        }
        let response = approve(http, target, kind, &ids).await?;
        if response.status() == reqwest::StatusCode::CONFLICT && waiting.is_none() {
            let w = submitted_ids(http, target, kind).await?;
            let ids: Vec<&String> = chunk.iter().filter(|id| w.contains(*id)).collect();
            waiting = Some(w);
            if !ids.is_empty() {
                let response = approve(http, target, kind, &ids).await?;
                if !response.status().is_success() {
                    return Err(refused(
                        &format!("approving {} {coll} at {url}", ids.len()),
                        response,
                    )
                    .await);
                }
                done.approved_now += ids.len();
            }
            continue;
        }
        if !response.status().is_success() {
            return Err(refused(
                &format!("approving {} {coll} at {url}", ids.len()),
                response,
            )
            .await);
        }
        done.approved_now += ids.len();
    }
    done.approve_secs = started.elapsed().as_secs_f64();
    Ok(done)
}

async fn approve(
    http: &reqwest::Client,
    target: &Target,
    kind: RecordKind,
    ids: &[&String],
) -> Result<reqwest::Response> {
    let url = target.url.trim_end_matches('/');
    http.post(format!("{url}/v1/{}/approve", collection(kind)))
        .bearer_auth(&target.reviewer_token)
        .json(&json!({ "ids": ids }))
        .send()
        .await
        .with_context(|| format!("approving at {url} (is the node running?)"))
}

/// Every record of `kind` at the node that waits for review.
async fn submitted_ids(
    http: &reqwest::Client,
    target: &Target,
    kind: RecordKind,
) -> Result<HashSet<String>> {
    let mut ids = HashSet::new();
    let mut after = String::from("0");
    loop {
        let page = list_page(http, target, kind, Some("submitted"), &after).await?;
        ids.extend(
            page["items"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|i| i["id"].as_str().map(str::to_owned)),
        );
        match page["next_cursor"].as_str() {
            Some(next) => after = next.to_owned(),
            None => return Ok(ids),
        }
    }
}

async fn list_page(
    http: &reqwest::Client,
    target: &Target,
    kind: RecordKind,
    state: Option<&str>,
    after: &str,
) -> Result<Value> {
    let base = target.url.trim_end_matches('/');
    let mut url = reqwest::Url::parse(&format!("{base}/v1/{}", collection(kind)))
        .with_context(|| format!("node URL {base}"))?;
    url.query_pairs_mut()
        .append_pair("limit", "1000")
        .append_pair("after", after);
    if let Some(s) = state {
        url.query_pairs_mut().append_pair("state", s);
    }
    let response = http
        .get(url)
        .bearer_auth(&target.reviewer_token)
        .send()
        .await
        .with_context(|| format!("listing records at {base}"))?;
    if !response.status().is_success() {
        return Err(refused(&format!("listing records at {base}"), response).await);
    }
    response.json().await.context("reading a record listing")
}

/// How many records of `kind` the node holds, by state (`submitted`, `approved`…), as its
/// reviewer sees them.
pub async fn count_records(
    http: &reqwest::Client,
    target: &Target,
    kind: RecordKind,
) -> Result<HashMap<String, usize>> {
    let mut counts = HashMap::new();
    let mut after = String::from("0");
    loop {
        let page = list_page(http, target, kind, None, &after).await?;
        for item in page["items"].as_array().into_iter().flatten() {
            let state = item["state"].as_str().unwrap_or("unknown").to_owned();
            *counts.entry(state).or_insert(0) += 1;
        }
        match page["next_cursor"].as_str() {
            Some(next) => after = next.to_owned(),
            None => return Ok(counts),
        }
    }
}

/// What `rix loadgen` was asked to do.
#[derive(Debug, Clone)]
pub struct Options {
    /// Where.
    pub target: Target,
    /// How many records.
    pub count: u64,
    /// The first generator index.
    pub start: u64,
    /// Which kind.
    pub kind: RecordKind,
    /// The generator's profile.
    pub profile: NodeProfile,
    /// The generator's seed.
    pub seed: u64,
    /// Records per request.
    pub batch: usize,
    /// The submitter token's institution (USCC), named in every record.
    pub institution: Option<String>,
}

/// Runs `rix loadgen` and prints what it did.
pub async fn run(options: Options) -> Result<()> {
    let generator = SampleGenerator::new(SampleConfig {
        seed: options.seed,
        node: options.profile.clone(),
        ..SampleConfig::default()
    });
    let institution = match &options.institution {
        None => None,
        Some(uscc) => Some(sample_institution(&generator, uscc).with_context(|| {
            let example = serde_json::to_value(generator.achievement(0))
                .ok()
                .and_then(|a| a["institutions"][0]["uscc"].as_str().map(str::to_owned))
                .unwrap_or_default();
            format!(
                "{uscc} is not an institution of the generated {} records (one that is: {example}); \
                 bind the submitter token to one of them, or pass an admin token as \
                 --submitter-token and leave out --institution",
                options.profile.node_id()
            )
        })?),
    };
    let range = options.start..options.start + options.count;
    let docs: Vec<Value> = range
        .clone()
        .map(|i| {
            let record = match options.kind {
                RecordKind::Achievement => serde_json::to_value(generator.achievement(i)),
                RecordKind::FundedProject => serde_json::to_value(generator.project(i)),
            }
            .expect("generated records serialise");
            let mut doc = submission(record);
            if let Some(inst) = &institution {
                adopt(options.kind, &mut doc, inst);
            }
            doc
        })
        .collect();
    let http = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(120))
        .build()
        .context("building the HTTP client")?;
    let key_prefix = format!(
        "loadgen-{}-{}-s{}-{}-{}-b{}",
        options.kind,
        options.profile.node_id(),
        options.seed,
        range.start,
        range.end,
        options.batch
    );
    let started = Instant::now();
    let done = register(
        &http,
        &options.target,
        options.kind,
        &docs,
        options.batch,
        &key_prefix,
    )
    .await?;
    let secs = started.elapsed().as_secs_f64();
    let n = done.ids.len() as f64;
    println!(
        "registered {} {} records (generator {} #{}..#{}, seed {}) at {}",
        done.ids.len(),
        options.kind,
        options.profile.node_id(),
        range.start,
        range.end,
        options.seed,
        options.target.url
    );
    println!(
        "submit {:.0} records/s, approve {:.0} records/s, overall {:.0} records/s in {secs:.2} s; \
         {} approved now{}",
        n / done.submit_secs.max(1e-9),
        done.approved_now as f64 / done.approve_secs.max(1e-9),
        n / secs.max(1e-9),
        done.approved_now,
        if done.approved_now < done.ids.len() {
            " (the rest were registered by an earlier run with the same arguments)"
        } else {
            ""
        }
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn adopting_names_the_institution_once() {
        let generator = SampleGenerator::new(SampleConfig::default());
        let mut doc = submission(serde_json::to_value(generator.achievement(0)).unwrap());
        assert!(doc.get("registration_no").is_none());
        let other =
            serde_json::to_value(generator.achievement(1)).unwrap()["institutions"][0].clone();
        let before = doc["institutions"].as_array().unwrap().len();
        adopt(RecordKind::Achievement, &mut doc, &other);
        adopt(RecordKind::Achievement, &mut doc, &other);
        let after = doc["institutions"].as_array().unwrap().len();
        let named = institutions_of(RecordKind::Achievement, &doc)
            .iter()
            .any(|i| i["uscc"] == other["uscc"]);
        assert!(named);
        assert!(after == before || after == before + 1);
        rix_schema::validate_record(RecordKind::Achievement, &doc).unwrap();

        let mut project = serde_json::to_value(generator.project(0)).unwrap();
        adopt(RecordKind::FundedProject, &mut project, &other);
        assert!(
            institutions_of(RecordKind::FundedProject, &project)
                .iter()
                .any(|i| i["uscc"] == other["uscc"])
        );
        rix_schema::validate_record(RecordKind::FundedProject, &project).unwrap();
    }

    #[test]
    fn profiles_are_provinces_or_the_ministry() {
        assert_eq!(parse_profile("530000").unwrap().node_id(), "prov-530000");
        assert_eq!(parse_profile("most").unwrap().node_id(), "most");
        assert!(parse_profile("710000").is_err());
        assert!(parse_profile("530100").is_err());
    }
}
