#!/usr/bin/env bash
# Quantisation (--quantize, issue 11): for none, w8, w8 scope all, w8a8, fp8 - DiT-S/2's pack bytes,
# weight bytes read per forward, activation bytes moved and kernels per block (from `compile
# --report`, sm_80, batch 1), and the digits model's accuracy and Frechet distance (SAMPLES samples,
# default 500: labels i mod 10, DDPM 50 steps, guidance 1.5, seed 0) on the reference executor, and
# on the emulated device when EMU_SAMPLES is set (that many samples; emu is slow on a CPU).  GPU
# timings need a GPU: the table says when none was there.  Each quality measurement is kept in WORK
# (default /tmp/quantize-work): an interrupted run continues where it stopped, and a rerun after a
# change that cannot move the samples (launch counts, bytes) reuses them; empty WORK after a change
# to the numerics.
# CACHED_ONLY=1 writes the table from what WORK holds (a row not measured yet is left empty).
#   usage: [MODES="none w8 ..."] [SAMPLES=N] [EMU_SAMPLES=N [EMU_MODES="none w8 ..."]] benchmarks/quantize.sh [BUILD_DIR]   -> benchmarks/results/quantize-DATE.md and .csv
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$root/build}
date=$(date -u +%Y-%m-%d)
out=$root/benchmarks/results/quantize-$date
samples=${SAMPLES:-500}
commit=$(git -C "$root" rev-parse --short HEAD)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
work=${WORK:-/tmp/quantize-work}
mkdir -p "$work"
export DITC_CACHE_DIR=${DITC_CACHE_DIR:-$work/cache}
ditc=$build/ditc
read -r -a modes <<<"${MODES:-none w8 w8:all w8a8 fp8}" # MODES: a subset, in the order to run
# fp8's activation scales come from calibration data: CALIBRATE samples (default 8) of the digits
# model's sampler (--calibrate), for DiT-S/2's random weights as for the digits model
calibrate=${CALIBRATE:-8}

quality() {  # BACKEND N FLAGS... -> "accuracy fd" (kept in WORK)
  local be=$1 n=$2
  shift 2
  local key
  key=$(echo "$be $n $*" | tr -c 'A-Za-z0-9\n' _)
  if [ ! -s "$work/$key.q" ] && [ -n "${CACHED_ONLY:-}" ]; then
    echo " " # CACHED_ONLY: a row not yet measured stays empty
    return
  fi
  if [ ! -s "$work/$key.q" ]; then
    quality_run "$be" "$n" "$@" >"$work/$key.q.tmp"
    mv "$work/$key.q.tmp" "$work/$key.q"
  fi
  cat "$work/$key.q"
}
quality_run() {
  local be=$1 n=$2
  shift 2
  "$ditc" sample DiT-digits --weights "$root/models/digits/dit-digits.safetensors" --backend "$be" --sampler ddpm \
    --steps 50 --cfg-scale 1.5 --labels 0-9 --repeat $((n / 10)) --seed 0 --output "$tmp/s.safetensors" "$@" >/dev/null
  "$build/digits_eval" "$tmp/s.safetensors" --json | jq -r '"\(.accuracy) \(.fd)"'
}

