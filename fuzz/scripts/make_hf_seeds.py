#!/usr/bin/env python3
"""Write the seeds of the Hugging Face checkpoint targets (safetensors_parse,
safetensors_index, hf_config, hf_tokenizer_json) from the tiny checkpoints in
tests/fixtures/hf/ and a few synthetic variants.

Deterministic: re-running reproduces the files byte for byte. Run from fuzz/.
Safetensors seeds keep the fixtures' headers (tensor names, order, `__metadata__`)
with every dimension cut to at most 2 so that each seed stays a few KB; the fuzzer
works best on small inputs. Files named regress_* are regression inputs and are
left alone.
"""

import json
import os
import struct
import sys

ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
FIX = os.path.join(ROOT, "tests", "fixtures", "hf")
SEEDS = os.path.join(ROOT, "fuzz", "seeds")

BITS = {
    "BOOL": 8, "U8": 8, "I8": 8, "F8_E5M2": 8, "F8_E4M3": 8, "F8_E8M0": 8,
    "I16": 16, "U16": 16, "F16": 16, "BF16": 16,
    "I32": 32, "U32": 32, "F32": 32, "C64": 64,
    "F64": 64, "I64": 64, "U64": 64, "F4": 4, "F6_E2M3": 6, "F6_E3M2": 6,
}


def pattern(n, salt):
    """n deterministic bytes."""
    return bytes((i * 37 + salt * 11 + 5) & 0xFF for i in range(n))


def safetensors(tensors, metadata=None, pad=True):
    """tensors: [(name, dtype, shape, data or None)] in data order."""
    header = {}
    if metadata is not None:
        header["__metadata__"] = metadata
    blobs = []
    off = 0
    for salt, (name, dtype, shape, data) in enumerate(tensors):
        n = 1
        for d in shape:
            n *= d
        size = n * BITS[dtype] // 8
        if data is None:
            data = pattern(size, salt)
        assert len(data) == size, (name, len(data), size)
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [off, off + size]}
        off += size
        blobs.append(data)
    h = json.dumps(header, separators=(",", ":")).encode()
    if pad:
        h += b" " * (-len(h) % 8)
    return struct.pack("<Q", len(h)) + h + b"".join(blobs)


def read_header(path):
    with open(path, "rb") as f:
        b = f.read()
    (n,) = struct.unpack("<Q", b[:8])
    h = json.loads(b[8 : 8 + n])
    meta = h.pop("__metadata__", None)
    items = sorted(h.items(), key=lambda kv: kv[1]["data_offsets"][0])
    return meta, [(k, v["dtype"], v["shape"]) for k, v in items]


def shrunk(path, dtypes=None):
    meta, items = read_header(path)
    out = []
    for i, (name, dtype, shape) in enumerate(items):
        if dtypes:
            dtype = dtypes[i % len(dtypes)]
        out.append((name, dtype, [min(d, 2) for d in shape], None))
    return safetensors(out, meta)


