// Fused multi-hop propagation, CPU kernels and the schema of the `sgap` torch ops.
//
// One call computes every hop m^1..m^K of
//
//   m^t_v = (1 - alpha) * raw_v + alpha * x_v
//   raw_v = rs_v * ( sum_{e in row v} w_e * cs_{u_e} * m^{t-1}_{u_e}
//                    + [self_loops and row v has no stored loop] * cs_v * m^{t-1}_v )
//   raw_v = m^{t-1}_v                      when row v is empty, !self_loops and keep_empty
//
// (w_e = 1 without a weight array, rs/cs = 1 when absent) and writes hop t of node
// node_map[v] (identity without a map) into out[t], cast to out's dtype. The CSR rows are
// destinations. Features are processed in column blocks of `block` columns with two fp32
// working buffers [N, block] (previous and current hop), so accumulation is always fp32 and
// the gathered rows of one block stay dense in cache (fp32 output in node order needs no
// buffers: hop t-1 is read from out[t-1]).
//
// propagate_step computes one hop prev -> cur of the same rule (node order, no node_map),
// with the teleport term read from x0: the caller owns the buffers, so it can stream
// column blocks from disk and keep only selected rows of each hop.
#include "sgap_ops.h"

#include <ATen/Parallel.h>
#include <torch/library.h>

#include <algorithm>
#include <cstring>
#include <type_traits>
#include <vector>

