#!/usr/bin/env bash
# The CUDA backend's build path and its kernel check.
#
# Build (any Linux machine, no CUDA toolkit needed: cudarc loads libcuda/libnvrtc at
# run time and NVRTC compiles hearth's kernels for the GPU it finds):
#   scripts/cuda/check.sh build      -> .device/cuda_check
# Run (on the machine with the GPU; needs the driver and libnvrtc, e.g. CUDA 13's
# /usr/local/cuda-13.0/targets/x86_64-linux/lib on LD_LIBRARY_PATH):
#   scripts/cuda/check.sh run [MODEL.gguf]
# It checks the GPU paged-attention kernel against the CPU kernel on random batches,
# then a whole llama step on the GPU against the CPU model (logits and greedy tokens);
# it exits non-zero when they differ.
set -euo pipefail
cd "$(dirname "$0")/../.."
case "${1:-}" in
    build)
        cargo build --release -p hearth --features cuda
        cargo build --release -p hearth-models --features cuda \
            --example cuda_check --example cuda_llama_check --example cuda_gemv_check \
            --example cuda_quant_check --example cuda_pick_check --example cuda_step_time
        # The CUDA module's host-side unit tests (layouts, build switches): no GPU needed.
        cargo test --release -p hearth-models --features cuda --lib cuda::
        # The reference-fixture tests, run on the GPU with HEARTH_TEST_DEVICE=cuda.
        tests=$(cargo test --release -p hearth-models --features cuda --test tiny_hf_models \
            --no-run --message-format=json 2>/dev/null \
            | grep -o '"executable":"[^"]*tiny_hf_models[^"]*"' | cut -d'"' -f4 | tail -n 1)
        mkdir -p .device
        cp target/release/hearth target/release/examples/cuda_check \
            target/release/examples/cuda_llama_check target/release/examples/cuda_gemv_check \
            target/release/examples/cuda_quant_check target/release/examples/cuda_pick_check \
            target/release/examples/cuda_step_time .device/
        cp "$tests" .device/tiny_hf_models
        # Stripped: the device call carries at most 64 MiB.
        strip .device/hearth .device/cuda_check .device/cuda_llama_check .device/cuda_gemv_check \
            .device/cuda_quant_check .device/cuda_pick_check .device/cuda_step_time .device/tiny_hf_models
        # One archive for the device call (about a third of the size).
        tar -cJf .device/bin.tar.xz -C .device hearth cuda_check cuda_llama_check \
            cuda_gemv_check cuda_quant_check cuda_pick_check cuda_step_time tiny_hf_models
        ls -la .device
        ;;
    run)
        for d in /usr/local/cuda/lib64 /usr/local/cuda-13.0/targets/x86_64-linux/lib; do
            if [ -d "$d" ]; then export LD_LIBRARY_PATH="$d:${LD_LIBRARY_PATH:-}"; fi
        done
        ./.device/cuda_check
        # The GPU llama against the CPU llama on a GGUF (default: the store's model).
        model="${2:-${HEARTH_HOME:-$HOME/.local/share/hearth}/models/smollm2-135m-instruct-q4_1/SmolLM2-135M-Instruct.Q4_1.gguf}"
        ./.device/cuda_llama_check "$model"
        ;;
    *)
        echo "usage: scripts/cuda/check.sh build|run" >&2
        exit 2
        ;;
esac
