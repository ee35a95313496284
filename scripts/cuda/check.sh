#!/usr/bin/env bash
# The CUDA backend's build path and its kernel check.
#
# Build (any Linux machine, no CUDA toolkit needed: cudarc loads libcuda/libnvrtc at
# run time and NVRTC compiles hearth's kernels for the GPU it finds):
#   scripts/cuda/check.sh build      -> .device/cuda_check
# Run (on the machine with the GPU; needs the driver and libnvrtc, e.g. CUDA 13's
# /usr/local/cuda-13.0/targets/x86_64-linux/lib on LD_LIBRARY_PATH):
#   scripts/cuda/check.sh run
# It checks the GPU paged-attention kernel against the CPU kernel on random batches
# and prints its timings; it exits non-zero when they differ.
set -euo pipefail
cd "$(dirname "$0")/../.."
case "${1:-}" in
    build)
        cargo build --release -p hearth-models --features cuda --example cuda_check
        mkdir -p .device
        cp target/release/examples/cuda_check .device/
        echo ".device/cuda_check"
        ;;
    run)
        for d in /usr/local/cuda/lib64 /usr/local/cuda-13.0/targets/x86_64-linux/lib; do
            if [ -d "$d" ]; then export LD_LIBRARY_PATH="$d:${LD_LIBRARY_PATH:-}"; fi
        done
        ./.device/cuda_check
        ;;
    *)
        echo "usage: scripts/cuda/check.sh build|run" >&2
        exit 2
        ;;
esac
