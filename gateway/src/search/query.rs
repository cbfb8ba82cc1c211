//! Queries: what a caller asks ([`SearchQuery`]), checked and normalised into a [`Plan`], and
//! the plan turned into the one tantivy query that decides what matches and how it scores.
//!
//! **Query semantics.** `q` is split like the text: each run of CJK characters and each run of
//! other letters and digits is a term; every term must match (AND), Chinese terms as substrings,
//! letters/digits as whole words (`5G` matches `5G通信`, `LTE` does not match `VoLTE`). Nothing
//! in `q` is syntax, so no user text can cause a parse error. Filters are exact and are ANDed.
//!
//! **How a term matches, and what scores.** Terms match in the `grams` field alone, which is
//! why a Chinese term matches exactly the texts that contain it ([`super::text`] says why): a
//! word is one token, a two-character term one gram, a longer one the phrase of its grams, a
//! single character any gram holding it. The jieba words of the terms are optional clauses
//! that only add to the score, title words weighing twice the body's; filters score nothing.
//!
//! **Visibility is a clause of the query.** The audience filter
//! ([`audiences_for`](super::document::audiences_for)) is the first clause of every query, so
//! totals, facets, highlights and cursors are computed over what the caller may see and
//! nothing else; later steps do not filter, [`super::highlight`] only checks.
//!
//! What it may not touch: documents and columns (it says what to match; [`super::collect`]
//! reads the matches), and the encoding of cursors, which belongs to the order they name
//! ([`super::collect`] decodes the one a query carries).

use std::collections::BTreeSet;
use std::ops::Bound;

use rix_schema::RecordKind;
use rix_schema::record::{Category, Field as TechField, TransferMode};
use rix_schema::sensitivity::Entitlements;
use serde::{Deserialize, Serialize};
use tantivy::Term;
use tantivy::query::{
    AllQuery, BooleanQuery, BoostQuery, ConstScoreQuery, Occur, PhraseQuery, Query, RangeQuery,
    RegexQuery, TermQuery,
};
use tantivy::schema::{Field, IndexRecordOption};
use tantivy::tokenizer::TokenStream;

use super::collect::Rank;
use super::document::{audiences_for, category_code, field_code};
use super::text::{Folded, RunKind};
use super::{SearchError, SearchIndex, invalid};

/// Most items one page may ask for.
pub const MAX_LIMIT: usize = 100;

/// Items per page when the query does not say.
pub const DEFAULT_LIMIT: usize = 20;

/// Longest `q` accepted, in characters (and it may hold at most 32 terms).
pub const MAX_QUERY_CHARS: usize = 500;
const MAX_QUERY_TERMS: usize = 32;

/// How results are ordered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Sort {
    /// Best BM25 score first (ties by entry); without `q` (every score equal), as `Date`.
    #[default]
    Relevance,
    /// Newest first by registration date (else research end; projects: start), ties by entry.
    Date,
}

/// One search request, as `GET /v1/search` receives it. Empty strings count as absent, so a
/// form that submits every field empty searches everything.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct SearchQuery {
    /// Full text, Chinese and English mixed; every term must match.
    pub q: Option<String>,
    /// `achievement` or `funded_project`.
    pub kind: Option<String>,
    /// Province code of the main institution (achievements) or lead (projects), e.g. `530000`.
    pub region: Option<String>,
    /// Technology field (技术领域), e.g. `新能源与节能`.
    pub field: Option<String>,
    /// Achievement category (成果类别), e.g. `应用技术`.
    pub category: Option<String>,
    /// Program (计划类别): an achievement's funding program or a project's own.
    pub program: Option<String>,
    /// Lowest technology readiness level, 1–9.
    pub trl_min: Option<u64>,
    /// First year, inclusive.
    pub year_from: Option<u64>,
    /// Last year, inclusive.
    pub year_to: Option<u64>,
    /// Transfer mode (转化方式), e.g. `许可`.
    pub transfer_mode: Option<String>,
    /// Publishing node: entries with an active source from this node.
    pub node: Option<String>,
    /// Order of results.
    pub sort: Sort,
    /// Items per page, 1–100.
    pub limit: usize,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<String>,
    /// Count the facets (the default). A caller that needs only the total or the page turns it
    /// off: counting the facets is most of a pass over the matches.
    #[serde(skip)]
    pub facets: bool,
}

impl Default for SearchQuery {
    fn default() -> Self {
        SearchQuery {
            q: None,
            kind: None,
            region: None,
            field: None,
            category: None,
            program: None,
            trl_min: None,
            year_from: None,
            year_to: None,
            transfer_mode: None,
            node: None,
            sort: Sort::Relevance,
            limit: DEFAULT_LIMIT,
            cursor: None,
            facets: true,
        }
    }
}

/// One term of a query: a run of CJK characters (matched as a substring) or of other letters
/// and digits (matched as a whole word). Folded.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum QueryTerm {
    Cjk(String),
    Word(String),
}

impl QueryTerm {
    pub(super) fn text(&self) -> &str {
        match self {
            QueryTerm::Cjk(t) | QueryTerm::Word(t) => t,
        }
    }
}

