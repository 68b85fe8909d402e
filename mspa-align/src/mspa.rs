//! Fitting and serving MSPA: training examples to a trained [`Mspa`] network, and the
//! [`MspaRecommender`] that ranks every author with explanations.

use std::collections::HashMap;
use std::path::Path;

use burn::module::Module;
use burn::tensor::{Device, Int, Tensor, TensorData};
use mspa_core::UserId;
use mspa_metrics::Protocol;
use mspa_modal::features::AuthorFeatures;
use serde::{Deserialize, Serialize};

use crate::data::{
    Example, NegativeBatch, Negatives, tensor_values, train_author_counts, training_examples,
};
use crate::error::{AlignError, Result};
use crate::fit::{FitRecommender, Progress, TrainingData};
use crate::model::{AuthorTable, Mspa, MspaConfig, MspaInput, TipBatch, mspa_loss, pair_features};
use crate::recommender::{Query, Recommender, evaluate};
use crate::train::{TrainConfig, fit_with};

/// Everything that defines an MSPA run besides the data.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default)]
pub struct MspaSettings {
    /// Name in reports (`MSPA`, `MSPA (T=0)`, ...).
    pub name: String,
    /// Size of the shared space.
    pub d_model: usize,
    /// Self-correction steps `T`.
    pub correction_steps: usize,
    /// Candidates each correction step re-ranks: the top `shortlist` of step 0 (0: all).
    pub shortlist: usize,
    /// Whether the composed preference text is used.
    pub use_text: bool,
    /// Which author modalities (visual, audio, text) are used.
    pub modalities: [bool; 3],
    /// Whether authors with training tips get id embeddings and a popularity bias.
    pub id_embedding: bool,
    /// Most recent tips the history encoder reads.
    pub max_history: usize,
    /// Weight of the text–author alignment term.
    pub align_weight: f64,
    /// Dropout on the initial preference's inputs while training.
    pub dropout: f64,
    /// Users scored together at inference (bounded further by memory).
    pub score_batch: usize,
    /// The optimisation. Default: 6 epochs (early stopping with patience 3), 64 sampled
    /// negatives, the rest [`TrainConfig::default`]. On the default world's validation
    /// split (three seeds, six variants) the best NDCG@10 of 6 epochs is within 0.0021 of
    /// 8 epochs' (mean -0.0005), in three quarters of the time.
    pub train: TrainConfig,
}

impl Default for MspaSettings {
    fn default() -> Self {
        MspaSettings {
            name: "MSPA".into(),
            d_model: 64,
            correction_steps: 2,
            shortlist: 50,
            use_text: true,
            modalities: [true; 3],
            id_embedding: true,
            max_history: 32,
            align_weight: 0.1,
            dropout: 0.2,
            score_batch: 128,
            train: TrainConfig {
                epochs: 6,
                patience: 3,
                negatives: 64,
                ..TrainConfig::default()
            },
        }
    }
}

/// Composed preferences, embedded, per user and composition time.
///
/// A query (or training example) of user `u` at time `t` reads the latest composition of
/// `u` made at or before `t` (from tips before that time), so training never sees a
/// preference composed from its own future; a user without one reads zeros.
#[derive(Clone, Debug, Default)]
pub struct TextPreferences {
    /// Size of every embedding.
    pub dim: usize,
    /// Per `UserId` index: compositions sorted by time.
    pub by_user: Vec<Vec<ComposedText>>,
}

/// One composed preference of a user.
#[derive(Clone, Debug, PartialEq)]
pub struct ComposedText {
    /// When it was composed (from the tips before this time).
    pub at_ms: i64,
    /// Its embedding (`dim` floats).
    pub embedding: Vec<f32>,
    /// The rendered text.
    pub text: String,
}

impl TextPreferences {
    /// Empty preferences of `users` users with embeddings of size `dim`.
    pub fn new(users: usize, dim: usize) -> Self {
        TextPreferences {
            dim,
            by_user: vec![Vec::new(); users],
        }
    }

    /// Adds a composition (kept sorted by time).
    pub fn insert(&mut self, user: UserId, composed: ComposedText) {
        if user.index() >= self.by_user.len() {
            self.by_user.resize(user.index() + 1, Vec::new());
        }
        let list = &mut self.by_user[user.index()];
        let pos = list.partition_point(|c| c.at_ms <= composed.at_ms);
        list.insert(pos, composed);
    }

