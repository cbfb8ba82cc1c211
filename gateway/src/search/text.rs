//! Text: how Chinese and English text is folded and segmented, and the two tokenizers that
//! cut it for the index. The same folding and the same runs serve the index, the query
//! ([`super::query`] splits `q` into terms with [`Folded::runs`]) and the highlights
//! ([`super::highlight`] finds those terms in stored text with them), so that what a query
//! term matches, what the index holds and what a snippet marks are one and the same thing.
//!
//! **Chinese text, two ways.** Every searchable text is indexed twice:
//! - `grams`: our own tokenizer — each run of CJK characters becomes its overlapping
//!   two-character grams (a lone character stays a one-character token), each run of other
//!   letters and digits becomes one lower-cased word, full-width forms fold to half-width.
//!   *Matching* uses only this field, which is what guarantees 100 % recall: a Chinese query
//!   term of two characters is one gram, a longer one is the phrase of its grams at consecutive
//!   positions (runs are separated by a position gap, so a phrase never spans two runs), a
//!   single character matches the grams that contain it. A Chinese term therefore matches
//!   exactly the documents whose text contains it as a substring.
//! - `title` and `body`: jieba (`tantivy-jieba`, search mode, no HMM, lower-cased) — *scoring*
//!   only: the query's jieba words add a BM25 bonus, title words weighing more (which texts
//!   `body` holds, and why not the abstract, is said in [`super::document`]). Jieba's search
//!   mode alone does not guarantee recall: it emits only the dictionary sub-words of a word it
//!   cut, and a two-character word across one of its cut points is never emitted (the company
//!   name `玉溪恒通信息科技` cuts as `恒通/信息`, so `通信` would be missed there); a unit test
//!   shows it, and the integration tests check every such word they find in the sample corpus.
//!
//! What it may not touch: records, the schema, entitlements — it sees strings only. What a
//! token is belongs to the index format: a change here that changes any token must bump
//! [`FORMAT`](super::FORMAT), so that an index cut the old way is rebuilt, not misread.

use tantivy::tokenizer::{Token, TokenStream, Tokenizer};

pub(super) const GRAMS_TOKENIZER: &str = "rix_grams";
pub(super) const WORDS_TOKENIZER: &str = "rix_jieba";

/// Whether `c` is written without spaces between words (Han, kana, Hangul): such runs are
/// indexed as two-character grams.
fn is_cjk(c: char) -> bool {
    matches!(c as u32,
        0x3007 | 0x3040..=0x30FF | 0x3400..=0x4DBF | 0x4E00..=0x9FFF | 0xAC00..=0xD7AF
        | 0xF900..=0xFAFF | 0x20000..=0x3134F)
}

/// Full-width ASCII to half-width, then lower case (which may yield several characters).
fn fold(c: char) -> impl Iterator<Item = char> {
    let c = match c {
        '\u{FF01}'..='\u{FF5E}' => char::from_u32(c as u32 - 0xFEE0).unwrap_or(c),
        '\u{3000}' => ' ',
        _ => c,
    };
    c.to_lowercase()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum RunKind {
    Cjk,
    Word,
}

/// Folded text with, for each folded character, the index of the original character.
pub(super) struct Folded {
    pub(super) chars: Vec<char>,
    pub(super) origin: Vec<usize>,
}

impl Folded {
    pub(super) fn new(text: &str) -> Folded {
        let mut chars = Vec::with_capacity(text.len() / 2);
        let mut origin = Vec::with_capacity(text.len() / 2);
        for (i, c) in text.chars().enumerate() {
            for f in fold(c) {
                chars.push(f);
                origin.push(i);
            }
        }
        Folded { chars, origin }
    }

    /// Maximal runs of CJK characters and of other letters/digits: `(kind, start, end)` in
    /// folded characters.
    pub(super) fn runs(&self) -> Vec<(RunKind, usize, usize)> {
        let mut runs = Vec::new();
        let mut current: Option<(RunKind, usize)> = None;
        for (i, &c) in self.chars.iter().enumerate() {
            let kind = if is_cjk(c) {
                Some(RunKind::Cjk)
            } else if c.is_alphanumeric() {
                Some(RunKind::Word)
            } else {
                None
            };
            match (current, kind) {
                (Some((k, _)), Some(n)) if k == n => {}
                (Some((k, s)), _) => {
                    runs.push((k, s, i));
                    current = kind.map(|n| (n, i));
                }
                (None, _) => current = kind.map(|n| (n, i)),
            }
        }
        if let Some((k, s)) = current {
            runs.push((k, s, self.chars.len()));
        }
        runs
    }
}

/// The `grams` tokenizer (see the module doc): CJK runs to overlapping two-character grams, a
/// lone CJK character to itself, other letter/digit runs to one lower-cased word; one position
/// of gap after every run so that phrases never span two runs.
#[derive(Clone, Default)]
pub(super) struct GramsTokenizer;

/// One token of the `grams` field: folded characters `from..to` at `position`.
#[derive(Clone, Copy)]
struct GramSpan {
    from: u32,
    to: u32,
    position: u32,
}

/// The tokens of one text: spans computed up front (one allocation each for the folded text,
/// its offsets and the spans), token text written into one reused buffer.
pub(super) struct GramsTokenStream {
    folded: Folded,
    /// Byte offset in the original text of each original character, and the text's length.
    bytes: Vec<usize>,
    spans: Vec<GramSpan>,
    next: usize,
    token: Token,
}

impl TokenStream for GramsTokenStream {
    fn advance(&mut self) -> bool {
        let Some(span) = self.spans.get(self.next).copied() else {
            return false;
        };
        self.next += 1;
        let (from, to) = (span.from as usize, span.to as usize);
        self.token.text.clear();
        self.token.text.extend(&self.folded.chars[from..to]);
        self.token.position = span.position as usize;
        self.token.offset_from = self.bytes[self.folded.origin[from]];
        self.token.offset_to = self.bytes[self.folded.origin[to - 1] + 1];
        true
    }

    fn token(&self) -> &Token {
        &self.token
    }

    fn token_mut(&mut self) -> &mut Token {
        &mut self.token
    }
}

impl Tokenizer for GramsTokenizer {
    type TokenStream<'a> = GramsTokenStream;

    fn token_stream<'a>(&'a mut self, text: &'a str) -> GramsTokenStream {
        let bytes: Vec<usize> = text
            .char_indices()
            .map(|(b, _)| b)
            .chain(std::iter::once(text.len()))
            .collect();
        let folded = Folded::new(text);
        let mut spans = Vec::with_capacity(folded.chars.len());
        let mut position = 0u32;
        for (kind, start, end) in folded.runs() {
            let (start, end) = (start as u32, end as u32);
            let mut push = |from: u32, to: u32, position: u32| {
                spans.push(GramSpan { from, to, position });
            };
            match kind {
                RunKind::Cjk if end - start == 1 => {
                    push(start, end, position);
                    position += 2;
                }
                RunKind::Cjk => {
                    for i in start..end - 1 {
                        push(i, i + 2, position);
                        position += 1;
                    }
                    position += 1;
                }
                RunKind::Word => {
                    push(start, end, position);
                    position += 2;
                }
            }
        }
        GramsTokenStream {
            folded,
            bytes,
            spans,
            next: 0,
            token: Token::default(),
        }
    }
}

