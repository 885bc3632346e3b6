//! Every SIMD tier against the scalar reference kernels, on every tier this CPU has (AVX2 and
//! AVX-512 on x86-64, NEON and dotprod on aarch64; only scalar elsewhere, where this is a no-op).
//!
//! Two kinds of data:
//! * exact: every scale is 0, ±0.5, ±1 or ±2 and activation quants are small, so each block's
//!   integer sum times its scales, and the whole row sum, are exactly representable in f32 — any
//!   tier computing the same integer block sums must give bit-identical results;
//! * random: random quants and scales including zero, negative, subnormal and ±65504 f16 values;
//!   results must agree within 1e-5 relative to Σ|terms| (the sum of the magnitudes of what is
//!   added up, which bounds the rounding of any summation order).
//!
//! Activation quants stay in [-127, 127], as `quantize_activations` produces them (the x86 sign
//! trick for signed×signed products relies on it).

mod common;

use common::rng::Rng;
use sparsetop_engine::quant::{
    available_tiers, dequantize_row, float_kernels_for, kernels_for, Tier,
};
use sparsetop_engine::GgmlType;

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

fn f16_bits(v: f32) -> u16 {
    half::f16::from_f32(v).to_bits()
}

/// A scale for the given mode: in exact mode one of 0, ±0.5, ±1, ±2; otherwise anything finite,
/// with zero, negative, subnormal and ±65504 values well represented.
fn scale(rng: &mut Rng, exact: bool) -> f32 {
    if exact {
        return [0.0, 0.5, -0.5, 1.0, -1.0, 2.0, -2.0][rng.below(7) as usize];
    }
    let sign = if rng.below(2) == 0 { 1.0 } else { -1.0 };
    match rng.below(10) {
        0 => 0.0,
        1 => sign * 65504.0,
        2 => half::f16::from_bits(rng.range(1, 0x3ff) as u16).to_f32() * sign, // subnormal
        3 => sign * 6.1e-5 * (1.0 + rng.f32()),
        _ => sign * (0.0005 + rng.f32() * 2.0),
    }
}

/// Byte offsets of a weight block's f16 scales and which one multiplies the quants (`d`).
fn scale_offsets(t: GgmlType) -> (&'static [usize], usize) {
    use GgmlType as T;
    match t {
        T::Q4_0 | T::Q5_0 | T::Q8_0 => (&[0], 0),
        T::Q4_1 | T::Q5_1 | T::Q4_K | T::Q5_K => (&[0, 2], 0),
        T::Q2_K => (&[80, 82], 80),
        T::Q3_K => (&[108], 108),
        T::Q6_K => (&[208], 208),
        _ => (&[], 0),
    }
}

/// A random weight row of `nb` blocks.
fn weights(rng: &mut Rng, t: GgmlType, nb: usize, exact: bool, zero: bool) -> Vec<u8> {
    let (bs, ts) = t.block_geometry();
    let mut w = vec![0u8; nb * ts];
    if zero {
        return w;
    }
    rng.fill(&mut w);
    match t {
        GgmlType::F32 => {
            for c in w.chunks_exact_mut(4) {
                let v = if exact {
                    rng.range(-8, 8) as f32
                } else {
                    (rng.f32() - 0.5) * 2f32.powi(rng.range(-20, 20) as i32)
                };
                c.copy_from_slice(&v.to_le_bytes());
            }
        }
        GgmlType::F16 => {
            for c in w.chunks_exact_mut(2) {
                let v = if exact {
                    rng.range(-8, 8) as f32
                } else {
                    scale(rng, false)
                };
                c.copy_from_slice(&f16_bits(v).to_le_bytes());
            }
        }
        GgmlType::BF16 => {
            for c in w.chunks_exact_mut(2) {
                let v = if exact {
                    rng.range(-8, 8) as f32
                } else {
                    (rng.f32() - 0.5) * 2f32.powi(rng.range(-30, 30) as i32)
                };
                c.copy_from_slice(&((v.to_bits() >> 16) as u16).to_le_bytes());
            }
        }
        _ => {
            let (offs, _) = scale_offsets(t);
            for b in w.chunks_exact_mut(ts) {
                for &o in offs {
                    let v = f16_bits(scale(rng, exact));
                    b[o..o + 2].copy_from_slice(&v.to_le_bytes());
                }
            }
        }
    }
    let _ = bs;
    w
}

