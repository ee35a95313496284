#!/usr/bin/env python3
"""Tiny random-weight Hugging Face models plus transformers' logits, for hearth's
safetensors loader tests (crates/hearth-models/tests/tiny_hf_models.rs).

Requirements (pinned; CPU torch is enough):
    torch==2.5.1 transformers==4.46.3 safetensors==0.8.0 numpy==1.26.4
Qwen3ForCausalLM first appeared in transformers 4.51, so the qwen3 fixture needs
    transformers==4.51.3 tokenizers==0.21.1 huggingface-hub==0.30.2
on the path in front of 4.46.3 (e.g. `pip install --target /tmp/tf_qwen3 --no-deps ...`
and PYTHONPATH=/tmp/tf_qwen3). Without it the script skips qwen3 and says so; the
same holds for gemma3 (Gemma3ForCausalLM, also new in 4.51).

Usage:
    python3 scripts/reference/make_tiny_models.py [--only NAME ...]

Writes crates/hearth-models/tests/fixtures/tiny/<name>/ : config.json, *.safetensors
(qwen2 sharded, with model.safetensors.index.json), reference.json:
{
  "format": "hearth-tiny-reference/1",
  "generator": {"torch": ..., "transformers": ..., "seed": int},
  "weights_dtype": "float32" | "bfloat16" | "float16",
  "compute_dtype": "float32",   # bf16/f16 weights are upcast, as hearth does on CPU
  "prompt": [ids],
  "prefill": [[logit x vocab] per prompt position],
  "decode": [{"token": id, "logits": [...]}, ...]   # 3 greedy steps: `token` is the argmax
                                                    # of the previous logits, fed next
}
"""

import argparse
import json
import os

import torch
import transformers

SEED = 1234
HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "..", "..", "crates", "hearth-models", "tests", "fixtures", "tiny")
PROMPT = [1, 17, 200, 45, 3, 99, 128, 255, 7, 64, 12, 180]
DECODE_STEPS = 3

COMMON = dict(
    vocab_size=256,
    hidden_size=64,
    intermediate_size=128,
    num_hidden_layers=2,
    num_attention_heads=4,
    num_key_value_heads=2,
    max_position_embeddings=256,
    rms_norm_eps=1e-6,
    initializer_range=0.1,
)


def llama3():
    cfg = transformers.LlamaConfig(
        **COMMON,
        rope_theta=10000.0,
        # Small original context so that the tiny head dim has frequencies in all
        # three bands (kept, smoothed, divided by `factor`).
        rope_scaling={
            "rope_type": "llama3",
            "factor": 8.0,
            "low_freq_factor": 1.0,
            "high_freq_factor": 4.0,
            "original_max_position_embeddings": 64,
        },
        tie_word_embeddings=True,
        bos_token_id=1,
        eos_token_id=2,
    )
    return transformers.LlamaForCausalLM(cfg)


def qwen2():
    cfg = transformers.Qwen2Config(**COMMON, rope_theta=1000000.0, tie_word_embeddings=False)
    return transformers.Qwen2ForCausalLM(cfg)


def qwen3():
    cfg = transformers.Qwen3Config(
        **COMMON, head_dim=32, rope_theta=1000000.0, tie_word_embeddings=True
    )
    return transformers.Qwen3ForCausalLM(cfg)


def gemma3(sliding_window=4):
    """3 layers, pattern 2: local (window 4, rope 1e4), global (rope 1e6, linear x2),
    local. query_pre_attn_scalar != head_dim and both soft-caps set, so each shows."""
    cfg = transformers.Gemma3TextConfig(
        **{k: v for k, v in COMMON.items() if k != "num_hidden_layers"},
        num_hidden_layers=3,
        head_dim=32,
        query_pre_attn_scalar=24,
        sliding_window=sliding_window,
        sliding_window_pattern=2,
        rope_theta=1000000.0,
        rope_local_base_freq=10000.0,
        rope_scaling={"rope_type": "linear", "factor": 2.0},
        final_logit_softcapping=8.0,
        # transformers 4.51.3 ignores this key for Gemma 3 (never passed to the attention;
        # real checkpoints set it null), so it stays unset; hearth's kernel soft-caps
        # when it is set and is tested for that against a dense reference.
        attn_logit_softcapping=None,
        hidden_activation="gelu_pytorch_tanh",
        tie_word_embeddings=True,
        attn_implementation="eager",  # the masking path that applies the window
    )
    return transformers.Gemma3ForCausalLM(cfg)


