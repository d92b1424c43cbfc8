#!/usr/bin/env bash
# Side-by-side CPU benchmark of a vision-language model (issue #7):
# llama.cpp's llama-mtmd-cli vs `alc run --image`, SmolVLM-256M-Instruct-sized.
#
# Usage: scripts/bench-vlm.sh [--rounds N] [--tokens N] [--threads N] [--image FILE]
#                             [--prompt TEXT] [--vision f16|q8_0] [--no-build]
#
# The model is a random-weight Idefics3 at SmolVLM-256M-Instruct's real shape
# (scripts/make_vlm_bench_model.py), so the speed is real and the text is noise. Both
# engines see the same checkpoint (f16 weights), the same image (default: astronaut
# upscaled to 2048 x 2048 = 4 x 4 tiles + the global image = 17 tiles of 512 px), the same
# prompt ("Describe this image.", chat template), greedy, --threads threads (default 2),
# --tokens tokens (default 32). The engines are interleaved (llama.cpp, alc, alc,
# llama.cpp, ... for --rounds rounds, default 2); the table shows the median per engine.
#
# --vision q8_0 puts the vision tower's matrices in Q8_0 on both sides: llama.cpp's
# mmproj converted with --outtype q8_0, alc's package compiled with --quant f16 and
# --tensor-type 'v.blk.*=q8_0' --tensor-type 'mm.*=q8_0' (the text model stays f16).
#
# Builds what is missing: the checkpoint and image (make_vlm_bench_model.py), the GGUF
# files (llama.cpp's convert_hf_to_gguf.py: text-f16.gguf, and --mmproj mmproj-f16.gguf),
# llama-mtmd-cli (build-llamacpp.sh), target/release/alc (cargo build -j2), the alc package
# (alc compile --quant f16). --no-build fails instead.
#
# What is measured (ms unless said):
#   tiles           tiles encoded (llama.cpp: entries of its encode batches; alc: --timings)
#   preprocess      image decode + resize + split (llama.cpp: from the log line before
#                   load_media to the end of its slicing; alc: "preprocess")
#   vision encode   encoder + connector (llama.cpp: sum of "mtmd batch encoding done in";
#                   alc: "vision encoder" + "modality projector")
#   per tile        vision encode / tiles
#   image→1st tok   image file to first token (llama.cpp: log time of the first sampled
#                   token = time of llama_perf print minus its eval time, minus the log time
#                   before load_media; alc: "image to first token")
#   decode tok/s    llama.cpp: eval runs / eval time (llama_perf); alc: generated / decode
#   speedup         llama.cpp time / alc time (tok/s: alc / llama.cpp); goals >= 1.5 on
#                   vision encode, >= 1.0 on image to first token
#
#   ALC_LLAMACPP_DIR  llama.cpp sdist dir (default $HOME/.cache/alc/llama.cpp-0.3.36)
#   ALC_VLM_DIR       checkpoint, GGUFs, package, image (default $HOME/.cache/alc/vlm-bench)
#   ALC_BIN           alc binary (default <repo>/target/release/alc)
#   ALC_BENCH_OUT     raw logs + summary.json (default $HOME/.cache/alc/bench/vlm-<timestamp>)
set -uo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
LLAMACPP_DIR="${ALC_LLAMACPP_DIR:-$HOME/.cache/alc/llama.cpp-0.3.36}"
SRC="$LLAMACPP_DIR/vendor/llama.cpp"
MTMD_CLI="$SRC/build/bin/llama-mtmd-cli"
VLM_DIR="${ALC_VLM_DIR:-$HOME/.cache/alc/vlm-bench}"
ALC_BIN="${ALC_BIN:-$REPO_ROOT/target/release/alc}"
OUT="${ALC_BENCH_OUT:-$HOME/.cache/alc/bench/vlm-$(date +%Y%m%d-%H%M%S)}"
HF_DIR="$VLM_DIR/smolvlm-256m-random"
TEXT_GGUF="$VLM_DIR/gguf/text-f16.gguf"
MMPROJ_GGUF="$VLM_DIR/gguf/mmproj-f16.gguf"
PKG_DIR="$VLM_DIR/alc-f16"
IMAGE="$VLM_DIR/astronaut-2048.png"
PROMPT="Describe this image."
ROUNDS=2
TOKENS=32
THREADS=2
BUILD=1
VISION=f16

