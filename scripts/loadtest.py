#!/usr/bin/env python3
"""Load test of an OpenAI-compatible server: N concurrent streaming chat clients.

Usage: loadtest.py URL MODEL [--clients 32] [--duration 120] [--max-tokens 128]
                   [--pid PID] [--json OUT]

Each client sends streaming /v1/chat/completions requests back to back (temperature
0, a prompt drawn from a fixed set, `stream_options.include_usage`) until the
duration ends; requests still running then are closed (not counted as errors).

Reported: requests completed, errors (non-200, broken streams, error events),
aggregate streamed tokens/s over the window (content events received inside it),
completion tokens/s from the servers' own usage counts over completed requests,
time to first token p50/p99, and, with --pid, the server's peak RSS (VmHWM) and
the largest RSS sampled every 0.5 s. Needs httpx (a dependency of openai).
"""

import argparse
import asyncio
import json
import sys
import time

import httpx

PROMPTS = [
    "Write a short story about a lighthouse keeper who finds a message in a bottle.",
    "Explain how a refrigerator works, step by step.",
    "List ten ideas for a rainy weekend at home and say why each is fun.",
    "Describe the water cycle to a ten-year-old.",
    "Write a Python function that checks whether a string is a palindrome, and explain it.",
    "What are the main differences between cats and dogs as pets?",
    "Give me a recipe for a simple tomato soup.",
    "Summarise the history of the bicycle in a few paragraphs.",
    "Write a polite email asking a neighbour to keep the noise down at night.",
    "Explain what a prime number is and give some examples.",
    "Describe a walk through a busy market in the morning.",
    "How do airplanes stay in the air? Explain simply.",
    "Write a poem about autumn leaves.",
    "What should I pack for a week of hiking in the mountains?",
    "Explain the rules of chess briefly.",
    "Tell me about the planets of the solar system.",
]


def pct(xs, p):
    if not xs:
        return None
    xs = sorted(xs)
    k = min(len(xs) - 1, max(0, int(round(p / 100 * (len(xs) - 1)))))
    return xs[k]


class Stats:
    def __init__(self):
        self.completed = 0
        self.errors = []
        self.events_in_window = 0
        self.usage_tokens = 0
        self.usage_time = 0.0
        self.ttft = []


async def one_request(client, url, model, prompt, max_tokens, stats, t_end):
    body = {
        "model": model,
        "messages": [{"role": "user", "content": prompt}],
        "max_tokens": max_tokens,
        "temperature": 0,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    t0 = time.monotonic()
    first = None
    usage = None
    done = False
    async with client.stream("POST", url + "/chat/completions", json=body) as r:
        if r.status_code != 200:
            text = (await r.aread()).decode("utf-8", "replace")[:200]
            stats.errors.append(f"HTTP {r.status_code}: {text}")
            return
        async for line in r.aiter_lines():
            if not line.startswith("data: "):
                continue
            data = line[6:].strip()
            if data == "[DONE]":
                done = True
                break
            ev = json.loads(data)
            if "error" in ev:
                stats.errors.append(f"error event: {ev['error']}")
                return
            if ev.get("usage"):
                usage = ev["usage"]
            for ch in ev.get("choices") or []:
                content = (ch.get("delta") or {}).get("content")
                if content:
                    now = time.monotonic()
                    if first is None:
                        first = now
                        stats.ttft.append(now - t0)
                    if now <= t_end:
                        stats.events_in_window += 1
    if not done:
        stats.errors.append("stream ended without [DONE]")
        return
    stats.completed += 1
    if usage and usage.get("completion_tokens"):
        stats.usage_tokens += usage["completion_tokens"]
        stats.usage_time += time.monotonic() - t0


async def client_loop(i, url, model, max_tokens, stats, t_end):
    timeout = httpx.Timeout(600.0, connect=10.0)
    async with httpx.AsyncClient(timeout=timeout, http2=False) as client:
        k = i
        while time.monotonic() < t_end:
            prompt = PROMPTS[k % len(PROMPTS)]
            k += 7
            try:
                await one_request(client, url, model, prompt, max_tokens, stats, t_end)
            except (httpx.HTTPError, json.JSONDecodeError) as e:
                stats.errors.append(f"{type(e).__name__}: {e}")


def rss(pid):
    """(VmRSS, VmHWM) in MiB, or (None, None)."""
    try:
        with open(f"/proc/{pid}/status") as f:
            v = {}
            for line in f:
                k, _, rest = line.partition(":")
                if k in ("VmRSS", "VmHWM"):
                    v[k] = int(rest.split()[0]) / 1024
            return v.get("VmRSS"), v.get("VmHWM")
    except OSError:
        return None, None


async def sample_rss(pid, box, stop):
    while not stop.is_set():
        r, _ = rss(pid)
        if r is not None:
            box[0] = max(box[0], r)
        try:
            await asyncio.wait_for(stop.wait(), 0.5)
        except asyncio.TimeoutError:
            pass


async def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("url", help="base URL, e.g. http://127.0.0.1:8080/v1")
    ap.add_argument("model")
    ap.add_argument("--clients", type=int, default=32)
    ap.add_argument("--duration", type=float, default=120.0)
    ap.add_argument("--max-tokens", type=int, default=128)
    ap.add_argument("--pid", type=int)
    ap.add_argument("--json", help="write the result here too")
    a = ap.parse_args()

    stats = Stats()
    start = time.monotonic()
    t_end = start + a.duration
    box = [0.0]
    stop = asyncio.Event()
    sampler = asyncio.create_task(sample_rss(a.pid, box, stop)) if a.pid else None
    tasks = [
        asyncio.create_task(client_loop(i, a.url, a.model, a.max_tokens, stats, t_end))
        for i in range(a.clients)
    ]
    # At the end of the window, close whatever is still streaming.
    await asyncio.wait(tasks, timeout=max(0.0, t_end - time.monotonic()))
    for t in tasks:
        t.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    window = time.monotonic() - start
    stop.set()
    if sampler:
        await sampler
    _, hwm = rss(a.pid) if a.pid else (None, None)
    res = {
        "schema": "alc.loadtest/1",
        "url": a.url,
        "model": a.model,
        "clients": a.clients,
        "duration_s": round(window, 2),
        "max_tokens": a.max_tokens,
        "completed": stats.completed,
        "errors": len(stats.errors),
        "error_samples": stats.errors[:5],
        "stream_tok_s": round(stats.events_in_window / a.duration, 2),
        "usage_tok_s_per_request": (
            round(stats.usage_tokens / stats.usage_time, 2) if stats.usage_time else None
        ),
        "ttft_p50_s": pct(stats.ttft, 50),
        "ttft_p99_s": pct(stats.ttft, 99),
        "peak_rss_mib": round(hwm, 1) if hwm else None,
        "max_sampled_rss_mib": round(box[0], 1) if a.pid else None,
    }
    print(json.dumps(res))
    if a.json:
        with open(a.json, "w") as f:
            json.dump(res, f, indent=1)
    return 1 if stats.errors else 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
