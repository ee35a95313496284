// Tensor-core products over quantized blocks for steps of several tokens with bf16
// activations (what a served quantized model decodes with): y[tok, row] = w[row] · x[tok].
//
// The dp2a kernels of gemv_quant.cu spend four dp2a and a 16-byte shared-memory read on
// every 8 weights and token; here one mma.sync (m16n8k16, bf16 in, f32 sums) multiplies
// 16 weight rows by 8 tokens over 16 columns. The weights enter it as their exact
// integer quants (a nibble q as the bf16 128 + q, built with one mask), the activations
// as the bf16 they are, so the only rounding is the f32 summation; each 32-column
// sub-block's sum is then scaled by its row's scale, and the constant part (the
// minimum, and the 128) is taken off with the sub-block's activation sum:
// sum(w x) = dsc * sum((128 + q) x) + off * sum(x).
//
// A block of MMQ_WARPS warps takes 32 rows at a time (two 16-row tiles: rows 32p.. or,
// for the gate/up product, gate rows 16p.. and up rows ffn + 16p..) and splits their
// columns among its warps in 64-column units; the warps' sums meet in shared memory in
// a fixed order (the result does not depend on timing). A block takes 8 NT tokens of the
// step (NT = 1 or 2; blockIdx.y: the slices of a larger step run side by side); it first
// copies their activations into shared memory, with each 32-column group's quads in the
// order the type's fragments read them, and sums every group.

#define MMQ_WARPS 8
#define MMQ_THREADS (32 * MMQ_WARPS)

