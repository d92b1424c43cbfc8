#!/usr/bin/env bash
# Side-by-side embedding benchmark (issue #4): alc's native engine vs ONNX Runtime,
# all through the same harness (`alc bench MODEL -f SENTENCES`, which runs ONNX models
# in ONNX Runtime 1.32 via alc-ort), same sentences, same threads, one run.
#
# Usage: scripts/bench-embed.sh [--reps N] [--rounds N] [--threads N]
#
# Models (all from models/all-minilm-l6-v2, fetched by scripts/fetch-models.sh):
#   alc-int8       native package, Q8_0 matrices        (alc compile DIR --quant int8)
#   alc-f32        native package, f32                  (alc compile DIR --quant f32)
#   ort-published  the published INT8 ONNX export       (models/all-minilm-l6-v2-int8.onnx)
#   ort-f32        f32 ONNX exported by alc             (alc compile DIR --runtime onnxruntime --quant f32 --emit-onnx)
#   ort-int8       weight-only INT8 ONNX made by alc    (… --quant int8 --emit-onnx)
#   ort-int8-dyn   dynamic INT8 ONNX (MatMulInteger)    (… --quant int8-dynamic --emit-onnx)
# Sentences: data/bench/embed-sentences.txt (scripts/goldens/make_embed_sentences.py).
# Each round runs every model once (alc bench: batch 1 and 32, then single-query
# latency); the reported number is the median over rounds. Ratios are against
# ort-published (the issue's reference) and ort-f32.
#
#   ALC_BIN        alc binary (default <repo>/target/release/alc)
#   ALC_BENCH_OUT  where raw JSON goes (default $HOME/.cache/alc/bench-embed/<timestamp>)
set -euo pipefail
REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
ALC_BIN="${ALC_BIN:-$REPO_ROOT/target/release/alc}"
OUT="${ALC_BENCH_OUT:-$HOME/.cache/alc/bench-embed/$(date +%Y%m%d-%H%M%S)}"
REPS=3
ROUNDS=2
THREADS=2
while [ $# -gt 0 ]; do
  case "$1" in
    --reps) REPS="$2"; shift 2 ;;
    --rounds) ROUNDS="$2"; shift 2 ;;
    --threads) THREADS="$2"; shift 2 ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
done
cd "$REPO_ROOT"
scripts/fetch-models.sh --only minilm,minilm_onnx >&2
[ -x "$ALC_BIN" ] || cargo build --release -p alc-cli >&2
python3 -c "import onnxruntime" 2>/dev/null || python3 -m pip install --quiet onnxruntime==1.32.0
mkdir -p "$OUT/pkg"
DIR=models/all-minilm-l6-v2
c() { "$ALC_BIN" compile "$DIR" --out "$OUT/pkg" --no-register --force "$@" >/dev/null; }
c --quant int8 --name alc-int8.AON
c --quant f32 --name alc-f32.AON
c --runtime onnxruntime --quant f32 --name ort-f32.AON --emit-onnx
c --runtime onnxruntime --quant int8 --name ort-int8.AON --emit-onnx
c --runtime onnxruntime --quant int8-dynamic --name ort-int8-dyn.AON --emit-onnx
declare -A MODEL=(
  [alc-int8]="$OUT/pkg/alc-int8.AON"
  [alc-f32]="$OUT/pkg/alc-f32.AON"
  [ort-published]="models/all-minilm-l6-v2-int8.onnx"
  [ort-f32]="$OUT/pkg/ort-f32.onnx"
  [ort-int8]="$OUT/pkg/ort-int8.onnx"
  [ort-int8-dyn]="$OUT/pkg/ort-int8-dyn.onnx"
)
ORDER="alc-int8 alc-f32 ort-published ort-f32 ort-int8 ort-int8-dyn"
for r in $(seq 1 "$ROUNDS"); do
  for m in $ORDER; do
    echo "round $r: $m" >&2
    "$ALC_BIN" bench "${MODEL[$m]}" --tokenizer "$DIR" -f data/bench/embed-sentences.txt \
      -t "$THREADS" -r "$REPS" --batch 1,32 --json > "$OUT/$m.$r.json"
  done
done
python3 - "$OUT" "$ROUNDS" $ORDER <<'PY'
import json, statistics, sys
out, rounds, order = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
res = {}
for m in order:
    rs = [json.load(open(f"{out}/{m}.{r}.json")) for r in range(1, rounds + 1)]
    med = lambda f: statistics.median(f(x) for x in rs)
    res[m] = {
        "b1": med(lambda x: x["batches"][0]["sentences_per_s"]),
        "b32": med(lambda x: x["batches"][1]["sentences_per_s"]),
        "q": med(lambda x: x["query_ms_median"]),
        "rss": med(lambda x: x["peak_rss_bytes"]) / 2**20,
        "load": med(lambda x: x["load_ms"]),
    }
r0 = json.load(open(f"{out}/{order[0]}.1.json"))
print(f"{r0['sentences']} sentences, {r0['tokens']} tokens ({r0['min_tokens']}..{r0['max_tokens']}), {r0['threads']} threads, {rounds} rounds")
print("| model | batch 1 sent/s | batch 32 sent/s | query ms | ×published b1 | ×published b32 | ×ort-f32 b32 | load ms | peak RSS MiB |")
print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
p, f = res["ort-published"], res["ort-f32"]
for m in order:
    x = res[m]
    print(f"| {m} | {x['b1']:.1f} | {x['b32']:.1f} | {x['q']:.3f} | {x['b1']/p['b1']:.2f} | {x['b32']/p['b32']:.2f} | {x['b32']/f['b32']:.2f} | {x['load']:.0f} | {x['rss']:.0f} |")
PY
echo "raw results: $OUT" >&2