/// The terms of `q`, in order, without repeats.
pub(super) fn query_terms(q: &str) -> Vec<QueryTerm> {
    let folded = Folded::new(q);
    let mut terms: Vec<QueryTerm> = Vec::new();
    for (kind, start, end) in folded.runs() {
        let text: String = folded.chars[start..end].iter().collect();
        let term = match kind {
            RunKind::Cjk => QueryTerm::Cjk(text),
            RunKind::Word => QueryTerm::Word(text),
        };
        if !terms.contains(&term) {
            terms.push(term);
        }
    }
    terms
}

/// A validated query.
pub(super) struct Plan {
    pub(super) terms: Vec<QueryTerm>,
    pub(super) kind: Option<String>,
    pub(super) region: Option<String>,
    pub(super) field: Option<String>,
    pub(super) category: Option<String>,
    pub(super) program: Option<String>,
    pub(super) transfer_mode: Option<String>,
    pub(super) node: Option<String>,
    pub(super) trl_min: Option<u64>,
    pub(super) year_from: Option<u64>,
    pub(super) year_to: Option<u64>,
    pub(super) sort: Sort,
    pub(super) limit: usize,
    pub(super) after: Option<Rank>,
    pub(super) fingerprint: u64,
}

fn present(v: &Option<String>) -> Option<String> {
    v.as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
}

fn one_of(
    pointer: &'static str,
    value: Option<String>,
    allowed: &[&str],
) -> Result<Option<String>, SearchError> {
    match value {
        Some(v) if !allowed.contains(&v.as_str()) => Err(invalid(
            pointer,
            format!("{v:?} is not one of: {}", allowed.join(", ")),
        )),
        other => Ok(other),
    }
}

impl Plan {
    pub(super) fn new(q: &SearchQuery) -> Result<Plan, SearchError> {
        if !(1..=MAX_LIMIT).contains(&q.limit) {
            return Err(invalid(
                "/query/limit",
                format!(
                    "{} is out of range; ask for 1 to {MAX_LIMIT} items",
                    q.limit
                ),
            ));
        }
        let text = present(&q.q).unwrap_or_default();
        if text.chars().count() > MAX_QUERY_CHARS {
            return Err(invalid(
                "/query/q",
                format!("the query is longer than {MAX_QUERY_CHARS} characters"),
            ));
        }
        let terms = query_terms(&text);
        if terms.len() > MAX_QUERY_TERMS {
            return Err(invalid(
                "/query/q",
                format!(
                    "the query has {} terms; at most {MAX_QUERY_TERMS} are searched together",
                    terms.len()
                ),
            ));
        }
        let kinds: Vec<&str> = RecordKind::ALL.iter().map(|k| k.as_str()).collect();
        let fields: Vec<&str> = TechField::ALL.iter().map(|f| f.as_str()).collect();
        let categories: Vec<&str> = Category::ALL.iter().map(|c| c.as_str()).collect();
        let modes: Vec<&str> = TransferMode::ALL.iter().map(|m| m.as_str()).collect();
        let region = present(&q.region);
        if let Some(r) = &region
            && !(r.len() == 6 && r.bytes().all(|b| b.is_ascii_digit()) && r.ends_with("0000"))
        {
            return Err(invalid(
                "/query/region",
                format!("{r:?} is not a province code; regions filter by province, e.g. 530000"),
            ));
        }
        if let Some(t) = q.trl_min
            && !(1..=9).contains(&t)
        {
            return Err(invalid(
                "/query/trl_min",
                format!("{t} is not a readiness level 1–9"),
            ));
        }
        if let (Some(from), Some(to)) = (q.year_from, q.year_to)
            && from > to
        {
            return Err(invalid(
                "/query/year_from",
                format!("year_from {from} is after year_to {to}"),
            ));
        }
        // Without text every score is equal, so relevance would order by entry names alone
        // (keyed hashes: no order a reader can use, and a page of them is a pass over every
        // match). Browsing takes the date order instead, newest first, which a page walks from
        // its cursor.
        let sort = if terms.is_empty() { Sort::Date } else { q.sort };
        let mut plan = Plan {
            terms,
            kind: one_of("/query/kind", present(&q.kind), &kinds)?,
            region,
            field: one_of("/query/field", present(&q.field), &fields)?,
            category: one_of("/query/category", present(&q.category), &categories)?,
            program: present(&q.program),
            transfer_mode: one_of("/query/transfer_mode", present(&q.transfer_mode), &modes)?,
            node: present(&q.node),
            trl_min: q.trl_min,
            year_from: q.year_from,
            year_to: q.year_to,
            sort,
            limit: q.limit,
            after: None,
            fingerprint: 0,
        };
        plan.fingerprint = plan.fingerprint();
        Ok(plan)
    }
}

