"""Structured outputs through the official `openai` Python SDK against a running hearth.

Usage: python3 tests/python/test_structured_sdk.py BASE_URL
Exits non-zero on the first failed check.
"""

import json
import sys
from enum import Enum

import openai
import pydantic


class Color(str, Enum):
    red = "red"
    green = "green"
    blue = "blue"


class Pet(pydantic.BaseModel):
    name: str = pydantic.Field(max_length=20)
    color: Color
    legs: int = pydantic.Field(ge=0, le=8)


SCHEMA = {
    "type": "object",
    "properties": {
        "city": {"type": "string", "maxLength": 24},
        "population": {"type": "integer", "minimum": 0, "maximum": 100000000},
        "capital": {"type": "boolean"},
    },
    "required": ["city", "population", "capital"],
    "additionalProperties": False,
}


def main(base_url: str) -> None:
    client = openai.OpenAI(base_url=base_url.rstrip("/") + "/v1", api_key="unused")
    model = client.models.list().data[0].id
    messages = [{"role": "user", "content": "Describe a city as JSON."}]

    for seed in (1, 2, 3):
        resp = client.chat.completions.create(
            model=model,
            messages=messages,
            temperature=1.0,
            seed=seed,
            max_tokens=200,
            response_format={
                "type": "json_schema",
                "json_schema": {"name": "city", "schema": SCHEMA, "strict": True},
            },
        )
        choice = resp.choices[0]
        assert choice.finish_reason == "stop", choice
        data = json.loads(choice.message.content)
        assert set(data) == {"city", "population", "capital"}, data
        assert isinstance(data["city"], str) and len(data["city"]) <= 24, data
        assert isinstance(data["population"], int), data
        assert 0 <= data["population"] <= 100000000, data
        assert isinstance(data["capital"], bool), data

    # The SDK's own pydantic path: it builds the strict json_schema and parses the answer.
    parsed = client.chat.completions.parse(
        model=model,
        messages=[{"role": "user", "content": "Describe a pet."}],
        temperature=1.0,
        seed=4,
        max_tokens=200,
        response_format=Pet,
    )
    pet = parsed.choices[0].message.parsed
    assert isinstance(pet, Pet), parsed
    assert 0 <= pet.legs <= 8 and len(pet.name) <= 20, pet

    # Streaming with json_object: the deltas join into a JSON object.
    stream = client.chat.completions.create(
        model=model,
        messages=[{"role": "user", "content": "Give a JSON object with a greeting."}],
        temperature=0.5,
        seed=5,
        max_tokens=300,
        response_format={"type": "json_object"},
        stream=True,
    )
    text = "".join(
        c.choices[0].delta.content or "" for c in stream if c.choices
    )
    assert isinstance(json.loads(text), dict), text

    # vLLM's extras ride in extra_body.
    resp = client.chat.completions.create(
        model=model,
        messages=[{"role": "user", "content": "Yes or no?"}],
        temperature=1.0,
        max_tokens=10,
        extra_body={"guided_choice": ["yes", "no"]},
    )
    assert resp.choices[0].message.content in ("yes", "no"), resp

    # The Responses API: text.format, and the SDK's parse helper on top of it.
    resp = client.responses.create(
        model=model,
        input="Describe a city as JSON.",
        temperature=1.0,
        max_output_tokens=200,
        text={"format": {"type": "json_schema", "name": "city", "schema": SCHEMA, "strict": True}},
    )
    data = json.loads(resp.output_text)
    assert set(data) == {"city", "population", "capital"}, data
    parsed = client.responses.parse(
        model=model,
        input="Describe a pet.",
        temperature=1.0,
        max_output_tokens=200,
        text_format=Pet,
    )
    assert isinstance(parsed.output_parsed, Pet), parsed

    try:
        client.chat.completions.create(
            model=model,
            messages=messages,
            max_tokens=5,
            response_format={
                "type": "json_schema",
                "json_schema": {"name": "bad", "schema": {"type": "nope"}},
            },
        )
        raise AssertionError("an invalid schema was accepted")
    except openai.BadRequestError as e:
        assert e.status_code == 400, e
        assert e.body["param"] == "response_format", e.body

    print("structured SDK checks passed")


if __name__ == "__main__":
    main(sys.argv[1])
