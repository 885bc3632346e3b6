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
    let mut header = None;
    let mut lines = Vec::new();
    for (i, l) in text.lines().enumerate() {
        if l.trim().is_empty() {
            continue;
        }
        let r: RecordLine = serde_json::from_str(l).map_err(|e| {
            anyhow!(
                "{}:{}: not a sparsetop recording line: {e}",
                path.display(),
                i + 1
            )
        })?;
        if let Some(h) = &r.header {
            header.get_or_insert(h.clone());
        }
        lines.push(r);
    }
    Ok((header, lines))
}

/// Sends the lines' items at their recorded times divided by `speed`, then `ReplayEnd`.
pub async fn play(lines: Vec<RecordLine>, speed: f64, tx: UnboundedSender<Feed>) {
    let speed = if speed.is_finite() && speed > 0.0 {
        speed
    } else {
        1.0
    };
    let start = tokio::time::Instant::now();
    for l in lines {
        let at = start + Duration::from_secs_f64((l.t / speed).max(0.0));
        tokio::time::sleep_until(at).await;
        if let Some(f) = l.feed() {
            if tx.send(f).is_err() {
                return;
            }
        }
    }
    let _ = tx.send(Feed::ReplayEnd);
}
