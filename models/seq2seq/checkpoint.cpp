#include "models/seq2seq/checkpoint.h"

#include <fcntl.h>
#include <stdio.h>
#include <unistd.h>

#include <cerrno>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <map>

#include "core/io/atomic_file.h"
#include "core/io/safetensors.h"

namespace attn::models {

namespace fs = std::filesystem;

std::filesystem::path normalize_dir(const std::string& dir) {
  ATTN_CHECK(!dir.empty(), ValueError, "an empty directory name");
  std::error_code ec;
  fs::path p = fs::absolute(fs::path(dir), ec);
  ATTN_CHECK(!ec, IOError, "{}: cannot make the path absolute: {}", dir, ec.message());
  p = p.lexically_normal();
  // "a/b/" -> "a/b" (the root "/" stays as it is)
  while (!p.has_filename() && p.has_relative_path()) p = p.parent_path();
  return p;
}

namespace {

// Compares config.json with the shapes of the stored tensors that fix the model's size, before a
// model of that size is allocated: a corrupted "hidden" or "layers" must be an error, not an
// allocation of gigabytes.
void check_config_against_weights(const ModelConfig& c, const io::SafetensorsFile& file, const std::string& path) {
  auto find = [&](const std::string& name) -> const Tensor* {
    for (const auto& [n, t] : file.tensors)
      if (n == name) return &t;
    return nullptr;
  };
  auto check_embedding = [&](const std::string& name, int64_t vocab, const char* side) {
    const Tensor* t = find(name);
    ATTN_CHECK(t != nullptr, IOError, "{}: tensor '{}' is missing", path, name);
    ATTN_CHECK((t->shape() == Shape{vocab, c.hidden}), IOError,
               "{}: tensor '{}' is {} but config.json (hidden {}, {} vocabulary {}) implies [{}, {}]", path, name,
               t->shape(), c.hidden, side, vocab, vocab, c.hidden);
  };
  check_embedding("encoder.embedding.weight", c.src_vocab_size, "source");
  check_embedding("decoder.embedding.weight", c.tgt_vocab_size, "target");
  int64_t layers = 0;
  while (find(fmt::format("encoder.lstm.weight_hh_l{}", layers))) ++layers;
  ATTN_CHECK(layers == c.layers, IOError, "{}: the encoder has {} LSTM layer(s) but config.json says {}", path, layers,
             c.layers);
  const bool reverse = find("encoder.lstm.weight_hh_l0_reverse") != nullptr;
  ATTN_CHECK(reverse == c.bidirectional, IOError, "{}: the encoder is {} but config.json says bidirectional: {}",
             path, reverse ? "bidirectional" : "unidirectional", c.bidirectional);
}

}  // namespace

namespace {

// Puts the directory `tmp`, complete, in the place of `target` (`dir` as the caller named it,
// for messages). Where the kernel can, in one step (renameat2 RENAME_EXCHANGE): at every moment
// `target` is the old directory or the new one, and the old one, now at `tmp`, is removed
// afterwards. Elsewhere the old one moves aside first and is removed last, which leaves a moment
// without `target`. `tmp` is gone afterwards, also on failure.
void install_dir(const fs::path& tmp, const fs::path& target, const std::string& dir) {
  std::error_code ec;
  const bool had_old = fs::exists(target);
#ifdef RENAME_EXCHANGE
  if (had_old) {
    if (::renameat2(AT_FDCWD, tmp.c_str(), AT_FDCWD, target.c_str(), RENAME_EXCHANGE) == 0) {
      fs::remove_all(tmp, ec);
      return;
    }
    if (errno != EINVAL && errno != ENOSYS && errno != ENOTSUP) {
      const std::string why = std::strerror(errno);
      fs::remove_all(tmp, ec);
      throw IOError(fmt::format("cannot replace {}: {}", dir, why));
    }
  }
#endif
  const fs::path old = target.string() + fmt::format(".old-{}", ::getpid());
  fs::remove_all(old, ec);  // a leftover of an earlier process with this pid
  if (had_old) {
    fs::rename(target, old, ec);
    if (ec) {
      const std::string why = ec.message();
      fs::remove_all(tmp, ec);
      throw IOError(fmt::format("cannot replace {}: {}", dir, why));
    }
  }
  fs::rename(tmp, target, ec);
  if (ec) {
    const std::string why = ec.message();
    if (had_old) fs::rename(old, target, ec);
    fs::remove_all(tmp, ec);
    throw IOError(fmt::format("cannot move a new {} into place: {}", dir, why));
  }
  if (had_old) fs::remove_all(old, ec);
}

// "<target>.tmp-<pid>", empty: where a new version of `target` is assembled.
fs::path fresh_tmp(const fs::path& target) {
  const fs::path tmp = target.string() + fmt::format(".tmp-{}", ::getpid());
  std::error_code ec;
  fs::remove_all(tmp, ec);
  return tmp;
}

}  // namespace

void save_checkpoint(const std::string& dir, const Seq2Seq& model, const data::Vocab& src_vocab,
                     const data::Vocab& tgt_vocab, const TrainingState* training) {
  // Normalised, so that "x/" writes its temporary "x.tmp-<pid>" beside x, not inside it.
  const fs::path target = normalize_dir(dir);
  const fs::path tmp = fresh_tmp(target);
  std::error_code ec;
  try {
    fs::create_directories(tmp);
    io::save_safetensors((tmp / "model.safetensors").string(), model.named_parameters(),
                         {{"format", "attn-seq2seq"}, {"attention", attention_name(model.config().attention)}});
    io::write_file_atomic((tmp / "config.json").string(), model.config().to_json().dump(2) + "\n");
    src_vocab.save((tmp / "src.vocab").string());
    tgt_vocab.save((tmp / "tgt.vocab").string());
    if (training) {
      io::save_safetensors((tmp / "optimizer.safetensors").string(), training->optimizer);
      io::write_file_atomic((tmp / "trainer.json").string(), training->trainer.dump(2) + "\n");
    }
  } catch (const fs::filesystem_error& e) {
    fs::remove_all(tmp, ec);
    throw IOError(fmt::format("cannot write checkpoint {}: {}", dir, e.what()));
  } catch (...) {
    fs::remove_all(tmp, ec);
    throw;
  }
  install_dir(tmp, target, fmt::format("checkpoint {}", dir));
}

void copy_model_dir(const std::string& from, const std::string& to) {
  const fs::path target = normalize_dir(to);
  const fs::path tmp = fresh_tmp(target);
  std::error_code ec;
  fs::copy(normalize_dir(from), tmp, fs::copy_options::recursive, ec);
  if (ec) {
    const std::string why = ec.message();
    fs::remove_all(tmp, ec);
    throw IOError(fmt::format("cannot copy {} to {}: {}", from, to, why));
  }
  install_dir(tmp, target, to);
}

namespace {

// The first element of a float tensor loaded from a file (CPU) that is NaN or infinite, or -1.
int64_t first_non_finite(const Tensor& loaded) {
  if (loaded.dtype() != DType::Float32 && loaded.dtype() != DType::Float64) return -1;
  const Tensor t = loaded.contiguous();
  return dispatch_float(t.dtype(), "load_checkpoint", [&](auto tag) -> int64_t {
    using T = decltype(tag);
    const T* p = t.data<T>();
    for (int64_t i = 0; i < t.numel(); ++i)
      if (!std::isfinite(p[i])) return i;
    return -1;
  });
}

}  // namespace

LoadedModel load_checkpoint(const std::string& dir, Device device, bool training_state) {
  const fs::path root(dir);
  if (!fs::is_directory(root)) {
    // OUT/best appears with the first validation (after an epoch, with --valid): a run stopped
    // before it has its model in OUT/checkpoint only
    fs::path norm = root.lexically_normal();
    if (norm.filename().empty()) norm = norm.parent_path();  // "OUT/best/"
    const fs::path sibling = norm.parent_path() / "checkpoint";
    const bool best = norm.filename() == "best";
    throw IOError(fmt::format("{}: not a model directory{}", dir,
                              best && fs::is_directory(sibling)
                                  ? fmt::format(" (a run writes best/ at its first validation, after an epoch with "
                                                "--valid; {} holds this run's latest model)",
                                                sibling.string())
                                  : ""));
  }
  LoadedModel out;
  const std::string config_path = (root / "config.json").string();
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(io::read_file(config_path));
  } catch (const nlohmann::json::exception& e) {
    throw IOError(fmt::format("{}: invalid JSON: {}", config_path, e.what()));
  }
  out.config = ModelConfig::from_json(j, config_path);
  out.src_vocab = data::Vocab::load((root / "src.vocab").string());
  out.tgt_vocab = data::Vocab::load((root / "tgt.vocab").string());
  ATTN_CHECK(out.src_vocab.size() == out.config.src_vocab_size && out.tgt_vocab.size() == out.config.tgt_vocab_size,
             IOError, "{}: the vocabularies have {} and {} entries but config.json says {} and {}", dir,
             out.src_vocab.size(), out.tgt_vocab.size(), out.config.src_vocab_size, out.config.tgt_vocab_size);
  const std::string weights_path = (root / "model.safetensors").string();
  io::SafetensorsFile file = io::load_safetensors(weights_path);
  check_config_against_weights(out.config, file, weights_path);
  out.gen = std::make_unique<Generator>(0);
  out.model = std::make_unique<Seq2Seq>(out.config, *out.gen);
  std::map<std::string, Tensor> stored(file.tensors.begin(), file.tensors.end());
  {
    NoGradGuard g;
    for (auto& [name, p] : out.model->named_parameters()) {
      auto it = stored.find(name);
      ATTN_CHECK(it != stored.end(), IOError, "{}: tensor '{}' is missing (config.json describes a {} model)",
                 weights_path, name, attention_name(out.config.attention));
      ATTN_CHECK(it->second.shape() == p.shape() && it->second.dtype() == p.dtype(), IOError,
                 "{}: tensor '{}' is {} {} but config.json implies {} {}", weights_path, name, it->second.dtype(),
                 it->second.shape(), p.dtype(), p.shape());
      // NaN or inf weights (a run that diverged, a damaged file) translate to empty lines and
      // evaluate to a NaN loss without a word: refused, naming the tensor
      const int64_t bad = first_non_finite(it->second);
      ATTN_CHECK(bad < 0, IOError, "{}: tensor '{}' holds NaN or infinite values (element {} is {})", weights_path, name,
                 bad, bad < 0 ? 0.0 : it->second.contiguous().reshape(Shape{-1}).select(0, bad).item<double>());
      Tensor slot = p;
      slot.copy_(it->second);
      stored.erase(it);
    }
  }
  ATTN_CHECK(stored.empty(), IOError, "{}: unexpected tensor '{}' (config.json describes a {} model)", weights_path,
             stored.empty() ? "" : stored.begin()->first, attention_name(out.config.attention));
  out.model->to(device);
  out.model->eval();
  if (training_state && fs::exists(root / "trainer.json")) {
    TrainingState ts;
    const std::string trainer_path = (root / "trainer.json").string();
    try {
      ts.trainer = nlohmann::json::parse(io::read_file(trainer_path));
    } catch (const nlohmann::json::exception& e) {
      throw IOError(fmt::format("{}: invalid JSON: {}", trainer_path, e.what()));
    }
    ATTN_CHECK(ts.trainer.is_object(), IOError, "{}: not a JSON object", trainer_path);
    // The training state is the two files together: without the optimizer's half a resume would
    // silently restart Adam from zero.
    const std::string optimizer_path = (root / "optimizer.safetensors").string();
    ATTN_CHECK(fs::exists(optimizer_path), IOError,
               "{}: trainer.json is there but optimizer.safetensors is missing (an incomplete training checkpoint)",
               dir);
    ts.optimizer = io::load_safetensors(optimizer_path).tensors;
    out.training = std::move(ts);
  }
  return out;
}

}  // namespace attn::models
