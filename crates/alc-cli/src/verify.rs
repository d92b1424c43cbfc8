//! `alc verify`: packages (digests, structure, compatibility, self-check).
//! Exit codes: 0 every file passed, 1 a check failed, 2 an input was unreadable.

use crate::registry;
use alc_convert::verify::{verify_package, Status, VerifyOptions, VerifyReport};
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
}

/// Exit code of the worst outcome.
pub fn verify(a: VerifyArgs) -> Result<i32> {
    let opts = VerifyOptions {
        threads: a.threads.max(1),
        self_check: !a.no_self_check,
    };
    let mut code = 0;
    for f in &a.files {
        let report = registry::resolve_model(f)
            .and_then(|p| verify_package(&p, &opts).map_err(anyhow::Error::from));
        match report {
            Err(e) => {
                eprintln!("error: {}: unreadable: {e:#}", f.display());
                code = 2;
            }
            Ok(r) => {
                if a.json {
                    println!("{}", serde_json::to_string(&r)?);
                } else {
                    print_report(&r);
                }
                if !r.passed && code == 0 {
                    code = 1;
                }
            }
        }
    }
    Ok(code)
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
