//! Answering the six verbs from the catalogue, in the reader's view.
//!
//! Lists walk the change stream ([`crate::catalogue::audience_changes_after`]) from the
//! position in the resumption token, hearing only of changes to sources the reader could see
//! before or after them; a change lists the entries it touched that it is the newest heard-of
//! change of, so each entry is listed once, at its datestamp, and a page costs the same at any
//! depth (a lookup by change id, one by entry for the page's entries, and the page's records).
//! After a full page the walk looks one item ahead, so that a token is given only when there is
//! more (the protocol has no empty pages).

use std::collections::{HashMap, HashSet};

use rix_schema::RecordKind;
use rix_schema::sensitivity::Entitlements;
use serde_json::Value;
use time::format_description::well_known::Rfc3339;
use time::macros::format_description;
use time::{Date, Duration, OffsetDateTime, PrimitiveDateTime};

use super::sets::{SetSpec, member_of};
use super::token::Resumption;
use super::xml::{self, Echo, ItemView, Xml};
use super::{OaiConfig, OaiError, OaiRequest, Verb};
use crate::access::AccessFilter;
use crate::catalogue::{self, DatedChange};
use crate::db::{Db, DbConn, StoreError};
use crate::search::SearchIndex;

/// What a request is answered with.
pub(super) struct Context<'a> {
    pub db: &'a Db,
    pub access: &'a AccessFilter,
    pub search: &'a SearchIndex,
    pub entitlements: Entitlements,
    pub config: &'a OaiConfig,
    /// The gateway's root URL, without a trailing `/`.
    pub root: &'a str,
}

