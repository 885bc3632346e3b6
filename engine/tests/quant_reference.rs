//! The quant kernels against outside references.
//!
//! * Dequantization and activation quantization are compared bit for bit with fixtures made by
//!   `fixtures/gen_quant_fixtures.py` from gguf-py (llama.cpp's Python package) and numpy
//!   transcriptions of ggml's reference quantizers.
//! * Every `vec_dot` is checked against an f64 dot product of the dequantized weights and the
//!   dequantized activations, on random blocks with zeros and extreme scales and several lengths.

use half::f16;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use sparsetop_engine::quant::{dequantize_row, kernels, quantize_activations};
use sparsetop_engine::GgmlType;
use std::path::PathBuf;

const ROWS: usize = 3;
const COLS: usize = 512;

const WEIGHT_TYPES: [GgmlType; 13] = [
    GgmlType::F32,
    GgmlType::F16,
    GgmlType::BF16,
    GgmlType::Q4_0,
    GgmlType::Q4_1,
    GgmlType::Q5_0,
    GgmlType::Q5_1,
    GgmlType::Q8_0,
    GgmlType::Q2_K,
    GgmlType::Q3_K,
    GgmlType::Q4_K,
    GgmlType::Q5_K,
    GgmlType::Q6_K,
];

fn fixture(name: &str) -> Vec<u8> {
    let path: PathBuf = [env!("CARGO_MANIFEST_DIR"), "tests/fixtures/quant", name]
        .iter()
        .collect();
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn f32s(bytes: &[u8]) -> Vec<f32> {
    bytes
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
        .collect()
}

fn row_bytes(t: GgmlType, n: usize) -> usize {
    t.row_bytes(n as u64).unwrap() as usize
}

/// Asserts two float slices are identical bit for bit, naming the first difference.
fn assert_bits_eq(what: &str, got: &[f32], want: &[f32]) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    let diffs = got
        .iter()
        .zip(want)
        .filter(|(g, w)| g.to_bits() != w.to_bits())
        .count();
    if let Some(i) = (0..got.len()).find(|&i| got[i].to_bits() != want[i].to_bits()) {
        panic!(
            "{what}: {diffs} of {} differ; first at {i}: got {} ({:#010x}), want {} ({:#010x})",
            got.len(),
            got[i],
            got[i].to_bits(),
            want[i],
            want[i].to_bits()
        );
    }
}

#[test]
fn dequantize_matches_gguf_py_bit_for_bit() {
    for t in WEIGHT_TYPES {
        let raw = fixture(&format!("{t}.bin"));
        let want = f32s(&fixture(&format!("{t}.f32")));
        assert_eq!(raw.len(), ROWS * row_bytes(t, COLS), "{t}: fixture size");
        assert_eq!(want.len(), ROWS * COLS, "{t}: fixture size");

        // Row by row through the convenience function...
        let rb = row_bytes(t, COLS);
        let mut got = vec![0f32; ROWS * COLS];
        for (src, dst) in raw.chunks_exact(rb).zip(got.chunks_exact_mut(COLS)) {
            dequantize_row(t, src, dst).unwrap();
        }
        assert_bits_eq(&format!("{t} by row"), &got, &want);

        // ...and the whole tensor at once through the kernel table.
        let mut got = vec![f32::NAN; ROWS * COLS];
        (kernels(t).unwrap().dequantize)(&raw, &mut got);
        assert_bits_eq(&format!("{t} whole"), &got, &want);
    }
}

#[test]
fn dequantize_row_rejects_bad_sizes_and_types() {
    let mut dst = [0f32; 32];
    assert!(dequantize_row(GgmlType::Q4_0, &[0u8; 17], &mut dst).is_err());
    assert!(dequantize_row(GgmlType::Q4_0, &[0u8; 18], &mut dst[..31]).is_err());
    assert!(dequantize_row(GgmlType::Q4_0, &[0u8; 18], &mut dst).is_ok());
    assert!(dequantize_row(GgmlType::IQ2_XXS, &[0u8; 66], &mut [0f32; 256]).is_err());
    assert!(kernels(GgmlType::IQ4_NL).is_err());
    assert!(kernels(GgmlType::Q8_K).is_err());
}

