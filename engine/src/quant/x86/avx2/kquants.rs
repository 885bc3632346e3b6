//! AVX2 k-quant dot products against Q8_K.