impl Context<'_> {
    fn base_url(&self) -> String {
        format!("{}/oai", self.root)
    }

    fn identifier(&self, unified_id: &str) -> String {
        format!("oai:{}:{unified_id}", self.config.repository_identifier)
    }

    /// The unified id an identifier names, if it is one of this repository's at all.
    fn unified_id<'i>(&self, identifier: &'i str) -> Option<&'i str> {
        let rest = identifier
            .strip_prefix("oai:")?
            .strip_prefix(self.config.repository_identifier.as_str())?
            .strip_prefix(':')?;
        let named = rest.len() == 25
            && rest.starts_with('u')
            && rest[1..]
                .bytes()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase());
        named.then_some(rest)
    }

    fn audiences(&self) -> Vec<i64> {
        catalogue::audiences_visible_to(self.entitlements)
    }

    /// Whether the reader may see a record of secrecy `level`.
    fn may_see(&self, level: Option<&str>) -> bool {
        level
            .and_then(rix_schema::SecrecyLevel::parse)
            .is_some_and(|l| self.entitlements.may_see(l))
    }

    /// Which sides of each move the reader hears of, by change id: `(left, joined)` — the
    /// entry it left only if they could see the source before the move, the entry it joined
    /// only if after. Hearing of both would name, as a deleted item, an entry they never could
    /// see (a record made public that leaves its internal entry for a public one).
    fn heard_sides(
        &self,
        conn: &mut DbConn,
        moves: &[catalogue::MoveRow],
    ) -> Result<HashMap<i64, (bool, bool)>, StoreError> {
        let mut sides = HashMap::with_capacity(moves.len());
        for m in moves {
            let before = catalogue::level_as_of(conn, &m.node_id, &m.id, m.version, true)?;
            let after = catalogue::level_as_of(conn, &m.node_id, &m.id, m.version, false)?;
            sides.insert(
                m.change_id,
                (
                    self.may_see(before.as_deref()),
                    self.may_see(after.as_deref()),
                ),
            );
        }
        Ok(sides)
    }

    /// For each of `entries` the reader heard of: its newest heard-of change and the latest
    /// time one was applied.
    fn newest_heard(
        &self,
        conn: &mut DbConn,
        entries: &[&str],
    ) -> Result<HashMap<String, (i64, String)>, StoreError> {
        let audiences = self.audiences();
        let mut newest = catalogue::newest_unmoved_changes(conn, entries, &audiences)?;
        let moves = catalogue::audience_moves(conn, entries, &audiences)?;
        let sides = self.heard_sides(conn, &moves)?;
        let wanted: HashSet<&str> = entries.iter().copied().collect();
        for m in &moves {
            let (left, joined) = sides[&m.change_id];
            let heard = [
                (left, m.moved_from.as_deref()),
                (joined, Some(m.unified_id.as_str())),
            ];
            for (heard, entry) in heard {
                let Some(entry) = entry.filter(|e| heard && wanted.contains(e)) else {
                    continue;
                };
                let slot = newest
                    .entry(entry.to_owned())
                    .or_insert((m.change_id, m.at.clone()));
                slot.0 = slot.0.max(m.change_id);
                if m.at > slot.1 {
                    slot.1 = m.at.clone();
                }
            }
        }
        Ok(newest)
    }

    /// The size of a complete list: the entries whose newest heard-of change was applied in
    /// `[from, before)`.
    fn count(
        &self,
        conn: &mut DbConn,
        from: Option<&str>,
        before: Option<&str>,
        kind: Option<&str>,
    ) -> Result<u64, StoreError> {
        let audiences = self.audiences();
        let mut total =
            catalogue::count_audience_entries(conn, &audiences, from, before, kind)? as i64;
        // The database counted unmoved changes only: each entry a heard-of move touched since
        // `from` is counted here instead, by its newest heard-of change of either kind.
        let moves = catalogue::audience_moves_since(conn, &audiences, from, kind)?;
        if moves.is_empty() {
            return Ok(total as u64);
        }
        let sides = self.heard_sides(conn, &moves)?;
        let mut moved: HashMap<&str, &str> = HashMap::new();
        for m in &moves {
            let (left, joined) = sides[&m.change_id];
            let heard = [
                (left, m.moved_from.as_deref()),
                (joined, Some(m.unified_id.as_str())),
            ];
            for (heard, entry) in heard {
                if let Some(entry) = entry.filter(|_| heard) {
                    let slot = moved.entry(entry).or_insert(m.at.as_str());
                    if m.at.as_str() > *slot {
                        *slot = m.at.as_str();
                    }
                }
            }
        }
        let entries: Vec<&str> = moved.keys().copied().collect();
        let unmoved = catalogue::newest_unmoved_changes(conn, &entries, &audiences)?;
        let in_range = |at: &str| from.is_none_or(|f| at >= f) && before.is_none_or(|b| at < b);
        for (entry, moved_at) in moved {
            let unmoved_at = unmoved.get(entry).map(|(_, at)| at.as_str());
            let counted = unmoved_at.is_some_and(in_range);
            let newest = unmoved_at.map_or(moved_at, |u| u.max(moved_at));
            total += i64::from(in_range(newest)) - i64::from(counted);
        }
        Ok(total.max(0) as u64)
    }
}

/// Why a request got no answer of its own.
enum Failure {
    Oai(OaiError),
    Store(StoreError),
}

impl From<OaiError> for Failure {
    fn from(e: OaiError) -> Self {
        Failure::Oai(e)
    }
}

impl From<StoreError> for Failure {
    fn from(e: StoreError) -> Self {
        Failure::Store(e)
    }
}

/// The metadata formats every item is disseminated in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    OaiDc,
    Rix,
}

impl Format {
    const ALL: [Format; 2] = [Format::OaiDc, Format::Rix];

    fn prefix(self) -> &'static str {
        match self {
            Format::OaiDc => "oai_dc",
            Format::Rix => "rix",
        }
    }

    fn parse(prefix: &str) -> Result<Format, OaiError> {
        Format::ALL
            .into_iter()
            .find(|f| f.prefix() == prefix)
            .ok_or_else(|| {
                OaiError::CannotDisseminateFormat(format!(
                    "{prefix:?} is not disseminated here; ask oai_dc or rix (ListMetadataFormats)"
                ))
            })
    }
}

