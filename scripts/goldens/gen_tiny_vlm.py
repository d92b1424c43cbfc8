#!/usr/bin/env python3
"""A tiny random-weight Idefics3 (SmolVLM-shaped) checkpoint and its transformers goldens.

Writes, from scratch and deterministically:

  tests/fixtures/hf/idefics3/   Idefics3ForConditionalGeneration, float32, < 1 MB:
                                config.json, generation_config.json, model.safetensors,
                                tokenizer.json, tokenizer_config.json,
                                preprocessor_config.json, processor_config.json,
                                chat_template.jinja
  tests/goldens/vlm-tiny/       per case (photo, two_images): the input PNGs, and
                                float32 little-endian .bin files of
                                  pixel_values      [tiles, 3, 64, 64]  (the processor's)
                                  vision_hidden     [tiles, 16, 32]     (encoder, after post_layernorm)
                                  image_features    [tiles, 4, 64]      (connector output)
                                  inputs_embeds     [seq, 64]           (merged text + image rows)
                                  logits            [seq, vocab]        (every position)
                                manifest.json: shapes, input_ids, the chat-templated
                                prompt and its expansion, grids, versions.

Shape (SmolVLM's scaled down): vision SigLIP 64 px tiles of 16 px patches (4 x 4
grid), width 32, 2 layers, 4 heads, MLP 64, gelu_pytorch_tanh, eps 1e-6; pixel shuffle
scale_factor 2 (16 patches -> 4 image tokens per tile); text llama width 64, 2 layers,
4 heads / 2 kv heads, MLP 128, rope_theta 1e5, rms eps 1e-5, untied lm_head.
Tokenizer: tests/fixtures/hf/llama's tiny BPE plus SmolVLM's image special tokens
(<global-img>, <row_1_col_1> .. <row_6_col_6>, <fake_token_around_image>, <image>,
<end_of_utterance>, in SmolVLM's order). Processor: Idefics3ImageProcessorPil with
SmolVLM's settings scaled (longest_edge 256 = 4 x 64, max_image_size 64, LANCZOS,
rescale 1/255, mean/std 0.5, image splitting on), image_seq_len 4, SmolVLM's chat
template.

Everything runs in float32 on the CPU with eager attention and no cache.

How to run (from the repository root; CPU only, a few seconds):

    python3 scripts/goldens/gen_tiny_vlm.py
    python3 scripts/goldens/gen_tiny_vlm.py --out-fixture DIR --out-goldens DIR

Needs torch, transformers 5.x, tokenizers, safetensors, numpy, pillow and
scikit-image (for skimage.data's photographs). The committed files were produced with
the versions recorded in tests/goldens/vlm-tiny/manifest.json. The Rust side is
crates/alc-convert/tests/vlm.rs; see scripts/goldens/README.md ("Tiny vision-language
checkpoint").
"""

from __future__ import annotations

import argparse
import json
import pathlib
import shutil
import sys

REPO_ROOT = pathlib.Path(__file__).resolve().parents[2]
DEFAULT_FIXTURE = REPO_ROOT / "tests" / "fixtures" / "hf" / "idefics3"
DEFAULT_GOLDENS = REPO_ROOT / "tests" / "goldens" / "vlm-tiny"
TEXT_TOKENIZER = REPO_ROOT / "tests" / "fixtures" / "hf" / "llama"
GENERATOR = "scripts/goldens/gen_tiny_vlm.py"

SEED = 7
WEIGHT_STD = 0.15  # matrices, embeddings (as gen_tiny_hf.py)
BIAS_STD = 0.1
NORM_STD = 0.2  # norm weights: 1 + N(0, NORM_STD)

# SmolVLM's chat template (HuggingFaceTB/SmolVLM-*-Instruct, transformers' Idefics3 /
# SmolVLM processor default).
CHAT_TEMPLATE = (
    "<|im_start|>{% for message in messages %}{{message['role'] | capitalize}}"
    "{% if message['content'][0]['type'] == 'image' %}{{':'}}{% else %}{{': '}}{% endif %}"
    "{% for line in message['content'] %}{% if line['type'] == 'text' %}{{line['text']}}"
    "{% elif line['type'] == 'image' %}{{ '<image>' }}{% endif %}{% endfor %}"
    "<end_of_utterance>\n{% endfor %}{% if add_generation_prompt %}{{ 'Assistant:' }}{% endif %}"
)

