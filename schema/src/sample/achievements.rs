//! Achievements (科技成果): one registration form, drawn from the achievement's own stream after
//! the head of the project that funds it.
//!
//! Why on its own: an achievement is the largest record and the one most tests look at; its
//! parts (institutions, dates, forms and intellectual property, evaluation, completers,
//! transfer and application, registration number) read in the order the national registration
//! form lists them.
//!
//! What it may not touch: vocabulary (from `vocabulary`), sentence patterns (from `text`), or
//! the order of draws — the golden digests in `tests` pin every byte of the output.

use super::calendar::{CUTOFF, Ymd};
use super::draw::{Draw, splitmix};
use super::generator::{
    NODE_SERIALS, SHARED_SERIAL_BASE, SHARED_SERIALS, SampleGenerator, Scope, Stream, confidential,
    funding_project_index,
};
use super::parties::{Org, who};
use super::projects::amount;
use super::text::{self, AbstractFacts};
use super::vocabulary::{Domain, Place, places, vocabulary};
use crate::codes::{Issuer, RegistrationNumber};
use crate::record::{
    Achievement, Application, ApplicationStatus, Benefits, Category, Classification, Evaluation,
    EvaluationMethod, Field, Form, FundingRef, InnovationAttribute, IpItem, IpStatus, IpType,
    Level, Period, Person, Recommender, Secrecy, Stage, Transfer, TransferMode, TransferStatus,
};
use crate::secrecy::SecrecyLevel;