/// The response to `request` (already read, or refused while reading): an OAI-PMH document,
/// errors included. Only storage failures are not answered in the protocol.
pub(super) fn respond(
    ctx: &Context<'_>,
    request: Result<OaiRequest, OaiError>,
) -> Result<String, StoreError> {
    let now = datestamp_of(OffsetDateTime::now_utc());
    let base_url = ctx.base_url();
    let request = match request {
        Ok(r) => r,
        Err(e) => return Ok(error_response(&now, &base_url, &Vec::new(), &e)),
    };
    let echo = echo_of(&request);
    let answered = match request.verb {
        Verb::Identify => identify(ctx),
        Verb::ListMetadataFormats => list_metadata_formats(ctx, &request),
        Verb::ListSets => list_sets(ctx, &request),
        Verb::ListIdentifiers | Verb::ListRecords => list(ctx, &request),
        Verb::GetRecord => get_record(ctx, &request),
    };
    match answered {
        Ok(body) => Ok(xml::response(&now, &base_url, &echo, |x| {
            x.open(request.verb.as_str(), &[]);
            x.raw(&body);
            x.close(request.verb.as_str());
        })),
        Err(Failure::Oai(e)) => {
            // After badVerb or badArgument the request is echoed without attributes.
            let echo = match e {
                OaiError::BadArgument(_) | OaiError::BadVerb(_) => Vec::new(),
                _ => echo,
            };
            Ok(error_response(&now, &base_url, &echo, &e))
        }
        Err(Failure::Store(e)) => Err(e),
    }
}

fn error_response(now: &str, base_url: &str, echo: &Echo<'_>, e: &OaiError) -> String {
    xml::response(now, base_url, echo, |x| {
        x.leaf("error", &[("code", e.code())], &e.to_string());
    })
}

/// The verb and those arguments that the schema lets the `request` element carry (a value it
/// would refuse is left out, not echoed wrong).
fn echo_of(request: &OaiRequest) -> Echo<'_> {
    let mut echo: Echo<'_> = vec![("verb", request.verb.as_str())];
    for (name, value) in &request.args {
        let fits = match name.as_str() {
            "metadataPrefix" => spec_chars(value, false),
            "set" => spec_chars(value, true),
            "from" | "until" => Bound::parse(value).is_ok(),
            "identifier" => !value.chars().any(char::is_whitespace),
            _ => true,
        };
        if fits {
            echo.push((name.as_str(), value.as_str()));
        }
    }
    echo
}

/// Whether `text` is made of the characters a metadataPrefix (or a setSpec, with `:` between
/// parts) may hold.
fn spec_chars(text: &str, parts: bool) -> bool {
    let part_ok = |p: &str| {
        !p.is_empty()
            && p.chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.!~*'()".contains(c))
    };
    if parts {
        text.split(':').all(part_ok)
    } else {
        part_ok(text)
    }
}

/// A time as a datestamp: UTC, to the second.
fn datestamp_of(t: OffsetDateTime) -> String {
    let t = t.to_offset(time::UtcOffset::UTC);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
        t.year(),
        t.month() as u8,
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

/// A change's `at` (RFC 3339) as a datestamp.
fn datestamp(at: &str) -> String {
    OffsetDateTime::parse(at, &Rfc3339)
        .map(datestamp_of)
        .unwrap_or_else(|_| format!("{}Z", at.get(..19).unwrap_or("1970-01-01T00:00:00")))
}

/// A `from` or `until` argument.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Bound {
    Day(Date),
    Second(PrimitiveDateTime),
}

impl Bound {
    fn parse(text: &str) -> Result<Bound, OaiError> {
        let day = format_description!("[year]-[month]-[day]");
        let second = format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]Z");
        if text.len() == 10
            && let Ok(d) = Date::parse(text, &day)
        {
            return Ok(Bound::Day(d));
        }
        if text.len() == 20
            && let Ok(t) = PrimitiveDateTime::parse(text, &second)
        {
            return Ok(Bound::Second(t));
        }
        Err(OaiError::BadArgument(format!(
            "{text:?} is not a UTC date (YYYY-MM-DD) or time to the second (YYYY-MM-DDThh:mm:ssZ)"
        )))
    }

    /// The first instant it names.
    fn start(self) -> PrimitiveDateTime {
        match self {
            Bound::Day(d) => d.midnight(),
            Bound::Second(t) => t,
        }
    }

    /// The first instant after it.
    fn end(self) -> PrimitiveDateTime {
        match self {
            Bound::Day(d) => d.midnight() + Duration::days(1),
            Bound::Second(t) => t + Duration::seconds(1),
        }
    }
}

