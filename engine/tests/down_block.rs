//! The sparse FFN's down-block kernels (`down_nib4`, `down_i8`) on every tier this CPU has:
//!
//! * every tier against the scalar reference, bit for bit (the contract of `quant::down_block`),
//!   over row counts with and without a trailing 32-row group and 0..=32 columns;
//! * the scalar `down_nib4` on columns packed with `pack_nibbles` against an f64 evaluation of
//!   `out + d·Σ a_j·q_j + m·Σ a_j`, so that the nibble layout itself is checked.

mod common;

use common::rng::Rng;
use half::f16;
use sparsetop_engine::quant::{available_tiers, float_kernels_for, pack_nibbles, Tier};

/// Row counts: one half group, one group, a group and a half, and model sizes (576 = 9 groups,
/// 960 = 15 groups, 2048 = 32 groups).
const ROWS: [usize; 6] = [32, 64, 96, 576, 960, 2048];
/// Column counts of a block of active neurons (at most 32).
const COLS: [usize; 6] = [0, 1, 3, 8, 17, 32];

/// A random f16 scale of a Q4_1/Q8_0 block's magnitude, now and then zero or tiny.
fn scale(rng: &mut Rng) -> u16 {
    let v = match rng.below(16) {
        0 => 0.0,
        1 => rng.unit() * 1e-6, // subnormal as an f16
        _ => rng.unit() * 0.05,
    };
    f16::from_f32(v).to_bits()
}

/// Random activations of the active neurons: mostly ordinary, some tiny, some large, and
/// `extra` NaNs after them that the kernels must not read.
fn coefficients(rng: &mut Rng, k: usize, extra: usize) -> Vec<f32> {
    let mut a: Vec<f32> = (0..k)
        .map(|_| match rng.below(10) {
            0 => rng.unit() * 1e-3,
            1 => rng.unit() * 40.0,
            _ => rng.unit() * 2.0,
        })
        .collect();
    a.resize(k + extra, f32::NAN);
    a
}

/// A non-zero starting `out`.
fn start(rng: &mut Rng, n: usize) -> Vec<f32> {
    (0..n).map(|_| rng.unit() * 3.0).collect()
}

fn assert_bits(tier: Tier, what: &str, n: usize, k: usize, got: &[f32], want: &[f32]) {
    for (r, (g, w)) in got.iter().zip(want).enumerate() {
        assert_eq!(
            g.to_bits(),
            w.to_bits(),
            "{tier} {what}: n={n} cols={k} row {r}: {g} != scalar {w}"
        );
    }
}

#[test]
fn down_nib4_every_tier_matches_scalar_bits() {
    let scalar = float_kernels_for(Tier::Scalar);
    let mut rng = Rng::new(1);
    for &n in &ROWS {
        for &k in &COLS {
            let cols: Vec<Vec<u8>> = (0..k).map(|_| rng.bytes(n / 2)).collect();
            let cols: Vec<&[u8]> = cols.iter().map(|c| c.as_slice()).collect();
            let scales: Vec<u16> = (0..2 * n).map(|_| scale(&mut rng)).collect();
            let extra = rng.below(3) as usize;
            let a = coefficients(&mut rng, k, extra);
            let s: f32 = a[..k].iter().sum();
            let out0 = start(&mut rng, n);
            let mut want = out0.clone();
            (scalar.down_nib4)(&mut want, &scales, &cols, &a, s);
            for &tier in available_tiers() {
                let mut got = out0.clone();
                (float_kernels_for(tier).down_nib4)(&mut got, &scales, &cols, &a, s);
                assert_bits(tier, "down_nib4", n, k, &got, &want);
            }
        }
    }
}

#[test]
fn down_i8_every_tier_matches_scalar_bits() {
    let scalar = float_kernels_for(Tier::Scalar);
    let mut rng = Rng::new(2);
    for &n in &ROWS {
        for &k in &COLS {
            // Every byte value, -128 included.
            let cols: Vec<Vec<u8>> = (0..k).map(|_| rng.bytes(n)).collect();
            let cols: Vec<&[u8]> = cols.iter().map(|c| c.as_slice()).collect();
            let scales: Vec<u16> = (0..n).map(|_| scale(&mut rng)).collect();
            let extra = rng.below(3) as usize;
            let a = coefficients(&mut rng, k, extra);
            let out0 = start(&mut rng, n);
            let mut want = out0.clone();
            (scalar.down_i8)(&mut want, &scales, &cols, &a);
            for &tier in available_tiers() {
                let mut got = out0.clone();
                (float_kernels_for(tier).down_i8)(&mut got, &scales, &cols, &a);
                assert_bits(tier, "down_i8", n, k, &got, &want);
            }
        }
    }
}

/// The scalar kernel on `pack_nibbles` columns against `out + d·Σ a_j·q_j + m·Σ a_j` in f64,
/// within f32 rounding of the terms' magnitudes: a wrong nibble (layout) is far outside that.
#[test]
fn scalar_down_nib4_matches_f64_reference() {
    let scalar = float_kernels_for(Tier::Scalar);
    let mut rng = Rng::new(3);
    for &n in &ROWS {
        for &k in &COLS {
            let quants: Vec<Vec<u8>> = (0..k)
                .map(|_| (0..n).map(|_| rng.below(16) as u8).collect())
                .collect();
            let cols: Vec<Vec<u8>> = quants
                .iter()
                .map(|q| {
                    let mut col = vec![0u8; n / 2];
                    pack_nibbles(q, &mut col);
                    col
                })
                .collect();
            let cols: Vec<&[u8]> = cols.iter().map(|c| c.as_slice()).collect();
            let scales: Vec<u16> = (0..2 * n).map(|_| scale(&mut rng)).collect();
            let a = coefficients(&mut rng, k, 0);
            let s: f32 = a.iter().sum();
            let out0 = start(&mut rng, n);
            let mut got = out0.clone();
            (scalar.down_nib4)(&mut got, &scales, &cols, &a, s);
            for r in 0..n {
                let d = f16::from_bits(scales[r]).to_f64();
                let m = f16::from_bits(scales[n + r]).to_f64();
                let (mut acc, mut mag) = (0f64, 0f64);
                for (q, &aj) in quants.iter().zip(&a) {
                    acc += aj as f64 * q[r] as f64;
                    mag += (aj as f64 * q[r] as f64).abs();
                }
                let want = out0[r] as f64 + d * acc + m * s as f64;
                let bound = out0[r].abs() as f64 + d.abs() * mag + (m * s as f64).abs();
                // k + 3 roundings of at most 2^-24 of the bound each.
                let err = (got[r] as f64 - want).abs();
                assert!(
                    err <= (k + 3) as f64 * f64::from(f32::EPSILON) / 2.0 * bound,
                    "n={n} cols={k} row {r}: {} vs f64 {want} (bound {bound})",
                    got[r]
                );
            }
        }
    }
}
