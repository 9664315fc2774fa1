#!/usr/bin/env bash
# The passes that remove work (issue 10), judged by the work removed and the quality kept:
# benchmarks/results/remove-work-DATE.md and .csv.
#
# Digits rows: the trained digits model, SAMPLES samples (default 500; labels i mod 10, guidance 1.5,
# seed 0, DDPM 50 steps or 250 where the row says), scored by digits_eval (accuracy, FD). Work columns:
# parameters, MACs per image (every forward of every step, both rows of classifier-free guidance),
# pack bytes (`compile` for sm_80), CPU seconds per image on the reference executor (one thread a
# process; two rows run at once, JOBS=2). Study rows: the work columns of DiT-S/2, S/4, XS/2, XS/4 at
# 256x256 (32x32 latents), DDPM 250 steps with guidance, batch 1.
#
# Each row's result is kept in WORK (default /tmp/remove-work): an interrupted run continues where it
# stopped, and the table is written from the rows there.
#   usage: benchmarks/remove_work.sh [BUILD_DIR]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$root/build}
ditc=$build/ditc
date=$(date -u +%Y-%m-%d)
out=$root/benchmarks/results/remove-work-$date
samples=${SAMPLES:-500}
work=${WORK:-/tmp/remove-work}-$samples
jobs=${JOBS:-2}
mkdir -p "$work"
export DITC_CACHE_DIR=${DITC_CACHE_DIR:-$work/cache}
export OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1
W=$root/models/digits/dit-digits.safetensors
pre="canonicalize,fold-constants,cse"
post="hoist-adaln,canonicalize,dce,fuse,plan-memory"

# id|steps|flags (sample/compile flags; CALIB:PASS spells the pass with criterion=calib at its place)
rows=(
  "none|50|"
  "prune-heads 3|50|--prune-heads 3"
  "prune-heads 2|50|--prune-heads 2"
  "prune-mlp 0.25 l2|50|--prune-mlp 0.25"
  "prune-mlp 0.25 calib|50|CALIB:prune-mlp:fraction=0.25:criterion=calib"
  "prune-mlp 0.5 l2|50|--prune-mlp 0.5"
  "prune-mlp 0.5 calib|50|CALIB:prune-mlp:fraction=0.5:criterion=calib"
  "prune-blocks 1|50|--prune-blocks 1"
  "kv-heads 2|50|--kv-heads 2"
  "kv-heads 1|50|--kv-heads 1"
  "cache-interval 2|50|--cache-interval 2"
  "cache-interval 3|50|--cache-interval 3"
  "none|250|"
  "cache-interval 2|250|--cache-interval 2"
  "cache-interval 3|250|--cache-interval 3"
)

flags_of() {  # FLAGS -> the words for sample/compile
  case $1 in
    CALIB:*) echo "--passes $pre,${1#CALIB:},$post" ;;
    *) echo "$1" ;;
  esac
}
# the l2 twin of a calib row has the same shapes (the same params, MACs and pack bytes)
shape_flags() {
  case $1 in
    CALIB:prune-mlp:fraction=*) local f=${1#CALIB:prune-mlp:fraction=}; echo "--prune-mlp ${f%%:*}" ;;
    *) echo "$1" ;;
  esac
}

