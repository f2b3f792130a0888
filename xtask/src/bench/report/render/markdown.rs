//! The report as Markdown (`report.md`), for documentation.

use std::fmt::Write as _;

use comfy_table::presets::ASCII_MARKDOWN;

use crate::bench::report::Report;

impl Report {
    /// The same as Markdown, for documentation.
    pub fn render_markdown(&self) -> String {
        let mut s: String = self
            .preamble()
            .lines()
            .map(|l| {
                format!(
                    "- {l}
"
                )
            })
            .collect();
        if let Some(c) = &self.commit {
            let _ = writeln!(s, "- commit {c}");
        }
        let _ = writeln!(
            s,
            "
{}",
            self.table(ASCII_MARKDOWN)
        );
        if let Some(t) = self.sweep_table(ASCII_MARKDOWN) {
            let _ = writeln!(
                s,
                "
Decode tokens/s against context:

{t}"
            );
        }
        s
    }
}
