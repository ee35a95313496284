#!/usr/bin/env python3
"""Naive Hugging Face transformers baseline: static-batch `generate()` on one GPU.

    python3 scripts/cuda/hf_baseline.py --model DIR --batch-sizes 1,8,32,128 \
        --input-len 512 --output-len 256 --out result.json

DIR is a Hugging Face folder (config.json + safetensors), e.g. a random-weight one from
scripts/reference/make_fullsize_random.py. Its tokenizer is a dummy, so prompts are
seeded random token ids built here; the tokenizer is never loaded.

Per batch size B (all B prompts in one batch, no padding, attention_mask all ones):
  warm-up  generate(8 new tokens)
  TTFT     wall time of generate(max_new_tokens=1)             (prefill + 1 token)
  total    wall time of generate(max_new_tokens=output_len, min_new_tokens=output_len)
  tok/s = B*output_len/total, TPOT = (total - TTFT)/(output_len - 1)
B=1 is measured --repeats times (default 3) and medians reported; larger B once.
Greedy decoding; min_new_tokens keeps EOS from ending any row early, and the output
length is checked. The table is printed last (callers see the tail of stdout); all
figures go to --out as JSON.

CPU smoke test (tiny fixture):
    python3 scripts/cuda/hf_baseline.py --device cpu \
        --model crates/hearth-models/tests/fixtures/tiny/llama3_bf16 \
        --batch-sizes 1,2 --input-len 16 --output-len 8 --out /tmp/hf.json
"""
import argparse
import json
import platform
import statistics
import sys
import time

import numpy as np
import torch
import transformers
from transformers import AutoModelForCausalLM

T0 = time.monotonic()  # --max-seconds counts from process start (includes model load)


def log(msg):
    print(f"[{time.monotonic() - T0:7.1f}s] {msg}", flush=True)


def parse_args():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", required=True, help="Hugging Face model folder")
    p.add_argument("--batch-sizes", default="1,8,32,128")
    p.add_argument("--input-len", type=int, default=512)
    p.add_argument("--output-len", type=int, default=256)
    p.add_argument("--out", default="hf_baseline.json")
    p.add_argument("--device", default="cuda", help="cuda (default) or cpu (smoke tests)")
    p.add_argument("--dtype", default="bfloat16", choices=["bfloat16", "float16", "float32"])
    p.add_argument("--attn", default="sdpa", help="attn_implementation passed to from_pretrained")
    p.add_argument("--repeats", type=int, default=3, help="timed runs for B=1 (medians)")
    p.add_argument("--warmup-tokens", type=int, default=8)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--max-seconds", type=float, default=400.0,
                   help="skip the remaining batch sizes when the next one would likely end past this")
    a = p.parse_args()
    a.batch_sizes = [int(x) for x in a.batch_sizes.split(",") if x.strip()]
    if a.output_len < 2:
        p.error("--output-len must be >= 2 (TPOT divides by output_len - 1)")
    return a


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def load_model(args, device):
    dtype = getattr(torch, args.dtype)
    kw = dict(attn_implementation=args.attn)
    try:
        # transformers 5 spells it `dtype`
        model = AutoModelForCausalLM.from_pretrained(args.model, dtype=dtype, **kw)
    except TypeError:
        # transformers 4.x
        model = AutoModelForCausalLM.from_pretrained(args.model, torch_dtype=dtype, **kw)
    model.to(device)
    model.eval()
    return model


def make_prompts(batch, input_len, vocab_size, seed):
    # Uniform ids in [100, 30000), clipped to the vocabulary (tiny test models have 256).
    high = min(30000, vocab_size)
    low = min(100, high - 1)
    rng = np.random.default_rng(seed + batch)  # one fixed prompt set per batch size
    ids = rng.integers(low, high, size=(batch, input_len), dtype=np.int64)
    return torch.from_numpy(ids)


def eos_ids(model):
    e = getattr(model.generation_config, "eos_token_id", None)
    if e is None:
        e = getattr(model.config, "eos_token_id", None)
    if e is None:
        return []
    return [int(x) for x in (e if isinstance(e, (list, tuple)) else [e])]


def timed_generate(model, input_ids, attn_mask, new_tokens, device, eos):
    """Wall time (s) of one greedy generate() producing exactly `new_tokens` per row."""
    sync(device)
    t = time.perf_counter()
    out = model.generate(
        input_ids=input_ids,
        attention_mask=attn_mask,
        max_new_tokens=new_tokens,
        min_new_tokens=new_tokens,  # EOS is masked until then, so no row stops early
        do_sample=False,
        pad_token_id=0,
    )
    sync(device)
    dt = time.perf_counter() - t
    want = input_ids.shape[1] + new_tokens
    if tuple(out.shape) != (input_ids.shape[0], want):
        raise RuntimeError(f"generate returned shape {tuple(out.shape)}, expected ({input_ids.shape[0]}, {want})")
    # A row that hit EOS early is padded to the batch's length, so the shape alone does
    # not show it; an EOS id among the new tokens does (min_new_tokens masks EOS).
    if eos and torch.isin(out[:, input_ids.shape[1]:], torch.tensor(eos, device=out.device)).any():
        raise RuntimeError("a row produced EOS before output_len new tokens (early stop)")
    return dt


