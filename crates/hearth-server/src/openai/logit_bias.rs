//! OpenAI's `logit_bias`: `{"token id": bias}` with biases in [-100, 100], checked
//! against the model's vocabulary.

use std::collections::HashMap;

use crate::error::ApiError;

/// Most entries one request may bias (OpenAI's own limit is of this order).
pub const MAX_ENTRIES: usize = 1024;

pub fn parse(
    bias: Option<&HashMap<String, f32>>,
    vocab_size: usize,
) -> Result<Vec<(u32, f32)>, ApiError> {
    let Some(map) = bias else {
        return Ok(Vec::new());
    };
    if map.len() > MAX_ENTRIES {
        return Err(bad(format!("at most {MAX_ENTRIES} entries are allowed")));
    }
    let mut out = Vec::with_capacity(map.len());
    for (key, &value) in map {
        let id: u32 = key
            .trim()
            .parse()
            .map_err(|_| bad(format!("key `{key}` is not a token id")))?;
        if id as usize >= vocab_size {
            return Err(bad(format!(
                "token id {id} is out of the vocabulary (size {vocab_size})"
            )));
        }
        if !(-100.0..=100.0).contains(&value) {
            return Err(bad(format!(
                "bias {value} for token {id} is outside [-100, 100]"
            )));
        }
        out.push((id, value));
    }
    out.sort_unstable_by_key(|&(id, _)| id);
    Ok(out)
}

fn bad(msg: String) -> ApiError {
    ApiError::invalid_param("logit_bias", msg)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(v: serde_json::Value) -> HashMap<String, f32> {
        serde_json::from_value(v).expect("map")
    }

    #[test]
    fn parses_ids_and_refuses_bad_entries() {
        let ok = parse(Some(&map(serde_json::json!({"7": 5.0, "2": -100}))), 10).expect("ok");
        assert_eq!(ok, vec![(2, -100.0), (7, 5.0)]);
        assert!(parse(None, 10).expect("none").is_empty());
        for bad in [
            serde_json::json!({"x": 1.0}),
            serde_json::json!({"10": 1.0}),
            serde_json::json!({"1": 101.0}),
            serde_json::json!({"-1": 1.0}),
        ] {
            let e = parse(Some(&map(bad.clone())), 10).expect_err("refused");
            assert_eq!(e.status.as_u16(), 400, "{bad}");
            assert_eq!(e.param.as_deref(), Some("logit_bias"));
        }
    }
}