/// Jieba in search mode, keeping only tokens with a letter or digit, lower-cased: the words
/// that score a match.
#[derive(Clone)]
pub(super) struct WordsTokenizer(tantivy_jieba::JiebaTokenizer);

impl Default for WordsTokenizer {
    /// Without jieba's HMM guesses at unknown words: the grams field already finds every
    /// substring, the words only rank, and the HMM cost 6 % of the index build.
    fn default() -> Self {
        WordsTokenizer(tantivy_jieba::JiebaTokenizer::with_hmm(false))
    }
}

/// [`WordsTokenizer`]'s stream.
pub(super) struct WordsTokenStream<'a>(tantivy_jieba::JiebaTokenStream<'a>);

impl TokenStream for WordsTokenStream<'_> {
    fn advance(&mut self) -> bool {
        while self.0.advance() {
            if self.0.token().text.chars().any(char::is_alphanumeric) {
                let token = self.0.token_mut();
                if token.text.chars().any(char::is_uppercase) {
                    token.text = token.text.to_lowercase();
                }
                return true;
            }
        }
        false
    }

    fn token(&self) -> &Token {
        self.0.token()
    }

    fn token_mut(&mut self) -> &mut Token {
        self.0.token_mut()
    }
}

impl Tokenizer for WordsTokenizer {
    type TokenStream<'a> = WordsTokenStream<'a>;

    fn token_stream<'a>(&'a mut self, text: &'a str) -> WordsTokenStream<'a> {
        WordsTokenStream(self.0.token_stream(text))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tokens(tokenizer: &mut impl Tokenizer, text: &str) -> Vec<(String, usize)> {
        let mut stream = tokenizer.token_stream(text);
        let mut out = Vec::new();
        while let Some(t) = stream.next() {
            out.push((t.text.clone(), t.position));
        }
        out
    }

    #[test]
    fn grams_cover_every_two_character_substring_and_keep_runs_apart() {
        let t = tokens(&mut GramsTokenizer, "锂离子电池，5G通信 Ｗh/kg 钠");
        let texts: Vec<&str> = t.iter().map(|(s, _)| s.as_str()).collect();
        assert_eq!(
            texts,
            [
                "锂离", "离子", "子电", "电池", "5g", "通信", "wh", "kg", "钠"
            ]
        );
        // Consecutive positions inside a run, a gap between runs.
        let positions: Vec<usize> = t.iter().map(|(_, p)| *p).collect();
        assert_eq!(positions, [0, 1, 2, 3, 5, 7, 9, 11, 13]);
    }

    #[test]
    fn jieba_search_mode_alone_misses_words_across_its_cuts() {
        // Why the grams field exists: jieba cuts the company name 玉溪恒通信息科技 as 恒通/信息,
        // so 通信 is never a token there, though it is a substring (the sample corpus has it).
        // Search mode does add the sub-words of long words (电池 of 锂离子电池).
        let mut words = WordsTokenizer::default();
        let cut: Vec<String> = tokens(&mut words, "玉溪恒通信息科技有限公司")
            .into_iter()
            .map(|t| t.0)
            .collect();
        assert!(!cut.contains(&"通信".to_owned()), "{cut:?}");
        let long: Vec<String> = tokens(&mut words, "高比能锂离子电池")
            .into_iter()
            .map(|t| t.0)
            .collect();
        assert!(long.contains(&"电池".to_owned()), "{long:?}");
        let grams: Vec<String> = tokens(&mut GramsTokenizer, "玉溪恒通信息科技有限公司")
            .into_iter()
            .map(|t| t.0)
            .collect();
        assert!(grams.contains(&"通信".to_owned()));
    }
}
