// One block's BatchNorm (batch statistics) -> LeakyReLU -> max-pool 2, forward and backward, on the CPU.
//
// PyTorch's layers pass over a block's activations about a dozen times (BatchNorm 3 times forward and 5 backward,
// LeakyReLU 2 and 3, the pool 2 and 2); here the forward reads them twice and the backward reads them once and
// writes their gradient once. Built by fmnist_lab/fused.py with torch.utils.cpp_extension; layout channels-last
// (N, H, W, C in memory), float32 or bfloat16 (kept as its 16 bits, so that the compiler vectorises the loops
// over channels).
//
// The same function as the layers, up to rounding: BatchNorm followed by LeakyReLU is, per channel, increasing
// where gamma / sigma > 0 and decreasing where it is < 0, so the window's largest output comes from its largest
// input (its smallest where decreasing), and only that one input is normalised in the forward pass.
#include <torch/extension.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

namespace {

float load(float v) { return v; }
float load(uint16_t v) {  // bfloat16: the upper half of a float32
  const uint32_t bits = uint32_t(v) << 16;
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}
template <typename T> T store(float v);
template <> float store<float>(float v) { return v; }
template <> uint16_t store<uint16_t>(float v) {  // round to nearest, ties to even (as PyTorch's conversion)
  uint32_t bits;
  std::memcpy(&bits, &v, 4);
  return uint16_t((bits + 0x7FFFu + ((bits >> 16) & 1u)) >> 16);
}
float larger(float a, float b) { return a > b ? a : b; }  // not std::max: its reference stops vectorisation

constexpr int64_t kBlocks = 64;  // fixed reduction blocks: the sums come out the same on any number of threads

// Per channel, the sums of a[r, c] and a[r, c] * b[r, c] over rows r: `rows_sums(r, s, q)` adds row r's terms
// into the float arrays s and q; each block's are added in double.
template <typename RowSums>
void channel_sums(int64_t rows, int64_t C, RowSums row_sums, std::vector<double>& sum, std::vector<double>& sum2) {
  const int64_t blocks = std::min(kBlocks, rows);
  std::vector<double> part(blocks * 2 * C, 0.0);
  at::parallel_for(0, blocks, 1, [&](int64_t b0, int64_t b1) {
    std::vector<float> s(C), q(C);
    for (int64_t b = b0; b < b1; ++b) {
      std::fill(s.begin(), s.end(), 0.f);
      std::fill(q.begin(), q.end(), 0.f);
      for (int64_t r = rows * b / blocks; r < rows * (b + 1) / blocks; ++r) row_sums(r, s.data(), q.data());
      std::copy(s.begin(), s.end(), part.begin() + 2 * b * C);
      std::copy(q.begin(), q.end(), part.begin() + (2 * b + 1) * C);
    }
  });
  sum.assign(C, 0.0);
  sum2.assign(C, 0.0);
  for (int64_t b = 0; b < blocks; ++b)
    for (int64_t c = 0; c < C; ++c) {
      sum[c] += part[2 * b * C + c];
      sum2[c] += part[(2 * b + 1) * C + c];
    }
}

// The loops over channels are functions of their own, so that C is a local the compiler can count with (a
// captured C could alias the uint8 stores, and the loop would stay scalar).
// Sums of x - pivot, not of x: E[x^2] - E[x]^2 cancels where a channel's mean is large against its spread; about a
// pivot (the channel's first value) the terms are small.
template <typename T>
void sums_of_values(const T* __restrict x, const float* __restrict pivot, float* __restrict s, float* __restrict q,
                    int64_t C) {
  for (int64_t c = 0; c < C; ++c) {
    const float v = load(x[c]) - pivot[c];
    s[c] += v;
    q[c] += v * v;
  }
}

// One pooling window, all channels: the input that gives the largest output (sign -1: the smallest input; sign 0,
// where gamma is 0: all outputs equal), its position in the window (0-3, row by row, the first on ties, as PyTorch's
// max-pool) and the block's output.
template <typename T>
void pool_window(const T* __restrict p0, const T* __restrict p1, const T* __restrict p2, const T* __restrict p3,
                 T* __restrict out, T* __restrict chosen, uint8_t* __restrict where, const float* __restrict sign,
                 const float* __restrict mean, const float* __restrict scale, const float* __restrict beta,
                 float slope, int64_t C) {
  for (int64_t c = 0; c < C; ++c) {
    const float s = sign[c], x0 = load(p0[c]), x1 = load(p1[c]), x2 = load(p2[c]), x3 = load(p3[c]);
    const float v0 = x0 * s, v1 = x1 * s, v2 = x2 * s, v3 = x3 * s;
    const bool second = larger(v2, v3) > larger(v0, v1);  // float selects, not uint8 ones: these vectorise
    const float at01 = v1 > v0 ? 1.f : 0.f, at23 = v3 > v2 ? 3.f : 2.f, at = second ? at23 : at01;
    const float x = second ? (v3 > v2 ? x3 : x2) : (v1 > v0 ? x1 : x0);
    const float z = (x - mean[c]) * scale[c] + beta[c];
    out[c] = store<T>(larger(z, z * slope));  // LeakyReLU with 0 < slope < 1
    chosen[c] = store<T>(x);
    where[c] = uint8_t(at);
  }
}

// The pooled gradient through LeakyReLU (dz), and BatchNorm's sums sum(dz) and sum(dz * x_hat) over it.
template <typename T>
void grad_at_chosen(const T* __restrict chosen, const T* __restrict grad, float* __restrict dz, float* __restrict s,
                    float* __restrict q, const float* __restrict mean, const float* __restrict invstd,
                    const float* __restrict gamma, const float* __restrict beta, float slope, int64_t C) {
  for (int64_t c = 0; c < C; ++c) {
    const float x_hat = (load(chosen[c]) - mean[c]) * invstd[c], z = x_hat * gamma[c] + beta[c], g = load(grad[c]);
    const float d = z > 0 ? g : g * slope;
    dz[c] = d;
    s[c] += d;
    q[c] += d * x_hat;
  }
}

// BatchNorm's input gradient at one position, k (dz - a - (x - mean) b), where dz is the window's where the
// position is the chosen one and 0 elsewhere (position < 0: outside every window, a row or column the pool drops).
template <typename T>
void input_grad(const T* __restrict x, T* __restrict out, const uint8_t* __restrict where, const float* __restrict dz,
                float position, const float* __restrict mean, const float* __restrict k, const float* __restrict a,
                const float* __restrict b, int64_t C) {
  for (int64_t c = 0; c < C; ++c) {
    const float d = position >= 0 && float(where[c]) == position ? dz[c] : 0.f;
    out[c] = store<T>(k[c] * (d - a[c] - (load(x[c]) - mean[c]) * b[c]));
  }
}

template <typename T>
void forward_kernel(const T* x, T* out, T* chosen, uint8_t* where, const float* gamma, const float* beta,
                    float* mean, float* invstd, float* running_mean, float* running_var, double momentum, double eps,
                    float slope, int64_t N, int64_t C, int64_t H, int64_t W) {
  const int64_t OH = H / 2, OW = W / 2, M = N * H * W;
  std::vector<float> pivot(C), scale(C), sign(C);
  for (int64_t c = 0; c < C; ++c) pivot[c] = load(x[c]);
  const float* pv = pivot.data();
  std::vector<double> sum, sum2;
  channel_sums(M, C, [=](int64_t r, float* s, float* q) { sums_of_values(x + r * C, pv, s, q, C); }, sum, sum2);
  for (int64_t c = 0; c < C; ++c) {
    const double shifted = sum[c] / M, mu = pivot[c] + shifted, var = std::max(sum2[c] / M - shifted * shifted, 0.0);
    mean[c] = float(mu);
    invstd[c] = float(1.0 / std::sqrt(var + eps));
    scale[c] = gamma[c] * invstd[c];
    sign[c] = scale[c] > 0 ? 1.f : scale[c] < 0 ? -1.f : 0.f;
    // as nn.BatchNorm2d: the running variance is the unbiased one
    running_mean[c] = float((1 - momentum) * running_mean[c] + momentum * mu);
    running_var[c] = float((1 - momentum) * running_var[c] + momentum * var * M / std::max<int64_t>(M - 1, 1));
  }
  const float *sg = sign.data(), *sc = scale.data();
  at::parallel_for(0, N * OH, 1, [=](int64_t t0, int64_t t1) {
    for (int64_t t = t0; t < t1; ++t) {
      const int64_t n = t / OH, oh = t % OH;
      for (int64_t ow = 0; ow < OW; ++ow) {
        const T* p0 = x + ((n * H + 2 * oh) * W + 2 * ow) * C;
        const int64_t o = ((n * OH + oh) * OW + ow) * C;
        pool_window(p0, p0 + C, p0 + W * C, p0 + W * C + C, out + o, chosen + o, where + o, sg, mean, sc, beta, slope,
                    C);
      }
    }
  });
}

template <typename T>
void backward_kernel(const T* grad, const T* x, const T* chosen, const uint8_t* where, const float* mean,
                     const float* invstd, const float* gamma, const float* beta, float slope, T* grad_x,
                     float* grad_gamma, float* grad_beta, int64_t N, int64_t C, int64_t H, int64_t W) {
  const int64_t OH = H / 2, OW = W / 2, pooled = N * OH * OW, M = N * H * W;
  std::unique_ptr<float[]> dz_buffer(new float[pooled * C]);  // no zero fill: every value is written
  float* dz = dz_buffer.get();
  std::vector<double> sum, sum2;
  channel_sums(
      pooled, C,
      [=](int64_t r, float* s, float* q) {
        grad_at_chosen(chosen + r * C, grad + r * C, dz + r * C, s, q, mean, invstd, gamma, beta, slope, C);
      },
      sum, sum2);
  std::vector<float> k(C), a(C), b(C);
  for (int64_t c = 0; c < C; ++c) {
    grad_gamma[c] = float(sum2[c]);
    grad_beta[c] = float(sum[c]);
    k[c] = gamma[c] * invstd[c];
    a[c] = float(sum[c] / M);
    b[c] = float(sum2[c] / M) * invstd[c];
  }
  const float *kc = k.data(), *ac = a.data(), *bc = b.data();
  at::parallel_for(0, N * H, 1, [=](int64_t t0, int64_t t1) {
    for (int64_t t = t0; t < t1; ++t) {
      const int64_t n = t / H, h = t % H;
      for (int64_t w = 0; w < W; ++w) {
        const int64_t i = ((n * H + h) * W + w) * C;
        if (h < 2 * OH && w < 2 * OW) {
          const int64_t o = ((n * OH + h / 2) * OW + w / 2) * C;
          input_grad(x + i, grad_x + i, where + o, dz + o, float((h % 2) * 2 + w % 2), mean, kc, ac, bc, C);
        } else {
          input_grad(x + i, grad_x + i, where, dz, -1.f, mean, kc, ac, bc, C);
        }
      }
    }
  });
}

template <typename F>
void with_storage_type(const at::Tensor& x, F f) {
  if (x.scalar_type() == at::kBFloat16) {
    f(uint16_t{});
  } else {
    TORCH_CHECK(x.scalar_type() == at::kFloat, "fused block: float32 or bfloat16 activations, not ", x.scalar_type());
    f(float{});
  }
}
template <typename T>
T* data(const at::Tensor& t) { return reinterpret_cast<T*>(t.data_ptr()); }
at::Tensor floats(const at::Tensor& t) {
  TORCH_CHECK(t.scalar_type() == at::kFloat && t.dim() == 1, "fused block: float32 vectors for BatchNorm");
  return t.contiguous();
}

}  // namespace

