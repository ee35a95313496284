// The head of each logits row for temperature sampling (hearth_models::TopLogits): its
// TOP_C largest finite logits, the softmax normalizer of the whole row at the row's
// temperature, and how many logits are finite. The sampler finishes on the host from
// TOP_C pairs instead of a vocabulary of floats. A row asked with inv_t = 0 gets its
// argmax instead (a greedy sequence in the same step). One block a row.
//
// out, per row, TOP_STRIDE words: ids[TOP_C], logits[TOP_C] (float bits), the
// normalizer (float bits), the finite count. An argmax row has its id in ids[0].
#define TOP_C 64
#define TOP_STRIDE (2 * TOP_C + 2)

// Larger float, larger key (IEEE order as unsigned).
__device__ __forceinline__ unsigned order_key(float x) {
    const unsigned u = __float_as_uint(x);
    return (u & 0x80000000u) ? ~u : (u | 0x80000000u);
}

__device__ __forceinline__ bool is_finite(float x) {
    return (__float_as_uint(x) & 0x7f800000u) != 0x7f800000u;
}

// Sum (or max with `take_max`) over the block, the result in every thread.
__device__ float block_reduce(float v, bool take_max, float* scratch) {
    for (int o = 16; o > 0; o >>= 1) {
        const float w = __shfl_xor_sync(0xffffffff, v, o);
        v = take_max ? fmaxf(v, w) : v + w;
    }
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = blockDim.x >> 5;
    __syncthreads();
    if (lane == 0) scratch[warp] = v;
    __syncthreads();
    v = lane < warps ? scratch[lane] : (take_max ? NEG_INF : 0.f);
    for (int o = 16; o > 0; o >>= 1) {
        const float w = __shfl_xor_sync(0xffffffff, v, o);
        v = take_max ? fmaxf(v, w) : v + w;
    }
    return v;
}

// hist[d] += 1 for each lane's digit d (-1: none), the lanes that share lane 0's digit
// with one atomic (a row's logits share their leading digits). Every lane of the warp
// calls it together.
__device__ __forceinline__ void count_digit(unsigned* hist, int d) {
    const int lead = __shfl_sync(0xffffffff, d, 0);
    const unsigned same = __ballot_sync(0xffffffff, d == lead);
    if (d == lead) {
        if ((threadIdx.x & 31) == 0 && d >= 0) atomicAdd(&hist[d], __popc(same));
    } else if (d >= 0) {
        atomicAdd(&hist[d], 1u);
    }
}

// f(i, x) for this thread's share of the row, 16 bytes a load where the width allows,
// with the same number of calls in every thread of the block (x is NaN past the row),
// so that f may vote with its warp.
template <class F>
__device__ __forceinline__ void for_each_logit_all(const float* row, int vocab, F f) {
    const float nan = __int_as_float(0x7fc00000);
    const int step = blockDim.x;
    if ((vocab & 3) == 0) {
        const float4* r4 = reinterpret_cast<const float4*>(row);
        const int n4 = vocab >> 2;
        for (int base = 0; base < n4; base += 2 * step) {
            const int i = base + threadIdx.x, j = i + step;
            float4 a = make_float4(nan, nan, nan, nan), b = a;
            if (i < n4) a = r4[i];
            if (j < n4) b = r4[j];
            f(4 * i, a.x); f(4 * i + 1, a.y); f(4 * i + 2, a.z); f(4 * i + 3, a.w);
            f(4 * j, b.x); f(4 * j + 1, b.y); f(4 * j + 2, b.z); f(4 * j + 3, b.w);
        }
    } else {
        for (int base = 0; base < vocab; base += step) {
            const int i = base + threadIdx.x;
            f(i, i < vocab ? row[i] : nan);
        }
    }
}

// The bin of hist[0..nbins) where the count from the top bin down reaches `need`, and
// how many of that bin's keys are still needed, into *s_bin and *s_need. Each thread
// sums a few bins from the top, a block scan finds the thread whose share crosses
// `need`, and it walks its own bins. Called by the whole block; ends synchronized.
__device__ void find_bin(const unsigned* hist, int nbins, unsigned need, unsigned* scan,
                         unsigned* s_bin, unsigned* s_need) {
    const int per = (nbins + blockDim.x - 1) / blockDim.x;
    const int top = nbins - 1 - (int)threadIdx.x * per;
    unsigned local = 0;
    for (int b = top; b > top - per && b >= 0; --b) local += hist[b];
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = blockDim.x >> 5;
    unsigned incl = local;
    for (int o = 1; o < 32; o <<= 1) {
        const unsigned v = __shfl_up_sync(0xffffffff, incl, o);
        if (lane >= o) incl += v;
    }
    __syncthreads();
    if (lane == 31) scan[warp] = incl;
    __syncthreads();
    if (warp == 0) {
        unsigned w = lane < warps ? scan[lane] : 0;
        for (int o = 1; o < 32; o <<= 1) {
            const unsigned v = __shfl_up_sync(0xffffffff, w, o);
            if (lane >= o) w += v;
        }
        scan[lane] = w;
    }
    __syncthreads();
    if (warp > 0) incl += scan[warp - 1];
    const unsigned excl = incl - local;
    if (excl < need && incl >= need) {
        unsigned above = excl;
        int b = top;
        for (; b > top - per && b > 0; --b) {
            if (above + hist[b] >= need) break;
            above += hist[b];
        }
        *s_bin = b;
        *s_need = need - above;
    }
    __syncthreads();
}

