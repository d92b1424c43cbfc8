//! Token sampling: repetition penalty, top-k, top-p, min-p, temperature, seeded draw.
//! Temperature 0 is greedy (argmax) and deterministic.

/// Sampling settings (llama.cpp's names and defaults where they exist).
#[derive(Clone, Debug, PartialEq)]
pub struct SamplingParams {
    pub temperature: f32,
    pub top_k: usize,
    pub top_p: f32,
    pub min_p: f32,
    pub repeat_penalty: f32,
    /// Tokens looked back at by the repetition penalty.
    pub repeat_last_n: usize,
    pub seed: u64,
}

impl Default for SamplingParams {
    fn default() -> Self {
        SamplingParams {
            temperature: 0.8,
            top_k: 40,
            top_p: 0.95,
            min_p: 0.05,
            repeat_penalty: 1.0,
            repeat_last_n: 64,
            seed: 0x5eed,
        }
    }
}

impl SamplingParams {
    pub fn greedy() -> Self {
        SamplingParams {
            temperature: 0.0,
            ..Default::default()
        }
    }

    /// Check ranges; the message names the option and its valid range.
    pub fn validate(&self) -> Result<(), String> {
        if !(self.temperature >= 0.0 && self.temperature.is_finite()) {
            return Err(format!(
                "--temp {} must be a finite number >= 0",
                self.temperature
            ));
        }
        if !(0.0..=1.0).contains(&self.top_p) {
            return Err(format!("--top-p {} must be in 0..=1", self.top_p));
        }
        if !(0.0..=1.0).contains(&self.min_p) {
            return Err(format!("--min-p {} must be in 0..=1", self.min_p));
        }
        if !(self.repeat_penalty > 0.0 && self.repeat_penalty.is_finite()) {
            return Err(format!(
                "--repeat-penalty {} must be a finite number > 0",
                self.repeat_penalty
            ));
        }
        Ok(())
    }
}

/// splitmix64: small, seedable, stable across releases.
#[derive(Clone, Debug)]
struct Rng(u64);
impl Rng {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn next_f32(&mut self) -> f32 {
        (self.next_u64() >> 40) as f32 / (1u64 << 24) as f32
    }
}

/// A sampler with reusable buffers (no allocation per token after the first).
#[derive(Debug)]
pub struct Sampler {
    p: SamplingParams,
    rng: Rng,
    cand: Vec<(u32, f32)>,
    /// Probabilities, then temperature weights, of the candidates.
    w: Vec<f32>,
    /// Per vocabulary id: in the repeat-penalty window (set and cleared per call).
    in_window: Vec<bool>,
}

impl Sampler {
    pub fn new(p: SamplingParams) -> Self {
        let rng = Rng(p.seed);
        Sampler {
            p,
            rng,
            cand: Vec::new(),
            w: Vec::new(),
            in_window: Vec::new(),
        }
    }

    /// Pick the next token from `logits` given the tokens so far (`history`).
    pub fn sample(&mut self, logits: &[f32], history: &[u32]) -> u32 {
        // Mark the penalty window once (O(window)), so that each of the vocabulary's
        // logits is checked in O(1) rather than by scanning the window.
        let window = &history[history.len().saturating_sub(self.p.repeat_last_n)..];
        let penalize = self.p.repeat_penalty != 1.0;
        if penalize {
            self.in_window.resize(logits.len(), false);
            for &id in window {
                if let Some(m) = self.in_window.get_mut(id as usize) {
                    *m = true;
                }
            }
        }
        let id = self.pick(logits, penalize, window);
        if penalize {
            for &id in window {
                if let Some(m) = self.in_window.get_mut(id as usize) {
                    *m = false;
                }
            }
        }
        id
    }

