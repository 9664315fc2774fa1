#!/usr/bin/env bash
# Hostile files around ditc (ir/fileio.h), each command under `timeout 10` so that a hang fails:
#   - a FIFO as the model file, as weights, pack, init noise, labels and a compare operand, as a
#     kernel cache entry and as a *.dit in the models directory (which `ditc stats DiT-S/2` reads)
#     is an error naming it, exit 1, never a hang; so are a directory named x.dit, /dev/zero as a
#     model file (directly and through a symlink) and a model file over the 16 MiB cap; a 100 GB
#     sparse cache entry is refused by its size;
#   - outputs: a character device is written through and stays one (as root a private mknod copy of
#     /dev/null, never the real one; otherwise /dev/null, which a non-root process could not replace
#     anyway), a symlink's target is written and the link stays, a FIFO is written through to its
#     reader and stays a FIFO, /dev/full gives "No space left on device"; none leaves a *.tmp.* file;
#   - running out of memory (ulimit -v, or a sanitizer's allocator told to return NULL) is
#     "ditc: error: out of memory", exit 1.
set -uo pipefail
: "${DITC:?}" "${DITC_SRC:?}"
cd "$DITC_SRC"
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
fail=0
TINY=(--set input_size=16 --set in_channels=3 --set patch_size=2 --set hidden_size=64 --set depth=2 --set num_heads=4 --set num_classes=10)
SAMPLE=(sample models/dit.dit "${TINY[@]}" --weights random --sampler ddim --steps 2 --cfg-scale 1.5 --labels 0,1)

# expect STATUS PATTERN -- command...: exit status, PATTERN on stderr, no temporary file left in $T
expect() {
  local want=$1 pat=$2; shift 3
  timeout 10 "$@" >"$T/stdout" 2>"$T/stderr"
  local got=$?
  local left; left=$(find "$T" -name '*.tmp.*' | head -3)
  if [ "$got" != "$want" ] || { [ -n "$pat" ] && ! cat "$T/stdout" "$T/stderr" | grep -qE -- "$pat"; } || [ -n "$left" ]; then
    echo "FAIL (exit $got, want $want; pattern '$pat'${left:+; left behind: $left}): $*"
    sed 's/^/    /' "$T/stderr" | head -20; fail=1
  else
    if [ -n "$pat" ]; then echo "ok   $(cat "$T/stdout" "$T/stderr" | grep -E -m1 -- "$pat")"; else echo "ok   exit 0: $*"; fi
  fi
}
check() { # DESCRIPTION CONDITION...
  local what=$1; shift
  if "$@"; then echo "ok   $what"; else echo "FAIL: $what"; fail=1; fi
}

# ---- inputs that must not hang ------------------------------------------------------------------
mkfifo "$T/fifo" "$T/fifo.dit"
"$DITC" "${SAMPLE[@]}" --output "$T/real.safetensors" 2>/dev/null || { echo "FAIL: cannot sample"; exit 1; }
expect 1 "fifo.dit: error: cannot read the model file: is a FIFO, not a regular file" -- "$DITC" stats "$T/fifo.dit"
expect 1 "fifo.dit: error: cannot read the model file: is a FIFO" -- "$DITC" stats "$T/fifo.dit:DiT-S/2"
expect 1 "fifo: is a FIFO, not a regular file" -- "$DITC" check models/dit.dit "${TINY[@]}" --weights "$T/fifo"
expect 1 "fifo: is a FIFO, not a regular file" -- "$DITC" sample --plan "$T/fifo" --sampler ddim --steps 2 \
  --cfg-scale 1.5 --labels 0,1 --output "$T/out.png"
expect 1 "fifo: is a FIFO, not a regular file" -- "$DITC" "${SAMPLE[@]}" --init-noise "$T/fifo:x" --output "$T/out.png"
expect 1 "fifo: is a FIFO, not a regular file" -- "$DITC" sample models/dit.dit "${TINY[@]}" --weights random \
  --sampler ddim --steps 2 --cfg-scale 1.5 --labels-from "$T/fifo:labels" --output "$T/out.png"
