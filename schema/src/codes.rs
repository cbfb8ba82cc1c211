//! Code-list rules that JSON Schema cannot express: the unified social credit code check
//! character (GB 32100-2015), administrative region codes (GB/T 2260) and the national
//! registration number (批准登记号) of an achievement.
//!
//! The province-level region table is shipped here; lower levels change every year, so only
//! their shape is checked (a county code under a known province, no county part without a city
//! part). Keeping a full county table would make every annual revision a breaking change.
//!
//! What it may not touch: records or JSON. Each rule takes one string and says what is wrong with
//! it, so that the validator, the node's review (the registration numbers it issues) and the
//! node's config check (`registration_issuer`) apply the very same rule.

/// The 31 characters a USCC may contain (GB 32100: digits and capitals except I, O, S, V, Z).
pub const USCC_CHARSET: &[u8; 31] = b"0123456789ABCDEFGHJKLMNPQRTUWXY";

/// Weights of positions 1–17 of a USCC for its check character (3^(i) mod 31).
const USCC_WEIGHTS: [u32; 17] = [
    1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28,
];

/// Why a unified social credit code is not valid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UsccError {
    /// Not 18 characters.
    #[error("a unified social credit code has 18 characters, this one has {0}")]
    Length(usize),
    /// A character outside the GB 32100 character set.
    #[error(
        "character {found:?} at position {position} is not allowed in a unified social credit code (I, O, S, V, Z and lower case never appear)"
    )]
    Character {
        /// 1-based position of the character.
        position: usize,
        /// The offending character.
        found: char,
    },
    /// Positions 3–8 are not a known region (or 100000 for central bodies).
    #[error("positions 3-8 ({0}) are not a known administrative region code")]
    Region(String),
    /// The check character does not match the first 17.
    #[error("check character is {found:?} but the first 17 characters require {expected:?}")]
    CheckCharacter {
        /// What the code carries.
        found: char,
        /// What GB 32100 computes.
        expected: char,
    },
}

/// Computes the GB 32100 check character for the first 17 characters of a USCC.
///
/// Returns `None` if any of them is outside [`USCC_CHARSET`]. Used both to check submitted codes
/// and by the sample generator to build valid ones.
pub fn uscc_check_character(first17: &str) -> Option<char> {
    if first17.len() != 17 {
        return None;
    }
    let mut sum = 0u32;
    for (byte, weight) in first17.bytes().zip(USCC_WEIGHTS) {
        let value = USCC_CHARSET.iter().position(|&c| c == byte)? as u32;
        sum += value * weight;
    }
    let check = (31 - sum % 31) % 31;
    Some(USCC_CHARSET[check as usize] as char)
}

/// Checks a unified social credit code completely: length, character set, the embedded region
/// and the check character.
pub fn check_uscc(code: &str) -> Result<(), UsccError> {
    let chars: Vec<char> = code.chars().collect();
    if chars.len() != 18 {
        return Err(UsccError::Length(chars.len()));
    }
    if let Some((i, &c)) = chars
        .iter()
        .enumerate()
        .find(|&(_, &c)| !c.is_ascii() || !USCC_CHARSET.contains(&(c as u8)))
    {
        return Err(UsccError::Character {
            position: i + 1,
            found: c,
        });
    }
    let region = &code[2..8];
    if region != "100000" && check_region(region).is_err() {
        return Err(UsccError::Region(region.to_owned()));
    }
    let expected = uscc_check_character(&code[..17]).expect("charset checked above");
    if chars[17] != expected {
        return Err(UsccError::CheckCharacter {
            found: chars[17],
            expected,
        });
    }
    Ok(())
}