/// A random activation row in format `t` for `nb` weight blocks of `n` elements in total.
fn activations(rng: &mut Rng, t: GgmlType, n: usize, exact: bool) -> Vec<u8> {
    use GgmlType as T;
    let (bs, ts) = t.block_geometry();
    let mut a = vec![0u8; n / bs * ts];
    let q = |rng: &mut Rng| {
        if exact {
            rng.range(-8, 8) as i8
        } else {
            rng.range(-127, 127) as i8
        }
    };
    match t {
        T::F32 | T::F16 | T::BF16 => return weights(rng, t, n, exact, false),
        T::Q8_0 | T::Q8_1 => {
            let off = if t == T::Q8_0 { 2 } else { 4 };
            for b in a.chunks_exact_mut(ts) {
                let d = half::f16::from_f32(scale(rng, exact)).to_f32();
                let mut sum = 0i32;
                for x in &mut b[off..] {
                    let v = q(rng);
                    sum += v as i32;
                    *x = v as u8;
                }
                b[0..2].copy_from_slice(&f16_bits(d).to_le_bytes());
                if t == T::Q8_1 {
                    // Clamped where d·Σq overflows an f16 (a huge d with a skewed block): the kernels
                    // take `s` as given, and a clamped |s| stays below Σ|a|, the bound used.
                    let s = (d * sum as f32).clamp(-65504.0, 65504.0);
                    b[2..4].copy_from_slice(&f16_bits(s).to_le_bytes());
                }
            }
        }
        T::Q8_K => {
            for b in a.chunks_exact_mut(ts) {
                let d: f32 = if exact {
                    [0.5f32, -0.5, 1.0, -1.0][rng.below(4) as usize]
                } else {
                    match rng.below(8) {
                        0 => 0.0,
                        1 => -(0.001 + rng.f32()),
                        _ => 0.001 + rng.f32() * 10.0,
                    }
                };
                b[..4].copy_from_slice(&d.to_le_bytes());
                let mut qs = [0i8; 256];
                for (x, v) in b[4..260].iter_mut().zip(&mut qs) {
                    *v = q(rng);
                    *x = *v as u8;
                }
                for (g, s) in qs.chunks_exact(16).zip(b[260..].chunks_exact_mut(2)) {
                    let sum: i32 = g.iter().map(|&v| v as i32).sum();
                    s.copy_from_slice(&(sum as i16).to_le_bytes());
                }
            }
        }
        _ => unreachable!("{t}"),
    }
    a
}

fn dequant(t: GgmlType, b: &[u8], n: usize) -> Vec<f32> {
    let mut out = vec![0f32; n];
    dequantize_row(t, b, &mut out).unwrap();
    out
}

/// Σ|terms| of a weight row against an activation row: per element |d-part|·|a| + |offset|·|a|,
/// the offsets (mins) found by dequantizing with the `d` scales zeroed.
fn magnitude(t: GgmlType, w: &[u8], a: &[u8], n: usize) -> f64 {
    let wd = dequant(t, w, n);
    let ad = dequant(t.vec_dot_type(), a, n);
    let (offs, d_at) = scale_offsets(t);
    let off = if offs.len() == 2 {
        let mut z = w.to_vec();
        for b in z.chunks_exact_mut(t.type_size()) {
            b[d_at..d_at + 2].fill(0);
        }
        dequant(t, &z, n)
    } else {
        vec![0f32; n]
    };
    (0..n)
        .map(|i| {
            let (wi, oi, ai) = (wd[i] as f64, off[i] as f64, ad[i] as f64);
            ((wi - oi).abs() + oi.abs()) * ai.abs()
        })
        .sum()
}

