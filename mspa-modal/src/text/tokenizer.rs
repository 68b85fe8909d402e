//! WordPiece tokenization for BERT-family encoders, through the `tokenizers` crate.
//!
//! A [`TextTokenizer`] reads a Hugging Face `tokenizer.json` or a plain `vocab.txt`,
//! always adds `[CLS]` / `[SEP]`, truncates to a maximum length (special tokens included)
//! and never pads on its own: [`TextTokenizer::batch`] pads a batch to its longest row and
//! returns the padding mask the encoder needs.
//!
//! A `tokenizer.json`'s own truncation and padding settings (sentence-transformers ships
//! `max_length 128`, fixed padding to 128) are replaced by this type's.

use std::path::Path;

use burn::tensor::{Bool, Device, Int, Tensor, TensorData};
use tokenizers::models::wordpiece::WordPiece;
use tokenizers::normalizers::BertNormalizer;
use tokenizers::pre_tokenizers::bert::BertPreTokenizer;
use tokenizers::processors::bert::BertProcessing;
use tokenizers::{
    AddedToken, Tokenizer, TruncationDirection, TruncationParams, TruncationStrategy,
};

use crate::error::{ModalError, Result};

/// One tokenized text: ids with `[CLS]` first and `[SEP]` last.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Encoded {
    /// Token ids.
    pub ids: Vec<u32>,
    /// Whether each token is a special token (`[CLS]`, `[SEP]`, ...).
    pub special: Vec<bool>,
}

impl Encoded {
    /// Number of tokens, special ones included.
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    /// Whether there are no tokens at all (never the case for tokenizer output).
    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }
}

/// Tokenized texts padded to a common length, row-major.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenBatch {
    /// Number of texts.
    pub batch_size: usize,
    /// Length of the longest text (every row's length).
    pub seq_len: usize,
    /// `batch_size * seq_len` ids, padding filled with the pad id.
    pub input_ids: Vec<i64>,
    /// Real (unpadded) length of each row.
    pub lengths: Vec<usize>,
}

impl TokenBatch {
    /// Pads `encoded` with `pad_id` to the longest entry.
    pub fn from_encoded(encoded: &[Encoded], pad_id: u32) -> Self {
        let seq_len = encoded.iter().map(Encoded::len).max().unwrap_or(0);
        let mut input_ids = vec![pad_id as i64; encoded.len() * seq_len];
        for (row, e) in input_ids.chunks_mut(seq_len.max(1)).zip(encoded) {
            for (slot, &id) in row.iter_mut().zip(&e.ids) {
                *slot = id as i64;
            }
        }
        Self {
            batch_size: encoded.len(),
            seq_len,
            input_ids,
            lengths: encoded.iter().map(Encoded::len).collect(),
        }
    }

    /// The ids as a `[batch_size, seq_len]` tensor.
    pub fn input_ids_tensor(&self, device: &Device) -> Tensor<2, Int> {
        Tensor::from_data(
            TensorData::new(self.input_ids.clone(), [self.batch_size, self.seq_len]),
            device,
        )
    }

    /// `[batch_size, seq_len]`, `true` at padding positions (burn's `mask_pad`).
    pub fn padding_mask_tensor(&self, device: &Device) -> Tensor<2, Bool> {
        let mut mask = Vec::with_capacity(self.batch_size * self.seq_len);
        for &len in &self.lengths {
            mask.extend((0..self.seq_len).map(|i| i >= len));
        }
        Tensor::from_data(
            TensorData::new(mask, [self.batch_size, self.seq_len]),
            device,
        )
    }

    /// Whether any row carries padding.
    pub fn has_padding(&self) -> bool {
        self.lengths.iter().any(|&l| l < self.seq_len)
    }
}