// Returns the block's output, then what the backward pass needs: the chosen inputs, their positions, mean, 1/sigma.
// running_mean and running_var are updated in place.
std::vector<at::Tensor> forward(at::Tensor x, at::Tensor gamma, at::Tensor beta, at::Tensor running_mean,
                                at::Tensor running_var, double momentum, double eps, double slope) {
  TORCH_CHECK(x.dim() == 4 && x.device().is_cpu(), "fused block: a 4-d CPU tensor (N, C, H, W)");
  TORCH_CHECK(x.size(0) > 0 && x.size(2) >= 2 && x.size(3) >= 2,
              "fused block: at least one image of at least 2 x 2 values to pool, got ", x.sizes());
  TORCH_CHECK(running_mean.is_contiguous() && running_var.is_contiguous(), "fused block: contiguous running stats");
  const int64_t N = x.size(0), C = x.size(1), H = x.size(2), W = x.size(3);
  const auto channels_last = at::MemoryFormat::ChannelsLast;
  x = x.contiguous(channels_last);
  auto out = at::empty({N, C, H / 2, W / 2}, x.options().memory_format(channels_last));
  auto chosen = at::empty_like(out), where = at::empty_like(out, out.options().dtype(at::kByte));
  auto mean = at::empty({C}, running_mean.options()), invstd = at::empty({C}, running_mean.options());
  const auto g = floats(gamma), b = floats(beta);
  with_storage_type(x, [&](auto storage) {
    using T = decltype(storage);
    forward_kernel(data<T>(x), data<T>(out), data<T>(chosen), data<uint8_t>(where), data<float>(g), data<float>(b),
                   data<float>(mean), data<float>(invstd), data<float>(floats(running_mean)),
                   data<float>(floats(running_var)), momentum, eps, float(slope), N, C, H, W);
  });
  return {out, chosen, where, mean, invstd};
}

