//! A native CPU forward pass for [`BertModel`]: the same network as the Burn path, run on
//! host memory with its own matrix kernels, for inference on CPU devices.
//!
//! Why: on the flex device the Burn forward pass spends its time in a scalar `erf` for
//! GELU, in padding (a batch is as long as its longest text), in copies between layouts
//! and in 256-bit matrix kernels. This path has none of those costs:
//!
//! * **No padding.** The tokens of all texts of a group are packed one after another, so
//!   every dense layer is one `[tokens, in] x [in, out]` product over real tokens only,
//!   and attention runs per text over its own tokens (what the padding mask gives on the
//!   Burn path, where masked keys get exactly zero weight).
//! * **Matrix kernels.** With AVX-512 (checked at run time) a 12x32 register-blocked
//!   kernel over weights packed once into 32-column panels ([`CpuKernel::Avx512`]);
//!   otherwise the `gemm` crate over row-major weights ([`CpuKernel::Portable`]).
//! * **Vectorised element-wise work.** LayerNorm, softmax and GELU are plain `f32` loops
//!   written so that the compiler vectorises them (lane-wise accumulators, a rational
//!   `erf` and a polynomial `exp` without branches), compiled for AVX-512 or AVX2 when the
//!   CPU has them.
//! * **Threads.** Texts are split into groups of about equal token counts, at least one
//!   per rayon thread; each group runs the whole network on one thread, so the threads
//!   never wait on each other inside a layer.
//!
//! The network is the one [`BertModel::forward_layers`] runs (post-norm layers,
//! `softmax(q kᵀ / √d) v` attention, exact or tanh GELU or ReLU, LayerNorm with the
//! model's epsilon, no dropout: inference only), and matches it to float rounding (the
//! unit tests compare both on random models to 1e-4). Models it does not cover
//! (pre-norm layers, quiet softmax, other activations) are refused by
//! [`CpuBert::from_model`], and callers keep the Burn path for them.

use burn::nn::activation::Activation;
use burn::nn::{LayerNorm, Linear};
use burn::tensor::Tensor;
use rayon::prelude::*;

use super::bert::{BertActivation, BertModel};
use crate::error::{ModalError, Result};

/// Most tokens one group (one thread's share of work) holds at a time; bounds the
/// activation buffers (MiniLM: about 14 KB per token, so a group stays in L3 cache).
const MAX_GROUP_TOKENS: usize = 1024;

/// Which matrix kernels (and instruction set for the element-wise loops) [`CpuBert`] uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CpuKernel {
    /// Own AVX-512 kernels over weights packed into 32-column panels (x86-64 CPUs with
    /// AVX-512F, AVX2 and FMA).
    Avx512,
    /// The `gemm` crate's kernels (which pick AVX2/FMA or NEON at run time) over row-major
    /// weights; element-wise loops for AVX2 when the CPU has it. Runs everywhere.
    Portable,
}

impl CpuKernel {
    /// The fastest kernel this CPU supports.
    pub fn detect() -> Self {
        if Self::Avx512.is_available() {
            Self::Avx512
        } else {
            Self::Portable
        }
    }

    /// Whether this CPU can run the kernel.
    pub fn is_available(self) -> bool {
        match self {
            Self::Portable => true,
            #[cfg(target_arch = "x86_64")]
            Self::Avx512 => {
                std::arch::is_x86_feature_detected!("avx512f")
                    && std::arch::is_x86_feature_detected!("avx2")
                    && std::arch::is_x86_feature_detected!("fma")
            }
            #[cfg(not(target_arch = "x86_64"))]
            Self::Avx512 => false,
        }
    }
}

/// A dense layer `y = x W + b`, `W` stored in the layout of the kernel.
#[derive(Clone)]
struct Dense {
    /// Input width.
    k: usize,
    /// Output width.
    n: usize,
    /// `[n]`.
    bias: Vec<f32>,
    /// Row-major `[k, n]` ([`CpuKernel::Portable`]) or 32-column panels
    /// ([`CpuKernel::Avx512`], see [`pack_panels`]).
    weight: Vec<f32>,
}