fn check(what: &str, got: f32, want: f32, mag: f64, exact: bool) {
    if exact {
        assert_eq!(got.to_bits(), want.to_bits(), "{what}: {got} vs {want}");
    } else {
        let err = (got as f64 - want as f64).abs();
        assert!(
            err <= 1e-5 * mag + 1e-30,
            "{what}: {got} vs scalar {want} (|diff| {err:e}, Σ|terms| {mag:e})"
        );
    }
}

fn simd_tiers() -> impl Iterator<Item = Tier> {
    available_tiers()
        .iter()
        .copied()
        .filter(|&t| t != Tier::Scalar)
}

#[test]
fn vec_dot_and_dot_multi_match_scalar() {
    let mut rng = Rng::new(1);
    for tier in simd_tiers() {
        for t in WEIGHT_TYPES {
            let k = kernels_for(t, tier).unwrap();
            let s = kernels_for(t, Tier::Scalar).unwrap();
            let bs = t.block_size();
            let counts: &[usize] = if bs == 1 {
                &[1, 3, 7, 8, 17, 64, 100, 576, 1536]
            } else if bs == 32 {
                &[1, 2, 3, 5, 18, 48, 131]
            } else {
                &[1, 2, 3, 6, 11]
            };
            for &nb in counts {
                let n = nb * bs;
                for case in 0..6 {
                    let exact = case % 2 == 0 && (bs > 1 || n <= 4096) && nb <= 3 * 256 / bs;
                    let zero = case == 5;
                    let what = format!("{t} {tier} n={n} case={case}");
                    // An unaligned start, as rows come from an mmap at any offset.
                    let mut wbuf = vec![0u8; 1];
                    wbuf.extend(weights(&mut rng, t, nb, exact, zero));
                    let w = &wbuf[1..];
                    let a = activations(&mut rng, t.vec_dot_type(), n, exact);
                    let want = (s.vec_dot)(n, w, &a);
                    let got = (k.vec_dot)(n, w, &a);
                    let mag = magnitude(t, w, &a, n);
                    check(&format!("{what} vec_dot"), got, want, mag, exact);

                    // Batched: 1..=9 activation rows, a stride longer than the row, unaligned.
                    let rows = 1 + (case + nb) % 9;
                    let rb = a.len();
                    let stride = rb + 1 + rng.below(40) as usize;
                    let mut abuf = vec![0u8; (rows - 1) * stride + rb];
                    let mut acts = Vec::new();
                    for j in 0..rows {
                        let aj = activations(&mut rng, t.vec_dot_type(), n, exact);
                        abuf[j * stride..j * stride + rb].copy_from_slice(&aj);
                        acts.push(aj);
                    }
                    let mut out = vec![f32::NAN; rows];
                    k.dot_multi(n, w, &abuf, stride, &mut out);
                    for (j, aj) in acts.iter().enumerate() {
                        let want = (s.vec_dot)(n, w, aj);
                        let mag = magnitude(t, w, aj, n);
                        check(
                            &format!("{what} dot_multi row {j}/{rows}"),
                            out[j],
                            want,
                            mag,
                            exact,
                        );
                    }
                }
            }
        }
    }
}

/// Full batches of eight rows twice over plus a remainder, as prefill calls it.
#[test]
fn dot_multi_more_than_eight_rows() {
    let mut rng = Rng::new(2);
    for tier in simd_tiers() {
        for t in WEIGHT_TYPES {
            let k = kernels_for(t, tier).unwrap();
            let s = kernels_for(t, Tier::Scalar).unwrap();
            let n = 2 * 256;
            let w = weights(&mut rng, t, n / t.block_size(), true, false);
            let rb = t.vec_dot_type().row_bytes(n as u64).unwrap() as usize;
            let rows = 19;
            let mut abuf = Vec::new();
            for _ in 0..rows {
                abuf.extend(activations(&mut rng, t.vec_dot_type(), n, true));
            }
            let mut out = vec![0f32; rows];
            k.dot_multi(n, &w, &abuf, rb, &mut out);
            for (j, &o) in out.iter().enumerate() {
                let want = (s.vec_dot)(n, &w, &abuf[j * rb..]);
                check(&format!("{t} {tier} row {j}"), o, want, 0.0, true);
            }
        }
    }
}

