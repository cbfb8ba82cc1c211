//! Identifiers: unified social credit codes (统一社会信用代码), region codes (GB/T 2260, from a
//! code or a province's name) and registration numbers (批准登记号).
//!
//! Each is normalised the way people mistype it (spaces, full-width characters, lower case)
//! and then checked by the very rule the validator applies (`rix_schema::codes`), so a code
//! that passes here passes at the node.
//!
//! What it may not touch: the rules themselves, which are `rix_schema::codes`'s.

use rix_schema::codes::{
    self, PROVINCES, RegionError, RegistrationNumber, RegistrationNumberError, UsccError,
};

use super::text::to_halfwidth;
use super::{ConvertError, cell_display};
use crate::row::Cell;

/// Half-width, white space removed, upper case: how a code is compared and stored.
fn code_text(cell: &Cell) -> Option<String> {
    let text = cell_display(cell);
    let code: String = to_halfwidth(&text)
        .chars()
        .filter(|c| !c.is_whitespace())
        .map(|c| c.to_ascii_uppercase())
        .collect();
    (!code.is_empty()).then_some(code)
}

fn uscc_reason(e: &UsccError) -> String {
    match e {
        UsccError::Length(n) => format!("应为 18 位，实为 {n} 位"),
        UsccError::Character { position, found } => {
            format!("第 {position} 位的「{found}」不允许出现（不使用 I、O、S、V、Z）")
        }
        UsccError::Region(r) => format!("第 3–8 位 {r} 不是已知的行政区划代码"),
        UsccError::CheckCharacter { found, expected } => {
            format!("校验码为 {found}，按前 17 位应为 {expected}")
        }
    }
}

/// Converts a unified social credit code: trimmed, full-width to half-width, spaces removed,
/// upper-cased, then checked (length, characters, region, GB 32100 check character).
pub fn convert_uscc(cell: &Cell) -> Result<Option<String>, ConvertError> {
    let Some(code) = code_text(cell) else {
        return Ok(None);
    };
    codes::check_uscc(&code).map_err(|e| {
        ConvertError::new(
            format!("统一社会信用代码「{code}」无效：{}", uscc_reason(&e)),
            format!("unified social credit code {code:?} is not valid: {e}"),
        )
    })?;
    Ok(Some(code))
}

/// A province's name without its suffix ("云南", "内蒙古", "广西"), as people often write it.
fn short_name(full: &str) -> &str {
    for suffix in [
        "壮族自治区",
        "回族自治区",
        "维吾尔自治区",
        "特别行政区",
        "自治区",
        "省",
        "市",
    ] {
        if let Some(short) = full.strip_suffix(suffix) {
            return short;
        }
    }
    full
}

fn region_reason(e: &RegionError) -> &'static str {
    match e {
        RegionError::Format(_) => "应为 6 位数字",
        RegionError::UnknownProvince(_) => "前两位不是省级行政区划代码",
        RegionError::CountyWithoutCity(_) => "有县级部分却没有地市级部分",
    }
}

/// Converts a region: a six-digit GB/T 2260 code (checked), or a province's name, full or
/// short, possibly followed by a city ("云南省", "云南", "云南省昆明市") → the province's code
/// (`530000`). A city or county is not resolved from its name: there is no table of them (see
/// `rix_schema::codes`); a finer region must be given as its code.
pub fn convert_region(cell: &Cell) -> Result<Option<String>, ConvertError> {
    let Some(text) = code_text(cell) else {
        return Ok(None);
    };
    if text.bytes().all(|b| b.is_ascii_digit()) {
        return codes::check_region(&text)
            .map(|()| Some(text.clone()))
            .map_err(|e| {
                ConvertError::new(
                    format!("行政区划代码「{text}」无效：{}", region_reason(&e)),
                    format!("region code {text:?} is not valid: {e}"),
                )
            });
    }
    let found = PROVINCES
        .iter()
        .find(|(_, name)| text.starts_with(name) || text.starts_with(short_name(name)));
    match found {
        Some((prefix, _)) => Ok(Some(format!("{prefix}0000"))),
        None => Err(ConvertError::new(
            format!(
                "「{text}」不是行政区划代码或省级行政区名称；应为 6 位代码（如 530000）或省名（如 云南省）"
            ),
            format!(
                "{text:?} is neither a region code nor a province's name; expected a 6-digit GB/T 2260 code (e.g. 530000) or a province (e.g. 云南省)"
            ),
        )),
    }
}