impl Dense {
    /// From a row-major `[k, n]` weight and its bias.
    fn new(kernel: CpuKernel, weight: &[f32], bias: Vec<f32>, k: usize, n: usize) -> Self {
        let weight = match kernel {
            CpuKernel::Portable => weight.to_vec(),
            CpuKernel::Avx512 => {
                let mut packed = Vec::new();
                pack_panels(&mut packed, k, n, |kk, j| weight[kk * n + j]);
                packed
            }
        };
        Self { k, n, bias, weight }
    }
}

/// LayerNorm parameters.
#[derive(Clone)]
struct Norm {
    gamma: Vec<f32>,
    beta: Vec<f32>,
}

/// One post-norm transformer layer.
#[derive(Clone)]
struct Layer {
    /// Query, key and value projections side by side, `[hidden, 3 hidden]`; the query
    /// part is pre-scaled by `1/√head_dim`.
    qkv: Dense,
    /// Attention output projection.
    output: Dense,
    /// LayerNorm after the attention residual (burn-nn's `norm_1`).
    norm_1: Norm,
    /// Feed-forward in, `[hidden, intermediate]`.
    ff_in: Dense,
    /// Feed-forward out, `[intermediate, hidden]`.
    ff_out: Dense,
    /// LayerNorm after the feed-forward residual (burn-nn's `norm_2`).
    norm_2: Norm,
}

/// A [`BertModel`]'s weights on the host, ready for the native CPU forward pass.
///
/// ```
/// use burn::tensor::Device;
/// use mspa_modal::text::{BertModelConfig, CpuBert};
///
/// let model = BertModelConfig::new(100, 32, 2, 4, 64).init(&Device::flex());
/// let cpu = CpuBert::from_model(&model).unwrap();
/// // Two texts of 4 and 2 tokens: 6 rows of 32 values.
/// let hidden = cpu.hidden_states(&[&[1, 5, 7, 2], &[1, 2]], 2).unwrap();
/// assert_eq!(hidden.len(), 6 * 32);
/// let pooled = cpu.mean_pooled(&[&[1, 5, 7, 2], &[1, 2]], 2).unwrap();
/// assert_eq!(pooled.len(), 2 * 32);
/// ```
#[derive(Clone)]
pub struct CpuBert {
    kernel: CpuKernel,
    hidden: usize,
    heads: usize,
    intermediate: usize,
    vocab: usize,
    max_positions: usize,
    eps: f32,
    activation: BertActivation,
    /// `[vocab, hidden]`.
    word: Vec<f32>,
    /// `[max_positions, hidden]`.
    position: Vec<f32>,
    /// Token type 0, `[hidden]`.
    token_type: Vec<f32>,
    embedding_norm: Norm,
    layers: Vec<Layer>,
}

/// Sizes only (the weights run to millions of values).
impl std::fmt::Debug for CpuBert {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CpuBert")
            .field("kernel", &self.kernel)
            .field("hidden", &self.hidden)
            .field("heads", &self.heads)
            .field("intermediate", &self.intermediate)
            .field("layers", &self.layers.len())
            .field("vocab", &self.vocab)
            .field("max_positions", &self.max_positions)
            .field("activation", &self.activation)
            .finish_non_exhaustive()
    }
}

impl CpuBert {
    /// Copies `model`'s weights to the host for the fastest kernel this CPU supports.
    ///
    /// An error if the model is one this path does not cover (pre-norm layers, quiet
    /// softmax, an activation other than GELU or ReLU).
    pub fn from_model(model: &BertModel) -> Result<Self> {
        Self::with_kernel(model, CpuKernel::detect())
    }

