# step_cache.bash - what step_cache.sh and step_cache_cuda.sh share: strict mode, the source tree
# as the working folder, the digits checkpoint (skipped, 77, without it), a temporary folder $TMP
# with the kernel cache, removed at exit, and the model M.
set -euo pipefail
: "${DITC:?}"
cd "${DITC_SRC:?}"
W=models/digits/dit-digits.safetensors
[ -f "$W" ] || { echo "SKIPPED: $W is not there"; exit 77; }
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
export DITC_CACHE_DIR="$TMP/cache"
M=models/dit.dit:DiT-digits
