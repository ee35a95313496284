use serde_json::json;

use super::*;

fn fields(v: Value) -> StructuredFields {
    serde_json::from_value(v).expect("fields parse")
}

fn spec(v: Value) -> Option<FieldConstraint> {
    fields(v).constraint().expect("valid")
}

fn err_param(v: Value) -> String {
    let e = fields(v).constraint().expect_err("invalid");
    assert_eq!(e.status.as_u16(), 400);
    assert_eq!(e.kind, "invalid_request_error");
    e.param.expect("names a parameter")
}

#[test]
fn response_formats() {
    assert_eq!(spec(json!({})), None);
    assert_eq!(spec(json!({"response_format": {"type": "text"}})), None);
    assert_eq!(spec(json!({"response_format": null})), None);
    assert_eq!(
        spec(json!({"response_format": {"type": "json_object"}})),
        Some((ConstraintSpec::JsonObject, "response_format"))
    );
    let schema = json!({"type": "object", "properties": {"a": {"type": "integer"}}});
    let rf = json!({"response_format": {"type": "json_schema",
        "json_schema": {"name": "x", "schema": schema, "strict": true}}});
    assert_eq!(
        spec(rf),
        Some((
            ConstraintSpec::JsonSchema {
                schema: schema.clone(),
                strict: true
            },
            "response_format"
        ))
    );
    let rf = json!({"response_format": {"type": "json_schema", "json_schema": {"name": "x"}}});
    assert_eq!(
        spec(rf),
        Some((ConstraintSpec::JsonObject, "response_format"))
    );
}

#[test]
fn guided_fields() {
    let s = json!({"type": "object"});
    assert_eq!(
        spec(json!({"guided_json": s})),
        Some((
            ConstraintSpec::JsonSchema {
                schema: s.clone(),
                strict: false
            },
            "guided_json"
        ))
    );
    assert_eq!(
        spec(json!({"guided_json": "{\"type\": \"object\"}"})).map(|c| c.0),
        Some(ConstraintSpec::JsonSchema {
            schema: s,
            strict: false
        })
    );
    assert_eq!(
        spec(json!({"guided_regex": "[a-z]+"})),
        Some((ConstraintSpec::Regex("[a-z]+".into()), "guided_regex"))
    );
    assert_eq!(
        spec(json!({"guided_choice": ["a", "b"]})),
        Some((
            ConstraintSpec::Choice(vec!["a".into(), "b".into()]),
            "guided_choice"
        ))
    );
    assert_eq!(
        spec(json!({"guided_grammar": "start: \"x\""})),
        Some((
            ConstraintSpec::Lark("start: \"x\"".into()),
            "guided_grammar"
        ))
    );
    assert_eq!(
        spec(json!({"structured_outputs": {"choice": ["y"]}})),
        Some((
            ConstraintSpec::Choice(vec!["y".into()]),
            "structured_outputs"
        ))
    );
    assert_eq!(
        spec(json!({"structured_outputs": {"json_object": true}})),
        Some((ConstraintSpec::JsonObject, "structured_outputs"))
    );
    // A text response_format does not conflict with a guided field.
    assert!(spec(json!({"response_format": {"type": "text"}, "guided_regex": "x"})).is_some());
}

#[test]
fn wrong_shapes_are_400_naming_the_field() {
    for (v, param) in [
        (json!({"response_format": "json"}), "response_format"),
        (json!({"response_format": {}}), "response_format"),
        (
            json!({"response_format": {"type": "yaml"}}),
            "response_format",
        ),
        (
            json!({"response_format": {"type": "json_schema"}}),
            "response_format",
        ),
        (
            json!({"response_format": {"type": "json_schema", "json_schema": {"schema": 3}}}),
            "response_format",
        ),
        (
            json!({"response_format": {"type": "json_schema",
                "json_schema": {"schema": {}, "strict": "yes"}}}),
            "response_format",
        ),
        (json!({"guided_json": 5}), "guided_json"),
        (json!({"guided_json": "not json"}), "guided_json"),
        (json!({"guided_regex": ["a"]}), "guided_regex"),
        (json!({"guided_choice": []}), "guided_choice"),
        (json!({"guided_choice": ["a", 1]}), "guided_choice"),
        (json!({"guided_choice": "a"}), "guided_choice"),
        (json!({"guided_grammar": {"lark": "x"}}), "guided_grammar"),
        (
            json!({"structured_outputs": {"regex": 1}}),
            "structured_outputs",
        ),
        (
            json!({"structured_outputs": {"regex": "a", "choice": ["a"]}}),
            "structured_outputs",
        ),
    ] {
        assert_eq!(err_param(v.clone()), param, "{v}");
    }
}

#[test]
fn more_than_one_constraint_is_400() {
    let v = json!({"response_format": {"type": "json_object"}, "guided_regex": "a+"});
    assert_eq!(err_param(v), "guided_regex");
    let v = json!({"guided_choice": ["a"], "guided_grammar": "start: \"a\""});
    assert_eq!(err_param(v), "guided_grammar");
}

#[test]
fn responses_text_format() {
    use super::responses_text_format as rtf;
    assert_eq!(rtf(None).expect("ok"), None);
    assert_eq!(
        rtf(Some(&json!({"format": {"type": "text"}}))).expect("ok"),
        None
    );
    assert_eq!(
        rtf(Some(&json!({"format": {"type": "json_object"}}))).expect("ok"),
        Some((ConstraintSpec::JsonObject, "text"))
    );
    let schema = json!({"type": "object"});
    let t =
        json!({"format": {"type": "json_schema", "name": "x", "schema": schema, "strict": true}});
    assert_eq!(
        rtf(Some(&t)).expect("ok"),
        Some((
            ConstraintSpec::JsonSchema {
                schema,
                strict: true
            },
            "text"
        ))
    );
    for bad in [
        json!("json"),
        json!({"format": {"type": "xml"}}),
        json!({"format": {"type": "json_schema", "schema": []}}),
        json!({"format": {"type": "json_schema", "schema": {}, "strict": 1}}),
    ] {
        let e = rtf(Some(&bad)).expect_err("invalid");
        assert_eq!(e.param.as_deref(), Some("text"), "{bad}");
    }
}
