#!/usr/bin/env python3
"""Drive a running `alc serve` with the official `openai` Python client.

Usage: openai_client_check.py BASE_URL CHAT_MODEL [EMBED_MODEL]

Checks non-streamed and streamed chat, a stop sequence, max_tokens, that temperature 0
twice gives identical text, raw completions, embeddings (the client's default base64
transfer and plain floats), the models list, and that errors arrive in OpenAI's shape
as the client's typed exceptions. Prints one JSON line with what it saw; exits 1 with
a message on the first failed check (used by crates/alc-cli/tests/serve.rs).
"""

import json
import math
import sys

import openai


def check(cond, what):
    if not cond:
        print(f"FAILED: {what}", file=sys.stderr)
        sys.exit(1)


def main():
    if len(sys.argv) not in (3, 4):
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    base, chat_model = sys.argv[1], sys.argv[2]
    embed_model = sys.argv[3] if len(sys.argv) == 4 else None
    client = openai.OpenAI(base_url=base, api_key="unused", max_retries=0, timeout=300)
    seen = {"openai": openai.__version__}

    ids = [m.id for m in client.models.list()]
    check(chat_model in ids, f"{chat_model} in /v1/models {ids}")
    if embed_model:
        check(embed_model in ids, f"{embed_model} in /v1/models {ids}")
    seen["models"] = ids

    msgs = [{"role": "user", "content": "Write one sentence about the sea."}]
    a = client.chat.completions.create(model=chat_model, messages=msgs, temperature=0, max_tokens=24)
    b = client.chat.completions.create(model=chat_model, messages=msgs, temperature=0, max_tokens=24)
    text = a.choices[0].message.content
    check(a.object == "chat.completion", f"object {a.object}")
    check(a.choices[0].message.role == "assistant", "assistant role")
    check(len(text) > 0, "non-empty reply")
    check(text == b.choices[0].message.content, f"temperature 0 is deterministic: {text!r} vs {b.choices[0].message.content!r}")
    check(a.usage.completion_tokens <= 24 and a.usage.prompt_tokens > 0, f"usage {a.usage}")
    seen["chat"] = text

    parts, finish, usage = [], None, None
    stream = client.chat.completions.create(
        model=chat_model, messages=msgs, temperature=0, max_tokens=24, stream=True,
        stream_options={"include_usage": True},
    )
    for chunk in stream:
        if chunk.usage is not None:
            usage = chunk.usage
        for c in chunk.choices:
            if c.delta.content:
                parts.append(c.delta.content)
            if c.finish_reason:
                finish = c.finish_reason
    streamed = "".join(parts)
    check(streamed == text, f"streamed text equals the non-streamed one: {streamed!r} vs {text!r}")
    check(finish == a.choices[0].finish_reason, f"stream finish_reason {finish}")
    check(usage is not None and usage.completion_tokens == a.usage.completion_tokens, f"stream usage {usage}")
    seen["stream_chunks"] = len(parts)

    short = client.chat.completions.create(model=chat_model, messages=msgs, temperature=0, max_tokens=3)
    check(short.usage.completion_tokens == 3, f"max_tokens 3 gave {short.usage.completion_tokens}")
    check(short.choices[0].finish_reason == "length", f"finish_reason {short.choices[0].finish_reason}")

    # A stop string taken from the middle of the greedy reply cuts it there.
    words = text.split()
    check(len(words) >= 3, f"reply long enough for a stop check: {text!r}")
    stop = " " + words[2]
    cut = client.chat.completions.create(model=chat_model, messages=msgs, temperature=0, max_tokens=24, stop=[stop])
    want = text[: text.index(stop)]
    check(cut.choices[0].message.content == want, f"stop {stop!r}: {cut.choices[0].message.content!r} vs {want!r}")
    check(cut.choices[0].finish_reason == "stop", f"stop finish_reason {cut.choices[0].finish_reason}")
    seen["stop"] = {"stop": stop, "text": want}

    c = client.completions.create(model=chat_model, prompt="The capital of France is", temperature=0, max_tokens=5, seed=1)
    check(c.object == "text_completion" and len(c.choices[0].text) > 0, f"completion {c}")
    seen["completion"] = c.choices[0].text

    if embed_model:
        texts = ["The cat sits on the mat.", "A feline rests on a rug.", "Quarterly tax filing deadlines."]
        e = client.embeddings.create(model=embed_model, input=texts)  # base64 transfer
        f = client.embeddings.create(model=embed_model, input=texts, encoding_format="float")
        check(len(e.data) == 3 and [d.index for d in e.data] == [0, 1, 2], "three embeddings in order")
        v = [d.embedding for d in e.data]
        check(all(len(x) == len(v[0]) for x in v) and len(v[0]) >= 16, "equal widths")
        for x, y in zip(v, (d.embedding for d in f.data)):
            check(max(abs(p - q) for p, q in zip(x, y)) < 1e-6, "base64 and float agree")
        norm = math.sqrt(sum(t * t for t in v[0]))
        check(abs(norm - 1) < 1e-3, f"unit vectors (norm {norm})")
        dot = lambda p, q: sum(s * t for s, t in zip(p, q))
        check(dot(v[0], v[1]) > dot(v[0], v[2]), "similar sentences are closer")
        check(e.usage.prompt_tokens > 0, f"embedding usage {e.usage}")
        one = client.embeddings.create(model=embed_model, input="hello")
        check(len(one.data) == 1, "a single string input")
        seen["embedding_dim"] = len(v[0])

    try:
        client.chat.completions.create(model="no-such-model", messages=msgs)
        check(False, "an unknown model is an error")
    except openai.NotFoundError as err:
        body = err.body
        check(err.status_code == 404, f"status {err.status_code}")
        check(isinstance(body, dict) and {"message", "type", "param", "code"} <= set(body), f"OpenAI error shape: {body}")
        check(chat_model in body["message"], f"the message lists the served models: {body['message']}")
        seen["error_404"] = body
    try:
        client.chat.completions.create(model=chat_model, messages=msgs, max_tokens=-1)
        check(False, "max_tokens -1 is an error")
    except openai.BadRequestError as err:
        check(err.body.get("param") == "max_tokens", f"param names max_tokens: {err.body}")
    print(json.dumps(seen))


if __name__ == "__main__":
    main()
