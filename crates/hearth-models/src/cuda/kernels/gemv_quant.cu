// Matrix products and row dequantization over GGUF block-quantized weights, held on the
// GPU as the file's blocks with each block's quant bytes and its scales split into two
// regions (weights.rs repacks them so that every quant load is aligned and no byte is
// added): qs = rows * blocks_per_row * QS bytes, meta = rows * blocks_per_row * META.
//
// A unit is 32 weights of one block (one unit a 32-weight block, eight a 256-weight
// K-quant block), decoded as four groups of 8 contiguous columns. Values are
// computed as candle dequantizes them on the CPU, each product and sum rounded on its
// own (__fmul_rn / __fadd_rn: never contracted to an FMA), so a dequantized row equals
// the CPU's bit for bit and the products differ from the CPU's only in summation order.

__device__ __forceinline__ float f16_to_f32(unsigned short h) {
    float f;
    asm("cvt.f32.f16 %0, %1;" : "=f"(f) : "h"(h));
    return f;
}

__device__ __forceinline__ uint4 qload16(const unsigned char* p) {
    uint4 v;
    asm volatile("ld.global.nc.L1::no_allocate.v4.u32 {%0, %1, %2, %3}, [%4];"
                 : "=r"(v.x), "=r"(v.y), "=r"(v.z), "=r"(v.w)
                 : "l"(p));
    return v;
}

__device__ __forceinline__ uint2 qload8(const unsigned char* p) {
    uint2 v;
    asm volatile("ld.global.nc.L1::no_allocate.v2.u32 {%0, %1}, [%2];"
                 : "=r"(v.x), "=r"(v.y)
                 : "l"(p));
    return v;
}

__device__ __forceinline__ unsigned short meta16(const unsigned char* p) {
    return *reinterpret_cast<const unsigned short*>(p);
}

// Byte k (0-15) of a 16-byte vector.
__device__ __forceinline__ unsigned byte_of(const uint4& v, int k) {
    const unsigned w = k < 4 ? v.x : k < 8 ? v.y : k < 12 ? v.z : v.w;
    return (w >> (8 * (k & 3))) & 0xffu;
}

__device__ __forceinline__ unsigned byte_of2(const uint2& v, int k) {
    return ((k < 4 ? v.x : v.y) >> (8 * (k & 3))) & 0xffu;
}

// Each type: Raw (a unit's loaded bytes), load, group (weights 8g..8g+8 of unit v,
// g = 0..3) and col (the first column of that group within the block).

// Q8_0: 32 weights a block, d (f16) * q (int8).
struct QQ8_0 {
    static constexpr int BLOCK = 32, QS = 32, META = 2, UNITS = 1;
    struct Raw {
        uint4 a, b;
        unsigned short d;
    };
    __device__ static Raw load(const unsigned char* qs, const unsigned char* meta, long blk,
                               int) {
        Raw r;
        r.a = qload16(qs + blk * QS);
        r.b = qload16(qs + blk * QS + 16);
        r.d = meta16(meta + blk * META);
        return r;
    }
    __device__ static void group(const Raw& r, int, int g, float (&w)[8]) {
        const float d = f16_to_f32(r.d);
        const uint4& q = g < 2 ? r.a : r.b;
#pragma unroll
        for (int k = 0; k < 8; ++k)
            w[k] = __fmul_rn((float)(signed char)byte_of(q, 8 * (g & 1) + k), d);
    }
    __device__ static int col(int, int g) { return 8 * g; }
};

