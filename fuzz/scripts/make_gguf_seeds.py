#!/usr/bin/env python3
"""Write the small synthetic GGUF seeds of the gguf_parse fuzz target.

Usage: fuzz/scripts/make_gguf_seeds.py [OUT_DIR]   (default fuzz/seeds/gguf_parse)

Every file is GGUF v3 with a 32-byte aligned data section:
  tiny_all_types.gguf  one key of each of the 13 value types, arrays of numbers,
                       bools, strings and an array of arrays; an F32 and a Q8_0 tensor
  tiny_llama.gguf      a 1-layer llama model (F32/F16 weights) with a byte-level BPE
                       vocabulary (gpt2 model, "smollm" pre-tokenizer, merges)
  tiny_qwen2.gguf      a 1-layer qwen2 model with q/k/v biases and Q8_0 matrices,
                       no tokenizer (vocabulary size from token_embd)
  tiny_gemma3.gguf     a 1-layer gemma3 model (q/k norms, post norms, sliding window)
                       with a SentencePiece vocabulary (byte-fallback tokens, scores)
The layout follows docs/FORMAT.md; numbers are deterministic (no randomness), so
re-running the script reproduces the committed files byte for byte.
"""

import os
import struct
import sys

# GGUF value type ids
U8, I8, U16, I16, U32, I32, F32, BOOL, STR, ARR, U64, I64, F64 = range(13)
FMT = {U8: "B", I8: "b", U16: "H", I16: "h", U32: "I", I32: "i", F32: "f",
       BOOL: "?", U64: "Q", I64: "q", F64: "d"}
# ggml tensor type ids
T_F32, T_F16, T_Q8_0 = 0, 1, 8
ALIGN = 32


def gstr(s):
    b = s.encode() if isinstance(s, str) else s
    return struct.pack("<Q", len(b)) + b


def gval(ty, v):
    if ty == STR:
        return gstr(v)
    if ty == ARR:
        elem, items = v
        out = struct.pack("<IQ", elem, len(items))
        return out + b"".join(gval(elem, x) for x in items)
    return struct.pack("<" + FMT[ty], v)


def f32_bytes(vals):
    return struct.pack("<%df" % len(vals), *vals)


def f16_bytes(vals):
    return struct.pack("<%de" % len(vals), *vals)


def q8_0_bytes(vals):
    """ggml Q8_0: blocks of 32 = f16 scale + 32 int8."""
    assert len(vals) % 32 == 0
    out = b""
    for i in range(0, len(vals), 32):
        blk = vals[i:i + 32]
        amax = max(abs(x) for x in blk)
        d = amax / 127.0 if amax else 0.0
        q = [int(round(x / d)) if d else 0 for x in blk]
        out += struct.pack("<e", d) + struct.pack("<32b", *q)
    return out


def pattern(n, scale=0.1, phase=0):
    """Deterministic small values in [-scale, scale]."""
    return [scale * (((i * 7 + phase * 13) % 17) - 8) / 8.0 for i in range(n)]


def tensor(name, dims, ttype, scale=0.1, phase=0, fill=None):
    n = 1
    for d in dims:
        n *= d
    vals = [fill] * n if fill is not None else pattern(n, scale, phase)
    data = {T_F32: f32_bytes, T_F16: f16_bytes, T_Q8_0: q8_0_bytes}[ttype](vals)
    return (name, dims, ttype, data)


def gguf(kvs, tensors):
    out = b"GGUF" + struct.pack("<IQQ", 3, len(tensors), len(kvs))
    for key, ty, v in kvs:
        out += gstr(key) + struct.pack("<I", ty) + gval(ty, v)
    offset = 0
    layout = []
    for name, dims, ttype, data in tensors:
        out += gstr(name) + struct.pack("<I", len(dims))
        out += struct.pack("<%dQ" % len(dims), *dims)
        out += struct.pack("<IQ", ttype, offset)
        layout.append((offset, data))
        offset += len(data)
        offset += (-offset) % ALIGN
    out += b"\0" * ((-len(out)) % ALIGN)
    base = len(out)
    body = bytearray(offset)
    for off, data in layout:
        body[off:off + len(data)] = data
    out += bytes(body)
    assert len(out) - base == offset
    return out


