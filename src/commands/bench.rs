//! `sparsetop bench`: prompt-processing and generation throughput, measured like `llama-bench`.
//!
//! `ppN` evaluates N tokens as one prompt from an empty cache; `tgN` evaluates N tokens one at a
//! time from an empty cache (no sampling, so only the engine is timed). Token ids are pseudo-random
//! but fixed, so runs are comparable. One untimed warm-up run of each test comes first: the first
//! touches of the mapped weights and buffers would otherwise count against the first repetition.
//! With `-d N` every test starts after N cached tokens instead (filled once, untimed), as
//! `llama-bench -d` does.
//!
//! Each result also says how close it is to the machine's ceiling: the bytes a token must read
//! (see `model::traffic`), the GB/s that makes at the measured speed, and that as a share of the
//! read bandwidth probed at start with the same number of threads (`bandwidth`).

use super::common;
use super::ffn_report::FfnReport;
use crate::cli::BenchArgs;
use crate::output;
use sparsetop_engine::bandwidth::{self, Measurement};
use sparsetop_engine::model::traffic::Traffic;
use sparsetop_engine::sparse::SparsityConfig;
use sparsetop_engine::{Model, Session, SessionOptions};
use std::fmt::Write;
use std::sync::Arc;
use std::time::Instant;

/// Level 0 of the same profile: the dense path, for `--vs-dense`.
const DENSE: SparsityConfig = SparsityConfig {
    level: 0.0,
    predictor: false,
};

/// One row of results.
struct Row {
    threads: usize,
    test: String,
    tok_s: Vec<f64>,
    /// FFN weight bytes read per generated token, and what the sparse FFN did (tg rows).
    ffn: Option<FfnReport>,
    /// Under a budget: what the timed runs read and hit.
    offload: Option<serde_json::Value>,
    /// With `--vs-dense` (tg rows): dense decode timed just before each repetition.
    dense: Vec<f64>,
    /// Least bytes of memory read per token (weights, one embedding row, the KV cache).
    bytes_per_token: f64,
    /// Read bandwidth probed with this row's thread count, bytes/s.
    bandwidth: f64,
}

impl Row {
    fn new(threads: usize, test: String, bytes_per_token: f64, bandwidth: f64) -> Self {
        Row {
            threads,
            test,
            tok_s: vec![],
            ffn: None,
            offload: None,
            dense: vec![],
            bytes_per_token,
            bandwidth,
        }
    }

    fn mean(&self) -> f64 {
        mean(&self.tok_s)
    }

    /// Memory read at the measured speed, bytes/s.
    fn read_rate(&self) -> f64 {
        self.bytes_per_token * self.mean()
    }

    /// Share of the bandwidth bound reached, in percent.
    fn bound_pct(&self) -> f64 {
        100.0 * self.read_rate() / self.bandwidth
    }

    /// The row's speed and share of the bandwidth bound on stderr, as each test finishes.
    fn print_progress(&self) {
        diag!(
            "  t={} {}: {:.1} tok/s, {:.1} GB/s, {:.0}% of the bandwidth bound",
            self.threads,
            self.test,
            self.mean(),
            self.read_rate() / 1e9,
            self.bound_pct()
        );
    }

    /// Sparse over dense speed of each `--vs-dense` pair, and their median.
    fn ratios(&self) -> Option<(Vec<f64>, f64)> {
        if self.dense.is_empty() {
            return None;
        }
        let r: Vec<f64> = self
            .tok_s
            .iter()
            .zip(&self.dense)
            .map(|(s, d)| s / d)
            .collect();
        let mut sorted = r.clone();
        sorted.sort_by(f64::total_cmp);
        let n = sorted.len();
        let median = if n % 2 == 1 {
            sorted[n / 2]
        } else {
            (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0
        };
        Some((r, median))
    }

    fn sd(&self) -> f64 {
        let n = self.tok_s.len();
        if n < 2 {
            return 0.0;
        }
        let m = self.mean();
        (self.tok_s.iter().map(|x| (x - m) * (x - m)).sum::<f64>() / (n - 1) as f64).sqrt()
    }
}

fn mean(v: &[f64]) -> f64 {
    v.iter().sum::<f64>() / v.len() as f64
}

/// Offload counters (layer uses and neuron uses, hits, bytes read), to difference around a test.
struct OffloadCounts {
    hits: u64,
    uses: u64,
    bytes: u64,
}

impl OffloadCounts {
    fn of(session: &Session) -> Option<Self> {
        let o = session.offload()?;
        let st = o.stream.stats;
        let mut c = OffloadCounts {
            hits: st.resident_uses,
            uses: st.resident_uses + st.streamed_uses,
            bytes: st.bytes_read,
        };
        if let Some(n) = &o.neurons {
            let s = n.stats;
            c.hits += s.cache_hits();
            c.uses += s.hot_hits + s.cold_hits + s.misses;
            c.bytes += s.bytes_read;
        }
        Some(c)
    }

