#!/usr/bin/env python3
"""Random-weight, full-size Hugging Face folders for memory/speed measurements.

Needs only numpy (pip; run with numpy 2.x): BF16 is written as its 16-bit patterns
into a safetensors file whose header this script writes (no torch needed).

Usage: make_fullsize_random.py MODEL OUT_DIR
  MODEL: llama-3.2-3b-instruct | qwen2.5-7b-instruct | qwen3-0.6b | gemma-3-1b-it
Writes config.json (published values, typed in), generation_config.json,
tokenizer.json (the repo's tiny byte-level BPE fixture padded with filler tokens up to
the model's vocab size, so every sampled id decodes), tokenizer_config.json, and BF16
safetensors shards of ~2 GB with model.safetensors.index.json. Tensors are written one
shard at a time, so peak memory is about one shard, never the whole model. Weights are
N(0, 0.02) taken from one shared random pool at random offsets (fast, not i.i.d.
between tensors; good enough for timing and memory, meaningless as a model).
"""
import copy
import json
import os
import sys

import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TOK_FIXTURE = os.path.join(REPO, "crates/hearth-text/tests/fixtures/hf_tiny")
SHARD_BYTES = 2 * 1000**3

CONFIGS = {
    "llama-3.2-3b-instruct": {
        "architectures": ["LlamaForCausalLM"], "model_type": "llama",
        "hidden_size": 3072, "intermediate_size": 8192, "num_hidden_layers": 28,
        "num_attention_heads": 24, "num_key_value_heads": 8, "head_dim": 128,
        "vocab_size": 128256, "max_position_embeddings": 131072,
        "rms_norm_eps": 1e-5, "rope_theta": 500000.0, "hidden_act": "silu",
        "rope_scaling": {"factor": 32.0, "high_freq_factor": 4.0, "low_freq_factor": 1.0,
                         "original_max_position_embeddings": 8192, "rope_type": "llama3"},
        "tie_word_embeddings": True, "attention_bias": False, "mlp_bias": False,
        "bos_token_id": 128000, "eos_token_id": [128001, 128008, 128009],
        "torch_dtype": "bfloat16",
    },
    "qwen2.5-7b-instruct": {
        "architectures": ["Qwen2ForCausalLM"], "model_type": "qwen2",
        "hidden_size": 3584, "intermediate_size": 18944, "num_hidden_layers": 28,
        "num_attention_heads": 28, "num_key_value_heads": 4,
        "vocab_size": 152064, "max_position_embeddings": 32768,
        "rms_norm_eps": 1e-6, "rope_theta": 1000000.0, "hidden_act": "silu",
        "sliding_window": 131072, "use_sliding_window": False, "max_window_layers": 28,
        "tie_word_embeddings": False, "bos_token_id": 151643, "eos_token_id": 151645,
        "torch_dtype": "bfloat16",
    },
    "qwen3-0.6b": {
        "architectures": ["Qwen3ForCausalLM"], "model_type": "qwen3",
        "hidden_size": 1024, "intermediate_size": 3072, "num_hidden_layers": 28,
        "num_attention_heads": 16, "num_key_value_heads": 8, "head_dim": 128,
        "vocab_size": 151936, "max_position_embeddings": 40960,
        "rms_norm_eps": 1e-6, "rope_theta": 1000000.0, "hidden_act": "silu",
        "rope_scaling": None, "attention_bias": False, "use_sliding_window": False,
        "sliding_window": None, "max_window_layers": 28, "tie_word_embeddings": True,
        "bos_token_id": 151643, "eos_token_id": 151645, "torch_dtype": "bfloat16",
    },
    "gemma-3-1b-it": {
        "architectures": ["Gemma3ForCausalLM"], "model_type": "gemma3_text",
        "hidden_size": 1152, "intermediate_size": 6912, "num_hidden_layers": 26,
        "num_attention_heads": 4, "num_key_value_heads": 1, "head_dim": 256,
        "vocab_size": 262144, "max_position_embeddings": 32768,
        "rms_norm_eps": 1e-6, "rope_theta": 1000000.0, "rope_local_base_freq": 10000.0,
        "rope_scaling": None, "sliding_window": 512, "sliding_window_pattern": 6,
        "query_pre_attn_scalar": 256, "hidden_activation": "gelu_pytorch_tanh",
        "attn_logit_softcapping": None, "final_logit_softcapping": None,
        "attention_bias": False, "tie_word_embeddings": True,
        "bos_token_id": 2, "eos_token_id": [1, 106], "pad_token_id": 0,
        "torch_dtype": "bfloat16",
    },
}


