//! `Y = X · Wᵀ` for a batch of activation rows against a quantized weight matrix in the map.
//!
//! Work is split over rows of `W` so each weight row is read once per call and reused for every
//! activation row in the batch. Fast mode converts each activation row once to the weight type's
//! `vec_dot_type`; exact mode dequantizes a small tile of weight rows to f32 per thread instead.

use super::per_thread::{PerThread, SendPtr};
use super::{dot_f32, Precision};
use crate::model::weights::Matrix;
use crate::quant;
use rayon::prelude::*;

/// Weight rows handled together by one task: a tile small enough to stay in L1/L2.
const TILE_ROWS: usize = 16;

/// Buffers a matmul needs, sized once for the largest matrix and batch.
pub struct MatmulScratch {
    /// Activations converted to a vec-dot format, `batch` rows back to back.
    act: Vec<u8>,
    /// Per-thread tile of dequantized weight rows (exact mode).
    tiles: PerThread<Vec<f32>>,
}

impl MatmulScratch {
    /// `max_cols`: widest matrix input; `max_batch`: most activation rows per call.
    pub fn new(n_threads: usize, max_cols: usize, max_batch: usize) -> Self {
        // Q8_1 is the widest activation format per element (36 bytes per 32), f32 is 4 per element.
        let act_bytes = max_batch * max_cols * 4 + 64;
        MatmulScratch {
            act: vec![0u8; act_bytes],
            tiles: PerThread::new(n_threads, || vec![0f32; TILE_ROWS * max_cols]),
        }
    }
}

/// What every matmul of a forward pass shares: the pool, the mapped file, the numeric mode and
/// the scratch buffers.
pub struct MatmulCtx<'a> {
    pub pool: &'a rayon::ThreadPool,
    pub file: &'a [u8],
    pub precision: Precision,
    pub scratch: &'a mut MatmulScratch,
}

/// `y[b][r] = dot(W[r], x[b])` for `b < batch`, `r < w.rows`. `x` is `batch × w.cols`, `y` is
/// `batch × w.rows`.
pub fn matmul(ctx: &mut MatmulCtx<'_>, w: &Matrix, x: &[f32], batch: usize, y: &mut [f32]) {
    let MatmulCtx {
        pool,
        file,
        precision,
        scratch,
    } = ctx;
    let (pool, file, precision) = (*pool, *file, *precision);
    let (rows, cols) = (w.rows, w.cols);
    assert_eq!(x.len(), batch * cols, "matmul input size");
    assert_eq!(y.len(), batch * rows, "matmul output size");
    let n_tiles = rows.div_ceil(TILE_ROWS);
    let out = SendPtr(y.as_mut_ptr());
    let data = w.rows_data(file, 0, rows);
    match precision {
        Precision::Fast => {
            let vdt = w.kernels.vec_dot_type;
            let arb = vdt
                .row_bytes(cols as u64)
                .expect("cols is a multiple of the block") as usize;
            let act = &mut scratch.act[..batch * arb];
            for (b, dst) in act.chunks_exact_mut(arb).enumerate() {
                quant::quantize_activations(vdt, &x[b * cols..(b + 1) * cols], dst);
            }
            let act = &*act;
            let vec_dot = w.kernels.vec_dot;
            pool.install(|| {
                (0..n_tiles).into_par_iter().for_each(|t| {
                    let (r0, r1) = (t * TILE_ROWS, ((t + 1) * TILE_ROWS).min(rows));
                    for b in 0..batch {
                        let a = &act[b * arb..(b + 1) * arb];
                        for r in r0..r1 {
                            let wr = &data[r * w.row_bytes..(r + 1) * w.row_bytes];
                            let v = vec_dot(cols, wr, a);
                            // SAFETY: tile t alone writes rows r0..r1 of every batch row.
                            unsafe { *out.get().add(b * rows + r) = v };
                        }
                    }
                });
            });
        }
        Precision::Exact => {
            let deq = w.kernels.dequantize;
            let tiles = &scratch.tiles;
            pool.install(|| {
                (0..n_tiles).into_par_iter().for_each(|t| {
                    let (r0, r1) = (t * TILE_ROWS, ((t + 1) * TILE_ROWS).min(rows));
                    tiles.with(|tile| {
                        let tile = &mut tile[..(r1 - r0) * cols];
                        for (i, dst) in tile.chunks_exact_mut(cols).enumerate() {
                            let r = r0 + i;
                            deq(&data[r * w.row_bytes..(r + 1) * w.row_bytes], dst);
                        }
                        for b in 0..batch {
                            let xb = &x[b * cols..(b + 1) * cols];
                            for (i, wr) in tile.chunks_exact(cols).enumerate() {
                                // SAFETY: as above, disjoint rows per tile.
                                unsafe { *out.get().add(b * rows + r0 + i) = dot_f32(wr, xb) };
                            }
                        }
                    });
                });
            });
        }
    }
}
