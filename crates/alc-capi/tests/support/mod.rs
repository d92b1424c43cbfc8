//! Shared by the integration tests that drive the built library from C and Java.

#![allow(dead_code)]

use std::path::{Path, PathBuf};

/// The directory with libalc_capi.so built for this test run: the test executable sits
/// in target/<profile>/deps, and cargo builds the library's cdylib there (and copies it
/// to target/<profile>) before running integration tests.
pub fn lib_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    let deps = exe.parent().expect("deps dir").to_path_buf();
    for d in [
        deps.clone(),
        deps.parent().expect("profile dir").to_path_buf(),
    ] {
        if d.join(lib_name()).exists() {
            return d;
        }
    }
    panic!(
        "{} not found next to {} or in its parent; build with `cargo build -p alc-capi`",
        lib_name(),
        exe.display()
    );
}

pub fn lib_name() -> &'static str {
    if cfg!(target_os = "macos") {
        "libalc_capi.dylib"
    } else {
        "libalc_capi.so"
    }
}

pub fn crate_dir() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// A program on PATH (or the given absolute path) that runs.
pub fn have(prog: &str) -> bool {
    std::process::Command::new(prog)
        .arg("-version")
        .output()
        .is_ok()
}

/// The `alc` binary (crates/alc-cli) of this build, for tests that compile a package
/// from a checkpoint: `$ALC_BIN` if set, else `alc` in the profile directory beside
/// this test executable (a workspace `cargo test` builds it there), else built there
/// now with `cargo build -p alc-cli --bin alc` in the profile of this test run.
pub fn alc_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("ALC_BIN") {
        return PathBuf::from(p);
    }
    let exe = std::env::current_exe().expect("test executable path");
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("target/<profile>/deps");
    let bin = profile_dir.join(format!("alc{}", std::env::consts::EXE_SUFFIX));
    if bin.exists() {
        return bin;
    }
    let profile = match profile_dir.file_name().and_then(|n| n.to_str()) {
        Some("debug") | None => "dev",
        Some(p) => p,
    };
    let target_dir = profile_dir.parent().expect("target dir");
    eprintln!(
        "{} is missing: building it (cargo build --profile {profile} -p alc-cli --bin alc)",
        bin.display()
    );
    let st = std::process::Command::new(option_env!("CARGO").unwrap_or("cargo"))
        .args([
            "build",
            "--profile",
            profile,
            "-p",
            "alc-cli",
            "--bin",
            "alc",
        ])
        .arg("--target-dir")
        .arg(target_dir)
        .current_dir(crate_dir())
        .status()
        .expect("run cargo");
    assert!(
        st.success() && bin.exists(),
        "could not build {}; build it with `cargo build --release -p alc-cli` or set ALC_BIN",
        bin.display()
    );
    bin
}
