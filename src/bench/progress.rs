//! The progress bar: on stderr, and only when a person is watching both outputs.

use std::io::{stderr, stdout, IsTerminal};
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// A progress bar, or nothing when stdout or stderr is not a terminal (a pipe, a file, a test).
pub struct Progress {
    bar: Option<ProgressBar>,
}

impl Progress {
    /// A bar counting to `total` (`messages` or milliseconds, as `unit` says), if stdout and
    /// stderr are both terminals.
    pub fn new(total: u64, unit: &str) -> Progress {
        let bar = (stdout().is_terminal() && stderr().is_terminal()).then(|| {
            let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
            let template =
                format!("{{spinner}} {{prefix}} [{{bar:30}}] {{pos}}/{{len}} {unit} {{msg}}");
            bar.set_style(
                ProgressStyle::with_template(&template)
                    .expect("a valid template")
                    .progress_chars("=> "),
            );
            bar
        });
        Progress { bar }
    }

    /// Shows the phase name, position and message rate.
    pub fn update(&self, phase: &str, position: u64, messages: u64, elapsed: Duration) {
        if let Some(bar) = &self.bar {
            bar.set_prefix(phase.to_string());
            bar.set_position(position);
            if messages > 0 {
                let rate = messages as f64 / elapsed.as_secs_f64().max(1e-3);
                bar.set_message(format!("{rate:.0} msg/s"));
            }
        }
    }

    /// Removes the bar before the summary is printed.
    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}
