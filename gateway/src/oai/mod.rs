//! The OAI-PMH 2.0 provider at `/oai` (DESIGN.md §6, §9): the catalogue as research
//! aggregators harvest it (OpenAIRE, BASE, CORE).
//!
//! A request goes through three stages, one module each: this module reads the arguments
//! (GET query or POST form, strictly, with the protocol's own error codes), `verbs` answers
//! the verb from the catalogue, and `xml` writes the response. `sets` maps the catalogue's
//! facets to setSpecs and `token` seals resumption tokens.
//!
//! What it guarantees:
//! - **One item per unified entry**, `oai:{repositoryIdentifier}:{unified_id}` (the name
//!   `/v1/entries/{unified_id}` and the portal's `/entries/{unified_id}` use). Its datestamp is
//!   the time of its newest change that the reader may hear of, at seconds granularity in UTC.
//! - **The one access filter.** Every record is the reader's view ([`crate::access::AccessFilter::view`]);
//!   anonymous readers get the public view; a bearer token's view is honoured as the API
//!   honours it, and audited.
//! - **`deletedRecord=persistent`, without leaking.** An entry the reader could once see and
//!   no longer can (withdrawn, or no longer public) is a header with `status="deleted"`; an
//!   entry the reader never could see appears nowhere — not as a deleted header, not in a
//!   count, not in a datestamp — because the provider hears only of changes to sources the
//!   reader could see before or after them (the rule `/v1/changes` follows), and of a change
//!   that moved a source between entries, only on the side where the reader could see it: the
//!   entry it left if they could see it before, the one it joined if after (a record made
//!   public that leaves its internal entry for a public one does not name the internal entry).
//! - **Stateless, sealed resumption tokens** (`token`), pages of `page_size` items whose cost
//!   does not grow with the position: each page continues from the change id after the last
//!   item (a search-after on the change stream) and lists an entry at its newest change only.
//!
//! What it does not do: sets of deleted entries. The view of a deleted entry is gone, so its
//! header carries only its kind's set; a harvest of a `region`, `field` or `program` set lists
//! every deleted entry (of any kind), so that a harvester of that set still hears of its
//! deletions, and gives no `completeListSize` (counting would mean reading every view).
//!
//! What it may not touch: writes (it writes nothing but the read audit) and fields (it shows
//! only what [`crate::access::AccessFilter::view`] returned).

mod sets;
mod token;
mod verbs;
mod xml;

use std::collections::BTreeMap;

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use serde::Deserialize;

use crate::api::{ApiError, ReadState};

pub use sets::{FIELD_SLUGS, SetSpec};
pub use xml::{RIX_NS, RIX_XSD, RIX_XSD_PATH};

/// The provider's settings (`[oai]` in the gateway's configuration).
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OaiConfig {
    /// `repositoryName` in Identify. Env: `RIX_OAI_REPOSITORY_NAME`.
    pub repository_name: String,
    /// The domain name in every item's identifier (`oai:{this}:{unified_id}`). Fixed for the
    /// life of the catalogue: harvesters key their copies by it. Env:
    /// `RIX_OAI_REPOSITORY_IDENTIFIER`.
    pub repository_identifier: String,
    /// `adminEmail` in Identify. Env: `RIX_OAI_ADMIN_EMAIL`.
    pub admin_email: String,
    /// The gateway's public address (`https://rix.example.cn`), from which `baseURL` and the
    /// records' URLs are made; without it they are made from the request's `Host` (behind a
    /// load balancer, set it). Env: `RIX_OAI_BASE_URL`.
    pub base_url: Option<String>,
    /// Items per page of ListIdentifiers and ListRecords. Env: `RIX_OAI_PAGE_SIZE`.
    pub page_size: u32,
}

impl Default for OaiConfig {
    fn default() -> Self {
        OaiConfig {
            repository_name: "国家科技成果信息系统 National S&T Results Catalogue (rix)".into(),
            repository_identifier: "rix.example.invalid".into(),
            admin_email: "oai-admin@example.invalid".into(),
            base_url: None,
            page_size: 100,
        }
    }
}

/// The protocol's six requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verb {
    /// Identify.
    Identify,
    /// ListMetadataFormats.
    ListMetadataFormats,
    /// ListSets.
    ListSets,
    /// ListIdentifiers.
    ListIdentifiers,
    /// ListRecords.
    ListRecords,
    /// GetRecord.
    GetRecord,
}

