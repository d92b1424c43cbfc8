#!/usr/bin/env python3
"""Reference sentence embeddings for all-MiniLM-L6-v2 (goldens for `alc embed` / `alc classify`).

Re-implements the sentence-transformers pipeline that the model directory describes
(modules.json: Transformer -> Pooling -> Normalize) with plain transformers + torch, so
sentence-transformers is NOT needed:

  1. tokenizer.json (BertTokenizerFast, lower-casing WordPiece), [CLS] ... [SEP],
     truncation to max_seq_length from sentence_bert_config.json (256, special tokens
     included), no padding (every text is run on its own, batch size 1);
  2. BertModel forward in float32, eval mode (no dropout), token_type_ids all 0;
  3. mean pooling of last_hidden_state over positions where attention_mask == 1
     (1_Pooling/config.json: pooling_mode_mean_tokens);
  4. L2 normalisation (2_Normalize).

Texts: every utterance of data/intents/headset.yaml, every utterance of
data/intents/heldout.tsv, every sentence of data/similarity/pairs.tsv and the EXTRAS
below (truncation, Unicode, CJK, emoji, code, numbers, ...), de-duplicated keeping the
first occurrence in that order.

Output (default): tests/goldens/embeddings/all-minilm-l6-v2.json

  --onnx PATH   run an ONNX export instead (inputs input_ids / attention_mask /
                token_type_ids, output last_hidden_state, as the published INT8 export
                models/all-minilm-l6-v2-int8.onnx has) with onnxruntime on the same ids,
                same pooling and normalisation; writes --out (default
                tests/goldens/embeddings/all-minilm-l6-v2-ort-int8.json), same schema
                without "ids" (they are those of the f32 file), and prints the cosine
                against the f32 goldens if that file exists.

Usage: python3 scripts/goldens/gen_embeddings.py [--model-dir DIR] [--out FILE] [--onnx PATH]
"""

from __future__ import annotations

import argparse
import csv
import datetime
import json
import os
import sys

import numpy as np

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
DEFAULT_MODEL_DIR = os.path.join(REPO, "models", "all-minilm-l6-v2")
GOLDEN_DIR = os.path.join(REPO, "tests", "goldens", "embeddings")
F32_OUT = os.path.join(GOLDEN_DIR, "all-minilm-l6-v2.json")
ORT_OUT = os.path.join(GOLDEN_DIR, "all-minilm-l6-v2-ort-int8.json")

# --------------------------------------------------------------------------------------
# Extra texts: edge cases for the tokenizer / truncation / pooling. Keep the order stable.
# --------------------------------------------------------------------------------------
_LONG_1 = (
    "Smart glasses put a small display and a handful of sensors right in front of the "
    "wearer's eyes, which changes how people expect to interact with software. There is "
    "no keyboard, the touch pad on the temple is awkward to use for anything longer than "
    "a swipe, and holding up a phone defeats the purpose of wearing the device in the "
    "first place. Voice therefore becomes the primary input, and the assistant has to "
    "understand short, clipped commands such as 'torch on' as well as rambling requests "
    "like 'could you maybe take a picture of the whiteboard before they wipe it, thanks'. "
    "Sending every utterance to a server is slow, drains the battery through the radio, "
    "and leaks what the user says and sees, so on-device classification is attractive. "
    "A compact sentence encoder such as MiniLM maps each utterance to a fixed-size vector, "
    "and a nearest-centroid classifier compares that vector against the average vector of "
    "a few example phrases for every intent. New intents can be added by writing a dozen "
    "examples, without any retraining, and utterances that are far from every centroid "
    "can be rejected as out of scope instead of triggering a random action. The catch is "
    "that the encoder must run in a few milliseconds on a low-power processor, with a "
    "small memory footprint, which is why quantised weights and careful kernels matter. "
    "Accuracy has to be measured on held-out phrasings, not on the examples themselves, "
    "and the quantised model has to be compared against the full-precision reference so "
    "that regressions are caught before they reach a device on somebody's face."
)
_LONG_2 = (
    "Once upon a time, in a small village at the edge of a great forest, there lived an old "
    "clockmaker who repaired every watch, every pendulum clock and every music box that the "
    "villagers brought to him. He worked from sunrise to sunset in a narrow shop that smelled "
    "of oil and brass, and he never asked for more than a loaf of bread or a basket of apples "
    "in return. One winter evening a stranger arrived with a clock that had no hands at all. "
    "'It keeps perfect time,' the stranger said, 'but nobody can read it.' The clockmaker "
    "turned the strange object over and over, listened to its quiet ticking, and noticed that "
    "the rhythm changed whenever someone in the room told a lie. He kept the clock on his "
    "workbench for many years, and the village became known, far and wide, as the most honest "
    "place in the whole kingdom, although nobody except the clockmaker ever knew why. When he "
    "finally grew too old to work, he gave the clock to his apprentice with a single piece of "
    "advice: never let anyone else wind it, and never, ever let it stop. The apprentice "
    "promised, and as far as anyone knows, it is still ticking in that little shop today, "
    "somewhere between the bakery and the blacksmith, next to a window full of dusty watches."
)
_LONG_CODE = (
    "fn main() {\n    let args: Vec<String> = std::env::args().collect();\n"
    "    let model = Model::load(&args[1]).expect(\"failed to load model\");\n"
    "    for line in std::io::stdin().lines() {\n        let line = line.unwrap();\n"
    "        let emb = model.embed(&line);\n        let (best, score) = centroids.iter()\n"
    "            .map(|(name, c)| (name, cosine(&emb, c)))\n"
    "            .max_by(|a, b| a.1.partial_cmp(&b.1).unwrap()).unwrap();\n"
    "        if score < threshold { println!(\"unknown\\t{score:.3}\"); }\n"
    "        else { println!(\"{best}\\t{score:.3}\"); }\n    }\n}\n"
) * 3