// Q4_0: 32 weights a block, d * (nibble - 8); low nibbles are weights 0-15, high 16-31.
struct QQ4_0 {
    static constexpr int BLOCK = 32, QS = 16, META = 2, UNITS = 1;
    struct Raw {
        uint4 q;
        unsigned short d;
    };
    __device__ static Raw load(const unsigned char* qs, const unsigned char* meta, long blk,
                               int) {
        Raw r;
        r.q = qload16(qs + blk * QS);
        r.d = meta16(meta + blk * META);
        return r;
    }
    __device__ static void group(const Raw& r, int, int g, float (&w)[8]) {
        const float d = f16_to_f32(r.d);
#pragma unroll
        for (int k = 0; k < 8; ++k) {
            const unsigned b = byte_of(r.q, 8 * (g & 1) + k);
            w[k] = __fmul_rn((float)((int)(g < 2 ? b & 15u : b >> 4) - 8), d);
        }
    }
    __device__ static int col(int, int g) { return 8 * g; }
};

// Q4_1: 32 weights a block, nibble * d + m (same nibble order as Q4_0).
struct QQ4_1 {
    static constexpr int BLOCK = 32, QS = 16, META = 4, UNITS = 1;
    struct Raw {
        uint4 q;
        unsigned dm;
    };
    __device__ static Raw load(const unsigned char* qs, const unsigned char* meta, long blk,
                               int) {
        Raw r;
        r.q = qload16(qs + blk * QS);
        r.dm = *reinterpret_cast<const unsigned*>(meta + blk * META);
        return r;
    }
    __device__ static void group(const Raw& r, int, int g, float (&w)[8]) {
        const float d = f16_to_f32((unsigned short)(r.dm & 0xffffu));
        const float m = f16_to_f32((unsigned short)(r.dm >> 16));
#pragma unroll
        for (int k = 0; k < 8; ++k) {
            const unsigned b = byte_of(r.q, 8 * (g & 1) + k);
            w[k] = __fadd_rn(__fmul_rn((float)(g < 2 ? b & 15u : b >> 4), d), m);
        }
    }
    __device__ static int col(int, int g) { return 8 * g; }
};

// Q4_K: 256 weights a block in 8 sub-blocks of 32, each with a 6-bit scale and min:
// d * sc * nibble - dmin * m. Meta is the block's d, dmin and 12 packed scale bytes;
// qs byte 32j + l holds weight l of sub-block 2j (low nibble) and of 2j + 1 (high).
// Unit v covers bytes 32j + 16h .. + 16 (j = v / 2, h = v % 2): 16 weights of each.
struct QQ4_K {
    static constexpr int BLOCK = 256, QS = 128, META = 16, UNITS = 8;
    struct Raw {
        uint4 q, m;
    };
    __device__ static Raw load(const unsigned char* qs, const unsigned char* meta, long blk,
                               int v) {
        Raw r;
        r.q = qload16(qs + blk * QS + 16 * v);
        r.m = *reinterpret_cast<const uint4*>(meta + blk * META);
        return r;
    }
    // Scale and min of sub-block j from the 12 packed bytes (meta bytes 4-15).
    __device__ static void scale_min(const uint4& m, int j, float& sc, float& mn) {
        unsigned a, b;
        if (j < 4) {
            a = byte_of(m, 4 + j) & 63u;
            b = byte_of(m, 8 + j) & 63u;
        } else {
            a = (byte_of(m, 8 + j) & 15u) | ((byte_of(m, j) >> 6) << 4);
            b = (byte_of(m, 8 + j) >> 4) | ((byte_of(m, 4 + j) >> 6) << 4);
        }
        sc = (float)a;
        mn = (float)b;
    }
    __device__ static void group(const Raw& r, int v, int g, float (&w)[8]) {
        const float d = f16_to_f32((unsigned short)(r.m.x & 0xffffu));
        const float dmin = f16_to_f32((unsigned short)(r.m.x >> 16));
        float sc, mn;
        scale_min(r.m, 2 * (v >> 1) + (g >> 1), sc, mn);
        const float dd = __fmul_rn(d, sc), off = __fmul_rn(dmin, mn);
#pragma unroll
        for (int k = 0; k < 8; ++k) {
            const unsigned b = byte_of(r.q, 8 * (g & 1) + k);
            w[k] = __fsub_rn(__fmul_rn(dd, (float)(g < 2 ? b & 15u : b >> 4)), off);
        }
    }
    __device__ static int col(int v, int g) {
        return 64 * (v >> 1) + 16 * (v & 1) + 32 * (g >> 1) + 8 * (g & 1);
    }
};

