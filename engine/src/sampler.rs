//! Choosing the next token from logits, with llama.cpp's samplers, defaults and order:
//! repetition penalty → top-k → top-p → min-p → temperature → random draw (greedy at temp ≤ 0).

use crate::error::{Error, Result};
use rand::{Rng, SeedableRng};
use std::collections::VecDeque;

/// Sampler settings; `Default` gives llama.cpp's defaults.
#[derive(Debug, Clone, PartialEq)]
pub struct SamplerParams {
    /// Temperature; 0 or less means greedy (always the most likely token).
    pub temp: f32,
    /// Keep the k most likely tokens (0 = all).
    pub top_k: usize,
    /// Keep the smallest set whose probability reaches p (1.0 = off).
    pub top_p: f32,
    /// Drop tokens less likely than min_p times the most likely one (0 = off).
    pub min_p: f32,
    /// Divide positive (multiply negative) logits of recently seen tokens by this (1.0 = off).
    pub repeat_penalty: f32,
    /// How many recent tokens the penalty looks at.
    pub repeat_last_n: usize,
    /// Seed of the random draw.
    pub seed: u64,
}

impl Default for SamplerParams {
    fn default() -> Self {
        SamplerParams {
            temp: 0.8,
            top_k: 40,
            top_p: 0.95,
            min_p: 0.05,
            repeat_penalty: 1.0,
            repeat_last_n: 64,
            seed: 0,
        }
    }
}

impl SamplerParams {
    /// Greedy decoding with no penalties.
    pub fn greedy() -> Self {
        SamplerParams {
            temp: 0.0,
            ..Default::default()
        }
    }

    /// Rejects settings outside their meaningful range.
    pub fn validate(&self) -> Result<()> {
        let bad = |what: &str| Err(Error::Invalid(what.to_string()));
        if !self.temp.is_finite() {
            return bad("--temp must be a finite number");
        }
        if !(0.0..=1.0).contains(&self.top_p) {
            return bad("--top-p must be between 0 and 1");
        }
        if !(0.0..=1.0).contains(&self.min_p) {
            return bad("--min-p must be between 0 and 1");
        }
        if !(self.repeat_penalty.is_finite() && self.repeat_penalty > 0.0) {
            return bad("--repeat-penalty must be a positive number");
        }
        Ok(())
    }
}

/// Stateful sampler: owns its random generator, the recent-token window and a candidate buffer
/// sized once for the vocabulary, so sampling allocates nothing.
pub struct Sampler {
    pub params: SamplerParams,
    rng: rand::rngs::StdRng,
    recent: VecDeque<u32>,
    cand: Vec<(u32, f32)>,
}

impl Sampler {
    pub fn new(params: SamplerParams, n_vocab: usize) -> Self {
        Sampler {
            rng: rand::rngs::StdRng::seed_from_u64(params.seed),
            // The window holds at most the tokens seen, so a huge `repeat_last_n` ("the whole
            // context") reserves no more than a typical window; the deque grows if it must.
            recent: VecDeque::with_capacity(params.repeat_last_n.min(4096) + 1),
            cand: Vec::with_capacity(n_vocab),
            params,
        }
    }

    /// Records a token as part of the sequence (prompt or generated), for the repetition penalty.
    pub fn accept(&mut self, tok: u32) {
        if self.params.repeat_last_n == 0 {
            return;
        }
        if self.recent.len() == self.params.repeat_last_n {
            self.recent.pop_front();
        }
        self.recent.push_back(tok);
    }

    /// Forgets the recent tokens (new conversation).
    pub fn reset(&mut self) {
        self.recent.clear();
    }

