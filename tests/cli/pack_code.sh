#!/usr/bin/env bash
# A pack is data, never code for the host: `run --plan` builds the plan again from the pack's model
# record and refuses a pack that says anything else.  A tiny model is compiled, then edited as an
# attacker would, with every hash redone (pack_edit below):
#   - its SOURCE gets a constructor that runs a shell command, or an #include of a file: refused
#     before anything compiles it, on emu and on cuda (under the simulated driver, which would
#     otherwise run the source the pack names): the command never runs, the file never shows;
#   - its plan JSON gets another launch grid, another weight name or shape: refused naming the field;
#   - its manifest gets a model parameter that is not a number: refused;
# and the unedited pack runs on both.  Skipped (exit 77) without NVRTC.
source "$(dirname "$0")/common.bash"

u32() { od -An -t u4 -j "$2" -N 4 "$1" | tr -d ' '; }
u64() { od -An -t u8 -j "$2" -N 8 "$1" | tr -d ' '; }
put() { dd of="$1" bs=1 seek="$2" conv=notrunc status=none; }      # stdin into file $1 at byte $2
sha_bin() { sha256sum | cut -c1-64 | sed 's/../\\x&/g' | { read -r h; printf "$h"; }; }
# pack_edit PACK KIND AT TEXT: write TEXT at byte AT of the pack's first section of KIND (AT may be
# "FROM" text to find there instead, then TEXT must be as long), then re-hash it and the table.
pack_edit() {
  local pack=$1 kind=$2 at=$3 text=$4 n i e off size
  n=$(u32 "$pack" 12)
  for ((i = 0; i < n; i++)); do
    e=$((64 + 64 * i))
    [ "$(u32 "$pack" $e)" = "$kind" ] && break
  done
  off=$(u64 "$pack" $((e + 8)))
  size=$(u64 "$pack" $((e + 16)))
  if ! [[ $at =~ ^[0-9]+$ ]]; then
    [ ${#at} = ${#text} ] || { echo "pack_edit: '$at' and '$text' differ in length"; exit 1; }
    at=$(tail -c +$((off + 1)) "$pack" | head -c "$size" | grep -obUaF -- "$at" | head -1 | cut -d: -f1)
    [ -n "$at" ] || { echo "pack_edit: '$3' is not in section $i"; exit 1; }
  fi
  printf '%s' "$text" | put "$pack" $((off + at))
  tail -c +$((off + 1)) "$pack" | head -c "$size" | sha_bin | put "$pack" $((e + 32))
  tail -c +65 "$pack" | head -c $((64 * n)) | sha_bin | put "$pack" 32
}

# refused PATTERN PACK [BACKEND...]: run refuses the pack saying PATTERN; nothing ran or leaked
refused() {
  local pat=$1 pack=$2
  shift 2
  rm -f "$T/pwned" "$T/out.safetensors"
  "$DITC" run --plan "$pack" "$@" --input "$T/in.safetensors" --output "$T/out.safetensors" >"$T/stdout" 2>"$T/stderr"
  local rc=$?
  if [ "$rc" != 1 ] || ! grep -qF -- "$pat" "$T/stderr" || [ -e "$T/pwned" ] || grep -q SECRET-7f3a "$T/stderr" ||
     [ -e "$T/out.safetensors" ]; then
    echo "FAIL (exit $rc, pwned: $([ -e "$T/pwned" ] && echo yes || echo no)): $pat"; sed 's/^/    /' "$T/stderr" | head; fail=1
  else
    echo "ok   $* $(head -c 200 "$T/stderr")"
  fi
}

cat >"$T/tiny.dit" <<'DIT'
fn dense(x, i: int, o: int) { return linear(x, param weight[o, i], param bias[o]) }
model tiny(d: int = 8) {
  entry forward(x: f32[B, 4, d]) { return x + relu(dense@fc(x, d, d)) }
}
DIT
nvrtc_or_skip "$T/probe" "$DITC" compile "$T/tiny.dit" --entry forward --arch sm_90 --weights random -o "$T/p.ditpack"
printf '%s' '{"x":{"dtype":"F32","shape":[1,4,8],"data_offsets":[0,128]}}' >"$T/hdr"
{ printf "\\x$(printf %02x "$(wc -c <"$T/hdr")")\\x00\\x00\\x00\\x00\\x00\\x00\\x00"; cat "$T/hdr"; head -c 128 /dev/zero; } >"$T/in.safetensors"
echo "SECRET-7f3a" >"$T/secret"
SIM=(env DITC_CUDA_SIM=1)

for be in emu cuda; do
  run=("$DITC" run --plan "$T/p.ditpack" --backend $be --input "$T/in.safetensors" --output "$T/o.$be.safetensors")
  [ $be = cuda ] && run=("${SIM[@]}" "${run[@]}")
  if "${run[@]}" 2>"$T/stderr"; then echo "ok   the unedited pack runs on $be"
  else echo "FAIL: the unedited pack does not run on $be"; sed 's/^/    /' "$T/stderr"; fail=1; fi
done

SOURCE=3 PLAN=2 MANIFEST=1
cp "$T/p.ditpack" "$T/ctor.ditpack"
pack_edit "$T/ctor.ditpack" $SOURCE 0 "int system(const char *); __attribute__((constructor)) static void pwn(void) { system(\"touch $T/pwned\"); }
/*"
cp "$T/p.ditpack" "$T/incl.ditpack"
pack_edit "$T/incl.ditpack" $SOURCE 0 "#include \"$T/secret\"
/*"
for p in ctor incl; do
  refused "its kernel source is not the one its model gives" "$T/$p.ditpack" --backend emu
  DITC_CUDA_SIM=1 refused "its kernel source is not the one its model gives" "$T/$p.ditpack" --backend cuda
done
cp "$T/p.ditpack" "$T/grid.ditpack"
pack_edit "$T/grid.ditpack" $PLAN '"grid":[1,1,1]' '"grid":[9,1,1]'
refused "is not the plan its model gives: 'steps[" "$T/grid.ditpack" --backend emu
grep -qF "].grid[0]' is 9 in the pack, 1 in the plan built from the model" "$T/stderr" || { echo "FAIL: no field named"; fail=1; }
cp "$T/p.ditpack" "$T/name.ditpack"
pack_edit "$T/name.ditpack" $PLAN '"name":"fc.weight"' '"name":"fc.wEight"'
refused "'weights[0].name' is \"fc.wEight\" in the pack, \"fc.weight\" in the plan built from the model" "$T/name.ditpack" --backend emu
cp "$T/p.ditpack" "$T/shape.ditpack"
pack_edit "$T/shape.ditpack" $PLAN '"fc.weight","dtype":"f32","shape":[8,8]' '"fc.weight","dtype":"f32","shape":[4,8]'
refused "is not the plan its model gives: 'weights[0].shape[0]' is 4 in the pack, 8 in the plan built from the model" \
  "$T/shape.ditpack" --backend emu
cp "$T/p.ditpack" "$T/param.ditpack"
pack_edit "$T/param.ditpack" $MANIFEST '"d":"8"' '"d":"x"'
refused "the manifest says model parameter d = 'x'; its model record gives 8" "$T/param.ditpack" --backend emu
exit $fail
