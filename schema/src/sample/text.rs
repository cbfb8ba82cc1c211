//! Text composition: the sentence patterns of titles, abstracts, keywords and technical
//! indicators, filled with words of the record's technology area.
//!
//! Why on its own: the patterns are what makes a sample record read like a real registration
//! form (面向…的…, 基于…的…研究, 针对…的问题…), and the words they are filled with are data
//! (`domains.toml`, `phrases.toml`) a domain expert maintains. Keeping the patterns here, apart
//! from the record plumbing, shows in one place which words go where.
//!
//! What it may not touch: the record structure, or the order of draws — each function makes
//! exactly the draws, in exactly the order, that the generator made inline before it was split
//! up, so that a seed keeps giving the same records.

use super::draw::Draw;
use super::vocabulary::{Domain, vocabulary};
use crate::record::Category;

/// The title of a funded project about `subject`; a basic-research project studies a
/// mechanism, others develop an aspect.
pub(super) fn project_title(d: &mut Draw, domain: &Domain, subject: &str, basic: bool) -> String {
    let qualifiers = &vocabulary().phrases.qualifiers;
    if basic {
        let mechanism = d.word(&domain.mechanisms);
        match d.below(3) {
            0 => format!("{subject}{mechanism}研究"),
            1 => format!("{}{subject}{mechanism}研究", d.word(qualifiers)),
            _ => format!("基于{}的{subject}{mechanism}研究", d.word(&domain.techs)),
        }
    } else {
        let aspect = d.word(&domain.aspects);
        match d.below(4) {
            0 => format!("{subject}{aspect}研究"),
            1 => format!("{}{subject}{aspect}研究与示范", d.word(qualifiers)),
            2 => format!("面向{}的{subject}{aspect}", d.word(&domain.applications)),
            _ => format!("{subject}{aspect}研发及产业化"),
        }
    }
}

/// The abstract of a funded project about `subject`.
pub(super) fn project_abstract(
    d: &mut Draw,
    domain: &Domain,
    subject: &str,
    basic: bool,
) -> String {
    let metric = metric(d, domain);
    format!(
        "项目面向{}需求，针对{}等问题，重点研究{subject}{}，突破{}等关键技术，{metric}，\
         为{}产业发展提供支撑。",
        d.word(&domain.applications),
        d.word(&domain.problems),
        d.word(if basic {
            &domain.mechanisms
        } else {
            &domain.aspects
        }),
        d.word(&domain.techs),
        d.word(&domain.short),
    )
}

/// The title of an achievement of `category` about `subject`; `short` is its two-character
/// word and `region_word` the province (or 我国) a soft-science title names.
pub(super) fn achievement_title(
    d: &mut Draw,
    category: Category,
    domain: &Domain,
    subject: &str,
    short: &str,
    region_word: &str,
) -> String {
    let phrases = &vocabulary().phrases;
    match category {
        Category::AppliedTechnology => {
            let aspect = d.word(&domain.aspects);
            match d.below(7) {
                0 => format!("{subject}{aspect}"),
                1 => format!("面向{}的{subject}{aspect}", d.word(&domain.applications)),
                2 => format!("基于{}的{subject}{aspect}", d.word(&domain.techs)),
                3 => format!("{}{subject}{aspect}及产业化", d.word(&phrases.qualifiers)),
                4 => format!("{subject}{aspect}研究与应用示范"),
                5 => format!("{}{subject}{aspect}与工程应用", d.word(&phrases.qualifiers)),
                _ => format!(
                    "{subject}{aspect}在{}中的应用",
                    d.word(&domain.applications)
                ),
            }
        }
        Category::BasicTheory => {
            let mechanism = d.word(&domain.mechanisms);
            match d.below(4) {
                0 => format!("{subject}{mechanism}研究"),
                1 => format!("{subject}{mechanism}及其调控基础研究"),
                2 => format!("基于{}的{subject}{mechanism}研究", d.word(&domain.techs)),
                _ => format!(
                    "{}{subject}{mechanism}的理论与方法",
                    d.word(&phrases.qualifiers)
                ),
            }
        }
        Category::SoftScience => {
            let aspect = d.word(&phrases.soft_aspects);
            match d.below(3) {
                0 => format!("{region_word}{subject}{aspect}"),
                1 => format!("{region_word}{short}产业{aspect}"),
                _ => format!("面向{}的{subject}{aspect}", d.word(&domain.applications)),
            }
        }
    }
}

