#include "models/train/trainer.h"

#include <omp.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <limits>
#include <memory>
#include <set>

#include "core/caching_allocator.h"
#include "core/io/json_integer.h"
#include "core/optim/optimizer.h"
#include "core/profiler.h"
#include "kernels/backend.h"
#include "models/data/batching.h"
#include "models/data/tokenizer.h"
#include "models/eval/bleu.h"
#include "models/seq2seq/checkpoint.h"
#include "models/seq2seq/translator.h"

namespace attn::train {

namespace fs = std::filesystem;
using models::Seq2Seq;

// ------------------------------------------------------------------ options

nlohmann::json TrainOptions::to_json() const {
  return {{"train", train_path}, {"valid", valid_path}, {"attention", attention}, {"hidden", hidden},
          {"layers", layers}, {"bidirectional", bidirectional}, {"input_feeding", input_feeding}, {"batch", batch},
          {"epochs", epochs}, {"max_steps", max_steps}, {"lr", lr}, {"dropout", dropout},
          {"teacher_forcing", teacher_forcing}, {"clip", clip}, {"label_smoothing", label_smoothing}, {"seed", seed},
          {"min_freq", min_freq}, {"max_vocab", max_vocab}, {"max_len", max_len}, {"max_train", max_train},
          {"patience", patience}, {"valid_max", valid_max}, {"skip_bad_lines", skip_bad_lines}};
}

TrainOptions TrainOptions::from_json(const nlohmann::json& j) {
  TrainOptions o;
  o.train_path = j.at("train");
  o.valid_path = j.at("valid");
  o.attention = j.at("attention");
  o.hidden = io::json_integer<int64_t>(j, "hidden");
  o.layers = io::json_integer<int64_t>(j, "layers");
  o.bidirectional = j.at("bidirectional");
  o.input_feeding = j.at("input_feeding");
  o.batch = io::json_integer<int64_t>(j, "batch");
  o.epochs = io::json_integer<int64_t>(j, "epochs");
  o.max_steps = io::json_integer<int64_t>(j, "max_steps");
  o.lr = j.at("lr");
  o.dropout = j.at("dropout");
  o.teacher_forcing = j.at("teacher_forcing");
  o.clip = j.at("clip");
  o.label_smoothing = j.at("label_smoothing");
  o.seed = io::json_integer<uint64_t>(j, "seed");
  o.min_freq = io::json_integer<int64_t>(j, "min_freq");
  o.max_vocab = io::json_integer<int64_t>(j, "max_vocab");
  o.max_len = io::json_integer<int64_t>(j, "max_len");
  o.max_train = io::json_integer<int64_t>(j, "max_train");
  o.patience = io::json_integer<int64_t>(j, "patience");
  o.valid_max = io::json_integer<int64_t>(j, "valid_max");
  o.skip_bad_lines = j.at("skip_bad_lines");
  return o;  // (a missing or mistyped key: nlohmann::json::exception, wrapped by the caller)
}

namespace {

volatile std::sig_atomic_t g_stop = 0;
extern "C" void on_signal(int sig) { g_stop = sig; }  // the signal, for the exit status (128 + it)

// Installs SIGINT / SIGTERM handlers for the lifetime of a training run.
class SignalScope {
 public:
  SignalScope() {
    g_stop = 0;
    old_int_ = std::signal(SIGINT, on_signal);
    old_term_ = std::signal(SIGTERM, on_signal);
  }
  ~SignalScope() {
    std::signal(SIGINT, old_int_);
    std::signal(SIGTERM, old_term_);
  }

 private:
  void (*old_int_)(int);
  void (*old_term_)(int);
};

// Progress and log lines: a rewritten line on a terminal, plain lines in a pipe; every line
// also goes to OUT/train.log.
class Reporter {
 public:
  Reporter(const std::string& log_path, bool quiet) : quiet_(quiet), tty_(::isatty(STDOUT_FILENO) == 1) {
    log_.open(log_path, std::ios::app);
    // the first write into the output directory: a read-only one fails here, before any training
    ATTN_CHECK(log_.is_open(), IOError, "cannot write {}: {}", log_path, std::strerror(errno));
  }
  void line(const std::string& s) {
    if (!quiet_) {
      if (progress_shown_) std::fputs("\r\033[K", stdout);
      std::fputs((s + "\n").c_str(), stdout);
      std::fflush(stdout);
      progress_shown_ = false;
    }
    log_ << s << "\n";
    log_.flush();
  }
  // A progress update: rewritten in place on a terminal; in a pipe only every `every` calls.
  void progress(const std::string& s, bool log_it) {
    if (tty_ && !quiet_) {
      std::fputs(("\r\033[K" + s).c_str(), stdout);
      std::fflush(stdout);
      progress_shown_ = true;
      if (log_it) log_ << s << "\n";
    } else if (log_it) {
      line(s);
    }
  }
  bool tty() const { return tty_; }
  // A line for the log file alone.
  void log_only(const std::string& s) {
    log_ << s << "\n";
    log_.flush();
  }