def byte_alphabet():
    """Byte-level BPE alphabet: printable Latin-1 bytes map to themselves, the other
    bytes to code points from 256 up, in byte order."""
    keep = list(range(0x21, 0x7F)) + list(range(0xA1, 0xAD)) + list(range(0xAE, 0x100))
    table, extra = {}, 0
    for b in range(256):
        if b in keep:
            table[b] = chr(b)
        else:
            table[b] = chr(256 + extra)
            extra += 1
    return table


def all_types():
    kvs = [
        ("general.architecture", STR, "fuzzseed"),
        ("general.alignment", U32, 32),
        ("seed.u8", U8, 200),
        ("seed.i8", I8, -100),
        ("seed.u16", U16, 60000),
        ("seed.i16", I16, -30000),
        ("seed.u32", U32, 4000000000),
        ("seed.i32", I32, -2000000000),
        ("seed.f32", F32, 1.5),
        ("seed.bool", BOOL, True),
        ("seed.str", STR, "h\u00e9llo \u2581w\u00f6rld"),
        ("seed.u64", U64, 2 ** 63 + 5),
        ("seed.i64", I64, -(2 ** 62)),
        ("seed.f64", F64, -2.25),
        ("seed.arr_u8", ARR, (U8, [1, 2, 3])),
        ("seed.arr_i32", ARR, (I32, [-1, 0, 7])),
        ("seed.arr_f32", ARR, (F32, [0.5, -1.0])),
        ("seed.arr_bool", ARR, (BOOL, [True, False])),
        ("seed.arr_i64", ARR, (I64, [-5, 5])),
        ("seed.arr_arr", ARR, (ARR, [(U16, [1, 2]), (STR, ["x"])])),
        ("seed.arr_empty", ARR, (F64, [])),
        ("tokenizer.ggml.tokens", ARR, (STR, ["<unk>", "a", "b", ""])),
        ("tokenizer.ggml.scores", ARR, (F32, [0.0, -1.0, -2.0, -3.0])),
        ("tokenizer.ggml.token_type", ARR, (I32, [2, 1, 1, 1])),
        ("llama.block_count", U32, 1),
    ]
    tensors = [
        tensor("f32.weight", [4, 2], T_F32),
        tensor("q8_0.weight", [32, 1], T_Q8_0, phase=3),
    ]
    return gguf(kvs, tensors)