// Q6_K: 256 weights a block, d * sc (int8, one per 16 weights) * (6-bit q - 32). qs is
// the block's ql (128 bytes) then qh (64); meta its 16 scales then d. Within each half
// n of the block, weight l (0-31) and l + 32, l + 64, l + 96 take their low 4 bits from
// ql[64n + l] / ql[64n + 32 + l] and their high 2 from qh[32n + l]. Unit v covers
// l = 8 (v % 4) .. + 8 of half v / 4: group g is the weights l + 32g.
struct QQ6_K {
    static constexpr int BLOCK = 256, QS = 192, META = 18, UNITS = 8;
    struct Raw {
        uint2 la, lb, h;
        unsigned s;
        unsigned short d;
    };
    __device__ static Raw load(const unsigned char* qs, const unsigned char* meta, long blk,
                               int v) {
        const int n = v >> 2, l0 = 8 * (v & 3);
        const unsigned char* q = qs + blk * QS;
        const unsigned char* sc = meta + blk * META + 8 * n + (l0 >> 4);
        Raw r;
        r.la = qload8(q + 64 * n + l0);
        r.lb = qload8(q + 64 * n + 32 + l0);
        r.h = qload8(q + 128 + 32 * n + l0);
        r.s = sc[0] | (sc[2] << 8) | (sc[4] << 16) | ((unsigned)sc[6] << 24);
        r.d = meta16(meta + blk * META + 16);
        return r;
    }
    __device__ static void group(const Raw& r, int, int g, float (&w)[8]) {
        const float d = f16_to_f32(r.d);
        const float e = __fmul_rn(d, (float)(signed char)((r.s >> (8 * g)) & 0xffu));
        const uint2& l = (g & 1) ? r.lb : r.la;
#pragma unroll
        for (int k = 0; k < 8; ++k) {
            const unsigned lo = g < 2 ? byte_of2(l, k) & 15u : byte_of2(l, k) >> 4;
            const unsigned hi = (byte_of2(r.h, k) >> (2 * g)) & 3u;
            w[k] = __fmul_rn(e, (float)((int)(lo | (hi << 4)) - 32));
        }
    }
    __device__ static int col(int v, int g) { return 128 * (v >> 2) + 8 * (v & 3) + 32 * g; }
};

// Units a lane loads before using any (each unit is 16-32 bytes a lane).
#define QCHUNK 4
#define QGEMV_THREADS 256

// acc[tok] += w[0..8) · x[tok, col..col+8) for the first t tokens (x f32 or bf16).
template <int T>
__device__ __forceinline__ void dot8(float (&acc)[T], const float* w, const void* x, int x_bf16,
                                     int t, long cols, int col) {
#pragma unroll
    for (int tok = 0; tok < T; ++tok) {
        if (tok >= t) break;
        float xf[8];
        if (x_bf16) {
            const uint4 v = *reinterpret_cast<const uint4*>(
                static_cast<const unsigned short*>(x) + tok * cols + col);
            unpack_bf16x8(v, xf);
        } else {
            const float4* p =
                reinterpret_cast<const float4*>(static_cast<const float*>(x) + tok * cols + col);
            const float4 a = p[0], b = p[1];
            xf[0] = a.x, xf[1] = a.y, xf[2] = a.z, xf[3] = a.w;
            xf[4] = b.x, xf[5] = b.y, xf[6] = b.z, xf[7] = b.w;
        }
#pragma unroll
        for (int j = 0; j < 8; ++j) acc[tok] = fmaf(w[j], xf[j], acc[tok]);
    }
}

