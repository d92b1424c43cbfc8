//! Stage tracking for the watchdog: the run loop records which stage it is in and since
//! when; whoever waits on it checks the stage's deadline and reports an expiry by
//! name instead of waiting forever.

use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::time::{Duration, Instant};

/// Stages of the engine, each under its own deadline.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Stage {
    Idle = 0,
    Load = 1,
    Tokenize = 2,
    Prefill = 3,
    Decode = 4,
    Sample = 5,
    Bench = 6,
    /// The vision encoder on one tile (detail: the tile's index in the request).
    VisionEncode = 7,
    /// The modality projector on one tile (detail: the tile index).
    Project = 8,
}

impl Stage {
    fn from_u8(v: u8) -> Stage {
        match v {
            1 => Stage::Load,
            2 => Stage::Tokenize,
            3 => Stage::Prefill,
            4 => Stage::Decode,
            5 => Stage::Sample,
            6 => Stage::Bench,
            7 => Stage::VisionEncode,
            8 => Stage::Project,
            _ => Stage::Idle,
        }
    }
    pub fn name(self) -> &'static str {
        match self {
            Stage::Idle => "idle",
            Stage::Load => "load",
            Stage::Tokenize => "tokenize",
            Stage::Prefill => "prefill",
            Stage::Decode => "decode",
            Stage::Sample => "sample",
            Stage::Bench => "bench",
            Stage::VisionEncode => "vision encoder",
            Stage::Project => "modality projector",
        }
    }
}

/// Deadline per stage (per prefill chunk, per decode step).
#[derive(Clone, Debug)]
pub struct Deadlines {
    pub load: Duration,
    pub tokenize: Duration,
    pub prefill_chunk: Duration,
    pub decode_step: Duration,
    pub sample: Duration,
    pub bench: Duration,
    /// The vision encoder on one tile.
    pub vision_tile: Duration,
    /// The projector on one tile.
    pub project: Duration,
}

impl Default for Deadlines {
    fn default() -> Self {
        Deadlines {
            load: Duration::from_secs(120),
            tokenize: Duration::from_secs(30),
            prefill_chunk: Duration::from_secs(300),
            decode_step: Duration::from_secs(60),
            sample: Duration::from_secs(10),
            bench: Duration::from_secs(3600),
            vision_tile: Duration::from_secs(120),
            project: Duration::from_secs(60),
        }
    }
}

impl Deadlines {
    pub fn for_stage(&self, s: Stage) -> Option<Duration> {
        match s {
            Stage::Idle => None,
            Stage::Load => Some(self.load),
            Stage::Tokenize => Some(self.tokenize),
            Stage::Prefill => Some(self.prefill_chunk),
            Stage::Decode => Some(self.decode_step),
            Stage::Sample => Some(self.sample),
            Stage::Bench => Some(self.bench),
            Stage::VisionEncode => Some(self.vision_tile),
            Stage::Project => Some(self.project),
        }
    }
}

/// Shared between the run loop (writer) and waiters (readers).
#[derive(Debug)]
pub struct Tracker {
    epoch: Instant,
    stage: AtomicU8,
    since_us: AtomicU64,
    /// Stage detail, e.g. the prefill chunk index or the decode step.
    detail: AtomicU64,
}

impl Default for Tracker {
    fn default() -> Self {
        Tracker {
            epoch: Instant::now(),
            stage: AtomicU8::new(0),
            since_us: AtomicU64::new(0),
            detail: AtomicU64::new(0),
        }
    }
}

impl Tracker {
    pub fn enter(&self, s: Stage, detail: u64) {
        self.since_us
            .store(self.epoch.elapsed().as_micros() as u64, Ordering::Relaxed);
        self.detail.store(detail, Ordering::Relaxed);
        self.stage.store(s as u8, Ordering::Release);
    }

    /// Current stage, its detail, and how long it has run.
    pub fn current(&self) -> (Stage, u64, Duration) {
        let s = Stage::from_u8(self.stage.load(Ordering::Acquire));
        let since = Duration::from_micros(self.since_us.load(Ordering::Relaxed));
        (
            s,
            self.detail.load(Ordering::Relaxed),
            self.epoch.elapsed().saturating_sub(since),
        )
    }

    /// The stage that has overrun its deadline, if any.
    pub fn expired(&self, d: &Deadlines) -> Option<(Stage, u64, Duration)> {
        let (s, detail, el) = self.current();
        match d.for_stage(s) {
            Some(limit) if el > limit => Some((s, detail, el)),
            _ => None,
        }
    }
}