impl Verb {
    const ALL: [Verb; 6] = [
        Verb::Identify,
        Verb::ListMetadataFormats,
        Verb::ListSets,
        Verb::ListIdentifiers,
        Verb::ListRecords,
        Verb::GetRecord,
    ];

    /// Its name in a request.
    pub fn as_str(self) -> &'static str {
        match self {
            Verb::Identify => "Identify",
            Verb::ListMetadataFormats => "ListMetadataFormats",
            Verb::ListSets => "ListSets",
            Verb::ListIdentifiers => "ListIdentifiers",
            Verb::ListRecords => "ListRecords",
            Verb::GetRecord => "GetRecord",
        }
    }

    /// The arguments it takes: (required, optional, exclusive).
    fn arguments(
        self,
    ) -> (
        &'static [&'static str],
        &'static [&'static str],
        Option<&'static str>,
    ) {
        match self {
            Verb::Identify => (&[], &[], None),
            Verb::ListMetadataFormats => (&[], &["identifier"], None),
            Verb::ListSets => (&[], &[], Some("resumptionToken")),
            Verb::ListIdentifiers | Verb::ListRecords => (
                &["metadataPrefix"],
                &["from", "until", "set"],
                Some("resumptionToken"),
            ),
            Verb::GetRecord => (&["identifier", "metadataPrefix"], &[], None),
        }
    }
}

/// The protocol's error conditions (OAI-PMH 2.0 §3.6): each answered with HTTP 200 and an
/// `<error code="…">`, the message saying what to do next.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OaiError {
    /// No verb, an unknown one, or the verb repeated.
    #[error("{0}")]
    BadVerb(String),
    /// An argument unknown to the verb, missing, repeated or malformed.
    #[error("{0}")]
    BadArgument(String),
    /// A resumptionToken this repository did not give out (or altered, or for another verb).
    #[error("{0}")]
    BadResumptionToken(String),
    /// A metadataPrefix this repository does not disseminate.
    #[error("{0}")]
    CannotDisseminateFormat(String),
    /// An identifier of no item the reader may know of.
    #[error("{0}")]
    IdDoesNotExist(String),
    /// The list asked for is empty.
    #[error("{0}")]
    NoRecordsMatch(String),
    /// The item has no metadata formats (never here: every item has both).
    #[error("{0}")]
    NoMetadataFormats(String),
    /// The repository has no sets (never here: it has sets).
    #[error("{0}")]
    NoSetHierarchy(String),
}

impl OaiError {
    /// The `code` attribute.
    pub fn code(&self) -> &'static str {
        match self {
            OaiError::BadVerb(_) => "badVerb",
            OaiError::BadArgument(_) => "badArgument",
            OaiError::BadResumptionToken(_) => "badResumptionToken",
            OaiError::CannotDisseminateFormat(_) => "cannotDisseminateFormat",
            OaiError::IdDoesNotExist(_) => "idDoesNotExist",
            OaiError::NoRecordsMatch(_) => "noRecordsMatch",
            OaiError::NoMetadataFormats(_) => "noMetadataFormats",
            OaiError::NoSetHierarchy(_) => "noSetHierarchy",
        }
    }
}

/// A request as read: its verb and its arguments (each given once).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OaiRequest {
    /// The verb.
    pub verb: Verb,
    /// The arguments other than the verb.
    pub args: BTreeMap<String, String>,
}

