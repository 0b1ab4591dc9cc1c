// `attn demo`: the main job end to end, with no download, in a few minutes on a laptop-class
// CPU: train a Luong concat translator, show translations, a BLEU (or accuracy) figure and an
// attention heatmap.
//   Data: Tatoeba English-German when found ($ATTN_DATA, data/tatoeba-en-de, data/,
//   ../shared/data/tatoeba-en-de, or the same places relative to the binary); otherwise a task
//   generated in code, dates written in words turned into ISO dates, where the alignment of
//   words to digits is plain to see in the heatmap.
#include <fmt/core.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>

#include "models/data/tokenizer.h"
#include "models/data/tsv.h"
#include "models/eval/bleu.h"
#include "models/seq2seq/checkpoint.h"
#include "models/seq2seq/translator.h"
#include "models/tasks/dates.h"
#include "models/train/trainer.h"
#include "models/viz/heatmap.h"
#include "tools/commands.h"

namespace attn::cli {

namespace fs = std::filesystem;

namespace {

bool has_tatoeba(const fs::path& dir) {
  return fs::exists(dir / "train.tsv") && fs::exists(dir / "valid.tsv") && fs::exists(dir / "test.tsv");
}

std::string find_tatoeba() {
  std::vector<fs::path> candidates;
  if (const char* env = std::getenv("ATTN_DATA")) {
    candidates.emplace_back(env);
    candidates.emplace_back(fs::path(env) / "tatoeba-en-de");
  }
  std::vector<fs::path> bases = {fs::current_path()};
  std::error_code ec;
  const fs::path exe = fs::canonical("/proc/self/exe", ec);
  if (!ec) bases.push_back(exe.parent_path().parent_path());  // <repo>/build/attn -> <repo>
  for (const fs::path& b : bases) {
    for (const char* rel : {"data/tatoeba-en-de", "data", "../shared/data/tatoeba-en-de", "shared/data/tatoeba-en-de"})
      candidates.push_back(b / rel);
  }
  for (const fs::path& c : candidates)
    if (has_tatoeba(c)) return fs::weakly_canonical(c).string();
  return {};
}

}  // namespace

void add_demo_command(CLI::App& app) {
  static std::string out_dir = "attn-demo", device = "auto", data_dir;
  static double time_limit = 120.0;
  static int64_t hidden = 0;
  static bool synthetic = false;
  auto* c = app.add_subcommand("demo", "Train and show a translator end to end (no download needed)");
  c->add_option("--out", out_dir, "Output directory (model, heatmap, log)")->capture_default_str();
  c->add_option("--time-limit", time_limit, "Seconds of training")->check(positive())->capture_default_str();
  c->add_option("--device", device, "auto | cpu | cuda")->capture_default_str();
  c->add_option("--data", data_dir, "A folder with train.tsv, valid.tsv, test.tsv (default: search for Tatoeba)");
  c->add_option("--hidden", hidden, "Hidden size (default: 256 for Tatoeba, 128 for the date task)");
  c->add_flag("--synthetic", synthetic, "Use the generated date task even when Tatoeba is present");
  c->callback([] {
    const auto t0 = std::chrono::steady_clock::now();
    fs::create_directories(out_dir);
    std::string data = data_dir.empty() && !synthetic ? find_tatoeba() : data_dir;
    const bool dates = data.empty();
    train::TrainOptions o;
    o.out_dir = (fs::path(out_dir) / "run").string();
    o.device = device;
    o.attention = "concat";
    o.time_limit = time_limit;
    o.epochs = 1000;
    o.patience = 1000;
    o.log_every = 100;
    o.seed = 1;
    std::vector<data::Pair> samples;
    std::string test_path;
    if (dates) {
      fmt::print("No Tatoeba data found: training on a generated task (English dates -> ISO dates).\n");
      std::vector<tasks::Pair> all = tasks::generate_dates(12000, 7);
      std::vector<tasks::Pair> train(all.begin(), all.begin() + 11000), valid(all.begin() + 11000, all.begin() + 11500),
          test(all.begin() + 11500, all.end());
      const fs::path dir = fs::path(out_dir) / "dates";
      fs::create_directories(dir);
      tasks::write_tsv(train, (dir / "train.tsv").string());
      tasks::write_tsv(valid, (dir / "valid.tsv").string());
      tasks::write_tsv(test, (dir / "test.tsv").string());
      o.train_path = (dir / "train.tsv").string();
      o.valid_path = (dir / "valid.tsv").string();
      test_path = (dir / "test.tsv").string();
      o.hidden = hidden ? hidden : 128;
      o.min_freq = 1;
      o.dropout = 0.0;
      o.teacher_forcing = 1.0;
      o.valid_max = 200;
    } else {
      fmt::print("Training on Tatoeba English-German from {}\n", data);
      o.train_path = (fs::path(data) / "train.tsv").string();
      o.valid_path = (fs::path(data) / "valid.tsv").string();
      test_path = (fs::path(data) / "test.tsv").string();
      o.hidden = hidden ? hidden : 256;
      o.valid_max = 300;
    }
    // the demo's own run of an earlier call is replaced without the trainer's warning
    std::error_code ec;
    fs::remove_all(o.out_dir, ec);
    // the test set is read before the minutes of training, not after
    data::LoadResult test = data::load_pairs(test_path);
    ATTN_CHECK(!test.pairs.empty(), ValueError, "{}: no sentence pairs to test the model on", test_path);
    fmt::print("Luong attention (concat score), hidden {}, {} seconds of training on {}. Ctrl-C stops early and keeps the model.\n",
               o.hidden, time_limit, resolve_device(device));
    train::TrainResult r = train::train(o);
    // The model of the last step: the run is short, it is also the best one.
    models::LoadedModel m = models::load_checkpoint(r.checkpoint_dir, resolve_device(device), /*training_state=*/false);
    eval::GroupedRefs g = eval::group_by_source(test.pairs);
    const size_t n_eval = std::min<size_t>(g.sources.size(), 300);
    std::vector<std::string> sources(g.sources.begin(), g.sources.begin() + static_cast<std::ptrdiff_t>(n_eval));
    models::Translator tr(*m.model, m.src_vocab, m.tgt_vocab);
    std::vector<models::Translation> out = tr.translate(sources, {.beam = 1, .keep_attention = true}, 64);
    fmt::print("\nSample translations (test set):\n");
    for (size_t i = 0; i < std::min<size_t>(8, out.size()); ++i) {
      const size_t k = i * (out.size() / 8 + 1) % out.size();
      fmt::print("  {}\n    -> {}\n    (reference: {})\n", out[k].source, out[k].outputs[0], g.refs[k][0]);
    }
    if (dates) {
      int64_t exact = 0;
      for (size_t i = 0; i < out.size(); ++i) {
        const std::string ref = data::detokenize(data::tokenize(g.refs[i][0]));
        exact += out[i].outputs[0] == ref;
      }
      fmt::print("\nExact-match accuracy on {} test dates: {:.1f}%\n", out.size(), 100.0 * static_cast<double>(exact) / static_cast<double>(out.size()));
    } else {
      std::vector<std::string> hyps;
      std::vector<std::vector<std::string>> refs;
      for (size_t i = 0; i < out.size(); ++i) {
        hyps.push_back(out[i].outputs[0]);
        std::vector<std::string> rs;
        for (const auto& ref : g.refs[i]) rs.push_back(data::detokenize(data::tokenize(ref)));
        refs.push_back(rs);
      }
      eval::BleuResult b = eval::corpus_bleu(hyps, refs, {.lowercase = true});
      fmt::print("\nBLEU on {} test sentences: {:.2f}  ({})\n", out.size(), b.score, b.signature);
    }
    // The heatmap of one longer example.
    // (among the decoded ones: a source without a token has no hypothesis)
    size_t pick = out.size();
    for (size_t i = 0; i < out.size(); ++i) {
      if (out[i].hypotheses.empty() || out[i].source_tokens.size() > 12) continue;
      if (pick == out.size() || out[i].source_tokens.size() > out[pick].source_tokens.size()) pick = i;
    }
    if (pick == out.size())
      for (size_t i = 0; i < out.size() && pick == out.size(); ++i)
        if (!out[i].hypotheses.empty()) pick = i;
    const std::string svg = (fs::path(out_dir) / "heatmap.svg").string();
    if (pick < out.size()) {
      viz::Alignment a{out[pick].source_tokens, out[pick].output_tokens[0], out[pick].hypotheses[0].attention};
      viz::write_svg(svg, a, out[pick].source + "  →  " + out[pick].outputs[0]);
      fmt::print("\nAttention of \"{}\" -> \"{}\":\n{}\n", out[pick].source, out[pick].outputs[0],
                 viz::text_heatmap(a, ::isatty(STDOUT_FILENO) == 1));
      fmt::print("Heatmap written to {}\n", fs::absolute(svg).string());
    }
    const double total = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    // Absolute paths, this binary's included: scripts/demo.sh runs from the repository's root,
    // and a hint relative to it did not run from where the user stands.
    std::error_code self_ec;
    const fs::path self = fs::read_symlink("/proc/self/exe", self_ec);
    const std::string model = fs::absolute(r.checkpoint_dir).string();
    fmt::print("Model in {} (try: {} translate --model '{}' \"{}\")\nDone in {:.0f} s.\n", model,
               self_ec ? std::string("attn") : self.string(), model,
               dates ? "the first of may two thousand and one" : "I like tea.", total);
  });
}

}  // namespace attn::cli
