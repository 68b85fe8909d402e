//! Serving one user: the trained composer and MSPA behind `recommend`.

use std::path::Path;

use super::DataSource;

use burn::tensor::Device;
use mspa_align::fit::{FitRecommender, TrainingData};
use mspa_align::mspa::{ComposedText, MspaRecommender, TextPreferences};
use mspa_composer::composer::{ComposeContext, Composer, HistoryQuery, embed_preferences};
use mspa_composer::learned::LearnedComposer;
use mspa_core::{Dataset, Split};
use mspa_modal::features::AuthorFeatures;
use mspa_modal::text::BertEmbedder;

use super::compose::{Teacher, teacher};
use super::data::add_data_features;
use super::{
    PipelineConfig, PipelineError, compose_preferences, epoch_message, extract_features, stage_err,
};

/// A trained learned composer and MSPA, with what they need to serve one user: the
/// dataset's features and training tip counts. Made by [`TrainedModels::load_or_train`].
pub struct TrainedModels {
    composer: LearnedComposer,
    mspa: MspaRecommender,
    features: Vec<AuthorFeatures>,
    text_encoder: Option<BertEmbedder>,
}

impl TrainedModels {
    /// Loads the composer and MSPA from `checkpoint/{composer,mspa}` when both exist;
    /// otherwise extracts features, trains both on `dataset` (loaded from `data`; the
    /// composer learns from the world's reference texts when `data` is a synthetic world,
    /// else from the template composer derived from the data) and, with a checkpoint
    /// folder, saves them there. Features are cached in the data's folder. `log` receives
    /// one line per stage.
    pub fn load_or_train(
        config: &PipelineConfig,
        data: &DataSource,
        dataset: &Dataset,
        checkpoint: Option<&Path>,
        device: &Device,
        mut log: impl FnMut(&str),
    ) -> Result<TrainedModels, PipelineError> {
        let text_encoder = match &config.minilm {
            Some(dir) => {
                Some(BertEmbedder::from_pretrained(dir, device).map_err(stage_err("features"))?)
            }
            None => None,
        };
        let local = PipelineConfig {
            out_dir: data.dir().to_path_buf(),
            data: Some(data.clone()),
            ..config.clone()
        };
        log("extracting features");
        let mut features = extract_features(
            &local,
            dataset,
            text_encoder.clone(),
            device,
            &mut |_, _, _, _| {},
        )?;
        for line in add_data_features(&local, dataset, &mut features)? {
            log(&line);
        }
        let split = Split::leave_last_out(dataset);
        let counts = mspa_align::data::train_author_counts(dataset, &split);
        if let Some(dir) =
            checkpoint.filter(|d| d.join("mspa").is_dir() && d.join("composer").is_dir())
        {
            log(&format!(
                "loading the composer and MSPA from {}",
                dir.display()
            ));
            let composer = LearnedComposer::load(&dir.join("composer"), device)
                .map_err(stage_err("checkpoint"))?;
            let mspa = MspaRecommender::load(
                &dir.join("mspa"),
                &features,
                &counts,
                TextPreferences::default(),
                device,
            )
            .map_err(stage_err("checkpoint"))?;
            return Ok(TrainedModels {
                composer,
                mspa,
                features,
                text_encoder,
            });
        }
        let ctx = ComposeContext {
            dataset,
            features: Some(&features),
            text_encoder: text_encoder.as_ref(),
        };
        let Teacher {
            schema,
            pairs,
            name,
            ..
        } = teacher(config, dataset, data.truth()?.as_ref(), &split)?;
        log(&format!(
            "training the composer on {} pairs ({name})",
            pairs.train.len()
        ));
        let composer = LearnedComposer::fit(
            config.composer.clone(),
            &schema,
            &ctx,
            &pairs.train,
            device,
            |_, _| {},
        )
        .map_err(stage_err("compose"))?;
        log("composing the users' preferences");
        let texts = compose_preferences(&composer, &ctx, &schema, &split)?;
        log("training MSPA");
        let data = TrainingData::new(dataset, &split)
            .with_features(&features)
            .with_texts(&texts);
        let mspa = config
            .mspa
            .fit(&data, device, &mut |r| {
                log(&format!("MSPA epoch {}: {}", r.epoch + 1, epoch_message(r)))
            })
            .map_err(stage_err("train MSPA"))?;
        if let Some(dir) = checkpoint {
            composer
                .save(&dir.join("composer"))
                .map_err(stage_err("checkpoint"))?;
            mspa.save(&dir.join("mspa"))
                .map_err(stage_err("checkpoint"))?;
            log(&format!("saved the composer and MSPA to {}", dir.display()));
        }
        Ok(TrainedModels {
            composer,
            mspa,
            features,
            text_encoder,
        })
    }

    /// Composes `user`'s preference from their tips before `at_ms` and returns MSPA
    /// reading it, with the composed text.
    pub fn for_user(
        self,
        dataset: &Dataset,
        user: mspa_core::UserId,
        at_ms: i64,
    ) -> Result<(MspaRecommender, String), PipelineError> {
        // The text is embedded once below, by `embed_preferences`: compose without the
        // encoder.
        let ctx = ComposeContext {
            dataset,
            features: Some(&self.features),
            text_encoder: None,
        };
        let tips = dataset.user_events(user);
        let tips = &tips[..tips.partition_point(|t| t.timestamp_ms < at_ms)];
        let preference = self
            .composer
            .compose(&ctx, HistoryQuery { tips, at_ms })
            .map_err(stage_err("compose"))?;
        let embedding = embed_preferences(
            self.text_encoder.as_ref(),
            self.composer.schema(),
            std::slice::from_ref(&preference.text),
            std::slice::from_ref(&preference.fields),
        )
        .map_err(stage_err("compose"))?
        .remove(0);
        let mut texts = TextPreferences::new(dataset.n_users(), embedding.len());
        texts.insert(
            user,
            ComposedText {
                at_ms,
                embedding,
                text: preference.text.clone(),
            },
        );
        Ok((self.mspa.with_texts(texts), preference.text))
    }
}
