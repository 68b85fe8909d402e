//! Checks of what MSPA's inputs and attention carry, against a synthetic world's planted
//! truth (used here to evaluate, never to train): linear probes of the frozen author
//! features for each latent attribute, whether MSPA attends to the modality in which
//! a user's strongest preference shows, and how much discovery the users' histories allow
//! when every author's attributes are known.

use mspa_metrics::GroupDifference;
use serde::Serialize;

use crate::plots::MapPoint;

/// Everything checked against the truth.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct TruthChecks {
    /// How well a linear probe of each frozen feature predicts each latent attribute
    /// (`None` when there are too few authors to fit and judge one).
    pub feature_probe: Option<FeatureProbe>,
    /// MSPA's modality attention by the field each test user cares about most.
    pub attribution: ModalityAttribution,
    /// Discovery Recall@10 of each user's own choice model over the authors' true
    /// attributes, fitted on its history: the headroom of discovery from history.
    pub discovery_ceiling: DiscoveryCeiling,
    /// Test users' final preferences and authors' content representations, projected on
    /// their first two principal components (drawn as `plots/preference_map.svg`).
    #[serde(skip)]
    pub map: PreferenceMap,
}

/// Discovery Recall@10 (new-authors protocol, every test user) of a per-user conditional
/// logit over the authors' true attribute values plus their log training popularity,
/// fitted on the user's history (see `pipeline::discovery_ceiling`); it reads the truth,
/// so it bounds what perfect perception of the attributes gives, it is no model.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct DiscoveryCeiling {
    /// The prior precision chosen on the validation targets.
    pub lambda: f64,
    /// Validation Recall@10 of each precision tried.
    pub valid_recall10: Vec<(f64, f64)>,
    /// Test Recall@10 with the chosen precision.
    pub test_recall10: f64,
    /// Test Recall@10 of popularity alone (the same ranking without the fit).
    pub popularity_recall10: f64,
    /// Test users.
    pub users: usize,
}

/// Held-out accuracy of linear probes of the author features, per attribute.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct FeatureProbe {
    /// Authors the probes were fitted on.
    pub fit_authors: usize,
    /// Authors they were judged on (never seen by the probe).
    pub held_out_authors: usize,
    /// One row per attribute field.
    pub fields: Vec<ProbeRow>,
}

/// The probes of one attribute field.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct ProbeRow {
    /// The field (`visuals`, `language`, ...; `categories` is the primary category).
    pub field: String,
    /// The modalities the world shows it in.
    pub shows_in: Vec<String>,
    /// Accuracy of always guessing the most common value.
    pub majority: f64,
    /// Accuracy from the visual, audio and text features (`None`: too few authors have
    /// the modality), in that order.
    pub modalities: [Option<f64>; 3],
    /// Accuracy from the three concatenated.
    pub all: f64,
}

/// MSPA's mean modality weights over its top 10, by the field each test user cares
/// about most, and the checks that the users whose strongest field shows in one
/// modality only attend to it more than the other users do.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct ModalityAttribution {
    /// One group per strongest field.
    pub groups: Vec<AttentionGroup>,
    /// One check per single-modality field.
    pub checks: Vec<AttributionCheck>,
}

/// Test users whose strongest field is the same.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct AttentionGroup {
    /// The field.
    pub strongest_field: String,
    /// Test users in the group.
    pub users: usize,
    /// Their mean modality weights (visual, audio, text) over their top 10.
    pub weights: [f64; 3],
}

/// Attention on one modality of the users whose strongest field shows only there,
/// against every other test user.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct AttributionCheck {
    /// The modality (`visual`, `audio`, `text`).
    pub modality: String,
    /// The field that shows only in it.
    pub field: String,
    /// Mean weight on the modality in the group minus in the other users, with its 95%
    /// bootstrap interval (each group resampled).
    pub difference: GroupDifference,
}

/// Points of the preference map and the names of their colours.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PreferenceMap {
    /// Class names (the categories).
    pub classes: Vec<String>,
    /// Users (circles) and authors (squares).
    pub points: Vec<MapPoint>,
}

impl TruthChecks {
    /// The Markdown section of the checks.
    pub fn markdown(&self) -> String {
        let mut md = "\n## Checks against the planted truth\n".to_string();
        match &self.feature_probe {
            Some(p) => md.push_str(&p.markdown()),
            None => {
                md.push_str("\nToo few authors to fit and judge linear probes of the features.\n")
            }
        }
        md.push_str(&self.attribution.markdown());
        let c = &self.discovery_ceiling;
        md.push_str(&format!(
            "\nDiscovery from history with the authors' true attributes (no model reads them): a per-user conditional logit over the attribute values plus log popularity, fitted on each of the {} test users' history (prior precision {} chosen on validation), reaches discovery Recall@10 {:.4}; popularity alone {:.4}. Compare the models' discovery column: what lies above this needs more than the history says.\n",
            c.users, c.lambda, c.test_recall10, c.popularity_recall10
        ));
        md.push_str("\n`plots/preference_map.svg`: test users' final preferences (circles, coloured by their favourite category) and authors' content (squares, by their category) on the first two principal components.\n");
        md
    }
}

impl FeatureProbe {
    /// The Markdown table of the probes.
    fn markdown(&self) -> String {
        let mut md = format!(
            "\nWhat the frozen author features carry: held-out accuracy of a linear probe (ridge classifier, penalty by 5-fold cross-validation on the {} fitting authors) of each latent attribute, on {} other authors.\n\n| attribute | shows in | majority | visual | audio | text | all |\n|---|---|---|---|---|---|---|\n",
            self.fit_authors, self.held_out_authors
        );
        let cell = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.3}"));
        for r in &self.fields {
            md.push_str(&format!(
                "| {} | {} | {:.3} | {} | {} | {} | {:.3} |\n",
                r.field,
                r.shows_in.join(", "),
                r.majority,
                cell(r.modalities[0]),
                cell(r.modalities[1]),
                cell(r.modalities[2]),
                r.all
            ));
        }
        md
    }
}

impl ModalityAttribution {
    /// The Markdown tables of the groups and the checks.
    fn markdown(&self) -> String {
        let mut md = String::new();
        md.push_str("\nMSPA's mean modality weights over its top 10, by the field each test user cares about most (`plots/modality_attention.svg`):\n\n| strongest field | users | visual | audio | text |\n|---|---|---|---|---|\n");
        for g in &self.groups {
            md.push_str(&format!(
                "| {} | {} | {:.3} | {:.3} | {:.3} |\n",
                g.strongest_field, g.users, g.weights[0], g.weights[1], g.weights[2]
            ));
        }
        md.push_str("\nUsers whose strongest field shows in one modality only, against the other test users: weight on that modality (group minus others, 95% bootstrap interval).\n\n| modality | field | users | difference | 95% CI | attends more |\n|---|---|---|---|---|---|\n");
        for c in &self.checks {
            let d = &c.difference;
            md.push_str(&format!(
                "| {} | {} | {} | {:+.4} | [{:+.4}, {:+.4}] | {} |\n",
                c.modality,
                c.field,
                d.n_a,
                d.delta,
                d.lo,
                d.hi,
                if d.lo > 0.0 { "yes" } else { "no" }
            ));
        }
        md
    }
}