/// `t` as the zone-less prefix the catalogue compares change times with.
fn prefix(t: PrimitiveDateTime) -> String {
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}",
        t.year(),
        t.month() as u8,
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

/// The change times a `from`/`until` pair selects: at or after the first, before the second.
fn time_range(
    from: Option<&str>,
    until: Option<&str>,
) -> Result<(Option<String>, Option<String>), OaiError> {
    let from = from.map(Bound::parse).transpose()?;
    let until = until.map(Bound::parse).transpose()?;
    if let (Some(f), Some(u)) = (from, until) {
        if matches!(f, Bound::Day(_)) != matches!(u, Bound::Day(_)) {
            return Err(OaiError::BadArgument(
                "from and until must have the same granularity (both days or both seconds)".into(),
            ));
        }
        if f.start() > u.start() {
            return Err(OaiError::BadArgument("from is later than until".into()));
        }
    }
    Ok((
        from.map(|f| prefix(f.start())),
        until.map(|u| prefix(u.end())),
    ))
}

fn identify(ctx: &Context<'_>) -> Result<String, Failure> {
    let earliest = catalogue::earliest_audience_change(&mut *ctx.db.conn()?, &ctx.audiences())?;
    let earliest = earliest
        .map(|at| datestamp(&at))
        .unwrap_or_else(|| datestamp_of(OffsetDateTime::now_utc()));
    let mut x = Xml::default();
    x.leaf("repositoryName", &[], &ctx.config.repository_name);
    x.leaf("baseURL", &[], &ctx.base_url());
    x.leaf("protocolVersion", &[], "2.0");
    x.leaf("adminEmail", &[], &ctx.config.admin_email);
    x.leaf("earliestDatestamp", &[], &earliest);
    x.leaf("deletedRecord", &[], "persistent");
    x.leaf("granularity", &[], "YYYY-MM-DDThh:mm:ssZ");
    Ok(x.finish())
}

fn list_metadata_formats(ctx: &Context<'_>, request: &OaiRequest) -> Result<String, Failure> {
    if let Some(identifier) = request.args.get("identifier") {
        // Formats of an item the reader may not know of would tell them it exists.
        existing(ctx, &mut *ctx.db.conn()?, identifier)?;
    }
    let mut x = Xml::default();
    for format in Format::ALL {
        let (schema, namespace) = match format {
            Format::OaiDc => (xml::OAI_DC_SCHEMA.to_owned(), xml::OAI_DC_NS),
            Format::Rix => (format!("{}{}", ctx.root, xml::RIX_XSD_PATH), xml::RIX_NS),
        };
        x.open("metadataFormat", &[]);
        x.leaf("metadataPrefix", &[], format.prefix());
        x.leaf("schema", &[], &schema);
        x.leaf("metadataNamespace", &[], namespace);
        x.close("metadataFormat");
    }
    Ok(x.finish())
}

/// The unified id and datestamp of the item `identifier` names, if the reader may know of it:
/// if a change they may hear of ever touched it.
fn existing(
    ctx: &Context<'_>,
    conn: &mut DbConn,
    identifier: &str,
) -> Result<(String, String, i64), Failure> {
    let missing = || {
        OaiError::IdDoesNotExist(format!(
            "no item {identifier:?} here; identifiers are oai:{}:{{unified_id}}, as ListIdentifiers gives them",
            ctx.config.repository_identifier
        ))
    };
    let unified_id = ctx.unified_id(identifier).ok_or_else(missing)?;
    let newest = ctx.newest_heard(conn, &[unified_id])?;
    let (change_id, at) = newest.get(unified_id).ok_or_else(missing)?;
    Ok((unified_id.to_owned(), datestamp(at), *change_id))
}