impl SearchIndex {
    pub(super) fn build_query(
        &self,
        plan: &Plan,
        entitlements: Entitlements,
    ) -> Result<Box<dyn Query>, SearchError> {
        let f = &self.fields;
        let mut clauses: Vec<(Occur, Box<dyn Query>)> = Vec::new();
        let filter = |q: Box<dyn Query>| -> (Occur, Box<dyn Query>) {
            (Occur::Must, Box::new(ConstScoreQuery::new(q, 0.0)))
        };
        let exact = |field: Field, value: &str| -> Box<dyn Query> {
            Box::new(TermQuery::new(
                Term::from_field_text(field, value),
                IndexRecordOption::Basic,
            ))
        };
        // Visibility first: it is the one filter that must never be missing.
        let audience: Vec<(Occur, Box<dyn Query>)> = audiences_for(entitlements)
            .iter()
            .map(|a| (Occur::Should, exact(f.secrecy, a)))
            .collect();
        clauses.push(filter(Box::new(BooleanQuery::new(audience))));
        for (field, value) in [
            (f.kind, &plan.kind),
            (f.program, &plan.program),
            (f.transfer_mode, &plan.transfer_mode),
            (f.node, &plan.node),
        ] {
            if let Some(v) = value {
                clauses.push(filter(exact(field, v)));
            }
        }
        let number = |field: Field, value: u64| -> Box<dyn Query> {
            Box::new(TermQuery::new(
                Term::from_field_u64(field, value),
                IndexRecordOption::Basic,
            ))
        };
        if let Some(r) = &plan.region {
            clauses.push(filter(number(f.region, r.parse().unwrap_or(u64::MAX))));
        }
        if let Some(v) = &plan.field {
            clauses.push(filter(number(f.field, field_code(v))));
        }
        if let Some(v) = &plan.category {
            clauses.push(filter(number(f.category, category_code(v))));
        }
        // Ranges start at 1: 0 is "none" in these columns.
        let range = |field: Field, from: Option<u64>, to: Option<u64>| -> Box<dyn Query> {
            let to = match to {
                Some(t) => Bound::Included(Term::from_field_u64(field, t)),
                None => Bound::Unbounded,
            };
            let from = Term::from_field_u64(field, from.unwrap_or(1).max(1));
            Box::new(RangeQuery::new(Bound::Included(from), to))
        };
        if plan.trl_min.is_some() {
            clauses.push(filter(range(f.trl, plan.trl_min, None)));
        }
        if plan.year_from.is_some() || plan.year_to.is_some() {
            clauses.push(filter(range(f.year, plan.year_from, plan.year_to)));
        }
        // Matching: every term in the grams field.
        for term in &plan.terms {
            clauses.push((Occur::Must, self.grams_query(term)?));
        }
        // Scoring: the query's jieba words in the title (weighing more) and the body.
        if !plan.terms.is_empty() {
            let mut words = BTreeSet::new();
            let mut analyzer = self.index.tokenizer_for_field(f.title)?;
            for term in &plan.terms {
                let mut stream = analyzer.token_stream(term.text());
                while let Some(token) = stream.next() {
                    words.insert(token.text.clone());
                }
            }
            for word in words.iter().take(4 * MAX_QUERY_TERMS) {
                for (field, boost) in [(f.title, 2.0), (f.body, 1.0)] {
                    let q = TermQuery::new(
                        Term::from_field_text(field, word),
                        IndexRecordOption::WithFreqs,
                    );
                    clauses.push((Occur::Should, Box::new(BoostQuery::new(Box::new(q), boost))));
                }
            }
        }
        if clauses.is_empty() {
            return Ok(Box::new(AllQuery));
        }
        Ok(Box::new(BooleanQuery::new(clauses)))
    }

    fn grams_query(&self, term: &QueryTerm) -> Result<Box<dyn Query>, SearchError> {
        let field = self.fields.grams;
        let gram = |s: &str| Term::from_field_text(field, s);
        Ok(match term {
            QueryTerm::Word(w) => Box::new(TermQuery::new(gram(w), IndexRecordOption::WithFreqs)),
            QueryTerm::Cjk(t) => {
                let chars: Vec<char> = t.chars().collect();
                match chars.len() {
                    // A lone character: itself (a one-character run) or any gram holding it.
                    // Only CJK characters get here, none of which is regex syntax.
                    1 => Box::new(RegexQuery::from_pattern(
                        &format!("{c}.?|.{c}", c = chars[0]),
                        field,
                    )?),
                    2 => Box::new(TermQuery::new(gram(t), IndexRecordOption::WithFreqs)),
                    _ => {
                        let grams = chars
                            .windows(2)
                            .enumerate()
                            .map(|(i, w)| (i, gram(&w.iter().collect::<String>())))
                            .collect();
                        Box::new(PhraseQuery::new_with_offset(grams))
                    }
                }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queries_split_into_cjk_and_word_terms_without_syntax() {
        assert_eq!(
            query_terms("5G通信 AND (\"锂电池\") OR -x:y* 5g"),
            vec![
                QueryTerm::Word("5g".into()),
                QueryTerm::Cjk("通信".into()),
                QueryTerm::Word("and".into()),
                QueryTerm::Cjk("锂电池".into()),
                QueryTerm::Word("or".into()),
                QueryTerm::Word("x".into()),
                QueryTerm::Word("y".into()),
            ]
        );
        assert!(query_terms(" ，。!!\"\" ").is_empty());
    }
}
