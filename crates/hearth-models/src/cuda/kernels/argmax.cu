// ids[r] = the first index of the largest of logits[r, :vocab] (NaN ignored; 0 when
// no value beats -inf), which is what the engine's argmax returns: a greedy step then
// downloads one int a sequence instead of a vocabulary of floats. One block a row.
extern "C" __global__ void argmax_rows(const float* logits, int vocab, int* ids) {
    grid_enter();
    __shared__ float best_v[32];
    __shared__ int best_i[32];
    const float* row = logits + (long)blockIdx.x * vocab;
    float bv = NEG_INF;
    int bi = 0x7fffffff;
    // Each thread's indices ascend: strictly greater keeps its first maximum.
    for (int i = threadIdx.x; i < vocab; i += blockDim.x) {
        const float x = row[i];
        if (x > bv) { bv = x; bi = i; }
    }
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
        if (lane == 0) ids[blockIdx.x] = bi == 0x7fffffff ? 0 : bi;
    }
}