/// Province-level divisions of GB/T 2260: two-digit prefix and name.
pub const PROVINCES: [(&str, &str); 34] = [
    ("11", "北京市"),
    ("12", "天津市"),
    ("13", "河北省"),
    ("14", "山西省"),
    ("15", "内蒙古自治区"),
    ("21", "辽宁省"),
    ("22", "吉林省"),
    ("23", "黑龙江省"),
    ("31", "上海市"),
    ("32", "江苏省"),
    ("33", "浙江省"),
    ("34", "安徽省"),
    ("35", "福建省"),
    ("36", "江西省"),
    ("37", "山东省"),
    ("41", "河南省"),
    ("42", "湖北省"),
    ("43", "湖南省"),
    ("44", "广东省"),
    ("45", "广西壮族自治区"),
    ("46", "海南省"),
    ("50", "重庆市"),
    ("51", "四川省"),
    ("52", "贵州省"),
    ("53", "云南省"),
    ("54", "西藏自治区"),
    ("61", "陕西省"),
    ("62", "甘肃省"),
    ("63", "青海省"),
    ("64", "宁夏回族自治区"),
    ("65", "新疆维吾尔自治区"),
    ("71", "台湾省"),
    ("81", "香港特别行政区"),
    ("82", "澳门特别行政区"),
];

/// Why a region code is not valid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RegionError {
    /// Not six ASCII digits.
    #[error("a region code is six digits, got {0:?}")]
    Format(String),
    /// The first two digits are not a province-level division.
    #[error(
        "{0:?} does not start with a province-level code of GB/T 2260 (e.g. 53 for 云南省, 21 for 辽宁省)"
    )]
    UnknownProvince(String),
    /// A county part without a city part (`PP00DD` with DD ≠ 00).
    #[error("{0:?} has a county part but no city part")]
    CountyWithoutCity(String),
}

/// Checks a GB/T 2260 administrative region code: six digits, a known province, and no county
/// part under a missing city part.
pub fn check_region(code: &str) -> Result<(), RegionError> {
    if code.len() != 6 || !code.bytes().all(|b| b.is_ascii_digit()) {
        return Err(RegionError::Format(code.to_owned()));
    }
    if province_name(code).is_none() {
        return Err(RegionError::UnknownProvince(code.to_owned()));
    }
    if &code[2..4] == "00" && &code[4..6] != "00" {
        return Err(RegionError::CountyWithoutCity(code.to_owned()));
    }
    Ok(())
}

/// The name of the province a region code belongs to, if its prefix is known.
pub fn province_name(code: &str) -> Option<&'static str> {
    let prefix = code.get(..2)?;
    PROVINCES
        .iter()
        .find(|(p, _)| *p == prefix)
        .map(|(_, name)| *name)
}

/// Who issued a registration number: a province or lower region (6-digit GB/T 2260 code), or a
/// central department (3-digit GB/T 4657 code, e.g. a ministry node).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Issuer {
    /// A regional registration body.
    Region(String),
    /// A central department.
    Department(String),
}

impl Issuer {
    /// The issuer's code as it appears in the number.
    pub fn code(&self) -> &str {
        match self {
            Issuer::Region(c) | Issuer::Department(c) => c,
        }
    }
}

/// A national registration number (批准登记号): issuer code, year, category flag, serial.
///
/// The category flag is `Y` for applied technology (应用技术), `J` for basic theory (基础理论) and
/// `R` for soft science (软科学); the serial is gap-free per issuer, year and flag.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegistrationNumber {
    /// Who issued it.
    pub issuer: Issuer,
    /// Registration year.
    pub year: u16,
    /// Category flag: `Y`, `J` or `R`.
    pub flag: char,
    /// Serial within issuer, year and flag.
    pub serial: u32,
}

/// Why a registration number is not valid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RegistrationNumberError {
    /// Does not have the shape code + year + flag + serial.
    #[error(
        "{0:?} is not issuer code (6-digit region or 3-digit department) + 4-digit year + Y/J/R + 4-6 digit serial"
    )]
    Format(String),
    /// The issuer's region code is not valid.
    #[error("issuer code {code:?}: {source}")]
    Region {
        /// The 6-digit code.
        code: String,
        /// Why it is not a region.
        source: RegionError,
    },
    /// The year is not plausible.
    #[error("year {0} is outside 1949-2100")]
    Year(u16),
}

