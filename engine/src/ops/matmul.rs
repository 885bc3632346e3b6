//! `Y = X · Wᵀ` for a batch of activation rows against a quantized weight matrix in the map.
//!
//! Work is split over rows of `W` so each weight row is read from memory once per call and reused
//! for every activation row of the batch while it sits in L1. Fast mode converts each activation row
//! once to the weight type's `vec_dot_type` and uses the batched dot kernel; exact mode dequantizes
//! a small tile of weight rows to f32 per thread and takes f32 dot products.

use super::per_thread::{PerThread, SendPtr};
use super::Precision;
use crate::model::weights::Matrix;
use crate::quant::{self, FloatKernels};
use crate::threadpool::ThreadPool;

/// Weight rows dequantized together by one thread in exact mode.
const TILE_ROWS: usize = 16;
/// Activation rows handed to one batched dot call.
const MULTI: usize = 8;

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
        // f32 (4 bytes per element) is the widest activation format.
        MatmulScratch {
            act: vec![0u8; max_batch * max_cols * 4],
            tiles: PerThread::new(n_threads, || vec![0f32; TILE_ROWS * max_cols]),
        }
    }
}

/// What every matmul of a forward pass shares: the pool, the mapped file, the numeric mode, the
/// float kernels and the scratch buffers.
pub struct MatmulCtx<'a> {
    pub pool: &'a ThreadPool,
    pub file: &'a [u8],
    pub precision: Precision,
    pub float: &'static FloatKernels,
    pub scratch: &'a mut MatmulScratch,
}

/// How many row chunks to hand out: enough for load balance on a noisy machine, few enough that
/// each chunk streams a good run of contiguous memory.
fn n_chunks(rows: usize, threads: usize, min_rows: usize) -> usize {
    (threads * 8).min(rows.div_ceil(min_rows)).max(1)
}

/// `y[b][r] = dot(W[r], x[b])` for `b < batch`, `r < w.rows`. `x` is `batch × w.cols`, `y` is
/// `batch × w.rows`.
pub fn matmul(ctx: &mut MatmulCtx<'_>, w: &Matrix, x: &[f32], batch: usize, y: &mut [f32]) {
    let (rows, cols) = (w.rows, w.cols);
    assert_eq!(x.len(), batch * cols, "matmul input size");
    assert_eq!(y.len(), batch * rows, "matmul output size");
    let out = SendPtr(y.as_mut_ptr());
    let data = w.rows_data(ctx.file, 0, rows);
    let rb = w.row_bytes;
    let pool = ctx.pool;
    match ctx.precision {
        Precision::Fast => {
            let vdt = w.kernels.vec_dot_type;
            let arb = vdt
                .row_bytes(cols as u64)
                .expect("cols is a multiple of the block") as usize;
            let act = &mut ctx.scratch.act[..batch * arb];
            for (b, dst) in act.chunks_exact_mut(arb).enumerate() {
                quant::quantize_activations(vdt, &x[b * cols..(b + 1) * cols], dst);
            }
            let act = &*act;
            let k = w.kernels;
            let chunks = n_chunks(rows, pool.n_threads(), 16);
            let per = rows.div_ceil(chunks);
            pool.for_each_chunk(chunks, &|_, c| {
                let (r0, r1) = (c * per, ((c + 1) * per).min(rows));
                if batch == 1 {
                    for r in r0..r1 {
                        let v = (k.vec_dot)(cols, &data[r * rb..(r + 1) * rb], act);
                        // SAFETY: chunk c alone writes rows r0..r1.
                        unsafe { *out.get().add(r) = v };
                    }
                    return;
                }
                let mut tmp = [0f32; MULTI];
                for r in r0..r1 {
                    let wr = &data[r * rb..(r + 1) * rb];
                    let mut b0 = 0;
                    while b0 < batch {
                        let nb = (batch - b0).min(MULTI);
                        k.dot_multi(cols, wr, &act[b0 * arb..], arb, &mut tmp[..nb]);
                        for (j, &v) in tmp[..nb].iter().enumerate() {
                            // SAFETY: as above, disjoint rows per chunk.
                            unsafe { *out.get().add((b0 + j) * rows + r) = v };
                        }
                        b0 += nb;
                    }
                }
            });
        }
        Precision::Exact => {
            let deq = w.kernels.dequantize;
            let dot = ctx.float.dot_f32;
            let tiles = &ctx.scratch.tiles;
            let n_tiles = rows.div_ceil(TILE_ROWS);
            pool.for_each_chunk(n_tiles, &|tid, t| {
                let (r0, r1) = (t * TILE_ROWS, ((t + 1) * TILE_ROWS).min(rows));
                // SAFETY: the slot belongs to this pool thread.
                let tile = unsafe { tiles.get(tid) };
                let tile = &mut tile[..(r1 - r0) * cols];
                for (i, dst) in tile.chunks_exact_mut(cols).enumerate() {
                    let r = r0 + i;
                    deq(&data[r * rb..(r + 1) * rb], dst);
                }
                for b in 0..batch {
                    let xb = &x[b * cols..(b + 1) * cols];
                    for (i, wr) in tile.chunks_exact(cols).enumerate() {
                        // SAFETY: disjoint rows per tile.
                        unsafe { *out.get().add(b * rows + r0 + i) = dot(wr, xb) };
                    }
                }
            });
        }
    }
}
