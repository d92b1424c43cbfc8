#!/usr/bin/env python3
"""WordPiece (BERT) token goldens for all-MiniLM-L6-v2 from Hugging Face `tokenizers`.

Produced with: Python 3.11.7 and tokenizers 0.23.3 (the `tokenizers` PyPI package), on
models/all-minilm-l6-v2/tokenizer.json (sha256 recorded in the output). The script
asserts the tokenizers version so a rerun with another one fails instead of
silently changing the goldens; sentence-transformers is not needed. (When the file
was made, `SentenceTransformer(models/all-minilm-l6-v2).tokenize` of
sentence-transformers 6.2.0 / transformers 5.23.0 gave the same `ids` for all texts.)

    python3 scripts/goldens/gen_wordpiece.py            # writes the file below
    python3 scripts/goldens/gen_wordpiece.py --check    # compares, writes nothing

Writes tests/goldens/tokenizer/all-minilm-l6-v2.json: for every text the ids as
sentence-transformers feeds the model ([CLS] … [SEP], truncated to max_seq_length
from sentence_bert_config.json, special-token texts recognised), whether that
truncated, the untruncated ids, and the `tokenizers` decode of the untruncated ids
with special tokens skipped. The output depends only on the texts below and the
tokenizer files, so reruns are byte-identical.
"""
import argparse
import hashlib
import json
import sys
from pathlib import Path

import tokenizers
from tokenizers import Tokenizer

TOKENIZERS_VERSION = "0.23.3"
ROOT = Path(__file__).resolve().parents[2]
MODEL_DIR = ROOT / "models" / "all-minilm-l6-v2"
OUT = ROOT / "tests" / "goldens" / "tokenizer" / "all-minilm-l6-v2.json"

LONG_WORD = "pneumonoultramicroscopicsilicovolcanoconiosis" * 3  # 135 chars
LONG_TEXT = " ".join(
    f"Sentence {i}: the quick brown fox jumps over the lazy dog, again and again."
    for i in range(24)
)

