#!/usr/bin/env python3
"""Tiny random-weight Hugging Face checkpoints and their golden logits.

Writes, from scratch and deterministically:

  tests/fixtures/hf/<arch>/          one tiny float32 checkpoint per architecture:
                                     config.json, generation_config.json,
                                     model.safetensors (qwen2: 2 shards + index),
                                     tokenizer.json, tokenizer_config.json
  tests/goldens/hf-tiny/<arch>.json  final logits of that checkpoint, computed by
                                     transformers (float32, eager attention, CPU, no cache)
  tests/goldens/hf-tiny/tokenizer.json
                                     ids of the shared tiny tokenizer (the `tokenizers`
                                     library) and ChatML renderings (apply_chat_template)

Architectures: llama mistral qwen2 qwen3 gemma2 gemma3 phi3 (see ARCHS below).

How to run (from the repository root; CPU only, well under a minute):

    python3 scripts/goldens/gen_tiny_hf.py
    python3 scripts/goldens/gen_tiny_hf.py --out-fixtures DIR --out-goldens DIR
    python3 scripts/goldens/gen_tiny_hf.py --parts tokenizer   # no torch needed
    python3 scripts/goldens/gen_tiny_hf.py --parts check       # numpy + safetensors only

`--parts` (default tokenizer,models,check): `tokenizer` trains the tokenizer and writes
its golden, `models` writes the checkpoints and logit goldens, `check` recomputes every
golden with an independent float64 numpy forward pass from the written files (relative
L2 error must be < 1e-5) and shows that deliberate conversion mistakes (rope pairing,
gate/up swap, gemma norm offset, attention scale, sliding window, softcapping, gemma3
rope bases) move the logits by more than 1e-2. `--archs llama,gemma3` limits the set.

Needs torch, transformers (which brings tokenizers) and safetensors. The committed files
were produced with Python 3.12.3, torch 2.11.0 (the +cu130 build, run on the CPU),
transformers 5.17.0, tokenizers 0.23.2 and safetensors 0.8.0. The tokenizer files were
also reproduced byte for byte with Python 3.11 and the same tokenizers/transformers.
Other versions may train a different tokenizer or round logits differently; the
versions used are recorded in every golden file.

See scripts/goldens/README.md ("Tiny Hugging Face checkpoints") for what the files
contain and how they were made.
"""

from __future__ import annotations

import argparse
import inspect
import json
import math
import os
import pathlib
import shutil
import sys

REPO_ROOT = pathlib.Path(__file__).resolve().parents[2]
DEFAULT_FIXTURES = REPO_ROOT / "tests" / "fixtures" / "hf"
DEFAULT_GOLDENS = REPO_ROOT / "tests" / "goldens" / "hf-tiny"
GENERATOR = "scripts/goldens/gen_tiny_hf.py"

# --------------------------------------------------------------------------------------
# Tokenizer
# --------------------------------------------------------------------------------------

VOCAB_SIZE = 384
SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]  # ids 0, 1, 2
PAD_ID, BOS_ID, EOS_ID = 0, 1, 2

