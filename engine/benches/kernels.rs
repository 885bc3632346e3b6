//! Dot-product kernel throughput: one activation row against a weight matrix larger than L2, as a
//! decode step's matmul, for every supported weight type at every tier this CPU has, on 1 and 2
//! threads. Throughput is in weight bytes, so criterion reports how close a kernel gets to memory
//! bandwidth.
//!
//! Also the sparse FFN's down-projection kernel `down_nib4`, on one layer of SmolLM2-135M's shape
//! (576 output rows, 1536 neurons in 48 blocks of 32, about half of each block active): per block
//! the active neurons' 4-bit `down` columns (the model's own quants, packed with `pack_nibbles`)
//! summed and scaled once with the block's f16 scales, as a decode step does (see
//! `sparse::down_cols`); throughput in column and scale bytes read.
//!
//! `cargo bench -p sparsetop-engine --bench kernels` (filter with e.g. `-- Q4_1/avx512` or
//! `-- down_nib4`).

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use sparsetop_engine::quant::{
    available_tiers, float_kernels_for, kernels_for, pack_nibbles, quantize_activations,
};
use sparsetop_engine::threadpool::ThreadPool;
use sparsetop_engine::GgmlType;
use std::time::Duration;

/// Matrix columns (a multiple of every block size) and the weight bytes aimed for: beyond L2 and
/// L3, as a decode step streams the whole model from memory.
const COLS: usize = 1536;
const TARGET_BYTES: usize = 64 << 20;

const TYPES: [GgmlType; 13] = [
    GgmlType::Q4_1,
    GgmlType::Q8_0,
    GgmlType::Q4_K,
    GgmlType::Q4_0,
    GgmlType::Q5_0,
    GgmlType::Q5_1,
    GgmlType::Q2_K,
    GgmlType::Q3_K,
    GgmlType::Q5_K,
    GgmlType::Q6_K,
    GgmlType::F16,
    GgmlType::BF16,
    GgmlType::F32,
];

/// Random bytes with the f16 scales of quantized blocks replaced by small finite values, so no
/// kernel meets NaN or infinity (which would not change the timing, but keeps results sane).
fn weights(t: GgmlType, rows: usize) -> Vec<u8> {
    let mut s = 0x1234_5678_9abc_def1u64;
    let mut w: Vec<u8> = (0..rows * t.row_bytes(COLS as u64).unwrap() as usize)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            s as u8
        })
        .collect();
    // Clearing the top exponent bits of every other byte keeps f16/bf16 values finite.
    if matches!(t, GgmlType::F16 | GgmlType::BF16) {
        for b in w.iter_mut().skip(1).step_by(2) {
            *b &= 0x3f;
        }
    } else if t == GgmlType::F32 {
        for b in w.iter_mut().skip(3).step_by(4) {
            *b &= 0x3f;
        }
    } else {
        for b in w.iter_mut().skip(1).step_by(2) {
            *b &= 0x3b;
        }
    }
    w
}

