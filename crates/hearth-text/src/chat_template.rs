//! Chat templates: the model's own Jinja template (from `tokenizer.chat_template`)
//! rendered with minijinja the way Hugging Face's `apply_chat_template` renders it
//! (trim_blocks, lstrip_blocks, Python string methods, `raise_exception`,
//! `strftime_now`).

use std::collections::HashMap;

use candle_core::quantized::gguf_file;
use minijinja::{context, Environment, Error, ErrorKind, Value};

pub use crate::chat_message::{ChatMessage, FunctionCall, ToolCall};

use crate::error::{Result, TextError};
use crate::gguf_tokenizer::Tokenizer;
use crate::metadata::opt_str;
use crate::strftime::strftime_now;

const TEMPLATE_NAME: &str = "chat";

/// Instructions one render may run: real templates need a few thousand per
/// message; a hostile loop (`range(10**5)` nested) runs out in well under a second.
const RENDER_FUEL: u64 = 50_000_000;

/// Most bytes one render may write: far above any context window, far below the
/// memory a runaway `{{ "x" * 10**8 }}` loop would take.
const MAX_RENDER_BYTES: usize = 64 << 20;

/// A compiled chat template plus the special-token strings it may use.
#[derive(Debug)]
pub struct ChatTemplate {
    env: Environment<'static>,
    source: String,
    bos_token: String,
    eos_token: String,
}

fn raise_exception(msg: String) -> std::result::Result<Value, Error> {
    Err(Error::new(ErrorKind::InvalidOperation, msg))
}

impl ChatTemplate {
    /// Compiles `source`; fails (no panic) when the template does not parse.
    pub fn new(
        source: &str,
        bos_token: impl Into<String>,
        eos_token: impl Into<String>,
    ) -> Result<Self> {
        let mut env = Environment::new();
        // HF's apply_chat_template uses jinja2 with these two set.
        let syntax = minijinja::syntax::SyntaxConfig::builder()
            .trim_blocks(true)
            .lstrip_blocks(true)
            .build()?;
        env.set_syntax(syntax);
        // Templates are untrusted input: bound their time (fuel) and, in render,
        // their output.
        env.set_fuel(Some(RENDER_FUEL));
        env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
        minijinja_contrib::add_to_environment(&mut env);
        env.add_function("raise_exception", raise_exception);
        env.add_function("strftime_now", strftime_now);
        env.add_filter("tojson", crate::py_json::tojson);
        env.add_template_owned(TEMPLATE_NAME, source.to_string())?;
        Ok(ChatTemplate {
            env,
            source: source.to_string(),
            bos_token: bos_token.into(),
            eos_token: eos_token.into(),
        })
    }

    /// The template a GGUF carries in `tokenizer.chat_template`, with the BOS/EOS
    /// strings of `tokenizer`.
    pub fn from_gguf_metadata(
        md: &HashMap<String, gguf_file::Value>,
        tokenizer: &Tokenizer,
    ) -> Result<Self> {
        let source = opt_str(md, "tokenizer.chat_template")?
            .ok_or_else(|| TextError::MissingMetadata("tokenizer.chat_template".into()))?;
        let token = |id: Option<u32>| {
            id.and_then(|i| tokenizer.id_to_token(i))
                .unwrap_or_default()
        };
        ChatTemplate::new(source, token(tokenizer.bos_id()), token(tokenizer.eos_id()))
    }

    /// Another template (`--chat-template`) with this one's BOS/EOS strings.
    pub fn with_source(&self, source: &str) -> Result<Self> {
        ChatTemplate::new(source, self.bos_token.clone(), self.eos_token.clone())
    }

    /// The template's Jinja source (tool-call parsers are chosen from it).
    pub fn source(&self) -> &str {
        &self.source
    }

    /// Whether the template reads a `tools` variable at all: one that does not
    /// renders no tool definitions, whatever the request sends.
    pub fn mentions_tools(&self) -> bool {
        self.source.contains("tools")
    }

    /// Renders a conversation into the prompt text.
    pub fn render(&self, messages: &[ChatMessage], add_generation_prompt: bool) -> Result<String> {
        self.render_with(messages, add_generation_prompt, &serde_json::Map::new())
    }

