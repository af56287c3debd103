// Shared argument checking and dispatch of the `sgap` propagation ops (CPU and CUDA): the
// op entry points are templates over the device's loops (propagate_hops_op, propagate_step_op).
#pragma once

#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <c10/core/DeviceGuard.h>

#include <algorithm>

namespace sgap {

// Raw pointers and sizes of one propagate_hops call (see propagate_cpu.cpp for the math).
struct Problem {
  const int64_t* rowptr;
  const float* weight;     // [E] or nullptr (every edge weighs 1)
  const float* row_scale;  // [N] or nullptr
  const float* col_scale;  // [N] or nullptr
  const int64_t* node_map; // [N] or nullptr: working row v is node node_map[v] of x and out
  const float* x;          // [N, ldx] rows, f columns used
  int64_t n, f, k, ldx, ldo, hop_stride, block;
  float alpha;
  bool self_loops, keep_empty;
};

inline void check_csr(const at::Tensor& rowptr, const at::Tensor& col) {
  TORCH_CHECK(rowptr.dim() == 1 && rowptr.numel() >= 1 && rowptr.scalar_type() == at::kLong &&
                  rowptr.is_contiguous(),
              "rowptr must be a contiguous int64 tensor [N + 1]");
  TORCH_CHECK(col.dim() == 1 && col.is_contiguous() &&
                  (col.scalar_type() == at::kInt || col.scalar_type() == at::kLong),
              "col must be a contiguous int32 or int64 tensor [E]");
  TORCH_CHECK(rowptr.device() == col.device(), "rowptr and col must be on one device");
}

inline const float* opt_f32(const c10::optional<at::Tensor>& t, int64_t numel,
                            const at::Device& device, const char* name) {
  if (!t.has_value()) return nullptr;
  const at::Tensor& v = *t;
  TORCH_CHECK(v.scalar_type() == at::kFloat && v.dim() == 1 && v.numel() == numel &&
                  v.is_contiguous() && v.device() == device,
              name, " must be a contiguous float32 tensor [", numel, "] on ", device);
  return v.data_ptr<float>();
}

// The graph part of a Problem (CSR, weights, scales) on `device` with `n` rows.
inline void set_graph(Problem& pb, const at::Tensor& rowptr, const at::Tensor& col,
                      const c10::optional<at::Tensor>& weight,
                      const c10::optional<at::Tensor>& row_scale,
                      const c10::optional<at::Tensor>& col_scale, const at::Device& device) {
  check_csr(rowptr, col);
  TORCH_CHECK(rowptr.device() == device, "rowptr, col and the feature tensors must be on one device");
  pb.n = rowptr.numel() - 1;
  pb.rowptr = rowptr.data_ptr<int64_t>();
  pb.weight = opt_f32(weight, col.numel(), device, "weight");
  pb.row_scale = opt_f32(row_scale, pb.n, device, "row_scale");
  pb.col_scale = opt_f32(col_scale, pb.n, device, "col_scale");
  pb.node_map = nullptr;
}

inline void set_options(Problem& pb, double alpha, bool self_loops, bool keep_empty,
                        int64_t block, int64_t max_block) {
  TORCH_CHECK(block >= 0, "block must be >= 0");
  const int64_t b = block == 0 ? std::min<int64_t>(pb.f, 64) : block;
  pb.block = std::max<int64_t>(1, std::min(b, max_block));
  pb.alpha = static_cast<float>(alpha);
  pb.self_loops = self_loops;
  pb.keep_empty = keep_empty;
}

inline Problem make_problem(const at::Tensor& rowptr, const at::Tensor& col,
                            const c10::optional<at::Tensor>& weight,
                            const c10::optional<at::Tensor>& row_scale,
                            const c10::optional<at::Tensor>& col_scale,
                            const c10::optional<at::Tensor>& node_map, const at::Tensor& x,
                            const at::Tensor& out, double alpha, bool self_loops,
                            bool keep_empty, int64_t block, int64_t max_block) {
  const at::Device device = x.device();
  TORCH_CHECK(out.device() == device, "rowptr, col, x and out must be on one device");
  Problem pb;
  set_graph(pb, rowptr, col, weight, row_scale, col_scale, device);
  const int64_t n = pb.n;
  TORCH_CHECK(x.scalar_type() == at::kFloat && x.dim() == 2 && x.size(0) == n &&
                  (x.size(1) <= 1 || x.stride(1) == 1),
              "x must be a float32 [N, F] tensor with unit column stride");
  TORCH_CHECK(out.dim() == 3 && out.size(0) >= 1 && out.size(1) == n &&
                  out.size(2) == x.size(1) && (out.size(2) <= 1 || out.stride(2) == 1),
              "out must be [K + 1, N, F] with unit column stride, got ", out.sizes());
  TORCH_CHECK(out.scalar_type() == at::kFloat || out.scalar_type() == at::kHalf ||
                  out.scalar_type() == at::kBFloat16,
              "out must be float32, float16 or bfloat16, got ", out.scalar_type());
  if (node_map.has_value()) {
    const at::Tensor& m = *node_map;
    TORCH_CHECK(m.scalar_type() == at::kLong && m.dim() == 1 && m.numel() == n &&
                    m.is_contiguous() && m.device() == device,
                "node_map must be a contiguous int64 tensor [N] on ", device);
    pb.node_map = m.data_ptr<int64_t>();
  }
  pb.x = x.data_ptr<float>();
  pb.f = x.size(1);
  pb.k = out.size(0) - 1;
  pb.ldx = x.stride(0);
  pb.ldo = out.stride(1);
  pb.hop_stride = out.stride(0);
  set_options(pb, alpha, self_loops, keep_empty, block, max_block);
  return pb;
}

// One hop prev -> cur (propagate_step): both fp32 [N, F] with unit column stride; the hop
// is written to cur as the (fp32) "output", so pb.ldo is cur's row stride; x0 (the
// teleport source, needed when alpha != 0) is pb.x.
inline Problem make_step_problem(const at::Tensor& rowptr, const at::Tensor& col,
                                 const c10::optional<at::Tensor>& weight,
                                 const c10::optional<at::Tensor>& row_scale,
                                 const c10::optional<at::Tensor>& col_scale,
                                 const at::Tensor& prev, const c10::optional<at::Tensor>& x0,
                                 const at::Tensor& cur, double alpha, bool self_loops,
                                 bool keep_empty, int64_t block, int64_t max_block) {
  const at::Device device = prev.device();
  Problem pb;
  set_graph(pb, rowptr, col, weight, row_scale, col_scale, device);
  auto check = [&](const at::Tensor& t, const char* name) {
    TORCH_CHECK(t.scalar_type() == at::kFloat && t.dim() == 2 && t.size(0) == pb.n &&
                    t.size(1) == prev.size(1) && (t.size(1) <= 1 || t.stride(1) == 1) &&
                    t.device() == device,
                name, " must be a float32 [N, F] tensor with unit column stride on ", device,
                " (N = ", pb.n, ", F = ", prev.size(1), ")");
  };
  check(prev, "prev");
  check(cur, "cur");
  TORCH_CHECK(cur.data_ptr() != prev.data_ptr() || pb.n * prev.size(1) == 0,
              "cur must not alias prev");
  pb.x = nullptr;
  pb.ldx = 0;
  if (x0.has_value()) {
    check(*x0, "x0");
    pb.x = x0->data_ptr<float>();
    pb.ldx = x0->stride(0);
  }
  TORCH_CHECK(alpha == 0.0 || pb.x != nullptr, "x0 is required when alpha != 0");
  pb.f = prev.size(1);
  pb.k = 1;
  pb.ldo = cur.stride(0);
  pb.hop_stride = 0;
  set_options(pb, alpha, self_loops, keep_empty, block, max_block);
  return pb;
}

}  // namespace sgap

