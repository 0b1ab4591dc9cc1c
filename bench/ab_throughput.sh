#!/usr/bin/env bash
# Training throughput of two engine builds, alternating (A B A B ...), on the same model, data and
# batch as bench/compare_throughput.sh: the way to measure one change on a noisy machine. Prints
# each run's target tokens/s and the per-pair ratios B / A.
#   bash bench/ab_throughput.sh OLD_ATTN NEW_ATTN [ROUNDS] [STEPS]
# e.g. git worktree add /tmp/old <commit> && (cd /tmp/old && ATTN_CUDA=OFF bash scripts/build.sh)
#      bash bench/ab_throughput.sh /tmp/old/build/attn build/attn 6
set -euo pipefail
cd "$(dirname "$0")/.."
[ $# -ge 2 ] || { echo "usage: $0 OLD_ATTN NEW_ATTN [ROUNDS] [STEPS]" >&2; exit 2; }
a=$1
b=$2
rounds=${3:-3}
steps=${4:-60}
data=${ATTN_DATA:-../shared/data/tatoeba-en-de}
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
rate() {  # $1: binary; prints target tokens/s of `steps` steps after 5 warm-up steps
  rm -rf "$out/run"
  "$1" train --train "$data/train.tsv" --out "$out/run" --attention concat --hidden 256 --batch 64 \
    --max-steps 5 --quiet --device cpu --seed 1
  "$1" train --resume "$out/run/checkpoint" --out "$out/run" --max-steps $((steps + 5)) --quiet --device cpu
  grep -o 'trained [0-9]* steps in [^(]*([0-9.]* target tokens/s' "$out/run/train.log" | tail -1 | grep -o '([0-9.]*' | tr -d '('
}
ratios=()
for r in $(seq "$rounds"); do
  ra=$(rate "$a")
  rb=$(rate "$b")
  ratio=$(python3 -c "print(f'{float($rb) / float($ra):.3f}')")
  ratios+=("$ratio")
  echo "round $r: A $ra  B $rb  B/A $ratio"
done
python3 -c "import statistics, sys; r = [float(x) for x in sys.argv[1:]]; print(f'B/A per pair: median {statistics.median(r):.3f}, range {min(r):.3f}-{max(r):.3f}')" "${ratios[@]}"
