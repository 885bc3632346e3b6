//! Calibration: run the model densely over a text and learn, per layer and neuron, how the FFN's
//! activations are distributed, then fit the low-rank predictor.
//!
//! Two passes over the text. Pass 1 collects, per layer, histograms of |act(gate)| and of
//! |a| = |act(gate)·up| (whose quantiles are the thresholds for each target sparsity, as in
//! CATS/TEAL), each neuron's mean |a|, and the covariance of the FFN input (what the predictor is
//! fitted to). Between the passes the predictor is fitted. Pass 2, with the thresholds known,
//! counts how often each neuron is active at every level and measures the predictor on every token
//! to choose its own thresholds for ~99% recall. "Active" means what decode computes: past both the
//! gate screen and the |a| threshold (see `ffn::GATE_SHARE`).
//!
//! The predictor: the best rank-r map `P` for `g = W·x` under the data's input distribution
//! minimises `E‖(W − P)x‖² = ‖(W − P)C^½‖²` with `C = E[xxᵀ]`. With `M = W·C^½` and its top-r
//! singular vectors, `P = (M·V_r)·(V_rᵀ·C^-½)`: the factors `B = M·V_r` and `A = V_rᵀ·C^-½` are
//! stored, and decode estimates `g ≈ B·(A·x)` at a cost of r·(n_embd + n_ff) instead of
//! n_embd·n_ff.

use super::ffn::GATE_SHARE;
use super::histogram::LogHistogram;
use super::profile::{interp, Dims, ProfileData};
use crate::error::{Error, Result};
use crate::model::session::{FfnObservation, FfnObserver};
use crate::model::{Model, Session, SessionOptions};
use crate::ops::norm::silu;
use crate::ops::Precision;
use nalgebra::{DMatrix, SymmetricEigen};
use std::sync::{Arc, Mutex};

/// Target sparsities a profile holds thresholds for: 0.05, 0.10, ... 0.95.
pub fn default_levels() -> Vec<f32> {
    (1..=19).map(|i| i as f32 * 0.05).collect()
}

/// Recall the predictor's thresholds aim for on the calibration text.
pub const TARGET_RECALL: f64 = 0.99;
/// Level at which neurons are ranked hot-first.
const ORDER_LEVEL: f32 = 0.5;

/// Calibration settings.
#[derive(Debug, Clone)]
pub struct CalibrateOptions {
    /// Most tokens of the text to use.
    pub max_tokens: usize,
    /// Context per chunk (the text is cut into independent chunks, as for perplexity).
    pub n_ctx: usize,
    /// Predictor rank (0 = no predictor).
    pub rank: usize,
    pub n_threads: usize,
}

impl Default for CalibrateOptions {
    fn default() -> Self {
        CalibrateOptions {
            max_tokens: 4096,
            n_ctx: 512,
            rank: 64,
            n_threads: 0,
        }
    }
}

/// Per-layer quality of the predictor at sparsity 0.5.
#[derive(Debug, Clone)]
pub struct LayerReport {
    pub recall: f32,
    pub precision: f32,
    /// Share of neurons the predictor selects (its gate rows are read).
    pub predicted_share: f32,
}

/// Pass-1 statistics of one layer.
struct Pass1 {
    gate_hist: LogHistogram,
    act_hist: LogHistogram,
    sum_abs_act: Vec<f64>,
    /// Σ x·xᵀ of the FFN input, lower triangle packed by rows ([`tri`]), in f32: 0.65 MB a layer
    /// for SmolLM2 where a full f64 matrix and its batch buffer took 4 MB, 120 MB over 30 layers
    /// (what got calibration OOM-killed under a 100 MiB memory limit). Each batch's sum is formed
    /// apart and then added, so no sum runs over more than a batch of tokens; the fit regularises
    /// at 1e-3 of the mean eigenvalue, far above f32's rounding.
    cov: Vec<f32>,
}

/// Position of element (i, j), j ≤ i, of a symmetric matrix stored as its packed lower triangle.
fn tri(i: usize, j: usize) -> usize {
    i * (i + 1) / 2 + j
}

/// Pass-2 statistics of one layer.
struct Pass2 {
    /// `level_count[k][i]`: tokens where neuron i was active at exactly the first k levels.
    level_count: Vec<u32>,
    /// `pred[k][bin]`: tokens × neurons active at exactly the first k levels whose predicted
    /// |act(gate)| fell in `bin`.
    pred: Vec<u64>,
}

