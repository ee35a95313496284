//! Every tool-call parser on arbitrary text, streamed in pieces split at arbitrary
//! points and parsed whole: never a panic, the streamed result equals the whole one, and
//! the output is bounded by the input (text given back is the input's own text).
//! Input: two bytes seed the chunk sizes, the rest is the text (lossy UTF-8).
#![no_main]

use hearth_text::tool_parsers::{collect, parse_whole, ParserDelta, ToolParserKind};
use libfuzzer_sys::fuzz_target;

/// Char-boundary pieces of `text`, sizes 1..=16 bytes from an xorshift of `seed`.
fn pieces(text: &str, seed: u16) -> Vec<&str> {
    let mut x = u32::from(seed) | 0x1_0000;
    let (mut out, mut start) = (Vec::new(), 0);
    while start < text.len() {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        let mut end = (start + 1 + (x % 16) as usize).min(text.len());
        while !text.is_char_boundary(end) {
            end += 1;
        }
        out.push(&text[start..end]);
        start = end;
    }
    out
}

fuzz_target!(|data: &[u8]| {
    if data.len() < 2 {
        return;
    }
    let seed = u16::from_le_bytes([data[0], data[1]]);
    let text = String::from_utf8_lossy(&data[2..]);
    for kind in [
        ToolParserKind::Hermes,
        ToolParserKind::Llama3Json,
        ToolParserKind::Mistral,
    ] {
        let whole = parse_whole(kind.new_parser().as_mut(), &text);
        let mut p = kind.new_parser();
        let mut all = ParserDelta::default();
        for piece in pieces(&text, seed) {
            let d = p.push(piece);
            all.text.push_str(&d.text);
            all.calls.extend(d.calls);
        }
        let last = p.finish();
        all.text.push_str(&last.text);
        all.calls.extend(last.calls);
        let streamed = collect(all);
        assert_eq!(streamed, whole, "{kind:?}: streamed != whole for {text:?}");
        assert!(whole.content.len() <= text.len(), "{kind:?}: text grew");
        // A call takes at least `{"name":"x"}` (12 bytes) of input.
        assert!(
            whole.calls.len() <= text.len() / 12,
            "{kind:?}: too many calls"
        );
    }
});
