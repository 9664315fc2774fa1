#!/usr/bin/env bash
# The stages depend one way: ir <- passes <- codegen <- runtime <- frontend.  Every include of a
# project header names its folder ("ir/ir.h"), and no file of a stage includes a header of a later
# stage.  Tests and benchmarks may include anything.  Fails listing every offending line.
set -euo pipefail
cd "${DITC_SRC:?DITC_SRC must name the source tree}"
stages=(ir passes codegen runtime frontend)
rank() { local i; for i in "${!stages[@]}"; do [ "${stages[$i]}" = "$1" ] && { echo "$i"; return; }; done; echo -1; }
bad=0
for s in "${stages[@]}"; do
  r=$(rank "$s")
  while IFS=: read -r file line text; do
    inc=$(sed -n 's/.*#include "\([^"]*\)".*/\1/p' <<<"$text")
    dir=${inc%%/*}
    if [ "$dir" = "$inc" ]; then
      echo "$file:$line: '$inc' does not name its folder"; bad=1; continue
    fi
    d=$(rank "$dir")
    if [ "$d" -lt 0 ]; then echo "$file:$line: '$inc' is in no stage's folder"; bad=1
    elif [ "$d" -gt "$r" ]; then echo "$file:$line: $s includes '$inc' of the later stage $dir"; bad=1; fi
  done < <(grep -n '#include "' "$s"/*.[chly] "$s"/*.def 2>/dev/null | grep -v 'codegen/emu_prelude.h:\|codegen/cuda_prelude.h:' || true)
done
[ "$bad" -eq 0 ] || { echo "FAIL: includes cross the stages' order (ir <- passes <- codegen <- runtime <- frontend)"; exit 1; }
echo "ok: includes name their folder and follow ir <- passes <- codegen <- runtime <- frontend"
