//! Entry points compiled for AVX-512 and AVX2, and the AVX-512 matrix kernel.

use std::arch::x86_64::*;

use super::{CpuBert, Dense, Matmul, NR, PortableMatmul, fits, forward_impl, pack_panels};

/// Rows of the register tile (12 rows x 32 columns: 24 accumulators).
const MR: usize = 12;
/// Depth of one pass over a panel (keeps the A rows of a tile in L1).
const KC: usize = 384;
/// Panels per column block (keeps a `KC x 256` block of B in L2).
const NCP: usize = 8;

/// [`forward_impl`] with the AVX-512 kernel and AVX-512 element-wise loops.
///
/// # Safety
///
/// The CPU must support AVX-512F, AVX2 and FMA.
#[target_feature(enable = "avx512f,avx2,fma")]
pub(super) unsafe fn forward_avx512(
    model: &CpuBert,
    texts: &[&[u32]],
    num_layers: usize,
) -> Vec<f32> {
    forward_impl(model, texts, num_layers, &Avx512Matmul(()))
}

/// [`forward_impl`] with the `gemm` crate and AVX2 element-wise loops.
///
/// # Safety
///
/// The CPU must support AVX2 and FMA.
#[target_feature(enable = "avx2,fma")]
pub(super) unsafe fn forward_avx2(
    model: &CpuBert,
    texts: &[&[u32]],
    num_layers: usize,
) -> Vec<f32> {
    forward_impl(model, texts, num_layers, &PortableMatmul)
}

/// The AVX-512 kernel; only built by [`forward_avx512`], which requires AVX-512F.
struct Avx512Matmul(());

impl Matmul for Avx512Matmul {
    fn dense(&self, m: usize, a: &[f32], w: &Dense, c: &mut [f32], accumulate: bool) {
        // SAFETY: an `Avx512Matmul` exists only inside `forward_avx512`.
        unsafe {
            gemm_panels(
                (m, w.n, w.k),
                a,
                w.k,
                &w.weight,
                c,
                w.n,
                Some(&w.bias),
                accumulate,
            )
        }
    }

    fn mul_nt(
        &self,
        (m, n, k): (usize, usize, usize),
        a: &[f32],
        lda: usize,
        b: &[f32],
        ldb: usize,
        c: &mut [f32],
        scratch: &mut Vec<f32>,
    ) {
        assert!(fits(b.len(), n, k, ldb), "mul_nt operand out of bounds");
        pack_panels(scratch, k, n, |kk, j| b[j * ldb + kk]);
        // SAFETY: as in `dense`.
        unsafe { gemm_panels((m, n, k), a, lda, scratch, c, n, None, false) }
    }

    fn mul_nn(
        &self,
        (m, n, k): (usize, usize, usize),
        a: &[f32],
        b: &[f32],
        ldb: usize,
        c: &mut [f32],
        ldc: usize,
        scratch: &mut Vec<f32>,
    ) {
        assert!(fits(b.len(), k, n, ldb), "mul_nn operand out of bounds");
        pack_panels(scratch, k, n, |kk, j| b[kk * ldb + j]);
        // SAFETY: as in `dense`.
        unsafe { gemm_panels((m, n, k), a, k, scratch, c, ldc, None, false) }
    }
}

