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
