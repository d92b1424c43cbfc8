#!/usr/bin/env python3
"""Generate golden outputs from llama.cpp for alc's tests.

Drives llama.cpp (built by scripts/build-llamacpp.sh) through the ctypes
bindings shipped in the same llama-cpp-python==0.3.36 sdist, and writes:

  tests/goldens/tokenizer/<model>.json  llama_tokenize / detokenize cases
  tests/goldens/logits/<model>.json     teacher-forced top-16 log-probs
  tests/goldens/greedy/<model>.json     greedy (argmax) generations

See scripts/goldens/README.md for how to run it.
"""

from __future__ import annotations

import argparse
import ctypes
import json
import math
import os
import pathlib
import sys
import time

REPO_ROOT = pathlib.Path(__file__).resolve().parents[2]
LLAMACPP_VERSION = "0.3.36"
LLAMACPP_DIR = pathlib.Path(
    os.environ.get("ALC_LLAMACPP_DIR")
    or pathlib.Path.home() / ".cache" / "alc" / f"llama.cpp-{LLAMACPP_VERSION}"
)
LLAMACPP_SRC = LLAMACPP_DIR / "vendor" / "llama.cpp"
MODELS_DIR = pathlib.Path(os.environ.get("ALC_MODELS_DIR") or REPO_ROOT / "models")
GENERATOR = "scripts/goldens/gen_goldens.py"

MODELS = {
    "smollm2": "smollm2-135m-instruct-q4_1.gguf",
    # Made from the Q4_1 file by `scripts/build-llamacpp.sh --make-q4_0` (llama-quantize);
    # checks alc's packed Q4_0 path. Logits only (same tokenizer as smollm2).
    "smollm2-q4_0": "smollm2-135m-instruct-q4_0.gguf",
    "qwen2": "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
    "gemma3": "gemma-3-270m-q4_k_m.gguf",
}
CHAT_MODELS = ("smollm2", "qwen2")

N_THREADS = 2
N_CTX = 4096
N_BATCH = 512
LOGITS_TOKENS = 2100
TOPK = 16
GREEDY_TOKENS = 48

# The pure-Python bindings from the sdist, and the libllama.so we built.
os.environ.setdefault("LLAMA_CPP_LIB_PATH", str(LLAMACPP_SRC / "build" / "bin"))
sys.path.insert(0, str(LLAMACPP_DIR))
sys.path.insert(0, str(LLAMACPP_SRC / "gguf-py"))

import numpy as np  # noqa: E402

import gguf  # noqa: E402
import llama_cpp.llama_cpp as L  # noqa: E402


# --------------------------------------------------------------------------
# Tokenizer test texts (same set for every model).

SPECIAL_TEXTS = [
    "<|im_start|>user\nhi<|im_end|>",
    "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>assistant\n",
    "<|endoftext|>",
    "<start_of_turn>user\nHello<end_of_turn>\n<start_of_turn>model\n",
    "<start_of_turn>user",
    "<bos>",
    "<bos>Hello<eos>",
    "<s>Hello</s>",
    "text before <|im_end|> and after",
    "<|im_start|><|im_start|>",
    "<|fim_prefix|>def f():<|fim_suffix|>\n<|fim_middle|>",
    "<pad><unk><mask>",
]