namespace sgap {
namespace {

constexpr int64_t kMaxBlock = 256;
constexpr int64_t kPrefetch = 12;  // edges ahead

// Row ranges of roughly equal cost (edges + rows) so that power-law rows balance across
// threads; at::parallel_for then hands out contiguous chunk ranges.
std::vector<int64_t> balanced_chunks(const int64_t* rowptr, int64_t n, int64_t parts) {
  std::vector<int64_t> bounds{0};
  const int64_t total = rowptr[n] + n;
  int64_t v = 0;
  for (int64_t p = 1; p < parts; ++p) {
    const int64_t target = total * p / parts;
    while (v < n && rowptr[v] + v < target) ++v;
    if (v > bounds.back()) bounds.push_back(v);
  }
  if (bounds.back() < n) bounds.push_back(n);
  return bounds;
}

// One hop for rows [row_begin, row_end) of one column block. NB > 0 fixes the block width
// at compile time so acc lives in vector registers and the column loops fully vectorise;
// NB == 0 is the runtime-width remainder block.
// prev: previous hop of the block, row u at prev + u * ld; cur: fp32 copy of the new hop
// ([N, nb]) or nullptr when out_hop itself is the fp32 previous-hop source of the next hop.
template <int NB, typename index_t, typename out_t>
void hop_rows(const Problem& pb, const index_t* __restrict__ col, const float* __restrict__ prev,
              int64_t ld, float* __restrict__ cur, out_t* __restrict__ out_hop, int64_t c0,
              int64_t nb_rt, int64_t row_begin, int64_t row_end) {
  const int64_t nb = NB > 0 ? NB : nb_rt;
  alignas(64) float acc[NB > 0 ? NB : kMaxBlock];
  const float* __restrict__ w = pb.weight;
  const float* __restrict__ cs = pb.col_scale;
  const float keep = 1.0f - pb.alpha;
  for (int64_t v = row_begin; v < row_end; ++v) {
    const int64_t begin = pb.rowptr[v], end = pb.rowptr[v + 1];
    for (int64_t f = 0; f < nb; ++f) acc[f] = 0.0f;
    bool has_loop = false;
    for (int64_t e = begin; e < end; ++e) {
      // Gathers are latency-bound random reads: request the rows a few edges ahead (the
      // index array is read sequentially, so those loads are cheap and often in flight).
      if (e + kPrefetch < pb.rowptr[pb.n]) {
        const float* ahead = prev + static_cast<int64_t>(col[e + kPrefetch]) * ld;
        for (int64_t l = 0; l < nb; l += 16) __builtin_prefetch(ahead + l, 0, 1);
      }
      const int64_t u = static_cast<int64_t>(col[e]);
      float s = w ? w[e] : 1.0f;
      if (cs) s *= cs[u];
      has_loop |= (u == v);
      const float* __restrict__ p = prev + u * ld;
      for (int64_t f = 0; f < nb; ++f) acc[f] += s * p[f];
    }
    const float* __restrict__ pv = prev + v * ld;
    if (pb.self_loops && !has_loop) {
      const float s = cs ? cs[v] : 1.0f;
      for (int64_t f = 0; f < nb; ++f) acc[f] += s * pv[f];
    }
    if (begin == end && !pb.self_loops && pb.keep_empty) {
      for (int64_t f = 0; f < nb; ++f) acc[f] = pv[f];
    } else if (pb.row_scale) {
      const float r = pb.row_scale[v];
      for (int64_t f = 0; f < nb; ++f) acc[f] *= r;
    }
    const int64_t orig = pb.node_map ? pb.node_map[v] : v;
    if (pb.alpha != 0.0f) {
      const float* __restrict__ xv = pb.x + orig * pb.ldx + c0;
      for (int64_t f = 0; f < nb; ++f) acc[f] = keep * acc[f] + pb.alpha * xv[f];
    }
    if (cur) std::copy(acc, acc + nb, cur + v * nb);
    out_t* __restrict__ o = out_hop + orig * pb.ldo + c0;
    for (int64_t f = 0; f < nb; ++f) o[f] = static_cast<out_t>(acc[f]);
  }
}

// hop_rows<W> for the first of Widths equal to nb, else the runtime-width hop_rows<0>.
template <int... Widths, typename index_t, typename out_t>
void hop_rows_fixed(const Problem& pb, const index_t* col, const float* prev, int64_t ld,
                    float* cur, out_t* out_hop, int64_t c0, int64_t nb, int64_t rb, int64_t re) {
  const auto run = [&](auto width) {  // width: std::integral_constant<int, W>
    hop_rows<decltype(width)::value>(pb, col, prev, ld, cur, out_hop, c0, nb, rb, re);
    return true;
  };
  const bool fixed = ((nb == Widths && run(std::integral_constant<int, Widths>{})) || ...);
  if (!fixed) run(std::integral_constant<int, 0>{});
}

// One hop of rows [rb, re) of one column block, the block width fixed at compile time for
// the common widths (narrow blocks come from small memory budgets).
template <typename index_t, typename out_t>
void hop_rows_any(const Problem& pb, const index_t* col, const float* prev, int64_t ld, float* cur,
                  out_t* out_hop, int64_t c0, int64_t nb, int64_t rb, int64_t re) {
  hop_rows_fixed<4, 8, 16, 32, 64, 128>(pb, col, prev, ld, cur, out_hop, c0, nb, rb, re);
}

template <typename index_t, typename out_t>
void run_cpu(const Problem& pb, const index_t* col, out_t* out) {
  const int64_t n = pb.n;
  const int64_t block = std::min<int64_t>(pb.block, pb.f);
  // fp32 output in node order is its own fp32 working storage: hop t-1 is read straight from
  // out[t-1] (no extra memory). Otherwise two fp32 buffers [N, block] hold the previous and
  // current hop of one column block (low-precision output, or reordered rows).
  const bool direct = std::is_same<out_t, float>::value && pb.node_map == nullptr;
  at::Tensor buf = at::empty({direct ? 0 : 2, n, block}, at::kFloat);
  float* prev_buf = buf.data_ptr<float>();
  float* cur_buf = direct ? nullptr : prev_buf + n * block;
  const auto chunks =
      balanced_chunks(pb.rowptr, n, std::max<int64_t>(1, 8 * at::get_num_threads()));
  const int64_t nchunks = static_cast<int64_t>(chunks.size()) - 1;

  for (int64_t c0 = 0; c0 < pb.f; c0 += block) {
    const int64_t nb = std::min(block, pb.f - c0);
    // Hop 0: x into out[0] (and into the working buffer, in node_map order).
    at::parallel_for(0, n, 4096, [&](int64_t b, int64_t e) {
      for (int64_t v = b; v < e; ++v) {
        const int64_t orig = pb.node_map ? pb.node_map[v] : v;
        const float* xv = pb.x + orig * pb.ldx + c0;
        if (!direct) std::memcpy(prev_buf + v * nb, xv, nb * sizeof(float));
        out_t* o = out + orig * pb.ldo + c0;
        for (int64_t f = 0; f < nb; ++f) o[f] = static_cast<out_t>(xv[f]);
      }
    });
    float* prev = prev_buf;
    float* cur = cur_buf;
    for (int64_t t = 1; t <= pb.k; ++t) {
      out_t* out_hop = out + t * pb.hop_stride;
      const float* src = direct ? reinterpret_cast<const float*>(out + (t - 1) * pb.hop_stride) + c0
                                : prev;
      const int64_t ld = direct ? pb.ldo : nb;
      at::parallel_for(0, nchunks, 1, [&](int64_t b, int64_t e) {
        hop_rows_any<index_t, out_t>(pb, col, src, ld, cur, out_hop, c0, nb, chunks[b],
                                     chunks[e]);
      });
      if (!direct) std::swap(prev, cur);
    }
  }
}

// One hop of every row, prev -> cur, in column blocks of pb.block: the same hop_rows as
// run_cpu, so a column's numbers do not depend on how the caller splits the columns.
template <typename index_t>
void step_cpu(const Problem& pb, const index_t* col, const float* prev, int64_t ldp, float* cur) {
  const int64_t block = std::min<int64_t>(pb.block, pb.f);
  const auto chunks =
      balanced_chunks(pb.rowptr, pb.n, std::max<int64_t>(1, 8 * at::get_num_threads()));
  const int64_t nchunks = static_cast<int64_t>(chunks.size()) - 1;
  for (int64_t c0 = 0; c0 < pb.f; c0 += block) {
    const int64_t nb = std::min(block, pb.f - c0);
    at::parallel_for(0, nchunks, 1, [&](int64_t b, int64_t e) {
      hop_rows_any<index_t, float>(pb, col, prev + c0, ldp, nullptr, cur, c0, nb, chunks[b],
                                   chunks[e]);
    });
  }
}

// The CPU loops of the propagate_hops and propagate_step ops (see propagate_op in
// sgap_ops.h for their argument checks): column blocks of at most kMaxBlock columns.
struct CpuKernels {
  static constexpr int64_t max_block = kMaxBlock;
  // 0 lets set_options choose (64 columns at most).
  static int64_t block(int64_t requested, int64_t /*width*/) { return requested; }

