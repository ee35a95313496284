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

extern "C" __global__ void top_rows(const float* logits, int vocab, const float* inv_ts,
                                    unsigned* out) {
    grid_enter();
    __shared__ float scratch[32];
    __shared__ unsigned hist[256];
    __shared__ unsigned s_prefix, s_need;
    __shared__ int s_greater, s_equal;
    const float* row = logits + (long)blockIdx.x * vocab;
    unsigned* o = out + (long)blockIdx.x * TOP_STRIDE;
    const float inv_t = inv_ts[blockIdx.x];
    if (inv_t == 0.f) {
        const int id = block_argmax(row, vocab);
        if (threadIdx.x == 0) o[0] = id;
        return;
    }
    float m = NEG_INF, n = 0.f;
    for_each_logit(row, vocab, [&](int, float x) {
        if (is_finite(x)) { m = fmaxf(m, x); n += 1.f; }
    });
    m = block_reduce(m, true, scratch);
    n = block_reduce(n, false, scratch);
    // As the host computes it: l·(1/T) − max·(1/T), no fused multiply-add.
    const float ms = __fmul_rn(m, inv_t);
    float mass = 0.f;
    for_each_logit(row, vocab, [&](int, float x) {
        if (is_finite(x)) mass += expf(__fsub_rn(__fmul_rn(x, inv_t), ms));
    });
    mass = block_reduce(mass, false, scratch);
    const int finite = (int)n;
    // The key of the TOP_C-th largest finite logit, 8 bits at a time: each round counts
    // the next digit of the keys that match the digits found so far.
    unsigned prefix = 0, mask = 0, need = TOP_C;
    if (finite > TOP_C) {
        const bool wide = (vocab & 3) == 0;
        const int units = wide ? vocab >> 2 : vocab;
        for (int shift = 24; shift >= 0; shift -= 8) {
            for (int d = threadIdx.x; d < 256; d += blockDim.x) hist[d] = 0;
            __syncthreads();
            const auto digit = [&](float x) {
                const unsigned k = order_key(x);
                return is_finite(x) && (k & mask) == prefix ? (int)((k >> shift) & 255) : -1;
            };
            // The same trip count for the whole block: every lane meets the warp votes.
            for (int base = 0; base < units; base += blockDim.x) {
                const int i = base + threadIdx.x;
                if (wide) {
                    const float nan = __int_as_float(0x7fc00000);
                    float4 a = make_float4(nan, nan, nan, nan);
                    if (i < units) a = reinterpret_cast<const float4*>(row)[i];
                    count_digit(hist, digit(a.x));
                    count_digit(hist, digit(a.y));
                    count_digit(hist, digit(a.z));
                    count_digit(hist, digit(a.w));
                } else {
                    count_digit(hist, i < units ? digit(row[i]) : -1);
                }
            }
            __syncthreads();
            if (threadIdx.x == 0) {
                unsigned above = 0;
                int d = 255;
                for (; d > 0 && above + hist[d] < need; d--) above += hist[d];
                s_need = need - above;
                s_prefix = prefix | ((unsigned)d << shift);
            }
            __syncthreads();
            need = s_need;
            prefix = s_prefix;
            mask |= 255u << shift;
        }
    }
    // With few finite logits every one is taken (the cut key is 0: all pass).
    if (threadIdx.x == 0) { s_greater = 0; s_equal = 0; }
    __syncthreads();
    const int greater_slots = finite > TOP_C ? TOP_C - (int)need : 0;
    for_each_logit(row, vocab, [&](int i, float x) {
        if (!is_finite(x)) return;
        const unsigned k = order_key(x);
        int slot = -1;
        if (finite <= TOP_C || k > prefix) {
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
