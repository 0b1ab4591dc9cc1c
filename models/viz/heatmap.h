// Attention heatmaps of one translation: which source tokens each output token looked at.
//
// Three renderings of the same Alignment:
// - text_heatmap(): for the terminal. Source tokens are written vertically as column headers
//   (one character per line, at most kMaxHeaderChars characters, a longer token ends in "…"),
//   output tokens down the left (at most kMaxLabelChars characters, same truncation), each cell
//   two characters of the shade ramp " .:-=+*#%@" (weight w in [0, 1] picks character
//   floor(10 w), 1.0 picks '@'; out-of-range weights are clamped, NaN shows as "??"). With
//   `color`, each cell also gets a 256-color ANSI background (viridis, as in the SVG) and a
//   black or white foreground for contrast; removing the escape sequences gives exactly the
//   uncolored text. Widths count code points, so ä, ß and ’ line up; combining marks
//   (U+0300-U+036F) count as zero width and stay with their base character. Wide (East Asian)
//   characters are not handled.
// - svg_heatmap(): a standalone SVG document in the style of the matplotlib plot: source tokens
//   along the top rotated by 60°, output tokens down the left, one square <rect class="cell"> per
//   weight filled from a viridis-like color map (linear interpolation between 5 anchors of
//   matplotlib's viridis), each cell with a <title> tooltip "output ← source: weight", and a
//   vertical color bar (a linear gradient) labelled 0.0, 0.2, ..., 1.0. Text is XML-escaped;
//   control characters that XML 1.0 forbids and invalid UTF-8 become U+FFFD.
// - alignment_jsonl(): one JSON object, newline-terminated, for a .jsonl file.
//
// Every function checks the shape: weights must have one row per output token and one column
// per source token (ValueError otherwise).
#pragma once

#include <string>
#include <vector>

namespace attn::viz {

struct Alignment {
  std::vector<std::string> source_tokens;
  std::vector<std::string> output_tokens;
  std::vector<std::vector<float>> weights;  // [output i][source j], rows sum to ~1
};

inline constexpr int kMaxHeaderChars = 12;  // text heatmap: characters of a vertical source token
inline constexpr int kMaxLabelChars = 20;   // text heatmap: characters of an output-token label

// The shade ramp of the text heatmap, lightest first.
inline constexpr const char* kShadeRamp = " .:-=+*#%@";

// The ramp character for a weight (clamped to [0, 1]; '?' for NaN).
char shade_char(float weight);

// The color map of both heatmaps: 0 -> #440154 (dark purple), 1 -> #fde725 (yellow).
struct Rgb {
  int r, g, b;
};
Rgb colormap(float weight);
std::string hex_color(Rgb c);  // "#rrggbb"
int ansi256(Rgb c);            // nearest entry of the 6x6x6 color cube (16..231)

std::string text_heatmap(const Alignment& alignment, bool color);

std::string svg_heatmap(const Alignment& alignment, const std::string& title);
// svg_heatmap() written with attn::io::write_file_atomic (IOError on failure).
void write_svg(const std::string& path, const Alignment& alignment, const std::string& title);

// {"line": line (when > 0: the 1-based input line, so that records match their input when
//  blank lines have none and n-best lines have several), "source": source_text, "output":
//  output_text, "score": score, "source_tokens": [...], "output_tokens": [...],
//  "attention": [[...], ...]} on one line, ending in "\n". Weights are
// written with the shortest decimal that reads back as the same float ("0.1", not
// "0.10000000149011612"); NaN and infinities become null. Strings must be UTF-8 (nlohmann's
// dump throws on invalid UTF-8; this replaces invalid bytes with U+FFFD instead).
std::string alignment_jsonl(const Alignment& alignment, const std::string& source_text,
                            const std::string& output_text, double score, int64_t line = 0);

// XML text / attribute escaping as the SVG writer does it (exposed for tests).
std::string xml_escape(const std::string& text);

}  // namespace attn::viz
