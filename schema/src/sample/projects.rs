//! Funded projects (科技计划项目): the project "head" that achievements reuse, project numbers in
//! their programs' real shapes, budgets, status and acceptance.
//!
//! Why on its own: a project is the root of the funding link — achievement `i` cites project
//! `funding_project_index(i)`, and both draw the head from the project's stream in the same way.
//! The number shapes (`2021YFB2400100`, `52074123`, `202303AC100012`) and their per-node
//! partitions live here, next to the capacity they guarantee.
//!
//! What it may not touch: vocabulary (program and sub-program names come from
//! `programs.toml`, area words from `domains.toml`), sentence patterns (`text`), or the order of
//! draws in `head`, which achievements replay.

use super::calendar::{CUTOFF, Ymd};
use super::draw::Draw;
use super::generator::{FunderOf, SLOTS, SampleGenerator, Scope, Stream, confidential};
use super::parties::{Org, Who, uscc_for, who};
use super::text;
use super::vocabulary::{Domain, NSFC_TYPES, PROVINCE_TYPES, places, vocabulary};
use crate::record::{
    Acceptance, AcceptanceConclusion, Amount, Budget, FundedProject, Funder, Period, ProjectStatus,
    Secrecy, TransferObligation, UnitType,
};
use crate::secrecy::SecrecyLevel;
use std::borrow::Cow;

impl SampleGenerator {
    /// The part of project `j` that its achievements reuse: drawn first from the project's own
    /// stream, so `achievement` and `project` agree on it. Returns the stream to continue with.
    pub(super) fn head(&self, scope: &Scope, j: u64) -> (Head, Draw) {
        let vocabulary = vocabulary();
        let programs = &vocabulary.programs;
        let mut d = self.draw(scope, Stream::Project, j);
        let domain = &vocabulary.domains[d.weighted(&vocabulary.domain_weights)];
        let weights = if scope.home.is_some() {
            &PROVINCE_PROGRAM_WEIGHTS
        } else {
            &NATIONAL_PROGRAM_WEIGHTS
        };
        let mut program = PROGRAMS[d.weighted(weights)];
        if program == Program::Major && domain.major.is_none() {
            program = Program::KeyRd;
        }
        let (project_no, year, variant) = self.project_number(program, scope, j, domain);
        let place = scope.home.map(|h| &places()[h]);
        let (program_name, sub_program, funder): (Cow<'static, str>, &'static str, FunderOf) =
            match program {
                Program::Nsfc => (
                    programs.nsfc.name.as_str().into(),
                    programs.nsfc.types[variant].name.as_str(),
                    FunderOf::Nsfc,
                ),
                Program::KeyRd => (
                    programs.key_rd.name.as_str().into(),
                    d.word(&domain.key_rd),
                    FunderOf::Most,
                ),
                Program::Major => (
                    programs.major.name.as_str().into(),
                    domain.major.as_ref().map_or("", |m| m.name.as_str()),
                    FunderOf::Most,
                ),
                Program::Guide => (
                    programs.guide.name.as_str().into(),
                    d.word(&programs.guide.sub_programs),
                    FunderOf::Most,
                ),
                Program::BaseTalent => (
                    programs.base_talent.name.as_str().into(),
                    d.word(&programs.base_talent.sub_programs),
                    FunderOf::Most,
                ),
                Program::ProvKeyRd
                | Program::ProvBasic
                | Program::ProvMajor
                | Program::ProvTalent => {
                    let place = place.expect("provincial programs only for province nodes");
                    let province = &programs.province;
                    let (name, sub) = match program {
                        Program::ProvKeyRd => (&province.key_rd, domain.prov_sub.as_str()),
                        Program::ProvBasic => {
                            (&province.basic, province.basic_types[variant].as_str())
                        }
                        Program::ProvMajor => (&province.major, domain.field.as_str()),
                        _ => (&province.talent, province.talent_types[variant].as_str()),
                    };
                    (format!("{}{name}", place.full).into(), sub, FunderOf::Home)
                }
            };
        let (start, end) = match program {
            Program::Nsfc => {
                let years = programs.nsfc.types[variant].years;
                (Ymd::new(year, 1, 1), Ymd::new(year + years - 1, 12, 31))
            }
            Program::Major => {
                let years = d.range(2, 5) as u16;
                (Ymd::new(year, 1, 1), Ymd::new(year + years - 1, 12, 31))
            }
            _ => {
                let month = *d.pick(&[1, 1, 3, 4, 6, 7, 9, 10, 11, 12, 12]);
                let months = match program {
                    Program::KeyRd => 12 * d.range(3, 5),
                    Program::ProvBasic => 36,
                    _ => 12 * d.range(2, 3),
                };
                let start = Ymd::new(year, month, 1);
                (start, start.plus_months(months - 1).month_end())
            }
        };
        // A provincial program funds institutions of its own province.
        let lead = self.org(&mut d, scope, domain, funder == FunderOf::Home);
        let pi = who(&mut d);
        let head = Head {
            domain,
            program,
            program_name,
            sub_program,
            project_no,
            funder,
            variant,
            start,
            end,
            lead,
            pi,
        };
        (head, d)
    }

