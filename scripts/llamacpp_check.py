#!/usr/bin/env python3
"""Load a GGUF package with llama.cpp and print, as JSON, what llama.cpp computes.

llama.cpp comes from the `xllamacpp` wheel (PyPI; the pinned version is in
scripts/test.sh). Its Python API is llama.cpp's own server: `xllamacpp.Server(
CommonParams)` loads the model and serves both in-process calls
(`handle_completions`, OpenAI-style) and the native HTTP endpoints on
`Server.listening_address` (`/completion`, `/tokenize`). Everything runs on the
CPU with a fixed thread count, one slot and temperature 0, so the output is
deterministic.

What it prints (one JSON object on stdout):

- `logprobs` (with --tokens): for every position i of the token sequence, the
  log-softmax over the whole vocabulary of llama.cpp's float32 logits after
  tokens[0..=i] (`logprobs[i][id]`). The server gives the full distribution
  with `n_probs` = n_vocab; it computes it from the raw logits
  (`post_sampling_probs` off), so sampling settings do not change it. Each row
  is one request whose prompt is tokens[0..=i]: the slot's prompt cache keeps
  tokens[0..i] and llama.cpp evaluates one new token on top of its f16 KV
  cache, as in decoding. The request generates one token; a logit bias makes
  it a one-byte ASCII token, because the server leaves out the probabilities
  of a token that ends inside a UTF-8 sequence. The bias acts in the sampler
  only and does not change the reported distribution.
  Logits are only known up to a per-row constant this way; compare centred
  rows (or log-softmax) with a reference.
- `greedy` (with --greedy N): N tokens decoded greedily after --tokens through
  the native `/completion` endpoint (`return_tokens`; `ignore_eos`, so
  end-of-generation tokens are never chosen and the run is always N long).
- `tokenize` (with --text / --texts-json): `/tokenize` of each text with
  add_special false and parse_special true (special tokens written in the
  text become their ids, as the `tokenizers` library does).
- `model_info`: what llama.cpp read from the file (its `print_info` lines, and
  which layers it runs with sliding-window attention), to show which metadata
  keys it honoured.

The script sets OMP_WAIT_POLICY=PASSIVE unless it is set: ggml's OpenMP
threads otherwise spin while they wait, which on a busy machine with as many
threads as cores makes each step several times slower. Results do not depend
on --threads (checked: identical output with 1 and 2).

If the model does not load, it prints {"loaded": false, "error": ...} with
llama.cpp's error lines, says so on stderr and exits with status 2. Exit
status 3: xllamacpp is not installed.

Usage:
  python3 scripts/llamacpp_check.py PACKAGE --tokens 12,40,7 [--greedy 24] \
      [--text 'hello world' ...] [--texts-json FILE] [--threads 2] [--log FILE]
"""

import argparse
import json
import os
import re
import sys
import tempfile
import urllib.request


def parse_args():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("package", help="GGUF file to load")
    ap.add_argument("--tokens", default="", help="comma-separated token ids")
    ap.add_argument("--greedy", type=int, default=0, metavar="N",
                    help="also decode N tokens greedily after --tokens")
    ap.add_argument("--text", action="append", default=[],
                    help="a text to tokenize (repeatable)")
    ap.add_argument("--texts-json", metavar="FILE",
                    help="a JSON list of texts to tokenize")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--ctx", type=int, default=0,
                    help="context size (default: tokens + greedy, at least 64)")
    ap.add_argument("--no-logprobs", action="store_true",
                    help="skip the per-position distributions")
    ap.add_argument("--log", metavar="FILE",
                    help="keep llama.cpp's log there (default: discarded)")
    return ap.parse_args()


def log_to_file(path):
    """Point file descriptor 2, where llama.cpp and its server threads log, at
    `path` for the rest of the process; Python's own messages keep going to
    the original stderr."""
    sys.stderr.flush()
    original = os.dup(2)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    os.dup2(fd, 2)
    os.close(fd)
    sys.stderr = os.fdopen(original, "w", buffering=1)


def read_log(path):
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return f.read()
    except OSError:
        return ""


def model_info(log):
    """print_info key/values and the per-layer sliding-window flags."""
    info = {}
    for m in re.finditer(r"print_info: ([A-Za-z_][\w ]*?)\s*= (.*)$", log, re.M):
        info.setdefault(m.group(1).strip(), m.group(2).strip())
    swa = {}
    for m in re.finditer(r"layer\s+(\d+) assigned to device \S+?, is_swa = (\d)", log):
        swa[int(m.group(1))] = m.group(2) == "1"
    n_layer = int(info.get("n_layer", "0") or 0)
    if swa and n_layer:
        info["swa_layers"] = [swa.get(i, False) for i in range(n_layer)]
    return info


