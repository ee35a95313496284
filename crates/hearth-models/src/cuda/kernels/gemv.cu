// The matrix products of a decode step with few tokens (t <= 2): y[tok, r] = sum_k
// w[r, k] * x[tok, k] (+ y[tok, r] when accumulating; y's rows ldy apart), bf16 w and
// x, f32 y. Reading the weights once is the whole cost, so the kernel is built for
// bandwidth: one warp a weight row, 16-byte loads (8 bf16) along k, and CHUNK of them
// issued by every lane before the first is used (each warp keeps CHUNK * 512 bytes in
// flight).
// Weights are streamed past L1 (read once); x is small and read by every warp of the
// SM, so plain (L1-cached) loads, not the non-coherent path: under PDL this kernel may
// start before the kernel writing x ends. Needs cols % 8 == 0 (16-byte rows).

// Loads in flight a lane, and threads a block (product.rs launches 8 rows a block); 4
// blocks an SM fit in registers. Both can be set for measuring (HEARTH_CUDA_DEFINE,
// cuda/mod.rs): CHUNK=12 with GEMV_BLOCKS_PER_SM=3 (a 3072-wide row in one trip) was
// no faster served on an H100.
#ifndef CHUNK
#define CHUNK 8
#endif
#ifndef GEMV_BLOCKS_PER_SM
#define GEMV_BLOCKS_PER_SM 4
#endif
#define GEMV_THREADS 256

__device__ __forceinline__ uint4 load_streaming(const uint4* p) {
    uint4 v;
    asm volatile("ld.global.nc.L1::no_allocate.v4.u32 {%0, %1, %2, %3}, [%4];"
                 : "=r"(v.x), "=r"(v.y), "=r"(v.z), "=r"(v.w)
                 : "l"(p));
    return v;
}

// Lane `lane`'s share of chunk `base` of a weight row: CHUNK 16-byte loads, all
// issued before any is used (zeros past the row's end).
__device__ __forceinline__ void gemv_load_chunk(uint4 (&wv)[CHUNK], const uint4* wr,
                                                int base, int vecs) {
#pragma unroll
    for (int c = 0; c < CHUNK; ++c) {
        const int v = base + 32 * c;
        wv[c] = v < vecs ? load_streaming(wr + v) : make_uint4(0, 0, 0, 0);
    }
}

// acc[tok] += the chunk's weights · x[tok] over the same columns.
template <int T>
__device__ __forceinline__ void gemv_fma_chunk(float (&acc)[T], const uint4 (&wv)[CHUNK],
                                               const uint4* xv, int base, int vecs) {
#pragma unroll
    for (int c = 0; c < CHUNK; ++c) {
        const int v = base + 32 * c;
        if (v < vecs) {
            float wf[8];
            unpack_bf16x8(wv[c], wf);
#pragma unroll
            for (int tok = 0; tok < T; ++tok) {
                float xf[8];
                unpack_bf16x8(xv[(long)tok * vecs + v], xf);
#pragma unroll
                for (int j = 0; j < 8; ++j) acc[tok] = fmaf(wf[j], xf[j], acc[tok]);
            }
        }
    }
}

// What every GEMV kernel does first. Nothing writes the weights, so the lane's first
// chunk of its row `wr` is in flight before waiting for the kernel that writes x (and
// y): under PDL it overlaps that kernel's end.
__device__ __forceinline__ void gemv_begin(uint4 (&wv)[CHUNK], const uint4* wr, int vecs,
                                           bool live) {
    if (live) gemv_load_chunk(wv, wr, threadIdx.x & 31, vecs);
    grid_wait();
    grid_release();
}

// acc[tok] = this lane's share of weight row `wr` · x[tok]; the row's first chunk is
// already in `wv` (gemv_begin).
template <int T>
__device__ __forceinline__ void gemv_row(float (&acc)[T], uint4 (&wv)[CHUNK], const uint4* wr,
                                         const uint4* xv, int vecs, int lane) {
#pragma unroll
    for (int tok = 0; tok < T; ++tok) acc[tok] = 0.f;
    for (int base = lane; base < vecs; base += 32 * CHUNK) {
        if (base != lane) gemv_load_chunk(wv, wr, base, vecs);
        gemv_fma_chunk<T>(acc, wv, xv, base, vecs);
    }
}

