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

// Activations quantized in 16-element groups (scale d = max |x| / QACT_MAX), held in
// shared memory by the products below: q (t rows of cols values), d and the exact sum
// s of each group's x (t rows of cols / 16 floats). QACT_BITS (set by quant_type.rs
// when it compiles this file) picks int16 activations and dp2a (two 16 x 8-bit products
// an instruction; ~2e-5 of a product) or int8 and dp4a (four; ~0.4% of a product, as
// llama.cpp's kernels).
#ifndef QACT_BITS
#define QACT_BITS 16
#endif
#if QACT_BITS == 8
typedef signed char qact_t;
#define QACT_MAX 127.f
#else
typedef short qact_t;
#define QACT_MAX 32767.f
#endif

struct XQ {
    const qact_t* q;
    const float* dd;
    const float* ss;
    int cols;
    __device__ const qact_t* at(int tok, int col) const { return q + (long)tok * cols + col; }
    __device__ float d(int tok, int g) const { return dd[tok * (cols >> 4) + g]; }
    __device__ float s(int tok, int g) const { return ss[tok * (cols >> 4) + g]; }
};

#if QACT_BITS == 8
// sum over 8 signed weight bytes (two words) of w * x, x from `col` (a multiple of 8).
__device__ __forceinline__ int dp8(unsigned w0, unsigned w1, int tok, int col, const XQ& x,
                                   int acc) {
    const int2 a = *reinterpret_cast<const int2*>(x.at(tok, col));
    return __dp4a((int)w1, a.y, __dp4a((int)w0, a.x, acc));
}
#else
// sum of 4 signed weight bytes (w) times 4 int16 activations (two words).
__device__ __forceinline__ int dp2a4(unsigned w, int x01, int x23, int acc) {
    return __dp2a_hi(x23, (int)w, __dp2a_lo(x01, (int)w, acc));
}

__device__ __forceinline__ int dp8(unsigned w0, unsigned w1, int tok, int col, const XQ& x,
                                   int acc) {
    const int4 a = *reinterpret_cast<const int4*>(x.at(tok, col));
    return dp2a4(w1, a.z, a.w, dp2a4(w0, a.x, a.y, acc));
}
#endif

// sum over 16 signed weight bytes of w * x, x from `col` (a multiple of 16).
__device__ __forceinline__ int dp16(const uint4& w, int tok, int col, const XQ& x) {
    return dp8(w.z, w.w, tok, col + 8, x, dp8(w.x, w.y, tok, col, x, 0));
}

__device__ __forceinline__ uint4 nibbles_lo(const uint4& q) {
    return make_uint4(q.x & 0x0F0F0F0Fu, q.y & 0x0F0F0F0Fu, q.z & 0x0F0F0F0Fu, q.w & 0x0F0F0F0Fu);
}

__device__ __forceinline__ uint4 nibbles_hi(const uint4& q) {
    return make_uint4((q.x >> 4) & 0x0F0F0F0Fu, (q.y >> 4) & 0x0F0F0F0Fu,
                      (q.z >> 4) & 0x0F0F0F0Fu, (q.w >> 4) & 0x0F0F0F0Fu);
}

