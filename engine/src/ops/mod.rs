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

/// `y += a * x`.
#[inline]
pub fn axpy(y: &mut [f32], a: f32, x: &[f32]) {
    for (y, x) in y.iter_mut().zip(x) {
        *y += a * x;
    }
}
