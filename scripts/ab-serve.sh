#!/usr/bin/env bash
# Two hearth builds served alternately on this machine (the host's speed drifts, so only
# alternating runs compare): single-stream and concurrency-8 decode, then cold
# 2000-token prompts against 90% prefix hits, ROUNDS times (2 by default).
#
#   scripts/ab-serve.sh BASE_HEARTH NEW_HEARTH [MODEL.gguf] [OUT_DIR]
#
# Per round and build: `hearth bench --text-prompts` at concurrency 1 (4 x 32 -> 128
# tokens) and 8 (16 x 32 -> 128, the same requests; and 16 x 32 -> 64, "c8s", the shape
# before 2026-12-06), then three seed pairs of a cold 2000-token prompt and a
# 90% hit (`--random-prefix-len 1800 --input-len 200`); prints output tok/s, TPOT, the
# c8/c1 ratio, the TTFTs and each pair's hit/cold ratio. Both builds are measured by this
# checkout's client (target/release/hearth bench; CLIENT overrides), whose prefix-hit
# scenario sends an untimed warm-up first (--num-warmups, which older builds lack).
set -euo pipefail
cd "$(dirname "$0")/.."
base="${1:?BASE_HEARTH}"; new="${2:?NEW_HEARTH}"
model="${3:-$(target/release/hearth pull default | tail -n 1)}"
out="${4:-target/ab}"; rounds="${ROUNDS:-2}"; threads="${THREADS:-$(nproc)}"
client="${CLIENT:-target/release/hearth}"
mkdir -p "$out"
pid=""
trap '[ -n "$pid" ] && kill "$pid" 2>/dev/null || true' EXIT
run() {
  # shellcheck disable=SC2086
  "$client" bench --url http://127.0.0.1:8103 --model m --text-prompts --seed "$3" $2 \
      --result-json "$out/$1.json" >"$out/$1.txt" 2>&1
}
for r in $(seq 1 "$rounds"); do
  for b in base new; do
    if [ "$b" = base ]; then bin="$base"; else bin="$new"; fi
    RAYON_NUM_THREADS="$threads" "$bin" serve "$model" --port 8103 --served-model-name m \
        >"$out/serve-$b-$r.log" 2>&1 &
    pid=$!
    for _ in $(seq 1 120); do curl -sf http://127.0.0.1:8103/v1/models >/dev/null && break; sleep 0.5; done
    run "$b-$r-c1" "--num-prompts 4 --concurrency 1 --input-len 32 --output-len 128" 1
    run "$b-$r-c8" "--num-prompts 16 --concurrency 8 --input-len 32 --output-len 128" 1
    run "$b-$r-c8s" "--num-prompts 16 --concurrency 8 --input-len 32 --output-len 64" 1
    for k in 101 102 103; do
      run "$b-$r-cold-$k" "--num-prompts 2 --concurrency 1 --input-len 2000 --output-len 1" $((k + 10 * r))
      run "$b-$r-hit-$k" "--num-warmups 1 --num-prompts 3 --concurrency 1 --random-prefix-len 1800 --input-len 200 --output-len 1" $((k + 10 * r + 1000))
    done
    kill "$pid"; wait "$pid" 2>/dev/null || true; pid=""
  done
done
python3 - "$out" "$rounds" <<'PY'
import json, statistics, sys
out, rounds = sys.argv[1], int(sys.argv[2])
s = lambda n: json.load(open(f"{out}/{n}.json"))["summary"]
for b in ("base", "new"):
    for r in range(1, rounds + 1):
        c1, c8 = s(f"{b}-{r}-c1"), s(f"{b}-{r}-c8")
        t1, t8 = c1["output_throughput"], c8["output_throughput"]
        t8s = s(f"{b}-{r}-c8s")["output_throughput"]
        cold = [s(f"{b}-{r}-cold-{k}")["ttft_ms"]["median"] for k in (101, 102, 103)]
        hit = [s(f"{b}-{r}-hit-{k}")["ttft_ms"]["median"] for k in (101, 102, 103)]
        ratios = [round(100 * h / c, 1) for h, c in zip(hit, cold)]
        print(f"{b} round {r}: c1 {t1:.1f} tok/s (TPOT {c1['tpot_ms']['median']:.2f} ms), "
              f"c8 {t8:.1f} (TPOT {c8['tpot_ms']['median']:.2f}), c8/c1 {t8 / t1:.2f}x, "
              f"c8s {t8s:.1f} ({t8s / t1:.2f}x); "
              f"cold {[round(c) for c in cold]} ms, hit {[round(h) for h in hit]} ms, "
              f"hit/cold {ratios} (median {statistics.median(ratios)}%)")
PY