    fn pick(&mut self, logits: &[f32], penalize: bool, window: &[u32]) -> u32 {
        let p = &self.p;
        let in_window = &self.in_window;
        let penalized = |id: usize, l: f32| -> f32 {
            if !penalize {
                return l;
            }
            if in_window[id] {
                if l > 0.0 {
                    l / p.repeat_penalty
                } else {
                    l * p.repeat_penalty
                }
            } else {
                l
            }
        };
        if p.temperature == 0.0 {
            // The raw logits' argmax is the answer unless a penalised token is, so
            // only the window's tokens need their penalised value. The full loop
            // below stays for the cases where that shortcut does not hold: the raw
            // argmax is itself penalised, or nothing beats −∞.
            let r = argmax(logits);
            if logits.get(r).is_some_and(|&l| l > f32::NEG_INFINITY) && !(penalize && in_window[r])
            {
                let mut best = (r, logits[r]);
                if penalize {
                    for &id in window {
                        let id = id as usize;
                        if let Some(&l) = logits.get(id) {
                            let v = penalized(id, l);
                            if v > best.1 || (v == best.1 && id < best.0) {
                                best = (id, v);
                            }
                        }
                    }
                }
                return best.0 as u32;
            }
            let mut best = (0usize, f32::NEG_INFINITY);
            for (i, &l) in logits.iter().enumerate() {
                let l = penalized(i, l);
                if l > best.1 {
                    best = (i, l);
                }
            }
            return best.0 as u32;
        }
        self.cand.clear();
        self.cand.extend(
            logits
                .iter()
                .enumerate()
                .map(|(i, &l)| (i as u32, penalized(i, l))),
        );
        let c = &mut self.cand;
        let probs = &mut self.w;
        // top-k
        let k = if p.top_k == 0 {
            c.len()
        } else {
            p.top_k.min(c.len())
        };
        if k < c.len() {
            c.select_nth_unstable_by(k - 1, |a, b| b.1.total_cmp(&a.1));
            c.truncate(k);
        }
        c.sort_unstable_by(|a, b| b.1.total_cmp(&a.1));
        // softmax (before temperature, as llama.cpp's top-p / min-p see it)
        let max = c[0].1;
        probs.clear();
        probs.extend(c.iter().map(|&(_, l)| (l - max).exp()));
        let sum: f32 = probs.iter().sum();
        probs.iter_mut().for_each(|q| *q /= sum);
        // top-p: keep the smallest prefix with mass >= top_p
        let mut keep = c.len();
        if p.top_p < 1.0 {
            let mut acc = 0.0;
            for (i, q) in probs.iter().enumerate() {
                acc += q;
                if acc >= p.top_p {
                    keep = i + 1;
                    break;
                }
            }
        }
        // min-p: drop tokens below min_p * p(max)
        if p.min_p > 0.0 {
            let floor = p.min_p * probs[0];
            keep = keep.min(probs.iter().take_while(|&&q| q >= floor).count().max(1));
        }
        c.truncate(keep.max(1));
        // temperature, then draw
        let inv_t = 1.0 / p.temperature;
        let w = probs;
        w.clear();
        w.extend(c.iter().map(|&(_, l)| ((l - max) * inv_t).exp()));
        let total: f32 = w.iter().sum();
        let mut r = self.rng.next_f32() * total;
        for (i, wi) in w.iter().enumerate() {
            r -= wi;
            if r <= 0.0 {
                return c[i].0;
            }
        }
        c[c.len() - 1].0
    }
}

