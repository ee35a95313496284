"""Function tools on /v1/responses through the official `openai` Python SDK, against a
hearth server started with a tool-call parser and a template that renders tools.

Usage: python3 tests/python/test_responses_tools_sdk.py BASE_URL MODEL
A forced call, its result sent back as a function_call_output item, the answer after
it, and a streamed forced call whose argument deltas add up. Prints `ok` at the end.
"""

import json
import sys

import openai

WEATHER = {
    "type": "function",
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
    "strict": True,
}


def check_args(arguments: str) -> dict:
    args = json.loads(arguments)
    assert set(args) == {"city", "days"}, args
    assert isinstance(args["city"], str) and len(args["city"]) <= 30, args
    assert isinstance(args["days"], int) and 1 <= args["days"] <= 7, args
    return args


def main(base_url: str, model: str) -> None:
    client = openai.OpenAI(base_url=base_url.rstrip("/") + "/v1", api_key="unused", max_retries=0)
    question = [{"role": "user", "content": "What is the weather in Paris for 3 days?"}]
    forced = {"type": "function", "name": "get_weather"}
    common = dict(model=model, tools=[WEATHER], temperature=0, max_output_tokens=60)

    r = client.responses.create(input=question, tool_choice=forced, **common)
    calls = [o for o in r.output if o.type == "function_call"]
    assert len(calls) == 1, r.output
    call = calls[0]
    assert call.name == "get_weather" and call.call_id and call.status == "completed", call
    check_args(call.arguments)
    assert r.status == "completed", r
    assert r.tools[0].name == "get_weather", r.tools

    # The round trip: the call and its output go back as input items.
    follow = question + [
        {"type": "function_call", "call_id": call.call_id, "name": call.name,
         "arguments": call.arguments},
        {"type": "function_call_output", "call_id": call.call_id,
         "output": json.dumps({"forecast": "sunny", "high_c": 21})},
    ]
    r2 = client.responses.create(input=follow, tool_choice="none", **common)
    assert r2.output[0].type == "message", r2.output
    assert r2.output_text, r2
    assert r2.usage.input_tokens > r.usage.input_tokens, (r.usage, r2.usage)

    # The same round trip through previous_response_id: only the output is sent.
    r3 = client.responses.create(
        previous_response_id=r.id,
        input=[{"type": "function_call_output", "call_id": call.call_id,
                "output": json.dumps({"forecast": "sunny", "high_c": 21})}],
        tool_choice="none",
        **common,
    )
    assert r3.output_text == r2.output_text, (r3.output_text, r2.output_text)

    # Streamed: the call's item is added, its argument deltas add up to the final
    # arguments, and the finished response holds the same call.
    events = list(client.responses.create(input=question, tool_choice=forced, stream=True, **common))
    kinds = [e.type for e in events]
    assert kinds[0] == "response.created" and kinds[-1] == "response.completed", kinds
    added = [e for e in events if e.type == "response.output_item.added"]
    assert added and added[0].item.type == "function_call", added
    deltas = "".join(e.delta for e in events if e.type == "response.function_call_arguments.delta")
    done = [e for e in events if e.type == "response.function_call_arguments.done"]
    assert len(done) == 1 and done[0].arguments == deltas, (done, deltas)
    final = events[-1].response
    streamed_calls = [o for o in final.output if o.type == "function_call"]
    assert streamed_calls[0].arguments == call.arguments, (streamed_calls, call)
    assert [e.sequence_number for e in events] == list(range(len(events)))

    # A tool type hearth does not run is a 400.
    try:
        client.responses.create(model=model, input="x", tools=[{"type": "web_search"}])
        raise AssertionError("expected a 400")
    except openai.BadRequestError as e:
        assert "web_search" in str(e), e
    print("ok")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