echo "mode,scope,pack_bytes,weight_bytes_read,activation_bytes_moved,kernels_per_block,ref_accuracy,ref_fd,emu_accuracy,emu_fd" >"$out.csv"
for m in "${modes[@]}"; do
  mode=${m%%:*} scope=blocks flags=()
  [ "$m" != "${m#*:}" ] && scope=${m#*:}
  [ "$mode" != none ] && flags=(--quantize "$mode" --quantize-scope "$scope")
  [ "$mode" = fp8 ] && flags+=(--calibrate "$calibrate")
  arch=sm_80
  [ "$mode" = fp8 ] && arch=sm_89 # e4m3 needs sm_89 and later
  "$ditc" compile DiT-S/2 --arch "$arch" --entry forward --weights random -o "$tmp/p.ditpack" --report --json \
    ${flags[@]+"${flags[@]}"} >"$tmp/r.json" 2>/dev/null
  pack=$(stat -c %s "$tmp/p.ditpack")
  read -r wread act kpb < <(jq -r '.plans[0] | "\([.steps[].weight_read] | add) \(.activation_bytes_moved) \(.kernels_per_block)"' "$tmp/r.json")
  read -r racc rfd < <(quality ref "$samples" ${flags[@]+"${flags[@]}"})
  eacc="" efd=""
  if [ -n "${EMU_SAMPLES:-}" ] && [[ " ${EMU_MODES:-${modes[*]}} " == *" $m "* ]]; then
    read -r eacc efd < <(quality emu "$EMU_SAMPLES" ${flags[@]+"${flags[@]}"})
  fi
  echo "$mode,$scope,$pack,$wread,$act,$kpb,$racc,$rfd,$eacc,$efd" >>"$out.csv"
done

{
  echo "# Quantisation: pack size, bytes moved, launches, digits quality"
  echo
  echo "Command: \`benchmarks/quantize.sh\` (SAMPLES=$samples${EMU_SAMPLES:+, EMU_SAMPLES=$EMU_SAMPLES})  "
  echo "Commit: $commit  "
  echo "Date: $date  "
  echo "Host: $(uname -m), $(nproc) cores, $(command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name --format=csv,noheader | head -1 || echo 'no GPU: no GPU timings')"
  echo
  echo "DiT-S/2 at batch 1 for sm_80, fp8 for sm_89 (\`compile --report\`; random weights; fp8 calibrated on $calibrate samples); digits: DDPM 50 steps, guidance 1.5,"
  echo "seed 0, $samples samples on the reference executor (f32)${EMU_SAMPLES:+, $EMU_SAMPLES on the emulated device (f32)}."
  echo "Weight bytes read are the weights blob's (w8: the int8 levels and scales, read by the mixed-input GEMM"
  echo "directly; no dequantised copy is written)."
  echo
  echo "| mode | scope | pack bytes | vs f32 | weight bytes read / forward | activation bytes moved | kernels / block | ref accuracy | ref FD | emu accuracy | emu FD |"
  echo "|---|---|---|---|---|---|---|---|---|---|---|"
  base=$(awk -F, 'NR == 2 {print $3}' "$out.csv")
  awk -F, -v base="$base" 'NR > 1 {printf "| %s | %s | %d | %.1f%% | %d | %d | %s | %s | %s | %s | %s |\n", $1, $2, $3, 100 * $3 / base, $4, $5, $6, $7 == "" ? "-" : $7, $8 == "" ? "-" : sprintf("%.2f", $8), $9 == "" ? "-" : $9, $10 == "" ? "-" : sprintf("%.2f", $10)}' "$out.csv"
  echo
  echo "Quality kept, against ditc's own f32 run (mode none) on the same backend; the bound for w8 and w8a8"
  echo "is 0.015 accuracy and 1.0 FD (issue 11):"
  echo
  echo "| mode | scope | backend | accuracy change | FD change | within the bound |"
  echo "|---|---|---|---|---|---|"
  awk -F, 'NR == 2 { ra = $7; rf = $8; ea = $9; ef = $10 }
    NR > 2 {
      for (b = 0; b < 2; b++) {
        a = b ? $9 : $7; f = b ? $10 : $8; a0 = b ? ea : ra; f0 = b ? ef : rf
        if (a == "" || a0 == "") continue
        da = a - a0; df = f - f0
        ok = ($1 == "w8" || $1 == "w8a8") ? ((da >= -0.015 && da <= 0.015 && df >= -1.0 && df <= 1.0) ? "yes" : "NO") : "(no bound)"
        printf "| %s | %s | %s | %+.3f | %+.2f | %s |\n", $1, $2, b ? "emu" : "ref", da, df, ok
      }
    }' "$out.csv"
} >"$out.md"
cat "$out.md"