TEXTS = [
    # plain English
    "Hello world",
    "The quick brown fox jumps over the lazy dog.",
    "Once upon a time, in a land far, far away, there lived a curious little robot.",
    # leading / trailing spaces, whitespace runs, tabs, newlines
    " Hello",
    "Hello ",
    "  leading two spaces",
    "trailing three spaces   ",
    "a  b   c    d     e",
    "tab\tseparated\tvalues",
    "\t\tindented with tabs",
    "line one\nline two\r\nline three",
    "\n",
    "\n\n\n",
    " \n ",
    "\n \n\n  \n\t\n",
    "paragraph one.\n\nparagraph two.\n\n\n\nparagraph three.",
    # accents and other Latin-script Unicode
    "Café, naïve, façade, jalapeño, Ångström, Øresund, Łódź, Straße",
    "Ça va? Où est la bibliothèque? ¿Dónde está el baño? ¡Olé!",
    "Việt Nam, İstanbul, ığüşöç, Dvořák, Zürich",
    # Greek, Cyrillic, Arabic, Hindi
    "Καλημέρα κόσμε· η γλώσσα μου έδωσαν ελληνική.",
    "Привет, мир! Съешь же ещё этих мягких французских булок.",
    "مرحبا بالعالم، كيف حالك اليوم؟",
    "नमस्ते दुनिया, आप कैसे हैं?",
    # CJK
    "你好，世界！今天天气很好。",
    "こんにちは世界。カタカナとひらがなと漢字。",
    "안녕하세요 세계, 반갑습니다.",
    # emoji: simple, skin tone, ZWJ sequences, flags, keycaps
    "I love pizza 🍕 and tacos 🌮!",
    "👍🏽 👋🏿 🙏",
    "Family: 👨‍👩‍👧‍👦, technologist: 🧑🏻‍💻, rainbow flag: 🏳️‍🌈",
    "Flags: 🇫🇷🇩🇪🇯🇵🇺🇸 🏴󠁧󠁢󠁳󠁣󠁴󠁿",
    "Keycaps: 1️⃣ 2️⃣ #️⃣ and hearts ❤️ ♥",
    # digits and numbers
    "1234567890",
    "3.14159",
    "1,000,000",
    "The year 2024 had 366 days; 12345678901234567890 is big; -0.001e-10 is small.",
    "Call 555-0123 or +44 20 7946 0958 before 10:30pm.",
    # code
    'def greet(name):\n    """Say hello."""\n    if name:\n        print(f"Hello, {name}!")\n    return None\n',
    'fn main() {\n    let v: Vec<u32> = (0..10).map(|x| x * x).collect();\n    println!("{:?}", v);\n}\n',
    '{\n  "name": "alc",\n  "version": "0.1.0",\n  "tags": ["llm", "rust"],\n  "nested": {"a": 1, "b": [true, false, null]}\n}',
    "for (int i = 0; i < n; ++i) { sum += a[i] * b[i]; }  // dot product",
    "<html><body><p class=\"x\">Hi &amp; bye</p></body></html>",
    # contractions, case
    "don't, can't, won't, it's, they're, I'm",
    "I'VE SEEN IT. WE'LL GO. YOU'D KNOW. SHE'S HERE.",
    "we'll we'd we've y'all o'clock rock'n'roll",
    "camelCaseIdentifier snake_case_name SCREAMING_CASE PascalCase mIxEd CaSe",
    # URLs, e-mail, paths
    "Visit https://example.com/path/to/page?query=1&lang=en#section for details.",
    "mail me at first.last+tag@example.org or see ftp://files.example.net/pub/",
    "C:\\Users\\Name\\Documents\\file.txt and ~/projects/alc/src/main.rs",
    # edge cases
    "",
    " ",
    "\u0301",
    "e\u0301 vs \u00e9",
    "\ufeffBOM at start",
    "zero\u200bwidth\u200cjoiner\u200dtest",
    "replacement \ufffd char and private use \ue000 and nonchar \uffff",
    "\u0000 nul and \u0007 bell and \u001b[31m ansi",
    "a\u00a0non-breaking\u2009thin\u3000ideographic space",
    "𝔘𝔫𝔦𝔠𝔬𝔡𝔢 𝕞𝕒𝕥𝕙 and 𐍈 gothic",
    "ﬁ ligature, Ⅻ numeral, ½ fraction, ℃, ™",
    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
    "!!!???...,,,;;;:::---___===+++***&&&%%%$$$###@@@",
    "....................",
] + SPECIAL_TEXTS

# Combinations of (add_special, parse_special): (true,true) and (false,false)
# for all texts; the two mixed combinations for texts with special tokens.
COMBOS_ALL = [(True, True), (False, False)]
COMBOS_SPECIAL = [(True, False), (False, True)]

# --------------------------------------------------------------------------
# Greedy prompts.