IMAGE_TOKENS = (
    ["<global-img>"]
    + [f"<row_{r}_col_{c}>" for r in range(1, 7) for c in range(1, 7)]
    + ["<fake_token_around_image>", "<image>", "<end_of_utterance>"]
)

TILE = 64
PATCH = 16
SCALE = 2
IMAGE_SEQ_LEN = (TILE // PATCH) ** 2 // SCALE**2  # 4

PREPROCESSOR = {
    "do_convert_rgb": True,
    "do_image_splitting": True,
    "do_normalize": True,
    "do_pad": True,
    "do_rescale": True,
    "do_resize": True,
    "image_mean": [0.5, 0.5, 0.5],
    "image_processor_type": "Idefics3ImageProcessorPil",
    "image_std": [0.5, 0.5, 0.5],
    "max_image_size": {"longest_edge": TILE},
    "processor_class": "Idefics3Processor",
    "resample": 1,
    "rescale_factor": 1 / 255,
    "size": {"longest_edge": 4 * TILE},
}


def write_json(path: pathlib.Path, obj) -> None:
    path.write_text(json.dumps(obj, indent=2, ensure_ascii=False, sort_keys=True) + "\n", encoding="utf-8")


def build_tokenizer(out: pathlib.Path):
    """The llama fixture's tokenizer plus SmolVLM's image tokens, saved to `out`."""
    from tokenizers import AddedToken, Tokenizer

    tok = Tokenizer.from_file(str(TEXT_TOKENIZER / "tokenizer.json"))
    base = tok.get_vocab_size(with_added_tokens=True)
    tok.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in IMAGE_TOKENS])
    for i, t in enumerate(IMAGE_TOKENS):
        assert tok.token_to_id(t) == base + i, t
    tok.save(str(out / "tokenizer.json"))
    cfg = json.loads((TEXT_TOKENIZER / "tokenizer_config.json").read_text())
    cfg.pop("chat_template", None)
    for i, t in enumerate(IMAGE_TOKENS):
        cfg["added_tokens_decoder"][str(base + i)] = {
            "content": t, "lstrip": False, "normalized": False, "rstrip": False,
            "single_word": False, "special": True,
        }
    cfg["additional_special_tokens"] = ["<|im_start|>", "<|im_end|>", "<fake_token_around_image>",
                                        "<image>", "<end_of_utterance>"]
    cfg["eos_token"] = "<end_of_utterance>"
    cfg["model_max_length"] = 1024
    cfg["tokenizer_class"] = "PreTrainedTokenizerFast"
    write_json(out / "tokenizer_config.json", cfg)
    return tok


def init_weights(model, seed: int) -> None:
    import torch

    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in sorted(model.named_parameters(), key=lambda kv: kv[0]):
            noise = torch.randn(p.shape, generator=g, dtype=torch.float32)
            if name.endswith("norm.weight") or "layer_norm" in name or "layernorm" in name:
                v = (1.0 + noise * NORM_STD) if name.endswith(".weight") else noise * BIAS_STD
            elif name.endswith(".bias"):
                v = noise * BIAS_STD
            elif name.endswith(".weight"):
                v = noise * WEIGHT_STD
            else:
                sys.exit(f"unexpected parameter {name}")
            p.copy_(v)


def make_images():
    """(name, PIL image) of the cases: a non-square photo; a gray and an RGB image."""
    import numpy as np
    from PIL import Image
    from skimage import data

    chelsea = Image.fromarray(data.chelsea()).resize((200, 150), Image.Resampling.LANCZOS)
    camera = Image.fromarray(data.camera()).resize((90, 120), Image.Resampling.LANCZOS)  # mode L
    coffee = Image.fromarray(data.coffee()).resize((160, 60), Image.Resampling.LANCZOS)
    assert camera.mode == "L" and chelsea.mode == "RGB" and coffee.mode == "RGB"
    del np
    return {"photo": [("chelsea.png", chelsea)], "two_images": [("camera_gray.png", camera), ("coffee.png", coffee)]}


