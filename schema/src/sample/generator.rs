//! The generator itself: [`SampleGenerator`], its per-record streams, and what every record
//! shares (scopes, funders, record-level secrecy, commercial-secret pointers).
//!
//! Why: random access and determinism are decided here. Record `i` of a kind is drawn from its
//! own ChaCha8 stream seeded from `(seed, stream, index, node)`, so a record never depends on
//! what was generated before it. Building a record is left to `projects` and `achievements`;
//! this module holds only what both need.
//!
//! What it may not touch: vocabulary files (it reads the parsed tables through
//! `vocabulary()`), any I/O, or the order of draws of an existing stream.

use super::calendar::{Ymd, latest_date};
use super::draw::{Draw, fnv1a, splitmix};
use super::profile::SampleConfig;
use super::projects::{most_funder, nsfc_funder};
use super::vocabulary::places;
use crate::codes::Issuer;
use crate::record::{Achievement, FundedProject, Funder, Secrecy, SecrecyDecision};
use crate::secrecy::SecrecyLevel;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use std::ops::Range;

/// How many achievements come from one funded project: achievement `i` is funded by project
/// `i / ACHIEVEMENTS_PER_PROJECT`.
pub const ACHIEVEMENTS_PER_PROJECT: u64 = 3;

/// The index of the project that funds achievement `i` (of the same generator; for
/// [`SampleGenerator::shared_achievement`] it is the same index into
/// [`SampleGenerator::shared_project`]).
pub fn funding_project_index(i: u64) -> u64 {
    i / ACHIEVEMENTS_PER_PROJECT
}

/// The seeded, random-access record generator. Cheap to build, immutable, `Send + Sync`.
#[derive(Debug, Clone)]
pub struct SampleGenerator {
    pub(super) config: SampleConfig,
    node: Scope,
    shared: Scope,
    /// Seed-derived offset of the project-number permutation.
    pub(super) number_offset: u64,
    /// Seed-derived offset of patent and copyright serials.
    pub(super) serial_offset: u64,
    /// 科学技术部, 国家自然科学基金委员会 and, for a province node, its department.
    funders: [Option<Funder>; 3],
}

/// Which funder a project has (see `SampleGenerator::funders`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum FunderOf {
    Most,
    Nsfc,
    Home,
}

/// Where records are generated for: a node, or the node-independent shared set.
#[derive(Debug, Clone)]
pub(super) struct Scope {
    pub(super) home: Option<usize>,
    /// Partition of every project-number space (0..=30 provinces, 32..=62 ministries, 63 shared).
    pub(super) slot: u64,
    pub(super) node_hash: u64,
    pub(super) issuer: Option<Issuer>,
    pub(super) authority: Option<String>,
    pub(super) decision_prefix: String,
    pub(super) shared: bool,
}

pub(super) const SLOTS: u64 = 64;
const SHARED_SLOT: u64 = 63;
pub(super) const NODE_SERIALS: u64 = 899_999;
pub(super) const SHARED_SERIAL_BASE: u64 = 900_000;
pub(super) const SHARED_SERIALS: u64 = 99_999;

/// Stream tags: which record kind (and which part of it) a ChaCha stream draws.
#[derive(Clone, Copy)]
pub(super) enum Stream {
    Achievement = 1,
    Project = 2,
    AchievementSecrecy = 3,
    ProjectSecrecy = 4,
}

