"""Tool use through the official `anthropic` Python SDK against a running hearth server
(started with a tool-call parser and a template that renders tools).

Usage: python3 tests/python/test_anthropic_tools_sdk.py BASE_URL MODEL
A full round trip (forced tool_use -> tool_result -> answer) and a streamed tool_use
that the SDK's stream helper assembles. Exits non-zero on the first failed check.
"""

import sys

import anthropic

WEATHER = {
    "name": "get_weather",
    "description": "Get the current weather for a city",
    "input_schema": {
        "type": "object",
        "properties": {
            "city": {"type": "string", "maxLength": 30},
            "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
        },
        "required": ["city", "unit"],
        "additionalProperties": False,
    },
}


def check_input(inp) -> None:
    assert isinstance(inp, dict) and set(inp) == {"city", "unit"}, inp
    assert isinstance(inp["city"], str) and len(inp["city"]) <= 30, inp
    assert inp["unit"] in ("celsius", "fahrenheit"), inp


def main(base_url: str, model: str) -> None:
    client = anthropic.Anthropic(base_url=base_url.rstrip("/"), api_key="unused", max_retries=0)
    messages = [{"role": "user", "content": "What is the weather in Paris?"}]
    common = dict(model=model, max_tokens=60, tools=[WEATHER], extra_body={"temperature": 0})

    msg = client.messages.create(
        messages=messages, tool_choice={"type": "tool", "name": "get_weather"}, **common
    )
    assert msg.stop_reason == "tool_use", msg
    uses = [b for b in msg.content if b.type == "tool_use"]
    assert len(uses) == 1, msg
    use = uses[0]
    assert use.id.startswith("toolu_") and use.name == "get_weather", use
    check_input(use.input)

    # `any` forces a call too.
    msg_any = client.messages.create(messages=messages, tool_choice={"type": "any"}, **common)
    assert msg_any.stop_reason == "tool_use", msg_any
    check_input([b for b in msg_any.content if b.type == "tool_use"][0].input)

    # The round trip: tool_use and tool_result go back; the model answers in text.
    follow = messages + [
        {"role": "assistant", "content": [b.model_dump(exclude_none=True) for b in msg.content]},
        {
            "role": "user",
            "content": [{"type": "tool_result", "tool_use_id": use.id, "content": "Sunny, 21 degrees"}],
        },
    ]
    answer = client.messages.create(
        messages=follow, tool_choice={"type": "none"}, **{**common, "max_tokens": 24}
    )
    assert answer.stop_reason in ("end_turn", "max_tokens"), answer
    assert [b.type for b in answer.content] == ["text"], answer
    assert answer.content[0].text.strip(), answer
    assert answer.usage.input_tokens > msg.usage.input_tokens, (msg.usage, answer.usage)

    # Streamed: the SDK assembles the tool_use block from input_json_delta events.
    with client.messages.stream(
        messages=messages, tool_choice={"type": "tool", "name": "get_weather"}, **common
    ) as stream:
        kinds = [event.type for event in stream]
        final = stream.get_final_message()
    assert kinds[0] == "message_start", kinds
    assert "content_block_start" in kinds and "content_block_stop" in kinds, kinds
    assert kinds[-2:] == ["message_delta", "message_stop"], kinds
    assert final.stop_reason == "tool_use", final
    streamed = [b for b in final.content if b.type == "tool_use"]
    assert len(streamed) == 1 and streamed[0].name == "get_weather", final
    assert streamed[0].id.startswith("toolu_"), final
    assert streamed[0].input == use.input, (streamed[0].input, use.input)
    print("anthropic tools SDK checks passed")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