CHAT_PROMPTS = [
    [{"role": "user", "content": "What is the capital of France?"}],
    [{"role": "user", "content": "Write a Python function that returns the sum of a list of numbers."}],
    [{"role": "user", "content": "Translate to French: \"The weather is nice today.\""}],
    [{"role": "user", "content": "List three colors of the rainbow."}],
    [
        {"role": "system", "content": "You are a friendly assistant who answers briefly."},
        {"role": "user", "content": "Hi! My name is Sam."},
        {"role": "assistant", "content": "Hello Sam! Nice to meet you. How can I help?"},
        {"role": "user", "content": "What is my name, and what is 2 + 2?"},
    ],
]

RAW_PROMPTS = [
    "The capital of France is",
    "def fibonacci(n):\n",
    "Once upon a time, there was a little",
    "Here is a list of fruits:\n1. Apple\n2.",
    "Question: How many legs does a spider have?\nAnswer:",
]


# --------------------------------------------------------------------------
# llama.cpp helpers.

_LOG_FILE = None


@L.llama_log_callback
def _log_cb(level, text, user_data):  # noqa: ARG001
    if _LOG_FILE is not None and text:
        _LOG_FILE.write(text.decode("utf-8", errors="replace"))


class Model:
    def __init__(self, path: pathlib.Path, vocab_only: bool = False):
        mp = L.llama_model_default_params()
        mp.n_gpu_layers = 0
        mp.vocab_only = vocab_only
        self.model = L.llama_model_load_from_file(str(path).encode(), mp)
        if not self.model:
            raise RuntimeError(f"failed to load {path}")
        self.vocab = L.llama_model_get_vocab(self.model)
        self.n_vocab = L.llama_vocab_n_tokens(self.vocab)

    def close(self):
        L.llama_model_free(self.model)

    def tokenize(self, text: str, add_special: bool, parse_special: bool) -> list[int]:
        data = text.encode("utf-8")
        cap = len(data) + 16
        while True:
            buf = (L.llama_token * cap)()
            n = L.llama_tokenize(self.vocab, data, len(data), buf, cap, add_special, parse_special)
            if n >= 0:
                return list(buf[:n])
            cap = -n

    def piece(self, tok: int, special: bool) -> bytes:
        cap = 64
        while True:
            buf = ctypes.create_string_buffer(cap)
            n = L.llama_token_to_piece(self.vocab, tok, buf, cap, 0, special)
            if n >= 0:
                return buf.raw[:n]
            cap = -n

    def detokenize(self, ids: list[int], remove_special: bool, unparse_special: bool) -> bytes:
        arr = (L.llama_token * max(1, len(ids)))(*ids)
        cap = 64 + 16 * len(ids)
        while True:
            buf = ctypes.create_string_buffer(cap)
            n = L.llama_detokenize(self.vocab, arr, len(ids), buf, cap, remove_special, unparse_special)
            if n >= 0:
                return buf.raw[:n]
            cap = -n

    def is_eog(self, tok: int) -> bool:
        return bool(L.llama_vocab_is_eog(self.vocab, tok))

    def new_context(self, n_ctx: int = N_CTX, n_batch: int = N_BATCH):
        cp = L.llama_context_default_params()
        cp.n_ctx = n_ctx
        cp.n_batch = n_batch
        cp.n_ubatch = n_batch
        cp.n_seq_max = 1
        cp.n_threads = N_THREADS
        cp.n_threads_batch = N_THREADS
        cp.no_perf = True
        ctx = L.llama_init_from_model(self.model, cp)
        if not ctx:
            raise RuntimeError("failed to create context")
        return ctx, cp


def decode(ctx, n_vocab: int, tokens: list[int], pos0: int, all_logits: bool) -> np.ndarray:
    """Decode `tokens` at positions pos0.. in sequence 0.

    Returns the logits (float32 copy) of every token if all_logits, else of the last one.
    """
    n = len(tokens)
    batch = L.llama_batch_init(n, 0, 1)
    try:
        for i, t in enumerate(tokens):
            batch.token[i] = t
            batch.pos[i] = pos0 + i
            batch.n_seq_id[i] = 1
            batch.seq_id[i][0] = 0
            batch.logits[i] = 1 if (all_logits or i == n - 1) else 0
        batch.n_tokens = n
        rc = L.llama_decode(ctx, batch)
        if rc != 0:
            raise RuntimeError(f"llama_decode returned {rc}")
        n_out = n if all_logits else 1
        ptr = L.llama_get_logits(ctx)
        out = np.ctypeslib.as_array(ptr, shape=(n_out * n_vocab,)).reshape(n_out, n_vocab).copy()
        return out
    finally:
        L.llama_batch_free(batch)


