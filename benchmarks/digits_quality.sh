#!/usr/bin/env bash
# Sample quality of ditc on the trained DiT-digits model, against the original DiT code's scores
# (models/digits/README.md): 500 samples (labels i mod 10, seed 0) per setting, scored by
# benchmarks/digits_eval (digit accuracy and Frechet distance to the real digits).
#   usage: benchmarks/digits_quality.sh [BUILD_DIR] [OUT.md]   (BUILD_DIR defaults to build/)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$root/build}
out=${2:-$root/benchmarks/results/digits-quality-$(date -u +%Y-%m-%d).md}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
{
  echo "# DiT-digits sample quality (reference executor, fp32, CPU)"
  echo
  echo "Command: \`benchmarks/digits_quality.sh\`  "
  echo "Commit: $(git -C "$root" rev-parse --short HEAD)  "
  echo "Date: $(date -u +%Y-%m-%d)  "
  echo "Host: $(uname -m), $(nproc) cores (no GPU)"
  echo
  echo "| sampler | steps | cfg | samples | digit accuracy | FD | original code: accuracy | original code: FD | seconds |"
  echo "|---|---|---|---|---|---|---|---|---|"
} >"$out.tmp"
run() {  # SAMPLER CFG REF_ACC REF_FD
  local t0 t1 json
  t0=$(date +%s.%N)
  "$build/ditc" sample DiT-digits --weights "$root/models/digits/dit-digits.safetensors" --sampler "$1" \
    --steps 50 --cfg-scale "$2" --labels 0-9 --repeat 50 --seed 0 --output "$tmp/s.safetensors"
  t1=$(date +%s.%N)
  json=$("$build/digits_eval" "$tmp/s.safetensors" --json)
  printf '| %s | 50 | %s | 500 | %.3f | %.2f | %s | %s | %.0f |\n' "$1" "$2" \
    "$(jq -r .accuracy <<<"$json")" "$(jq -r .fd <<<"$json")" "$3" "$4" "$(awk "BEGIN{print $t1 - $t0}")" >>"$out.tmp"
}
run ddpm 1.5 0.982 3.94
run ddim 1.5 0.972 5.56
run ddpm 4.0 1.000 24.03
mv "$out.tmp" "$out"
cat "$out"