def llama():
    alpha = byte_alphabet()
    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    base = [alpha[b] for b in range(256)]
    g = alpha[ord(" ")]
    merges = [(g, "t"), (g, "a"), ("i", "n"), ("h", "e"), (g + "t", "he"), ("e", "r")]
    words = [a + b for a, b in merges]
    tokens = specials + base + words
    types = [3] * len(specials) + [1] * (len(tokens) - len(specials))
    n_vocab = len(tokens)
    d, n_head, n_kv, ff = 8, 2, 1, 16
    hd = d // n_head
    kvs = [
        ("general.architecture", STR, "llama"),
        ("general.name", STR, "fuzz tiny llama"),
        ("llama.block_count", U32, 1),
        ("llama.context_length", U32, 64),
        ("llama.embedding_length", U32, d),
        ("llama.feed_forward_length", U32, ff),
        ("llama.attention.head_count", U32, n_head),
        ("llama.attention.head_count_kv", U32, n_kv),
        ("llama.rope.freq_base", F32, 10000.0),
        ("llama.attention.layer_norm_rms_epsilon", F32, 1e-5),
        ("llama.vocab_size", U32, n_vocab),
        ("llama.rope.dimension_count", U32, hd),
        ("tokenizer.ggml.model", STR, "gpt2"),
        ("tokenizer.ggml.pre", STR, "smollm"),
        ("tokenizer.ggml.tokens", ARR, (STR, tokens)),
        ("tokenizer.ggml.token_type", ARR, (I32, types)),
        ("tokenizer.ggml.merges", ARR, (STR, ["%s %s" % m for m in merges])),
        ("tokenizer.ggml.bos_token_id", U32, 1),
        ("tokenizer.ggml.eos_token_id", U32, 2),
        ("tokenizer.ggml.add_bos_token", BOOL, False),
        ("tokenizer.chat_template", STR,
         "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"),
    ]
    tensors = [
        tensor("token_embd.weight", [d, n_vocab], T_F16, phase=1),
        tensor("output_norm.weight", [d], T_F32, fill=1.0),
        tensor("blk.0.attn_norm.weight", [d], T_F32, fill=1.0),
        tensor("blk.0.attn_q.weight", [d, n_head * hd], T_F32, phase=2),
        tensor("blk.0.attn_k.weight", [d, n_kv * hd], T_F32, phase=3),
        tensor("blk.0.attn_v.weight", [d, n_kv * hd], T_F32, phase=4),
        tensor("blk.0.attn_output.weight", [n_head * hd, d], T_F32, phase=5),
        tensor("blk.0.ffn_norm.weight", [d], T_F32, fill=1.0),
        tensor("blk.0.ffn_gate.weight", [d, ff], T_F32, phase=6),
        tensor("blk.0.ffn_up.weight", [d, ff], T_F32, phase=7),
        tensor("blk.0.ffn_down.weight", [ff, d], T_F32, phase=8),
    ]
    return gguf(kvs, tensors)


def qwen2():
    d, n_head, n_kv, ff, n_vocab = 32, 2, 1, 32, 8
    hd = d // n_head
    kvs = [
        ("general.architecture", STR, "qwen2"),
        ("qwen2.block_count", U32, 1),
        ("qwen2.embedding_length", U32, d),
        ("qwen2.feed_forward_length", U32, ff),
        ("qwen2.attention.head_count", U32, n_head),
        ("qwen2.attention.head_count_kv", U32, n_kv),
        ("qwen2.rope.freq_base", F32, 1000000.0),
        ("qwen2.attention.layer_norm_rms_epsilon", F32, 1e-6),
    ]
    tensors = [
        tensor("token_embd.weight", [d, n_vocab], T_Q8_0, phase=1),
        tensor("output.weight", [d, n_vocab], T_Q8_0, phase=9),
        tensor("output_norm.weight", [d], T_F32, fill=1.0),
        tensor("blk.0.attn_norm.weight", [d], T_F32, fill=1.0),
        tensor("blk.0.attn_q.weight", [d, n_head * hd], T_Q8_0, phase=2),
        tensor("blk.0.attn_k.weight", [d, n_kv * hd], T_Q8_0, phase=3),
        tensor("blk.0.attn_v.weight", [d, n_kv * hd], T_Q8_0, phase=4),
        tensor("blk.0.attn_q.bias", [n_head * hd], T_F32, phase=10),
        tensor("blk.0.attn_k.bias", [n_kv * hd], T_F32, phase=11),
        tensor("blk.0.attn_v.bias", [n_kv * hd], T_F32, phase=12),
        tensor("blk.0.attn_output.weight", [n_head * hd, d], T_Q8_0, phase=5),
        tensor("blk.0.ffn_norm.weight", [d], T_F32, fill=1.0),
        tensor("blk.0.ffn_gate.weight", [d, ff], T_Q8_0, phase=6),
        tensor("blk.0.ffn_up.weight", [d, ff], T_Q8_0, phase=7),
        tensor("blk.0.ffn_down.weight", [ff, d], T_Q8_0, phase=8),
    ]
    return gguf(kvs, tensors)


