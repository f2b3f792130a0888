//! The report as the terminal shows it and `report.txt` keeps it.

use std::fmt::Write as _;

use comfy_table::presets::ASCII_FULL_CONDENSED;

use crate::bench::report::Report;

impl Report {
    /// Everything printed at the end of a run.
    pub fn render_text(&self) -> String {
        let mut s = self.preamble();
        let _ = writeln!(s, "{}", self.table(ASCII_FULL_CONDENSED));
        if let Some(t) = self.sweep_table(ASCII_FULL_CONDENSED) {
            let _ = writeln!(s, "{t}");
        }
        s
    }
}