while [ $# -gt 0 ]; do
  case "$1" in
    --rounds) shift; ROUNDS="$1" ;;
    --tokens|-n) shift; TOKENS="$1" ;;
    --threads|-t) shift; THREADS="$1" ;;
    --image) shift; IMAGE="$1" ;;
    --prompt|-p) shift; PROMPT="$1" ;;
    --vision) shift; VISION="$1" ;;
    --no-build) BUILD=0 ;;
    -h|--help) sed -n '2,37p' "$0"; exit 0 ;;
    *) echo "unknown option: $1" >&2; exit 2 ;;
  esac
  shift
done

case "$VISION" in
  f16) ;;
  q8_0) MMPROJ_GGUF="$VLM_DIR/gguf/mmproj-q8_0.gguf"; PKG_DIR="$VLM_DIR/alc-q8_0" ;;
  *) echo "--vision: f16 or q8_0, not '$VISION'" >&2; exit 2 ;;
esac

log() { echo "[bench-vlm] $*" >&2; }
die() { log "error: $*"; exit 1; }
need_build() { [ "$BUILD" = 1 ] || die "$1 missing (run without --no-build)"; }

# ---- 1. inputs -------------------------------------------------------------
if [ ! -s "$HF_DIR/model.safetensors" ] || [ ! -s "$VLM_DIR/astronaut-2048.png" ]; then
  need_build "$HF_DIR"
  [ -x "$ALC_BIN" ] || { log "building alc"; (cd "$REPO_ROOT" && cargo build --release -j2 -p alc-cli) || die "cargo build failed"; }
  log "making the checkpoint and the image"
  python3 "$REPO_ROOT/scripts/make_vlm_bench_model.py" --out "$VLM_DIR" --alc "$ALC_BIN" || die "make_vlm_bench_model.py failed"
fi
[ -f "$IMAGE" ] || die "image $IMAGE missing"

if [ ! -x "$MTMD_CLI" ]; then
  need_build "$MTMD_CLI"
  log "building llama.cpp (llama-mtmd-cli)"
  "$REPO_ROOT/scripts/build-llamacpp.sh" --jobs 2 >&2 || die "build-llamacpp.sh failed"
fi

convert() { # $1 = outfile, rest = extra args
  local out="$1"; shift
  log "converting with llama.cpp: $(basename "$out")"
  mkdir -p "$(dirname "$out")"
  (cd "$SRC" && PYTHONPATH="$SRC/gguf-py${PYTHONPATH:+:$PYTHONPATH}" \
     python3 convert_hf_to_gguf.py "$HF_DIR" --outtype f16 --outfile "$out.tmp" "$@" \
     > "$out.convert.log" 2>&1) || { tail -20 "$out.convert.log" >&2; die "convert_hf_to_gguf.py failed (python deps: numpy, sentencepiece, safetensors, torch, transformers; see $SRC/requirements)"; }
  mv "$out.tmp" "$out"
}
if [ ! -s "$TEXT_GGUF" ]; then need_build "$TEXT_GGUF"; convert "$TEXT_GGUF"; fi
if [ ! -s "$MMPROJ_GGUF" ]; then need_build "$MMPROJ_GGUF"; convert "$MMPROJ_GGUF" --mmproj --outtype "$VISION"; fi

if [ ! -x "$ALC_BIN" ]; then
  need_build "$ALC_BIN"
  log "building alc"
  (cd "$REPO_ROOT" && cargo build --release -j2 -p alc-cli) || die "cargo build failed"
fi

PKG="$(ls "$PKG_DIR"/*.ALM 2>/dev/null | head -1)"
if [ -z "$PKG" ]; then
  need_build "alc package in $PKG_DIR"
  VISION_ARGS=()
  if [ "$VISION" = q8_0 ]; then
    VISION_ARGS=(--tensor-type 'v.blk.*=q8_0' --tensor-type 'mm.*=q8_0' --name AVA-LL32-256MQ8V.ALM)
  fi
  log "alc compile $HF_DIR --quant f16 ${VISION_ARGS[*]}"
  "$ALC_BIN" compile "$HF_DIR" --quant f16 "${VISION_ARGS[@]}" --out "$PKG_DIR" --no-register >&2 \
    || die "alc compile failed"
  PKG="$(ls "$PKG_DIR"/*.ALM | head -1)"
fi