def tensor_specs(c):
    """(name, shape, kind) in file order; kind: 'w' random, 'norm' ones (zeros for
    Gemma, whose norms scale by 1 + w), 'bias' small random."""
    h, f, v = c["hidden_size"], c["intermediate_size"], c["vocab_size"]
    hd = c.get("head_dim", h // c["num_attention_heads"])
    qd, kvd = c["num_attention_heads"] * hd, c["num_key_value_heads"] * hd
    arch = c["architectures"][0]
    out = [("model.embed_tokens.weight", (v, h), "w")]
    for i in range(c["num_hidden_layers"]):
        p = f"model.layers.{i}."
        out += [(p + "input_layernorm.weight", (h,), "norm"),
                (p + "self_attn.q_proj.weight", (qd, h), "w"),
                (p + "self_attn.k_proj.weight", (kvd, h), "w"),
                (p + "self_attn.v_proj.weight", (kvd, h), "w"),
                (p + "self_attn.o_proj.weight", (h, qd), "w")]
        if arch == "Qwen2ForCausalLM":
            out += [(p + "self_attn.q_proj.bias", (qd,), "bias"),
                    (p + "self_attn.k_proj.bias", (kvd,), "bias"),
                    (p + "self_attn.v_proj.bias", (kvd,), "bias")]
        if arch in ("Qwen3ForCausalLM", "Gemma3ForCausalLM"):
            out += [(p + "self_attn.q_norm.weight", (hd,), "norm"),
                    (p + "self_attn.k_norm.weight", (hd,), "norm")]
        out += [(p + "post_attention_layernorm.weight", (h,), "norm")]
        if arch == "Gemma3ForCausalLM":
            out += [(p + "pre_feedforward_layernorm.weight", (h,), "norm"),
                    (p + "post_feedforward_layernorm.weight", (h,), "norm")]
        out += [(p + "mlp.gate_proj.weight", (f, h), "w"),
                (p + "mlp.up_proj.weight", (f, h), "w"),
                (p + "mlp.down_proj.weight", (h, f), "w")]
    out.append(("model.norm.weight", (h,), "norm"))
    if not c["tie_word_embeddings"]:
        out.append(("lm_head.weight", (v, h), "w"))
    return out


def bf16(x):
    """float32 array -> its BF16 bit patterns (round to nearest even) as uint16."""
    b = np.ascontiguousarray(x, dtype=np.float32).view(np.uint32)
    return ((b + 0x7FFF + ((b >> 16) & 1)) >> 16).astype(np.uint16)


def make_tensor(shape, kind, pool, rng, gemma):
    n = int(np.prod(shape))
    if kind == "norm":
        return np.full(n, bf16(np.float32(0.0 if gemma else 1.0)), dtype=np.uint16)
    out = np.empty(n, dtype=np.uint16)
    done = 0
    while done < n:  # stitch random windows of the pool until the tensor is full
        take = min(n - done, pool.size // 2)
        start = int(rng.integers(0, pool.size - take + 1))
        out[done:done + take] = pool[start:start + take]
        done += take
    return out


def save_bf16(tensors, path):
    """A safetensors file: u64 header length, JSON header, then the raw little-endian data."""
    header, offset = {"__metadata__": {"format": "pt"}}, 0
    for name, (shape, data) in tensors.items():
        header[name] = {"dtype": "BF16", "shape": list(shape),
                        "data_offsets": [offset, offset + data.nbytes]}
        offset += data.nbytes
    head = json.dumps(header, separators=(",", ":")).encode()
    head += b" " * (-len(head) % 8)
    with open(path, "wb") as fh:
        fh.write(len(head).to_bytes(8, "little"))
        fh.write(head)
        for _, data in tensors.values():
            fh.write(data.astype("<u2", copy=False).tobytes())


def write_weights(c, out_dir):
    rng = np.random.default_rng(0)
    pool = bf16(rng.standard_normal(64 * 1024 * 1024, dtype=np.float32) * 0.02)
    gemma = c["architectures"][0] == "Gemma3ForCausalLM"
    specs = tensor_specs(c)
    shards, cur, cur_bytes = [], [], 0
    for spec in specs:  # group names into ~2 GB shards first, so names are known up front
        nbytes = 2 * int(np.prod(spec[1]))
        if cur and cur_bytes + nbytes > SHARD_BYTES:
            shards.append(cur)
            cur, cur_bytes = [], 0
        cur.append(spec)
        cur_bytes += nbytes
    shards.append(cur)
    weight_map, total = {}, 0
    for k, shard in enumerate(shards):
        fname = f"model-{k + 1:05d}-of-{len(shards):05d}.safetensors"
        tensors = {name: (shape, make_tensor(shape, kind, pool, rng, gemma))
                   for name, shape, kind in shard}
        save_bf16(tensors, os.path.join(out_dir, fname))
        for name, (_, data) in tensors.items():
            weight_map[name] = fname
            total += data.nbytes
        del tensors
        print(f"wrote {fname}", flush=True)
    index = {"metadata": {"total_size": total}, "weight_map": weight_map}
    with open(os.path.join(out_dir, "model.safetensors.index.json"), "w") as fh:
        json.dump(index, fh, indent=2)
    return total


def write_tokenizer(c, out_dir):
    with open(os.path.join(TOK_FIXTURE, "tokenizer.json")) as fh:
        tok = json.load(fh)
    vocab = tok["model"]["vocab"]
    used = set(vocab.values()) | {t["id"] for t in tok["added_tokens"]}
    # Filler tokens no merge can reach: they only make ids up to vocab_size decodable.
    for i in range(c["vocab_size"]):
        if i not in used:
            vocab[f"<fill_{i}>"] = i
    with open(os.path.join(out_dir, "tokenizer.json"), "w") as fh:
        json.dump(tok, fh, ensure_ascii=False)
    with open(os.path.join(TOK_FIXTURE, "tokenizer_config.json")) as fh:
        tcfg = json.load(fh)
    with open(os.path.join(out_dir, "tokenizer_config.json"), "w") as fh:
        json.dump(tcfg, fh, indent=2, ensure_ascii=False)
    # EOS of the fixture's own vocabulary; the real EOS ids are in config.json only.
    with open(os.path.join(out_dir, "generation_config.json"), "w") as fh:
        json.dump({"eos_token_id": 6, "bos_token_id": 1}, fh)


def main():
    if len(sys.argv) != 3 or sys.argv[1] not in CONFIGS:
        sys.exit(f"usage: {sys.argv[0]} {{{'|'.join(CONFIGS)}}} OUT_DIR")
    c = copy.deepcopy(CONFIGS[sys.argv[1]])
    out_dir = os.path.abspath(sys.argv[2])
    if out_dir.startswith(REPO + os.sep):
        sys.exit("refusing to write full-size weights inside the repository")
    os.makedirs(out_dir, exist_ok=True)
    with open(os.path.join(out_dir, "config.json"), "w") as fh:
        json.dump(c, fh, indent=2)
    write_tokenizer(c, out_dir)
    total = write_weights(c, out_dir)
    print(f"{sys.argv[1]}: {total / 1e9:.2f} GB of BF16 weights in {out_dir}")


if __name__ == "__main__":
    main()
