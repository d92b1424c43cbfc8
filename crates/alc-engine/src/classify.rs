//! Intent classification over sentence embeddings (`alc classify`).
//!
//! An intents file is a YAML mapping, intent name → list of example utterances
//! ([`Intents::parse`], strict: every mistake is reported with the file and line).
//! Each intent's centroid is the mean of its examples' L2-normalised embeddings,
//! normalised again ([`Centroids::compute`]); a text is scored by cosine against every
//! centroid and labelled with the best intent, or [`UNKNOWN`] when the best score is
//! below the threshold ([`DEFAULT_THRESHOLD`] unless overridden).
//!
//! Centroids are cached ([`load_or_compute`]) in one small file per (package, intents
//! file) pair, named by [`cache_key`]; the layout is in docs/FORMAT.md ("Centroid
//! cache"). A cache file that is unreadable, corrupt or made for another key is
//! ignored and rewritten.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use alc_format::{AtomicFile, GgufFile, Value};
use sha2::{Digest, Sha256};
use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser};
use yaml_rust2::scanner::{Marker, TScalarStyle};

use crate::embed::Embedder;
use crate::EngineError;

/// The label of a text whose best score is below the threshold; reserved, so no
/// intent may use it.
pub const UNKNOWN: &str = "unknown";

/// Default "unknown" threshold: the leave-one-out threshold of the reference
/// evaluation (scripts/goldens/eval_reference.py, tests/goldens/embeddings/
/// reference_quality.json, `unknown_threshold.loo_threshold`): the 5th percentile of
/// the leave-one-out top-1 cosines of data/intents/headset.yaml's examples under
/// all-MiniLM-L6-v2, chosen without looking at the held-out set. It keeps about 95 %
/// of in-scope utterances; other models or intent sets may want `--threshold`.
pub const DEFAULT_THRESHOLD: f32 = 0.437;

/// Version of the centroid cache layout; part of the cache key, so a new layout
/// never reads an old file.
pub const CACHE_FORMAT_VERSION: u32 = 1;

/// Magic bytes that open a centroid cache file.
pub const CACHE_MAGIC: &[u8; 8] = b"ALCCENT\0";

/// The metadata key that records a package's sha256 (alc-convert's
/// `PACKAGE_SHA256_KEY`; repeated here because the engine does not depend on the
/// compiler).
const PACKAGE_SHA256_KEY: &str = "alc.sha256";

fn bad(at: impl Into<String>, why: impl Into<String>) -> EngineError {
    EngineError::BadInput {
        at: at.into(),
        why: why.into(),
    }
}

/// One intent and its example utterances, in file order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Intent {
    pub name: String,
    pub utterances: Vec<String>,
    /// Line of the intent's name in the file (1-based).
    pub line: usize,
}

/// A parsed intents file.
#[derive(Clone, Debug)]
pub struct Intents {
    /// The file name used in messages.
    pub source: String,
    pub intents: Vec<Intent>,
}

/// Collects the parser's events with their positions.
struct Events(Vec<(Event, Marker)>);

impl MarkedEventReceiver for Events {
    fn on_event(&mut self, ev: Event, mark: Marker) {
        self.0.push((ev, mark));
    }
}

/// What a plain (unquoted) scalar is under YAML 1.2's core schema.
fn plain_kind(s: &str) -> Option<&'static str> {
    match s {
        "" | "~" | "null" | "Null" | "NULL" => return Some("null"),
        "true" | "True" | "TRUE" | "false" | "False" | "FALSE" => return Some("boolean"),
        ".inf" | ".Inf" | ".INF" | "+.inf" | "+.Inf" | "+.INF" | "-.inf" | "-.Inf" | "-.INF"
        | ".nan" | ".NaN" | ".NAN" => return Some("number"),
        _ => {}
    }
    let digits = |t: &str, radix: u32| !t.is_empty() && t.chars().all(|c| c.is_digit(radix));
    if let Some(h) = s.strip_prefix("0x") {
        if digits(h, 16) {
            return Some("number");
        }
    }
    if let Some(o) = s.strip_prefix("0o") {
        if digits(o, 8) {
            return Some("number");
        }
    }
    // [-+]? ( . [0-9]+ | [0-9]+ ( . [0-9]* )? ) ( [eE] [-+]? [0-9]+ )?
    let t = s.strip_prefix(['-', '+']).unwrap_or(s);
    let (mant, exp) = match t.find(['e', 'E']) {
        Some(i) => (&t[..i], Some(&t[i + 1..])),
        None => (t, None),
    };
    let mant_ok = match mant.split_once('.') {
        Some((a, b)) => {
            (a.is_empty() && digits(b, 10)) || (digits(a, 10) && (b.is_empty() || digits(b, 10)))
        }
        None => digits(mant, 10),
    };
    let exp_ok = exp.is_none_or(|e| digits(e.strip_prefix(['-', '+']).unwrap_or(e), 10));
    (mant_ok && exp_ok).then_some("number")
}