EXTRAS: list[str] = [
    # single words / very short
    "flashlight",
    "hello",
    "a",
    "OK",
    "Yes",
    # punctuation only / symbols
    "...",
    "?!",
    "!!!???",
    "-- // ** ##",
    "😀",
    # emoji mixed with text
    "turn on the flashlight 🔦",
    "take a photo 📸 please!",
    "I love this song 🎶🎶🎶",
    "👍 sounds good",
    "it's raining ☔ again 😞",
    # accents / Unicode / non-Latin scripts
    "Café au lait, s'il vous plaît.",
    "naïve façade — résumé, coöperate, jalapeño",
    "Schalte die Taschenlampe ein.",
    "¿Qué tiempo hace hoy en Madrid?",
    "Grüße aus München! Straße, Äpfel, Öl.",
    "Позвони маме, пожалуйста.",
    "Καλημέρα, τι καιρό κάνει σήμερα;",
    "שלום, מה שלומך?",
    "مرحبا، كيف حالك؟",
    "नमस्ते, आप कैसे हैं?",
    "打开手电筒",
    "今日の天気はどうですか？",
    "사진을 찍어 주세요",
    "我想听音乐，请播放一首歌。",
    "ＦＵＬＬＷＩＤＴＨ　ｔｅｘｔ　１２３",
    "Ligatures: ﬁnance ﬂow; combining: e\u0301 vs é",
    "zero\u200bwidth\u200bspace and non\u00a0breaking\u00a0space",
    "tab\tseparated\tand\nnew\nlines",
    "   leading and trailing whitespace   ",
    "MiXeD CaSe ShOuTiNg TEXT",
    # numbers / dates / units
    "set a timer for 00:05:30",
    "call +1 (555) 012-3456",
    "3.14159265358979",
    "The meeting is on 2024-03-15 at 14:30 UTC.",
    "It costs $1,299.99 (or €1.199,00) incl. 19% VAT.",
    "12345678901234567890",
    "navigate to 1600 Amphitheatre Pkwy, Mountain View, CA 94043",
    "battery at 7% — 23 min left",
    # code / markup / URLs
    "fn main() { println!(\"hello, world\"); }",
    "for (int i = 0; i < n; ++i) sum += a[i] * b[i];",
    "SELECT name, email FROM users WHERE id = 42;",
    "<div class=\"hud\"><span>12:45</span></div>",
    "{\"intent\": \"volume_up\", \"score\": 0.87}",
    "https://example.com/path?query=glasses&lang=en#top",
    "user.name+tag@example.co.uk",
    "snake_case_identifier and camelCaseIdentifier and kebab-case-id",
    # general English of varied style and length
    "The quick brown fox jumps over the lazy dog.",
    "Could you please let me know whether the train to Boston leaves from platform four or five?",
    "I think, therefore I am.",
    "Hey there, uh, can you like, maybe, um, turn the thing up a little?",
    "WARNING: low battery. Connect the charger to avoid data loss.",
    "Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tempor.",
    "supercalifragilisticexpialidocious antidisestablishmentarianism",
    "unbelievably uncharacteristically overcomplicated pseudointellectualism",
    "[CLS] [SEP] [PAD] [MASK] [UNK]",
    # long texts: > 256 tokens, exercise truncation
    _LONG_1,
    _LONG_2,
    _LONG_CODE,
    " ".join(["light"] * 300),
    # truncation boundary: 'hello' is one WordPiece, so N words -> N + 2 tokens
    " ".join(["hello"] * 253),  # 255 tokens, not truncated
    " ".join(["hello"] * 254),  # 256 tokens exactly, not truncated
    " ".join(["hello"] * 255),  # 257 -> truncated to 256
]


