#!/usr/bin/env python3
"""Make the SmolVLM / Idefics3 image-preprocessing goldens in data/image-goldens/.

Reference: transformers' Idefics3ImageProcessorPil (the PIL backend: uint8 images resized
with PIL, LANCZOS for SmolVLM) and Idefics3Processor, built from the real
HuggingFaceTB/SmolVLM-256M-Instruct preprocessor_config.json / processor_config.json
values (no hub access; the configs are written next to the goldens and the Rust test
reads the same files). Inputs are photographs shipped in the scikit-image wheel.

Images are loaded the way the model card does it: transformers.image_utils.load_image
(PIL open + ImageOps.exif_transpose + convert("RGB"), which drops alpha). One case
("rgba_composite") instead hands the RGBA PIL image straight to the processor, which in
transformers 5 composites it onto white.

Per case the manifest records rows, cols, the expanded prompt, per-tile per-channel
means of the uint8 tile values, per-tile sums of the float pixel_values, and the names of
the tiles stored in full as PNG. A tile PNG holds round(pixel_value_rescaled * 255),
which is exactly the uint8 PIL output (rescale is /255, normalize comes after), so
the comparison tolerance is in uint8 steps: 1 step = 1/255 in [0,1] units.

Versions used: see manifest["reference"].  Run:  python3 scripts/goldens/make_image_goldens.py
"""
import io
import json
import os
import sys

import numpy as np
import PIL
import PIL.Image
import skimage
import skimage.data
import transformers
from tokenizers import Tokenizer, models, pre_tokenizers
from transformers import PreTrainedTokenizerFast
from transformers.image_utils import load_image
from transformers.models.idefics3 import Idefics3ImageProcessorPil, Idefics3Processor

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
OUT = os.path.join(ROOT, "data", "image-goldens")
# Budget for stored tile PNGs (bytes); tiles beyond it keep only means and sums.
TILE_BUDGET = 9_500_000

PREPROCESSOR_CONFIG = {
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
    "rescale_factor": 0.00392156862745098,
    "size": {"longest_edge": 2048},
}
PROCESSOR_CONFIG = {"image_seq_len": 64, "processor_class": "Idefics3Processor"}


def make_processor(image_seq_len):
    special = ["<unk>", "<fake_token_around_image>", "<image>", "<end_of_utterance>", "<global-img>"]
    special += [f"<row_{i}_col_{j}>" for i in range(1, 7) for j in range(1, 7)]
    tk = Tokenizer(models.WordLevel({t: i for i, t in enumerate(special)}, unk_token="<unk>"))
    tk.pre_tokenizer = pre_tokenizers.Whitespace()
    tok = PreTrainedTokenizerFast(tokenizer_object=tk, unk_token="<unk>", additional_special_tokens=special[1:])
    kw = {k: v for k, v in PREPROCESSOR_CONFIG.items() if k not in ("image_processor_type", "processor_class")}
    ip = Idefics3ImageProcessorPil(**kw)
    return Idefics3Processor(image_processor=ip, tokenizer=tok, image_seq_len=image_seq_len)


def resized(arr, w, h):
    return np.asarray(PIL.Image.fromarray(arr).resize((w, h), PIL.Image.LANCZOS))


