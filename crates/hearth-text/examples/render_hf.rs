//! Prints a Hugging Face folder's chat-template render of a conversation, to compare
//! with transformers' `apply_chat_template`:
//! `cargo run --release -p hearth-text --example render_hf -- DIR CONVERSATION.json`
//! where the JSON is `{"messages": [...], "add_generation_prompt": bool, "kwargs": {...}}`.

use hearth_text::{ChatMessage, ChatTemplate, Tokenizer};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let (Some(dir), Some(conv)) = (args.next(), args.next()) else {
        return Err("usage: render_hf DIR CONVERSATION.json".into());
    };
    let conv: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(conv)?)?;
    let messages: Vec<ChatMessage> = serde_json::from_value(conv["messages"].clone())?;
    let agp = conv["add_generation_prompt"].as_bool().unwrap_or(false);
    let kwargs = conv["kwargs"].as_object().cloned().unwrap_or_default();
    let tok = Tokenizer::from_hf_dir(&dir)?;
    let template = ChatTemplate::from_hf_dir(&dir, &tok)?;
    print!("{}", template.render_with(&messages, agp, &kwargs)?);
    Ok(())
}
