//! Parsers for the numbers people type: command-line flags (as clap `value_parser`s, so a bad
//! value is refused at parse time, with clap's usual message and exit code 2, before a model is
//! opened or a calibration started) and the chat's slash commands, which share them so a value is
//! judged the same way wherever it is typed. The ranges that are engine policy (sparsity, thread
//! count, sampler settings) are asked of the engine rather than repeated here.

use sparsetop_engine::sampler::SamplerParams;

/// A thread count: 0 (one per core) up to the engine's limit of a few threads per CPU.
pub fn threads(s: &str) -> Result<usize, String> {
    let n: usize = s.trim().parse().map_err(|_| {
        format!("'{s}' is not a thread count: use a whole number (0 = one per core)")
    })?;
    match sparsetop_engine::threadpool::check_thread_count(n) {
        Some(why) => Err(why),
        None => Ok(n),
    }
}

/// A share of FFN neurons to skip: 0 (dense, exact) to the engine's most.
pub fn sparsity(s: &str) -> Result<f32, String> {
    use sparsetop_engine::sparse::level;
    let x = finite::<f32>(s, &format!("a number from 0 to {}", level::MAX_LEVEL))?;
    level::check_level(x).map_err(|e| e.to_string())?;
    Ok(x)
}

/// A whole number of at least 1 (batch sizes, repetitions, token counts).
pub fn at_least_one(s: &str) -> Result<usize, String> {
    match s.trim().parse::<usize>() {
        Ok(n) if n >= 1 => Ok(n),
        _ => Err(format!("'{s}' is not a whole number of at least 1")),
    }
}

/// Replay speed bounds: below 1/100 of the recorded pace a recording of a minute takes hours,
/// and the scaled times of very small speeds overflow; above 1000 everything arrives at once.
pub const MIN_SPEED: f64 = 0.01;
pub const MAX_SPEED: f64 = 1000.0;

/// A replay speed (1 = as recorded, 2 = twice as fast).
pub fn speed(s: &str) -> Result<f64, String> {
    let range = format!("a number from {MIN_SPEED} to {MAX_SPEED} (1 = as recorded)");
    let x = finite::<f64>(s, &range)?;
    if !(MIN_SPEED..=MAX_SPEED).contains(&x) {
        return Err(format!("speed {x} is out of range: use {range}"));
    }
    Ok(x)
}

/// Frames per second the UI may draw.
pub const MAX_FPS: u32 = 240;

/// `--fps`: 1 to [`MAX_FPS`].
pub fn fps(s: &str) -> Result<u32, String> {
    match s.trim().parse::<u32>() {
        Ok(n) if (1..=MAX_FPS).contains(&n) => Ok(n),
        _ => Err(format!(
            "'{s}' is not a frame rate: use a whole number from 1 to {MAX_FPS}"
        )),
    }
}

/// Bounds of `--tick-rate` in milliseconds: sampling /proc faster than 20 ms costs more than it
/// shows; slower than a minute the CPU panel would stand still.
pub const MIN_TICK_MS: u64 = 20;
pub const MAX_TICK_MS: u64 = 60_000;

/// `--tick-rate`: milliseconds between samples of CPU and memory.
pub fn tick_rate(s: &str) -> Result<u64, String> {
    match s.trim().parse::<u64>() {
        Ok(n) if (MIN_TICK_MS..=MAX_TICK_MS).contains(&n) => Ok(n),
        _ => Err(format!(
            "'{s}' is not a tick rate: use a whole number of milliseconds from {MIN_TICK_MS} to {MAX_TICK_MS}"
        )),
    }
}

/// `--temp`: any finite number (0 or less = greedy), as the sampler takes it.
pub fn temp(s: &str) -> Result<f32, String> {
    sampler_field(s, |p, x| p.temp = x)
}

/// `--top-p`: 0 to 1 (1 = off).
pub fn top_p(s: &str) -> Result<f32, String> {
    sampler_field(s, |p, x| p.top_p = x)
}