# name -> (builder, weights dtype, max shard size or None)
MODELS = {
    "llama3": (llama3, torch.float32, None),
    "llama3_bf16": (llama3, torch.bfloat16, None),
    "qwen2": (qwen2, torch.float32, "150KB"),
    "qwen2_f16": (qwen2, torch.float16, None),
    "qwen3": (qwen3, torch.float32, None),
    "gemma3": (gemma3, torch.float32, None),
}
# Architectures newer than transformers 4.46.3 (see the header).
NEEDS = {"qwen3": "Qwen3ForCausalLM", "gemma3": "Gemma3ForCausalLM"}


def randomize(model):
    """HF inits norms to 1 and biases to 0; perturb them so the test sees them."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("norm.weight"):
                # Gemma norms scale by (1 + w) and start at w = 0.
                base = 0.0 if model.config.model_type.startswith("gemma") else 1.0
                p.copy_(base + 0.2 * torch.randn_like(p))
            elif name.endswith(".bias"):
                p.copy_(0.5 * torch.randn_like(p))


@torch.no_grad()
def logits_of(model, ids):
    out = model(torch.tensor([ids]), use_cache=False)
    return out.logits[0].float()


def build(name):
    builder, dtype, shard = MODELS[name]
    need = NEEDS.get(name)
    if need and not hasattr(transformers, need):
        print(f"skip {name}: transformers {transformers.__version__} has no {need}")
        return
    torch.manual_seed(SEED)
    model = builder().eval()
    randomize(model)
    model = model.to(dtype)
    out = os.path.join(OUT, name)
    os.makedirs(out, exist_ok=True)
    kw = {"max_shard_size": shard} if shard else {}
    model.save_pretrained(out, safe_serialization=True, **kw)
    gen = os.path.join(out, "generation_config.json")
    if os.path.exists(gen):
        os.remove(gen)
    # Reference in f32 over the stored (possibly bf16/f16-rounded) weights. A fresh f32
    # model takes them: `.float()` would keep the rope `inv_freq` buffer rounded.
    weights = {k: v.float() for k, v in model.state_dict().items()}
    model = builder().eval()
    model.load_state_dict(weights)
    ids = list(PROMPT)
    prefill = logits_of(model, ids)
    last = prefill[-1]
    decode = []
    for _ in range(DECODE_STEPS):
        tok = int(last.argmax())
        ids.append(tok)
        last = logits_of(model, ids)[-1]
        decode.append({"token": tok, "logits": [round(x, 6) for x in last.tolist()]})
    ref = {
        "format": "hearth-tiny-reference/1",
        "generator": {
            "script": "scripts/reference/make_tiny_models.py",
            "torch": torch.__version__,
            "transformers": transformers.__version__,
            "seed": SEED,
        },
        "weights_dtype": str(dtype).replace("torch.", ""),
        "compute_dtype": "float32",
        "prompt": PROMPT,
        "prefill": [[round(x, 6) for x in row] for row in prefill.tolist()],
        "decode": decode,
    }
    with open(os.path.join(out, "reference.json"), "w") as f:
        json.dump(ref, f, separators=(",", ":"))
    if name == "gemma3":
        # The window must matter for the prompt: without it the logits move.
        wide = builder(sliding_window=1000).eval()
        wide.load_state_dict(weights)
        moved = float((logits_of(wide, PROMPT) - prefill).abs().max())
        assert moved > 1e-2, moved
        print(f"gemma3: a window of 1000 moves the prefill logits by {moved:.3f}")
    rows = torch.cat([prefill, torch.tensor([d["logits"] for d in decode])])
    top2 = rows.topk(2, dim=-1).values
    margin = float((top2[:, 0] - top2[:, 1]).min())
    print(f"{name}: wrote {out}, logit std {float(rows.std()):.3f}, min top-1 margin {margin:.4f}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--only", nargs="*", default=list(MODELS))
    args = ap.parse_args()
    for name in args.only:
        build(name)


if __name__ == "__main__":
    main()
