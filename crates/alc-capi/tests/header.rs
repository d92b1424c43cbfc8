//! include/alc.h is committed; this test regenerates it with cbindgen (from src/ and
//! cbindgen.toml) and fails when the two differ. `ALC_BLESS_HEADER=1` rewrites it.

use std::path::Path;

#[test]
fn header_is_up_to_date() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let config = cbindgen::Config::from_file(dir.join("cbindgen.toml")).expect("cbindgen.toml");
    let bindings = cbindgen::Builder::new()
        .with_crate(dir)
        .with_config(config)
        .generate()
        .expect("cbindgen failed on alc-capi");
    let mut fresh = Vec::new();
    bindings.write(&mut fresh);
    let fresh = String::from_utf8(fresh).expect("UTF-8 header");
    let path = dir.join("include/alc.h");
    if std::env::var("ALC_BLESS_HEADER").as_deref() == Ok("1") {
        std::fs::write(&path, &fresh).expect("write include/alc.h");
        return;
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == fresh,
        "{} is out of date with src/: run `ALC_BLESS_HEADER=1 cargo test -p alc-capi --release --test header` and commit it",
        path.display()
    );
    assert!(
        fresh.contains("alc_status alc_open("),
        "header lacks alc_open"
    );
    assert!(
        !fresh.contains("Java_"),
        "JNI natives leaked into the C header"
    );
}
