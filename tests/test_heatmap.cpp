// Attention heatmaps (models/viz/heatmap.h): the terminal rendering (shades, layout, UTF-8
// alignment, ANSI colors), the SVG document (well-formed XML, one cell per weight with the
// right color, escaping; xmllint when the machine has it) and the JSON-lines record.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <nlohmann/json.hpp>
#include <regex>

#include "core/error.h"
#include "core/io/atomic_file.h"
#include "models/viz/heatmap.h"
#include "tests/data_test_util.h"

namespace attn::test {
namespace {

using viz::Alignment;

// Code points of a UTF-8 string, each as its own string (a decoder independent of the library:
// a new code point starts at every byte that is not 10xxxxxx).
std::vector<std::string> code_points(const std::string& s) {
  std::vector<std::string> out;
  for (char c : s) {
    if ((static_cast<unsigned char>(c) & 0xC0) != 0x80 || out.empty()) out.emplace_back();
    out.back() += c;
  }
  return out;
}

std::vector<std::string> lines_of(const std::string& s) {
  std::vector<std::string> lines;
  size_t start = 0;
  for (size_t nl; (nl = s.find('\n', start)) != std::string::npos; start = nl + 1) lines.push_back(s.substr(start, nl - start));
  EXPECT_EQ(start, s.size()) << "the text should end in a newline";
  return lines;
}

std::string strip_ansi(const std::string& s) { return std::regex_replace(s, std::regex("\x1b\\[[0-9;]*m"), ""); }

// A German -> English example with multi-byte tokens on both sides.
Alignment example() {
  Alignment a;
  a.source_tokens = {"das", "häuschen", "ist", "groß", "’s", "."};
  a.output_tokens = {"the", "little", "house", "is", "big", "ä", "</s>"};
  const size_t m = a.source_tokens.size();
  for (size_t i = 0; i < a.output_tokens.size(); ++i) {
    std::vector<float> row(m);
    for (size_t j = 0; j < m; ++j) row[j] = static_cast<float>((i * 7 + j * 3) % 11) / 10.0f;  // 0.0 .. 1.0
    a.weights.push_back(row);
  }
  return a;
}

TEST(HeatmapText, ShadeRamp) {
  EXPECT_EQ(viz::shade_char(0.0f), ' ');
  EXPECT_EQ(viz::shade_char(0.05f), ' ');
  EXPECT_EQ(viz::shade_char(0.15f), '.');
  EXPECT_EQ(viz::shade_char(0.25f), ':');
  EXPECT_EQ(viz::shade_char(0.35f), '-');
  EXPECT_EQ(viz::shade_char(0.45f), '=');
  EXPECT_EQ(viz::shade_char(0.55f), '+');
  EXPECT_EQ(viz::shade_char(0.65f), '*');
  EXPECT_EQ(viz::shade_char(0.75f), '#');
  EXPECT_EQ(viz::shade_char(0.85f), '%');
  EXPECT_EQ(viz::shade_char(0.95f), '@');
  EXPECT_EQ(viz::shade_char(1.0f), '@');
  EXPECT_EQ(viz::shade_char(1.7f), '@');
  EXPECT_EQ(viz::shade_char(-0.3f), ' ');
  EXPECT_EQ(viz::shade_char(std::nanf("")), '?');
}

TEST(HeatmapText, LayoutCellsAndUtf8Alignment) {
  const Alignment a = example();
  const std::string text = viz::text_heatmap(a, false);
  EXPECT_EQ(text.find('\x1b'), std::string::npos);
  const std::vector<std::string> lines = lines_of(text);
  const size_t m = a.source_tokens.size(), n = a.output_tokens.size();
  const size_t header_rows = 8;  // "häuschen"
  const size_t label_w = 6;      // "little"
  ASSERT_EQ(lines.size(), header_rows + 1 + n + 1 + 1);

  // Headers: token j's r-th code point sits above the first character of cell j.
  for (size_t r = 0; r < header_rows; ++r) {
    const std::vector<std::string> cps = code_points(lines[r]);
    for (size_t j = 0; j < m; ++j) {
      const std::vector<std::string> tok = code_points(a.source_tokens[j]);
      const size_t col = label_w + 2 + 2 * j;
      const std::string expected = r < tok.size() ? tok[r] : " ";
      const std::string got = col < cps.size() ? cps[col] : " ";  // trailing spaces are trimmed
      EXPECT_EQ(got, expected) << "header row " << r << ", token " << j;
    }
  }
  const std::string border = std::string(label_w, ' ') + " +" + std::string(2 * m, '-') + "+";
  EXPECT_EQ(lines[header_rows], border);
  EXPECT_EQ(lines[header_rows + 1 + n], border);
  // Rows: padded label, " |", two ramp characters per weight, "|" — all the same width in code
  // points although "ä" is 2 bytes and "’" 3.
  for (size_t i = 0; i < n; ++i) {
    const std::vector<std::string> cps = code_points(lines[header_rows + 1 + i]);
    ASSERT_EQ(cps.size(), label_w + 2 + 2 * m + 1) << lines[header_rows + 1 + i];
    std::string label;
    for (size_t k = 0; k < label_w; ++k) label += cps[k];
    EXPECT_EQ(label, a.output_tokens[i] + std::string(label_w - code_points(a.output_tokens[i]).size(), ' '));
    EXPECT_EQ(cps[label_w] + cps[label_w + 1], " |");
    for (size_t j = 0; j < m; ++j) {
      const std::string shade(1, viz::shade_char(a.weights[i][j]));
      EXPECT_EQ(cps[label_w + 2 + 2 * j], shade) << "cell " << i << "," << j;
      EXPECT_EQ(cps[label_w + 3 + 2 * j], shade) << "cell " << i << "," << j;
    }
    EXPECT_EQ(cps.back(), "|");
  }
  EXPECT_EQ(lines.back(), "scale: 0.0  .:-=+*#%@ 1.0");
  // A weight of exactly 1 and of 0 in the example: the darkest and lightest shades are used.
  EXPECT_NE(text.find("@@"), std::string::npos);
}

TEST(HeatmapText, CombiningMarksAndControlsKeepTheGrid) {
  Alignment a;
  a.source_tokens = {"cafe\u0301", "x\ty"};  // é as e + combining acute; a tab must not reach the terminal
  a.output_tokens = {"cafe\u0301", "abcd"};
  a.weights = {{0.5f, 0.5f}, {1.0f, 0.0f}};
  const std::vector<std::string> lines = lines_of(viz::text_heatmap(a, false));
  ASSERT_EQ(lines.size(), 4u + 1 + 2 + 1 + 1);
  // The header's 4th row holds e + U+0301 together in the first column.
  EXPECT_EQ(lines[0], "      c x");
  EXPECT_EQ(lines[1], "      a \uFFFD");  // the tab became U+FFFD
  EXPECT_EQ(lines[3], "      e\u0301");
  // Both rows are 4 label columns wide: the combining mark takes no column.
  EXPECT_EQ(lines[5], "cafe\u0301 |++++|");
  EXPECT_EQ(lines[6], "abcd |@@  |");
  for (const std::string& line : lines) EXPECT_EQ(line.find('\t'), std::string::npos);
}

TEST(HeatmapText, LongTokensAreTruncated) {
  Alignment a;
  const std::string long_src = "donaudampfschifffahrtsgesellschaft";
  const std::string long_out = "rindfleischetikettierungsüberwachung";
  a.source_tokens = {long_src, "x"};
  a.output_tokens = {long_out, "y"};
  a.weights = {{0.25f, 0.85f}, {0.95f, 0.15f}};
  const std::vector<std::string> lines = lines_of(viz::text_heatmap(a, false));
  const size_t label_w = static_cast<size_t>(viz::kMaxLabelChars);
  ASSERT_EQ(lines.size(), static_cast<size_t>(viz::kMaxHeaderChars) + 5);
  for (int r = 0; r < viz::kMaxHeaderChars - 1; ++r) {
    EXPECT_EQ(code_points(lines[r])[label_w + 2], std::string(1, long_src[r]));
  }
  EXPECT_EQ(code_points(lines[viz::kMaxHeaderChars - 1])[label_w + 2], "\u2026");
  const std::string row0 = lines[viz::kMaxHeaderChars + 1];
  EXPECT_EQ(row0, "rindfleischetiketti\u2026 |::%%|");  // 19 characters and the ellipsis
  EXPECT_EQ(lines[viz::kMaxHeaderChars + 2], "y" + std::string(label_w - 1, ' ') + " |@@..|");
}

TEST(HeatmapText, ColorAddsOnlyEscapes) {
  const Alignment a = example();
  const std::string plain = viz::text_heatmap(a, false);
  const std::string colored = viz::text_heatmap(a, true);
  EXPECT_NE(colored, plain);
  EXPECT_EQ(strip_ansi(colored), plain);
  // weight 1 -> #fde725 -> cube (5, 4, 0) = 220, dark text; weight 0 -> #440154 -> (1, 0, 1) = 53,
  // light text.
  EXPECT_NE(colored.find("\x1b[48;5;220;38;5;16m@@\x1b[0m"), std::string::npos);
  EXPECT_NE(colored.find("\x1b[48;5;53;38;5;231m  \x1b[0m"), std::string::npos);
  // Every cell is colored: one background escape per weight plus the 10 legend entries.
  const std::regex bg("\x1b\\[48;5;");
  const auto count = std::distance(std::sregex_iterator(colored.begin(), colored.end(), bg), std::sregex_iterator());
  EXPECT_EQ(count, static_cast<long>(a.output_tokens.size() * a.source_tokens.size() + 10));
}

TEST(HeatmapText, ShapeMismatchIsAnError) {
  Alignment a = example();
  a.weights[2].pop_back();
  expect_throw_with<ValueError>([&] { viz::text_heatmap(a, false); }, {"row 2", "house", "5 weights", "6 source"});
  expect_throw_with<ValueError>([&] { viz::svg_heatmap(a, "t"); }, {"row 2"});
  expect_throw_with<ValueError>([&] { viz::alignment_jsonl(a, "s", "o", 0.0); }, {"row 2"});
  Alignment b = example();
  b.weights.pop_back();
  expect_throw_with<ValueError>([&] { viz::text_heatmap(b, false); }, {"6 rows", "7 output tokens"});
}

TEST(HeatmapColormap, ViridisAnchorsAndInterpolation) {
  EXPECT_EQ(viz::hex_color(viz::colormap(0.0f)), "#440154");
  EXPECT_EQ(viz::hex_color(viz::colormap(0.25f)), "#3b528b");
  EXPECT_EQ(viz::hex_color(viz::colormap(0.5f)), "#21918c");
  EXPECT_EQ(viz::hex_color(viz::colormap(0.75f)), "#5ec962");
  EXPECT_EQ(viz::hex_color(viz::colormap(1.0f)), "#fde725");
  // Halfway between the first two anchors: (68+59)/2 = 63.5 -> 64, (1+82)/2 = 41.5 -> 42, 111.5 -> 112.
  EXPECT_EQ(viz::hex_color(viz::colormap(0.125f)), "#402a70");
  EXPECT_EQ(viz::hex_color(viz::colormap(-1.0f)), "#440154");
  EXPECT_EQ(viz::hex_color(viz::colormap(2.0f)), "#fde725");
  // Brighter with the weight (viridis is perceptually monotone in lightness).
  double prev = -1;
  for (int k = 0; k <= 20; ++k) {
    const viz::Rgb c = viz::colormap(k / 20.0f);
    const double lum = 0.2126 * c.r + 0.7152 * c.g + 0.0722 * c.b;
    EXPECT_GT(lum, prev) << k;
    prev = lum;
  }
}

// ---------------------------------------------------------------- SVG

// A minimal XML well-formedness check: tags nest and close, attributes are quoted, '<' and '&'
// only start markup or references. Returns "" when fine, else what is wrong.
std::string xml_problem(const std::string& s) {
  std::vector<std::string> stack;
  size_t i = 0;
  bool seen_root = false;
  const std::regex ref("^&(amp|lt|gt|quot|apos|#[0-9]+|#x[0-9a-fA-F]+);");
  while (i < s.size()) {
    if (s[i] == '&') {
      std::smatch mm;
      const std::string rest = s.substr(i, 12);
      if (!std::regex_search(rest, mm, ref)) return "bad reference at " + std::to_string(i);
      i += mm.length(0);
      continue;
    }
    if (s[i] != '<') {
      if (s[i] == '>') return "stray > at " + std::to_string(i);
      if (stack.empty() && !std::isspace(static_cast<unsigned char>(s[i]))) return "text outside the root";
      ++i;
      continue;
    }
    if (s.compare(i, 5, "<?xml") == 0) {
      const size_t e = s.find("?>", i);
      if (e == std::string::npos || i != 0) return "bad XML declaration";
      i = e + 2;
      continue;
    }
    const size_t e = s.find('>', i);
    if (e == std::string::npos) return "unclosed tag";
    const std::string tag = s.substr(i + 1, e - i - 1);
    i = e + 1;
    if (tag.find('<') != std::string::npos) return "< inside a tag";
    if (!tag.empty() && tag[0] == '/') {
      if (stack.empty() || stack.back() != tag.substr(1)) return "mismatched </" + tag.substr(1) + ">";
      stack.pop_back();
      continue;
    }
    const bool self_closing = !tag.empty() && tag.back() == '/';
    const std::string body = self_closing ? tag.substr(0, tag.size() - 1) : tag;
    const std::string name = body.substr(0, body.find_first_of(" \n\t"));
    if (name.empty()) return "empty tag name";
    // attributes: name="value" pairs, nothing else
    const std::string attrs = body.substr(name.size());
    static const std::regex attr_re("^(\\s+[A-Za-z_:][-A-Za-z0-9_:.]*=\"[^\"<]*\")*\\s*$");
    if (!std::regex_match(attrs, attr_re)) return "bad attributes in <" + name + ">";
    if (stack.empty()) {
      if (seen_root) return "two root elements";
      seen_root = true;
    }
    if (!self_closing) stack.push_back(name);
  }
  if (!stack.empty()) return "unclosed <" + stack.back() + ">";
  return seen_root ? "" : "no root element";
}

TEST(HeatmapSvg, TheWellFormednessCheckerRejectsBrokenXml) {
  EXPECT_EQ(xml_problem("<a><b x=\"1\"/>t &amp; u</a>"), "");
  EXPECT_NE(xml_problem("<a><b></a>"), "");
  EXPECT_NE(xml_problem("<a>x < y</a>"), "");
  EXPECT_NE(xml_problem("<a>R&D</a>"), "");
  EXPECT_NE(xml_problem("<a t=\"\"\"/>"), "");
  EXPECT_NE(xml_problem("<a/><b/>"), "");
  EXPECT_NE(xml_problem("<a>"), "");
}

std::vector<std::string> all_matches(const std::string& s, const std::string& pattern, int group = 1) {
  std::vector<std::string> out;
  const std::regex re(pattern);
  for (auto it = std::sregex_iterator(s.begin(), s.end(), re); it != std::sregex_iterator(); ++it) out.push_back((*it)[group]);
  return out;
}

Alignment tricky_example() {
  Alignment a = example();
  a.source_tokens[1] = "<b>&\"x\"'";
  a.output_tokens[2] = "a<&>b";
  return a;
}

TEST(HeatmapSvg, StructureCellsColorsAndEscaping) {
  const Alignment a = tricky_example();
  const std::string svg = viz::svg_heatmap(a, "Attention: \"das häuschen\" & <co>");
  EXPECT_EQ(xml_problem(svg), "");
  EXPECT_EQ(svg.rfind("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<svg xmlns=\"http://www.w3.org/2000/svg\"", 0), 0u);
  const size_t n = a.output_tokens.size(), m = a.source_tokens.size();

  // One square cell per weight, in row-major order, filled with the color of its weight.
  const std::vector<std::string> cells =
      all_matches(svg, "<rect class=\"cell\" x=\"([0-9.]+)\" y=\"([0-9.]+)\" width=\"([0-9.]+)\" height=\"([0-9.]+)\" fill=\"(#[0-9a-f]{6})\"", 0);
  ASSERT_EQ(cells.size(), n * m);
  const std::regex cell_re("x=\"([0-9.]+)\" y=\"([0-9.]+)\" width=\"([0-9.]+)\" height=\"([0-9.]+)\" fill=\"(#[0-9a-f]{6})\"");
  double x0 = 0, y0 = 0, size = 0;
  for (size_t k = 0; k < cells.size(); ++k) {
    std::smatch mm;
    ASSERT_TRUE(std::regex_search(cells[k], mm, cell_re));
    const size_t i = k / m, j = k % m;
    const double x = std::stod(mm[1]), y = std::stod(mm[2]);
    EXPECT_EQ(mm[3], mm[4]) << "cells are square";
    if (k == 0) {
      x0 = x, y0 = y, size = std::stod(mm[3]);
      EXPECT_GT(size, 0);
    }
    EXPECT_NEAR(x, x0 + static_cast<double>(j) * size, 0.06) << k;
    EXPECT_NEAR(y, y0 + static_cast<double>(i) * size, 0.06) << k;
    EXPECT_EQ(mm[5], viz::hex_color(viz::colormap(a.weights[i][j]))) << k;
  }
  EXPECT_EQ(all_matches(svg, "<rect class=\"colorbar\"", 0).size(), 1u);

  // Token labels in order, escaped; the raw tokens never appear.
  const std::vector<std::string> texts = all_matches(svg, "<text [^>]*>([^<]*)</text>");
  // title, m source tokens, n output tokens, 6 color-bar labels
  ASSERT_EQ(texts.size(), 1 + m + n + 6);
  EXPECT_EQ(texts[0], "Attention: &quot;das häuschen&quot; &amp; &lt;co&gt;");
  EXPECT_EQ(texts[1], "das");
  EXPECT_EQ(texts[2], "&lt;b&gt;&amp;&quot;x&quot;&apos;");
  EXPECT_EQ(texts[4], "groß");
  EXPECT_EQ(texts[5], "’s");
  EXPECT_EQ(texts[1 + m + 2], "a&lt;&amp;&gt;b");
  EXPECT_EQ(texts[1 + m + 5], "ä");
  EXPECT_EQ(texts[1 + m + 6], "&lt;/s&gt;");
  const std::vector<std::string> scale(texts.end() - 6, texts.end());
  EXPECT_EQ(scale, (std::vector<std::string>{"0.0", "0.2", "0.4", "0.6", "0.8", "1.0"}));
  EXPECT_EQ(svg.find("<b>"), std::string::npos);
  EXPECT_EQ(svg.find("a<&>b"), std::string::npos);
  // Source labels are rotated.
  EXPECT_EQ(all_matches(svg, "transform=\"rotate\\(-60 ", 0).size(), m);
  // The cell tooltips name both tokens and the weight.
  EXPECT_NE(svg.find("<title>a&lt;&amp;&gt;b \u2190 &lt;b&gt;&amp;&quot;x&quot;&apos;: "), std::string::npos);
}

TEST(HeatmapSvg, XmllintAcceptsIt) {
  if (std::system("command -v xmllint > /dev/null 2>&1") != 0) GTEST_SKIP() << "xmllint is not installed";
  TempDir dir;
  Alignment a = tricky_example();
  a.source_tokens[0] = "bad\x01\xff";  // a control character and an invalid byte
  const std::string path = dir.file("heat.svg");
  viz::write_svg(path, a, "t\x02<>");
  const std::string svg = io::read_file(path);
  EXPECT_EQ(svg, viz::svg_heatmap(a, "t\x02<>"));
  EXPECT_EQ(svg.find('\x01'), std::string::npos);
  EXPECT_NE(svg.find("bad\uFFFD\uFFFD"), std::string::npos);
  EXPECT_EQ(std::system(("xmllint --noout '" + path + "' 2> '" + dir.file("err") + "'").c_str()), 0)
      << io::read_file(dir.file("err"));
  // And xmllint does reject a broken file (the check can fail).
  io::write_file_atomic(dir.file("bad.svg"), svg.substr(0, svg.size() - 8));
  EXPECT_NE(std::system(("xmllint --noout '" + dir.file("bad.svg") + "' 2> /dev/null").c_str()), 0);
}

TEST(HeatmapSvg, EmptyAlignmentIsStillADocument) {
  Alignment a;
  const std::string svg = viz::svg_heatmap(a, "");
  EXPECT_EQ(xml_problem(svg), "");
  EXPECT_EQ(all_matches(svg, "<rect class=\"cell\"", 0).size(), 0u);
}

// ---------------------------------------------------------------- JSON lines

TEST(HeatmapJsonl, OneLineThatReadsBack) {
  Alignment a = example();
  a.weights[0][0] = 0.1f;
  a.weights[0][1] = std::nanf("");
  a.output_tokens[1] = "line\nbreak \"q\"";
  const std::string line = viz::alignment_jsonl(a, "Das Häuschen ist groß.", "the little house is big", -3.25);
  ASSERT_FALSE(line.empty());
  EXPECT_EQ(line.back(), '\n');
  EXPECT_EQ(line.find('\n'), line.size() - 1) << "exactly one line";
  EXPECT_EQ(line.rfind("{\"source\":\"Das Häuschen ist groß.\",\"output\":\"the little house is big\",\"score\":-3.25,", 0), 0u)
      << line;
  EXPECT_NE(line.find("[[0.1,null,"), std::string::npos) << "shortest float text, NaN as null";
  // with an input line number, it comes first
  EXPECT_EQ(viz::alignment_jsonl(a, "s", "o", 0.5, 7).rfind("{\"line\":7,\"source\":\"s\",", 0), 0u);

  const nlohmann::json j = nlohmann::json::parse(line);
  EXPECT_EQ(j.size(), 6u);
  EXPECT_EQ(j["source"], "Das Häuschen ist groß.");
  EXPECT_EQ(j["output"], "the little house is big");
  EXPECT_EQ(j["score"].get<double>(), -3.25);
  EXPECT_EQ(j["source_tokens"].get<std::vector<std::string>>(), a.source_tokens);
  EXPECT_EQ(j["output_tokens"].get<std::vector<std::string>>(), a.output_tokens);
  ASSERT_EQ(j["attention"].size(), a.weights.size());
  for (size_t i = 0; i < a.weights.size(); ++i) {
    ASSERT_EQ(j["attention"][i].size(), a.weights[i].size());
    for (size_t k = 0; k < a.weights[i].size(); ++k) {
      if (std::isnan(a.weights[i][k])) {
        EXPECT_TRUE(j["attention"][i][k].is_null());
      } else {
        EXPECT_EQ(static_cast<float>(j["attention"][i][k].get<double>()), a.weights[i][k]) << i << "," << k;
      }
    }
  }
}

TEST(HeatmapJsonl, InvalidUtf8IsReplacedNotThrown) {
  Alignment a;
  a.source_tokens = {"\xff"};
  a.output_tokens = {"x"};
  a.weights = {{1.0f}};
  const std::string line = viz::alignment_jsonl(a, "bad \xC3", "x", 0.5);
  const nlohmann::json j = nlohmann::json::parse(line);
  EXPECT_EQ(j["source_tokens"][0], "\uFFFD");
  EXPECT_EQ(j["source"], "bad \uFFFD");
  EXPECT_EQ(j["attention"][0][0].get<double>(), 1.0);
}

}  // namespace
}  // namespace attn::test
