#!/usr/bin/env python3
"""Reference logits of the default model (SmolLM2-135M-Instruct Q4_1 GGUF) from HF transformers.

transformers dequantizes the GGUF to float32 and runs its own Llama; hearth's logits on the
same file are compared with what this script records. CI does not run it (no torch there):
the fixture it writes is committed.

Requirements (pinned; `pip install` them into a virtualenv, the plain PyPI torch wheel runs on CPU):
    torch==2.5.1 transformers==4.46.3 tokenizers==0.20.3 gguf==0.10.0 numpy==1.26.4
    accelerate==1.1.1 sentencepiece==0.2.0
(accelerate and sentencepiece are needed only because transformers' GGUF loader imports them.)

Usage:
    python3 scripts/reference/make_reference.py [--model PATH.gguf] [--out PATH.json]

Output: crates/hearth-models/tests/fixtures/smollm2_reference.json, one JSON object:

{
  "format": "hearth-reference-logits/1",
  "model": {"file": "SmolLM2-135M-Instruct.Q4_1.gguf", "sha256": "<hex>",
            "architecture": "llama", "vocab_size": 49152},
  "generator": {"script": "scripts/reference/make_reference.py", "torch": "2.5.1",
                "transformers": "4.46.3", "gguf": "0.10.0", "numpy": "1.26.4",
                "dtype": "float32"},
  "top_k": 64,       # entries in each "top" list
  "stride": 64,      # "strided"[j] is the logit of token id j * stride
  "decimals": 4,     # logits are rounded to this many decimals
  "prompts": [       # 3 prompts, in this order: "plain", "chat", "long"
    {
      "name": "plain" | "chat" | "long",
      "kind": "text" | "chat",
      "text": "<the exact string that was tokenized>",
      "messages": [{"role": "user", "content": "..."}],   # only when kind == "chat"
      "ids": [int, ...],           # prompt token ids; no BOS is added (GGUF add_bos_token
                                   # = false); in "chat" the template's special tokens
                                   # (<|im_start|> = 1, <|im_end|> = 2) are single ids
      "positions": [               # 4 entries, ascending pos: 0, n//3, 2n//3, n-1
        {
          "pos": int,              # logits after feeding ids[0..=pos] (predict ids[pos+1])
          "top": [[id, logit], ...],   # the 64 largest logits, by logit descending
          "strided": [logit, ...]      # 768 logits: ids 0, 64, 128, ..., 49088
        }, ...
      ],
      "greedy": null | {           # present for "plain" and "chat"
        "ids": [int, ...],         # generate(do_sample=False, max_new_tokens=32); fewer
                                   # than 32 only if it produced eos (id 2, kept as last)
        "margins": [float, ...]    # per generated token: top-1 minus top-2 logit at that
                                   # step; a small margin means a near tie
      }
    }, ...
  ]
}

"chat" text is the tokenizer's chat template (from the GGUF) applied to "messages" with
add_generation_prompt=True. Note transformers 4.46 does not tie lm_head to the embeddings when
loading this GGUF (it has no output.weight), so the script ties them itself, as llama.cpp does.
"""

import argparse
import hashlib
import json
import os
from pathlib import Path

import numpy as np
import torch
import transformers
import gguf
from transformers import AutoModelForCausalLM, AutoTokenizer

SHA256 = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"
FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "crates/hearth-models/tests/fixtures/smollm2_reference.json"
TOP_K, STRIDE, DECIMALS, GREEDY_TOKENS = 64, 64, 4, 32

PLAIN = "The capital of France is"
CHAT = [{"role": "user", "content": "What is the capital of France? Answer in one sentence."}]
LONG = (
    "The river wound slowly through the valley, past old stone farmhouses and fields of "
    "barley that shimmered in the late summer wind. Every morning the baker in the village "
    "opened her shutters before dawn, and the smell of fresh bread drifted down to the mill, "
    "where the miller was already at work. Children walked to school along the towpath, "
    "counting the boats that were moored by the bridge, and in the evening their parents "
    "gathered in the square to talk about the harvest, the weather and the news from the city."
)


