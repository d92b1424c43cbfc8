#!/usr/bin/env bash
# The project's test command (README, .ci/run): fetch the real models, check
# formatting and lints, run every test in release mode.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
scripts/fetch-models.sh
# llama.cpp as a Python wheel, for crates/alc-convert/tests/llamacpp.rs (which skips
# without it): packages must load and agree there.
python3 -m pip install --quiet xllamacpp==2026.10.11549
# The Hugging Face tokenizers library, for crates/alc-convert/tests/export.rs (exported
# tokenizer.json files must give llama.cpp's ids there; skips without it).
python3 -m pip install --quiet tokenizers==0.23.3
# The TVM FFI runtime library, for crates/alc-abi/tests/third_party.rs (real runtime
# exports for `alc verify --abi --runtime`; skips without it).
python3 -m pip install --quiet apache-tvm-ffi==0.1.15.post2
# ONNX Runtime, loaded at run time by crates/alc-ort (its tests skip without it).
python3 -m pip install --quiet onnxruntime==1.32.0
# The official OpenAI client, for crates/alc-cli/tests/serve.rs (`alc serve` driven by
# scripts/openai_client_check.py; skips without it).
python3 -m pip install --quiet openai==2.54.0
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --release -- -D warnings
# The C ABI as phones build it (docs/CAPI.md, "Building for Android"): the crate and
# everything under it must type-check without warnings for ARM64 Android, where the
# x86 kernels are compiled out. Linking needs the NDK, so this checks, not builds.
if rustup target add aarch64-linux-android >/dev/null 2>&1; then
  cargo clippy --release --target aarch64-linux-android -p alc-capi -- -D warnings
else
  echo "test.sh: rustup could not add aarch64-linux-android; skipping the Android check" >&2
fi
cargo test --workspace --release --no-fail-fast
# ARM64 Linux under user-mode emulation (qemu-aarch64; .ci/run installs it with the
# cross linker): the NEON kernels (crates/alc-quant/src/neon.rs) against their
# scalar references with the Armv8.2 dot product (qemu's default CPU) and without it
# (QEMU_CPU=cortex-a53), the CPU backend's conformance kit, and SmolLM2's greedy
# continuations against llama.cpp's goldens, end to end.
if command -v qemu-aarch64 >/dev/null && command -v aarch64-linux-gnu-gcc >/dev/null \
  && rustup target add aarch64-unknown-linux-gnu >/dev/null 2>&1; then
  export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc
  export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_RUNNER="qemu-aarch64 -L /usr/aarch64-linux-gnu"
  arm=(--release --target aarch64-unknown-linux-gnu)
  cargo clippy "${arm[@]}" -p alc-quant -p alc-kernels --all-targets -- -D warnings
  cargo test "${arm[@]}" -p alc-quant -p alc-kernels
  QEMU_CPU=cortex-a53 cargo test "${arm[@]}" -p alc-quant --test kernels
  cargo test "${arm[@]}" -p alc-engine --test engine greedy_smollm2
else
  echo "test.sh: no qemu-aarch64, aarch64-linux-gnu-gcc or aarch64 Rust target; skipping the ARM64 tests" >&2
fi