impl SampleGenerator {
    pub(super) fn build_achievement(&self, scope: &Scope, i: u64) -> Achievement {
        let (head, _) = self.head(scope, funding_project_index(i));
        let mut d = self.draw(scope, Stream::Achievement, i);
        let domain = head.domain;
        let category = match d.weighted(if domain.soft_science {
            &[5, 10, 85]
        } else {
            &[72, 20, 8]
        }) {
            0 => Category::AppliedTechnology,
            1 => Category::BasicTheory,
            _ => Category::SoftScience,
        };
        let subject = d.word(&domain.subjects);
        let short = d.word(&domain.short);

        // Institutions: usually the project's lead first, then partners.
        let count = 1 + d.weighted(&[35, 35, 20, 10]);
        let mut orgs: Vec<Org> = Vec::with_capacity(count);
        if d.chance(0.75) {
            orgs.push(head.lead.clone());
        }
        for _ in 0..count * 2 {
            if orgs.len() >= count {
                break;
            }
            let org = self.org(&mut d, scope, domain, false);
            if orgs.iter().all(|o| o.name != org.name) {
                orgs.push(org);
            }
        }
        if orgs.is_empty() {
            orgs.push(head.lead.clone());
        }
        let main = &places()[orgs[0].place];
        let region_word = if scope.home.is_some() || d.chance(0.5) {
            main.full.as_str()
        } else {
            "我国"
        };

        let title = text::achievement_title(&mut d, category, domain, subject, short, region_word);

        // Dates: research within the project, capped at mid-2025; evaluation and registration
        // afterwards.
        let start = head.start;
        let total = head.start.months_until(head.end).max(6);
        let end = if d.chance(0.6) {
            head.end
        } else {
            start.plus_months(d.range(6, total)).month_end()
        }
        .min(CUTOFF);
        let registration_months = d.range(2, 6);
        let registered = end
            .plus_months(registration_months)
            .with_day(d.range(1, 28) as u8);
        let evaluated = end
            .plus_months(d.range(1, registration_months - 1))
            .with_day(d.range(1, 28) as u8);

        let metrics = [text::metric(&mut d, domain), text::metric(&mut d, domain)];
        let level = *d.pick(&[
            Level::InternationalLeading,
            Level::InternationalAdvanced,
            Level::InternationalAdvanced,
            Level::DomesticLeading,
            Level::DomesticLeading,
            Level::DomesticLeading,
            Level::DomesticAdvanced,
            Level::Other,
        ]);

        let applied = category == Category::AppliedTechnology;
        let forms = forms(&mut d, domain, category);
        let ip = self.ip(&mut d, scope, i, domain, subject, &forms, start, end, main);
        let (trl, stage) = match category {
            Category::AppliedTechnology => {
                let trl = d.range(3, 9) as u8;
                let stage = match trl {
                    1..=3 => Stage::Early,
                    4..=6 => Stage::Middle,
                    _ => Stage::Mature,
                };
                (Some(trl), Some(stage))
            }
            Category::BasicTheory => (
                d.chance(0.3).then(|| d.range(1, 2) as u8),
                d.chance(0.6).then_some(Stage::Early),
            ),
            Category::SoftScience => (None, d.chance(0.4).then_some(Stage::Mature)),
        };

        let invention_patents = ip.as_ref().map_or(0, |v| {
            v.iter()
                .filter(|p| p.ip_type == IpType::InventionPatent)
                .count()
        });
        let facts = AbstractFacts {
            category,
            subject,
            short,
            region_word,
            institution: &orgs[0].name,
            metrics: &metrics,
            invention_patents,
        };
        let abstract_text = text::achievement_abstract(&mut d, domain, &facts);
        let keywords = text::keywords(&mut d, domain, subject, 3, 6);
        let classification = Classification {
            field: domain.field,
            clc: d.chance(0.8).then(|| d.word(&domain.clc).to_owned()),
            discipline: d
                .chance(0.7)
                .then(|| d.word(&domain.disciplines).to_owned()),
            industry: d.chance(0.6).then(|| d.word(&domain.industries).to_owned()),
        };
        let innovation_attribute = d.chance(0.85).then(|| {
            *d.pick(&[
                InnovationAttribute::Original,
                InnovationAttribute::Integrated,
                InnovationAttribute::Integrated,
                InnovationAttribute::Reinnovation,
            ])
        });
        let evaluation = d.chance(0.8).then(|| {
            let method = *d.pick(EvaluationMethod::ALL);
            let organization = match d.below(3) {
                0 => domain.society.clone(),
                1 => main.department(),
                _ => "中国科学技术信息研究所".to_owned(),
            };
            let conclusion = match level {
                Level::Other => "该成果具有较好的应用前景，同意通过".to_owned(),
                level => format!("该成果整体达到{}水平", level.as_str()),
            };
            Evaluation {
                method,
                date: Some(evaluated.to_string()),
                organization: Some(organization),
                conclusion: Some(conclusion),
            }
        });

        let completers = {
            let count = d.range(2, 9) as usize;
            let mut people: Vec<Person> = Vec::with_capacity(count);
            let lead_first = orgs[0].name == head.lead.name && d.chance(0.6);
            for k in 0..count {
                let org = if k <= count / 2 {
                    &orgs[0]
                } else {
                    &orgs[d.below(orgs.len())]
                };
                let name = if k == 0 && lead_first {
                    head.pi.clone()
                } else {
                    let mut w = who(&mut d);
                    if people.iter().any(|p| p.name == w.name) {
                        w = who(&mut d);
                    }
                    w
                };
                people.push(self.person(&mut d, &name, org, k, domain, false));
            }
            people
        };

        let transfer = if applied {
            d.chance(0.85).then(|| transfer(&mut d))
        } else {
            d.chance(0.3).then(|| Transfer {
                intention: Some(false),
                status: Some(TransferStatus::NotTransferred),
                ..Transfer::default()
            })
        };
        let application = d.chance(if applied { 0.8 } else { 0.5 }).then(|| {
            let status = if applied {
                *d.pick(ApplicationStatus::ALL)
            } else {
                *d.pick(&[ApplicationStatus::NotApplied, ApplicationStatus::Trial])
            };
            let benefits = (applied && status != ApplicationStatus::NotApplied && d.chance(0.6))
                .then(|| {
                    let revenue = d.range(50, 50_000) as u64 * 100 + d.range(0, 99) as u64;
                    Benefits {
                        year: Some(registered.y - d.range(0, 1) as u16),
                        revenue: Some(amount(revenue)),
                        profit: Some(amount(revenue * d.range(5, 30) as u64 / 100)),
                        tax: Some(amount(revenue * d.range(3, 10) as u64 / 100)),
                    }
                });
            let (a, b) = (d.word(&domain.applications), d.word(&domain.applications));
            Application {
                status: Some(status),
                industries: Some(if a == b {
                    a.to_owned()
                } else {
                    format!("{a}、{b}")
                }),
                benefits,
                social_benefit: d.chance(0.7).then(|| {
                    format!(
                        "{}，带动就业{}余人",
                        d.word(&vocabulary().phrases.social_benefits),
                        d.range(20, 800)
                    )
                }),
            }
        });
        let technical_indicators = Some(text::technical_indicators(
            &mut d, category, domain, &metrics,
        ));
        let contact = d.chance(0.85).then(|| self.contact(&mut d, &orgs[0]));
        let recommender = d
            .chance(0.7)
            .then(|| match (&scope.authority, &scope.issuer) {
                (Some(name), Some(issuer)) => Recommender {
                    name: name.clone(),
                    code: Some(issuer.code().to_owned()),
                },
                _ => Recommender {
                    name: main.department(),
                    code: Some(main.code.clone()),
                },
            });
        let registration = d.chance(0.85);
        let registration_no = registration.then(|| {
            let (issuer, serial) = match &scope.issuer {
                Some(issuer) => (issuer.clone(), i % NODE_SERIALS + 1),
                None => (
                    Issuer::Region(main.code.clone()),
                    SHARED_SERIAL_BASE + i % SHARED_SERIALS + 1,
                ),
            };
            RegistrationNumber {
                issuer,
                year: registered.y,
                flag: category.registration_flag(),
                serial: serial as u32,
            }
            .format()
        });

        let mut achievement = Achievement {
            title,
            category,
            abstract_text,
            keywords,
            classification,
            innovation_attribute,
            stage,
            trl,
            level: Some(level),
            evaluation,
            forms: (!forms.is_empty()).then_some(forms),
            research_period: Period {
                start: start.to_string(),
                end: end.to_string(),
            },
            institutions: orgs.iter().map(Org::institution).collect(),
            completers,
            ip,
            funding: Some(vec![FundingRef {
                program: head.program_name.into_owned(),
                sub_program: (!head.sub_program.is_empty()).then(|| head.sub_program.to_owned()),
                project_no: head.project_no,
                funder: Some(self.funder(head.funder).name.clone()),
            }]),
            transfer,
            application,
            technical_indicators,
            contact,
            recommender,
            secrecy: Secrecy::at(SecrecyLevel::Public),
            confidential_fields: None,
            registration_no,
            registration_date: registration.then(|| registered.to_string()),
        };

        let mut aux = self.draw(scope, Stream::AchievementSecrecy, i);
        achievement.secrecy = self.secrecy(&mut aux, scope, registered);
        if aux.chance(self.config.share_commercial_secret) {
            let a = &achievement;
            let transfer = a.transfer.as_ref();
            let application = a.application.as_ref();
            let candidates = [
                ("/technical_indicators", a.technical_indicators.is_some()),
                (
                    "/transfer/price",
                    transfer.is_some_and(|t| t.price.is_some()),
                ),
                (
                    "/transfer/conditions",
                    transfer.is_some_and(|t| t.conditions.is_some()),
                ),
                (
                    "/application/benefits",
                    application.is_some_and(|x| x.benefits.is_some()),
                ),
                (
                    "/application/industries",
                    application.is_some_and(|x| x.industries.is_some()),
                ),
                (
                    "/evaluation/conclusion",
                    a.evaluation
                        .as_ref()
                        .is_some_and(|e| e.conclusion.is_some()),
                ),
                (
                    "/completers/0/contribution",
                    a.completers[0].contribution.is_some(),
                ),
            ];
            achievement.confidential_fields = confidential(&mut aux, &candidates);
        }
        achievement
    }