def write(target, name, data):
    d = os.path.join(SEEDS, target)
    os.makedirs(d, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def f16(x):
    return struct.pack("<e", x)


def main():
    archs = sorted(a for a in os.listdir(FIX) if os.path.isdir(os.path.join(FIX, a)))

    # ---- safetensors_parse ----
    t = "safetensors_parse"
    for a in archs:
        for fn in sorted(os.listdir(os.path.join(FIX, a))):
            if fn.endswith(".safetensors"):
                stem = fn[: -len(".safetensors")].replace("model-", "shard-")
                write(t, f"{a}_{stem}.safetensors", shrunk(os.path.join(FIX, a, fn)))
    write(t, "llama_mixed_dtypes.safetensors",
          shrunk(os.path.join(FIX, "llama", "model.safetensors"), ["F16", "BF16", "F64", "F32"]))
    write(t, "all_dtypes.safetensors", safetensors(
        [(f"t.{d.lower()}", d, [2, 4], None) for d in BITS], {"format": "pt"}))
    specials = b"".join(f16(x) for x in [0.0, -0.0, 1.0, -2.0, 65504.0, 6e-8, 6.1e-5,
                                        float("inf"), float("-inf"), float("nan")])
    write(t, "f16_specials.safetensors", safetensors([("x", "F16", [10], specials)]))
    bf = b"".join(struct.pack("<H", v) for v in [0x0000, 0x8000, 0x3F80, 0x7F80, 0xFF80, 0x7FC1, 0x0001])
    f64 = b"".join(struct.pack("<d", v) for v in [1e300, -1e-300, 3.5, float("nan")])
    write(t, "bf16_f64_specials.safetensors",
          safetensors([("b", "BF16", [7], bf), ("d", "F64", [2, 2], f64)]))
    write(t, "scalar_and_empty.safetensors", safetensors([
        ("scalar", "F32", [], None), ("empty", "F32", [0, 3], None),
        ("empty2", "BF16", [3, 0, 5], None), ("after", "F16", [3], None)]))
    write(t, "no_tensors.safetensors", safetensors([], {"format": "pt"}))
    write(t, "unpadded.safetensors", safetensors([("a", "F32", [1], None)], pad=False))
    write(t, "sub_byte.safetensors", safetensors([("f4", "F4", [2, 3], None), ("f6", "F6_E2M3", [4], None)]))

    # ---- safetensors_index ----
    t = "safetensors_index"

    def index_input(index, shards):
        return json.dumps(index, indent=2).encode() + b"\0" + b"".join(
            struct.pack("<I", len(s)) + s for s in shards)

    q = os.path.join(FIX, "qwen2")
    with open(os.path.join(q, "model.safetensors.index.json")) as f:
        qindex = json.load(f)
    qshards = [shrunk(os.path.join(q, f"model-0000{i}-of-00002.safetensors")) for i in (1, 2)]
    write(t, "qwen2_two_shards.bin", index_input(qindex, qshards))
    one = safetensors([("a", "F32", [2], None), ("b", "F16", [2, 2], None)], {"format": "pt"})
    write(t, "one_shard.bin", index_input(
        {"metadata": {"total_size": 16}, "weight_map": {
            "a": "model-00001-of-00001.safetensors", "b": "model-00001-of-00001.safetensors"}}, [one]))
    three = [safetensors([(f"t{i}", "BF16", [i + 1], None)]) for i in range(3)]
    write(t, "three_shards.bin", index_input(
        {"weight_map": {f"t{i}": f"model-0000{i + 1}-of-00003.safetensors" for i in range(3)}}, three))
    write(t, "index_only.bin", json.dumps({"weight_map": {"x": "model-00001-of-00001.safetensors"}}).encode())

    # ---- hf_config ----
    t = "hf_config"
    configs = {}
    for a in archs:
        with open(os.path.join(FIX, a, "config.json"), "rb") as f:
            configs[a] = f.read()
        write(t, f"{a}.json", configs[a])
    g3 = json.loads(configs["gemma3"])
    v5 = dict(g3)
    for k in ("rope_theta", "rope_local_base_freq", "rope_scaling"):
        v5.pop(k, None)
    v5["rope_parameters"] = {
        "full_attention": {"rope_type": "linear", "factor": 8.0, "rope_theta": 1000000.0},
        "sliding_attention": {"rope_type": "default", "rope_theta": 10000.0}}
    write(t, "gemma3_transformers5_rope_parameters.json", json.dumps(v5, indent=2))
    mm = {"architectures": ["Gemma3ForConditionalGeneration"], "model_type": "gemma3",
          "text_config": {k: v for k, v in g3.items() if k != "architectures"},
          "vision_config": {"hidden_size": 32, "num_hidden_layers": 1}}
    write(t, "gemma3_multimodal_text_config.json", json.dumps(mm, indent=2))
    ll = json.loads(configs["llama"])
    ll.update({"rope_scaling": {"type": "linear", "factor": 2.0}, "num_key_value_heads": None,
               "head_dim": None, "sliding_window": 4096, "use_sliding_window": False})
    write(t, "llama_linear_rope_nulls.json", json.dumps(ll, indent=2))
    ll2 = json.loads(configs["llama"])
    ll2["rope_parameters"] = {"rope_type": "default", "rope_theta": 500000.0}
    ll2.pop("rope_theta", None)
    write(t, "llama_rope_parameters_flat.json", json.dumps(ll2))
    g2 = json.loads(configs["gemma2"])
    g2.pop("layer_types", None)
    write(t, "gemma2_no_layer_types.json", json.dumps(g2))

    # ---- hf_tokenizer_json ----
    t = "hf_tokenizer_json"
    base = os.path.join(FIX, "llama")
    with open(os.path.join(base, "tokenizer.json"), "rb") as f:
        tok_text = f.read()
    with open(os.path.join(base, "tokenizer_config.json"), "rb") as f:
        cfg_text = f.read()
    with open(os.path.join(base, "generation_config.json"), "rb") as f:
        gen_text = f.read()
    write(t, "fixture_all_files.bin", tok_text + b"\0" + cfg_text + b"\0" + gen_text)
    write(t, "fixture_tokenizer_only.json", tok_text)
    tok = json.loads(tok_text)
    cfg = json.loads(cfg_text)

    def variant(name, mutate_tok=None, mutate_cfg=None, gen=gen_text, template=None):
        tj = json.loads(json.dumps(tok))
        cj = json.loads(json.dumps(cfg))
        if mutate_tok:
            mutate_tok(tj)
        if mutate_cfg:
            mutate_cfg(cj)
        data = json.dumps(tj, ensure_ascii=False).encode() + b"\0" + json.dumps(cj).encode()
        if gen is not None or template is not None:
            data += b"\0" + (gen if gen is not None else b"{}")
        if template is not None:
            data += b"\0" + template.encode()
        write(t, name, data)

    llama3_re = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
    qwen2_re = llama3_re.replace(r"\p{N}{1,3}", r"\p{N}")

    def split(regex):
        def m(tj):
            tj["pre_tokenizer"] = {"type": "Sequence", "pretokenizers": [
                {"type": "Split", "pattern": {"Regex": regex}, "behavior": "Isolated", "invert": False},
                {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": False}]}
        return m

    def smollm(tj):
        tj["pre_tokenizer"] = {"type": "Sequence", "pretokenizers": [
            {"type": "Digits", "individual_digits": True},
            {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": True}]}

    def string_merges(tj):
        tj["model"]["merges"] = [" ".join(m) if isinstance(m, list) else m for m in tj["model"]["merges"]]

    def template_processing(tj):
        tj["post_processor"] = {"type": "Sequence", "processors": [
            {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": False, "use_regex": True},
            {"type": "TemplateProcessing",
             "single": [{"SpecialToken": {"id": "<|im_start|>", "type_id": 0}},
                        {"Sequence": {"id": "A", "type_id": 0}}],
             "pair": [], "special_tokens": {"<|im_start|>": {"id": "<|im_start|>", "ids": [1], "tokens": ["<|im_start|>"]}}}]}

    def no_add_bos(cj):
        cj.pop("add_bos_token", None)
        cj["bos_token"] = {"content": "<|im_start|>", "lstrip": False}

    def template_list(cj):
        cj["chat_template"] = [{"name": "tool_use", "template": "{{ tools }}"},
                               {"name": "default", "template": cj["chat_template"]}]

    def nfc_added(tj):
        tj["normalizer"] = {"type": "NFC"}
        tj["added_tokens"].append({"id": len(tj["model"]["vocab"]) + 4, "content": "<tool>",
                                   "single_word": False, "lstrip": False, "rstrip": False,
                                   "normalized": False, "special": False})

    variant("llama_bpe_split.bin", split(llama3_re))
    variant("qwen2_split.bin", split(qwen2_re))
    variant("smollm_digits.bin", smollm)
    variant("merge_strings.bin", string_merges)
    variant("template_processing_bos.bin", template_processing, no_add_bos,
            gen=b'{"bos_token_id": [1, 2], "eos_token_id": [2, 0]}')
    variant("chat_template_list_and_file.bin", None, template_list, gen=None,
            template="{% for m in messages %}{{ m['content'] }}{% endfor %}")
    variant("nfc_user_defined_token.bin", nfc_added)


if __name__ == "__main__":
    sys.exit(main())
