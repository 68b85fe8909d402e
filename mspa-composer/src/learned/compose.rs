//! Composition with the learned composer: history -> encoder -> (by default
//! grammar-constrained) beam search -> typed fields -> text, embedding and evidence.

use super::LearnedComposer;
use super::model::Encoded;
use crate::composer::{
    ComposeContext, Composer, FieldEvidence, HistoryQuery, Preference, compose_through_batch,
    embed_texts,
};
use crate::error::{ComposerError, Result};
use crate::history::HistoryBatch;

/// Evidence tips kept per value.
const EVIDENCE_TIPS: usize = 3;

impl LearnedComposer {
    /// Composes a chunk of at most `batch_size` queries.
    fn compose_chunk(
        &self,
        ctx: &ComposeContext<'_>,
        queries: &[HistoryQuery<'_>],
    ) -> Result<Vec<Preference>> {
        let features = ctx.features.ok_or_else(|| {
            ComposerError::config("features", "the learned composer needs author features")
        })?;
        let batch = HistoryBatch::build_with_dims(
            features,
            self.config.encoder.feature_dims,
            queries,
            self.config.max_history,
            &self.device,
        );
        let Encoded {
            encoding, memory, ..
        } = self.model.encode(&batch);
        let schema = self.config.constrained.then_some(&self.schema);
        let hypotheses = self
            .model
            .generator
            .decode(&memory, self.config.strategy(), schema)?;
        let read = |t: burn::tensor::Tensor<2>| {
            t.into_data()
                .try_to_vec::<f32>()
                .map_err(|e| ComposerError::data(format!("reading encoder output: {e:?}")))
        };
        let d = self.model.encoder.d_model();
        let l = batch.max_len();
        let pooled = read(encoding.pooled)?;
        let weights = read(encoding.weights)?;
        let mut fields = Vec::with_capacity(queries.len());
        for (row, hyp) in hypotheses.iter().enumerate() {
            if !hyp.finished {
                return Err(ComposerError::parse(
                    hyp.tokens.len(),
                    format!(
                        "the generator did not finish within {} tokens",
                        self.model.generator.max_len()
                    ),
                ));
            }
            let f = self.schema.decode(&hyp.tokens).map_err(|e| {
                ComposerError::parse(
                    row,
                    format!("generated tokens do not decode (unconstrained decoding): {e}"),
                )
            })?;
            fields.push(f);
        }
        let texts: Vec<String> = fields.iter().map(|f| self.schema.render(f)).collect();
        let text_vectors = ctx
            .text_encoder
            .map(|e| embed_texts(e, &texts))
            .transpose()?;
        let mut out = Vec::with_capacity(queries.len());
        for (row, (f, text)) in fields.into_iter().zip(texts).enumerate() {
            let mut embedding = l2_normalised(&pooled[row * d..(row + 1) * d]);
            if let Some(tv) = &text_vectors {
                embedding.extend_from_slice(&tv[row]); // unit length already
            }
            // Tips by pooling weight, strongest first.
            let kept = &batch.kept[row];
            let w = &weights[row * l..row * l + kept.len()];
            let mut slots: Vec<usize> = (0..kept.len()).collect();
            slots.sort_by(|&a, &b| w[b].total_cmp(&w[a]).then(b.cmp(&a)));
            let top: Vec<usize> = slots
                .into_iter()
                .take(EVIDENCE_TIPS)
                .map(|s| kept.start + s)
                .collect();
            let evidence = FieldEvidence::for_every_value(&self.schema, &f, &top);
            out.push(Preference {
                text,
                fields: f,
                embedding,
                evidence,
            });
        }
        Ok(out)
    }
}

impl Composer for LearnedComposer {
    fn name(&self) -> &str {
        "learned"
    }

    fn compose_batch(
        &self,
        ctx: &ComposeContext<'_>,
        queries: &[HistoryQuery<'_>],
    ) -> Result<Vec<Preference>> {
        let mut out = Vec::with_capacity(queries.len());
        for chunk in queries.chunks(self.config.batch_size.max(1)) {
            out.extend(self.compose_chunk(ctx, chunk)?);
        }
        Ok(out)
    }

    fn compose(&self, ctx: &ComposeContext<'_>, query: HistoryQuery<'_>) -> Result<Preference> {
        compose_through_batch(self, ctx, query)
    }
}

fn l2_normalised(v: &[f32]) -> Vec<f32> {
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-12);
    v.iter().map(|x| x / norm).collect()
}