/// Our activation quantizer against a fixture, row by row.
fn check_activation_fixture(t: GgmlType, input: &str, expected: &str) -> (Vec<f32>, Vec<u8>) {
    let x = f32s(&fixture(input));
    let want = fixture(expected);
    let mut got = vec![0u8; row_bytes(t, x.len())];
    assert_eq!(got.len(), want.len(), "{t}: fixture size");
    // In three calls, so block boundaries inside a call are exercised along with call boundaries.
    let third = x.len() / t.block_size() / 3 * t.block_size();
    let (mut src, mut dst) = (&x[..], &mut got[..]);
    for n in [third, third, x.len() - 2 * third] {
        let (s, s_rest) = src.split_at(n);
        let (d, d_rest) = dst.split_at_mut(row_bytes(t, n));
        quantize_activations(t, s, d);
        (src, dst) = (s_rest, d_rest);
    }
    assert!(src.is_empty() && dst.is_empty());
    (x, got.into_iter().zip(want).map(|(g, w)| g ^ w).collect())
}

#[test]
fn q8_activations_match_reference_quantizers() {
    for (t, file) in [
        (GgmlType::Q8_0, "act_Q8_0.bin"),
        (GgmlType::Q8_1, "act_Q8_1.bin"),
        (GgmlType::Q8_K, "act_Q8_K.bin"),
    ] {
        let (_, xor) = check_activation_fixture(t, "act.f32", file);
        let ts = t.type_size();
        if let Some(i) = xor.iter().position(|&b| b != 0) {
            let n = xor.iter().filter(|&&b| b != 0).count();
            panic!(
                "{t}: {n} bytes differ, first in block {} at byte {}",
                i / ts,
                i % ts
            );
        }
    }
}

#[test]
fn float_activations_match_numpy_and_ggml() {
    // BF16: gguf-py's transcription of ggml_compute_fp32_to_bf16, NaNs included.
    let (_, xor) = check_activation_fixture(GgmlType::BF16, "act_special.f32", "act_BF16.bin");
    assert!(xor.iter().all(|&b| b == 0), "BF16 differs");

    // F16: numpy rounds to nearest even like ggml; only NaN payloads may differ (numpy keeps a
    // signalling NaN's payload, ggml and the half crate set the quiet bit), so NaNs are checked as NaNs.
    let x = f32s(&fixture("act_special.f32"));
    let want = fixture("act_F16.bin");
    let mut got = vec![0u8; x.len() * 2];
    quantize_activations(GgmlType::F16, &x, &mut got);
    for (i, v) in x.iter().enumerate() {
        let g = u16::from_le_bytes([got[2 * i], got[2 * i + 1]]);
        let w = u16::from_le_bytes([want[2 * i], want[2 * i + 1]]);
        if v.is_nan() {
            assert!(
                f16::from_bits(g).is_nan(),
                "F16 element {i}: {g:#06x} not NaN"
            );
        } else {
            assert_eq!(g, w, "F16 element {i} ({v:e})");
        }
    }

    // F32 is a byte copy.
    let mut got = vec![0u8; x.len() * 4];
    quantize_activations(GgmlType::F32, &x, &mut got);
    assert_eq!(got, fixture("act_special.f32"));
}

/// Properties of the Q8 formats on the fixture activations: every quant is within half a step of
/// its input, Q8_1's `s` is fp16(d · Σq), Q8_K's `bsums` are the group sums and its largest
/// magnitude maps to -127.
#[test]
fn q8_activation_properties() {
    let x = f32s(&fixture("act.f32"));
    for t in [GgmlType::Q8_0, GgmlType::Q8_1] {
        let mut q = vec![0u8; row_bytes(t, x.len())];
        quantize_activations(t, &x, &mut q);
        let off = if t == GgmlType::Q8_0 { 2 } else { 4 };
        for (xb, qb) in x.chunks_exact(32).zip(q.chunks_exact(t.type_size())) {
            let amax = xb.iter().fold(0f32, |m, v| m.max(v.abs()));
            let d = amax / 127.0;
            let stored = f16::from_le_bytes([qb[0], qb[1]]);
            assert_eq!(stored, f16::from_f32(d), "{t}: d");
            let qs: Vec<i32> = qb[off..].iter().map(|&b| b as i8 as i32).collect();
            for (&v, &qi) in xb.iter().zip(&qs) {
                assert!(qi.abs() <= 127, "{t}: quant {qi}");
                let err = (v as f64 - qi as f64 * d as f64).abs();
                assert!(
                    err <= d as f64 * 0.5 * (1.0 + 1e-5),
                    "{t}: {v} -> {qi} · {d}"
                );
            }
            if t == GgmlType::Q8_1 {
                let sum: i32 = qs.iter().sum();
                let s = f16::from_le_bytes([qb[2], qb[3]]);
                assert_eq!(s, f16::from_f32(sum as f32 * d), "Q8_1: s");
            }
        }
    }

    let mut q = vec![0u8; row_bytes(GgmlType::Q8_K, x.len())];
    quantize_activations(GgmlType::Q8_K, &x, &mut q);
    for (xb, qb) in x.chunks_exact(256).zip(q.chunks_exact(292)) {
        let d = f32::from_le_bytes(qb[..4].try_into().unwrap());
        let qs: Vec<i32> = qb[4..260].iter().map(|&b| b as i8 as i32).collect();
        for (g, pair) in qb[260..].chunks_exact(2).enumerate() {
            let bsum = i16::from_le_bytes([pair[0], pair[1]]) as i32;
            assert_eq!(
                bsum,
                qs[g * 16..g * 16 + 16].iter().sum::<i32>(),
                "Q8_K bsums"
            );
        }
        let imax = (0..256).fold(0, |m, i| if xb[i].abs() > xb[m].abs() { i } else { m });
        if xb[imax] == 0.0 {
            assert_eq!(d, 0.0);
            assert!(qs.iter().all(|&q| q == 0));
            continue;
        }
        assert_eq!(qs[imax], -127, "Q8_K: the largest magnitude maps to -127");
        for (&v, &qi) in xb.iter().zip(&qs) {
            let err = (v as f64 - qi as f64 * d as f64).abs();
            assert!(
                err <= d.abs() as f64 * 0.5 * (1.0 + 1e-5),
                "Q8_K: {v} -> {qi} · {d}"
            );
        }
    }
}

