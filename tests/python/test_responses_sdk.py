"""Drives hearth's /v1/responses with the official `openai` Python SDK.

Usage: python3 tests/python/test_responses_sdk.py BASE_URL
Exits non-zero on the first failed check; prints `ok` at the end.
"""

import sys

import openai


def main(base_url: str) -> None:
    client = openai.OpenAI(base_url=base_url.rstrip("/") + "/v1", api_key="unused")
    model = client.models.list().data[0].id

    # Plain text input, not streamed.
    r = client.responses.create(
        model=model,
        input="Name a colour.",
        instructions="Answer in one word.",
        temperature=0,
        max_output_tokens=12,
    )
    assert r.object == "response", r
    assert r.status in ("completed", "incomplete"), r
    assert r.output[0].type == "message" and r.output[0].role == "assistant", r
    assert r.output_text, r
    assert r.output_text == r.output[0].content[0].text, r
    assert 0 < r.usage.output_tokens <= 12, r.usage
    assert r.usage.total_tokens == r.usage.input_tokens + r.usage.output_tokens, r.usage
    if r.status == "incomplete":
        assert r.incomplete_details.reason == "max_output_tokens", r

    # The same request streamed: the events come in OpenAI's order and the text
    # equals the non-streamed answer (greedy).
    events = list(
        client.responses.create(
            model=model,
            input="Name a colour.",
            instructions="Answer in one word.",
            temperature=0,
            max_output_tokens=12,
            stream=True,
        )
    )
    kinds = [e.type for e in events]
    assert kinds[:4] == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
    ], kinds
    assert kinds[-4:-1] == [
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
    ], kinds
    assert kinds[-1] in ("response.completed", "response.incomplete"), kinds
    assert [e.sequence_number for e in events] == list(range(len(events))), events
    streamed = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    assert streamed == r.output_text, (streamed, r.output_text)
    final = events[-1].response
    assert final.output_text == r.output_text, final

    # Continuing a stored response: the earlier turn is in the prompt, so the
    # second answer's input is longer than the first's.
    r2 = client.responses.create(
        model=model,
        input=[{"role": "user", "content": [{"type": "input_text", "text": "Another."}]}],
        previous_response_id=r.id,
        temperature=0,
        max_output_tokens=8,
    )
    assert r2.previous_response_id == r.id, r2
    assert r2.usage.input_tokens > r.usage.input_tokens, (r.usage, r2.usage)

    # An unknown previous response is a 404 in OpenAI's error shape.
    try:
        client.responses.create(model=model, input="x", previous_response_id="resp_nope")
        raise AssertionError("expected an error")
    except openai.NotFoundError as e:
        assert "resp_nope" in str(e), e
    print("ok")


if __name__ == "__main__":
    main(sys.argv[1])