# The BPE training text (fixed; written for this script). English, code and digits.
TRAINING_TEXT = """\
The small model reads the text one token at a time. Each token is a piece of a word,
a number, a space or a sign. The model looks at all the tokens before it and then
guesses the next one. When the guess is good, the loss is low; when it is bad, the
loss is high. Training moves the weights a little after every batch, and after many
batches the model gets better at the task. This is how a language model learns.

There are three simple rules for the tests: the same input must give the same output,
the output must match the reference within a small error, and every file must be
written from scratch by the script. If a rule is broken, the test fails and tells you
where. The reference is the one that everybody trusts; the new code has to agree with
it on every position and every token of the vocabulary.

On Monday the team met at 9:30 and worked until 17:45. They wrote 1024 lines of code,
fixed 37 bugs, and ran 2048 tests in 12.5 seconds. The build took 3 minutes and 14
seconds on 16 cores. In 2024 the project had 128 users; in 2025 it had 4096, and the
number is still growing. Version 0.3.36 was released on 2025-06-01 at 08:00 UTC.
Call 555-0100 or write to the list. Pi is 3.14159 and e is 2.71828.

def add(a, b):
    return a + b

def mean(values):
    total = 0
    for value in values:
        total += value
    return total / len(values)

class Counter:
    def __init__(self, start=0):
        self.count = start

    def step(self, n=1):
        self.count += n
        return self.count

for i in range(10):
    print(f"step {i}: {add(i, i * 2)}")

fn main() {
    let mut sum: u64 = 0;
    for i in 0..100 {
        sum += i * i;
    }
    println!("sum = {}", sum);
}

pub struct Point { pub x: f32, pub y: f32 }

impl Point {
    pub fn new(x: f32, y: f32) -> Self { Self { x, y } }
    pub fn norm(&self) -> f32 { (self.x * self.x + self.y * self.y).sqrt() }
}

if (x > 0 && y < 10) { return x * y; } else { return -1; }
const items = [1, 2, 3, 4, 5].map((n) => n * n);
SELECT name, count(*) FROM users WHERE age >= 18 GROUP BY name ORDER BY name;
{"name": "tiny", "layers": 2, "heads": 4, "vocab": 384, "ok": true}
"""

# ChatML, with a default system message when the conversation has none.
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{% if loop.first and messages[0]['role'] != 'system' %}"
    "{{ '<|im_start|>system\\nYou are a tiny test model.<|im_end|>\\n' }}"
    "{% endif %}"
    "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)

# The golden-logits input.
LOGITS_TEXT = "The small model adds 12 + 30 = 42; def add(a, b): return a + b  # ok!"

TOKENIZER_TEXTS = [
    "Hello world",
    "The quick brown fox jumps over the lazy dog.",
    "",
    " ",
    "   three leading spaces and two trailing  ",
    "tabs\tand\nnew\n\nlines\r\n",
    "many     spaces      between",
    "don't I'll we're they've she's he'd",
    "1 12 123 1234 12345 3.14159 2025-06-01 0x1F",
    "def add(a, b):\n    return a + b\n",
    "fn main() { println!(\"{}\", 1 + 2); }",
    "caf\u00e9 na\u00efve r\u00e9sum\u00e9 \u00fcber Stra\u00dfe",
    "\u0391\u03b8\u03ae\u03bd\u03b1 \u041c\u043e\u0441\u043a\u0432\u0430",
    "\u4f60\u597d\uff0c\u4e16\u754c\u3002\u65e5\u672c\u8a9e\u306e\u30c6\u30ad\u30b9\u30c8",
    "emoji \U0001f600 \U0001f44d\U0001f3fd \U0001f468\u200d\U0001f469\u200d\U0001f467 \U0001f1eb\U0001f1f7",
    "<|im_start|>user\nHi there<|im_end|>\n",
    "text<|endoftext|>more text",
    "<|im_end|><|im_start|>",
    "<|im_start |> is not special",
    LOGITS_TEXT,
]

CHATS = [
    [
        {"role": "system", "content": "You are helpful."},
        {"role": "user", "content": "What is 2 + 2?"},
    ],
    [
        {"role": "user", "content": "Hi!"},
        {"role": "assistant", "content": "Hello, how can I help?"},
    ],
]


