//! The latent author attributes, their value lists and priors, and the authors' latents.
//!
//! Six attributes, each with a fixed, ordered list of values (the order is the index used
//! everywhere, and the order of the weight arrays in `truth_users.jsonl`):
//!
//! | field | values | shows in |
//! |---|---|---|
//! | `categories` | music, dance, gaming, talk, cooking, art, sports, outdoor | text (vocabulary, with synonyms and noise) and frames (shape kind) |
//! | `energy` | low, medium, high | frames (brightness) and audio (tempo, loudness) |
//! | `audio` | electronic, acoustic, vocal, ambient, rock | audio only (timbre, rhythm) |
//! | `visuals` | neon, pastel, dark, natural, monochrome | frames only (palette) |
//! | `language` | english, spanish, portuguese, french | text only (vocabulary) |
//! | `format` | solo, collab, tutorial, challenge | text (vocabulary) and frames (texture/layout overlay) |

use serde::{Deserialize, Serialize};

use super::SyntheticWorldConfig;
use super::sampling::{DOMAIN_AUTHOR, categorical, entity_rng, normal, round6, unit, unit_vector};

/// The six attribute fields, in grammar order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Field {
    /// Content category (multi-valued in preferences; authors may have a secondary one).
    Categories,
    /// Stream energy, ordinal.
    Energy,
    /// Audio style.
    Audio,
    /// Visual style.
    Visuals,
    /// Spoken/written language.
    Language,
    /// Stream format.
    Format,
}

/// Category values.
pub const CATEGORIES: [&str; 8] = [
    "music", "dance", "gaming", "talk", "cooking", "art", "sports", "outdoor",
];
/// Energy values (ordinal).
pub const ENERGY: [&str; 3] = ["low", "medium", "high"];
/// Audio style values.
pub const AUDIO_STYLES: [&str; 5] = ["electronic", "acoustic", "vocal", "ambient", "rock"];
/// Visual style values.
pub const VISUAL_STYLES: [&str; 5] = ["neon", "pastel", "dark", "natural", "monochrome"];
/// Language values.
pub const LANGUAGES: [&str; 4] = ["english", "spanish", "portuguese", "french"];
/// Stream format values.
pub const FORMATS: [&str; 4] = ["solo", "collab", "tutorial", "challenge"];

impl Field {
    /// All fields in grammar order.
    pub const ALL: [Field; 6] = [
        Field::Categories,
        Field::Energy,
        Field::Audio,
        Field::Visuals,
        Field::Language,
        Field::Format,
    ];

    /// The field's name in the grammar and in the truth files.
    pub fn name(self) -> &'static str {
        match self {
            Field::Categories => "categories",
            Field::Energy => "energy",
            Field::Audio => "audio",
            Field::Visuals => "visuals",
            Field::Language => "language",
            Field::Format => "format",
        }
    }

    /// The field's values, in index order.
    pub fn values(self) -> &'static [&'static str] {
        match self {
            Field::Categories => &CATEGORIES,
            Field::Energy => &ENERGY,
            Field::Audio => &AUDIO_STYLES,
            Field::Visuals => &VISUAL_STYLES,
            Field::Language => &LANGUAGES,
            Field::Format => &FORMATS,
        }
    }

    /// The modalities in which the field shows (`"text"`, `"frames"`, `"audio"`).
    pub fn modalities(self) -> &'static [&'static str] {
        match self {
            Field::Categories => &["text", "frames"],
            Field::Energy => &["frames", "audio"],
            Field::Audio => &["audio"],
            Field::Visuals => &["frames"],
            Field::Language => &["text"],
            Field::Format => &["text", "frames"],
        }
    }

    /// The population prior over the field's values, shared by authors' attributes and
    /// users' favourites (so popular categories have both more authors and more fans).
    pub fn prior(self) -> &'static [f64] {
        match self {
            Field::Categories => &[0.18, 0.12, 0.20, 0.15, 0.08, 0.09, 0.10, 0.08],
            Field::Energy => &[0.3, 0.4, 0.3],
            Field::Audio => &[0.2; 5],
            Field::Visuals => &[0.2; 5],
            Field::Language => &[0.45, 0.25, 0.18, 0.12],
            Field::Format => &[0.4, 0.2, 0.2, 0.2],
        }
    }

    /// The index of `value` in the field's list.
    pub fn index_of(self, value: &str) -> Option<usize> {
        self.values().iter().position(|v| *v == value)
    }
}

/// An author's latent attributes, as value indices into each field's list.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AuthorAttributes {
    /// Primary category.
    pub category: u8,
    /// Secondary category, if any (never equal to the primary).
    pub category2: Option<u8>,
    /// Energy.
    pub energy: u8,
    /// Audio style.
    pub audio: u8,
    /// Visual style.
    pub visuals: u8,
    /// Language.
    pub language: u8,
    /// Stream format.
    pub format: u8,
}

/// Weight of the primary category in an author's category vector when it has a secondary.
pub const PRIMARY_CATEGORY_WEIGHT: f64 = 0.7;

impl AuthorAttributes {
    /// The value index of a single-valued field (the primary one for categories).
    pub fn value(&self, field: Field) -> usize {
        (match field {
            Field::Categories => self.category,
            Field::Energy => self.energy,
            Field::Audio => self.audio,
            Field::Visuals => self.visuals,
            Field::Language => self.language,
            Field::Format => self.format,
        }) as usize
    }
}

/// Named form of [`AuthorAttributes`] used in `truth.json`.
#[derive(Serialize, Deserialize)]
struct NamedAttributes {
    category: String,
    category2: Option<String>,
    energy: String,
    audio: String,
    visuals: String,
    language: String,
    format: String,
}

