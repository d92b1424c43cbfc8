#!/usr/bin/env python3
"""Writes data/bench/embed-sentences.txt, the input of scripts/bench-embed.sh: the
golden texts of tests/goldens/embeddings/all-minilm-l6-v2.json that are 8..64 tokens
long (with [CLS]/[SEP]) and one line each, then joins of consecutive ones that stay
within 64 tokens, so that lengths cover 8..64 (MiniLM's tokenizer, tokenizers 0.23)."""
import json
import pathlib

from tokenizers import Tokenizer

root = pathlib.Path(__file__).resolve().parents[2]
tok = Tokenizer.from_file(str(root / "models/all-minilm-l6-v2/tokenizer.json"))
tok.no_padding()
tok.no_truncation()
gold = json.loads((root / "tests/goldens/embeddings/all-minilm-l6-v2.json").read_text())
n = lambda t: len(tok.encode(t).ids)
base = [
    it["text"]
    for it in gold["items"]
    if 8 <= it["n_tokens"] <= 64 and "\n" not in it["text"] and it["text"].strip() == it["text"]
]
joined = []
cur = []
for t in base:
    cur.append(t)
    k = n(" ".join(cur))
    if k > 64:
        cur = [t]
    elif k >= 34:
        joined.append(" ".join(cur))
        cur = []
out = base + joined
(root / "data/bench/embed-sentences.txt").write_text("\n".join(out) + "\n")
lens = [n(t) for t in out]
print(f"{len(out)} sentences, tokens {min(lens)}..{max(lens)}, mean {sum(lens) / len(lens):.1f}")
