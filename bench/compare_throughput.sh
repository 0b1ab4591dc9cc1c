#!/usr/bin/env bash
# Training throughput of the engine against PyTorch 1.13 eager (Debian's python3-torch) on the
# same model (Luong concat, bench/torch_seq2seq.py mirrors models/seq2seq), data and batch, run
# back to back on this machine. Prints target tokens/s of each and the ratio. Needs Debian's
# python3-torch (apt-get install python3-torch) for /usr/bin/python3.
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
# PyTorch with its default thread count and with one thread per core: the faster is the reference
# (which one wins depends on the machine: 1 thread on the earlier 2-vCPU VM, 2 on a Zen 4 one).
best=0
best_line=""
for threads in 0 $(nproc); do
  line=$(/usr/bin/python3 bench/torch_seq2seq.py --train "$data/train.tsv" --hidden "$hidden" --batch "$batch" \
    --steps "$steps" --warmup 5 --seed 1 --threads "$threads" | grep torch_tokens_per_s)
  echo "pytorch: $line"
  rate=$(echo "$line" | sed 's/.*torch_tokens_per_s=\([0-9.]*\).*/\1/')
  if python3 -c "import sys; sys.exit(0 if float($rate) > float($best) else 1)"; then
    best=$rate
    best_line=$line
  fi
done
echo "engine: $engine target tokens/s (${OMP_NUM_THREADS:-all} OpenMP threads)"
echo "pytorch (faster of the two): $best_line"
python3 -c "print(f'ratio engine / pytorch: {float($engine) / float($best):.2f}x')"
