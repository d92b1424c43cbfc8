//! Builders of real test binaries: C sources compiled with the system C compiler (`cc`),
//! static archives made with `ar rcs`, tars written with the `tar` crate or, for the
//! malformed cases, header by header here.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

/// Run a command; panic with its output when it fails (a broken test environment).
fn run(cmd: &mut Command) {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e} (the ABI tests need cc and ar)"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Compile `src` (C) into the relocatable object `dir/name`.
pub fn cc_object(dir: &Path, name: &str, src: &str) -> PathBuf {
    let c = dir.join(format!("{name}.c"));
    std::fs::write(&c, src).unwrap();
    let out = dir.join(name);
    run(Command::new("cc")
        .args(["-c", "-O1", "-fPIC", "-o"])
        .arg(&out)
        .arg(&c));
    std::fs::remove_file(&c).unwrap();
    out
}

/// Compile `src` (C) into the shared library `dir/name`.
pub fn cc_shared(dir: &Path, name: &str, src: &str) -> PathBuf {
    let c = dir.join(format!("{name}.c"));
    std::fs::write(&c, src).unwrap();
    let out = dir.join(name);
    run(Command::new("cc")
        .args(["-shared", "-fPIC", "-O1", "-o"])
        .arg(&out)
        .arg(&c));
    std::fs::remove_file(&c).unwrap();
    out
}

/// `ar rcs dir/name members…` (members given by path; stored under their file names).
pub fn ar(dir: &Path, name: &str, members: &[&Path]) -> PathBuf {
    let out = dir.join(name);
    let mut cmd = Command::new("ar");
    cmd.arg("rcs").arg(&out);
    for m in members {
        cmd.arg(m);
    }
    run(&mut cmd);
    out
}

/// A tar of `(member name, bytes)` written with the `tar` crate.
pub fn tar_of(entries: &[(&str, &[u8])]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (name, data) in entries {
        let mut h = tar::Header::new_ustar();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_entry_type(tar::EntryType::Regular);
        b.append_data(&mut h, name, *data).unwrap();
    }
    b.into_inner().unwrap()
}

/// One raw ustar header block, written field by field so that names the `tar` crate's
/// builder refuses (`..`, absolute paths) and sizes with no data behind them can be made.
pub fn raw_header(name: &str, size: u64, typeflag: u8, link: &str) -> [u8; 512] {
    let mut h = [0u8; 512];
    assert!(name.len() <= 100 && link.len() <= 100);
    h[..name.len()].copy_from_slice(name.as_bytes());
    h[100..108].copy_from_slice(b"0000644\0");
    h[108..116].copy_from_slice(b"0000000\0");
    h[116..124].copy_from_slice(b"0000000\0");
    let size_field = format!("{size:011o}\0");
    h[124..136].copy_from_slice(size_field.as_bytes());
    h[136..148].copy_from_slice(b"00000000000\0");
    h[156] = typeflag;
    h[157..157 + link.len()].copy_from_slice(link.as_bytes());
    h[257..263].copy_from_slice(b"ustar\0");
    h[263..265].copy_from_slice(b"00");
    h[148..156].copy_from_slice(b"        ");
    let sum: u32 = h.iter().map(|&b| u32::from(b)).sum();
    let ck = format!("{sum:06o}\0 ");
    h[148..156].copy_from_slice(ck.as_bytes());
    h
}

/// Append a regular member (header, data, padding) to a raw tar.
pub fn raw_file(out: &mut Vec<u8>, name: &str, data: &[u8]) {
    out.extend_from_slice(&raw_header(name, data.len() as u64, b'0', ""));
    out.extend_from_slice(data);
    let pad = (512 - data.len() % 512) % 512;
    out.extend(std::iter::repeat_n(0u8, pad));
}

/// End a raw tar with its two zero blocks.
pub fn raw_end(out: &mut Vec<u8>) {
    out.extend(std::iter::repeat_n(0u8, 1024));
}