/// A name for a node that starts with `ev`, for "expected X, got Y" messages.
fn node_kind(ev: &Event) -> &'static str {
    match ev {
        Event::Scalar(v, TScalarStyle::Plain, _, None) => match plain_kind(v) {
            Some(k) => k,
            None => "string",
        },
        Event::Scalar(..) => "string",
        Event::SequenceStart(..) => "list",
        Event::MappingStart(..) => "mapping",
        Event::Alias(..) => "alias",
        _ => "nothing",
    }
}

/// Whitespace collapsed and lower-cased: two utterances equal under this embed the
/// same with an uncased WordPiece model, so listing both is a mistake.
fn normalised(s: &str) -> String {
    s.split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .to_lowercase()
}

impl Intents {
    /// Parse an intents file (YAML: a mapping of intent name → non-empty list of
    /// utterance strings). `source` names the file in messages.
    pub fn parse(text: &str, source: &str) -> Result<Intents, EngineError> {
        let mut events = Events(Vec::new());
        Parser::new_from_str(text)
            .load(&mut events, true)
            .map_err(|e| {
                bad(
                    format!("{source} line {}", e.marker().line()),
                    format!(
                        "not valid YAML: {} (column {}); an intents file is a mapping of intent name to a list of utterances",
                        e.info(),
                        e.marker().col() + 1
                    ),
                )
            })?;
        let ev = events.0;
        let at = |m: &Marker| format!("{source} line {}", m.line());
        let docs = ev
            .iter()
            .filter(|(e, _)| matches!(e, Event::DocumentStart))
            .count();
        if docs > 1 {
            let second = ev
                .iter()
                .filter(|(e, _)| matches!(e, Event::DocumentStart))
                .nth(1)
                .expect("counted");
            return Err(bad(
                at(&second.1),
                "a second YAML document ('---'); an intents file holds one mapping",
            ));
        }
        // Events of the one document's root node.
        let start = ev
            .iter()
            .position(|(e, _)| matches!(e, Event::DocumentStart))
            .map(|i| i + 1);
        let Some(mut i) = start else {
            return Err(bad(
                source,
                "the file is empty; write a mapping of intent name to a list of utterances (at least 2 intents)",
            ));
        };
        match &ev[i].0 {
            Event::MappingStart(..) => {}
            other => {
                let kind = node_kind(other);
                let why = if kind == "null" {
                    "the file has no intents; write a mapping of intent name to a list of utterances (at least 2 intents)".to_string()
                } else {
                    format!("the top level is a {kind}, not a mapping of intent name to a list of utterances")
                };
                return Err(bad(at(&ev[i].1), why));
            }
        }
        i += 1;
        let mut intents: Vec<Intent> = Vec::new();
        let mut names: HashMap<String, usize> = HashMap::new();
        // normalised utterance → (intent name, line)
        let mut seen: HashMap<String, (String, usize)> = HashMap::new();
        loop {
            let (key, kmark) = &ev[i];
            let name = match key {
                Event::MappingEnd => break,
                Event::Scalar(v, style, _, tag) => {
                    let is_str = !matches!(style, TScalarStyle::Plain)
                        || tag.is_some()
                        || plain_kind(v).is_none();
                    if !is_str || v.trim().is_empty() {
                        return Err(bad(
                            at(kmark),
                            format!(
                                "intent name '{v}' is a {}; intent names are non-empty strings",
                                node_kind(key)
                            ),
                        ));
                    }
                    v.clone()
                }
                other => {
                    return Err(bad(
                        at(kmark),
                        format!(
                            "an intent name is a {}; intent names are strings",
                            node_kind(other)
                        ),
                    ))
                }
            };
            if name.contains(['\t', '\n', '\r']) {
                return Err(bad(
                    at(kmark),
                    format!("intent name {name:?} contains a tab or line break"),
                ));
            }
            if name.eq_ignore_ascii_case(UNKNOWN) {
                return Err(bad(
                    at(kmark),
                    format!("the intent name '{name}' is reserved for texts below the threshold; rename it"),
                ));
            }
            if let Some(&first) = names.get(&name) {
                return Err(bad(
                    at(kmark),
                    format!("duplicate intent '{name}' (first defined on line {first}); merge the two lists"),
                ));
            }
            names.insert(name.clone(), kmark.line());
            i += 1;
            let (val, vmark) = &ev[i];
            match val {
                Event::SequenceStart(..) => {}
                Event::Scalar(v, TScalarStyle::Plain, _, None) if plain_kind(v) == Some("null") => {
                    return Err(bad(
                        at(vmark),
                        format!("intent '{name}' has no utterances; list at least one as '- text' or remove the intent"),
                    ));
                }
                other => {
                    return Err(bad(
                        at(vmark),
                        format!(
                            "intent '{name}': expected a list of utterances, got a {}; write each utterance on its own line as '- text'",
                            node_kind(other)
                        ),
                    ));
                }
            }
            i += 1;
            let mut utterances = Vec::new();
            loop {
                let (u, umark) = &ev[i];
                let n = utterances.len() + 1;
                match u {
                    Event::SequenceEnd => break,
                    Event::Scalar(v, style, _, tag) => {
                        let plain = matches!(style, TScalarStyle::Plain) && tag.is_none();
                        if let (true, Some(kind)) = (plain, plain_kind(v)) {
                            let why = if kind == "null" {
                                format!("utterance {n} of intent '{name}' is empty")
                            } else {
                                format!(
                                    "utterance {n} of intent '{name}' is a {kind} ({v}), not a string; quote it if it is meant as text"
                                )
                            };
                            return Err(bad(at(umark), why));
                        }
                        if v.trim().is_empty() {
                            return Err(bad(
                                at(umark),
                                format!("utterance {n} of intent '{name}' is empty"),
                            ));
                        }
                        let key = normalised(v);
                        if let Some((other, line)) = seen.get(&key) {
                            let why = if *other == name {
                                format!("utterance '{v}' is listed twice in intent '{name}' (also on line {line}); remove one")
                            } else {
                                format!("utterance '{v}' is listed in both intent '{other}' (line {line}) and intent '{name}'; keep it in one")
                            };
                            return Err(bad(at(umark), why));
                        }
                        seen.insert(key, (name.clone(), umark.line()));
                        utterances.push(v.clone());
                    }
                    other => {
                        return Err(bad(
                            at(umark),
                            format!(
                                "utterance {n} of intent '{name}' is a {}, not a string",
                                node_kind(other)
                            ),
                        ))
                    }
                }
                i += 1;
            }
            if utterances.is_empty() {
                return Err(bad(
                    at(vmark),
                    format!(
                        "intent '{name}' has no utterances; list at least one or remove the intent"
                    ),
                ));
            }
            intents.push(Intent {
                name,
                utterances,
                line: kmark.line(),
            });
            i += 1;
        }
        if intents.len() < 2 {
            return Err(bad(
                source,
                format!(
                    "{} intent(s) defined; classification needs at least 2",
                    intents.len()
                ),
            ));
        }
        Ok(Intents {
            source: source.to_string(),
            intents,
        })
    }