TEXTS = [
    # plain English
    "",
    "Hello world",
    "hello world",
    "HELLO WORLD",
    "Hello, world!",
    "The quick brown fox jumps over the lazy dog.",
    "This is a sentence embedding model.",
    "Sentence embeddings map text to dense vectors.",
    "I can't believe it's not butter!",
    "Don't stop believing; hold on to that feeling.",
    "They're here, we've seen them, and you'll know.",
    "What's the weather like in San Francisco today?",
    "A man is playing a guitar.",
    "A woman is slicing an onion.",
    "The cat sat on the mat.",
    "Unbelievably, the unsupervised pretraining worked.",
    "Tokenization splits words into subword units.",
    "antidisestablishmentarianism",
    "supercalifragilisticexpialidocious",
    "Mr. Smith went to Washington D.C. on Jan. 5th.",
    "e.g. i.e. etc. vs. a.m. p.m.",
    "Rock 'n' roll isn't dead.",
    "He said \"yes\" and she said 'no'.",
    "The U.S.A. and the U.K. signed the treaty.",
    "COVID-19 vaccines were approved in 2020.",
    "state-of-the-art, well-known, long-term",
    "It costs $5.99 (tax included).",
    "50% off — today only!",
    "user@example.com wrote: see you at 10:30",
    "#hashtag @mention &amp; <tag>",
    # headset-assistant commands
    "Hey assistant, turn up the volume.",
    "turn down the volume",
    "Volume up",
    "Skip to the next track",
    "Play my workout playlist",
    "Pause the music",
    "Resume playback",
    "What time is it?",
    "Set a timer for 10 minutes",
    "Call Mom",
    "Read my last message",
    "Reply: I'll be there in 5 minutes",
    "Turn on noise cancellation",
    "Switch to transparency mode",
    "How much battery is left?",
    "Connect to my laptop",
    "Navigate to the nearest coffee shop",
    "Remind me to buy milk at 6 pm",
    "Answer the call",
    "Decline the call and send a text",
    "Mute microphone",
    "Translate 'good morning' into French",
    "What's on my calendar tomorrow?",
    "Open Spotify and shuffle my liked songs",
    "OK Google, set an alarm for 7:30 AM",
    # casing
    "iPhone iPad MacBook",
    "camelCaseIdentifier PascalCaseIdentifier snake_case_identifier",
    "ALL CAPS SENTENCE WITH NUMBERS 123",
    "mIxEd CaSe TeXt",
    "Istanbul İstanbul ISTANBUL",
    "Straße STRASSE straße",
    "ΣΊΣΥΦΟΣ σίσυφος",
    "ǅemal ǆ Ǆ",
    # accents and diacritics
    "café",
    "Café au lait",
    "naïve résumé",
    "Ångström",
    "Crème brûlée",
    "São Paulo",
    "Zürich Köln Düsseldorf",
    "Ærøskøbing Øresund",
    "façade coöperate",
    "Dvořák Łódź Kraków",
    "Ñandú España niño",
    "Tiếng Việt có dấu",
    "e\u0301 (combining acute)",
    "a\u0300\u0301\u0302 stacked marks",
    "\u0301 leading combining mark",
    "ﬁ ligature ﬂ",
    "Ｆｕｌｌｗｉｄｔｈ ＡＢＣ １２３",
    "½ ¼ ² ³ ™ ©",
    # CJK, kana, hangul
    "中文",
    "我爱自然语言处理",
    "北京是中国的首都。",
    "中文和English混合",
    "日本語のテキストです。",
    "ひらがな カタカナ",
    "東京タワーに行きたい",
    "한국어 텍스트",
    "안녕하세요, 세계!",
    "𠀀𠀁 rare ideographs",
    "豈 更 compatibility ideographs",
    "〇 ideographic zero",
    # emoji and symbols
    "I love pizza 🍕",
    "😀😃😄",
    "👍🏽 thumbs up",
    "👨‍👩‍👧‍👦 family",
    "🇺🇸 🇫🇷 flags",
    "❤️ heart",
    "🥰 smiling face with hearts",
    "→ ← ↑ ↓ ⇒",
    "€100 £50 ¥1000 ₹500",
    "∑ ∫ √ ∞ ≠ ≤ ≥",
    "♠ ♣ ♥ ♦ ★ ☆",
    # other scripts
    "مرحبا بالعالم",
    "اللغة العربية جميلة",
    "שלום עולם",
    "Привет, мир!",
    "Ελληνικά γράμματα",
    "नमस्ते दुनिया",
    "สวัสดีครับ",
    "ქართული",
    "Հայերեն",
    "ᚠᚢᚦᚨᚱᚲ runes",
    # punctuation runs
    "!!!",
    "???!!!...",
    "......",
    "Wait... what?!",
    "--- *** ___ ===",
    "(((nested)))",
    "[brackets] {braces} <angles>",
    "«guillemets» „quotes“ “curly” ‘single’",
    "¿Qué? ¡Sí!",
    "em—dash en–dash",
    "a/b\\c|d",
    "~`^",
    "…ellipsis char",
    "、。「」『』",
    "semi;colon:colon",
    # whitespace
    "   leading spaces",
    "trailing spaces   ",
    "multiple     spaces     between",
    "tab\tseparated\tvalues",
    "new\nline\nseparated",
    "windows\r\nline endings",
    "\n\n\n",
    "   ",
    "\t",
    "no-break\u00a0space",
    "ideographic\u3000space",
    "em\u2003space thin\u2009space",
    "line\u2028separator",
    # control and format characters
    "null\u0000char",
    "bell\u0007char",
    "escape\u001b[0mcode",
    "replacement\ufffdchar",
    "zero\u200bwidth space",
    "zero\u200dwidth joiner",
    "soft\u00adhyphen",
    "\ufeffbyte order mark",
    "vertical\u000btab form\u000cfeed",
    "next\u0085line",
    "delete\u007fchar",
    "private\ue000use",
    "right\u200fto\u200eleft marks",
    # digits and code
    "1234567890",
    "3.14159 2.71828",
    "1,000,000",
    "+1 (555) 123-4567",
    "2024-01-15T10:30:00Z",
    "0x1F600 0b1010",
    "def foo(x): return x * 2",
    "for (int i = 0; i < n; i++) { sum += a[i]; }",
    "SELECT * FROM users WHERE id = 42;",
    "console.log('hello');",
    "fn main() { println!(\"{}\", 1 + 1); }",
    "<div class=\"container\">Hello</div>",
    "$ cargo test --release -p alc-tokenizer",
    "x_1 + y_2 = z^3",
    # URLs and paths
    "https://www.example.com/path?query=1&b=2#frag",
    "http://localhost:8080/api/v1/users",
    "Visit huggingface.co/sentence-transformers/all-MiniLM-L6-v2",
    "ftp://files.example.org/pub/file.tar.gz",
    "/usr/local/bin/python3",
    "C:\\Users\\Admin\\Documents",
    # special-token texts inside the input
    "[CLS] hello [SEP]",
    "first [SEP] second",
    "fill the [MASK] please",
    "[UNK] and [PAD]",
    "[cls] lower case is not special",
    "[SEP][SEP]",
    "x[MASK]y",
    # long words and long text
    LONG_WORD,
    "a" * 100,
    "a" * 101,
    "b" * 99 + "é",
    "x" * 150 + " short words after",
    "Ω" * 120,
    "supercalifragilisticexpialidocious" * 2,
    LONG_TEXT,
    "word " * 300,
    "中" * 300,
]


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--check", action="store_true", help="compare with the committed file")
    args = ap.parse_args()
    if tokenizers.__version__ != TOKENIZERS_VERSION:
        sys.exit(f"tokenizers {tokenizers.__version__}; the goldens are made with {TOKENIZERS_VERSION}")
    tj = MODEL_DIR / "tokenizer.json"
    st = json.loads((MODEL_DIR / "sentence_bert_config.json").read_text())
    max_len = int(st["max_seq_length"])
    if st.get("do_lower_case"):
        sys.exit("sentence_bert_config do_lower_case is set; this script does not model it")
    if len(set(TEXTS)) != len(TEXTS):
        sys.exit("duplicate texts")

    full = Tokenizer.from_file(str(tj))
    full.no_padding()
    full.no_truncation()
    cut = Tokenizer.from_file(str(tj))
    cut.no_padding()
    # what sentence-transformers asks transformers for: truncation="longest_first"
    cut.enable_truncation(max_length=max_len, strategy="longest_first")

    cases = []
    for text in TEXTS:
        ids_full = full.encode(text, add_special_tokens=True).ids
        ids_cut = cut.encode(text, add_special_tokens=True).ids
        cases.append(
            {
                "text": text,
                "ids": ids_cut,
                "truncated": len(ids_full) > len(ids_cut),
                "ids_untruncated": ids_full,
                "decoded": full.decode(ids_full, skip_special_tokens=True),
            }
        )
    n_trunc = sum(c["truncated"] for c in cases)
    if n_trunc < 2:
        sys.exit(f"only {n_trunc} texts truncate; the set must exercise truncation")
    doc = {
        "model": "all-minilm-l6-v2",
        "generator": "scripts/goldens/gen_wordpiece.py",
        "reference": f"tokenizers {TOKENIZERS_VERSION}",
        "tokenizer_json_sha256": hashlib.sha256(tj.read_bytes()).hexdigest(),
        "max_length": max_len,
        "n_cases": len(cases),
        "cases": cases,
    }
    text = json.dumps(doc, ensure_ascii=True, indent=1) + "\n"
    if args.check:
        same = OUT.exists() and OUT.read_text() == text
        print("goldens up to date" if same else f"{OUT} differs")
        return 0 if same else 1
    OUT.write_text(text)
    print(f"wrote {OUT}: {len(cases)} texts, {n_trunc} truncated")
    return 0


if __name__ == "__main__":
    sys.exit(main())
