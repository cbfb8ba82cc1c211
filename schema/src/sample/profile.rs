//! Who the records are generated for: the node ([`NodeProfile`]) and the generator's
//! configuration ([`SampleConfig`]).
//!
//! Why on its own: this is the part of the generator other crates configure (the demo, loadgen,
//! benches and tests build profiles and configs); it is small, and stable while the generator
//! changes.
//!
//! What it may not touch: record generation or randomness. A profile only names a node and,
//! for a province, its row of `places.toml`.

use super::vocabulary::places;
use crate::codes::Issuer;

/// The node a generator registers records for: who it is, and who issues its registration
/// numbers. Province nodes register results of institutions mostly in their province and fund
/// provincial as well as national programs; ministry nodes register results from every province
/// under national programs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeProfile {
    pub(super) node_id: String,
    pub(super) name: String,
    pub(super) issuer: Issuer,
    /// Index into the places of `places.toml` for a province node.
    pub(super) home: Option<usize>,
}

impl NodeProfile {
    /// A province-level node, e.g. `NodeProfile::province("530000")` for Yunnan: node id
    /// `prov-530000`, registering body 云南省科学技术厅, registration numbers issued under the
    /// region code.
    ///
    /// # Panics
    ///
    /// If `region` is not the `PP0000` code of one of the 31 mainland province-level divisions of
    /// GB/T 2260.
    pub fn province(region: &str) -> NodeProfile {
        let home = places()
            .iter()
            .position(|p| p.code == region)
            .unwrap_or_else(|| {
                panic!(
                    "{region:?} is not the code of a mainland province-level division \
                     (use the PP0000 form, e.g. 530000 for 云南省, 210000 for 辽宁省)"
                )
            });
        let place = &places()[home];
        NodeProfile {
            node_id: format!("prov-{region}"),
            name: place.department(),
            issuer: Issuer::Region(region.to_owned()),
            home: Some(home),
        }
    }

    /// A central department's node, e.g. `NodeProfile::ministry("most", "科技部", "348")`:
    /// registration numbers are issued under the 3-digit department code.
    ///
    /// # Panics
    ///
    /// If `department_code` is not three ASCII digits, or `node_id` or `name` is empty.
    pub fn ministry(node_id: &str, name: &str, department_code: &str) -> NodeProfile {
        assert!(
            department_code.len() == 3 && department_code.bytes().all(|b| b.is_ascii_digit()),
            "a department code (GB/T 4657) is three digits, got {department_code:?}"
        );
        assert!(!node_id.is_empty(), "a node needs a node id");
        assert!(
            name.chars().count() >= 2,
            "a ministry needs a name of two or more characters"
        );
        NodeProfile {
            node_id: node_id.to_owned(),
            name: name.to_owned(),
            issuer: Issuer::Department(department_code.to_owned()),
            home: None,
        }
    }

    /// The node id (the first half of every global id `{node_id}/{local_id}`).
    pub fn node_id(&self) -> &str {
        &self.node_id
    }

    /// The registering body's name (recommender of its results, authority of its decisions).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Who issues this node's registration numbers.
    pub fn issuer(&self) -> &Issuer {
        &self.issuer
    }

    /// The province a province node serves (`"530000"`), `None` for a ministry.
    pub fn province_code(&self) -> Option<&'static str> {
        self.home.map(|h| places()[h].code.as_str())
    }
}

/// What to generate: the seed, the node, and the shares of restricted records.
///
/// Shares are fractions of records. A record is classified (secret, confidential or top secret,
/// split 50/35/15) with probability `share_classified`, otherwise internal with probability
/// `share_internal`, otherwise public; independently it declares commercial secrets
/// (`confidential_fields`) with probability `share_commercial_secret`. Values are clamped to
/// 0–1, and internal gets what is left if the two restricted shares add up to more than 1.
#[derive(Debug, Clone, PartialEq)]
pub struct SampleConfig {
    /// Seed of every stream; the same seed gives the same records.
    pub seed: u64,
    /// The node the records are registered at.
    pub node: NodeProfile,
    /// Share of internal (内部) records.
    pub share_internal: f64,
    /// Share of classified records (秘密, 机密, 绝密), which never leave a node.
    pub share_classified: f64,
    /// Share of records with commercial secrets declared in `confidential_fields`.
    pub share_commercial_secret: f64,
}

impl Default for SampleConfig {
    /// Seed 20161, the Yunnan province node, 10 % internal, 3 % classified, 15 % with declared
    /// commercial secrets.
    fn default() -> Self {
        SampleConfig {
            seed: 20161,
            node: NodeProfile::province("530000"),
            share_internal: 0.10,
            share_classified: 0.03,
            share_commercial_secret: 0.15,
        }
    }
}