const PRED_RES: f64 = 32.0;

/// Runs calibration over `tokens` and returns the profile and a per-layer report of the predictor.
pub fn calibrate(
    model: &Arc<Model>,
    tokens: &[u32],
    opts: &CalibrateOptions,
    progress: &mut dyn FnMut(&str, usize, usize),
) -> Result<(ProfileData, Vec<LayerReport>)> {
    let cfg = &model.config;
    let (n_layer, n_ff, n_embd) = (cfg.n_layer, cfg.n_ff, cfg.n_embd);
    let n_ctx = opts.n_ctx.min(cfg.n_ctx_train).max(16);
    let tokens = &tokens[..tokens.len().min(opts.max_tokens)];
    if tokens.len() < 64 {
        return Err(Error::Invalid(format!(
            "the calibration text has {} tokens: at least 64 are needed (a few thousand are better)",
            tokens.len()
        )));
    }
    let rank = opts.rank.min(n_embd);
    let levels = default_levels();
    let n_levels = levels.len();
    let mut session = Session::new(
        model.clone(),
        &SessionOptions {
            n_ctx,
            n_batch: n_ctx.min(256),
            n_threads: opts.n_threads,
            precision: Precision::Fast,
        },
    )?;

    // Pass 1.
    let p1: Arc<Mutex<Vec<Pass1>>> = Arc::new(Mutex::new(
        (0..n_layer)
            .map(|_| Pass1 {
                gate_hist: LogHistogram::new(),
                act_hist: LogHistogram::new(),
                sum_abs_act: vec![0.0; n_ff],
                cov: vec![0.0; tri(n_embd, 0)],
            })
            .collect(),
    ));
    let obs_state = p1.clone();
    // One batch buffer for every layer: layers are observed one at a time.
    let mut cov_batch = vec![0f32; tri(n_embd, 0)];
    let observer: FfnObserver = Box::new(move |o: &FfnObservation<'_>| {
        let mut st = obs_state.lock().unwrap_or_else(|e| e.into_inner());
        let s = &mut st[o.layer];
        let mut act_gate = vec![0f32; o.gate.len()];
        let mut act = vec![0f32; o.gate.len()];
        for (i, (&g, &u)) in o.gate.iter().zip(o.up).enumerate() {
            act_gate[i] = silu(g);
            act[i] = act_gate[i] * u;
        }
        s.gate_hist.add_all(&act_gate);
        s.act_hist.add_all(&act);
        for row in act.chunks_exact(s.sum_abs_act.len()) {
            for (acc, &a) in s.sum_abs_act.iter_mut().zip(row) {
                *acc += a.abs() as f64;
            }
        }
        accumulate_cov(&mut s.cov, &mut cov_batch, o.xb, n_embd);
    });
    session.set_ffn_observer(Some(observer));
    run_chunks(
        &mut session,
        tokens,
        n_ctx,
        "pass 1/2: activations",
        progress,
    )?;
    session.set_ffn_observer(None);
    let p1 = Arc::try_unwrap(p1)
        .map_err(|_| Error::Invalid("calibration state still shared".into()))?
        .into_inner()
        .unwrap_or_else(|e| e.into_inner());
    let n_tok = tokens.len() as f64;

    let mut gate_thresholds = Vec::with_capacity(n_layer * n_levels);
    let mut act_thresholds = Vec::with_capacity(n_layer * n_levels);
    let mut mean_abs_act = Vec::with_capacity(n_layer * n_ff);
    for s in &p1 {
        for &lv in &levels {
            gate_thresholds.push(s.gate_hist.quantile(lv as f64));
            act_thresholds.push(s.act_hist.quantile(lv as f64));
        }
        mean_abs_act.extend(s.sum_abs_act.iter().map(|&v| (v / n_tok) as f32));
    }

    // Predictor fit.
    // Only the covariances are still needed (the histograms go before the fit, to keep
    // calibration's peak memory low: it may run under a tight memory limit).
    let covs: Vec<Vec<f32>> = p1.into_iter().map(|s| s.cov).collect();
    let mut pred_a = Vec::with_capacity(n_layer * rank * n_embd);
    let mut pred_b = Vec::with_capacity(n_layer * n_ff * rank);
    if rank > 0 {
        for (li, cov) in covs.into_iter().enumerate() {
            progress("fitting predictors", li, n_layer);
            let (a, b) = fit_predictor(model, li, &cov, n_tok, rank)?;
            drop(cov);
            pred_a.extend(a.iter().map(|&v| half::f16::from_f32(v).to_bits()));
            pred_b.extend(b.iter().map(|&v| half::f16::from_f32(v).to_bits()));
        }
        progress("fitting predictors", n_layer, n_layer);
    }

    // Pass 2.
    let pred_tmpl = LogHistogram::with_resolution(PRED_RES);
    let n_bins = pred_tmpl.bin(f32::MAX) + 1;
    let bins = pred_tmpl.clone();
    let p2: Arc<Mutex<Vec<Pass2>>> = Arc::new(Mutex::new(
        (0..n_layer)
            .map(|_| Pass2 {
                level_count: vec![0; (n_levels + 1) * n_ff],
                pred: if rank > 0 {
                    vec![0; (n_levels + 1) * n_bins]
                } else {
                    Vec::new()
                },
            })
            .collect(),
    ));
    let obs_state = p2.clone();
    // A neuron is active at level j when it passes both of decode's thresholds there (see
    // `ffn::GATE_SHARE`): the gate screen at level j·GATE_SHARE and |a| at level j. Both rise with
    // j, so the levels where a neuron is active are a prefix, found by binary search.
    let thr: Vec<(f32, f32)> = (0..n_layer)
        .flat_map(|l| {
            let gt = &gate_thresholds[l * n_levels..(l + 1) * n_levels];
            let at = &act_thresholds[l * n_levels..(l + 1) * n_levels];
            let levels = &levels;
            (0..n_levels).map(move |j| (interp(levels, gt, levels[j] * GATE_SHARE), at[j]))
        })
        .collect();
    // Pass 2 measures the predictor as decode will run it, with the f16 factors: widened a layer
    // at a time into these buffers, not all kept in f32.
    let preds = Arc::new((pred_a, pred_b));
    let preds_obs = preds.clone();
    let (mut pa, mut pb) = (vec![0f32; rank * n_embd], vec![0f32; n_ff * rank]);
    let observer: FfnObserver = Box::new(move |o: &FfnObservation<'_>| {
        let mut st = obs_state.lock().unwrap_or_else(|e| e.into_inner());
        let s = &mut st[o.layer];
        let t = &thr[o.layer * n_levels..(o.layer + 1) * n_levels];
        let mut z = vec![0f32; rank];
        if rank > 0 {
            let (a16, b16) = &*preds_obs;
            let widen = |dst: &mut [f32], src: &[u16]| {
                for (d, &h) in dst.iter_mut().zip(src) {
                    *d = half::f16::from_bits(h).to_f32();
                }
            };
            let (na, nb) = (rank * n_embd, n_ff * rank);
            widen(&mut pa, &a16[o.layer * na..(o.layer + 1) * na]);
            widen(&mut pb, &b16[o.layer * nb..(o.layer + 1) * nb]);
        }
        for b in 0..o.batch {
            let g = &o.gate[b * n_ff..(b + 1) * n_ff];
            let u = &o.up[b * n_ff..(b + 1) * n_ff];
            let x = &o.xb[b * n_embd..(b + 1) * n_embd];
            if rank > 0 {
                for (k, zk) in z.iter_mut().enumerate() {
                    *zk = dot(&pa[k * n_embd..(k + 1) * n_embd], x);
                }
            }
            for (i, (&gi, &ui)) in g.iter().zip(u).enumerate() {
                let sg = silu(gi);
                let (sg_abs, a_abs) = (sg.abs(), (sg * ui).abs());
                let k = t.partition_point(|&(tg, ta)| sg_abs > tg && a_abs > ta);
                s.level_count[k * n_ff + i] += 1;
                if rank > 0 {
                    let est = silu(dot(&pb[i * rank..(i + 1) * rank], &z));
                    let bin = bins.bin(est);
                    s.pred[k * n_bins + bin] += 1;
                }
            }
        }
    });
    session.set_ffn_observer(Some(observer));
    run_chunks(
        &mut session,
        tokens,
        n_ctx,
        "pass 2/2: neuron statistics",
        progress,
    )?;
    session.set_ffn_observer(None);
    let (pred_a, pred_b) = Arc::try_unwrap(preds)
        .map_err(|_| Error::Invalid("calibration state still shared".into()))?;
    let p2 = Arc::try_unwrap(p2)
        .map_err(|_| Error::Invalid("calibration state still shared".into()))?
        .into_inner()
        .unwrap_or_else(|e| e.into_inner());

    let mut freq = Vec::with_capacity(n_layer * n_levels * n_ff);
    let mut order = Vec::with_capacity(n_layer * n_ff);
    let mut pred_thresholds = Vec::with_capacity(n_layer * n_levels);
    let mut pred_recall = Vec::with_capacity(n_layer * n_levels);
    let mut report = Vec::with_capacity(n_layer);
    let order_level = levels
        .iter()
        .position(|&l| (l - ORDER_LEVEL).abs() < 1e-6)
        .unwrap_or(0);
    for (li, s) in p2.iter().enumerate() {
        // freq[j][i] = share of tokens where neuron i is active at level j = Σ_{k>j} count[k][i].
        let mut at_order = vec![0f32; n_ff];
        for j in 0..n_levels {
            for (i, at) in at_order.iter_mut().enumerate() {
                let c: u64 = (j + 1..=n_levels)
                    .map(|k| s.level_count[k * n_ff + i] as u64)
                    .sum();
                let f = c as f64 / n_tok;
                freq.push((f * 65535.0).round() as u16);
                if j == order_level {
                    *at = f as f32;
                }
            }
        }
        let mean = &mean_abs_act[li * n_ff..(li + 1) * n_ff];
        let mut idx: Vec<u32> = (0..n_ff as u32).collect();
        idx.sort_by(|&a, &b| {
            at_order[b as usize]
                .total_cmp(&at_order[a as usize])
                .then(mean[b as usize].total_cmp(&mean[a as usize]))
        });
        order.extend(idx);
        let mut layer_report = LayerReport {
            recall: 0.0,
            precision: 0.0,
            predicted_share: 1.0,
        };
        for j in 0..n_levels {
            if rank == 0 {
                pred_thresholds.push(0.0);
                pred_recall.push(1.0);
                continue;
            }
            // Histograms over predicted |act(gate)|: of truly active neurons, and of all.
            let mut active = vec![0u64; n_bins];
            let mut all = vec![0u64; n_bins];
            for k in 0..=n_levels {
                for bin in 0..n_bins {
                    let c = s.pred[k * n_bins + bin];
                    all[bin] += c;
                    if k > j {
                        active[bin] += c;
                    }
                }
            }
            let n_active: u64 = active.iter().sum();
            let n_all: u64 = all.iter().sum();
            // Lowest bin to keep: below it lie at most (1 − target) of the active ones.
            let mut below = 0u64;
            let mut cut = 0;
            for (bin, &c) in active.iter().enumerate() {
                if (below + c) as f64 > (1.0 - TARGET_RECALL) * n_active as f64 {
                    cut = bin;
                    break;
                }
                below += c;
            }
            let kept_active: u64 = active[cut..].iter().sum();
            let kept_all: u64 = all[cut..].iter().sum();
            let recall = kept_active as f64 / n_active.max(1) as f64;
            // The bin's lower edge: estimates in the cut bin count as predicted.
            let tau = if cut == 0 {
                0.0
            } else {
                pred_tmpl.upper(cut - 1)
            };
            pred_thresholds.push(tau);
            pred_recall.push(recall as f32);
            if j == order_level {
                layer_report = LayerReport {
                    recall: recall as f32,
                    precision: kept_active as f32 / kept_all.max(1) as f32,
                    predicted_share: kept_all as f32 / n_all.max(1) as f32,
                };
            }
        }
        report.push(layer_report);
    }
    let profile = ProfileData {
        dims: Dims {
            n_layer,
            n_ff,
            n_embd,
            n_levels,
            rank,
        },
        calib_tokens: tokens.len() as u32,
        model_hash: model.ffn_hash(),
        levels,
        gate_thresholds,
        act_thresholds,
        mean_abs_act,
        freq,
        order,
        pred_a: pred_a.into(),
        pred_b: pred_b.into(),
        pred_thresholds,
        pred_recall,
    };
    profile.validate()?;
    Ok((profile, report))
}