# ---- 2. runs ---------------------------------------------------------------
mkdir -p "$OUT"
cat > "$OUT/commands.txt" <<EOF
llama.cpp: $MTMD_CLI -m $TEXT_GGUF --mmproj $MMPROJ_GGUF --image $IMAGE -p "$PROMPT" -n $TOKENS -t $THREADS --temp 0 --perf -v --log-timestamps
alc:       $ALC_BIN run $PKG --image $IMAGE -p "$PROMPT" --chat -n $TOKENS --temp 0 -t $THREADS --timings
EOF
log "results in $OUT"
log "image $IMAGE, prompt \"$PROMPT\", $TOKENS tokens, $THREADS threads, $ROUNDS rounds"

run_llama() { # $1 = round
  local f="$OUT/llama.r$1"
  log "round $1: llama-mtmd-cli"
  "$MTMD_CLI" -m "$TEXT_GGUF" --mmproj "$MMPROJ_GGUF" --image "$IMAGE" -p "$PROMPT" \
    -n "$TOKENS" -t "$THREADS" --temp 0 --perf -v --log-timestamps --log-colors off \
    > "$f.out" 2> "$f.err"
  echo "$?" > "$f.rc"
}
run_alc() {
  local f="$OUT/alc.r$1"
  log "round $1: alc run"
  "$ALC_BIN" run "$PKG" --image "$IMAGE" -p "$PROMPT" --chat -n "$TOKENS" --temp 0 \
    -t "$THREADS" --timings > "$f.out" 2> "$f.err"
  echo "$?" > "$f.rc"
}
for r in $(seq 1 "$ROUNDS"); do
  if [ $((r % 2)) = 1 ]; then run_llama "$r"; run_alc "$r"; else run_alc "$r"; run_llama "$r"; fi
done

# ---- 3. parse + table ------------------------------------------------------
python3 - "$OUT" "$ROUNDS" <<'PY'
import json, pathlib, re, statistics, sys

out, rounds = pathlib.Path(sys.argv[1]), int(sys.argv[2])
TS = re.compile(r"^(\d+)\.(\d\d)\.(\d{3})\.(\d{3}) ")

def ts(line):
    m = TS.match(line)
    if not m:
        return None
    mi, s, ms, us = map(int, m.groups())
    return (mi * 60 + s) * 1e3 + ms + us / 1e3

def files(engine, r):
    def read(ext):
        p = out / f"{engine}.r{r}.{ext}"
        return p.read_text(errors="replace") if p.exists() else ""
    rc = read("rc").strip()
    return (int(rc) if rc else 1), read("out").strip(), read("err")

def parse_llama(r):
    rc, text, err = files("llama", r)
    res = {"rc": rc, "text": text}
    lines = err.splitlines()
    t0 = t_pre = t_perf = None
    enc, dec, tiles = [], [], 0
    for ln in lines:
        if "For normal use cases" in ln and t0 is None:
            t0 = ts(ln)
        elif "add_media: preproc_out" in ln and t_pre is None:
            t_pre = ts(ln)
        elif (m := re.search(r"grid size: (\d+) x (\d+) \((\d+) tiles\)( \+ overview)?", ln)):
            res["grid"] = f"{m.group(1)}x{m.group(2)}" + ("+overview" if m.group(4) else "")
        elif (m := re.search(r"encoding batch with (\d+) entries", ln)):
            tiles += int(m.group(1))
        elif (m := re.search(r"mtmd batch encoding done in (\d+) ms", ln)):
            enc.append(float(m.group(1)))
        elif (m := re.search(r"image decoded \(batch \d+/\d+\) in (\d+) ms", ln)):
            dec.append(float(m.group(1)))
        elif (m := re.search(r"prompt eval time =\s*([\d.]+) ms /\s*(\d+) tokens", ln)):
            res["prompt_tokens"] = int(m.group(2))
        elif (m := re.search(r"\beval time =\s*([\d.]+) ms /\s*(\d+) runs", ln)):
            res["eval_ms"], res["eval_runs"] = float(m.group(1)), int(m.group(2))
            t_perf = ts(ln)
    res["tiles"] = tiles or len(enc)
    res["encode_per_batch_ms"] = enc
    res["vision_encode_ms"] = sum(enc) if enc else None
    res["per_tile_ms"] = sum(enc) / res["tiles"] if enc else None
    res["image_lm_decode_ms"] = sum(dec) if dec else None
    res["preprocess_ms"] = (t_pre - t0) if (t0 is not None and t_pre is not None) else None
    if t0 is not None and t_perf is not None and "eval_ms" in res:
        res["image_to_first_token_ms"] = t_perf - res["eval_ms"] - t0
    if res.get("eval_ms"):
        res["decode_tok_s"] = res["eval_runs"] / res["eval_ms"] * 1e3
    return res