impl OaiRequest {
    /// Reads `raw`, a query string or an `application/x-www-form-urlencoded` body.
    pub fn parse(raw: &str) -> Result<OaiRequest, OaiError> {
        let mut verb: Option<String> = None;
        let mut args = BTreeMap::new();
        for piece in raw.split('&').filter(|p| !p.is_empty()) {
            let (raw_name, raw_value) = piece.split_once('=').unwrap_or((piece, ""));
            let text = |raw: &str| {
                crate::api::percent_decode(raw)
                    .ok()
                    .and_then(|b| String::from_utf8(b).ok())
                    .filter(|t| !t.chars().any(char::is_control))
            };
            let name = text(raw_name).ok_or_else(|| {
                OaiError::BadArgument(
                    "an argument name is not percent-encoded UTF-8 text; encode names and values as UTF-8"
                        .into(),
                )
            })?;
            let value = text(raw_value).ok_or_else(|| {
                OaiError::BadArgument(format!(
                    "the value of {name} is not percent-encoded UTF-8 text without control characters"
                ))
            })?;
            if name == "verb" {
                if verb.replace(value).is_some() {
                    return Err(OaiError::BadVerb(
                        "the verb is given more than once; give it once".into(),
                    ));
                }
            } else if args.insert(name.clone(), value).is_some() {
                return Err(OaiError::BadArgument(format!(
                    "{name} is given more than once; give each argument once"
                )));
            }
        }
        let verb = match verb {
            None => {
                return Err(OaiError::BadVerb(
                    "no verb; ask verb=Identify, ListMetadataFormats, ListSets, ListIdentifiers, ListRecords or GetRecord".into(),
                ));
            }
            Some(v) => Verb::ALL.into_iter().find(|k| k.as_str() == v).ok_or_else(|| {
                OaiError::BadVerb(format!(
                    "{v:?} is not an OAI-PMH verb; ask Identify, ListMetadataFormats, ListSets, ListIdentifiers, ListRecords or GetRecord"
                ))
            })?,
        };
        let (required, optional, exclusive) = verb.arguments();
        for name in args.keys() {
            let known = required.contains(&name.as_str())
                || optional.contains(&name.as_str())
                || exclusive == Some(name.as_str());
            if !known {
                return Err(OaiError::BadArgument(format!(
                    "{} takes no argument {name:?}",
                    verb.as_str()
                )));
            }
        }
        if let Some(exclusive) = exclusive
            && args.contains_key(exclusive)
        {
            if args.len() > 1 {
                return Err(OaiError::BadArgument(format!(
                    "{exclusive} is exclusive: send it with the verb only"
                )));
            }
            return Ok(OaiRequest { verb, args });
        }
        for name in required {
            if !args.contains_key(*name) {
                return Err(OaiError::BadArgument(format!(
                    "{} needs the argument {name}",
                    verb.as_str()
                )));
            }
        }
        if let Some((name, _)) = args.iter().find(|(_, v)| v.is_empty()) {
            return Err(OaiError::BadArgument(format!("{name} is empty")));
        }
        Ok(OaiRequest { verb, args })
    }
}

/// Where this gateway is, for `baseURL` and the records' URLs: the configured address, or the
/// request's scheme and `Host`.
fn root_url(config: &OaiConfig, req: &HttpRequest) -> String {
    match &config.base_url {
        Some(url) => url.trim_end_matches('/').to_owned(),
        None => {
            let info = req.connection_info();
            format!("{}://{}", info.scheme(), info.host())
        }
    }
}

async fn answer(
    state: web::Data<ReadState>,
    req: HttpRequest,
    raw: String,
) -> Result<HttpResponse, ApiError> {
    let who = crate::api::consumer(&state, &req)?;
    let config = req
        .app_data::<web::Data<OaiConfig>>()
        .map(|c| c.get_ref().clone())
        .unwrap_or_default();
    let root = root_url(&config, &req);
    let parsed = OaiRequest::parse(&raw);
    // Lists walk the change stream: bounded like the change feed.
    let admission = match &parsed {
        Ok(r) if matches!(r.verb, Verb::ListIdentifiers | Verb::ListRecords) => {
            crate::api::admit(&req, crate::limits::Heavy::Changes).await?
        }
        _ => None,
    };
    let st = state.clone();
    let entitlements = who.entitlements;
    let body = crate::api::blocking(move || {
        let ctx = verbs::Context {
            db: &st.db,
            access: &st.access,
            search: &st.search,
            entitlements,
            config: &config,
            root: &root,
        };
        Ok(verbs::respond(&ctx, parsed)?)
    })
    .await?;
    state.access.audit(&who, "/oai", &raw);
    let mut response = HttpResponse::Ok();
    for (name, value) in admission
        .as_ref()
        .map(crate::limits::Admission::headers)
        .unwrap_or_default()
    {
        response.insert_header((name, value));
    }
    Ok(response.content_type("text/xml; charset=utf-8").body(body))
}