    /// Intellectual property matching the result's forms. Patent and copyright serials are
    /// spread by node and index so unrelated records rarely share one; shared records use the
    /// shared scope's, so every node reports the same numbers for them.
    #[allow(clippy::too_many_arguments)]
    fn ip(
        &self,
        d: &mut Draw,
        scope: &Scope,
        i: u64,
        domain: &Domain,
        subject: &str,
        forms: &[Form],
        start: Ymd,
        end: Ymd,
        main: &Place,
    ) -> Option<Vec<IpItem>> {
        let phrases = &vocabulary().phrases;
        let base = splitmix(scope.node_hash ^ self.serial_offset);
        let serial = |k: u64| (base.wrapping_add(i.wrapping_mul(8)).wrapping_add(k)) % 10_000_000;
        let span = start.months_until(end);
        let date = |d: &mut Draw| {
            start
                .plus_months(d.range(0, span))
                .with_day(d.range(1, 28) as u8)
        };
        let mut items = Vec::new();
        if forms.contains(&Form::Patent) {
            let count = d.range(1, 3) as u64;
            for k in 0..count {
                let filed = date(d);
                let utility = k > 0 && d.chance(0.4);
                let kind = if utility { 2 } else { 1 };
                let number = cn_patent_number(filed.y, kind, serial(k));
                let title = if utility {
                    format!("一种{subject}{}", d.word(&phrases.utility_endings))
                } else {
                    format!("一种{subject}{}", d.word(&phrases.invention_endings))
                };
                let status = match d.weighted(&[70, 25, 5]) {
                    0 => IpStatus::Granted,
                    1 => IpStatus::Pending,
                    _ => IpStatus::Lapsed,
                };
                items.push(IpItem {
                    ip_type: if utility {
                        IpType::UtilityModel
                    } else {
                        IpType::InventionPatent
                    },
                    number,
                    title: Some(title),
                    status: Some(status),
                    date: Some(filed.to_string()),
                });
            }
            if d.chance(0.1) {
                let filed = date(d);
                items.push(IpItem {
                    ip_type: IpType::InternationalPatent,
                    number: format!("PCT/CN{}/{:06}", filed.y, serial(4) % 1_000_000),
                    title: Some(format!("{subject}及其应用")),
                    status: Some(IpStatus::Pending),
                    date: Some(filed.to_string()),
                });
            }
        }
        if forms.contains(&Form::Software) {
            let filed = date(d);
            items.push(IpItem {
                ip_type: IpType::SoftwareCopyright,
                number: format!("{}SR{:07}", filed.y, serial(5)),
                title: Some(format!(
                    "{subject}{}软件V{}.0",
                    d.word(&phrases.software_words),
                    d.range(1, 3)
                )),
                status: Some(IpStatus::Granted),
                date: Some(filed.to_string()),
            });
        }
        if forms.contains(&Form::Standard) {
            let issued = date(d);
            let number = match d.below(3) {
                0 => format!(
                    "DB{}/T {}-{}",
                    &main.code[..2],
                    d.range(100, 1999),
                    issued.y
                ),
                1 => format!("GB/T {}-{}", d.range(30_000, 44_999), issued.y),
                _ => format!("T/CAS {}-{}", d.range(100, 999), issued.y),
            };
            items.push(IpItem {
                ip_type: IpType::Standard,
                number,
                title: Some(format!("{subject}技术规范")),
                status: Some(IpStatus::Granted),
                date: Some(issued.to_string()),
            });
        }
        if forms.contains(&Form::NewVariety) {
            let filed = date(d);
            items.push(IpItem {
                ip_type: IpType::PlantVariety,
                number: format!("CNA{}{:05}.{}", filed.y, serial(6) % 100_000, d.range(0, 9)),
                title: Some(format!(
                    "{}{}{}号",
                    main.short,
                    d.word(&domain.short),
                    d.range(1, 60)
                )),
                status: Some(if d.chance(0.6) {
                    IpStatus::Granted
                } else {
                    IpStatus::Pending
                }),
                date: Some(filed.to_string()),
            });
        }
        if domain.field == Field::ElectronicInformation
            && forms.contains(&Form::NewProduct)
            && d.chance(0.3)
        {
            let filed = date(d);
            items.push(IpItem {
                ip_type: IpType::IcLayout,
                number: format!(
                    "BS.{:02}5{:06}{}",
                    filed.y % 100,
                    serial(7) % 1_000_000,
                    d.range(0, 9)
                ),
                title: Some(format!("{subject}布图设计")),
                status: Some(IpStatus::Granted),
                date: Some(filed.to_string()),
            });
        }
        (!items.is_empty()).then_some(items)
    }
}

