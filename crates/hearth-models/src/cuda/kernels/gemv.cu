// The matrix products of a decode step with few tokens (t <= 2): y[tok, r] = sum_k
// w[r, k] * x[tok, k] (+ y[tok, r] when accumulating), bf16 w and x, f32 y. Reading the
// weights once is the whole cost, so the kernel is built for bandwidth: one warp a
// weight row, 16-byte loads (8 bf16) along k, and CHUNK of them issued by every
// lane before the first is used (each warp keeps CHUNK * 512 bytes in flight).
// Weights are streamed past L1 (read once); x is small and read by every warp of the
// SM, so plain (L1-cached) loads, not the non-coherent path: under PDL this kernel may
// start before the kernel writing x ends. Needs cols % 8 == 0 (16-byte rows).

// Threads a block (product.rs launches 8 rows a block); 4 blocks an SM fit in registers.
#define GEMV_THREADS 256

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

// Lane `lane`'s share of chunk `base` of a weight row: CHUNK 16-byte loads, all
// issued before any is used (zeros past the row's end).
template <int CHUNK>
__device__ __forceinline__ void gemv_load_chunk(uint4 (&wv)[CHUNK], const uint4* wr,
                                                int base, int vecs) {
#pragma unroll
    for (int c = 0; c < CHUNK; ++c) {
        const int v = base + 32 * c;
        wv[c] = v < vecs ? load_streaming(wr + v) : make_uint4(0, 0, 0, 0);
    }
}

// acc[tok] += the chunk's weights · x[tok] over the same columns.
template <int T, int CHUNK>
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

template <int T, int CHUNK>
__device__ __forceinline__ void gemv_bf16_rows(float* y, const unsigned short* w,
                                               const unsigned short* x, int rows, int cols,
                                               int accumulate) {
    const int row = (int)((blockIdx.x * (long)blockDim.x + threadIdx.x) >> 5);
    const int lane = threadIdx.x & 31;
    const bool live = row < rows;
    const int vecs = cols >> 3;
    const uint4* wr = reinterpret_cast<const uint4*>(w + (long)(live ? row : 0) * cols);
    const uint4* xv = reinterpret_cast<const uint4*>(x);
    // Nothing writes the weights: the first chunk is in flight before waiting for the
    // kernel that writes x (and y), so under PDL it overlaps that kernel's end.
    uint4 wv[CHUNK];
    if (live) gemv_load_chunk(wv, wr, lane, vecs);
    grid_wait();
    grid_release();
    if (!live) return;
    float acc[T];
#pragma unroll
    for (int tok = 0; tok < T; ++tok) acc[tok] = 0.f;
    for (int base = lane; base < vecs; base += 32 * CHUNK) {
        if (base != lane) gemv_load_chunk(wv, wr, base, vecs);
        gemv_fma_chunk<T, CHUNK>(acc, wv, xv, base, vecs);
    }
    gemv_store<T>(y, acc, rows, row, lane, accumulate);
}

// One entry point per token count and chunk: both size arrays at compile time. A lane's
// share of a 3072-wide row is 12 loads: chunks of 16 issue them all at once (one trip
// to memory a row), chunks of 8 take two trips but half the registers.
#define GEMV_ENTRY(T, C)                                                                  \
    extern "C" __global__ void __launch_bounds__(GEMV_THREADS, C == 8 ? 4 : 2)            \
        gemv_bf16_t##T##_c##C(float* y, const unsigned short* w, const unsigned short* x, \
                              int rows, int cols, int accumulate) {                       \
        gemv_bf16_rows<T, C>(y, w, x, rows, cols, accumulate);                            \
    }
GEMV_ENTRY(1, 8)
GEMV_ENTRY(2, 8)
GEMV_ENTRY(1, 16)
GEMV_ENTRY(2, 16)
