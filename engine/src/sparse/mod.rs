//! Activation sparsity: calibration profiles and the sparse decode FFN (PowerInfer's "compute
//! only the neurons that fire").

pub mod calibrate;
pub mod down_cols;
pub mod ffn;
pub mod histogram;
pub mod level;
pub mod profile;
pub mod u16_table;

pub use ffn::{SparseFfn, SparseStats, SparsityConfig};
pub use profile::ProfileData;