expect 1 "fifo: is a FIFO, not a regular file" -- "$DITC" compare "$T/fifo:samples" "$T/real.safetensors:samples"
expect 1 "fifo: is a FIFO, not a regular file" -- "$DITC" compare "$T/real.safetensors:samples" "$T/fifo:samples"

# a FIFO among the models directory's *.dit: read by every lookup of a configuration name
mkdir "$T/models"
cp models/*.dit "$T/models/"
mkfifo "$T/models/a.dit"  # sorted before dit.dit
expect 1 "models/a.dit: error: cannot read the model file: is a FIFO" -- env DITC_MODELS="$T/models" "$DITC" stats DiT-S/2
expect 1 "models/a.dit: error: cannot read the model file: is a FIFO" -- env DITC_MODELS="$T/models" "$DITC" models
rm "$T/models/a.dit"
ln -s /dev/zero "$T/models/0.dit"  # sorted before dit.dit: read before DiT-S/2 is found
expect 1 "0.dit: error: cannot read the model file: is a character device" -- env DITC_MODELS="$T/models" "$DITC" stats DiT-S/2
rm "$T/models/0.dit"
mkdir "$T/models/b.dit"  # sorted before dit.dit
expect 1 "b.dit: error: cannot read the model file: is a directory" -- env DITC_MODELS="$T/models" "$DITC" stats DiT-S/2
rm -r "$T/models/b.dit"
expect 0 "" -- env DITC_MODELS="$T/models" "$DITC" stats DiT-S/2
# the same configurations in two files: an error at the second definition, a note at the first;
# `ditc models` lists each name once
cp models/dit.dit "$T/models/e.dit"  # sorted after dit.dit
expect 1 "e.dit:[0-9]+:8: error: configuration 'DiT-S/2' is defined twice in the models directory" -- env DITC_MODELS="$T/models" "$DITC" stats DiT-S/2
grep -qE "models/dit.dit:[0-9]+:8: note: the first definition of 'DiT-S/2' is here" "$T/stderr" || { echo "FAIL: no note at the first definition"; fail=1; }
expect 1 "e.dit:[0-9]+:8: error: configuration 'DiT-XL/2' is defined twice" -- env DITC_MODELS="$T/models" "$DITC" models
check "ditc models lists DiT-S/2 once" [ "$(grep -c '^DiT-S/2	' "$T/stdout")" = 1 ]
rm "$T/models/e.dit"

mkdir "$T/x.dit"
expect 1 "x.dit: error: cannot read the model file: is a directory, not a regular file" -- "$DITC" stats "$T/x.dit"
expect 1 "/dev/zero: error: cannot read the model file: is a character device" -- "$DITC" stats /dev/zero
ln -s /dev/zero "$T/zero.dit"
expect 1 "zero.dit: error: cannot read the model file: is a character device" -- "$DITC" stats "$T/zero.dit"
{ cat models/dit.dit; head -c $((17 << 20)) /dev/zero | tr '\0' ' '; } >"$T/huge.dit"
expect 1 "huge.dit: error: cannot read the model file: [0-9]+ bytes, more than the 16 MiB limit for a model file" -- \
  "$DITC" stats "$T/huge.dit:DiT-S/2"

# kernel cache entries that are a FIFO, or 100 GB of holes: refused by type and size, removed
export DITC_CACHE_DIR="$T/cache"
key=ab$(printf '%062d' 0)
mkdir -p "$T/cache/sm_90/ab"
mkfifo "$T/cache/sm_90/ab/$key.cubin"
expect 1 "corrupt entry .*$key.cubin \(is a FIFO, not a regular file\)" -- "$DITC" cache verify
if truncate -s 100G "$T/cache/sm_90/ab/$key.cubin" 2>/dev/null; then
  expect 1 "corrupt entry .*\(107374182400 bytes, more than an entry may hold" -- "$DITC" cache verify
  rm -f "$T/cache/sm_90/ab/$key.cubin"
else
  echo "FAIL: cannot make a sparse file in $T"; fail=1
fi

# ---- outputs --------------------------------------------------------------------------------------
# A character device: written through, never replaced.
dev=/dev/null
if [ "$(id -u)" = 0 ] && mknod "$T/null" c 1 3 2>/dev/null && : >"$T/null" 2>/dev/null; then dev=$T/null; fi
before=$(stat -c '%F %i %t:%T' "$dev")
expect 0 "" -- "$DITC" "${SAMPLE[@]}" --output "$dev"
check "$dev is still the same character device" [ "$(stat -c '%F %i %t:%T' "$dev")" = "$before" ]
[ "$dev" = /dev/null ] || rm -f "$dev"

# A full device: the reason, and nothing left.
expect 1 "/dev/full: cannot write: No space left on device" -- "$DITC" "${SAMPLE[@]}" --output /dev/full
ln -s /dev/full "$T/full.png"
expect 1 "full.png \(-> /dev/full\)|full.png: cannot write: No space left on device" -- "$DITC" "${SAMPLE[@]}" --output "$T/full.png"
check "/dev/full is still a character device" [ -c /dev/full ]

# A symlink: its target is written, the link stays.
mkdir "$T/real"
echo old >"$T/real/target.safetensors"
ln -s real/target.safetensors "$T/link.safetensors"
expect 0 "" -- "$DITC" "${SAMPLE[@]}" --output "$T/link.safetensors"
check "the link is still a link" [ -L "$T/link.safetensors" ]
expect 0 "relative L2 error 0" -- "$DITC" compare "$T/real/target.safetensors:samples" "$T/real.safetensors:samples"
ln -s real/new.png "$T/dangling.png"
expect 0 "" -- "$DITC" "${SAMPLE[@]}" --output "$T/dangling.png"
check "a dangling link stays a link" [ -L "$T/dangling.png" ]
check "a dangling link's target is created" [ -s "$T/real/new.png" ]
check "the PNG is a PNG" [ "$(head -c 4 "$T/real/new.png" | tail -c 3)" = PNG ]

# A FIFO: written through to its reader, still a FIFO after.
cat "$T/fifo" >"$T/from_fifo.safetensors" &
reader=$!
expect 0 "" -- "$DITC" "${SAMPLE[@]}" --output "$T/fifo"
wait "$reader"
check "the FIFO is still a FIFO" [ -p "$T/fifo" ]
expect 0 "relative L2 error 0" -- "$DITC" compare "$T/from_fifo.safetensors:samples" "$T/real.safetensors:samples"
mkfifo "$T/fifo.png"
cat "$T/fifo.png" >"$T/from_fifo.png" &
reader=$!
expect 0 "" -- "$DITC" "${SAMPLE[@]}" --output "$T/fifo.png"
wait "$reader"
check "a PNG came through the FIFO" [ "$(head -c 4 "$T/from_fifo.png" | tail -c 3)" = PNG ]

# A directory is refused, and nothing is computed into a temporary beside it.
mkdir "$T/dir.png"
expect 1 "dir.png: cannot write: is a directory" -- "$DITC" "${SAMPLE[@]}" --output "$T/dir.png"

# ---- out of memory -----------------------------------------------------------------------------------
# 100000 labels x 1000000 repeats: a 400 GB label array.  Under ASan, ulimit -v cannot work (its
# shadow memory) and its allocator is told to return NULL for anything over 2 GiB instead.
OOM=(sample models/dit.dit "${TINY[@]}" --set num_classes=100000 --weights random --sampler ddim --steps 2
  --cfg-scale 1.5 --labels 0-99999 --repeat 1000000 --output "$T/oom.png")
if grep -q AddressSanitizer "$DITC"; then
  expect 1 "^ditc: error: out of memory \(asked for 400000000000 bytes\)" -- \
    env ASAN_OPTIONS=allocator_may_return_null=1:max_allocation_size_mb=2048:detect_leaks=0 "$DITC" "${OOM[@]}"
else
  expect 1 "^ditc: error: out of memory \(asked for 400000000000 bytes\)" -- bash -c 'ulimit -v 4000000; exec "$@"' oom "$DITC" "${OOM[@]}"
fi
check "out of memory left no output" [ ! -e "$T/oom.png" ]
exit $fail