    /// [`from_model`](Self::from_model) with a chosen kernel; an error if this CPU cannot
    /// run it.
    pub fn with_kernel(model: &BertModel, kernel: CpuKernel) -> Result<Self> {
        let unsupported = |message: String| ModalError::Config {
            field: "cpu_forward".into(),
            message,
        };
        if !kernel.is_available() {
            return Err(unsupported(format!(
                "this CPU cannot run {kernel:?} kernels"
            )));
        }
        let hidden = model.hidden_size();
        let layers_in = &model.encoder.layers;
        let heads = layers_in.first().map_or(1, |l| l.mha.n_heads);
        if heads == 0 || !hidden.is_multiple_of(heads) {
            return Err(unsupported(format!(
                "{heads} heads do not divide width {hidden}"
            )));
        }
        let head_dim = hidden / heads;
        let mut activation = None;
        let mut intermediate = 0;
        let mut layers = Vec::with_capacity(layers_in.len());
        for (i, layer) in layers_in.iter().enumerate() {
            let mha = &layer.mha;
            if layer.norm_first {
                return Err(unsupported(format!("layer {i} is pre-norm")));
            }
            if mha.quiet_softmax {
                return Err(unsupported(format!("layer {i} uses quiet softmax")));
            }
            if mha.n_heads != heads || mha.d_k != head_dim || mha.d_model != hidden {
                return Err(unsupported(format!(
                    "layer {i} has a different attention shape"
                )));
            }
            let act = match &layer.pwff.activation {
                Activation::Gelu(g) if g.approximate => BertActivation::GeluTanh,
                Activation::Gelu(_) => BertActivation::Gelu,
                Activation::Relu(_) => BertActivation::Relu,
                other => {
                    return Err(unsupported(format!(
                        "layer {i}: activation {other:?} is not supported"
                    )));
                }
            };
            if activation.is_some_and(|a| a != act) {
                return Err(unsupported("layers use different activations".into()));
            }
            activation = Some(act);

            let (wq, bq) = linear_parts(&mha.query, hidden, hidden)?;
            let (wk, bk) = linear_parts(&mha.key, hidden, hidden)?;
            let (wv, bv) = linear_parts(&mha.value, hidden, hidden)?;
            let scale = 1.0 / (head_dim as f32).sqrt();
            let mut w_qkv = Vec::with_capacity(hidden * 3 * hidden);
            for r in 0..hidden {
                let row = r * hidden..(r + 1) * hidden;
                w_qkv.extend(wq[row.clone()].iter().map(|w| w * scale));
                w_qkv.extend_from_slice(&wk[row.clone()]);
                w_qkv.extend_from_slice(&wv[row]);
            }
            let mut b_qkv: Vec<f32> = bq.iter().map(|b| b * scale).collect();
            b_qkv.extend(bk);
            b_qkv.extend(bv);
            let (wo, bo) = linear_parts(&mha.output, hidden, hidden)?;
            let ff_width = layer.pwff.linear_inner.weight.dims()[1];
            if i > 0 && ff_width != intermediate {
                return Err(unsupported("layers have different widths".into()));
            }
            intermediate = ff_width;
            let (w1, b1) = linear_parts(&layer.pwff.linear_inner, hidden, intermediate)?;
            let (w2, b2) = linear_parts(&layer.pwff.linear_outer, intermediate, hidden)?;
            layers.push(Layer {
                qkv: Dense::new(kernel, &w_qkv, b_qkv, hidden, 3 * hidden),
                output: Dense::new(kernel, &wo, bo, hidden, hidden),
                norm_1: norm_parts(&layer.norm_1, hidden)?,
                ff_in: Dense::new(kernel, &w1, b1, hidden, intermediate),
                ff_out: Dense::new(kernel, &w2, b2, intermediate, hidden),
                norm_2: norm_parts(&layer.norm_2, hidden)?,
            });
        }
        let emb = &model.embeddings;
        let word = values(emb.word_embeddings.weight.val())?;
        let position = values(emb.position_embeddings.weight.val())?;
        let types = values(emb.token_type_embeddings.weight.val())?;
        if types.len() < hidden {
            return Err(unsupported("no token type embeddings".into()));
        }
        Ok(Self {
            kernel,
            hidden,
            heads,
            intermediate,
            vocab: word.len() / hidden.max(1),
            max_positions: position.len() / hidden.max(1),
            eps: model.layer_norm_eps() as f32,
            activation: activation.unwrap_or(BertActivation::Gelu),
            word,
            position,
            token_type: types[..hidden].to_vec(),
            embedding_norm: norm_parts(&emb.layer_norm, hidden)?,
            layers,
        })
    }

