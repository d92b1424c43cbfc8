#!/usr/bin/env bash
# Build llama.cpp (reference engine) from the llama-cpp-python==0.3.36 sdist.
#
# Usage: scripts/build-llamacpp.sh [--make-q4_0] [--jobs N]
#
# Idempotent: the sdist is downloaded and extracted once, cmake reconfigures
# and rebuilds incrementally.
#
#   ALC_LLAMACPP_DIR  where the sdist is extracted (default $HOME/.cache/alc/llama.cpp-0.3.36)
#   ALC_MODELS_DIR    models directory (default <repo>/models), used by --make-q4_0
#
# Outputs (under $ALC_LLAMACPP_DIR/vendor/llama.cpp/build/bin):
#   llama-bench llama-completion llama-tokenize llama-quantize llama-server llama-mtmd-cli
#   libllama.so libggml*.so libmtmd.so (llama-mtmd-cli: the multimodal CLI, scripts/bench-vlm.sh)
# With --make-q4_0: $ALC_MODELS_DIR/smollm2-135m-instruct-q4_0.gguf (requantized from Q4_1).
set -euo pipefail

VERSION=0.3.36
REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
LLAMACPP_DIR="${ALC_LLAMACPP_DIR:-$HOME/.cache/alc/llama.cpp-$VERSION}"
MODELS_DIR="${ALC_MODELS_DIR:-$REPO_ROOT/models}"
MAKE_Q4_0=0
JOBS="$(nproc 2>/dev/null || echo 2)"

while [ $# -gt 0 ]; do
  case "$1" in
    --make-q4_0) MAKE_Q4_0=1 ;;
    --jobs|-j) shift; JOBS="$1" ;;
    -h|--help) sed -n '2,16p' "$0"; exit 0 ;;
    *) echo "unknown option: $1" >&2; exit 2 ;;
  esac
  shift
done

log() { echo "[build-llamacpp] $*"; }

# 1. sdist
SRC="$LLAMACPP_DIR/vendor/llama.cpp"
if [ ! -f "$SRC/CMakeLists.txt" ]; then
  tmp="$(mktemp -d)"
  trap 'rm -rf "$tmp"' EXIT
  log "downloading llama-cpp-python==$VERSION sdist"
  python3 -m pip download --no-deps --no-binary llama-cpp-python \
    "llama-cpp-python==$VERSION" -d "$tmp" >/dev/null
  tarball="$(ls "$tmp"/llama_cpp_python-"$VERSION".tar.gz)"
  mkdir -p "$(dirname "$LLAMACPP_DIR")"
  stage="$LLAMACPP_DIR.partial.$$"
  rm -rf "$stage"
  mkdir -p "$stage"
  tar -xzf "$tarball" -C "$stage" --strip-components=1
  rm -rf "$LLAMACPP_DIR"
  mv "$stage" "$LLAMACPP_DIR"
  log "extracted to $LLAMACPP_DIR"
else
  log "sources present in $LLAMACPP_DIR"
fi

# 2. cmake
if ! command -v cmake >/dev/null 2>&1; then
  log "installing cmake via apt"
  SUDO=""
  if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq cmake >/dev/null
fi

# 3. build
cd "$SRC"
start=$(date +%s)
cmake -B build \
  -DCMAKE_BUILD_TYPE=Release \
  -DGGML_NATIVE=ON \
  -DLLAMA_OPENSSL=OFF \
  -DLLAMA_USE_PREBUILT_UI=OFF \
  -DLLAMA_BUILD_TESTS=OFF \
  -DBUILD_SHARED_LIBS=ON >/dev/null
cmake --build build -j"$JOBS" --target llama llama-bench llama-completion llama-tokenize llama-quantize llama-server llama-mtmd-cli
end=$(date +%s)
log "build done in $((end - start)) s"
BIN="$SRC/build/bin"
log "binaries in $BIN:"
ls -l "$BIN" | sed 's/^/  /'

# 4. optional Q4_0 requantization of SmolLM2
if [ "$MAKE_Q4_0" = 1 ]; then
  src_model="$MODELS_DIR/smollm2-135m-instruct-q4_1.gguf"
  dst_model="$MODELS_DIR/smollm2-135m-instruct-q4_0.gguf"
  if [ -s "$dst_model" ]; then
    log "$dst_model already present"
  else
    if [ ! -f "$src_model" ]; then
      log "fetching SmolLM2 Q4_1 first"
      "$REPO_ROOT/scripts/fetch-models.sh" --only smollm2
    fi
    "$BIN/llama-quantize" --allow-requantize "$src_model" "$dst_model.tmp" Q4_0 2 \
      > "$MODELS_DIR/.quantize-q4_0.log" 2>&1 || { cat "$MODELS_DIR/.quantize-q4_0.log"; exit 1; }
    mv "$dst_model.tmp" "$dst_model"
    log "wrote $dst_model ($(stat -c %s "$dst_model") bytes)"
  fi
fi