// acc[tok] = this lane's share of row `row` · x[tok]; `raw` holds the lane's first
// chunk of units already when `preloaded`.
template <class Q, int T>
__device__ __forceinline__ void qgemv_row(float (&acc)[T], typename Q::Raw (&raw)[QCHUNK],
                                          const unsigned char* qs, const unsigned char* meta,
                                          long row, int nb, const void* x, int x_bf16, int t,
                                          int cols, int lane, bool preloaded) {
#pragma unroll
    for (int tok = 0; tok < T; ++tok) acc[tok] = 0.f;
    const int units = nb * Q::UNITS;
    for (int base = lane; base < units; base += 32 * QCHUNK) {
        if (base != lane || !preloaded) {
#pragma unroll
            for (int c = 0; c < QCHUNK; ++c) {
                const int u = base + 32 * c;
                if (u < units) raw[c] = Q::load(qs, meta, row * nb + u / Q::UNITS, u % Q::UNITS);
            }
        }
#pragma unroll
        for (int c = 0; c < QCHUNK; ++c) {
            const int u = base + 32 * c;
            if (u >= units) break;
            const int b = u / Q::UNITS, v = u % Q::UNITS;
#pragma unroll
            for (int g = 0; g < 4; ++g) {
                float w[8];
                Q::group(raw[c], v, g, w);
                dot8<T>(acc, w, x, x_bf16, t, cols, b * Q::BLOCK + Q::col(v, g));
            }
        }
    }
}

// The lane's first chunk of units of `row`, issued before waiting on the kernel before
// (nothing writes the weights).
template <class Q>
__device__ __forceinline__ void qpreload(typename Q::Raw (&raw)[QCHUNK], const unsigned char* qs,
                                         const unsigned char* meta, long row, int nb, int lane) {
    const int units = nb * Q::UNITS;
#pragma unroll
    for (int c = 0; c < QCHUNK; ++c) {
        const int u = lane + 32 * c;
        if (u < units) raw[c] = Q::load(qs, meta, row * nb + u / Q::UNITS, u % Q::UNITS);
    }
}

// y[tok, r] (row stride ldy) = w[r] · x[tok] (+ y when accumulating), one warp a row.
template <class Q, int T>
__device__ __forceinline__ void qgemv_rows(float* y, int ldy, const unsigned char* qs,
                                           const unsigned char* meta, const void* x, int x_bf16,
                                           int t, int rows, int cols, int accumulate) {
    const int row = (int)((blockIdx.x * (long)blockDim.x + threadIdx.x) >> 5);
    const int lane = threadIdx.x & 31;
    const bool live = row < rows;
    const int nb = cols / Q::BLOCK;
    typename Q::Raw raw[QCHUNK];
    if (live) qpreload<Q>(raw, qs, meta, row, nb, lane);
    grid_wait();
    grid_release();
    if (!live) return;
    float acc[T];
    qgemv_row<Q, T>(acc, raw, qs, meta, row, nb, x, x_bf16, t, cols, lane, true);
#pragma unroll
    for (int tok = 0; tok < T; ++tok) {
        if (tok >= t) break;
        const float s = warp_sum(acc[tok]);
        if (lane == 0) {
            float* out = y + (long)tok * ldy + row;
            *out = accumulate ? *out + s : s;
        }
    }
}

// The gate/up product with SiLU(gate) * up as its epilogue (as gemv.cu's): w is
// [gate rows | up rows], act[tok, p] in the activations' type.
template <class Q, int T>
__device__ __forceinline__ void qgemv_silu_rows(void* act, const unsigned char* qs,
                                                const unsigned char* meta, const void* x,
                                                int x_bf16, int t, int ffn, int cols) {
    const int p = (int)((blockIdx.x * (long)blockDim.x + threadIdx.x) >> 5);
    const int lane = threadIdx.x & 31;
    const bool live = p < ffn;
    const int nb = cols / Q::BLOCK;
    typename Q::Raw raw[QCHUNK];
    if (live) qpreload<Q>(raw, qs, meta, p, nb, lane);
    grid_wait();
    grid_release();
    if (!live) return;
    float g[T], u[T];
    qgemv_row<Q, T>(g, raw, qs, meta, p, nb, x, x_bf16, t, cols, lane, true);
    qgemv_row<Q, T>(u, raw, qs, meta, (long)ffn + p, nb, x, x_bf16, t, cols, lane, false);
#pragma unroll
    for (int tok = 0; tok < T; ++tok) {
        if (tok >= t) break;
        const float gs = warp_sum(g[tok]), us = warp_sum(u[tok]);
        if (lane == 0) store_act(act, x_bf16, (long)tok * ffn + p, gs / (1.f + __expf(-gs)) * us);
    }
}

