//! Finished responses kept in memory so a later request can continue them with
//! `previous_response_id`. Bounded: the oldest are forgotten first.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

use hearth_text::ChatMessage;

/// How many responses are remembered.
pub const DEFAULT_CAPACITY: usize = 1024;

pub struct ResponseStore {
    capacity: usize,
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    /// A response's whole conversation: its inputs and its answer.
    by_id: HashMap<String, Vec<ChatMessage>>,
    order: VecDeque<String>,
}

impl ResponseStore {
    pub fn new(capacity: usize) -> ResponseStore {
        ResponseStore {
            capacity: capacity.max(1),
            inner: Mutex::new(Inner::default()),
        }
    }

    pub fn put(&self, id: String, conversation: Vec<ChatMessage>) {
        let mut g = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        if g.by_id.insert(id.clone(), conversation).is_none() {
            g.order.push_back(id);
        }
        while g.order.len() > self.capacity {
            if let Some(old) = g.order.pop_front() {
                g.by_id.remove(&old);
            }
        }
    }

    pub fn get(&self, id: &str) -> Option<Vec<ChatMessage>> {
        let g = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        g.by_id.get(id).cloned()
    }
}

impl Default for ResponseStore {
    fn default() -> Self {
        ResponseStore::new(DEFAULT_CAPACITY)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_newest_within_capacity() {
        let s = ResponseStore::new(2);
        for i in 0..3 {
            s.put(
                format!("r{i}"),
                vec![ChatMessage::new("user", format!("{i}"))],
            );
        }
        assert!(s.get("r0").is_none());
        assert_eq!(s.get("r2").expect("kept")[0].content, "2");
        assert_eq!(s.get("r1").expect("kept")[0].content, "1");
    }
}
