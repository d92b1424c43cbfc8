//! Shared by the CLI test suites: run the `alc` binary with `ALC_HOME` set.

use std::path::Path;
use std::process::{Command, Output};

/// Run `alc ARGS` with `ALC_HOME=home` and no stdin; its stderr is echoed.
pub fn alc(home: &Path, args: &[&str]) -> Output {
    let out = Command::new(env!("CARGO_BIN_EXE_alc"))
        .args(args)
        .env("ALC_HOME", home)
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    eprint!("{}", String::from_utf8_lossy(&out.stderr));
    out
}
