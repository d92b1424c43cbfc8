//! `alc verify`: packages (digests, structure, compatibility, self-check), sealed
//! packages (every block authenticated, then the package checks on the plaintext in
//! memory), and with `--abi` foreign model libraries (crate alc-abi, docs/ABI.md).
//! Exit codes: 0 every file passed, 1 a check failed, 2 an input was unreadable.

use crate::registry;
use alc_convert::verify::{verify_file, verify_package, Status, VerifyOptions, VerifyReport};
use anyhow::Result;
use clap::Args;
use std::path::PathBuf;

#[derive(Args)]
pub struct VerifyArgs {
    /// Package or GGUF files, or registry names.
    #[arg(required = true, value_name = "FILE")]
    pub files: Vec<PathBuf>,
    /// Print one JSON report per file (docs/FORMAT.md, Part G) instead of text.
    #[arg(long)]
    pub json: bool,
    /// Skip the self-check (which evaluates the model: seconds for large ones).
    #[arg(long)]
    pub no_self_check: bool,
    /// Threads for the self-check's CPU backend.
    #[arg(short = 't', long, default_value_t = 2)]
    pub threads: usize,
    /// Check model libraries (.o, .a, .so, .dylib, tar of objects) against this ABI
    /// profile (built-in: tvm-ffi, tvm-legacy; or one from --profiles) instead.
    #[arg(long, value_name = "PROFILE")]
    pub abi: Option<String>,
    /// TOML file of user ABI profiles (docs/ABI.md).
    #[arg(long, value_name = "FILE", requires = "abi")]
    pub profiles: Option<PathBuf>,
    /// Runtime library that must export every symbol the model libraries need.
    #[arg(long, value_name = "LIB", requires = "abi")]
    pub runtime: Option<PathBuf>,
    /// Key for sealed packages (docs/SEALED.md).
    #[command(flatten)]
    pub key: crate::seal::KeyArgs,
}

/// Exit code of the worst outcome.
pub fn verify(a: VerifyArgs) -> Result<i32> {
    let opts = VerifyOptions {
        threads: a.threads.max(1),
        self_check: !a.no_self_check,
    };
    if let Some(profile) = &a.abi {
        return crate::abi::verify_abi(
            profile,
            a.profiles.as_deref(),
            a.runtime.as_deref(),
            &a.files,
            a.json,
        );
    }
    let mut code = 0;
    for f in &a.files {
        let path = match registry::resolve_model(f) {
            Ok(p) => p,
            Err(e) => {
                eprintln!("error: {}: unreadable: {e:#}", f.display());
                code = 2;
                continue;
            }
        };
        if alc_seal::is_sealed(&path) {
            match crate::seal::open_gguf(&path, &a.key) {
                Ok(file) => {
                    let r = verify_file(std::sync::Arc::new(file), &opts);
                    code = code.max(emit(&r, a.json)?);
                }
                Err(e) => {
                    // The seal errors name the file.
                    eprintln!("error: {e:#}");
                    code = code.max(crate::seal::exit_code(&e));
                }
            }
            continue;
        }
        let report = verify_package(&path, &opts).map_err(anyhow::Error::from);
        match report {
            Err(e) => {
                eprintln!("error: {}: unreadable: {e:#}", f.display());
                code = 2;
            }
            Ok(r) => code = code.max(emit(&r, a.json)?),
        }
    }
    Ok(code)
}

/// Print a report; its exit code.
fn emit(r: &VerifyReport, json: bool) -> Result<i32> {
    if json {
        println!("{}", serde_json::to_string(r)?);
    } else {
        print_report(r);
    }
    Ok(if r.passed { 0 } else { 1 })
}

fn print_report(r: &VerifyReport) {
    let kind = match r.format_version {
        Some(v) => format!("alc package, format {v}"),
        None => "GGUF file (no alc manifest)".into(),
    };
    println!(
        "{}: {} ({kind}, {})",
        r.file.display(),
        if r.passed { "ok" } else { "FAILED" },
        r.architecture.as_deref().unwrap_or("unknown architecture")
    );
    for c in &r.checks {
        let mark = match c.status {
            Status::Ok => "ok",
            Status::Failed => "FAILED",
            Status::Skipped => "skipped",
        };
        println!("  {:<14}{mark:<8} {}", c.name, c.summary);
        for f in &c.findings {
            println!("    {}: {}; fix: {}", f.what, f.problem, f.fix);
        }
    }
}