def load_texts() -> tuple[list[str], dict[str, int]]:
    import yaml

    texts: list[str] = []
    counts = {}
    with open(os.path.join(REPO, "data", "intents", "headset.yaml"), encoding="utf-8") as f:
        intents = yaml.safe_load(f)
    yaml_texts = [u for utts in intents.values() for u in utts]
    counts["yaml"] = len(yaml_texts)
    texts += yaml_texts
    with open(os.path.join(REPO, "data", "intents", "heldout.tsv"), encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE))
    counts["heldout"] = len(rows)
    # the held-out set must not leak into the examples (exact or case-insensitive duplicates)
    yaml_keys = {" ".join(u.lower().split()) for u in yaml_texts}
    leaks = [r["utterance"] for r in rows if " ".join(r["utterance"].lower().split()) in yaml_keys]
    if leaks:
        raise SystemExit(f"heldout.tsv utterances also in headset.yaml: {leaks}")
    if len({r["utterance"].lower() for r in rows}) != len(rows):
        raise SystemExit("heldout.tsv has duplicate utterances")
    texts += [r["utterance"] for r in rows]
    with open(os.path.join(REPO, "data", "similarity", "pairs.tsv"), encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE))
    counts["pairs"] = len(rows)
    for r in rows:
        texts += [r["sentence1"], r["sentence2"]]
    counts["extras"] = len(EXTRAS)
    texts += EXTRAS
    seen = set()
    out = []
    for t in texts:
        if t not in seen:
            seen.add(t)
            out.append(t)
    counts["distinct"] = len(out)
    return out, counts


def tokenize_all(model_dir: str, texts: list[str]):
    from transformers import AutoTokenizer

    with open(os.path.join(model_dir, "sentence_bert_config.json")) as f:
        max_len = int(json.load(f)["max_seq_length"])
    tok = AutoTokenizer.from_pretrained(model_dir)
    encs = []
    for t in texts:
        full = tok(t, add_special_tokens=True, truncation=False, verbose=False)["input_ids"]
        ids = tok(t, add_special_tokens=True, truncation=True, max_length=max_len)["input_ids"]
        encs.append({"ids": ids, "truncated": len(full) > len(ids)})
    return encs, max_len


