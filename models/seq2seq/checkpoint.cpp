#include "models/seq2seq/checkpoint.h"

#include <unistd.h>

#include <filesystem>
#include <map>

#include "core/io/atomic_file.h"
#include "core/io/safetensors.h"

namespace attn::models {

namespace fs = std::filesystem;

void save_checkpoint(const std::string& dir, const Seq2Seq& model, const data::Vocab& src_vocab,
                     const data::Vocab& tgt_vocab, const TrainingState* training) {
  const fs::path target(dir);
  const fs::path tmp = target.string() + fmt::format(".tmp-{}", ::getpid());
  const fs::path old = target.string() + fmt::format(".old-{}", ::getpid());
  std::error_code ec;
  fs::remove_all(tmp, ec);
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
  // Swap the new directory in: the old one moves aside first and is removed last.
  const bool had_old = fs::exists(target);
  if (had_old) {
    fs::rename(target, old, ec);
    if (ec) throw IOError(fmt::format("cannot replace checkpoint {}: {}", dir, ec.message()));
  }
  fs::rename(tmp, target, ec);
  if (ec) {
    if (had_old) fs::rename(old, target);
    throw IOError(fmt::format("cannot move checkpoint into {}: {}", dir, ec.message()));
  }
  if (had_old) fs::remove_all(old, ec);
}

LoadedModel load_checkpoint(const std::string& dir, Device device) {
  const fs::path root(dir);
  ATTN_CHECK(fs::is_directory(root), IOError, "{}: not a model directory", dir);
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
      Tensor slot = p;
      slot.copy_(it->second);
      stored.erase(it);
    }
  }
  ATTN_CHECK(stored.empty(), IOError, "{}: unexpected tensor '{}' (config.json describes a {} model)", weights_path,
             stored.empty() ? "" : stored.begin()->first, attention_name(out.config.attention));
  out.model->to(device);
  out.model->eval();
  if (fs::exists(root / "trainer.json")) {
    TrainingState ts;
    try {
      ts.trainer = nlohmann::json::parse(io::read_file((root / "trainer.json").string()));
    } catch (const nlohmann::json::exception& e) {
      throw IOError(fmt::format("{}/trainer.json: invalid JSON: {}", dir, e.what()));
    }
    if (fs::exists(root / "optimizer.safetensors")) ts.optimizer = io::load_safetensors((root / "optimizer.safetensors").string()).tensors;
    out.training = std::move(ts);
  }
  return out;
}

}  // namespace attn::models
