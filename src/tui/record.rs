//! `--record FILE.jsonl`: everything that drives the app (telemetry, chat text, host samples) as
//! JSON lines with the seconds since the start, for `sparsetop replay` and for measuring runs.
//!
//! ```text
//! {"t":0.0,"header":{"model":"SmolLM2 135M Instruct","sampler":"greedy","n_ctx":4096}}
//! {"t":1.52,"chat":{"kind":"user","text":"Hi"}}
//! {"t":1.61,"telemetry":{"type":"token","phase":"prefill","tokens":31,"micros":90210,"pos":31}}
//! {"t":1.75,"host":{"cpu":[97.0,95.1],"rss":141000000,"interval_s":0.25}}
//! ```

use super::feed::{ChatEvent, Feed};
use super::metrics::HostSample;
use anyhow::Context;
use serde::{Deserialize, Serialize};
use sparsetop_engine::safe_write::{Busy, InPlaceFile};
use sparsetop_engine::telemetry::Event;
use std::io::{BufWriter, Write};
use std::path::Path;
use std::time::Instant;

/// What the status line needs to show a recording as it was.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Header {
    pub model: String,
    pub sampler: String,
    pub n_ctx: usize,
}

/// One line of a recording: a time and exactly one of the other fields.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecordLine {
    pub t: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub header: Option<Header>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chat: Option<ChatEvent>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub telemetry: Option<Event>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<HostSample>,
}

impl RecordLine {
    fn at(t: f64) -> Self {
        RecordLine {
            t,
            header: None,
            chat: None,
            telemetry: None,
            host: None,
        }
    }

    /// The feed item this line carries, if any.
    pub fn feed(&self) -> Option<Feed> {
        if let Some(c) = &self.chat {
            return Some(Feed::Chat(c.clone()));
        }
        if let Some(e) = &self.telemetry {
            return Some(Feed::Telemetry(e.clone()));
        }
        self.host.clone().map(Feed::Host)
    }
}

/// Writes a recording as the chat goes, in place (see [`InPlaceFile`] for why not through a
/// temporary file): never over one of the chat's inputs or a special file, and never with another
/// writer of the same path.
pub struct Recorder {
    out: BufWriter<InPlaceFile>,
    start: Instant,
}

impl Recorder {
    /// Starts the recording at `path`, which must not be one of `inputs` (the model, the
    /// profile). Another sparsetop recording to the same path makes this fail at once: waiting
    /// for a whole chat to end would help no one.
    pub fn create(path: &Path, inputs: &[&Path], header: Header) -> anyhow::Result<Recorder> {
        let f = InPlaceFile::create(path, inputs, Busy::Fail)
            .with_context(|| format!("cannot create the recording {}", path.display()))?;
        let mut r = Recorder {
            out: BufWriter::new(f),
            start: Instant::now(),
        };
        let mut line = RecordLine::at(0.0);
        line.header = Some(header);
        r.write_line(&line)?;
        Ok(r)
    }

    fn write_line(&mut self, line: &RecordLine) -> anyhow::Result<()> {
        serde_json::to_writer(&mut self.out, line)?;
        self.out.write_all(b"\n")?;
        Ok(())
    }

    pub fn record(&mut self, feed: &Feed) -> anyhow::Result<()> {
        let mut line = RecordLine::at(self.start.elapsed().as_secs_f64());
        match feed {
            Feed::Chat(c) => line.chat = Some(c.clone()),
            Feed::Telemetry(e) => line.telemetry = Some(e.clone()),
            Feed::Host(h) => line.host = Some(h.clone()),
            Feed::ReplayEnd => return Ok(()),
        }
        self.write_line(&line)?;
        // Chat lines are rare and matter most: get them to disk at once.
        if matches!(
            feed,
            Feed::Chat(
                ChatEvent::Done { .. } | ChatEvent::User { .. } | ChatEvent::Sparsity { .. }
            )
        ) {
            self.out.flush()?;
        }
        Ok(())
    }

    pub fn flush(&mut self) -> anyhow::Result<()> {
        Ok(self.out.flush()?)
    }
}

impl Drop for Recorder {
    fn drop(&mut self) {
        let _ = self.out.flush();
    }
}
