//! Hits: what a result list shows of each match on a page — read back from the document's
//! stored fields, its audience checked once more, and snippets marking where the terms are.
//!
//! **Why the audience is checked again.** The query already filtered by audience, so a
//! document of another audience reaching this point is a bug in the index: it is refused with
//! [`SearchError::Inconsistent`](super::SearchError::Inconsistent) rather than served. A
//! public readers' document (`public-view`) is shown as `public`.
//!
//! **Snippets.** The terms are found the way the query matched them, over the same folded text
//! ([`super::text`]): CJK terms as substrings, words as whole runs. A snippet is a short text
//! whole, else a window of [`SNIPPET_CHARS`] characters showing, where the text allows,
//! [`SNIPPET_LEAD`] characters before the first match; HTML-escaped, every match in `<em>`, `…`
//! where the text was cut. Only the page's hits are read back, so this costs the same whatever
//! the number of matches.
//!
//! What it may not touch: records (everything shown was stored from the index view when the
//! document was made), the index's indexed fields and the collector's order.

use rix_schema::sensitivity::Entitlements;
use serde::Serialize;
use tantivy::schema::{Field, Value as _};
use tantivy::{DocAddress, Searcher, TantivyDocument};

use super::collect::Hit;
use super::document::{AUDIENCE_ALL, AUDIENCE_PUBLIC_ONLY, audiences_for};
use super::query::QueryTerm;
use super::text::{Folded, RunKind};
use super::{SearchError, SearchIndex};

/// Longest highlight snippet, in characters (before marks and ellipses).
const SNIPPET_CHARS: usize = 100;
/// How much text a snippet shows before its first match.
const SNIPPET_LEAD: usize = 24;

/// One matching unified entry, as a result list shows it. Everything here comes from the index
/// view, so nothing in it is commercial, personal or submitter-confidential.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SearchHit {
    /// The unified entry (`GET /v1/entries/{unified_id}`).
    pub unified_id: String,
    /// `achievement` or `funded_project`.
    pub kind: String,
    /// Title.
    pub title: String,
    /// Year (registration, else research end; projects: start), if known.
    pub year: Option<u64>,
    /// Province code, if known.
    pub region: Option<String>,
    /// `public` or `internal`.
    pub secrecy: String,
    /// BM25 score (0 without `q`).
    pub score: f32,
    /// Where the terms were found, HTML-escaped, matches wrapped in `<em>`.
    pub highlights: Vec<Highlight>,
}

/// A snippet of one text field with the query's matches marked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Highlight {
    /// `title`, `abstract`, `keywords`, `institutions`, `people` or `numbers`.
    pub field: String,
    /// HTML: escaped text, matches in `<em>…</em>`, `…` where the text was cut.
    pub snippet: String,
}

/// The stored-only text fields a highlight may come from, after the title, with their names.
const HIGHLIGHT_FIELDS: [&str; 5] = ["abstract", "keywords", "institutions", "people", "numbers"];

impl SearchIndex {
    pub(super) fn hit(
        &self,
        searcher: &Searcher,
        hit: &Hit,
        terms: &[QueryTerm],
        entitlements: Entitlements,
    ) -> Result<SearchHit, SearchError> {
        let f = &self.fields;
        let doc: TantivyDocument = searcher.doc(DocAddress::new(hit.segment, hit.doc))?;
        let text = |field: Field| {
            doc.get_first(field)
                .and_then(|v| v.as_str())
                .map(str::to_owned)
        };
        let mut secrecy = text(f.secrecy).unwrap_or_default();
        let uid = text(f.uid).unwrap_or_default();
        let visible = audiences_for(entitlements).contains(&secrecy.as_str());
        if secrecy == AUDIENCE_PUBLIC_ONLY {
            secrecy = AUDIENCE_ALL.to_owned();
        }
        if !visible {
            return Err(SearchError::Inconsistent(format!(
                "entry {uid} ({secrecy}) matched a query for {entitlements}"
            )));
        }
        let mut highlights = Vec::new();
        if !terms.is_empty() {
            let stored = [
                f.hl_abstract,
                f.hl_keywords,
                f.hl_institutions,
                f.hl_people,
                f.hl_numbers,
            ];
            let sources = std::iter::once(("title", f.title))
                .chain(HIGHLIGHT_FIELDS.iter().copied().zip(stored));
            for (name, field) in sources {
                if let Some(s) = text(field).and_then(|t| snippet(&t, terms)) {
                    highlights.push(Highlight {
                        field: name.to_owned(),
                        snippet: s,
                    });
                }
            }
        }
        Ok(SearchHit {
            unified_id: uid,
            kind: text(f.kind).unwrap_or_default(),
            title: text(f.title).unwrap_or_default(),
            year: doc
                .get_first(f.year)
                .and_then(|v| v.as_u64())
                .filter(|y| *y > 0),
            region: doc
                .get_first(f.region)
                .and_then(|v| v.as_u64())
                .filter(|r| *r > 0)
                .map(|r| format!("{r:06}")),
            secrecy,
            score: hit.score,
            highlights,
        })
    }
}

