#!/usr/bin/env python3
"""Checks that llama.cpp (through llama-cpp-python) loads GGUF files written by
`hearth quantize` and agrees with transformers' reference logits.

Not run in CI (needs llama-cpp-python). Usage, from the repository root after
`cargo build --release -p hearth`:

    python3 scripts/reference/check_gguf_llamacpp.py

For each tiny fixture (llama3, qwen2, qwen3) and type (f32, q8_0) it copies the
fixture with the tiny byte-level tokenizer of crates/hearth-text/tests/fixtures/hf_tiny
(256 ids, the fixtures' vocabulary), converts it with `hearth quantize`, evaluates the
reference prompt in llama.cpp and compares the last position's logits (top-1 and max
abs error) with reference.json.
"""
import json
import os
import shutil
import subprocess
import sys
import tempfile

import numpy as np
from llama_cpp import Llama

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
FIX = os.path.join(ROOT, "crates/hearth-models/tests/fixtures/tiny")
TOK = os.path.join(ROOT, "crates/hearth-text/tests/fixtures/hf_tiny")
HEARTH = os.path.join(ROOT, "target/release/hearth")


def check(name, qtype, tmp):
    src = os.path.join(tmp, f"{name}-{qtype}")
    shutil.copytree(os.path.join(FIX, name), src)
    for f in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copy(os.path.join(TOK, f), src)
    out = os.path.join(tmp, f"{name}-{qtype}.gguf")
    subprocess.run([HEARTH, "quantize", src, "--type", qtype, "-o", out], check=True,
                   stdout=subprocess.DEVNULL)
    ref = json.load(open(os.path.join(FIX, name, "reference.json")))
    # f32 KV cache (llama.cpp defaults to f16), so f32 weights compare tightly.
    llm = Llama(model_path=out, n_ctx=64, n_batch=64, logits_all=True, verbose=False,
                n_threads=2, type_k=0, type_v=0)
    llm.eval(ref["prompt"])
    got = np.array(llm.scores[len(ref["prompt"]) - 1], dtype=np.float32)
    want = np.array(ref["prefill"][-1], dtype=np.float32)
    err = float(np.abs(got - want).max())
    same = int(got.argmax()) == int(want.argmax())
    print(f"{name:7s} {qtype:5s} llama.cpp top-1 {'agrees' if same else 'DIFFERS'}"
          f" ({int(got.argmax())} vs {int(want.argmax())}), max abs error {err:.2e}")
    return same


def main():
    ok = True
    with tempfile.TemporaryDirectory() as tmp:
        for name in ("llama3", "qwen2", "qwen3"):
            for qtype in ("f32", "q8_0"):
                try:
                    ok &= check(name, qtype, tmp)
                except Exception as e:  # report every case, then fail
                    print(f"{name:7s} {qtype:5s} FAILED: {e}")
                    ok = False
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
