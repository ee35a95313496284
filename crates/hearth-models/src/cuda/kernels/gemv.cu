// The matrix products of a decode step with few tokens (t <= 8): y[tok, r] = sum_k
// w[r, k] * x[tok, k] (+ y[tok, r] when accumulating), bf16 w and x, f32 y. Reading the
// weights once is the whole cost, so the kernel is built for bandwidth: one warp a
// weight row, 16-byte loads (8 bf16) along k, and GEMV_CHUNK of them issued by every
// lane before the first is used (each warp keeps GEMV_CHUNK * 512 bytes in flight).
// Weights are streamed past L1 (read once); x is small and read by every warp of the
// SM, so it goes through the read-only cache. Needs cols % 8 == 0 (16-byte rows).

#define GEMV_CHUNK 8

__device__ __forceinline__ void unpack_bf16x8(const uint4 v, float* f) {
    const unsigned u[4] = {v.x, v.y, v.z, v.w};
#pragma unroll
    for (int i = 0; i < 4; ++i) {
        f[2 * i] = __uint_as_float(u[i] << 16);
        f[2 * i + 1] = __uint_as_float(u[i] & 0xffff0000u);
    }
}

__device__ __forceinline__ uint4 load_streaming(const uint4* p) {
    uint4 v;
    asm volatile("ld.global.nc.L1::no_allocate.v4.u32 {%0, %1, %2, %3}, [%4];"
                 : "=r"(v.x), "=r"(v.y), "=r"(v.z), "=r"(v.w)
                 : "l"(p));
    return v;
}

// Lane `lane`'s share of chunk `base` of a weight row: GEMV_CHUNK 16-byte loads, all
// issued before any is used (zeros past the row's end).
__device__ __forceinline__ void gemv_load_chunk(uint4 (&wv)[GEMV_CHUNK], const uint4* wr,
                                                int base, int vecs) {
#pragma unroll
    for (int c = 0; c < GEMV_CHUNK; ++c) {
        const int v = base + 32 * c;
        wv[c] = v < vecs ? load_streaming(wr + v) : make_uint4(0, 0, 0, 0);
    }
}

// acc[tok] += the chunk's weights · x[tok] over the same columns; x is read through the
// read-only cache, or from shared memory (X_SHARED).
template <int T, bool X_SHARED>
__device__ __forceinline__ void gemv_fma_chunk(float (&acc)[T], const uint4 (&wv)[GEMV_CHUNK],
                                               const uint4* xv, int base, int vecs) {
#pragma unroll
    for (int c = 0; c < GEMV_CHUNK; ++c) {
        const int v = base + 32 * c;
        if (v < vecs) {
            float wf[8];
            unpack_bf16x8(wv[c], wf);
#pragma unroll
            for (int tok = 0; tok < T; ++tok) {
                const uint4* xp = xv + (long)tok * vecs + v;
                float xf[8];
                unpack_bf16x8(X_SHARED ? *xp : __ldg(xp), xf);
#pragma unroll
                for (int j = 0; j < 8; ++j) acc[tok] = fmaf(wf[j], xf[j], acc[tok]);
            }
        }
    }
}

// The warp's sums of row `row` into y[tok, row] (added to it when accumulating).
template <int T>
__device__ __forceinline__ void gemv_store(float* y, const float (&acc)[T], int rows, int row,
                                           int lane, int accumulate) {
#pragma unroll
    for (int tok = 0; tok < T; ++tok) {
        float s = acc[tok];
#pragma unroll
        for (int o = 16; o > 0; o >>= 1) s += __shfl_xor_sync(0xffffffff, s, o);
        if (lane == 0) {
            float* out = y + (long)tok * rows + row;
            *out = accumulate ? *out + s : s;
        }
    }
}

template <int T>
__device__ __forceinline__ void gemv_bf16_rows(float* y, const unsigned short* w,
                                               const unsigned short* x, int rows, int cols,
                                               int accumulate) {
    const int row = (int)((blockIdx.x * (long)blockDim.x + threadIdx.x) >> 5);
    const int lane = threadIdx.x & 31;
    if (row >= rows) return;
    const int vecs = cols >> 3;
    const uint4* wr = reinterpret_cast<const uint4*>(w + (long)row * cols);
    const uint4* xv = reinterpret_cast<const uint4*>(x);
    float acc[T];
#pragma unroll
    for (int tok = 0; tok < T; ++tok) acc[tok] = 0.f;
    for (int base = lane; base < vecs; base += 32 * GEMV_CHUNK) {
        uint4 wv[GEMV_CHUNK];
        gemv_load_chunk(wv, wr, base, vecs);
        gemv_fma_chunk<T, false>(acc, wv, xv, base, vecs);
    }
    gemv_store<T>(y, acc, rows, row, lane, accumulate);
}

// One entry point per token count: the count sizes the accumulators at compile time.
#define GEMV_ENTRY(T)                                                                     \
    extern "C" __global__ void gemv_bf16_t##T(float* y, const unsigned short* w,          \
                                              const unsigned short* x, int rows,          \
                                              int cols, int accumulate) {                 \
        gemv_bf16_rows<T>(y, w, x, rows, cols, accumulate);                               \
    }