/// A snippet of `text` around its first match, HTML-escaped, matches in `<em>`; `None` if no
/// term occurs in it.
fn snippet(text: &str, terms: &[QueryTerm]) -> Option<String> {
    let ranges = match_ranges(text, terms);
    let first = ranges.first()?;
    let chars: Vec<char> = text.chars().collect();
    let (start, end) = if chars.len() <= SNIPPET_CHARS {
        (0, chars.len())
    } else {
        let end = (first.0.saturating_sub(SNIPPET_LEAD) + SNIPPET_CHARS).min(chars.len());
        (end.saturating_sub(SNIPPET_CHARS), end)
    };
    let mut out = String::with_capacity((end - start) * 3 + 16);
    if start > 0 {
        out.push('…');
    }
    let mut at = start;
    for &(s, e) in &ranges {
        let (s, e) = (s.max(start), e.min(end));
        if s >= e {
            continue;
        }
        escape_into(&mut out, &chars[at..s]);
        out.push_str("<em>");
        escape_into(&mut out, &chars[s..e]);
        out.push_str("</em>");
        at = e;
    }
    escape_into(&mut out, &chars[at..end]);
    if end < chars.len() {
        out.push('…');
    }
    Some(out)
}

/// Where `terms` occur in `text`: sorted, merged ranges of original character indexes.
fn match_ranges(text: &str, terms: &[QueryTerm]) -> Vec<(usize, usize)> {
    let folded = Folded::new(text);
    let mut ranges: Vec<(usize, usize)> = Vec::new();
    let mut runs: Option<Vec<(RunKind, usize, usize)>> = None;
    for term in terms {
        match term {
            QueryTerm::Cjk(t) => {
                let needle: Vec<char> = t.chars().collect();
                if needle.is_empty() || needle.len() > folded.chars.len() {
                    continue;
                }
                for i in 0..=folded.chars.len() - needle.len() {
                    if folded.chars[i..i + needle.len()] == needle[..] {
                        ranges.push((folded.origin[i], folded.origin[i + needle.len() - 1] + 1));
                    }
                }
            }
            QueryTerm::Word(w) => {
                let runs = runs.get_or_insert_with(|| folded.runs());
                for &(kind, start, end) in runs.iter() {
                    if kind == RunKind::Word
                        && end - start == w.chars().count()
                        && folded.chars[start..end].iter().copied().eq(w.chars())
                    {
                        ranges.push((folded.origin[start], folded.origin[end - 1] + 1));
                    }
                }
            }
        }
    }
    ranges.sort_unstable();
    let mut merged: Vec<(usize, usize)> = Vec::with_capacity(ranges.len());
    for (s, e) in ranges {
        match merged.last_mut() {
            Some(last) if s <= last.1 => last.1 = last.1.max(e),
            _ => merged.push((s, e)),
        }
    }
    merged
}

fn escape_into(out: &mut String, chars: &[char]) {
    for &c in chars {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(c),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::search::query::query_terms;

    #[test]
    fn snippets_escape_html_and_mark_every_match() {
        let terms = query_terms("电池 5g");
        assert_eq!(
            snippet("<b>电池</b>与5G电池&", &terms).unwrap(),
            "&lt;b&gt;<em>电池</em>&lt;/b&gt;与<em>5G电池</em>&amp;"
        );
        assert!(snippet("VoLTE 通信", &query_terms("lte")).is_none());
        let long = format!("{}电池{}", "甲".repeat(300), "乙".repeat(300));
        let s = snippet(&long, &query_terms("电池")).unwrap();
        assert!(s.starts_with('…') && s.ends_with('…') && s.contains("<em>电池</em>"));
        assert_eq!(s.chars().count(), SNIPPET_CHARS + 2 + "<em></em>".len());
    }
}
