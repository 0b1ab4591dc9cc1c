#include "models/viz/heatmap.h"

#include <fmt/format.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdlib>
#include <numbers>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/io/atomic_file.h"
#include "models/data/unicode.h"

namespace attn::viz {
namespace {

void check_shape(const Alignment& a) {
  ATTN_CHECK(a.weights.size() == a.output_tokens.size(), ValueError,
             "attention heatmap: {} rows of weights for {} output tokens", a.weights.size(), a.output_tokens.size());
  for (size_t i = 0; i < a.weights.size(); ++i) {
    ATTN_CHECK(a.weights[i].size() == a.source_tokens.size(), ValueError,
               "attention heatmap: row {} (output token '{}') has {} weights for {} source tokens", i,
               a.output_tokens[i], a.weights[i].size(), a.source_tokens.size());
  }
}

bool is_combining(char32_t cp) {
  return (cp >= 0x0300 && cp <= 0x036F) || (cp >= 0x1AB0 && cp <= 0x1AFF) || (cp >= 0x1DC0 && cp <= 0x1DFF) ||
         (cp >= 0x20D0 && cp <= 0x20FF) || (cp >= 0xFE20 && cp <= 0xFE2F);
}

// Code points a terminal or an XML document must not receive: C0 controls (all of them for the
// terminal; all but tab, LF and CR for XML), DEL and the C1 controls.
bool is_control(char32_t cp, bool allow_whitespace) {
  if (allow_whitespace && (cp == U'\t' || cp == U'\n' || cp == U'\r')) return false;
  return cp < 0x20 || (cp >= 0x7F && cp <= 0x9F);
}

// A token as terminal cells: each glyph is a base character with the combining marks that
// follow it. Controls and invalid bytes become U+FFFD; a leading combining mark gets a space
// as its base.
std::vector<std::string> glyphs(const std::string& token) {
  std::vector<std::string> out;
  size_t i = 0;
  while (i < token.size()) {
    char32_t cp = data::next_code_point(token, i);
    if (is_control(cp, false)) cp = 0xFFFD;
    if (is_combining(cp)) {
      if (out.empty()) out.emplace_back(" ");
      data::append_utf8(out.back(), cp);
    } else {
      out.emplace_back();
      data::append_utf8(out.back(), cp);
    }
  }
  return out;
}

// At most `max` glyphs; a longer token keeps max - 1 and ends in "…".
std::vector<std::string> truncated_glyphs(const std::string& token, int max) {
  std::vector<std::string> g = glyphs(token);
  if (static_cast<int>(g.size()) > max) {
    g.resize(static_cast<size_t>(max - 1));
    g.emplace_back("\u2026");
  }
  return g;
}

std::string join(const std::vector<std::string>& parts) {
  std::string s;
  for (const std::string& p : parts) s += p;
  return s;
}

float clamp01(float w) { return std::min(1.0f, std::max(0.0f, w)); }

// Two-character cell of the text heatmap, optionally with ANSI colors.
std::string text_cell(float w, bool color, int chars) {
  const std::string shade(static_cast<size_t>(chars), shade_char(w));
  if (!color) return shade;
  if (std::isnan(w)) return "\x1b[7m" + shade + "\x1b[0m";  // reverse video for NaN
  const Rgb c = colormap(w);
  const double luminance = (0.2126 * c.r + 0.7152 * c.g + 0.0722 * c.b) / 255.0;
  const int fg = luminance > 0.5 ? 16 : 231;  // black on light, white on dark
  return fmt::format("\x1b[48;5;{};38;5;{}m{}\x1b[0m", ansi256(c), fg, shade);
}

std::string rstrip(std::string s) {
  while (!s.empty() && s.back() == ' ') s.pop_back();
  return s;
}

// Shortest decimal that reads back as the same float, as a double for nlohmann::json.
nlohmann::ordered_json json_float(float v) {
  if (!std::isfinite(v)) return nullptr;
  char buf[64];
  auto res = std::to_chars(buf, buf + sizeof(buf), v);
  *res.ptr = '\0';
  return std::strtod(buf, nullptr);
}

}  // namespace

char shade_char(float weight) {
  if (std::isnan(weight)) return '?';
  const int n = 10;
  int k = static_cast<int>(std::floor(clamp01(weight) * n));
  k = std::min(k, n - 1);
  return kShadeRamp[k];
}

Rgb colormap(float weight) {
  // Matplotlib's viridis at 0, 1/4, 1/2, 3/4 and 1.
  static constexpr int kAnchors[5][3] = {{68, 1, 84}, {59, 82, 139}, {33, 145, 140}, {94, 201, 98}, {253, 231, 37}};
  const double w = std::isnan(weight) ? 0.0 : clamp01(weight);
  const double pos = w * 4.0;
  const int k = std::min(3, static_cast<int>(std::floor(pos)));
  const double t = pos - k;
  auto mix = [&](int ch) {
    return static_cast<int>(std::lround(kAnchors[k][ch] + t * (kAnchors[k + 1][ch] - kAnchors[k][ch])));
  };
  return {mix(0), mix(1), mix(2)};
}

std::string hex_color(Rgb c) { return fmt::format("#{:02x}{:02x}{:02x}", c.r, c.g, c.b); }

int ansi256(Rgb c) {
  static constexpr int kLevels[6] = {0, 95, 135, 175, 215, 255};
  auto nearest = [](int v) {
    int best = 0;
    for (int i = 1; i < 6; ++i)
      if (std::abs(kLevels[i] - v) < std::abs(kLevels[best] - v)) best = i;
    return best;
  };
  return 16 + 36 * nearest(c.r) + 6 * nearest(c.g) + nearest(c.b);
}

std::string xml_escape(const std::string& text) {
  std::string out;
  out.reserve(text.size());
  size_t i = 0;
  while (i < text.size()) {
    char32_t cp = data::next_code_point(text, i);
    if (is_control(cp, true) || cp == 0xFFFE || cp == 0xFFFF) cp = 0xFFFD;
    switch (cp) {
      case U'&': out += "&amp;"; break;
      case U'<': out += "&lt;"; break;
      case U'>': out += "&gt;"; break;
      case U'"': out += "&quot;"; break;
      case U'\'': out += "&apos;"; break;
      default: data::append_utf8(out, cp);
    }
  }
  return out;
}

// ---------------------------------------------------------------- text

std::string text_heatmap(const Alignment& a, bool color) {
  check_shape(a);
  constexpr int kCell = 2;  // characters per cell
  const size_t m = a.source_tokens.size();

  std::vector<std::vector<std::string>> headers;
  size_t header_rows = 0;
  for (const std::string& t : a.source_tokens) {
    headers.push_back(truncated_glyphs(t, kMaxHeaderChars));
    header_rows = std::max(header_rows, headers.back().size());
  }
  std::vector<std::vector<std::string>> labels;
  size_t label_w = 0;
  for (const std::string& t : a.output_tokens) {
    labels.push_back(truncated_glyphs(t, kMaxLabelChars));
    label_w = std::max(label_w, labels.back().size());
  }
  const std::string indent(label_w + 2, ' ');  // label, then " |"

  std::string out;
  // Source tokens, top to bottom, one character above the first position of each cell.
  for (size_t r = 0; r < header_rows; ++r) {
    std::string line = indent;
    for (size_t j = 0; j < m; ++j) {
      line += r < headers[j].size() ? headers[j][r] : " ";
      line += std::string(kCell - 1, ' ');
    }
    out += rstrip(line) + "\n";
  }
  const std::string border = std::string(label_w, ' ') + " +" + std::string(m * kCell, '-') + "+\n";
  out += border;
  for (size_t i = 0; i < a.output_tokens.size(); ++i) {
    std::string line = join(labels[i]) + std::string(label_w - labels[i].size(), ' ') + " |";
    for (size_t j = 0; j < m; ++j) line += text_cell(a.weights[i][j], color, kCell);
    out += line + "|\n";
  }
  out += border;
  std::string legend = "scale: 0.0 ";
  const int n = static_cast<int>(std::char_traits<char>::length(kShadeRamp));
  for (int k = 0; k < n; ++k) legend += text_cell((k + 0.5f) / n, color, 1);
  out += legend + " 1.0\n";
  return out;
}

// ---------------------------------------------------------------- SVG

std::string svg_heatmap(const Alignment& a, const std::string& title) {
  check_shape(a);
  const size_t n = a.output_tokens.size(), m = a.source_tokens.size();
  constexpr double kCell = 26.0, kFont = 13.0, kCharW = kFont * 0.62, kPad = 12.0;
  constexpr double kAngle = 60.0;  // source labels, degrees above the horizontal
  const double sin_a = std::sin(kAngle * std::numbers::pi / 180.0), cos_a = std::cos(kAngle * std::numbers::pi / 180.0);
  auto chars = [](const std::string& s) { return static_cast<double>(glyphs(s).size()); };

  double max_src = 0, max_out = 0;
  for (const std::string& t : a.source_tokens) max_src = std::max(max_src, chars(t));
  for (const std::string& t : a.output_tokens) max_out = std::max(max_out, chars(t));

  const double title_h = title.empty() ? 0.0 : 32.0;
  const double left = kPad + max_out * kCharW + 8.0;
  const double top = kPad + title_h + max_src * kCharW * sin_a + 10.0;
  const double grid_w = static_cast<double>(m) * kCell, grid_h = static_cast<double>(n) * kCell;
  const double bar_x = left + grid_w + 24.0, bar_w = 16.0, bar_h = std::max(grid_h, 5.0 * kCell);
  const double labels_right = left + (m == 0 ? 0.0 : (static_cast<double>(m) - 0.5) * kCell) +
                              max_src * kCharW * cos_a + kFont;
  const double width = std::ceil(std::max({bar_x + bar_w + 6.0 + 3.0 * kCharW + kPad, labels_right + kPad,
                                           kPad * 2 + static_cast<double>(glyphs(title).size()) * 16.0 * 0.62}));
  const double height = std::ceil(top + std::max(grid_h, bar_h) + kPad + 8.0);

  std::string s;
  s += "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n";
  s += fmt::format(
      "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{0}\" height=\"{1}\" viewBox=\"0 0 {0} {1}\" "
      "font-family=\"DejaVu Sans, Helvetica, Arial, sans-serif\" font-size=\"{2}\">\n",
      width, height, kFont);
  s += "<defs>\n<linearGradient id=\"attn-colormap\" x1=\"0\" y1=\"1\" x2=\"0\" y2=\"0\">\n";
  for (int k = 0; k <= 4; ++k) {
    s += fmt::format("<stop offset=\"{:.2f}\" stop-color=\"{}\"/>\n", k / 4.0, hex_color(colormap(k / 4.0f)));
  }
  s += "</linearGradient>\n</defs>\n";
  s += "<rect class=\"background\" x=\"0\" y=\"0\" width=\"100%\" height=\"100%\" fill=\"white\"/>\n";
  if (!title.empty()) {
    s += fmt::format("<text class=\"title\" x=\"{:.1f}\" y=\"{:.1f}\" font-size=\"16\" text-anchor=\"middle\">{}</text>\n",
                     width / 2.0, kPad + 16.0, xml_escape(title));
  }
  // Source tokens along the top, rotated.
  s += "<g class=\"source-tokens\">\n";
  for (size_t j = 0; j < m; ++j) {
    const double x = left + (static_cast<double>(j) + 0.5) * kCell, y = top - 6.0;
    s += fmt::format("<text x=\"{0:.1f}\" y=\"{1:.1f}\" transform=\"rotate(-{2:.0f} {0:.1f} {1:.1f})\">{3}</text>\n", x, y,
                     kAngle, xml_escape(a.source_tokens[j]));
  }
  s += "</g>\n<g class=\"output-tokens\" text-anchor=\"end\">\n";
  for (size_t i = 0; i < n; ++i) {
    s += fmt::format("<text x=\"{:.1f}\" y=\"{:.1f}\" dy=\"0.35em\">{}</text>\n", left - 6.0,
                     top + (static_cast<double>(i) + 0.5) * kCell, xml_escape(a.output_tokens[i]));
  }
  s += "</g>\n<g class=\"cells\" shape-rendering=\"crispEdges\">\n";
  for (size_t i = 0; i < n; ++i) {
    for (size_t j = 0; j < m; ++j) {
      const float w = a.weights[i][j];
      s += fmt::format(
          "<rect class=\"cell\" x=\"{:.1f}\" y=\"{:.1f}\" width=\"{}\" height=\"{}\" fill=\"{}\"><title>{} \u2190 {}: "
          "{}</title></rect>\n",
          left + static_cast<double>(j) * kCell, top + static_cast<double>(i) * kCell, kCell, kCell,
          std::isnan(w) ? std::string("#ff00ff") : hex_color(colormap(w)), xml_escape(a.output_tokens[i]),
          xml_escape(a.source_tokens[j]), std::isnan(w) ? std::string("nan") : fmt::format("{:.3f}", w));
    }
  }
  s += "</g>\n";
  // The color bar: 0 at the bottom, 1 at the top.
  s += "<g class=\"colorbar\">\n";
  s += fmt::format(
      "<rect class=\"colorbar\" x=\"{:.1f}\" y=\"{:.1f}\" width=\"{}\" height=\"{:.1f}\" fill=\"url(#attn-colormap)\" "
      "stroke=\"#444\" stroke-width=\"0.5\"/>\n",
      bar_x, top, bar_w, bar_h);
  for (int k = 0; k <= 5; ++k) {
    const double v = k / 5.0, y = top + bar_h * (1.0 - v);
    s += fmt::format("<line x1=\"{0:.1f}\" y1=\"{1:.1f}\" x2=\"{2:.1f}\" y2=\"{1:.1f}\" stroke=\"#444\"/>\n", bar_x + bar_w, y,
                     bar_x + bar_w + 4.0);
    s += fmt::format("<text x=\"{:.1f}\" y=\"{:.1f}\" dy=\"0.35em\">{:.1f}</text>\n", bar_x + bar_w + 6.0, y, v);
  }
  s += "</g>\n</svg>\n";
  return s;
}

void write_svg(const std::string& path, const Alignment& alignment, const std::string& title) {
  io::write_file_atomic(path, svg_heatmap(alignment, title));
}

// ---------------------------------------------------------------- JSON lines

std::string alignment_jsonl(const Alignment& a, const std::string& source_text, const std::string& output_text,
                            double score, int64_t line) {
  check_shape(a);
  using Json = nlohmann::ordered_json;  // keys in the documented order
  Json attention = Json::array();
  for (const std::vector<float>& row : a.weights) {
    Json r = Json::array();
    for (float w : row) r.push_back(json_float(w));
    attention.push_back(std::move(r));
  }
  Json j = Json::object();
  if (line > 0) j["line"] = line;
  j["source"] = source_text;
  j["output"] = output_text;
  j["score"] = std::isfinite(score) ? Json(score) : Json(nullptr);
  j["source_tokens"] = a.source_tokens;
  j["output_tokens"] = a.output_tokens;
  j["attention"] = std::move(attention);
  return j.dump(-1, ' ', false, Json::error_handler_t::replace) + "\n";
}

}  // namespace attn::viz
