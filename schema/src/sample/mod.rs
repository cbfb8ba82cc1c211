//! Deterministic, seeded sample records: the data every test, benchmark and load generator uses.
//!
//! A [`SampleGenerator`] turns `(seed, node, kind, index)` into one record, with random access:
//! record `i` of a kind is drawn from its own ChaCha8 stream seeded from the configured seed, the
//! kind, the index and the node, so `achievement(i)` is the same whatever was generated before
//! it, on any machine, in any order or thread. Generating costs a few microseconds and no I/O.
//!
//! What it guarantees:
//! - every record passes [`crate::validate_record`] — the JSON Schema and every code rule (valid
//!   USCC check characters, region codes, registration numbers with the right category flag,
//!   date order, budgets that add up, acceptance consistent with the status, distinct keywords,
//!   `confidential_fields` that point at present, non-identity fields);
//! - the content reads like the real thing: Chinese titles and abstracts built from field
//!   vocabulary (锂离子电池, 芯片, 钙钛矿太阳能电池, 水稻育种, 中药, 5G通信…), with the
//!   two-character words search tests look for (电池, 芯片, 疫苗, 大豆, 光伏…) as keywords and in
//!   the text; institutions whose name always comes with the same USCC and region; programs with
//!   project numbers in their real shapes (`2021YFB2400100`, `52074123`, `202303AC100012`);
//! - achievement `i` is funded by project [`funding_project_index`]`(i)` of the same generator
//!   (same program, number, sub-program and funder), so linking can be tested;
//! - project numbers are unique per program within a node (for the first ~65,000 projects of the
//!   tightest program, far more for the others) and disjoint between province nodes, ministry
//!   nodes and the shared records; registration numbers are unique per node up to 899,999
//!   achievements;
//! - [`SampleGenerator::shared_achievement`] and [`SampleGenerator::shared_project`] do not depend
//!   on the node, so two nodes built with the same seed register the very same result (same title,
//!   registration number, patent numbers, funding), which is what a merge test needs.
//!
//! What it does not do: it keeps no state and knows no clock. Dates run up to 2025; numbers a
//! node assigns itself (registration numbers) are filled in as a node would have, and a node that
//! assigns its own may overwrite them.
//!
//! How it is laid out (issue 13): the generator is code, its vocabulary is data.
//! - `vocabulary/*.toml` — every word list the records are made of: provinces and cities,
//!   technology areas, programs and funders, institution name patterns, people's names and
//!   titles, phrases. A domain expert corrects a term there without reading Rust; each file's
//!   header says what its lists are for. They are compiled in (`include_str!`) and parsed once.
//! - `vocabulary` — the typed tables those files parse into, and the checks they must pass;
//! - `generator` — [`SampleGenerator`]: streams, scopes, record-level secrecy;
//! - `profile` — [`NodeProfile`] and [`SampleConfig`];
//! - `projects` — project heads, numbers, budgets, status; `achievements` — the registration
//!   form; `parties` — institutions, people, contacts and their identifiers;
//! - `text` — the sentence patterns of titles, abstracts, keywords and indicators;
//! - `draw`, `calendar` — the seeded stream and the date arithmetic.
//!
//! Changing any vocabulary file changes the generated records; the golden digests in the tests
//! say so, and are updated with the reason.

mod achievements;
mod calendar;
mod draw;
mod generator;
mod parties;
mod profile;
mod projects;
mod text;
mod vocabulary;

#[cfg(test)]
mod tests;

pub use generator::{ACHIEVEMENTS_PER_PROJECT, SampleGenerator, funding_project_index};
pub use profile::{NodeProfile, SampleConfig};
