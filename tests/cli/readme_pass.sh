#!/usr/bin/env bash
# README "Writing a pass", followed literally: the fenced blocks of that section marked
# `<!-- readme_pass: FILE -->` (a new file), `<!-- readme_pass: FILE after TEXT -->` (lines to insert
# after the first line of FILE containing TEXT) and `<!-- readme_pass: run -->` (the command to try)
# are applied to a copy of the sources they name; the command line and those files are compiled
# and linked ahead of the build's libditc_core.a, and the README's command runs on the result.
# It fails when a step no longer applies (an anchor is gone, the code does not compile or link) or
# the pass does not run with the option's value: its dump must return the outputs through a
# `scale` by the command's `by`, the default must leave the graph alone, and a bad value must be
# refused naming the pass and the option.
set -euo pipefail
: "${DITC_SRC:?}" "${DITC_CC:?DITC_CC must name the C compiler}" "${DITC_CORE:?DITC_CORE must name libditc_core.a}"
cd "$DITC_SRC"
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
die() { echo "FAIL: $*" >&2; exit 1; }

# ---- the section's marked blocks: $T/block.N, their markers in $T/markers (line N) ---------------
awk '/^## Writing a pass/ {on = 1; next} /^## / {on = 0} on' README.md >"$T/section.md"
[ -s "$T/section.md" ] || die "README.md has no section '## Writing a pass'"
awk -v dir="$T" '
  /^<!-- readme_pass: .* -->$/ { m = $0; sub(/^<!-- readme_pass: /, "", m); sub(/ -->$/, "", m); pending = m; next }
  /^```/ {
    if (fence) { fence = 0; if (out != "") close(out); out = ""; next }
    fence = 1
    if (pending != "") { n++; out = dir "/block." n; print pending > (dir "/markers"); printf "" > out; pending = "" }
    next
  }
  fence && out != "" { print > out }
' "$T/section.md"
[ -s "$T/markers" ] || die "no <!-- readme_pass: ... --> blocks in 'Writing a pass'"

mkdir -p "$T/src/passes"
new=() run=""  # new: the new files (at least the pass)
n=0
while IFS= read -r marker; do
  n=$((n + 1))
  block="$T/block.$n"
  if [ "$marker" = run ]; then
    run=$(tr '\n' ' ' <"$block")
  elif [[ "$marker" == *" after "* ]]; then
    file=${marker%% after *} anchor=${marker#* after }
    [ -f "$file" ] || die "README names $file, which does not exist"
    mkdir -p "$T/src/$(dirname "$file")"
    [ -f "$T/src/$file" ] || cp "$file" "$T/src/$file"
    line=$(grep -nF -- "$anchor" "$T/src/$file" | head -1 | cut -d: -f1 || true)
    [ -n "$line" ] || die "README: no line containing '$anchor' in $file"
    sed -i "${line}r $block" "$T/src/$file"
    echo "ok   inserted $(wc -l <"$block") line(s) into $file after '$anchor'"
  else
    [ ! -e "$marker" ] || die "README: $marker is a new file, but the tree has one"
    mkdir -p "$T/src/$(dirname "$marker")"
    cp "$block" "$T/src/$marker"
    new+=("$T/src/$marker")
    echo "ok   new file $marker"
  fi
done <"$T/markers"
[ "${#new[@]}" -ge 1 ] || die "README: no new pass file"
[ -n "$run" ] || die "README: no command to run (<!-- readme_pass: run -->)"

# ---- build ditc: the README's files and the copies they changed, then the command line -------------
flags=(-std=c11 -O0 -Wall -Wextra -Werror -D_GNU_SOURCE -fopenmp -I"$T/src" -I"$DITC_SRC")
sanitize=()
case "${DITC_SANITIZE:-0}" in 1 | ON | on | TRUE | true) sanitize=(-fsanitize=address,undefined -fno-sanitize-recover=all) ;; esac
mapfile -t srcs < <(cd "$T/src" && find . -name '*.c' | sed "s|^\./|$T/src/|")
for f in frontend/main.c frontend/cli_*.c; do [ -e "$T/src/$f" ] || srcs+=("$f"); done
objs=()
for s in "${srcs[@]}"; do
  o="$T/obj.${#objs[@]}.o"
  # shellcheck disable=SC2046
  "$DITC_CC" "${flags[@]}" "${sanitize[@]}" $(pkg-config --cflags jansson) -c "$s" -o "$o" || die "compiling $s"
  objs+=("$o")
done
# shellcheck disable=SC2046
"$DITC_CC" "${sanitize[@]}" -fopenmp -o "$T/ditc" "${objs[@]}" "$DITC_CORE" \
  $(pkg-config --libs jansson openblas libcrypto libpng) -ldl -lm || die "linking"
echo "ok   built ditc with the README's pass"

# ---- run the README's command --------------------------------------------------------------------
[[ "$run" == build/ditc\ * ]] || die "README: the command does not start with build/ditc: $run"
read -r -a argv <<<"${run#build/ditc }"
argv=("${argv[@]//\'/}")  # the shell quotes of the README's line
"$T/ditc" "${argv[@]}" >"$T/dump" 2>"$T/err" || { cat "$T/err"; die "the README's command failed: $run"; }
spec=$(printf '%s\n' "${argv[@]}" | grep -o 'scale-outputs:by=[^ ,]*' | head -1 || true)
by=${spec#*by=}
[ -n "$by" ] || die "the README's command sets no by= for scale-outputs"
id=$(grep -oE "^  %[0-9]+ = scale\(%[0-9]+\) \{f=$by\}" "$T/dump" | head -1 | sed -E 's/^  %([0-9]+) .*/\1/' || true)
[ -n "$id" ] || { head -5 "$T/dump"; die "the dump after scale-outputs has no scale by $by"; }
grep -qE "^  return %$id\b" "$T/dump" || die "the outputs are not returned through the scale by $by"
echo "ok   $run: the outputs go through scale {f=$by}"

# the default (by=1) leaves the graph as the default pipeline made it
base=(ir DiT-S/2 --set depth=1)
"$T/ditc" "${base[@]}" --passes default,scale-outputs --dump-after scale-outputs | tail -n +2 >"$T/d1"
"$T/ditc" "${base[@]}" --passes default >"$T/d0"
cmp -s "$T/d0" "$T/d1" || die "scale-outputs with its default changed the graph"
"$T/ditc" ir --passes-help | grep -q '^  scale-outputs ' || die "--passes-help does not list scale-outputs"
"$T/ditc" ir --passes-help | grep -q ':by=X' || die "--passes-help does not list the option by"
rc=0
"$T/ditc" "${base[@]}" --passes 'scale-outputs:by=abc' >/dev/null 2>"$T/err" || rc=$?
[ "$rc" = 2 ] && grep -q "pass 'scale-outputs': option 'by' takes a number" "$T/err" \
  || { cat "$T/err"; die "a bad value of by: exit $rc"; }
echo "ok   default by=1 changes nothing; --passes-help lists it; by=abc is refused"
