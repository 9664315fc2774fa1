#!/usr/bin/env bash
# Packs what benchmarks/gpu_check.sh needs on a GPU machine that has CUDA, CMake and PyTorch but no
# package registry (and so no flex, bison, jansson or OpenBLAS to build ditc with): the built
# binaries, the shared libraries they link that are not part of a base system, jq (the reference
# checks read the cases' json with it), and the shared reference cases.  Run it here, after the
# gcc build; copy the repository with BUNDLE inside it to the GPU machine.
#
#   usage: benchmarks/gpu_bundle.sh [BUILD_DIR] [BUNDLE]     (defaults: build, build/gpu-bundle)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$root/build}
bundle=${2:-$build/gpu-bundle}
shared=${DITC_SHARED:-$root/../shared}
for b in ditc gpu_smoke; do
  [ -x "$build/$b" ] || { echo "gpu_bundle: error: $build/$b is not built (cmake --build $build)" >&2; exit 1; }
done
[ -d "$shared/reference" ] || { echo "gpu_bundle: error: no $shared/reference (set DITC_SHARED)" >&2; exit 1; }
command -v jq >/dev/null || { echo "gpu_bundle: error: jq is not installed here" >&2; exit 1; }
rm -rf "$bundle"
mkdir -p "$bundle/bin" "$bundle/lib" "$bundle/shared/reference"
cp "$build/ditc" "$build/gpu_smoke" "$(command -v jq)" "$bundle/bin/"
# the libraries a CUDA image may lack; libc, libm, libgcc_s, libz, libcrypto and libgomp it has
for lib in $(ldd "$build/ditc" "$(command -v jq)" | awk '$3 ~ /^\// {print $3}' | sort -u); do
  case $(basename "$lib") in
    libc.so*|libm.so*|libgcc_s.so*|libz.so*|libcrypto.so*|libgomp.so*|libpthread.so*|libdl.so*) ;;
    *) cp -L "$lib" "$bundle/lib/" ;;
  esac
done
cp "$shared/reference/"*.json "$shared/reference/"*.safetensors "$shared/reference/README.md" "$bundle/shared/reference/"
du -sh "$bundle"
echo "gpu_bundle: wrote $bundle; on the GPU machine: bash benchmarks/gpu_check.sh ${bundle#"$root"/}"