/// Byte offsets of the f16 scale fields of each block type (ggml's block structs).
fn f16_fields(t: GgmlType) -> &'static [usize] {
    use GgmlType::*;
    match t {
        Q4_0 | Q5_0 | Q8_0 => &[0],
        Q4_1 | Q5_1 | Q4_K | Q5_K => &[0, 2],
        Q2_K => &[80, 82],
        Q3_K => &[108],
        Q6_K => &[208],
        _ => &[],
    }
}

/// A random f16 scale: mostly small, sometimes zero, negative, subnormal or the f16 extremes.
fn scale(rng: &mut StdRng) -> f16 {
    const EXTREMES: [f32; 8] = [0.0, -0.0, 65504.0, -65504.0, 6e-8, -6e-8, 1.0, -1.0];
    if rng.random_bool(0.2) {
        f16::from_f32(EXTREMES[rng.random_range(0..EXTREMES.len())])
    } else {
        f16::from_f32((rng.random::<f32>() - 0.5) * 0.05)
    }
}

/// `n` random weights of type `t`, as raw blocks.
fn random_weights(rng: &mut StdRng, t: GgmlType, n: usize) -> Vec<u8> {
    let mut w = vec![0u8; row_bytes(t, n)];
    match t {
        GgmlType::F32 | GgmlType::F16 | GgmlType::BF16 => {
            let x: Vec<f32> = (0..n)
                .map(|i| match i % 11 {
                    0 => 0.0,
                    1 => 1000.0 * (rng.random::<f32>() - 0.5),
                    _ => rng.random::<f32>() - 0.5,
                })
                .collect();
            quantize_activations(t, &x, &mut w);
        }
        _ => {
            rng.fill(&mut w[..]);
            for block in w.chunks_exact_mut(t.type_size()) {
                for &off in f16_fields(t) {
                    block[off..off + 2].copy_from_slice(&scale(rng).to_le_bytes());
                }
            }
        }
    }
    w
}

/// `n` random activations in one of several shapes: all zero, sparse, one scale per 32, wild.
fn random_activations(rng: &mut StdRng, n: usize, kind: usize) -> Vec<f32> {
    let mut block_scale = 1f32;
    (0..n)
        .map(|i| {
            if i % 32 == 0 {
                // Up to e^7 per element: Q8_1's s = fp16(d·Σq) stays finite (ggml lets it overflow).
                block_scale = (rng.random::<f32>() * 17.0 - 10.0).exp();
            }
            let u = rng.random::<f32>() * 2.0 - 1.0;
            match kind {
                0 => 0.0,
                1 if rng.random_bool(0.8) => 0.0,
                1 => u,
                2 => u * block_scale,
                _ => u * (rng.random::<f32>() * 14.0 - 8.0).exp(),
            }
        })
        .collect()
}