#[test]
fn dequantize_is_bit_exact() {
    let mut rng = Rng::new(3);
    for tier in simd_tiers() {
        for t in WEIGHT_TYPES {
            let k = kernels_for(t, tier).unwrap();
            let s = kernels_for(t, Tier::Scalar).unwrap();
            for nb in [1, 3, 8] {
                let n = nb * t.block_size();
                let w = weights(&mut rng, t, nb, false, false);
                let (mut x, mut y) = (vec![0f32; n], vec![0f32; n]);
                (k.dequantize)(&w, &mut x);
                (s.dequantize)(&w, &mut y);
                for i in 0..n {
                    assert_eq!(x[i].to_bits(), y[i].to_bits(), "{t} {tier} element {i}");
                }
            }
        }
    }
}

#[test]
fn float_kernels_match_scalar() {
    let mut rng = Rng::new(4);
    let s = float_kernels_for(Tier::Scalar);
    for tier in simd_tiers() {
        let k = float_kernels_for(tier);
        for n in (0..=70).chain([576, 1536]) {
            for exact in [true, false] {
                let v = |rng: &mut Rng| {
                    if exact {
                        rng.range(-8, 8) as f32 * 0.5
                    } else {
                        (rng.f32() - 0.5) * 2f32.powi(rng.range(-10, 10) as i32)
                    }
                };
                let a: Vec<f32> = (0..n).map(|_| v(&mut rng)).collect();
                let b: Vec<f32> = (0..n).map(|_| v(&mut rng)).collect();
                let h: Vec<u16> = (0..n).map(|_| f16_bits(v(&mut rng))).collect();
                let hf: Vec<f32> = h
                    .iter()
                    .map(|&x| half::f16::from_bits(x).to_f32())
                    .collect();
                let what = format!("{tier} n={n} exact={exact}");

                let mag: f64 = a.iter().zip(&b).map(|(x, y)| (x * y).abs() as f64).sum();
                check(
                    &format!("{what} dot_f32"),
                    (k.dot_f32)(&a, &b),
                    (s.dot_f32)(&a, &b),
                    mag,
                    exact,
                );

                let mag: f64 = a.iter().zip(&hf).map(|(x, y)| (x * y).abs() as f64).sum();
                check(
                    &format!("{what} dot_f32_f16"),
                    (k.dot_f32_f16)(&a, &h),
                    (s.dot_f32_f16)(&a, &h),
                    mag,
                    exact,
                );

                // axpy rounds each element once per operation in every tier: bit-exact always.
                let alpha = v(&mut rng);
                let (mut y1, mut y2) = (b.clone(), b.clone());
                (k.axpy_f16)(&mut y1, alpha, &h);
                (s.axpy_f16)(&mut y2, alpha, &h);
                for i in 0..n {
                    assert_eq!(y1[i].to_bits(), y2[i].to_bits(), "{what} axpy_f16 [{i}]");
                }
            }
        }
    }
}

/// `SPARSETOP_SIMD=scalar` selects the scalar tier: this test re-runs itself in a child process
/// with the variable set (the active tier is fixed once per process).
#[test]
fn env_var_forces_scalar_tier() {
    use sparsetop_engine::quant::choose_tier;
    let avail = available_tiers();
    let best = *avail.last().unwrap();
    assert_eq!(choose_tier(None, avail), (best, None));
    assert_eq!(choose_tier(Some(""), avail), (best, None));
    assert_eq!(choose_tier(Some("scalar"), avail).0, Tier::Scalar);
    for &t in avail {
        assert_eq!(choose_tier(Some(t.name()), avail), (t, None));
    }
    // A tier the CPU lacks (or a typo) falls back to the best one, with a warning naming it.
    let (t, w) = choose_tier(Some("avx9000"), avail);
    assert_eq!(t, best);
    assert!(w.unwrap().contains("avx9000"));
    let (t, w) = choose_tier(Some("dotprod"), &[Tier::Scalar, Tier::Avx2]);
    assert_eq!(t, Tier::Avx2);
    assert!(w.unwrap().contains("dotprod"));
    assert_eq!(Tier::from_name("scalar"), Some(Tier::Scalar));
}