/// `GET /oai?verb=…`: an OAI-PMH 2.0 request.
#[utoipa::path(get, path = "/oai",
    params(("verb" = String, Query, description = "Identify, ListMetadataFormats, ListSets, ListIdentifiers, ListRecords or GetRecord"),
           ("identifier" = Option<String>, Query, description = "oai:{repositoryIdentifier}:{unified_id} (GetRecord, ListMetadataFormats)"),
           ("metadataPrefix" = Option<String>, Query, description = "oai_dc or rix (the whole view of the entry; schema at /oai/rix-1.0.xsd)"),
           ("from" = Option<String>, Query, description = "YYYY-MM-DD or YYYY-MM-DDThh:mm:ssZ (UTC), inclusive"),
           ("until" = Option<String>, Query, description = "the same granularity as from, inclusive"),
           ("set" = Option<String>, Query, description = "kind, kind:achievement, region:530000, field:new-energy, program:… (ListSets names them)"),
           ("resumptionToken" = Option<String>, Query, description = "from the previous page; exclusive")),
    responses((status = 200, content_type = "text/xml", description = "an OAI-PMH 2.0 response (http://www.openarchives.org/OAI/2.0/OAI-PMH.xsd), errors included (`<error code=…>`): anonymous readers harvest the public view; `deletedRecord` is persistent, datestamps are UTC to the second; lists page with stateless, sealed resumption tokens"),
              (status = 401, description = "unknown or revoked bearer token", content_type = "application/problem+json"),
              (status = 429, description = "a list over this client's rate, or every slot for the change feed busy: Retry-After and the RateLimit-* headers", content_type = "application/problem+json")),
    security((), ("bearer" = [])))]
pub async fn get(state: web::Data<ReadState>, req: HttpRequest) -> Result<HttpResponse, ApiError> {
    let raw = req.query_string().to_owned();
    answer(state, req, raw).await
}

/// `POST /oai`: the same request as a form (`application/x-www-form-urlencoded`).
#[utoipa::path(post, path = "/oai",
    request_body(content = String, content_type = "application/x-www-form-urlencoded", description = "the arguments of GET /oai as a form"),
    responses((status = 200, content_type = "text/xml", description = "as GET /oai"),
              (status = 401, description = "unknown or revoked bearer token", content_type = "application/problem+json")),
    security((), ("bearer" = [])))]
pub async fn post(
    state: web::Data<ReadState>,
    req: HttpRequest,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let form = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.split(';').next().is_some_and(|t| {
                t.trim()
                    .eq_ignore_ascii_case("application/x-www-form-urlencoded")
            })
        });
    // Not a form, or not text: the arguments cannot be read, which the protocol calls a bad
    // argument (and the verb, unread, is not echoed).
    let raw = match (form, std::str::from_utf8(&body)) {
        (true, Ok(text)) => text.to_owned(),
        _ => "\u{0}".to_owned(),
    };
    answer(state, req, raw).await
}

async fn rix_schema() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/xml; charset=utf-8")
        .body(RIX_XSD)
}

/// Registers `/oai` (GET and POST) and the native format's schema.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/oai", web::get().to(get))
        .route("/oai", web::post().to(post))
        .route(RIX_XSD_PATH, web::get().to(rix_schema));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code(raw: &str) -> &'static str {
        OaiRequest::parse(raw).unwrap_err().code()
    }

    #[test]
    fn requests_are_read_with_the_protocols_error_codes() {
        let ok = OaiRequest::parse("verb=ListRecords&metadataPrefix=oai_dc&set=region%3A530000")
            .unwrap();
        assert_eq!(ok.verb, Verb::ListRecords);
        assert_eq!(ok.args["set"], "region:530000");
        assert!(OaiRequest::parse("verb=ListRecords&resumptionToken=abc").is_ok());
        assert_eq!(code(""), "badVerb");
        assert_eq!(code("verb=Frobnicate"), "badVerb");
        assert_eq!(code("verb=Identify&verb=Identify"), "badVerb");
        assert_eq!(code("verb=Identify&foo=1"), "badArgument");
        assert_eq!(code("verb=ListRecords"), "badArgument");
        assert_eq!(
            code("verb=ListRecords&metadataPrefix=oai_dc&metadataPrefix=rix"),
            "badArgument"
        );
        assert_eq!(
            code("verb=ListRecords&resumptionToken=x&metadataPrefix=oai_dc"),
            "badArgument"
        );
        assert_eq!(code("verb=GetRecord&identifier=oai:x:y"), "badArgument");
        assert_eq!(code("verb=ListSets&set=kind"), "badArgument");
        assert_eq!(code("verb=ListRecords&metadataPrefix="), "badArgument");
        assert_eq!(code("verb=ListRecords&metadataPrefix=%FF"), "badArgument");
        assert_eq!(code("verb=ListRecords&metadataPrefix=a%01"), "badArgument");
    }
}