def run_batch(model, args, device, batch, vocab_size):
    ids = make_prompts(batch, args.input_len, vocab_size, args.seed).to(device)
    mask = torch.ones_like(ids)
    reps = args.repeats if batch == 1 else 1
    eos = eos_ids(model)
    t_start = time.monotonic()
    timed_generate(model, ids, mask, args.warmup_tokens, device, eos)
    ttfts, totals = [], []
    for _ in range(reps):
        ttfts.append(timed_generate(model, ids, mask, 1, device, eos))
        totals.append(timed_generate(model, ids, mask, args.output_len, device, eos))
    ttft, total = statistics.median(ttfts), statistics.median(totals)
    return {
        "batch_size": batch,
        "repeats": reps,
        "output_tokens_per_s": batch * args.output_len / total,
        "ttft_ms": ttft * 1000.0,
        "tpot_ms": (total - ttft) / (args.output_len - 1) * 1000.0,
        "total_s": total,
        "ttft_runs_s": ttfts,
        "total_runs_s": totals,
        "wall_s": time.monotonic() - t_start,  # warm-up + all runs, for the time guard
        "peak_mem_gib": (torch.cuda.max_memory_allocated(device) / 2**30) if device.type == "cuda" else None,
    }


def main():
    args = parse_args()
    device = torch.device(args.device)
    torch.manual_seed(args.seed)

    gpu = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "cpu"
    meta = {
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "python": platform.python_version(),
        "cuda": torch.version.cuda,
        "device": str(device),
        "gpu": gpu,
        "model": args.model,
        "dtype": args.dtype,
        "input_len": args.input_len,
        "output_len": args.output_len,
        "batch_sizes": args.batch_sizes,
        "seed": args.seed,
    }
    log(f"torch {torch.__version__} (cuda {torch.version.cuda}), transformers {transformers.__version__}, device {device}: {gpu}")

    model = load_model(args, device)
    cfg = model.config
    vocab_size = cfg.vocab_size
    meta["attn_implementation"] = getattr(cfg, "_attn_implementation", None)
    meta["n_params"] = sum(p.numel() for p in model.parameters())
    log(f"loaded {args.model}: {meta['n_params'] / 1e9:.2f} B params, attn {meta['attn_implementation']}, vocab {vocab_size}")

    results, skipped, errors = [], [], []
    prev = None  # (batch, seconds of one warm-up + ttft + total) of the last finished batch
    with torch.inference_mode():
        for i, b in enumerate(args.batch_sizes):
            if prev is not None:
                # Conservative: assume time grows linearly with B (decode is mostly
                # memory-bound, so it usually grows less).
                reps = args.repeats if b == 1 else 1
                est = prev[1] * max(1.0, b / prev[0]) * reps
                elapsed = time.monotonic() - T0
                if elapsed + est > args.max_seconds:
                    skipped = args.batch_sizes[i:]
                    log(f"SKIP batch sizes {skipped}: elapsed {elapsed:.1f}s + estimated {est:.1f}s "
                        f"for B={b} > --max-seconds {args.max_seconds:.0f}")
                    break
            log(f"B={b}: warm-up + {'%d runs' % (args.repeats if b == 1 else 1)}")
            try:
                r = run_batch(model, args, device, b, vocab_size)
            except torch.cuda.OutOfMemoryError as e:
                # Larger B would not fit either: record and stop.
                log(f"B={b}: out of memory ({str(e).splitlines()[0]}); skipping the rest")
                errors.append({"batch_size": b, "error": "out of memory"})
                skipped = args.batch_sizes[i + 1:]
                if device.type == "cuda":
                    torch.cuda.empty_cache()
                break
            results.append(r)
            prev = (b, r["wall_s"] / r["repeats"])
            log(f"B={b}: {r['output_tokens_per_s']:.1f} tok/s, TTFT {r['ttft_ms']:.1f} ms, TPOT {r['tpot_ms']:.2f} ms")

    meta["total_wall_s"] = time.monotonic() - T0
    with open(args.out, "w") as f:
        json.dump({"meta": meta, "results": results, "skipped_batch_sizes": skipped, "errors": errors}, f, indent=2)

    print()
    print(f"HF transformers {transformers.__version__} / torch {torch.__version__} on {gpu}; "
          f"{args.model}; input {args.input_len}, output {args.output_len}, {args.dtype}, "
          f"attn {meta['attn_implementation']}")
    hdr = f"{'batch':>6} {'out tok/s':>11} {'TTFT ms':>10} {'TPOT ms':>9} {'total s':>9} {'runs':>5}"
    print(hdr)
    print("-" * len(hdr))
    for r in results:
        print(f"{r['batch_size']:>6} {r['output_tokens_per_s']:>11.1f} {r['ttft_ms']:>10.1f} "
              f"{r['tpot_ms']:>9.2f} {r['total_s']:>9.2f} {r['repeats']:>5}")
    for e in errors:
        print(f"{e['batch_size']:>6} {e['error']}")
    if skipped:
        print(f"skipped (time guard or OOM): {','.join(map(str, skipped))}")
    print(f"JSON: {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