 private:
  bool quiet_, tty_, progress_shown_ = false;
  std::ofstream log_;
};

std::vector<data::Pair> load(const std::string& path, bool skip_bad, int64_t max_pairs, Reporter& rep) {
  data::LoadResult r = data::load_pairs(path, {.skip_bad_lines = skip_bad});
  if (r.skipped) rep.line(data::skipped_lines_warning(path, r));
  if (max_pairs > 0 && static_cast<int64_t>(r.pairs.size()) > max_pairs) r.pairs.resize(static_cast<size_t>(max_pairs));
  ATTN_CHECK(!r.pairs.empty(), ValueError, "{}: no sentence pairs", path);
  return r.pairs;
}

std::vector<std::vector<std::string>> tokenize_side(const std::vector<data::Pair>& pairs, bool source) {
  std::vector<std::vector<std::string>> out;
  out.reserve(pairs.size());
  for (const auto& p : pairs) out.push_back(data::tokenize(source ? p.src : p.tgt));
  return out;
}

nlohmann::json gen_state(const Generator& g) { return {{"seed", g.seed()}, {"offset", g.offset()}}; }

std::string format_duration(double s) {
  const int64_t t = static_cast<int64_t>(s);
  return t >= 3600 ? fmt::format("{}h{:02}m", t / 3600, (t / 60) % 60) : fmt::format("{}m{:02}s", t / 60, t % 60);
}

struct Validation {
  double loss = 0.0, bleu = 0.0;
  std::string signature;
};

// The options a run cannot start with, checked before any data is read or any step is taken:
// among them every value the model config refuses to load (models::ModelConfig::from_json), so a
// run never writes a checkpoint that cannot be read back.
void check_options(const TrainOptions& o) {
  auto in = [](double v, double lo, double hi) { return std::isfinite(v) && v >= lo && v <= hi; };
  ATTN_CHECK(!o.out_dir.empty(), ValueError, "train: --out DIR is required");
  ATTN_CHECK(in(o.dropout, 0.0, 1.0) && o.dropout < 1.0, ValueError, "train: --dropout must be in [0, 1), got {}",
             o.dropout);
  ATTN_CHECK(in(o.teacher_forcing, 0.0, 1.0), ValueError, "train: --teacher-forcing must be in [0, 1], got {}",
             o.teacher_forcing);
  ATTN_CHECK(in(o.label_smoothing, 0.0, 1.0) && o.label_smoothing < 1.0, ValueError,
             "train: --label-smoothing must be in [0, 1), got {}", o.label_smoothing);
  ATTN_CHECK(o.hidden > 0, ValueError, "train: --hidden must be positive, got {}", o.hidden);
  ATTN_CHECK(o.layers > 0, ValueError, "train: --layers must be positive, got {}", o.layers);
  ATTN_CHECK(o.batch > 0, ValueError, "train: --batch must be positive, got {}", o.batch);
  ATTN_CHECK(o.max_len > 0, ValueError, "train: --max-len must be positive, got {}", o.max_len);
  ATTN_CHECK(o.epochs > 0, ValueError, "train: --epochs must be positive, got {}", o.epochs);
  ATTN_CHECK(o.patience > 0, ValueError, "train: --patience must be positive, got {}", o.patience);
  ATTN_CHECK(o.min_freq > 0, ValueError, "train: --min-freq must be positive, got {}", o.min_freq);
  ATTN_CHECK(o.max_vocab == 0 || o.max_vocab > 4, ValueError,
             "train: --max-vocab must be 0 (no limit) or more than the 4 special tokens, got {}", o.max_vocab);
  ATTN_CHECK(o.max_steps >= 0 && o.max_vocab >= 0 && o.max_train >= 0 && o.valid_max >= 0, ValueError,
             "train: --max-steps ({}), --max-vocab ({}), --max-train ({}) and --valid-max ({}) must be >= 0 (0: no limit)",
             o.max_steps, o.max_vocab, o.max_train, o.valid_max);
  // Counts past int32 are never meant and overflowed later arithmetic (a --batch of 2^63-1 made
  // the batcher's chunk negative: a crash; 2^62 made it 0: an endless loop).
  constexpr int64_t kMaxOption = std::numeric_limits<int32_t>::max();
  for (const auto& [flag, value] : {std::pair<const char*, int64_t>{"--hidden", o.hidden}, {"--layers", o.layers},
                                    {"--batch", o.batch}, {"--max-len", o.max_len}, {"--epochs", o.epochs},
                                    {"--patience", o.patience}, {"--min-freq", o.min_freq}, {"--max-vocab", o.max_vocab},
                                    {"--max-steps", o.max_steps}, {"--max-train", o.max_train},
                                    {"--valid-max", o.valid_max}, {"--log-every", o.log_every}})
    ATTN_CHECK(value <= kMaxOption, ValueError, "train: {} must be at most {}, got {}", flag, kMaxOption, value);
  ATTN_CHECK(std::isfinite(o.lr) && o.lr > 0, ValueError, "train: --lr must be positive, got {}", o.lr);
  ATTN_CHECK(std::isfinite(o.clip) && o.clip >= 0, ValueError, "train: --clip must be >= 0 (0: off), got {}", o.clip);
  ATTN_CHECK(std::isfinite(o.time_limit) && o.time_limit >= 0, ValueError,
             "train: --time-limit must be >= 0 (0: no limit), got {}", o.time_limit);
  // Bahdanau's decoder feeds the context to its LSTM anyway; the flag did nothing there but was
  // recorded in the config (a resumed run of that kind keeps going: its model is the same).
  ATTN_CHECK(!o.input_feeding || !o.resume_dir.empty() || models::parse_attention(o.attention) != models::AttentionKind::Bahdanau,
             ValueError,
             "train: --input-feeding is for Luong attention (dot, general, concat); the Bahdanau decoder always feeds "
             "the context to its LSTM");
}

// trainer.json of a checkpoint, read in one place: a missing or mistyped key is an IOError
// naming the file, not a bare JSON exception halfway through setting up the run.
struct ResumeState {
  TrainOptions options;
  int64_t epoch = 0, batch_in_epoch = 0, step = 0, bad_epochs = 0;
  double best_bleu = -1.0;
  uint64_t model_seed = 0, model_offset = 0, tf_seed = 0, tf_offset = 0;
  std::optional<nlohmann::json> data;  // the training data's fingerprint (absent in older checkpoints)
  int64_t threads = 0;                 // CPU threads of the run (0: not recorded)
};

// CPU threads of this process: sums split over threads round differently with another count.
int64_t cpu_threads() { return omp_get_max_threads(); }

// What identifies the encoded training data: a resume on other data (another file, or the same
// file edited) would apply the saved epoch and batch position to another epoch order.
nlohmann::json data_fingerprint(const std::vector<data::Example>& examples, int64_t batches) {
  uint64_t h = 14695981039346656037ull;  // FNV-1a over the token ids, a separator after each side
  auto mix = [&h](uint64_t x) {
    for (int i = 0; i < 8; ++i) {
      h ^= (x >> (8 * i)) & 0xff;
      h *= 1099511628211ull;
    }
  };
  for (const data::Example& e : examples) {
    for (int64_t id : e.src) mix(static_cast<uint64_t>(id));
    mix(~uint64_t{0});
    for (int64_t id : e.tgt) mix(static_cast<uint64_t>(id));
    mix(~uint64_t{0});
  }
  return {{"examples", examples.size()}, {"batches", batches}, {"hash", fmt::format("{:016x}", h)}};
}

ResumeState read_resume_state(const nlohmann::json& j, const std::string& path) {
  ResumeState r;
  try {
    r.options = TrainOptions::from_json(j.at("options"));
    r.epoch = io::json_integer<int64_t>(j, "epoch");
    r.batch_in_epoch = io::json_integer<int64_t>(j, "batch_in_epoch");
    r.step = io::json_integer<int64_t>(j, "step");
    r.best_bleu = j.at("best_bleu").get<double>();
    r.bad_epochs = io::json_integer<int64_t>(j, "bad_epochs");
    r.model_seed = io::json_integer<uint64_t>(j.at("model_rng"), "seed");
    r.model_offset = io::json_integer<uint64_t>(j.at("model_rng"), "offset");
    r.tf_seed = io::json_integer<uint64_t>(j.at("tf_rng"), "seed");
    r.tf_offset = io::json_integer<uint64_t>(j.at("tf_rng"), "offset");
    if (j.contains("data")) {
      r.data = j.at("data");
      (void)io::json_integer<int64_t>(*r.data, "examples");
      (void)io::json_integer<int64_t>(*r.data, "batches");
      (void)r.data->at("hash").get<std::string>();
    }
    if (j.contains("threads")) r.threads = io::json_integer<int64_t>(j, "threads");
  } catch (const nlohmann::json::exception& e) {
    throw IOError(fmt::format("{}: a missing or mistyped entry: {}", path, e.what()));
  } catch (const ValueError& e) {
    throw IOError(fmt::format("{}: a mistyped entry: {}", path, e.what()));
  }
  // counters the run goes on incrementing: far below int64's end
  constexpr int64_t kMaxCount = int64_t{1} << 62;
  auto in_range = [&](int64_t v) { return v >= 0 && v < kMaxCount; };
  ATTN_CHECK(in_range(r.epoch) && in_range(r.batch_in_epoch) && in_range(r.step) && in_range(r.bad_epochs), IOError,
             "{}: epoch ({}), batch_in_epoch ({}), step ({}) and bad_epochs ({}) must be in [0, 2^62)", path, r.epoch,
             r.batch_in_epoch, r.step, r.bad_epochs);
  return r;
}

}  // namespace

// The run itself, once the options are checked and OUT/train.log is open: data, model, the
// training loop, validation and checkpoints. An error here is also written to the log.
static TrainResult run_training(TrainOptions& opt, std::optional<models::LoadedModel>& resumed, const ResumeState& rs,
                                Device device, Reporter& rep, const std::function<double()>& elapsed) {
  if (!resumed) {
    // A new run in the directory of an earlier one: its checkpoint is replaced at the first save,
    // and its best model, of another model and vocabulary, must not pass for this run's.
    const fs::path old_best = fs::path(opt.out_dir) / "best", old_checkpoint = fs::path(opt.out_dir) / "checkpoint";
    if (fs::exists(old_best) || fs::exists(old_checkpoint)) {
      rep.line(fmt::format("warning: {} holds an earlier run; this new run replaces its checkpoint and best model "
                           "(--resume {} would have continued it)",
                           opt.out_dir, old_checkpoint.string()));
      std::error_code ec;
      fs::remove_all(old_best, ec);
    }
  }

  // ---- data and vocabularies
  std::vector<data::Pair> train_pairs = load(opt.train_path, opt.skip_bad_lines, opt.max_train, rep);
  std::vector<data::Pair> valid_pairs;
  if (!opt.valid_path.empty()) valid_pairs = load(opt.valid_path, opt.skip_bad_lines, 0, rep);
  data::Vocab src_vocab, tgt_vocab;
  if (resumed) {
    src_vocab = resumed->src_vocab;
    tgt_vocab = resumed->tgt_vocab;
  } else {
    src_vocab = data::Vocab::build(tokenize_side(train_pairs, true), opt.min_freq, opt.max_vocab);
    tgt_vocab = data::Vocab::build(tokenize_side(train_pairs, false), opt.min_freq, opt.max_vocab);
    // The model config needs a token besides the 4 specials on each side (ModelConfig::from_json).
    ATTN_CHECK(src_vocab.size() > 4 && tgt_vocab.size() > 4, ValueError,
               "{}: no {} token occurs at least --min-freq {} times (the vocabularies have {} and {} entries, "
               "the 4 special tokens included)",
               opt.train_path, src_vocab.size() > 4 ? "target" : "source", opt.min_freq, src_vocab.size(),
               tgt_vocab.size());
  }
  data::EncodeStats stats;
  std::vector<data::Example> examples = data::encode_pairs(train_pairs, src_vocab, tgt_vocab, opt.max_len, &stats);
  ATTN_CHECK(!examples.empty(), ValueError, "{}: no pair is at most {} tokens long", opt.train_path, opt.max_len);
  data::Batcher batcher(examples, {.batch_size = opt.batch, .seed = opt.seed});
  const nlohmann::json fingerprint = data_fingerprint(examples, batcher.num_batches());
  if (resumed && rs.data) {
    ATTN_CHECK(*rs.data == fingerprint, ValueError,
               "{}: not the training data of the checkpoint {} ({} examples in {} batches, hash {}; the checkpoint's: "
               "{} examples in {} batches, hash {}): the saved position in the epoch would continue another run; "
               "resume with the run's own training file",
               opt.train_path, opt.resume_dir, fingerprint["examples"].get<int64_t>(),
               fingerprint["batches"].get<int64_t>(), fingerprint["hash"].get<std::string>(),
               rs.data->at("examples").get<int64_t>(), rs.data->at("batches").get<int64_t>(),
               rs.data->at("hash").get<std::string>());
  }
  ATTN_CHECK(!resumed || rs.batch_in_epoch <= batcher.num_batches(), IOError,
             "{}: batch_in_epoch {} is past the end of an epoch of {} batches", opt.resume_dir, rs.batch_in_epoch,
             batcher.num_batches());
  // ---- model, optimizer, generators
  models::ModelConfig cfg;
  std::unique_ptr<Generator> model_gen;
  std::unique_ptr<Seq2Seq> model;
  if (resumed) {
    cfg = resumed->config;
    model_gen = std::move(resumed->gen);
    model = std::move(resumed->model);
    model_gen->set_state(rs.model_seed, rs.model_offset);
  } else {
    cfg.attention = models::parse_attention(opt.attention);
    cfg.hidden = opt.hidden;
    cfg.layers = opt.layers;
    cfg.bidirectional = opt.bidirectional;
    cfg.dropout = opt.dropout;
    cfg.input_feeding = opt.input_feeding;
    cfg.src_vocab_size = src_vocab.size();
    cfg.tgt_vocab_size = tgt_vocab.size();
    cfg.max_src_len = std::max<int64_t>(2 * opt.max_len, 100);
    model_gen = std::make_unique<Generator>(opt.seed);
    model = std::make_unique<Seq2Seq>(cfg, *model_gen);
  }
  // Validation sources the model cannot take (longer than max_src_len with </s>) are left out,
  // counted in the log: one over-long sentence must not end the run at its first validation.
  int64_t valid_too_long = 0;
  std::erase_if(valid_pairs, [&](const data::Pair& p) {
    const bool too_long = static_cast<int64_t>(data::tokenize(p.src).size()) + 1 > cfg.max_src_len;
    valid_too_long += too_long;
    return too_long;
  });
  if (valid_too_long)
    rep.line(fmt::format("warning: {}: skipped {} validation sentence(s) longer than {} tokens (the model's limit, "
                         "with </s>)",
                         opt.valid_path, valid_too_long, cfg.max_src_len));
  // The validation loss covers every pair, as `attn eval` does: --max-len filters the training
  // data only (a validation set filtered by it was scored on its short pairs alone, and on none
  // at all, silently, when every pair was longer).
  std::vector<data::Example> valid_examples = data::encode_pairs(valid_pairs, src_vocab, tgt_vocab, 0);
  if (!opt.valid_path.empty() && valid_examples.empty())
    rep.line(fmt::format("warning: {}: no usable validation pair: no validation, best model or early stopping in "
                         "this run",
                         opt.valid_path));
  eval::GroupedRefs valid_refs = eval::group_by_source(valid_pairs);
  if (opt.valid_max > 0 && static_cast<int64_t>(valid_refs.sources.size()) > opt.valid_max) {
    valid_refs.sources.resize(static_cast<size_t>(opt.valid_max));
    valid_refs.refs.resize(static_cast<size_t>(opt.valid_max));
    valid_refs.lines.resize(static_cast<size_t>(opt.valid_max));
  }
  // The output is lowercased by the tokenizer: BLEU compares with lowercased references.
  for (auto& refs : valid_refs.refs)
    for (auto& r : refs) r = data::detokenize(data::tokenize(r));
  model->to(device);
  model->train();
  optim::Adam adam(model->parameters(), {.lr = opt.lr});
  Generator tf_gen(opt.seed ^ 0x7eac4e7ULL);
  int64_t epoch = 0, batch_in_epoch = 0, step = 0, bad_epochs = 0;
  double best_bleu = -1.0;
  if (resumed) {
    const std::string optimizer_path = (fs::path(opt.resume_dir) / "optimizer.safetensors").string();
    std::vector<std::pair<std::string, Tensor>> os;
    for (auto& [n, t] : resumed->training->optimizer) os.emplace_back(n, t.to(device));
    ATTN_CHECK(rs.step == 0 || !os.empty(), IOError, "{}: no optimizer state, but trainer.json is at step {}",
               optimizer_path, rs.step);
    try {
      adam.load_state(os);
    } catch (const Error& e) {
      throw IOError(fmt::format("{}: {}", optimizer_path, e.what()));
    }
    tf_gen.set_state(rs.tf_seed, rs.tf_offset);
    epoch = rs.epoch;
    batch_in_epoch = rs.batch_in_epoch;
    step = rs.step;
    best_bleu = rs.best_bleu;
    bad_epochs = rs.bad_epochs;
    rep.line(fmt::format("resumed from {} at step {} (epoch {}, batch {})", opt.resume_dir, step, epoch + 1, batch_in_epoch));
    if (rs.threads > 0 && rs.threads != cpu_threads())
      rep.line(fmt::format("warning: the run used {} CPU threads and this resume {}: it continues the same training, "
                           "but not bitwise (sums split over threads round differently); OMP_NUM_THREADS={} would",
                           rs.threads, cpu_threads(), rs.threads));
  } else {
    rep.line(fmt::format("data: {} training pairs ({} kept at most {} tokens), {} validation pairs; vocab {} / {} "
                         "(unknown tokens {:.2f}% / {:.2f}%)",
                         train_pairs.size(), examples.size(), opt.max_len, valid_pairs.size(), src_vocab.size(),
                         tgt_vocab.size(), 100.0 * stats.src_unknown / std::max<int64_t>(stats.src_tokens, 1),
                         100.0 * stats.tgt_unknown / std::max<int64_t>(stats.tgt_tokens, 1)));
  }
  rep.line(fmt::format("model: {} attention, hidden {}, layers {}{}, {} parameters, on {}", models::attention_name(cfg.attention),
                       cfg.hidden, cfg.layers, cfg.bidirectional ? ", bidirectional encoder" : "", model->num_parameters(),
                       device));
  if (opt.profile) {
    Profiler::instance().reset();
    Profiler::instance().enable(device);
    allocator_for(device).reset_peak();  // the peak reported is the training's
  }

  TrainResult result;
  result.checkpoint_dir = (fs::path(opt.out_dir) / "checkpoint").string();
  result.best_dir = (fs::path(opt.out_dir) / "best").string();
  auto save_state = [&] {
    models::TrainingState ts;
    ts.trainer = {{"options", opt.to_json()}, {"epoch", epoch}, {"batch_in_epoch", batch_in_epoch}, {"step", step},
                  {"best_bleu", best_bleu}, {"bad_epochs", bad_epochs}, {"model_rng", gen_state(*model_gen)},
                  {"tf_rng", gen_state(tf_gen)}, {"data", fingerprint}, {"threads", cpu_threads()}};
    ts.optimizer = adam.state();
    models::save_checkpoint(result.checkpoint_dir, *model, src_vocab, tgt_vocab, &ts);
  };
  auto validate = [&]() -> Validation {
    ProfilerPause no_profile;  // --profile reports the training steps only
    Validation v;
    model->eval();
    v.loss = models::evaluate_loss(*model, valid_examples, opt.batch).loss;
    models::Translator tr(*model, src_vocab, tgt_vocab);
    std::vector<std::string> hyps;
    for (auto& t : tr.translate(valid_refs.sources, {.beam = 1, .keep_attention = false}, opt.batch)) hyps.push_back(t.outputs[0]);
    eval::BleuResult b = eval::corpus_bleu(hyps, valid_refs.refs, {.lowercase = true});
    v.bleu = b.score;
    v.signature = b.signature;
    model->train();
    return v;
  };

  if (resumed) {
    // Continuing in another directory: the run's best model so far goes along, so that OUT/best
    // is the best of the whole run (it is only rewritten when validation improves on it).
    const fs::path old_best = fs::path(opt.resume_dir).parent_path() / "best";
    if (best_bleu >= 0 && fs::is_directory(old_best) && models::normalize_dir(result.best_dir) != models::normalize_dir(old_best.string()))
      models::copy_model_dir(old_best.string(), result.best_dir);
    // A run that already reached its end trains nothing more (a resume of a finished run used
    // to take one more step, or a whole epoch after early stopping, and overwrite the checkpoint).
    const char* finished = opt.max_steps > 0 && step >= opt.max_steps ? "--max-steps"
                           : epoch >= opt.epochs                    ? "--epochs"
                           : !valid_examples.empty() && bad_epochs >= opt.patience ? "early stopping (--patience)"
                                                                                    : nullptr;
    if (finished) {
      rep.line(fmt::format("nothing to train: the run is at step {} (epoch {}), where {} ends it; raise the limit to "
                           "continue",
                           step, epoch + 1, finished));
      result.steps = step;
      result.epochs_done = epoch;
      result.best_bleu = best_bleu;
      result.checkpoint_dir = opt.resume_dir;
      return result;
    }
  }

  SignalScope signals;
  const int64_t first_step = step;  // a resumed run counts its own steps in the summary
  const int64_t batches_per_epoch = batcher.num_batches();
  double window_loss = 0.0, train_time = 0.0;
  int64_t window_tokens = 0, total_tokens = 0, window_steps = 0;
  auto window_start = std::chrono::steady_clock::now();
  bool stop = false;
  const char* stop_reason = "";
  // Whether the run ends now (a signal, --max-steps as the caller says, --time-limit): sets
  // stop, its reason and the signal. Checked after every step and after each epoch's validation.
  auto check_stop = [&](bool out_of_steps) {
    const bool out_of_time = opt.time_limit > 0 && elapsed() >= opt.time_limit;
    if (!g_stop && !out_of_steps && !out_of_time) return false;
    stop = true;
    result.interrupted = g_stop != 0;
    result.signal = static_cast<int>(g_stop);
    stop_reason = g_stop ? "interrupted" : out_of_steps ? "reached --max-steps" : "reached --time-limit";
    return true;
  };
  for (; epoch < opt.epochs && !stop; ++epoch) {
    const std::vector<std::vector<int64_t>> plan = batcher.epoch_plan(epoch);
    for (; batch_in_epoch < static_cast<int64_t>(plan.size()); ++batch_in_epoch) {
      const auto t0 = std::chrono::steady_clock::now();
      data::Batch b = batcher.make_batch(plan[static_cast<size_t>(batch_in_epoch)]);
      const std::vector<float> coins = uniform(Shape{b.size()}, 0.0, 1.0, tf_gen).to_vector<float>();
      std::vector<bool> force;
      for (float u : coins) force.push_back(u < opt.teacher_forcing);
      adam.zero_grad();
      Seq2Seq::Loss l = model->loss(b.src.to(device), b.src_len.to(device), b.tgt_in.to(device), b.tgt_out.to(device),
                                    b.tgt_len.to(device), force, opt.label_smoothing);
      Tensor mean_loss = l.total / static_cast<double>(std::max<int64_t>(l.tokens, 1));
      {
        PROFILE_STAGE("backward");
        mean_loss.backward();
      }
      const double loss_value = mean_loss.item<double>();
      {
        PROFILE_STAGE("optimizer");
        double grad_norm = 0.0;
        const double clip = opt.clip > 0 ? optim::clip_coefficient(model->parameters(), opt.clip, &grad_norm) : 1.0;
        // A loss or gradient that is not finite would make every weight NaN at this update, and
        // the run would go on saving them (PyTorch trains on silently; Marian stops): stop before
        // it, the weights untouched, the checkpoints written so far kept. The gradient norm is
        // known only with --clip (an infinite norm gives a clip factor of 0, and inf * 0 is NaN);
        // with --clip 0 the loss alone is checked.
        ATTN_CHECK(std::isfinite(loss_value) && std::isfinite(grad_norm), ValueError,
                   "train: training diverged at step {} (epoch {}, batch {} of {}): the {} is {}; the weights were not "
                   "updated and the checkpoints written so far are kept ({}); a lower --lr or a --clip may help",
                   step + 1, epoch + 1, batch_in_epoch + 1, batches_per_epoch,
                   std::isfinite(loss_value) ? "gradient norm" : "loss", std::isfinite(loss_value) ? grad_norm : loss_value,
                   opt.out_dir);
        adam.step(clip);
      }
      const double dt = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      ++step;
      train_time += dt;
      window_loss += loss_value * static_cast<double>(l.tokens);
      window_tokens += l.tokens;
      total_tokens += l.tokens;
      ++window_steps;
      const bool log_it = step % std::max<int64_t>(opt.log_every, 1) == 0;
      if (log_it || rep.tty()) {
        const double wsec = std::chrono::duration<double>(std::chrono::steady_clock::now() - window_start).count();
        const int64_t left_in_run = opt.max_steps ? opt.max_steps - step
                                                  : (opt.epochs - epoch) * batches_per_epoch - batch_in_epoch - 1;
        const double per_step = train_time / static_cast<double>(std::max<int64_t>(window_steps, 1));
        double eta = per_step * static_cast<double>(std::max<int64_t>(left_in_run, 0));
        if (opt.time_limit > 0) eta = std::min(eta, std::max(0.0, opt.time_limit - elapsed()));  // stops there
        rep.progress(fmt::format("epoch {} step {} ({}/{}) loss {:.4f} | {:.0f} tok/s | ETA {}", epoch + 1, step,
                                 batch_in_epoch + 1, batches_per_epoch, window_loss / std::max<int64_t>(window_tokens, 1),
                                 static_cast<double>(window_tokens) / std::max(wsec, 1e-9),
                                 format_duration(eta)),
                     log_it);
        if (log_it) {
          window_loss = 0.0;
          window_tokens = 0;
          window_start = std::chrono::steady_clock::now();
        }
      }
      if (check_stop(opt.max_steps > 0 && step >= opt.max_steps)) {
        ++batch_in_epoch;  // this batch is done: a resume starts with the next one
        // On the epoch's last batch the epoch is finished first (validation, best model, the
        // checkpoint of "start of the next epoch"), so a resume never skips its validation.
        if (batch_in_epoch < static_cast<int64_t>(plan.size())) {
          save_state();
          rep.line(fmt::format("{} at step {}: saved {}", stop_reason, step, result.checkpoint_dir));
        }
        break;
      }
    }
    if (batch_in_epoch < static_cast<int64_t>(plan.size())) break;  // stopped mid-epoch (saved above)
    batch_in_epoch = 0;
    // ---- end of epoch: validation, best model, early stopping, checkpoint
    Validation v;
    if (!valid_examples.empty()) {
      v = validate();
      result.last_valid_loss = v.loss;
      result.last_valid_bleu = v.bleu;
      const bool better = v.bleu > best_bleu;
      if (better) {
        best_bleu = v.bleu;
        bad_epochs = 0;
        models::save_checkpoint(result.best_dir, *model, src_vocab, tgt_vocab);
      } else {
        ++bad_epochs;
      }
      rep.line(fmt::format("epoch {} done: step {}, valid loss {:.4f}, valid BLEU {:.2f}{} ({})", epoch + 1, step, v.loss,
                           v.bleu, better ? " (best, saved)" : "", v.signature));
    }
    const int64_t finished_epoch = epoch;
    ++epoch;  // the state saved is "start of the next epoch"
    save_state();
    --epoch;
    // The time limit or a signal may have come during the validation: stop here, with the
    // checkpoint just saved (the next epoch's first step used to run past the limit).
    if (stop || check_stop(false)) {
      rep.line(fmt::format("{} at step {} (end of epoch {}): saved {}", stop_reason, step, finished_epoch + 1,
                           result.checkpoint_dir));
      epoch = finished_epoch + 1;
      break;
    }
    if (!valid_examples.empty() && bad_epochs >= opt.patience) {
      rep.line(fmt::format("early stopping: no better validation BLEU for {} epoch(s)", bad_epochs));
      epoch = finished_epoch + 1;
      break;
    }
  }
  result.steps = step;
  result.epochs_done = epoch;
  result.best_bleu = best_bleu;
  result.train_seconds = train_time;
  result.train_tokens_per_s = static_cast<double>(total_tokens) / std::max(train_time, 1e-9);
  const int64_t session_steps = step - first_step;
  const std::string steps_done =
      first_step == 0      ? fmt::format("{} step{}", step, step == 1 ? "" : "s")
      : session_steps == 0 ? fmt::format("no step this session (at step {})", step)
                           : fmt::format("{} step{} this session (steps {}-{})", session_steps,
                                         session_steps == 1 ? "" : "s", first_step + 1, step);
  rep.line(fmt::format("trained {} in {} ({:.0f} target tokens/s); checkpoint {}{}", steps_done, format_duration(train_time),
                       result.train_tokens_per_s, result.checkpoint_dir,
                       best_bleu >= 0 ? fmt::format(", best model {} (valid BLEU {:.2f})", result.best_dir, best_bleu) : ""));
  if (opt.profile) {
    // Shares of the training steps' wall time (validation and checkpoints are outside it and
    // not profiled); "other" is the step time no stage covers (batches, copies to the device,
    // the loss value, gathers of the classifier's rows).
    nlohmann::json prof;
    double staged = 0.0;
    for (const auto& [name, v] : Profiler::instance().totals()) staged += v.first;
    const double total = std::max(train_time, 1e-12), other = std::max(0.0, train_time - staged);
    rep.line(fmt::format("profile (time per stage over the {} training steps, {:.3f} s):", step - first_step, train_time));
    for (const auto& [name, v] : Profiler::instance().totals()) {
      prof[name] = v.first;
      rep.line(fmt::format("  {:<16} {:>9.3f} s  {:5.1f}%  ({} calls)", name, v.first, 100.0 * v.first / total, v.second));
      // The parts of a stage, largest first (the backward by autograd node).
      auto it = Profiler::instance().details().find(name);
      if (it == Profiler::instance().details().end()) continue;
      std::vector<std::pair<std::string, std::pair<double, int64_t>>> parts(it->second.begin(), it->second.end());
      std::sort(parts.begin(), parts.end(), [](const auto& a, const auto& b) { return a.second.first > b.second.first; });
      for (const auto& [part, pv] : parts) {
        prof[name + "/" + part] = pv.first;
        rep.line(fmt::format("    {:<26} {:>9.3f} s  {:5.1f}%  ({} calls)", part, pv.first, 100.0 * pv.first / total, pv.second));
      }
    }
    prof["other"] = other;
    prof["steps_total"] = train_time;
    rep.line(fmt::format("  {:<16} {:>9.3f} s  {:5.1f}%  (outside the stages: batches, device copies, loss value)", "other",
                         other, 100.0 * other / total));
    // Memory of the training device: the peak since the model was built (validation included).
    const AllocatorStats mem = allocator_for(device).stats();
    prof["memory_peak_bytes"] = mem.peak;
    prof["memory_reserved_bytes"] = mem.reserved;
    rep.line(fmt::format("memory on {}: {}", device, format_stats(mem)));
    result.profile = prof;
    Profiler::instance().disable();
  }
  return result;
}

TrainResult train(const TrainOptions& cli) {
  const auto t_start = std::chrono::steady_clock::now();
  auto elapsed = [&] { return std::chrono::duration<double>(std::chrono::steady_clock::now() - t_start).count(); };
  TrainOptions opt = cli;
  std::optional<models::LoadedModel> resumed;
  ResumeState rs;
  if (!cli.resume_dir.empty()) {
    // Absolute, normal, without a trailing separator: "run/checkpoint/" and a bare "checkpoint"
    // both continue in the directory that holds the checkpoint.
    const fs::path resume_dir = models::normalize_dir(cli.resume_dir);
    resumed = models::load_checkpoint(resume_dir.string(), kCPU);
    ATTN_CHECK(resumed->training.has_value(), IOError, "{}: no training state to resume (trainer.json is missing)",
               cli.resume_dir);
    rs = read_resume_state(resumed->training->trainer, (resume_dir / "trainer.json").string());
    // Continue with the run's own options; the command line may extend the limits, move the data
    // files and change the early-stopping patience. Anything else it names is an error: ignoring
    // it silently would train something other than what was asked.
    static const std::set<std::string> kResumable = {"resume", "out", "max-steps", "time-limit", "epochs", "device",
                                                     "profile", "quiet", "log-every", "train", "valid", "patience"};
    std::string fixed;
    for (const std::string& name : cli.given)
      if (!kResumable.count(name)) fixed += (fixed.empty() ? "--" : ", --") + name;
    ATTN_CHECK(fixed.empty(), ValueError,
               "train --resume: {} cannot change on a resume, which continues with the options stored in {} (for "
               "an exact continuation); leave them out, or start a new run",
               fixed, (resume_dir / "trainer.json").string());
    auto given = [&](const char* name) { return std::find(cli.given.begin(), cli.given.end(), name) != cli.given.end(); };
    opt = rs.options;
    if (given("train")) opt.train_path = cli.train_path;
    if (given("valid")) opt.valid_path = cli.valid_path;
    if (given("patience")) opt.patience = cli.patience;
    opt.resume_dir = resume_dir.string();
    opt.out_dir = cli.out_dir.empty() ? resume_dir.parent_path().string() : cli.out_dir;
    opt.max_steps = cli.max_steps;  // the limits are the new command line's (0: none)
    if (cli.epochs_given) opt.epochs = cli.epochs;
    opt.time_limit = cli.time_limit;
    opt.device = cli.device;
    opt.profile = cli.profile;
    opt.quiet = cli.quiet;
    opt.log_every = cli.log_every;
  }
  check_options(opt);
  // Data paths absolute, as trainer.json stores them: a resume from another directory finds them.
  for (std::string* path : {&opt.train_path, &opt.valid_path})
    if (!path->empty()) *path = fs::absolute(*path).lexically_normal().string();
  // The device first: a bad --device must not leave an output directory behind.
  Device device = kCPU;
  try {
    device = opt.device == "auto" ? (kernels::has_backend(DeviceType::CUDA) ? kCUDA : kCPU) : Device::parse(opt.device);
  } catch (const Error& e) {
    throw ValueError(fmt::format("train: --device {}: {}", opt.device, e.what()));
  }
  ATTN_CHECK(kernels::has_backend(device.type), ValueError, "train: --device {}: {}", opt.device,
             kernels::backend_unavailable_reason(device.type));
  try {
    fs::create_directories(opt.out_dir);
  } catch (const fs::filesystem_error& e) {
    throw IOError(fmt::format("cannot create the output directory {}: {}", opt.out_dir, e.code().message()));
  }
  Reporter rep((fs::path(opt.out_dir) / "train.log").string(), opt.quiet);
  try {
    return run_training(opt, resumed, rs, device, rep, elapsed);
  } catch (const std::exception& e) {
    rep.log_only(fmt::format("error: {}", e.what()));  // (the command prints it on stderr)
    throw;
  }
}

}  // namespace attn::train
