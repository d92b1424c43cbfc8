#!/usr/bin/env bash
# The project's test command (README, .ci/run): fetch the real models, check
# formatting and lints, run every test in release mode.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
scripts/fetch-models.sh
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --release -- -D warnings
cargo test --workspace --release
