#!/usr/bin/env python3
"""A random-weight SmolVLM-256M-Instruct-sized Idefics3 checkpoint and a test photograph,
for benchmarking alc against llama.cpp on vision-language models (scripts/bench-vlm.sh).

Writes (default under $HOME/.cache/alc/vlm-bench, not the repository):

  smolvlm-256m-random/   Idefics3ForConditionalGeneration at SmolVLM-256M-Instruct's real
                         shape, random weights (seed 256, N(0, 0.02) matrices and
                         embeddings, norms 1, biases 0), bfloat16 safetensors:
                         config.json, generation_config.json, model.safetensors,
                         tokenizer.json, tokenizer_config.json, special_tokens_map.json,
                         preprocessor_config.json, processor_config.json, chat_template.jinja
  astronaut-2048.png     skimage.data.astronaut() (512 x 512) upscaled to 2048 x 2048 with
                         LANCZOS: with longest_edge 2048 / tile 512 it is a 4 x 4 grid plus
                         the global image = 17 tiles.

Shape (HuggingFaceTB/SmolVLM-256M-Instruct): vision SigLIP-B/16 at 512 px (hidden 768,
12 layers, 12 heads, MLP 3072, gelu_pytorch_tanh, eps 1e-6), pixel shuffle scale_factor 4
(1024 patches -> 64 image tokens per tile), text SmolLM2-135M (hidden 576, 30 layers,
9 heads / 3 kv heads, head_dim 64, MLP 1536, rope_theta 1e5, rms eps 1e-5, vocab 49280,
untied lm_head), image_token_id 49190.

Tokenizer: SmolLM2-135M-Instruct's byte-level BPE (49152 ids), exported from the repo's
models/smollm2-135m-instruct-q4_1.gguf with `alc export --hf` (pass --text-tokenizer DIR
to use another tokenizer.json directory), plus SmolVLM's added tokens at their real ids:
<global-img> 49152, <row_1_col_1>..<row_6_col_6> 49153..49188,
<fake_token_around_image> 49189, <image> 49190, 88 reserved fillers 49191..49278,
<end_of_utterance> 49279.

Processor: SmolVLM-256M's values (Idefics3 image processor, longest_edge 2048,
max_image_size 512, resample 1 = LANCZOS, rescale 1/255, mean/std 0.5, image splitting
on, image_seq_len 64) and SmolVLM's chat template
(tests/fixtures/hf/idefics3/chat_template.jinja).

Usage:
    python3 scripts/make_vlm_bench_model.py [--out DIR] [--force] [--alc target/release/alc]

Needs torch, transformers 5.x, tokenizers, safetensors, pillow, scikit-image. Takes
about a minute and ~3 GB of RAM on CPU. Idempotent: skips what is already there unless
--force.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import shutil
import subprocess
import sys
import tempfile

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]
DEFAULT_OUT = pathlib.Path(os.environ.get("HOME", "/root")) / ".cache" / "alc" / "vlm-bench"
CHAT_TEMPLATE_FILE = REPO_ROOT / "tests" / "fixtures" / "hf" / "idefics3" / "chat_template.jinja"
SMOLLM2_GGUF = REPO_ROOT / "models" / "smollm2-135m-instruct-q4_1.gguf"

SEED = 256
STD = 0.02

BASE_VOCAB = 49152
VOCAB = 49280
IMAGE_TOKENS = (
    ["<global-img>"]
    + [f"<row_{r}_col_{c}>" for r in range(1, 7) for c in range(1, 7)]
    + ["<fake_token_around_image>", "<image>"]
)
N_FILLERS = VOCAB - 1 - BASE_VOCAB - len(IMAGE_TOKENS)  # 88
ADDED_TOKENS = IMAGE_TOKENS + [f"<|reserved_special_token_{i}|>" for i in range(N_FILLERS)] + [
    "<end_of_utterance>"
]
IMAGE_TOKEN_ID = 49190
EOU_ID = 49279

CONFIG = {
    "architectures": ["Idefics3ForConditionalGeneration"],
    "image_token_id": IMAGE_TOKEN_ID,
    "model_type": "idefics3",
    "pad_token_id": 128002,
    "scale_factor": 4,
    "tie_word_embeddings": False,
    "text_config": {
        # SmolVLM's config names the text model VLlama3ForCausalLM; llama.cpp's converter
        # picks the text architecture from here.
        "architectures": ["VLlama3ForCausalLM"],
        "model_type": "llama",
        "vocab_size": VOCAB,
        "hidden_size": 576,
        "intermediate_size": 1536,
        "num_hidden_layers": 30,
        "num_attention_heads": 9,
        "num_key_value_heads": 3,
        "head_dim": 64,
        "hidden_act": "silu",
        "max_position_embeddings": 8192,
        "rms_norm_eps": 1e-5,
        "rope_theta": 100000.0,
        "tie_word_embeddings": False,
        "bos_token_id": 1,
        "eos_token_id": EOU_ID,
        "pad_token_id": 2,
    },
    "vision_config": {
        "model_type": "idefics3_vision",
        "hidden_size": 768,
        "intermediate_size": 3072,
        "num_hidden_layers": 12,
        "num_attention_heads": 12,
        "image_size": 512,
        "patch_size": 16,
        "num_channels": 3,
        "hidden_act": "gelu_pytorch_tanh",
        "layer_norm_eps": 1e-6,
    },
}

PREPROCESSOR = {
    "do_convert_rgb": True,
    "do_image_splitting": True,
    "do_normalize": True,
    "do_pad": True,
    "do_rescale": True,
    "do_resize": True,
    "image_mean": [0.5, 0.5, 0.5],
    "image_processor_type": "Idefics3ImageProcessor",
    "image_std": [0.5, 0.5, 0.5],
    "max_image_size": {"longest_edge": 512},
    "processor_class": "Idefics3Processor",
    "resample": 1,
    "rescale_factor": 1 / 255,
    "size": {"longest_edge": 2048},
}
PROCESSOR = {"image_seq_len": 64, "processor_class": "Idefics3Processor"}


def log(msg: str) -> None:
    print(f"[make_vlm_bench_model] {msg}", file=sys.stderr, flush=True)


def write_json(path: pathlib.Path, obj) -> None:
    path.write_text(json.dumps(obj, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def text_tokenizer_dir(args, tmp: pathlib.Path) -> pathlib.Path:
    if args.text_tokenizer:
        return pathlib.Path(args.text_tokenizer)
    if not SMOLLM2_GGUF.is_file():
        sys.exit(f"{SMOLLM2_GGUF} missing: run scripts/fetch-models.sh --only smollm2, or pass --text-tokenizer")
    alc = pathlib.Path(args.alc)
    if not alc.is_file():
        sys.exit(f"{alc} missing: cargo build --release -p alc-cli")
    out = tmp / "smollm2-hf"
    log(f"exporting SmolLM2's tokenizer: {alc} export --hf {SMOLLM2_GGUF} {out}")
    subprocess.run([str(alc), "export", "--hf", str(SMOLLM2_GGUF), str(out)], check=True,
                   stdout=subprocess.DEVNULL)
    return out


def build_tokenizer(src: pathlib.Path, out: pathlib.Path) -> None:
    from tokenizers import AddedToken, Tokenizer

    tok = Tokenizer.from_file(str(src / "tokenizer.json"))
    base = tok.get_vocab_size(with_added_tokens=True)
    if base != BASE_VOCAB:
        sys.exit(f"text tokenizer has {base} ids, expected SmolLM2's {BASE_VOCAB}")
    tok.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in ADDED_TOKENS])
    for i, t in enumerate(ADDED_TOKENS):
        assert tok.token_to_id(t) == BASE_VOCAB + i, t
    assert tok.token_to_id("<image>") == IMAGE_TOKEN_ID
    assert tok.token_to_id("<end_of_utterance>") == EOU_ID
    assert tok.get_vocab_size(with_added_tokens=True) == VOCAB
    tok.save(str(out / "tokenizer.json"))

    chat_template = CHAT_TEMPLATE_FILE.read_text(encoding="utf-8")
    decoder = {}
    for t in json.loads((out / "tokenizer.json").read_text(encoding="utf-8"))["added_tokens"]:
        decoder[str(t["id"])] = {k: t[k] for k in ("content", "lstrip", "normalized", "rstrip", "single_word", "special")}
    write_json(out / "tokenizer_config.json", {
        "add_bos_token": False,
        "add_eos_token": False,
        "added_tokens_decoder": decoder,
        "additional_special_tokens": ["<fake_token_around_image>", "<image>", "<end_of_utterance>"],
        "bos_token": "<|im_start|>",
        "chat_template": chat_template,
        "clean_up_tokenization_spaces": False,
        "eos_token": "<end_of_utterance>",
        "legacy": False,
        "model_max_length": 8192,
        "pad_token": "<|im_end|>",
        "processor_class": "Idefics3Processor",
        "tokenizer_class": "GPT2Tokenizer",
        "unk_token": "<|endoftext|>",
        "vocab_size": VOCAB,
    })
    write_json(out / "special_tokens_map.json", {
        "additional_special_tokens": ["<fake_token_around_image>", "<image>", "<end_of_utterance>"],
        "bos_token": "<|im_start|>",
        "eos_token": "<end_of_utterance>",
        "pad_token": "<|im_end|>",
        "unk_token": "<|endoftext|>",
    })
    (out / "chat_template.jinja").write_text(chat_template, encoding="utf-8")
    write_json(out / "preprocessor_config.json", PREPROCESSOR)
    write_json(out / "processor_config.json", PROCESSOR)


def build_model(out: pathlib.Path) -> None:
    import torch
    from transformers import GenerationConfig, Idefics3Config, Idefics3ForConditionalGeneration

    cfg_dict = json.loads(json.dumps(CONFIG))
    cfg_dict.pop("architectures")
    cfg_dict.pop("model_type")
    cfg = Idefics3Config(**cfg_dict)
    torch.manual_seed(SEED)
    log("instantiating Idefics3ForConditionalGeneration (float32)")
    model = Idefics3ForConditionalGeneration(cfg)
    g = torch.Generator().manual_seed(SEED)
    n = 0
    with torch.no_grad():
        for name, p in sorted(model.named_parameters(), key=lambda kv: kv[0]):
            if "norm" in name and name.endswith(".weight"):
                p.fill_(1.0)
            elif name.endswith(".bias"):
                p.zero_()
            elif name.endswith(".weight"):
                p.copy_(torch.randn(p.shape, generator=g, dtype=torch.float32) * STD)
            else:
                sys.exit(f"unexpected parameter {name}")
            n += p.numel()
    log(f"{n / 1e6:.1f} M parameters")
    model = model.to(torch.bfloat16).eval()
    model.generation_config = GenerationConfig(bos_token_id=1, eos_token_id=EOU_ID, pad_token_id=2)
    model.save_pretrained(str(out))
    # Keep the real config's text architecture name (llama.cpp's converter routes on it).
    cfg_path = out / "config.json"
    saved = json.loads(cfg_path.read_text(encoding="utf-8"))
    saved.setdefault("text_config", {})["architectures"] = CONFIG["text_config"]["architectures"]
    write_json(cfg_path, saved)


def check(out: pathlib.Path) -> None:
    from transformers import AutoProcessor

    proc = AutoProcessor.from_pretrained(str(out))
    msgs = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "Describe this image."}]}]
    prompt = proc.apply_chat_template(msgs, add_generation_prompt=True)
    assert proc.tokenizer.convert_tokens_to_ids("<image>") == IMAGE_TOKEN_ID
    log(f"processor ok: {type(proc.image_processor).__name__}, prompt {prompt!r}")


def build_image(path: pathlib.Path) -> None:
    from PIL import Image
    from skimage import data

    img = Image.fromarray(data.astronaut()).convert("RGB")
    img = img.resize((2048, 2048), Image.LANCZOS)
    img.save(path, format="PNG", optimize=False)
    log(f"wrote {path} ({img.size[0]}x{img.size[1]})")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default=str(DEFAULT_OUT))
    ap.add_argument("--alc", default=str(REPO_ROOT / "target" / "release" / "alc"))
    ap.add_argument("--text-tokenizer", help="directory with SmolLM2's tokenizer.json (default: export it from the GGUF)")
    ap.add_argument("--force", action="store_true")
    args = ap.parse_args()

    root = pathlib.Path(args.out)
    root.mkdir(parents=True, exist_ok=True)
    image = root / "astronaut-2048.png"
    if args.force or not image.is_file():
        build_image(image)

    model_dir = root / "smolvlm-256m-random"
    if (model_dir / "model.safetensors").is_file() and (model_dir / "tokenizer.json").is_file() and not args.force:
        log(f"{model_dir} present")
        return 0
    stage = root / "smolvlm-256m-random.partial"
    shutil.rmtree(stage, ignore_errors=True)
    stage.mkdir(parents=True)
    with tempfile.TemporaryDirectory() as tmp:
        build_tokenizer(text_tokenizer_dir(args, pathlib.Path(tmp)), stage)
    build_model(stage)
    check(stage)
    shutil.rmtree(model_dir, ignore_errors=True)
    stage.rename(model_dir)
    size = sum(p.stat().st_size for p in model_dir.iterdir())
    log(f"wrote {model_dir} ({size / 2**20:.1f} MiB)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
