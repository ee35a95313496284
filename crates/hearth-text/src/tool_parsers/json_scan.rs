//! A hand-written, incremental JSON extent scanner: fed one character at a time, it
//! says when a top-level object or array has closed. It only tracks strings, escapes
//! and nesting depth, so each character costs O(1) and nothing backtracks; the text
//! it delimits is then parsed by serde_json (which checks the grammar).

/// Deeper nesting is refused (serde_json's own recursion limit is 128).
pub const MAX_DEPTH: u32 = 128;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Still inside (or before) the value.
    More,
    /// This character closed the value.
    Done,
    /// Not a value of the expected kind (or nested too deep).
    Bad,
}

#[derive(Debug, Clone)]
pub struct JsonScan {
    open: char,
    started: bool,
    depth: u32,
    in_str: bool,
    escaped: bool,
}

impl JsonScan {
    /// Expects `open` (`{` or `[`) after optional whitespace.
    pub fn new(open: char) -> Self {
        JsonScan {
            open,
            started: false,
            depth: 0,
            in_str: false,
            escaped: false,
        }
    }

    pub fn started(&self) -> bool {
        self.started
    }

    pub fn feed(&mut self, c: char) -> Step {
        if !self.started {
            if c.is_whitespace() {
                return Step::More;
            }
            if c != self.open {
                return Step::Bad;
            }
            self.started = true;
            self.depth = 1;
            return Step::More;
        }
        if self.in_str {
            match (self.escaped, c) {
                (true, _) => self.escaped = false,
                (false, '\\') => self.escaped = true,
                (false, '"') => self.in_str = false,
                _ => {}
            }
            return Step::More;
        }
        match c {
            '"' => self.in_str = true,
            '{' | '[' => {
                self.depth += 1;
                if self.depth > MAX_DEPTH {
                    return Step::Bad;
                }
            }
            '}' | ']' => {
                self.depth -= 1;
                if self.depth == 0 {
                    return Step::Done;
                }
            }
            _ => {}
        }
        Step::More
    }
}

/// How many bytes at the end of `text` could be the start of `marker` (and so must
/// be held back from a text delta until the next piece decides). At most
/// `marker.len() - 1`, so this is O(marker²) whatever `text` is.
pub fn held_back(text: &str, marker: &str) -> usize {
    let max = marker.len().saturating_sub(1).min(text.len());
    (1..=max)
        .rev()
        .find(|&n| {
            text.is_char_boundary(text.len() - n) && marker.starts_with(&text[text.len() - n..])
        })
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(open: char, s: &str) -> (Step, usize) {
        let mut sc = JsonScan::new(open);
        for (i, c) in s.char_indices() {
            match sc.feed(c) {
                Step::More => {}
                st => return (st, i + c.len_utf8()),
            }
        }
        (Step::More, s.len())
    }

    #[test]
    fn finds_the_end_of_values() {
        assert_eq!(
            run('{', r#" {"a": "}{\"", "b": [1, {}]} tail"#),
            (Step::Done, 28)
        );
        assert_eq!(run('[', r#"[{"x": "]"}] more"#), (Step::Done, 12));
        assert_eq!(run('{', "x{}").0, Step::Bad);
        assert_eq!(run('{', r#"{"a": "unterminated"#).0, Step::More);
        let deep = "{".repeat(1 << 20);
        assert_eq!(run('{', &deep), (Step::Bad, MAX_DEPTH as usize + 1));
    }

    #[test]
    fn holds_back_marker_prefixes() {
        assert_eq!(held_back("abc<tool", "<tool_call>"), 5);
        assert_eq!(held_back("abc<", "<tool_call>"), 1);
        assert_eq!(held_back("abc", "<tool_call>"), 0);
        assert_eq!(held_back("é<", "<tool_call>"), 1);
        assert_eq!(held_back("", "<tool_call>"), 0);
    }
}
