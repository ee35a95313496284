use serde_json::json;

use super::*;
use crate::error::TextError;
use crate::gguf_tokenizer::Tokenizer;
use crate::test_util::synthetic_metadata;

fn tokenizer() -> Tokenizer {
    Tokenizer::from_gguf_metadata(&synthetic_metadata("smollm")).expect("synthetic tokenizer")
}

fn compile(spec: ConstraintSpec) -> crate::error::Result<Constraint> {
    ConstraintCompiler::new(&tokenizer())
        .expect("compiler")
        .compile(&spec)
}

/// Feeds `text` token by token, each checked against the mask first; returns whether
/// the whole text was allowed.
fn walk(c: &mut Constraint, text: &str) -> bool {
    let tok = tokenizer();
    for id in tok.encode(text, false).expect("encode") {
        let mask = c.mask().expect("mask");
        if !mask.allows(id) {
            return false;
        }
        c.accept(id).expect("an allowed token is accepted");
    }
    true
}

const EOS: u32 = 0;

#[test]
fn json_schema_allows_valid_json_and_finishes() {
    let schema = json!({
        "type": "object",
        "properties": {"a": {"type": "integer"}, "b": {"enum": ["x", "y"]}},
        "required": ["a", "b"],
        "additionalProperties": false
    });
    let spec = ConstraintSpec::JsonSchema {
        schema,
        strict: true,
    };
    let mut c = compile(spec.clone()).expect("compiles");
    assert!(
        !c.mask().expect("mask").allows(EOS),
        "empty output is not JSON"
    );
    assert!(walk(&mut c, r#"{"a": 12, "b": "y"}"#));
    assert!(c.is_finished(), "nothing may follow the closing brace");
    let m = c.mask().expect("mask");
    let eos = tokenizer().eos_ids().to_vec();
    assert!(eos.iter().all(|&id| m.allows(id)) && m.num_allowed() == eos.len());

    for bad in [r#"{"a": "12""#, r#"{"c""#, r#"{"a": 1, "b": "z""#, "x"] {
        let mut c = compile(spec.clone()).expect("compiles");
        assert!(!walk(&mut c, bad), "{bad} should be refused");
    }
}

#[test]
fn json_object_needs_an_object() {
    let mut c = compile(ConstraintSpec::JsonObject).expect("compiles");
    assert!(!walk(&mut c, "[1]"));
    let mut c = compile(ConstraintSpec::JsonObject).expect("compiles");
    assert!(walk(&mut c, r#"{"k": [1, true, null]}"#));
    assert!(c.is_finished());
}

#[test]
fn regex_is_anchored_and_allows_eos_when_complete() {
    let spec = ConstraintSpec::Regex(r"\d{3}-[a-z]+".into());
    let mut c = compile(spec.clone()).expect("compiles");
    assert!(walk(&mut c, "123-ab"));
    assert!(!c.is_finished(), "more letters may follow");
    let m = c.mask().expect("mask");
    assert!(m.allows(EOS), "the text so far is a full match");
    let mut c = compile(spec).expect("compiles");
    assert!(!walk(&mut c, "12a"));
}

#[test]
fn choice_allows_exactly_the_options() {
    let spec = ConstraintSpec::Choice(vec!["yes".into(), "no".into(), "a \"q\"\n".into()]);
    for ok in ["yes", "no", "a \"q\"\n"] {
        let mut c = compile(spec.clone()).expect("compiles");
        assert!(walk(&mut c, ok), "{ok:?}");
        assert!(c.is_finished());
    }
    for bad in ["ye!", "maybe", "yes "] {
        let mut c = compile(spec.clone()).expect("compiles");
        assert!(!walk(&mut c, bad), "{bad:?}");
    }
}

#[test]
fn lark_with_embedded_json_schema() {
    let g = r#"start: "<call>" %json{"type": "object", "properties": {"x": {"type": "integer"}}, "required": ["x"], "additionalProperties": false} "</call>""#;
    let spec = ConstraintSpec::Lark(g.into());
    let mut c = compile(spec.clone()).expect("compiles");
    assert!(walk(&mut c, r#"<call>{"x": 5}</call>"#));
    assert!(c.is_finished());
    let mut c = compile(spec).expect("compiles");
    assert!(!walk(&mut c, r#"<call>{"y""#));
}

#[test]
fn invalid_specs_are_errors() {
    let bad = [
        ConstraintSpec::Regex("(".into()),
        ConstraintSpec::Regex("a{5,2}".into()),
        ConstraintSpec::Choice(vec![]),
        ConstraintSpec::Lark("start: ( \"a\"".into()),
        ConstraintSpec::Lark("start: undefined_rule".into()),
        ConstraintSpec::Lark("  ".into()),
        ConstraintSpec::JsonSchema {
            schema: json!(3),
            strict: false,
        },
        ConstraintSpec::JsonSchema {
            schema: json!({"type": "no-such-type"}),
            strict: false,
        },
        ConstraintSpec::JsonSchema {
            schema: json!({"$ref": "#/$defs/missing"}),
            strict: false,
        },
        ConstraintSpec::JsonSchema {
            schema: json!({"type": "string", "format": "no-such-format"}),
            strict: true,
        },
        ConstraintSpec::JsonSchema {
            schema: json!({"type": "integer", "minimum": 5, "maximum": 1}),
            strict: true,
        },
    ];
    for spec in bad {
        match compile(spec.clone()) {
            Err(TextError::Constraint(msg)) => assert!(!msg.is_empty()),
            other => panic!("{spec:?} gave {other:?}"),
        }
    }
    // Without `strict`, a keyword llguidance cannot enforce is ignored.
    let lenient = ConstraintSpec::JsonSchema {
        schema: json!({"type": "string", "format": "no-such-format"}),
        strict: false,
    };
    assert!(compile(lenient).is_ok());
}

#[test]
fn mask_apply_blocks_disallowed_and_padded_ids() {
    let mut c = compile(ConstraintSpec::Choice(vec!["h".into()])).expect("compiles");
    let mask = c.mask().expect("mask");
    let tok = tokenizer();
    let h = tok.encode("h", false).expect("encode")[0];
    // A padded output layer: 64 ids past the vocabulary.
    let mut logits = vec![1.0f32; c.vocab_size() + 64];
    mask.apply(&mut logits);
    let finite: Vec<usize> = (0..logits.len())
        .filter(|&i| logits[i].is_finite())
        .collect();
    assert_eq!(finite, vec![h as usize]);
}

#[test]
fn clones_advance_independently() {
    let mut a = compile(ConstraintSpec::Choice(vec!["yes".into(), "no".into()])).expect("ok");
    let mut b = a.clone();
    assert!(walk(&mut a, "yes"));
    assert!(a.is_finished() && !b.is_finished());
    assert!(walk(&mut b, "no"));
}

#[test]
fn constraints_can_be_shared_across_threads() {
    fn send_sync<T: Send + Sync>() {}
    send_sync::<Constraint>();
    send_sync::<ConstraintCompiler>();
    send_sync::<TokenMask>();
}