impl Serialize for AuthorAttributes {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        NamedAttributes {
            category: CATEGORIES[self.category as usize].to_string(),
            category2: self.category2.map(|c| CATEGORIES[c as usize].to_string()),
            energy: ENERGY[self.energy as usize].to_string(),
            audio: AUDIO_STYLES[self.audio as usize].to_string(),
            visuals: VISUAL_STYLES[self.visuals as usize].to_string(),
            language: LANGUAGES[self.language as usize].to_string(),
            format: FORMATS[self.format as usize].to_string(),
        }
        .serialize(s)
    }
}

impl<'de> Deserialize<'de> for AuthorAttributes {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let n = NamedAttributes::deserialize(d)?;
        let idx = |field: Field, v: &str| {
            field
                .index_of(v)
                .map(|i| i as u8)
                .ok_or_else(|| serde::de::Error::custom(format!("unknown {} `{v}`", field.name())))
        };
        Ok(AuthorAttributes {
            category: idx(Field::Categories, &n.category)?,
            category2: n
                .category2
                .as_deref()
                .map(|c| idx(Field::Categories, c))
                .transpose()?,
            energy: idx(Field::Energy, &n.energy)?,
            audio: idx(Field::Audio, &n.audio)?,
            visuals: idx(Field::Visuals, &n.visuals)?,
            language: idx(Field::Language, &n.language)?,
            format: idx(Field::Format, &n.format)?,
        })
    }
}

/// One author's latent truth, as written to `truth.json`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AuthorTruth {
    /// External id (as in `authors.jsonl`).
    pub id: String,
    /// Latent attributes.
    pub attributes: AuthorAttributes,
    /// Natural log of the latent popularity (normal with sigma `popularity_sigma`).
    pub log_popularity: f64,
    /// Unit vector of the hidden collaborative factor (`id_dims` long).
    pub id_vector: Vec<f64>,
    /// Whether the author has frames.
    pub has_frames: bool,
    /// Whether the author has an audio clip.
    pub has_audio: bool,
    /// Whether the author has a non-empty description.
    pub has_description: bool,
}

/// The external id of author `i` of `n`: `a` and at least 5 digits.
pub fn author_id(i: usize, n: usize) -> String {
    format!("a{:0w$}", i, w = digits(n.saturating_sub(1)).max(5))
}

/// The external id of user `i` of `n`: `u` and at least 6 digits.
pub fn user_id(i: usize, n: usize) -> String {
    format!("u{:0w$}", i, w = digits(n.saturating_sub(1)).max(6))
}

fn digits(mut n: usize) -> usize {
    let mut d = 1;
    while n >= 10 {
        n /= 10;
        d += 1;
    }
    d
}

/// Draws author `index`'s latent truth (attributes, popularity, modality presence).
pub(crate) fn sample_author(config: &SyntheticWorldConfig, index: usize) -> AuthorTruth {
    let mut rng = entity_rng(config.seed, DOMAIN_AUTHOR, index as u64);
    let mut pick = |field: Field| categorical(&mut rng, field.prior()) as u8;
    let category = pick(Field::Categories);
    let energy = pick(Field::Energy);
    let audio = pick(Field::Audio);
    let visuals = pick(Field::Visuals);
    let language = pick(Field::Language);
    let format = pick(Field::Format);
    let category2 = if unit(&mut rng) < config.secondary_category_prob {
        let mut prior = Field::Categories.prior().to_vec();
        prior[category as usize] = 0.0;
        Some(categorical(&mut rng, &prior) as u8)
    } else {
        None
    };
    let log_popularity = round6(config.popularity_sigma * normal(&mut rng));
    let id_vector = unit_vector(&mut rng, config.id_dims);
    let has_frames = config.frames_per_author > 0 && unit(&mut rng) >= config.frame_dropout;
    let has_audio = unit(&mut rng) >= config.audio_dropout;
    let has_description = unit(&mut rng) >= config.description_dropout;
    AuthorTruth {
        id: author_id(index, config.authors),
        attributes: AuthorAttributes {
            category,
            category2,
            energy,
            audio,
            visuals,
            language,
            format,
        },
        log_popularity,
        id_vector,
        has_frames,
        has_audio,
        has_description,
    }
}

/// Checks that a loaded author is usable with the world's config.
pub(crate) fn check_author(a: &AuthorTruth, id_dims: usize) -> Result<(), String> {
    if a.id_vector.len() != id_dims {
        return Err(format!(
            "author {} has an id_vector of {} dims, expected {id_dims}",
            a.id,
            a.id_vector.len()
        ));
    }
    if !a.log_popularity.is_finite() {
        return Err(format!("author {} has a non-finite log_popularity", a.id));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn synth_priors_match_value_lists() {
        for f in Field::ALL {
            assert_eq!(f.prior().len(), f.values().len(), "{}", f.name());
            assert!((f.prior().iter().sum::<f64>() - 1.0).abs() < 1e-9);
            assert!(!f.modalities().is_empty() && f.modalities().len() <= 2);
        }
    }

    #[test]
    fn synth_attributes_round_trip_through_json() {
        let c = SyntheticWorldConfig::default();
        for i in 0..50 {
            let a = sample_author(&c, i);
            let json = serde_json::to_string(&a).unwrap();
            let back: AuthorTruth = serde_json::from_str(&json).unwrap();
            assert_eq!(a, back);
            assert_ne!(Some(a.attributes.category), a.attributes.category2);
        }
    }

    #[test]
    fn synth_ids_are_padded() {
        assert_eq!(author_id(42, 300), "a00042");
        assert_eq!(author_id(7, 200_000), "a000007");
        assert_eq!(user_id(42, 2000), "u000042");
    }
}
