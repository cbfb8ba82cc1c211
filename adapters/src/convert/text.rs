//! Text normalisation shared by every converter and by header matching: full-width →
//! half-width, cleaning a cell's text for a one-line or a multi-line field, splitting a list
//! held in one cell, and keywords.
//!
//! Why here and not in each converter: "１２．５", "TRL５" and "成果 名称\n" must be read the same
//! way wherever they appear, so there is one function per rule.
//!
//! What it may not touch: meaning. Nothing here knows a field or a code list.

use std::borrow::Cow;

/// Full-width forms (U+FF01–U+FF5E) to their ASCII counterparts and the ideographic space
/// (U+3000) and no-break space (U+00A0) to a space. Everything else (Chinese punctuation such
/// as 、。「」) is kept. Borrows when there is nothing to change, which is the common case.
pub fn to_halfwidth(s: &str) -> Cow<'_, str> {
    if !s.chars().any(needs_halfwidth) {
        return Cow::Borrowed(s);
    }
    Cow::Owned(s.chars().map(halfwidth_char).collect())
}

fn needs_halfwidth(c: char) -> bool {
    matches!(c, '\u{FF01}'..='\u{FF5E}' | '\u{3000}' | '\u{00A0}')
}

/// One character to half-width (see [`to_halfwidth`]).
pub fn halfwidth_char(c: char) -> char {
    match c {
        '\u{FF01}'..='\u{FF5E}' => char::from_u32(u32::from(c) - 0xFEE0).unwrap_or(c),
        '\u{3000}' | '\u{00A0}' => ' ',
        _ => c,
    }
}

/// Characters that are junk wherever they appear in a cell: zero-width space and joiners, and
/// a byte-order mark pasted inside text.
fn is_invisible(c: char) -> bool {
    matches!(c, '\u{200B}' | '\u{200C}' | '\u{200D}' | '\u{FEFF}')
}

/// Cleans a cell's text for a text field: trims (white space includes U+3000), drops
/// zero-width characters, writes line breaks as `\n` (CR LF and lone CR included) and, for a
/// one-line field (`multiline == false`), joins the lines: a cell wrapped with Alt+Enter in
/// Excel is still one title. Lines are joined without a space unless both sides are ASCII
/// letters or digits ("基于…的\n研究" → "基于…的研究", "deep\nlearning" → "deep learning").
pub fn clean_text(s: &str, multiline: bool) -> String {
    let trimmed = s.trim();
    // Bytes first: a line break is \r or \n, and the invisible characters start with 0xE2
    // (U+200B–U+200D) or 0xEF (U+FEFF); most cells have none of these bytes.
    let suspect = trimmed
        .bytes()
        .any(|b| matches!(b, b'\r' | b'\n' | 0xE2 | 0xEF));
    if !suspect
        || !trimmed
            .chars()
            .any(|c| matches!(c, '\r' | '\n') || is_invisible(c))
    {
        return trimmed.to_owned();
    }
    let unified: String = trimmed
        .replace("\r\n", "\n")
        .replace('\r', "\n")
        .chars()
        .filter(|c| !is_invisible(*c))
        .collect();
    if multiline {
        return unified
            .lines()
            .map(str::trim_end)
            .collect::<Vec<_>>()
            .join("\n")
            .trim()
            .to_owned();
    }
    let mut out = String::with_capacity(unified.len());
    for line in unified.split('\n').map(str::trim).filter(|l| !l.is_empty()) {
        if let (Some(prev), Some(next)) = (out.chars().last(), line.chars().next())
            && prev.is_ascii_alphanumeric()
            && next.is_ascii_alphanumeric()
        {
            out.push(' ');
        }
        out.push_str(line);
    }
    out
}

/// The key a header cell (or an alias in a mapping file) is compared by: half-width, every
/// white space removed (real headers have spaces and line breaks inside: "成 果 名 称",
/// "第一完成\n单位"), the "required" marks `*` and `(必填)`/`(选填)`/`(必选)`/`(可选)`
/// removed, a trailing colon removed, ASCII letters lower-cased.
pub fn header_key(s: &str) -> String {
    let mut key: String = to_halfwidth(s)
        .chars()
        .filter(|c| !c.is_whitespace() && *c != '*' && !is_invisible(*c))
        .map(|c| c.to_ascii_lowercase())
        .collect();
    for mark in ["(必填)", "(选填)", "(必选)", "(可选)"] {
        if key.contains(mark) {
            key = key.replace(mark, "");
        }
    }
    while key.ends_with(':') {
        key.pop();
    }
    key
}

