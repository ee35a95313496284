#!/usr/bin/env bash
# What runs on the GPU machine (no Rust toolchain, no network there): the binaries come
# from `scripts/cuda/check.sh build` (in .device/), everything else is made there.
#
#   scripts/cuda/device.sh check            kernels vs the CPU kernel; the tiny reference
#                                           fixtures on the GPU; GPU llama vs CPU llama
#   scripts/cuda/device.sh bench OUT        3B-shaped random bf16 model: hearth serve
#                                           --device cuda at concurrency 1/8/32/128, then
#                                           transformers generate on the same folder
#   scripts/cuda/device.sh llamacpp SRC OUT llama.cpp's llama-server built for CUDA from
#                                           SRC (a llama.cpp tarball), same scenarios
#   scripts/cuda/device.sh build-bg SRC     start that build in the background
#   scripts/cuda/device.sh profile OUT      the GEMV kernel against cuBLAS; the 3B model's
#                                           decode step timed (graphs, GEMV on/off) and
#                                           broken down by kernel under Nsight Compute
#   scripts/cuda/device.sh setup            unpack .device/bin.tar.xz, start the llama.cpp
#                                           build and the 3B folder in the background,
#                                           keep the default model's first part
#   scripts/cuda/device.sh baselines OUT    llamacpp and transformers on the 3B
#   scripts/cuda/device.sh default OUT      the default model (its two parts joined and
#                                           checked against SMOL_SHA256): GPU vs CPU
#                                           llama (dense and quantized), then served on
#                                           the GPU at concurrency 1 and 8, its Q4_1
#                                           blocks kept (`--dtype auto`) and as bf16
#   scripts/cuda/device.sh sample OUT       3B bf16 served with temperature sampling:
#                                           GPU heads vs whole rows on the host
#   scripts/cuda/device.sh quant OUT        the quantized products' check and timings,
#                                           then the 3B folder made a Q4_K GGUF: GPU vs
#                                           CPU llama, and served at each concurrency
#                                           (LLAMACPP=1: llama.cpp on that file too)
# A device call carries at most 64 MiB, so the default model's 98 MB GGUF travels in
# two calls on one warm machine (.devm_a/model.part, then .devm_b/model.part), made here
# with (both folders listed in .git/info/exclude):
#   head -c 37748736 MODEL > .devm_a/model.part; tail -c +37748737 MODEL > .devm_b/model.part
#   SMOL_SHA256=$(sha256sum MODEL | cut -d' ' -f1)
# Figures go to OUT as JSON (hearth bench --result-json, hf_baseline.py --out). A device
# call brings back only so many files from $OUT (the rest are listed as left out), so a
# call that runs several of these should end with one archive of them all, e.g.
#   tar -czf "$OUT/all.tgz" -C "$OUT" --exclude all.tgz .
# CONCURRENCIES="1 8" limits bench/llamacpp to those concurrencies.
set -euo pipefail
cd "$(dirname "$0")/../.."
for d in /usr/local/cuda/lib64 /usr/local/cuda-13.0/targets/x86_64-linux/lib; do
    if [ -d "$d" ]; then export LD_LIBRARY_PATH="$d:${LD_LIBRARY_PATH:-}"; fi
done
export PATH="/usr/local/cuda/bin:$PATH"
dev=.device
model3b=/tmp/llama-3.2-3b-random
# 512 prompt tokens and 256 output tokens per request (the issue's scenario); prompts
# per concurrency: enough for a steady state, bounded in time.
concurrencies=(${CONCURRENCIES:-1 8 32 128})
prompts_for() { case $1 in 1) echo 4 ;; 8) echo 16 ;; 32) echo 64 ;; *) echo $(( $1 * 2 )) ;; esac; }

make_3b() {
    # setup may have started it in the background: wait for that one.
    while pgrep -f "make_fullsize_random.py" >/dev/null; do sleep 2; done
    [ -f "$model3b/config.json" ] && return 0
    python3 scripts/reference/make_fullsize_random.py llama-3.2-3b-instruct "$model3b"
}

wait_ready() {
    for _ in $(seq 1 600); do
        curl -sf "$1/v1/models" >/dev/null 2>&1 && return 0
        sleep 0.5
    done
    echo "no server at $1" >&2
    return 1
}