// The TOP_C-th largest finite key is found 12, 12 and 8 bits at a time, each round's
// histogram counted in a pass over the row that also does other work: the first with
// the maximum and the finite count, the second with the normalizer. Four passes over
// the row in all, the last gathering the head.
extern "C" __global__ void top_rows(const float* logits, int vocab, const float* inv_ts,
                                    unsigned* out) {
    grid_enter();
    __shared__ float scratch[32];
    __shared__ unsigned hist[4096];
    __shared__ unsigned scan[32];
    __shared__ unsigned s_bin, s_need;
    __shared__ int s_greater, s_equal;
    const float* row = logits + (long)blockIdx.x * vocab;
    unsigned* o = out + (long)blockIdx.x * TOP_STRIDE;
    const float inv_t = inv_ts[blockIdx.x];
    if (inv_t == 0.f) {
        const int id = block_argmax(row, vocab);
        if (threadIdx.x == 0) o[0] = id;
        return;
    }
    for (int d = threadIdx.x; d < 4096; d += blockDim.x) hist[d] = 0;
    __syncthreads();
    float m = NEG_INF, n = 0.f;
    for_each_logit_all(row, vocab, [&](int, float x) {
        const bool fin = is_finite(x);
        if (fin) { m = fmaxf(m, x); n += 1.f; }
        count_digit(hist, fin ? (int)(order_key(x) >> 20) : -1);
    });
    m = block_reduce(m, true, scratch);
    n = block_reduce(n, false, scratch);
    const int finite = (int)n;
    // With few finite logits every one is taken (the cut key is 0: all pass).
    const bool select = finite > TOP_C;
    unsigned prefix = 0, need = TOP_C;
    if (select) {
        find_bin(hist, 4096, need, scan, &s_bin, &s_need);
        prefix = s_bin << 20;
        need = s_need;
    }
    for (int d = threadIdx.x; d < 4096; d += blockDim.x) hist[d] = 0;
    __syncthreads();
    // As the host computes it: l·(1/T) − max·(1/T), no fused multiply-add.
    const float ms = __fmul_rn(m, inv_t);
    float mass = 0.f;
    for_each_logit_all(row, vocab, [&](int, float x) {
        const bool fin = is_finite(x);
        if (fin) mass += expf(__fsub_rn(__fmul_rn(x, inv_t), ms));
        const unsigned k = order_key(x);
        count_digit(hist, select && fin && (k >> 20) == (prefix >> 20) ? (int)((k >> 8) & 4095) : -1);
    });
    mass = block_reduce(mass, false, scratch);
    if (select) {
        find_bin(hist, 4096, need, scan, &s_bin, &s_need);
        prefix |= s_bin << 8;
        need = s_need;
        for (int d = threadIdx.x; d < 256; d += blockDim.x) hist[d] = 0;
        __syncthreads();
        for_each_logit_all(row, vocab, [&](int, float x) {
            const unsigned k = order_key(x);
            count_digit(hist, is_finite(x) && (k >> 8) == (prefix >> 8) ? (int)(k & 255) : -1);
        });
        __syncthreads();
        find_bin(hist, 256, need, scan, &s_bin, &s_need);
        prefix |= s_bin;
        need = s_need;
    }
    if (threadIdx.x == 0) { s_greater = 0; s_equal = 0; }
    __syncthreads();
    const int greater_slots = select ? TOP_C - (int)need : 0;
    for_each_logit(row, vocab, [&](int i, float x) {
        if (!is_finite(x)) return;
        const unsigned k = order_key(x);
        int slot = -1;
        if (!select || k > prefix) {
            slot = atomicAdd(&s_greater, 1);
        } else if (k == prefix) {
            const int e = atomicAdd(&s_equal, 1);
            if (e < (int)need) slot = greater_slots + e;
        }
        if (slot >= 0) {
            o[slot] = i;
            o[TOP_C + slot] = __float_as_uint(x);
        }
    });
    if (threadIdx.x == 0) {
        o[2 * TOP_C] = __float_as_uint(mass);
        o[2 * TOP_C + 1] = finite;
    }
}
