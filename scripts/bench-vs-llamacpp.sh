#!/usr/bin/env bash
# Side-by-side CPU benchmark: llama.cpp's llama-bench vs `alc bench`.
#
# Usage: scripts/bench-vs-llamacpp.sh [--reps N] [--rounds N] [--threads N] [--models a,b,...]
#                                     [--depth D]
#
#   models (default all): smollm2-q4_1, smollm2-q4_0, qwen2-q4_k_m, gemma3-q4_k_m
#   tests: pp128, pp512, tg64; each engine runs each test --reps times (default 5).
#   --depth D adds "pp512 @ dD" and "tg64 @ dD": both engines' -d, the same tests
#   with D tokens already in the cache (a long chat).
#
# The two engines are interleaved (llama-bench, alc, llama-bench, alc, ... for
# --rounds rounds, default 2) because the machines are noisy; the reported
# number is the median over rounds of each round's median tok/s.
#
# Needs llama.cpp built by scripts/build-llamacpp.sh and the models fetched by
# scripts/fetch-models.sh (both are run if their outputs are missing).
#
#   ALC_LLAMACPP_DIR  llama.cpp sdist dir (default $HOME/.cache/alc/llama.cpp-0.3.36)
#   ALC_MODELS_DIR    models dir (default <repo>/models)
#   ALC_BIN           alc binary (default <repo>/target/release/alc)
#   ALC_BENCH_OUT     where raw JSON results go (default $HOME/.cache/alc/bench/<timestamp>)
#   ALC_LLAMA_BENCH   llama-bench binary (default: the native build of the sdist dir).
#
# AVX2-only comparison on an AVX-512 machine (what a Zen 3 or an older laptop runs):
# build llama-bench with GGML_NATIVE=OFF GGML_AVX2=ON GGML_AVX512=OFF GGML_AVX_VNNI=OFF
# into another build dir, point ALC_LLAMA_BENCH at it, and turn alc's wider kernels off
# with ALC_QUANT_NO_AVX512=1 ALC_QUANT_NO_AVXVNNI=1 ALC_KERNELS_NO_AVX512=1.
set -uo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
LLAMACPP_DIR="${ALC_LLAMACPP_DIR:-$HOME/.cache/alc/llama.cpp-0.3.36}"
MODELS_DIR="${ALC_MODELS_DIR:-$REPO_ROOT/models}"
ALC_BIN="${ALC_BIN:-$REPO_ROOT/target/release/alc}"
LLAMA_BENCH="${ALC_LLAMA_BENCH:-$LLAMACPP_DIR/vendor/llama.cpp/build/bin/llama-bench}"
OUT="${ALC_BENCH_OUT:-$HOME/.cache/alc/bench/$(date +%Y%m%d-%H%M%S)}"
REPS=5
ROUNDS=2
THREADS=2
DEPTH=0
SELECTED="smollm2-q4_1,smollm2-q4_0,qwen2-q4_k_m,gemma3-q4_k_m"

while [ $# -gt 0 ]; do
  case "$1" in
    --reps|-r) shift; REPS="$1" ;;
    --rounds) shift; ROUNDS="$1" ;;
    --threads|-t) shift; THREADS="$1" ;;
    --models) shift; SELECTED="$1" ;;
    --depth|-d) shift; DEPTH="$1" ;;
    -h|--help) sed -n '2,30p' "$0"; exit 0 ;;
    *) echo "unknown option: $1" >&2; exit 2 ;;
  esac
  shift
done

log() { echo "[bench] $*" >&2; }

model_file() {
  case "$1" in
    smollm2-q4_1) echo smollm2-135m-instruct-q4_1.gguf ;;
    smollm2-q4_0) echo smollm2-135m-instruct-q4_0.gguf ;;
    qwen2-q4_k_m) echo qwen2.5-coder-0.5b-instruct-q4_k_m.gguf ;;
    gemma3-q4_k_m) echo gemma-3-270m-q4_k_m.gguf ;;
    *) echo "unknown model $1" >&2; exit 2 ;;
  esac
}
model_label() {
  case "$1" in
    smollm2-q4_1) echo "SmolLM2-135M Q4_1" ;;
    smollm2-q4_0) echo "SmolLM2-135M Q4_0" ;;
    qwen2-q4_k_m) echo "Qwen2.5-Coder-0.5B Q4_K_M" ;;
    gemma3-q4_k_m) echo "Gemma-3-270M Q4_K_M" ;;
  esac
}

# --- prerequisites -------------------------------------------------------
if [ ! -x "$LLAMA_BENCH" ]; then
  log "llama-bench missing: building llama.cpp"
  "$REPO_ROOT/scripts/build-llamacpp.sh" || { log "llama.cpp build failed"; exit 1; }
fi
for m in ${SELECTED//,/ }; do
  f="$MODELS_DIR/$(model_file "$m")"
  [ -f "$f" ] && continue
  case "$m" in
    smollm2-q4_0) "$REPO_ROOT/scripts/build-llamacpp.sh" --make-q4_0 >&2 ;;
    smollm2-*) "$REPO_ROOT/scripts/fetch-models.sh" --only smollm2 >&2 ;;
    qwen2-*) "$REPO_ROOT/scripts/fetch-models.sh" --only qwen2 >&2 ;;
    gemma3-*) "$REPO_ROOT/scripts/fetch-models.sh" --only gemma3 >&2 ;;
  esac