// Returns the gradients of x, gamma and beta.
std::vector<at::Tensor> backward(at::Tensor grad, at::Tensor x, at::Tensor chosen, at::Tensor where, at::Tensor mean,
                                 at::Tensor invstd, at::Tensor gamma, at::Tensor beta, double slope) {
  const int64_t N = x.size(0), C = x.size(1), H = x.size(2), W = x.size(3);
  const auto channels_last = at::MemoryFormat::ChannelsLast;
  x = x.contiguous(channels_last);
  grad = grad.to(x.scalar_type()).contiguous(channels_last);
  auto grad_x = at::empty_like(x, x.options().memory_format(channels_last));
  auto grad_gamma = at::empty({C}, mean.options()), grad_beta = at::empty({C}, mean.options());
  const auto g = floats(gamma), b = floats(beta);
  with_storage_type(x, [&](auto storage) {
    using T = decltype(storage);
    backward_kernel(data<T>(grad), data<T>(x), data<T>(chosen), data<uint8_t>(where), data<float>(mean),
                    data<float>(invstd), data<float>(g), data<float>(b), float(slope), data<T>(grad_x),
                    data<float>(grad_gamma), data<float>(grad_beta), N, C, H, W);
  });
  return {grad_x, grad_gamma, grad_beta};
}

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("forward", &forward, "BatchNorm -> LeakyReLU -> max-pool 2, training mode");
  m.def("backward", &backward, "its gradients");
}
