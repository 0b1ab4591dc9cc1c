// `attn train`: see models/train/trainer.h.
#include <fmt/core.h>

#include <csignal>

#include "core/error.h"
#include "models/train/trainer.h"
#include "tools/commands.h"

namespace attn::cli {

void add_train_command(CLI::App& app) {
  static train::TrainOptions o;
  auto* c = app.add_subcommand("train", "Train an attention translator on tab-separated sentence pairs");
  c->add_option("--train", o.train_path, "Training pairs (source<TAB>target per line)");
  c->add_option("--valid", o.valid_path, "Validation pairs (loss and BLEU after every epoch)");
  c->add_option("--out", o.out_dir, "Output directory (checkpoint/, best/, train.log)");
  c->add_option("--resume", o.resume_dir, "Continue exactly from a checkpoint directory (OUT/checkpoint)");
  c->add_option("--attention", o.attention, "bahdanau | dot | general | concat")
      ->check(CLI::IsMember({"bahdanau", "dot", "general", "concat"}))
      ->capture_default_str();
  c->add_option("--hidden", o.hidden, "Hidden (and embedding) size")->capture_default_str();
  c->add_option("--layers", o.layers, "LSTM layers")->capture_default_str();
  c->add_flag("--bidirectional", o.bidirectional, "Bidirectional encoder (directions summed)");
  c->add_flag("--input-feeding", o.input_feeding, "Luong: feed the previous context to the decoder LSTM");
  c->add_option("--batch", o.batch, "Sentences per batch")->capture_default_str();
  CLI::Option* epochs = c->add_option("--epochs", o.epochs, "Epochs (with --resume: replaces the run's own)")
                            ->check(positive())
                            ->capture_default_str();
  c->add_option("--max-steps", o.max_steps, "Stop after this many optimizer steps (0: no limit)")->capture_default_str();
  c->add_option("--time-limit", o.time_limit, "Stop after this many seconds (0: no limit)")->capture_default_str();
  c->add_option("--lr", o.lr, "Adam learning rate")->capture_default_str();
  c->add_option("--dropout", o.dropout, "Dropout on embeddings and between LSTM layers")->capture_default_str();
  c->add_option("--teacher-forcing", o.teacher_forcing, "Probability, per sentence, of feeding the reference")->capture_default_str();
  c->add_option("--clip", o.clip, "Gradient-norm clipping (0: off)")->capture_default_str();
  c->add_option("--label-smoothing", o.label_smoothing, "Label smoothing of the loss")->capture_default_str();
  c->add_option("--seed", o.seed, "Seed of every random choice (init, dropout, data order, teacher forcing)")
      ->check(CLI::NonNegativeNumber)  // a uint64: "-1" would wrap to 2^64 - 1 silently
      ->capture_default_str();
  c->add_option("--device", o.device, "auto | cpu | cuda")->capture_default_str();
  c->add_option("--min-freq", o.min_freq, "Minimum token frequency for the vocabularies")->capture_default_str();
  c->add_option("--max-vocab", o.max_vocab, "Maximum vocabulary size (0: no limit)")->capture_default_str();
  c->add_option("--max-len", o.max_len, "Drop training pairs longer than this many tokens")->capture_default_str();
  c->add_option("--max-train", o.max_train, "Use only the first N training pairs (0: all)")->capture_default_str();
  c->add_option("--patience", o.patience, "Early stopping: epochs without a better validation BLEU")->capture_default_str();
  c->add_option("--valid-max", o.valid_max, "Validation BLEU on at most N sentences (0: all)")->capture_default_str();
  c->add_option("--log-every", o.log_every, "Log a line every N steps")->check(positive())->capture_default_str();
  c->add_flag("--skip-bad-lines", o.skip_bad_lines, "Skip malformed lines with a warning instead of failing");
  c->add_flag("--profile", o.profile, "Report the time per stage (encoder, attention, decoder cell, ...)");
  c->add_flag("--quiet", o.quiet, "Only the log file");
  c->callback([c, epochs] {
    o.epochs_given = epochs->count() > 0;  // even when it equals the default
    o.given.clear();
    for (const CLI::Option* opt : c->get_options())
      if (opt->count() > 0 && !opt->get_lnames().empty()) o.given.push_back(opt->get_lnames().front());
    if (o.resume_dir.empty()) {
      ATTN_CHECK(!o.train_path.empty(), ValueError, "train: --train FILE is required (or --resume DIR)");
      ATTN_CHECK(!o.out_dir.empty(), ValueError, "train: --out DIR is required");
    }
    train::TrainResult r = train::train(o);
    if (r.interrupted) throw ExitCode(128 + (r.signal > 0 ? r.signal : SIGINT));  // 130 for SIGINT, 143 for SIGTERM
  });
}

}  // namespace attn::cli
