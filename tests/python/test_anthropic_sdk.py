"""Drives a running hearth server with the official `anthropic` Python SDK.

Usage: python3 tests/python/test_anthropic_sdk.py BASE_URL MODEL
Exits non-zero on the first failed check.
"""

import sys

import anthropic


def main(base_url: str, model: str) -> None:
    # The SDK appends /v1/messages itself; no retries so errors surface at once.
    client = anthropic.Anthropic(base_url=base_url.rstrip("/"), api_key="unused", max_retries=0)
    messages = [{"role": "user", "content": "What is the capital of France?"}]
    common = dict(
        model=model,
        max_tokens=16,
        system="You are a helpful assistant.",
        messages=messages,
        # This SDK version has no sampling arguments; greedy goes in the body.
        extra_body={"temperature": 0},
        metadata={"user_id": "sdk-test"},
    )

    msg = client.messages.create(**common)
    assert msg.type == "message" and msg.role == "assistant", msg
    assert msg.id.startswith("msg_"), msg
    assert msg.model == model, msg
    assert len(msg.content) == 1 and msg.content[0].type == "text", msg
    text = msg.content[0].text
    assert text, msg
    assert msg.stop_reason in ("end_turn", "max_tokens"), msg
    assert msg.stop_sequence is None, msg
    u = msg.usage
    assert u.input_tokens > 10 and 0 < u.output_tokens <= 16, u
    if msg.stop_reason == "max_tokens":
        assert u.output_tokens == 16, u

    count = client.messages.count_tokens(
        model=model, system=common["system"], messages=messages
    )
    assert count.input_tokens == u.input_tokens, (count, u)

    parts = []
    with client.messages.stream(**common) as stream:
        for chunk in stream.text_stream:
            parts.append(chunk)
        final = stream.get_final_message()
    assert "".join(parts) == text, (parts, text)
    assert final.content[0].text == text, final
    assert final.stop_reason == msg.stop_reason, final
    assert final.usage.input_tokens == u.input_tokens, final.usage
    assert final.usage.output_tokens == u.output_tokens, final.usage

    words = text.split()
    assert len(words) >= 3, f"answer too short to cut: {text!r}"
    stop = " " + words[2]
    cut = client.messages.create(**common, stop_sequences=["zzz-never", stop])
    assert cut.stop_reason == "stop_sequence", cut
    assert cut.stop_sequence == stop, cut
    assert cut.content[0].text == text[: text.index(stop)], cut

    try:
        client.messages.create(**{**common, "model": "no-such-model"})
        raise AssertionError("unknown model accepted")
    except anthropic.NotFoundError as e:
        assert e.body["error"]["type"] == "not_found_error", e.body
    try:
        client.messages.create(**{**common, "max_tokens": 0})
        raise AssertionError("max_tokens=0 accepted")
    except anthropic.BadRequestError as e:
        assert e.body["error"]["type"] == "invalid_request_error", e.body
    print("anthropic SDK checks passed")


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit("usage: test_anthropic_sdk.py BASE_URL MODEL")
    main(sys.argv[1], sys.argv[2])
