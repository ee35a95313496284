//! Multi-line input: a line ending in `\` continues on the next one, and a `"""`
//! line opens a block that the next `"""` closes. Only a single plain line can be a
//! slash command: a block or a continued line is always a message.

const FENCE: &str = "\"\"\"";

/// One complete input.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    pub text: String,
    /// Made of several lines or a block: never a command.
    pub literal: bool,
}

#[derive(Debug, Default)]
pub struct MultiLine {
    lines: Vec<String>,
    in_block: bool,
}

impl MultiLine {
    /// Whether an input is under way (the prompt shows a continuation).
    pub fn pending(&self) -> bool {
        self.in_block || !self.lines.is_empty()
    }

    pub fn reset(&mut self) {
        self.lines.clear();
        self.in_block = false;
    }

    /// Adds one line; returns the whole input once it is complete.
    pub fn push(&mut self, line: &str) -> Option<Entry> {
        if self.in_block {
            match line.trim_end().strip_suffix(FENCE) {
                Some(head) => {
                    self.in_block = false;
                    if !head.is_empty() {
                        self.lines.push(head.to_string());
                    }
                    return Some(self.take(true));
                }
                None => {
                    self.lines.push(line.to_string());
                    return None;
                }
            }
        }
        if let Some(rest) = line.trim_start().strip_prefix(FENCE) {
            // `"""text"""` on one line is a whole input.
            if let Some(body) = rest.trim_end().strip_suffix(FENCE) {
                self.lines.push(body.to_string());
                return Some(self.take(true));
            }
            self.in_block = true;
            if !rest.trim().is_empty() {
                self.lines.push(rest.to_string());
            }
            return None;
        }
        match line.strip_suffix('\\') {
            Some(head) => {
                self.lines.push(head.to_string());
                None
            }
            None => {
                let literal = !self.lines.is_empty();
                self.lines.push(line.to_string());
                Some(self.take(literal))
            }
        }
    }

    fn take(&mut self, literal: bool) -> Entry {
        Entry {
            text: std::mem::take(&mut self.lines).join("\n"),
            literal,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(text: &str, literal: bool) -> Option<Entry> {
        Some(Entry {
            text: text.into(),
            literal,
        })
    }

    #[test]
    fn single_lines_pass_through() {
        let mut m = MultiLine::default();
        assert_eq!(m.push("hello"), entry("hello", false));
        assert!(!m.pending());
    }

    #[test]
    fn backslash_continues() {
        let mut m = MultiLine::default();
        assert_eq!(m.push("one \\"), None);
        assert!(m.pending());
        assert_eq!(m.push("two\\"), None);
        assert_eq!(m.push("three"), entry("one \ntwo\nthree", true));
        assert!(!m.pending());
    }

    #[test]
    fn triple_quote_blocks() {
        let mut m = MultiLine::default();
        assert_eq!(m.push("\"\"\""), None);
        assert_eq!(m.push("fn main() {\\"), None);
        assert_eq!(m.push(""), None);
        assert_eq!(m.push("}"), None);
        assert_eq!(m.push("\"\"\""), entry("fn main() {\\\n\n}", true));
        assert_eq!(m.push("\"\"\"a"), None);
        assert_eq!(m.push("b\"\"\""), entry("a\nb", true));
        assert_eq!(m.push("\"\"\"/clear\"\"\""), entry("/clear", true));
    }

    #[test]
    fn reset_drops_a_pending_input() {
        let mut m = MultiLine::default();
        m.push("\"\"\"");
        m.push("x");
        m.reset();
        assert!(!m.pending());
        assert_eq!(m.push("y"), entry("y", false));
    }
}