def error_lines(log):
    """llama.cpp's error lines, each once."""
    lines = []
    for l in log.splitlines():
        m = re.match(r"[\d.]+ E (.*)", l)
        if m and m.group(1) not in lines:
            lines.append(m.group(1))
    return "\n".join(lines[-20:]) or log[-2000:]


def main():
    args = parse_args()
    # ggml's OpenMP threads spin while they wait by default; on a busy machine
    # with as many threads as cores that makes every step wait for a time slice.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    try:
        import xllamacpp as xlc
    except ImportError as e:
        print(f"llamacpp_check: cannot import xllamacpp ({e}); "
              "install it with: python3 -m pip install xllamacpp", file=sys.stderr)
        return 3

    tokens = [int(t) for t in args.tokens.replace(" ", "").split(",") if t]
    texts = list(args.text)
    if args.texts_json:
        with open(args.texts_json, encoding="utf-8") as f:
            texts += json.load(f)
    if not os.path.isfile(args.package):
        print(f"llamacpp_check: {args.package}: no such file", file=sys.stderr)
        print(json.dumps({"loaded": False, "error": "no such file"}))
        return 2

    if args.log:
        log_path = args.log
    else:
        fd, log_path = tempfile.mkstemp(prefix="llamacpp_check.", suffix=".log")
        os.close(fd)
    out = {
        "package": args.package,
        "xllamacpp_version": getattr(xlc, "__version__", "?"),
        "threads": args.threads,
    }
    p = xlc.CommonParams()
    p.model.path = args.package
    p.n_ctx = args.ctx or max(64, len(tokens) + args.greedy + 8)
    p.n_batch = p.n_ctx
    p.n_ubatch = p.n_ctx
    p.n_parallel = 1
    p.n_gpu_layers = 0
    p.cpuparams.n_threads = args.threads
    p.cpuparams_batch.n_threads = args.threads
    p.warmup = False
    p.verbosity = 5  # debug: the log then says which layers use sliding windows
    p.sampling.temp = 0.0
    p.sampling.top_k = 1
    p.sampling.seed = 1

    log_to_file(log_path)
    try:
        server = xlc.Server(p)
    except Exception as e:  # the wheel raises RuntimeError with no detail
        detail = error_lines(read_log(log_path))
        out.update({"loaded": False, "error": f"{e}\n{detail}"})
        print(json.dumps(out))
        print(f"llamacpp_check: llama.cpp could not load {args.package}:\n{detail}",
              file=sys.stderr)
        if not args.log:
            os.unlink(log_path)
        return 2
    out["loaded"] = True
    info = model_info(read_log(log_path))
    out["model_info"] = info
    n_vocab = int(info.get("n_vocab", "0") or 0)
    addr = server.listening_address

    def post(path, body):
        req = urllib.request.Request(
            addr + path, data=json.dumps(body).encode(),
            headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=300) as r:
            return json.loads(r.read())

    if texts:
        out["tokenize"] = [
            {"text": t,
             "ids": post("/tokenize", {"content": t, "add_special": False,
                                       "parse_special": True})["tokens"]}
            for t in texts
        ]
    if tokens and not args.no_logprobs:
        out["n_vocab"] = n_vocab
        out["logprobs"] = teacher_forced(server, post, tokens, n_vocab)
    if tokens and args.greedy > 0:
        r = post("/completion", {
            "prompt": tokens, "n_predict": args.greedy, "temperature": 0,
            "top_k": 1, "ignore_eos": True, "return_tokens": True,
            "cache_prompt": False, "seed": 1,
        })
        out["greedy"] = {"prompt": tokens, "ids": r["tokens"],
                         "stop_type": r.get("stop_type")}
    del server
    if not args.log:
        os.unlink(log_path)
    print(json.dumps(out))
    return 0


def teacher_forced(server, post, tokens, n_vocab):
    # One-byte ASCII token for the sampler to pick (see the module note).
    safe = post("/tokenize", {"content": "a", "add_special": False,
                              "parse_special": False})["tokens"]
    bias = [[safe[0], 1e4]] if len(safe) == 1 else []
    rows = []
    for i in range(len(tokens)):
        r = server.handle_completions({
            "prompt": tokens[: i + 1], "max_tokens": 1, "temperature": 0,
            "n_probs": n_vocab, "logit_bias": bias, "cache_prompt": True,
            "seed": 1,
        })
        if "error" in r:
            raise RuntimeError(f"position {i}: {r['error']}")
        content = (r["choices"][0].get("logprobs") or {}).get("content") or []
        if not content:
            raise RuntimeError(f"position {i}: the server returned no probabilities")
        top = content[0]["top_logprobs"]
        row = [None] * n_vocab
        for t in top:
            row[t["id"]] = t["logprob"]  # null: probability 0 in float32
        missing = n_vocab - len({t["id"] for t in top})
        if missing:
            raise RuntimeError(f"position {i}: {missing} of {n_vocab} ids missing")
        rows.append(row)
    return rows


if __name__ == "__main__":
    sys.exit(main())