/// A BERT WordPiece tokenizer with truncation and batch padding.
///
/// ```no_run
/// use mspa_modal::text::TextTokenizer;
///
/// let tok = TextTokenizer::from_dir("../shared/models/all-MiniLM-L6-v2")?;
/// let e = tok.encode("The cat sat on the mat.")?;
/// assert_eq!(e.ids, [101, 1996, 4937, 2938, 2006, 1996, 13523, 1012, 102]);
/// let batch = tok.batch(&["a cat", "a much longer sentence"])?;
/// assert_eq!(batch.lengths, [4, 6]);
/// # Ok::<(), mspa_modal::ModalError>(())
/// ```
#[derive(Debug, Clone)]
pub struct TextTokenizer {
    inner: Tokenizer,
    max_length: usize,
    pad_id: u32,
    cls_id: u32,
    sep_id: u32,
}

impl TextTokenizer {
    /// Default maximum length in tokens, special tokens included (BERT's position table).
    pub const DEFAULT_MAX_LENGTH: usize = 512;

    /// Reads a Hugging Face `tokenizer.json` (any model the `tokenizers` crate loads, with
    /// `[CLS]`, `[SEP]` and `[PAD]` in its vocabulary).
    pub fn from_tokenizer_json(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let bytes = std::fs::read(path).map_err(|e| ModalError::io(path, e))?;
        // The `tokenizers` crate panics on some malformed files (a decoder that is not an
        // object of the expected shape); that is an error of this file, not a crash.
        let parsed = std::panic::catch_unwind(|| Tokenizer::from_bytes(&bytes)).map_err(|_| {
            ModalError::Tokenizer(format!(
                "{}: malformed tokenizer.json (the tokenizers crate could not read it)",
                path.display()
            ))
        })?;
        let inner =
            parsed.map_err(|e| ModalError::Tokenizer(format!("{}: {e}", path.display())))?;
        Self::wrap(inner, &path.display().to_string())
    }

    /// Builds a BERT tokenizer from a WordPiece `vocab.txt` (one token per line, the line
    /// number is the id): BERT normalizer (control characters removed, CJK characters
    /// split, and with `lowercase` also lowercased and accent-stripped), BERT
    /// pre-tokenizer (whitespace and punctuation), `[CLS] ... [SEP]`.
    pub fn from_vocab(path: impl AsRef<Path>, lowercase: bool) -> Result<Self> {
        let path = path.as_ref();
        if let Err(e) = std::fs::metadata(path) {
            return Err(ModalError::io(path, e));
        }
        let name = path.display().to_string();
        let model = WordPiece::from_file(&name)
            .unk_token("[UNK]".into())
            .build()
            .map_err(|e| ModalError::Tokenizer(format!("{name}: {e}")))?;
        let id = |token: &str| {
            tokenizers::Model::token_to_id(&model, token).ok_or_else(|| {
                ModalError::Tokenizer(format!("{name}: the vocabulary has no `{token}`"))
            })
        };
        let (cls, sep) = (id("[CLS]")?, id("[SEP]")?);
        let mut inner = Tokenizer::new(model);
        inner
            .with_normalizer(Some(BertNormalizer::new(true, true, None, lowercase)))
            .with_pre_tokenizer(Some(BertPreTokenizer))
            .with_post_processor(Some(BertProcessing::new(
                ("[SEP]".into(), sep),
                ("[CLS]".into(), cls),
            )));
        let specials: Vec<AddedToken> = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
            .iter()
            .filter(|t| inner.token_to_id(t).is_some())
            .map(|t| AddedToken::from(*t, true))
            .collect();
        inner.add_special_tokens(&specials);
        Self::wrap(inner, &name)
    }

