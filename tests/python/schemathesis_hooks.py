"""Schemathesis checks for hearth: every error answer has its API's error shape.

Loaded with SCHEMATHESIS_HOOKS=schemathesis_hooks (tests/python on PYTHONPATH) by
crates/hearth/tests/schemathesis.rs.
"""

import schemathesis


@schemathesis.check
def error_in_api_shape(ctx, response, case):
    if response.status_code < 400:
        return None
    try:
        body = response.json()
    except ValueError:
        raise AssertionError(f"{case.method} {case.path} -> {response.status_code} not JSON: {response.text[:200]!r} headers={dict(response.headers)}")
    err = body.get("error") if isinstance(body, dict) else None
    assert isinstance(err, dict), f"{response.status_code} without an error object: {body!r}"
    assert isinstance(err.get("message"), str) and err["message"], f"no message: {body!r}"
    assert isinstance(err.get("type"), str) and err["type"], f"no type: {body!r}"
    if case.path.startswith("/v1/messages"):
        # Anthropic: {"type": "error", "error": {"type": ..., "message": ...}}
        assert body.get("type") == "error", f"not Anthropic's shape: {body!r}"
    else:
        # OpenAI: {"error": {"message", "type", "param", "code"}}
        assert "param" in err and "code" in err, f"not OpenAI's shape: {body!r}"
    return None
