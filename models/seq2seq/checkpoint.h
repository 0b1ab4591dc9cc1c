// Checkpoints: one directory holding everything needed to rebuild and continue a model:
//   model.safetensors   the parameters, PyTorch names (see model.h)
//   config.json         the model config (ModelConfig::to_json)
//   src.vocab tgt.vocab the vocabularies (models/data/vocab.h format)
//   optimizer.safetensors, trainer.json   training state (optional: present in `checkpoint/`
//                       directories written during training, absent in exported models)
// The directory is written under a temporary name and renamed into place, so a crash leaves
// either the old checkpoint or the new one, never a mix. Loading checks that config.json and the
// tensors agree (every parameter present with its shape, nothing unknown; the sizes that fix the
// model's memory, hidden, layers and vocabularies, are compared with the tensor shapes before the
// model is built) and names the file and the tensor when they do not. A directory with
// trainer.json must also hold optimizer.safetensors.
#pragma once

#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "models/data/vocab.h"
#include "models/seq2seq/model.h"

namespace attn::models {

struct TrainingState {
  nlohmann::json trainer;                                  // step, epoch, RNG states, ...
  std::vector<std::pair<std::string, Tensor>> optimizer;   // Optimizer::state()
};

// `dir` made absolute and lexically normal, without a trailing separator ("run/checkpoint/" and
// "./run/checkpoint" both become "<cwd>/run/checkpoint").
std::filesystem::path normalize_dir(const std::string& dir);

void save_checkpoint(const std::string& dir, const Seq2Seq& model, const data::Vocab& src_vocab,
                     const data::Vocab& tgt_vocab, const TrainingState* training = nullptr);

// A model directory copied whole to `to`, replacing what is there the way save_checkpoint does
// (a resumed run's best model, when it continues in another output directory).
void copy_model_dir(const std::string& from, const std::string& to);

struct LoadedModel {
  ModelConfig config;
  data::Vocab src_vocab, tgt_vocab;
  std::unique_ptr<Generator> gen;  // the model's dropout generator (restore its state when resuming)
  std::unique_ptr<Seq2Seq> model;  // in eval mode, on `device`
  std::optional<TrainingState> training;
};

// With `training_state` false (translate, eval, demo) a checkpoint's optimizer.safetensors and
// trainer.json are not read: a damaged training half does not keep its intact model from use.
LoadedModel load_checkpoint(const std::string& dir, Device device = kCPU, bool training_state = true);

}  // namespace attn::models
