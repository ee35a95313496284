//! One terminal conversation: model, system prompt and turns; the request body for
//! the next answer and the JSON written by `/save`.

use serde::Serialize;
use serde_json::{json, Value};

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Message {
    pub role: &'static str,
    pub content: String,
}

#[derive(Debug, Clone)]
pub struct Conversation {
    pub model: String,
    pub system: Option<String>,
    pub turns: Vec<Message>,
    pub temperature: Option<f32>,
    pub max_tokens: Option<u32>,
}

impl Conversation {
    pub fn new(model: String, system: Option<String>) -> Conversation {
        Conversation {
            model,
            system,
            turns: Vec::new(),
            temperature: None,
            max_tokens: None,
        }
    }

    /// The system message (if any) and then every turn.
    pub fn messages(&self) -> Vec<Message> {
        let system = self.system.iter().map(|s| Message {
            role: "system",
            content: s.clone(),
        });
        system.chain(self.turns.iter().cloned()).collect()
    }

    pub fn push_user(&mut self, text: &str) {
        self.turns.push(Message {
            role: "user",
            content: text.to_string(),
        });
    }

    pub fn push_assistant(&mut self, text: String) {
        self.turns.push(Message {
            role: "assistant",
            content: text,
        });
    }

    /// Takes back the last user turn (its answer failed before any text came).
    pub fn pop_user(&mut self) {
        if self.turns.last().is_some_and(|m| m.role == "user") {
            self.turns.pop();
        }
    }

    pub fn clear(&mut self) {
        self.turns.clear();
    }

    /// A streaming chat completion request for the next answer.
    pub fn request(&self) -> Value {
        let mut body = json!({"model": self.model, "messages": self.messages(), "stream": true});
        if let Some(t) = self.temperature {
            body["temperature"] = json!(t);
        }
        if let Some(m) = self.max_tokens {
            body["max_tokens"] = json!(m);
        }
        body
    }

    /// What `/save` writes: the model and the messages, as a chat request has them.
    pub fn to_json(&self) -> Value {
        json!({"model": self.model, "messages": self.messages()})
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn system_first_then_turns() {
        let mut c = Conversation::new("m".into(), Some("be brief".into()));
        c.push_user("hi");
        c.push_assistant("hello".into());
        c.temperature = Some(0.0);
        let body = c.request();
        assert_eq!(body["model"], "m");
        assert_eq!(body["stream"], true);
        assert_eq!(body["temperature"], 0.0);
        assert!(body.get("max_tokens").is_none());
        assert_eq!(
            body["messages"],
            json!([
                {"role": "system", "content": "be brief"},
                {"role": "user", "content": "hi"},
                {"role": "assistant", "content": "hello"}
            ])
        );
        c.clear();
        assert_eq!(
            c.to_json()["messages"],
            json!([{"role": "system", "content": "be brief"}])
        );
    }

    #[test]
    fn pop_user_only_takes_a_user_turn() {
        let mut c = Conversation::new("m".into(), None);
        c.push_user("a");
        c.push_assistant("b".into());
        c.pop_user();
        assert_eq!(c.turns.len(), 2);
        c.push_user("c");
        c.pop_user();
        assert_eq!(c.turns.len(), 2);
    }
}