    /// Picks the next token.
    pub fn sample(&mut self, logits: &[f32]) -> u32 {
        let p = &self.params;
        self.cand.clear();
        self.cand
            .extend(logits.iter().enumerate().map(|(i, &l)| (i as u32, l)));
        if p.repeat_penalty != 1.0 {
            for (i, &t) in self.recent.iter().enumerate() {
                // Penalise each distinct token once, as llama.cpp does.
                if self.recent.iter().take(i).any(|&u| u == t) {
                    continue;
                }
                if let Some(c) = self.cand.get_mut(t as usize) {
                    c.1 = if c.1 > 0.0 {
                        c.1 / p.repeat_penalty
                    } else {
                        c.1 * p.repeat_penalty
                    };
                }
            }
        }
        if p.temp <= 0.0 {
            return argmax(&self.cand);
        }
        // Top-k: keep the k best, sorted descending.
        let by_logit = |a: &(u32, f32), b: &(u32, f32)| b.1.total_cmp(&a.1);
        let k = if p.top_k == 0 {
            self.cand.len()
        } else {
            p.top_k.min(self.cand.len())
        };
        if k < self.cand.len() {
            self.cand.select_nth_unstable_by(k - 1, by_logit);
            self.cand.truncate(k);
        }
        self.cand.sort_unstable_by(by_logit);
        // Top-p on the softmax of what is left.
        if p.top_p < 1.0 {
            let max = self.cand[0].1;
            let total: f64 = self.cand.iter().map(|c| ((c.1 - max) as f64).exp()).sum();
            let mut cum = 0.0;
            let mut keep = self.cand.len();
            for (i, c) in self.cand.iter().enumerate() {
                cum += ((c.1 - max) as f64).exp() / total;
                if cum >= p.top_p as f64 {
                    keep = i + 1;
                    break;
                }
            }
            self.cand.truncate(keep.max(1));
        }
        // Min-p: relative to the most likely token.
        if p.min_p > 0.0 {
            let floor = self.cand[0].1 + p.min_p.ln();
            let keep = self.cand.iter().take_while(|c| c.1 >= floor).count();
            self.cand.truncate(keep.max(1));
        }
        // Temperature, then draw.
        let max = self.cand[0].1;
        let mut total = 0f64;
        for c in self.cand.iter_mut() {
            c.1 = (((c.1 - max) / p.temp) as f64).exp() as f32;
            total += c.1 as f64;
        }
        let mut r = self.rng.random::<f64>() * total;
        for c in &self.cand {
            r -= c.1 as f64;
            if r <= 0.0 {
                return c.0;
            }
        }
        self.cand.last().map(|c| c.0).unwrap_or(0)
    }
}

/// Index of the largest logit (the first on ties, as llama.cpp's greedy sampler).
pub fn argmax(c: &[(u32, f32)]) -> u32 {
    let mut best = 0;
    for (i, x) in c.iter().enumerate() {
        if x.1 > c[best].1 {
            best = i;
        }
    }
    c.get(best).map(|x| x.0).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn logits() -> Vec<f32> {
        vec![1.0, 3.0, 2.0, -1.0, 2.9]
    }

    #[test]
    fn greedy_takes_max() {
        let mut s = Sampler::new(SamplerParams::greedy(), 5);
        assert_eq!(s.sample(&logits()), 1);
    }

    #[test]
    fn repeat_penalty_demotes_seen_tokens() {
        let mut s = Sampler::new(
            SamplerParams {
                repeat_penalty: 1.5,
                ..SamplerParams::greedy()
            },
            5,
        );
        s.accept(1);
        s.accept(1);
        // 3.0 / 1.5 = 2.0 < 2.9
        assert_eq!(s.sample(&logits()), 4);
    }

    #[test]
    fn a_huge_repeat_window_reserves_nothing_and_works() {
        // `--repeat-last-n 18446744073709551615` overflowed the capacity (a panic, or an
        // allocation failure aborting the process at 10^15).
        for n in [usize::MAX, 1 << 50] {
            let mut s = Sampler::new(
                SamplerParams {
                    repeat_penalty: 1.5,
                    repeat_last_n: n,
                    ..SamplerParams::greedy()
                },
                5,
            );
            s.accept(1);
            assert_eq!(s.sample(&logits()), 4);
        }
    }

    #[test]
    fn top_k_one_is_greedy() {
        let mut s = Sampler::new(
            SamplerParams {
                top_k: 1,
                seed: 7,
                ..Default::default()
            },
            5,
        );
        for _ in 0..50 {
            assert_eq!(s.sample(&logits()), 1);
        }
    }

    #[test]
    fn min_p_cuts_unlikely_tokens() {
        let mut s = Sampler::new(
            SamplerParams {
                min_p: 0.5,
                top_k: 0,
                top_p: 1.0,
                temp: 1.0,
                ..Default::default()
            },
            5,
        );
        for _ in 0..200 {
            let t = s.sample(&logits());
            assert!(t == 1 || t == 4, "token {t} should have been cut by min-p");
        }
    }

    #[test]
    fn same_seed_same_draws() {
        let p = SamplerParams {
            seed: 42,
            top_k: 0,
            top_p: 1.0,
            min_p: 0.0,
            temp: 1.5,
            ..Default::default()
        };
        let (mut a, mut b) = (Sampler::new(p.clone(), 5), Sampler::new(p, 5));
        let da: Vec<u32> = (0..100).map(|_| a.sample(&logits())).collect();
        let db: Vec<u32> = (0..100).map(|_| b.sample(&logits())).collect();
        assert_eq!(da, db);
        // A high temperature over five tokens must visit more than one.
        assert!(da.iter().any(|&t| t != da[0]));
    }

    #[test]
    fn top_p_keeps_at_least_one() {
        let mut s = Sampler::new(
            SamplerParams {
                top_p: 0.0,
                ..Default::default()
            },
            5,
        );
        assert_eq!(s.sample(&logits()), 1);
    }
}