    pub fn names(&self) -> Vec<&str> {
        self.intents.iter().map(|i| i.name.as_str()).collect()
    }

    pub fn n_utterances(&self) -> usize {
        self.intents.iter().map(|i| i.utterances.len()).sum()
    }
}

/// Scale `v` to unit length (left as is when it is zero).
fn normalise(v: &mut [f32]) {
    let n = v.iter().map(|&x| x as f64 * x as f64).sum::<f64>().sqrt();
    if n > 0.0 {
        for x in v {
            *x = (*x as f64 / n) as f32;
        }
    }
}

/// One unit-length centroid per intent.
#[derive(Clone, Debug, PartialEq)]
pub struct Centroids {
    pub names: Vec<String>,
    pub dim: usize,
    /// `names.len() × dim`, row-major.
    pub data: Vec<f32>,
}

/// An intent and its cosine score.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct Scored {
    pub intent: String,
    #[serde(serialize_with = "ser_f32")]
    pub score: f32,
}

/// The classification of one text.
#[derive(Clone, Debug, PartialEq)]
pub struct Classification {
    /// The best intent, or [`UNKNOWN`] when its score is below the threshold.
    pub intent: String,
    /// The best intent's score (also when the text is unknown).
    pub score: f32,
    /// The best intent whatever the threshold.
    pub best: String,
    pub runner_up: Option<Scored>,
    /// The best intents, best first (as many as asked for).
    pub top: Vec<Scored>,
    pub unknown: bool,
}

