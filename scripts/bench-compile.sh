#!/usr/bin/env bash
# alc compile vs llama.cpp's convert_hf_to_gguf.py + llama-quantize, side by side on the
# same Hugging Face checkpoint, same machine, same threads (issue: alc compile,
# "Performance"). The checkpoint is Qwen2.5-Coder-0.5B-Instruct exported from the
# GGUF in models/ with `alc export --hf --dtype bf16` (the dtype of the published
# checkpoint). Each round runs both jobs back to back, alternating which goes first;
# prints every run and the medians as a ratio.
#
# Usage: scripts/bench-compile.sh [ROUNDS (default 3)] [THREADS (default 2)]
# Needs: scripts/build-llamacpp.sh (llama-quantize, convert_hf_to_gguf.py and its
# gguf-py), and for the converter: pip install torch transformers sentencepiece numpy.
#   ALC_LLAMACPP_DIR  as in build-llamacpp.sh      ALC_BENCH_DIR  scratch (default /tmp/alc-bench-compile)
set -euo pipefail
ROUNDS="${1:-3}"
THREADS="${2:-2}"
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
LC="${ALC_LLAMACPP_DIR:-$HOME/.cache/alc/llama.cpp-0.3.36}/vendor/llama.cpp"
WORK="${ALC_BENCH_DIR:-/tmp/alc-bench-compile}"
ALC="$REPO/target/release/alc"
[ -x "$LC/build/bin/llama-quantize" ] || { echo "run scripts/build-llamacpp.sh first" >&2; exit 2; }
python3 -c "import torch, transformers" 2>/dev/null || { echo "pip install torch transformers sentencepiece numpy" >&2; exit 2; }
(cd "$REPO" && cargo build --release -p alc-cli -q)
mkdir -p "$WORK"
HF="$WORK/qwen2.5-0.5b-hf"
[ -f "$HF/config.json" ] || "$ALC" export --hf "$REPO/models/qwen2.5-coder-0.5b-instruct-q4_k_m.gguf" "$HF" --dtype bf16
largest=$(stat -c %s "$HF"/*.safetensors | sort -n | tail -1)

# time_of CMD...: "<seconds> <peak RSS KiB>" of one command.
time_of() { /usr/bin/time -f "%e %M" -o "$WORK/time.txt" "$@" >/dev/null 2>"$WORK/err.txt" || { cat "$WORK/err.txt" >&2; exit 1; }; cat "$WORK/time.txt"; }

run_llamacpp() {
  rm -f "$WORK/ref.f16.gguf" "$WORK/ref.q4_0.gguf"
  read -r t1 m1 < <(time_of env PYTHONPATH="$LC/gguf-py" python3 "$LC/convert_hf_to_gguf.py" "$HF" --outtype f16 --outfile "$WORK/ref.f16.gguf")
  read -r t2 m2 < <(time_of "$LC/build/bin/llama-quantize" "$WORK/ref.f16.gguf" "$WORK/ref.q4_0.gguf" Q4_0 "$THREADS")
  echo "$(echo "$t1 + $t2" | bc) $(( m1 > m2 ? m1 : m2 )) $t1 $t2"
}
run_alc() {
  rm -rf "$WORK/alc" && mkdir -p "$WORK/alc"
  time_of "$ALC" compile "$HF" --quant q4f16_1 -t "$THREADS" --no-register --out "$WORK/alc" --name q.alm
}

ref_t=(); alc_t=(); ref_m=0; alc_m=0
for r in $(seq 1 "$ROUNDS"); do
  if [ $((r % 2)) -eq 1 ]; then a=$(run_alc); l=$(run_llamacpp); else l=$(run_llamacpp); a=$(run_alc); fi
  read -r at am <<<"$a"; read -r lt lm lt1 lt2 <<<"$l"
  echo "round $r: alc ${at} s ${am} KiB | llama.cpp ${lt} s (convert ${lt1} + quantize ${lt2}) ${lm} KiB"
  alc_t+=("$at"); ref_t+=("$lt"); alc_m=$(( am > alc_m ? am : alc_m )); ref_m=$(( lm > ref_m ? lm : ref_m ))
done
med() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
at=$(med "${alc_t[@]}"); lt=$(med "${ref_t[@]}")
echo "median: alc ${at} s, llama.cpp ${lt} s, ratio $(echo "scale=3; $at / $lt" | bc)"
echo "peak RSS: alc $((alc_m / 1024)) MiB, llama.cpp $((ref_m / 1024)) MiB, largest shard $((largest / 1048576)) MiB, alc/shard $(echo "scale=3; $alc_m * 1024 / $largest" | bc)"
