//! Compiles java/ai/alc/*.java and java/test/AlcTest.java with `javac` and runs the
//! test main against the built libalc_capi.so and SmolLM2. Skipped (with a message)
//! when javac/java are missing or the crate was built without the `jni` feature.

mod support;

use std::process::Command;

#[test]
fn java_bindings() {
    if !cfg!(feature = "jni") {
        eprintln!("SKIP: alc-capi built without the jni feature");
        return;
    }
    if !support::have("javac") || !support::have("java") {
        eprintln!("SKIP: javac/java not found (apt-get install openjdk-17-jdk-headless)");
        return;
    }
    let Some(model) = alc_testdata::model("smollm2-135m-instruct-q4_1.gguf") else {
        return;
    };
    let dir = support::crate_dir().join("java");
    let lib = support::lib_dir().join(support::lib_name());
    let tmp = tempfile::tempdir().expect("temp dir");
    let classes = tmp.path().join("classes");
    let mut javac = Command::new("javac");
    javac
        .arg("-Xlint:all")
        .arg("-Werror")
        .arg("-d")
        .arg(&classes);
    for f in ["Alc", "Session", "GenerateListener", "AlcException"] {
        javac.arg(dir.join(format!("ai/alc/{f}.java")));
    }
    javac.arg(dir.join("test/AlcTest.java"));
    let out = javac.output().expect("run javac");
    assert!(
        out.status.success(),
        "javac failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let loops = std::env::var("ALC_JAVA_LOOPS").unwrap_or_else(|_| "8".into());
    let mut child = Command::new("java")
        .arg("-Xcheck:jni")
        .arg(format!("-Dalc.library={}", lib.display()))
        .arg("-cp")
        .arg(&classes)
        .arg("AlcTest")
        .arg(&model)
        .arg(&loops)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run java");
    // A hang (e.g. a lost cancel) fails the test instead of blocking the suite.
    let limit = std::time::Duration::from_secs(300);
    let started = std::time::Instant::now();
    while child.try_wait().expect("wait for java").is_none() {
        if started.elapsed() > limit {
            let _ = child.kill();
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let run = child.wait_with_output().expect("java output");
    let stdout = String::from_utf8_lossy(&run.stdout);
    let stderr = String::from_utf8_lossy(&run.stderr);
    eprintln!("{stdout}{stderr}");
    assert!(run.status.success(), "AlcTest exited with {}", run.status);
    assert!(stdout.contains("ALL OK"), "AlcTest did not finish");
}
