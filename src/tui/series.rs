//! A bounded time series: the last N values of one quantity, oldest first. Panels draw their
//! history charts from these; the bound keeps memory flat however long a chat runs.

use std::collections::VecDeque;

#[derive(Debug, Clone)]
pub struct Series {
    cap: usize,
    values: VecDeque<f64>,
}

impl Series {
    pub fn new(cap: usize) -> Self {
        Series {
            cap: cap.max(1),
            values: VecDeque::with_capacity(cap.max(1)),
        }
    }

    pub fn push(&mut self, v: f64) {
        if self.values.len() == self.cap {
            self.values.pop_front();
        }
        self.values.push_back(v);
    }

    pub fn last(&self) -> Option<f64> {
        self.values.back().copied()
    }

    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    pub fn max(&self) -> f64 {
        self.values.iter().copied().fold(0.0, f64::max)
    }

    pub fn mean(&self) -> Option<f64> {
        if self.values.is_empty() {
            None
        } else {
            Some(self.values.iter().sum::<f64>() / self.values.len() as f64)
        }
    }

    /// The newest `n` values, oldest first (fewer if the series is shorter).
    pub fn tail(&self, n: usize) -> impl Iterator<Item = f64> + '_ {
        self.values
            .iter()
            .skip(self.values.len().saturating_sub(n))
            .copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_only_the_newest_values() {
        let mut s = Series::new(3);
        for v in 1..=5 {
            s.push(v as f64);
        }
        assert_eq!(s.tail(10).collect::<Vec<_>>(), vec![3.0, 4.0, 5.0]);
        assert_eq!(s.tail(2).collect::<Vec<_>>(), vec![4.0, 5.0]);
        assert_eq!(s.last(), Some(5.0));
        assert_eq!(s.mean(), Some(4.0));
        assert_eq!(s.max(), 5.0);
    }
}