fn bench(c: &mut Criterion) {
    let pools = [ThreadPool::new(1).unwrap(), ThreadPool::new(2).unwrap()];
    let x: Vec<f32> = (0..COLS)
        .map(|i| ((i * 7919) % 1000) as f32 / 500.0 - 1.0)
        .collect();
    for t in TYPES {
        let rb = t.row_bytes(COLS as u64).unwrap() as usize;
        let rows = TARGET_BYTES / rb;
        let w = weights(t, rows);
        let vdt = t.vec_dot_type();
        let mut a = vec![0u8; vdt.row_bytes(COLS as u64).unwrap() as usize];
        quantize_activations(vdt, &x, &mut a);
        let mut g = c.benchmark_group(format!("{t}"));
        g.throughput(Throughput::Bytes(w.len() as u64))
            .sample_size(10)
            .warm_up_time(Duration::from_millis(300))
            .measurement_time(Duration::from_secs(2));
        for &tier in available_tiers() {
            let k = kernels_for(t, tier).unwrap();
            for pool in &pools {
                let id = BenchmarkId::new(tier.name(), format!("{}t", pool.n_threads()));
                let (w, a) = (&w, &a);
                g.bench_function(id, |b| {
                    b.iter(|| {
                        // Contiguous row ranges per chunk, as the engine's matmul.
                        let chunks = pool.n_threads() * 8;
                        let per = rows.div_ceil(chunks);
                        let sink = std::sync::atomic::AtomicU32::new(0);
                        pool.for_each_chunk(chunks, &|_, c| {
                            let mut acc = 0f32;
                            for r in c * per..((c + 1) * per).min(rows) {
                                acc += (k.vec_dot)(COLS, &w[r * rb..(r + 1) * rb], a);
                            }
                            sink.fetch_add(acc.to_bits() & 1, std::sync::atomic::Ordering::Relaxed);
                        });
                        sink.into_inner()
                    })
                });
            }
        }
        g.finish();
    }
}

/// SmolLM2-135M's FFN: `down` output rows (n_embd), blocks of 32 neurons (n_ff = 1536).
const DOWN_ROWS: usize = 576;
const DOWN_BLOCKS: usize = 48;

/// One block of 32 neurons in the `down_nib4` benchmark: its scales (`d` then `m`, f16 bits), the
/// active neurons' packed columns and coefficients, and their sum.
struct DownBlock {
    scales: Vec<u16>,
    cols: Vec<Vec<u8>>,
    coef: Vec<f32>,
    sum: f32,
}

/// The top 24 bits of a random word as a value uniform in [-1, 1).
fn unit(x: u64) -> f32 {
    (x >> 40) as f32 / (1u64 << 23) as f32 - 1.0
}

fn bench_down_nib4(c: &mut Criterion) {
    let mut s = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = move || {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        s
    };
    let blocks: Vec<DownBlock> = (0..DOWN_BLOCKS)
        .map(|_| {
            let scales = (0..2 * DOWN_ROWS)
                .map(|_| half::f16::from_f32(unit(next()) * 0.05).to_bits())
                .collect();
            // Each of the 32 neurons active with probability 1/2: about 16 per block.
            let active = (0..32).filter(|_| next() & 1 == 1).count();
            let cols = (0..active)
                .map(|_| {
                    let q: Vec<u8> = (0..DOWN_ROWS).map(|_| (next() & 0x0F) as u8).collect();
                    let mut col = vec![0u8; DOWN_ROWS / 2];
                    pack_nibbles(&q, &mut col);
                    col
                })
                .collect();
            let coef: Vec<f32> = (0..active).map(|_| unit(next()) * 2.0).collect();
            let sum = coef.iter().sum();
            DownBlock {
                scales,
                cols,
                coef,
                sum,
            }
        })
        .collect();
    let col_refs: Vec<Vec<&[u8]>> = blocks
        .iter()
        .map(|b| b.cols.iter().map(|c| c.as_slice()).collect())
        .collect();
    let bytes: usize = blocks
        .iter()
        .map(|b| 2 * b.scales.len() + b.cols.len() * DOWN_ROWS / 2)
        .sum();
    let mut g = c.benchmark_group(format!("down_nib4/n{DOWN_ROWS}"));
    g.throughput(Throughput::Bytes(bytes as u64))
        .sample_size(20)
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(1));
    for &tier in available_tiers() {
        let fk = float_kernels_for(tier);
        let mut out = vec![0f32; DOWN_ROWS];
        g.bench_function(tier.name(), |b| {
            b.iter(|| {
                for (blk, cols) in blocks.iter().zip(&col_refs) {
                    (fk.down_nib4)(&mut out, &blk.scales, cols, &blk.coef, blk.sum);
                }
                out[0]
            })
        });
    }
    g.finish();
}

criterion_group!(benches, bench, bench_down_nib4);
criterion_main!(benches);