fn list_sets(ctx: &Context<'_>, request: &OaiRequest) -> Result<String, Failure> {
    if request.args.contains_key("resumptionToken") {
        return Err(OaiError::BadResumptionToken(
            "ListSets answers in one response and gives no resumptionToken; ask without one".into(),
        )
        .into());
    }
    let search_failed = |e: crate::search::SearchError| StoreError::Task(e.to_string());
    let mut query =
        crate::api::search_query(&HashMap::new()).map_err(|e| StoreError::Task(e.to_string()))?;
    query.limit = 1;
    let page = ctx
        .search
        .search(&query, ctx.entitlements)
        .map_err(search_failed)?;
    let mut sets = vec![SetSpec::Kind(None)];
    for kind in [RecordKind::Achievement, RecordKind::FundedProject] {
        let mut q = query.clone();
        q.kind = Some(kind.as_str().to_owned());
        q.facets = false;
        if ctx
            .search
            .search(&q, ctx.entitlements)
            .map_err(search_failed)?
            .total
            > 0
        {
            sets.push(SetSpec::Kind(Some(kind)));
        }
    }
    let facets = &page.facets;
    // Each family: its root, then its values in order.
    type Family<'f> = (
        fn(Option<String>) -> SetSpec,
        &'f [crate::search::FacetCount],
    );
    let families: [Family; 3] = [
        (SetSpec::Region, &facets.region),
        (SetSpec::Field, &facets.field),
        (SetSpec::Program, &facets.program),
    ];
    for (family, counts) in families {
        sets.push(family(None));
        let mut values: Vec<&str> = counts.iter().map(|f| f.value.as_str()).collect();
        values.sort();
        sets.extend(values.into_iter().map(|v| family(Some(v.to_owned()))));
    }
    let mut x = Xml::default();
    for set in sets {
        let spec = set.spec();
        // A field the schema lists but that has no set name would write a bad setSpec.
        if SetSpec::parse(&spec).as_ref() != Some(&set) {
            continue;
        }
        x.open("set", &[]);
        x.leaf("setSpec", &[], &spec);
        x.leaf("setName", &[], &set.name());
        x.close("set");
    }
    Ok(x.finish())
}

/// One item as the reader sees it.
struct Item {
    unified_id: String,
    kind: RecordKind,
    datestamp: String,
    /// `None`: deleted (for this reader).
    view: Option<Value>,
    sources: Vec<(String, String, i64, bool)>,
    sets: Vec<SetSpec>,
    links: Vec<String>,
}

/// The items `wanted` (unified id, datestamp) as the reader sees them now; with their links
/// when `with_links` (records, not headers, show them).
fn items(
    ctx: &Context<'_>,
    conn: &mut DbConn,
    wanted: &[(String, String, i64)],
    with_links: bool,
) -> Result<Vec<Item>, StoreError> {
    let ids: Vec<&str> = wanted.iter().map(|(u, _, _)| u.as_str()).collect();
    let reading = catalogue::Reading::for_reader(ctx.entitlements);
    let mut held = catalogue::unified_many_reading(conn, &ids, reading)?;
    let mut out = Vec::with_capacity(wanted.len());
    for (unified_id, datestamp, newest_change) in wanted {
        let Some(entry) = held.remove(unified_id) else {
            // Every source moved to other entries: deleted, of the kind its changes name.
            let kind = catalogue::change_kind(conn, *newest_change)?.and_then(|k| k.parse().ok());
            if let Some(kind) = kind {
                out.push(Item {
                    unified_id: unified_id.clone(),
                    kind,
                    datestamp: datestamp.clone(),
                    view: None,
                    sources: Vec::new(),
                    sets: member_of(kind, None),
                    links: Vec::new(),
                });
            }
            continue;
        };
        let Ok(kind) = entry.kind.parse::<RecordKind>() else {
            continue;
        };
        let view = entry
            .record_for(ctx.entitlements)
            .and_then(|r| AccessFilter::view(kind, r, ctx.entitlements));
        let sources = entry
            .sources_for(ctx.entitlements)
            .into_iter()
            .map(|s| (s.node_id.clone(), s.id.clone(), s.version, s.withdrawn))
            .collect();
        let links = if with_links && view.is_some() {
            catalogue::links(conn, unified_id, ctx.entitlements)?
                .iter()
                .map(|u| ctx.identifier(u))
                .collect()
        } else {
            Vec::new()
        };
        out.push(Item {
            unified_id: unified_id.clone(),
            kind,
            datestamp: datestamp.clone(),
            sets: member_of(kind, view.as_ref()),
            view,
            sources,
            links,
        });
    }
    Ok(out)
}