// Each type: Raw (a unit's loaded bytes), load, group (weights 8g..8g+8 of unit v,
// g = 0..3, as floats: the row dequantization), dot (the unit against token tok's
// quantized activations: the products) and col (the first column of group g within
// the block). dot reads only shared memory and registers, so for several rows against
// the same token the compiler loads the activations once.

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
    __device__ static float dot(const Raw& r, int, int b, const XQ& x, int tok) {
        const float d = f16_to_f32(r.d);
        const int col = 32 * b, g = col >> 4;
        const int sa = dp16(r.a, tok, col, x), sb = dp16(r.b, tok, col + 16, x);
        return d * fmaf(x.d(tok, g), (float)sa, x.d(tok, g + 1) * (float)sb);
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
    __device__ static float dot(const Raw& r, int, int b, const XQ& x, int tok) {
        const float d = f16_to_f32(r.d);
        const int col = 32 * b, g = col >> 4;
        const int sa = dp16(nibbles_lo(r.q), tok, col, x);
        const int sb = dp16(nibbles_hi(r.q), tok, col + 16, x);
        const float qx = fmaf(x.d(tok, g), (float)sa, x.d(tok, g + 1) * (float)sb);
        return d * fmaf(-8.f, x.s(tok, g) + x.s(tok, g + 1), qx);
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
    __device__ static float dot(const Raw& r, int, int b, const XQ& x, int tok) {
        const float d = f16_to_f32((unsigned short)(r.dm & 0xffffu));
        const float m = f16_to_f32((unsigned short)(r.dm >> 16));
        const int col = 32 * b, g = col >> 4;
        const int sa = dp16(nibbles_lo(r.q), tok, col, x);
        const int sb = dp16(nibbles_hi(r.q), tok, col + 16, x);
        const float qx = fmaf(x.d(tok, g), (float)sa, x.d(tok, g + 1) * (float)sb);
        return fmaf(m, x.s(tok, g) + x.s(tok, g + 1), d * qx);
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
    __device__ static float dot(const Raw& r, int v, int b, const XQ& x, int tok) {
        const float d = f16_to_f32((unsigned short)(r.m.x & 0xffffu));
        const float dmin = f16_to_f32((unsigned short)(r.m.x >> 16));
        const int j = v >> 1;
        float sc1, m1, sc2, m2;
        scale_min(r.m, 2 * j, sc1, m1);
        scale_min(r.m, 2 * j + 1, sc2, m2);
        const float d1 = d * sc1, o1 = dmin * m1, d2 = d * sc2, o2 = dmin * m2;
        const int ca = 256 * b + col(v, 0), cb = ca + 32, ga = ca >> 4, gb = cb >> 4;
        const int sa = dp16(nibbles_lo(r.q), tok, ca, x), sb = dp16(nibbles_hi(r.q), tok, cb, x);
        const float a = fmaf(d1 * x.d(tok, ga), (float)sa, d2 * x.d(tok, gb) * (float)sb);
        return fmaf(-o1, x.s(tok, ga), fmaf(-o2, x.s(tok, gb), a));
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
    // Group g's 8 weights as signed bytes (q - 32), two words.
    __device__ static int2 signed_group(const Raw& r, int g) {
        const uint2& l = (g & 1) ? r.lb : r.la;
        const int sh = g < 2 ? 0 : 4, hs = 2 * g;
        const unsigned w0 = ((l.x >> sh) & 0x0F0F0F0Fu) | (((r.h.x >> hs) & 0x03030303u) << 4);
        const unsigned w1 = ((l.y >> sh) & 0x0F0F0F0Fu) | (((r.h.y >> hs) & 0x03030303u) << 4);
        return make_int2((int)__vsub4(w0, 0x20202020u), (int)__vsub4(w1, 0x20202020u));
    }
    __device__ static float dot(const Raw& r, int v, int b, const XQ& x, int tok) {
        const float d = f16_to_f32(r.d);
        float sum = 0.f;
#pragma unroll
        for (int g = 0; g < 4; ++g) {
            const float e = d * (float)(signed char)((r.s >> (8 * g)) & 0xffu);
            const int2 q = signed_group(r, g);
            const int c = 256 * b + col(v, g);
            const int s = dp8((unsigned)q.x, (unsigned)q.y, tok, c, x, 0);
            sum = fmaf(e * x.d(tok, c >> 4), (float)s, sum);
        }
        return sum;
    }
    __device__ static int col(int v, int g) { return 128 * (v >> 2) + 8 * (v & 3) + 32 * g; }
};

// Rows a warp sums at once in steps of several tokens, and gate/up pairs: 2, or 1
// (HEARTH_CUDA_QROWS=1: a row at a time, the next row's loads in flight).
#ifndef QROWS
#define QROWS 2
#endif

// Units of a row a lane loads before using any (each unit is 16-32 bytes a lane): 4 when
// a warp sums one row, 2 each when it sums two (registers).
#define QCHUNK 4
#define QCHUNK_PAIR 2
#define QGEMV_THREADS 256

// The step's t rows of x (f32, or bf16 when x_bf16) quantized into shared memory as XQ
// (sizeof(qact_t) + 0.5 bytes an element), by the whole block; returns the view.
__device__ __forceinline__ XQ quantize_x(unsigned char* smem, const void* x, int x_bf16, int t,
                                         int cols) {
    qact_t* q = reinterpret_cast<qact_t*>(smem);
    float* dd = reinterpret_cast<float*>(smem + (long)sizeof(qact_t) * t * cols);
    const int groups = cols >> 4;
    float* ss = dd + t * groups;
    for (int g = threadIdx.x; g < t * groups; g += blockDim.x) {
        const int tok = g / groups, c0 = (g - tok * groups) << 4;
        float v[16];
        if (x_bf16) {
            const uint4* p = reinterpret_cast<const uint4*>(
                static_cast<const unsigned short*>(x) + (long)tok * cols + c0);
            unpack_bf16x8(p[0], v);
            unpack_bf16x8(p[1], v + 8);
        } else {
            const float4* p = reinterpret_cast<const float4*>(
                static_cast<const float*>(x) + (long)tok * cols + c0);
#pragma unroll
            for (int k = 0; k < 4; ++k) {
                const float4 f = p[k];
                v[4 * k] = f.x, v[4 * k + 1] = f.y, v[4 * k + 2] = f.z, v[4 * k + 3] = f.w;
            }
        }
        float amax = 0.f, sum = 0.f;
#pragma unroll
        for (int k = 0; k < 16; ++k) {
            amax = fmaxf(amax, fabsf(v[k]));
            sum += v[k];
        }
        const float inv = amax > 0.f ? QACT_MAX / amax : 0.f;
        qact_t* out = q + (long)tok * cols + c0;
#pragma unroll
        for (int k = 0; k < 16; ++k) out[k] = (qact_t)__float2int_rn(v[k] * inv);
        dd[g] = amax / QACT_MAX;
        ss[g] = sum;
    }
    __syncthreads();
    return XQ{q, dd, ss, cols};
}

// The lane's first chunk of units of `row` (nothing writes the weights: issued ahead).
template <class Q, int C>
__device__ __forceinline__ void qpreload(typename Q::Raw (&raw)[C], const unsigned char* qs,
                                         const unsigned char* meta, long row, int nb, int lane) {
    const int units = nb * Q::UNITS;
#pragma unroll
    for (int c = 0; c < C; ++c) {
        const int u = lane + 32 * c;
        if (u < units) raw[c] = Q::load(qs, meta, row * nb + u / Q::UNITS, u % Q::UNITS);
    }
}

// acc[r][tok] = this lane's share of row rows[r] · x[tok], R rows at once: a unit's
// activations are read from shared memory once for all R rows (what bounds steps of
// several tokens). raw[r] holds row r's first chunk; rows at or past `live` rows are
// not read (their sums are garbage, never written).
template <class Q, int T, int R, int C>
__device__ __forceinline__ void qgemv_row(float (&acc)[R][T], typename Q::Raw (&raw)[R][C],
                                          const unsigned char* qs, const unsigned char* meta,
                                          const long (&rows)[R], int live, int nb, const XQ& x,
                                          int t, int lane) {
#pragma unroll
    for (int r = 0; r < R; ++r)
#pragma unroll
        for (int tok = 0; tok < T; ++tok) acc[r][tok] = 0.f;
    const int units = nb * Q::UNITS;
    for (int base = lane; base < units; base += 32 * C) {
        if (base != lane) {
#pragma unroll
            for (int r = 0; r < R; ++r) {
                if (r >= live) break;
#pragma unroll
                for (int c = 0; c < C; ++c) {
                    const int u = base + 32 * c;
                    if (u < units)
                        raw[r][c] = Q::load(qs, meta, rows[r] * nb + u / Q::UNITS, u % Q::UNITS);
                }
            }
        }
#pragma unroll
        for (int c = 0; c < C; ++c) {
            const int u = base + 32 * c;
            if (u >= units) break;
            const int b = u / Q::UNITS, v = u % Q::UNITS;
#pragma unroll
            for (int tok = 0; tok < T; ++tok) {
                if (tok >= t) break;
#pragma unroll
                for (int r = 0; r < R; ++r) acc[r][tok] += Q::dot(raw[r][c], v, b, x, tok);
            }
        }
    }
}

// y[tok, row] (+ y when accumulating) from a lane's sums: the warp's total, by lane 0.
template <int T>
__device__ __forceinline__ void qgemv_store(float* y, int ldy, long row, const float (&acc)[T],
                                            int t, int accumulate, int lane) {
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

// y[tok, r] (rows ldy apart) = w[r] · x[tok] (+ y when accumulating). Blocks stay
// resident (product.rs launches about two an SM) and each warp walks rows `stride`
// apart; each block quantizes x once, after waiting for the kernel that writes it.
// One token (T = 1): a row at a time, the next row's first loads in flight while the
// current one is summed. Several: two rows at a time (row, row + stride), sharing
// each activation read.
template <class Q, int T>
__device__ __forceinline__ void qgemv_rows(float* y, int ldy, const unsigned char* qs,
                                           const unsigned char* meta, const void* x, int x_bf16,
                                           int t, int rows, int cols, int accumulate) {
    extern __shared__ __align__(16) unsigned char qgemv_smem[];
    constexpr int R = T == 1 || QROWS == 1 ? 1 : 2, C = R == 1 ? QCHUNK : QCHUNK_PAIR;
    const int lane = threadIdx.x & 31, warps = blockDim.x >> 5;
    const int stride = gridDim.x * warps;
    const int nb = cols / Q::BLOCK;
    long row[R];
#pragma unroll
    for (int r = 0; r < R; ++r) row[r] = blockIdx.x * warps + (threadIdx.x >> 5) + (long)r * stride;
    typename Q::Raw cur[R][C];
#pragma unroll
    for (int r = 0; r < R; ++r)
        if (row[r] < rows) qpreload<Q, C>(cur[r], qs, meta, row[r], nb, lane);
    grid_wait();
    const XQ xq = quantize_x(qgemv_smem, x, x_bf16, t, cols);
    grid_release();
    for (; row[0] < rows;) {
        const int live = row[R - 1] < rows ? R : 1;
        typename Q::Raw nxt[C];
        const long next = row[0] + (long)R * stride;
        if (R == 1 && next < rows) qpreload<Q, C>(nxt, qs, meta, next, nb, lane);
        float acc[R][T];
        qgemv_row<Q, T, R, C>(acc, cur, qs, meta, row, live, nb, xq, t, lane);
#pragma unroll
        for (int r = 0; r < R; ++r)
            if (r < live) qgemv_store<T>(y, ldy, row[r], acc[r], t, accumulate, lane);
#pragma unroll
        for (int r = 0; r < R; ++r) row[r] += (long)R * stride;
        if (R == 1) {
#pragma unroll
            for (int c = 0; c < C; ++c) cur[0][c] = nxt[c];
        } else {
#pragma unroll
            for (int r = 0; r < R; ++r)
                if (row[r] < rows) qpreload<Q, C>(cur[r], qs, meta, row[r], nb, lane);
        }
    }
}

// The gate/up product with SiLU(gate) * up as its epilogue (as gemv.cu's): w is
// [gate rows | up rows], act[tok, p] in the activations' type. A warp takes gate row
// p and up row ffn + p together, sharing each activation read.
template <class Q, int T>
__device__ __forceinline__ void qgemv_silu_rows(void* act, const unsigned char* qs,
                                                const unsigned char* meta, const void* x,
                                                int x_bf16, int t, int ffn, int cols) {
    extern __shared__ __align__(16) unsigned char qgemv_smem[];
    const int lane = threadIdx.x & 31, warps = blockDim.x >> 5;
    const int stride = gridDim.x * warps;
    int p = blockIdx.x * warps + (threadIdx.x >> 5);
    const int nb = cols / Q::BLOCK;
#if QROWS == 1
    // The gate row, then the up row, whose first chunk streams in while the gate row
    // is summed.
    typename Q::Raw cur[1][QCHUNK], nxt[1][QCHUNK];
    if (p < ffn) qpreload<Q, QCHUNK>(cur[0], qs, meta, p, nb, lane);
    grid_wait();
    const XQ xq = quantize_x(qgemv_smem, x, x_bf16, t, cols);
    grid_release();
    for (; p < ffn; p += stride) {
        const long gate[1] = {p}, up[1] = {(long)ffn + p};
        qpreload<Q, QCHUNK>(nxt[0], qs, meta, up[0], nb, lane);
        float acc[2][1][T];
        qgemv_row<Q, T, 1, QCHUNK>(acc[0], cur, qs, meta, gate, 1, nb, xq, t, lane);
        if (p + stride < ffn) qpreload<Q, QCHUNK>(cur[0], qs, meta, p + stride, nb, lane);
        qgemv_row<Q, T, 1, QCHUNK>(acc[1], nxt, qs, meta, up, 1, nb, xq, t, lane);
#pragma unroll
        for (int tok = 0; tok < T; ++tok) {
            if (tok >= t) break;
            const float gs = warp_sum(acc[0][0][tok]), us = warp_sum(acc[1][0][tok]);
            if (lane == 0)
                store_act(act, x_bf16, (long)tok * ffn + p, gs / (1.f + __expf(-gs)) * us);
        }
    }
#else
    // One token: registers to spare for the single-row chunk.
    constexpr int C = T == 1 ? QCHUNK : QCHUNK_PAIR;
    typename Q::Raw cur[2][C];
    long rows[2] = {p, (long)ffn + p};
    if (p < ffn) {
        qpreload<Q, C>(cur[0], qs, meta, rows[0], nb, lane);
        qpreload<Q, C>(cur[1], qs, meta, rows[1], nb, lane);
    }
    grid_wait();
    const XQ xq = quantize_x(qgemv_smem, x, x_bf16, t, cols);
    grid_release();
    for (; p < ffn; p += stride) {
        rows[0] = p;
        rows[1] = (long)ffn + p;
        float acc[2][T];
        qgemv_row<Q, T, 2, C>(acc, cur, qs, meta, rows, 2, nb, xq, t, lane);
        if (p + stride < ffn) {
            qpreload<Q, C>(cur[0], qs, meta, p + stride, nb, lane);
            qpreload<Q, C>(cur[1], qs, meta, (long)ffn + p + stride, nb, lane);
        }
#pragma unroll
        for (int tok = 0; tok < T; ++tok) {
            if (tok >= t) break;
            const float gs = warp_sum(acc[0][tok]), us = warp_sum(acc[1][tok]);
            if (lane == 0)
                store_act(act, x_bf16, (long)tok * ffn + p, gs / (1.f + __expf(-gs)) * us);
        }
    }
#endif
}

// out[i, :] = row (ids ? ids[i] : row0 + i) of the matrix, dequantized (f32, or bf16 when
// out_bf16): the token embedding, and the tiles cuBLAS multiplies for larger steps.
template <class Q>
__device__ __forceinline__ void qdequant_rows(void* out, int out_bf16, const unsigned char* qs,
                                              const unsigned char* meta, const int* ids, int row0,
                                              int nrows, int cols) {
    grid_enter();
    // 32-bit indices (a tile or a lookup is far below 2^31 units): 64-bit division is
    // a long instruction sequence.
    const int nb = cols / Q::BLOCK, units = nb * Q::UNITS, total = nrows * units;
    for (int n = blockIdx.x * blockDim.x + threadIdx.x; n < total; n += gridDim.x * blockDim.x) {
        const int i = n / units, u = n - i * units, b = u / Q::UNITS, v = u % Q::UNITS;
        const long src = ids ? (long)ids[i] : (long)row0 + i;
        const typename Q::Raw raw = Q::load(qs, meta, src * nb + b, v);
#pragma unroll
        for (int g = 0; g < 4; ++g) {
            float w[8];
            Q::group(raw, v, g, w);
            const long at = (long)i * cols + b * Q::BLOCK + Q::col(v, g);
            // 8 values a store (16 bytes of bf16, 32 of f32; at is a multiple of 8).
            if (out_bf16) {
                unsigned h[4];
#pragma unroll
                for (int k = 0; k < 4; ++k)
                    h[k] = f32_to_bf16(w[2 * k]) | ((unsigned)f32_to_bf16(w[2 * k + 1]) << 16);
                *reinterpret_cast<uint4*>(static_cast<unsigned short*>(out) + at) =
                    make_uint4(h[0], h[1], h[2], h[3]);
            } else {
                float4* o = reinterpret_cast<float4*>(static_cast<float*>(out) + at);
                o[0] = make_float4(w[0], w[1], w[2], w[3]);
                o[1] = make_float4(w[4], w[5], w[6], w[7]);
            }
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

