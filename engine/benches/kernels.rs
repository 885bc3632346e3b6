//! Dot-product kernel throughput: one activation row against a weight matrix larger than L2, as a
//! decode step's matmul, for every supported weight type at every tier this CPU has, on 1 and 2
//! threads. Throughput is in weight bytes, so criterion reports how close a kernel gets to memory
//! bandwidth.
//!
//! Also the sparse FFN's down-projection kernels (`axpy_q8_0`, `axpy_q8_0_x4`): every row of a
//! neuron-major Q8_0 copy of `down` added to one f32 accumulator, as a decode step does for its
//! active neurons; throughput in row bytes.
//!
//! `cargo bench -p sparsetop-engine --bench kernels` (filter with e.g. `-- Q4_1/avx512` or
//! `-- axpy`).

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use sparsetop_engine::quant::{
    available_tiers, float_kernels_for, kernels_for, quantize_activations,
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

/// Neurons (rows of the `down` copy) per axpy benchmark: SmolLM2-135M's n_ff. At n_embd 576 the
/// rows (940 KB) sit in L2 as in decode; at 4096 (6.7 MB) they stream from L3.
const AXPY_ROWS: usize = 1536;

fn bench_axpy(c: &mut Criterion) {
    for n in [576usize, 4096] {
        let rb = GgmlType::Q8_0.row_bytes(n as u64).unwrap() as usize;
        let src: Vec<f32> = (0..AXPY_ROWS * n)
            .map(|i| ((i * 7919) % 1000) as f32 / 500.0 - 1.0)
            .collect();
        let mut rows = vec![0u8; AXPY_ROWS * rb];
        for (r, dst) in rows.chunks_exact_mut(rb).enumerate() {
            quantize_activations(GgmlType::Q8_0, &src[r * n..(r + 1) * n], dst);
        }
        let alphas: Vec<f32> = (0..AXPY_ROWS).map(|i| (i % 7) as f32 * 0.1 - 0.3).collect();
        let row = |i: usize| &rows[i * rb..(i + 1) * rb];
        for x4 in [false, true] {
            let name = if x4 { "axpy_q8_0_x4" } else { "axpy_q8_0" };
            let mut g = c.benchmark_group(format!("{name}/n{n}"));
            g.throughput(Throughput::Bytes(rows.len() as u64))
                .sample_size(20)
                .warm_up_time(Duration::from_millis(300))
                .measurement_time(Duration::from_secs(1));
            for &tier in available_tiers() {
                let fk = float_kernels_for(tier);
                let mut y = vec![0f32; n];
                g.bench_function(tier.name(), |b| {
                    b.iter(|| {
                        if x4 {
                            for i in (0..AXPY_ROWS).step_by(4) {
                                let a = [alphas[i], alphas[i + 1], alphas[i + 2], alphas[i + 3]];
                                let r = [row(i), row(i + 1), row(i + 2), row(i + 3)];
                                (fk.axpy_q8_0_x4)(&mut y, a, r);
                            }
                        } else {
                            for (i, &a) in alphas.iter().enumerate() {
                                (fk.axpy_q8_0)(&mut y, a, row(i));
                            }
                        }
                        y[0]
                    })
                });
            }
            g.finish();
        }
    }
}

criterion_group!(benches, bench, bench_axpy);
criterion_main!(benches);
