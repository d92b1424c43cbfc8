//! AtomicFile: the final name changes only at commit, and nothing is left behind.

use alc_format::{AtomicFile, FormatError};
use std::io::Write;
use std::path::Path;

fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

#[test]
fn commit_replaces_the_old_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("model.gguf");
    std::fs::write(&path, b"old").unwrap();
    let mut f = AtomicFile::create(&path).unwrap();
    assert_eq!(f.path(), path);
    let temp = f.temp_path().to_path_buf();
    assert_eq!(temp.parent(), Some(dir.path()));
    assert!(temp.exists());
    f.write_all(b"new ").unwrap();
    f.write_all(&[b'x'; 3 << 20]).unwrap(); // more than the 1 MiB buffer
    f.flush().unwrap();
    // Not visible before the commit.
    assert_eq!(std::fs::read(&path).unwrap(), b"old");
    f.commit().unwrap();
    let got = std::fs::read(&path).unwrap();
    assert_eq!(got.len(), 4 + (3 << 20));
    assert!(got.starts_with(b"new x"));
    assert!(!temp.exists());
    assert_eq!(names(dir.path()), ["model.gguf"]);
}

#[test]
fn commit_creates_a_new_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("fresh.json");
    let mut f = AtomicFile::create(&path).unwrap();
    f.write_all(b"{}").unwrap(); // stays in the buffer until commit
    f.commit().unwrap();
    assert_eq!(std::fs::read(&path).unwrap(), b"{}");
    assert_eq!(names(dir.path()), ["fresh.json"]);
}

#[cfg(unix)]
#[test]
fn committed_file_has_the_permissions_of_a_new_file() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let plain = dir.path().join("plain");
    std::fs::File::create(&plain).unwrap();
    let path = dir.path().join("atomic");
    AtomicFile::create(&path).unwrap().commit().unwrap();
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&path), mode(&plain));
}

#[test]
fn drop_without_commit_leaves_the_old_file_and_no_temp() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("model.gguf");
    std::fs::write(&path, b"old").unwrap();
    let temp;
    {
        let mut f = AtomicFile::create(&path).unwrap();
        temp = f.temp_path().to_path_buf();
        f.write_all(&[7; 2 << 20]).unwrap();
        f.write_all(b"tail in the buffer").unwrap();
    }
    assert!(!temp.exists());
    assert_eq!(std::fs::read(&path).unwrap(), b"old");
    assert_eq!(names(dir.path()), ["model.gguf"]);

    // Same when no file existed: nothing appears.
    let other = dir.path().join("never.gguf");
    drop(AtomicFile::create(&other).unwrap());
    assert!(!other.exists());
    assert_eq!(names(dir.path()), ["model.gguf"]);
}

#[test]
fn panic_while_writing_leaves_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.gguf");
    let p = path.clone();
    let r = std::panic::catch_unwind(move || {
        let mut f = AtomicFile::create(&p).unwrap();
        f.write_all(b"partial").unwrap();
        panic!("converter bug");
    });
    assert!(r.is_err());
    assert!(names(dir.path()).is_empty());
}

#[test]
fn errors_name_the_path_and_the_fix() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("no/such/dir/model.gguf");
    let e = AtomicFile::create(&missing).unwrap_err();
    let msg = e.to_string();
    assert!(matches!(e, FormatError::Write { .. }), "{msg}");
    assert!(msg.contains(&missing.display().to_string()), "{msg}");
    assert!(msg.contains("check that the directory"), "{msg}");

    let e = AtomicFile::create(dir.path()).unwrap_err().to_string();
    assert!(e.contains("directory"), "{e}");

    let f = AtomicFile::create(dir.path().join("x")).unwrap();
    let msg = f
        .error(
            "writing tensor 'w'",
            std::io::Error::from(std::io::ErrorKind::StorageFull),
        )
        .to_string();
    assert!(msg.contains("writing tensor 'w' failed"), "{msg}");
    assert!(
        msg.contains(&format!(
            "free space on the disk that holds {}",
            dir.path().display()
        )),
        "{msg}"
    );
}
