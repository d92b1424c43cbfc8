#!/usr/bin/env python3
"""Reference quality numbers for all-MiniLM-L6-v2 embeddings (targets for alc's INT8 build).

Reads only the goldens JSON written by gen_embeddings.py and the data files (numpy, pyyaml):

  data/intents/headset.yaml     intent -> example utterances
  data/intents/heldout.tsv      utterance<TAB>intent (intent `unknown` = out of scope)
  data/similarity/pairs.tsv     sentence1<TAB>sentence2<TAB>score (0-5, hand-labelled)

and computes

* nearest-centroid intent classification: centroid = L2-normalised mean of the intent's
  (already normalised) example embeddings; score = cosine; prediction = argmax. Accuracy on
  the in-scope held-out items (no threshold), per intent, and the errors.
* "unknown under a threshold": predict `unknown` when the best cosine < t. A sweep
  t = 0.30, 0.31, ..., 0.70 over ALL held-out items (in-scope + `unknown`), the best t of
  the sweep (chosen on the held-out set itself, so optimistic), and a threshold chosen
  without the held-out set: leave-one-out on the YAML examples (each example scored
  against its own intent's centroid recomputed without it), t_loo = 5th percentile of the
  LOO top-1 cosines (keeps ~95% of in-scope utterances), with its held-out numbers.
* similarity: Spearman (and Pearson) correlation between cosine(sentence1, sentence2) and
  the gold score on pairs.tsv.

Default: evaluates tests/goldens/embeddings/all-minilm-l6-v2.json and writes
tests/goldens/embeddings/reference_quality.json. With --goldens OTHER.json (e.g. the
onnxruntime INT8 file) it also compares against the f32 goldens (--ref): per-text cosine,
prediction agreement and Spearman of pair cosines vs f32 pair cosines; --out then defaults to
OTHER.json with `.json` replaced by `.quality.json`.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import sys

import numpy as np
import yaml

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
GOLDEN_DIR = os.path.join(REPO, "tests", "goldens", "embeddings")
F32 = os.path.join(GOLDEN_DIR, "all-minilm-l6-v2.json")
UNKNOWN = "unknown"
SWEEP = [round(0.30 + 0.01 * i, 2) for i in range(41)]
LOO_PERCENTILE = 5


def rel(p: str) -> str:
    return os.path.relpath(os.path.abspath(p), REPO)


def load_goldens(path: str) -> tuple[dict, dict[str, np.ndarray]]:
    with open(path, encoding="utf-8") as f:
        d = json.load(f)
    emb = {}
    for it in d["items"]:
        v = np.asarray(it["embedding"], dtype=np.float64)
        emb[it["text"]] = v / np.linalg.norm(v)  # re-normalise after 7-digit rounding
    return d, emb


def read_tsv(path: str) -> list[dict]:
    with open(path, encoding="utf-8", newline="") as f:
        return list(csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE))


def rankdata(x: np.ndarray) -> np.ndarray:
    """Average ranks (1-based), ties get the mean rank, like scipy.stats.rankdata."""
    x = np.asarray(x, dtype=np.float64)
    order = np.argsort(x, kind="mergesort")
    ranks = np.empty(len(x), dtype=np.float64)
    xs = x[order]
    i = 0
    while i < len(x):
        j = i
        while j + 1 < len(x) and xs[j + 1] == xs[i]:
            j += 1
        ranks[order[i:j + 1]] = (i + j) / 2.0 + 1.0
        i = j + 1
    return ranks


def pearson(a, b) -> float:
    a = np.asarray(a, dtype=np.float64) - np.mean(a)
    b = np.asarray(b, dtype=np.float64) - np.mean(b)
    return float((a * b).sum() / np.sqrt((a * a).sum() * (b * b).sum()))


def spearman(a, b) -> float:
    return pearson(rankdata(a), rankdata(b))


def unit(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v)


def evaluate(emb: dict[str, np.ndarray], intents: dict, heldout: list[dict], pairs: list[dict]) -> dict:
    names = list(intents)
    X = {k: np.stack([emb[u] for u in v]) for k, v in intents.items()}
    C = np.stack([unit(X[k].mean(axis=0)) for k in names])  # [n_intents, 384]

    # ---- held-out, no threshold -------------------------------------------------------
    preds = []
    for r in heldout:
        s = C @ emb[r["utterance"]]
        j = int(np.argmax(s))
        order = np.argsort(-s)
        preds.append({"text": r["utterance"], "gold": r["intent"], "pred": names[j],
                      "score": round(float(s[j]), 6),
                      "margin": round(float(s[order[0]] - s[order[1]]), 6)})
    ins = [p for p in preds if p["gold"] != UNKNOWN]
    oos = [p for p in preds if p["gold"] == UNKNOWN]
    acc_in = sum(p["pred"] == p["gold"] for p in ins) / len(ins)
    per_intent = {}
    for k in names:
        ps = [p for p in ins if p["gold"] == k]
        per_intent[k] = {"n": len(ps), "correct": sum(p["pred"] == k for p in ps)}
    errors = [{"text": p["text"], "gold": p["gold"], "pred": p["pred"], "score": p["score"]}
              for p in ins if p["pred"] != p["gold"]]

    def at_threshold(t: float) -> dict:
        ok_in = sum(p["pred"] == p["gold"] and p["score"] >= t for p in ins)
        ok_oos = sum(p["score"] < t for p in oos)
        return {"threshold": t,
                "accuracy_all": round((ok_in + ok_oos) / len(preds), 6),
                "accuracy_in_scope": round(ok_in / len(ins), 6),
                "unknown_recall": round(ok_oos / len(oos), 6),
                "in_scope_rejected": sum(p["score"] < t for p in ins)}

    sweep = [at_threshold(t) for t in SWEEP]
    best = max(sweep, key=lambda r: (r["accuracy_all"], -r["threshold"]))  # ties: lowest t

    # ---- leave-one-out on the YAML examples -------------------------------------------
    loo_scores, loo_ok, loo_n = [], 0, 0
    sums = {k: X[k].sum(axis=0) for k in names}
    for i, k in enumerate(names):
        for row in X[k]:
            Cl = C.copy()
            Cl[i] = unit(sums[k] - row)
            s = Cl @ row
            j = int(np.argmax(s))
            loo_n += 1
            loo_ok += names[j] == k
            loo_scores.append(float(s[j]))
    t_loo = float(np.percentile(np.array(loo_scores), LOO_PERCENTILE))
    loo_at = at_threshold(round(t_loo, 4))

    # ---- similarity ---------------------------------------------------------------------
    gold = np.array([float(r["score"]) for r in pairs])
    cos = np.array([float(emb[r["sentence1"]] @ emb[r["sentence2"]]) for r in pairs])

    return {
        "counts": {"intents": len(names), "yaml_utterances": sum(len(v) for v in intents.values()),
                   "heldout_in_scope": len(ins), "heldout_unknown": len(oos), "pairs": len(pairs)},
        "intent": {
            "method": "nearest centroid, centroid = L2-normalised mean of the intent's normalised "
                      "example embeddings, cosine similarity, argmax",
            "heldout_accuracy_in_scope": round(acc_in, 6),
            "heldout_correct_in_scope": sum(p["pred"] == p["gold"] for p in ins),
            "per_intent": per_intent,
            "errors": errors,
            "yaml_loo_accuracy": round(loo_ok / loo_n, 6),
        },
        "unknown_threshold": {
            "rule": "predict `unknown` when the best centroid cosine < threshold",
            "sweep": sweep,
            "best_on_heldout": best,
            "loo_threshold": {"how": f"{LOO_PERCENTILE}th percentile of leave-one-out top-1 cosine "
                                     "of the YAML examples (chosen without the held-out set)",
                              **loo_at},
        },
        "similarity": {
            "spearman": round(spearman(cos, gold), 6),
            "pearson": round(pearson(cos, gold), 6),
            "cosine": [round(float(c), 6) for c in cos],
        },
        "heldout_predictions": preds,
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--goldens", default=F32, help="embeddings JSON to evaluate (default: f32 goldens)")
    ap.add_argument("--ref", default=F32, help="f32 goldens to compare against when --goldens differs")
    ap.add_argument("--out", help="output JSON (default reference_quality.json for the f32 goldens)")
    args = ap.parse_args()

    with open(os.path.join(REPO, "data", "intents", "headset.yaml"), encoding="utf-8") as f:
        intents = yaml.safe_load(f)
    heldout = read_tsv(os.path.join(REPO, "data", "intents", "heldout.tsv"))
    pairs = read_tsv(os.path.join(REPO, "data", "similarity", "pairs.tsv"))

    doc, emb = load_goldens(args.goldens)
    res = evaluate(emb, intents, heldout, pairs)
    out = {"goldens": rel(args.goldens), "model": doc.get("model"), "generator": doc.get("generator"),
           "data": {"intents": "data/intents/headset.yaml", "heldout": "data/intents/heldout.tsv",
                    "pairs": "data/similarity/pairs.tsv"}}
    is_ref = os.path.abspath(args.goldens) == os.path.abspath(args.ref)
    if not is_ref:
        _, ref = load_goldens(args.ref)
        rres = evaluate(ref, intents, heldout, pairs)
        common = [t for t in emb if t in ref]
        c = np.array([float(emb[t] @ ref[t]) for t in common])
        agree = sum(a["pred"] == b["pred"] for a, b in zip(res["heldout_predictions"], rres["heldout_predictions"]))
        out["vs_f32"] = {
            "ref": rel(args.ref),
            "texts": len(common),
            "cosine_mean": round(float(c.mean()), 6),
            "cosine_min": round(float(c.min()), 6),
            "cosine_min_text": common[int(np.argmin(c))],
            "cosine_p01": round(float(np.percentile(c, 1)), 6),
            "heldout_prediction_agreement": f"{agree}/{len(heldout)}",
            "heldout_accuracy_in_scope_delta_points": round(
                100 * (res["intent"]["heldout_accuracy_in_scope"] - rres["intent"]["heldout_accuracy_in_scope"]), 4),
            "pairs_spearman_vs_f32_cosine": round(spearman(res["similarity"]["cosine"], rres["similarity"]["cosine"]), 6),
            "pairs_max_abs_cosine_diff": round(float(np.max(np.abs(np.array(res["similarity"]["cosine"]) -
                                                                   np.array(rres["similarity"]["cosine"])))), 6),
        }
    out.update(res)
    if args.out:
        out_path = args.out
    elif is_ref:
        out_path = os.path.join(GOLDEN_DIR, "reference_quality.json")
    else:
        out_path = args.goldens[:-5] + ".quality.json" if args.goldens.endswith(".json") else args.goldens + ".quality.json"

    i, u = res["intent"], res["unknown_threshold"]
    print(f"goldens: {rel(args.goldens)}")
    print(f"counts: {res['counts']}")
    print(f"intent accuracy (in-scope held-out, no threshold): {i['heldout_accuracy_in_scope']:.4f} "
          f"({i['heldout_correct_in_scope']}/{res['counts']['heldout_in_scope']}); YAML LOO accuracy {i['yaml_loo_accuracy']:.4f}")
    for e in i["errors"]:
        print(f"   miss: {e['text']!r}: gold {e['gold']} pred {e['pred']} ({e['score']:.3f})")
    print("threshold sweep (all held-out incl. unknown):")
    for r in u["sweep"]:
        if abs(r["threshold"] * 20 - round(r["threshold"] * 20)) < 1e-9:
            print(f"   t={r['threshold']:.2f} acc_all {r['accuracy_all']:.4f} in-scope {r['accuracy_in_scope']:.4f} "
                  f"unknown recall {r['unknown_recall']:.4f}")
    b, l = u["best_on_heldout"], u["loo_threshold"]
    print(f"best threshold on held-out (oracle): t={b['threshold']:.2f} acc_all {b['accuracy_all']:.4f} "
          f"in-scope {b['accuracy_in_scope']:.4f} unknown recall {b['unknown_recall']:.4f}")
    print(f"LOO threshold (YAML p{LOO_PERCENTILE}): t={l['threshold']:.4f} acc_all {l['accuracy_all']:.4f} "
          f"in-scope {l['accuracy_in_scope']:.4f} unknown recall {l['unknown_recall']:.4f}")
    s = res["similarity"]
    print(f"pairs: Spearman {s['spearman']:.4f}  Pearson {s['pearson']:.4f}  (n={res['counts']['pairs']})")
    if "vs_f32" in out:
        v = out["vs_f32"]
        print(f"vs f32: cosine mean {v['cosine_mean']:.6f} min {v['cosine_min']:.6f} ({v['cosine_min_text']!r}); "
              f"predictions agree {v['heldout_prediction_agreement']}; accuracy delta "
              f"{v['heldout_accuracy_in_scope_delta_points']:+.2f} pt; pair-cosine Spearman vs f32 "
              f"{v['pairs_spearman_vs_f32_cosine']:.6f}")
    with open(out_path, "w", encoding="utf-8") as f:
        json.dump(out, f, ensure_ascii=False, indent=1)
        f.write("\n")
    print(f"wrote {rel(out_path)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