fn forms(d: &mut Draw, domain: &Domain, category: Category) -> Vec<Form> {
    let mut forms = Vec::with_capacity(4);
    match category {
        Category::AppliedTechnology => {
            if d.chance(0.85) {
                forms.push(Form::Patent);
            }
            if d.chance(0.7) {
                forms.push(Form::Paper);
            }
            for _ in 0..d.range(0, 2) {
                let form = *d.pick(&domain.forms);
                if !forms.contains(&form) {
                    forms.push(form);
                }
            }
        }
        Category::BasicTheory => {
            forms.push(Form::Paper);
            if d.chance(0.3) {
                forms.push(Form::Report);
            }
            if d.chance(0.25) {
                forms.push(Form::Patent);
            }
        }
        Category::SoftScience => {
            forms.push(Form::Report);
            if d.chance(0.5) {
                forms.push(Form::Paper);
            }
        }
    }
    forms
}

fn transfer(d: &mut Draw) -> Transfer {
    if !d.chance(0.75) {
        return Transfer {
            intention: Some(false),
            status: Some(TransferStatus::NotTransferred),
            ..Transfer::default()
        };
    }
    let mut modes = vec![*d.pick(TransferMode::ALL)];
    if d.chance(0.4) {
        let second = *d.pick(TransferMode::ALL);
        if second != modes[0] {
            modes.push(second);
        }
    }
    Transfer {
        intention: Some(true),
        modes: Some(modes),
        status: Some(*d.pick(TransferStatus::ALL)),
        price: d
            .chance(0.4)
            .then(|| amount(u64::from(d.range(10, 2_000)) * 100 + u64::from(d.range(0, 1)) * 50)),
        conditions: d
            .chance(0.3)
            .then(|| d.word(&vocabulary().phrases.transfer_conditions).to_owned()),
    }
}

/// A Chinese patent application number: `ZL` + year + type + 7-digit serial + `.` + check.
pub(super) fn cn_patent_number(year: u16, kind: u8, serial: u64) -> String {
    let digits = format!("{year:04}{kind}{serial:07}");
    const WEIGHTS: [u32; 12] = [2, 3, 4, 5, 6, 7, 8, 9, 2, 3, 4, 5];
    let sum: u32 = digits
        .bytes()
        .zip(WEIGHTS)
        .map(|(b, w)| u32::from(b - b'0') * w)
        .sum();
    let check = match sum % 11 {
        10 => 'X',
        n => char::from(b'0' + n as u8),
    };
    format!("ZL{digits}.{check}")
}
