//! Fuzz the model-library reader of `alc verify --abi` (`alc_abi::inspect_bytes`: ELF,
//! Mach-O, universal binaries, static archives, tars) and the checks on what it returns
//! (`alc_abi::check` with both built-in profiles, the artifact doubling as its own
//! runtime), then the JSON report.
//!
//! `Ok` or `Err` are both fine; a panic, a huge allocation or a hang is a bug. Limits are
//! small here (64 members, 1 MiB of members) so a declared size cannot make the target
//! allocate much. Useful seeds: objects from `cc -c`, `ar rcs` archives, tars of them.

#![no_main]

use alc_abi::{
    builtin_profiles, check, inspect_bytes, report_json, Limits, Report, Severity, Verdict,
};
use libfuzzer_sys::fuzz_target;

#[path = "common/verbose.rs"]
mod verbose;
use verbose::say;

fn sorted_unique(v: &[String]) -> bool {
    v.windows(2).all(|w| w[0] < w[1])
}

fuzz_target!(|data: &[u8]| {
    let limits = Limits {
        max_file_bytes: 16 << 20,
        max_member_bytes: 1 << 20,
        max_members: 64,
    };
    let artifact = match inspect_bytes("fuzz.bin", data, &limits) {
        Ok(a) => a,
        Err(e) => {
            let msg = e.to_string();
            assert!(!msg.contains('\n'), "multi-line error: {msg}");
            assert!(
                msg.contains("fuzz.bin"),
                "error without the file name: {msg}"
            );
            return say!("refused: {msg}");
        }
    };
    say!(
        "accepted: {:?} with {} member(s)",
        artifact.kind,
        artifact.members.len()
    );
    assert!(!artifact.members.is_empty());
    assert!(artifact.members.len() <= limits.max_members);
    for m in &artifact.members {
        assert!(sorted_unique(&m.undefined), "{}", m.name);
        assert!(sorted_unique(&m.weak_undefined), "{}", m.name);
        assert!(sorted_unique(&m.exported), "{}", m.name);
    }
    for profile in builtin_profiles() {
        let report = check(&artifact, &profile, Some(&artifact));
        let has_error = report
            .findings
            .iter()
            .any(|f| f.severity == Severity::Error);
        assert_eq!(report.verdict == Verdict::Failed, has_error);
        assert_eq!(report.message.is_some(), has_error);
        let rc = report.runtime.as_ref().expect("runtime part");
        assert!(rc.provided + rc.system + rc.missing.len() == rc.needed);
        let json = report_json(&report);
        let back: Report = serde_json::from_str(&json).expect("report JSON parses back");
        assert_eq!(back, report);
    }
});
