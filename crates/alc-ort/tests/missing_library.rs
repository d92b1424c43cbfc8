//! A wrong ORT_DYLIB_PATH is an error that says how to fix it, never a panic. Its own test
//! binary with a single test: the variable is process-global.

use alc_ort::{OrtEncoder, OrtError};

fn set_path(p: &std::path::Path) {
    // SAFETY (edition 2021: safe to call): this binary has one test, so no other thread
    // reads the environment meanwhile.
    std::env::set_var("ORT_DYLIB_PATH", p);
}

#[test]
fn wrong_library_paths_are_errors() {
    let dir = std::env::temp_dir().join(format!("alc-ort-missing-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();

    // A path that does not exist.
    set_path(&dir.join("libonnxruntime.so.1.32.0"));
    let err = alc_ort::find_library().unwrap_err();
    assert!(matches!(err, OrtError::LibraryPathMissing { .. }), "{err}");
    let err = alc_ort::runtime().unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("ORT_DYLIB_PATH") && msg.contains("libonnxruntime.so"),
        "{msg}"
    );
    eprintln!("nonexistent: {msg}");

    // A text file named like the library.
    let text = dir.join("libonnxruntime.so");
    std::fs::write(&text, "not a shared library\n").unwrap();
    set_path(&text);
    let err = alc_ort::runtime().unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, OrtError::LibraryLoad { .. }), "{msg}");
    assert!(
        msg.contains("pip install onnxruntime==1.32.0") && msg.contains("ORT_DYLIB_PATH"),
        "{msg}"
    );
    eprintln!("text file: {msg}");

    // A real shared library that is not ONNX Runtime.
    let other = [
        "/lib/x86_64-linux-gnu/libm.so.6",
        "/usr/lib/x86_64-linux-gnu/libm.so.6",
        "/lib64/libm.so.6",
    ]
    .iter()
    .map(std::path::Path::new)
    .find(|p| p.is_file());
    if let Some(other) = other {
        set_path(other);
        let err = alc_ort::runtime().unwrap_err();
        let msg = err.to_string();
        assert!(matches!(err, OrtError::LibraryLoad { .. }), "{msg}");
        assert!(
            msg.contains("OrtGetApiBase") && msg.contains("ORT_DYLIB_PATH"),
            "{msg}"
        );
        eprintln!("other library: {msg}");
    }

    // Sessions report the same error instead of panicking inside ort.
    set_path(&text);
    let err = OrtEncoder::from_bytes(b"whatever", 1).unwrap_err();
    assert!(matches!(err, OrtError::LibraryLoad { .. }), "{err}");

    // A failed attempt is not cached: the real library still loads afterwards.
    std::env::remove_var("ORT_DYLIB_PATH");
    match alc_ort::find_library() {
        Ok(real) => {
            set_path(&real);
            let rt = alc_ort::runtime().unwrap();
            eprintln!(
                "then loaded ONNX Runtime {} from {}",
                rt.version(),
                rt.path().display()
            );
            assert!(rt.version().starts_with("1."), "{}", rt.version());
        }
        Err(e) => eprintln!("SKIP reload: {e}"),
    }
    std::fs::remove_dir_all(&dir).unwrap();
}
