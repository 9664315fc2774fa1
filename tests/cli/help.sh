#!/usr/bin/env bash
# Help comes from the tables that parse the command line:
#   - `ditc help`, `ditc --help` and `ditc -h` list every command and say where the kernel cache is;
#   - for every command, `ditc CMD --help`, `ditc CMD -h` (anywhere among the arguments) and
#     `ditc help CMD` print the same usage, exit 0, and list options that the command takes (each
#     listed option is accepted by the parser: a usage error never says it is unknown there);
#   - `ditc ir --ops` prints the op table, `ditc ir --passes-help` and `ditc help passes` the passes;
#   - README "Using ditc": every option of every example line is in that command's help.
set -euo pipefail
: "${DITC:?}" "${DITC_SRC:?}"
cd "$DITC_SRC"
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
die() { echo "FAIL: $*" >&2; exit 1; }

"$DITC" help >"$T/help"
"$DITC" --help | cmp -s - "$T/help" || die "ditc --help differs from ditc help"
"$DITC" -h | cmp -s - "$T/help" || die "ditc -h differs from ditc help"
grep -qF 'Kernel cache: $DITC_CACHE_DIR, else $XDG_CACHE_HOME/ditc, else ~/.cache/ditc' "$T/help" \
  || die "ditc help does not say where the kernel cache is"
mapfile -t cmds < <(sed -n '/^commands:/,/^$/p' "$T/help" | awk 'NF && !/^commands:/ {print $1}')
[ "${#cmds[@]}" -ge 10 ] || die "ditc help lists ${#cmds[@]} commands"
"$DITC" --version | grep -qE '^ditc [0-9]+\.[0-9]+\.[0-9]+$' || die "ditc --version"

for c in "${cmds[@]}"; do
  "$DITC" "$c" --help >"$T/$c.help" || die "ditc $c --help exits $?"
  grep -q "^usage: ditc $c" "$T/$c.help" || die "ditc $c --help: no usage line"
  "$DITC" help "$c" | cmp -s - "$T/$c.help" || die "ditc help $c differs from ditc $c --help"
  "$DITC" "$c" -h | cmp -s - "$T/$c.help" || die "ditc $c -h differs from ditc $c --help"
  mapfile -t opts < <(sed -n '/^options:/,$p' "$T/$c.help" | grep -oE '^  (-[a-z], )?--[a-z-]+' | grep -oE -- '--[a-z-]+')
  [ "${#opts[@]}" -ge 1 ] || die "ditc $c --help lists no options"
  for o in "${opts[@]}"; do
    # the parser knows each listed option for this command: whatever else goes wrong, not "unknown"
    # or "does not take"
    "$DITC" "$c" $([ "$c" = cache ] && echo ls) "$o" >/dev/null 2>"$T/err" </dev/null || true
    if grep -qE "unknown option|does not take" "$T/err"; then cat "$T/err"; die "ditc $c --help lists $o, which it refuses"; fi
  done
  echo "ok   ditc $c --help: ${#opts[@]} options"
done
"$DITC" run DiT-S/2 --weights random -h | cmp -s - "$T/run.help" || die "-h after other arguments"
"$DITC" sample --bogus --help | cmp -s - "$T/sample.help" || die "--help after a bad option"

"$DITC" ir --ops >"$T/ops"
grep -qE '^linear +' "$T/ops" && grep -qE '^softmax +' "$T/ops" || die "ditc ir --ops does not list linear and softmax"
"$DITC" ir --passes-help >"$T/passes"
"$DITC" help passes | cmp -s - "$T/passes" || die "ditc help passes differs from ditc ir --passes-help"
for p in canonicalize cse fuse plan-memory; do grep -q "^  $p " "$T/passes" || die "--passes-help lacks $p"; done
grep -q '^default: canonicalize,' "$T/passes" || die "--passes-help does not show the default pipeline"
echo "ok   ir --ops, ir --passes-help, help passes"

# README "Using ditc": each example's options are in its command's help
awk '/^## Using ditc/ {on = 1; next} /^## / {on = 0} on' README.md | awk '/^```/ {f = !f; next} f' \
  | sed 's/ #.*//' | tr '&' '\n' >"$T/examples"
checked=0
while read -r line; do
  [[ "$line" == build/ditc\ * ]] || continue
  c=$(awk '{print $2}' <<<"$line")
  [ -f "$T/$c.help" ] || die "README: '$c' is not a command: $line"
  for o in $(grep -oE -- '(^| )--?[a-z][a-z-]*' <<<"$line"); do
    grep -qE -- "^  (-[a-z], )?$o( |,|$)|^  -[a-z], $o( |$)|^  $o, " "$T/$c.help" \
      || die "README: ditc $c $o is not in ditc $c --help"
    checked=$((checked + 1))
  done
done < <(sed 's/^ *//' "$T/examples")
[ "$checked" -gt 20 ] || die "only $checked options checked in README's Using ditc"
echo "ok   README Using ditc: $checked options, each in its command's help"
