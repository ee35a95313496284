use super::*;
use hearth_text::ConstraintSpec;
use serde_json::json;

fn weather() -> Value {
    json!({"type": "function", "function": {"name": "get_weather", "description": "d",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}})
}

fn req(tools: Value, choice: Option<Value>) -> Result<Option<ToolRequest>, ApiError> {
    let tools: Vec<Value> = serde_json::from_value(tools).unwrap();
    from_openai(Some(&tools), choice.as_ref(), None)
}

#[test]
fn choices_parse() {
    let t = req(json!([weather()]), None).unwrap().unwrap();
    assert_eq!((t.choice.clone(), t.parallel), (ToolChoice::Auto, true));
    assert_eq!(t.template_tools, vec![weather()]);
    for (c, want) in [
        (json!("none"), ToolChoice::None),
        (json!("auto"), ToolChoice::Auto),
        (json!("required"), ToolChoice::Required),
        (
            json!({"type": "function", "function": {"name": "get_weather"}}),
            ToolChoice::Named("get_weather".into()),
        ),
    ] {
        assert_eq!(
            req(json!([weather()]), Some(c)).unwrap().unwrap().choice,
            want
        );
    }
    assert!(from_openai(None, None, None).unwrap().is_none());
    assert!(from_openai(None, Some(&json!("none")), None)
        .unwrap()
        .is_none());
    let t = req(json!([weather()]), Some(json!("none")))
        .unwrap()
        .unwrap();
    assert!(!t.parses());
    assert!(t.parser(None).unwrap().is_none(), "none needs no parser");
    let t = req(json!([weather()]), None).unwrap().unwrap();
    assert_eq!(t.parser(None).unwrap_err().status.as_u16(), 400);
}

#[test]
fn bad_tools_and_choices_are_400() {
    let cases = [
        (json!([weather()]), Some(json!("sometimes")), "tool_choice"),
        (json!([weather()]), Some(json!(3)), "tool_choice"),
        (
            json!([weather()]),
            Some(json!({"type": "function", "function": {"name": "nope"}})),
            "tool_choice",
        ),
        (
            json!([weather()]),
            Some(json!({"type": "function"})),
            "tool_choice",
        ),
        (json!([]), Some(json!("required")), "tool_choice"),
        (json!([{"type": "retrieval"}]), None, "tools[0].type"),
        (
            json!([{"type": "function", "function": {}}]),
            None,
            "tools[0].function.name",
        ),
        (
            json!([{"type": "function", "function": {"name": "a b"}}]),
            None,
            "tools[0].function.name",
        ),
        (json!([weather(), weather()]), None, "tools"),
    ];
    for (tools, choice, param) in cases {
        let e = req(tools.clone(), choice.clone()).unwrap_err();
        assert_eq!(e.status.as_u16(), 400, "{tools} {choice:?}");
        assert_eq!(e.param.as_deref(), Some(param), "{tools} {choice:?}");
    }
    for params in [
        json!("string"),
        json!({"type": "array"}),
        json!({"type": "object", "properties": {"a": {"type": "strin"}}}),
        json!({"type": "object", "properties": []}),
        json!({"type": "object", "required": "a"}),
        json!({"type": "object", "properties": {"a": {"anyOf": {}}}}),
        json!({"type": "object", "properties": {"a": {"items": 3}}}),
    ] {
        let t = json!([{"type": "function", "function": {"name": "f", "parameters": params}}]);
        let e = req(t, None).unwrap_err();
        assert_eq!(
            e.param.as_deref(),
            Some("tools[0].function.parameters"),
            "{params}"
        );
    }
}

#[test]
fn forced_grammar_wraps_the_call_in_the_family_format() {
    let t = req(
        json!([weather()]),
        Some(json!({"type": "function", "function": {"name": "get_weather"}})),
    )
    .unwrap()
    .unwrap();
    let ConstraintSpec::Lark(g) = forced_call(Some(&t), Some(ToolParserKind::Hermes)).unwrap()
    else {
        panic!("lark")
    };
    assert!(g.starts_with("start: call_0\n"), "{g}");
    assert!(
        g.contains(r#"call_0: "<tool_call>\n{\"name\": \"get_weather\", \"arguments\": " args_0 "}\n</tool_call>""#),
        "{g}"
    );
    assert!(g.contains("args_0: %json {"), "{g}");
    assert!(g.contains("\"whitespace_flexible\":false"), "{g}");
    let auto = req(json!([weather()]), None).unwrap().unwrap();
    assert!(forced_call(Some(&auto), Some(ToolParserKind::Hermes)).is_none());
    let req2 = req(
        json!([weather(), {"type": "function", "function": {"name": "t"}}]),
        Some(json!("required")),
    )
    .unwrap()
    .unwrap();
    let ConstraintSpec::Lark(g) =
        forced_call(Some(&req2), Some(ToolParserKind::Llama3Json)).unwrap()
    else {
        panic!("lark")
    };
    assert!(g.starts_with("start: call_0 | call_1\n"), "{g}");
    assert!(g.contains(r#"\"parameters\": ""#), "{g}");
    assert!(call_id().starts_with("call_") && call_id().len() == 29);
}