    /// The kernel in use.
    pub fn kernel(&self) -> CpuKernel {
        self.kernel
    }

    /// Width of the hidden states.
    pub fn hidden_size(&self) -> usize {
        self.hidden
    }

    /// Number of transformer layers.
    pub fn num_layers(&self) -> usize {
        self.layers.len()
    }

    /// Hidden states after the first `num_layers` layers of every token of every text,
    /// packed text after text: `[Σ lengths, hidden]`, row-major. Position ids are
    /// `0..len` and token types 0, as [`BertModel::forward_layers`] with a padding mask.
    ///
    /// An error if `num_layers` exceeds the model's, a text is longer than the position
    /// table, or an id is outside the vocabulary.
    pub fn hidden_states(&self, texts: &[&[u32]], num_layers: usize) -> Result<Vec<f32>> {
        let h = self.hidden;
        let parts = self.run_groups(texts, num_layers, |_, hidden| hidden)?;
        let mut out = Vec::with_capacity(texts.iter().map(|t| t.len()).sum::<usize>() * h);
        for part in parts {
            out.extend_from_slice(&part);
        }
        Ok(out)
    }

    /// Mean over each text's tokens of the hidden states after the first `num_layers`
    /// layers, `[texts.len(), hidden]` (sentence-transformers' mean pooling; an empty
    /// text gives zeros). Errors as [`hidden_states`](Self::hidden_states).
    pub fn mean_pooled(&self, texts: &[&[u32]], num_layers: usize) -> Result<Vec<f32>> {
        let h = self.hidden;
        let parts = self.run_groups(texts, num_layers, |group, hidden| {
            let mut pooled = vec![0f32; group.len() * h];
            let mut row = 0;
            for (t, out) in group.iter().zip(pooled.chunks_exact_mut(h.max(1))) {
                for token in hidden[row * h..(row + t.len()) * h].chunks_exact(h) {
                    for (o, v) in out.iter_mut().zip(token) {
                        *o += v;
                    }
                }
                let inv = 1.0 / (t.len().max(1) as f32);
                out.iter_mut().for_each(|o| *o *= inv);
                row += t.len();
            }
            pooled
        })?;
        Ok(parts.concat())
    }

    /// Checks the inputs, splits `texts` into contiguous groups of about equal token
    /// counts (at least one per rayon thread when there are enough texts, at most
    /// [`MAX_GROUP_TOKENS`] tokens each unless one text is longer), runs the groups in
    /// parallel and returns `finish(group, hidden)` of each, in order.
    fn run_groups<R: Send>(
        &self,
        texts: &[&[u32]],
        num_layers: usize,
        finish: impl Fn(&[&[u32]], Vec<f32>) -> R + Sync,
    ) -> Result<Vec<R>> {
        self.check(texts, num_layers)?;
        let total: usize = texts.iter().map(|t| t.len()).sum();
        let groups = rayon::current_num_threads()
            .min(texts.len())
            .max(total.div_ceil(MAX_GROUP_TOKENS))
            .max(1);
        let mut bounds = vec![0];
        let mut acc = 0usize;
        for (i, t) in texts.iter().enumerate() {
            acc += t.len();
            let cut = acc * groups >= total * bounds.len() && i + 1 < texts.len();
            if cut && bounds.len() < groups {
                bounds.push(i + 1);
            }
        }
        bounds.push(texts.len());
        Ok(bounds
            .par_windows(2)
            .map(|w| {
                let group = &texts[w[0]..w[1]];
                finish(group, self.forward_group(group, num_layers))
            })
            .collect())
    }