def log_softmax(x: np.ndarray) -> np.ndarray:
    x = x.astype(np.float64)
    m = x.max(axis=-1, keepdims=True)
    return x - m - np.log(np.exp(x - m).sum(axis=-1, keepdims=True))


def topk_sorted(row: np.ndarray, k: int) -> np.ndarray:
    """Indices of the k largest values, descending; ties broken by lower id."""
    cand = np.argpartition(-row, k)[: k + 32] if row.size > k + 32 else np.arange(row.size)
    # make sure all values tied with the k-th are candidates
    kth = np.sort(row[cand])[::-1][k - 1]
    cand = np.nonzero(row >= kth)[0]
    order = np.lexsort((cand, -row[cand]))
    return cand[order][:k]


def utf8(b: bytes) -> tuple[str, bool]:
    try:
        return b.decode("utf-8"), True
    except UnicodeDecodeError:
        return b.decode("utf-8", errors="replace"), False


# --------------------------------------------------------------------------
# GGUF metadata.


def gguf_meta(path: pathlib.Path) -> dict:
    r = gguf.GGUFReader(str(path))

    def val(key):
        f = r.fields.get(key)
        if f is None:
            return None
        return f.contents()

    tokens = val("tokenizer.ggml.tokens")
    types: dict[str, int] = {}
    for t in r.tensors:
        types[t.tensor_type.name] = types.get(t.tensor_type.name, 0) + 1
    tensor_types = {t.name: t.tensor_type.name for t in r.tensors}
    arch = val("general.architecture")
    return {
        "arch": arch,
        "tokenizer_model": val("tokenizer.ggml.model"),
        "tokenizer_pre": val("tokenizer.ggml.pre"),
        "add_bos": val("tokenizer.ggml.add_bos_token"),
        "add_eos": val("tokenizer.ggml.add_eos_token"),
        "add_space_prefix": val("tokenizer.ggml.add_space_prefix"),
        "bos_id": val("tokenizer.ggml.bos_token_id"),
        "eos_id": val("tokenizer.ggml.eos_token_id"),
        "n_tokens": len(tokens) if tokens is not None else None,
        "tokens": tokens,
        "chat_template": val("tokenizer.chat_template"),
        "tensor_type_counts": types,
        "token_embd": tensor_types.get("token_embd.weight"),
        "output": tensor_types.get("output.weight", "(tied to token_embd)"),
    }


# --------------------------------------------------------------------------
# Generators.


def write_json(path: pathlib.Path, obj: dict, indent: int | None = None):
    path.parent.mkdir(parents=True, exist_ok=True)
    if indent is None:
        text = json.dumps(obj, ensure_ascii=False, separators=(",", ":"))
    else:
        text = json.dumps(obj, ensure_ascii=False, indent=indent)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(text + "\n", encoding="utf-8")
    tmp.replace(path)
    try:
        shown = path.resolve().relative_to(REPO_ROOT)
    except ValueError:
        shown = path
    print(f"  wrote {shown} ({path.stat().st_size:,} bytes)")


def gen_tokenizer(name: str, model: Model, out_dir: pathlib.Path):
    cases = []
    special = set(SPECIAL_TEXTS)
    for text in TEXTS:
        combos = COMBOS_ALL + (COMBOS_SPECIAL if text in special else [])
        for add_special, parse_special in combos:
            ids = model.tokenize(text, add_special, parse_special)
            pieces = b"".join(model.piece(t, True) for t in ids)
            pieces_s, ok1 = utf8(pieces)
            detok = model.detokenize(ids, False, True)
            detok_s, ok2 = utf8(detok)
            case = {
                "text": text,
                "add_special": add_special,
                "parse_special": parse_special,
                "ids": ids,
                "pieces_decoded": pieces_s,
                "detokenized": detok_s,
            }
            if not (ok1 and ok2):
                case["invalid_utf8"] = True
            cases.append(case)
    obj = {
        "model": MODELS[name],
        "generator": GENERATOR,
        "llama_cpp": LLAMACPP_VERSION,
        "n_vocab": model.n_vocab,
        "cases": cases,
    }
    write_json(out_dir / "tokenizer" / f"{name}.json", obj, indent=1)


