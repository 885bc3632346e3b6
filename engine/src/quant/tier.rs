//! Instruction-set tiers and runtime dispatch.
//!
//! One binary runs everywhere (a Termux phone, an old laptop, a server): the best tier the CPU
//! supports is detected once and cached, and every kernel table is picked for it. The environment
//! variable `SPARSETOP_SIMD` forces a lower tier (`scalar`, `avx2`, `avx512`, `neon`, `dotprod`) so
//! the test suite can run every tier's kernels on one machine; naming a tier the CPU lacks falls back
//! to the best available one, with a warning.

use std::io::Write;
use std::sync::OnceLock;

/// A set of instructions the kernels may use, ordered from least to most capable per architecture.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Tier {
    /// Portable Rust: the reference every other tier is tested against.
    Scalar,
    /// x86-64 with AVX2, FMA and F16C.
    Avx2,
    /// x86-64 with AVX-512 F/BW/VL/VNNI (on top of the AVX2 set).
    Avx512,
    /// aarch64 Advanced SIMD (every aarch64 CPU).
    Neon,
    /// aarch64 with the dot-product extension (`sdot`).
    Dotprod,
}

impl Tier {
    pub fn name(self) -> &'static str {
        match self {
            Tier::Scalar => "scalar",
            Tier::Avx2 => "avx2",
            Tier::Avx512 => "avx512",
            Tier::Neon => "neon",
            Tier::Dotprod => "dotprod",
        }
    }

    pub fn from_name(s: &str) -> Option<Tier> {
        [
            Tier::Scalar,
            Tier::Avx2,
            Tier::Avx512,
            Tier::Neon,
            Tier::Dotprod,
        ]
        .into_iter()
        .find(|t| t.name() == s)
    }

    /// Whether this CPU can run the tier.
    pub fn is_available(self) -> bool {
        available_tiers().contains(&self)
    }
}

impl std::fmt::Display for Tier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Every tier this CPU can run, lowest first (always starts with `Scalar`).
pub fn available_tiers() -> &'static [Tier] {
    static TIERS: OnceLock<Vec<Tier>> = OnceLock::new();
    TIERS.get_or_init(|| {
        #[allow(unused_mut)]
        let mut v = vec![Tier::Scalar];
        #[cfg(target_arch = "x86_64")]
        {
            if std::arch::is_x86_feature_detected!("avx2")
                && std::arch::is_x86_feature_detected!("fma")
                && std::arch::is_x86_feature_detected!("f16c")
            {
                v.push(Tier::Avx2);
                if std::arch::is_x86_feature_detected!("avx512f")
                    && std::arch::is_x86_feature_detected!("avx512bw")
                    && std::arch::is_x86_feature_detected!("avx512vl")
                    && std::arch::is_x86_feature_detected!("avx512vnni")
                {
                    v.push(Tier::Avx512);
                }
            }
        }
        #[cfg(target_arch = "aarch64")]
        {
            if std::arch::is_aarch64_feature_detected!("neon") {
                v.push(Tier::Neon);
                if std::arch::is_aarch64_feature_detected!("dotprod") {
                    v.push(Tier::Dotprod);
                }
            }
        }
        v
    })
}

/// The tier in use: the best available, or the one `SPARSETOP_SIMD` asks for if it is available.
pub fn active_tier() -> Tier {
    static ACTIVE: OnceLock<Tier> = OnceLock::new();
    *ACTIVE.get_or_init(|| {
        let request = std::env::var("SPARSETOP_SIMD").ok();
        let (tier, warning) = choose_tier(request.as_deref(), available_tiers());
        if let Some(w) = warning {
            // Best effort: `eprintln!` would panic with stderr unwritable.
            let _ = writeln!(std::io::stderr(), "sparsetop: {w}");
        }
        tier
    })
}

/// The tier to use given a request (the value of `SPARSETOP_SIMD`) and the tiers this CPU has:
/// the request if available, else the best tier, with a warning saying why.
pub fn choose_tier(request: Option<&str>, available: &[Tier]) -> (Tier, Option<String>) {
    let best = *available.last().unwrap_or(&Tier::Scalar);
    match request {
        None | Some("") => (best, None),
        Some(s) => {
            match Tier::from_name(s) {
                Some(t) if available.contains(&t) => (t, None),
                _ => (
                    best,
                    Some(format!(
                    "SPARSETOP_SIMD={s} is not available on this CPU (available: {}); using {best}",
                    available.iter().map(|t| t.name()).collect::<Vec<_>>().join(", ")
                )),
                ),
            }
        }
    }
}
