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

    check_n_seed_logprobs(client, model, messages)

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


def check_n_seed_logprobs(client, model, messages) -> None:
    """n=3 with a seed: three indexed choices that a second request reproduces;
    logprobs are log-probabilities (<= 0), the chosen token is among its top
    alternatives, and the alternatives' probabilities sum to at most 1."""
    import math

    kw = dict(model=model, messages=messages, temperature=1.0, max_tokens=8, seed=42)
    a = client.chat.completions.create(n=3, **kw)
    b = client.chat.completions.create(n=3, **kw)
    assert [c.index for c in a.choices] == [0, 1, 2], a.choices
    texts = [c.message.content for c in a.choices]
    assert texts == [c.message.content for c in b.choices], (texts, b.choices)
    assert len(set(texts)) > 1, texts
    assert a.usage.completion_tokens <= 24, a.usage

    r = client.chat.completions.create(
        model=model, messages=messages, temperature=0, max_tokens=6, logprobs=True, top_logprobs=5
    )
    content = r.choices[0].logprobs.content
    assert len(content) == r.usage.completion_tokens, (content, r.usage)
    for t in content:
        assert t.logprob <= 0.0, t
        tops = t.top_logprobs
        assert len(tops) == 5, tops
        assert [x.logprob for x in tops] == sorted((x.logprob for x in tops), reverse=True), tops
        # Greedy: the chosen token is the most likely one.
        assert t.token == tops[0].token and abs(t.logprob - tops[0].logprob) < 1e-4, t
        total = sum(math.exp(x.logprob) for x in tops)
        assert 0.0 < total <= 1.0 + 1e-4, total
        assert bytes(t.bytes).decode("utf-8", "replace") == t.token or t.bytes, t
    text = "".join(t.token for t in content)
    assert text == r.choices[0].message.content, (text, r.choices[0].message.content)

    c = client.completions.create(
        model=model, prompt="The sky is", max_tokens=4, temperature=0, logprobs=3, n=2, seed=1
    )
    assert len(c.choices) == 2 and c.choices[0].text == c.choices[1].text, c.choices
    lp = c.choices[0].logprobs
    assert len(lp.tokens) == len(lp.token_logprobs) == 4, lp
    assert all(x <= 0.0 for x in lp.token_logprobs), lp
    assert all(len(t) <= 3 for t in lp.top_logprobs), lp


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: test_openai_sdk.py BASE_URL")
    main(sys.argv[1])