// d = a · b + d for one 16x8x16 tile: a the 16x16 weights (row-major fragments), b the
// 16x8 activations, d the 16x8 f32 sums.
__device__ __forceinline__ void mma_bf16(float (&d)[4], const unsigned (&a)[4], unsigned b0,
                                         unsigned b1) {
    asm("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0, %1, %2, %3}, "
        "{%4, %5, %6, %7}, {%8, %9}, {%0, %1, %2, %3};"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

// The nibbles at bits 0-3 and 16-19 of w as two bf16 (128 + q): bytes 0 and 2 of a
// word of quants (shift w by 8 for bytes 1 and 3, by 4 for the high nibbles).
__device__ __forceinline__ unsigned nibble_pair(unsigned w) {
    return (w & 0x000F000Fu) | 0x43004300u;
}

// An integer below 256 as a float, without a conversion instruction.
__device__ __forceinline__ float byte_to_f32(unsigned b) {
    return __uint_as_float(0x4B000000u | b) - 8388608.f;
}

// A unit is 64 columns: two sub-blocks s of 32 (one scale and offset each), each two
// k16 parts p. A thread (group g = lane / 4, c = lane % 4) holds, for part p of sub-block
// s and a row, one word of quants whose four nibbles (low or high: Q::high(s, p)) are
// the four columns that are its k slots, and the activations of those columns are the
// 8 bytes at quad slot 2c + p of the group (Q::quad_slot puts them there).

// Q4_K: unit j of a block is its bytes 32j.. (sub-block 2j in the low nibbles, 2j + 1
// in the high); thread c reads bytes 8c..8c + 7 (columns 8c.. of both sub-blocks).
struct MQ4_K {
    static constexpr int BLOCK = 256, QS = 128, META = 16;
    struct Raw {
        uint2 q;
        uint4 m;
    };
    __device__ static Raw load(const unsigned char* qs, const unsigned char* meta, long row,
                               int nb, int u, int c) {
        const long blk = row * nb + (u >> 2);
        Raw r;
        r.q = qload8(qs + blk * QS + 32 * (u & 3) + 8 * c);
        r.m = *reinterpret_cast<const uint4*>(meta + blk * META);
        return r;
    }
    __device__ static unsigned word(const Raw& r, int, int p) { return p ? r.q.y : r.q.x; }
    __device__ static bool high(int s, int) { return s; }
    // Columns 4q..4q + 3 of a group are thread q / 2's part q % 2: natural order.
    __device__ static int quad_slot(int q) { return q; }
    // Row value = d * sc * q - dmin * m for sub-block 2 (u % 4) + s.
    __device__ static void scale(const Raw& r, int u, int s, float& dsc, float& off) {
        const int j = 2 * (u & 3) + s;
        const unsigned sc4 = j < 4 ? r.m.y & 0x3F3F3F3Fu
                                   : (r.m.w & 0x0F0F0F0Fu) | ((r.m.y >> 2) & 0x30303030u);
        const unsigned mn4 = j < 4 ? r.m.z & 0x3F3F3F3Fu
                                   : ((r.m.w >> 4) & 0x0F0F0F0Fu) | ((r.m.z >> 2) & 0x30303030u);
        const int sh = 8 * (j & 3);
        const float d = f16_to_f32((unsigned short)(r.m.x & 0xffffu));
        const float dmin = f16_to_f32((unsigned short)(r.m.x >> 16));
        dsc = d * byte_to_f32((sc4 >> sh) & 0xffu);
        off = -fmaf(128.f, dsc, dmin * byte_to_f32((mn4 >> sh) & 0xffu));
    }
};

// Q4_1: a unit is two blocks s; block byte l holds column l (low) and 16 + l (high);
// thread c reads bytes 4c..4c + 3 of each (columns 4c.. and 16 + 4c..).
struct MQ4_1 {
    static constexpr int BLOCK = 32, QS = 16, META = 4;
    struct Raw {
        unsigned q[2], dm[2];
    };
    __device__ static Raw load(const unsigned char* qs, const unsigned char* meta, long row,
                               int nb, int u, int c) {
        const long blk = row * nb + 2 * u;
        Raw r;
#pragma unroll
        for (int s = 0; s < 2; ++s) {
            r.q[s] = *reinterpret_cast<const unsigned*>(qs + (blk + s) * QS + 4 * c);
            r.dm[s] = *reinterpret_cast<const unsigned*>(meta + (blk + s) * META);
        }
        return r;
    }
    __device__ static unsigned word(const Raw& r, int s, int) { return r.q[s]; }
    __device__ static bool high(int, int p) { return p; }
    // Thread c's parts are columns 4c.. (quad c) and 16 + 4c.. (quad 4 + c).
    __device__ static int quad_slot(int q) { return q < 4 ? 2 * q : 2 * (q - 4) + 1; }
    // Row value = d * q + m.
    __device__ static void scale(const Raw& r, int, int s, float& dsc, float& off) {
        dsc = f16_to_f32((unsigned short)(r.dm[s] & 0xffffu));
        off = fmaf(-128.f, dsc, f16_to_f32((unsigned short)(r.dm[s] >> 16)));
    }
};

// Row stride of the activations in shared memory, in bf16 (product.rs sizes the shared
// memory with the same formula).
__device__ __forceinline__ int mmq_x_stride(int cols) {
    // A row is an odd number of 64-byte halves of a bank line: the 16-byte reads of rows
    // g and g + 1 fall in different banks.
    return ((cols + 63) / 64) * 64 + 32;
}

// Copies x (t rows of bf16, t <= 8 NT) into shared memory in the type's quad order, and
// each 32-column group's f32 sum (groups x 8 NT tokens; tokens t.. are zero).
template <class Q, int NT>
__device__ __forceinline__ void mmq_stage_x(unsigned short* xsh, float* xsum,
                                            const unsigned short* x, int t, int cols) {
    constexpr int TOKS = 8 * NT;
    const int groups = cols >> 5, stride = mmq_x_stride(cols);
    for (int i = threadIdx.x; i < TOKS * groups; i += blockDim.x) {
        const int grp = i / TOKS, tok = i % TOKS;
        float sum = 0.f;
        if (tok < t) {
            const uint4* src = reinterpret_cast<const uint4*>(x + (long)tok * cols + 32 * grp);
            unsigned* dst = reinterpret_cast<unsigned*>(xsh + tok * stride + 32 * grp);
#pragma unroll
            for (int h = 0; h < 4; ++h) {
                const uint4 v = src[h];
                float f[8];
                unpack_bf16x8(v, f);
#pragma unroll
                for (int k = 0; k < 8; ++k) sum += f[k];
                // Quads 2h and 2h + 1: columns (0, 2) then (1, 3) of each, as the
                // fragments pair them.
                const int q0 = Q::quad_slot(2 * h), q1 = Q::quad_slot(2 * h + 1);
                dst[2 * q0] = __byte_perm(v.x, v.y, 0x5410);
                dst[2 * q0 + 1] = __byte_perm(v.x, v.y, 0x7632);
                dst[2 * q1] = __byte_perm(v.z, v.w, 0x5410);
                dst[2 * q1 + 1] = __byte_perm(v.z, v.w, 0x7632);
            }
        }
        xsum[i] = sum;
    }
}

// The A fragment of part p of sub-block s for rows g (word w0) and g + 8 (word w8).
template <class Q>
__device__ __forceinline__ void mmq_fragment(unsigned (&a)[4], unsigned w0, unsigned w8, int s,
                                             int p) {
    if (Q::high(s, p)) {
        w0 >>= 4;
        w8 >>= 4;
    }
    a[0] = nibble_pair(w0);
    a[1] = nibble_pair(w8);
    a[2] = nibble_pair(w0 >> 8);
    a[3] = nibble_pair(w8 >> 8);
}

// The thread's quants and scales of unit u for its rows of both tiles (tile 1 where live).
template <class Q>
__device__ __forceinline__ void mmq_load_unit(typename Q::Raw (&raw)[2][2],
                                              const unsigned char* qs, const unsigned char* meta,
                                              const long (&rows)[2][2], bool live1, int nb,
                                              int u, int c) {
#pragma unroll
    for (int m = 0; m < 2; ++m)
#pragma unroll
        for (int h = 0; h < 2; ++h)
            if (m == 0 || live1) raw[m][h] = Q::load(qs, meta, rows[m][h], nb, u, c);
}

// Unit u's products for this thread, added into acc[m][n][i] (tile m, row g + 8 (i / 2),
// token 8n + 2c + i % 2): each weight fragment meets the NT 8-token tiles in turn.
template <class Q, int NT>
__device__ __forceinline__ void mmq_unit(float (&acc)[2][NT][4],
                                         const typename Q::Raw (&raw)[2][2], bool live1, int u,
                                         const unsigned short* xsh, const float* xsum, int t,
                                         int stride) {
    const int lane = threadIdx.x & 31, g = lane >> 2, c = lane & 3;
#pragma unroll
    for (int s = 0; s < 2; ++s) {
        const int grp = 2 * u + s;
        // Token 8n + g's activations of this thread's two parts (zero past the step).
        uint4 b[NT];
        float2 xs[NT];
#pragma unroll
        for (int n = 0; n < NT; ++n) {
            b[n] = make_uint4(0u, 0u, 0u, 0u);
            if (8 * n + g < t)
                b[n] = *reinterpret_cast<const uint4*>(xsh + (8 * n + g) * stride + 32 * grp +
                                                       8 * c);
            xs[n] = *reinterpret_cast<const float2*>(xsum + 8 * NT * grp + 8 * n + 2 * c);
        }
#pragma unroll
        for (int m = 0; m < 2; ++m) {
            if (m == 1 && !live1) break;
            float d[NT][4];
#pragma unroll
            for (int n = 0; n < NT; ++n)
#pragma unroll
                for (int i = 0; i < 4; ++i) d[n][i] = 0.f;
            unsigned a[4];
            mmq_fragment<Q>(a, Q::word(raw[m][0], s, 0), Q::word(raw[m][1], s, 0), s, 0);
#pragma unroll
            for (int n = 0; n < NT; ++n) mma_bf16(d[n], a, b[n].x, b[n].y);
            mmq_fragment<Q>(a, Q::word(raw[m][0], s, 1), Q::word(raw[m][1], s, 1), s, 1);
#pragma unroll
            for (int n = 0; n < NT; ++n) mma_bf16(d[n], a, b[n].z, b[n].w);
#pragma unroll
            for (int h = 0; h < 2; ++h) {
                float dsc, off;
                Q::scale(raw[m][h], u, s, dsc, off);
#pragma unroll
                for (int n = 0; n < NT; ++n) {
                    float* o = &acc[m][n][2 * h];
                    o[0] = fmaf(d[n][2 * h], dsc, fmaf(off, xs[n].x, o[0]));
                    o[1] = fmaf(d[n][2 * h + 1], dsc, fmaf(off, xs[n].y, o[1]));
                }
            }
        }
    }
}

// This warp's share of a tile pair, acc as mmq_unit's, over units warp, warp +
// MMQ_WARPS, ...; rows[m][h] are the thread's rows (g, g + 8) of tile m, tile 1 skipped
// when not live. The next unit's loads are in flight while one is summed (two units
// ahead measured no faster on an H100).
template <class Q, int NT>
__device__ __forceinline__ void mmq_tiles(float (&acc)[2][NT][4], const unsigned char* qs,
                                          const unsigned char* meta, const long (&rows)[2][2],
                                          bool live1, int nb, int units,
                                          const unsigned short* xsh, const float* xsum, int t,
                                          int stride) {
    const int warp = threadIdx.x >> 5, c = threadIdx.x & 3;
#pragma unroll
    for (int m = 0; m < 2; ++m)
#pragma unroll
        for (int n = 0; n < NT; ++n)
#pragma unroll
            for (int i = 0; i < 4; ++i) acc[m][n][i] = 0.f;
    typename Q::Raw cur[2][2], nxt[2][2];
    if (warp < units) mmq_load_unit<Q>(cur, qs, meta, rows, live1, nb, warp, c);
    for (int u = warp; u < units; u += MMQ_WARPS) {
        if (u + MMQ_WARPS < units)
            mmq_load_unit<Q>(nxt, qs, meta, rows, live1, nb, u + MMQ_WARPS, c);
        mmq_unit<Q, NT>(acc, cur, live1, u, xsh, xsum, t, stride);
#pragma unroll
        for (int m = 0; m < 2; ++m)
#pragma unroll
            for (int h = 0; h < 2; ++h) cur[m][h] = nxt[m][h];
    }
}

// Index in the warps' partial sums of warp w's tile m, token tile n, entry i, lane l.
template <int NT>
__device__ __forceinline__ int mmq_red_at(int w, int m, int n, int i, int l) {
    return (((w * 2 + m) * NT + n) * 4 + i) * 32 + l;
}

// The warps' sums of one entry, added in warp order.
template <int NT>
__device__ __forceinline__ float mmq_total(const float* red, int m, int n, int i, int l) {
    float s = 0.f;
#pragma unroll
    for (int w = 0; w < MMQ_WARPS; ++w) s += red[mmq_red_at<NT>(w, m, n, i, l)];
    return s;
}

// Shared memory of a block: the activations (8 NT rows of mmq_x_stride bf16), each
// group's sums (groups x 8 NT f32), the warps' partial sums (MMQ_WARPS x 2 x NT x 4 x 32
// f32). A block takes tile pairs p = blockIdx.x, + gridDim.x, ...: plain products rows
// 32p.. (tile 1 only where it exists), the gate/up product gate rows 16p.. and up rows
// ffn + 16p...
template <class Q, bool SILU, int NT>
__device__ __forceinline__ void mmq_pairs(void* out, int ldy, const unsigned char* qs,
                                          const unsigned char* meta, const unsigned short* x,
                                          int t, int rows, int cols, int accumulate) {
    extern __shared__ __align__(16) unsigned char mmq_smem[];
    // This block's tokens: tok0.. (at most 8 NT; blocks of one pair and other tokens run
    // side by side, so the weights they share come from L2).
    const int tok0 = 8 * NT * blockIdx.y;
    t = min(8 * NT, t - tok0);
    const int stride = mmq_x_stride(cols), groups = cols >> 5;
    unsigned short* xsh = reinterpret_cast<unsigned short*>(mmq_smem);
    float* xsum = reinterpret_cast<float*>(mmq_smem + 2 * (long)t * stride);
    float* red = xsum + 8 * NT * groups;
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, g = lane >> 2;
    const int nb = cols / Q::BLOCK, units = cols / 64;
    // Plain: rows is the matrix's; silu: the ffn width (the matrix has 2 * rows).
    const int tiles = rows / 16, pairs = SILU ? tiles : (tiles + 1) / 2;
    grid_wait();
    mmq_stage_x<Q, NT>(xsh, xsum, x + (long)tok0 * cols, t, cols);
    grid_release();
    __syncthreads();
    for (int p = blockIdx.x; p < pairs; p += gridDim.x) {
        const long base0 = SILU ? 16L * p : 32L * p;
        const long base1 = SILU ? (long)rows + 16L * p : 32L * p + 16;
        const bool live1 = SILU || 2 * p + 1 < tiles;
        const long rws[2][2] = {{base0 + g, base0 + g + 8}, {base1 + g, base1 + g + 8}};
        float acc[2][NT][4];
        mmq_tiles<Q, NT>(acc, qs, meta, rws, live1, nb, units, xsh, xsum, t, stride);
#pragma unroll
        for (int m = 0; m < 2; ++m)
#pragma unroll
            for (int n = 0; n < NT; ++n)
#pragma unroll
                for (int i = 0; i < 4; ++i) red[mmq_red_at<NT>(warp, m, n, i, lane)] = acc[m][n][i];
        __syncthreads();
        // Entry e: lane l, entry i, token tile n, tile m (the gate/up product reads both
        // tiles at m = 0).
        for (int e = threadIdx.x; e < 2 * NT * 128; e += blockDim.x) {
            const int l = e & 31, i = (e >> 5) & 3, n = (e >> 7) % NT, m = e / (NT * 128);
            const int row = (l >> 2) + 8 * (i >> 1), tok = 8 * n + 2 * (l & 3) + (i & 1);
            if (tok >= t) continue;
            const long at = tok0 + tok;
            if (SILU) {
                if (m == 0) {
                    const float gs = mmq_total<NT>(red, 0, n, i, l);
                    const float us = mmq_total<NT>(red, 1, n, i, l);
                    static_cast<unsigned short*>(out)[at * rows + base0 + row] =
                        f32_to_bf16(gs / (1.f + __expf(-gs)) * us);
                }
            } else if (m == 0 || live1) {
                const float s = mmq_total<NT>(red, m, n, i, l);
                float* y = static_cast<float*>(out) + at * ldy + (m ? base1 : base0) + row;
                *y = accumulate ? *y + s : s;
            }
        }
        __syncthreads();
    }
}

// Entry points a type and token-tile count NT (8 NT tokens a block): mmq_<type>_n<NT>
// (y = w · x, + y when accumulating) and mmq_silu_<type>_n<NT> (act = SiLU(gate · x) *
// (up · x) in bf16, w = [gate | up] of ffn rows each).
#define MMQ_ENTRIES(NAME, Q, NT)                                                           \
    extern "C" __global__ void __launch_bounds__(MMQ_THREADS, 2)                           \
        mmq_##NAME##_n##NT(float* y, int ldy, const unsigned char* qs,                     \
                           const unsigned char* meta, const unsigned short* x, int t,      \
                           int rows, int cols, int accumulate) {                           \
        mmq_pairs<Q, false, NT>(y, ldy, qs, meta, x, t, rows, cols, accumulate);           \
    }                                                                                      \
    extern "C" __global__ void __launch_bounds__(MMQ_THREADS, 2)                           \
        mmq_silu_##NAME##_n##NT(unsigned short* act, const unsigned char* qs,              \
                                const unsigned char* meta, const unsigned short* x, int t, \
                                int ffn, int cols) {                                       \
        mmq_pairs<Q, true, NT>(act, 0, qs, meta, x, t, ffn, cols, 0);                      \
    }

#define MMQ_TYPE(NAME, Q)                                                                  \
    MMQ_ENTRIES(NAME, Q, 1)                                                                \
    MMQ_ENTRIES(NAME, Q, 2)