// out[i, :] = row (ids ? ids[i] : row0 + i) of the matrix, dequantized (f32, or bf16 when
// out_bf16): the token embedding, and the tiles cuBLAS multiplies for larger steps.
template <class Q>
__device__ __forceinline__ void qdequant_rows(void* out, int out_bf16, const unsigned char* qs,
                                              const unsigned char* meta, const int* ids, int row0,
                                              int nrows, int cols) {
    grid_enter();
    const int nb = cols / Q::BLOCK, units = nb * Q::UNITS;
    const long total = (long)nrows * units;
    for (long g = blockIdx.x * (long)blockDim.x + threadIdx.x; g < total;
         g += (long)gridDim.x * blockDim.x) {
        const long i = g / units;
        const int u = (int)(g % units), b = u / Q::UNITS, v = u % Q::UNITS;
        const long src = ids ? (long)ids[i] : (long)row0 + i;
        const typename Q::Raw raw = Q::load(qs, meta, src * nb + b, v);
#pragma unroll
        for (int g = 0; g < 4; ++g) {
            float w[8];
            Q::group(raw, v, g, w);
            const long at = i * cols + b * Q::BLOCK + Q::col(v, g);
#pragma unroll
            for (int k = 0; k < 8; ++k) store_act(out, out_bf16, at + k, w[k]);
        }
    }
}

// Entry points a type: qgemv_<type>_t<T> and qgemv_silu_<type>_t<T> for steps of 1 and
// of up to 8 tokens (the count is a run-time bound: a T = 8 kernel does only t tokens'
// work), and qdequant_<type>. quant_type.rs compiles this file with a QUANT_TYPE line
// for each type a model holds, when it is loaded.
#define QGEMV_ENTRIES(NAME, Q, T)                                                          \
    extern "C" __global__ void __launch_bounds__(QGEMV_THREADS, 2)                         \
        qgemv_##NAME##_t##T(float* y, int ldy, const unsigned char* qs,                    \
                            const unsigned char* meta, const void* x, int x_bf16, int t,   \
                            int rows, int cols, int accumulate) {                          \
        qgemv_rows<Q, T>(y, ldy, qs, meta, x, x_bf16, t, rows, cols, accumulate);          \
    }                                                                                      \
    extern "C" __global__ void __launch_bounds__(QGEMV_THREADS, 2)                         \
        qgemv_silu_##NAME##_t##T(void* act, const unsigned char* qs,                       \
                                 const unsigned char* meta, const void* x, int x_bf16,     \
                                 int t, int ffn, int cols) {                               \
        qgemv_silu_rows<Q, T>(act, qs, meta, x, x_bf16, t, ffn, cols);                     \
    }

#define QUANT_TYPE(NAME, Q)                                                                \
    QGEMV_ENTRIES(NAME, Q, 1)                                                              \
    QGEMV_ENTRIES(NAME, Q, 8)                                                              \
    extern "C" __global__ void qdequant_##NAME(void* out, int out_bf16,                    \
                                               const unsigned char* qs,                    \
                                               const unsigned char* meta, const int* ids,  \
                                               int row0, int nrows, int cols) {            \
        qdequant_rows<Q>(out, out_bf16, qs, meta, ids, row0, nrows, cols);                 \
    }