    /// The number of project `j` under `program`: an injective function of `j` (below the
    /// per-slot capacity) and the node's slot, laid out in the program's real number shape.
    /// Returns the number, its year (the project's start year) and the variant it encodes.
    pub(super) fn project_number(
        &self,
        program: Program,
        scope: &Scope,
        j: u64,
        domain: &Domain,
    ) -> (String, u16, usize) {
        let per_slot = program.capacity() / SLOTS;
        let mut g = scope.slot * per_slot + permute(j, per_slot, self.number_offset);
        let mut take = |n: u64| {
            let digit = g % n;
            g /= n;
            digit
        };
        match program {
            Program::Nsfc => {
                let year = 2012 + take(13) as u16;
                let department = 1 + take(8);
                let variant = take(NSFC_TYPES as u64) as usize;
                let serial = take(10_000);
                let kind = vocabulary().programs.nsfc.types[variant].digit;
                let no = format!(
                    "{department}{}{}{kind}{serial:04}",
                    (year / 10) % 10,
                    year % 10
                );
                (no, year, variant)
            }
            Program::KeyRd => {
                let year = 2016 + take(9) as u16;
                let letter = b"ABCDEF"[take(6) as usize] as char;
                let topic = 1 + take(99);
                let project = 1 + take(999);
                (format!("{year}YF{letter}{topic:02}{project:03}00"), year, 0)
            }
            Program::Major => {
                let year = 2009 + take(12) as u16;
                let part = 1 + take(999);
                let task = 1 + take(999);
                let special = domain.major.as_ref().map_or(1, |m| m.number);
                (format!("{year}ZX{special:02}{part:03}-{task:03}"), year, 0)
            }
            Program::Guide | Program::BaseTalent => {
                let year = 2016 + take(9) as u16;
                let serial = take(1_000_000);
                let tag = if program == Program::Guide {
                    "YD"
                } else {
                    "JD"
                };
                (format!("{year}{tag}{serial:06}"), year, 0)
            }
            Program::ProvKeyRd | Program::ProvBasic | Program::ProvMajor | Program::ProvTalent => {
                let year = 2012 + take(13) as u16;
                let (code, letters): (&str, &[u8]) = match program {
                    Program::ProvKeyRd => ("03", b"ACDEKP"),
                    Program::ProvBasic => ("01", b"TUS"),
                    Program::ProvMajor => ("02", b"AB"),
                    _ => ("05", b"CFH"),
                };
                let variant = take(letters.len() as u64) as usize;
                let serial = take(1_000_000);
                let letter = letters[variant] as char;
                (format!("{year}{code}A{letter}{serial:06}"), year, variant)
            }
        }
    }