    /// Rejects inputs the forward pass cannot take.
    fn check(&self, texts: &[&[u32]], num_layers: usize) -> Result<()> {
        let bad = |message: String| ModalError::Config {
            field: "input_ids".into(),
            message,
        };
        if num_layers > self.layers.len() {
            return Err(ModalError::Config {
                field: "layer".into(),
                message: format!(
                    "asked for {num_layers} layers of a {}-layer model",
                    self.layers.len()
                ),
            });
        }
        for (i, t) in texts.iter().enumerate() {
            if t.len() > self.max_positions {
                return Err(bad(format!(
                    "text {i} has {} tokens, more than max_position_embeddings {}",
                    t.len(),
                    self.max_positions
                )));
            }
            if let Some(id) = t.iter().find(|&&id| id as usize >= self.vocab) {
                return Err(bad(format!(
                    "text {i}: token id {id} is outside the vocabulary of {}",
                    self.vocab
                )));
            }
        }
        Ok(())
    }

    /// The hidden states of one group, on this thread, with the best code for the kernel.
    fn forward_group(&self, texts: &[&[u32]], num_layers: usize) -> Vec<f32> {
        match self.kernel {
            #[cfg(target_arch = "x86_64")]
            CpuKernel::Avx512 => {
                // SAFETY: `with_kernel` only builds an `Avx512` model on a CPU with
                // AVX-512F.
                unsafe { x86::forward_avx512(self, texts, num_layers) }
            }
            #[cfg(target_arch = "x86_64")]
            CpuKernel::Portable
                if std::arch::is_x86_feature_detected!("avx2")
                    && std::arch::is_x86_feature_detected!("fma") =>
            {
                // SAFETY: the CPU has AVX2 and FMA (checked just above).
                unsafe { x86::forward_avx2(self, texts, num_layers) }
            }
            _ => forward_impl(self, texts, num_layers, &PortableMatmul),
        }
    }
}

/// `Linear` weight `[k, n]` and bias (zeros when absent) as host vectors.
fn linear_parts(linear: &Linear, k: usize, n: usize) -> Result<(Vec<f32>, Vec<f32>)> {
    if linear.weight.dims() != [k, n] {
        return Err(ModalError::Config {
            field: "cpu_forward".into(),
            message: format!(
                "linear layer of shape {:?}, expected [{k}, {n}]",
                linear.weight.dims()
            ),
        });
    }
    let weight = values(linear.weight.val())?;
    let bias = match &linear.bias {
        Some(b) => values(b.val())?,
        None => vec![0.0; n],
    };
    Ok((weight, bias))
}

/// LayerNorm `gamma` and `beta` (zeros when absent) as host vectors.
fn norm_parts(norm: &LayerNorm, width: usize) -> Result<Norm> {
    let gamma = values(norm.gamma.val())?;
    let beta = match &norm.beta {
        Some(b) => values(b.val())?,
        None => vec![0.0; width],
    };
    if gamma.len() != width || beta.len() != width {
        return Err(ModalError::Config {
            field: "cpu_forward".into(),
            message: format!("LayerNorm of width {}, expected {width}", gamma.len()),
        });
    }
    Ok(Norm { gamma, beta })
}

/// A tensor's values as `f32`, row-major.
fn values<const D: usize>(tensor: Tensor<D>) -> Result<Vec<f32>> {
    tensor
        .into_data()
        .try_into_vec_as::<f32>()
        .map_err(|e| ModalError::Config {
            field: "cpu_forward".into(),
            message: format!("reading weights: {e:?}"),
        })
}

/// Panel width of the AVX-512 kernel (two 16-lane registers).
const NR: usize = 32;

/// Packs the `k x n` matrix `at(row, col)` into `out` as `ceil(n / 32)` panels of
/// `k x 32` values, row-major within a panel, columns past `n` zero.
fn pack_panels(out: &mut Vec<f32>, k: usize, n: usize, at: impl Fn(usize, usize) -> f32) {
    let panels = n.div_ceil(NR);
    out.clear();
    out.resize(panels * k * NR, 0.0);
    for p in 0..panels {
        let cols = NR.min(n - p * NR);
        for kk in 0..k {
            let dst = &mut out[(p * k + kk) * NR..][..cols];
            for (j, d) in dst.iter_mut().enumerate() {
                *d = at(kk, p * NR + j);
            }
        }
    }
}

