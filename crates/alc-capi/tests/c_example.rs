//! Compiles examples/c/chat.c with the system C compiler (`$CC`, else `cc`) against
//! include/alc.h and the built libalc_capi.so, runs it on SmolLM2 and checks the
//! greedy completion.

mod support;

use std::process::Command;

#[test]
fn c_example_says_paris() {
    let Some(model) = alc_testdata::model("smollm2-135m-instruct-q4_1.gguf") else {
        return;
    };
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".into());
    if Command::new(&cc).arg("--version").output().is_err() {
        eprintln!("SKIP: no C compiler ({cc})");
        return;
    }
    let dir = support::crate_dir();
    let lib = support::lib_dir();
    let tmp = tempfile::tempdir().expect("temp dir");
    let exe = tmp.path().join("chat");
    let out = Command::new(&cc)
        .args(["-std=c11", "-Wall", "-Wextra", "-Werror", "-O1"])
        .arg("-I")
        .arg(dir.join("include"))
        .arg(dir.join("examples/c/chat.c"))
        .arg("-L")
        .arg(&lib)
        .arg("-lalc_capi")
        .arg(format!("-Wl,-rpath,{}", lib.display()))
        .arg("-o")
        .arg(&exe)
        .output()
        .expect("run the C compiler");
    assert!(
        out.status.success(),
        "compiling chat.c failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let run = Command::new(&exe)
        .arg(&model)
        .env("LD_LIBRARY_PATH", &lib)
        .output()
        .expect("run chat");
    let stdout = String::from_utf8_lossy(&run.stdout);
    let stderr = String::from_utf8_lossy(&run.stderr);
    eprintln!("{stdout}{stderr}");
    assert!(run.status.success(), "chat exited with {}", run.status);
    let first = stdout
        .lines()
        .find(|l| l.starts_with("The capital of France is"))
        .expect("the completion line");
    assert!(first.contains(" Paris"), "no ' Paris' in {first:?}");
    let streamed = stdout
        .lines()
        .find_map(|l| l.strip_prefix("stream:"))
        .expect("the stream line");
    assert!(
        first.ends_with(streamed),
        "the pulled tokens {streamed:?} differ from the callback's {first:?}"
    );
    assert!(stdout.contains("double free: INVALID_HANDLE"), "{stdout}");
}
