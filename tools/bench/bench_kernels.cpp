// `attn bench kernels`: the profiler of the fused kernels users run.
//
// For each kernel (additive and dot attention for one decoder step, the LSTM layer, softmax +
// NLL) and each shape, every variant is timed forward and forward + backward:
//   fused     the engine's fused op on the chosen device (additive attention: from keys
//             prepared once per batch, as the decoders run it; fused_unprepared from plain keys,
//             fused+prepare preparing them in every call),
//   composed  the same computation from primitive ops (core/ops/composed.h),
//   cudnn     cuDNN's RNN (LSTM on CUDA only),
//   cpu_twin  the fused op on the CPU (when the device is a GPU).
// Before timing, each variant's outputs and gradients, and its outputs without autograd (the
// path the forward rows time), are checked against the CPU twin (norm-relative error), and the
// CPU twin itself against the composed op in float64; a failed check is a note, the variant is
// not timed, and the command fails. Times are medians of many runs after warm-up (GPU: CUDA
// events), with the L2 flushed before each call and two input sets alternating. GB/s
// and GFLOP/s use the minimum bytes the op must move and its arithmetic; % roofline compares
// with max(bytes / copy bandwidth, flops / GEMM rate), both measured by this tool in the same
// run. These are the very ops the engine ships.
#include <algorithm>
#include <charconv>
#include <cmath>
#include <map>
#include <set>

#include "core/autograd/node.h"
#include "core/ops/composed.h"
#include "core/ops/fused.h"
#include "kernels/backend.h"
#include "tools/bench/check.h"
#include "tools/bench/harness.h"
#include "tools/bench/l2_flush.h"
#include "tools/bench/suites.h"