def write_inputs():
    """Writes the input files; returns [(name, file, description, extra)]"""
    cases = []

    def save(name, img, fmt, desc, **extra):
        ext = {"PNG": "png", "JPEG": "jpg", "WEBP": "webp"}[fmt]
        fn = f"{name}.{ext}"
        img.save(os.path.join(OUT, fn), fmt, **extra.pop("save", {}))
        cases.append(dict(name=name, file=fn, description=desc, **extra))

    astro = skimage.data.astronaut()  # 512x512 RGB
    coffee = skimage.data.coffee()  # 400x600
    chelsea = skimage.data.chelsea()  # 300x451
    camera = skimage.data.camera()  # 512x512 gray
    rocket = skimage.data.rocket()  # 427x640

    save("astronaut_square", PIL.Image.fromarray(resized(astro, 200, 200)), "PNG",
         "square RGB 200x200 -> 4x4 grid (17 tiles)")
    save("coffee_small_wide", PIL.Image.fromarray(resized(coffee, 300, 200)), "PNG",
         "small wide RGB 300x200 -> 3x4")
    save("chelsea_tall", PIL.Image.fromarray(resized(chelsea[:, 100:300], 150, 225)), "PNG",
         "tall RGB 150x225 -> 4x3")
    save("camera_gray_wide", PIL.Image.fromarray(resized(camera[128:384], 256, 128)), "PNG",
         "8-bit grayscale 256x128 -> 2x4")
    save("rocket_jpeg", PIL.Image.fromarray(resized(rocket, 320, 213)), "JPEG",
         "baseline JPEG 320x213 (decoder may differ by +-1: loose check)", save={"quality": 90})
    save("rocket_panorama", PIL.Image.fromarray(resized(rocket[150:250], 640, 40)), "PNG",
         "very wide 640x40 -> 1x4")
    save("webp_lossless", PIL.Image.fromarray(resized(chelsea, 180, 120)), "WEBP",
         "lossless WebP 180x120", save={"lossless": True})
    one = PIL.Image.fromarray(np.array([[[200, 30, 90]]], dtype=np.uint8))
    save("one_pixel", one, "PNG", "1x1 RGB -> 4x4 grid of one colour")

    # RGBA: alpha gradient over the astronaut.
    rgb = resized(astro, 160, 120)
    alpha = np.tile(np.linspace(0, 255, 160).astype(np.uint8), (120, 1))
    alpha[:20] = 0
    rgba = np.dstack([rgb, alpha])
    save("rgba_drop", PIL.Image.fromarray(rgba, "RGBA"), "PNG",
         "RGBA 160x120 through load_image: alpha dropped")
    cases.append(dict(name="rgba_composite", file="rgba_drop.png", alpha="composite",
                      description="same RGBA file given to the processor as a PIL image: composited on white"))
    # Gray + alpha.
    g = resized(camera, 128, 96)
    save("gray_alpha", PIL.Image.fromarray(np.dstack([g, g[::-1]]), "LA"), "PNG",
         "gray+alpha 128x96 through load_image")
    # 16-bit RGB: PIL keeps the high byte.
    c16 = resized(coffee, 192, 128).astype(np.uint16) * 257 + np.random.default_rng(0).integers(0, 257, (128, 192, 3)).astype(np.uint16)
    fn = "coffee_rgb16.png"
    write_png16(os.path.join(OUT, fn), c16)
    cases.append(dict(name="coffee_rgb16", file=fn, description="16-bit RGB PNG 192x128 (PIL takes the high byte)"))
    # EXIF orientation 6 (rotate 90 CW on display) in a PNG eXIf chunk and in a JPEG.
    base = PIL.Image.fromarray(resized(chelsea, 200, 120))
    exif = PIL.Image.Exif()
    exif[0x0112] = 6
    save("exif_rot6_png", base, "PNG", "PNG with EXIF orientation 6, stored 200x120, displayed 120x200",
         save={"exif": exif.tobytes()})
    save("exif_rot3_jpeg", base, "JPEG", "JPEG with EXIF orientation 3 (180 deg), loose check",
         save={"exif": _exif(3), "quality": 90})
    cases.append(dict(name="no_split", file="astronaut_square.png", split=False,
                      description="do_image_splitting=false: one 512x512 image, rows=cols=0"))
    return cases


def _exif(o):
    e = PIL.Image.Exif()
    e[0x0112] = o
    return e.tobytes()


def write_png16(path, arr):
    # PIL cannot write 16-bit RGB; use a minimal PNG writer.
    import struct
    import zlib

    h, w, _ = arr.shape
    raw = b"".join(b"\x00" + arr[y].astype(">u2").tobytes() for y in range(h))

    def chunk(t, d):
        return struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d) & 0xFFFFFFFF)

    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 16, 2, 0, 0, 0))
                + chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b""))


