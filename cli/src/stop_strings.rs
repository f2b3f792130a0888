//! `--stop` strings: the text is cut where the first one begins, and never shows it. While the
//! text ends in what could still grow into a stop string, that tail is held back from the
//! stream.

/// The stop strings, and how much of the text has been let through.
pub struct StopStrings<'a> {
    stops: &'a [String],
    passed: usize,
    stopped: bool,
}

/// What [`StopStrings::push`] lets through.
#[derive(Debug, PartialEq, Eq)]
pub struct Passed<'t> {
    /// New text to show.
    pub text: &'t str,
    /// The text reached a stop string; `text` ends where it began.
    pub stopped: bool,
}

impl<'a> StopStrings<'a> {
    pub fn new(stops: &'a [String]) -> Self {
        Self {
            stops,
            passed: 0,
            stopped: false,
        }
    }

    /// The part of `text` (all the text so far) that can be shown now.
    pub fn push<'t>(&mut self, text: &'t str) -> Passed<'t> {
        let held = self.held_back(text);
        self.pass(text, held)
    }

    /// The rest of `text` once generation has ended: all of it, up to a stop string.
    pub fn finish<'t>(&mut self, text: &'t str) -> &'t str {
        self.pass(text, 0).text
    }

    /// How much of the text is the answer: all of it, or up to the first stop string.
    pub fn len(&self) -> usize {
        self.passed
    }

    fn pass<'t>(&mut self, text: &'t str, held: usize) -> Passed<'t> {
        if self.stopped {
            return Passed {
                text: "",
                stopped: true,
            };
        }
        let found = self
            .stops
            .iter()
            .filter(|s| !s.is_empty())
            .filter_map(|s| text.find(s.as_str()))
            .min();
        self.stopped = found.is_some();
        // A stop string begins inside the held-back tail, never in text already shown.
        let upto = found.unwrap_or(text.len() - held).max(self.passed);
        let from = self.passed;
        self.passed = upto;
        Passed {
            text: &text[from..upto],
            stopped: self.stopped,
        }
    }

    /// The length of the longest end of `text` that begins some stop string.
    fn held_back(&self, text: &str) -> usize {
        self.stops
            .iter()
            .flat_map(|s| {
                (1..s.len())
                    .filter(|&n| s.is_char_boundary(n) && text.ends_with(&s[..n]))
                    .max()
            })
            .max()
            .unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Pushes the pieces as a stream would, and returns what was shown and whether it stopped.
    fn stream(stops: &[&str], pieces: &[&str]) -> (String, bool) {
        let stops: Vec<String> = stops.iter().map(|s| s.to_string()).collect();
        let mut filter = StopStrings::new(&stops);
        let (mut text, mut shown) = (String::new(), String::new());
        for piece in pieces {
            text.push_str(piece);
            let passed = filter.push(&text);
            shown.push_str(passed.text);
            if passed.stopped {
                assert_eq!(filter.len(), shown.len());
                return (shown, true);
            }
        }
        shown.push_str(filter.finish(&text));
        assert_eq!(filter.len(), shown.len());
        (shown, false)
    }

    #[test]
    fn a_stop_string_split_across_pieces_is_never_shown() {
        assert_eq!(
            stream(&["END"], &["one E", "N", "D two"]),
            ("one ".into(), true)
        );
        assert_eq!(stream(&["END"], &["oneEND"]), ("one".into(), true));
    }

    #[test]
    fn a_held_back_tail_that_does_not_become_a_stop_string_is_shown() {
        assert_eq!(
            stream(&["END"], &["one E", "N", "d"]),
            ("one ENd".into(), false)
        );
        assert_eq!(stream(&["END"], &["one EN"]), ("one EN".into(), false));
    }

    #[test]
    fn the_earliest_of_several_stop_strings_cuts_the_text() {
        assert_eq!(stream(&["b", "a"], &["xxab"]), ("xx".into(), true));
        assert_eq!(stream(&["é!"], &["café", "!"]), ("caf".into(), true));
    }
}