def parse_alc(r):
    rc, text, err = files("alc", r)
    res = {"rc": rc, "text": text}
    f = r"([\d.]+)"
    m = re.search(r"\[prompt (\d+) tokens .*?prefill " + f + r" ms.*?ttft " + f + r" ms, generated (\d+) tokens in " + f + r" ms", err)
    if m:
        res["prompt_tokens"] = int(m.group(1))
        res["prefill_ms"], res["ttft_ms"] = float(m.group(2)), float(m.group(3))
        res["generated"], res["decode_ms"] = int(m.group(4)), float(m.group(5))
        res["decode_tok_s"] = res["generated"] / res["decode_ms"] * 1e3 if res["decode_ms"] else None
    m = re.search(r"preprocess " + f + r" ms \((\d+) images, (\d+) tiles\) \| vision encoder " + f + r" ms .*?modality projector " + f + r" ms.*?image to first token " + f + " ms", err)
    if m:
        res["preprocess_ms"] = float(m.group(1))
        res["tiles"] = int(m.group(3))
        res["encoder_ms"], res["projector_ms"] = float(m.group(4)), float(m.group(5))
        res["vision_encode_ms"] = res["encoder_ms"] + res["projector_ms"]
        res["per_tile_ms"] = res["vision_encode_ms"] / max(res["tiles"], 1)
        res["image_to_first_token_ms"] = float(m.group(6))
    if rc != 0 or "tiles" not in res:
        res["stderr_tail"] = err[-2000:]
    return res

runs = {"llama.cpp": [parse_llama(r) for r in range(1, rounds + 1)],
        "alc": [parse_alc(r) for r in range(1, rounds + 1)]}

def med(engine, key):
    v = [x[key] for x in runs[engine] if x.get(key) is not None and x["rc"] == 0]
    return statistics.median(v) if v else None

rows = [("tiles", "tiles", "n", None), ("preprocess", "preprocess_ms", "ms", "time"),
        ("vision encode (enc+proj)", "vision_encode_ms", "ms", "time"),
        ("  per tile", "per_tile_ms", "ms", "time"),
        ("image -> first token", "image_to_first_token_ms", "ms", "time"),
        ("decode", "decode_tok_s", "tok/s", "rate"), ("prompt tokens", "prompt_tokens", "n", None)]
summary = {"rounds": runs, "median": {}}
print()
print(f"{'metric':28s} {'llama.cpp':>12s} {'alc':>12s} {'speedup':>9s}")
print("-" * 64)
for label, key, unit, kind in rows:
    a, b = med("llama.cpp", key), med("alc", key)
    summary["median"][key] = {"llama.cpp": a, "alc": b}
    fmt = (lambda x: "-" if x is None else (f"{x:.0f}" if unit == "n" else f"{x:.1f}"))
    sp = ""
    if a and b and kind == "time":
        sp = f"{a / b:.2f}x"
    elif a and b and kind == "rate":
        sp = f"{b / a:.2f}x"
    summary["median"][key]["speedup"] = sp or None
    print(f"{label + ' (' + unit + ')':28s} {fmt(a):>12s} {fmt(b):>12s} {sp:>9s}")
print("-" * 64)
print("speedup = llama.cpp time / alc time (decode: alc tok/s / llama.cpp tok/s);"
      " goals: vision encode >= 1.5x, image -> first token >= 1.0x")
for eng in runs:
    for i, x in enumerate(runs[eng], 1):
        extra = f" grid {x['grid']}" if x.get("grid") else ""
        print(f"{eng} round {i}: rc {x['rc']}, tiles {x.get('tiles')}{extra}, encode {x.get('vision_encode_ms')} ms,"
              f" image->1st {None if x.get('image_to_first_token_ms') is None else round(x['image_to_first_token_ms'], 1)} ms,"
              f" decode {None if x.get('decode_tok_s') is None else round(x['decode_tok_s'], 2)} tok/s")
        if x["rc"] != 0 or x.get("stderr_tail"):
            print("  stderr tail:", (x.get("stderr_tail") or "")[-600:])
t = {e: runs[e][0]["text"][:120] for e in runs}
print(f"text (round 1): llama.cpp {t['llama.cpp']!r}\n                alc       {t['alc']!r}")
tl = {e: {x.get('tiles') for x in runs[e]} for e in runs}
if tl["llama.cpp"] != tl["alc"]:
    print(f"WARNING: tile counts differ: llama.cpp {tl['llama.cpp']}, alc {tl['alc']}")
(out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
print(f"raw logs and summary.json in {out}")
PY
