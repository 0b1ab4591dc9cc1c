// The translators against an independent PyTorch implementation of the article's equations
// (bench/torch_model_parity.py, PyTorch 1.13, float64): the loss and every parameter's gradient
// of one small batch, for each attention kind, with a bidirectional two-layer encoder, input
// feeding, label smoothing, padding and sentences without teacher forcing among them. The
// parameters are a formula of their position, not random draws, so the reference numbers
// depend on the equations only. A gradient is compared through two fingerprints, its sum
// weighted by cos(0.37 i + 0.2) and its sum of squares; a change to which state feeds which
// layer moves them by far more than the tolerance (a query from the bottom layer instead of the
// top one moved Bahdanau's fc_hidden gradient by 115%).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "core/ops/ops.h"
#include "models/seq2seq/model.h"

namespace attn::test {
namespace {

struct GradFingerprint {
  std::string name;
  double weighted_sum, sum_of_squares;
};

struct ParityCase {
  std::string name;
  models::AttentionKind attention;
  int64_t hidden, layers;
  bool bidirectional, input_feeding;
  double label_smoothing;
  std::string teacher_forcing;  // per sentence: '1' feeds the reference, '0' the model's argmax
  double loss;
  std::vector<GradFingerprint> grads;  // every parameter, in name order
};

const std::vector<ParityCase>& parity_cases() {
  static const std::vector<ParityCase> cases = {
    // printed by bench/torch_model_parity.py (PyTorch 1.13.0a0, float64)
    {"bahdanau_bi2", models::AttentionKind::Bahdanau, 7, 2, true, false, 0.1, "101", 3.2067760661650477,
      {
        {"decoder.classifier.bias", 0.063245598632051425, 0.079543230009018348},
        {"decoder.classifier.weight", -0.28784743104602933, 0.065201898228805427},
        {"decoder.embedding.weight", 0.00016695869958725831, 1.2980399054389265e-07},
        {"decoder.fc_encoder.weight", -3.4322877393415159e-08, 3.0763375523617666e-12},
        {"decoder.fc_hidden.weight", 2.6123139609085553e-08, 9.6420157232782927e-12},
        {"decoder.lstm.bias_hh_l0", 0.00022341031508703822, 2.2082037914922292e-07},
        {"decoder.lstm.bias_hh_l1", 0.0012700188206581856, 9.6246151376012704e-05},
        {"decoder.lstm.bias_ih_l0", 0.00022341031508703822, 2.2082037914922292e-07},
        {"decoder.lstm.bias_ih_l1", 0.0012700188206581856, 9.6246151376012704e-05},
        {"decoder.lstm.weight_hh_l0", -5.0693291672508354e-05, 1.8009768229618772e-07},
        {"decoder.lstm.weight_hh_l1", 0.00051646124730560347, 6.1729159165917918e-05},
        {"decoder.lstm.weight_ih_l0", -0.00038340435197783555, 5.5326591774971203e-07},
        {"decoder.lstm.weight_ih_l1", 1.3336989080660204e-05, 3.7719385724118316e-06},
        {"decoder.weight", -1.9836591489189477e-07, 2.7853229463180931e-13},
        {"encoder.embedding.weight", -0.00023726472950937242, 1.3530666639220097e-07},
        {"encoder.lstm.bias_hh_l0", 3.7121690604186494e-05, 5.2683362862272591e-08},
        {"encoder.lstm.bias_hh_l0_reverse", 0.0006272525769295288, 1.5785378748998355e-07},
        {"encoder.lstm.bias_hh_l1", 0.00164353956220493, 1.699339398426416e-06},
        {"encoder.lstm.bias_hh_l1_reverse", 0.00036058181183559561, 1.9187862678338112e-06},
        {"encoder.lstm.bias_ih_l0", 3.7121690604186494e-05, 5.2683362862272591e-08},
        {"encoder.lstm.bias_ih_l0_reverse", 0.0006272525769295288, 1.5785378748998355e-07},
        {"encoder.lstm.bias_ih_l1", 0.00164353956220493, 1.699339398426416e-06},
        {"encoder.lstm.bias_ih_l1_reverse", 0.00036058181183559561, 1.9187862678338112e-06},
        {"encoder.lstm.weight_hh_l0", 2.7663441404198697e-05, 5.0984148270543786e-10},
        {"encoder.lstm.weight_hh_l0_reverse", 6.5345820972538925e-05, 1.1795539665085197e-07},
        {"encoder.lstm.weight_hh_l1", -3.4142853455862479e-05, 1.3323163399705622e-08},
        {"encoder.lstm.weight_hh_l1_reverse", -0.00022850656533691789, 1.09887388248168e-06},
        {"encoder.lstm.weight_ih_l0", -0.00011656268199158007, 6.6296196109863492e-08},
        {"encoder.lstm.weight_ih_l0_reverse", -9.0931991065052061e-05, 1.9871074460190445e-07},
        {"encoder.lstm.weight_ih_l1", -0.0023621020295773415, 1.9297411592606179e-06},
        {"encoder.lstm.weight_ih_l1_reverse", -0.0011565949580391146, 3.1571365090562006e-06},
      }},
    {"dot_1", models::AttentionKind::Dot, 6, 1, false, false, 0.0, "111", 3.2748593793089587,
      {
        {"decoder.classifier.bias", 0.06340776157380873, 0.10675380392605115},
        {"decoder.classifier.weight", -0.19517010552026037, 0.029301625735207087},
        {"decoder.embedding.weight", -0.049301985764883538, 0.011380097265663486},
        {"decoder.lstm.bias_hh_l0", -0.11094781483522094, 0.01706612461493176},
        {"decoder.lstm.bias_ih_l0", -0.11094781483522094, 0.01706612461493176},
        {"decoder.lstm.weight_hh_l0", -0.014474791329941611, 0.00058936755357023949},
        {"decoder.lstm.weight_ih_l0", 0.077166542899534993, 0.006633435918774605},
        {"encoder.embedding.weight", 0.0090837888073401884, 0.0032946178787393518},
        {"encoder.lstm.bias_hh_l0", 0.017058928152343104, 0.0098265097026457218},
        {"encoder.lstm.bias_ih_l0", 0.017058928152343104, 0.0098265097026457218},
        {"encoder.lstm.weight_hh_l0", -0.0038830750368260359, 0.00036721927537260754},
        {"encoder.lstm.weight_ih_l0", -0.060735068501024315, 0.0052954245771030615},
      }},
    {"general_feed2", models::AttentionKind::General, 5, 2, false, true, 0.1, "011", 3.2523550680225592,
      {
        {"decoder.attention.fc.weight", -1.8885989139632869e-06, 9.838723490810876e-11},
        {"decoder.classifier.bias", 0.033332521133155824, 0.092309363256429855},
        {"decoder.classifier.weight", 0.052569200063509423, 0.0018017183466971585},
        {"decoder.embedding.weight", -0.00065101461880607702, 1.0527233376223177e-05},
        {"decoder.lstm.bias_hh_l0", 0.0097906277082325192, 0.00024294696308829628},
        {"decoder.lstm.bias_hh_l1", -0.12800450906611299, 0.012140554617764693},
        {"decoder.lstm.bias_ih_l0", 0.0097906277082325192, 0.00024294696308829628},
        {"decoder.lstm.bias_ih_l1", -0.12800450906611299, 0.012140554617764693},
        {"decoder.lstm.weight_hh_l0", 0.0015568563358774271, 1.4069441610961866e-05},
        {"decoder.lstm.weight_hh_l1", 0.0038432986841788978, 0.00012797407284334918},
        {"decoder.lstm.weight_ih_l0", -0.012578259416050562, 6.1148380977009832e-05},
        {"decoder.lstm.weight_ih_l1", -0.0012746436397411431, 0.00035561479357108789},
        {"encoder.embedding.weight", -4.5454326386249139e-05, 5.8243355125324241e-06},
        {"encoder.lstm.bias_hh_l0", 0.0024811894137335465, 4.7124150427217223e-05},
        {"encoder.lstm.bias_hh_l1", 0.043418651363237401, 0.0021057569077548698},
        {"encoder.lstm.bias_ih_l0", 0.0024811894137335465, 4.7124150427217223e-05},
        {"encoder.lstm.bias_ih_l1", 0.043418651363237401, 0.0021057569077548698},
        {"encoder.lstm.weight_hh_l0", 0.00050995842392580551, 4.2515437353175262e-06},
        {"encoder.lstm.weight_hh_l1", 0.00064142829123929026, 4.697049086787908e-06},
        {"encoder.lstm.weight_ih_l0", 0.0013323828557479903, 4.5183743249114928e-05},
        {"encoder.lstm.weight_ih_l1", 0.0029988094942551189, 0.00041428878919951771},
      }},
    {"concat_bi2_feed", models::AttentionKind::Concat, 7, 2, true, true, 0.1, "110", 3.1881756092010094,
      {
        {"decoder.attention.fc.weight", 0.00014498660946943697, 1.0661073397401232e-07},
        {"decoder.attention.weight", 6.48850671899157e-05, 2.9343998649392745e-08},
        {"decoder.classifier.bias", -0.004907533735510089, 0.079574987642588274},
        {"decoder.classifier.weight", -0.048034937186277167, 0.17332017070541955},
        {"decoder.embedding.weight", 0.00016740795331163488, 2.3422622131380495e-06},
        {"decoder.lstm.bias_hh_l0", 0.00078716943833645795, 1.105095981646237e-06},
        {"decoder.lstm.bias_hh_l1", -0.0029566381145454314, 9.4972916036126562e-05},
        {"decoder.lstm.bias_ih_l0", 0.00078716943833645795, 1.105095981646237e-06},
        {"decoder.lstm.bias_ih_l1", -0.0029566381145454314, 9.4972916036126562e-05},
        {"decoder.lstm.weight_hh_l0", -0.00014459217052172828, 2.0911916089818374e-06},
        {"decoder.lstm.weight_hh_l1", 0.0013252198488153321, 4.2094188779313478e-05},
        {"decoder.lstm.weight_ih_l0", 0.00058923055185727943, 1.8044813760311298e-06},
        {"decoder.lstm.weight_ih_l1", 0.00054825978064606965, 1.6728808372233589e-05},
        {"encoder.embedding.weight", -0.0026468383981595599, 2.1702264125181179e-06},
        {"encoder.lstm.bias_hh_l0", -0.00072361754496316885, 3.6823265985797451e-07},
        {"encoder.lstm.bias_hh_l0_reverse", -8.5419725818528777e-05, 9.2959929677499348e-07},
        {"encoder.lstm.bias_hh_l1", -0.0019285309894804396, 4.9810121706999475e-06},
        {"encoder.lstm.bias_hh_l1_reverse", 0.0013395224570748275, 2.5718144515973709e-06},
        {"encoder.lstm.bias_ih_l0", -0.00072361754496316885, 3.6823265985797451e-07},
        {"encoder.lstm.bias_ih_l0_reverse", -8.5419725818528777e-05, 9.2959929677499348e-07},
        {"encoder.lstm.bias_ih_l1", -0.0019285309894804396, 4.9810121706999475e-06},
        {"encoder.lstm.bias_ih_l1_reverse", 0.0013395224570748275, 2.5718144515973709e-06},
        {"encoder.lstm.weight_hh_l0", 3.6547550886879097e-05, 3.3631192539928099e-09},
        {"encoder.lstm.weight_hh_l0_reverse", 3.3885785584436334e-05, 1.3267601838700246e-06},
        {"encoder.lstm.weight_hh_l1", 0.00040252250018528289, 8.5275462879149322e-08},
        {"encoder.lstm.weight_hh_l1_reverse", -0.0015349173730450131, 2.4312187362901523e-06},
        {"encoder.lstm.weight_ih_l0", -0.00052470336675686517, 4.5993792517171038e-07},
        {"encoder.lstm.weight_ih_l0_reverse", -6.9381141172226123e-05, 1.1673233374352425e-06},
        {"encoder.lstm.weight_ih_l1", 0.0018920370302333515, 9.725821404375196e-06},
        {"encoder.lstm.weight_ih_l1_reverse", 0.0015348196234503926, 4.4007589735907119e-06},
      }},
  };
  return cases;
}

// The same formulas as bench/torch_model_parity.py.
double param_value(int64_t k, int64_t i) { return 0.6 * std::sin(0.9 * static_cast<double>(i) + 1.7 * static_cast<double>(k) + 0.3); }
double fingerprint_weight(int64_t i) { return std::cos(0.37 * static_cast<double>(i) + 0.2); }

class ModelParity : public ::testing::TestWithParam<ParityCase> {};

TEST_P(ModelParity, LossAndEveryGradientMatchPyTorch) {
  const ParityCase& pc = GetParam();
  models::ModelConfig cfg;
  cfg.attention = pc.attention;
  cfg.hidden = pc.hidden;
  cfg.layers = pc.layers;
  cfg.bidirectional = pc.bidirectional;
  cfg.input_feeding = pc.input_feeding;
  cfg.dropout = 0.0;
  cfg.src_vocab_size = 19;
  cfg.tgt_vocab_size = 23;
  Generator gen(5);
  models::Seq2Seq model(cfg, gen);
  model.train();

  // the parameters: float64 leaves set by the formula, the k-th name in sorted order
  std::vector<std::string> names;
  for (const auto& [name, p] : model.named_parameters()) names.push_back(name);
  std::sort(names.begin(), names.end());
  std::vector<std::string> want_names;
  for (const GradFingerprint& g : pc.grads) want_names.push_back(g.name);
  ASSERT_EQ(names, want_names);
  for (size_t k = 0; k < names.size(); ++k) {
    Tensor& slot = model.parameter(names[k]);
    std::vector<double> values(static_cast<size_t>(slot.numel()));
    for (size_t i = 0; i < values.size(); ++i) values[i] = param_value(static_cast<int64_t>(k), static_cast<int64_t>(i));
    slot = from_vector<double>(values, slot.shape());
    slot.requires_grad_(true);
  }

  // the batch: sources of 5, 2 and 4 tokens, targets of 3, 5 and 1 (+ </s>), padded with 0
  const std::vector<std::vector<int64_t>> sources = {{5, 9, 17, 4, 11}, {13, 6}, {7, 7, 18, 10}};
  const std::vector<std::vector<int64_t>> targets = {{8, 21, 5}, {4, 12, 19, 12, 9}, {15}};
  const int64_t B = 3, S = 5, T = 6;
  std::vector<int64_t> src(B * S, 0), tgt_in(B * T, 0), tgt_out(B * T, 0), src_len, tgt_len;
  std::vector<bool> force;
  for (int64_t b = 0; b < B; ++b) {
    const auto& s = sources[static_cast<size_t>(b)];
    const auto& t = targets[static_cast<size_t>(b)];
    std::copy(s.begin(), s.end(), src.begin() + b * S);
    tgt_in[static_cast<size_t>(b * T)] = 1;  // <s>
    for (size_t i = 0; i < t.size(); ++i) {
      tgt_in[static_cast<size_t>(b * T) + 1 + i] = t[i];
      tgt_out[static_cast<size_t>(b * T) + i] = t[i];
    }
    tgt_out[static_cast<size_t>(b * T) + t.size()] = 2;  // </s>
    src_len.push_back(static_cast<int64_t>(s.size()));
    tgt_len.push_back(static_cast<int64_t>(t.size()) + 1);
    force.push_back(pc.teacher_forcing[static_cast<size_t>(b)] == '1');
  }
  const models::Seq2Seq::Loss l =
      model.loss(from_vector<int64_t>(src, Shape{B, S}), from_vector<int64_t>(src_len, Shape{B}),
                 from_vector<int64_t>(tgt_in, Shape{B, T}), from_vector<int64_t>(tgt_out, Shape{B, T}),
                 from_vector<int64_t>(tgt_len, Shape{B}), force, pc.label_smoothing);
  ASSERT_EQ(l.tokens, 12);
  const Tensor loss = div(l.total, full({}, static_cast<double>(l.tokens), {.dtype = DType::Float64}));
  EXPECT_NEAR(loss.item<double>(), pc.loss, 1e-12 * std::fabs(pc.loss));
  loss.backward();

  for (size_t k = 0; k < names.size(); ++k) {
    const GradFingerprint& want = pc.grads[k];
    const Tensor grad = model.parameter(names[k]).grad();
    ASSERT_TRUE(grad.defined()) << names[k];
    const std::vector<double> g = grad.to_vector<double>();
    double weighted = 0, squares = 0;
    for (size_t i = 0; i < g.size(); ++i) {
      weighted += g[i] * fingerprint_weight(static_cast<int64_t>(i));
      squares += g[i] * g[i];
    }
    // |weighted sum| <= |g| sqrt(n): the scale of its rounding
    const double scale = std::sqrt(want.sum_of_squares * static_cast<double>(g.size()));
    EXPECT_NEAR(weighted, want.weighted_sum, 1e-9 * scale) << pc.name << ": " << names[k];
    EXPECT_NEAR(squares, want.sum_of_squares, 1e-9 * want.sum_of_squares) << pc.name << ": " << names[k];
  }
}

INSTANTIATE_TEST_SUITE_P(Article, ModelParity, ::testing::ValuesIn(parity_cases()),
                         [](const ::testing::TestParamInfo<ParityCase>& info) { return info.param.name; });

}  // namespace
}  // namespace attn::test