/// The matrix products of the forward pass, per kernel.
trait Matmul {
    /// `c = (accumulate ? c : 0) + bias + a · W` for the `m x k` row-major `a` (row
    /// stride `k`) and `m x n` `c` (row stride `n`).
    fn dense(&self, m: usize, a: &[f32], w: &Dense, c: &mut [f32], accumulate: bool);

    /// `c = a · bᵀ`: `a` is `m x k` (row stride `lda`), `b` is `n x k` (row stride
    /// `ldb`), `c` is `m x n` (row stride `n`).
    #[allow(clippy::too_many_arguments)]
    fn mul_nt(
        &self,
        mnk: (usize, usize, usize),
        a: &[f32],
        lda: usize,
        b: &[f32],
        ldb: usize,
        c: &mut [f32],
        scratch: &mut Vec<f32>,
    );

    /// `c = a · b`: `a` is `m x k` (row stride `k`), `b` is `k x n` (row stride `ldb`),
    /// `c` is `m x n` (row stride `ldc`).
    #[allow(clippy::too_many_arguments)]
    fn mul_nn(
        &self,
        mnk: (usize, usize, usize),
        a: &[f32],
        b: &[f32],
        ldb: usize,
        c: &mut [f32],
        ldc: usize,
        scratch: &mut Vec<f32>,
    );
}

/// Checks that a strided `rows x cols` matrix fits in a slice of `len` values.
fn fits(len: usize, rows: usize, cols: usize, stride: usize) -> bool {
    rows == 0 || cols == 0 || (stride >= cols && (rows - 1) * stride + cols <= len)
}

/// The `gemm` crate over row-major weights.
struct PortableMatmul;

impl PortableMatmul {
    /// `c = (read_c ? c : 0) + a · b` over strided operands (strides in elements).
    #[allow(clippy::too_many_arguments)]
    fn gemm(
        (m, n, k): (usize, usize, usize),
        a: &[f32],
        (a_rs, a_cs): (usize, usize),
        b: &[f32],
        (b_rs, b_cs): (usize, usize),
        c: &mut [f32],
        c_rs: usize,
        read_c: bool,
    ) {
        if m == 0 || n == 0 {
            return;
        }
        let extent = |rows: usize, cols: usize, rs: usize, cs: usize| {
            (rows.max(1) - 1) * rs + (cols.max(1) - 1) * cs + 1
        };
        assert!(
            k == 0 || (extent(m, k, a_rs, a_cs) <= a.len() && extent(k, n, b_rs, b_cs) <= b.len()),
            "gemm operands out of bounds"
        );
        assert!(fits(c.len(), m, n, c_rs), "gemm output out of bounds");
        if k == 0 {
            if !read_c {
                c.chunks_mut(c_rs)
                    .take(m)
                    .for_each(|row| row[..n].fill(0.0));
            }
            return;
        }
        // SAFETY: the asserts above keep every strided access of the three operands
        // inside its slice.
        unsafe {
            gemm::gemm(
                m,
                n,
                k,
                c.as_mut_ptr(),
                1,
                c_rs as isize,
                read_c,
                a.as_ptr(),
                a_cs as isize,
                a_rs as isize,
                b.as_ptr(),
                b_cs as isize,
                b_rs as isize,
                1.0,
                1.0,
                false,
                false,
                false,
                gemm::Parallelism::None,
            );
        }
    }
}

impl Matmul for PortableMatmul {
    fn dense(&self, m: usize, a: &[f32], w: &Dense, c: &mut [f32], accumulate: bool) {
        let n = w.n;
        for row in c.chunks_exact_mut(n.max(1)).take(m) {
            if accumulate {
                row.iter_mut().zip(&w.bias).for_each(|(c, b)| *c += b);
            } else {
                row.copy_from_slice(&w.bias);
            }
        }
        Self::gemm((m, n, w.k), a, (w.k, 1), &w.weight, (n, 1), c, n, true);
    }