one_row() {  # "id|steps|flags" -> WORK/<key>.row: id,steps,params,macs_per_image,pack_bytes,cpu_s_per_image,accuracy,fd
  local id=${1%%|*} rest=${1#*|}
  local steps=${rest%%|*} fl=${rest#*|}
  local key
  key=$(echo "$id $steps" | tr ' .' '__')
  [ -s "$work/$key.row" ] && return 0
  local f sf ci=""
  f=$(flags_of "$fl")
  sf=$(shape_flags "$fl")
  case $fl in --cache-interval*) ci=${fl#--cache-interval } ;; esac
  # work: params and MACs per image from stats (per row of the batch, times 2 for guidance)
  local params macs
  if [ -n "$ci" ]; then
    read -r params macs < <("$ditc" stats DiT-digits --steps "$steps" --cache-interval "$ci" --json |
      jq -r '"\(.params) \(.macs_per_image * 2)"')
  else
    # shellcheck disable=SC2086
    read -r params macs < <("$ditc" stats DiT-digits $sf --json | jq -r --argjson s "$steps" '"\(.params) \(.macs * $s * 2)"')
  fi
  local pack="-"
  if [ -z "$ci" ]; then
    # shellcheck disable=SC2086
    "$ditc" compile DiT-digits --weights "$W" --arch sm_80 $sf -o "$work/$key.ditpack" >/dev/null 2>"$work/$key.compile.log" &&
      pack=$(stat -c %s "$work/$key.ditpack")
    rm -f "$work/$key.ditpack"
  fi
  local s e
  s=$(date +%s.%N)
  # shellcheck disable=SC2086
  "$ditc" sample DiT-digits --weights "$W" --backend ref --sampler ddpm --steps "$steps" --cfg-scale 1.5 \
    --labels 0-9 --repeat $((samples / 10)) --seed 0 --output "$work/$key.safetensors" $f 2>"$work/$key.log"
  e=$(date +%s.%N)
  local q
  q=$("$build/digits_eval" "$work/$key.safetensors" --json | jq -r '"\(.accuracy),\(.fd)"')
  rm -f "$work/$key.safetensors"
  echo "$id,$steps,$params,$macs,$pack,$(echo "($e - $s) / $samples" | bc -l | xargs printf %.4f),$q" >"$work/$key.row"
}
export -f one_row flags_of shape_flags
export ditc build work samples W pre post

printf '%s\n' "${rows[@]}" | xargs -d '\n' -P "$jobs" -I{} bash -c 'one_row "$1"' _ {}

# the study's models: the work columns
study="$work/study.csv"
: >"$study"
for m in DiT-S/2 DiT-S/4 DiT-XS/2 DiT-XS/4; do
  for fl in "" "--prune-heads 3" "--prune-heads 2" "--prune-mlp 0.25" "--prune-mlp 0.5" "--prune-blocks 1" \
    "--kv-heads 2" "--kv-heads 1" "--cache-interval 2" "--cache-interval 3"; do
    r="-,-"
    case $fl in
      --cache-interval*)
        r=$("$ditc" stats "$m" --steps 250 --cache-interval "${fl#--cache-interval }" --json 2>/dev/null |
          jq -r '"\(.params),\(.macs_per_image * 2)"') || r="-,-" ;;
      *)
        # shellcheck disable=SC2086
        r=$("$ditc" stats "$m" $fl --json 2>/dev/null | jq -r '"\(.params),\(.macs * 250 * 2)"') || r="-,-" ;;
    esac
    echo "$m,${fl:-none},$r" >>"$study"
  done
done

{
  echo "setting,steps,params,macs_per_image,pack_bytes,cpu_s_per_image,accuracy,fd"
  for r in "${rows[@]}"; do
    id=${r%%|*} rest=${r#*|}
    key=$(echo "$id ${rest%%|*}" | tr ' .' '__')
    [ -s "$work/$key.row" ] && cat "$work/$key.row"
  done
} >"$out.csv"
{
  echo "model,setting,params,macs_per_image"
  cat "$study"
} >"$out-study.csv"

{
  echo "# Passes that remove work: what each removes and what it costs in quality"
  echo
  echo "Command: \`benchmarks/remove_work.sh\` (SAMPLES=$samples)  "
  echo "Commit: $(git -C "$root" rev-parse --short HEAD)  "
  echo "Date: $date  "
  echo "Host: $(uname -m), $(getconf _NPROCESSORS_ONLN) cores, no GPU (CPU time on the reference executor, one thread a process, $jobs rows at once)"
  echo
  echo "The trained digits model: $samples samples, labels i mod 10, DDPM (steps as given), guidance 1.5, seed 0,"
  echo "scored by \`benchmarks/digits_eval\`. MACs per image count every forward of every step and both rows of"
  echo "classifier-free guidance; pack bytes are \`compile --arch sm_80\` packs (f32 weights; step caching keeps"
  echo "the same model: no pack row). Changes are against \`none\` at the same number of steps."
  echo
  echo "| setting | steps | params | MACs / image | vs none | pack bytes | CPU s / image | accuracy | Δ accuracy | FD | Δ FD |"
  echo "|---|---|---|---|---|---|---|---|---|---|---|"
  awk -F, 'NR > 1 { if ($1 == "none") { bm[$2] = $4; ba[$2] = $7; bf[$2] = $8 } row[NR] = $0 }
    END { for (i = 2; i <= NR; i++) { split(row[i], f, ",");
      printf "| %s | %s | %d | %.3g | %.1f%% | %s | %.3f | %.3f | %+.3f | %.2f | %+.2f |\n", f[1], f[2], f[3], f[4],
        100 * f[4] / bm[f[2]], f[5], f[6], f[7], f[7] - ba[f[2]], f[8], f[8] - bf[f[2]] } }' "$out.csv"
  echo
  echo "The study's models (work only): 256x256 images (32x32 latents), DDPM 250 steps with guidance, batch 1."
  echo
  echo "| model | setting | params | MACs / image | vs none |"
  echo "|---|---|---|---|---|"
  awk -F, '{ if ($2 == "none") base[$1] = $4
    printf "| %s | %s | %s | %s | %s |\n", $1, $2, $3, $4 == "-" ? "-" : sprintf("%.4g", $4),
      ($4 == "-" || !base[$1]) ? "-" : sprintf("%.1f%%", 100 * $4 / base[$1]) }' "$study"
} >"$out.md"
cat "$out.md"