    /// `render` plus template variables (`apply_chat_template`'s extra kwargs, such as
    /// Qwen3's `enable_thinking`); variables not given stay undefined.
    pub fn render_with(
        &self,
        messages: &[ChatMessage],
        add_generation_prompt: bool,
        extra: &serde_json::Map<String, serde_json::Value>,
    ) -> Result<String> {
        self.render_with_tools(messages, add_generation_prompt, None, extra)
    }

    /// `render_with` plus `tools`: OpenAI-style function tools
    /// (`{"type": "function", "function": {name, description, parameters}}`), what
    /// `apply_chat_template(tools=...)` passes; `None` renders `tools` as none.
    pub fn render_with_tools(
        &self,
        messages: &[ChatMessage],
        add_generation_prompt: bool,
        tools: Option<&[serde_json::Value]>,
        extra: &serde_json::Map<String, serde_json::Value>,
    ) -> Result<String> {
        let tools = match tools {
            Some(t) => Value::from(minijinja::value::Serde(t)),
            None => Value::from(()),
        };
        let tmpl = self.env.get_template(TEMPLATE_NAME)?;
        let ctx = context! {
            messages => Value::from(minijinja::value::Serde(messages)),
            add_generation_prompt => add_generation_prompt,
            bos_token => self.bos_token.as_str(),
            eos_token => self.eos_token.as_str(),
            tools => tools,
            ..Value::from(minijinja::value::Serde(extra))
        };
        let mut out = CappedWriter(Vec::new());
        tmpl.render_captured_to(ctx, &mut out)?;
        String::from_utf8(out.0).map_err(|e| TextError::Template(e.to_string()))
    }
}

/// A writer that fails once more than `MAX_RENDER_BYTES` were written.
struct CappedWriter(Vec<u8>);

impl std::io::Write for CappedWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if self.0.len() + buf.len() > MAX_RENDER_BYTES {
            return Err(std::io::Error::other(format!(
                "rendered prompt is over {MAX_RENDER_BYTES} bytes"
            )));
        }
        self.0.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_with_python_methods_and_whitespace_control() {
        let src = "{% for m in messages %}\n  {% if m %}{{ m.role.upper() }}: {{ m.content.strip() }}\n  {% endif %}\n{% endfor %}";
        let t = ChatTemplate::new(src, "<s>", "</s>").expect("compiles");
        let out = t
            .render(&[ChatMessage::new("user", "  hi ")], false)
            .expect("renders");
        assert_eq!(out, "USER: hi\n");
    }

    #[test]
    fn raise_exception_is_an_error() {
        let src = "{% if messages[0].role != 'system' %}{{ raise_exception('need a system message') }}{% endif %}";
        let t = ChatTemplate::new(src, "", "").expect("compiles");
        let err = t
            .render(&[ChatMessage::new("user", "x")], false)
            .expect_err("must fail");
        assert!(err.to_string().contains("need a system message"), "{err}");
    }

    #[test]
    fn bad_template_is_an_error_not_a_panic() {
        assert!(matches!(
            ChatTemplate::new("{% for %}", "", ""),
            Err(TextError::Template(_))
        ));
    }

    #[test]
    fn hostile_templates_fail_fast() {
        let msgs = [ChatMessage::new("user", "x")];
        for src in [
            "{% for a in range(100000) %}{% for b in range(100000) %}{% endfor %}{% endfor %}",
            "{% for a in range(100000) %}{{ 'x' * 99999999 }}{% endfor %}",
            "{% macro f(n) %}{{ f(n) }}{% endmacro %}{{ f(1) }}",
            "{% for x in range(10**9) %}{% endfor %}",
        ] {
            let t = ChatTemplate::new(src, "", "").expect("compiles");
            let start = std::time::Instant::now();
            let err = t.render(&msgs, true).expect_err(src);
            assert!(matches!(err, TextError::Template(_)), "{err}");
            assert!(
                start.elapsed().as_secs() < 10,
                "{src} took {:?}",
                start.elapsed()
            );
        }
    }

    #[test]
    fn exposes_tokens_and_generation_flag() {
        let src = "{{ bos_token }}{% if tools is none %}N{% endif %}{% if add_generation_prompt %}G{% endif %}{{ eos_token }}";
        let t = ChatTemplate::new(src, "<s>", "</s>").expect("compiles");
        assert_eq!(t.render(&[], true).expect("renders"), "<s>NG</s>");
        assert_eq!(t.render(&[], false).expect("renders"), "<s>N</s>");
    }
}
