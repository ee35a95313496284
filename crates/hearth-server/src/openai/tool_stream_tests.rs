use super::*;
use serde_json::json;

fn fmt() -> ChatChunks {
    ChatChunks {
        id: "chatcmpl-1".into(),
        created: 1,
        model: "m".into(),
        tokenizer: None,
    }
}

/// (id, name, arguments) of a call.
type Call = (String, String, String);

/// Streams `pieces` and folds the chunks back the way the OpenAI SDK does:
/// (content, calls, finish_reason, chunks).
fn stream(pieces: &[&str], parallel: bool) -> (String, Vec<Call>, String, Vec<Value>) {
    let mut f = ToolChunks::new(fmt(), ToolParserKind::Hermes, parallel);
    let mut chunks = Vec::new();
    for p in pieces {
        chunks.extend(f.deltas(p, &[]));
    }
    chunks.extend(f.finishing(FinishReason::Stop));
    let mut content = String::new();
    let mut calls: Vec<Call> = Vec::new();
    let mut finish = String::new();
    for c in &chunks {
        let choice = &c["choices"][0];
        if let Some(t) = choice["delta"]["content"].as_str() {
            content.push_str(t);
        }
        for tc in choice["delta"]["tool_calls"]
            .as_array()
            .into_iter()
            .flatten()
        {
            let i = tc["index"].as_u64().unwrap() as usize;
            if let Some(id) = tc["id"].as_str() {
                assert_eq!(i, calls.len(), "calls open in order");
                assert_eq!(tc["type"], "function");
                let name = tc["function"]["name"].as_str().unwrap().to_string();
                calls.push((id.to_string(), name, String::new()));
            } else {
                assert!(tc.get("id").is_none() && tc["function"].get("name").is_none());
            }
            calls[i]
                .2
                .push_str(tc["function"]["arguments"].as_str().unwrap());
        }
        if let Some(r) = choice["finish_reason"].as_str() {
            finish = r.to_string();
        }
    }
    (content, calls, finish, chunks)
}

const ANSWER: &str = "Checking.\n<tool_call>\n{\"name\": \"a\", \"arguments\": {\"x\": 1}}\n</tool_call>\n<tool_call>\n{\"name\": \"b\", \"arguments\": {}}\n</tool_call>\n";

#[test]
fn streamed_and_whole_answers_agree() {
    let (msg, finish) = message(ANSWER, ToolParserKind::Hermes, true, FinishReason::Stop);
    assert_eq!(finish, "tool_calls");
    assert_eq!(msg["content"], "Checking.");
    let calls = msg["tool_calls"].as_array().unwrap();
    assert_eq!(calls.len(), 2);
    assert!(calls[0]["id"].as_str().unwrap().starts_with("call_"));
    assert_eq!(calls[0]["type"], "function");
    assert_eq!(
        calls[0]["function"],
        json!({"name": "a", "arguments": "{\"x\":1}"})
    );
    // Every split of the text gives the same content and calls.
    let chars: Vec<char> = ANSWER.chars().collect();
    for size in 1..12 {
        let pieces: Vec<String> = chars.chunks(size).map(|c| c.iter().collect()).collect();
        let refs: Vec<&str> = pieces.iter().map(String::as_str).collect();
        let (content, calls, finish, _) = stream(&refs, true);
        assert_eq!(content, "Checking.", "size {size}");
        assert_eq!(finish, "tool_calls");
        let got: Vec<(&str, &str)> = calls.iter().map(|c| (c.1.as_str(), c.2.as_str())).collect();
        assert_eq!(got, [("a", "{\"x\":1}"), ("b", "{}")], "size {size}");
    }
}

#[test]
fn no_parallel_keeps_the_first_call() {
    let (msg, _) = message(ANSWER, ToolParserKind::Hermes, false, FinishReason::Stop);
    assert_eq!(msg["tool_calls"].as_array().unwrap().len(), 1);
    let (_, calls, _, _) = stream(&[ANSWER], false);
    assert_eq!(calls.len(), 1);
}

#[test]
fn plain_answers_stay_text_with_their_whitespace() {
    let text = "  Hello <b>there</b>\n\n";
    let (msg, finish) = message(text, ToolParserKind::Hermes, true, FinishReason::Stop);
    assert_eq!((msg["content"].as_str(), finish), (Some(text), "stop"));
    assert!(msg.get("tool_calls").is_none());
    let (content, calls, finish, chunks) = stream(&["  Hel", "lo <b>there</b>\n", "\n"], true);
    assert_eq!(
        (content.as_str(), calls.len(), finish.as_str()),
        (text, 0, "stop")
    );
    assert_eq!(chunks.last().unwrap()["choices"][0]["delta"], json!({}));
    // A call cut off by max_tokens stays text and the reason stays `length`.
    let cut = "<tool_call>\n{\"name\": \"a\", \"argum";
    let (msg, finish) = message(cut, ToolParserKind::Hermes, true, FinishReason::Length);
    assert_eq!((msg["content"].as_str(), finish), (Some(cut), "length"));
}
