#!/usr/bin/env python3
"""Encode texts with the Hugging Face `tokenizers` library.

usage: hf_encode.py TOKENIZER_JSON TEXTS_JSON

TEXTS_JSON is a JSON list of strings. Prints a JSON list with, per text, the ids
without the tokenizer's own special tokens (added tokens in the text are matched,
as `tokenizers` always does). Exit status 2 when the `tokenizers` module is missing.
"""
import json
import sys

try:
    from tokenizers import Tokenizer
except ImportError:
    print("tokenizers is not installed (pip install tokenizers)", file=sys.stderr)
    sys.exit(2)

tok = Tokenizer.from_file(sys.argv[1])
texts = json.load(open(sys.argv[2], encoding="utf-8"))
print(json.dumps([tok.encode(t, add_special_tokens=False).ids for t in texts]))
