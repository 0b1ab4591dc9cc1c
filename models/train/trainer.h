// `attn train`: training a translator end to end.
//
// Data from tab-separated files, tokenized (models/data/tokenizer.h), vocabularies built from
// the training side, sentences longer than max_len tokens dropped, length-bucketed batches in a
// seeded order. Adam with gradient-norm clipping; teacher forcing drawn per sentence with the
// given probability (from its own seeded generator). After every epoch: loss and BLEU on the
// validation file, the best model kept in OUT/best, early stopping after `patience` epochs
// without a better BLEU. The full training state (model, optimizer, generators, position in the
// data) goes to OUT/checkpoint after every epoch, when max_steps or time_limit stops training,
// and on SIGINT / SIGTERM (a stop on an epoch's last batch first finishes the epoch: validation,
// best model); --resume continues from it exactly (bitwise on the CPU with the same number of
// threads; another count warns), on the same training data (checked by a fingerprint of the
// encoded examples: ValueError otherwise). max_len filters the training pairs only: the
// validation loss covers every pair, as `attn eval` does. Validation sources longer than the
// model accepts are left out (counted in the log); the options are checked before anything is
// read (ValueError).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace attn::train {

struct TrainOptions {
  std::string train_path, valid_path, out_dir, resume_dir;
  std::string attention = "concat";
  int64_t hidden = 256, layers = 1;
  bool bidirectional = false, input_feeding = false;
  int64_t batch = 64, epochs = 10, max_steps = 0;  // max_steps 0: no limit
  // With resume_dir: a run continues with its checkpoint's options except the limits: max_steps,
  // time_limit (0: none) and, when epochs_given (set by `attn train` when --epochs is on the
  // command line), epochs.
  bool epochs_given = false;
  // The options named on the command line (long names, no dashes; set by `attn train`). With
  // resume_dir, naming one that a resume cannot change (anything that shapes the model, the data
  // or the optimization) is an error instead of being ignored; --train and --valid give the data
  // files' new paths (the run stores them absolute), --patience a new early-stopping limit.
  std::vector<std::string> given;
  double lr = 1e-3, dropout = 0.1, teacher_forcing = 0.5, clip = 1.0, label_smoothing = 0.0;
  uint64_t seed = 1;
  std::string device = "auto";
  int64_t min_freq = 2, max_vocab = 0, max_len = 50, max_train = 0;  // max_train 0: all pairs
  int64_t patience = 3, log_every = 100, valid_max = 0;               // valid_max 0: all sentences
  double time_limit = 0.0;  // wall-clock seconds from the start of train() (data, validation included), 0: none
  bool skip_bad_lines = false, profile = false, quiet = false;

  nlohmann::json to_json() const;
  static TrainOptions from_json(const nlohmann::json& j);
};

struct TrainResult {
  int64_t steps = 0, epochs_done = 0;
  double best_bleu = -1.0, last_valid_loss = 0.0, last_valid_bleu = -1.0;
  double train_tokens_per_s = 0.0, train_seconds = 0.0;
  bool interrupted = false;  // stopped by SIGINT / SIGTERM (then `signal` says which)
  int signal = 0;
  std::string checkpoint_dir, best_dir;
  nlohmann::json profile;  // stage -> seconds, when --profile
};

TrainResult train(const TrainOptions& options);

}  // namespace attn::train
