use super::*;

fn call(name: &str, args: &str) -> ParsedCall {
    ParsedCall {
        name: name.into(),
        arguments: args.into(),
    }
}

fn whole(kind: ToolParserKind, text: &str) -> Parsed {
    parse_whole(kind.new_parser().as_mut(), text)
}

/// xorshift: reproducible chunk sizes without a dependency.
fn chunkings(text: &str, seed: u64) -> Vec<String> {
    let mut s = seed | 1;
    let chars: Vec<char> = text.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        let n = 1 + (s % 7) as usize;
        let end = (i + n).min(chars.len());
        out.push(chars[i..end].iter().collect());
        i = end;
    }
    out
}

/// Streams `text` in many random chunkings; every one must equal the whole parse,
/// and names must come before their arguments.
fn assert_stream_equals_whole(kind: ToolParserKind, text: &str) -> Parsed {
    let want = whole(kind, text);
    for seed in 1..40u64 {
        let mut p = kind.new_parser();
        let mut all = ParserDelta::default();
        for piece in chunkings(text, seed) {
            all.extend(p.push(&piece));
        }
        all.extend(p.finish());
        let mut named = std::collections::HashSet::new();
        for d in &all.calls {
            if d.name.is_some() {
                named.insert(d.index);
            } else {
                assert!(named.contains(&d.index), "arguments before name: {all:?}");
            }
        }
        assert_eq!(collect(all), want, "{kind:?} seed {seed}: {text:?}");
    }
    want
}

