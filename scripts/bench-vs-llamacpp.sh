#!/usr/bin/env bash
# Side-by-side benchmark: hearth and llama.cpp (the PyPI package llama-cpp-python and its
# OpenAI-compatible server) on the same GGUF file with the same number of threads, driven
# by the same `hearth bench` client with the same seeded prompts, in one run.
#
#   pip install 'llama-cpp-python[server]'      # builds llama.cpp from source
#   scripts/bench-vs-llamacpp.sh [MODEL.gguf] [OUT_DIR]
#
# Scenarios (medians): single-stream decode, concurrency 8, TTFT of a 512-token prompt
# cold and with a prefix-cache hit. Text prompts (random words) because llama-cpp-python's
# server takes no token-id prompts. Its server serves one request at a time; it is started
# with --interrupt_requests False so that a new request queues instead of cutting the
# running one short.
set -euo pipefail
cd "$(dirname "$0")/.."

model="${1:-$(target/release/hearth pull default | tail -n 1)}"
out="${2:-target/bench}"
threads="${THREADS:-$(nproc)}"
mkdir -p "$out"
hearth=target/release/hearth
[ -x "$hearth" ] || cargo build --release -p hearth

pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; }
trap cleanup EXIT

wait_ready() { for _ in $(seq 1 120); do curl -sf "$1/v1/models" >/dev/null && return 0; sleep 0.5; done; echo "no server at $1" >&2; exit 1; }

RAYON_NUM_THREADS="$threads" "$hearth" serve "$model" --port 8101 --served-model-name m >"$out/hearth.log" 2>&1 &
pids+=($!)
python3 -m llama_cpp.server --model "$model" --n_threads "$threads" --n_threads_batch "$threads" \
    --n_ctx 4096 --interrupt_requests False --port 8102 --model_alias m >"$out/llamacpp.log" 2>&1 &
pids+=($!)
wait_ready http://127.0.0.1:8101
wait_ready http://127.0.0.1:8102

# name  bench-args
scenarios=(
  "decode_c1|--num-prompts 4 --concurrency 1 --input-len 32 --output-len 128"
  "decode_c8|--num-prompts 16 --concurrency 8 --input-len 32 --output-len 64"
  "ttft512_cold|--num-prompts 3 --concurrency 1 --input-len 512 --output-len 1"
  "ttft512_prefix_hit|--num-prompts 5 --concurrency 1 --random-prefix-len 496 --input-len 16 --output-len 1"
)
for server in hearth:8101 llamacpp:8102; do
  name="${server%%:*}"; port="${server##*:}"
  for s in "${scenarios[@]}"; do
    sname="${s%%|*}"; args="${s#*|}"
    # shellcheck disable=SC2086
    "$hearth" bench --url "http://127.0.0.1:$port" --model m --text-prompts --seed 1 $args \
        --result-json "$out/$name-$sname.json" >"$out/$name-$sname.txt" 2>&1
  done
done

python3 - "$out" <<'PY'
import json, sys, os
out = sys.argv[1]
rows = [("decode_c1", "output tok/s", lambda s: s["output_throughput"]),
        ("decode_c1", "median TPOT ms", lambda s: s["tpot_ms"]["median"]),
        ("decode_c8", "output tok/s", lambda s: s["output_throughput"]),
        ("ttft512_cold", "median TTFT ms", lambda s: s["ttft_ms"]["median"]),
        ("ttft512_prefix_hit", "median TTFT ms", lambda s: s["ttft_ms"]["median"])]
res = {}
print(f"{'scenario':<20}{'metric':<16}{'hearth':>10}{'llama.cpp':>11}{'hearth/llama.cpp':>18}")
for scen, metric, f in rows:
    vals = []
    for server in ("hearth", "llamacpp"):
        s = json.load(open(os.path.join(out, f"{server}-{scen}.json")))["summary"]
        vals.append(f(s))
    ratio = vals[0] / vals[1] if vals[1] else float("nan")
    res[f"{scen}/{metric}"] = {"hearth": vals[0], "llamacpp": vals[1], "ratio": ratio}
    print(f"{scen:<20}{metric:<16}{vals[0]:>10.1f}{vals[1]:>11.1f}{ratio:>18.2f}")
json.dump(res, open(os.path.join(out, "comparison.json"), "w"), indent=2)
PY