    /// The latest composition of `user` made at or before `at_ms`.
    pub fn lookup(&self, user: UserId, at_ms: i64) -> Option<&ComposedText> {
        let list = self.by_user.get(user.index())?;
        let pos = list.partition_point(|c| c.at_ms <= at_ms);
        pos.checked_sub(1).map(|i| &list[i])
    }

    /// The `[B, dim]` tensor of some `(user, time)` queries.
    fn tensor(&self, queries: &[(UserId, i64)], device: &Device) -> Option<Tensor<2>> {
        if self.dim == 0 {
            return None;
        }
        let mut rows = vec![0f32; queries.len() * self.dim];
        for (b, (u, t)) in queries.iter().enumerate() {
            if let Some(c) = self.lookup(*u, *t)
                && c.embedding.len() == self.dim
            {
                rows[b * self.dim..(b + 1) * self.dim].copy_from_slice(&c.embedding);
            }
        }
        Some(Tensor::from_data(
            TensorData::new(rows, [queries.len(), self.dim]),
            device,
        ))
    }
}

/// What [`MspaRecommender::inspect`] found.
#[derive(Clone, Debug, Default)]
pub struct Inspection {
    /// One entry per query, in query order.
    pub users: Vec<UserInspection>,
    /// Every author's content-only representation (`d` values each), in author order.
    pub authors: Vec<Vec<f32>>,
}

/// What the model looked at for one query.
#[derive(Clone, Debug)]
pub struct UserInspection {
    /// The preference after the last correction step (`d` values).
    pub preference: Vec<f32>,
    /// The mean modality weights (visual, audio, text) over the query's top `k` authors.
    pub top_weights: [f32; 3],
}

/// Why an author was recommended.
#[derive(Clone, Debug, Serialize)]
pub struct Explanation {
    /// The author.
    pub author: usize,
    /// The user's composed preference text (when one was composed).
    pub preference: Option<String>,
    /// Weight of the visual, audio and text view of the author for this user.
    pub modality_weights: [f32; 3],
    /// The author's score at each correction step (step 0 first): the log-probability
    /// that the user's next tip goes to it, over all authors at step 0 and over the
    /// user's shortlist after each correction (an author off the shortlist keeps its
    /// step-0 score).
    pub step_scores: Vec<f32>,
    /// Whether the author was on the shortlist the correction steps re-ranked.
    pub shortlisted: bool,
}

/// A trained MSPA network with the data it needs to score (cloning shares the tensors,
/// which are reference-counted).
#[derive(Clone)]
pub struct MspaRecommender {
    settings: MspaSettings,
    config: MspaConfig,
    model: Mspa,
    authors: AuthorTable,
    texts: TextPreferences,
    device: Device,
}

impl MspaRecommender {
    /// The trained network.
    pub fn model(&self) -> &Mspa {
        &self.model
    }

    /// The same model reading other composed preferences (e.g. one composed just now
    /// for a single user).
    pub fn with_texts(mut self, texts: TextPreferences) -> Self {
        self.texts = texts;
        self
    }

    /// The same model with its correction steps re-ranking the top `shortlist` of step 0
    /// (0: every author), named `name` in reports.
    pub fn with_shortlist(mut self, shortlist: usize, name: &str) -> Self {
        self.model = self.model.with_shortlist(shortlist);
        self.config.shortlist = shortlist;
        self.settings.shortlist = shortlist;
        self.settings.name = name.to_string();
        self
    }

