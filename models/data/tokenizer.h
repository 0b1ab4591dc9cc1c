// The word tokenizer of the translators: lowercase words and punctuation marks as separate
// tokens, and its inverse for printing translations.
//
// tokenize():
// - Lowercases (models/data/unicode.h: Latin-1, Latin Extended-A and Additional, basic Greek and
//   Cyrillic; ẞ -> ß).
// - Splits on Unicode whitespace (NBSP, narrow NBSP, the U+2000 spaces, ...) and on the
//   zero-width spaces U+200B / U+FEFF.
// - Punctuation (ASCII punctuation, ¡ ¿ « » § ° and the like, the General Punctuation block:
//   „ “ ” ‘ ’ … – —, currency signs) becomes tokens of its own; a run of full stops stays one
//   token ("...").
// - Inside a word (a word character on both sides) these stay part of the word:
//   apostrophes ' ’ ʼ — normalized to ASCII ' (so "geht’s" and "geht's" are the same token
//   "geht's"; the typographic form is not restored by detokenize); full stops and hyphens
//   (3.5, 223-1374, z.b, e-mail, lkw-fahrer); between two digits only, commas, colons and
//   slashes (1,000, 10,00, 10:30, 20/20); a hyphen at the end of a word ("Differential- und").
// - An apostrophe at the end of a word closes a single quotation opened earlier in the text
//   ('Hallo' -> ' hallo ') and is a token of its own then; otherwise it is an elision or a
//   possessive and stays with the word, as ' ("Wart' mal", "the boys' toys"). A typographic
//   apostrophe at the start of a word is an elision too ("Mach ’ne Fliege" -> 'ne); a straight
//   one there opens a quotation if a closing apostrophe follows before the next word-starting
//   one ('Hallo', 'Geh!'), else it is an elision as well ("Mach 'ne Fliege" -> 'ne, as
//   detokenize writes it). Other apostrophes are tokens of their own, in their own form.
// - Everything else (letters, digits, marks, symbols of other scripts) is a word character.
//
// detokenize() joins with single spaces, except: no space before closing marks (. , ! ? ; : ) ]
// } … % and runs of them), no space after opening marks (( [ { ¿ ¡ $ £ ¥), and quotation
// marks pair up — a quote that can close the innermost open quote („…“, „…”, "…", '…', ‚…‘,
// «…», »…«, “…”) attaches to the word before it, otherwise it opens and attaches to the word
// after it. detokenize(tokenize(s)) == normalize_spaces(lowercase(s)) for most Tatoeba
// sentences (see tests/test_data.cpp for the measured rate); what is lost: the typographic
// apostrophe inside words, spaces before closing marks ("99 %"), and spaces inside tokens.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace attn::data {

std::vector<std::string> tokenize(std::string_view text);
std::string detokenize(const std::vector<std::string>& tokens);

}  // namespace attn::data
