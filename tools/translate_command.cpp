// `attn translate --model DIR [SENTENCE ...]`: sentences from the arguments, --input FILE or
// stdin (one per line); greedy or beam search; n-best lists; attention as a terminal heatmap,
// an SVG heatmap or JSON lines.
#include <fmt/core.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <iostream>
#include <iterator>

#include "core/io/atomic_file.h"
#include "models/data/tsv.h"
#include "models/seq2seq/checkpoint.h"
#include "models/seq2seq/translator.h"
#include "models/viz/heatmap.h"
#include "tools/commands.h"

namespace attn::cli {

namespace fs = std::filesystem;

namespace {

viz::Alignment alignment_of(const models::Translation& t, size_t hyp) {
  viz::Alignment a;
  a.source_tokens = t.source_tokens;
  a.output_tokens = t.output_tokens[hyp];
  a.weights = t.hypotheses[hyp].attention;
  return a;
}

// FILE.svg for one sentence; FILE-<n>.svg for sentence n of several.
std::string numbered(const std::string& path, size_t index, size_t count) {
  if (count == 1) return path;
  std::filesystem::path p(path);
  return (p.parent_path() / fmt::format("{}-{}{}", p.stem().string(), index + 1, p.extension().string())).string();
}

}  // namespace

void add_translate_command(CLI::App& app) {
  static std::string model_dir, input, heatmap, attention_out, device = "auto";
  static std::vector<std::string> sentences;
  static models::SearchOptions so;
  static int64_t batch = 64;
  static bool show_attention = false;
  auto* c = app.add_subcommand("translate", "Translate sentences with a trained model");
  c->add_option("--model", model_dir, "Model directory (OUT/best or OUT/checkpoint)")->required();
  c->add_option("sentences", sentences, "Sentences to translate (else --input FILE, else stdin)");
  c->add_option("--input", input, "A file with one sentence per line");
  c->add_option("--beam", so.beam, "Beam size (1: greedy)")->check(positive())->capture_default_str();
  // given at all (even 1), the output is the n-best format: scripts parse it whatever N is
  CLI::Option* n_best_option =
      c->add_option("--n-best", so.n_best, "Print the N best translations as LINE ||| text ||| score")->check(positive());
  c->add_option("--length-penalty", so.length_penalty, "Beam scores are log P / length^alpha")->capture_default_str();
  c->add_option("--max-len-ratio", so.max_len_ratio, "Output length limit: ratio * source length + 5")
      ->check(positive())
      ->capture_default_str();
  c->add_option("--batch", batch, "Sentences decoded together")->check(positive())->capture_default_str();
  c->add_option("--device", device, "auto | cpu | cuda")->capture_default_str();
  c->add_flag("--attention", show_attention, "Print the attention matrix as a text heatmap");
  c->add_option("--heatmap", heatmap, "Write an SVG heatmap (FILE.svg; FILE-<n>.svg for several sentences)");
  c->add_option("--attention-out", attention_out, "Write tokens and attention weights of every output as JSON lines (with its 1-based input line)");
  c->callback([n_best_option] {
    ATTN_CHECK(sentences.empty() || input.empty(), ValueError,
               "translate: sentences on the command line and --input {}: give one or the other", input);
    // output paths checked before decoding, not after the sentences are printed
    for (const auto& [flag, path] : {std::pair{"--heatmap", &heatmap}, std::pair{"--attention-out", &attention_out}}) {
      if (path->empty()) continue;
      const fs::path dir = fs::absolute(fs::path(*path)).parent_path();
      ATTN_CHECK(fs::is_directory(dir), IOError, "{} {}: the directory {} does not exist", flag, *path, dir.string());
    }
    const Device dev = resolve_device(device);
    models::LoadedModel m = models::load_checkpoint(model_dir, dev, /*training_state=*/false);
    std::vector<std::string> text = sentences, where;  // where: "FILE:LINE" of each sentence, for errors
    if (text.empty()) {  // --input FILE, else stdin, read alike (BOM, CRLF, a stray CR, invalid UTF-8)
      const std::string name = input.empty() ? "<stdin>" : input;
      text = input.empty() ? data::split_text_lines(std::string(std::istreambuf_iterator<char>(std::cin), {}), name)
                           : data::read_lines(input);
      for (size_t i = 0; i < text.size(); ++i) where.push_back(fmt::format("{}:{}", name, i + 1));
    }
    if (so.n_best > so.beam) so.beam = so.n_best;  // n best need at least n beams
    so.keep_attention = show_attention || !heatmap.empty() || !attention_out.empty();
    models::Translator tr(*m.model, m.src_vocab, m.tgt_vocab);
    std::vector<models::Translation> out = tr.translate(text, so, batch, where);
    int64_t unknown = 0;
    std::string jsonl;
    const bool color = ::isatty(STDOUT_FILENO) == 1;
    for (size_t i = 0; i < out.size(); ++i) {
      const models::Translation& t = out[i];
      unknown += t.unknown;
      if (n_best_option->count() > 0) {
        for (size_t h = 0; h < t.hypotheses.size(); ++h)
          fmt::print("{} ||| {} ||| {:.4f}\n", i + 1, t.outputs[h], t.hypotheses[h].score);
        // an empty line (not decoded) still has its entry: the empty translation, log-prob 0
        if (t.hypotheses.empty()) fmt::print("{} |||  ||| {:.4f}\n", i + 1, 0.0);
      } else {
        fmt::print("{}\n", t.outputs.empty() ? "" : t.outputs[0]);
      }
      if (t.hypotheses.empty()) continue;
      if (show_attention) fmt::print("{}\n", viz::text_heatmap(alignment_of(t, 0), color));
      if (!heatmap.empty()) viz::write_svg(numbered(heatmap, i, out.size()), alignment_of(t, 0), t.source + "  →  " + t.outputs[0]);
      if (!attention_out.empty())
        for (size_t h = 0; h < t.hypotheses.size(); ++h)
          jsonl += viz::alignment_jsonl(alignment_of(t, h), t.source, t.outputs[h], t.hypotheses[h].score,
                                         static_cast<int64_t>(i + 1));
    }
    if (!attention_out.empty()) io::write_file_atomic(attention_out, jsonl);
    if (unknown > 0) fmt::print(stderr, "note: {} unknown source word(s) mapped to <unk>\n", unknown);
  });
}

}  // namespace attn::cli