    /// Builds the network input of some queries against all authors.
    fn input(&self, queries: &[Query<'_>], device: &Device) -> MspaInput {
        let n = self.authors.len();
        let users: Vec<(UserId, i64)> = queries.iter().map(|q| (q.user, q.at_ms)).collect();
        let candidates: Vec<usize> = (0..n).collect();
        let pairs: Vec<_> = queries.iter().map(|q| (q.history, q.at_ms)).collect();
        MspaInput {
            tips: TipBatch::build(&pairs, self.settings.max_history, device),
            text: if self.model.uses_text() {
                self.texts.tensor(&users, device)
            } else {
                None
            },
            authors: self.authors.clone(),
            candidate_ids: Tensor::<1, Int>::arange(0..n as i64, device),
            pairs: pair_features(&pairs, &candidates, device),
            dropout: None,
        }
    }

    /// Users per forward pass: at most `score_batch`, and few enough that the
    /// `[B, N, 3, d]` attention tensor stays near 16 M floats.
    fn users_per_pass(&self) -> usize {
        let per_user = self.authors.len() * 3 * 64;
        (16_000_000 / per_user.max(1)).clamp(1, self.settings.score_batch.max(1))
    }

    /// Scores at every step and the final modality weights of one query's chosen authors.
    pub fn explain(&self, query: Query<'_>, authors: &[usize]) -> Result<Vec<Explanation>> {
        let input = self.input(std::slice::from_ref(&query), &self.device);
        let out = self.model.forward(&input);
        let n = self.authors.len();
        let steps: Vec<Vec<f32>> = out
            .step_scores()
            .into_iter()
            .map(tensor_values)
            .collect::<Result<_>>()?;
        let weights = tensor_values(out.modality_weights().reshape([n * 3]))?;
        let shortlisted = tensor_values(out.shortlisted().float())?;
        let correction_steps = self.model.correction_steps();
        authors
            .iter()
            .map(|&a| {
                if a >= n {
                    return Err(AlignError::Data {
                        message: format!("author index {a} is not below {n}"),
                    });
                }
                let on_shortlist = shortlisted[a] > 0.5;
                let step_scores = if on_shortlist || correction_steps == 0 {
                    steps.iter().map(|s| s[a]).collect()
                } else {
                    vec![steps[0][a]; steps.len()]
                };
                Ok(Explanation {
                    author: a,
                    preference: self
                        .texts
                        .lookup(query.user, query.at_ms)
                        .map(|c| c.text.clone()),
                    modality_weights: [weights[a * 3], weights[a * 3 + 1], weights[a * 3 + 2]],
                    step_scores,
                    shortlisted: on_shortlist || correction_steps == 0,
                })
            })
            .collect()
    }

    /// What the model looked at for each query (its final preference vector and the mean
    /// modality weights over its top `k` authors) and every author's content-only
    /// representation in the same space: what faithfulness checks and maps read.
    pub fn inspect(&self, queries: &[Query<'_>], k: usize) -> Result<Inspection> {
        let n = self.authors.len();
        let k = k.clamp(1, n.max(1));
        let mut inspection = Inspection::default();
        for chunk in queries.chunks(self.users_per_pass()) {
            let input = self.input(chunk, &self.device);
            let out = self.model.forward(&input);
            let scores = tensor_values(out.final_scores())?;
            let weights = tensor_values(out.modality_weights().reshape([chunk.len() * n * 3]))?;
            let [_, d] = out.preference.dims();
            let preference = tensor_values(out.preference.clone())?;
            if inspection.authors.is_empty() {
                let content = tensor_values(out.content.clone())?;
                inspection.authors = content.chunks(d.max(1)).map(<[f32]>::to_vec).collect();
            }
            for (q, (row, p)) in scores
                .chunks(n)
                .zip(preference.chunks(d.max(1)))
                .enumerate()
            {
                let mut mean = [0f32; 3];
                for a in mspa_metrics::top_k(row, k, &[])? {
                    for (m, w) in mean.iter_mut().enumerate() {
                        *w += weights[(q * n + a) * 3 + m] / k as f32;
                    }
                }
                inspection.users.push(UserInspection {
                    preference: p.to_vec(),
                    top_weights: mean,
                });
            }
        }
        Ok(inspection)
    }

    /// Scores of every step, `[steps][queries × authors]`, for the per-step evaluation.
    pub fn score_steps(&self, queries: &[Query<'_>]) -> Result<Vec<Vec<f32>>> {
        let steps = self.model.correction_steps() + 1;
        let n = self.authors.len();
        let mut out = vec![vec![0f32; queries.len() * n]; steps];
        let per = self.users_per_pass();
        for (c, chunk) in queries.chunks(per).enumerate() {
            let input = self.input(chunk, &self.device);
            let result = self.model.forward(&input);
            for (s, scores) in result.step_scores().into_iter().enumerate() {
                let v = tensor_values(scores)?;
                out[s][c * per * n..c * per * n + v.len()].copy_from_slice(&v);
            }
        }
        Ok(out)
    }
}

impl Recommender for MspaRecommender {
    fn name(&self) -> &str {
        &self.settings.name
    }

    fn score_batch(&self, queries: &[Query<'_>], out: &mut [f32]) -> Result<()> {
        let n = self.authors.len();
        crate::recommender::check_out_len(queries.len(), out.len(), n)?;
        let per = self.users_per_pass();
        for (chunk, rows) in queries.chunks(per).zip(out.chunks_mut(per * n)) {
            let input = self.input(chunk, &self.device);
            let scores = self.model.forward(&input).final_scores();
            let v = tensor_values(scores)?;
            if v.iter().any(|x| !x.is_finite()) {
                return Err(AlignError::Data {
                    message: format!("{}: non-finite scores", self.settings.name),
                });
            }
            rows.copy_from_slice(&v);
        }
        Ok(())
    }
}

impl FitRecommender for MspaSettings {
    type Model = MspaRecommender;

    /// Trains MSPA on the training events of `data.split`, early-stopping on validation
    /// NDCG@10 (repeats allowed); the recommender reads `data.texts` (without them, MSPA
    /// runs on history and content alone). `data` must have author features.
    fn fit(&self, data: &TrainingData, device: &Device, progress: Progress) -> Result<Self::Model> {
        let features = data.require_features("MSPA")?;
        let empty = TextPreferences::default();
        let texts = data.texts.unwrap_or(&empty);
        let TrainingData { dataset, split, .. } = *data;
        let n = dataset.n_authors();
        if features.len() != n {
            return Err(AlignError::Config {
                field: "features".into(),
                message: format!("{} feature rows for {n} authors", features.len()),
            });
        }
        let dims = features.first().map(|f| f.dims()).unwrap_or([0; 3]);
        let counts = train_author_counts(dataset, split);
        let table = AuthorTable::build(features, &counts, device)?;
        let use_text = self.use_text && texts.dim > 0;
        let config = MspaConfig::new(dims, if use_text { texts.dim } else { 0 }, n)
            .with_d_model(self.d_model)
            .with_correction_steps(self.correction_steps)
            .with_shortlist(self.shortlist)
            .with_use_text(use_text)
            .with_modalities(self.modalities)
            .with_id_embedding(self.id_embedding)
            .with_dropout(self.dropout);
        let model = mspa_modal::device::seeded(device, self.train.seed, || {
            let model = config.init(device)?;
            mspa_modal::device::materialize(&model);
            Ok::<_, AlignError>(model)
        })?;
        let examples = training_examples(dataset, split, None);
        if examples.is_empty() {
            return Err(AlignError::Data {
                message: "no training examples (every user has a single tip?)".into(),
            });
        }

        let ad_device = device.clone().autodiff();
        let ad_table = table.to_device(&ad_device);
        let template = MspaRecommender {
            settings: self.clone(),
            config,
            model: model.clone(),
            authors: table,
            texts: texts.clone(),
            device: device.clone(),
        };
        let loss = |model: &Mspa,
                    batch: &[&Example],
                    negatives: &NegativeBatch,
                    dev: &Device|
         -> Tensor<1> {
            // Candidates: the batch's positives and its sampled negatives, each once.
            let mut candidates: Vec<usize> = Vec::new();
            let mut position: HashMap<usize, usize> = HashMap::new();
            let mut add = |a: usize, candidates: &mut Vec<usize>| -> usize {
                *position.entry(a).or_insert_with(|| {
                    candidates.push(a);
                    candidates.len() - 1
                })
            };
            let positives: Vec<i64> = batch
                .iter()
                .map(|e| add(e.positive.index(), &mut candidates) as i64)
                .collect();
            let positives =
                Tensor::<1, Int>::from_data(TensorData::new(positives, [batch.len()]), dev);
            for a in &negatives.authors {
                add(a.index(), &mut candidates);
            }
            let pairs: Vec<_> = batch
                .iter()
                .map(|e| (e.history(dataset), e.at_ms))
                .collect();
            // Every author the batch's users tipped before, so each user's repeat
            // distribution covers all of its candidates, as at inference.
            for tip in pairs.iter().flat_map(|(history, _)| history.iter()) {
                add(tip.author.index(), &mut candidates);
            }
            let users: Vec<(UserId, i64)> = batch.iter().map(|e| (e.user, e.at_ms)).collect();
            let ids: Vec<i64> = candidates.iter().map(|&a| a as i64).collect();
            let ids = Tensor::<1, Int>::from_data(TensorData::new(ids, [candidates.len()]), dev);
            let input = MspaInput {
                tips: TipBatch::build(&pairs, self.max_history, dev),
                text: if use_text {
                    texts.tensor(&users, dev)
                } else {
                    None
                },
                authors: ad_table.clone(),
                candidate_ids: ids,
                pairs: pair_features(&pairs, &candidates, dev),
                dropout: model.draw_dropout(self.train.seed, batch, dev),
            };
            let out = model.forward(&input);
            mspa_loss(&out, positives, self.align_weight)
        };
        let validate = |model: &Mspa| -> Result<f64> {
            let rec = MspaRecommender {
                model: model.clone(),
                ..template.clone()
            };
            let report = evaluate(
                &rec,
                dataset,
                &split.valid,
                Protocol::RepeatsAllowed,
                &[10],
                256,
            )?;
            Ok(report.all.ndcg(10).unwrap_or(0.0))
        };
        // Uniform negatives over every author, the user's own earlier authors included: the
        // model must learn when a repeat is (not) likely.
        let negatives = Negatives::uniform(n);
        let (model, _) = fit_with(
            model,
            &self.train,
            device,
            &examples,
            &negatives,
            loss,
            validate,
            progress,
        )?;
        Ok(MspaRecommender { model, ..template })
    }
}

impl MspaRecommender {
    /// Saves the trained network, its config and the settings into `dir` (`model.bpk`,
    /// `config.json`, `settings.json`), atomically: everything is written into a sibling
    /// temporary folder that then replaces `dir`.
    pub fn save(&self, dir: &Path) -> Result<()> {
        let fail = |message: String| AlignError::Checkpoint {
            path: dir.to_path_buf(),
            message,
        };
        let parent = dir
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        std::fs::create_dir_all(parent).map_err(|e| fail(e.to_string()))?;
        let tmp = mspa_core::fs::sibling(dir, "tmp");
        std::fs::create_dir_all(&tmp).map_err(|e| fail(e.to_string()))?;
        let written = (|| -> std::result::Result<(), String> {
            self.model
                .clone()
                .save_file(tmp.join("model.bpk"))
                .map_err(|e| e.to_string())?;
            let config = serde_json::to_string_pretty(&self.config).map_err(|e| e.to_string())?;
            std::fs::write(tmp.join("config.json"), config).map_err(|e| e.to_string())?;
            let settings =
                serde_json::to_string_pretty(&self.settings).map_err(|e| e.to_string())?;
            std::fs::write(tmp.join("settings.json"), settings).map_err(|e| e.to_string())?;
            Ok(())
        })();
        if let Err(e) = written {
            let _ = std::fs::remove_dir_all(&tmp);
            return Err(fail(e));
        }
        mspa_core::fs::replace_dir(&tmp, dir).map_err(|e| {
            let _ = std::fs::remove_dir_all(&tmp);
            fail(e.to_string())
        })
    }

    /// Loads a network saved by [`MspaRecommender::save`]; `features` and `train_counts`
    /// (per author, from [`crate::data::train_author_counts`]) rebuild the author table and
    /// must describe the same authors as at training time.
    pub fn load(
        dir: &Path,
        features: &[AuthorFeatures],
        train_counts: &[u32],
        texts: TextPreferences,
        device: &Device,
    ) -> Result<MspaRecommender> {
        let fail = |message: String| AlignError::Checkpoint {
            path: dir.to_path_buf(),
            message,
        };
        mspa_core::fs::recover_dir(dir).map_err(|e| fail(format!("recovering: {e}")))?;
        let read = |name: &str| {
            std::fs::read_to_string(dir.join(name)).map_err(|e| fail(format!("{name}: {e}")))
        };
        let config: MspaConfig = serde_json::from_str(&read("config.json")?)
            .map_err(|e| fail(format!("config.json: {e}")))?;
        let settings: MspaSettings = serde_json::from_str(&read("settings.json")?)
            .map_err(|e| fail(format!("settings.json: {e}")))?;
        if config.n_authors != features.len() {
            return Err(fail(format!(
                "trained for {} authors, the data has {}",
                config.n_authors,
                features.len()
            )));
        }
        let authors = AuthorTable::build(features, train_counts, device)?;
        // Initialised under the lock (its numbers are then overwritten by the file's), so
        // it never draws from a generator another model is using.
        let model =
            mspa_modal::device::seeded(device, settings.train.seed, || config.init(device))?
                .try_load_file(dir.join("model.bpk"))
                .map_err(|e| fail(format!("model.bpk: {e}")))?;
        Ok(MspaRecommender {
            settings,
            config,
            model,
            authors,
            texts,
            device: device.clone(),
        })
    }
}