// Runs __VA_ARGS__ (a lambda) with `index_t` bound to col's dtype and `out_t` to out's.
#define SGAP_DISPATCH_INDEX_OUT(COL, OUT, ...)                                     \
  AT_DISPATCH_INDEX_TYPES((COL).scalar_type(), "sgap_propagate", [&] {             \
    switch ((OUT).scalar_type()) {                                                 \
      case at::kFloat: {                                                           \
        using out_t = float;                                                       \
        __VA_ARGS__();                                                             \
        break;                                                                     \
      }                                                                            \
      case at::kHalf: {                                                            \
        using out_t = at::Half;                                                    \
        __VA_ARGS__();                                                             \
        break;                                                                     \
      }                                                                            \
      case at::kBFloat16: {                                                        \
        using out_t = at::BFloat16;                                                \
        __VA_ARGS__();                                                             \
        break;                                                                     \
      }                                                                            \
      default:                                                                     \
        TORCH_CHECK(false, "unsupported out dtype ", (OUT).scalar_type());         \
    }                                                                              \
  })

namespace sgap {

// The propagate_hops and propagate_step ops of one device: argument checks, the empty-problem
// shortcut and the dtype dispatch are shared; Kernels supplies the loops and the block policy:
//   static constexpr int64_t max_block;
//   static int64_t block(int64_t requested, int64_t width);   // before set_options' clamp
//   template <typename index_t, typename out_t>
//   static void hops(const Problem&, const index_t* col, out_t* out, const at::Tensor& x);
//   template <typename index_t>
//   static void step(const Problem&, const index_t* col, const float* prev, int64_t ldp,
//                    float* cur);
template <typename Kernels>
void propagate_hops_op(const at::Tensor& rowptr, const at::Tensor& col,
                       const c10::optional<at::Tensor>& weight,
                       const c10::optional<at::Tensor>& row_scale,
                       const c10::optional<at::Tensor>& col_scale,
                       const c10::optional<at::Tensor>& node_map, const at::Tensor& x,
                       const at::Tensor& out, double alpha, bool self_loops, bool keep_empty,
                       int64_t block) {
  const Problem pb =
      make_problem(rowptr, col, weight, row_scale, col_scale, node_map, x, out, alpha, self_loops,
                   keep_empty, Kernels::block(block, x.size(1)), Kernels::max_block);
  if (pb.n == 0 || pb.f == 0) return;
  const c10::DeviceGuard guard(x.device());  // launch on x's GPU, not the current one
  SGAP_DISPATCH_INDEX_OUT(col, out, [&] {
    Kernels::template hops<index_t, out_t>(pb, col.data_ptr<index_t>(), out.data_ptr<out_t>(), x);
  });
}

template <typename Kernels>
void propagate_step_op(const at::Tensor& rowptr, const at::Tensor& col,
                       const c10::optional<at::Tensor>& weight,
                       const c10::optional<at::Tensor>& row_scale,
                       const c10::optional<at::Tensor>& col_scale, const at::Tensor& prev,
                       const c10::optional<at::Tensor>& x0, const at::Tensor& cur, double alpha,
                       bool self_loops, bool keep_empty, int64_t block) {
  const Problem pb =
      make_step_problem(rowptr, col, weight, row_scale, col_scale, prev, x0, cur, alpha,
                        self_loops, keep_empty, Kernels::block(block, prev.size(1)),
                        Kernels::max_block);
  if (pb.n == 0 || pb.f == 0) return;
  const c10::DeviceGuard guard(prev.device());
  AT_DISPATCH_INDEX_TYPES(col.scalar_type(), "sgap_step", [&] {
    Kernels::template step<index_t>(pb, col.data_ptr<index_t>(), prev.data_ptr<float>(),
                                    prev.stride(0), cur.data_ptr<float>());
  });
}

}  // namespace sgap
