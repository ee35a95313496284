#!/usr/bin/env python3
"""Writes the seed corpora of the fuzz targets (fuzz/corpus/<target>/seed-*): tiny valid
GGUF models (llama, qwen2, F32 and Q8_0), safetensors files and tool-call texts. Run from
the repo root; the outputs are committed (a few KB each)."""
import json, os, struct

OUT = "fuzz/corpus"


def gguf_str(s):
    b = s.encode()
    return struct.pack("<Q", len(b)) + b


def gguf_value(v):
    if isinstance(v, str):
        return struct.pack("<I", 8) + gguf_str(v)
    if isinstance(v, float):
        return struct.pack("<If", 6, v)
    if isinstance(v, list):
        body = b"".join(gguf_value(x)[4:] for x in v)
        return struct.pack("<IIQ", 9, 8 if isinstance(v[0], str) else 5, len(v)) + body
    return struct.pack("<II", 4, v)


def f32_data(n):
    return b"".join(struct.pack("<f", ((i * 7) % 11 - 5) / 10) for i in range(n))


def q8_0_data(n):
    # Blocks of 32: an f16 scale, then 32 int8 values.
    return b"".join(struct.pack("<e", 0.01) + bytes((i * 5 + j) % 256 for j in range(32))
                    for i in range(n // 32))


def gguf(arch, h, heads, kv, ffn, vocab, layers, qtype, extra_md=()):
    hd = h // heads
    md = [("general.architecture", arch), ("general.alignment", 32),
          (f"{arch}.embedding_length", h), (f"{arch}.attention.head_count", heads),
          (f"{arch}.attention.head_count_kv", kv), (f"{arch}.block_count", layers),
          (f"{arch}.feed_forward_length", ffn), (f"{arch}.context_length", 64),
          (f"{arch}.attention.layer_norm_rms_epsilon", 1e-5),
          ("tokenizer.ggml.tokens", [f"t{i}" for i in range(vocab)])] + list(extra_md)
    mats = [("token_embd.weight", vocab, h)]
    vecs = []
    for i in range(layers):
        p = f"blk.{i}."
        vecs += [p + "attn_norm.weight", p + "ffn_norm.weight"]
        mats += [(p + "attn_q.weight", heads * hd, h), (p + "attn_k.weight", kv * hd, h),
                 (p + "attn_v.weight", kv * hd, h), (p + "attn_output.weight", h, heads * hd),
                 (p + "ffn_gate.weight", ffn, h), (p + "ffn_up.weight", ffn, h),
                 (p + "ffn_down.weight", h, ffn)]
        if arch == "qwen2":
            vecs += [(p + "attn_q.bias", heads * hd), (p + "attn_k.bias", kv * hd),
                     (p + "attn_v.bias", kv * hd)]
    vecs.append("output_norm.weight")
    tensors = [(n, [c, r], qtype) for n, r, c in mats]
    tensors += [(v, [h], 0) if isinstance(v, str) else (v[0], [v[1]], 0) for v in vecs]
    head = struct.pack("<IIQQ", 0x46554747, 3, len(tensors), len(md))
    head += b"".join(gguf_str(k) + gguf_value(v) for k, v in md)
    data, off = b"", 0
    for name, dims, t in tensors:
        n = dims[0] * dims[1] if len(dims) == 2 else dims[0]
        raw = q8_0_data(n) if t == 8 else f32_data(n)
        head += gguf_str(name) + struct.pack("<I", len(dims))
        head += b"".join(struct.pack("<Q", d) for d in dims) + struct.pack("<IQ", t, off)
        raw += b"\0" * (-len(raw) % 32)
        data += raw
        off += len(raw)
    return head + b"\0" * (-len(head) % 32) + data


def safetensors(tensors):
    header, data = {"__metadata__": {"format": "pt"}}, b""
    for name, dtype, shape, raw in tensors:
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [len(data), len(data) + len(raw)]}
        data += raw
    h = json.dumps(header).encode()
    h += b" " * (-len(h) % 8)
    return struct.pack("<Q", len(h)) + h + data


def write(target, name, data):
    os.makedirs(f"{OUT}/{target}", exist_ok=True)
    with open(f"{OUT}/{target}/seed-{name}", "wb") as f:
        f.write(data if isinstance(data, bytes) else data.encode())


write("gguf_reader", "llama-f32", gguf("llama", 4, 2, 1, 4, 8, 1, 0))
write("gguf_reader", "qwen2-f32", gguf("qwen2", 4, 2, 2, 4, 8, 1, 0))
write("gguf_reader", "llama-q8_0", gguf("llama", 32, 2, 1, 32, 4, 1, 8))
write("gguf_reader", "header-only", gguf("llama", 4, 2, 1, 4, 8, 1, 0)[:600])

write("safetensors_header", "f32-f16-bf16", safetensors([
    ("a", "F32", [2, 2], f32_data(4)), ("b", "F16", [3], struct.pack("<3e", 1, 2, 3)),
    ("c", "BF16", [2], b"\x80\x3f\x00\x40")]))
write("safetensors_header", "u8-and-empty", safetensors([
    ("e", "F32", [0, 4], b""), ("u", "U8", [4], b"\1\2\3\4")]))
write("safetensors_header", "llama-names", safetensors([
    ("model.embed_tokens.weight", "F32", [2, 2], f32_data(4)),
    ("model.layers.0.self_attn.q_proj.weight", "BF16", [1, 2], b"\x80\x3f\x00\x40")]))

calls = {
    "hermes": 'Sure.<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call>'
              '<tool_call>{"name": "f", "arguments": "{\\"x\\": [1, {\\"y\\": \\"}\\"}]}"}</tool_call>',
    "hermes-open": 'text <tool_call>{"name": "f", "arguments": {"a": "</tool_call>"}',
    "llama3": '<|python_tag|>{"name": "search", "parameters": {"q": "rust \\u00e9"}}; {"name": "g", "parameters": {}}',
    "mistral": '[TOOL_CALLS][{"name": "add", "arguments": {"a": 1, "b": 2.5e3}}, {"name": "n", "arguments": "{}"}]',
    "plain": "Just an answer with {braces} and [brackets] and <tags>.",
}
for name, text in calls.items():
    write("tool_parsers", name, b"\x07\x03" + text.encode())