/// `--min-p`: 0 to 1 (0 = off).
pub fn min_p(s: &str) -> Result<f32, String> {
    sampler_field(s, |p, x| p.min_p = x)
}

/// `--repeat-penalty`: a positive number (1 = off).
pub fn repeat_penalty(s: &str) -> Result<f32, String> {
    sampler_field(s, |p, x| p.repeat_penalty = x)
}

/// Parses one sampler setting and has the sampler's own validation judge it (in otherwise
/// default settings), so its ranges are stated once, in the engine.
fn sampler_field(s: &str, set: impl Fn(&mut SamplerParams, f32)) -> Result<f32, String> {
    let x: f32 = s
        .trim()
        .parse()
        .map_err(|_| format!("'{s}' is not a number"))?;
    let mut p = SamplerParams::default();
    set(&mut p, x);
    p.validate().map_err(|e| e.to_string())?;
    Ok(x)
}

/// A finite number (NaN and infinities are not numbers a person means).
fn finite<T: std::str::FromStr + Into<f64> + Copy>(s: &str, what: &str) -> Result<T, String> {
    match s.trim().parse::<T>() {
        Ok(x) if x.into().is_finite() => Ok(x),
        _ => Err(format!("'{s}' is not {what}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thread_counts() {
        let max = sparsetop_engine::threadpool::max_threads();
        assert_eq!(threads("0"), Ok(0));
        assert_eq!(threads("1"), Ok(1));
        assert_eq!(threads(&max.to_string()), Ok(max));
        for bad in [max + 1, 10_000, 100_000] {
            let e = threads(&bad.to_string()).unwrap_err();
            assert!(e.contains(&format!("at most {max}")), "{e}");
        }
        for bad in ["-1", "two", "", "1.5", "99999999999999999999999"] {
            assert!(threads(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn sparsities() {
        assert_eq!(sparsity("0"), Ok(0.0));
        assert_eq!(sparsity("0.5"), Ok(0.5));
        assert_eq!(sparsity("0.9"), Ok(0.9));
        for bad in ["1.5", "-0.1", "0.91", "1"] {
            assert!(sparsity(bad).unwrap_err().contains("out of range"), "{bad}");
        }
        for bad in ["NaN", "inf", "-inf", "half", ""] {
            assert!(
                sparsity(bad).unwrap_err().contains("is not a number"),
                "{bad}"
            );
        }
    }

    #[test]
    fn speeds() {
        assert_eq!(speed("1"), Ok(1.0));
        assert_eq!(speed("0.5"), Ok(0.5));
        assert_eq!(speed("1000"), Ok(1000.0));
        for bad in [
            "0", "-1", "0.001", "1e9", "nan", "NaN", "inf", "-inf", "fast",
        ] {
            assert!(speed(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn rates() {
        assert_eq!(fps("30"), Ok(30));
        assert!(fps("0").is_err() && fps("241").is_err() && fps("-1").is_err());
        assert_eq!(tick_rate("250"), Ok(250));
        assert!(tick_rate("0").is_err() && tick_rate("19").is_err() && tick_rate("60001").is_err());
        assert_eq!(at_least_one("1"), Ok(1));
        assert!(at_least_one("0").is_err() && at_least_one("-3").is_err());
    }

    #[test]
    fn sampler_settings_follow_the_sampler() {
        assert_eq!(temp("0"), Ok(0.0));
        assert_eq!(temp("-1"), Ok(-1.0));
        assert!(temp("nan").is_err() && temp("inf").is_err());
        assert_eq!(top_p("1"), Ok(1.0));
        assert!(top_p("1.5").unwrap_err().contains("--top-p"));
        assert!(top_p("-0.1").is_err() && top_p("nan").is_err());
        assert!(min_p("2").unwrap_err().contains("--min-p"));
        assert!(repeat_penalty("0")
            .unwrap_err()
            .contains("--repeat-penalty"));
        assert!(repeat_penalty("inf").is_err());
        assert_eq!(repeat_penalty("1.1"), Ok(1.1));
    }
}