    /// Loads the tokenizer of a Hugging Face model folder: `tokenizer.json` when present,
    /// else `vocab.txt` (lowercased unless `tokenizer_config.json` says
    /// `"do_lower_case": false`).
    pub fn from_dir(dir: impl AsRef<Path>) -> Result<Self> {
        let dir = dir.as_ref();
        let json = dir.join("tokenizer.json");
        if json.is_file() {
            return Self::from_tokenizer_json(json);
        }
        let vocab = dir.join("vocab.txt");
        if !vocab.is_file() {
            return Err(ModalError::Tokenizer(format!(
                "{}: neither tokenizer.json nor vocab.txt found",
                dir.display()
            )));
        }
        let lowercase = std::fs::read_to_string(dir.join("tokenizer_config.json"))
            .ok()
            .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
            .and_then(|v| v.get("do_lower_case").and_then(|b| b.as_bool()))
            .unwrap_or(true);
        Self::from_vocab(vocab, lowercase)
    }

    fn wrap(mut inner: Tokenizer, name: &str) -> Result<Self> {
        let id = |token: &str| {
            inner.token_to_id(token).ok_or_else(|| {
                ModalError::Tokenizer(format!("{name}: the vocabulary has no `{token}`"))
            })
        };
        let (pad_id, cls_id, sep_id) = (id("[PAD]")?, id("[CLS]")?, id("[SEP]")?);
        inner.with_padding(None);
        let mut tok = Self {
            inner,
            max_length: Self::DEFAULT_MAX_LENGTH,
            pad_id,
            cls_id,
            sep_id,
        };
        tok.set_truncation(Self::DEFAULT_MAX_LENGTH)?;
        // Some malformed files load but make every encode panic inside `tokenizers` (a
        // post-processor template naming a special token the file does not define):
        // encode a probe now, so such a file is an error here and never a crash later.
        let probe = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            tok.inner.encode("probe text", true).is_ok()
        }));
        if !matches!(probe, Ok(true)) {
            return Err(ModalError::Tokenizer(format!(
                "{name}: the tokenizer cannot encode a probe text (malformed post-processor or model)"
            )));
        }
        Ok(tok)
    }

    fn set_truncation(&mut self, max_length: usize) -> Result<()> {
        if max_length < 2 {
            return Err(ModalError::Config {
                field: "max_length".into(),
                message: format!("{max_length} leaves no room for [CLS] and [SEP]"),
            });
        }
        self.inner
            .with_truncation(Some(TruncationParams {
                direction: TruncationDirection::Right,
                max_length,
                strategy: TruncationStrategy::LongestFirst,
                stride: 0,
            }))
            .map_err(|e| ModalError::Tokenizer(e.to_string()))?;
        self.max_length = max_length;
        Ok(())
    }

    /// The same tokenizer truncating to `max_length` tokens (special tokens included;
    /// at least 2).
    pub fn with_max_length(mut self, max_length: usize) -> Result<Self> {
        self.set_truncation(max_length)?;
        Ok(self)
    }

    /// Maximum length in tokens, special tokens included.
    pub fn max_length(&self) -> usize {
        self.max_length
    }

    /// Id of `[PAD]`.
    pub fn pad_id(&self) -> u32 {
        self.pad_id
    }

    /// Id of `[CLS]`.
    pub fn cls_id(&self) -> u32 {
        self.cls_id
    }

    /// Id of `[SEP]`.
    pub fn sep_id(&self) -> u32 {
        self.sep_id
    }

    /// Vocabulary size, added tokens included.
    pub fn vocab_size(&self) -> usize {
        self.inner.get_vocab_size(true)
    }

    /// The wrapped `tokenizers` tokenizer.
    pub fn inner(&self) -> &Tokenizer {
        &self.inner
    }

    /// Tokenizes one text: `[CLS] pieces [SEP]`, truncated to [`max_length`](Self::max_length).
    /// The empty text gives `[CLS] [SEP]`.
    pub fn encode(&self, text: &str) -> Result<Encoded> {
        let enc = self
            .inner
            .encode(text, true)
            .map_err(|e| ModalError::Tokenizer(e.to_string()))?;
        Ok(self.to_encoded(&enc))
    }

    /// Tokenizes several texts (in parallel), in order.
    pub fn encode_batch(&self, texts: &[&str]) -> Result<Vec<Encoded>> {
        let encs = self
            .inner
            .encode_batch(texts.to_vec(), true)
            .map_err(|e| ModalError::Tokenizer(e.to_string()))?;
        Ok(encs.iter().map(|e| self.to_encoded(e)).collect())
    }

    /// Tokenizes and pads several texts to their longest one.
    pub fn batch(&self, texts: &[&str]) -> Result<TokenBatch> {
        Ok(TokenBatch::from_encoded(
            &self.encode_batch(texts)?,
            self.pad_id,
        ))
    }

    fn to_encoded(&self, enc: &tokenizers::Encoding) -> Encoded {
        let ids = enc.get_ids().to_vec();
        let special = ids
            .iter()
            .zip(enc.get_special_tokens_mask())
            .map(|(&id, &m)| m == 1 || id == self.cls_id || id == self.sep_id)
            .collect();
        Encoded { ids, special }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vocab_dir() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        let words = [
            "[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "the", "cat", "sat", "on", "mat", ".",
            "##s", "cafe", ",",
        ];
        std::fs::write(dir.path().join("vocab.txt"), words.join("\n")).unwrap();
        dir
    }

    #[test]
    fn vocab_txt_tokenizes_lowercases_and_strips_accents() {
        let dir = vocab_dir();
        let tok = TextTokenizer::from_dir(dir.path()).unwrap();
        let e = tok.encode("The CATs sat on the café mat.").unwrap();
        assert_eq!(e.ids, [2, 5, 6, 11, 7, 8, 5, 12, 9, 10, 3]);
        assert_eq!(e.special.iter().filter(|&&s| s).count(), 2);
        assert!(e.special[0] && e.special[10]);
        assert_eq!(tok.encode("").unwrap().ids, [2, 3]);
        assert_eq!(tok.encode("dog").unwrap().ids, [2, 1, 3]);
    }

    #[test]
    fn truncation_keeps_cls_and_sep() {
        let dir = vocab_dir();
        let tok = TextTokenizer::from_dir(dir.path())
            .unwrap()
            .with_max_length(4)
            .unwrap();
        assert_eq!(
            tok.encode("the cat sat on the mat").unwrap().ids,
            [2, 5, 6, 3]
        );
        assert!(
            TextTokenizer::from_dir(dir.path())
                .unwrap()
                .with_max_length(1)
                .is_err()
        );
    }

    #[test]
    fn batch_pads_and_masks() {
        let dir = vocab_dir();
        let tok = TextTokenizer::from_dir(dir.path()).unwrap();
        let b = tok.batch(&["the cat", "", "the cat sat on"]).unwrap();
        assert_eq!((b.batch_size, b.seq_len), (3, 6));
        assert_eq!(b.lengths, [4, 2, 6]);
        assert_eq!(&b.input_ids[0..6], &[2, 5, 6, 3, 0, 0]);
        let device = Device::flex();
        let mask: Vec<bool> = b
            .padding_mask_tensor(&device)
            .into_data()
            .try_into_vec_as()
            .unwrap();
        assert_eq!(&mask[6..12], &[false, false, true, true, true, true]);
        let ids: Vec<i64> = b
            .input_ids_tensor(&device)
            .into_data()
            .try_into_vec_as::<i64>()
            .unwrap();
        assert_eq!(ids, b.input_ids);
    }

    #[test]
    fn missing_files_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let err = TextTokenizer::from_dir(dir.path()).unwrap_err();
        assert!(err.to_string().contains("vocab.txt"), "{err}");
        let err = TextTokenizer::from_tokenizer_json(dir.path().join("nope.json")).unwrap_err();
        assert!(err.to_string().contains("nope.json"), "{err}");
        std::fs::write(dir.path().join("bad.json"), "{not json").unwrap();
        let err = TextTokenizer::from_tokenizer_json(dir.path().join("bad.json")).unwrap_err();
        assert!(err.to_string().contains("bad.json"), "{err}");
    }
}
