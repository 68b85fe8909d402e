//! The job's data: the synthetic world (the default) or a dataset on disk in one of the
//! loaders' formats, its planted truth when it has one, and the features it offers
//! beyond its media.

use std::path::{Path, PathBuf};

use mspa_core::synth::{Truth, generate};
use mspa_core::{Dataset, Format};
use mspa_modal::features::{AuthorFeatures, CategoryOneHot, Modality, PooledRows, append_source};
use serde::{Deserialize, Serialize};

use super::{PipelineConfig, PipelineError, stage_err};

/// KuaiLive's room-title embeddings (row = `live_name_id`), read when present.
pub const KUAILIVE_TITLE_EMBEDDINGS: &str = "title_embeddings_pca128.npy";

/// A dataset on disk for the job, instead of the synthetic world.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DataSource {
    /// A directory (native, KuaiLive) or a CSV file (Twitch).
    pub path: PathBuf,
    /// The format of `path`.
    pub format: Format,
}

impl DataSource {
    /// The folder the source's files lie in (the file's folder for Twitch).
    pub fn dir(&self) -> &Path {
        match self.format {
            Format::Twitch => self.path.parent().unwrap_or(Path::new(".")),
            _ => &self.path,
        }
    }

    /// The planted truth of a native dataset written by the synthetic world
    /// (`truth.json` beside its files); `None` for any other data.
    pub fn truth(&self) -> Result<Option<Truth>, PipelineError> {
        if self.format != Format::Native || !self.path.join("truth.json").is_file() {
            return Ok(None);
        }
        Truth::load(&self.path).map(Some).map_err(stage_err("data"))
    }
}

/// Precomputed vectors for one modality slot: the rows of a `.npy` matrix with an id
/// file naming each row's author (rows of one author are averaged).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct VectorFile {
    /// The `.npy` matrix (`f32` or `f64`, one row per item).
    pub npy: PathBuf,
    /// One author id per line, line `i` for row `i`.
    pub ids: PathBuf,
    /// The slot the vectors extend.
    pub modality: Modality,
}

/// The loaded data of one job.
pub(crate) struct LoadedData {
    /// The tips and authors.
    pub dataset: Dataset,
    /// The planted truth: the reference texts and the oracle (synthetic worlds only).
    pub truth: Option<Truth>,
    /// What the report says the data was.
    pub description: serde_json::Value,
}

/// Generates the world into `out_dir/world` (no `config.data`) or loads `config.data`.
pub(crate) fn load_data(
    config: &PipelineConfig,
    note: &mut impl FnMut(&str, usize, usize, String),
) -> Result<LoadedData, PipelineError> {
    let Some(source) = &config.data else {
        let world_dir = config.out_dir.join("world");
        note(
            "world",
            0,
            1,
            format!(
                "generating {} users x {} authors",
                config.world.users, config.world.authors
            ),
        );
        generate(&config.world, &world_dir).map_err(stage_err("world"))?;
        let dataset = mspa_core::load_native(&world_dir).map_err(stage_err("world"))?;
        let truth = Truth::load(&world_dir).map_err(stage_err("world"))?;
        return Ok(LoadedData {
            dataset,
            truth: Some(truth),
            description: serde_json::to_value(&config.world).unwrap_or_default(),
        });
    };
    note("data", 0, 1, format!("loading {}", source.path.display()));
    let dataset = mspa_core::loaders::load(source.format, &source.path, &mut |p| {
        note("data", 0, 1, format!("{} lines", p.lines))
    })
    .map_err(stage_err("data"))?;
    Ok(LoadedData {
        truth: source.truth()?,
        description: serde_json::json!({
            "path": source.path.display().to_string(),
            "format": source.format.to_string(),
        }),
        dataset,
    })
}

/// Adds what the data offers beyond media to `features`: `config.vectors` (any
/// format), and for KuaiLive the room-title embeddings pooled per streamer and a one-hot
/// of the streamers' main content category, both in the text slot. Returns a line per
/// source added.
pub(crate) fn add_data_features(
    config: &PipelineConfig,
    dataset: &Dataset,
    features: &mut [AuthorFeatures],
) -> Result<Vec<String>, PipelineError> {
    let err = stage_err::<mspa_modal::ModalError>;
    let mut added = Vec::new();
    for v in &config.vectors {
        let pooled =
            PooledRows::from_id_file(&v.npy, &v.ids, v.modality).map_err(err("features"))?;
        append_source(features, &pooled, dataset).map_err(err("features"))?;
        added.push(format!(
            "{}: {} pooled per author",
            v.modality,
            v.npy.display()
        ));
    }
    let Some(source) = config
        .data
        .as_ref()
        .filter(|s| s.format == Format::KuaiLive)
    else {
        return Ok(added);
    };
    let npy = source.path.join(KUAILIVE_TITLE_EMBEDDINGS);
    if npy.is_file() {
        let matrix = mspa_core::npy::NpyMatrix::read(&npy).map_err(stage_err("features"))?;
        let rows = mspa_core::loaders::kuailive::room_title_ids(&source.path)
            .map_err(stage_err("features"))?;
        let name = npy.display().to_string();
        let pooled = PooledRows::new(&name, Modality::Text, matrix, rows);
        append_source(features, &pooled, dataset).map_err(err("features"))?;
        added.push(format!(
            "text: {KUAILIVE_TITLE_EMBEDDINGS} rows pooled per streamer"
        ));
    }
    if let Some(onehot) = CategoryOneHot::from_titles(dataset, 64) {
        append_source(features, &onehot, dataset).map_err(err("features"))?;
        added.push(format!(
            "text: one-hot of the main content category ({} values)",
            onehot.values().len()
        ));
    }
    Ok(added)
}

/// Whether some author has some content (a modality present).
pub(crate) fn has_content(features: &[AuthorFeatures]) -> bool {
    Modality::ALL.iter().any(|&m| has_modality(features, m))
}

/// Whether some author has a non-empty vector of modality `m`.
pub(crate) fn has_modality(features: &[AuthorFeatures], m: Modality) -> bool {
    features.iter().any(|f| f.has(m) && !f.get(m).is_empty())
}

/// What the report says of the features: the modalities at least one author has, and a
/// note when there is none.
pub(crate) fn feature_notes(features: &[AuthorFeatures], sources: Vec<String>) -> Vec<String> {
    let present: Vec<String> = Modality::ALL
        .iter()
        .filter(|&&m| has_modality(features, m))
        .map(Modality::to_string)
        .collect();
    let mut notes = sources;
    if present.is_empty() {
        notes.push(
            "no author has content (frames, audio or text): MSPA, VBPR and Concat run on behaviour alone, and FREEDOM (whose item graph is built from content) is left out".into(),
        );
    } else {
        notes.push(format!("modalities with content: {}", present.join(", ")));
    }
    notes
}