/// `c = (accumulate ? c : 0) + bias + a · B` with `B` (`k x n`) packed by
/// [`pack_panels`]; `a` is `m x k` (row stride `lda`), `c` is `m x n` (row stride
/// `ldc`).
///
/// # Safety
///
/// The CPU must support AVX-512F. (Operand sizes are checked.)
#[allow(clippy::too_many_arguments)]
#[target_feature(enable = "avx512f")]
unsafe fn gemm_panels(
    (m, n, k): (usize, usize, usize),
    a: &[f32],
    lda: usize,
    panels: &[f32],
    c: &mut [f32],
    ldc: usize,
    bias: Option<&[f32]>,
    accumulate: bool,
) {
    if m == 0 || n == 0 {
        return;
    }
    assert!(fits(a.len(), m, k, lda), "gemm lhs out of bounds");
    assert!(
        panels.len() >= n.div_ceil(NR) * k * NR,
        "gemm rhs out of bounds"
    );
    assert!(fits(c.len(), m, n, ldc), "gemm output out of bounds");
    assert!(bias.is_none_or(|b| b.len() >= n), "gemm bias out of bounds");
    if k == 0 {
        for row in c.chunks_mut(ldc).take(m) {
            for (j, v) in row[..n].iter_mut().enumerate() {
                let base = if accumulate { *v } else { 0.0 };
                *v = base + bias.map_or(0.0, |b| b[j]);
            }
        }
        return;
    }
    let panel_count = n.div_ceil(NR);
    let mut kb = 0;
    while kb < k {
        let kc = KC.min(k - kb);
        let mut pb = 0;
        while pb < panel_count {
            let pe = (pb + NCP).min(panel_count);
            let mut rb = 0;
            while rb < m {
                let rows = MR.min(m - rb);
                for p in pb..pe {
                    let col = p * NR;
                    let cols = NR.min(n - col);
                    let m0 = lane_mask(cols);
                    let m1 = lane_mask(cols.saturating_sub(16));
                    // SAFETY: rows `rb..rb + rows` and columns `kb..kb + kc` of `a`,
                    // the `kc x 32` block of panel `p` at depth `kb`, and rows
                    // `rb..rb + rows`, columns `col..col + cols` of `c` (and of
                    // `bias`) lie inside the slices checked above; lanes past `cols`
                    // are masked off.
                    unsafe {
                        let ap = a.as_ptr().add(rb * lda + kb);
                        let bp = panels.as_ptr().add((p * k + kb) * NR);
                        let cp = c.as_mut_ptr().add(rb * ldc + col);
                        let biasp = match bias {
                            Some(b) if kb == 0 => b.as_ptr().add(col),
                            _ => std::ptr::null(),
                        };
                        let load = accumulate || kb > 0;
                        let t = Tile {
                            kc,
                            a: ap,
                            lda,
                            b: bp,
                            c: cp,
                            ldc,
                            m0,
                            m1,
                            bias: biasp,
                            load,
                        };
                        match rows {
                            12 => tile::<12>(t),
                            11 => tile::<11>(t),
                            10 => tile::<10>(t),
                            9 => tile::<9>(t),
                            8 => tile::<8>(t),
                            7 => tile::<7>(t),
                            6 => tile::<6>(t),
                            5 => tile::<5>(t),
                            4 => tile::<4>(t),
                            3 => tile::<3>(t),
                            2 => tile::<2>(t),
                            _ => tile::<1>(t),
                        }
                    }
                }
                rb += MR;
            }
            pb = pe;
        }
        kb += kc;
    }
}

/// The first `lanes` (at most 16) lanes.
fn lane_mask(lanes: usize) -> __mmask16 {
    if lanes >= 16 {
        0xffff
    } else {
        ((1u32 << lanes) - 1) as __mmask16
    }
}

/// One register tile's operands.
#[derive(Clone, Copy)]
struct Tile {
    /// Depth.
    kc: usize,
    /// First A value; row stride `lda`.
    a: *const f32,
    lda: usize,
    /// `kc x 32` panel block.
    b: *const f32,
    /// First C value; row stride `ldc`.
    c: *mut f32,
    ldc: usize,
    /// Lanes of columns 0-15 and 16-31 that exist.
    m0: __mmask16,
    m1: __mmask16,
    /// Bias of the 32 columns, or null.
    bias: *const f32,
    /// Whether to start from C's values (else from zero).
    load: bool,
}

/// `R x 32` block of C: `(load ? C : 0) + bias + A · B`.
///
/// # Safety
///
/// AVX-512F, and every pointer of `t` valid for the rows, depth and unmasked columns
/// it describes.
#[target_feature(enable = "avx512f")]
#[inline]
unsafe fn tile<const R: usize>(t: Tile) {
    // SAFETY: the caller's contract.
    unsafe {
        let mut acc0 = [_mm512_setzero_ps(); R];
        let mut acc1 = [_mm512_setzero_ps(); R];
        if t.load {
            for r in 0..R {
                acc0[r] = _mm512_maskz_loadu_ps(t.m0, t.c.add(r * t.ldc));
                acc1[r] = _mm512_maskz_loadu_ps(t.m1, t.c.add(r * t.ldc + 16));
            }
        }
        if !t.bias.is_null() {
            let b0 = _mm512_maskz_loadu_ps(t.m0, t.bias);
            let b1 = _mm512_maskz_loadu_ps(t.m1, t.bias.add(16));
            for r in 0..R {
                acc0[r] = _mm512_add_ps(acc0[r], b0);
                acc1[r] = _mm512_add_ps(acc1[r], b1);
            }
        }
        for kk in 0..t.kc {
            let b0 = _mm512_loadu_ps(t.b.add(kk * NR));
            let b1 = _mm512_loadu_ps(t.b.add(kk * NR + 16));
            for r in 0..R {
                let av = _mm512_set1_ps(*t.a.add(r * t.lda + kk));
                acc0[r] = _mm512_fmadd_ps(av, b0, acc0[r]);
                acc1[r] = _mm512_fmadd_ps(av, b1, acc1[r]);
            }
        }
        for r in 0..R {
            _mm512_mask_storeu_ps(t.c.add(r * t.ldc), t.m0, acc0[r]);
            _mm512_mask_storeu_ps(t.c.add(r * t.ldc + 16), t.m1, acc1[r]);
        }
    }
}