/// Converts a registration number (批准登记号): normalised like a code, then parsed and checked
/// (issuer code, year, category flag Y/J/R, serial) with
/// [`RegistrationNumber::parse`]; kept in its national text form.
pub fn convert_registration_no(cell: &Cell) -> Result<Option<String>, ConvertError> {
    let Some(text) = code_text(cell) else {
        return Ok(None);
    };
    RegistrationNumber::parse(&text).map_err(|e| {
        let why = match &e {
            RegistrationNumberError::Format(_) => {
                "应为 发证机关代码（6 位行政区划或 3 位部门代码）+ 4 位年份 + Y/J/R + 4–6 位序号"
                    .to_owned()
            }
            RegistrationNumberError::Region { code, source } => {
                format!("发证机关代码 {code} {}", region_reason(source))
            }
            RegistrationNumberError::Year(y) => format!("年份 {y} 不在 1949–2100 之间"),
        };
        ConvertError::new(
            format!("批准登记号「{text}」无效：{why}"),
            format!("registration number {text:?} is not valid: {e}"),
        )
    })?;
    // Kept as written (normalised): a serial of five or six digits stays as issued.
    Ok(Some(text))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> Cell {
        Cell::Text(s.into())
    }

    #[test]
    fn usccs_are_normalised_then_checked() {
        assert_eq!(
            convert_uscc(&t(" ９１３３０１００７９９６５５０５８ｂ "))
                .unwrap()
                .as_deref(),
            Some("91330100799655058B")
        );
        assert_eq!(
            convert_uscc(&t("9133 0100 7996 5505 8b"))
                .unwrap()
                .as_deref(),
            Some("91330100799655058B")
        );
        let err = convert_uscc(&t("91330100799655058C")).unwrap_err();
        assert!(
            err.zh.contains("校验码为 C") && err.en.contains("check character"),
            "{err:?}"
        );
        assert!(
            convert_uscc(&t("9133010079965505"))
                .unwrap_err()
                .zh
                .contains("18 位")
        );
        assert_eq!(convert_uscc(&Cell::Empty).unwrap(), None);
    }

    #[test]
    fn regions_from_codes_or_province_names() {
        assert_eq!(
            convert_region(&t("530102")).unwrap().as_deref(),
            Some("530102")
        );
        assert_eq!(
            convert_region(&Cell::Number(210000.0)).unwrap().as_deref(),
            Some("210000")
        );
        assert_eq!(
            convert_region(&t("云南省")).unwrap().as_deref(),
            Some("530000")
        );
        assert_eq!(
            convert_region(&t("云南")).unwrap().as_deref(),
            Some("530000")
        );
        assert_eq!(
            convert_region(&t("云南省昆明市")).unwrap().as_deref(),
            Some("530000")
        );
        assert_eq!(
            convert_region(&t("内蒙古")).unwrap().as_deref(),
            Some("150000")
        );
        assert_eq!(
            convert_region(&t("广西壮族自治区")).unwrap().as_deref(),
            Some("450000")
        );
        assert_eq!(
            convert_region(&t("北京")).unwrap().as_deref(),
            Some("110000")
        );
        assert!(
            convert_region(&t("990000"))
                .unwrap_err()
                .zh
                .contains("省级")
        );
        assert!(convert_region(&t("火星")).is_err());
    }

    #[test]
    fn registration_numbers_are_checked() {
        assert_eq!(
            convert_registration_no(&t(" 5300002024y0012 "))
                .unwrap()
                .as_deref(),
            Some("5300002024Y0012")
        );
        assert_eq!(
            convert_registration_no(&t("３４８２０２３Ｊ０００１２３"))
                .unwrap()
                .as_deref(),
            Some("3482023J000123")
        );
        let err = convert_registration_no(&t("5300002024X0012")).unwrap_err();
        assert!(err.zh.contains("5300002024X0012"), "{err:?}");
        assert!(convert_registration_no(&t("9900002024Y0012")).is_err());
    }
}