    pub(super) fn build_project(&self, scope: &Scope, j: u64) -> FundedProject {
        let (head, mut d) = self.head(scope, j);
        let domain = head.domain;
        let subject = d.word(&domain.subjects);
        let basic = matches!(head.program, Program::Nsfc | Program::ProvBasic);
        let title = text::project_title(&mut d, domain, subject, basic);
        let abstract_text = d
            .chance(0.85)
            .then(|| text::project_abstract(&mut d, domain, subject, basic));
        let keywords = d
            .chance(0.75)
            .then(|| text::keywords(&mut d, domain, subject, 2, 5));
        let field = d.chance(0.9).then_some(domain.field);
        let participants = {
            let count = d.weighted(&[35, 30, 20, 15]);
            let mut list: Vec<Org> = Vec::with_capacity(count);
            for _ in 0..count * 2 {
                if list.len() == count {
                    break;
                }
                let org = self.org(&mut d, scope, domain, false);
                if org.name != head.lead.name && list.iter().all(|o| o.name != org.name) {
                    list.push(org);
                }
            }
            (!list.is_empty()).then(|| list.iter().map(Org::institution).collect())
        };
        let pi = Some(self.person(&mut d, &head.pi, &head.lead, 0, domain, true));
        let budget = d.chance(0.95).then(|| budget(&mut d, &head));
        let (status, acceptance) = status_and_acceptance(&mut d, &head, self.funder(head.funder));
        let transfer_obligation = d.chance(0.5).then(|| {
            let required = !basic && d.chance(0.7);
            TransferObligation {
                required,
                deadline: required.then(|| Ymd::new(head.end.y + 3, 12, 31).to_string()),
                description: required.then(|| {
                    d.word(&vocabulary().programs.transfer.obligations)
                        .to_owned()
                }),
            }
        });
        let contact = d.chance(0.7).then(|| self.contact(&mut d, &head.lead));
        let mut project = FundedProject {
            project_no: head.project_no,
            title,
            program: head.program_name.into_owned(),
            sub_program: (!head.sub_program.is_empty()).then(|| head.sub_program.to_owned()),
            funder: self.funder(head.funder).clone(),
            abstract_text,
            keywords,
            field,
            lead: head.lead.institution(),
            participants,
            pi,
            period: Period {
                start: head.start.to_string(),
                end: head.end.to_string(),
            },
            budget,
            status,
            acceptance,
            transfer_obligation,
            contact,
            secrecy: Secrecy::at(SecrecyLevel::Public),
            confidential_fields: None,
        };
        let mut aux = self.draw(scope, Stream::ProjectSecrecy, j);
        let history_date = project
            .acceptance
            .as_ref()
            .map_or(head.start.plus_months(6), |a| {
                Ymd::parse(&a.date).unwrap_or(head.start)
            });
        project.secrecy = self.secrecy(&mut aux, scope, history_date);
        if aux.chance(self.config.share_commercial_secret) {
            let candidates = [
                ("/budget", project.budget.is_some()),
                (
                    "/budget/central_fiscal",
                    project
                        .budget
                        .as_ref()
                        .is_some_and(|b| b.central_fiscal.is_some()),
                ),
                ("/abstract", project.abstract_text.is_some()),
                ("/participants", project.participants.is_some()),
                (
                    "/transfer_obligation/description",
                    project
                        .transfer_obligation
                        .as_ref()
                        .is_some_and(|t| t.description.is_some()),
                ),
                (
                    "/acceptance/report_no",
                    project
                        .acceptance
                        .as_ref()
                        .is_some_and(|a| a.report_no.is_some()),
                ),
                ("/keywords", project.keywords.is_some()),
            ];
            project.confidential_fields = confidential(&mut aux, &candidates);
        }
        project
    }
}

/// The head of a project: what its achievements reuse.
pub(super) struct Head {
    pub(super) domain: &'static Domain,
    pub(super) program: Program,
    pub(super) program_name: Cow<'static, str>,
    pub(super) sub_program: &'static str,
    pub(super) project_no: String,
    pub(super) funder: FunderOf,
    pub(super) variant: usize,
    pub(super) start: Ymd,
    pub(super) end: Ymd,
    pub(super) lead: Org,
    pub(super) pi: Who,
}

/// The budget in 万元, parts in cents so they add up exactly.
fn budget(d: &mut Draw, head: &Head) -> Budget {
    let wan = |d: &mut Draw, lo: u32, hi: u32| {
        let whole = u64::from(d.range(lo, hi)) * 100;
        if d.chance(0.3) {
            whole + u64::from(d.range(1, 99))
        } else {
            whole
        }
    };
    let company_lead = head.lead.unit == UnitType::Company;
    let (central, local, own) = match head.program {
        Program::Nsfc => {
            let [lo, hi] = vocabulary().programs.nsfc.types[head.variant].budget;
            (u64::from(d.range(lo, hi)) * 100, 0, 0)
        }
        Program::KeyRd | Program::Major | Program::Guide | Program::BaseTalent => {
            let central = match head.program {
                Program::Major => wan(d, 500, 20_000),
                Program::KeyRd => wan(d, 200, 3_000),
                _ => wan(d, 100, 1_500),
            };
            let local = if d.chance(0.3) { wan(d, 20, 500) } else { 0 };
            let own = if company_lead || d.chance(0.4) {
                central * u64::from(d.range(20, 150)) / 100
            } else {
                0
            };
            (central, local, own)
        }
        Program::ProvBasic => (0, wan(d, 5, 50), 0),
        _ => {
            let local = if head.program == Program::ProvMajor {
                wan(d, 300, 3_000)
            } else {
                wan(d, 20, 1_000)
            };
            let own = if company_lead || d.chance(0.5) {
                local * u64::from(d.range(50, 300)) / 100
            } else {
                0
            };
            (0, local, own)
        }
    };
    let part = |cents: u64| (cents > 0).then(|| amount(cents));
    Budget {
        total: amount(central + local + own),
        central_fiscal: part(central),
        local_fiscal: part(local),
        self_raised: part(own),
    }
}

