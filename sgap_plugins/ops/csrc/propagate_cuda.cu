// CUDA kernels of sgap::propagate_hops (same math as propagate_cpu.cpp).
//
// One warp per destination row: the 32 lanes cover the feature columns of a block in passes
// of 128 (4 registers per lane), so every gathered neighbour row is read with coalesced
// 128-byte transactions; col/weight/scale loads are warp-uniform broadcasts. The previous and
// current hop live in fp32 working buffers [N, block]; out[t] receives the cast copy.
// propagate_step runs the same hop kernel once, prev -> cur, on the caller's buffers.
#include "sgap_ops.h"

#include <c10/cuda/CUDAStream.h>
#include <c10/cuda/CUDAException.h>
#include <torch/library.h>

namespace sgap {
namespace {

constexpr int kWarp = 32;
constexpr int kPerLane = 4;
constexpr int kRowsPerBlock = 8;

template <typename out_t>
__global__ void init_kernel(Problem pb, float* prev, out_t* out, int64_t c0, int64_t nb) {
  const int64_t total = pb.n * nb;
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < total;
       i += (int64_t)gridDim.x * blockDim.x) {
    const int64_t v = i / nb, f = i % nb;
    const int64_t orig = pb.node_map ? pb.node_map[v] : v;
    const float xv = pb.x[orig * pb.ldx + c0 + f];
    prev[i] = xv;
    out[orig * pb.ldo + c0 + f] = static_cast<out_t>(xv);
  }
}

// prev: row u of the previous hop's block at prev + u * ld; cur: fp32 copy [N, nb] of the
// new hop, or nullptr when out_hop (row stride pb.ldo) is the only destination.
template <typename index_t, typename out_t>
__global__ void hop_kernel(Problem pb, const index_t* __restrict__ col,
                           const float* __restrict__ prev, int64_t ld, float* __restrict__ cur,
                           out_t* __restrict__ out_hop, int64_t c0, int64_t nb) {
  const int lane = threadIdx.x;
  const int64_t v = blockIdx.x * (int64_t)kRowsPerBlock + threadIdx.y;
  if (v >= pb.n) return;
  const int64_t begin = pb.rowptr[v], end = pb.rowptr[v + 1];
  const int64_t orig = pb.node_map ? pb.node_map[v] : v;
  const float keep = 1.0f - pb.alpha;
  for (int64_t f0 = 0; f0 < nb; f0 += kWarp * kPerLane) {
    float acc[kPerLane] = {0.f, 0.f, 0.f, 0.f};
    bool has_loop = false;
    for (int64_t e = begin; e < end; ++e) {
      const int64_t u = static_cast<int64_t>(col[e]);
      float s = pb.weight ? pb.weight[e] : 1.0f;
      if (pb.col_scale) s *= pb.col_scale[u];
      has_loop |= (u == v);
      const float* p = prev + u * ld + f0 + lane;
#pragma unroll
      for (int j = 0; j < kPerLane; ++j)
        if (f0 + lane + j * kWarp < nb) acc[j] += s * p[j * kWarp];
    }
    const float* pv = prev + v * ld + f0 + lane;
    const bool copy_prev = begin == end && !pb.self_loops && pb.keep_empty;
    const float loop_s =
        (pb.self_loops && !has_loop) ? (pb.col_scale ? pb.col_scale[v] : 1.f) : 0.f;
    const float r = pb.row_scale ? pb.row_scale[v] : 1.0f;
#pragma unroll
    for (int j = 0; j < kPerLane; ++j) {
      const int64_t f = f0 + lane + j * kWarp;
      if (f >= nb) continue;
      float a = copy_prev ? pv[j * kWarp] : r * (acc[j] + loop_s * pv[j * kWarp]);
      if (pb.alpha != 0.0f) a = keep * a + pb.alpha * pb.x[orig * pb.ldx + c0 + f];
      if (cur) cur[v * nb + f] = a;
      out_hop[orig * pb.ldo + c0 + f] = static_cast<out_t>(a);
    }
  }
}

// Rows per grid: one warp per row, kRowsPerBlock rows per thread block.
inline unsigned hop_grid(const Problem& pb) {
  const int64_t grid = (pb.n + kRowsPerBlock - 1) / kRowsPerBlock;
  TORCH_CHECK(grid <= INT32_MAX, "sgap propagation: too many nodes (", pb.n,
              ") for one CUDA grid");
  return static_cast<unsigned>(grid);
}

// One hop of one column block [c0, c0 + nb): prev (row stride ld) -> cur and out_hop.
template <typename index_t, typename out_t>
void launch_hop(const Problem& pb, const index_t* col, const float* prev, int64_t ld, float* cur,
                out_t* out_hop, int64_t c0, int64_t nb, cudaStream_t stream) {
  hop_kernel<index_t, out_t><<<hop_grid(pb), dim3(kWarp, kRowsPerBlock), 0, stream>>>(
      pb, col, prev, ld, cur, out_hop, c0, nb);
  C10_CUDA_KERNEL_LAUNCH_CHECK();
}

template <typename index_t, typename out_t>
void run_cuda(const Problem& pb, const index_t* col, out_t* out, const at::Tensor& like) {
  const int64_t n = pb.n;
  const int64_t block = std::min<int64_t>(pb.block, pb.f);
  at::Tensor buf = at::empty({2, n, block}, like.options().dtype(at::kFloat));
  float* prev = buf.data_ptr<float>();
  float* cur = prev + n * block;
  auto stream = c10::cuda::getCurrentCUDAStream();
  for (int64_t c0 = 0; c0 < pb.f; c0 += block) {
    const int64_t nb = std::min(block, pb.f - c0);
    const int64_t total = n * nb;
    const int threads = 256;
    const int64_t blocks = std::min<int64_t>((total + threads - 1) / threads, 65535 * 8);
    init_kernel<out_t><<<(unsigned)std::max<int64_t>(blocks, 1), threads, 0, stream>>>(
        pb, prev, out, c0, nb);
    C10_CUDA_KERNEL_LAUNCH_CHECK();
    for (int64_t t = 1; t <= pb.k; ++t) {
      launch_hop<index_t, out_t>(pb, col, prev, nb, cur, out + t * pb.hop_stride, c0, nb, stream);
      std::swap(prev, cur);
    }
  }
}

// The CUDA loops of the propagate_hops and propagate_step ops (see propagate_hops_op in
// sgap_ops.h, which makes the features' GPU the current one).
struct CudaKernels {
  static constexpr int64_t max_block = INT64_MAX;
  // The whole feature width is one block unless the caller asks for less: device memory is
  // ample and fewer passes re-read the index arrays fewer times.
  static int64_t block(int64_t requested, int64_t width) {
    return requested == 0 ? width : requested;
  }

  template <typename index_t, typename out_t>
  static void hops(const Problem& pb, const index_t* col, out_t* out, const at::Tensor& x) {
    hop_grid(pb);  // fail before the first launch
    run_cuda<index_t, out_t>(pb, col, out, x);
  }

  template <typename index_t>
  static void step(const Problem& pb, const index_t* col, const float* prev, int64_t ldp,
                   float* cur) {
    auto stream = c10::cuda::getCurrentCUDAStream();
    for (int64_t c0 = 0; c0 < pb.f; c0 += pb.block) {
      const int64_t nb = std::min(pb.block, pb.f - c0);
      launch_hop<index_t, float>(pb, col, prev + c0, ldp, nullptr, cur, c0, nb, stream);
    }
  }
};

}  // namespace

TORCH_LIBRARY_IMPL(sgap, CUDA, m) {
  m.impl("propagate_hops", &propagate_hops_op<CudaKernels>);
  m.impl("propagate_step", &propagate_step_op<CudaKernels>);
}

}  // namespace sgap
