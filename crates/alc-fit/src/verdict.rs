//! Verdicts: an estimate against a device's usable memory.

use crate::{Device, Estimate, Estimator, FitError};

/// Above this fraction of the usable memory a fit is "tight": the app's own memory
/// (UI, its runtime's heap) and the OS's swings come out of what is left.
pub const TIGHT_FRACTION: f64 = 0.85;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Verdict {
    Fits,
    Tight,
    DoesNotFit,
}

impl Verdict {
    pub fn of(total: u64, usable: u64) -> Verdict {
        if total as f64 <= usable as f64 * TIGHT_FRACTION {
            Verdict::Fits
        } else if total <= usable {
            Verdict::Tight
        } else {
            Verdict::DoesNotFit
        }
    }

    pub fn text(self) -> &'static str {
        match self {
            Verdict::Fits => "fits",
            Verdict::Tight => "tight",
            Verdict::DoesNotFit => "does not fit",
        }
    }
}

/// A package on a device at one context.
#[derive(Clone, Debug, serde::Serialize)]
pub struct FitReport {
    pub device: Device,
    pub estimate: Estimate,
    /// `estimate.total_bytes`, repeated at the top level.
    pub total_bytes: u64,
    /// `usable_bytes - total_bytes` (negative: short by that much).
    pub headroom_bytes: i64,
    pub verdict: Verdict,
    /// The largest context (up to the model's training context) whose estimate is
    /// within the usable memory; `None` when not even one token fits.
    pub max_ctx: Option<usize>,
    /// The same within [`TIGHT_FRACTION`] of it (a comfortable fit).
    pub max_ctx_comfortable: Option<usize>,
}

/// Fit the estimator's package on `dev` at `ctx`.
pub fn fit(
    est: &Estimator,
    dev: &Device,
    ctx: usize,
    ubatch: Option<usize>,
) -> Result<FitReport, FitError> {
    let e = est.estimate(ctx, ubatch)?;
    let usable = dev.usable_bytes;
    Ok(FitReport {
        device: dev.clone(),
        total_bytes: e.total_bytes,
        headroom_bytes: usable as i64 - e.total_bytes as i64,
        verdict: Verdict::of(e.total_bytes, usable),
        max_ctx: est.max_ctx(usable, ubatch)?,
        max_ctx_comfortable: est.max_ctx((usable as f64 * TIGHT_FRACTION) as u64, ubatch)?,
        estimate: e,
    })
}

/// One candidate package for [`rank`].
#[derive(Clone, Debug, serde::Serialize)]
pub struct Ranked {
    pub name: String,
    pub n_params: u64,
    pub report: FitReport,
}

/// Order packages for a device: fits before tight before does-not-fit; within a
/// verdict the larger model (more parameters) first, then the smaller footprint.
pub fn rank(mut c: Vec<Ranked>) -> Vec<Ranked> {
    c.sort_by(|a, b| {
        a.report
            .verdict
            .cmp(&b.report.verdict)
            .then(b.n_params.cmp(&a.n_params))
            .then(a.report.total_bytes.cmp(&b.report.total_bytes))
            .then(a.name.cmp(&b.name))
    });
    c
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verdict_thresholds() {
        assert_eq!(Verdict::of(85, 100), Verdict::Fits);
        assert_eq!(Verdict::of(86, 100), Verdict::Tight);
        assert_eq!(Verdict::of(100, 100), Verdict::Tight);
        assert_eq!(Verdict::of(101, 100), Verdict::DoesNotFit);
        assert!(Verdict::Fits < Verdict::Tight && Verdict::Tight < Verdict::DoesNotFit);
    }
}
