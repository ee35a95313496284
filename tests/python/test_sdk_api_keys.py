"""Drives a keyed hearth server with the official `openai` and `anthropic` SDKs.

Usage: python3 tests/python/test_sdk_api_keys.py BASE_URL MODEL KEY SCOPED_KEY
KEY may use MODEL; SCOPED_KEY is limited to another model. Exits non-zero on the
first failed check; prints "openai ok" and "anthropic ok".
"""

import sys

import anthropic
import openai


def expect(exc_type, fn):
    try:
        fn()
    except exc_type as e:
        return e
    raise AssertionError(f"expected {exc_type.__name__}")


def check_openai(base_url: str, model: str, key: str, scoped: str) -> None:
    def client(api_key):
        return openai.OpenAI(base_url=base_url.rstrip("/") + "/v1", api_key=api_key, max_retries=0)

    def chat(api_key):
        return client(api_key).chat.completions.create(
            model=model, messages=[{"role": "user", "content": "Say hi."}], max_tokens=2, temperature=0
        )

    r = chat(key)
    assert r.choices[0].message.role == "assistant", r
    assert r.usage.completion_tokens <= 2, r.usage
    models = client(key).models.list()
    assert any(m.id == model for m in models.data), models
    e = expect(openai.AuthenticationError, lambda: chat("hth_" + "0" * 64))
    assert e.status_code == 401 and e.code == "invalid_api_key", e
    e = expect(openai.PermissionDeniedError, lambda: chat(scoped))
    assert e.status_code == 403 and model in str(e), e
    print("openai ok")


def check_anthropic(base_url: str, model: str, key: str, scoped: str) -> None:
    def create(api_key):
        c = anthropic.Anthropic(base_url=base_url.rstrip("/"), api_key=api_key, max_retries=0)
        return c.messages.create(
            model=model, max_tokens=2, messages=[{"role": "user", "content": "Say hi."}]
        )

    msg = create(key)
    assert msg.type == "message" and msg.usage.output_tokens <= 2, msg
    e = expect(anthropic.AuthenticationError, lambda: create("wrong"))
    assert e.status_code == 401 and e.body["error"]["type"] == "authentication_error", e.body
    e = expect(anthropic.PermissionDeniedError, lambda: create(scoped))
    assert e.status_code == 403 and e.body["error"]["type"] == "permission_error", e.body
    print("anthropic ok")


if __name__ == "__main__":
    base, model, key, scoped = sys.argv[1:5]
    check_openai(base, model, key, scoped)
    check_anthropic(base, model, key, scoped)
