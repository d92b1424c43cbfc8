//! `alc verify --abi PROFILE [--profiles FILE] [--runtime LIB] FILE…`: check foreign model
//! libraries (MLC / TVM objects, archives, tars, shared libraries) against a runtime ABI
//! profile before deploying them. The checks, the report schema (`alc.abi/1`) and the
//! exit codes are documented in docs/ABI.md; the work is done by the alc-abi crate.

use alc_abi::{Finding, Limits, Report, Severity, Verdict};
use anyhow::{Context, Result};
use std::io::Write;
use std::path::{Path, PathBuf};

/// Exit code: every file passed.
const EXIT_OK: i32 = 0;
/// Exit code: a check failed.
const EXIT_FAILED: i32 = 1;
/// Exit code: an input (a file, the runtime, the profile file) could not be read, or a
/// report could not be saved.
const EXIT_UNREADABLE: i32 = 2;

/// Check `files` against the profile named `profile` (built-in, or from
/// `profiles_file`), and their needs against the `runtime` library if given. Prints a
/// summary per file (or, with `json`, each report as one line of JSON), saves each
/// report as `<file>.abi.json` next to its file, and returns the exit code: 0 all
/// passed, 1 a check failed, 2 an input was unreadable (that wins over 1). Problems with
/// the inputs are printed to stderr, one line each; `Err` only when stdout cannot be
/// written.
pub fn verify_abi(
    profile: &str,
    profiles_file: Option<&Path>,
    runtime: Option<&Path>,
    files: &[PathBuf],
    json: bool,
) -> Result<i32> {
    if files.is_empty() {
        eprintln!("error: no model library given to check");
        return Ok(EXIT_UNREADABLE);
    }
    let profile = match alc_abi::find_profile(profile, profiles_file) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("error: {e}");
            return Ok(EXIT_UNREADABLE);
        }
    };
    let limits = Limits::default();
    let runtime = match runtime {
        Some(path) => match alc_abi::inspect(path, &limits) {
            Ok(a) => Some(a),
            Err(e) => {
                eprintln!("error: runtime library: {e}");
                return Ok(EXIT_UNREADABLE);
            }
        },
        None => None,
    };
    let mut unreadable = false;
    let mut failed = false;
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    for file in files {
        let artifact = match alc_abi::inspect(file, &limits) {
            Ok(a) => a,
            Err(e) => {
                eprintln!("error: {e}");
                unreadable = true;
                continue;
            }
        };
        let report = alc_abi::check(&artifact, &profile, runtime.as_ref());
        failed |= report.verdict == Verdict::Failed;
        let saved = match alc_abi::save_report(&report, file) {
            Ok(p) => Some(p),
            Err(e) => {
                eprintln!("error: {e}");
                unreadable = true;
                None
            }
        };
        if json {
            let line = serde_json::to_string(&report).context("serialising the ABI report")?;
            writeln!(out, "{line}").context("writing to stdout")?;
        } else {
            write_summary(&mut out, &report, saved.as_deref()).context("writing to stdout")?;
        }
    }
    out.flush().context("writing to stdout")?;
    Ok(if unreadable {
        EXIT_UNREADABLE
    } else if failed {
        EXIT_FAILED
    } else {
        EXIT_OK
    })
}

fn severity_word(s: Severity) -> &'static str {
    match s {
        Severity::Error => "error",
        Severity::Warning => "warning",
        Severity::Info => "note",
    }
}

fn write_finding(out: &mut impl Write, f: &Finding) -> std::io::Result<()> {
    writeln!(out, "  {:<7} {}", severity_word(f.severity), f.message)
}

fn write_summary(out: &mut impl Write, r: &Report, saved: Option<&Path>) -> std::io::Result<()> {
    let verdict = match r.verdict {
        Verdict::Ok => "ok",
        Verdict::Failed => "FAILED",
    };
    let symbols: usize = r
        .members
        .iter()
        .map(|m| m.undefined.len() + m.weak_undefined.len())
        .sum();
    writeln!(
        out,
        "{}: {verdict} (profile {}; {} object(s), {symbols} undefined symbol(s))",
        r.file,
        r.profile,
        r.members.len()
    )?;
    if let Some(msg) = &r.message {
        writeln!(out, "  {msg}")?;
    }
    if let Some(fix) = &r.fix {
        writeln!(out, "  fix: {fix}")?;
    }
    for f in &r.findings {
        write_finding(out, f)?;
    }
    if let Some(rc) = &r.runtime {
        writeln!(
            out,
            "  runtime {}: {} needed, {} provided, {} from the system, {} missing",
            rc.runtime,
            rc.needed,
            rc.provided,
            rc.system,
            rc.missing.len()
        )?;
    }
    if let Some(p) = saved {
        writeln!(out, "  report: {}", p.display())?;
    }
    Ok(())
}