/// Separators of a list held in one cell, by default: Chinese and ASCII semicolons and
/// commas, the enumeration comma 、 and line breaks. Spaces are not among them: a two-character
/// name is often padded ("张  三").
pub const LIST_SEPARATORS: &str = "；;，,、\n";

/// Separators of keywords: [`LIST_SEPARATORS`] and any white space (the national form's
/// keywords are often separated by spaces).
pub const KEYWORD_SEPARATORS: &str = "；;，,、\n ";

/// Splits a cell's text into items at any of `separators` (a space among them stands for any
/// white space, the ideographic space included), trimming each and dropping empty ones. Items
/// are not de-duplicated (a list of people may hold the same name twice).
pub fn split_list(s: &str, separators: &str) -> Vec<String> {
    // The separators as chars, once per cell: `str::contains(char)` per character of the
    // cell searched the separator text for its UTF-8 bytes, the costliest step of mapping a
    // row of a list-heavy sheet.
    let mut seps = ['\0'; 16];
    let mut n = 0;
    let mut any_space = false;
    let mut many = Vec::new();
    for c in separators.chars() {
        any_space |= c == ' ';
        if n < seps.len() {
            seps[n] = c;
            n += 1;
        } else {
            many.push(c);
        }
    }
    let seps = &seps[..n];
    let is_separator =
        |c: char| seps.contains(&c) || (any_space && c.is_whitespace()) || many.contains(&c);
    let mut out = Vec::new();
    for item in s.split(is_separator) {
        if !item.is_empty() {
            let item = clean_text(item, false);
            if !item.is_empty() {
                out.push(item);
            }
        }
    }
    out
}

/// Splits keywords at [`KEYWORD_SEPARATORS`], trims them and drops repeats (compared without
/// letter case, as the validator compares them), keeping the first spelling.
pub fn split_keywords(s: &str, separators: &str) -> Vec<String> {
    let mut seen: Vec<String> = Vec::new();
    let mut out = Vec::new();
    for item in split_list(s, separators) {
        let key = item.to_lowercase();
        if !seen.contains(&key) {
            seen.push(key);
            out.push(item);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn full_width_letters_digits_punctuation_and_ideographic_space_become_half_width() {
        assert_eq!(to_halfwidth("１２．５"), "12.5");
        assert_eq!(to_halfwidth("ＴＲＬ５"), "TRL5");
        assert_eq!(to_halfwidth("（必填）"), "(必填)");
        assert_eq!(to_halfwidth("a\u{3000}b"), "a b");
        assert_eq!(to_halfwidth("成果、名称。"), "成果、名称。");
        assert!(matches!(to_halfwidth("plain"), Cow::Borrowed(_)));
    }

    #[test]
    fn one_line_text_joins_wrapped_lines() {
        assert_eq!(
            clean_text("  基于深度学习的\r\n  研究 ", false),
            "基于深度学习的研究"
        );
        assert_eq!(clean_text("deep\nlearning", false), "deep learning");
        assert_eq!(clean_text("\u{3000}标题\u{200B}\u{3000}", false), "标题");
        assert_eq!(clean_text("第一段\r\n第二段\r\n", true), "第一段\n第二段");
    }

    #[test]
    fn header_keys_ignore_spaces_line_breaks_marks_and_width() {
        assert_eq!(header_key(" 成 果\n名称 "), "成果名称");
        assert_eq!(header_key("*成果名称（必填）"), "成果名称");
        assert_eq!(header_key("ＴＲＬ："), "trl");
        assert_eq!(header_key("经费（万元）"), "经费(万元)");
    }

    #[test]
    fn lists_split_on_chinese_and_ascii_separators() {
        assert_eq!(
            split_list("甲大学；乙研究所;丙公司，丁、戊\n己", LIST_SEPARATORS),
            ["甲大学", "乙研究所", "丙公司", "丁", "戊", "己"]
        );
        assert_eq!(
            split_list("张  三、李四", LIST_SEPARATORS),
            ["张  三", "李四"]
        );
        assert!(split_list(" ；, ", LIST_SEPARATORS).is_empty());
    }

    #[test]
    fn keywords_split_on_spaces_too_and_drop_repeats() {
        assert_eq!(
            split_keywords(
                "锂电池；储能 ,储能、LiDAR  lidar\u{3000}电池",
                KEYWORD_SEPARATORS
            ),
            ["锂电池", "储能", "LiDAR", "电池"]
        );
    }
}
