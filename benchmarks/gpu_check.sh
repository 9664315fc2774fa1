#!/usr/bin/env bash
# The one GPU check, sized for a short loan of an H100/H200 machine (CUDA, CMake and PyTorch there,
# no package registry; under 8 minutes): run in the repository root with the bundle that
# benchmarks/gpu_bundle.sh made here (binaries, the libraries they need, jq, the shared cases).
#   1. gpu_smoke: driver, a PTX kernel, cuBLASLt, a graph;
#   2. every shared reference case through --backend cuda: fp32 (forward, cfg, the DDIM and DDPM loops
#      on the device, tolerances of tests/reference) and bf16 forward and cfg within 1e-2;
#   3. ditc bench --profile (bf16): DiT-S/2 batch 1 and DiT-XL/2 batch 32, every step timed with
#      events beside the roofline's prediction;
#   4. PyTorch eager and torch.compile (benchmarks/torch_dit.py) on the same weights and batches,
#      beside ditc bench on those weights.
# Writes one results file, OUT/gpu-check-<device>-<date>.md, with the logs beside it.
#
#   usage: benchmarks/gpu_check.sh [BUNDLE] [OUT]      (defaults: build/gpu-bundle, ${OUT:-benchmarks/results})
# Each part has a time limit (GPU_CHECK_LIMIT_S, default 100 s per part and 150 s for torch.compile),
# and a part that fails or runs out of time is reported as such; the others still run.
set -uo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
bundle=$(cd "${1:-$root/build/gpu-bundle}" && pwd) || { echo "gpu_check: error: no bundle (benchmarks/gpu_bundle.sh)" >&2; exit 1; }
out=${2:-${OUT:-$root/benchmarks/results}}
limit=${GPU_CHECK_LIMIT_S:-100}
export PATH="$bundle/bin:$PATH" LD_LIBRARY_PATH="$bundle/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
export DITC="$bundle/bin/ditc" DITC_SHARED="$bundle/shared" DITC_SRC="$root"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
export DITC_CACHE_DIR="$tmp/cache"
mkdir -p "$out"
device=$(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | head -1)
date=$(date -u +%Y-%m-%d)
tag=$(echo "${device:-no-gpu}" | tr ' /' '--')
res="$out/gpu-check-$tag-$date.md"
logs="$out/gpu-check-$tag-$date-logs"
mkdir -p "$logs"
t_start=$(date +%s)
summary=()
part() { # NAME LIMIT CMD...: run, log, one summary line
  local name=$1 lim=$2 t0 rc
  shift 2
  t0=$(date +%s)
  timeout "$lim" "$@" >"$logs/$name.log" 2>&1
  rc=$?
  local verdict=ok
  [ $rc = 0 ] || verdict="FAILED (exit $rc$([ $rc = 124 ] && echo ", over ${lim} s"))"
  summary+=("| $name | $verdict | $(( $(date +%s) - t0 )) s |")
  echo "gpu_check: $name: $verdict" >&2
  return $rc
}

part gpu_smoke 60 "$bundle/bin/gpu_smoke"

# 2. the shared cases on the GPU
cases=$(cd "$DITC_SHARED/reference" && ls *.weights.safetensors | sed 's/\.weights\.safetensors$//' | grep -v '^vae')
for c in $cases; do
  part "cuda-$c" "$limit" bash -c 'source "$DITC_SRC/tests/reference/common.bash"; check_cuda "$1"' _ "$c"
done

# 3. per-step profiles, bf16
part profile-S2-bs1 "$limit" "$DITC" bench DiT-S/2 --backend cuda --precision bf16 --batch 1 --iters 50 --warmup 10 --profile
part profile-XL2-bs32 "$limit" "$DITC" bench DiT-XL/2 --backend cuda --precision bf16 --batch 32 --iters 10 --warmup 3 --profile

# 4. PyTorch on the same weights, and ditc on them
torch_rows=""
for m in DiT-S/2:1 DiT-XL/2:32; do
  model=${m%:*} b=${m#*:} w="$tmp/$(echo "$model" | tr / _).safetensors" n=$(echo "$model" | tr / _)
  if part "weights-$n" 60 python3 "$root/benchmarks/torch_dit.py" random-weights --model "$model" --out "$w"; then
    part "torch-$n-bs$b" "${GPU_CHECK_TORCH_LIMIT_S:-150}" python3 "$root/benchmarks/torch_dit.py" bench --model "$model" \
      --batch "$b" --dtype bf16 --mode eager,compile --weights "$w" --device cuda --warmup 10 --iters 30 \
      --json "$logs/torch-$n-bs$b.json"
    part "ditc-$n-bs$b" "$limit" "$DITC" bench "$model" --backend cuda --weights "$w" --precision bf16 --batch "$b" \
      --iters 30 --warmup 10 --report
    ditc_ms=$(jq -r '.median_ms // "n/a"' "$logs/ditc-$n-bs$b.log" 2>/dev/null || echo n/a)
    for mode in eager compile; do
      t=$(jq -r --arg m "$mode" '[.[] | select(.mode == $m)][0].median_ms // "n/a"' "$logs/torch-$n-bs$b.json" 2>/dev/null || echo n/a)
      torch_rows+="| $model | $b | $mode | $t | $ditc_ms |"$'\n'
    done
  fi
done

{
  echo "# GPU check: ${device:-no GPU found}"
  echo
  echo "Command: \`benchmarks/gpu_check.sh\`  "
  echo "Commit: $(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo unknown)  "
  echo "Date: $date  "
  echo "Driver: $(nvidia-smi --query-gpu=driver_version --format=csv,noheader 2>/dev/null | head -1)  "
  echo "Total time: $(( $(date +%s) - t_start )) s"
  echo
  echo "| part | verdict | time |"
  echo "|---|---|---|"
  printf '%s\n' "${summary[@]}"
  echo
  echo "## PyTorch beside ditc (bf16, median ms per forward, same weights)"
  echo
  echo "| model | batch | torch mode | torch ms | ditc ms |"
  echo "|---|---|---|---|---|"
  printf '%s' "$torch_rows"
  for p in profile-S2-bs1 profile-XL2-bs32; do
    echo
    echo "## $p: measured per step beside the roofline's prediction"
    echo
    echo '```'
    tail -n +1 "$logs/$p.log" 2>/dev/null | head -400
    echo '```'
  done
} >"$res"
echo "gpu_check: wrote $res (logs in $logs)" >&2
grep -q FAILED "$res" && exit 1
exit 0