impl RegistrationNumber {
    /// Parses and checks a registration number.
    pub fn parse(s: &str) -> Result<RegistrationNumber, RegistrationNumberError> {
        let format_error = || RegistrationNumberError::Format(s.to_owned());
        let flag_at = s.find(['Y', 'J', 'R']).ok_or_else(format_error)?;
        let (digits, rest) = s.split_at(flag_at);
        let serial_part = &rest[1..];
        if !digits.bytes().all(|b| b.is_ascii_digit())
            || !serial_part.bytes().all(|b| b.is_ascii_digit())
            || !(4..=6).contains(&serial_part.len())
        {
            return Err(format_error());
        }
        let (issuer, year) = match digits.len() {
            10 => (Issuer::Region(digits[..6].to_owned()), &digits[6..]),
            7 => (Issuer::Department(digits[..3].to_owned()), &digits[3..]),
            _ => return Err(format_error()),
        };
        if let Issuer::Region(code) = &issuer {
            check_region(code).map_err(|source| RegistrationNumberError::Region {
                code: code.clone(),
                source,
            })?;
        }
        let year: u16 = year.parse().map_err(|_| format_error())?;
        if !(1949..=2100).contains(&year) {
            return Err(RegistrationNumberError::Year(year));
        }
        Ok(RegistrationNumber {
            issuer,
            year,
            flag: rest.chars().next().expect("flag found above"),
            serial: serial_part.parse().map_err(|_| format_error())?,
        })
    }

    /// The number in its national text form, serial zero-padded to four digits.
    pub fn format(&self) -> String {
        format!(
            "{}{}{}{:04}",
            self.issuer.code(),
            self.year,
            self.flag,
            self.serial
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn real_unified_social_credit_codes_pass() {
        // Published codes of real bodies: 科技部 and three well-known companies.
        for code in [
            "11100000000019713D",
            "91330100799655058B",
            "91440300708461136T",
            "914403001922038216",
        ] {
            assert_eq!(check_uscc(code), Ok(()), "{code}");
        }
    }

    #[test]
    fn a_wrong_check_character_is_named() {
        let err = check_uscc("11100000000019713E").unwrap_err();
        assert_eq!(
            err,
            UsccError::CheckCharacter {
                found: 'E',
                expected: 'D'
            }
        );
        assert!(matches!(
            check_uscc("11100000000019713"),
            Err(UsccError::Length(17))
        ));
        assert!(matches!(
            check_uscc("1110000000001971OD"),
            Err(UsccError::Character { position: 17, .. })
        ));
    }

    #[test]
    fn region_codes() {
        assert_eq!(check_region("530000"), Ok(()));
        assert_eq!(check_region("530102"), Ok(()));
        assert_eq!(province_name("210200"), Some("辽宁省"));
        assert!(matches!(
            check_region("990000"),
            Err(RegionError::UnknownProvince(_))
        ));
        assert!(matches!(check_region("53000"), Err(RegionError::Format(_))));
        assert!(matches!(
            check_region("530012"),
            Err(RegionError::CountyWithoutCity(_))
        ));
    }

    #[test]
    fn registration_numbers_round_trip() {
        let n = RegistrationNumber::parse("5300002024Y0012").unwrap();
        assert_eq!(n.issuer, Issuer::Region("530000".into()));
        assert_eq!((n.year, n.flag, n.serial), (2024, 'Y', 12));
        assert_eq!(n.format(), "5300002024Y0012");
        let d = RegistrationNumber::parse("3482023J000123").unwrap();
        assert_eq!(d.issuer, Issuer::Department("348".into()));
        assert!(RegistrationNumber::parse("5300002024X0012").is_err());
        assert!(RegistrationNumber::parse("9900002024Y0012").is_err());
        assert!(matches!(
            RegistrationNumber::parse("5300001800Y0012"),
            Err(RegistrationNumberError::Year(1800))
        ));
    }
}