def gen_logits(name: str, model: Model, out_dir: pathlib.Path):
    text = (REPO_ROOT / "scripts" / "goldens" / "logits_text.txt").read_text(encoding="utf-8")
    all_ids = model.tokenize(text, True, False)
    if len(all_ids) < LOGITS_TOKENS:
        raise RuntimeError(f"{name}: logits text has only {len(all_ids)} tokens, need {LOGITS_TOKENS}")
    ids = all_ids[:LOGITS_TOKENS]
    ctx, _ = model.new_context()
    t0 = time.time()
    try:
        top_ids, top_lps = [], []
        for start in range(0, len(ids), N_BATCH):
            chunk = ids[start : start + N_BATCH]
            logits = decode(ctx, model.n_vocab, chunk, start, all_logits=True)
            if not np.isfinite(logits).all():
                raise RuntimeError(f"{name}: non-finite logits in chunk at {start}")
            lps = log_softmax(logits)
            for row in lps:
                idx = topk_sorted(row, TOPK)
                top_ids.append([int(i) for i in idx])
                top_lps.append([round(float(row[i]), 5) for i in idx])
    finally:
        L.llama_free(ctx)
    dt = time.time() - t0
    # teacher-forced mean NLL of the actual next tokens that fall in the top-k
    obj = {
        "model": MODELS[name],
        "generator": GENERATOR,
        "llama_cpp": LLAMACPP_VERSION,
        "text_file": "scripts/goldens/logits_text.txt",
        "add_special": True,
        "parse_special": False,
        "n_ctx": N_CTX,
        "n_batch": N_BATCH,
        "n_ubatch": N_BATCH,
        "n_threads": N_THREADS,
        "n_text_tokens": len(all_ids),
        "tokens": ids,
        "n_vocab": model.n_vocab,
        "topk": TOPK,
        "top_ids": top_ids,
        "top_logprobs": top_lps,
    }
    hits = sum(1 for i in range(len(ids) - 1) if top_ids[i][0] == ids[i + 1])
    print(f"  {name}: {len(ids)} of {len(all_ids)} tokens evaluated in {dt:.1f} s; "
          f"top-1 accuracy on next token {hits / (len(ids) - 1):.3f}")
    path = out_dir / "logits" / f"{name}.json"
    write_json(path, obj)
    if path.stat().st_size > 2_500_000:
        raise RuntimeError(f"{path} is larger than 2.5 MB")


def render_chat(meta: dict, messages: list[dict]) -> str:
    from jinja2.exceptions import TemplateError
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    def raise_exception(message):
        raise TemplateError(message)

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
    env.globals["raise_exception"] = raise_exception
    tmpl = env.from_string(meta["chat_template"])
    toks = meta["tokens"]
    return tmpl.render(
        messages=messages,
        add_generation_prompt=True,
        bos_token=toks[meta["bos_id"]] if meta["bos_id"] is not None else "",
        eos_token=toks[meta["eos_id"]] if meta["eos_id"] is not None else "",
    )