impl Centroids {
    /// Embed every utterance (in one [`Embedder::embed`] call, which batches) and
    /// average per intent.
    pub fn compute(emb: &Embedder, intents: &Intents) -> Result<Centroids, EngineError> {
        let texts: Vec<&str> = intents
            .intents
            .iter()
            .flat_map(|i| i.utterances.iter().map(String::as_str))
            .collect();
        let vecs = emb.embed(&texts)?;
        let dim = emb.dim();
        let mut data = Vec::with_capacity(intents.intents.len() * dim);
        let mut k = 0;
        for it in &intents.intents {
            let mut sum = vec![0f64; dim];
            for e in &vecs[k..k + it.utterances.len()] {
                let mut v = e.vector.clone();
                normalise(&mut v);
                for (s, x) in sum.iter_mut().zip(&v) {
                    *s += *x as f64;
                }
            }
            k += it.utterances.len();
            let mut c: Vec<f32> = sum.iter().map(|&s| s as f32).collect();
            normalise(&mut c);
            data.extend_from_slice(&c);
        }
        Ok(Centroids {
            names: intents.intents.iter().map(|i| i.name.clone()).collect(),
            dim,
            data,
        })
    }

    /// Cosine of `v` (normalised here) against every centroid, in intent order.
    pub fn scores(&self, v: &[f32]) -> Vec<f32> {
        let mut q = v.to_vec();
        normalise(&mut q);
        self.data
            .chunks_exact(self.dim)
            .map(|c| {
                c.iter()
                    .zip(&q)
                    .map(|(&a, &b)| a as f64 * b as f64)
                    .sum::<f64>() as f32
            })
            .collect()
    }

    /// Classify an embedding: best intent, runner-up, the `top` best (at least 1), and
    /// [`UNKNOWN`] when the best score is below `threshold`.
    pub fn classify(&self, v: &[f32], threshold: f32, top: usize) -> Classification {
        let s = self.scores(v);
        let mut order: Vec<usize> = (0..s.len()).collect();
        // Best first; ties keep file order.
        order.sort_by(|&a, &b| s[b].total_cmp(&s[a]));
        let scored = |j: usize| Scored {
            intent: self.names[j].clone(),
            score: s[j],
        };
        let best = order[0];
        let unknown = s[best] < threshold;
        Classification {
            intent: if unknown {
                UNKNOWN.to_string()
            } else {
                self.names[best].clone()
            },
            score: s[best],
            best: self.names[best].clone(),
            runner_up: order.get(1).map(|&j| scored(j)),
            top: order.iter().take(top.max(1)).map(|&j| scored(j)).collect(),
            unknown,
        }
    }

    /// The cache file's bytes (layout: docs/FORMAT.md, "Centroid cache").
    pub fn to_cache_bytes(&self, key: &[u8; 32]) -> Vec<u8> {
        let mut b = Vec::with_capacity(64 + self.data.len() * 4);
        b.extend_from_slice(CACHE_MAGIC);
        b.extend_from_slice(&CACHE_FORMAT_VERSION.to_le_bytes());
        b.extend_from_slice(key);
        b.extend_from_slice(&(self.dim as u32).to_le_bytes());
        b.extend_from_slice(&(self.names.len() as u32).to_le_bytes());
        for n in &self.names {
            b.extend_from_slice(&(n.len() as u32).to_le_bytes());
            b.extend_from_slice(n.as_bytes());
        }
        for x in &self.data {
            b.extend_from_slice(&x.to_le_bytes());
        }
        let sum = Sha256::digest(&b);
        b.extend_from_slice(&sum);
        b
    }

