#!/usr/bin/env bash
# llama.cpp's own llama-server, built with CUDA from a source tarball, as the GPU
# reference for hearth's benchmarks. Runs fully offline (the GPU machine has no network).
#
#   scripts/cuda/llamacpp.sh build SRC.tar.xz BUILD_DIR
#       Extracts SRC.tar.xz (top-level folder llama.cpp/) into BUILD_DIR, configures with
#       CMake + Ninja and builds only the llama-server target; prints the binary path
#       (BUILD_DIR/build/bin/llama-server) as the last line. Re-running resumes: an
#       existing BUILD_DIR/llama.cpp is not re-extracted and ninja only rebuilds what is
#       missing, so a build cut short by a time limit can simply be run again.
#   scripts/cuda/llamacpp.sh serve MODEL.gguf PORT PARALLEL
#       Starts llama-server in the background on 127.0.0.1:PORT with every layer on the
#       GPU, PARALLEL slots (continuous batching), PER_SLOT_CTX (default 1024) tokens of
#       context per slot and flash attention on; logs to LOG (default
#       /tmp/llama-server-PORT.log); waits (WAIT_S, default 120 s) until /v1/models
#       answers, then prints the pid as the last line. Stop it with: kill PID
#
# Environment knobs:
#   LLAMA_SERVER_BIN  binary for `serve` (default: the one the last `build` recorded in
#                     /tmp/hearth-llama-server.path, else llama-server on PATH)
#   EXTRA_ARGS        more llama-server flags for `serve` (word-split)
#   LLAMACPP_CUDA     ON (default) | OFF: OFF configures a CPU-only build (offline tests)
#   CONFIGURE_ONLY=1  `build` stops after the CMake configure step
#
# What this llama.cpp version's server does with our benchmark requests (read from the
# source in the tarball, tools/server/*.cpp and common/arg.cpp):
#   - POST /v1/completions takes "prompt" as an array of token ids: handle_completions_impl
#     -> tokenize_input_prompts -> tokenize_input_subprompt, whose
#     json_is_array_of_numbers branch uses the ids as they are (no BOS added, no
#     detokenize/retokenize). An array of such arrays is several prompts.
#   - "max_tokens" is honoured: server-schema.cpp declares n_predict with aliases
#     "max_completion_tokens" and "max_tokens" ("n_predict" wins if both are given).
#   - "ignore_eos": true is honoured: server-schema.cpp sets sampling.ignore_eos and adds
#     a -inf logit bias for every end-of-generation token, so no EOS/EOT can end a reply.
#   - The response's usage.completion_tokens counts generated tokens; "timings" is also
#     returned. /v1/models (and every other endpoint) answers 503 "Loading model" until
#     the model is loaded, so waiting for a 200 from it means ready.
#   - Prompt caching ("cache_prompt", default true) reuses a slot's matching prefix, so
#     repeated identical prompts get faster TTFT; send distinct prompts to measure cold.
set -euo pipefail

usage() {
    sed -n '2,17p' "$0" >&2
    exit 2
}
die() { echo "llamacpp.sh: $*" >&2; exit 1; }

PATH_RECORD=/tmp/hearth-llama-server.path