// The products whose epilogue needs two rows (gate and up; the two rows of a RoPE
// pair) still take a warp a row: warps w and w + PAIRS_PER_BLOCK of a block take the
// first and second row of pair blockIdx.x * PAIRS_PER_BLOCK + w, and meet in shared
// memory (pair_sums). A warp a pair read its rows one after the other with half the
// warps in flight (H100, 3B at batch 1: together with the epilogue's operands loaded
// early, the q/k/v and gate/up products a warp a row took a decode step from
// 2.837 / 2.860 ms to 2.791 / 2.791 ms, with the attention's early loads).
#define PAIRS_PER_BLOCK (GEMV_THREADS / 64)

// The pair this warp's row belongs to, and whether the row is the pair's second.
__device__ __forceinline__ int pair_of_warp(int& second) {
    const int warp = threadIdx.x >> 5;
    second = warp >= PAIRS_PER_BLOCK;
    return blockIdx.x * PAIRS_PER_BLOCK + warp % PAIRS_PER_BLOCK;
}

// first[tok], second[tok] = the warp sums of the two rows of this warp's pair, given
// this warp's lane shares `own` (unused when not `live`). Every thread of the block
// must call it (a barrier).
template <int T>
__device__ __forceinline__ void pair_sums(float (&first)[T], float (&second)[T],
                                          const float (&own)[T], bool live) {
    __shared__ float sums[T][GEMV_THREADS / 32];
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    const int w0 = warp % PAIRS_PER_BLOCK;
#pragma unroll
    for (int tok = 0; tok < T; ++tok) {
        const float s = live ? warp_sum(own[tok]) : 0.f;
        if (lane == 0) sums[tok][warp] = s;
    }
    __syncthreads();
#pragma unroll
    for (int tok = 0; tok < T; ++tok) {
        first[tok] = sums[tok][w0];
        second[tok] = sums[tok][w0 + PAIRS_PER_BLOCK];
    }
}

template <int T>
__device__ __forceinline__ void gemv_bf16_rows(float* y, int ldy, const unsigned short* w,
                                               const unsigned short* x, int rows, int cols,
                                               int accumulate) {
    const int row = (int)((blockIdx.x * (long)blockDim.x + threadIdx.x) >> 5);
    const int lane = threadIdx.x & 31;
    const bool live = row < rows;
    const int vecs = cols >> 3;
    const uint4* wr = reinterpret_cast<const uint4*>(w + (long)(live ? row : 0) * cols);
    const uint4* xv = reinterpret_cast<const uint4*>(x);
    uint4 wv[CHUNK];
    gemv_begin(wv, wr, vecs, live);
    if (!live) return;
    float acc[T];
    gemv_row<T>(acc, wv, wr, xv, vecs, lane);
#pragma unroll
    for (int tok = 0; tok < T; ++tok) {
        const float s = warp_sum(acc[tok]);
        if (lane == 0) {
            float* out = y + (long)tok * ldy + row;
            *out = accumulate ? *out + s : s;
        }
    }
}

// inv[tok] = 1 / rms of the residual stream's row tok (width wide), from the
// per-block sums of squares its producer left in parts[tok * nparts ...]
// (gemv_fused.cu): the RMSNorm a product reads, folded into it. Every thread of the
// block must call it.
template <int T>
__device__ __forceinline__ void norm_scales(float (&inv)[T], const float* parts, int nparts,
                                            int width, float eps) {
    __shared__ float red[T][GEMV_THREADS / 32];
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
#pragma unroll
    for (int tok = 0; tok < T; ++tok) {
        float s = 0.f;
        for (int i = threadIdx.x; i < nparts; i += blockDim.x) s += parts[(long)tok * nparts + i];
        s = warp_sum(s);
        if (lane == 0) red[tok][warp] = s;
    }
    __syncthreads();
#pragma unroll
    for (int tok = 0; tok < T; ++tok) {
        float total = 0.f;
        for (int w = 0; w < (int)(blockDim.x >> 5); ++w) total += red[tok][w];
        inv[tok] = rsqrtf(total / width + eps);
    }
}

