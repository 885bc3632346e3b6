//! `sparsetop replay FILE.jsonl [--speed X]`: plays a recording back through the same app, at the
//! recorded pace (scaled by the speed), with no model. For demos and for looking at a run again.

use super::feed::Feed;
use super::record::{Header, RecordLine};
use anyhow::{anyhow, Context};
use std::path::Path;
use std::time::Duration;
use tokio::sync::mpsc::UnboundedSender;

/// Reads a whole recording; an unreadable line is an error naming the file and line.
pub fn read(path: &Path) -> anyhow::Result<(Option<Header>, Vec<RecordLine>)> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the recording {}", path.display()))?;
    parse(&text, &path.display().to_string())
}

/// Parses a recording's text (`name` says where it came from in errors). Apart from [`read`] so
/// that the fuzz target (`fuzz/fuzz_targets/recording.rs`) runs exactly this code on its inputs.
pub fn parse(text: &str, name: &str) -> anyhow::Result<(Option<Header>, Vec<RecordLine>)> {
    let mut header = None;
    let mut lines = Vec::new();
    for (i, l) in text.lines().enumerate() {
        if l.trim().is_empty() {
            continue;
        }
        let r: RecordLine = serde_json::from_str(l)
            .map_err(|e| anyhow!("{name}:{}: not a sparsetop recording line: {e}", i + 1))?;
        if let Some(h) = &r.header {
            header.get_or_insert(h.clone());
        }
        lines.push(r);
    }
    Ok((header, lines))
}

/// Sends the lines' items at their recorded times divided by `speed`, then `ReplayEnd`. The
/// command line only lets through speeds in [`crate::value_parsers::speed`]'s range; any other
/// value plays at the recorded pace rather than freezing or panicking.
pub async fn play(lines: Vec<RecordLine>, speed: f64, tx: UnboundedSender<Feed>) {
    let speed = crate::value_parsers::speed(&speed.to_string()).unwrap_or(1.0);
    let start = tokio::time::Instant::now();
    for l in lines {
        let at = start + at_time(l.t, speed);
        tokio::time::sleep_until(at).await;
        if let Some(f) = l.feed() {
            if tx.send(f).is_err() {
                return;
            }
        }
    }
    let _ = tx.send(Feed::ReplayEnd);
}

/// When a line recorded at `t` seconds is due at `speed`: a damaged or hand-edited time
/// (negative, NaN, years away) is due at once, or in a day at most, never a panic.
fn at_time(t: f64, speed: f64) -> Duration {
    const DAY: f64 = 86_400.0;
    let secs = t / speed;
    Duration::from_secs_f64(if secs.is_nan() {
        0.0
    } else {
        secs.clamp(0.0, DAY)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_times_are_scaled_and_bounded() {
        assert_eq!(at_time(3.0, 2.0), Duration::from_millis(1500));
        assert_eq!(at_time(-1.0, 1.0), Duration::ZERO);
        assert_eq!(at_time(f64::NAN, 1.0), Duration::ZERO);
        assert_eq!(at_time(1e300, 0.01), Duration::from_secs(86_400));
        assert_eq!(at_time(f64::INFINITY, 1.0), Duration::from_secs(86_400));
    }

    /// Found by `fuzz/fuzz_targets/recording.rs`: a line whose time is past what a `Duration`
    /// holds (`"t": 1e300`, valid JSON) made `play` panic in `Duration::from_secs_f64`, ending the
    /// replay with the terminal in raw mode.
    #[test]
    fn a_time_past_any_duration_waits_instead_of_panicking() {
        use crate::tui::feed::ChatEvent;
        let text = "{\"t\":0.0,\"chat\":{\"kind\":\"user\",\"text\":\"hi\"}}\n\
                    {\"t\":1e300,\"chat\":{\"kind\":\"cleared\"}}\n";
        let (_, lines) = parse(text, "t.jsonl").unwrap();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap();
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let played = rt.block_on(async {
            tokio::time::timeout(Duration::from_millis(200), play(lines, 1.0, tx)).await
        });
        assert!(played.is_err(), "the far line is still waited for");
        assert!(matches!(
            rx.try_recv(),
            Ok(Feed::Chat(ChatEvent::User { .. }))
        ));
        assert!(rx.try_recv().is_err(), "the far line is not played early");
    }
}