    /// Read a cache file's bytes; `Err` says why they do not hold centroids for `key`.
    pub fn from_cache_bytes(b: &[u8], key: &[u8; 32]) -> Result<Centroids, String> {
        if b.len() < 8 + 4 + 32 + 8 + 32 {
            return Err(format!("{} bytes is too short", b.len()));
        }
        let (body, sum) = b.split_at(b.len() - 32);
        if Sha256::digest(body).as_slice() != sum {
            return Err("checksum mismatch (corrupt file)".into());
        }
        if &body[..8] != CACHE_MAGIC {
            return Err("not a centroid cache file (bad magic)".into());
        }
        let mut p = 8;
        let u32_at = |p: &mut usize| -> Result<u32, String> {
            let v = body
                .get(*p..*p + 4)
                .ok_or("truncated")?
                .try_into()
                .map(u32::from_le_bytes)
                .map_err(|_| "truncated")?;
            *p += 4;
            Ok(v)
        };
        let version = u32_at(&mut p)?;
        if version != CACHE_FORMAT_VERSION {
            return Err(format!(
                "format version {version}, expected {CACHE_FORMAT_VERSION}"
            ));
        }
        if &body[p..p + 32] != key {
            return Err("made for another package or intents file (key mismatch)".into());
        }
        p += 32;
        let dim = u32_at(&mut p)? as usize;
        let n = u32_at(&mut p)? as usize;
        if dim == 0 || n < 2 || n > body.len() || dim > body.len() {
            return Err(format!("implausible sizes: {n} intents of dimension {dim}"));
        }
        let mut names = Vec::with_capacity(n);
        for _ in 0..n {
            let len = u32_at(&mut p)? as usize;
            let s = body.get(p..p + len).ok_or("truncated intent name")?;
            names.push(String::from_utf8(s.to_vec()).map_err(|_| "an intent name is not UTF-8")?);
            p += len;
        }
        let rest = &body[p..];
        if rest.len() != n * dim * 4 {
            return Err(format!(
                "{} bytes of centroid data, expected {}",
                rest.len(),
                n * dim * 4
            ));
        }
        let data = rest
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes(c.try_into().expect("4 bytes")))
            .collect();
        Ok(Centroids { names, dim, data })
    }
}

/// `x` as the f64 with the same shortest decimal form, so that JSON shows `0.437`
/// rather than `0.4370000064373016`.
pub fn f32_for_json(x: f32) -> f64 {
    x.to_string().parse().unwrap_or(x as f64)
}

fn ser_f32<S: serde::Serializer>(x: &f32, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(f32_for_json(*x))
}

/// Lower-case hex of `b`.
fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// A string that identifies a package's contents: the sha256 its compiler recorded
/// (`alc.sha256`, checked by `alc verify`) with the file size, or, for a file without
/// that key (e.g. a llama.cpp GGUF), the sha256 of all its bytes.
pub fn package_identity(file: &GgufFile) -> String {
    match file.get(PACKAGE_SHA256_KEY) {
        Some(Value::String(s)) if s.len() == 64 => {
            format!("alc.sha256:{s}:size:{}", file.bytes().len())
        }
        _ => format!("sha256:{}", sha256_hex(file.bytes())),
    }
}

/// Lower-case hex sha256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

/// The centroid cache key: sha256 over the cache format version, the package
/// identity ([`package_identity`]) and the intents file's bytes.
pub fn cache_key(package_identity: &str, intents_bytes: &[u8]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(b"alc.classify.centroids\0");
    h.update(CACHE_FORMAT_VERSION.to_le_bytes());
    h.update((package_identity.len() as u64).to_le_bytes());
    h.update(package_identity.as_bytes());
    h.update((intents_bytes.len() as u64).to_le_bytes());
    h.update(intents_bytes);
    h.finalize().into()
}

/// The cache file for `key` in `dir`.
pub fn cache_path(dir: &Path, key: &[u8; 32]) -> PathBuf {
    dir.join(format!("{}.centroids", hex(key)))
}

/// What happened with the centroid cache.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CacheStatus {
    /// No cache directory was given.
    Disabled,
    /// Read from this file.
    Hit(PathBuf),
    /// Computed and written to this file; `replaced` says why an existing file there
    /// was not used.
    Written {
        path: PathBuf,
        replaced: Option<String>,
    },
    /// Computed, but writing the file failed (the message says why).
    WriteFailed(String),
}

