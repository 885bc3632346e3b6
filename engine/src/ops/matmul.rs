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
    /// Bytes held.
    pub fn bytes(&self) -> usize {
        self.act.capacity() + self.tiles.bytes_with(|t| t.capacity() * 4)
    }

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
    matmul_group(ctx, x, batch, &mut [(w, y)]);
}

/// Several matrices applied to the same input (Q, K and V; gate and up) in one parallel section:
/// the input is converted once and the threads are woken once, which matters in decode where each
/// section lasts only tens of microseconds.
pub fn matmul_group(
    ctx: &mut MatmulCtx<'_>,
    x: &[f32],
    batch: usize,
    outs: &mut [(&Matrix, &mut [f32])],
) {
    let Some(first) = outs.first() else { return };
    let k: &'static quant::TypeKernels = first.0.kernels;
    let cols = first.0.cols;
    let vdt = k.vec_dot_type;
    let same_input = outs
        .iter()
        .all(|(w, _)| w.cols == cols && w.kernels.vec_dot_type == vdt);
    if !same_input {
        for (w, y) in outs.iter_mut() {
            matmul_group(ctx, x, batch, &mut [(*w, &mut **y)]);
        }
        return;
    }
    assert_eq!(x.len(), batch * cols, "matmul input size");
    let blank = Part {
        kernels: k,
        row0: 0,
        rows: 0,
        row_bytes: 0,
        data: SendPtr(std::ptr::null_mut()),
        out: SendPtr(std::ptr::null_mut()),
    };
    let mut parts = [blank; MAX_GROUP];
    assert!(outs.len() <= MAX_GROUP, "matmul group too large");
    let mut total = 0;
    for (i, (w, y)) in outs.iter_mut().enumerate() {
        assert_eq!(y.len(), batch * w.rows, "matmul output size");
        parts[i] = Part {
            kernels: w.kernels,
            row0: total,
            rows: w.rows,
            row_bytes: w.row_bytes,
            data: SendPtr(w.rows_data(ctx.file, 0, w.rows).as_ptr() as *mut u8),
            out: SendPtr(y.as_mut_ptr()),
        };
        total += w.rows;
    }
    let parts = &parts[..outs.len()];
    let pool = ctx.pool;
    match ctx.precision {
        Precision::Fast => {
            let arb = vdt
                .row_bytes(cols as u64)
                .expect("cols is a multiple of the block") as usize;
            let act = &mut ctx.scratch.act[..batch * arb];
            for (b, dst) in act.chunks_exact_mut(arb).enumerate() {
                quant::quantize_activations(vdt, &x[b * cols..(b + 1) * cols], dst);
            }
            let act = &*act;
            let chunks = n_chunks(total, pool.n_threads(), 16);
            let per = total.div_ceil(chunks);
            pool.for_each_chunk(chunks, &|_, c| {
                for_rows(parts, c * per, ((c + 1) * per).min(total), |p, r| {
                    // SAFETY: `data` points at `p.rows` rows of the mapped matrix; chunk c alone
                    // writes global rows c·per.., so each output element has one writer.
                    let wr = unsafe {
                        std::slice::from_raw_parts(p.data.get().add(r * p.row_bytes), p.row_bytes)
                    };
                    if batch == 1 {
                        unsafe { *p.out.get().add(r) = (p.kernels.vec_dot)(cols, wr, act) };
                        return;
                    }
                    let mut tmp = [0f32; MULTI];
                    let mut b0 = 0;
                    while b0 < batch {
                        let nb = (batch - b0).min(MULTI);
                        p.kernels
                            .dot_multi(cols, wr, &act[b0 * arb..], arb, &mut tmp[..nb]);
                        for (j, &v) in tmp[..nb].iter().enumerate() {
                            unsafe { *p.out.get().add((b0 + j) * p.rows + r) = v };
                        }
                        b0 += nb;
                    }
                });
            });
        }
        Precision::Exact => {
            let dot = ctx.float.dot_f32;
            let tiles = &ctx.scratch.tiles;
            let n_tiles = total.div_ceil(TILE_ROWS);
            pool.for_each_chunk(n_tiles, &|tid, t| {
                // SAFETY: the slot belongs to this pool thread.
                let tile = unsafe { tiles.get(tid) };
                let (g0, g1) = (t * TILE_ROWS, ((t + 1) * TILE_ROWS).min(total));
                let mut n = 0;
                for_rows(parts, g0, g1, |p, r| {
                    // SAFETY: as in the fast path.
                    let wr = unsafe {
                        std::slice::from_raw_parts(p.data.get().add(r * p.row_bytes), p.row_bytes)
                    };
                    (p.kernels.dequantize)(wr, &mut tile[n * cols..(n + 1) * cols]);
                    n += 1;
                });
                for b in 0..batch {
                    let xb = &x[b * cols..(b + 1) * cols];
                    let mut i = 0;
                    for_rows(parts, g0, g1, |p, r| {
                        let v = dot(&tile[i * cols..(i + 1) * cols], xb);
                        unsafe { *p.out.get().add(b * p.rows + r) = v };
                        i += 1;
                    });
                }
            });
        }
    }
}

/// Most matrices in one group (Q, K, V).
const MAX_GROUP: usize = 4;

/// One matrix of a group: where its rows and its output are, and its place in the group's
/// concatenated row space.
#[derive(Clone, Copy)]
struct Part {
    /// The matrix's own kernels: a group may mix types that share an activation format.
    kernels: &'static quant::TypeKernels,
    row0: usize,
    rows: usize,
    row_bytes: usize,
    data: SendPtr<u8>,
    out: SendPtr<f32>,
}

/// Calls `f(part, local_row)` for the group's global rows `g0..g1`, in order.
#[inline]
fn for_rows(parts: &[Part], g0: usize, g1: usize, mut f: impl FnMut(&Part, usize)) {
    for p in parts {
        let (a, b) = (g0.max(p.row0), g1.min(p.row0 + p.rows));
        for g in a..b {
            f(p, g - p.row0);
        }
    }
}