  template <typename index_t, typename out_t>
  static void hops(const Problem& pb, const index_t* col, out_t* out, const at::Tensor& /*x*/) {
    run_cpu<index_t, out_t>(pb, col, out);
  }

  template <typename index_t>
  static void step(const Problem& pb, const index_t* col, const float* prev, int64_t ldp,
                   float* cur) {
    step_cpu<index_t>(pb, col, prev, ldp, cur);
  }
};

// Degree of A (+ I for nodes without a stored self loop) of an unweighted CSR, fp32 [N].
at::Tensor loop_degree_cpu(const at::Tensor& rowptr, const at::Tensor& col, bool self_loops) {
  check_csr(rowptr, col);
  const int64_t n = rowptr.numel() - 1;
  at::Tensor deg = at::empty({n}, at::kFloat);
  float* d = deg.data_ptr<float>();
  const int64_t* rp = rowptr.data_ptr<int64_t>();
  AT_DISPATCH_INDEX_TYPES(col.scalar_type(), "loop_degree", [&] {
    const index_t* c = col.data_ptr<index_t>();
    at::parallel_for(0, n, 4096, [&](int64_t b, int64_t e) {
      for (int64_t v = b; v < e; ++v) {
        bool has_loop = false;
        for (int64_t i = rp[v]; i < rp[v + 1]; ++i) has_loop |= (static_cast<int64_t>(c[i]) == v);
        d[v] = static_cast<float>(rp[v + 1] - rp[v] + ((self_loops && !has_loop) ? 1 : 0));
      }
    });
  });
  return deg;
}

// |a ∩ b| of two sorted index lists: galloping (binary search) of the shorter list in the
// longer one, so hub-hub edges of power-law graphs cost O(min log max), not O(max).
template <typename index_t>
int64_t intersect_sorted(const index_t* a, int64_t na, const index_t* b, int64_t nb) {
  if (na > nb) {
    std::swap(a, b);
    std::swap(na, nb);
  }
  if (na == 0) return 0;
  int64_t count = 0;
  if (nb > 16 * na) {
    const index_t* lo = b;
    const index_t* hi = b + nb;
    for (int64_t i = 0; i < na && lo < hi; ++i) {
      lo = std::lower_bound(lo, hi, a[i]);
      if (lo < hi && *lo == a[i]) ++count;
    }
    return count;
  }
  int64_t i = 0, j = 0;
  while (i < na && j < nb) {
    if (a[i] < b[j]) {
      ++i;
    } else if (b[j] < a[i]) {
      ++j;
    } else {
      ++count;
      ++i;
      ++j;
    }
  }
  return count;
}

// For every edge (v, u) of the query CSR (rowptr, col), the number of common neighbours of v
// and u in the symmetric simple adjacency (adj_rowptr, adj_col) with sorted rows: the number
// of triangles containing the edge. Self loops count 0. Returns fp32 [E].
at::Tensor triangle_counts_cpu(const at::Tensor& adj_rowptr, const at::Tensor& adj_col,
                               const at::Tensor& rowptr, const at::Tensor& col) {
  check_csr(adj_rowptr, adj_col);
  check_csr(rowptr, col);
  TORCH_CHECK(adj_col.scalar_type() == col.scalar_type(),
              "triangle_counts: adj_col and col must share a dtype");
  TORCH_CHECK(adj_rowptr.numel() == rowptr.numel(),
              "triangle_counts: adjacency and query graph must have the same number of nodes");
  const int64_t n = rowptr.numel() - 1;
  at::Tensor counts = at::zeros({col.numel()}, at::kFloat);
  float* out = counts.data_ptr<float>();
  const int64_t* arp = adj_rowptr.data_ptr<int64_t>();
  const int64_t* rp = rowptr.data_ptr<int64_t>();
  AT_DISPATCH_INDEX_TYPES(col.scalar_type(), "triangle_counts", [&] {
    const index_t* ac = adj_col.data_ptr<index_t>();
    const index_t* c = col.data_ptr<index_t>();
    const auto chunks = balanced_chunks(rp, n, std::max<int64_t>(1, 8 * at::get_num_threads()));
    const int64_t nchunks = static_cast<int64_t>(chunks.size()) - 1;
    at::parallel_for(0, nchunks, 1, [&](int64_t b, int64_t e) {
      for (int64_t v = chunks[b]; v < chunks[e]; ++v) {
        for (int64_t i = rp[v]; i < rp[v + 1]; ++i) {
          const int64_t u = static_cast<int64_t>(c[i]);
          if (u == v) continue;
          out[i] = static_cast<float>(intersect_sorted<index_t>(
              ac + arp[v], arp[v + 1] - arp[v], ac + arp[u], arp[u + 1] - arp[u]));
        }
      }
    });
  });
  return counts;
}

}  // namespace

TORCH_LIBRARY(sgap, m) {
  m.def(
      "propagate_hops(Tensor rowptr, Tensor col, Tensor? weight, Tensor? row_scale, "
      "Tensor? col_scale, Tensor? node_map, Tensor x, Tensor(a!) out, float alpha, "
      "bool self_loops, bool keep_empty, int block) -> ()");
  m.def(
      "propagate_step(Tensor rowptr, Tensor col, Tensor? weight, Tensor? row_scale, "
      "Tensor? col_scale, Tensor prev, Tensor? x0, Tensor(a!) cur, float alpha, "
      "bool self_loops, bool keep_empty, int block) -> ()");
  m.def("loop_degree(Tensor rowptr, Tensor col, bool self_loops) -> Tensor");
  m.def("triangle_counts(Tensor adj_rowptr, Tensor adj_col, Tensor rowptr, Tensor col) -> Tensor");
}

TORCH_LIBRARY_IMPL(sgap, CPU, m) {
  m.impl("propagate_hops", &propagate_hops_op<CpuKernels>);
  m.impl("propagate_step", &propagate_step_op<CpuKernels>);
  m.impl("loop_degree", &loop_degree_cpu);
  m.impl("triangle_counts", &triangle_counts_cpu);
}

}  // namespace sgap
