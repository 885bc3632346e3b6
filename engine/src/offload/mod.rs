//! Flash offload: running a model whose FFN weights do not fit the memory budget.
//!
//! Attention, norms and embeddings stay resident (they are read in full for every token), while
//! the FFN — most of a model's bytes, and with activation sparsity only partly read per token — is
//! read on demand from a separate file laid out for it: the neuron bundle ([`bundle`]). There, each
//! neuron's gate row, up row and down column are stored side by side, so one read brings in
//! everything a firing neuron needs, and neurons are sorted hot-first, so the neurons that fire
//! together most often share pages.

pub mod bundle;