    fn since(&self, before: &Self, tokens: u64, session: &Session) -> serde_json::Value {
        let o = session.offload().expect("a budget is set");
        let uses = self.uses - before.uses;
        serde_json::json!({
            "budget": o.budget,
            "fixed_region": o.fixed.total(),
            "resident_layers": o.stream.resident_layers(),
            "hot_neurons_per_layer": o.neurons.as_ref().map(|n| n.hot_per_layer()),
            "hit_rate": if uses > 0 { (self.hits - before.hits) as f64 / uses as f64 } else { 0.0 },
            "bytes_read_per_token": (self.bytes - before.bytes) as f64 / tokens.max(1) as f64,
        })
    }
}

/// Deterministic token ids spread over the vocabulary (a 64-bit LCG).
fn tokens(n: usize, n_vocab: usize, seed: u64) -> Vec<u32> {
    let mut s = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    (0..n)
        .map(|_| {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((s >> 33) % n_vocab as u64) as u32
        })
        .collect()
}

/// Times `toks` as one prompt after the first `depth` cached tokens.
fn time_pp(session: &mut Session, depth: usize, toks: &[u32]) -> anyhow::Result<f64> {
    session.truncate(depth);
    let t0 = Instant::now();
    session.eval(toks, toks.len() - 1)?;
    Ok(toks.len() as f64 / t0.elapsed().as_secs_f64())
}

/// Times `toks` one at a time after the first `depth` cached tokens.
fn time_tg(session: &mut Session, depth: usize, toks: &[u32]) -> anyhow::Result<f64> {
    session.truncate(depth);
    let t0 = Instant::now();
    for &t in toks {
        session.eval(&[t], 0)?;
    }
    Ok(toks.len() as f64 / t0.elapsed().as_secs_f64())
}

pub fn run(a: &BenchArgs) -> anyhow::Result<()> {
    if a.repetitions == 0 {
        anyhow::bail!("-r must be at least 1");
    }
    if a.vs_dense && a.sparsity.sparsity <= 0.0 {
        anyhow::bail!("--vs-dense compares sparse decode with dense: set --sparsity above 0");
    }
    if a.vs_dense && a.budget.mem_budget.is_some() {
        anyhow::bail!(
            "--vs-dense is for decode in memory: under --mem-budget the two paths need different caches"
        );
    }
    // Each test runs from the depth on, so the longest of them must fit after it.
    let needed = a.depth + a.n_prompt.max(a.n_gen);
    if a.ctx_size > 0 && needed > a.ctx_size {
        anyhow::bail!(
            "-d {} and a test of {} tokens need a context of {needed} tokens, more than -c {}: raise -c or lower -d",
            a.depth,
            a.n_prompt.max(a.n_gen),
            a.ctx_size
        );
    }
    let path = crate::model_path::resolve(a.model.as_deref())?;
    // Probed before the model is loaded, so its buffer and the weights never compete for memory.
    let mut probe_threads: Vec<usize> = a
        .threads
        .iter()
        .map(|&t| common::threads_or_default(t))
        .collect();
    probe_threads.push(1);
    let probes = bandwidth::read_bandwidth(&probe_threads);
    diag!("  memory read bandwidth: {}", bandwidth_line(&probes));
    let model: Arc<Model> = common::load_model_for(
        &path,
        &a.budget,
        &a.sparsity,
        a.threads.first().copied().unwrap_or(0),
    )?;
    let n_vocab = model.config.n_vocab;
    let n_ctx = if a.ctx_size > 0 {
        a.ctx_size
    } else {
        (a.depth + a.n_prompt + a.n_gen).max(16)
    };
    if needed > model.context_len(n_ctx) {
        anyhow::bail!(
            "-d {} and a test of {} tokens need a context of {needed} tokens, more than the model's {}",
            a.depth,
            a.n_prompt.max(a.n_gen),
            model.config.n_ctx_train
        );
    }
    let pp = tokens(a.n_prompt, n_vocab, 1);
    let tg = tokens(a.n_gen, n_vocab, 2);
    let fill = tokens(a.depth, n_vocab, 3);
    let depth_label = |test: String| {
        if a.depth > 0 {
            format!("{test} @ d{}", a.depth)
        } else {
            test
        }
    };
    let mut rows = Vec::new();
    for &threads in &a.threads {
        let mut session = Session::new(
            model.clone(),
            &SessionOptions {
                n_ctx,
                n_batch: common::batch_for_budget(a.batch_size.max(1), &a.budget),
                n_threads: common::threads_or_default(threads),
                precision: a.precision,
            },
        )?;
        let threads = session.n_threads();
        common::apply_sparsity(&mut session, &path, &a.sparsity, threads)?;
        common::apply_budget(&mut session, &a.budget)?;
        common::apply_budget(&mut session, &a.budget)?;
        if a.depth > 0 {
            session.clear();
            session.eval(&fill, a.depth - 1)?;
        }
        let traffic = Traffic::of(&model, session.kv_bytes() as f64 / session.n_ctx() as f64);
        let bound = probes
            .iter()
            .find(|m| m.threads == threads)
            .map_or(f64::NAN, |m| m.bytes_per_s);
        if a.n_prompt > 0 {
            time_pp(&mut session, a.depth, &pp)?;
            let batch = common::batch_for_budget(a.batch_size.max(1), &a.budget);
            let mut row = Row::new(
                threads,
                depth_label(format!("pp{}", a.n_prompt)),
                traffic.per_token(a.depth, a.n_prompt, batch.min(session.n_ctx())),
                bound,
            );
            for _ in 0..a.repetitions {
                row.tok_s.push(time_pp(&mut session, a.depth, &pp)?);
            }
            row.print_progress();
            rows.push(row);
        }
        if a.n_gen > 0 {
            time_tg(&mut session, a.depth, &tg)?;
            let mut row = Row::new(
                threads,
                depth_label(format!("tg{}", a.n_gen)),
                traffic.per_token(a.depth, a.n_gen, 1),
                bound,
            );
            // With --vs-dense: the same session switched to level 0 (the dense path) and back.
            let pair = if a.vs_dense {
                let sp = session
                    .sparse()
                    .filter(|s| s.config.level > 0.0)
                    .ok_or_else(|| anyhow::anyhow!("--vs-dense: sparse decode is not on"))?;
                let p = (sp.profile.clone(), sp.config);
                session.set_sparsity(Some(p.0.clone()), DENSE)?;
                time_tg(&mut session, a.depth, &tg)?;
                session.set_sparsity(Some(p.0.clone()), p.1)?;
                Some(p)
            } else {
                None
            };
            session.reset_sparse_stats();
            let before = OffloadCounts::of(&session);
            for _ in 0..a.repetitions {
                if let Some((profile, sparse)) = &pair {
                    session.set_sparsity(Some(profile.clone()), DENSE)?;
                    row.dense.push(time_tg(&mut session, a.depth, &tg)?);
                    session.set_sparsity(Some(profile.clone()), *sparse)?;
                }
                row.tok_s.push(time_tg(&mut session, a.depth, &tg)?);
            }
            let ffn = FfnReport::of(&session);
            if ffn.tokens > 0 {
                // Sparse decode: the FFN read what was measured, not all of it.
                row.bytes_per_token = traffic
                    .with_ffn(ffn.gate + ffn.up + ffn.down + ffn.predictor)
                    .per_token(a.depth, a.n_gen, 1);
            }
            row.ffn = Some(ffn);
            if let (Some(b), Some(after)) = (before, OffloadCounts::of(&session)) {
                row.offload = Some(after.since(&b, (a.n_gen * a.repetitions) as u64, &session));
            }
            row.print_progress();
            if let Some((_, median)) = row.ratios() {
                diag!(
                    "  t={threads} {} vs dense: {median:.3}x (median of pairs)",
                    row.test
                );
            }
            rows.push(row);
        }
    }
    if a.json {
        let arr: Vec<_> = rows
            .iter()
            .map(|r| {
                serde_json::json!({
                    "threads": r.threads,
                    "test": r.test,
                    "depth": a.depth,
                    "bytes_per_token": r.bytes_per_token,
                    "read_gb_s": r.read_rate() / 1e9,
                    "bandwidth_gb_s": r.bandwidth / 1e9,
                    "bandwidth_1t_gb_s": probes.iter().find(|m| m.threads == 1).map(|m| m.bytes_per_s / 1e9),
                    "bound_pct": r.bound_pct(),
                    "bound_tok_s": r.bandwidth / r.bytes_per_token,
                    "tok_s": r.mean(),
                    "sd": r.sd(),
                    "samples": r.tok_s,
                    "precision": format!("{:?}", a.precision).to_lowercase(),
                    "simd": sparsetop_engine::quant::active_tier().name(),
                    "sparsity": a.sparsity.sparsity,
                    "predictor": a.sparsity.predictor,
                    "ffn": r.ffn.as_ref().map(FfnReport::json),
                    "offload": r.offload,
                    "vs_dense": r.ratios().map(|(ratios, median)| serde_json::json!({
                        "dense_samples": r.dense,
                        "ratios": ratios,
                        "median_ratio": median,
                    })),
                })
            })
            .collect();
        return output::stream(&format!("{}\n", serde_json::Value::Array(arr)));
    }
    let name = model
        .file
        .path()
        .and_then(|p| p.file_name())
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let size = format!(
        "{:.2} MiB",
        model.file.file_size() as f64 / (1024.0 * 1024.0)
    );
    let mut s = String::new();
    writeln!(
        s,
        "| model | size | simd | threads | test | t/s | MB/token | GB/s | % of bound |"
    )?;
    writeln!(
        s,
        "| --- | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: |"
    )?;
    for r in &rows {
        writeln!(
            s,
            "| {name} | {size} | {} | {} | {} | {:.2} ± {:.2} | {:.1} | {:.2} | {:.0}% |",
            sparsetop_engine::quant::active_tier(),
            r.threads,
            r.test,
            r.mean(),
            r.sd(),
            r.bytes_per_token / 1e6,
            r.read_rate() / 1e9,
            r.bound_pct()
        )?;
    }
    writeln!(
        s,
        "\nmemory read bandwidth (the bound; probed at start): {}",
        bandwidth_line(&probes)
    )?;
    for r in &rows {
        if let Some((ratios, median)) = r.ratios() {
            let (lo, hi) = ratios
                .iter()
                .fold((f64::MAX, f64::MIN), |(l, h), &x| (l.min(x), h.max(x)));
            let dense = mean(&r.dense);
            writeln!(
                s,
                "\n{} t={}: dense {dense:.2} tok/s in the same run; sparse/dense {median:.3}x (median of {} pairs, {lo:.3} to {hi:.3})",
                r.test,
                r.threads,
                ratios.len()
            )?;
        }
    }
    for r in rows.iter().filter_map(|r| r.ffn.as_ref().map(|f| (r, f))) {
        writeln!(s, "\n{} t={}: {}", r.0.test, r.0.threads, r.1.line())?;
    }
    for r in rows
        .iter()
        .filter_map(|r| r.offload.as_ref().map(|o| (r, o)))
    {
        writeln!(
            s,
            "{} t={}: under the budget, {:.1}% of FFN uses hit memory, {:.2} MB read per token",
            r.0.test,
            r.0.threads,
            100.0 * r.1["hit_rate"].as_f64().unwrap_or(0.0),
            r.1["bytes_read_per_token"].as_f64().unwrap_or(0.0) / 1e6
        )?;
    }
    output::stream(&s)
}

/// "13.1 GB/s with 1 thread, 24.0 GB/s with 2 threads".
fn bandwidth_line(probes: &[Measurement]) -> String {
    probes
        .iter()
        .map(|m| {
            format!(
                "{:.1} GB/s with {} thread{}",
                m.bytes_per_s / 1e9,
                m.threads,
                if m.threads == 1 { "" } else { "s" }
            )
        })
        .collect::<Vec<_>>()
        .join(", ")
}