# bench_server URL TAG OUT: the four concurrencies through hearth bench. Each one its own
# seed: with one seed the prompts of a run would start with the last run's, and the
# server's prefix cache would answer them.
bench_server() {
    local url=$1 tag=$2 out=$3 c
    # Read here, so that `CONCURRENCIES=... bench_server` narrows one call.
    for c in ${CONCURRENCIES:-${concurrencies[@]}}; do
        echo "== $tag concurrency $c"
        "$dev/hearth" bench --url "$url" --model m --num-prompts "$(prompts_for "$c")" \
            --concurrency "$c" --input-len 512 --output-len 256 --seed "$((c + ${SEED_OFFSET:-0}))" ${BENCH_ARGS:-} \
            --result-json "$out/${tag}_c$c.json" 2>&1 | tail -n 14
    done
}

case "${1:-}" in
    check)
        # The test binary finds its fixtures at the path it was built in.
        [ -e /work/main ] || { mkdir -p /work && ln -s "$PWD" /work/main; }
        nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv
        "$dev/cuda_check"
        "$dev/cuda_pick_check"
        HEARTH_TEST_DEVICE=cuda "$dev/tiny_hf_models" --test-threads 1
        for f in llama3 qwen2 qwen3; do
            for t in f32 bf16; do
                "$dev/cuda_llama_check" "crates/hearth-models/tests/fixtures/tiny/$f" "$t"
                # K/V in f16 on both sides (`--kv-cache-dtype f16`).
                "$dev/cuda_llama_check" "crates/hearth-models/tests/fixtures/tiny/$f" "$t" 24 f16
            done
            # The same models as GGUF files of 32-weight block types, kept quantized on
            # the GPU, against the CPU model of the same file dequantized.
            for q in q8_0 q4_1; do
                "$dev/hearth" quantize "crates/hearth-models/tests/fixtures/tiny/$f" \
                    --type "$q" -o "/tmp/tiny-$f-$q.gguf" >/dev/null
                "$dev/cuda_llama_check" "/tmp/tiny-$f-$q.gguf" q-f32
            done
        done
        ;;
    quant)
        out="${2:?OUT}"
        mkdir -p "$out"
        "$dev/cuda_quant_check" 2>&1 | tee "$out/quant_check.txt" || echo "FAILED: cuda_quant_check"
        make_3b
        q4k=/tmp/l3b-q4k.gguf
        [ -f "$q4k" ] || "$dev/hearth" quantize "$model3b" --type q4_k -o "$q4k"
        ls -la "$q4k"
        [ "${SKIP_CHECK:-0}" = 1 ] || "$dev/cuda_llama_check" "$q4k" q-bf16 4 2>&1 \
            | tee "$out/check_3b_q4k.txt" || echo "FAILED: cuda_llama_check on the Q4_K 3B"
        # QROWS_LIST="2 1": also served with HEARTH_CUDA_QROWS=1 (one row a warp);
        # MMQ_LIST="1 0": also without the tensor-core products (HEARTH_CUDA_MMQ=0).
        for qrows in ${QROWS_LIST:-2}; do
          for mmq in ${MMQ_LIST:-1}; do
            tag=hearth_q4k$([ "$qrows" = 2 ] || echo "_qrows$qrows")$([ "$mmq" = 1 ] || echo "_nommq")
            HEARTH_CUDA_MMQ=$mmq HEARTH_CUDA_QROWS=$qrows "$dev/hearth" serve "$q4k" --device cuda --port 8202 \
                --served-model-name m --max-num-seqs 256 --max-num-batched-tokens 4096 \
                >"$out/${tag}_serve.log" 2>&1 &
            pid=$!
            wait_ready http://127.0.0.1:8202 || { tail -n 30 "$out/${tag}_serve.log"; exit 1; }
            grep -E "KV cache|loaded|listening" "$out/${tag}_serve.log" | head -n 5 || true
            bench_server http://127.0.0.1:8202 "$tag" "$out"
            kill "$pid"
            wait "$pid" 2>/dev/null || true
          done
        done
        [ "${LLAMACPP:-0}" = 1 ] || exit 0
        while pgrep -f "llamacpp.sh build" >/dev/null; do sleep 5; done
        bin=$(scripts/cuda/llamacpp.sh build "$dev/llama.cpp-min.tar.xz" /tmp/llama.cpp-build | tail -n 1)
        pid=$(LLAMA_SERVER_BIN="$bin" scripts/cuda/llamacpp.sh serve "$q4k" 8302 128 | tail -n 1)
        bench_server http://127.0.0.1:8302 llamacpp_q4k "$out"
        kill "$pid" 2>/dev/null || true
        ;;
    sample)
        # Temperature sampling on the 3B bf16 model: each sampled row's head from the GPU
        # against whole rows sampled on the host (HEARTH_CUDA_ARGMAX=0), with greedy on
        # the same server for reference. top-k 40 (Ollama's default) keeps every draw in
        # the head; plain temperature 1 on random weights (flat logits) sends most draws
        # past the head to the row, the worst case.
        out="${2:?OUT}"
        mkdir -p "$out"
        make_3b
        for where in gpu host; do
            HEARTH_CUDA_ARGMAX=$([ "$where" = gpu ] && echo 1 || echo 0) "$dev/hearth" serve \
                "$model3b" --device cuda --port 8203 --served-model-name m --max-num-seqs 256 \
                --max-num-batched-tokens 4096 >"$out/hearth_sample_$where.log" 2>&1 &
            pid=$!
            wait_ready http://127.0.0.1:8203 || { tail -n 30 "$out/hearth_sample_$where.log"; exit 1; }
            # First on each fresh server, so that neither finds its prompts cached; the
            # runs after it draw other prompts (SEED_OFFSET).
            BENCH_ARGS="--temperature 0.8 --top-k 40" bench_server http://127.0.0.1:8203 "topk40_$where" "$out"
            if [ "$where" = gpu ]; then
                SEED_OFFSET=1000 bench_server http://127.0.0.1:8203 greedy_gpu "$out"
                SEED_OFFSET=2000 CONCURRENCIES="1 8 32" BENCH_ARGS="--temperature 1.0" \
                    bench_server http://127.0.0.1:8203 t1_gpu "$out"
            fi
            kill "$pid"
            wait "$pid" 2>/dev/null || true
        done
        ;;
    bench)
        out="${2:?OUT}"
        mkdir -p "$out"
        make_3b
        # The big model against the CPU model too (few steps: the CPU side is slow);
        # SKIP_CHECK=1 when `profile` already ran it on this machine.
        [ "${SKIP_CHECK:-0}" = 1 ] || "$dev/cuda_llama_check" "$model3b" bf16 6 | tee "$out/check_3b.txt"
        # SERVE_ARGS adds serve flags (e.g. "--kv-cache-dtype f16"); TAG names the files.
        tag=${TAG:-hearth}
        "$dev/hearth" serve "$model3b" --device cuda --port 8200 --served-model-name m \
            --max-num-seqs 256 --max-num-batched-tokens 4096 ${SERVE_ARGS:-} \
            >"$out/${tag}_serve.log" 2>&1 &
        pid=$!
        wait_ready http://127.0.0.1:8200 || { tail -n 30 "$out/${tag}_serve.log"; exit 1; }
        grep -E "KV cache|loaded|listening" "$out/${tag}_serve.log" | head -n 5 || true
        bench_server http://127.0.0.1:8200 "$tag" "$out"
        kill "$pid"
        wait "$pid" 2>/dev/null || true
        # SKIP_BASELINE=1: hearth alone (the baseline already measured in this session).
        [ "${SKIP_BASELINE:-0}" = 1 ] && exit 0
        PYTHONUNBUFFERED=1 python3 scripts/cuda/hf_baseline.py --model "$model3b" \
            --batch-sizes 1,8,32,128 --input-len 512 --output-len 256 \
            --out "$out/transformers.json" 2>&1 | tail -n 20
        ;;
    llamacpp)
        src="${2:?SRC}" out="${3:?OUT}"
        mkdir -p "$out"
        make_3b
        [ -f /tmp/l3b-f16.gguf ] || "$dev/hearth" quantize "$model3b" --type f16 -o /tmp/l3b-f16.gguf
        # A build started earlier (build-bg) is waited for; ninja resumes an unfinished one.
        while pgrep -f "llamacpp.sh build" >/dev/null; do sleep 5; done
        bin=$(scripts/cuda/llamacpp.sh build "$src" /tmp/llama.cpp-build | tail -n 1)
        pid=$(LLAMA_SERVER_BIN="$bin" scripts/cuda/llamacpp.sh serve /tmp/l3b-f16.gguf 8300 128 | tail -n 1)
        bench_server http://127.0.0.1:8300 llamacpp "$out"
        kill "$pid" 2>/dev/null || true
        ;;
    profile)
        out="${2:?OUT}"
        mkdir -p "$out"
        nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv
        # Each step runs even when one before it failed (it says so).
        "$dev/cuda_gemv_check" 2>&1 | tee "$out/gemv.txt" || echo "FAILED: cuda_gemv_check"
        make_3b
        "$dev/cuda_llama_check" "$model3b" bf16 2 2>&1 | tee "$out/check_3b.txt" \
            || echo "FAILED: cuda_llama_check on the 3B"
        # Launch by launch decode steps (the check's first timing loop, after the
        # ~340 launches of its prefill): ~3 steps of ~310 launches. NCU=0 skips it.
        [ "${NCU:-1}" = 1 ] || exit 0
        ncu=$(command -v ncu || ls /opt/nvidia/nsight-compute/*/ncu 2>/dev/null | head -n 1)
        timeout 200 "$ncu" --clock-control none --csv --page raw \
            --metrics gpu__time_duration.sum --launch-skip 1200 --launch-count 900 \
            "$dev/cuda_llama_check" "$model3b" bf16 1 >"$out/ncu.csv" 2>"$out/ncu.err" || true
        python3 scripts/cuda/ncu_summary.py "$out/ncu.csv" 2>&1 | tee "$out/ncu_summary.txt" \
            || tail -n 20 "$out/ncu.err"
        ;;
    setup)
        tar -xJf "$dev/bin.tar.xz" -C "$dev"
        setsid nohup nice -n 19 scripts/cuda/llamacpp.sh build "$dev/llama.cpp-min.tar.xz" \
            /tmp/llama.cpp-build >/tmp/llama.cpp-build.log 2>&1 </dev/null &
        [ -f "$model3b/config.json" ] || setsid nohup python3 \
            scripts/reference/make_fullsize_random.py llama-3.2-3b-instruct "$model3b" \
            >/tmp/make_3b.log 2>&1 </dev/null &
        if [ -f .devm_a/model.part ]; then cp .devm_a/model.part /tmp/smol.part_a; fi
        echo "setup: binaries unpacked; llama.cpp build and 3B folder under way"
        ;;
    default)
        out="${2:?OUT}"
        mkdir -p "$out"
        smol=/tmp/smollm2.gguf
        [ -f "$smol" ] || cat /tmp/smol.part_a .devm_b/model.part >"$smol"
        echo "${SMOL_SHA256:?}  $smol" | sha256sum -c
        for t in f32 bf16 q-f32 q-bf16; do
            "$dev/cuda_llama_check" "$smol" "$t" | tee "$out/check_default_$t.txt" \
                || echo "FAILED: cuda_llama_check $t"
        done
        # Served with its Q4_1 blocks kept (auto), then dequantized to bf16.
        for dt in auto bf16; do
            "$dev/hearth" serve "$smol" --device cuda --dtype "$dt" --port 8201 \
                --served-model-name m >"$out/hearth_default_${dt}_serve.log" 2>&1 &
            pid=$!
            wait_ready http://127.0.0.1:8201 || { tail -n 30 "$out/hearth_default_${dt}_serve.log"; exit 1; }
            for c in 1 8; do
                echo "== default model, --dtype $dt, concurrency $c"
                "$dev/hearth" bench --url http://127.0.0.1:8201 --model m --num-prompts $((4 * c)) \
                    --concurrency "$c" --input-len 512 --output-len 256 --seed "$c" \
                    --result-json "$out/default_${dt}_c$c.json" 2>&1 | tail -n 14
            done
            kill "$pid"
            wait "$pid" 2>/dev/null || true
        done
        ;;
    baselines)
        # llama.cpp (built by `setup` in the background) and transformers, on the 3B.
        out="${2:?OUT}"
        bash "$0" llamacpp "$dev/llama.cpp-min.tar.xz" "$out"
        PYTHONUNBUFFERED=1 python3 scripts/cuda/hf_baseline.py --model "$model3b" \
            --batch-sizes 1,8,32,128 --input-len 512 --output-len 256 \
            --out "$out/transformers.json" 2>&1 | tail -n 20
        ;;
    build-bg)
        # llama.cpp's CUDA build in its own session, so it outlives this command and
        # the next call (on the same warm machine) finds it done or under way.
        src="${2:?SRC}"
        setsid nohup nice -n 19 scripts/cuda/llamacpp.sh build "$src" /tmp/llama.cpp-build \
            >/tmp/llama.cpp-build.log 2>&1 < /dev/null &
        echo "llama.cpp build started in the background (log /tmp/llama.cpp-build.log)"
        ;;
    *)
        echo "usage: scripts/cuda/device.sh check | bench OUT | llamacpp SRC OUT | build-bg SRC" >&2
        exit 2
        ;;
esac