def default_model() -> Path:
    env = os.environ.get("HEARTH_TEST_MODEL")
    if env:
        return Path(env)
    home = os.environ.get("HEARTH_HOME") or os.path.expanduser("~/.local/share/hearth")
    return Path(home) / "models/smollm2-135m-instruct-q4_1" / FILE


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def smollm_tokenizer(path: Path):
    """SmolLM2's own tokenizer (byte-level BPE, digits split one by one) built from the GGUF's
    vocab and merges: a cross-check of the ids transformers' GGUF tokenizer produces."""
    from tokenizers import AddedToken, Tokenizer, models, pre_tokenizers

    reader = gguf.GGUFReader(str(path))

    def strs(key: str) -> list[str]:
        field = reader.fields[key]
        return [bytes(field.parts[i]).decode("utf-8") for i in field.data]

    tokens, merges = strs("tokenizer.ggml.tokens"), strs("tokenizer.ggml.merges")
    types = reader.fields["tokenizer.ggml.token_type"]
    control = [tokens[n] for n, i in enumerate(types.data) if int(types.parts[i][0]) == 3]
    bpe = models.BPE({t: i for i, t in enumerate(tokens)}, [tuple(m.split(" ", 1)) for m in merges])
    t = Tokenizer(bpe)
    t.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Digits(individual_digits=True),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True),
    ])
    t.add_special_tokens([AddedToken(c, special=True, normalized=False) for c in control])
    return t


def r(x: float) -> float:
    return round(float(x), DECIMALS)


def position_record(logits: torch.Tensor, pos: int) -> dict:
    row = logits[pos]
    vals, ids = torch.topk(row, TOP_K)
    return {
        "pos": pos,
        "top": [[int(i), r(v)] for v, i in zip(vals.tolist(), ids.tolist())],
        "strided": [r(v) for v in row[::STRIDE].tolist()],
    }


def greedy(model, ids: list[int], eos: int) -> dict:
    inp = torch.tensor([ids])
    out = model.generate(
        inp,
        attention_mask=torch.ones_like(inp),
        do_sample=False,
        num_beams=1,
        max_new_tokens=GREEDY_TOKENS,
        repetition_penalty=1.0,
        eos_token_id=eos,
        pad_token_id=eos,
        output_scores=True,
        return_dict_in_generate=True,
    )
    new = out.sequences[0, len(ids):].tolist()
    margins = []
    for step in out.scores:
        top2 = torch.topk(step[0], 2).values
        margins.append(r(top2[0] - top2[1]))
    return {"ids": new, "margins": margins[: len(new)]}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", type=Path, default=default_model())
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args()
    if not args.model.is_file():
        raise SystemExit(f"model not found: {args.model} (run scripts/test, or pass --model)")
    actual = sha256(args.model)
    if actual != SHA256:
        raise SystemExit(f"{args.model}: sha256 {actual}, expected {SHA256}")

    torch.manual_seed(0)
    d, f = str(args.model.parent), args.model.name
    tok = AutoTokenizer.from_pretrained(d, gguf_file=f)
    model = AutoModelForCausalLM.from_pretrained(d, gguf_file=f, torch_dtype=torch.float32)
    model.lm_head.weight = model.model.embed_tokens.weight  # tied embeddings
    model.eval()
    eos = int(tok.convert_tokens_to_ids("<|im_end|>"))
    assert eos == 2 and tok.convert_tokens_to_ids("<|im_start|>") == 1

    check_tok = smollm_tokenizer(args.model)
    chat_text = tok.apply_chat_template(CHAT, tokenize=False, add_generation_prompt=True)
    prompts = [
        {"name": "plain", "kind": "text", "text": PLAIN},
        {"name": "chat", "kind": "chat", "text": chat_text, "messages": CHAT},
        {"name": "long", "kind": "text", "text": LONG},
    ]
    for p in prompts:
        ids = tok(p["text"], add_special_tokens=False).input_ids
        n = len(ids)
        assert n >= 4, p
        assert ids == check_tok.encode(p["text"]).ids, f"tokenizers disagree on {p['name']}"
        with torch.no_grad():
            logits = model(torch.tensor([ids])).logits[0]
        p["ids"] = ids
        p["positions"] = [position_record(logits, q) for q in sorted({0, n // 3, 2 * n // 3, n - 1})]
        with torch.no_grad():
            p["greedy"] = greedy(model, ids, eos) if p["name"] in ("plain", "chat") else None
        print(f"{p['name']}: {n} ids; greedy: {tok.decode(p['greedy']['ids']) if p['greedy'] else '-'!r}")

    fixture = {
        "format": "hearth-reference-logits/1",
        "model": {"file": FILE, "sha256": SHA256, "architecture": "llama",
                  "vocab_size": int(model.config.vocab_size)},
        "generator": {"script": "scripts/reference/make_reference.py",
                      "torch": torch.__version__.split("+")[0],
                      "transformers": transformers.__version__, "gguf": gguf_version(),
                      "numpy": np.__version__, "dtype": "float32"},
        "top_k": TOP_K, "stride": STRIDE, "decimals": DECIMALS,
        "prompts": prompts,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(fixture, separators=(",", ":"), ensure_ascii=False) + "\n")
    print(f"wrote {args.out} ({args.out.stat().st_size} bytes)")


def gguf_version() -> str:
    from importlib.metadata import version
    return version("gguf")


if __name__ == "__main__":
    main()