def mean_pool_normalize(hidden: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """hidden [seq, 384] f32, mask [seq] -> L2-normalised mean over masked positions."""
    m = mask.astype(np.float32)[:, None]
    summed = (hidden * m).sum(axis=0)
    v = summed / max(float(m.sum()), 1e-9)
    return v / max(float(np.linalg.norm(v)), 1e-12)


def run_torch(model_dir: str, encs) -> list[np.ndarray]:
    import torch
    from transformers import BertModel

    torch.manual_seed(0)
    torch.set_num_threads(1)  # deterministic reduction order; also much faster on small CPUs
    model = BertModel.from_pretrained(model_dir, dtype=torch.float32, attn_implementation="eager",
                                      add_pooling_layer=False)
    model.eval()
    out = []
    with torch.inference_mode():
        for e in encs:
            ids = torch.tensor([e["ids"]], dtype=torch.long)
            mask = torch.ones_like(ids)
            tt = torch.zeros_like(ids)
            h = model(input_ids=ids, attention_mask=mask, token_type_ids=tt).last_hidden_state[0]
            # pooling in torch f32 exactly as sentence-transformers does
            m = mask[0].unsqueeze(-1).float()
            v = (h * m).sum(0) / torch.clamp(m.sum(0), min=1e-9)
            v = torch.nn.functional.normalize(v, p=2, dim=0)
            out.append(v.numpy().astype(np.float32))
    return out


def run_onnx(path: str, encs) -> list[np.ndarray]:
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    sess = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
    in_names = [i.name for i in sess.get_inputs()]
    out_names = [o.name for o in sess.get_outputs()]
    print(f"onnx inputs {in_names} outputs {out_names}", file=sys.stderr)
    out = []
    for e in encs:
        ids = np.array([e["ids"]], dtype=np.int64)
        feeds = {"input_ids": ids, "attention_mask": np.ones_like(ids), "token_type_ids": np.zeros_like(ids)}
        feeds = {k: v for k, v in feeds.items() if k in in_names}
        res = sess.run(None, feeds)
        first = res[0]
        if first.ndim == 3:  # last_hidden_state [1, seq, 384]
            out.append(mean_pool_normalize(first[0].astype(np.float32), feeds["attention_mask"][0]))
        else:  # already pooled [1, 384]
            v = first[0].astype(np.float32)
            out.append(v / np.linalg.norm(v))
    return out


def fmt_float(x: float) -> str:
    s = f"{float(x):.7g}"
    # JSON needs a digit before '.', Python's 'g' format always gives one; normalise '-0'
    return "0" if s in ("-0", "0") else s


def write_json(path: str, header: dict, texts, encs, embs, with_ids: bool) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    lines = []
    for t, e, v in zip(texts, encs, embs):
        parts = [f'"text": {json.dumps(t, ensure_ascii=False)}', f'"n_tokens": {len(e["ids"])}',
                 f'"truncated": {"true" if e["truncated"] else "false"}']
        if with_ids:
            parts.append('"ids": [' + ",".join(str(i) for i in e["ids"]) + "]")
        parts.append('"embedding": [' + ",".join(fmt_float(x) for x in v) + "]")
        lines.append("{" + ", ".join(parts) + "}")
    head = json.dumps(header, ensure_ascii=False, indent=1)
    assert head.endswith("}")
    body = head[:-1].rstrip() + ',\n "items": [\n' + ",\n".join(lines) + "\n ]\n}\n"
    json.loads(body)  # sanity
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(body)
    os.replace(tmp, path)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model-dir", default=DEFAULT_MODEL_DIR)
    ap.add_argument("--onnx", metavar="PATH", help="run this ONNX export with onnxruntime instead of torch")
    ap.add_argument("--out", help=f"output JSON (default {os.path.relpath(F32_OUT, REPO)}, "
                                  f"or {os.path.relpath(ORT_OUT, REPO)} with --onnx)")
    ap.add_argument("--date", help="date to record in the generator block (default: today, UTC)")
    args = ap.parse_args()

    import tokenizers
    import torch
    import transformers

    texts, counts = load_texts()
    encs, max_len = tokenize_all(args.model_dir, texts)
    print(f"texts: {counts}; truncated: {sum(e['truncated'] for e in encs)}", file=sys.stderr)

    gen = {
        "script": "scripts/goldens/gen_embeddings.py",
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "tokenizers": tokenizers.__version__,
        "numpy": np.__version__,
        "date": args.date or datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d"),
    }
    if args.onnx:
        import onnxruntime

        embs = run_onnx(args.onnx, encs)
        gen["onnxruntime"] = onnxruntime.__version__
        gen["onnx_model"] = os.path.relpath(os.path.abspath(args.onnx), REPO)
        out = args.out or ORT_OUT
        header = {"model": "all-MiniLM-L6-v2 (ONNX INT8 export, onnxruntime CPU)", "generator": gen,
                  "max_seq_length": max_len, "pooling": "mean", "normalize": True,
                  "note": "token ids are those of all-minilm-l6-v2.json (same tokenizer, same order)"}
        write_json(out, header, texts, encs, embs, with_ids=False)
        if os.path.exists(F32_OUT):
            with open(F32_OUT, encoding="utf-8") as f:
                ref = {it["text"]: np.array(it["embedding"], dtype=np.float64) for it in json.load(f)["items"]}
            cos = np.array([float(np.dot(ref[t], v) / np.linalg.norm(ref[t]) / np.linalg.norm(v))
                            for t, v in zip(texts, embs) if t in ref])
            worst = texts[int(np.argmin(cos))]
            print(f"cosine vs f32 goldens over {len(cos)} texts: mean {cos.mean():.6f} "
                  f"min {cos.min():.6f} (worst: {worst[:60]!r})")
    else:
        embs = run_torch(args.model_dir, encs)
        out = args.out or F32_OUT
        header = {"model": "sentence-transformers/all-MiniLM-L6-v2", "generator": gen,
                  "max_seq_length": max_len, "pooling": "mean", "normalize": True}
        write_json(out, header, texts, encs, embs, with_ids=True)
    print(f"wrote {os.path.relpath(out, REPO)} ({os.path.getsize(out)} bytes, {len(texts)} items)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