/// For Q8_1 activations, the exact difference between what `vec_dot` uses for the offset term
/// (Σ_b m_b · s_b, with s rounded to f16) and what dequantized data gives (Σ_b m_b · d_b · Σq_b).
fn q8_1_offset_correction(t: GgmlType, w: &[u8], a: &[u8]) -> f64 {
    if !a.len().is_multiple_of(36) || !matches!(t, GgmlType::Q4_1 | GgmlType::Q5_1) {
        return 0.0;
    }
    let f = |b: &[u8], at: usize| f16::from_le_bytes([b[at], b[at + 1]]).to_f64();
    w.chunks_exact(t.type_size())
        .zip(a.chunks_exact(36))
        .map(|(wb, ab)| {
            let sum: i32 = ab[4..].iter().map(|&q| q as i8 as i32).sum();
            let s = f(ab, 2);
            // s is fp16(d·Σq) from the unrounded d, `exact` uses fp16(d): within two f16 roundings
            // (relative for normals, 2^-24 absolute steps for subnormals).
            let exact = f(ab, 0) * sum as f64;
            let bound = exact.abs() * 2f64.powi(-10) + (sum.abs() + 1) as f64 * 2f64.powi(-24);
            assert!((s - exact).abs() <= bound, "s = {s:e}, d·Σq = {exact:e}");
            f(wb, 2) * (s - exact)
        })
        .sum()
}

#[test]
fn vec_dot_matches_dequantized_dot_product() {
    let mut rng = StdRng::seed_from_u64(0x5eed_0001);
    let mut checked = 0;
    for t in WEIGHT_TYPES {
        let k = kernels(t).unwrap();
        let act = k.vec_dot_type;
        let bs = act.block_size().max(t.block_size());
        let lengths: &[usize] = if bs == 1 {
            &[1, 7, 32, 333, 4096]
        } else if bs == 32 {
            &[32, 96, 224, 512, 4096]
        } else {
            &[256, 768, 1792]
        };
        for &n in lengths {
            for kind in 0..4 {
                for _ in 0..3 {
                    let w = random_weights(&mut rng, t, n);
                    let x = random_activations(&mut rng, n, kind);
                    let mut a = vec![0u8; row_bytes(act, n)];
                    quantize_activations(act, &x, &mut a);

                    let mut wd = vec![0f32; n];
                    let mut ad = vec![0f32; n];
                    dequantize_row(t, &w, &mut wd).unwrap();
                    dequantize_row(act, &a, &mut ad).unwrap();
                    let mut want = 0f64;
                    let mut magnitude = 0f64;
                    for (&p, &q) in wd.iter().zip(&ad) {
                        want += p as f64 * q as f64;
                        magnitude += (p as f64 * q as f64).abs();
                    }
                    want += q8_1_offset_correction(t, &w, &a);

                    let got = (k.vec_dot)(n, &w, &a) as f64;
                    // Relative to the sum of |terms|: cancellation makes |want| itself no bound.
                    let tol = 1e-4 * magnitude.max(want.abs()) + 1e-35;
                    assert!(
                        (got - want).abs() <= tol,
                        "{t} n={n} kind={kind}: got {got:e}, want {want:e} (|terms| {magnitude:e})"
                    );
                    if kind == 0 {
                        assert_eq!(got, 0.0, "{t}: zero activations");
                    }
                    checked += 1;
                }
            }
        }
    }
    assert!(checked > 500);
}

/// The kernels read blocks at any byte offset: data comes from an mmap with no alignment promise.
#[test]
fn unaligned_inputs_give_the_same_results() {
    let mut rng = StdRng::seed_from_u64(7);
    for t in WEIGHT_TYPES {
        let k = kernels(t).unwrap();
        let n = 512;
        let w = random_weights(&mut rng, t, n);
        let x = random_activations(&mut rng, n, 2);
        let mut a = vec![0u8; row_bytes(k.vec_dot_type, n)];
        quantize_activations(k.vec_dot_type, &x, &mut a);
        let (mut w1, mut a1) = (vec![0u8; w.len() + 1], vec![0u8; a.len() + 1]);
        w1[1..].copy_from_slice(&w);
        a1[1..].copy_from_slice(&a);
        let want = (k.vec_dot)(n, &w, &a);
        assert_eq!(
            (k.vec_dot)(n, &w1[1..], &a1[1..]).to_bits(),
            want.to_bits(),
            "{t}"
        );
        let (mut d0, mut d1) = (vec![0f32; n], vec![0f32; n]);
        (k.dequantize)(&w, &mut d0);
        (k.dequantize)(&w1[1..], &mut d1);
        assert_bits_eq(&format!("{t} unaligned"), &d1, &d0);
    }
}