    fn mul_nt(
        &self,
        (m, n, k): (usize, usize, usize),
        a: &[f32],
        lda: usize,
        b: &[f32],
        ldb: usize,
        c: &mut [f32],
        _: &mut Vec<f32>,
    ) {
        Self::gemm((m, n, k), a, (lda, 1), b, (1, ldb), c, n, false);
    }

    fn mul_nn(
        &self,
        (m, n, k): (usize, usize, usize),
        a: &[f32],
        b: &[f32],
        ldb: usize,
        c: &mut [f32],
        ldc: usize,
        _: &mut Vec<f32>,
    ) {
        Self::gemm((m, n, k), a, (k, 1), b, (ldb, 1), c, ldc, false);
    }
}

/// The forward pass of one group of texts on the current thread; `inline(always)` so that
/// the `x86` entry points compile it (and every element-wise loop) for their features.
#[inline(always)]
fn forward_impl<M: Matmul>(
    model: &CpuBert,
    texts: &[&[u32]],
    num_layers: usize,
    mm: &M,
) -> Vec<f32> {
    let h = model.hidden;
    let tokens: usize = texts.iter().map(|t| t.len()).sum();
    let mut x = vec![0f32; tokens * h];
    if tokens == 0 || h == 0 {
        return x;
    }
    // Embeddings: word + position + token type 0, then LayerNorm.
    let mut rows = x.chunks_exact_mut(h);
    for t in texts {
        for (pos, (&id, row)) in t.iter().zip(&mut rows).enumerate() {
            let word = &model.word[id as usize * h..][..h];
            let position = &model.position[pos * h..][..h];
            for (((o, w), p), ty) in row
                .iter_mut()
                .zip(word)
                .zip(position)
                .zip(&model.token_type)
            {
                *o = w + p + ty;
            }
        }
    }
    let eps = model.eps;
    layer_norm_rows(&mut x, &model.embedding_norm, eps);

    let heads = model.heads;
    let d = h / heads;
    let longest = texts.iter().map(|t| t.len()).max().unwrap_or(0);
    let mut qkv = vec![0f32; tokens * 3 * h];
    let mut context = vec![0f32; tokens * h];
    let mut ff = vec![0f32; tokens * model.intermediate];
    let mut scores = vec![0f32; longest * longest];
    let mut scratch = Vec::new();
    for layer in &model.layers[..num_layers] {
        mm.dense(tokens, &x, &layer.qkv, &mut qkv, false);
        // Attention, per text and head, over the text's own tokens.
        let mut start = 0;
        for t in texts {
            let len = t.len();
            if len == 0 {
                continue;
            }
            let rows = &qkv[start * 3 * h..(start + len) * 3 * h];
            let ctx = &mut context[start * h..(start + len) * h];
            let s = &mut scores[..len * len];
            for head in 0..heads {
                let q = &rows[head * d..];
                let k = &rows[h + head * d..];
                let v = &rows[2 * h + head * d..];
                mm.mul_nt((len, len, d), q, 3 * h, k, 3 * h, s, &mut scratch);
                for row in s.chunks_exact_mut(len) {
                    softmax(row);
                }
                mm.mul_nn(
                    (len, d, len),
                    s,
                    v,
                    3 * h,
                    &mut ctx[head * d..],
                    h,
                    &mut scratch,
                );
            }
            start += len;
        }
        mm.dense(tokens, &context, &layer.output, &mut x, true);
        layer_norm_rows(&mut x, &layer.norm_1, eps);
        mm.dense(tokens, &x, &layer.ff_in, &mut ff, false);
        match model.activation {
            BertActivation::Gelu => ff.iter_mut().for_each(|v| *v = gelu(*v)),
            BertActivation::GeluTanh => ff.iter_mut().for_each(|v| *v = gelu_tanh(*v)),
            BertActivation::Relu => ff.iter_mut().for_each(|v| *v = v.max(0.0)),
        }
        mm.dense(tokens, &ff, &layer.ff_out, &mut x, true);
        layer_norm_rows(&mut x, &layer.norm_2, eps);
    }
    x
}

mod math;
#[cfg(test)]
mod tests;
#[cfg(target_arch = "x86_64")]
mod x86;

use math::*;
