"""Drives a running hearth server with the official `openai` Python SDK.

Usage: python3 tests/python/test_openai_sdk.py BASE_URL   (e.g. http://127.0.0.1:8000)
Exits non-zero on the first failed check.
"""

import sys

import openai


def main(base_url: str) -> None:
    client = openai.OpenAI(base_url=base_url.rstrip("/") + "/v1", api_key="unused")

    models = client.models.list()
    model = models.data[0].id
    assert models.data[0].object == "model", models

    messages = [{"role": "user", "content": "Say hello in one short sentence."}]
    resp = client.chat.completions.create(
        model=model, messages=messages, temperature=0, max_tokens=16
    )
    choice = resp.choices[0]
    assert resp.object == "chat.completion", resp
    assert choice.message.role == "assistant", choice
    assert choice.message.content, choice
    assert choice.finish_reason in ("stop", "length"), choice
    u = resp.usage
    assert u.prompt_tokens > 0 and 0 < u.completion_tokens <= 16, u
    assert u.total_tokens == u.prompt_tokens + u.completion_tokens, u

    stream = client.chat.completions.create(
        model=model,
        messages=messages,
        temperature=0,
        max_tokens=16,
        stream=True,
        stream_options={"include_usage": True},
    )
    parts, finish, usage = [], None, None
    for chunk in stream:
        assert chunk.object == "chat.completion.chunk", chunk
        if chunk.usage is not None:
            usage = chunk.usage
        for c in chunk.choices:
            if c.delta.content:
                parts.append(c.delta.content)
            if c.finish_reason is not None:
                finish = c.finish_reason
    text = "".join(parts)
    assert text == choice.message.content, (text, choice.message.content)
    assert finish == choice.finish_reason, finish
    assert usage is not None and usage.completion_tokens == u.completion_tokens, usage

    comp = client.completions.create(
        model=model, prompt="The sky is", max_tokens=4, temperature=0
    )
    assert comp.choices[0].text and comp.usage.completion_tokens == 4, comp

    try:
        client.chat.completions.create(model="no-such-model", messages=messages)
        raise AssertionError("unknown model accepted")
    except openai.NotFoundError:
        pass
    try:
        client.chat.completions.create(model=model, messages=messages, max_tokens=-1)
        raise AssertionError("negative max_tokens accepted")
    except openai.BadRequestError:
        pass
    print("openai SDK checks passed")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: test_openai_sdk.py BASE_URL")
    main(sys.argv[1])