done

ALC_OK=1
if [ ! -x "$ALC_BIN" ]; then
  log "building alc (cargo build --release -p alc-cli)"
  (cd "$REPO_ROOT" && cargo build --release -p alc-cli >&2) || { log "alc build failed"; ALC_OK=0; }
  [ -x "$ALC_BIN" ] || ALC_OK=0
fi

mkdir -p "$OUT"
log "raw results in $OUT"

DEPTHS=0
[ "$DEPTH" != 0 ] && DEPTHS="0,$DEPTH"

# --- runs (interleaved) --------------------------------------------------
for m in ${SELECTED//,/ }; do
  f="$MODELS_DIR/$(model_file "$m")"
  for r in $(seq 1 "$ROUNDS"); do
    log "$m round $r: llama-bench"
    "$LLAMA_BENCH" -m "$f" -p 128,512 -n 64 -d "$DEPTHS" -t "$THREADS" -r "$REPS" -o json \
      > "$OUT/$m.llamacpp.$r.json" 2> "$OUT/$m.llamacpp.$r.log" \
      || log "llama-bench failed (see $OUT/$m.llamacpp.$r.log)"
    if [ "$ALC_OK" = 1 ]; then
      log "$m round $r: alc bench"
      "$ALC_BIN" bench "$f" -p 128,512 -n 64 -d "$DEPTHS" -t "$THREADS" -r "$REPS" --json \
        > "$OUT/$m.alc.$r.json" 2> "$OUT/$m.alc.$r.log" \
        || { log "alc failed (see $OUT/$m.alc.$r.log)"; rm -f "$OUT/$m.alc.$r.json"; }
    fi
  done
done

# --- report --------------------------------------------------------------
labels=""
for m in ${SELECTED//,/ }; do labels="$labels$m=$(model_label "$m");"; done
python3 - "$OUT" "$SELECTED" "$ROUNDS" "$THREADS" "$labels" "$DEPTH" <<'EOF'
import json, os, statistics, sys

out, selected, rounds, threads, labels = sys.argv[1], sys.argv[2].split(","), int(sys.argv[3]), sys.argv[4], sys.argv[5]
depth = int(sys.argv[6])
label = dict(kv.split("=", 1) for kv in labels.split(";") if kv)
TESTS = ["pp128", "pp512", "tg64"] + ([f"pp512 @ d{depth}", f"tg64 @ d{depth}"] if depth else [])

def load(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None

def llama_round(path):
    data = load(path)
    res = {}
    if not isinstance(data, list):
        return res
    for t in data:
        npr, ngen, d = t.get("n_prompt", 0), t.get("n_gen", 0), t.get("n_depth", 0)
        name = f"pp{npr}" if ngen == 0 else (f"tg{ngen}" if npr == 0 else None)
        if name and d:
            name += f" @ d{d}"

        if name and t.get("samples_ts"):
            res[name] = statistics.median(t["samples_ts"])
    return res

def alc_round(path):
    data = load(path)
    res, mbu = {}, {}
    if not isinstance(data, dict):
        return res, mbu
    for t in data.get("tests", []):
        if t.get("tok_s_median") is not None:
            res[t["name"]] = float(t["tok_s_median"])
            if t.get("mbu") is not None:
                mbu[t["name"]] = float(t["mbu"])
    return res, mbu

def med(xs):
    return statistics.median(xs) if xs else None

print(f"\nthreads={threads}, rounds={rounds} (interleaved); tok/s = median over rounds of per-round medians;")
print("ratio = median over rounds of the paired per-round ratio\n")
print("| model | test | llama.cpp tok/s | alc tok/s | ratio (alc/llama.cpp) | alc MBU |")
print("| --- | --- | ---: | ---: | ---: | ---: |")
for m in selected:
    ll = [llama_round(f"{out}/{m}.llamacpp.{r}.json") for r in range(1, rounds + 1)]
    al = [alc_round(f"{out}/{m}.alc.{r}.json") for r in range(1, rounds + 1)]
    for test in TESTS:
        lv = med([x[test] for x in ll if test in x])
        av = med([x[0][test] for x in al if test in x[0]])
        mb = med([x[1][test] for x in al if test in x[1]])
        # Paired ratios: each round's alc run against the llama.cpp run just before it,
        # so that a slow spell of the machine hits both sides of a ratio.
        pairs = [a[0][test] / l[test] for l, a in zip(ll, al) if test in l and test in a[0] and l[test]]
        rv = med(pairs)
        ls = f"{lv:.1f}" if lv is not None else "llama.cpp: failed"
        as_ = f"{av:.1f}" if av is not None else "alc: failed"
        ratio = f"{rv:.2f}" if rv is not None else "-"
        mbus = f"{mb:.2f}" if (mb is not None and test.startswith("tg")) else ""
        print(f"| {label.get(m, m)} | {test} | {ls} | {as_} | {ratio} | {mbus} |")
EOF
