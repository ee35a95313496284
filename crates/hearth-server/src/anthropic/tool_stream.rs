//! Streamed content blocks of an answer read through a tool-call parser, in the
//! order Anthropic's stream has them: a text block (opened when text first comes,
//! `text_delta`s), then per call a `tool_use` block (`content_block_start` with id,
//! name and empty input, `input_json_delta`s, `content_block_stop`). Whitespace at
//! the end of the text is held back and dropped when calls follow, as
//! `answer_blocks` does for a whole answer.

use hearth_text::tool_parsers::{ParserDelta, ToolParser, ToolParserKind};
use serde_json::{json, Value};

use super::tools::tool_use_id;
use crate::openai::tool_stream::held_text;

pub type Events = Vec<(&'static str, Value)>;

pub struct ToolBlocks {
    parser: Box<dyn ToolParser>,
    parallel: bool,
    pending_ws: String,
    /// The open block's index, and whether it is the text block.
    open: Option<(usize, bool)>,
    next_block: usize,
    /// Calls started (the parser's index of the last one, plus one).
    pub calls: usize,
}

impl ToolBlocks {
    pub fn new(kind: ToolParserKind, parallel: bool) -> Self {
        ToolBlocks {
            parser: kind.new_parser(),
            parallel,
            pending_ws: String::new(),
            open: None,
            next_block: 0,
            calls: 0,
        }
    }

    pub fn push(&mut self, text: &str) -> Events {
        let d = self.parser.push(text);
        self.emit(d)
    }

    /// What the parser still holds, then the last block closed.
    pub fn finish(&mut self) -> Events {
        let d = self.parser.finish();
        let mut ev = self.emit(d);
        if self.calls == 0 && !self.pending_ws.is_empty() {
            let ws = std::mem::take(&mut self.pending_ws);
            self.text(&ws, &mut ev);
        }
        if self.calls == 0 && self.next_block == 0 {
            // An empty answer still has its (empty) text block.
            self.open_block(true, json!({ "type": "text", "text": "" }), &mut ev);
        }
        self.close(&mut ev);
        ev
    }

    fn emit(&mut self, d: ParserDelta) -> Events {
        let mut ev = Vec::new();
        let text = held_text(&mut self.pending_ws, &d.text);
        if !text.is_empty() {
            self.text(&text, &mut ev);
        }
        for c in d.calls {
            if !self.parallel && c.index > 0 {
                continue;
            }
            match c.name {
                Some(name) => {
                    self.calls = c.index + 1;
                    let block = json!({ "type": "tool_use", "id": tool_use_id(), "name": name, "input": {} });
                    self.open_block(false, block, &mut ev);
                }
                None if c.arguments.is_empty() => {}
                None => {
                    let delta = json!({ "type": "input_json_delta", "partial_json": c.arguments });
                    self.delta(delta, &mut ev);
                }
            }
        }
        ev
    }

    /// Text goes to the text block, opened when text first comes (and reopened as a
    /// new block if a call came in between).
    fn text(&mut self, text: &str, ev: &mut Events) {
        if !matches!(self.open, Some((_, true))) {
            self.open_block(true, json!({ "type": "text", "text": "" }), ev);
        }
        self.delta(json!({ "type": "text_delta", "text": text }), ev);
    }

    fn open_block(&mut self, is_text: bool, block: Value, ev: &mut Events) {
        self.close(ev);
        let index = self.next_block;
        self.next_block += 1;
        self.open = Some((index, is_text));
        ev.push((
            "content_block_start",
            json!({ "type": "content_block_start", "index": index, "content_block": block }),
        ));
    }

    fn delta(&mut self, delta: Value, ev: &mut Events) {
        if let Some((index, _)) = self.open {
            ev.push((
                "content_block_delta",
                json!({ "type": "content_block_delta", "index": index, "delta": delta }),
            ));
        }
    }

    fn close(&mut self, ev: &mut Events) {
        if let Some((index, _)) = self.open.take() {
            ev.push((
                "content_block_stop",
                json!({ "type": "content_block_stop", "index": index }),
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::anthropic::tools::answer_blocks;

    /// Folds events into blocks the way the anthropic SDK does.
    fn fold(ev: &Events) -> Vec<Value> {
        let mut blocks: Vec<Value> = Vec::new();
        let mut json_buf: Vec<String> = Vec::new();
        let mut open = None;
        for (name, data) in ev {
            assert_eq!(data["type"], *name);
            let i = data["index"].as_u64().unwrap_or(0) as usize;
            match *name {
                "content_block_start" => {
                    assert_eq!(open, None, "blocks do not nest");
                    assert_eq!(i, blocks.len(), "indices count up");
                    open = Some(i);
                    blocks.push(data["content_block"].clone());
                    json_buf.push(String::new());
                }
                "content_block_delta" => {
                    assert_eq!(open, Some(i));
                    let d = &data["delta"];
                    match d["type"].as_str().unwrap() {
                        "text_delta" => {
                            let t = blocks[i]["text"].as_str().unwrap().to_string();
                            blocks[i]["text"] = json!(t + d["text"].as_str().unwrap());
                        }
                        "input_json_delta" => {
                            json_buf[i].push_str(d["partial_json"].as_str().unwrap())
                        }
                        other => panic!("{other}"),
                    }
                }
                "content_block_stop" => {
                    assert_eq!(open.take(), Some(i));
                    if blocks[i]["type"] == "tool_use" {
                        blocks[i]["input"] = serde_json::from_str(&json_buf[i]).unwrap();
                    }
                }
                other => panic!("{other}"),
            }
        }
        assert_eq!(open, None, "every block is closed");
        for b in &mut blocks {
            if let Some(o) = b.as_object_mut() {
                o.remove("id");
            }
        }
        blocks
    }

    fn strip_ids(mut v: Vec<Value>) -> Vec<Value> {
        for b in &mut v {
            if let Some(o) = b.as_object_mut() {
                o.remove("id");
            }
        }
        v
    }

    #[test]
    fn streamed_blocks_equal_the_whole_answer() {
        for text in [
            "Let me check.\n<tool_call>\n{\"name\": \"a\", \"arguments\": {\"x\": [1, 2]}}\n</tool_call>\n<tool_call>\n{\"name\": \"b\", \"arguments\": {}}\n</tool_call>",
            "<tool_call>\n{\"name\": \"a\", \"arguments\": {}}\n</tool_call>",
            "plain answer\n",
            "",
            "<tool_call>{\"broken\": </tool_call> text",
        ] {
            let (whole, _) = answer_blocks(text, ToolParserKind::Hermes, true);
            let chars: Vec<char> = text.chars().collect();
            for size in 1..9 {
                let mut tb = ToolBlocks::new(ToolParserKind::Hermes, true);
                let mut ev = Vec::new();
                for piece in chars.chunks(size) {
                    ev.extend(tb.push(&piece.iter().collect::<String>()));
                }
                ev.extend(tb.finish());
                assert_eq!(fold(&ev), strip_ids(whole.clone()), "{text:?} size {size}");
            }
        }
    }

    #[test]
    fn tool_use_block_starts_with_id_name_and_empty_input() {
        let mut tb = ToolBlocks::new(ToolParserKind::Hermes, true);
        let mut ev =
            tb.push("<tool_call>\n{\"name\": \"a\", \"arguments\": {\"k\": \"v\"}}\n</tool_call>");
        ev.extend(tb.finish());
        let names: Vec<&str> = ev.iter().map(|e| e.0).collect();
        assert_eq!(
            names,
            [
                "content_block_start",
                "content_block_delta",
                "content_block_stop"
            ]
        );
        let block = &ev[0].1["content_block"];
        assert_eq!(
            (block["type"].as_str(), block["name"].as_str()),
            (Some("tool_use"), Some("a"))
        );
        assert!(block["id"].as_str().unwrap().starts_with("toolu_"));
        assert_eq!(block["input"], json!({}));
        assert_eq!(
            ev[1].1["delta"],
            json!({"type": "input_json_delta", "partial_json": "{\"k\":\"v\"}"})
        );
        assert_eq!(tb.calls, 1);
    }
}