fn dot(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// Evaluates the text in independent chunks of `n_ctx` tokens.
fn run_chunks(
    session: &mut Session,
    tokens: &[u32],
    n_ctx: usize,
    stage: &str,
    progress: &mut dyn FnMut(&str, usize, usize),
) -> Result<()> {
    let chunks: Vec<&[u32]> = tokens.chunks(n_ctx).collect();
    for (i, c) in chunks.iter().enumerate() {
        progress(stage, i, chunks.len());
        session.clear();
        session.eval(c, c.len())?;
    }
    progress(stage, chunks.len(), chunks.len());
    Ok(())
}

/// `cov += XᵀX` for the rows of `x` (packed lower triangle), the batch summed apart in `tmp`.
fn accumulate_cov(cov: &mut [f32], tmp: &mut [f32], x: &[f32], n: usize) {
    tmp.fill(0.0);
    for row in x.chunks_exact(n) {
        for i in 0..n {
            let xi = row[i];
            let t = &mut tmp[tri(i, 0)..tri(i, i) + 1];
            for (tj, &xj) in t.iter_mut().zip(&row[..=i]) {
                *tj += xi * xj;
            }
        }
    }
    for (c, t) in cov.iter_mut().zip(tmp.iter()) {
        *c += t;
    }
}

/// Fits the rank-r predictor of layer `li` from the input covariance (packed lower triangle,
/// summed over `n_tok` tokens). Returns A (r × n_embd, row-major) and B (n_ff × r, row-major), balanced so
/// both fit comfortably in f16.
fn fit_predictor(
    model: &Model,
    li: usize,
    cov_sum: &[f32],
    n_tok: f64,
    rank: usize,
) -> Result<(Vec<f32>, Vec<f32>)> {
    let gate = &model.weights.layers[li].gate;
    let file = model.file.bytes();
    let row =
        |r: usize, out: &mut [f32]| (gate.kernels.dequantize)(gate.rows_data(file, r, r + 1), out);
    fit_low_rank(&row, gate.rows, gate.cols, cov_sum, n_tok, rank)
        .map_err(|e| Error::Invalid(format!("layer {li}: {e}")))
}

/// The predictor's factors for a matrix of `n_ff` rows of `n_embd` (row `r` written by
/// `row(r, out)`), under the input covariance `cov_sum / n_tok` (packed lower triangle).
fn fit_low_rank(
    row_of: &dyn Fn(usize, &mut [f32]),
    n_ff: usize,
    n_embd: usize,
    cov_sum: &[f32],
    n_tok: f64,
    rank: usize,
) -> std::result::Result<(Vec<f32>, Vec<f32>), String> {
    // W itself is never held as a matrix (1536 × 576 f64 is 7 MB for SmolLM2, and M = W·C^½ as
    // much again): only G = WᵀW, one dequantized row at a time, and B row by row below.
    let mut row = vec![0f32; n_embd];
    let mut g = DMatrix::<f64>::zeros(n_embd, n_embd);
    for r in 0..n_ff {
        row_of(r, &mut row);
        for i in 0..n_embd {
            let wi = row[i] as f64;
            for j in 0..=i {
                g[(i, j)] += wi * row[j] as f64;
            }
        }
    }
    g.fill_upper_triangle_with_lower_triangle();
    let mut c = DMatrix::<f64>::zeros(n_embd, n_embd);
    for i in 0..n_embd {
        for j in 0..=i {
            let v = cov_sum[tri(i, j)] as f64 / n_tok;
            c[(i, j)] = v;
            c[(j, i)] = v;
        }
    }
    // Regularise so C^-½ stays bounded along directions the text never used.
    let lambda = 1e-3 * c.trace() / n_embd as f64 + 1e-12;
    for i in 0..n_embd {
        c[(i, i)] += lambda;
    }
    let eig = SymmetricEigen::new(c);
    let (q, vals) = (eig.eigenvectors, eig.eigenvalues);
    let sqrt = DMatrix::from_diagonal(&vals.map(|v| v.max(lambda).sqrt()));
    let inv_sqrt = DMatrix::from_diagonal(&vals.map(|v| 1.0 / v.max(lambda).sqrt()));
    let c_half = &q * sqrt * q.transpose();
    let c_inv_half = &q * inv_sqrt * q.transpose();
    // MᵀM = C^½·G·C^½; its top eigenvectors are M's top right singular vectors V_r.
    let mtm = &c_half * g * &c_half; // n_embd × n_embd
    let e2 = SymmetricEigen::new(mtm);
    let mut idx: Vec<usize> = (0..n_embd).collect();
    idx.sort_by(|&a, &b| e2.eigenvalues[b].total_cmp(&e2.eigenvalues[a]));
    let mut vr = DMatrix::<f64>::zeros(n_embd, rank);
    for (k, &i) in idx.iter().take(rank).enumerate() {
        vr.set_column(k, &e2.eigenvectors.column(i));
    }
    // B = M·V_r = W·(C^½·V_r), a row of W at a time.
    let k_mat = &c_half * &vr; // n_embd × r
    let mut b = DMatrix::<f64>::zeros(n_ff, rank);
    for r in 0..n_ff {
        row_of(r, &mut row);
        for k in 0..rank {
            b[(r, k)] = (0..n_embd).map(|j| row[j] as f64 * k_mat[(j, k)]).sum();
        }
    }
    let a = vr.transpose() * c_inv_half; // r × n_embd
                                         // Balance the factors' magnitudes (g = B·A·x is unchanged by A/s, B·s).
    let (ma, mb) = (a.amax().max(1e-30), b.amax().max(1e-30));
    let s = (ma / mb).sqrt();
    let a_out: Vec<f32> = (0..rank)
        .flat_map(|k| (0..n_embd).map(move |j| (k, j)))
        .map(|(k, j)| (a[(k, j)] / s) as f32)
        .collect();
    let b_out: Vec<f32> = (0..n_ff)
        .flat_map(|i| (0..rank).map(move |k| (i, k)))
        .map(|(i, k)| (b[(i, k)] * s) as f32)
        .collect();
    if a_out
        .iter()
        .chain(&b_out)
        .any(|v| !v.is_finite() || v.abs() > 60000.0)
    {
        return Err("the predictor's factors do not fit in f16 (try a smaller --rank)".into());
    }
    Ok((a_out, b_out))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A matrix of rank r is predicted exactly by a rank-r fit, whatever the input covariance;
    /// a rank-(r−1) fit cannot be.
    #[test]
    fn low_rank_fit_recovers_a_low_rank_matrix() {
        let (n_ff, n_embd, r) = (48, 24, 5);
        let mut seed = 12345u64;
        let mut rnd = move || {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((seed >> 33) as f32 / (1u64 << 31) as f32) * 2.0 - 1.0
        };
        let u: Vec<f32> = (0..n_ff * r).map(|_| rnd()).collect();
        let v: Vec<f32> = (0..r * n_embd).map(|_| rnd()).collect();
        let w: Vec<f32> = (0..n_ff * n_embd)
            .map(|idx| {
                let (i, j) = (idx / n_embd, idx % n_embd);
                (0..r).map(|k| u[i * r + k] * v[k * n_embd + j]).sum()
            })
            .collect();
        // Inputs with unequal variances per coordinate.
        let n_tok = 400;
        let xs: Vec<f32> = (0..n_tok * n_embd)
            .map(|idx| rnd() * (1.0 + (idx % n_embd) as f32 * 0.2))
            .collect();
        let mut cov = vec![0f32; tri(n_embd, 0)];
        let mut tmp = cov.clone();
        accumulate_cov(&mut cov, &mut tmp, &xs, n_embd);
        let row_of =
            |i: usize, out: &mut [f32]| out.copy_from_slice(&w[i * n_embd..(i + 1) * n_embd]);
        let err_of = |rank: usize| {
            let (a, b) = fit_low_rank(&row_of, n_ff, n_embd, &cov, n_tok as f64, rank).unwrap();
            let (mut err, mut norm) = (0f64, 0f64);
            for x in xs.chunks_exact(n_embd) {
                let z: Vec<f32> = (0..rank)
                    .map(|k| (0..n_embd).map(|j| a[k * n_embd + j] * x[j]).sum())
                    .collect();
                for i in 0..n_ff {
                    let g: f32 = (0..n_embd).map(|j| w[i * n_embd + j] * x[j]).sum();
                    let est: f32 = (0..rank).map(|k| b[i * rank + k] * z[k]).sum();
                    err += ((g - est) as f64).powi(2);
                    norm += (g as f64).powi(2);
                }
            }
            (err / norm).sqrt()
        };
        let exact = err_of(r);
        assert!(
            exact < 1e-3,
            "rank-{r} fit of a rank-{r} matrix: relative error {exact}"
        );
        let short = err_of(r - 1);
        assert!(
            short > 0.05,
            "a rank-{} fit cannot be exact: relative error {short}",
            r - 1
        );
    }
}
