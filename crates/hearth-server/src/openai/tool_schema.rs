//! The structure a tool's JSON schema must have, checked when the request comes in
//! (whatever its tool_choice), so a broken schema is a 400 and not a failure later.

use serde_json::Value;

const TYPES: [&str; 7] = [
    "object", "array", "string", "number", "integer", "boolean", "null",
];

/// The structure a JSON schema must have (what llguidance would trip on later).
pub fn check_schema(v: &Value, depth: usize) -> Result<(), String> {
    if depth > 64 {
        return Err("nested too deeply".into());
    }
    let m = match v {
        Value::Bool(_) => return Ok(()),
        Value::Object(m) => m,
        _ => return Err(format!("a schema must be an object or a boolean, got {v}")),
    };
    let known = |t: &Value| t.as_str().is_some_and(|s| TYPES.contains(&s));
    match m.get("type") {
        None => {}
        Some(Value::Array(ts)) if ts.iter().all(known) => {}
        Some(t) if known(t) => {}
        Some(t) => return Err(format!("unknown type {t}")),
    }
    if let Some(p) = m.get("properties") {
        let props = p.as_object().ok_or("properties must be an object")?;
        for s in props.values() {
            check_schema(s, depth + 1)?;
        }
    }
    if let Some(r) = m.get("required") {
        let ok = r.as_array().is_some_and(|a| a.iter().all(Value::is_string));
        if !ok {
            return Err("required must be a list of strings".into());
        }
    }
    if let Some(e) = m.get("enum") {
        if !e.is_array() {
            return Err("enum must be a list".into());
        }
    }
    for key in ["items", "additionalProperties", "not"] {
        match m.get(key) {
            Some(Value::Array(a)) if key == "items" => {
                a.iter().try_for_each(|s| check_schema(s, depth + 1))?
            }
            Some(s) => check_schema(s, depth + 1)?,
            None => {}
        }
    }
    for key in ["anyOf", "oneOf", "allOf"] {
        if let Some(list) = m.get(key) {
            let list = list.as_array().ok_or(format!("{key} must be a list"))?;
            list.iter().try_for_each(|s| check_schema(s, depth + 1))?;
        }
    }
    Ok(())
}