GEMV_ENTRY(1)
GEMV_ENTRY(2)
GEMV_ENTRY(3)
GEMV_ENTRY(4)
GEMV_ENTRY(5)
GEMV_ENTRY(6)
GEMV_ENTRY(7)
GEMV_ENTRY(8)

// The same product with its input made in a prologue instead of read from memory, so
// the kernel before it (RMSNorm, or SiLU(gate) * up) is not launched at all. Each block
// writes the step's t input rows to shared memory as bf16 (exactly what that kernel
// would have stored), then its warps take weight rows blockIdx.x * warps + warp,
// stepping by the grid (a grid of a few blocks per multiprocessor, so the prologue
// runs a few hundred times, not once per 8 rows). The first row's weights are
// requested before the prologue, so its latency hides behind them.
//   mode GEMV_NORM: x[tok] = src[tok, :cols] * rsqrt(mean(src^2) + eps) * norm_w
//   mode GEMV_SILU: x[tok] = silu(src[tok, c]) * src[tok, cols + c] (src [t, 2 cols])
// Dynamic shared memory: T * cols * 2 bytes.
#define GEMV_NORM 1
#define GEMV_SILU 2

template <int T>
__device__ __forceinline__ void gemv_prologue(unsigned short* xs, const float* src,
                                              const float* norm_w, float eps, int cols,
                                              int mode) {
    __shared__ float red[32][T];
    __shared__ float inv[T];
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    const int warps = blockDim.x >> 5;
    if (mode == GEMV_NORM) {
        float s[T];
#pragma unroll
        for (int tok = 0; tok < T; ++tok) {
            s[tok] = 0.f;
            for (int d = threadIdx.x; d < cols; d += blockDim.x) {
                const float v = src[(long)tok * cols + d];
                s[tok] += v * v;
            }
#pragma unroll
            for (int o = 16; o > 0; o >>= 1) s[tok] += __shfl_xor_sync(0xffffffff, s[tok], o);
            if (lane == 0) red[warp][tok] = s[tok];
        }
        __syncthreads();
        if (threadIdx.x < T) {
            float total = 0.f;
            for (int i = 0; i < warps; ++i) total += red[i][threadIdx.x];
            inv[threadIdx.x] = rsqrtf(total / cols + eps);
        }
        __syncthreads();
#pragma unroll
        for (int tok = 0; tok < T; ++tok)
            for (int d = threadIdx.x; d < cols; d += blockDim.x)
                xs[tok * cols + d] =
                    f32_to_bf16(src[(long)tok * cols + d] * inv[tok] * norm_w[d]);
    } else {
#pragma unroll
        for (int tok = 0; tok < T; ++tok)
            for (int d = threadIdx.x; d < cols; d += blockDim.x) {
                const float g = src[(long)tok * 2 * cols + d];
                const float u = src[(long)tok * 2 * cols + cols + d];
                xs[tok * cols + d] = f32_to_bf16(g / (1.f + __expf(-g)) * u);
            }
    }
    __syncthreads();
}

template <int T>
__device__ __forceinline__ void gemv_fused_rows(float* y, const unsigned short* w, int rows,
                                                int cols, int accumulate, int mode,
                                                const float* src, const float* norm_w,
                                                float eps) {
    extern __shared__ __align__(16) unsigned short xs[];
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    const int warps = blockDim.x >> 5;
    const int vecs = cols >> 3;
    const uint4* xv = reinterpret_cast<const uint4*>(xs);
    int row = blockIdx.x * warps + warp;
    const int step = gridDim.x * warps;
    const uint4* w16 = reinterpret_cast<const uint4*>(w);
    // The first row's first chunk, requested before the prologue.
    uint4 wv[GEMV_CHUNK];
    gemv_load_chunk(wv, w16 + (long)row * vecs, lane, row < rows ? vecs : 0);
    gemv_prologue<T>(xs, src, norm_w, eps, cols, mode);
    for (; row < rows; row += step) {
        const uint4* wr = w16 + (long)row * vecs;
        float acc[T];
#pragma unroll
        for (int tok = 0; tok < T; ++tok) acc[tok] = 0.f;
        for (int base = lane; base < vecs; base += 32 * GEMV_CHUNK) {
            // Later chunks of the row (the first is already here).
            if (base != lane) gemv_load_chunk(wv, wr, base, vecs);
            gemv_fma_chunk<T, true>(acc, wv, xv, base, vecs);
        }
        gemv_store<T>(y, acc, rows, row, lane, accumulate);
        // The next row's first chunk.
        const int next = row + step;
        if (next < rows) gemv_load_chunk(wv, w16 + (long)next * vecs, lane, vecs);
    }
}

#define GEMV_FUSED_ENTRY(T)                                                               \
    extern "C" __global__ void gemv_fused_bf16_t##T(                                      \
        float* y, const unsigned short* w, int rows, int cols, int accumulate, int mode,  \
        const float* src, const float* norm_w, float eps) {                               \
        gemv_fused_rows<T>(y, w, rows, cols, accumulate, mode, src, norm_w, eps);          \
    }
GEMV_FUSED_ENTRY(1)
GEMV_FUSED_ENTRY(2)
GEMV_FUSED_ENTRY(3)
GEMV_FUSED_ENTRY(4)
GEMV_FUSED_ENTRY(5)
GEMV_FUSED_ENTRY(6)
GEMV_FUSED_ENTRY(7)
GEMV_FUSED_ENTRY(8)
