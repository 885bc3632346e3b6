//! RMS normalisation and the SwiGLU activation.

/// `out = x / rms(x) * w`, with the mean of squares accumulated in f64 as ggml does.
pub fn rms_norm(x: &[f32], w: &[f32], eps: f32, out: &mut [f32]) {
    let sum: f64 = x.iter().map(|&v| (v as f64) * (v as f64)).sum();
    let mean = (sum / x.len() as f64) as f32;
    let scale = 1.0 / (mean + eps).sqrt();
    for ((o, &v), &w) in out.iter_mut().zip(x).zip(w) {
        *o = v * scale * w;
    }
}

/// [`rms_norm`] of each `w.len()`-wide row of `x` into the same row of `out`.
pub fn rms_norm_rows(x: &[f32], w: &[f32], eps: f32, out: &mut [f32]) {
    let n = w.len();
    for (xr, or) in x.chunks_exact(n).zip(out.chunks_exact_mut(n)) {
        rms_norm(xr, w, eps, or);
    }
}

/// SiLU, x·σ(x), with [`exp`]: plain float arithmetic, so a loop of it vectorizes and a vector
/// lane returns the bits the scalar call does (no fused multiply-add, no libm call).
#[inline(always)]
pub fn silu(x: f32) -> f32 {
    x / (1.0 + exp(-x))
}

/// eˣ within 2 ulp for x ≥ −87 (Cephes' `expf`: x = n·ln2 + r with |r| ≤ ln2/2, a degree-6
/// polynomial for eʳ, 2ⁿ put into the exponent). Inputs are clamped to [−87, 88]: above, the
/// result is 1.65e38 rather than ∞ (SiLU of x < −88 is then x·6e−39, below 1e−34 in size,
/// rather than −0); below, e⁻⁸⁷ rather than a subnormal. NaN stays NaN.
///
/// libm's `expf` is a call per element that the compiler cannot vectorize: SwiGLU over a
/// 1536-neuron layer spent more time in it than in the down projection's memory traffic.
#[inline(always)]
pub fn exp(x: f32) -> f32 {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    const LN2_HI: f32 = 0.693_359_4;
    const LN2_LO: f32 = -2.121_944_4e-4;
    // Adding and subtracting 1.5·2²³ rounds to the nearest integer (ties to even) for |v| < 2²².
    const ROUND: f32 = 12_582_912.0;
    let x = x.clamp(-87.0, 88.0);
    let n = (x * LOG2E + ROUND) - ROUND;
    let r = (x - n * LN2_HI) - n * LN2_LO;
    let mut p = 1.987_569_1e-4;
    p = p * r + 1.398_199_9e-3;
    p = p * r + 8.333_452e-3;
    p = p * r + 4.166_579_6e-2;
    p = p * r + 1.666_666_5e-1;
    p = p * r + 0.5;
    let y = (p * (r * r) + r) + 1.0;
    // 2ⁿ for n in [−126, 127] (x's clamp keeps n there).
    y * f32::from_bits(((n as i32 + 127) as u32) << 23)
}

/// `gate = silu(gate) * up`, in place.
pub fn swiglu(gate: &mut [f32], up: &[f32]) {
    for (g, &u) in gate.iter_mut().zip(up) {
        *g = silu(*g) * u;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exp_is_within_two_ulp_of_f64() {
        let mut worst = 0f64;
        let mut x = -87.0f32;
        while x <= 88.0 {
            let want = (x as f64).exp();
            let got = exp(x) as f64;
            let ulp = (want as f32).abs() * f32::EPSILON;
            worst = worst.max((got - want).abs() / ulp as f64);
            x += 0.001_3;
        }
        assert!(worst <= 2.0, "worst error {worst} ulp");
    }

    #[test]
    fn silu_limits_and_nan() {
        assert_eq!(silu(0.0), 0.0);
        assert!(silu(-1000.0).abs() < 1e-30);
        assert_eq!(silu(1000.0), 1000.0);
        assert!(silu(f32::NAN).is_nan());
        assert!((silu(1.0) as f64 - 1.0 / (1.0 + (-1f64).exp())).abs() < 1e-7);
    }

    #[test]
    fn swiglu_lanes_match_scalar_calls() {
        let g: Vec<f32> = (0..1000).map(|i| (i as f32 - 500.0) * 0.037).collect();
        let u: Vec<f32> = (0..1000).map(|i| (i % 7) as f32 - 3.0).collect();
        let mut v = g.clone();
        swiglu(&mut v, &u);
        for i in 0..g.len() {
            assert_eq!(v[i].to_bits(), (silu(g[i]) * u[i]).to_bits(), "[{i}]");
        }
    }
}