#[test]
fn hermes_text_and_parallel_calls() {
    let text = "Let me check.\n<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\", \"units\": [\"c\"]}}\n</tool_call>\n<tool_call>\n{\"name\": \"get_time\", \"arguments\": {}}\n</tool_call>";
    let p = assert_stream_equals_whole(ToolParserKind::Hermes, text);
    assert_eq!(p.content, "Let me check.\n\n");
    assert_eq!(
        p.calls,
        vec![
            call("get_weather", r#"{"city":"Paris","units":["c"]}"#),
            call("get_time", "{}")
        ]
    );
}

#[test]
fn hermes_accepts_string_arguments_and_a_missing_close_at_the_end() {
    let text = r#"<tool_call>{"name": "f", "arguments": "{\"a\": 1}"}"#;
    let p = assert_stream_equals_whole(ToolParserKind::Hermes, text);
    assert_eq!(p.calls, vec![call("f", r#"{"a":1}"#)]);
    assert_eq!(p.content, "");
}

#[test]
fn hermes_malformed_calls_are_text() {
    for text in [
        "<tool_call>not json</tool_call> after",
        "<tool_call>{\"arguments\": {}}</tool_call>",
        "<tool_call>{\"name\": 5, \"arguments\": {}}</tool_call>",
        "<tool_call>{\"name\": \"f\", \"arguments\": [1]}</tool_call>",
        "<tool_call>{\"name\": \"f\", \"arguments\": {}} trailing</tool_call>",
        "<tool_call>{\"name\": \"f\", \"arguments\": {\"a\": \"unterminated}}</tool_call>",
        "<tool_call>{\"name\": \"f\", \"arguments\": {{{}</tool_call>",
        "<tool_call>{\"name\": \"f\" \"arguments\": {}}</tool_call>",
        "a <tool_ca",
        "}}}}]]]<tool_call>]",
    ] {
        let p = assert_stream_equals_whole(ToolParserKind::Hermes, text);
        assert!(p.calls.is_empty(), "{text}: {p:?}");
        assert_eq!(p.content, text, "all text comes back");
    }
}

#[test]
fn hermes_nested_quotes_and_braces_in_strings() {
    let text = r#"x<tool_call>{"name": "f", "arguments": {"q": "say \"}{\" </tool_call> <tool_call>", "n": {"m": [{}]}}}</tool_call>y"#;
    let p = assert_stream_equals_whole(ToolParserKind::Hermes, text);
    assert_eq!(p.content, "xy");
    assert_eq!(p.calls.len(), 1);
    let args: Value = serde_json::from_str(&p.calls[0].arguments).unwrap();
    assert_eq!(args["q"], "say \"}{\" </tool_call> <tool_call>");
}

#[test]
fn adversarial_inputs_finish_quickly_as_text() {
    let big_open = "{".repeat(1 << 20);
    let inputs = [
        format!("<tool_call>{big_open}"),
        format!("<tool_call>{{\"name\": \"{}", "\"".repeat(1 << 20)),
        "<tool_call>".repeat(50_000),
        format!("<tool_call>{{\"a\": \"{}", "\\".repeat(1 << 20)),
        big_open.clone(),
        format!("[TOOL_CALLS]{}", "[".repeat(1 << 20)),
    ];
    let start = std::time::Instant::now();
    for text in &inputs {
        for kind in [
            ToolParserKind::Hermes,
            ToolParserKind::Llama3Json,
            ToolParserKind::Mistral,
        ] {
            let p = whole(kind, text);
            assert!(p.calls.is_empty());
            assert_eq!(&p.content, text);
            // Streamed in 1 KiB pieces too (linear work: no rescans of the buffer).
            let mut parser = kind.new_parser();
            let mut out = ParserDelta::default();
            let chars: Vec<char> = text.chars().collect();
            for piece in chars.chunks(1024) {
                out.extend(parser.push(&piece.iter().collect::<String>()));
            }
            out.extend(parser.finish());
            assert_eq!(&collect(out).content, text);
        }
    }
    // Generous: linear work takes well under a second even unoptimized.
    assert!(start.elapsed().as_secs() < 20, "{:?}", start.elapsed());
}

#[test]
fn llama3_json_calls_and_plain_text() {
    let text = "<|python_tag|>{\"name\": \"get_weather\", \"parameters\": {\"city\": \"Oslo\"}}; {\"name\": \"get_time\", \"parameters\": {\"tz\": \"CET\"}}";
    let p = assert_stream_equals_whole(ToolParserKind::Llama3Json, text);
    assert_eq!(
        p.calls,
        vec![
            call("get_weather", r#"{"city":"Oslo"}"#),
            call("get_time", r#"{"tz":"CET"}"#)
        ]
    );
    assert_eq!(p.content, "");
    let p = assert_stream_equals_whole(
        ToolParserKind::Llama3Json,
        "  {\"name\": \"f\", \"parameters\": {}}\n",
    );
    assert_eq!((p.calls.len(), p.content.as_str()), (1, ""));
    for text in [
        "The answer is {\"name\": \"f\"}",
        "{\"not_a_call\": 1} and more",
        "{\"name\": \"f\", \"parameters\": {}} then words",
        "{unbalanced",
        "<|python_ta",
    ] {
        let p = assert_stream_equals_whole(ToolParserKind::Llama3Json, text);
        let want_calls = usize::from(text.starts_with("{\"name\": \"f\", \"parameters\""));
        assert_eq!(p.calls.len(), want_calls, "{text}");
        if want_calls == 0 {
            assert_eq!(p.content, text);
        } else {
            assert_eq!(p.content, " then words");
        }
    }
}

#[test]
fn mistral_array_of_calls() {
    let text = "Sure. [TOOL_CALLS][{\"name\": \"a\", \"arguments\": {\"x\": 1}}, {\"name\": \"b\", \"arguments\": {}}]";
    let p = assert_stream_equals_whole(ToolParserKind::Mistral, text);
    assert_eq!(p.content, "Sure. ");
    assert_eq!(p.calls, vec![call("a", r#"{"x":1}"#), call("b", "{}")]);
    // Without the marker (skipped as a special token): a leading array is the calls.
    let bare = " [{\"name\": \"a\", \"arguments\": {}}]";
    let p = assert_stream_equals_whole(ToolParserKind::Mistral, bare);
    assert_eq!((p.calls, p.content.as_str()), (vec![call("a", "{}")], ""));
    for text in ["[1, 2] are numbers", "  plain [x]", "[{\"name\": 1}]"] {
        let p = assert_stream_equals_whole(ToolParserKind::Mistral, text);
        assert_eq!((p.calls.len(), p.content.as_str()), (0, text));
    }
    let bad = "[TOOL_CALLS][{\"name\": \"a\"}, 3]";
    let p = assert_stream_equals_whole(ToolParserKind::Mistral, bad);
    assert_eq!((p.calls.len(), p.content.as_str()), (0, bad));
}

#[test]
fn chosen_by_name_or_from_the_model() {
    assert_eq!(
        ToolParserKind::from_name("hermes").unwrap(),
        Some(ToolParserKind::Hermes)
    );
    assert_eq!(ToolParserKind::from_name("none").unwrap(), None);
    assert!(ToolParserKind::from_name("pythonic").is_err());
    for k in [
        ToolParserKind::Hermes,
        ToolParserKind::Llama3Json,
        ToolParserKind::Mistral,
    ] {
        assert_eq!(ToolParserKind::from_name(k.name()).unwrap(), Some(k));
    }
    let d = ToolParserKind::detect;
    assert_eq!(
        d(None, "{{ tools }} <tool_call>"),
        Some(ToolParserKind::Hermes)
    );
    assert_eq!(d(Some("qwen3"), "plain"), Some(ToolParserKind::Hermes));
    assert_eq!(
        d(Some("llama"), "{% if tools %}{% endif %}"),
        Some(ToolParserKind::Llama3Json)
    );
    assert_eq!(d(Some("llama"), "<|im_start|>{{ m.content }}"), None);
    assert_eq!(d(None, "[TOOL_CALLS]"), Some(ToolParserKind::Mistral));
}

/// Work is linear in the input (a complexity check, not a speed one): 4x the text may
/// not take much more than 4x the time; a quadratic rescan takes 16x (the first
/// version of these parsers did). Each input is many calls, failed calls or
/// markers in one piece, or streamed whitespace.
#[test]
fn work_is_linear_in_the_input() {
    type Make = fn(usize) -> String;
    let cases: [(ToolParserKind, Make); 5] = [
        (ToolParserKind::Hermes, |n| "<tool_call>".repeat(n)),
        (ToolParserKind::Hermes, |n| {
            "<tool_call>{\"name\": \"f\", \"arguments\": {}}</tool_call>".repeat(n / 4)
        }),
        (ToolParserKind::Llama3Json, |n| {
            "{\"name\": \"f\", \"parameters\": {}}; ".repeat(n / 4)
        }),
        (ToolParserKind::Mistral, |n| " ".repeat(n * 10)),
        (ToolParserKind::Llama3Json, |n| " ".repeat(n * 10)),
    ];
    for (kind, make) in cases {
        let time = |n: usize| {
            let text = make(n);
            let start = std::time::Instant::now();
            let mut p = kind.new_parser();
            // Whole, then streamed in small pieces.
            let whole = parse_whole(kind.new_parser().as_mut(), &text);
            let mut all = ParserDelta::default();
            for piece in text.as_bytes().chunks(7) {
                all.extend(p.push(std::str::from_utf8(piece).expect("ascii")));
            }
            all.extend(p.finish());
            assert_eq!(collect(all), whole);
            start.elapsed().as_secs_f64()
        };
        // The fastest of three runs, so a busy machine does not decide it.
        let best = |n| (0..3).map(|_| time(n)).fold(f64::MAX, f64::min);
        let small = best(50_000).max(1e-3);
        let big = best(200_000);
        assert!(
            big < small * 10.0,
            "{kind:?}: 50k {small:.4}s, 200k {big:.4}s"
        );
    }
}

/// Random texts built from the formats' own pieces (markers, braces, quotes,
/// escapes, separators, valid calls): no parser panics, every chunking gives the
/// whole parse, an answer without calls comes back as exactly its text, and every
/// call's arguments are a JSON object.
#[test]
fn random_structural_text_never_breaks_the_parsers() {
    const PIECES: [&str; 22] = [
        "<tool_call>{\"name\": \"f\", \"arguments\": {}}</tool_call>",
        "[TOOL_CALLS][{\"name\": \"h\", \"arguments\": {\"k\": [1]}}]",
        "<tool_call>",
        "</tool_call>",
        "[TOOL_CALLS]",
        "<|python_tag|>",
        "{",
        "}",
        "[",
        "]",
        "\"",
        "\\",
        ":",
        ",",
        ";",
        " ",
        "\n",
        "\"name\"",
        "\"arguments\": {\"a\": 1}",
        "{\"name\": \"f\", \"arguments\": {\"x\": \"}\"}}",
        "{\"name\": \"g\", \"parameters\": {}}",
        "é",
    ];
    let mut s = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = move || {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        s
    };
    let mut with_calls = [0usize; 3];
    for _ in 0..400 {
        let n = 1 + (next() % 24) as usize;
        let text: String = (0..n)
            .map(|_| PIECES[(next() % PIECES.len() as u64) as usize])
            .collect();
        for (k, kind) in [
            ToolParserKind::Hermes,
            ToolParserKind::Llama3Json,
            ToolParserKind::Mistral,
        ]
        .into_iter()
        .enumerate()
        {
            let p = assert_stream_equals_whole(kind, &text);
            with_calls[k] += usize::from(!p.calls.is_empty());
            if p.calls.is_empty() {
                assert_eq!(p.content, text, "{kind:?}");
            }
            for c in &p.calls {
                let v: Value = serde_json::from_str(&c.arguments).expect("arguments JSON");
                assert!(v.is_object(), "{kind:?} {text:?}: {c:?}");
            }
        }
    }
    // The texts do reach the call paths, not only the text ones.
    assert!(with_calls.iter().all(|&n| n >= 5), "{with_calls:?}");
}
