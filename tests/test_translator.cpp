// The translator end to end: every decoder type overfits a 64-pair set, a saved model loads and
// translates identically, training resumes bitwise, beam 1 is greedy, bad checkpoints are clear
// errors, and the command line trains, translates and evaluates on a small file.
#include <gtest/gtest.h>

#include <limits>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <sys/wait.h>
#include <unistd.h>

#include "core/io/atomic_file.h"
#include "core/io/safetensors.h"
#include "kernels/backend.h"
#include "models/data/tokenizer.h"
#include "models/seq2seq/checkpoint.h"
#include "models/seq2seq/translator.h"
#include "models/tasks/dates.h"
#include "models/train/trainer.h"
#include "models/viz/heatmap.h"
#include "tests/data_test_util.h"
#include "tests/test_util.h"
#include "tests/shell_util.h"

namespace attn::test {
namespace {

namespace fs = std::filesystem;

// 64 date pairs (source words -> ISO digits), written as a TSV.
std::vector<tasks::Pair> write_dates(const std::string& path, int64_t n, uint64_t seed) {
  std::vector<tasks::Pair> pairs = tasks::generate_dates(n, seed);
  tasks::write_tsv(pairs, path);
  return pairs;
}

train::TrainOptions small_run(const std::string& train_path, const std::string& out, const std::string& attention) {
  train::TrainOptions o;
  o.train_path = train_path;
  o.out_dir = out;
  o.attention = attention;
  o.hidden = 64;
  o.batch = 16;
  o.lr = 0.01;
  o.dropout = 0.0;
  o.teacher_forcing = 1.0;
  o.min_freq = 1;
  o.epochs = 1000;
  o.quiet = true;
  o.device = "cpu";
  return o;
}

// A checkpoint trained for a few steps on 100 generated date pairs (the setup of the tests that
// need a model, not a good one): its folder.
std::string train_briefly(const TempDir& dir, uint64_t seed, const std::string& attention, int64_t steps,
                          int64_t hidden = 64) {
  write_dates(dir / "train.tsv", 100, seed);
  train::TrainOptions o = small_run(dir / "train.tsv", dir / "run", attention);
  o.hidden = hidden;
  o.max_steps = steps;
  return train::train(o).checkpoint_dir;
}

double exact_match(const models::LoadedModel& m, const std::vector<tasks::Pair>& pairs) {
  std::vector<std::string> src;
  for (const auto& p : pairs) src.push_back(p.src);
  models::Translator tr(*m.model, m.src_vocab, m.tgt_vocab);
  std::vector<models::Translation> out = tr.translate(src, {.beam = 1, .keep_attention = false});
  int64_t hits = 0;
  for (size_t i = 0; i < pairs.size(); ++i) hits += out[i].outputs[0] == data::detokenize(data::tokenize(pairs[i].tgt));
  return static_cast<double>(hits) / static_cast<double>(pairs.size());
}

class Overfit : public ::testing::TestWithParam<std::pair<std::string, bool>> {};

TEST_P(Overfit, LearnsSixtyFourPairs) {
  const auto [attention, input_feeding] = GetParam();
  TempDir dir;
  const std::vector<tasks::Pair> pairs = write_dates(dir / "train.tsv", 64, 3);
  train::TrainOptions o = small_run(dir / "train.tsv", dir / "run", attention);
  o.input_feeding = input_feeding;
  o.max_steps = 400;
  train::TrainResult r = train::train(o);
  models::LoadedModel m = models::load_checkpoint(r.checkpoint_dir);
  const double acc = exact_match(m, pairs);
  EXPECT_GE(acc, 0.95) << attention << (input_feeding ? " + input feeding" : "") << ": " << acc * 100 << "% after "
                       << r.steps << " steps";
}

INSTANTIATE_TEST_SUITE_P(Decoders, Overfit,
                         ::testing::Values(std::pair{std::string("bahdanau"), false}, std::pair{std::string("dot"), false},
                                           std::pair{std::string("general"), false}, std::pair{std::string("concat"), false},
                                           std::pair{std::string("concat"), true}),
                         [](const auto& info) { return info.param.first + (info.param.second ? "_input_feeding" : ""); });

TEST(Translator, SaveLoadTranslateGiveTheSameOutput) {
  TempDir dir;
  write_dates(dir / "train.tsv", 200, 4);
  train::TrainOptions o = small_run(dir / "train.tsv", dir / "run", "concat");
  o.max_steps = 30;
  o.bidirectional = true;
  o.layers = 2;
  train::TrainResult r = train::train(o);
  models::LoadedModel a = models::load_checkpoint(r.checkpoint_dir);
  models::save_checkpoint(dir / "copy", *a.model, a.src_vocab, a.tgt_vocab);
  models::LoadedModel b = models::load_checkpoint(dir / "copy");
  const std::vector<std::string> src = {"the third of march , 1999", "june 5th 2012", "the 1st of may nineteen oh five"};
  for (int64_t beam : {1, 3}) {
    models::Translator ta(*a.model, a.src_vocab, a.tgt_vocab), tb(*b.model, b.src_vocab, b.tgt_vocab);
    std::vector<models::Translation> x = ta.translate(src, {.beam = beam, .n_best = beam});
    std::vector<models::Translation> y = tb.translate(src, {.beam = beam, .n_best = beam});
    for (size_t i = 0; i < src.size(); ++i) {
      EXPECT_EQ(x[i].outputs, y[i].outputs);
      ASSERT_EQ(x[i].hypotheses.size(), y[i].hypotheses.size());
      for (size_t h = 0; h < x[i].hypotheses.size(); ++h) {
        EXPECT_EQ(x[i].hypotheses[h].score, y[i].hypotheses[h].score);
        EXPECT_EQ(x[i].hypotheses[h].attention, y[i].hypotheses[h].attention);
      }
    }
  }
  // The weights on disk are the model's, bit for bit.
  for (auto& [name, p] : a.model->named_parameters())
    EXPECT_EQ(p.to_vector<float>(), b.model->parameter(name).to_vector<float>()) << name;
}

TEST(Translator, ResumeIsBitwiseOnTheCpu) {
  TempDir dir;
  write_dates(dir / "train.tsv", 300, 5);
  train::TrainOptions o = small_run(dir / "train.tsv", dir / "straight", "bahdanau");
  o.dropout = 0.3;          // the dropout stream must resume too
  o.teacher_forcing = 0.5;  // and the per-sentence coin flips
  o.epochs = 3;             // 57 steps, across epoch boundaries (19 batches each)
  train::train(o);
  o.out_dir = dir / "split";
  o.max_steps = 23;  // stop mid-epoch
  train::train(o);
  train::TrainOptions r;
  r.resume_dir = dir / "split/checkpoint";
  r.quiet = true;
  r.device = "cpu";
  r.epochs = 3;
  train::TrainResult done = train::train(r);
  EXPECT_EQ(done.steps, 57);
  EXPECT_EQ(io::read_file(dir / "straight/checkpoint/model.safetensors"), io::read_file(dir / "split/checkpoint/model.safetensors"));
  EXPECT_EQ(io::read_file(dir / "straight/checkpoint/optimizer.safetensors"),
            io::read_file(dir / "split/checkpoint/optimizer.safetensors"));
}

TEST(Translator, ProfileReportsEveryStageAndTheBackwardByNode) {
  TempDir dir;
  write_dates(dir / "train.tsv", 100, 8);
  write_dates(dir / "valid.tsv", 300, 9);
  train::TrainOptions o = small_run(dir / "train.tsv", dir / "run", "bahdanau");
  o.max_steps = 7;  // one epoch of 100 pairs in batches of 16: validation runs after it
  o.valid_path = dir / "valid.tsv";
  o.teacher_forcing = 0.5;
  o.profile = true;
  const train::TrainResult r = train::train(o);
  const nlohmann::json& p = r.profile;
  ASSERT_GE(r.best_bleu, 0.0) << "validation did not run";
  double staged = 0.0;
  for (const char* stage : {"encoder", "attention", "decoder_cell", "classifier_loss", "backward", "optimizer"}) {
    ASSERT_TRUE(p.contains(stage)) << stage << " missing from " << p.dump();
    EXPECT_GT(p[stage].get<double>(), 0.0) << stage;
    staged += p[stage].get<double>();
  }
  // The stages and "other" make up the training steps' time; validation (300 pairs decoded after
  // the 7 steps) is not counted in any stage (it was: the stages summed to more than the steps).
  ASSERT_TRUE(p.contains("other") && p.contains("steps_total")) << p.dump();
  EXPECT_LE(staged, p["steps_total"].get<double>());
  EXPECT_NEAR(staged + p["other"].get<double>(), p["steps_total"].get<double>(), 1e-9);
  EXPECT_NEAR(p["steps_total"].get<double>(), r.train_seconds, 1e-9);
  // The backward's parts: the nodes this model records, each timed, together within the stage.
  double parts = 0.0;
  for (const char* node : {"LinearBackward", "LstmLayerBackward", "AdditiveAttentionBackward", "SoftmaxNllBackward",
                           "EmbeddingBackward"}) {
    const std::string key = std::string("backward/") + node;
    ASSERT_TRUE(p.contains(key)) << key << " missing from " << p.dump();
    parts += p[key].get<double>();
  }
  EXPECT_LE(parts, p["backward"].get<double>());
  // Memory of the run: at its peak the weights, their gradients and Adam's two moments were live
  // (float32), at the least
  const int64_t params = models::load_checkpoint(r.checkpoint_dir).model->num_parameters();
  ASSERT_TRUE(p.contains("memory_peak_bytes")) << p.dump();
  EXPECT_GE(p["memory_peak_bytes"].get<int64_t>(), 4 * 4 * params);
  // Off again after the run: a later run without --profile reports nothing.
  o.profile = false;
  o.out_dir = dir / "run2";
  EXPECT_TRUE(train::train(o).profile.is_null());
}

// Also for the additive scorers (concat, bahdanau), whose prepared keys (exp(2 keys) on the
// CPU) the beams re-index along with the keys.
TEST(Translator, BeamOneIsGreedyAndBeamsComeSorted) {
  for (const char* attention : {"general", "concat", "bahdanau"}) {
  SCOPED_TRACE(attention);
  TempDir dir;
  write_dates(dir / "train.tsv", 200, 6);
  train::TrainOptions o = small_run(dir / "train.tsv", dir / "run", attention);
  o.max_steps = 40;
  models::LoadedModel m = models::load_checkpoint(train::train(o).checkpoint_dir);
  const std::vector<tasks::Pair> probe = tasks::generate_dates(20, 99);
  std::vector<std::string> src;
  for (const auto& p : probe) src.push_back(p.src);
  // The same padded batch through greedy_search and through beam_search with one beam.
  std::vector<std::vector<int64_t>> ids;
  int64_t S = 0;
  for (const std::string& s : src) {
    ids.push_back(m.src_vocab.encode(data::tokenize(s), false, true));
    S = std::max<int64_t>(S, static_cast<int64_t>(ids.back().size()));
  }
  std::vector<int64_t> flat(ids.size() * static_cast<size_t>(S), 0), len;
  for (size_t i = 0; i < ids.size(); ++i) {
    std::copy(ids[i].begin(), ids[i].end(), flat.begin() + static_cast<std::ptrdiff_t>(i * static_cast<size_t>(S)));
    len.push_back(static_cast<int64_t>(ids[i].size()));
  }
  const Tensor batch = from_vector(flat, Shape{static_cast<int64_t>(ids.size()), S});
  const Tensor lengths = from_vector(len, Shape{static_cast<int64_t>(len.size())});
  auto greedy = models::greedy_search(*m.model, batch, lengths, {.beam = 1});
  auto beam1 = models::beam_search(*m.model, batch, lengths, {.beam = 1});
  for (size_t i = 0; i < src.size(); ++i) {
    EXPECT_EQ(greedy[i][0].tokens, beam1[i][0].tokens) << src[i];
    EXPECT_EQ(greedy[i][0].finished, beam1[i][0].finished) << src[i];
    EXPECT_NEAR(greedy[i][0].score, beam1[i][0].score, 1e-12) << src[i];
    EXPECT_EQ(greedy[i][0].attention, beam1[i][0].attention) << src[i];
  }
  models::Translator tr(*m.model, m.src_vocab, m.tgt_vocab);
  std::vector<models::Translation> wide = tr.translate(src, {.beam = 5, .n_best = 5});
  for (const auto& t : wide) {
    ASSERT_GE(t.hypotheses.size(), 2u);
    for (size_t h = 1; h < t.hypotheses.size(); ++h) EXPECT_GE(t.hypotheses[h - 1].score, t.hypotheses[h].score);
    EXPECT_NE(t.outputs[0], t.outputs[1]);  // distinct hypotheses
  }
  }
}

TEST(Translator, BadCheckpointsAreClearErrors) {
  TempDir dir;
  const std::string ck = train_briefly(dir, 7, "concat", 2);
  const std::string weights = io::read_file(ck + "/model.safetensors");
  auto expect_io = [&](const std::string& what, std::initializer_list<const char*> mention) {
    try {
      models::load_checkpoint(ck);
      ADD_FAILURE() << what << ": no error";
    } catch (const IOError& e) {
      for (const char* s : mention) EXPECT_NE(std::string(e.what()).find(s), std::string::npos) << what << ": " << e.what();
    }
  };
  // A truncated weights file: an error naming the file, never a crash.
  for (size_t cut : {size_t{4}, size_t{100}, weights.size() / 2, weights.size() - 1}) {
    io::write_file_atomic(ck + "/model.safetensors", weights.substr(0, cut));
    expect_io(fmt::format("truncated at {}", cut), {"model.safetensors"});
  }
  io::write_file_atomic(ck + "/model.safetensors", weights);
  EXPECT_NO_THROW(models::load_checkpoint(ck));
  // NaN or inf weights translated to empty lines and evaluated to a NaN loss without a word
  for (double bad : {std::nan(""), -std::numeric_limits<double>::infinity()}) {
    io::SafetensorsFile f = io::load_safetensors(ck + "/model.safetensors");
    Tensor& w = f.tensors[f.tensors.size() / 2].second;
    const std::string name = f.tensors[f.tensors.size() / 2].first;
    w.reshape(Shape{-1}).select(0, w.numel() - 1).fill_(bad);
    io::save_safetensors(ck + "/model.safetensors", f.tensors, f.metadata);
    expect_io(fmt::format("weight {}", bad), {"model.safetensors", name.c_str(), "NaN or infinite", "element"});
  }
  io::write_file_atomic(ck + "/model.safetensors", weights);
  EXPECT_NO_THROW(models::load_checkpoint(ck));
  // config.json that does not match the tensors
  const std::string config = io::read_file(ck + "/config.json");
  std::string wrong = config;
  wrong.replace(wrong.find("\"hidden\": 64"), 12, "\"hidden\": 32");
  io::write_file_atomic(ck + "/config.json", wrong);
  expect_io("hidden 32", {"model.safetensors", "encoder.embedding.weight"});
  wrong = config;
  wrong.replace(wrong.find("\"concat\""), 8, "\"dot\"");
  io::write_file_atomic(ck + "/config.json", wrong);
  expect_io("dot instead of concat", {"unexpected tensor", "decoder.attention"});
  io::write_file_atomic(ck + "/config.json", "{\"format\": \"attn-seq2seq\", \"hidden\": ");
  expect_io("broken JSON", {"config.json"});
  // numbers that are not integers: 64.5 was read as 64, 1e300 overflowed the conversion
  for (const char* bad : {"64.5", "1e300", "18446744073709551615"}) {
    wrong = config;
    wrong.replace(wrong.find("\"hidden\": 64"), 12, std::string("\"hidden\": ") + bad);
    io::write_file_atomic(ck + "/config.json", wrong);
    expect_io(std::string("hidden ") + bad, {"config.json", "'hidden' must be an integer"});
  }
  io::write_file_atomic(ck + "/config.json", config);
  fs::remove(ck + "/tgt.vocab");
  expect_io("missing vocabulary", {"tgt.vocab"});
}

TEST(Translator, TooLongSentenceIsAClearErrorUnknownWordsAreCounted) {
  TempDir dir;
  models::LoadedModel m = models::load_checkpoint(train_briefly(dir, 8, "dot", 2));
  models::Translator tr(*m.model, m.src_vocab, m.tgt_vocab);
  std::string long_sentence;
  for (int i = 0; i < 150; ++i) long_sentence += "may ";
  try {
    tr.translate({"june 5th 2012", long_sentence}, {});
    FAIL() << "expected ValueError";
  } catch (const ValueError& e) {
    EXPECT_NE(std::string(e.what()).find("sentence 2: the source sentence has 151 tokens"), std::string::npos)
        << e.what();
  }
  const std::string text = "zebra june 5th quux 2012";
  int64_t expected = 0;
  for (const std::string& tok : data::tokenize(text)) expected += !m.src_vocab.contains(tok);
  ASSERT_GE(expected, 2);  // zebra and quux at least
  std::vector<models::Translation> t = tr.translate({text}, {});
  EXPECT_EQ(t[0].unknown, expected);
  EXPECT_FALSE(t[0].outputs[0].empty() && t[0].hypotheses.empty());  // translated, not refused
}

TEST(Translator, EmptyLinesStayEmptyAndInvalidUtf8IsNamed) {
  TempDir dir;
  models::LoadedModel m = models::load_checkpoint(train_briefly(dir, 8, "dot", 2));
  models::Translator tr(*m.model, m.src_vocab, m.tgt_vocab);
  // Empty and blank lines among real ones: not decoded (one empty output, no hypotheses), and
  // the others translate as they do without them (they were decoded from a lone </s> before).
  const std::vector<models::Translation> t = tr.translate({"", "june 5th 2012", " \t ", "may 1st 1999"}, {.beam = 2});
  ASSERT_EQ(t.size(), 4u);
  for (size_t i : {0u, 2u}) {
    EXPECT_EQ(t[i].outputs, std::vector<std::string>{""}) << i;
    EXPECT_TRUE(t[i].hypotheses.empty()) << i;
  }
  const std::vector<models::Translation> beam2 = tr.translate({"june 5th 2012", "may 1st 1999"}, {.beam = 2});
  EXPECT_EQ(t[1].outputs, beam2[0].outputs);
  EXPECT_EQ(t[3].outputs, beam2[1].outputs);
  // Invalid UTF-8 (from stdin or the arguments; files are checked when read) names the sentence.
  expect_throw_with<ValueError>([&] { tr.translate({"june 5th", "may \xff 2012"}, {}); },
                                {"sentence 2", "invalid UTF-8 at byte 5"});
  expect_throw_with<ValueError>([&] { tr.translate({"may \xc3"}, {}, 64, {"<stdin>:7"}); },
                                {"<stdin>:7", "invalid UTF-8"});
}

TEST(Translator, NeverOutputsPadOrStartEvenWhenTheModelPrefersThem) {
  TempDir dir;
  models::LoadedModel m = models::load_checkpoint(train_briefly(dir, 12, "general", 2, 16));
  {
    // The classifier now puts almost all the mass on <s> (id 1), then <pad> (id 0), and almost
    // none on </s>: every output runs to the length limit.
    NoGradGuard g;
    Tensor& bias = m.model->parameter("decoder.classifier.bias");
    std::vector<float> v = bias.to_vector<float>();
    v[data::Vocab::kBos] = 60.0f;
    v[data::Vocab::kPad] = 50.0f;
    v[data::Vocab::kEos] = -50.0f;
    bias.copy_(from_vector(v, bias.shape()));
  }
  models::Translator tr(*m.model, m.src_vocab, m.tgt_vocab);
  const std::vector<std::string> src = {"june 5th 2012", "the third of march , 1999"};
  for (int64_t beam : {1, 3}) {
    std::vector<models::Translation> out = tr.translate(src, {.beam = beam, .n_best = beam, .keep_attention = true});
    for (const models::Translation& t : out) {
      ASSERT_EQ(t.hypotheses.size(), static_cast<size_t>(beam));
      for (size_t h = 0; h < t.hypotheses.size(); ++h) {
        const models::Hypothesis& hyp = t.hypotheses[h];
        EXPECT_FALSE(hyp.finished) << "beam " << beam;
        EXPECT_GE(hyp.tokens.size(), 5u) << "beam " << beam;
        for (int64_t id : hyp.tokens) {
          EXPECT_NE(id, data::Vocab::kPad) << "beam " << beam;
          EXPECT_NE(id, data::Vocab::kBos) << "beam " << beam;
        }
        // One attention row per output token: the heatmap and JSON writers accept it.
        EXPECT_EQ(hyp.attention.size(), t.output_tokens[h].size()) << "beam " << beam;
        EXPECT_EQ(hyp.tokens.size() + (hyp.finished ? 1 : 0), t.output_tokens[h].size()) << "beam " << beam;
        viz::Alignment a{t.source_tokens, t.output_tokens[h], hyp.attention};
        EXPECT_NO_THROW(viz::alignment_jsonl(a, t.source, t.outputs[h], hyp.score)) << "beam " << beam;
        EXPECT_NO_THROW(viz::text_heatmap(a, false)) << "beam " << beam;
      }
    }
  }
}

TEST(Translator, BadBatchSizesAndLimitsAreRefused) {
  TempDir dir;
  models::LoadedModel m = models::load_checkpoint(train_briefly(dir, 13, "dot", 1, 16));
  models::Translator tr(*m.model, m.src_vocab, m.tgt_vocab);
  expect_throw_with<ValueError>([&] { tr.translate({"june 5th 2012"}, {}, 0); }, {"batch size", "0"});
  expect_throw_with<ValueError>([&] { tr.translate({"june 5th 2012"}, {}, -2); }, {"batch size", "-2"});
  expect_throw_with<ValueError>([&] { tr.translate({"june 5th 2012"}, {.beam = 0}); }, {"beam"});
  expect_throw_with<ValueError>([&] { tr.translate({"june 5th 2012"}, {.max_len_ratio = 0.0}); }, {"max_len_ratio"});
  // An over-long sentence named by its place in a file when the caller gives it.
  std::string long_sentence;
  for (int i = 0; i < 150; ++i) long_sentence += "may ";
  expect_throw_with<ValueError>([&] { tr.translate({"june 5th 2012", long_sentence}, {}, 64, {"in.txt:4", "in.txt:9"}); },
                                {"in.txt:9: the source sentence has 151 tokens", "at most 100"});
}

TEST(Translator, ConfigThatDisagreesWithTheWeightsIsRefusedBeforeTheModelIsBuilt) {
  TempDir dir;
  const std::string ck = train_briefly(dir, 14, "concat", 1, 16);
  const nlohmann::json config = nlohmann::json::parse(io::read_file(ck + "/config.json"));
  auto refused = [&](const char* key, const nlohmann::json& value, std::initializer_list<std::string> mention) {
    nlohmann::json j = config;
    j[key] = value;
    io::write_file_atomic(ck + "/config.json", j.dump());
    expect_throw_with<IOError>([&] { models::load_checkpoint(ck); }, mention);
  };
  // A model this size would need terabytes: refused from the header's shapes, at once.
  refused("hidden", 1000000, {ck + "/model.safetensors", "encoder.embedding.weight", "hidden 1000000"});
  refused("layers", 100000, {ck + "/model.safetensors", "1 LSTM layer", "100000"});
  refused("bidirectional", true, {ck + "/model.safetensors", "unidirectional"});
  io::write_file_atomic(ck + "/config.json", config.dump());
  EXPECT_NO_THROW(models::load_checkpoint(ck));
}

// ---------------------------------------------------------------- the command line

int run(const std::string& cmd) {
  const int status = std::system(cmd.c_str());
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

TEST(Cli, TrainTranslateEvalEndToEnd) {
  TempDir dir;
  // A small slice of the real data when present, else generated pairs.
  const std::string tatoeba = std::string(ATTN_SOURCE_DIR) + "/../shared/data/tatoeba-en-de/train.tsv";
  std::string train_path = dir / "train.tsv";
  if (fs::exists(tatoeba)) {
    std::ifstream in(tatoeba);
    std::ofstream out(train_path);
    std::string line;
    for (int i = 0; i < 400 && std::getline(in, line); ++i) out << line << "\n";
  } else {
    write_dates(train_path, 400, 9);
  }
  const std::string attn = attn_command();
  ASSERT_EQ(run(attn + " train --train " + train_path + " --valid " + train_path + " --out " + (dir / "run") +
                " --hidden 32 --batch 32 --epochs 2 --min-freq 1 --device cpu > " + (dir / "train.out") + " 2>&1"),
            0)
      << io::read_file(dir / "train.out");
  const std::string log = io::read_file(dir / "run/train.log");
  EXPECT_NE(log.find("epoch 2 done"), std::string::npos) << log;
  EXPECT_NE(log.find("valid BLEU"), std::string::npos) << log;
  EXPECT_TRUE(fs::exists(dir / "run/best/model.safetensors"));
  // translate from arguments, with a heatmap and JSON lines
  ASSERT_EQ(run(attn + " translate --model " + (dir / "run/best") + " --heatmap " + (dir / "h.svg") + " --attention-out " +
                (dir / "a.jsonl") + " 'Hello.' 'I am here.' > " + (dir / "tr.out") + " 2>&1"),
            0)
      << io::read_file(dir / "tr.out");
  EXPECT_TRUE(fs::exists(dir / "h-1.svg"));
  EXPECT_TRUE(fs::exists(dir / "h-2.svg"));
  const std::string jsonl = io::read_file(dir / "a.jsonl");
  EXPECT_EQ(std::count(jsonl.begin(), jsonl.end(), '\n'), 2);
  // from stdin, n-best
  ASSERT_EQ(run("printf 'Hello.\\n' | " + attn + " translate --model " + (dir / "run/best") + " --beam 3 --n-best 2 > " +
                (dir / "nb.out") + " 2> " + (dir / "nb.err")),
            0);
  const std::string nb = io::read_file(dir / "nb.out");
  EXPECT_EQ(std::count(nb.begin(), nb.end(), '\n'), 2) << nb;
  EXPECT_NE(nb.find("1 ||| "), std::string::npos) << nb;
  // eval
  ASSERT_EQ(run(attn + " eval --model " + (dir / "run/best") + " --test " + train_path + " > " + (dir / "eval.out") + " 2>&1"), 0);
  const std::string ev = io::read_file(dir / "eval.out");
  EXPECT_NE(ev.find("BLEU = "), std::string::npos) << ev;
  EXPECT_NE(ev.find("signature: nrefs:"), std::string::npos) << ev;
  EXPECT_NE(ev.find("400 pairs"), std::string::npos) << ev;
  // a bad input line is an error naming the file and line, unless skipped
  std::ofstream(dir / "bad.tsv") << "Hello.\tHallo.\nno tab here\n";
  EXPECT_NE(run(attn + " eval --model " + (dir / "run/best") + " --test " + (dir / "bad.tsv") + " > " + (dir / "bad.out") + " 2>&1"), 0);
  const std::string bad = io::read_file(dir / "bad.out");
  EXPECT_NE(bad.find("bad.tsv"), std::string::npos) << bad;
  EXPECT_NE(bad.find("2"), std::string::npos) << bad;
  EXPECT_EQ(run(attn + " eval --skip-bad-lines --model " + (dir / "run/best") + " --test " + (dir / "bad.tsv") + " > " +
                (dir / "skip.out") + " 2>&1"),
            0);
  const std::string skip = io::read_file(dir / "skip.out");  // the warning names the skipped line
  EXPECT_NE(skip.find("skipped 1 malformed line(s)\n  " + (dir / "bad.tsv") + ":2: "), std::string::npos) << skip;
  // stdin: an empty line gives an empty line, in its place
  ASSERT_EQ(run("printf 'Hello.\\n\\nI am here.\\n' | " + attn + " translate --model " + (dir / "run/best") + " > " +
                (dir / "stdin.out") + " 2> /dev/null"),
            0);
  const std::string lines = io::read_file(dir / "stdin.out");
  EXPECT_EQ(std::count(lines.begin(), lines.end(), '\n'), 3) << lines;
  EXPECT_NE(lines.find("\n\n"), std::string::npos) << lines;
  // with --n-best, the empty line has one entry of its own (it had none: the numbering skipped it)
  ASSERT_EQ(run("printf 'Hello.\\n\\nI am here.\\n' | " + attn + " translate --model " + (dir / "run/best") +
                " --beam 2 --n-best 2 --attention-out " + (dir / "nbe.jsonl") + " > " + (dir / "nbe.out") + " 2> /dev/null"),
            0);
  const std::string nbe = io::read_file(dir / "nbe.out");
  EXPECT_EQ(std::count(nbe.begin(), nbe.end(), '\n'), 5) << nbe;
  EXPECT_NE(nbe.find("\n2 |||  ||| 0.0000\n3 ||| "), std::string::npos) << nbe;
  // the attention records name their input line (none for the blank one)
  std::vector<int64_t> record_lines;
  std::istringstream records(io::read_file(dir / "nbe.jsonl"));
  for (std::string rec; std::getline(records, rec);) record_lines.push_back(nlohmann::json::parse(rec).at("line").get<int64_t>());
  EXPECT_EQ(record_lines, (std::vector<int64_t>{1, 1, 3, 3}));
  // --n-best 1 is the n-best format too (it printed plain translations: scripts parsing it broke)
  ASSERT_EQ(run("printf 'Hello.\\n\\n' | " + attn + " translate --model " + (dir / "run/best") + " --n-best 1 > " +
                (dir / "nb1.out") + " 2> /dev/null"),
            0);
  const std::string nb1 = io::read_file(dir / "nb1.out");
  EXPECT_EQ(nb1.rfind("1 ||| ", 0), 0u) << nb1;
  EXPECT_NE(nb1.find("\n2 |||  ||| 0.0000\n"), std::string::npos) << nb1;
  EXPECT_EQ(std::count(nb1.begin(), nb1.end(), '\n'), 2) << nb1;
  // stdin is read as --input reads a file: a BOM dropped (it reached the JSON "source"), a
  // stray CR an error naming <stdin> and its line (it was accepted)
  ASSERT_EQ(run("printf '\\357\\273\\277Hello.\\r\\n' | " + attn + " translate --model " + (dir / "run/best") +
                " --attention-out " + (dir / "bom.jsonl") + " > /dev/null 2>&1"),
            0);
  EXPECT_EQ(nlohmann::json::parse(io::read_file(dir / "bom.jsonl")).at("source").get<std::string>(), "Hello.");
  EXPECT_NE(run("printf 'Hello.\\nOld\\rMac\\n' | " + attn + " translate --model " + (dir / "run/best") + " > " +
                (dir / "cr.out") + " 2> " + (dir / "cr.err")),
            0);
  EXPECT_NE(io::read_file(dir / "cr.err").find("<stdin>:2: carriage return"), std::string::npos) << io::read_file(dir / "cr.err");
  EXPECT_EQ(io::read_file(dir / "cr.out"), "");  // nothing decoded
  // an --attention-out whose directory is missing fails before decoding (it failed after
  // printing every translation)
  EXPECT_NE(run(attn + " translate --model " + (dir / "run/best") + " --attention-out " + (dir / "no/such/a.jsonl") +
                " 'Hello.' > " + (dir / "ao.out") + " 2> " + (dir / "ao.err")),
            0);
  EXPECT_EQ(io::read_file(dir / "ao.out"), "");
  EXPECT_NE(io::read_file(dir / "ao.err").find("--attention-out"), std::string::npos) << io::read_file(dir / "ao.err");
}

TEST(Cli, TrainChecksTheDeviceAndVocabularyLimitAndRefusesHugeShapesCleanly) {
  TempDir dir;
  tasks::write_tsv(tasks::generate_dates(32, 5), dir / "train.tsv");
  const std::string attn = attn_command();
  const std::string out = dir / "cli.out";
  auto refused = [&](const std::string& args, const std::string& mention) {
    const int rc = run(attn + " train --quiet --train " + (dir / "train.tsv") + " " + args + " > " + out + " 2>&1");
    const std::string text = io::read_file(out);
    EXPECT_GT(rc, 0) << args << " (-1: a crash): " << text;
    EXPECT_NE(text.find(mention), std::string::npos) << args << ": " << text;
  };
  if (!kernels::has_backend(DeviceType::CUDA)) {
    refused("--out " + (dir / "gpu") + " --device cuda", "--device cuda");
    EXPECT_FALSE(fs::exists(dir / "gpu")) << "a refused --device left its output directory";
  }
  refused("--out " + (dir / "v") + " --max-vocab 3", "--max-vocab");
  refused("--out " + (dir / "h") + " --max-steps 1 --hidden 4611686018427387904", "--hidden must be at most");  // was a segfault, then an error from empty()
  refused("--out " + (dir / "l") + " --log-every 0", "--log-every");
  refused("--out " + (dir / "s") + " --seed -1", "--seed");  // a uint64: it wrapped to 2^64 - 1
  {
    const int rc = run(attn + " trian --train x > " + out + " 2>&1");
    const std::string text = io::read_file(out);
    EXPECT_GT(rc, 0) << text;
    EXPECT_NE(text.find("unknown command 'trian'"), std::string::npos) << text;  // was "A subcommand is required"
    EXPECT_NE(text.find("train, eval"), std::string::npos) << text;
  }
  // the demo reads its test set before training (an empty one was a segfault after it)
  fs::create_directories(dir / "data");
  tasks::write_tsv(tasks::generate_dates(32, 6), dir / "data/train.tsv");
  tasks::write_tsv(tasks::generate_dates(8, 7), dir / "data/valid.tsv");
  io::write_file_atomic(dir / "data/test.tsv", "");
  const int rc = run(attn + " demo --data " + (dir / "data") + " --out " + (dir / "demo") + " --time-limit 1 --hidden 16 > " +
                     out + " 2>&1");
  EXPECT_GT(rc, 0) << io::read_file(out);
  EXPECT_NE(io::read_file(out).find("test.tsv: no sentence pairs"), std::string::npos) << io::read_file(out);
  EXPECT_FALSE(fs::exists(dir / "demo/run/checkpoint"));  // nothing trained
  // a test source without a token (a soft hyphen) is not decoded: the heatmap takes another
  // sentence (it read the first one's missing hypothesis when every other had over 12 tokens)
  io::write_file_atomic(dir / "data/test.tsv", "\xC2\xAD\tx\nthe first of may two thousand and one , the second of june two thousand and two\tx\n");
  const int rc2 = run(attn + " demo --data " + (dir / "data") + " --out " + (dir / "demo") + " --time-limit 1 --hidden 16 > " +
                      out + " 2>&1");
  EXPECT_EQ(rc2, 0) << io::read_file(out);
  EXPECT_NE(io::read_file(out).find("Heatmap written to"), std::string::npos) << io::read_file(out);
}

TEST(Cli, EvalAndTranslateRefuseNonPositiveBatchBeamAndLengthRatio) {
  TempDir dir;
  const std::string model = train_briefly(dir, 15, "dot", 1, 16);
  const std::string attn = attn_command();
  const std::string out = dir / "cli.out";
  auto refused = [&](const std::string& args, const std::string& option) {
    const int rc = run(attn + " " + args + " > " + out + " 2>&1");
    const std::string text = io::read_file(out);
    EXPECT_GT(rc, 0) << args << " (-1: a crash): " << text;
    EXPECT_NE(text.find(option), std::string::npos) << args << ": " << text;
  };
  const std::string eval = "eval --device cpu --model " + model + " --test " + (dir / "train.tsv");
  refused(eval + " --batch 0", "--batch");
  refused(eval + " --beam -3", "--beam");
  refused(eval + " --beam 0", "--beam");
  const std::string translate = "translate --device cpu --model " + model + " 'june 5th 2012'";
  refused(translate + " --max-len-ratio 0", "--max-len-ratio");
  refused(translate + " --max-len-ratio -1", "--max-len-ratio");
  refused(translate + " --batch 0", "--batch");
  // (from a review: a ratio of 1e30 overflowed the length limit to an empty output, a NaN
  // length penalty broke the beam's sort, both with status 0)
  refused(translate + " --max-len-ratio 1e30", "max_len_ratio");
  refused(translate + " --beam 3 --length-penalty nan", "length penalty");
  refused(translate + " --input " + (dir / "train.tsv"), "--input");  // sentences and a file
  refused(translate + " --heatmap " + (dir / "no/such/dir/h.svg"), "--heatmap");
  io::write_file_atomic(dir / "empty.tsv", "");
  refused("eval --device cpu --model " + model + " --test " + (dir / "empty.tsv"), "no sentence pairs");
  ASSERT_EQ(run(attn + " " + eval + " --batch 7 --beam 2 > " + out + " 2>&1"), 0) << io::read_file(out);
  EXPECT_NE(io::read_file(out).find("BLEU = "), std::string::npos);
  // bleu of an empty file: refused (was BLEU 0.00 with nrefs:0 and status 0, where sacreBLEU refuses)
  refused("bleu --hyp " + (dir / "empty.tsv") + " --ref " + (dir / "empty.tsv"), "no lines");
  // a source that is only a soft hyphen has no token: scored by BLEU, said to be left out of the
  // loss (was "test loss 0.0000 (0 tokens), 1 pairs")
  io::write_file_atomic(dir / "soft.tsv", "\xC2\xAD\tx\n");
  ASSERT_EQ(run(attn + " eval --device cpu --model " + model + " --test " + (dir / "soft.tsv") + " > " + out + " 2>&1"), 0)
      << io::read_file(out);
  const std::string soft = io::read_file(out);
  EXPECT_NE(soft.find("test loss n/a (no tokens), 1 pairs (1 with no source token, left out of the loss)"),
            std::string::npos)
      << soft;
}

}  // namespace
}  // namespace attn::test