namespace attn::bench {

namespace {

struct Cost {
  double bytes = 0, flops = 0;
};

struct Kernel {
  std::string name;
  std::function<std::vector<Tensor>(const KernelShape&, Device, Generator&)> make;
  std::vector<std::pair<std::string, Fn>> variants;  // name, op (fused first)
  std::function<Cost(const KernelShape&, bool backward)> cost;
};

// The benchmark's source lengths: S down to about S/2, unsorted (at T2: 11..20, 78% of B*S);
// every one S with P=0 in the shape.
std::vector<int64_t> length_values(const KernelShape& s) {
  std::vector<int64_t> v(static_cast<size_t>(s.B), s.S);
  if (s.padded) {
    for (int64_t b = 0; b < s.B; ++b) v[static_cast<size_t>(b)] = std::max<int64_t>(1, s.S - (b * 7) % std::max<int64_t>(1, s.S / 2));
  }
  return v;
}

Tensor lengths_for(const KernelShape& s, Device d) { return from_vector(length_values(s), Shape{s.B}).to(d); }

// Positions that are not padding: the work an op that skips padding cannot avoid.
double real_positions(const KernelShape& s) {
  double n = 0;
  for (int64_t len : length_values(s)) n += static_cast<double>(len);
  return n;
}

std::vector<Kernel> kernels_for(Device device) {
  std::vector<Kernel> ks;
  const double f4 = 4.0;  // bytes per float32
  // ---- attention, one decoder step: q (B, H), values (B, S, H), keys (B, S, H), v (H)
  for (bool additive : {true, false}) {
    Kernel k;
    k.name = additive ? "attention_additive" : "attention_dot";
    k.make = [additive](const KernelShape& s, Device d, Generator& g) {
      std::vector<Tensor> in = {uniform({s.B, s.H}, -1.0, 1.0, g, {.device = d}), uniform({s.B, s.S, s.H}, -1.0, 1.0, g, {.device = d}),
                                lengths_for(s, d)};
      if (additive) {
        in.push_back(uniform({s.B, s.S, s.H}, -1.0, 1.0, g, {.device = d}));
        in.push_back(uniform({s.H}, -1.0, 1.0, g, {.device = d}));
      }
      return in;
    };
    if (additive) {
      // "fused" is what the decoders run each step: keys prepared once per batch (here once per
      // input set: the prepared keys hold their tensor, so a freed address is never reused
      // while cached); "fused_unprepared" prepares nothing; "fused+prepare" prepares every call.
      auto prepared = std::make_shared<std::map<const void*, AdditiveKeys>>();
      k.variants = {{"fused", [prepared](const std::vector<Tensor>& x) {
                       auto it = prepared->find(x[3].raw_data());
                       if (it == prepared->end() || it->second.version != x[3].version() || !it->second.keys.is_same(x[3]))
                         it = prepared->insert_or_assign(x[3].raw_data(), prepare_additive_keys(x[3])).first;
                       auto o = additive_attention(x[0], it->second, x[4], x[1], x[2]);
                       return std::vector<Tensor>{o.context, o.weights};
                     }},
                    {"fused_unprepared", [](const std::vector<Tensor>& x) { auto o = additive_attention(x[0], x[3], x[4], x[1], x[2]); return std::vector<Tensor>{o.context, o.weights}; }},
                    {"fused+prepare", [](const std::vector<Tensor>& x) { auto o = additive_attention(x[0], prepare_additive_keys(x[3]), x[4], x[1], x[2]); return std::vector<Tensor>{o.context, o.weights}; }},
                    {"composed", [](const std::vector<Tensor>& x) { auto o = composed::additive_attention(x[0], x[3], x[4], x[1], x[2]); return std::vector<Tensor>{o.context, o.weights}; }}};
    } else {
      k.variants = {{"fused", [](const std::vector<Tensor>& x) { auto o = dot_attention(x[0], x[1], x[2]); return std::vector<Tensor>{o.context, o.weights}; }},
                    {"composed", [](const std::vector<Tensor>& x) { auto o = composed::dot_attention(x[0], x[1], x[2]); return std::vector<Tensor>{o.context, o.weights}; }}};
    }
    k.cost = [additive, f4](const KernelShape& s, bool backward) {
      // The kernels read keys and values at the N real positions only; the gradients of keys
      // and values are written whole (zeros at padding), the weights too.
      const double B = static_cast<double>(s.B), S = static_cast<double>(s.S), H = static_cast<double>(s.H);
      const double N = real_positions(s), tensors = additive ? 2 : 1;  // (B, S, H) inputs: values (+ keys)
      const double reads = B * H + N * H * tensors + (additive ? H : 0);
      const double writes = B * H + B * S;
      Cost c{f4 * (reads + writes), (additive ? 4.0 : 2.0) * N * H + 2.0 * N * H + 5.0 * N};
      if (backward) {  // reads the inputs, weights, d(context) and d(weights); writes every input's gradient
        c.bytes += f4 * (reads + B * S + B * H + B * S + B * H + B * S * H * tensors + (additive ? H : 0));
        c.flops += (additive ? 8.0 : 4.0) * N * H + 4.0 * N * H;
      }
      return c;
    };
    ks.push_back(k);
  }
  // ---- LSTM layer: x (B, S, H), input size = hidden size
  {
    Kernel k;
    k.name = "lstm_layer";
    k.make = [](const KernelShape& s, Device d, Generator& g) {
      const double r = 1.0 / std::sqrt(static_cast<double>(s.H));
      return std::vector<Tensor>{uniform({s.B, s.S, s.H}, -1.0, 1.0, g, {.device = d}), lengths_for(s, d),
                                 zeros({s.B, s.H}, {.device = d}), zeros({s.B, s.H}, {.device = d}),
                                 uniform({4 * s.H, s.H}, -r, r, g, {.device = d}), uniform({4 * s.H, s.H}, -r, r, g, {.device = d}),
                                 uniform({4 * s.H}, -r, r, g, {.device = d}), uniform({4 * s.H}, -r, r, g, {.device = d})};
    };
    k.variants = {{"fused", [](const std::vector<Tensor>& x) { auto o = lstm_layer(x[0], x[1], x[2], x[3], x[4], x[5], x[6], x[7]); return std::vector<Tensor>{o.output, o.h_n, o.c_n}; }},
                  {"composed", [](const std::vector<Tensor>& x) { auto o = composed::lstm_layer(x[0], x[1], x[2], x[3], x[4], x[5], x[6], x[7]); return std::vector<Tensor>{o.output, o.h_n, o.c_n}; }}};
    if (device.is_cuda()) {
      k.variants.push_back({"cudnn", [](const std::vector<Tensor>& x) {
                              auto o = kernels::backend(x[0].device()).cudnn_lstm(x[0], x[1], x[2].unsqueeze(0), x[3].unsqueeze(0), {x[4], x[5], x[6], x[7]}, 1, false, 0.0);
                              return std::vector<Tensor>{o.output, o.h_n.squeeze(0), o.c_n.squeeze(0)};
                            }});
    }
    k.cost = [f4](const KernelShape& s, bool backward) {
      // The input and output tensors are (B, S, H) and read or written whole; the GEMMs and the
      // cell run on the N real positions only (the fused layer leaves padding out).
      const double B = static_cast<double>(s.B), S = static_cast<double>(s.S), H = static_cast<double>(s.H);
      const double N = real_positions(s);
      // Forward: x in, output out, W_ih and W_hh (4H x H each) and two biases read, h0 / c0 in and
      // h_n / c_n out. Backward: x, d(output) in and dx out; both weights read (dx, dh) and their
      // gradients written; the two bias gradients (4H each) written; dh_n / dc_n in, dh0 / dc0
      // out; the 4H gates of each real position saved by the forward (written, then read).
      Cost c{f4 * (B * S * H * 2 + 8 * H * H + 8 * H + 4 * B * H), 2.0 * N * H * 4 * H * 2 + 20.0 * N * H};
      if (backward) {
        c.bytes += f4 * (B * S * H * 3 + 16 * H * H + 8 * H + 4 * B * H + N * 4 * H * 2);
        c.flops *= 3.0;
      }
      return c;
    };
    ks.push_back(k);
  }
  // ---- softmax + NLL over (B * S) target positions and V classes
  {
    Kernel k;
    k.name = "softmax_nll";
    k.make = [](const KernelShape& s, Device d, Generator& g) {
      const int64_t N = s.B * s.S;
      Tensor u = uniform({N}, 0.0, static_cast<double>(s.V), g, {.dtype = DType::Float64});
      std::vector<int64_t> t;
      for (double v : u.to_vector<double>()) t.push_back(std::min<int64_t>(s.V - 1, static_cast<int64_t>(v)));
      return std::vector<Tensor>{uniform({N, s.V}, -4.0, 4.0, g, {.device = d}), from_vector(t, Shape{N}).to(d)};
    };
    k.variants = {{"fused", [](const std::vector<Tensor>& x) { return std::vector<Tensor>{softmax_nll(x[0], x[1])}; }},
                  {"composed", [](const std::vector<Tensor>& x) { return std::vector<Tensor>{composed::softmax_nll(x[0], x[1])}; }}};
    k.cost = [f4](const KernelShape& s, bool backward) {
      const double n = static_cast<double>(s.B * s.S) * static_cast<double>(s.V);
      Cost c{f4 * n, 4.0 * n};
      if (backward) {
        c.bytes += f4 * 2 * n;
        c.flops += 3.0 * n;
      }
      return c;
    };
    ks.push_back(k);
  }
  return ks;
}

struct Ceilings {
  double bandwidth = 0, gemm_rate = 0;  // bytes/s, flop/s
};

Ceilings measure_ceilings(Device d, const Clock& clock, int reps, double min_time, const std::function<void()>& flush) {
  auto& be = kernels::backend(d);
  Generator g(99);
  const int64_t n = int64_t{16} << 20;  // 64 MB
  Tensor a = uniform({n}, -1.0, 1.0, g, {.device = d}), b = empty({n}, {.device = d});
  const int64_t m = d.is_cuda() ? 4096 : 1024;
  Tensor x = uniform({1, m, m}, -1.0, 1.0, g, {.device = d}), y = uniform({1, m, m}, -1.0, 1.0, g, {.device = d});
  Tensor z = empty({1, m, m}, {.device = d});
  Variants variants{{"gemm", [&] { be.bmm(z, x, y, false); }}, {"copy", [&] { be.copy(b, a); }}};
  // On a CPU the bandwidth is the faster of memcpy (non-temporal stores for blocks this large,
  // slower here than plain ones) and a copy by plain stores (x * 1 through the elementwise
  // path), as `attn bench backend` takes it: memcpy alone read 0.6-0.8x of the other and
  // inflated pct_roofline by as much.
  if (d.is_cpu()) variants.emplace_back("copy_by_stores", [&] { be.unary(kernels::UnaryOp::MulScalar, b, a, 1.0); });
  std::vector<Timing> t = time_interleaved(variants, 2, reps, clock, min_time, 20000, flush);
  double copy_s = t[1].median_s;
  if (t.size() > 2) copy_s = std::min(copy_s, t[2].median_s);
  return {2.0 * 4 * static_cast<double>(n) / copy_s, 2.0 * std::pow(static_cast<double>(m), 3) / t[0].median_s};
}

}  // namespace

std::vector<KernelShape> parse_kernel_shapes(const std::vector<std::string>& specs, Device device) {
  std::vector<KernelShape> out;
  std::vector<std::string> names = specs;
  if (names.empty()) names = device.is_cuda() ? std::vector<std::string>{"T1", "T2", "L"} : std::vector<std::string>{"T1", "T2"};
  for (const std::string& spec : names) {
    if (spec == "T1") {
      out.push_back({"T1", 1, 10, 256, 10000});
    } else if (spec == "T2") {
      out.push_back({"T2", 32, 20, 256, 10000});
    } else if (spec == "L") {
      out.push_back({"L", 128, 50, 1024, 32000});
    } else {  // B=..,S=..,H=..,V=..
      KernelShape s{spec, 0, 0, 0, 10000, true};
      std::set<std::string> seen;
      size_t pos = 0;
      while (true) {
        const size_t comma = spec.find(',', pos);
        const std::string item = spec.substr(pos, comma == std::string::npos ? std::string::npos : comma - pos);
        const size_t eq = item.find('=');
        ATTN_CHECK(eq != std::string::npos, ValueError, "--shape {}: expected T1, T2, L or B=..,S=..,H=..[,V=..][,P=0|1]", spec);
        const std::string key = item.substr(0, eq);
        ATTN_CHECK(seen.insert(key).second, ValueError, "--shape {}: {} is given twice", spec, key);
        // the whole text, digits only (stoll read "1e3" as 1, "2x" as 2 and " 2" as 2)
        const std::string text = item.substr(eq + 1);
        int64_t value = 0;
        const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
        ATTN_CHECK(ec != std::errc::result_out_of_range, ValueError, "--shape {}: {} is out of range", spec, text);
        ATTN_CHECK(ec == std::errc() && end == text.data() + text.size() && !text.empty(), ValueError,
                   "--shape {}: '{}' is not a whole number", spec, text);
        if (key == "P") {
          ATTN_CHECK(value == 0 || value == 1, ValueError, "--shape {}: P is 0 (no padding) or 1 (padded batch)", spec);
          s.padded = value == 1;
        } else {
          ATTN_CHECK(value > 0, ValueError, "--shape {}: {} must be positive", spec, key);
          if (key == "B") s.B = value;
          else if (key == "S") s.S = value;
          else if (key == "H") s.H = value;
          else if (key == "V") s.V = value;
          else throw ValueError(fmt::format("--shape {}: unknown key '{}' (B, S, H, V, P)", spec, key));
        }
        if (comma == std::string::npos) break;
        pos = comma + 1;  // (a trailing comma leaves an empty item: "expected ...")
      }
      ATTN_CHECK(s.B > 0 && s.S > 0 && s.H > 0, ValueError, "--shape {}: B, S and H are required", spec);
      int64_t elements = 0;  // the largest tensors, (B, S, H) and (B*S, V), must have a size
      ATTN_CHECK(!__builtin_mul_overflow(s.B, s.S, &elements) && elements <= (int64_t{1} << 40) &&
                     !__builtin_mul_overflow(elements, std::max(s.H, s.V), &elements),
                 ValueError, "--shape {}: B*S*max(H, V) is too large", spec);
      out.push_back(s);
    }
  }
  return out;
}

void run_kernels(Report& rep, const KernelOptions& opt) {
  const Device dev = opt.device;
  {
    std::string names;
    bool any = opt.only.empty();
    for (const Kernel& k : kernels_for(dev)) {
      any = any || k.name.find(opt.only) != std::string::npos;
      names += (names.empty() ? "" : ", ") + k.name;
    }
    ATTN_CHECK(any, ValueError, "--kernel {}: no kernel has this in its name ({})", opt.only, names);
  }
  const Clock clock = dev.is_cuda() ? cuda_clock(dev) : host_clock();
  // The L2 is flushed before every timed call (l2_flush.h), the ceilings' too. The inputs then
  // come from the L3 on a CPU, as in a training step, where the decoder's other work evicts them
  // from the L2 between steps.
  const double flush_bytes = l2_flush_bytes(dev);
  const std::function<void()> flush_l2 = make_l2_flush(dev);
  // the CPU twin of a GPU run is timed on the host, with the host's L2 flushed
  const std::function<void()> flush_host_l2 = dev.is_cpu() ? flush_l2 : make_l2_flush(kCPU);
  const Ceilings ceil = measure_ceilings(dev, clock, opt.reps, opt.min_time, flush_l2);
  rep.notes.push_back(fmt::format("ceilings measured in this run: copy {:.1f} GB/s, GEMM {:.1f} GFLOP/s", ceil.bandwidth * 1e-9,
                                  ceil.gemm_rate * 1e-9));
  for (const KernelShape& shape : opt.shapes) {
    for (Kernel& k : kernels_for(dev)) {
      if (!opt.only.empty() && k.name.find(opt.only) == std::string::npos) continue;
      Generator g(7);
      // Input sets that alternate from call to call (different data each time).
      std::vector<std::vector<Tensor>> sets;
      while (sets.size() < static_cast<size_t>(opt.input_sets)) sets.push_back(k.make(shape, dev, g));
      std::vector<Tensor> cpu_in;
      for (const Tensor& t : sets[0]) cpu_in.push_back(t.to(kCPU));
      // upstream gradients, one per output
      std::vector<Tensor> probe = k.variants[0].second(cpu_in);
      std::vector<Tensor> R;
      for (const Tensor& o : probe) R.push_back(uniform(o.shape(), -1.0, 1.0, g));
      // The CPU twin (the fused op on the CPU), which every variant is checked against, is itself
      // checked against the composed op in float64: on a CPU run the fused op is the twin, and a
      // wrong fused kernel would otherwise pass and get the right composed one blamed.
      const Fn& fused = k.variants[0].second;
      const Fn& composed_fn = std::find_if(k.variants.begin(), k.variants.end(), [](const auto& v) { return v.first == "composed"; })->second;
      // (Not in float64 for inputs over 256 MB, softmax + NLL at L: the composed op in float64 on
      // the host would take most of a GPU check's time; the twin is the same code at every shape.
      // A CPU run then checks it against the composed op in float32, which it times anyway: the
      // fused op was timed unchecked there.)
      double input_bytes = 0;
      for (const Tensor& t : cpu_in) input_bytes += static_cast<double>(t.numel() * dtype_size(t.dtype()));
      const bool check_twin = input_bytes <= 256.0 * (1 << 20);
      double twin_err = -1;  // -1: not checked
      // What float32 can do on these inputs: 1e-4, or 4x the composed op's own float32 error
      // against float64 where that is larger (at H = 1 the gradients of q and v are
      // cancellations that float32 gets 1.2e-4 wrong whichever way it computes them: the twin
      // and the composed op alike failed a fixed 1e-4). Variants are compared with the twin, so
      // with twice that (each may be off by the tolerance in its own direction).
      double tolerance = 1e-4;
      if (check_twin) {
        std::vector<Tensor> R64;
        for (const Tensor& r : R) R64.push_back(r.to(DType::Float64));
        const std::vector<Tensor> oracle = outputs_and_grads(composed_fn, as_double(cpu_in), R64);
        tolerance = std::max(tolerance, 4.0 * check_variant(composed_fn, cpu_in, R, oracle));
        if (tolerance > 1e-4)
          rep.notes.push_back(fmt::format("{} {}: float32 is ill-conditioned here (the composed op is {:.2g} from float64): "
                                          "checked to {:.2g}, variants against the twin to {:.2g}",
                                          k.name, shape.name, tolerance / 4.0, tolerance, 2.0 * tolerance));
        twin_err = check_variant(fused, cpu_in, R, oracle);
      } else if (dev.is_cpu()) {
        twin_err = check_variant(fused, cpu_in, R, outputs_and_grads(composed_fn, cpu_in, R));
        rep.notes.push_back(fmt::format("{} {}: the fused op is checked against the composed op in float32 at this size "
                                        "({:.0f} MB of inputs), not float64",
                                        k.name, shape.name, input_bytes * 1e-6));
      } else {
        rep.notes.push_back(fmt::format("{} {}: the CPU twin is not checked against float64 at this size ({:.0f} MB of "
                                        "inputs); the other variants are checked against it",
                                        k.name, shape.name, input_bytes * 1e-6));
      }
      const std::vector<Tensor> twin = outputs_and_grads(fused, cpu_in, R);
      if (twin_err != -1 && !(twin_err <= tolerance)) {
        rep.notes.push_back(fmt::format("{} {}: CHECK FAILED: the fused op on the CPU (the twin) differs from the composed op "
                                        "in {} by {:.3g} (relative); nothing timed",
                                        k.name, shape.name, check_twin ? "float64" : "float32", twin_err));
        rep.check_failed = true;
        continue;
      }
      std::vector<std::pair<std::string, Fn>> variants = k.variants;
      if (dev.is_cuda()) variants.push_back({"cpu_twin", fused});
      // Every variant's error against the twin, once for both passes (the check runs the
      // forward with and without autograd and the backward).
      struct Checked {
        double error;  // -1: not checked
        bool ok;
      };
      std::map<std::string, Checked> check;
      for (const auto& [vname, fn] : variants) {
        const bool is_twin = vname == "cpu_twin" || (dev.is_cpu() && vname == "fused");
        const double error = is_twin ? twin_err : check_variant(fn, sets[0], R, twin);
        // the twin against float64 to the tolerance, the others against the twin to twice it
        check[vname] = {error, error == -1 || error <= (is_twin ? tolerance : 2.0 * tolerance)};
      }
      for (bool backward : {false, true}) {
        const Cost cost = k.cost(shape, backward);
        const std::string pass = fmt::format("{} {}", shape.name, backward ? "fwd+bwd" : "fwd");
        // Check every variant against the CPU twin, then time the ones that pass, interleaved
        // (the CPU twin of a GPU run separately, on the host clock).
        struct Prepared {
          std::string name;
          bool on_cpu;
          double check;
          std::function<void()> body;
        };
        std::vector<Prepared> prepared;
        for (auto& [vname, fn] : variants) {
          const bool on_cpu = vname == "cpu_twin";
          const auto [worst, ok] = check[vname];
          if (!ok) {
            rep.notes.push_back(fmt::format("{} {} {}: CHECK FAILED (relative error {:.3g}); not timed", k.name, pass, vname, worst));
            rep.check_failed = true;
            continue;
          }
          auto leaves = std::make_shared<std::vector<std::vector<Tensor>>>(on_cpu ? 1 : sets.size());
          auto grads = std::make_shared<std::vector<TensorList>>(leaves->size());
          for (size_t s = 0; s < leaves->size(); ++s) {
            for (const Tensor& t : on_cpu ? cpu_in : sets[s]) {
              Tensor c = t.detach();
              if (backward && is_floating(c.dtype())) c.requires_grad_(true);
              (*leaves)[s].push_back(c);
            }
            for (const Tensor& r : R) (*grads)[s].push_back(r.to(on_cpu ? kCPU : dev));
          }
          auto counter = std::make_shared<size_t>(0);
          Fn f = fn;
          prepared.push_back({vname, on_cpu, worst, [f, leaves, grads, counter, backward] {
                                const size_t s = (*counter)++ % leaves->size();
                                if (backward) {
                                  std::vector<Tensor> out = f((*leaves)[s]);
                                  TensorList roots(out.begin(), out.end());
                                  run_backward(roots, (*grads)[s], false);
                                  // The gradients are dropped at once, as a training step consumes
                                  // them: held until the variant's next call, every variant's
                                  // (10 MB at T2) crowded the caches and each call started by
                                  // freeing cold blocks that its outputs then reused.
                                  for (Tensor& t : (*leaves)[s])
                                    if (t.requires_grad()) t.set_grad(Tensor());
                                } else {
                                  NoGradGuard ng;
                                  (void)f((*leaves)[s]);
                                }
                              }});
        }
        Variants device_side, host_side;
        for (const Prepared& p : prepared) (p.on_cpu ? host_side : device_side).emplace_back(p.name, p.body);
        std::vector<Timing> timings = time_interleaved(device_side, opt.warmup, opt.reps, clock, opt.min_time, 20000, flush_l2);
        if (!host_side.empty()) {
          // (at most 2000 rounds: each flushes the host's L2s, some ms on a 16-core host)
          std::vector<Timing> h =
              time_interleaved(host_side, 1, std::max(3, opt.reps / 4), host_clock(), opt.min_time, 2000, flush_host_l2);
          timings.insert(timings.end(), h.begin(), h.end());
        }
        const Timing* composed = nullptr;
        for (const Timing& t : timings)
          if (t.name == "composed") composed = &t;
        for (const Timing& t : timings) {
          const Prepared& p = *std::find_if(prepared.begin(), prepared.end(), [&](const Prepared& q) { return q.name == t.name; });
          Row r{"kernels", k.name, t.name, pass, t.median_s * 1e6, t.runs, {}};
          const double roof = std::max(cost.bytes / ceil.bandwidth, cost.flops / ceil.gemm_rate);
          r.metrics["GB/s"] = cost.bytes / t.median_s * 1e-9;
          r.metrics["GFLOP/s"] = cost.flops / t.median_s * 1e-9;
          if (!p.on_cpu) r.metrics["pct_roofline"] = 100.0 * roof / t.median_s;
          if (p.check != -1) r.metrics["check_err"] = p.check;
          if (composed && t.name != "composed" && !p.on_cpu) r.metrics["x_vs_composed"] = paired_speedup(t, *composed);
          rep.rows.push_back(r);
        }
      }
    }
  }
  rep.notes.push_back("x_vs_composed is the median over rounds of composed time / this variant's time in the same round "
                      "(every round runs each variant once, in a random order)");
  rep.notes.push_back(fmt::format(
      "the L2 is flushed before every timed call (untimed: a copy of {:.0f} MiB{}, read and written) and {} input sets "
      "alternate; pct_roofline counts each byte once at the bandwidth of a 64 MiB copy{}, so it exceeds 100 where the "
      "working set stays in a larger cache (the CPU's L3); check_err: relative error against the CPU twin (the twin's "
      "own: against the composed op in float64, or float32 where a note says so), outputs with and without autograd "
      "and every gradient",
      flush_bytes / 2 / (1 << 20), dev.is_cpu() ? ", the L2 of the running threads" : "",
      opt.input_sets, dev.is_cpu() ? " (the faster of memcpy and a copy by plain stores)" : ""));
  rep.notes.push_back("shapes: T1 = (B 1, S 10, H 256, V 10k), T2 = (B 32, S 20, H 256, V 10k), L = (B 128, S 50, H 1024, V 32k); "
                      "attention is one decoder step, softmax_nll has B*S rows");
}

}  // namespace attn::bench