cmd_build() {
    [ $# -eq 2 ] || usage
    local tarball build_root src bdir cuda gen jobs
    tarball=$(realpath "$1")
    [ -f "$tarball" ] || die "no tarball at $1"
    mkdir -p "$2"
    build_root=$(cd "$2" && pwd)
    src="$build_root/llama.cpp"
    bdir="$build_root/build"
    cuda="${LLAMACPP_CUDA:-ON}"
    jobs=$(nproc)

    if [ ! -f "$src/CMakeLists.txt" ]; then
        echo "extracting $tarball -> $build_root"
        tar -xf "$tarball" -C "$build_root"
    else
        echo "reusing $src (delete it to re-extract)"
    fi
    [ -f "$src/tools/server/CMakeLists.txt" ] || die "$src has no tools/server: not a llama.cpp source tree"

    local cuda_args=(-DGGML_CUDA=OFF)
    if [ "$cuda" = ON ]; then
        # The GPU machine has nvcc at /usr/local/cuda/bin but not necessarily on PATH.
        if ! command -v nvcc >/dev/null 2>&1 && [ -x /usr/local/cuda/bin/nvcc ]; then
            export PATH="/usr/local/cuda/bin:$PATH"
        fi
        command -v nvcc >/dev/null 2>&1 || die "nvcc not found (looked on PATH and /usr/local/cuda/bin)"
        nvcc --version | tail -n 2
        cuda_args=(
            -DGGML_CUDA=ON
            -DCMAKE_CUDA_COMPILER="$(command -v nvcc)"
            -DCMAKE_CUDA_ARCHITECTURES=90   # H200 only: one arch keeps the build short
            -DGGML_CUDA_NCCL=OFF            # single GPU; skips find_package(NCCL)
        )
    fi

    if command -v ninja >/dev/null 2>&1; then
        gen=Ninja
    else
        echo "warning: ninja not found, using Unix Makefiles" >&2
        gen="Unix Makefiles"
    fi

    # Offline by construction (read from this version's CMake code):
    #  - tools/ui/CMakeLists.txt adds a build-time step (scripts/ui-assets.cmake) that
    #    would download the web UI from a Hugging Face bucket when LLAMA_USE_PREBUILT_UI
    #    is ON (the default) and run `npm ci` when LLAMA_BUILD_UI is ON. Both OFF: it
    #    embeds an empty asset table (API only, no web UI) and touches no network.
    #  - LLAMA_OPENSSL=OFF: the server needs no HTTPS (and no OpenSSL headers).
    #  - The only other downloads in the tree (CCCL for GGML_CUDA_CUB_3DOT2, BoringSSL/
    #    LibreSSL, KleidiAI, Windows OpenMP, llguidance) are behind options that stay OFF;
    #    FETCHCONTENT_FULLY_DISCONNECTED makes any FetchContent fail instead of fetching.
    #  - LLAMA_CURL is deprecated in this version (only warns when ON); passed OFF anyway.
    #  - No .git in the tarball: build-info falls back to build number 0 / "unknown".
    #  - BUILD_SHARED_LIBS=OFF: one self-contained binary (no libllama/libggml .so beside it).
    #  - LLAMA_BUILD_APP=OFF: the unified `llama` binary is not needed.
    cmake -S "$src" -B "$bdir" -G "$gen" --no-warn-unused-cli \
        -DCMAKE_BUILD_TYPE=Release \
        "${cuda_args[@]}" \
        -DLLAMA_BUILD_TESTS=OFF \
        -DLLAMA_BUILD_EXAMPLES=OFF \
        -DLLAMA_BUILD_TOOLS=ON \
        -DLLAMA_BUILD_SERVER=ON \
        -DLLAMA_BUILD_APP=OFF \
        -DLLAMA_BUILD_UI=OFF \
        -DLLAMA_USE_PREBUILT_UI=OFF \
        -DLLAMA_CURL=OFF \
        -DLLAMA_OPENSSL=OFF \
        -DBUILD_SHARED_LIBS=OFF \
        -DFETCHCONTENT_FULLY_DISCONNECTED=ON

    if [ "${CONFIGURE_ONLY:-0}" = 1 ]; then
        echo "configured $bdir (CONFIGURE_ONLY=1: not building)"
        return 0
    fi

    cmake --build "$bdir" --target llama-server -j "$jobs"
    local bin="$bdir/bin/llama-server"
    [ -x "$bin" ] || die "build finished but $bin is missing"
    echo "$bin" >"$PATH_RECORD"
    "$bin" --version 2>&1 | tail -n 2 || true
    echo "$bin"
}

cmd_serve() {
    [ $# -eq 3 ] || usage
    local model=$1 port=$2 parallel=$3 bin
    [ -f "$model" ] || die "no model at $model"
    case "$port$parallel" in *[!0-9]*) die "PORT and PARALLEL must be integers" ;; esac
    [ "$parallel" -ge 1 ] || die "PARALLEL must be >= 1"

    bin="${LLAMA_SERVER_BIN:-}"
    if [ -z "$bin" ] && [ -f "$PATH_RECORD" ]; then bin=$(cat "$PATH_RECORD"); fi
    if [ -z "$bin" ]; then bin=$(command -v llama-server || true); fi
    [ -n "$bin" ] && [ -x "$bin" ] || die "no llama-server binary (run 'build' first or set LLAMA_SERVER_BIN)"

    # With an explicit --parallel, this version does not unify the KV cache: each slot
    # gets ctx/parallel tokens, rounded up to a multiple of 256 (llama-context.cpp). Our
    # requests need 512 prompt + 256 generated = 768; 1024 per slot covers that exactly
    # after rounding. LLAMA_MAX_SEQ is 256 here, so PARALLEL may be at most 256.
    local per_slot="${PER_SLOT_CTX:-1024}"
    local ctx=$((parallel * per_slot))

    # -fa takes on|off|auto in this version (common/arg.cpp); older ones took a bare -fa.
    local help fa=()
    help=$("$bin" --help 2>&1 || true)
    if grep -qF -- '--flash-attn [on|off' <<<"$help"; then
        fa=(-fa on)
    elif grep -qF -- '--flash-attn' <<<"$help"; then
        fa=(-fa)
    else
        echo "warning: this llama-server has no --flash-attn flag; running without" >&2
    fi

    local log="${LOG:-/tmp/llama-server-$port.log}"
    # shellcheck disable=SC2086  # EXTRA_ARGS is meant to be word-split
    nohup "$bin" -m "$model" \
        --host 127.0.0.1 --port "$port" \
        -ngl 999 \
        --parallel "$parallel" --cont-batching \
        -c "$ctx" \
        ${fa[@]+"${fa[@]}"} \
        ${EXTRA_ARGS:-} \
        >"$log" 2>&1 </dev/null &
    local pid=$!
    echo "llama-server pid $pid: -np $parallel -c $ctx ${fa[*]} -ngl 999 on 127.0.0.1:$port, log $log" >&2

    local wait_s="${WAIT_S:-120}" t=0
    while :; do
        if ! kill -0 "$pid" 2>/dev/null; then
            echo "llama-server exited before it was ready; last log lines:" >&2
            tail -n 40 "$log" >&2
            exit 1
        fi
        if curl -sf --max-time 2 "http://127.0.0.1:$port/v1/models" >/dev/null 2>&1; then
            break
        fi
        if [ "$t" -ge "$wait_s" ]; then
            echo "llama-server not ready after ${wait_s}s; killing $pid; last log lines:" >&2
            tail -n 40 "$log" >&2
            kill "$pid" 2>/dev/null || true
            exit 1
        fi
        sleep 1
        t=$((t + 1))
    done
    echo "ready after ~${t}s: $(grep -m1 -o 'n_slots = [0-9]*, n_ctx_slot = [0-9]*' "$log" || true)" >&2
    echo "$pid"
}

case "${1:-}" in
    build) shift; cmd_build "$@" ;;
    serve) shift; cmd_serve "$@" ;;
    *) usage ;;
esac