impl SampleGenerator {
    /// A generator for `config`.
    pub fn new(config: SampleConfig) -> SampleGenerator {
        let profile = &config.node;
        let node_hash = fnv1a(profile.node_id.as_bytes()) | 1;
        let (slot, decision_prefix) = match (profile.home, &profile.issuer) {
            (Some(home), _) => (home as u64, format!("{}科密解", places()[home].short)),
            (None, issuer) => {
                let code: u64 = issuer.code().parse().unwrap_or(0);
                (32 + code % 31, format!("{}密解", profile.name))
            }
        };
        let node = Scope {
            home: profile.home,
            slot,
            node_hash,
            issuer: Some(profile.issuer.clone()),
            authority: Some(profile.name.clone()),
            decision_prefix,
            shared: false,
        };
        let shared = Scope {
            home: None,
            slot: SHARED_SLOT,
            node_hash: 0,
            issuer: None,
            authority: None,
            decision_prefix: "国科密解".to_owned(),
            shared: true,
        };
        let number_offset = splitmix(config.seed ^ 0x6e75_6d62_6572_7321);
        let serial_offset = splitmix(config.seed ^ 0x7061_7465_6e74_7321);
        let funders = [
            Some(most_funder()),
            Some(nsfc_funder()),
            profile.home.map(|h| places()[h].department_funder()),
        ];
        SampleGenerator {
            config,
            node,
            shared,
            number_offset,
            serial_offset,
            funders,
        }
    }

    /// The configuration this generator was built with.
    pub fn config(&self) -> &SampleConfig {
        &self.config
    }

    /// Achievement (科技成果) number `i` of this node.
    pub fn achievement(&self, i: u64) -> Achievement {
        self.build_achievement(&self.node, i)
    }

    /// Funded project (科技计划项目) number `i` of this node.
    pub fn project(&self, i: u64) -> FundedProject {
        self.build_project(&self.node, i)
    }

