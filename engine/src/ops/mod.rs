//! The forward pass's building blocks: matrix products, attention, normalisation.

pub mod attention;
pub mod matmul;
pub mod norm;
pub mod per_thread;

/// Numeric mode of the forward pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Precision {
    /// Weights dequantized to f32, f32 activations, f32 KV cache: reproduces llama.cpp's F32
    /// reference to rounding noise.
    Exact,
    /// Activations quantized per block for integer dot products, f16 KV cache, as llama.cpp's
    /// default CPU path.
    #[default]
    Fast,
}

impl std::str::FromStr for Precision {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "exact" => Ok(Precision::Exact),
            "fast" => Ok(Precision::Fast),
            _ => Err(format!("unknown precision '{s}' (use exact or fast)")),
        }
    }
}

/// Dot product of two f32 slices with eight independent accumulators, so the compiler can keep
/// them in vector registers without reassociating a single sum.
#[inline]
pub fn dot_f32(a: &[f32], b: &[f32]) -> f32 {
    let n = a.len().min(b.len());
    let (a, b) = (&a[..n], &b[..n]);
    let mut acc = [0f32; 16];
    let ca = a.chunks_exact(16);
    let cb = b.chunks_exact(16);
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for i in 0..16 {
            acc[i] += x[i] * y[i];
        }
    }
    let mut tail = 0f32;
    for (x, y) in ra.iter().zip(rb) {
        tail += x * y;
    }
    let mut s = 0f32;
    for v in acc {
        s += v;
    }
    s + tail
}

/// `y += a * x`.
#[inline]
pub fn axpy(y: &mut [f32], a: f32, x: &[f32]) {
    for (y, x) in y.iter_mut().zip(x) {
        *y += a * x;
    }
}