/// Index of the first largest of `xs`, NaN never winning; 0 when none is above
/// −∞ (what a scalar `>` scan from (0, −∞) gives). The max is found 16 lanes at a
/// time (the compiler vectorises the lanes), then its first position.
fn argmax(xs: &[f32]) -> usize {
    const L: usize = 16;
    let mut m = [f32::NEG_INFINITY; L];
    let mut chunks = xs.chunks_exact(L);
    for c in &mut chunks {
        for (mi, &x) in m.iter_mut().zip(c) {
            if x > *mi {
                *mi = x;
            }
        }
    }
    let best = m
        .iter()
        .chain(chunks.remainder())
        .fold(f32::NEG_INFINITY, |a, &b| if b > a { b } else { a });
    if best == f32::NEG_INFINITY {
        return 0;
    }
    xs.iter().position(|&x| x == best).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn greedy_is_argmax() {
        let mut s = Sampler::new(SamplingParams::greedy());
        assert_eq!(s.sample(&[0.1, 3.0, -1.0, 2.9], &[]), 1);
    }

    #[test]
    fn repeat_penalty_changes_greedy_choice() {
        let mut s = Sampler::new(SamplingParams {
            repeat_penalty: 2.0,
            ..SamplingParams::greedy()
        });
        assert_eq!(s.sample(&[0.1, 3.0, -1.0, 2.0], &[1]), 3);
    }

    /// The first index of the largest logit after the repeat penalty (a logit of a
    /// token in `window` divided by `penalty` when positive, multiplied otherwise),
    /// by a scalar `>` scan from (0, −∞).
    fn greedy_by_definition(logits: &[f32], window: &[u32], penalty: f32) -> u32 {
        logits
            .iter()
            .enumerate()
            .map(|(i, &l)| match window.contains(&(i as u32)) {
                true if l > 0.0 => l / penalty,
                true => l * penalty,
                false => l,
            })
            .enumerate()
            .fold((0usize, f32::NEG_INFINITY), |b, (i, l)| {
                if l > b.1 {
                    (i, l)
                } else {
                    b
                }
            })
            .0 as u32
    }

    /// Greedy with a penalty = argmax of the logits penalised by definition (only ids
    /// in the last `repeat_last_n` tokens), over many random cases; the window marks
    /// must not leak into the next call.
    #[test]
    fn repeat_penalty_matches_definition() {
        let mut rng = Rng(9);
        for penalty in [0.5f32, 1.3, 3.0] {
            let p = SamplingParams {
                repeat_penalty: penalty,
                repeat_last_n: 8,
                ..SamplingParams::greedy()
            };
            let mut s = Sampler::new(p.clone());
            for _ in 0..300 {
                let logits: Vec<f32> = (0..50).map(|_| rng.next_f32() * 8.0 - 4.0).collect();
                let history: Vec<u32> = (0..20).map(|_| (rng.next_u64() % 50) as u32).collect();
                let window = &history[history.len() - 8..];
                let want = greedy_by_definition(&logits, window, penalty);
                assert_eq!(s.sample(&logits, &history), want);
            }
        }
    }

    /// Greedy's shortcut (vector argmax, then the window's penalised tokens) against
    /// the scalar scan by definition, with ties (logits on a coarse grid), NaN, ±∞,
    /// rows shorter and longer than the 16 lanes, no penalty and penalties either
    /// side of 1, repeated window ids, and rows with nothing above −∞.
    #[test]
    fn greedy_equals_scalar_scan_with_ties_nan_and_infinities() {
        let mut rng = Rng(21);
        for penalty in [1.0f32, 0.5, 1.3] {
            let p = SamplingParams {
                repeat_penalty: penalty,
                repeat_last_n: 6,
                ..SamplingParams::greedy()
            };
            let mut s = Sampler::new(p.clone());
            for case in 0..2000 {
                let n = 1 + (rng.next_u64() % 70) as usize;
                let logits: Vec<f32> = (0..n)
                    .map(|_| match rng.next_u64() % 20 {
                        0 => f32::NAN,
                        1 => f32::NEG_INFINITY,
                        2 if case % 7 == 0 => f32::INFINITY,
                        _ if case % 11 == 0 => f32::NEG_INFINITY,
                        _ => (rng.next_u64() % 9) as f32 - 4.0,
                    })
                    .collect();
                let history: Vec<u32> = (0..10).map(|_| (rng.next_u64() % 80) as u32).collect();
                let window = &history[history.len() - 6..];
                // A penalty of 1 changes no logit (NaN and ±∞ included).
                let want = greedy_by_definition(&logits, window, penalty);
                assert_eq!(
                    s.sample(&logits, &history),
                    want,
                    "penalty {penalty}, logits {logits:?}, window {window:?}"
                );
            }
        }
    }

    #[test]
    fn seeded_sampling_is_reproducible_and_respects_top_k() {
        let logits: Vec<f32> = (0..100).map(|i| (i as f32 * 0.37).sin()).collect();
        let p = SamplingParams {
            temperature: 1.0,
            top_k: 5,
            top_p: 1.0,
            min_p: 0.0,
            ..Default::default()
        };
        let mut top5: Vec<usize> = (0..100).collect();
        top5.sort_by(|&a, &b| logits[b].total_cmp(&logits[a]));
        top5.truncate(5);
        let run = || {
            let mut s = Sampler::new(p.clone());
            (0..50).map(|_| s.sample(&logits, &[])).collect::<Vec<_>>()
        };
        let a = run();
        assert_eq!(a, run());
        assert!(a.iter().all(|&t| top5.contains(&(t as usize))));
        assert!(a.iter().collect::<std::collections::HashSet<_>>().len() > 1);
    }

    #[test]
    fn validation_names_the_option() {
        let e = SamplingParams {
            top_p: 2.0,
            ..Default::default()
        }
        .validate()
        .unwrap_err();
        assert!(e.contains("--top-p"));
    }
}