// The gate/up product with SiLU(gate) * up as its epilogue: w is [gate rows | up rows]
// (2 * ffn rows); pair p is gate row p and up row ffn + p, a warp each (pair_sums),
// and writes act[tok, p] in bf16, what the down product reads. The sums and the SiLU
// are silu_mul's, so the bits equal the product followed by silu_mul; one kernel and
// one f32 buffer fewer a layer.
// NORM: x is the residual stream times the norm's weights, not yet divided by its rms
// (gemv_fused.cu), so both sums are scaled by norm_scales' inverse rms first.
template <int T, bool NORM>
__device__ __forceinline__ void gemv_bf16_silu_rows(unsigned short* act, const unsigned short* w,
                                                    const unsigned short* x, int ffn, int cols,
                                                    const float* parts, int nparts, float eps) {
    int second;
    const int p = pair_of_warp(second);
    const int lane = threadIdx.x & 31;
    const bool live = p < ffn;
    const int vecs = cols >> 3;
    const uint4* wr =
        reinterpret_cast<const uint4*>(w + (long)(live ? p + second * ffn : 0) * cols);
    const uint4* xv = reinterpret_cast<const uint4*>(x);
    uint4 wv[CHUNK];
    gemv_begin(wv, wr, vecs, live);
    float inv[T];
#pragma unroll
    for (int tok = 0; tok < T; ++tok) inv[tok] = 1.f;
    if (NORM) norm_scales<T>(inv, parts, nparts, cols, eps);
    float own[T], g[T], u[T];
    if (live) gemv_row<T>(own, wv, wr, xv, vecs, lane);
    pair_sums<T>(g, u, own, live);
    if (!live || lane != 0 || second) return;
#pragma unroll
    for (int tok = 0; tok < T; ++tok) {
        float gs = g[tok], us = u[tok];
        if (NORM) { gs *= inv[tok]; us *= inv[tok]; }
        act[(long)tok * ffn + p] = f32_to_bf16(gs / (1.f + __expf(-gs)) * us);
    }
}

// One entry point per token count: the count sizes the accumulators at compile time.
// (Chunks of 16, one trip to memory for a 3072-wide row, were measured slower on an
// H100: half the blocks fit an SM, and the 3B's down product got 30% slower.)
#define GEMV_ENTRY(T)                                                                     \
    extern "C" __global__ void __launch_bounds__(GEMV_THREADS, GEMV_BLOCKS_PER_SM)        \
        gemv_bf16_t##T(float* y, int ldy, const unsigned short* w,                        \
                       const unsigned short* x, int rows, int cols, int accumulate) {     \
        gemv_bf16_rows<T>(y, ldy, w, x, rows, cols, accumulate);                          \
    }
GEMV_ENTRY(1)
GEMV_ENTRY(2)

#define GEMV_SILU_ENTRY(T)                                                                \
    extern "C" __global__ void __launch_bounds__(GEMV_THREADS, GEMV_BLOCKS_PER_SM)        \
        gemv_bf16_silu_t##T(unsigned short* act, const unsigned short* w,                 \
                            const unsigned short* x, int ffn, int cols) {                 \
        gemv_bf16_silu_rows<T, false>(act, w, x, ffn, cols, nullptr, 0, 0.f);             \
    }                                                                                     \
    extern "C" __global__ void __launch_bounds__(GEMV_THREADS, GEMV_BLOCKS_PER_SM)        \
        gemv_bf16_silu_norm_t##T(unsigned short* act, const unsigned short* w,            \
                                 const unsigned short* x, int ffn, int cols,              \
                                 const float* parts, int nparts, float eps) {             \
        gemv_bf16_silu_rows<T, true>(act, w, x, ffn, cols, parts, nparts, eps);           \
    }
GEMV_SILU_ENTRY(1)
GEMV_SILU_ENTRY(2)