/// Centroids of `intents` for the embedder's package: read from the cache in
/// `cache_dir` (created if missing) when a valid file is there, else computed and
/// written. `intents_bytes` are the intents file's bytes (part of the key).
/// `cache_dir: None` computes without the cache.
pub fn load_or_compute(
    emb: &Embedder,
    intents: &Intents,
    intents_bytes: &[u8],
    cache_dir: Option<&Path>,
) -> Result<(Centroids, CacheStatus), EngineError> {
    let Some(dir) = cache_dir else {
        return Ok((Centroids::compute(emb, intents)?, CacheStatus::Disabled));
    };
    let key = cache_key(&emb.identity(), intents_bytes);
    let path = cache_path(dir, &key);
    let replaced = match std::fs::read(&path) {
        Ok(b) => match Centroids::from_cache_bytes(&b, &key) {
            Ok(c) if c.names == intents.names() && c.dim == emb.dim() => {
                return Ok((c, CacheStatus::Hit(path)));
            }
            Ok(_) => Some("its intents or dimension differ".to_string()),
            Err(why) => Some(why),
        },
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => Some(format!("unreadable: {e}")),
    };
    let c = Centroids::compute(emb, intents)?;
    let write = || -> Result<(), String> {
        std::fs::create_dir_all(dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        let mut f = AtomicFile::create(&path).map_err(|e| e.to_string())?;
        f.write_all(&c.to_cache_bytes(&key))
            .map_err(|e| f.error("writing", e).to_string())?;
        f.commit().map_err(|e| e.to_string())
    };
    let status = match write() {
        Ok(()) => CacheStatus::Written { path, replaced },
        Err(e) => CacheStatus::WriteFailed(e),
    };
    Ok((c, status))
}

/// One labelled text of an evaluation set.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Labelled {
    pub text: String,
    /// An intent name or [`UNKNOWN`].
    pub label: String,
    pub line: usize,
}

/// Read a labelled set: UTF-8 lines `text<TAB>intent` (intent [`UNKNOWN`] for out of
/// scope), an optional header `utterance<TAB>intent`, empty lines skipped. Every label
/// must be one of `intents` or [`UNKNOWN`].
pub fn parse_labelled(
    text: &str,
    source: &str,
    intents: &Intents,
) -> Result<Vec<Labelled>, EngineError> {
    let names = intents.names();
    let mut out = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = i + 1;
        let l = raw.trim_end_matches('\r');
        if l.trim().is_empty() {
            continue;
        }
        let at = format!("{source} line {line}");
        let cols: Vec<&str> = l.split('\t').collect();
        if cols.len() != 2 {
            return Err(bad(
                at,
                format!(
                    "{} tab-separated column(s), expected 2: text<TAB>intent",
                    cols.len()
                ),
            ));
        }
        let (t, label) = (cols[0].trim(), cols[1].trim());
        if out.is_empty() && t == "utterance" && label == "intent" {
            continue;
        }
        if t.is_empty() {
            return Err(bad(at, "the text is empty"));
        }
        if label != UNKNOWN && !names.contains(&label) {
            return Err(bad(
                at,
                format!(
                    "label '{label}' is not an intent of {} nor '{UNKNOWN}'; known: {}",
                    intents.source,
                    names.join(", ")
                ),
            ));
        }
        out.push(Labelled {
            text: t.to_string(),
            label: label.to_string(),
            line,
        });
    }
    if out.is_empty() {
        return Err(bad(source, "no labelled lines (text<TAB>intent)"));
    }
    Ok(out)
}

/// Quality on a labelled set.
#[derive(Clone, Debug, serde::Serialize)]
pub struct EvalReport {
    #[serde(serialize_with = "ser_f32")]
    pub threshold: f32,
    pub n_in_scope: usize,
    pub n_unknown: usize,
    /// In-scope texts whose best intent is right, ignoring the threshold.
    pub correct_in_scope: usize,
    /// `correct_in_scope / n_in_scope` (the reference's `heldout_accuracy_in_scope`).
    pub accuracy_in_scope: f64,
    /// In-scope texts right and not rejected by the threshold, over `n_in_scope`.
    pub accuracy_in_scope_at_threshold: f64,
    /// In-scope texts rejected as unknown.
    pub in_scope_rejected: usize,
    /// Unknown texts labelled unknown, over `n_unknown` (null without unknown texts).
    pub unknown_recall: Option<f64>,
    /// All texts whose label (with the threshold) is right, over all texts.
    pub accuracy_overall: f64,
    /// The texts labelled wrongly (with the threshold).
    pub errors: Vec<EvalError>,
}