def gen_greedy(name: str, model: Model, meta: dict, out_dir: pathlib.Path):
    cases = []
    if name in CHAT_MODELS:
        prompts = [(m, render_chat(meta, m)) for m in CHAT_PROMPTS]
    else:
        prompts = [(None, p) for p in RAW_PROMPTS]
    for messages, rendered in prompts:
        prompt_ids = model.tokenize(rendered, True, True)
        ctx, _ = model.new_context(n_ctx=1024)
        try:
            logits = decode(ctx, model.n_vocab, prompt_ids, 0, all_logits=False)[0]
            out, margins, stop = [], [], "length"
            pos = len(prompt_ids)
            for _ in range(GREEDY_TOKENS):
                order = topk_sorted(logits, 2)
                tok = int(order[0])
                margins.append(round(float(logits[order[0]] - logits[order[1]]), 4))
                out.append(tok)
                if model.is_eog(tok):
                    stop = "eog"
                    break
                logits = decode(ctx, model.n_vocab, [tok], pos, all_logits=False)[0]
                pos += 1
        finally:
            L.llama_free(ctx)
        text, ok = utf8(b"".join(model.piece(t, False) for t in out))
        case = {
            "messages": messages,
            "rendered": rendered,
            "prompt_ids": prompt_ids,
            "output_ids": out,
            "output_text": text,
            "stop_reason": stop,
            "top2_margins": margins,
        }
        if not ok:
            case["invalid_utf8"] = True
        cases.append(case)
        print(f"  {name}: {len(prompt_ids)} prompt tokens -> {len(out)} ({stop}); "
              f"min margin {min(margins):.4f}: {text[:70]!r}")
    obj = {
        "model": MODELS[name],
        "generator": GENERATOR,
        "llama_cpp": LLAMACPP_VERSION,
        "add_special": True,
        "parse_special": True,
        "max_new_tokens": GREEDY_TOKENS,
        "n_threads": N_THREADS,
        "chat_template": "gguf tokenizer.chat_template via jinja2 (trim_blocks, lstrip_blocks, add_generation_prompt=True)"
        if name in CHAT_MODELS
        else None,
        "cases": cases,
    }
    write_json(out_dir / "greedy" / f"{name}.json", obj, indent=1)


def print_info(name: str, meta: dict, model: Model):
    print(f"== {name}: {MODELS[name]}")
    print(f"  arch={meta['arch']} n_vocab(llama.cpp)={model.n_vocab} n_tokens(gguf)={meta['n_tokens']}")
    print(f"  tokenizer.ggml.model={meta['tokenizer_model']} tokenizer.ggml.pre={meta['tokenizer_pre']}")
    print(f"  add_bos(gguf)={meta['add_bos']} add_eos(gguf)={meta['add_eos']} "
          f"add_space_prefix={meta['add_space_prefix']}")
    print(f"  llama_vocab_get_add_bos={L.llama_vocab_get_add_bos(model.vocab)} "
          f"llama_vocab_get_add_eos={L.llama_vocab_get_add_eos(model.vocab)} "
          f"bos={meta['bos_id']} eos={meta['eos_id']}")
    print(f"  tensor types: {meta['tensor_type_counts']}")
    print(f"  token_embd.weight={meta['token_embd']} output.weight={meta['output']}")
    print(f"  chat template: {'yes' if meta['chat_template'] else 'no'}")


def main():
    global _LOG_FILE
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", default="smollm2,qwen2,gemma3", help="comma list of: " + ",".join(MODELS))
    ap.add_argument("--parts", default="tokenizer,logits,greedy", help="comma list of: tokenizer,logits,greedy,info")
    ap.add_argument("--out-dir", default=str(REPO_ROOT / "tests" / "goldens"))
    ap.add_argument("--log", default=str(pathlib.Path.home() / ".cache" / "alc" / "gen_goldens.llama.log"),
                    help="where llama.cpp's own log goes")
    args = ap.parse_args()
    names = [m for m in args.models.split(",") if m]
    parts = [p for p in args.parts.split(",") if p]
    out_dir = pathlib.Path(args.out_dir)

    pathlib.Path(args.log).parent.mkdir(parents=True, exist_ok=True)
    _LOG_FILE = open(args.log, "w", encoding="utf-8")
    L.llama_log_set(_log_cb, ctypes.c_void_p())
    L.llama_backend_init()
    print(f"llama.cpp library: {os.environ['LLAMA_CPP_LIB_PATH']}; system info: "
          f"{L.llama_print_system_info().decode().strip()}")

    for name in names:
        path = MODELS_DIR / MODELS[name]
        if not path.exists():
            how = ("scripts/build-llamacpp.sh --make-q4_0" if name == "smollm2-q4_0"
                   else f"scripts/fetch-models.sh --only {name}")
            raise SystemExit(f"{path} missing: run {how}")
        meta = gguf_meta(path)
        model = Model(path)
        try:
            if "info" in parts:
                print_info(name, meta, model)
            if "tokenizer" in parts:
                gen_tokenizer(name, model, out_dir)
            if "logits" in parts:
                gen_logits(name, model, out_dir)
            if "greedy" in parts:
                gen_greedy(name, model, meta, out_dir)
        finally:
            model.close()
    _LOG_FILE.close()


if __name__ == "__main__":
    main()