fn header(ctx: &Context<'_>, x: &mut Xml, item: &Item) {
    let status: &[(&str, &str)] = if item.view.is_none() {
        &[("status", "deleted")]
    } else {
        &[]
    };
    x.open("header", status);
    x.leaf("identifier", &[], &ctx.identifier(&item.unified_id));
    x.leaf("datestamp", &[], &item.datestamp);
    for set in &item.sets {
        x.leaf("setSpec", &[], &set.spec());
    }
    x.close("header");
}

fn record(ctx: &Context<'_>, x: &mut Xml, item: &Item, format: Format) {
    x.open("record", &[]);
    header(ctx, x, item);
    if let Some(view) = &item.view {
        let identifier = ctx.identifier(&item.unified_id);
        let urls = [
            format!("{}/entries/{}", ctx.root, item.unified_id),
            format!("{}/v1/entries/{}", ctx.root, item.unified_id),
        ];
        let shown = ItemView {
            identifier: &identifier,
            unified_id: &item.unified_id,
            kind: item.kind.as_str(),
            record: view,
            sources: &item.sources,
            links: &item.links,
            urls: &urls,
        };
        x.open("metadata", &[]);
        match format {
            Format::OaiDc => xml::oai_dc(x, &shown),
            Format::Rix => xml::rix(x, &shown, &format!("{}{}", ctx.root, xml::RIX_XSD_PATH)),
        }
        x.close("metadata");
    }
    x.close("record");
}

fn get_record(ctx: &Context<'_>, request: &OaiRequest) -> Result<String, Failure> {
    let format = Format::parse(&request.args["metadataPrefix"])?;
    let mut conn = ctx.db.conn()?;
    let wanted = existing(ctx, &mut conn, &request.args["identifier"])?;
    let found = items(ctx, &mut conn, &[wanted], true)?;
    let Some(item) = found.first() else {
        return Err(OaiError::IdDoesNotExist(format!(
            "no item {:?} here",
            request.args["identifier"]
        ))
        .into());
    };
    let mut x = Xml::default();
    record(ctx, &mut x, item, format);
    Ok(x.finish())
}

/// Whether `item` belongs in a harvest of `set`. A deleted entry's view is gone, and with it
/// every set but its kind's: it is listed in every other set's harvest, so that a harvester of
/// that set hears of the deletion.
fn listed_in(set: &SetSpec, item: &Item) -> bool {
    match (set, &item.view) {
        (SetSpec::Kind(_), _) | (_, Some(_)) => set.contains(&item.sets),
        (_, None) => true,
    }
}

/// How much later than a change with a higher id a change may have been stamped: `at` is taken
/// when a transaction starts, change ids when it takes the catalogue's counter, so a
/// transaction that waited for the counter holds an earlier time than one before it.
const STAMP_SKEW: Duration = Duration::minutes(10);

/// Where the first page of a list `from` a time starts: after the last change stamped more
/// than [`STAMP_SKEW`] before it (every change stamped since `from` has a higher id), found
/// through the index on times instead of by reading the stream from its beginning.
fn walk_start(conn: &mut DbConn, from: &str) -> Result<i64, Failure> {
    let start = Bound::parse(from)?.start() - STAMP_SKEW;
    Ok(catalogue::last_change_before(conn, &prefix(start))?.unwrap_or(0))
}