def main():
    os.makedirs(OUT, exist_ok=True)
    for f in os.listdir(OUT):
        os.remove(os.path.join(OUT, f))
    with open(os.path.join(OUT, "preprocessor_config.json"), "w") as f:
        json.dump(PREPROCESSOR_CONFIG, f, indent=2)
    with open(os.path.join(OUT, "processor_config.json"), "w") as f:
        json.dump(PROCESSOR_CONFIG, f, indent=2)

    proc = make_processor(PROCESSOR_CONFIG["image_seq_len"])
    cases = write_inputs()
    prompt = "<|im_start|>User:<image>Describe this image.<end_of_utterance>\nAssistant:"
    results = []
    pending_tiles = []
    for case in cases:
        path = os.path.join(OUT, case["file"])
        if case.get("alpha") == "composite":
            img = PIL.Image.open(path)
            img.load()
        else:
            img = load_image(path)
        kwargs = {"return_row_col_info": True}
        if case.get("split") is False:
            kwargs["do_image_splitting"] = False
        inputs, repl = proc._process_images([[img]], **kwargs)
        text, _ = proc.get_text_with_replacements([prompt], images_replacements=repl)
        pv = np.asarray(inputs["pixel_values"])[0]  # (n_tiles, 3, S, S) float32
        # Undo normalize (mean=std=0.5) to get the rescaled [0,1] value, then uint8.
        u8 = np.clip(np.round((pv * 0.5 + 0.5) * 255.0), 0, 255).astype(np.uint8)
        assert np.abs(u8 / 255.0 - (pv * 0.5 + 0.5)).max() < 1e-5, "tile values are not k/255"
        n = pv.shape[0]
        case_out = dict(case)
        case_out.update(
            rows=int(inputs["rows"][0][0]), cols=int(inputs["cols"][0][0]), n_tiles=n,
            tile_size=int(pv.shape[-1]), prompt=prompt, expanded=text[0],
            input_size=list(PIL.Image.open(path).size),
            tile_means=[[float(u8[t, c].mean()) for c in range(3)] for t in range(n)],
            float_sums=[float(pv[t].astype(np.float64).sum()) for t in range(n)],
            float_head=[float(x) for x in pv[0, 0, 0, :8]],
            stored_tiles={},
        )
        # Priority: global view, last tile, first tile, then the rest.
        order = [n - 1] + ([n - 2, 0] if n > 2 else []) + list(range(1, max(n - 2, 1)))
        for rank, t in enumerate(dict.fromkeys(order)):
            pending_tiles.append((rank, case_out, t, u8[t]))
        results.append(case_out)

    used = 0
    for rank, case_out, t, tile in sorted(pending_tiles, key=lambda x: x[0]):
        buf = io.BytesIO()
        PIL.Image.fromarray(np.moveaxis(tile, 0, -1)).save(buf, "PNG", optimize=True)
        if used + len(buf.getvalue()) > TILE_BUDGET and rank > 0:
            continue
        fn = f"{case_out['name']}.tile{t:02d}.png"
        with open(os.path.join(OUT, fn), "wb") as f:
            f.write(buf.getvalue())
        used += len(buf.getvalue())
        case_out["stored_tiles"][str(t)] = fn

    manifest = dict(
        reference=dict(transformers=transformers.__version__, pillow=PIL.__version__,
                       numpy=np.__version__, scikit_image=skimage.__version__,
                       image_processor="Idefics3ImageProcessorPil", processor="Idefics3Processor"),
        tolerance_u8=1,
        note=__doc__.strip().split("\n\n")[2],
        cases=results,
    )
    with open(os.path.join(OUT, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=1)
    total = sum(os.path.getsize(os.path.join(OUT, f)) for f in os.listdir(OUT))
    for c in results:
        print(f"{c['name']:18} {c['rows']}x{c['cols']} tiles={c['n_tiles']} stored={len(c['stored_tiles'])}")
    print(f"total {total / 1e6:.2f} MB in {OUT}", file=sys.stderr)


if __name__ == "__main__":
    main()
