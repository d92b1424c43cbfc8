#!/usr/bin/env python3
"""Differential fuzzing against llama.cpp: random texts tokenized by libllama, written in
the golden format of tests/goldens/tokenizer/, for `examples/check_cases.rs` to compare.

    ~/.cache/alc/venv/bin/python crates/alc-tokenizer/tools/diff_llamacpp.py \
        models/smollm2-135m-instruct-q4_1.gguf /tmp/cases.json 500 1
    cargo run --release -p alc-tokenizer --example check_cases -- \
        models/smollm2-135m-instruct-q4_1.gguf /tmp/cases.json

MAXK=N (default 12) sets the most fragments joined into one text.
Needs the llama.cpp build of scripts/build-llamacpp.sh (ALC_LLAMACPP_DIR). To exercise
other pre-tokenizers on a known vocabulary, copy a model with a different
`tokenizer.ggml.pre` using gguf-py's gguf_new_metadata.py --pre-tokenizer NAME.
"""
import os, sys, json, random, pathlib, ctypes
LLAMACPP_DIR = pathlib.Path(os.environ.get("ALC_LLAMACPP_DIR") or pathlib.Path.home() / ".cache/alc/llama.cpp-0.3.36")
SRC = LLAMACPP_DIR/"vendor/llama.cpp"
os.environ.setdefault("LLAMA_CPP_LIB_PATH", str(SRC/"build/bin"))
sys.path.insert(0, str(LLAMACPP_DIR))
import llama_cpp.llama_cpp as L

@L.llama_log_callback
def _log_cb(level, text, user_data):
    pass
L.llama_log_set(_log_cb, None)
L.llama_backend_init()

model_path, out_path, n, seed = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
mp = L.llama_model_default_params(); mp.vocab_only = True
model = L.llama_model_load_from_file(model_path.encode(), mp)
vocab = L.llama_model_get_vocab(model)
nv = L.llama_vocab_n_tokens(vocab)

def tokenize(text, add, parse):
    data = text.encode("utf-8", "surrogatepass")
    cap = len(data) + 16
    while True:
        buf = (L.llama_token * cap)()
        k = L.llama_tokenize(vocab, data, len(data), buf, cap, add, parse)
        if k >= 0: return list(buf[:k])
        cap = -k

def piece(t):
    cap = 64
    while True:
        buf = ctypes.create_string_buffer(cap)
        k = L.llama_token_to_piece(vocab, t, buf, cap, 0, True)
        if k >= 0: return buf.raw[:k]
        cap = -k
def detok(ids):
    arr = (L.llama_token * max(1, len(ids)))(*ids)
    cap = 64 + 16*len(ids)
    while True:
        buf = ctypes.create_string_buffer(cap)
        k = L.llama_detokenize(vocab, arr, len(ids), buf, cap, False, True)
        if k >= 0: return buf.raw[:k]
        cap = -k

rng = random.Random(seed)
# vocabulary-derived fragments: special texts
specials = []
for t in range(nv):
    a = L.llama_vocab_get_attr(vocab, t)
    if a & (8|16|1):
        specials.append(L.llama_vocab_get_text(vocab, t).decode("utf-8","replace"))
pools = [
    lambda: rng.choice(["Hello", "world", " the", "don't", "I'M", "we'RE", "it's", "'ll", "'s", "x'y"]),
    lambda: "".join(rng.choice(" \t\n\r\u00a0\u2028\u3000\u0085\u000b\u000c") for _ in range(rng.randint(1, 12))),
    lambda: "".join(rng.choice("0123456789") for _ in range(rng.randint(1, 9))),
    lambda: rng.choice(["١٢٣", "²³", "½", "Ⅻ", "𝟙𝟚", "७८"]),
    lambda: rng.choice(["café", "naïve", "Ελληνικά", "русский", "עברית", "العربية", "हिन्दी", "ภาษาไทย", "한국어", "日本語テキスト", "中文字符", "𠀋𠀍"]),
    lambda: rng.choice(["\u0301", "e\u0301", "\u0308\u0308", "\u200b", "\u200d", "\ufeff", "\u00ad"]),
    lambda: rng.choice(["😀", "👍🏽", "👨‍👩‍👧", "🇫🇷", "🧠", "\U0001FAE8", "\U000E0001", "\U0010FFFD", "\U0002EBF0", "\U00031350"]),
    lambda: rng.choice(["!!", "...", "?!", "$$", "+=", "<=>", "^~|", "``", "→", "©", "€", "«»", "、。", "【】", "#", "@", "%", "&&", "()", "{}", "[]"]),
    lambda: "".join(chr(rng.randint(0x20, 0x7e)) for _ in range(rng.randint(1, 8))),
    lambda: "".join(chr(rng.randint(0xa0, 0x2fff)) for _ in range(rng.randint(1, 4))),
    lambda: "".join(chr(rng.choice([rng.randint(0x3000, 0xd7ff), rng.randint(0xe000, 0xfffd), rng.randint(0x10000, 0x10ffff)])) for _ in range(rng.randint(1, 3))),
    lambda: rng.choice(specials) if specials else "",
    lambda: "\x00" * rng.randint(1, 3),
    lambda: rng.choice(["▁", "▁▁x", "Ġ", "<0x0A>", "<unk>", "</s>", "<s>"]),
    lambda: "def f(x):\n    return x**2  # comment\n",
]
cases = []
for i in range(n):
    k = rng.randint(1, int(os.environ.get("MAXK", "12")))
    text = "".join(rng.choice(pools)() for _ in range(k))
    if rng.random() < 0.1:
        text = " " + text
    for add, parse in [(True, True), (False, False), (True, False), (False, True)]:
        ids = tokenize(text, add, parse)
        p = b"".join(piece(t) for t in ids).decode("utf-8", "replace")
        d = detok(ids).decode("utf-8", "replace")
        cases.append({"text": text, "add_special": add, "parse_special": parse, "ids": ids, "pieces_decoded": p, "detokenized": d})
json.dump({"model": model_path, "n_vocab": nv, "cases": cases}, open(out_path, "w"), ensure_ascii=False)
print("wrote", len(cases))
