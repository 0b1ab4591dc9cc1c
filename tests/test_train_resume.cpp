// Training stops, resumes and refuses bad input clearly: a stop on an epoch's last batch still
// validates the epoch; an over-long validation sentence is skipped, not fatal; --epochs and
// --resume paths on the command line; options checked before training; the optimizer and
// trainer state of a checkpoint checked strictly, with errors naming the file.
#include <gtest/gtest.h>

#include <limits>

#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "core/io/atomic_file.h"
#include "core/io/safetensors.h"
#include "core/optim/optimizer.h"
#include "models/data/tokenizer.h"
#include "models/seq2seq/checkpoint.h"
#include "models/tasks/dates.h"
#include "models/train/trainer.h"
#include "tests/data_test_util.h"
#include "tests/shell_util.h"

namespace attn::test {
namespace {

namespace fs = std::filesystem;

// Options that resume from a checkpoint folder, quietly, on the CPU.
train::TrainOptions resume_from(const std::string& checkpoint) {
  train::TrainOptions r;
  r.resume_dir = checkpoint;
  r.quiet = true;
  r.device = "cpu";
  return r;
}

// A tiny run on 64 generated date pairs: 4 batches an epoch, milliseconds a step.
train::TrainOptions tiny_run(const TempDir& dir, const std::string& out) {
  if (!fs::exists(dir.file("train.tsv"))) tasks::write_tsv(tasks::generate_dates(64, 11), dir.file("train.tsv"));
  train::TrainOptions o;
  o.train_path = dir.file("train.tsv");
  o.out_dir = dir.file(out);
  o.hidden = 16;
  o.batch = 16;
  o.min_freq = 1;
  o.dropout = 0.0;
  o.epochs = 1;
  o.quiet = true;
  o.device = "cpu";
  return o;
}

int64_t count(const std::string& text, const std::string& what) {
  int64_t n = 0;
  for (size_t at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) ++n;
  return n;
}

int run(const std::string& cmd) {
  const int status = std::system(cmd.c_str());
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;  // -1: killed by a signal (a crash)
}

std::string attn_binary() { return attn_command(); }

// ---------------------------------------------------------------- stopping at an epoch's end

TEST(TrainStop, OnTheLastBatchOfAnEpochTheEpochIsValidatedFirst) {
  TempDir dir;
  train::TrainOptions o = tiny_run(dir, "probe");
  const int64_t per_epoch = train::train(o).steps;  // one epoch without validation
  ASSERT_GT(per_epoch, 1);

  o.valid_path = o.train_path;
  o.epochs = 2;
  o.out_dir = dir.file("straight");
  train::train(o);

  o.out_dir = dir.file("split");
  o.max_steps = per_epoch;  // stops exactly on epoch 1's last batch
  train::TrainResult first = train::train(o);
  EXPECT_EQ(first.steps, per_epoch);
  EXPECT_EQ(first.epochs_done, 1);
  EXPECT_GE(first.last_valid_bleu, 0.0);
  EXPECT_TRUE(fs::exists(dir.file("split/best/model.safetensors")));
  std::string log = io::read_file(dir.file("split/train.log"));
  EXPECT_EQ(count(log, "epoch 1 done"), 1) << log;
  EXPECT_NE(log.find("reached --max-steps"), std::string::npos) << log;

  // The resume starts at epoch 2 and validates it; epoch 1 is not validated twice, and the run
  // ends where the straight one did, bit for bit.
  train::TrainOptions r = resume_from(dir.file("split/checkpoint"));
  train::TrainResult done = train::train(r);
  EXPECT_EQ(done.steps, 2 * per_epoch);
  EXPECT_EQ(done.epochs_done, 2);
  log = io::read_file(dir.file("split/train.log"));
  EXPECT_EQ(count(log, "epoch 1 done"), 1) << log;
  EXPECT_EQ(count(log, "epoch 2 done"), 1) << log;
  EXPECT_EQ(io::read_file(dir.file("straight/checkpoint/model.safetensors")),
            io::read_file(dir.file("split/checkpoint/model.safetensors")));
  EXPECT_EQ(io::read_file(dir.file("straight/checkpoint/optimizer.safetensors")),
            io::read_file(dir.file("split/checkpoint/optimizer.safetensors")));
}

// With --time-limit, the progress lines' ETA is the time left to the limit when that comes
// first (the demo showed "ETA 18h" for a 2-minute run of a 10-epoch budget).
TEST(TrainStop, TheEtaCountsTheTimeLimit) {
  TempDir dir;
  train::TrainOptions o = tiny_run(dir, "eta");
  o.epochs = 100000;  // hours of epochs: the time limit ends the run
  o.time_limit = 1.0;
  o.log_every = 1;
  train::train(o);
  const std::string log = io::read_file(dir.file("eta/train.log"));
  int64_t lines = 0;
  for (size_t at = log.find("ETA "); at != std::string::npos; at = log.find("ETA ", at + 1)) {
    const std::string eta = log.substr(at + 4, log.find('\n', at) - at - 4);
    EXPECT_TRUE(eta == "0m00s" || eta == "0m01s") << eta;
    ++lines;
  }
  // Alone this run logs hundreds of steps; under a loaded CI (ctest -j with OpenMP teams on two
  // cores) it logged 7, so only a few lines are required: the ETA of each is what is tested.
  EXPECT_GE(lines, 2) << log;
  EXPECT_NE(log.find("reached --time-limit"), std::string::npos) << log;
}

// A time limit that runs out during an epoch's validation ends the run there: the next epoch's
// first step ran past it (and saved a mid-epoch checkpoint).
TEST(TrainStop, ATimeLimitReachedDuringValidationStopsAtTheEpochsEnd) {
  TempDir dir;
  tasks::write_tsv(tasks::generate_dates(12000, 12), dir.file("valid.tsv"));
  auto wall_of = [](train::TrainOptions o) {
    const auto t0 = std::chrono::steady_clock::now();
    train::train(o);
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  };
  // How long the setup and an epoch take, and then its validation (~0.7 s here): the limit
  // goes well inside the validation.
  train::TrainOptions o = tiny_run(dir, "no_valid");
  const double without = wall_of(o);
  o.valid_path = dir.file("valid.tsv");
  o.out_dir = dir.file("valid");
  const double with = wall_of(o);
  ASSERT_GT(with - without, 4 * without) << "the validation should take most of the run";
  o.out_dir = dir.file("limited");
  o.epochs = 100;
  o.time_limit = without + 0.4 * (with - without);
  const train::TrainResult r = train::train(o);
  const int64_t per_epoch = 4;  // 64 pairs, batch 16
  EXPECT_EQ(r.steps, per_epoch);
  EXPECT_EQ(r.epochs_done, 1);
  const std::string log = io::read_file(dir.file("limited/train.log"));
  EXPECT_NE(log.find("reached --time-limit at step 4 (end of epoch 1)"), std::string::npos) << log;
  const nlohmann::json state = nlohmann::json::parse(io::read_file(dir.file("limited/checkpoint/trainer.json")));
  EXPECT_EQ(state.at("step").get<int64_t>(), per_epoch) << state.dump();
  EXPECT_EQ(state.at("epoch").get<int64_t>(), 1) << state.dump();  // the start of epoch 2
  EXPECT_EQ(state.at("batch_in_epoch").get<int64_t>(), 0) << state.dump();
}

// ---------------------------------------------------------------- over-long validation sources

TEST(TrainValidation, SourcesLongerThanTheModelTakesAreSkippedAndCounted) {
  TempDir dir;
  train::TrainOptions o = tiny_run(dir, "run");
  std::string long_source;
  for (int i = 0; i < 150; ++i) long_source += "may ";
  {
    std::ofstream v(dir.file("valid.tsv"));
    v << "june 5th 2012\t2012-06-05\n" << long_source << "\t2000-05-01\n" << "the third of march , 1999\t1999-03-03\n";
  }
  o.valid_path = dir.file("valid.tsv");
  train::TrainResult r;
  ASSERT_NO_THROW(r = train::train(o));
  EXPECT_GE(r.last_valid_bleu, 0.0);
  const std::string log = io::read_file(dir.file("run/train.log"));
  EXPECT_NE(log.find("skipped 1 validation sentence(s) longer than 100 tokens"), std::string::npos) << log;
  EXPECT_NE(log.find("2 validation pairs"), std::string::npos) << log;
  EXPECT_NE(log.find("epoch 1 done"), std::string::npos) << log;
}

// --max-len filters the training pairs only: validation pairs longer than it are scored too
// (they were dropped from the loss, and with all of them longer no validation ran at all).
TEST(TrainValidation, PairsLongerThanMaxLenAreValidatedToo) {
  TempDir dir;
  train::TrainOptions o = tiny_run(dir, "run");
  // --max-len: the longest training side; every validation source is made longer than that
  std::vector<std::pair<std::string, std::string>> pairs;
  int64_t longest = 0;
  {
    std::istringstream in(io::read_file(o.train_path));
    std::string line;
    while (std::getline(in, line)) {
      const size_t tab = line.find('\t');
      pairs.emplace_back(line.substr(0, tab), line.substr(tab + 1));
      longest = std::max<int64_t>({longest, static_cast<int64_t>(data::tokenize(pairs.back().first).size()),
                                   static_cast<int64_t>(data::tokenize(pairs.back().second).size())});
    }
  }
  o.max_len = longest;
  {
    std::ofstream v(dir.file("valid.tsv"));
    for (size_t i = 0; i < 3; ++i) {
      std::string src = pairs[i].first;
      while (static_cast<int64_t>(data::tokenize(src).size()) <= longest) src += " , " + pairs[i].first;
      v << src << "\t" << pairs[i].second << "\n";
    }
  }
  o.valid_path = dir.file("valid.tsv");
  train::TrainResult r;
  ASSERT_NO_THROW(r = train::train(o));
  const std::string log = io::read_file(dir.file("run/train.log"));
  EXPECT_NE(log.find("epoch 1 done"), std::string::npos) << log;
  EXPECT_GE(r.last_valid_bleu, 0.0);
  EXPECT_TRUE(fs::exists(dir.file("run/best"))) << log;
  EXPECT_EQ(log.find("no usable validation pair"), std::string::npos) << log;
}

TEST(TrainValidation, EvalNamesTheFileAndLineOfAnOverLongSource) {
  TempDir dir;
  train::TrainOptions o = tiny_run(dir, "run");
  const std::string model = train::train(o).checkpoint_dir;
  std::string long_source;
  for (int i = 0; i < 150; ++i) long_source += "may ";
  {
    std::ofstream t(dir.file("test.tsv"));
    t << "june 5th 2012\t2012-06-05\nmay 1st 2001\t2001-05-01\n" << long_source << "\t2000-05-01\n";
  }
  const std::string out = dir.file("eval.out");
  EXPECT_EQ(run(attn_binary() + " eval --device cpu --model " + model + " --test " + dir.file("test.tsv") + " > " + out +
                " 2>&1"),
            1);
  const std::string text = io::read_file(out);
  EXPECT_NE(text.find("test.tsv:3: the source sentence has 151 tokens"), std::string::npos) << text;
}

// ---------------------------------------------------------------- the command line: --epochs, --resume paths

TEST(TrainCli, ResumeTakesEpochsTenAndAnyFormOfTheCheckpointPath) {
  TempDir dir;
  train::TrainOptions o = tiny_run(dir, "run");
  const int64_t per_epoch = train::train(o).steps;  // epochs 1: the run is "done"
  const std::string attn = attn_binary() + " train --quiet --device cpu";
  const std::string out = dir.file("cli.out");
  // --epochs 10 equals the default but is given: it extends the finished run.
  ASSERT_EQ(run(attn + " --resume " + dir.file("run/checkpoint/") + " --epochs 10 --max-steps " +
                std::to_string(per_epoch + 2) + " > " + out + " 2>&1"),
            0)
      << io::read_file(out);
  std::string log = io::read_file(dir.file("run/train.log"));
  EXPECT_NE(log.find(fmt::format("trained 2 steps this session (steps {}-{})", per_epoch + 1, per_epoch + 2)), std::string::npos) << log;
  // The trailing slash continued in run/, not in a checkpoint nested inside the old one.
  EXPECT_FALSE(fs::exists(dir.file("run/checkpoint/checkpoint")));
  EXPECT_FALSE(fs::exists(dir.file("run/checkpoint/train.log")));
  // A bare relative name, from inside run/.
  ASSERT_EQ(run("cd " + dir.file("run") + " && " + attn + " --resume checkpoint --epochs 10 --max-steps " +
                std::to_string(per_epoch + 4) + " > " + out + " 2>&1"),
            0)
      << io::read_file(out);
  log = io::read_file(dir.file("run/train.log"));
  EXPECT_NE(log.find(fmt::format("trained 2 steps this session (steps {}-{})", per_epoch + 3, per_epoch + 4)), std::string::npos) << log;
  std::vector<std::string> entries;
  for (const auto& e : fs::directory_iterator(dir.file("run"))) entries.push_back(e.path().filename().string());
  std::sort(entries.begin(), entries.end());
  EXPECT_EQ(entries, (std::vector<std::string>{"checkpoint", "train.log"}));
}

TEST(TrainCli, ResumeWithoutEpochsKeepsTheRunsOwn) {
  TempDir dir;
  train::TrainOptions o = tiny_run(dir, "run");
  const int64_t per_epoch = train::train(o).steps;
  train::TrainOptions r = resume_from(dir.file("run/checkpoint"));
  r.epochs = 5;  // not given: the checkpoint's 1 stays, nothing more to do
  EXPECT_EQ(train::train(r).steps, per_epoch);
  r.epochs_given = true;
  r.max_steps = per_epoch + 1;
  EXPECT_EQ(train::train(r).steps, per_epoch + 1);
}

TEST(TrainCli, ResumeOfAFinishedRunTrainsNothingAndLeavesTheCheckpoint) {
  TempDir dir;
  train::TrainOptions o = tiny_run(dir, "run");
  o.max_steps = 3;
  ASSERT_EQ(train::train(o).steps, 3);
  const std::string weights = dir.file("run/checkpoint/model.safetensors");
  const std::string before = io::read_file(weights);
  train::TrainOptions r = resume_from(dir.file("run/checkpoint"));
  r.max_steps = 3;  // the limit it already reached (one more step used to be taken and saved)
  EXPECT_EQ(train::train(r).steps, 3);
  r.max_steps = 2;
  EXPECT_EQ(train::train(r).steps, 3);
  EXPECT_EQ(io::read_file(weights), before);
  EXPECT_NE(io::read_file(dir.file("run/train.log")).find("nothing to train: the run is at step 3"), std::string::npos);

  // Early stopping: patience 1 with a validation BLEU that cannot improve on itself after the
  // first epoch would have ended the run; a resume must not run another epoch.
  train::TrainOptions e = tiny_run(dir, "early");
  e.valid_path = e.train_path;
  e.epochs = 50;
  e.patience = 1;
  e.lr = 1e-9;  // nothing changes: every epoch after the first is "not better"
  const train::TrainResult stopped = train::train(e);
  ASSERT_LT(stopped.epochs_done, 50);
  train::TrainOptions re = resume_from(dir.file("early/checkpoint"));
  EXPECT_EQ(train::train(re).steps, stopped.steps);
  re.given = {"patience"};  // a larger patience continues it
  re.patience = 2;
  EXPECT_GT(train::train(re).steps, stopped.steps);
}

TEST(TrainCli, ResumeRefusesOptionsItWouldIgnoreAndTakesNewDataPaths) {
  TempDir dir;
  train::TrainOptions o = tiny_run(dir, "run");
  o.max_steps = 2;
  train::train(o);
  // the stored data path is absolute
  const std::string trainer = io::read_file(dir.file("run/checkpoint/trainer.json"));
  EXPECT_NE(trainer.find(fmt::format("\"train\": \"{}\"", fs::path(o.train_path).lexically_normal().string())),
            std::string::npos)
      << trainer;
  train::TrainOptions r = resume_from(dir.file("run/checkpoint"));
  r.max_steps = 3;
  r.given = {"resume", "lr", "hidden", "max-steps"};
  try {
    train::train(r);
    ADD_FAILURE() << "--lr and --hidden were accepted on a resume";
  } catch (const ValueError& e) {
    EXPECT_NE(std::string(e.what()).find("--lr, --hidden cannot change on a resume"), std::string::npos) << e.what();
  }
  // The data moved: --train names its new place.
  fs::rename(o.train_path, dir.file("moved.tsv"));
  r.given = {"resume", "max-steps"};
  EXPECT_THROW(train::train(r), IOError);
  r.given = {"resume", "max-steps", "train"};
  r.train_path = dir.file("moved.tsv");
  EXPECT_EQ(train::train(r).steps, 3);
  // the summary counts the steps of this session (it said "trained 3 steps")
  const std::string log = io::read_file(dir.file("run/train.log"));
  EXPECT_NE(log.find("trained 1 step this session (steps 3-3) in "), std::string::npos) << log;
  EXPECT_NE(log.find("trained 2 steps in "), std::string::npos) << log;
}

// SIGTERM and SIGINT stop training with a checkpoint and the shells' status for the signal
// (128 + its number: SIGTERM gave SIGINT's 130); an error also ends up in OUT/train.log.
TEST(TrainCli, ASignalSavesACheckpointAndExitsWithItsStatusAndErrorsAreLogged) {
  TempDir dir;
  tasks::write_tsv(tasks::generate_dates(256, 3), dir.file("train.tsv"));
  for (const auto& [sig, status] : {std::pair<const char*, int>{"TERM", 143}, {"INT", 130}}) {
    const std::string out = dir.file(std::string("run-") + sig);
    const std::string cmd = fmt::format(
        "{} train --quiet --device cpu --train {} --out {} --hidden 16 --batch 8 --min-freq 1 --epochs 1000 --log-every 1 "
        "> /dev/null 2>&1 & p=$!; for i in $(seq 300); do grep -q 'step' {}/train.log 2>/dev/null && break; sleep 0.1; done; "
        "kill -{} $p; wait $p; exit $?",
        attn_binary(), dir.file("train.tsv"), out, out, sig);
    EXPECT_EQ(run("bash -c " + shell_quote(cmd)), status) << sig;
    EXPECT_TRUE(fs::exists(out + "/checkpoint/trainer.json")) << sig;
    EXPECT_NE(io::read_file(out + "/train.log").find("interrupted"), std::string::npos) << sig;
  }
  std::ofstream(dir.file("bad.tsv")) << "a\tb\nno tab here\n";
  EXPECT_NE(run(fmt::format("{} train --quiet --train {} --out {} > /dev/null 2>&1", attn_binary(), dir.file("bad.tsv"),
                            dir.file("bad"))),
            0);
  const std::string log = io::read_file(dir.file("bad/train.log"));
  EXPECT_NE(log.find("error: "), std::string::npos) << log;
  EXPECT_NE(log.find("bad.tsv:2"), std::string::npos) << log;
}

// A resume applies the saved position in the epoch to the data it reads: other data (another
// file, or the file edited) are refused, naming both fingerprints; another thread count warns.
TEST(TrainCli, ResumeOnOtherTrainingDataIsRefusedAndAnotherThreadCountWarns) {
  TempDir dir;
  train::TrainOptions o = tiny_run(dir, "run");
  o.max_steps = 2;
  train::train(o);
  const std::string lines = io::read_file(o.train_path);
  {
    std::ofstream half(dir.file("half.tsv"));
    std::istringstream in(lines);
    std::string line;
    for (int i = 0; i < 32 && std::getline(in, line); ++i) half << line << "\n";
  }
  train::TrainOptions r = resume_from(dir.file("run/checkpoint"));
  r.max_steps = 3;
  r.given = {"resume", "max-steps", "train"};
  r.train_path = dir.file("half.tsv");
  try {
    train::train(r);
    ADD_FAILURE() << "a resume on half the training data was accepted";
  } catch (const ValueError& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("half.tsv: not the training data of the checkpoint"), std::string::npos) << msg;
    EXPECT_NE(msg.find("32 examples"), std::string::npos) << msg;
    EXPECT_NE(msg.find("64 examples"), std::string::npos) << msg;
  }
  // the run's own file, with a checkpoint that says another thread count: it resumes, and warns
  const std::string trainer_path = dir.file("run/checkpoint/trainer.json");
  nlohmann::json j = nlohmann::json::parse(io::read_file(trainer_path));
  ASSERT_TRUE(j.contains("threads"));
  j["threads"] = 999;
  io::write_file_atomic(trainer_path, j.dump(2));
  r.given = {"resume", "max-steps"};
  EXPECT_EQ(train::train(r).steps, 3);
  const std::string log = io::read_file(dir.file("run/train.log"));
  EXPECT_NE(log.find("the run used 999 CPU threads"), std::string::npos) << log;
}

TEST(TrainCli, ResumeIntoAnotherDirectoryTakesTheBestModelAlong) {
  TempDir dir;
  train::TrainOptions o = tiny_run(dir, "run");
  o.valid_path = o.train_path;
  o.epochs = 2;
  o.max_steps = 5;  // epoch 1 validated (best saved), stopped in epoch 2
  const train::TrainResult first = train::train(o);
  ASSERT_GE(first.best_bleu, 0.0);
  ASSERT_TRUE(fs::exists(dir.file("run/best/model.safetensors")));
  train::TrainOptions r = resume_from(dir.file("run/checkpoint"));
  r.out_dir = dir.file("elsewhere");
  r.max_steps = 6;  // still in epoch 2: no validation, no new best
  const train::TrainResult second = train::train(r);
  EXPECT_EQ(second.best_dir, dir.file("elsewhere/best"));
  EXPECT_EQ(io::read_file(dir.file("elsewhere/best/model.safetensors")), io::read_file(dir.file("run/best/model.safetensors")));
  EXPECT_NO_THROW(models::load_checkpoint(dir.file("elsewhere/best")));
}

TEST(TrainCli, AnOutputDirectoryThatCannotBeWrittenFailsBeforeTraining) {
  // (Not by permissions: the tests may run as root.) A file where a parent directory should be,
  // and a train.log that cannot be opened for writing.
  TempDir dir;
  train::TrainOptions o = tiny_run(dir, "run");
  io::write_file_atomic(dir.file("plain"), "x");
  o.out_dir = dir.file("plain/sub");
  try {
    train::train(o);
    ADD_FAILURE() << "trained into " << o.out_dir;
  } catch (const IOError& e) {
    EXPECT_NE(std::string(e.what()).find("cannot create the output directory"), std::string::npos) << e.what();
  }
  o.out_dir = dir.file("logdir");
  fs::create_directories(dir.file("logdir/train.log"));  // a directory: not writable as a file
  try {
    train::train(o);
    ADD_FAILURE() << "trained without a log";
  } catch (const IOError& e) {
    EXPECT_NE(std::string(e.what()).find("train.log"), std::string::npos) << e.what();
  }
  EXPECT_FALSE(fs::exists(dir.file("logdir/checkpoint")));
}

TEST(Checkpoint, SaveToAPathWithATrailingSlash) {
  TempDir dir;
  train::TrainOptions o = tiny_run(dir, "run");
  o.max_steps = 1;
  models::LoadedModel m = models::load_checkpoint(train::train(o).checkpoint_dir);
  for (int i = 0; i < 2; ++i)  // a new directory, then one replacing it
    ASSERT_NO_THROW(models::save_checkpoint(dir.file("x") + "/", *m.model, m.src_vocab, m.tgt_vocab)) << i;
  std::vector<std::string> inside;
  for (const auto& e : fs::directory_iterator(dir.file("x"))) inside.push_back(e.path().filename().string());
  std::sort(inside.begin(), inside.end());
  EXPECT_EQ(inside, (std::vector<std::string>{"config.json", "model.safetensors", "src.vocab", "tgt.vocab"}));
  for (const auto& e : fs::directory_iterator(dir.path())) {
    EXPECT_EQ(e.path().filename().string().find(".tmp-"), std::string::npos) << e.path();
    EXPECT_EQ(e.path().filename().string().find(".old-"), std::string::npos) << e.path();
  }
  // A leftover of an earlier process with this pid (pid 1 in containers) does not stop a save.
  const std::string stale = dir.file(fmt::format("x.old-{}", ::getpid()));
  fs::create_directories(stale);
  io::write_file_atomic(stale + "/junk", "x");
  EXPECT_NO_THROW(models::save_checkpoint(dir.file("x"), *m.model, m.src_vocab, m.tgt_vocab));
  EXPECT_NO_THROW(models::load_checkpoint(dir.file("x")));
  EXPECT_NO_THROW(models::load_checkpoint(dir.file("x") + "/"));
  EXPECT_EQ(models::normalize_dir(dir.file("x") + "/./"), fs::path(dir.file("x")));
}

// ---------------------------------------------------------------- options checked before training

// A run whose loss stops being finite stops before the update that would make every weight NaN,
// saying where and keeping what it wrote (it went on training and saving NaN weights).
TEST(TrainRun, DivergenceStopsBeforeTheUpdateThatWouldPoisonTheWeights) {
  TempDir dir;
  for (double clip : {0.0, 1.0}) {
    train::TrainOptions o = tiny_run(dir, fmt::format("diverge{}", clip));
    o.lr = 1e30;  // Adam moves every weight by about lr: finite after step 1, the next loss is not
    o.clip = clip;
    o.batch = 64;  // one batch an epoch: step 1's epoch ends with a checkpoint
    o.epochs = 3;
    expect_throw_with<ValueError>([&] { train::train(o); },
                                  {"training diverged at step 2", "epoch 2", "the loss is nan", "weights were not updated", "--lr"});
    // the checkpoint of epoch 1 is the last one written (the old code trained on and saved NaN
    // weights, which loading refuses)
    const std::string ck = o.out_dir + "/checkpoint";
    ASSERT_NO_THROW(models::load_checkpoint(ck)) << clip;
    EXPECT_EQ(nlohmann::json::parse(io::read_file(ck + "/trainer.json")).at("step").get<int64_t>(), 1) << clip;
  }
}

TEST(TrainOptions, ValuesTheModelCannotLoadAreRefusedBeforeTraining) {
  TempDir dir;
  auto refused = [&](auto set, std::initializer_list<std::string> mention) {
    train::TrainOptions o = tiny_run(dir, "run");
    set(o);
    expect_throw_with<ValueError>([&] { train::train(o); }, mention);
    EXPECT_FALSE(fs::exists(dir.file("run"))) << "nothing written";
  };
  refused([](train::TrainOptions& o) { o.dropout = 1.0; }, {"--dropout", "[0, 1)", "1"});
  refused([](train::TrainOptions& o) { o.dropout = -0.1; }, {"--dropout"});
  refused([](train::TrainOptions& o) { o.dropout = std::nan(""); }, {"--dropout"});
  refused([](train::TrainOptions& o) { o.label_smoothing = 1.0; }, {"--label-smoothing"});
  refused([](train::TrainOptions& o) { o.hidden = 0; }, {"--hidden"});
  refused([](train::TrainOptions& o) { o.max_len = 0; }, {"--max-len"});
  refused([](train::TrainOptions& o) { o.epochs = 0; }, {"--epochs"});
  refused([](train::TrainOptions& o) { o.lr = -1.0; }, {"--lr"});
  // counts past int32 overflowed the batcher (2^63-1: a crash, 2^62: an endless loop) and the
  // run's step arithmetic
  refused([](train::TrainOptions& o) { o.batch = std::numeric_limits<int64_t>::max(); }, {"--batch", "at most 2147483647"});
  refused([](train::TrainOptions& o) { o.batch = int64_t{1} << 62; }, {"--batch"});
  refused([](train::TrainOptions& o) { o.max_len = int64_t{1} << 62; }, {"--max-len"});
  refused([](train::TrainOptions& o) { o.epochs = std::numeric_limits<int64_t>::max(); }, {"--epochs"});
  refused([](train::TrainOptions& o) { o.attention = "bahdanau"; o.input_feeding = true; }, {"--input-feeding", "Luong", "Bahdanau"});
  // A vocabulary of the 4 special tokens only would make a config that cannot be loaded.
  train::TrainOptions o = tiny_run(dir, "run");
  o.min_freq = 1000000;
  expect_throw_with<ValueError>([&] { train::train(o); }, {"--min-freq", "train.tsv"});
  // The largest allowed dropout still gives a loadable checkpoint.
  o = tiny_run(dir, "ok");
  o.dropout = 0.99;
  o.max_steps = 1;
  EXPECT_NO_THROW(models::load_checkpoint(train::train(o).checkpoint_dir));
}

// ---------------------------------------------------------------- strict training state

TEST(TrainState, MissingOrForeignOptimizerStateIsAnErrorNamingTheFile) {
  TempDir dir;
  train::TrainOptions o = tiny_run(dir, "run");
  o.max_steps = 2;
  const std::string ck = train::train(o).checkpoint_dir;
  const std::string optimizer = io::read_file(ck + "/optimizer.safetensors");
  train::TrainOptions r = resume_from(ck);
  r.epochs_given = true;
  r.max_steps = 3;

  fs::remove(ck + "/optimizer.safetensors");
  expect_throw_with<IOError>([&] { models::load_checkpoint(ck); }, {ck, "optimizer.safetensors", "missing"});
  expect_throw_with<IOError>([&] { train::train(r); }, {"optimizer.safetensors", "missing"});
  // translate / eval read the model alone: its intact half still translates
  EXPECT_FALSE(models::load_checkpoint(ck, kCPU, /*training_state=*/false).training.has_value());
  // no best/ yet (no validation): the error says where the run's model is
  expect_throw_with<IOError>([&] { models::load_checkpoint(dir.file("run/best/")); },
                             {"not a model directory", "first validation", dir.file("run/checkpoint")});

  // The model's weights copied over it: names Adam does not know.
  fs::copy_file(ck + "/model.safetensors", ck + "/optimizer.safetensors");
  expect_throw_with<IOError>([&] { train::train(r); }, {ck + "/optimizer.safetensors", "unexpected tensor"});

  // An empty state at step 2.
  io::save_safetensors(ck + "/optimizer.safetensors", {});
  expect_throw_with<IOError>([&] { train::train(r); }, {"optimizer.safetensors", "no optimizer state"});

  // A step count stored as a float.
  io::SafetensorsFile f = io::parse_safetensors(optimizer, "optimizer");
  for (auto& [n, t] : f.tensors)
    if (n == "0.step") t = full(Shape{}, 2.0, {.dtype = DType::Float64});
  io::save_safetensors(ck + "/optimizer.safetensors", f.tensors);
  expect_throw_with<IOError>([&] { train::train(r); }, {"optimizer.safetensors", "0.step", "int64"});

  io::write_file_atomic(ck + "/optimizer.safetensors", optimizer);
  EXPECT_EQ(train::train(r).steps, 3);
}

TEST(TrainState, AdamLoadStateChecksEverySlot) {
  Tensor a = from_vector<float>({1.0f, 2.0f, 3.0f}), b = from_vector<float>({4.0f, 5.0f});
  a.requires_grad_(true);
  b.requires_grad_(true);
  optim::Adam opt({a, b}, {.lr = 0.1});
  a.set_grad(from_vector<float>({0.5f, -0.5f, 1.0f}));
  b.set_grad(from_vector<float>({1.0f, 1.0f}));
  opt.step();
  const std::vector<std::pair<std::string, Tensor>> good = opt.state();
  auto with = [&](const std::string& name, const Tensor& t) {
    std::vector<std::pair<std::string, Tensor>> s = good;
    bool found = false;
    for (auto& [n, v] : s)
      if (n == name) v = t, found = true;
    if (!found) s.emplace_back(name, t);
    return s;
  };
  auto without = [&](const std::string& name) {
    std::vector<std::pair<std::string, Tensor>> s;
    for (const auto& [n, v] : good)
      if (n != name) s.emplace_back(n, v);
    return s;
  };
  optim::Adam fresh({a, b}, {.lr = 0.1});
  expect_throw_with<DTypeError>([&] { fresh.load_state(with("0.step", full(Shape{}, 1.0, {.dtype = DType::Float64}))); },
                                {"0.step", "int64", "float64"});
  expect_throw_with<DTypeError>([&] { fresh.load_state(with("0.step", from_vector<int64_t>({1, 1}))); }, {"0.step", "[2]"});
  expect_throw_with<ValueError>([&] { fresh.load_state(with("1.step", full(Shape{}, -3.0, {.dtype = DType::Int64}))); },
                                {"1.step", "-3"});
  expect_throw_with<DTypeError>(
      [&] { fresh.load_state(with("1.exp_avg", zeros(Shape{2}, {.dtype = DType::Float64}))); }, {"1.exp_avg", "float64", "float32"});
  expect_throw_with<ShapeError>([&] { fresh.load_state(with("0.exp_avg_sq", zeros(Shape{2}))); }, {"0.exp_avg_sq", "[2]", "[3]"});
  expect_throw_with<ValueError>([&] { fresh.load_state(with("2.exp_avg", zeros(Shape{2}))); }, {"2.exp_avg", "unexpected"});
  expect_throw_with<ValueError>([&] { fresh.load_state(with("encoder.weight", zeros(Shape{2}))); }, {"encoder.weight"});
  expect_throw_with<ValueError>([&] { fresh.load_state(without("0.step")); }, {"0.step", "missing"});
  expect_throw_with<ValueError>([&] { fresh.load_state(without("1.exp_avg")); }, {"1.exp_avg", "missing"});
  // A failed load leaves the optimizer untouched; a good one restores the step counts.
  EXPECT_EQ(fresh.steps(0), 0);
  EXPECT_TRUE(fresh.state().empty());
  fresh.load_state(good);
  EXPECT_EQ(fresh.steps(0), 1);
  EXPECT_EQ(fresh.steps(1), 1);
  EXPECT_EQ(fresh.state().size(), good.size());
}

TEST(TrainState, TrainerJsonWithAMissingOrMistypedKeyNamesTheFile) {
  TempDir dir;
  train::TrainOptions o = tiny_run(dir, "run");
  o.max_steps = 1;
  const std::string ck = train::train(o).checkpoint_dir;
  const std::string original = io::read_file(ck + "/trainer.json");
  train::TrainOptions r = resume_from(ck);
  auto broken = [&](auto edit, const std::string& key) {
    nlohmann::json j = nlohmann::json::parse(original);
    edit(j);
    io::write_file_atomic(ck + "/trainer.json", j.dump());
    expect_throw_with<IOError>([&] { train::train(r); }, {ck + "/trainer.json", key});
  };
  broken([](nlohmann::json& j) { j.erase("best_bleu"); }, "best_bleu");
  broken([](nlohmann::json& j) { j["step"] = "seven"; }, "'step' must be an integer");
  broken([](nlohmann::json& j) { j["options"].erase("hidden"); }, "hidden");
  broken([](nlohmann::json& j) { j["tf_rng"].erase("offset"); }, "offset");
  broken([](nlohmann::json& j) { j["batch_in_epoch"] = -1; }, "batch_in_epoch");
  // not integers (truncated or overflowed before), or counters at int64's end (++step wrapped)
  broken([](nlohmann::json& j) { j["step"] = 1.5; }, "'step' must be an integer");
  broken([](nlohmann::json& j) { j["options"]["batch"] = 1e300; }, "'batch' must be an integer");
  broken([](nlohmann::json& j) { j["model_rng"]["seed"] = -3; }, "'seed' must be an integer >= 0");
  broken([](nlohmann::json& j) { j["step"] = std::numeric_limits<int64_t>::max(); }, "[0, 2^62)");
  broken([](nlohmann::json& j) { j["epoch"] = std::numeric_limits<int64_t>::max(); }, "[0, 2^62)");
}

}  // namespace
}  // namespace attn::test