/// A project's status and acceptance, consistent with its dates and the validation rules.
fn status_and_acceptance(
    d: &mut Draw,
    head: &Head,
    funder: &Funder,
) -> (ProjectStatus, Option<Acceptance>) {
    let nsfc = head.program == Program::Nsfc;
    let ended = head.end < Ymd::new(2025, 1, 1);
    let ended_recently = !ended && head.end <= CUTOFF;
    let status = if ended {
        if nsfc {
            *d.pick(&[
                ProjectStatus::Closed,
                ProjectStatus::Closed,
                ProjectStatus::Closed,
                ProjectStatus::Accepted,
            ])
        } else {
            match d.weighted(&[70, 15, 5, 5, 5]) {
                0 => ProjectStatus::Accepted,
                1 => ProjectStatus::Closed,
                2 => ProjectStatus::Failed,
                3 => ProjectStatus::Terminated,
                _ => ProjectStatus::Ongoing,
            }
        }
    } else if ended_recently {
        *d.pick(&[
            ProjectStatus::Ongoing,
            ProjectStatus::Closed,
            ProjectStatus::Accepted,
        ])
    } else if head.start >= Ymd::new(2024, 7, 1) && d.chance(0.3) {
        ProjectStatus::Approved
    } else {
        ProjectStatus::Ongoing
    };
    let conclusion = match status {
        ProjectStatus::Accepted => Some(AcceptanceConclusion::Passed),
        ProjectStatus::Failed => Some(AcceptanceConclusion::NotPassed),
        ProjectStatus::Closed if d.chance(0.7) => Some(AcceptanceConclusion::Closed),
        _ => None,
    };
    let acceptance = conclusion.map(|conclusion| {
        let date = head
            .end
            .plus_months(d.range(1, 6))
            .with_day(d.range(1, 28) as u8);
        let organization = match head.program {
            Program::Nsfc => vocabulary().programs.nsfc.funder.clone(),
            Program::KeyRd | Program::Major => head.domain.agency.to_owned(),
            Program::Guide | Program::BaseTalent => vocabulary().programs.most.name.clone(),
            _ => funder.name.clone(),
        };
        Acceptance {
            report_no: d
                .chance(0.5)
                .then(|| format!("验字〔{}〕{}号", date.y, d.range(1, 500))),
            date: date.to_string(),
            conclusion,
            organization: Some(organization),
        }
    });
    (status, acceptance)
}

/// An amount in 万元 from cents: integers stay integers (`12`), others keep two decimals.
pub(super) fn amount(cents: u64) -> Amount {
    if cents.is_multiple_of(100) {
        Amount::from(cents / 100)
    } else {
        Amount::from_f64(cents as f64 / 100.0).expect("finite")
    }
}

/// 科学技术部 as a funder.
pub(super) fn most_funder() -> Funder {
    let most = &vocabulary().programs.most;
    Funder {
        name: most.name.clone(),
        uscc: Some(most.uscc.clone()),
        region: Some(most.region.clone()),
    }
}

/// 国家自然科学基金委员会 as a funder.
pub(super) fn nsfc_funder() -> Funder {
    let name = vocabulary().programs.nsfc.funder.as_str();
    Funder {
        name: name.to_owned(),
        uscc: Some(uscc_for("12", "100000", name, false)),
        region: Some("110000".to_owned()),
    }
}

/// `(a·j + b) mod n` with `a` coprime to `n`: a bijection on `0..n` that scatters neighbours.
pub(super) fn permute(j: u64, n: u64, offset: u64) -> u64 {
    let mut a = (n as f64 * 0.618_033_988_7) as u64 | 1;
    while gcd(a, n) != 1 {
        a += 2;
    }
    ((u128::from(j % n) * u128::from(a) + u128::from(offset % n)) % u128::from(n)) as u64
}

fn gcd(mut a: u64, mut b: u64) -> u64 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Program {
    Nsfc,
    KeyRd,
    Major,
    Guide,
    BaseTalent,
    ProvKeyRd,
    ProvBasic,
    ProvMajor,
    ProvTalent,
}

pub(super) const PROGRAMS: [Program; 9] = [
    Program::Nsfc,
    Program::KeyRd,
    Program::Major,
    Program::Guide,
    Program::BaseTalent,
    Program::ProvKeyRd,
    Program::ProvBasic,
    Program::ProvMajor,
    Program::ProvTalent,
];
const PROVINCE_PROGRAM_WEIGHTS: [u32; 9] = [22, 14, 3, 6, 4, 20, 16, 8, 7];
const NATIONAL_PROGRAM_WEIGHTS: [u32; 9] = [32, 36, 10, 12, 10, 0, 0, 0, 0];

impl Program {
    /// How many distinct numbers the program's number shape holds.
    pub(super) fn capacity(self) -> u64 {
        match self {
            Program::Nsfc => 13 * 8 * NSFC_TYPES as u64 * 10_000,
            Program::KeyRd => 9 * 6 * 99 * 999,
            Program::Major => 12 * 999 * 999,
            Program::Guide | Program::BaseTalent => 9 * 1_000_000,
            Program::ProvKeyRd => 13 * 6 * 1_000_000,
            Program::ProvBasic | Program::ProvTalent => 13 * PROVINCE_TYPES as u64 * 1_000_000,
            Program::ProvMajor => 13 * 2 * 1_000_000,
        }
    }
}
