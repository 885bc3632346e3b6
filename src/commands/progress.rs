//! A progress bar on stderr, redrawn in place and only when it changes (calibration stages,
//! bundle writing).

/// The last line drawn, so an unchanged bar is not redrawn.
#[derive(Default)]
pub struct StderrBar {
    last: String,
}

impl StderrBar {
    /// Draws `stage [####....] done/total{unit}`, ending the line when done reaches total.
    pub fn draw(&mut self, stage: &str, done: usize, total: usize, unit: &str) {
        let width = 30;
        let filled = (done * width).checked_div(total).unwrap_or(width);
        let line = format!(
            "\r  {stage:<30} [{}{}] {done}/{total}{unit}",
            "#".repeat(filled),
            ".".repeat(width - filled)
        );
        if line != self.last {
            crate::output::diag_raw(&line);
            if done == total {
                diag!();
            }
            self.last = line;
        }
    }
}
