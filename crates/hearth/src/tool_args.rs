//! `hearth serve` flags for tool calling, named as vLLM names them:
//! `--tool-call-parser` and `--chat-template`.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Args;
use hearth_text::tool_parsers::ToolParserKind;
use hearth_text::ChatTemplate;

#[derive(Debug, Clone, Default, Args)]
pub struct ToolArgs {
    /// How tool calls are read from answers: hermes (Qwen 2.5/3, Hermes), llama3_json
    /// (Llama 3.x), mistral, or none. Default: chosen from the model's chat template
    /// and architecture.
    #[arg(long, value_parser = parse_parser)]
    pub tool_call_parser: Option<String>,
    /// A Jinja chat template file used instead of the model's own.
    #[arg(long)]
    pub chat_template: Option<PathBuf>,
}

fn parse_parser(s: &str) -> Result<String, String> {
    ToolParserKind::from_name(s)
        .map(|_| s.to_string())
        .map_err(|e| e.to_string())
}

impl ToolArgs {
    /// The template to serve: `--chat-template`'s, else the model's.
    pub fn template(&self, model: ChatTemplate) -> Result<ChatTemplate> {
        let Some(path) = &self.chat_template else {
            return Ok(model);
        };
        let source = std::fs::read_to_string(path)
            .with_context(|| format!("reading --chat-template {}", path.display()))?;
        model
            .with_source(&source)
            .with_context(|| format!("--chat-template {}", path.display()))
    }

    /// The parser: the flag's, else what the template and architecture ask for.
    pub fn parser(&self, arch: &str, template: &ChatTemplate) -> Result<Option<ToolParserKind>> {
        match &self.tool_call_parser {
            Some(name) => Ok(ToolParserKind::from_name(name)?),
            None => Ok(ToolParserKind::detect(Some(arch), template.source())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flag_wins_over_detection() {
        let t = ChatTemplate::new("{{ tools }}<tool_call>", "<s>", "</s>").unwrap();
        let none = ToolArgs::default();
        assert_eq!(
            none.parser("llama", &t).unwrap(),
            Some(ToolParserKind::Hermes)
        );
        let off = ToolArgs {
            tool_call_parser: Some("none".into()),
            ..ToolArgs::default()
        };
        assert_eq!(off.parser("llama", &t).unwrap(), None);
        let plain = ChatTemplate::new("{{ messages }}", "", "").unwrap();
        assert_eq!(none.parser("llama", &plain).unwrap(), None);
        assert!(parse_parser("pythonic").is_err());
    }

    #[test]
    fn chat_template_file_replaces_the_models() {
        let path = std::env::temp_dir().join(format!("hearth-tmpl-{}.jinja", std::process::id()));
        std::fs::write(&path, "{{ bos_token }}X{{ eos_token }}").unwrap();
        let args = ToolArgs {
            chat_template: Some(path.clone()),
            ..ToolArgs::default()
        };
        let model = ChatTemplate::new("M", "<s>", "</s>").unwrap();
        let t = args.template(model).unwrap();
        assert_eq!(t.render(&[], false).unwrap(), "<s>X</s>");
        std::fs::remove_file(&path).unwrap();
        assert!(args
            .template(ChatTemplate::new("M", "", "").unwrap())
            .is_err());
    }
}
