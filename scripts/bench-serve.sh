#!/usr/bin/env bash
# Serving load test: `alc serve` vs llama.cpp's llama-server, same GGUF, same threads.
#
# Usage: scripts/bench-serve.sh [--clients 32] [--duration 120] [--max-tokens 128]
#                               [--threads 2] [--ctx 512] [--model FILE]
#
# For each engine, and for 1 client then --clients clients: start the server with
# --clients parallel sequences of --ctx tokens each (llama-server: -np N -c N*ctx;
# alc: --parallel N --ctx ctx), run scripts/loadtest.py (streaming chat clients,
# temperature 0, back to back for --duration seconds), stop the server. Prints one
# line per run and the alc/llama.cpp ratios; raw JSON goes to $ALC_BENCH_OUT.
#
#   ALC_LLAMACPP_DIR  llama.cpp sdist dir (default $HOME/.cache/alc/llama.cpp-0.3.36;
#                     scripts/build-llamacpp.sh builds llama-server there)
#   ALC_BIN           alc binary (default <repo>/target/release/alc)
#   ALC_BENCH_OUT     raw results (default $HOME/.cache/alc/bench/serve-<timestamp>)
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
LLAMACPP_DIR="${ALC_LLAMACPP_DIR:-$HOME/.cache/alc/llama.cpp-0.3.36}"
LLAMA_SERVER="$LLAMACPP_DIR/vendor/llama.cpp/build/bin/llama-server"
ALC_BIN="${ALC_BIN:-$REPO_ROOT/target/release/alc}"
OUT="${ALC_BENCH_OUT:-$HOME/.cache/alc/bench/serve-$(date +%Y%m%d-%H%M%S)}"
CLIENTS=32
DURATION=120
MAX_TOKENS=128
THREADS=2
CTX=512
MODEL="$REPO_ROOT/models/smollm2-135m-instruct-q4_1.gguf"
PORT=18431

while [ $# -gt 0 ]; do
  case "$1" in
    --clients) shift; CLIENTS="$1" ;;
    --duration) shift; DURATION="$1" ;;
    --max-tokens) shift; MAX_TOKENS="$1" ;;
    --threads|-t) shift; THREADS="$1" ;;
    --ctx) shift; CTX="$1" ;;
    --model) shift; MODEL="$1" ;;
    -h|--help) sed -n '2,17p' "$0"; exit 0 ;;
    *) echo "unknown option: $1" >&2; exit 2 ;;
  esac
  shift
done

log() { echo "[bench-serve] $*" >&2; }
[ -f "$MODEL" ] || "$REPO_ROOT/scripts/fetch-models.sh" >&2
[ -x "$LLAMA_SERVER" ] || "$REPO_ROOT/scripts/build-llamacpp.sh" >&2
[ -x "$ALC_BIN" ] || (cd "$REPO_ROOT" && cargo build --release -p alc-cli >&2)
python3 -c "import httpx" 2>/dev/null || python3 -m pip install -q httpx >&2
mkdir -p "$OUT"

PID=""
stop_server() {
  if [ -n "$PID" ]; then
    kill "$PID" 2>/dev/null || true
    wait "$PID" 2>/dev/null || true
    PID=""
  fi
}
trap stop_server EXIT

start_server() { # engine
  local log_file="$OUT/$1-server.log"
  case "$1" in
    alc)
      "$ALC_BIN" serve "$MODEL" --host 127.0.0.1 --port "$PORT" -t "$THREADS" \
        --parallel "$CLIENTS" --queue $((2 * CLIENTS)) --ctx "$CTX" >"$log_file" 2>&1 &
      ;;
    llama.cpp)
      "$LLAMA_SERVER" -m "$MODEL" --host 127.0.0.1 --port "$PORT" -t "$THREADS" -tb "$THREADS" \
        -np "$CLIENTS" -c $((CLIENTS * CTX)) >"$log_file" 2>&1 &
      ;;
  esac
  PID=$!
  for _ in $(seq 1 600); do
    if python3 - "$PORT" <<'PY' 2>/dev/null; then return 0; fi
import sys, httpx
r = httpx.get(f"http://127.0.0.1:{sys.argv[1]}/health", timeout=1)
sys.exit(0 if r.status_code == 200 else 1)
PY
    kill -0 "$PID" 2>/dev/null || { log "$1 server exited; see $log_file"; tail -5 "$log_file" >&2; exit 1; }
    sleep 0.2
  done
  log "$1 server not healthy after 120 s"; exit 1
}

for n in 1 "$CLIENTS"; do
  for engine in llama.cpp alc; do
    start_server "$engine"
    log "$engine, $n client(s), ${DURATION}s"
    python3 "$REPO_ROOT/scripts/loadtest.py" "http://127.0.0.1:$PORT/v1" \
      "$(basename "$MODEL" .gguf)" --clients "$n" --duration "$DURATION" \
      --max-tokens "$MAX_TOKENS" --pid "$PID" --json "$OUT/$engine-$n.json" >/dev/null || true
    stop_server
  done
done

python3 - "$OUT" "$CLIENTS" <<'PY'
import json, sys
out, n = sys.argv[1], sys.argv[2]
r = {(e, c): json.load(open(f"{out}/{e}-{c}.json")) for e in ("llama.cpp", "alc") for c in ("1", n)}
print(f"{'engine':<10} {'clients':>7} {'tok/s':>8} {'done':>5} {'errors':>6} {'ttft p50':>9} {'ttft p99':>9} {'peak RSS':>9}")
for (e, c), v in r.items():
    f = lambda x: f"{x*1000:.0f} ms" if x is not None else "-"
    print(f"{e:<10} {c:>7} {v['stream_tok_s']:>8.1f} {v['completed']:>5} {v['errors']:>6} {f(v['ttft_p50_s']):>9} {f(v['ttft_p99_s']):>9} {str(v['peak_rss_mib'])+' MiB':>9}")
for c in ("1", n):
    a, l = r[("alc", c)], r[("llama.cpp", c)]
    print(f"alc/llama.cpp aggregate tok/s, {c} client(s): {a['stream_tok_s'] / max(l['stream_tok_s'], 1e-9):.2f}x")
for e in ("llama.cpp", "alc"):
    print(f"{e}: {n} clients vs 1: {r[(e, n)]['stream_tok_s'] / max(r[(e, '1')]['stream_tok_s'], 1e-9):.2f}x aggregate")
PY
log "raw results in $OUT"
