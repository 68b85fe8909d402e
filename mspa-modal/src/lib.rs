//! `mspa-modal`: the media side of MSPA.
//!
//! * [`device`]: turning a device name into a Burn device (every example's `--device`).
//! * [`frames`]: image decoding, aspect-preserving resize, centre crop, normalisation.
//! * [`audio`]: symphonia decoding, band-limited resampling, librosa-compatible log-mel.
//! * [`text`]: WordPiece tokenizer and a BERT-family encoder that loads Hugging Face
//!   safetensors (all-MiniLM-L6-v2), also the `TokenEmbedder` behind BERTScore.
//! * [`encoders`]: convolutional visual and audio encoders.
//! * [`features`]: [`features::AuthorFeatures`], batch extraction and the feature store.
//! * [`init`]: seeded parameter initialisation shared by every model of the workspace.
//! * [`pretrain`]: cross-modal contrastive (InfoNCE) pretraining of the encoders.

#![warn(missing_docs)]

pub mod audio;
pub mod device;
pub mod encoders;
pub mod error;
pub mod features;
pub mod frames;
pub mod init;
pub mod pretrain;
pub mod text;

pub use device::{DeviceError, compiled_devices, device_from_name};
pub use error::{ModalError, Result};
