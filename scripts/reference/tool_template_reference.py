#!/usr/bin/env python3
"""Reference renders of tool-calling conversations by HF transformers' apply_chat_template,
for crates/hearth-text/tests/tool_templates.rs (hearth must match byte for byte).

The templates are the real ones already pinned in
crates/hearth-text/tests/fixtures/family_templates.json (see template_reference.py for
where they come from); this script renders conversations with `tools`, assistant
`tool_calls` and `tool` results through them. Messages are written exactly as hearth
hands them to the template: `content` a string ("" on a tool-call turn), `tool_calls`
as `[{id, type: "function", function: {name, arguments: <mapping>}}]`, tool results with
`tool_call_id` and `name`.

Requirements: transformers (4.46.3 and 4.51.3 give the same renders), jinja2 3.1.x.
Usage: /tmp/refvenv/bin/python scripts/reference/tool_template_reference.py [--out PATH]
"""

import argparse
import json
import os

import transformers
from transformers import PreTrainedTokenizerFast

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
FIXTURES = os.path.join(REPO, "crates/hearth-text/tests/fixtures")
TINY_TOKENIZER = os.path.join(FIXTURES, "hf_tiny/tokenizer.json")
FAMILIES = ["llama3.1", "llama3.2", "qwen2.5", "qwen3"]
DATE = "26 Jul 2024"

WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather for a city <with> \"quotes\" & ünïcode ☀",
        "parameters": {
            "type": "object",
            "properties": {
                "city": {"type": "string", "description": "City name"},
                "units": {"type": "string", "enum": ["celsius", "fahrenheit"], "default": "celsius"},
                "days": {"type": "integer", "minimum": 1, "maximum": 7},
                "threshold": {"type": "number", "default": 0.5},
                "tags": {"type": "array", "items": {"type": "string"}},
            },
            "required": ["city"],
        },
    },
}
TIME = {
    "type": "function",
    "function": {
        "name": "get_time",
        "description": "Local time",
        "parameters": {"type": "object", "properties": {"tz": {"type": "string"}}, "required": []},
    },
}
TOOLS = [WEATHER, TIME]

SYS = {"role": "system", "content": "You are a helpful assistant."}
U = {"role": "user", "content": "What's the weather in Paris?"}
CALL = {
    "role": "assistant",
    "content": "",
    "tool_calls": [{"id": "call_1", "type": "function",
                    "function": {"name": "get_weather",
                                 "arguments": {"city": "Paris", "units": "celsius", "days": 2, "threshold": 0.25}}}],
}
RESULT = {"role": "tool", "content": "{\"temperature\": 21.5, \"sky\": \"clear\"}",
          "tool_call_id": "call_1", "name": "get_weather"}
PARALLEL = {
    "role": "assistant",
    "content": "Checking both.",
    "tool_calls": [
        CALL["tool_calls"][0],
        {"id": "call_2", "type": "function", "function": {"name": "get_time", "arguments": {"tz": "CET"}}},
    ],
}
RESULT2 = {"role": "tool", "content": "14:05", "tool_call_id": "call_2", "name": "get_time"}
ANSWER = {"role": "assistant", "content": "It is 21.5 °C and clear in Paris."}
U2 = {"role": "user", "content": "Thanks!"}

# (name, messages, tools or None, add_generation_prompt)
CASES = [
    ("tools_system_user", [SYS, U], TOOLS, True),
    ("tools_user_only", [U], TOOLS, True),
    ("tool_round_trip", [SYS, U, CALL, RESULT], TOOLS, True),
    ("tool_round_trip_answered", [U, CALL, RESULT, ANSWER, U2], TOOLS, True),
    ("history_without_tools", [U, CALL, RESULT], None, True),
    ("parallel_calls", [SYS, U, PARALLEL, RESULT, RESULT2], TOOLS, True),
]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=os.path.join(FIXTURES, "tool_templates.json"))
    args = ap.parse_args()
    with open(os.path.join(FIXTURES, "family_templates.json"), encoding="utf-8") as f:
        families = {fam["family"]: fam for fam in json.load(f)["families"]}
    out = []
    for name in FAMILIES:
        fam = families[name]
        tok = PreTrainedTokenizerFast(tokenizer_file=TINY_TOKENIZER, bos_token=fam["bos_token"],
                                      eos_token=fam["eos_token"], chat_template=fam["template"])
        cases = []
        for cname, msgs, tools, gen in CASES:
            kwargs = {"date_string": DATE} if "date_string" in fam["template"] else {}
            case = {"name": cname, "messages": msgs, "tools": tools, "add_generation_prompt": gen,
                    "extra": kwargs}
            try:
                case["expected"] = tok.apply_chat_template(
                    msgs, tools=tools, tokenize=False, add_generation_prompt=gen, **kwargs)
            except Exception as e:  # the template's raise_exception (jinja2 TemplateError)
                case["expected_error"] = str(e)
            cases.append(case)
        out.append({"family": name, "cases": cases})
    doc = {"format": "hearth-tool-templates/1", "transformers": transformers.__version__,
           "templates_from": "family_templates.json", "families": out}
    with open(args.out, "w", encoding="utf-8") as f:
        json.dump(doc, f, indent=1, ensure_ascii=False)
        f.write("\n")
    print(f"wrote {args.out}: {sum(len(f['cases']) for f in out)} cases")


if __name__ == "__main__":
    main()