def gemma3():
    specials = ["<pad>", "<eos>", "<bos>", "<unk>", "<start_of_turn>", "<end_of_turn>"]
    byte_toks = ["<0x%02X>" % b for b in range(256)]
    pieces = ["\u2581", "a", "b", "ab", "\u2581a", "\u2581ab", "\u00e9", "\u2581\u2581"]
    tokens = specials + byte_toks + pieces
    types = [3, 3, 3, 2, 3, 3] + [6] * 256 + [1] * len(pieces)
    scores = [-1000.0] * len(specials) + [0.0] * 256 + [-float(i) for i in range(len(pieces))]
    n_vocab = len(tokens)
    d, n_head, n_kv, ff = 8, 2, 1, 16
    hd = 4
    kvs = [
        ("general.architecture", STR, "gemma3"),
        ("gemma3.context_length", U32, 128),
        ("gemma3.embedding_length", U32, d),
        ("gemma3.block_count", U32, 1),
        ("gemma3.feed_forward_length", U32, ff),
        ("gemma3.attention.head_count", U32, n_head),
        ("gemma3.attention.head_count_kv", U32, n_kv),
        ("gemma3.attention.key_length", U32, hd),
        ("gemma3.attention.value_length", U32, hd),
        ("gemma3.attention.layer_norm_rms_epsilon", F32, 1e-6),
        ("gemma3.rope.freq_base", F32, 1000000.0),
        ("gemma3.attention.sliding_window", U32, 2),
        ("tokenizer.ggml.model", STR, "llama"),
        ("tokenizer.ggml.pre", STR, "default"),
        ("tokenizer.ggml.tokens", ARR, (STR, tokens)),
        ("tokenizer.ggml.scores", ARR, (F32, scores)),
        ("tokenizer.ggml.token_type", ARR, (I32, types)),
        ("tokenizer.ggml.bos_token_id", U32, 2),
        ("tokenizer.ggml.eos_token_id", U32, 1),
        ("tokenizer.ggml.unknown_token_id", U32, 3),
        ("tokenizer.ggml.padding_token_id", U32, 0),
        ("tokenizer.ggml.add_bos_token", BOOL, True),
        ("tokenizer.ggml.add_eos_token", BOOL, False),
        ("tokenizer.ggml.add_space_prefix", BOOL, False),
    ]
    tensors = [
        tensor("token_embd.weight", [d, n_vocab], T_F16, phase=1),
        tensor("output_norm.weight", [d], T_F32, fill=1.0),
        tensor("blk.0.attn_norm.weight", [d], T_F32, fill=1.0),
        tensor("blk.0.attn_q.weight", [d, n_head * hd], T_F32, phase=2),
        tensor("blk.0.attn_k.weight", [d, n_kv * hd], T_F32, phase=3),
        tensor("blk.0.attn_v.weight", [d, n_kv * hd], T_F32, phase=4),
        tensor("blk.0.attn_q_norm.weight", [hd], T_F32, fill=1.0),
        tensor("blk.0.attn_k_norm.weight", [hd], T_F32, fill=1.0),
        tensor("blk.0.attn_output.weight", [n_head * hd, d], T_F32, phase=5),
        tensor("blk.0.post_attention_norm.weight", [d], T_F32, fill=1.0),
        tensor("blk.0.ffn_norm.weight", [d], T_F32, fill=1.0),
        tensor("blk.0.ffn_gate.weight", [d, ff], T_F32, phase=6),
        tensor("blk.0.ffn_up.weight", [d, ff], T_F32, phase=7),
        tensor("blk.0.ffn_down.weight", [ff, d], T_F32, phase=8),
        tensor("blk.0.post_ffw_norm.weight", [d], T_F32, fill=1.0),
    ]
    return gguf(kvs, tensors)


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    out_dir = sys.argv[1] if len(sys.argv) > 1 else os.path.join(here, "..", "seeds", "gguf_parse")
    os.makedirs(out_dir, exist_ok=True)
    for name, build in [("tiny_all_types", all_types), ("tiny_llama", llama),
                        ("tiny_qwen2", qwen2), ("tiny_gemma3", gemma3)]:
        data = build()
        path = os.path.join(out_dir, name + ".gguf")
        with open(path, "wb") as f:
            f.write(data)
        print("%s: %d bytes" % (path, len(data)))


if __name__ == "__main__":
    main()
