//! Tensor element types: dequantization, activation quantization and dot products.
//!
//! Each weight type gets a [`TypeKernels`] table. `vec_dot` takes the activation already converted to
//! the weight's `vec_dot_type` (Q8_0, Q8_1, Q8_K, F16, BF16 or F32), as llama.cpp does, so the
//! conversion happens once per activation row, not once per weight row.
