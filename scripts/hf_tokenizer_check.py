#!/usr/bin/env python3
"""Check a tokenizer.json against llama.cpp's token ids.

usage: hf_tokenizer_check.py TOKENIZER_JSON GOLDEN_JSON [--allow TEXT]...

GOLDEN_JSON is one of tests/goldens/tokenizer/*.json (scripts/goldens/gen_goldens.py,
llama.cpp's tokenizer over a varied text set). Every case that lets special tokens
be parsed from the text (what the Hugging Face `tokenizers` library always does) is
encoded with the `tokenizers` library, with or without the tokenizer's own special
tokens as the case says, and must give the same ids; the ids must decode back to the
case's text. `--allow TEXT` accepts a mismatch on that case's text: where llama.cpp
itself departs from the Hugging Face tokenizer (it skips Qwen 2's NFC normaliser, and
treats the plain vocabulary token "</s>" as a control token). Prints one line per mismatch and a summary; exit status 1 on any
mismatch, 2 when the `tokenizers` module is missing.
"""
import json
import sys
import unicodedata

try:
    from tokenizers import Tokenizer
except ImportError:
    print("tokenizers is not installed (pip install tokenizers)", file=sys.stderr)
    sys.exit(2)


def main() -> int:
    args = sys.argv[1:]
    nfc = lambda t: unicodedata.normalize("NFC", t)  # noqa: E731 (argv may be NFC'd)
    allow = {nfc(args[i + 1]) for i, a in enumerate(args) if a == "--allow"}
    tok = Tokenizer.from_file(args[0])
    cases = json.load(open(args[1], encoding="utf-8"))["cases"]
    checked = bad = 0
    for c in cases:
        if not c["parse_special"]:
            continue
        checked += 1
        ids = tok.encode(c["text"], add_special_tokens=c["add_special"]).ids
        if ids != c["ids"]:
            if nfc(c["text"]) in allow:
                print(f"allowed: {c['text'][:60]!r} differs as expected")
                continue
            bad += 1
            print(f"ids differ for {c['text'][:60]!r} (add_special={c['add_special']}):"
                  f" tokenizers {ids[:12]}… llama.cpp {c['ids'][:12]}…")
            continue
        if not c["add_special"]:
            text = tok.decode(ids, skip_special_tokens=False)
            if text != c["text"]:
                bad += 1
                print(f"decode differs for {c['text'][:60]!r}: {text[:60]!r}")
    print(f"{checked} cases checked, {bad} mismatches")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
