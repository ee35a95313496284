// f(i, row[i]) for this thread's share of the row. Rows of a width divisible by 4 are
// read 16 bytes at a time, two loads in flight a thread: one block reads a whole row,
// and with one float a load it waits on latency, not bandwidth.
template <class F>
__device__ __forceinline__ void for_each_logit(const float* row, int vocab, F f) {
    const int step = blockDim.x;
    if ((vocab & 3) == 0) {
        const float4* r4 = reinterpret_cast<const float4*>(row);
        const int n4 = vocab >> 2;
        int i = threadIdx.x;
        for (; i + step < n4; i += 2 * step) {
            const float4 a = r4[i], b = r4[i + step];
            f(4 * i, a.x); f(4 * i + 1, a.y); f(4 * i + 2, a.z); f(4 * i + 3, a.w);
            const int j = 4 * (i + step);
            f(j, b.x); f(j + 1, b.y); f(j + 2, b.z); f(j + 3, b.w);
        }
        if (i < n4) {
            const float4 a = r4[i];
            f(4 * i, a.x); f(4 * i + 1, a.y); f(4 * i + 2, a.z); f(4 * i + 3, a.w);
        }
    } else {
        for (int i = threadIdx.x; i < vocab; i += step) f(i, row[i]);
    }
}

// The first index of the largest of row[:vocab] (NaN ignored; 0 when no value beats
// -inf), which is what the engine's argmax returns, in thread 0 of the block. Called by
// every thread of a block with the same row.
__device__ int block_argmax(const float* row, int vocab) {
    __shared__ float best_v[32];
    __shared__ int best_i[32];
    float bv = NEG_INF;
    int bi = 0x7fffffff;
    // Each thread's indices ascend: strictly greater keeps its first maximum.
    for_each_logit(row, vocab, [&](int i, float x) {
        if (x > bv) { bv = x; bi = i; }
    });
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    for (int o = 16; o > 0; o >>= 1) {
        const float ov = __shfl_xor_sync(0xffffffff, bv, o);
        const int oi = __shfl_xor_sync(0xffffffff, bi, o);
        if (ov > bv || (ov == bv && oi < bi)) { bv = ov; bi = oi; }
    }
    if (lane == 0) { best_v[warp] = bv; best_i[warp] = bi; }
    __syncthreads();
    if (warp == 0) {
        const int warps = blockDim.x >> 5;
        bv = lane < warps ? best_v[lane] : NEG_INF;
        bi = lane < warps ? best_i[lane] : 0x7fffffff;
        for (int o = 16; o > 0; o >>= 1) {
            const float ov = __shfl_xor_sync(0xffffffff, bv, o);
            const int oi = __shfl_xor_sync(0xffffffff, bi, o);
            if (ov > bv || (ov == bv && oi < bi)) { bv = ov; bi = oi; }
        }
    }
    return bi == 0x7fffffff ? 0 : bi;
}

// ids[r] = the argmax of logits[r, :vocab]: a greedy step then downloads one int a
// sequence instead of a vocabulary of floats. One block a row.
extern "C" __global__ void argmax_rows(const float* logits, int vocab, int* ids) {
    grid_enter();
    const int id = block_argmax(logits + (long)blockIdx.x * vocab, vocab);
    if (threadIdx.x == 0) ids[blockIdx.x] = id;
}
