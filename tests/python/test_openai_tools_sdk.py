"""Tool calling through the official `openai` Python SDK against a running hearth server
(started with a tool-call parser and a template that renders tools).

Usage: python3 tests/python/test_openai_tools_sdk.py BASE_URL MODEL
A full round trip (forced call -> tool result -> answer), `required`, and a streamed call
whose deltas the SDK objects carry. Exits non-zero on the first failed check.
"""

import json
import sys

import openai

WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Get the current weather for a city",
        "parameters": {
            "type": "object",
            "properties": {
                "city": {"type": "string", "maxLength": 30},
                "days": {"type": "integer", "minimum": 1, "maximum": 7},
            },
            "required": ["city", "days"],
            "additionalProperties": False,
        },
    },
}
TIME = {
    "type": "function",
    "function": {
        "name": "get_time",
        "description": "Get the local time in a time zone",
        "parameters": {
            "type": "object",
            "properties": {"tz": {"type": "string", "enum": ["UTC", "CET", "PST"]}},
            "required": ["tz"],
            "additionalProperties": False,
        },
    },
}


def check_weather_args(arguments: str) -> dict:
    args = json.loads(arguments)
    assert isinstance(args, dict) and set(args) == {"city", "days"}, args
    assert isinstance(args["city"], str) and len(args["city"]) <= 30, args
    assert isinstance(args["days"], int) and 1 <= args["days"] <= 7, args
    return args


def main(base_url: str, model: str) -> None:
    client = openai.OpenAI(base_url=base_url.rstrip("/") + "/v1", api_key="unused", max_retries=0)
    messages = [{"role": "user", "content": "What is the weather in Paris for the next 3 days?"}]
    named = {"type": "function", "function": {"name": "get_weather"}}
    common = dict(model=model, tools=[WEATHER, TIME], temperature=0, max_tokens=60)

    r = client.chat.completions.create(messages=messages, tool_choice=named, **common)
    choice = r.choices[0]
    assert choice.finish_reason == "tool_calls", r
    calls = choice.message.tool_calls
    assert calls is not None and len(calls) == 1, r
    call = calls[0]
    assert call.type == "function" and call.id.startswith("call_"), call
    assert call.function.name == "get_weather", call
    args = check_weather_args(call.function.arguments)

    # `required`: some tool is called, with arguments valid for that tool.
    r_any = client.chat.completions.create(messages=messages, tool_choice="required", **common)
    assert r_any.choices[0].finish_reason == "tool_calls", r_any
    any_call = r_any.choices[0].message.tool_calls[0]
    assert any_call.function.name in ("get_weather", "get_time"), any_call
    if any_call.function.name == "get_weather":
        check_weather_args(any_call.function.arguments)
    else:
        assert json.loads(any_call.function.arguments)["tz"] in ("UTC", "CET", "PST"), any_call

    # The round trip: the call and its result go back; the model answers in text.
    follow = messages + [
        choice.message.model_dump(exclude_none=True),
        {"role": "tool", "tool_call_id": call.id, "content": json.dumps({"sky": "sunny", "celsius": 21})},
    ]
    r2 = client.chat.completions.create(
        messages=follow, tool_choice="none", **{**common, "max_tokens": 24}
    )
    answer = r2.choices[0]
    assert answer.message.tool_calls is None, r2
    assert isinstance(answer.message.content, str) and answer.message.content.strip(), r2
    assert answer.finish_reason in ("stop", "length"), r2
    assert r2.usage.prompt_tokens > r.usage.prompt_tokens, (r.usage, r2.usage)

    # Streamed: the same call, assembled from the SDK's delta objects.
    stream = client.chat.completions.create(
        messages=messages, tool_choice=named, stream=True, **common
    )
    ids, names, arguments, finish, content = {}, {}, {}, None, ""
    for chunk in stream:
        if not chunk.choices:
            continue
        c = chunk.choices[0]
        content += c.delta.content or ""
        for tc in c.delta.tool_calls or []:
            if tc.id is not None:
                assert tc.index not in ids, "id only in a call's first delta"
                ids[tc.index] = tc.id
                names[tc.index] = tc.function.name
            else:
                assert tc.function.name is None, tc
            arguments[tc.index] = arguments.get(tc.index, "") + (tc.function.arguments or "")
        finish = c.finish_reason or finish
    assert finish == "tool_calls", finish
    assert content == "", content
    assert list(ids) == [0] and ids[0].startswith("call_"), ids
    assert names[0] == "get_weather", names
    assert check_weather_args(arguments[0]) == args, (arguments, args)
    print("openai tools SDK checks passed")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
