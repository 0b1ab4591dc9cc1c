#!/usr/bin/env bash
# Training throughput of the engine against PyTorch 1.13 eager (Debian's python3-torch) on the
# same model (Luong concat, bench/torch_seq2seq.py mirrors models/seq2seq), data and batch, run
# back to back on this machine. Prints target tokens/s of each and the ratio.
#   bash bench/compare_throughput.sh [STEPS] [HIDDEN] [BATCH]
set -euo pipefail
cd "$(dirname "$0")/.."
steps=${1:-60}
hidden=${2:-256}
batch=${3:-64}
data=${ATTN_DATA:-../shared/data/tatoeba-en-de}
attn=${ATTN_BIN:-build/attn}
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
# The engine: the first 5 steps warm up (allocator caches), then `steps` timed ones.
"$attn" train --train "$data/train.tsv" --out "$out/warm" --attention concat --hidden "$hidden" --batch "$batch" \
  --max-steps 5 --quiet --device cpu --seed 1
"$attn" train --resume "$out/warm/checkpoint" --out "$out/warm" --max-steps $((steps + 5)) --quiet --device cpu
engine=$(grep -o 'trained [0-9]* steps in [^(]*([0-9.]* target tokens/s' "$out/warm/train.log" | tail -1 | grep -o '([0-9.]*' | tr -d '(')
torch_line=$(/usr/bin/python3 bench/torch_seq2seq.py --train "$data/train.tsv" --hidden "$hidden" --batch "$batch" \
  --steps "$steps" --warmup 5 --seed 1 | grep torch_tokens_per_s)
torch=$(echo "$torch_line" | sed 's/.*torch_tokens_per_s=\([0-9.]*\).*/\1/')
echo "engine: $engine target tokens/s (${OMP_NUM_THREADS:-all} OpenMP threads)"
echo "pytorch: $torch_line"
python3 -c "print(f'ratio engine / pytorch: {float($engine) / float($torch):.2f}x')"
