#!/usr/bin/env python3
"""Run an ONNX BERT sentence encoder in ONNX Runtime on the token ids recorded in
tests/goldens/embeddings/all-minilm-l6-v2.json, mean-pool with the attention mask,
L2-normalise, and compare with the golden sentence-transformers embeddings.

    python3 scripts/goldens/check_onnx.py MODEL.onnx [--golden PATH] [--threads 2]
        [--min-cos 0.9999] [--mean-cos 0.0] [--json] [--bench] [--bench-seconds 20]

Prints per-sentence cosine statistics (mean / min / the worst sentences); exits 1 when
a --min-cos or --mean-cos bar is missed. --bench also times batch-1 runs (one
sentence per run, no padding) over the golden sentences of 8..64 tokens, after a
warm-up pass, cycling through them for at least --bench-seconds, and reports
sentences/s (overall and of the fastest pass) and the median latency; note the
machine load (`uptime`) with the numbers. Reference: onnxruntime 1.32.0, onnx, numpy
(`pip install onnxruntime==1.32.0 onnx numpy`).
"""

import argparse
import json
import os
import sys

import numpy as np
import onnxruntime as ort

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DEFAULT_GOLDEN = os.path.join(ROOT, "tests/goldens/embeddings/all-minilm-l6-v2.json")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("model")
    ap.add_argument("--golden", default=DEFAULT_GOLDEN)
    ap.add_argument("--threads", type=int, default=2, help="intra_op_num_threads")
    ap.add_argument("--batch", type=int, default=32, help="sentences per run")
    ap.add_argument("--min-cos", type=float, default=None)
    ap.add_argument("--mean-cos", type=float, default=None)
    ap.add_argument("--json", action="store_true", help="print the summary as JSON")
    ap.add_argument("--bench", action="store_true",
                    help="time batch-1 sentences/s over the 8..64-token golden sentences")
    ap.add_argument("--bench-seconds", type=float, default=20.0,
                    help="minimum timed duration of --bench")
    args = ap.parse_args()

    golden = json.load(open(args.golden))
    items = golden["items"]
    so = ort.SessionOptions()
    so.intra_op_num_threads = args.threads
    so.inter_op_num_threads = 1
    sess = ort.InferenceSession(args.model, so, providers=["CPUExecutionProvider"])
    names = {i.name for i in sess.get_inputs()}
    out_name = "last_hidden_state"
    if out_name not in {o.name for o in sess.get_outputs()}:
        out_name = sess.get_outputs()[0].name

    cos = np.zeros(len(items))
    # Batch sentences of similar length (padding only inside a batch).
    order = sorted(range(len(items)), key=lambda i: len(items[i]["ids"]))
    for start in range(0, len(order), args.batch):
        idx = order[start : start + args.batch]
        seq = max(len(items[i]["ids"]) for i in idx)
        ids = np.zeros((len(idx), seq), dtype=np.int64)
        mask = np.zeros((len(idx), seq), dtype=np.int64)
        for r, i in enumerate(idx):
            t = items[i]["ids"]
            ids[r, : len(t)] = t
            mask[r, : len(t)] = 1
        feed = {"input_ids": ids, "attention_mask": mask}
        if "token_type_ids" in names:
            feed["token_type_ids"] = np.zeros_like(ids)
        hs = sess.run([out_name], feed)[0].astype(np.float64)
        m = mask[:, :, None].astype(np.float64)
        emb = (hs * m).sum(1) / np.maximum(m.sum(1), 1e-9)
        emb /= np.maximum(np.linalg.norm(emb, axis=1, keepdims=True), 1e-12)
        for r, i in enumerate(idx):
            g = np.asarray(items[i]["embedding"], dtype=np.float64)
            g /= max(np.linalg.norm(g), 1e-12)
            cos[i] = float(emb[r] @ g)

    worst = np.argsort(cos)[:3]
    summary = {
        "model": args.model,
        "onnxruntime": ort.__version__,
        "threads": args.threads,
        "sentences": len(items),
        "mean_cos": float(cos.mean()),
        "min_cos": float(cos.min()),
        "worst": [
            {"text": items[i]["text"], "cos": float(cos[i])} for i in worst
        ],
    }
    if args.bench:
        summary["bench"] = bench(sess, names, out_name, items, args.bench_seconds)
    if args.json:
        print(json.dumps(summary, indent=1))
    else:
        print(f"{args.model}: onnxruntime {ort.__version__}, {len(items)} sentences, "
              f"{args.threads} threads")
        print(f"cosine vs golden: mean {summary['mean_cos']:.6f}  min {summary['min_cos']:.6f}")
        for w in summary["worst"]:
            print(f"  {w['cos']:.6f}  {w['text'][:70]!r}")
        if args.bench:
            b = summary["bench"]
            print(f"bench: batch 1, {b['sentences']} sentences of {b['min_tokens']}..{b['max_tokens']} "
                  f"tokens (mean {b['mean_tokens']:.1f}), {b['runs']} runs in {b['seconds']:.1f} s: "
                  f"{b['sentences_per_s']:.1f} sentences/s (best pass {b['best_pass_sentences_per_s']:.1f}), median {b['median_ms']:.2f} ms, "
                  f"load average {b['loadavg'][0]:.2f}")
    ok = True
    if args.min_cos is not None and cos.min() < args.min_cos:
        print(f"FAIL: min cosine {cos.min():.6f} < {args.min_cos}", file=sys.stderr)
        ok = False
    if args.mean_cos is not None and cos.mean() < args.mean_cos:
        print(f"FAIL: mean cosine {cos.mean():.6f} < {args.mean_cos}", file=sys.stderr)
        ok = False
    return 0 if ok else 1


def bench(sess, names, out_name, items, min_seconds):
    """Batch-1 throughput over the golden sentences with 8..64 tokens."""
    import time

    feeds = []
    for it in items:
        t = it["ids"]
        if not 8 <= len(t) <= 64:
            continue
        ids = np.asarray([t], dtype=np.int64)
        feed = {"input_ids": ids, "attention_mask": np.ones_like(ids)}
        if "token_type_ids" in names:
            feed["token_type_ids"] = np.zeros_like(ids)
        feeds.append(feed)
    if not feeds:
        raise SystemExit("--bench: no golden sentence has 8..64 tokens")
    for feed in feeds:  # warm-up: one pass
        sess.run([out_name], feed)
    lat = []
    passes = []
    start = time.perf_counter()
    while True:
        p0 = time.perf_counter()
        for feed in feeds:
            t0 = time.perf_counter()
            sess.run([out_name], feed)
            lat.append(time.perf_counter() - t0)
        passes.append(time.perf_counter() - p0)
        elapsed = time.perf_counter() - start
        if elapsed >= min_seconds:
            break
    lens = [f["input_ids"].shape[1] for f in feeds]
    return {
        "sentences": len(feeds),
        "min_tokens": min(lens),
        "max_tokens": max(lens),
        "mean_tokens": float(np.mean(lens)),
        "runs": len(lat),
        "seconds": elapsed,
        "sentences_per_s": len(lat) / elapsed,
        # The fastest pass over all sentences: less sensitive to other load.
        "best_pass_sentences_per_s": len(feeds) / min(passes),
        "median_ms": float(np.median(lat)) * 1e3,
        "loadavg": list(os.getloadavg()),
    }


if __name__ == "__main__":
    sys.exit(main())