/// Files in `dir`, sorted by name.
pub fn listing(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

/// C declarations shared by the sources below.
pub const PRELUDE: &str = r#"
typedef struct { int type_index; int pad; long long v; } Any;
"#;

/// A `lib0.o` as TVM on tvm-ffi generates it: calls through TVMFFIFunctionCall, raises
/// errors with TVMFFIErrorSetRaisedFromCStr, allocates with TVMBackendAllocWorkspace
/// (shared by both ABIs), uses libc/libm, and calls `devc_helper` defined in devc.o.
pub const FFI_LIB0: &str = r#"
typedef struct { int type_index; int pad; long long v; } Any;
extern int TVMFFIFunctionCall(void* f, Any* args, int n, Any* r);
extern void TVMFFIErrorSetRaisedFromCStr(const char* kind, const char* msg);
extern void* TVMBackendAllocWorkspace(int dt, int id, unsigned long long n, int c, int b);
extern int devc_helper(int);
extern float expf(float);
extern void* memcpy(void*, const void*, unsigned long);
float model_kernel(void* f, float* dst, const float* src, int n) {
  Any a[1]; Any r;
  a[0].type_index = 1; a[0].v = n;
  if (TVMFFIFunctionCall(f, a, 1, &r) != 0) {
    TVMFFIErrorSetRaisedFromCStr("RuntimeError", "call failed");
    return -1.0f;
  }
  void* w = TVMBackendAllocWorkspace(1, 0, 64, 2, 32);
  memcpy(dst, src, (unsigned long)n * sizeof(float));
  return expf(dst[0]) + (float)devc_helper(n) + (w != 0);
}
"#;

/// A `devc.o` on tvm-ffi: registers the library blob with the system library at load.
pub const FFI_DEVC: &str = r#"
extern int TVMFFIEnvModRegisterSystemLibSymbol(const char* name, void* sym);
static char blob[16] = "tvm-blob";
void* __tvm_ffi__library_ctx = 0;
int devc_helper(int x) { return x + 1; }
__attribute__((constructor)) static void register_blob(void) {
  TVMFFIEnvModRegisterSystemLibSymbol("__tvm_ffi__library_bin", blob);
}
"#;

/// A `lib0.o` of the legacy PackedFunc ABI.
pub const LEGACY_LIB0: &str = r#"
typedef union { long long v_int64; double v_float64; void* v_handle; } TVMValue;
extern int TVMFuncCall(void* f, TVMValue* args, int* codes, int n, TVMValue* r, int* rc);
extern void TVMAPISetLastError(const char* msg);
extern int TVMBackendGetFuncFromEnv(void* mod, const char* name, void** out);
extern void* TVMBackendAllocWorkspace(int dt, int id, unsigned long long n, int c, int b);
void* __tvm_module_ctx = 0;
int legacy_kernel(int n) {
  void* f = 0; TVMValue a[1]; int codes[1] = {0}; TVMValue r; int rc;
  if (TVMBackendGetFuncFromEnv(__tvm_module_ctx, "vm.builtin.alloc", &f) != 0) return -1;
  a[0].v_int64 = n;
  if (TVMFuncCall(f, a, codes, 1, &r, &rc) != 0) { TVMAPISetLastError("call failed"); return -1; }
  return TVMBackendAllocWorkspace(1, 0, 64, 2, 32) != 0;
}
"#;

/// A `devc.o` of the legacy ABI.
pub const LEGACY_DEVC: &str = r#"
extern int TVMBackendRegisterSystemLibSymbol(const char* name, void* ptr);
static char blob[16] = "tvm-blob";
__attribute__((constructor)) static void register_blob(void) {
  TVMBackendRegisterSystemLibSymbol("__tvm_dev_mblob", blob);
}
"#;

/// An object that references both ABIs.
pub const MIXED: &str = r#"
typedef struct { int type_index; int pad; long long v; } Any;
extern int TVMFFIFunctionCall(void* f, Any* args, int n, Any* r);
extern void TVMAPISetLastError(const char* msg);
int mixed_kernel(void* f) {
  Any r;
  if (TVMFFIFunctionCall(f, 0, 0, &r) != 0) { TVMAPISetLastError("x"); return -1; }
  return 0;
}
"#;

/// An object with no runtime calls at all (libm only).
pub const PLAIN: &str = r#"
extern float tanhf(float);
float plain_kernel(float x) { return tanhf(x) * 2.0f; }
"#;

/// Uses only the workspace allocator, which both ABIs have: the runtime API, but none
/// of either profile's expected symbols.
pub const WORKSPACE_ONLY: &str = r#"
extern void* TVMBackendAllocWorkspace(int dt, int id, unsigned long long n, int c, int b);
extern int TVMBackendFreeWorkspace(int dt, int id, void* p);
int ws_kernel(void) {
  void* p = TVMBackendAllocWorkspace(1, 0, 64, 2, 32);
  return TVMBackendFreeWorkspace(1, 0, p);
}
"#;
