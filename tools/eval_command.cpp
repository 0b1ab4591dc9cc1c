// `attn eval --model DIR --test FILE`: corpus BLEU (sacreBLEU's conventions: 13a tokenization,
// brevity penalty, 4-grams; every target of a repeated source is a reference), the test loss
// and the number of sentences.
#include <fmt/core.h>

#include "models/data/tokenizer.h"
#include "models/data/tsv.h"
#include "models/eval/bleu.h"
#include "models/seq2seq/checkpoint.h"
#include "models/seq2seq/translator.h"
#include "tools/commands.h"

namespace attn::cli {

void add_eval_command(CLI::App& app) {
  static std::string model_dir, test_path, device = "auto";
  static int64_t beam = 1, batch = 64;
  static bool skip_bad = false, cased = false;
  auto* c = app.add_subcommand("eval", "BLEU and loss of a trained model on a test file");
  c->add_option("--model", model_dir, "Model directory (OUT/best or OUT/checkpoint)")->required();
  c->add_option("--test", test_path, "Test pairs (source<TAB>target)")->required();
  c->add_option("--beam", beam, "Beam size (1: greedy)")->check(positive())->capture_default_str();
  c->add_option("--batch", batch, "Sentences per batch")->check(positive())->capture_default_str();
  c->add_option("--device", device, "auto | cpu | cuda")->capture_default_str();
  c->add_flag("--skip-bad-lines", skip_bad, "Skip malformed lines with a warning");
  c->add_flag("--cased", cased, "Case-sensitive BLEU against the raw references (the model writes lowercase)");
  c->callback([] {
    const Device dev = resolve_device(device);
    models::LoadedModel m = models::load_checkpoint(model_dir, dev, /*training_state=*/false);
    data::LoadResult test = data::load_pairs(test_path, {.skip_bad_lines = skip_bad});
    if (test.skipped) fmt::print(stderr, "{}\n", data::skipped_lines_warning(test_path, test));
    ATTN_CHECK(!test.pairs.empty(), ValueError, "{}: no sentence pairs to evaluate", test_path);
    eval::GroupedRefs g = eval::group_by_source(test.pairs);
    if (!cased)
      for (auto& rs : g.refs)
        for (auto& r : rs) r = data::detokenize(data::tokenize(r));
    models::Translator tr(*m.model, m.src_vocab, m.tgt_vocab);
    std::vector<std::string> hyps;
    int64_t unknown = 0;
    std::vector<std::string> where;  // "FILE:LINE" of each source, for errors
    for (int64_t line : g.lines) where.push_back(fmt::format("{}:{}", test_path, line));
    for (auto& t : tr.translate(g.sources, {.beam = beam, .keep_attention = false}, batch, where)) {
      hyps.push_back(t.outputs.empty() ? std::string() : t.outputs[0]);
      unknown += t.unknown;
    }
    eval::BleuResult b = eval::corpus_bleu(hyps, g.refs, {.lowercase = !cased});
    // Pairs whose source has no token (soft hyphens or control characters only)
    // are scored by BLEU (an empty output) but have no loss: counted and said.
    data::EncodeStats stats;
    std::vector<data::Example> ex = data::encode_pairs(test.pairs, m.src_vocab, m.tgt_vocab, 0, &stats);
    models::LossResult loss = models::evaluate_loss(*m.model, ex, batch);
    fmt::print("{}\n", b.format());
    fmt::print("signature: {}\n", b.signature);
    const std::string loss_text =
        loss.tokens > 0 ? fmt::format("{:.4f} per target token ({} tokens)", loss.loss, loss.tokens) : "n/a (no tokens)";
    const std::string left_out =
        stats.dropped > 0 ? fmt::format(" ({} with no source token, left out of the loss)", stats.dropped) : "";
    fmt::print("test loss {}, {} pairs{}, {} distinct sources, {} unknown source words\n", loss_text,
               test.pairs.size(), left_out, g.sources.size(), unknown);
  });
}

}  // namespace attn::cli