def save_bin(path: pathlib.Path, t) -> list[int]:
    import numpy as np

    a = t.detach().to("cpu").contiguous().numpy().astype("<f4")
    assert np.isfinite(a).all(), path
    path.write_bytes(a.tobytes())
    return list(a.shape)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out-fixture", type=pathlib.Path, default=DEFAULT_FIXTURE)
    ap.add_argument("--out-goldens", type=pathlib.Path, default=DEFAULT_GOLDENS)
    args = ap.parse_args()

    import numpy
    import PIL
    import safetensors
    import skimage
    import tokenizers
    import torch
    import transformers
    from PIL import Image
    from transformers import (GenerationConfig, Idefics3Config, Idefics3ForConditionalGeneration,
                              Idefics3ImageProcessorPil, Idefics3Processor, PreTrainedTokenizerFast)

    torch.set_num_threads(2)
    torch.use_deterministic_algorithms(True)
    fx, gd = args.out_fixture, args.out_goldens
    for d in (fx, gd):
        if d.exists():
            shutil.rmtree(d)
        d.mkdir(parents=True)

    # ---- tokenizer and processor ----
    tok = build_tokenizer(fx)
    vocab = tok.get_vocab_size(with_added_tokens=True)
    image_id = tok.token_to_id("<image>")
    eou_id = tok.token_to_id("<end_of_utterance>")
    write_json(fx / "preprocessor_config.json", PREPROCESSOR)
    write_json(fx / "processor_config.json", {"image_seq_len": IMAGE_SEQ_LEN, "processor_class": "Idefics3Processor"})
    (fx / "chat_template.jinja").write_text(CHAT_TEMPLATE, encoding="utf-8")
    hf_tok = PreTrainedTokenizerFast.from_pretrained(str(fx))
    ip_kwargs = {k: v for k, v in PREPROCESSOR.items() if k not in ("image_processor_type", "processor_class")}
    image_processor = Idefics3ImageProcessorPil(**ip_kwargs)
    processor = Idefics3Processor(image_processor=image_processor, tokenizer=hf_tok,
                                  image_seq_len=IMAGE_SEQ_LEN, chat_template=CHAT_TEMPLATE)
    assert processor.image_token_id == image_id
    assert len(hf_tok) == vocab, (len(hf_tok), vocab)

    # ---- model ----
    cfg = Idefics3Config(
        vision_config={
            "model_type": "idefics3_vision", "image_size": TILE, "patch_size": PATCH, "hidden_size": 32,
            "num_hidden_layers": 2, "num_attention_heads": 4, "intermediate_size": 64,
            "hidden_act": "gelu_pytorch_tanh", "layer_norm_eps": 1e-6, "num_channels": 3,
        },
        text_config={
            "model_type": "llama", "vocab_size": vocab, "hidden_size": 64, "num_hidden_layers": 2,
            "num_attention_heads": 4, "num_key_value_heads": 2, "intermediate_size": 128,
            "hidden_act": "silu", "max_position_embeddings": 512, "rms_norm_eps": 1e-5,
            "rope_theta": 100000.0, "tie_word_embeddings": False, "bos_token_id": 1,
            "eos_token_id": eou_id, "pad_token_id": 0,
        },
        scale_factor=SCALE,
        image_token_id=image_id,
        tie_word_embeddings=False,
        pad_token_id=0,
    )
    torch.manual_seed(SEED)
    model = Idefics3ForConditionalGeneration(cfg).to(torch.float32)
    init_weights(model, SEED)
    model.eval()
    model.generation_config = GenerationConfig(bos_token_id=1, eos_token_id=eou_id, pad_token_id=0)
    model.save_pretrained(str(fx))
    size = sum(p.stat().st_size for p in fx.iterdir())
    if size > 1 << 20:
        sys.exit(f"fixture is {size} bytes, over 1 MiB")

    model = Idefics3ForConditionalGeneration.from_pretrained(str(fx), dtype=torch.float32,
                                                             attn_implementation="eager")
    model.eval()
    if model.config.text_config.vocab_size != vocab or model.config.image_token_id != image_id:
        sys.exit("reloaded config differs")

    # ---- goldens ----
    versions = {
        "python": sys.version.split()[0], "torch": torch.__version__, "transformers": transformers.__version__,
        "tokenizers": tokenizers.__version__, "safetensors": safetensors.__version__, "numpy": numpy.__version__,
        "pillow": PIL.__version__, "scikit-image": skimage.__version__,
    }
    manifest = {
        "generator": GENERATOR, "versions": versions, "fixture": "tests/fixtures/hf/idefics3",
        "dtype": "float32", "attn_implementation": "eager", "device": "cpu", "use_cache": False,
        "layout": "every .bin is float32 little-endian, C order, shape as listed",
        "vocab_size": vocab, "image_token_id": image_id, "image_seq_len": IMAGE_SEQ_LEN,
        "tile": TILE, "patch": PATCH, "scale_factor": SCALE, "cases": {},
    }
    captured = {}

    def grab(_mod, _args, kwargs):
        captured["inputs_embeds"] = kwargs["inputs_embeds"].detach().clone()

    hook = model.model.text_model.register_forward_pre_hook(grab, with_kwargs=True)
    prompts = {"photo": "What is in this picture?", "two_images": "Compare these two pictures."}
    for case, images in make_images().items():
        d = gd / case
        d.mkdir()
        for name, im in images:
            im.save(d / name, format="PNG", optimize=False, compress_level=9)
        # The processor sees the images as the Rust side decodes them (re-read from PNG).
        pil = [Image.open(d / name) for name, _ in images]
        content = [{"type": "image"} for _ in pil] + [{"type": "text", "text": prompts[case]}]
        if case == "two_images":
            content = [{"type": "image"}, {"type": "text", "text": "First"}, {"type": "image"},
                       {"type": "text", "text": prompts[case]}]
        messages = [{"role": "user", "content": content}]
        prompt = processor.apply_chat_template(messages, add_generation_prompt=True)
        enc = processor(text=[prompt], images=[pil], return_tensors="pt")
        ids = enc["input_ids"]
        pv = enc["pixel_values"]
        pam = enc["pixel_attention_mask"]
        assert pv.shape[0] == 1 and bool(pam.all()), "every tile must be full size"
        n_img_tok = int((ids == image_id).sum())
        with torch.no_grad():
            feats = model.model.get_image_features(pixel_values=pv, pixel_attention_mask=pam)
            hidden = feats.last_hidden_state  # [tiles, 16, 32], after post_layernorm
            proj = model.model.connector(hidden)  # [tiles, 4, 64]
            captured.clear()
            out = model(input_ids=ids, attention_mask=enc["attention_mask"], pixel_values=pv,
                        pixel_attention_mask=pam, use_cache=False)
        assert n_img_tok == proj.shape[0] * proj.shape[1], (n_img_tok, proj.shape)
        emb = captured["inputs_embeds"][0]
        # The merge put the connector rows, in order, at the <image> positions.
        pos = (ids[0] == image_id).nonzero().flatten()
        assert torch.equal(emb[pos], proj.reshape(-1, proj.shape[-1])), "merge order"
        expanded = hf_tok.decode(ids[0].tolist(), skip_special_tokens=False)
        shapes = {
            "pixel_values": save_bin(d / "pixel_values.bin", pv[0]),
            "vision_hidden": save_bin(d / "vision_hidden.bin", hidden),
            "image_features": save_bin(d / "image_features.bin", proj),
            "inputs_embeds": save_bin(d / "inputs_embeds.bin", emb),
            "logits": save_bin(d / "logits.bin", out.logits[0]),
        }
        # Grid of each image from the expanded text: <row_R_col_C> markers.
        grids, pieces = [], expanded.split("<global-img>")
        for piece in pieces[:-1]:
            last = piece.rsplit("<row_", 1)
            if len(last) == 1:
                grids.append([0, 0])
            else:
                r, c = last[1].split(">", 1)[0].split("_col_")
                grids.append([int(r), int(c)])
            # only the tokens since the previous image count
        manifest["cases"][case] = {
            "images": [{"file": n, "width": im.width, "height": im.height, "mode": im.mode} for n, im in images],
            "prompt": prompt,
            "expanded_prompt": expanded,
            "grids": grids,
            "n_tiles": int(pv.shape[1]),
            "n_tokens": int(ids.shape[1]),
            "n_image_tokens": n_img_tok,
            "input_ids": ids[0].tolist(),
            "shapes": shapes,
            "logits_std": float(f"{out.logits.std().item():.4g}"),
            "argmax": out.logits[0].argmax(-1).tolist(),
        }
        print(f"{case}: tiles={pv.shape[1]} tokens={ids.shape[1]} grids={grids} "
              f"logits_std={manifest['cases'][case]['logits_std']}", flush=True)
    hook.remove()
    write_json(gd / "manifest.json", manifest)
    print(f"fixture {fx} ({size} bytes), goldens {gd}")


if __name__ == "__main__":
    main()
