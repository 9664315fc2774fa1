#!/usr/bin/env bash
# `ditc sample --num-samples N --output X.npz`: an .npz numpy reads (arr_0 uint8 [N, H, W, C], arr_1 int64
# labels), the same bytes for --batch 1 and --batch 5 (each sample's noise and label come from the seed and
# its index), --labels cycled, zip64 (forced by DITC_TEST_ZIP64=1) read back, and bad input refused with a clear
# error and no output file.
source "$(dirname "$0")/common.bash"
PY=/usr/bin/python3
$PY -c 'import numpy' 2>/dev/null || { echo "SKIPPED: python3 has no numpy (.ci/install-deps installs python3-numpy)"; exit 77; }
M=models/digits
A=(DiT-digits --weights "$M/dit-digits.safetensors" --sampler ddpm --steps 3 --cfg-scale 1.5 --backend ref --seed 3)
"$DITC" sample "${A[@]}" --num-samples 7 --batch 1 --output "$T/b1.npz" 2>"$T/log" || { cat "$T/log"; exit 1; }
grep -q "images/s" "$T/log" || { echo "FAIL: no throughput line"; cat "$T/log"; fail=1; }
"$DITC" sample "${A[@]}" --num-samples 7 --batch 5 --output "$T/b5.npz" 2>/dev/null
cmp "$T/b1.npz" "$T/b5.npz" || { echo "FAIL: --batch 1 and --batch 5 differ"; fail=1; }
$PY - "$T/b5.npz" <<'PY' || fail=1
import sys, numpy as np
f = np.load(sys.argv[1])
assert f.files == ["arr_0", "arr_1"], f.files
a, y = f["arr_0"], f["arr_1"]
assert a.shape == (7, 16, 16, 1) and a.dtype == np.uint8, (a.shape, a.dtype)
assert y.shape == (7,) and y.dtype == np.int64 and y.min() >= 0 and y.max() < 10, y
assert 10 < a.mean() < 245 and a.std() > 10, (a.mean(), a.std())
PY
# benchmarks/digits_eval reads the .npz (images and labels)
if [ -x "${DITC_BIN:-}/digits_eval" ]; then
  "$DITC_BIN/digits_eval" "$T/b5.npz" --json >"$T/eval" || { echo "FAIL: digits_eval on the .npz"; fail=1; }
  jq -e '.samples == 7' "$T/eval" >/dev/null || { echo "FAIL: digits_eval saw"; cat "$T/eval"; fail=1; }
fi
# --labels are cycled over the samples
"$DITC" sample "${A[@]}" --num-samples 5 --batch 2 --labels 3,8 --output "$T/l.npz" 2>/dev/null
$PY -c 'import sys, numpy as np; y = np.load(sys.argv[1])["arr_1"]; assert list(y) == [3, 8, 3, 8, 3], y' "$T/l.npz" || fail=1
# zip64 (what a file past 4 GiB is written as), forced on a small file: numpy and zipfile read the same arrays
DITC_TEST_ZIP64=1 "$DITC" sample "${A[@]}" --num-samples 7 --batch 5 --output "$T/z64.npz" 2>/dev/null
$PY - "$T/b5.npz" "$T/z64.npz" <<'PY' || { echo "FAIL: the zip64 .npz"; fail=1; }
import sys, zipfile, numpy as np
a, z = np.load(sys.argv[1]), np.load(sys.argv[2])
assert z.files == ["arr_0", "arr_1"], z.files
assert (a["arr_0"] == z["arr_0"]).all() and (a["arr_1"] == z["arr_1"]).all()
zf = zipfile.ZipFile(sys.argv[2])
assert zf.testzip() is None and all(i.extract_version == 45 for i in zf.infolist())
PY
# bad input: a clear error, non-zero exit, no output file
bad() {  # WHAT OUTPUT ARGS...
  local what=$1 outp=$2
  shift 2
  if "$DITC" sample "${A[@]}" "$@" --output "$outp" 2>"$T/err"; then echo "FAIL $what: accepted"; fail=1; fi
  grep -q "^ditc: error: " "$T/err" || { echo "FAIL $what: no 'ditc: error:'"; cat "$T/err"; fail=1; }
  [ ! -e "$outp" ] || { echo "FAIL $what: $outp was written"; fail=1; }
  if compgen -G "$(dirname "$outp")/*.tmp.*" >/dev/null; then echo "FAIL $what: a temporary remains"; fail=1; fi
}
bad "--num-samples 0" "$T/z.npz" --num-samples 0
bad "--batch 0" "$T/z.npz" --num-samples 3 --batch 0
bad "missing directory" "$T/no/such/dir/z.npz" --num-samples 3
bad "not .npz" "$T/z.safetensors" --num-samples 3
bad "--batch without --num-samples" "$T/z.safetensors" --labels 1 --batch 2
bad "--init-noise with --num-samples" "$T/z.npz" --num-samples 3 --init-noise "$T/b1.npz:x"
exit $fail