    /// Achievements `range` of this node, in order.
    pub fn achievements(&self, range: Range<u64>) -> impl Iterator<Item = Achievement> + '_ {
        range.map(|i| self.achievement(i))
    }

    /// Projects `range` of this node, in order.
    pub fn projects(&self, range: Range<u64>) -> impl Iterator<Item = FundedProject> + '_ {
        range.map(|i| self.project(i))
    }

    /// Shared achievement `i`: a result that several nodes register (e.g. the funding ministry
    /// and the province). It depends on the seed and the commercial-secret share only, never on
    /// the node, so generators of two nodes return identical records: same title, institutions,
    /// registration number (issued by the main institution's province, serials 900001 and up),
    /// patent numbers and funding. It is always public, and is funded by
    /// [`SampleGenerator::shared_project`]`(`[`funding_project_index`]`(i))`, a national program.
    pub fn shared_achievement(&self, i: u64) -> Achievement {
        self.build_achievement(&self.shared, i)
    }

    /// Shared project `i`, node-independent like [`SampleGenerator::shared_achievement`], with
    /// project numbers that no node's own projects use.
    pub fn shared_project(&self, i: u64) -> FundedProject {
        self.build_project(&self.shared, i)
    }

    /// Declassifies (降解密) an achievement: lowers it to public with a decision naming
    /// `reference` (文号), this node as the authority, a date one year after its latest date, and
    /// the level it had. Returns `false`, changing nothing, if it is public already. The caller
    /// stores the result as a new version.
    pub fn declassify(&self, achievement: &mut Achievement, reference: &str) -> bool {
        let dates = [
            achievement.registration_date.as_deref(),
            Some(achievement.research_period.end.as_str()),
            achievement
                .secrecy
                .decision
                .as_ref()
                .map(|d| d.date.as_str()),
        ];
        let latest = latest_date(&dates);
        self.lower_to_public(&mut achievement.secrecy, reference, latest)
    }

    /// Declassifies a funded project, as [`SampleGenerator::declassify`] does an achievement.
    pub fn declassify_project(&self, project: &mut FundedProject, reference: &str) -> bool {
        let dates = [
            Some(project.period.start.as_str()),
            project.acceptance.as_ref().map(|a| a.date.as_str()),
            project.secrecy.decision.as_ref().map(|d| d.date.as_str()),
        ];
        let latest = latest_date(&dates);
        self.lower_to_public(&mut project.secrecy, reference, latest)
    }

    fn lower_to_public(&self, secrecy: &mut Secrecy, reference: &str, latest: Ymd) -> bool {
        if secrecy.level == SecrecyLevel::Public {
            return false;
        }
        *secrecy = Secrecy {
            level: SecrecyLevel::Public,
            term_years: None,
            decision: Some(SecrecyDecision {
                reference: reference.to_owned(),
                date: latest.plus_years(1).to_string(),
                authority: self.node.authority.clone(),
                previous_level: secrecy.level,
            }),
        };
        true
    }

    pub(super) fn funder(&self, which: FunderOf) -> &Funder {
        self.funders[which as usize]
            .as_ref()
            .expect("provincial programs only for province nodes")
    }

    pub(super) fn draw(&self, scope: &Scope, stream: Stream, index: u64) -> Draw {
        let mut seed = [0u8; 32];
        seed[..8].copy_from_slice(&self.config.seed.to_le_bytes());
        seed[8..16].copy_from_slice(&(stream as u64).to_le_bytes());
        seed[16..24].copy_from_slice(&index.to_le_bytes());
        seed[24..].copy_from_slice(&scope.node_hash.to_le_bytes());
        Draw(ChaCha8Rng::from_seed(seed))
    }

    /// The record-level secrecy, drawn from the record's secrecy stream.
    pub(super) fn secrecy(&self, aux: &mut Draw, scope: &Scope, latest: Ymd) -> Secrecy {
        let u = aux.unit();
        if scope.shared {
            return Secrecy::at(SecrecyLevel::Public);
        }
        let classified = self.config.share_classified.clamp(0.0, 1.0);
        let internal = self.config.share_internal.clamp(0.0, 1.0);
        let level = if u < classified {
            match u / classified {
                v if v < 0.50 => SecrecyLevel::Secret,
                v if v < 0.85 => SecrecyLevel::Confidential,
                _ => SecrecyLevel::TopSecret,
            }
        } else if u < classified + internal {
            SecrecyLevel::Internal
        } else {
            SecrecyLevel::Public
        };
        let history = aux.chance(0.03);
        match level {
            SecrecyLevel::Secret => classified_at(level, 10),
            SecrecyLevel::Confidential => classified_at(level, 20),
            SecrecyLevel::TopSecret => classified_at(level, 30),
            // A few public and internal records were declassified earlier.
            level if history => {
                let previous_level = match (level, aux.below(2)) {
                    (SecrecyLevel::Public, 0) => SecrecyLevel::Internal,
                    (SecrecyLevel::Public, _) => SecrecyLevel::Secret,
                    (_, 0) => SecrecyLevel::Secret,
                    _ => SecrecyLevel::Confidential,
                };
                let date = latest
                    .plus_months(aux.range(1, 24))
                    .with_day(aux.range(1, 28) as u8);
                Secrecy {
                    level,
                    term_years: None,
                    decision: Some(SecrecyDecision {
                        reference: format!(
                            "{}〔{}〕{}号",
                            scope.decision_prefix,
                            date.y,
                            aux.range(1, 60)
                        ),
                        date: date.to_string(),
                        authority: scope.authority.clone(),
                        previous_level,
                    }),
                }
            }
            level => Secrecy::at(level),
        }
    }
}

fn classified_at(level: SecrecyLevel, term: u8) -> Secrecy {
    Secrecy {
        level,
        term_years: Some(term),
        decision: None,
    }
}

/// 1–3 distinct pointers among the present candidates.
pub(super) fn confidential(d: &mut Draw, candidates: &[(&str, bool)]) -> Option<Vec<String>> {
    let present: Vec<&str> = candidates
        .iter()
        .filter(|(_, present)| *present)
        .map(|(p, _)| *p)
        .collect();
    if present.is_empty() {
        return None;
    }
    let want = (1 + d.below(3)).min(present.len());
    // A partial Fisher-Yates shuffle: distinct by construction.
    let mut order: Vec<usize> = (0..present.len()).collect();
    for n in 0..want {
        let k = n + d.below(order.len() - n);
        order.swap(n, k);
    }
    Some(
        order[..want]
            .iter()
            .map(|&k| present[k].to_owned())
            .collect(),
    )
}
