//! The declarations every trained baseline repeats, written once: its config struct
//! (the model's own fields plus the shared training fields) and, for the models that
//! score through a [`super::FactorScorer`], the model's struct and its
//! [`crate::recommender::Recommender`] impl.

/// Defines the config of a trained baseline: the model's own fields, each with its
/// default, then the fields every trained baseline shares (`protocol` of the validation
/// NDCG@10, `max_examples_per_user`, and the trainer `train` with the given default),
/// the `Default` impl, and the [`super::SharedSettings`] impl that [`super::FitRun::new`] reads.
macro_rules! baseline_config {
    (
        $(#[$meta:meta])*
        pub struct $name:ident {
            $($(#[$field_meta:meta])* pub $field:ident: $ty:ty = $default:expr,)*
        }
        $(#[$train_meta:meta])*
        train = $train:expr;
    ) => {
        $(#[$meta])*
        #[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
        #[serde(default)]
        pub struct $name {
            $($(#[$field_meta])* pub $field: $ty,)*
            /// Protocol of the validation NDCG@10. Default repeats allowed.
            pub protocol: mspa_metrics::Protocol,
            /// Keep at most this many (most recent) training examples per user. Default all.
            pub max_examples_per_user: Option<usize>,
            $(#[$train_meta])*
            pub train: $crate::train::TrainConfig,
        }

        impl Default for $name {
            fn default() -> Self {
                $name {
                    $($field: $default,)*
                    protocol: mspa_metrics::Protocol::RepeatsAllowed,
                    max_examples_per_user: None,
                    train: $train,
                }
            }
        }

        impl $crate::baselines::SharedSettings for $name {
            fn protocol(&self) -> mspa_metrics::Protocol {
                self.protocol
            }

            fn max_examples_per_user(&self) -> Option<usize> {
                self.max_examples_per_user
            }

            fn train(&self) -> &$crate::train::TrainConfig {
                &self.train
            }
        }
    };
}

/// Declares a trained baseline that scores through a [`super::FactorScorer`] (its one
/// field, `scorer`) and implements [`crate::recommender::Recommender`] for it under the
/// report name `$name`; `with_embeddings` also gives it the accessors of the final author
/// embeddings (the graph models).
macro_rules! factor_recommender {
    ($(#[$meta:meta])* pub struct $ty:ident = $name:literal, with_embeddings;) => {
        factor_recommender! {
            $(#[$meta])*
            pub struct $ty = $name;
        }

        impl $ty {
            /// The final representation of every author (what the users' representations
            /// are dotted with), `[n_authors * dim]` row-major.
            pub fn author_embeddings(&self) -> &[f32] {
                &self.scorer.authors
            }

            /// Embedding size.
            pub fn dim(&self) -> usize {
                self.scorer.k
            }
        }
    };
    ($(#[$meta:meta])* pub struct $ty:ident = $name:literal;) => {
        $(#[$meta])*
        #[derive(Clone, Debug)]
        pub struct $ty {
            scorer: $crate::baselines::FactorScorer,
        }

        impl $crate::recommender::Recommender for $ty {
            fn name(&self) -> &str {
                $name
            }

            fn score_batch(
                &self,
                queries: &[$crate::recommender::Query<'_>],
                out: &mut [f32],
            ) -> $crate::error::Result<()> {
                self.scorer.score(queries, out)
            }
        }
    };
}