def build_tokenizer():
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    trainer = trainers.BpeTrainer(
        vocab_size=VOCAB_SIZE,
        min_frequency=1,
        show_progress=False,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tok.train_from_iterator([TRAINING_TEXT], trainer=trainer)
    if tok.get_vocab_size(with_added_tokens=True) != VOCAB_SIZE:
        sys.exit(f"tokenizer has {tok.get_vocab_size(with_added_tokens=True)} ids, want {VOCAB_SIZE}")
    for i, s in enumerate(SPECIAL_TOKENS):
        if tok.token_to_id(s) != i:
            sys.exit(f"special token {s} has id {tok.token_to_id(s)}, want {i}")
    return tok


def tokenizer_config():
    added = {
        str(i): {
            "content": s,
            "lstrip": False,
            "normalized": False,
            "rstrip": False,
            "single_word": False,
            "special": True,
        }
        for i, s in enumerate(SPECIAL_TOKENS)
    }
    return {
        "add_bos_token": False,
        "add_eos_token": False,
        "add_prefix_space": False,
        "added_tokens_decoder": added,
        "additional_special_tokens": ["<|im_start|>", "<|im_end|>"],
        "bos_token": "<|im_start|>",
        "chat_template": CHAT_TEMPLATE,
        "clean_up_tokenization_spaces": False,
        "eos_token": "<|im_end|>",
        "model_max_length": 256,
        "pad_token": "<|endoftext|>",
        "tokenizer_class": "GPT2Tokenizer",
        "unk_token": "<|endoftext|>",
    }


def write_json(path: pathlib.Path, obj) -> None:
    path.write_text(json.dumps(obj, indent=2, sort_keys=True, ensure_ascii=False) + "\n", encoding="utf-8")


def write_tokenizer_files(tok, d: pathlib.Path) -> None:
    d.mkdir(parents=True, exist_ok=True)
    tok.save(str(d / "tokenizer.json"), pretty=True)
    write_json(d / "tokenizer_config.json", tokenizer_config())


def tokenizer_golden(tok, tok_dir: pathlib.Path) -> dict:
    import tokenizers
    import transformers
    from transformers import AutoTokenizer

    hf_tok = AutoTokenizer.from_pretrained(str(tok_dir))
    cases = []
    for text in TOKENIZER_TEXTS:
        enc = tok.encode(text, add_special_tokens=False)
        ids = list(enc.ids)
        # transformers' wrapper must agree with the raw tokenizers object.
        hf_ids = hf_tok(text, add_special_tokens=False)["input_ids"]
        if hf_ids != ids:
            sys.exit(f"AutoTokenizer disagrees on {text!r}: {hf_ids} vs {ids}")
        decoded = tok.decode(ids, skip_special_tokens=False)
        cases.append({"text": text, "ids": ids, "tokens": list(enc.tokens), "decoded": decoded})
    chats = []
    for messages in CHATS:
        rendered = hf_tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        ids = list(tok.encode(rendered, add_special_tokens=False).ids)
        chats.append({"messages": messages, "add_generation_prompt": True, "rendered": rendered, "ids": ids})
    vocab = tok.get_vocab(with_added_tokens=True)
    pieces = [None] * VOCAB_SIZE
    for s, i in vocab.items():
        pieces[i] = s
    return {
        "generator": GENERATOR,
        "tokenizers_version": tokenizers.__version__,
        "transformers_version": transformers.__version__,
        "vocab_size": VOCAB_SIZE,
        "special_tokens": {s: i for i, s in enumerate(SPECIAL_TOKENS)},
        "encode": "tokenizers.Tokenizer.encode(text, add_special_tokens=False)",
        "cases": cases,
        "chat": chats,
        "vocab": pieces,
    }


# --------------------------------------------------------------------------------------
# Checkpoints
# --------------------------------------------------------------------------------------

COMMON = dict(
    vocab_size=VOCAB_SIZE,
    hidden_size=64,
    intermediate_size=128,
    num_hidden_layers=2,
    num_attention_heads=4,
    num_key_value_heads=2,
    head_dim=16,
    max_position_embeddings=256,
    rms_norm_eps=1e-6,
    bos_token_id=BOS_ID,
    eos_token_id=EOS_ID,
    pad_token_id=PAD_ID,
)

# rope_layout "legacy": config.json is rewritten after save_pretrained so that the rope
# settings sit at the top level (`rope_theta`, gemma3's `rope_local_base_freq`,
# `rope_scaling: null`) the way transformers 4.x wrote them and most hub checkpoints
# have them; "v5": kept as transformers 5 writes it (`rope_parameters`).
# Either way the checkpoint is reloaded from disk before the logits are computed.
ARCHS = {
    "llama": dict(
        hf_class="LlamaForCausalLM", config_class="LlamaConfig", seed=1001, rope_layout="legacy",
        config=dict(tie_word_embeddings=True, rope_theta=10000.0),
    ),
    "mistral": dict(
        hf_class="MistralForCausalLM", config_class="MistralConfig", seed=1002, rope_layout="legacy",
        config=dict(tie_word_embeddings=False, sliding_window=None, rope_theta=10000.0),
    ),
    "qwen2": dict(
        hf_class="Qwen2ForCausalLM", config_class="Qwen2Config", seed=1003, rope_layout="legacy",
        config=dict(tie_word_embeddings=False, use_sliding_window=False, rope_theta=10000.0),
        max_shard_size="250KB",
    ),
    "qwen3": dict(
        hf_class="Qwen3ForCausalLM", config_class="Qwen3Config", seed=1004, rope_layout="v5",
        config=dict(tie_word_embeddings=False, use_sliding_window=False, attention_bias=False,
                    rope_theta=10000.0),
    ),
    "gemma2": dict(
        hf_class="Gemma2ForCausalLM", config_class="Gemma2Config", seed=1005, rope_layout="legacy",
        config=dict(
            tie_word_embeddings=True, sliding_window=8,
            layer_types=["sliding_attention", "full_attention"],
            query_pre_attn_scalar=24, attn_logit_softcapping=5.0, final_logit_softcapping=4.0,
            hidden_activation="gelu_pytorch_tanh", rope_theta=10000.0,
        ),
        gemma_norm=True,
    ),
    "gemma3": dict(
        hf_class="Gemma3ForCausalLM", config_class="Gemma3TextConfig", seed=1006, rope_layout="legacy",
        config=dict(
            tie_word_embeddings=True, sliding_window=8,
            layer_types=["sliding_attention", "full_attention"],
            query_pre_attn_scalar=32, attn_logit_softcapping=None, final_logit_softcapping=None,
            hidden_activation="gelu_pytorch_tanh", rope_theta=1000000.0, rope_local_base_freq=10000.0,
        ),
        gemma_norm=True,
    ),
    "phi3": dict(
        hf_class="Phi3ForCausalLM", config_class="Phi3Config", seed=1007, rope_layout="v5",
        config=dict(tie_word_embeddings=False, sliding_window=None, original_max_position_embeddings=256,
                    rope_theta=10000.0),
    ),
}

WEIGHT_STD = 0.15  # matrices and embeddings
BIAS_STD = 0.1
NORM_STD = 0.2  # norm weights: 1 + N(0, NORM_STD), gemma (1 + w) norms: N(0, NORM_STD)


def make_config(arch: str):
    import transformers

    spec = ARCHS[arch]
    kw = dict(COMMON)
    kw.update(spec["config"])
    theta = kw.pop("rope_theta")
    local = kw.pop("rope_local_base_freq", None)
    if local is not None:
        kw["rope_parameters"] = {
            "full_attention": {"rope_type": "default", "rope_theta": theta},
            "sliding_attention": {"rope_type": "default", "rope_theta": local},
        }
    else:
        kw["rope_parameters"] = {"rope_type": "default", "rope_theta": theta}
    cls = getattr(transformers, spec["config_class"])
    if "head_dim" not in inspect.signature(cls.__init__).parameters:
        # Qwen2Config / Phi3Config derive it (hidden_size / num_attention_heads); their
        # real checkpoints have no head_dim key.
        assert kw["head_dim"] == kw["hidden_size"] // kw["num_attention_heads"]
        del kw["head_dim"]
    cfg = cls(**kw)
    cfg.architectures = [spec["hf_class"]]
    if hasattr(cfg, "_sliding_window_pattern"):
        # Gemma3TextConfig keeps its default pattern (6) even when layer_types is given;
        # make it agree with layer_types (sliding, full) so that no reader is misled.
        # transformers uses layer_types; the pattern only fills layer_types when absent.
        cfg._sliding_window_pattern = 2
    return cfg


def init_weights(model, seed: int, gemma_norm: bool) -> None:
    import torch

    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        # named_parameters() lists a tied lm_head only once (as the embedding).
        for name, p in sorted(model.named_parameters(), key=lambda kv: kv[0]):
            noise = torch.randn(p.shape, generator=g, dtype=torch.float32)
            if name.endswith("norm.weight"):
                v = noise * NORM_STD if gemma_norm else 1.0 + noise * NORM_STD
            elif name.endswith(".bias"):
                v = noise * BIAS_STD
            elif name.endswith(".weight"):
                v = noise * WEIGHT_STD
            else:
                sys.exit(f"unexpected parameter {name}")
            p.copy_(v)


def legacy_rope_layout(cfg_path: pathlib.Path) -> None:
    cfg = json.loads(cfg_path.read_text())
    rp = cfg.pop("rope_parameters")
    if "full_attention" in rp:
        assert rp["full_attention"]["rope_type"] == "default" and rp["sliding_attention"]["rope_type"] == "default"
        cfg["rope_theta"] = rp["full_attention"]["rope_theta"]
        cfg["rope_local_base_freq"] = rp["sliding_attention"]["rope_theta"]
    else:
        assert rp["rope_type"] == "default" and set(rp) == {"rope_type", "rope_theta"}, rp
        cfg["rope_theta"] = rp["rope_theta"]
    cfg["rope_scaling"] = None
    write_json(cfg_path, cfg)


def fmt(x: float) -> str:
    if not math.isfinite(x):
        sys.exit(f"non-finite logit {x}")
    return f"{x:.9g}"


def write_logits_golden(path: pathlib.Path, meta: dict, logits) -> None:
    # One key a line, and one position's logits a line.
    lines = [f"  {json.dumps(k)}: {json.dumps(v, ensure_ascii=False)}," for k, v in meta.items()]
    rows = ",\n".join("    [" + ", ".join(fmt(float(x)) for x in row) + "]" for row in logits)
    path.write_text("{\n" + "\n".join(lines) + '\n  "logits": [\n' + rows + "\n  ]\n}\n", encoding="utf-8")


def build_checkpoint(arch: str, tok, fixtures: pathlib.Path, goldens: pathlib.Path) -> dict:
    import torch
    import transformers
    from transformers import AutoModelForCausalLM, GenerationConfig

    spec = ARCHS[arch]
    d = fixtures / arch
    if d.exists():
        shutil.rmtree(d)
    d.mkdir(parents=True)

    cfg = make_config(arch)
    torch.manual_seed(spec["seed"])
    model = getattr(transformers, spec["hf_class"])(cfg).to(torch.float32)
    model.tie_weights()
    tied = model.get_output_embeddings().weight is model.get_input_embeddings().weight
    if tied != cfg.tie_word_embeddings:
        sys.exit(f"{arch}: lm_head tied={tied}, config says {cfg.tie_word_embeddings}")
    init_weights(model, spec["seed"], spec.get("gemma_norm", False))
    model.eval()
    model.generation_config = GenerationConfig(bos_token_id=BOS_ID, eos_token_id=EOS_ID, pad_token_id=PAD_ID)

    # transformers 5 always writes safetensors (safe_serialization is gone from save_pretrained).
    model.save_pretrained(str(d), max_shard_size=spec.get("max_shard_size", "50GB"))
    if spec["rope_layout"] == "legacy":
        legacy_rope_layout(d / "config.json")
    write_tokenizer_files(tok, d)

    ids = list(tok.encode(LOGITS_TEXT, add_special_tokens=False).ids)
    x = torch.tensor([ids], dtype=torch.long)
    try:
        model.set_attn_implementation("eager")
    except Exception as e:  # only used for the reload check below, which has a tolerance
        print(f"{arch}: set_attn_implementation failed: {e!r}", flush=True)
    with torch.no_grad():
        mem_logits = model(input_ids=x, use_cache=False).logits[0]

    loaded = AutoModelForCausalLM.from_pretrained(str(d), dtype=torch.float32, attn_implementation="eager")
    loaded.eval()
    if type(loaded).__name__ != spec["hf_class"]:
        sys.exit(f"{arch}: reloaded as {type(loaded).__name__}")
    with torch.no_grad():
        logits = loaded(input_ids=x, use_cache=False).logits[0]
    # The checkpoint on disk (rewritten config included) must be the model in memory.
    reload_diff = (logits - mem_logits).abs().max().item()
    if reload_diff > 1e-4:
        sys.exit(f"{arch}: reloaded checkpoint gives different logits (max abs diff {reload_diff})")

    # How far float32 eager is from the same model in float64 (for judging tolerances).
    try:
        ref = AutoModelForCausalLM.from_pretrained(str(d), dtype=torch.float64, attn_implementation="eager")
        ref.eval()
        with torch.no_grad():
            logits64 = ref(input_ids=x, use_cache=False).logits[0]
        err = logits.double() - logits64
        rel_l2 = (err.norm() / logits64.norm()).item()
        max_abs = err.abs().max().item()
        row_rel = (err.norm(dim=-1) / logits64.norm(dim=-1)).max().item()
        f64 = {"rel_l2": float(f"{rel_l2:.3g}"), "max_row_rel_l2": float(f"{row_rel:.3g}"),
               "max_abs": float(f"{max_abs:.3g}")}
    except Exception as e:  # informational only
        print(f"{arch}: float64 comparison failed: {e!r}", flush=True)
        f64, rel_l2, max_abs = None, float("nan"), float("nan")

    logits = logits.to(torch.float32)
    meta = {
        "arch": arch,
        "hf_class": spec["hf_class"],
        "config_class": spec["config_class"],
        "generator": GENERATOR,
        "transformers_version": transformers.__version__,
        "torch_version": torch.__version__,
        "dtype": "float32",
        "attn_implementation": "eager",
        "device": "cpu",
        "use_cache": False,
        "fixture": f"tests/fixtures/hf/{arch}",
        "config_rope_layout": spec["rope_layout"],
        "text": LOGITS_TEXT,
        "n_tokens": len(ids),
        "token_ids": ids,
        "f32_vs_f64": f64,
        "logits_std": float(f"{logits.std().item():.4g}"),
        "argmax": [int(i) for i in logits.argmax(dim=-1).tolist()],
    }
    write_logits_golden(goldens / f"{arch}.json", meta, logits.tolist())
    files = sorted(p.name for p in d.iterdir())
    size = sum(p.stat().st_size for p in d.iterdir())
    print(f"{arch:8s} tokens={len(ids)} files={files} bytes={size} logits_std={meta['logits_std']} "
          f"f32_vs_f64_rel_l2={rel_l2:.2e} max_abs={max_abs:.2e} reload_diff={reload_diff:.1e}", flush=True)
    return meta


# --------------------------------------------------------------------------------------
# Check (numpy only): an independent float64 forward pass over the written files
# --------------------------------------------------------------------------------------

# Deliberate conversion mistakes; each must move the logits far from the golden.
CHECK_BUGS = {
    "interleaved_rope": "rope on adjacent pairs instead of HF's halves (a missing q/k permutation)",
    "swap_gate_up": "gate and up projections swapped",
    "no_offset": "gemma norms used as w instead of (1 + w)",
    "head_dim_scale": "1/sqrt(head_dim) instead of 1/sqrt(query_pre_attn_scalar)",
    "no_window": "sliding-window layers attend to everything",
    "no_softcap": "attention and final logit softcapping left out",
    "swap_theta": "gemma3 local and global rope bases swapped",
}


def check_forward(arch: str, cfg: dict, t: dict, ids: list, bug: str | None = None):
    import numpy as np

    gem = arch.startswith("gemma")
    H, nh, nkv = cfg["hidden_size"], cfg["num_attention_heads"], cfg["num_key_value_heads"]
    hd = cfg.get("head_dim") or H // nh
    eps, T = cfg["rms_norm_eps"], len(ids)
    pos = np.arange(T)

    def norm(x, w):
        y = x / np.sqrt((x * x).mean(-1, keepdims=True) + eps)
        return y * ((1 + w) if gem and bug != "no_offset" else w)

    def act(z):
        if gem:  # gelu, tanh approximation
            return 0.5 * z * (1 + np.tanh(math.sqrt(2 / math.pi) * (z + 0.044715 * z**3)))
        return z / (1 + np.exp(-z))  # silu

    def theta_of(kind):
        rp = cfg.get("rope_parameters")
        if rp is not None:
            return rp[kind]["rope_theta"] if kind in rp else rp["rope_theta"]
        if kind == "sliding_attention" and "rope_local_base_freq" in cfg:
            return cfg["rope_local_base_freq"]
        return cfg["rope_theta"]

    x = t["model.embed_tokens.weight"][ids]
    if gem:
        x = x * math.sqrt(H)
    types = cfg.get("layer_types") or ["full_attention"] * cfg["num_hidden_layers"]
    for layer in range(cfg["num_hidden_layers"]):
        def w(n):
            return t[f"model.layers.{layer}.{n}"]

        h = norm(x, w("input_layernorm.weight"))
        if arch == "phi3":
            q, k, v = np.split(h @ w("self_attn.qkv_proj.weight").T, [nh * hd, (nh + nkv) * hd], axis=-1)
        else:
            q, k, v = (h @ w(f"self_attn.{n}_proj.weight").T for n in "qkv")
            if f"model.layers.{layer}.self_attn.q_proj.bias" in t:
                q, k, v = (z + w(f"self_attn.{n}_proj.bias") for z, n in zip((q, k, v), "qkv"))
        q, k, v = q.reshape(T, nh, hd), k.reshape(T, nkv, hd), v.reshape(T, nkv, hd)
        if f"model.layers.{layer}.self_attn.q_norm.weight" in t:
            q, k = norm(q, w("self_attn.q_norm.weight")), norm(k, w("self_attn.k_norm.weight"))
        kind = types[layer]
        if bug == "swap_theta":
            kind = "full_attention" if kind == "sliding_attention" else "sliding_attention"
        ang = pos[:, None] / theta_of(kind) ** (np.arange(0, hd, 2) / hd)[None]
        cos, sin = np.cos(ang)[:, None], np.sin(ang)[:, None]

        def rope(z):
            if bug == "interleaved_rope":
                a, b = z[..., 0::2], z[..., 1::2]
                out = np.empty_like(z)
                out[..., 0::2], out[..., 1::2] = a * cos - b * sin, a * sin + b * cos
                return out
            a, b = z[..., : hd // 2], z[..., hd // 2 :]
            return np.concatenate([a * cos - b * sin, b * cos + a * sin], -1)

        q, k = rope(q), rope(k)
        scale = cfg["query_pre_attn_scalar"] ** -0.5 if gem and bug != "head_dim_scale" else hd**-0.5
        k, v = np.repeat(k, nh // nkv, axis=1), np.repeat(v, nh // nkv, axis=1)
        s = np.einsum("qhd,khd->hqk", q, k) * scale
        if cfg.get("attn_logit_softcapping") and bug != "no_softcap":
            c = cfg["attn_logit_softcapping"]
            s = np.tanh(s / c) * c
        mask = pos[None, :] <= pos[:, None]
        if types[layer] == "sliding_attention" and bug != "no_window":
            mask &= pos[None, :] > pos[:, None] - cfg["sliding_window"]  # the last W tokens, itself included
        s = np.where(mask[None], s, -np.inf)
        s = np.exp(s - s.max(-1, keepdims=True))
        s /= s.sum(-1, keepdims=True)
        o = np.einsum("hqk,khd->qhd", s, v).reshape(T, nh * hd) @ w("self_attn.o_proj.weight").T
        if gem:
            o = norm(o, w("post_attention_layernorm.weight"))
        x = x + o
        h = norm(x, w("pre_feedforward_layernorm.weight" if gem else "post_attention_layernorm.weight"))
        if arch == "phi3":
            gate, up = np.split(h @ w("mlp.gate_up_proj.weight").T, 2, axis=-1)
        else:
            gate, up = h @ w("mlp.gate_proj.weight").T, h @ w("mlp.up_proj.weight").T
        if bug == "swap_gate_up":
            gate, up = up, gate
        m = (act(gate) * up) @ w("mlp.down_proj.weight").T
        if gem:
            m = norm(m, w("post_feedforward_layernorm.weight"))
        x = x + m
    x = norm(x, t["model.norm.weight"])
    logits = x @ t.get("lm_head.weight", t["model.embed_tokens.weight"]).T
    if cfg.get("final_logit_softcapping") and bug != "no_softcap":
        c = cfg["final_logit_softcapping"]
        logits = np.tanh(logits / c) * c
    return logits


def check(archs: list, fixtures: pathlib.Path, goldens: pathlib.Path) -> None:
    import numpy as np
    from safetensors import safe_open

    ok = True
    for arch in archs:
        d = fixtures / arch
        cfg = json.loads((d / "config.json").read_text())
        t = {}
        for f in sorted(d.glob("*.safetensors")):
            with safe_open(str(f), "np") as h:
                for k in h.keys():
                    t[k] = h.get_tensor(k).astype(np.float64)
        gold = json.loads((goldens / f"{arch}.json").read_text())
        want = np.array(gold["logits"], dtype=np.float64)

        def rel(got):
            return float(np.linalg.norm(got - want) / np.linalg.norm(want))

        r = rel(check_forward(arch, cfg, t, gold["token_ids"]))
        ok &= r < 1e-5
        cols = [f"reference rel_l2={r:.1e}"]
        bugs = ["interleaved_rope", "swap_gate_up"]
        if arch.startswith("gemma"):
            bugs += ["no_offset", "head_dim_scale", "no_window"]
        bugs += ["no_softcap"] if arch == "gemma2" else ["swap_theta"] if arch == "gemma3" else []
        for b in bugs:
            rb = rel(check_forward(arch, cfg, t, gold["token_ids"], b))
            ok &= rb > 1e-2
            cols.append(f"{b}={rb:.2g}")
        print(f"check {arch:8s} " + " ".join(cols), flush=True)
    if not ok:
        sys.exit("check failed: the reference must agree within 1e-5 and every mistake must exceed 1e-2")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out-fixtures", type=pathlib.Path, default=DEFAULT_FIXTURES)
    ap.add_argument("--out-goldens", type=pathlib.Path, default=DEFAULT_GOLDENS)
    ap.add_argument("--parts", default="tokenizer,models,check",
                    help="comma-separated: tokenizer (tokenizer golden; no torch), models (checkpoints and "
                         "logit goldens), check (numpy/safetensors only: an independent float64 forward "
                         "pass must match the goldens, and deliberate conversion mistakes must not)")
    ap.add_argument("--archs", default=",".join(ARCHS))
    args = ap.parse_args()
    parts = set(args.parts.split(","))
    archs = [a for a in args.archs.split(",") if a]
    for a in archs:
        if a not in ARCHS:
            sys.exit(f"unknown arch {a}; known: {', '.join(ARCHS)}")

    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    args.out_goldens.mkdir(parents=True, exist_ok=True)
    args.out_fixtures.mkdir(parents=True, exist_ok=True)

    tok = build_tokenizer()
    if "tokenizer" in parts:
        tmp = args.out_goldens / ".tokenizer-tmp"
        write_tokenizer_files(tok, tmp)
        try:
            golden = tokenizer_golden(tok, tmp)
        finally:
            shutil.rmtree(tmp)
        write_json(args.out_goldens / "tokenizer.json", golden)
        n = len(tok.encode(LOGITS_TEXT, add_special_tokens=False).ids)
        print(f"tokenizer: {len(golden['cases'])} cases, {len(golden['chat'])} chats; logits text = {n} tokens",
              flush=True)
    if "models" in parts:
        import torch

        import safetensors
        import tokenizers
        import transformers

        torch.set_num_threads(1)  # one thread: the same reduction order on any machine
        print(f"python {sys.version.split()[0]} torch {torch.__version__} transformers {transformers.__version__} "
              f"tokenizers {tokenizers.__version__} safetensors {safetensors.__version__}", flush=True)
        for arch in archs:
            build_checkpoint(arch, tok, args.out_fixtures, args.out_goldens)
    if "check" in parts:
        check(archs, args.out_fixtures, args.out_goldens)


if __name__ == "__main__":
    main()