/// Changes read per step of a list's walk: a page and the one item to look ahead to when every
/// change may give an item; more when a set skips most of them.
fn walk_step(page_size: usize, set: Option<&SetSpec>) -> i64 {
    let step = match set {
        None | Some(SetSpec::Kind(_)) => page_size + 1,
        Some(_) => page_size * 4,
    };
    step.clamp(16, 2000) as i64
}

fn list(ctx: &Context<'_>, request: &OaiRequest) -> Result<String, Failure> {
    let seal = ctx.access.cursor_seal()?;
    let reader = ctx.entitlements.to_string();
    let resumed = request.args.get("resumptionToken");
    let mut state = match resumed {
        Some(token) => {
            let bad = |why: &str| {
                OaiError::BadResumptionToken(format!(
                    "{why}; start the list again without a resumptionToken"
                ))
            };
            let state = Resumption::open(seal, token).map_err(|e| bad(&e.to_string()))?;
            if state.verb != request.verb.as_str() {
                return Err(bad("this resumptionToken belongs to another verb").into());
            }
            if state.reader != reader {
                return Err(bad("this resumptionToken was given to another reader").into());
            }
            state
        }
        None => Resumption {
            verb: request.verb.as_str().to_owned(),
            prefix: request.args["metadataPrefix"].clone(),
            set: request.args.get("set").cloned(),
            from: request.args.get("from").cloned(),
            until: request.args.get("until").cloned(),
            reader,
            after: 0,
            cursor: 0,
            total: None,
        },
    };
    let (from, before) = time_range(state.from.as_deref(), state.until.as_deref())?;
    let format = Format::parse(&state.prefix)?;
    let set = match state.set.as_deref() {
        None => None,
        Some(spec) if !spec_chars(spec, true) => {
            return Err(OaiError::BadArgument(format!("{spec:?} is not a setSpec")).into());
        }
        Some(spec) => Some(SetSpec::parse(spec).ok_or_else(|| {
            OaiError::NoRecordsMatch(format!("there is no set {spec:?}; ListSets names the sets"))
        })?),
    };
    let kind = set.as_ref().and_then(SetSpec::kind);
    let audiences = ctx.audiences();
    let mut conn = ctx.db.conn()?;
    // The size of the whole list, counted once, on its first page, where the change stream
    // alone can say it: unrestricted or restricted by kind.
    if resumed.is_none() && set.as_ref().is_none_or(|s| matches!(s, SetSpec::Kind(_))) {
        state.total = Some(ctx.count(
            &mut conn,
            from.as_deref(),
            before.as_deref(),
            kind.map(RecordKind::as_str),
        )?);
    }
    let page_size = ctx.config.page_size.max(1) as usize;
    let records = request.verb == Verb::ListRecords;
    let in_range = |at: &str| {
        from.as_deref().is_none_or(|f| at >= f) && before.as_deref().is_none_or(|b| at < b)
    };
    let mut page: Vec<(Item, i64)> = Vec::new();
    let mut more = false;
    let mut walked = state.after;
    if resumed.is_none()
        && let Some(from) = state.from.as_deref()
    {
        walked = walk_start(&mut conn, from)?;
    }
    'walk: loop {
        let changes = catalogue::audience_changes_after(
            &mut conn,
            walked,
            &audiences,
            from.as_deref(),
            before.as_deref(),
            kind.map(RecordKind::as_str),
            walk_step(page_size, set.as_ref()),
        )?;
        let Some(last) = changes.last() else {
            break;
        };
        let last_id = last.change_id;
        let touched: Vec<&str> = {
            let mut seen = HashSet::new();
            changes
                .iter()
                .flat_map(DatedChange::entries)
                .filter(|e| seen.insert(*e))
                .collect()
        };
        let newest = ctx.newest_heard(&mut conn, &touched)?;
        // Each entry at its newest heard-of change, if that change is within the range.
        let mut due: Vec<(i64, String, String)> = Vec::new();
        for change in &changes {
            for entry in change.entries() {
                if let Some((id, at)) = newest.get(entry)
                    && *id == change.change_id
                    && in_range(at)
                {
                    due.push((change.change_id, entry.to_owned(), datestamp(at)));
                }
            }
        }
        let wanted: Vec<(String, String, i64)> = due
            .iter()
            .map(|(c, u, d)| (u.clone(), d.clone(), *c))
            .collect();
        let mut found: HashMap<String, Item> = items(ctx, &mut conn, &wanted, records)?
            .into_iter()
            .map(|i| (i.unified_id.clone(), i))
            .collect();
        for (change_id, unified_id, _) in due {
            let Some(item) = found.remove(&unified_id) else {
                continue;
            };
            if set.as_ref().is_some_and(|s| !listed_in(s, &item)) {
                continue;
            }
            // A change that moved a record lists both entries on one page: the position
            // after a page is a change, not an entry.
            if page.len() >= page_size && page.last().is_some_and(|(_, c)| *c != change_id) {
                more = true;
                break 'walk;
            }
            page.push((item, change_id));
        }
        walked = last_id;
    }
    if page.is_empty() {
        return Err(OaiError::NoRecordsMatch(
            "no items match these arguments (in the view this reader may see)".into(),
        )
        .into());
    }
    let mut x = Xml::default();
    for (item, _) in &page {
        if records {
            record(ctx, &mut x, item, format);
        } else {
            header(ctx, &mut x, item);
        }
    }
    let cursor = state.cursor.to_string();
    let total = state.total.filter(|t| *t > 0).map(|t| t.to_string());
    let mut attrs: Vec<(&str, &str)> = Vec::new();
    if let Some(total) = &total {
        attrs.push(("completeListSize", total));
    }
    attrs.push(("cursor", &cursor));
    if more {
        let next = Resumption {
            after: page.last().map_or(state.after, |(_, c)| *c),
            cursor: state.cursor + page.len() as u64,
            ..state.clone()
        };
        x.leaf("resumptionToken", &attrs, &next.seal(seal));
    } else if resumed.is_some() {
        // The last page of a list given in parts ends with an empty token.
        x.empty("resumptionToken", &attrs);
    }
    Ok(x.finish())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn from_and_until_select_whole_seconds_and_days() {
        let (f, b) = time_range(Some("2026-11-30"), Some("2026-11-30")).unwrap();
        assert_eq!(f.as_deref(), Some("2026-11-30T00:00:00"));
        assert_eq!(b.as_deref(), Some("2026-12-01T00:00:00"));
        let (f, b) =
            time_range(Some("2026-11-30T10:00:59Z"), Some("2026-12-31T23:59:59Z")).unwrap();
        assert_eq!(f.as_deref(), Some("2026-11-30T10:00:59"));
        assert_eq!(b.as_deref(), Some("2027-01-01T00:00:00"));
        // A fraction of a second sorts inside its second.
        assert!("2026-11-30T10:00:59.5Z" >= f.as_deref().unwrap());
        for (from, until) in [
            (Some("2026-11-30"), Some("2026-11-30T00:00:00Z")),
            (Some("2026-12-01"), Some("2026-11-30")),
            (Some("2026-11-30T10:00:00"), None),
            (Some("2026-11-30T10:00:00.5Z"), None),
            (Some("2026-13-01"), None),
            (None, Some("yesterday")),
        ] {
            assert!(
                matches!(time_range(from, until), Err(OaiError::BadArgument(_))),
                "{from:?} {until:?}"
            );
        }
    }

    #[test]
    fn change_times_become_datestamps_to_the_second() {
        assert_eq!(
            datestamp("2026-11-30T11:08:19.123456Z"),
            "2026-11-30T11:08:19Z"
        );
        assert_eq!(datestamp("2026-11-30T11:08:19Z"), "2026-11-30T11:08:19Z");
    }
}