/// What an achievement's abstract needs besides the stream and the words.
pub(super) struct AbstractFacts<'a> {
    pub category: Category,
    pub subject: &'a str,
    pub short: &'a str,
    pub region_word: &'a str,
    /// The first completing institution.
    pub institution: &'a str,
    /// The two indicators the abstract cites.
    pub metrics: &'a [String; 2],
    /// How many invention patents the record lists.
    pub invention_patents: usize,
}

/// The abstract of an achievement.
pub(super) fn achievement_abstract(d: &mut Draw, domain: &Domain, facts: &AbstractFacts) -> String {
    let phrases = &vocabulary().phrases;
    let AbstractFacts {
        subject,
        short,
        region_word,
        ..
    } = facts;
    match facts.category {
        Category::AppliedTechnology => {
            let mut text = format!(
                "针对{}中{}的问题，{}研究团队开展了{subject}{}攻关。项目突破了{}、{}等关键技术，\
                 {}，{}。",
                d.word(&domain.applications),
                d.word(&domain.problems),
                facts.institution,
                d.word(&domain.aspects),
                d.word(&domain.techs),
                d.word(&domain.techs),
                facts.metrics[0],
                facts.metrics[1],
            );
            if facts.invention_patents > 0 {
                text.push_str(&format!(
                    "获授权或申请发明专利{}项。",
                    facts.invention_patents
                ));
            }
            text.push_str(&format!(
                "成果已在{}等领域推广应用，为{short}产业高质量发展提供了技术支撑。",
                d.word(&domain.applications)
            ));
            text
        }
        Category::BasicTheory => format!(
            "围绕{subject}{}这一关键科学问题，综合运用{}与{}等方法开展系统研究，揭示了{subject}{}，\
             建立了相应的理论模型。发表SCI论文{}篇，为{short}领域的技术创新提供了理论基础。",
            d.word(&domain.mechanisms),
            d.word(&domain.techs),
            d.word(&phrases.soft_methods),
            d.word(&domain.mechanisms),
            d.range(3, 25),
        ),
        Category::SoftScience => format!(
            "本研究围绕{region_word}{subject}工作中{}等问题，采用{}和{}等方法，系统分析了{short}\
             相关政策与实践，提出了{}的对策建议，形成研究报告{}份，部分建议被有关部门采纳。",
            d.word(&domain.problems),
            d.word(&phrases.soft_methods),
            d.word(&phrases.soft_methods),
            d.word(&phrases.soft_aspects),
            d.range(1, 5),
        ),
    }
}

/// An achievement's technical indicators: its two metrics and a third for applied results,
/// publication counts for basic ones, report counts for soft science.
pub(super) fn technical_indicators(
    d: &mut Draw,
    category: Category,
    domain: &Domain,
    metrics: &[String; 2],
) -> String {
    match category {
        Category::AppliedTechnology => {
            format!("{}；{}；{}", metrics[0], metrics[1], metric(d, domain))
        }
        Category::BasicTheory => format!(
            "发表SCI论文{}篇，授权发明专利{}项；{}",
            d.range(3, 25),
            d.range(0, 5),
            metrics[0]
        ),
        Category::SoftScience => format!(
            "形成研究报告{}份，提出政策建议{}条，其中{}条被采纳",
            d.range(1, 6),
            d.range(8, 30),
            d.range(1, 7)
        ),
    }
}

/// `min..=max` distinct keywords: the subject, one of the two-character words, then others.
pub(super) fn keywords(
    d: &mut Draw,
    domain: &Domain,
    subject: &str,
    min: u32,
    max: u32,
) -> Vec<String> {
    let want = d.range(min, max) as usize;
    let mut out: Vec<String> = Vec::with_capacity(want);
    let push = |out: &mut Vec<String>, k: &str| {
        if out.len() < want && !out.iter().any(|o| o.eq_ignore_ascii_case(k)) {
            out.push(k.to_owned());
        }
    };
    push(&mut out, subject);
    let short = d.word(&domain.short);
    push(&mut out, short);
    for _ in 0..want * 3 {
        if out.len() >= want {
            break;
        }
        let k = if d.chance(0.7) {
            d.word(&domain.keywords)
        } else {
            d.word(&domain.short)
        };
        push(&mut out, k);
    }
    out
}

/// A technical indicator of the area with a value in its range: `能量密度达到320Wh/kg`.
pub(super) fn metric(d: &mut Draw, domain: &Domain) -> String {
    let m = d.pick(&domain.metrics);
    format!("{}{}{}", m.name, d.range(m.lo, m.hi), m.unit)
}