/// A wrongly labelled text of an evaluation.
#[derive(Clone, Debug, serde::Serialize)]
pub struct EvalError {
    pub line: usize,
    pub text: String,
    pub expected: String,
    pub got: String,
    pub best: String,
    #[serde(serialize_with = "ser_f32")]
    pub score: f32,
}

/// Compare classifications (in the order of `set`) with their labels.
pub fn evaluate(set: &[Labelled], got: &[Classification], threshold: f32) -> EvalReport {
    let (mut n_in, mut n_unk, mut ok_best, mut ok_in, mut rejected, mut ok_unk) =
        (0, 0, 0, 0, 0, 0);
    let mut errors = Vec::new();
    for (l, c) in set.iter().zip(got) {
        if l.label == UNKNOWN {
            n_unk += 1;
            ok_unk += c.unknown as usize;
        } else {
            n_in += 1;
            ok_best += (c.best == l.label) as usize;
            ok_in += (!c.unknown && c.best == l.label) as usize;
            rejected += c.unknown as usize;
        }
        if c.intent != l.label {
            errors.push(EvalError {
                line: l.line,
                text: l.text.clone(),
                expected: l.label.clone(),
                got: c.intent.clone(),
                best: c.best.clone(),
                score: c.score,
            });
        }
    }
    let ratio = |a: usize, b: usize| if b == 0 { 0.0 } else { a as f64 / b as f64 };
    EvalReport {
        threshold,
        n_in_scope: n_in,
        n_unknown: n_unk,
        correct_in_scope: ok_best,
        accuracy_in_scope: ratio(ok_best, n_in),
        accuracy_in_scope_at_threshold: ratio(ok_in, n_in),
        in_scope_rejected: rejected,
        unknown_recall: (n_unk > 0).then(|| ratio(ok_unk, n_unk)),
        accuracy_overall: ratio(ok_in + ok_unk, n_in + n_unk),
        errors,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(yaml: &str) -> String {
        Intents::parse(yaml, "x.yaml").unwrap_err().to_string()
    }

    #[test]
    fn parses_a_good_file() {
        let i = Intents::parse(
            "# c\na:\n  - one thing\n  - 'two'\nb:\n  - \"three\"\n  - \"42\"\n",
            "x.yaml",
        )
        .unwrap();
        assert_eq!(i.names(), ["a", "b"]);
        assert_eq!(i.intents[1].utterances, ["three", "42"]);
        assert_eq!(i.intents[1].line, 5);
        assert_eq!(i.n_utterances(), 4);
    }

    #[test]
    fn the_repository_example_parses() {
        let p = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../data/intents/headset.yaml"
        );
        let i = Intents::parse(&std::fs::read_to_string(p).unwrap(), "headset.yaml").unwrap();
        assert_eq!(i.intents.len(), 16);
        assert_eq!(i.n_utterances(), 208);
    }

    #[test]
    fn every_mistake_names_file_and_line() {
        let e = err("a:\n  - x\nb:\n  - y\na:\n  - z\n");
        assert!(
            e.contains("x.yaml line 5") && e.contains("duplicate intent 'a'"),
            "{e}"
        );
        let e = err("a:\n  - x\nb: []\n");
        assert!(
            e.contains("line 3") && e.contains("'b' has no utterances"),
            "{e}"
        );
        let e = err("a:\n  - x\nb:\nc:\n  - y\n");
        assert!(e.contains("'b' has no utterances"), "{e}");
        assert!(err("a: [x\nb: - y").contains("not valid YAML"));
        assert!(err("- x\n- y\n").contains("top level is a list"));
        assert!(err("").contains("empty"));
        let e = err("a:\n  - x\n  - 12\nb:\n  - y\n");
        assert!(e.contains("line 3") && e.contains("number"), "{e}");
        let e = err("a:\n  - x\n  -\nb:\n  - y\n");
        assert!(e.contains("utterance 2 of intent 'a' is empty"), "{e}");
        let e = err("a:\n  - x\n  - \"  \"\nb:\n  - y\n");
        assert!(e.contains("empty"), "{e}");
        let e = err("a:\n  - x\n  - {k: v}\nb:\n  - y\n");
        assert!(e.contains("mapping, not a string"), "{e}");
        let e = err("a:\n  - Turn it on\nb:\n  - turn  it on\n");
        assert!(
            e.contains("line 4") && e.contains("'a' (line 2)") && e.contains("intent 'b'"),
            "{e}"
        );
        let e = err("a:\n  - x\n  - x\nb:\n  - y\n");
        assert!(e.contains("twice in intent 'a'"), "{e}");
        assert!(err("a:\n  - x\n").contains("at least 2"));
        assert!(err("a:\n  - x\nunknown:\n  - y\n").contains("reserved"));
        assert!(err("a: x\nb:\n  - y\n").contains("expected a list"));
        assert!(err("a:\n  - x\n---\nb:\n  - y\n").contains("second YAML document"));
    }

    #[test]
    fn plain_scalars_follow_the_core_schema() {
        for s in [
            "", "~", "null", "true", "False", "1", "-2.5", ".5", "1e3", "0x1f", ".inf",
        ] {
            assert!(plain_kind(s).is_some(), "{s}");
        }
        for s in ["hello", "1a", "e3", "0x", "1.2.3", "-"] {
            assert!(plain_kind(s).is_none(), "{s}");
        }
    }

    fn centroids() -> Centroids {
        Centroids {
            names: vec!["a".into(), "b".into(), "c".into()],
            dim: 2,
            data: vec![1.0, 0.0, 0.0, 1.0, -1.0, 0.0],
        }
    }

    #[test]
    fn classify_ranks_and_applies_the_threshold() {
        let c = centroids();
        let r = c.classify(&[3.0, 1.0], 0.5, 2);
        assert_eq!(r.intent, "a");
        assert!((r.score - 0.9486833).abs() < 1e-6);
        assert_eq!(r.runner_up.as_ref().unwrap().intent, "b");
        assert_eq!(r.top.len(), 2);
        let r = c.classify(&[3.0, 1.0], 0.95, 5);
        assert!(r.unknown);
        assert_eq!((r.intent.as_str(), r.best.as_str()), (UNKNOWN, "a"));
        assert_eq!(r.top.len(), 3);
    }

    #[test]
    fn cache_bytes_round_trip_and_reject_damage() {
        let c = centroids();
        let key = cache_key("pkg", b"intents");
        let b = c.to_cache_bytes(&key);
        assert_eq!(Centroids::from_cache_bytes(&b, &key).unwrap(), c);
        let other = cache_key("pkg2", b"intents");
        assert!(Centroids::from_cache_bytes(&b, &other)
            .unwrap_err()
            .contains("key mismatch"));
        let mut d = b.clone();
        d[70] ^= 1;
        assert!(Centroids::from_cache_bytes(&d, &key)
            .unwrap_err()
            .contains("checksum"));
        assert!(Centroids::from_cache_bytes(&b[..40], &key).is_err());
        assert_ne!(cache_key("pkg", b"intents"), cache_key("pkg", b"intents "));
    }

    #[test]
    fn evaluation_counts() {
        let c = centroids();
        let intents = Intents::parse("a:\n  - x\nb:\n  - y\nc:\n  - z\n", "i.yaml").unwrap();
        let set = parse_labelled(
            "utterance\tintent\nfirst\ta\nsecond\tb\nthird\tunknown\n",
            "t.tsv",
            &intents,
        )
        .unwrap();
        let got: Vec<_> = [[1.0, 0.1], [1.0, 0.2], [1.0, 1.0]]
            .iter()
            .map(|v| c.classify(v, 0.8, 2))
            .collect();
        let r = evaluate(&set, &got, 0.8);
        assert_eq!((r.n_in_scope, r.n_unknown, r.correct_in_scope), (2, 1, 1));
        assert_eq!(r.unknown_recall, Some(1.0));
        assert!((r.accuracy_overall - 2.0 / 3.0).abs() < 1e-9);
        assert_eq!(r.errors.len(), 1);
        assert_eq!(r.errors[0].line, 3);
        let e = parse_labelled("x\tnope\n", "t.tsv", &intents).unwrap_err();
        assert!(e.to_string().contains("t.tsv line 1"), "{e}");
        assert!(parse_labelled("x y\n", "t.tsv", &intents).is_err());
    }
}
