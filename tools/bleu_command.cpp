// `attn bleu`: corpus BLEU of a hypothesis file against reference files (sacreBLEU's default
// settings), or against every target of each source of a TSV test set.
#include <fmt/core.h>

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "models/data/tsv.h"
#include "models/eval/bleu.h"
#include "tools/commands.h"

namespace attn::cli {

void add_bleu_command(CLI::App& app) {
  auto* cmd = app.add_subcommand(
      "bleu",
      "Corpus BLEU (sacreBLEU conventions: 13a tokenizer, exp smoothing, closest reference length) of a hypothesis "
      "file, one sentence a line");
  struct Args {
    std::string hyp, tsv, smooth = "exp";
    std::vector<std::string> refs;
    bool lowercase = false, json = false, skip_empty_refs = false, score_only = false;
  };
  static Args a;
  cmd->add_option("--hyp", a.hyp, "Hypotheses, one a line (UTF-8)")->required();
  auto* ref = cmd->add_option("--ref", a.refs, "A reference file, line i for hypothesis i; repeat for more references");
  auto* tsv = cmd->add_option("--tsv", a.tsv,
                              "Instead of --ref: a source<TAB>target test set; hypothesis i translates the i-th "
                              "distinct source, all of its targets are references");
  ref->excludes(tsv);
  cmd->add_flag("--lowercase,-l", a.lowercase, "Case-insensitive BLEU");
  cmd->add_option("--smooth", a.smooth, "exp | none | floor | add-k")
      ->check(CLI::IsMember({"exp", "none", "floor", "add-k"}))
      ->capture_default_str();
  cmd->add_flag("--skip-empty-refs", a.skip_empty_refs,
                "An empty line in a --ref file means 'no reference' (a variable number of references per line)");
  cmd->add_flag("--json", a.json, "Print the result as JSON, with full precision");
  cmd->add_flag("--score-only,-b", a.score_only, "Print the score only");
  cmd->callback([] {
    ATTN_CHECK(!a.refs.empty() || !a.tsv.empty(), ValueError, "bleu: give --ref FILE (one or more) or --tsv FILE");
    const std::vector<std::string> hyps = data::read_lines(a.hyp);
    ATTN_CHECK(!hyps.empty(), ValueError, "bleu: {} has no lines: no test set to score", a.hyp);
    std::vector<std::vector<std::string>> refs(hyps.size());
    if (!a.tsv.empty()) {
      const eval::GroupedRefs g = eval::group_by_source(data::load_pairs(a.tsv).pairs);
      ATTN_CHECK(g.refs.size() == hyps.size(), ValueError,
                 "bleu: {} has {} lines but {} has {} distinct sources", a.hyp, hyps.size(), a.tsv, g.refs.size());
      refs = g.refs;
    } else {
      for (const std::string& path : a.refs) {
        const std::vector<std::string> lines = data::read_lines(path);
        ATTN_CHECK(lines.size() == hyps.size(), ValueError, "bleu: {} has {} lines but {} has {}", a.hyp, hyps.size(),
                   path, lines.size());
        for (size_t i = 0; i < lines.size(); ++i)
          if (!(a.skip_empty_refs && lines[i].empty())) refs[i].push_back(lines[i]);
      }
      for (size_t i = 0; i < refs.size(); ++i)
        ATTN_CHECK(!refs[i].empty(), ValueError, "bleu: line {} has no (non-empty) reference", i + 1);
    }
    eval::BleuOptions opt;
    opt.lowercase = a.lowercase;
    if (a.smooth == "none") opt.smoothing = eval::Smoothing::None;
    else if (a.smooth == "floor") opt.smoothing = eval::Smoothing::Floor;
    else if (a.smooth == "add-k") opt.smoothing = eval::Smoothing::AddK;
    const eval::BleuResult r = eval::corpus_bleu(hyps, refs, opt);
    if (a.json) {
      nlohmann::json j = {{"name", "BLEU"},
                          {"score", r.score},
                          {"precisions", {r.precisions[0], r.precisions[1], r.precisions[2], r.precisions[3]}},
                          {"bp", r.bp},
                          {"sys_len", r.sys_len},
                          {"ref_len", r.ref_len},
                          {"counts", {r.correct[0], r.correct[1], r.correct[2], r.correct[3]}},
                          {"totals", {r.total[0], r.total[1], r.total[2], r.total[3]}},
                          {"signature", r.signature}};
      fmt::print("{}\n", j.dump());
    } else if (a.score_only) {
      fmt::print("{:.2f}\n", r.score);
    } else {
      fmt::print("{}\n{}\n", r.format(), r.signature);
    }
  });
}

}  // namespace attn::cli
