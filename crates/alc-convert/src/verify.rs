//! `alc verify PACKAGE`: check a package (or any GGUF file) before it is deployed.
//!
//! Four checks, each with its findings (what, the problem, the fix):
//! - `digests`: the whole file against `alc.sha256` and every tensor's bytes against
//!   `alc.tensor_sha256` (alc packages; skipped for other GGUF files);
//! - `structure`: the model builds (every tensor present with the shape its
//!   hyperparameters imply), the tokenizer builds and fits the embedding and output
//!   rows, the chat template renders, the manifest's counts match the file;
//! - `compatibility`: the package format version, the architecture and every tensor
//!   type against what this build executes;
//! - `self_check`: the package's recorded prompt and top-1 ids
//!   (`alc.selfcheck.*`) reproduced by the reference backend, and the optimised CPU
//!   backend agreeing with it ([`crate::compile::self_check_with`]); for a GGUF without
//!   a record, the backends' agreement alone.
//!
//! An unreadable input (not a GGUF file, truncated header) is an `Err`; everything
//! else is a [`VerifyReport`] whose `passed` says whether all checks hold. The JSON
//! form is documented in docs/FORMAT.md, Part G.

use crate::compile::{
    hex, package_sha256, self_check_prompt, self_check_with, FORMAT_VERSION, PACKAGE_SHA256_KEY,
};
use crate::ConvertError;
use alc_format::{GgufFile, Value};
use serde::Serialize;
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The outcome of one check.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Ok,
    Failed,
    Skipped,
}

/// One problem: what (a tensor, key or component), the problem, and the fix.
#[derive(Clone, Debug, Serialize)]
pub struct Finding {
    pub what: String,
    pub problem: String,
    pub fix: String,
}

/// One of the four checks.
#[derive(Clone, Debug, Serialize)]
pub struct Check {
    pub name: &'static str,
    pub status: Status,
    /// One line: what was checked, or why it was skipped.
    pub summary: String,
    pub findings: Vec<Finding>,
}

/// `alc verify`'s result for one file.
#[derive(Clone, Debug, Serialize)]
pub struct VerifyReport {
    pub file: PathBuf,
    /// The file carries an alc manifest (`alc.format_version`).
    pub alc_package: bool,
    pub format_version: Option<u32>,
    pub architecture: Option<String>,
    pub passed: bool,
    pub checks: Vec<Check>,
}

/// Options of [`verify_package`].
#[derive(Clone, Debug)]
pub struct VerifyOptions {
    /// Threads of the CPU backend in the self-check.
    pub threads: usize,
    /// Run the self-check (it loads and evaluates the model: seconds for large ones).
    pub self_check: bool,
}

impl Default for VerifyOptions {
    fn default() -> Self {
        VerifyOptions {
            threads: 2,
            self_check: true,
        }
    }
}

/// At most this many findings per check are listed; the rest are counted.
const MAX_FINDINGS: usize = 20;

fn finding(what: impl Into<String>, problem: impl Into<String>, fix: impl Into<String>) -> Finding {
    Finding {
        what: what.into(),
        problem: problem.into(),
        fix: fix.into(),
    }
}

fn check(name: &'static str, summary: String, mut findings: Vec<Finding>) -> Check {
    if findings.len() > MAX_FINDINGS {
        let more = findings.len() - MAX_FINDINGS;
        findings.truncate(MAX_FINDINGS);
        findings.push(finding(
            format!("{more} more"),
            "further findings of this check are not listed",
            "fix the ones above and verify again",
        ));
    }
    Check {
        name,
        status: if findings.is_empty() {
            Status::Ok
        } else {
            Status::Failed
        },
        summary,
        findings,
    }
}

fn skipped(name: &'static str, why: impl Into<String>) -> Check {
    Check {
        name,
        status: Status::Skipped,
        summary: why.into(),
        findings: Vec::new(),
    }
}

const RECOPY: &str = "the file changed after it was built: copy it again from where it \
                      came from (or the registry), or compile it again";
const RECOMPILE: &str = "compile the package again with this alc";

/// Verify the package or GGUF file at `path`. `Err` only when it cannot be read
/// as a GGUF file at all.
pub fn verify_package(path: &Path, opts: &VerifyOptions) -> Result<VerifyReport, ConvertError> {
    let file = Arc::new(GgufFile::open(path)?);
    Ok(verify_file(file, opts))
}

/// [`verify_package`] on an opened file (e.g. one decrypted into memory).
pub fn verify_file(file: Arc<GgufFile>, opts: &VerifyOptions) -> VerifyReport {
    let format_version = file
        .get("alc.format_version")
        .and_then(|v| v.as_u64())
        .map(|v| v.min(u64::from(u32::MAX)) as u32);
    let alc_package = format_version.is_some();
    let architecture = file
        .get_str("general.architecture")
        .ok()
        .flatten()
        .map(str::to_string);

    let digests = if alc_package {
        digests(&file)
    } else {
        skipped(
            "digests",
            "not an alc package (no alc.* manifest): no digests recorded",
        )
    };
    let (structure, model_ok) = structure(&file);
    let compat = compatibility(&file, format_version);
    let self_check = if !opts.self_check {
        skipped("self_check", "skipped (--no-self-check)")
    } else if !model_ok || compat.status == Status::Failed {
        skipped(
            "self_check",
            "skipped: the model does not load in this build (see the checks above)",
        )
    } else {
        run_self_check(&file, opts.threads)
    };
    let checks = vec![digests, structure, compat, self_check];
    VerifyReport {
        file: file.path().to_path_buf(),
        alc_package,
        format_version,
        architecture,
        passed: checks.iter().all(|c| c.status != Status::Failed),
        checks,
    }
}

fn digests(file: &GgufFile) -> Check {
    let mut found = Vec::new();
    let mut parts = Vec::new();
    // The whole file on one thread, the tensors on this one.
    let whole = std::thread::scope(|s| {
        let whole = s.spawn(|| package_sha256(file));
        match file.get_str_array("alc.tensor_sha256") {
            Ok(Some(want)) if want.len() == file.tensors().len() => {
                for (t, w) in file.tensors().iter().zip(&want) {
                    let got = hex(&Sha256::digest(file.tensor_data(t)));
                    if got != *w {
                        found.push(finding(
                            format!("tensor {}", t.name),
                            format!("sha256 {got} differs from the manifest's {w}"),
                            RECOPY,
                        ));
                    }
                }
                parts.push(format!("{} tensor digests", want.len()));
            }
            Ok(Some(want)) => found.push(finding(
                "alc.tensor_sha256",
                format!(
                    "{} digests for {} tensors",
                    want.len(),
                    file.tensors().len()
                ),
                RECOPY,
            )),
            _ => found.push(finding(
                "alc.tensor_sha256",
                "missing or not a list of strings",
                RECOMPILE,
            )),
        }
        whole.join().expect("hashing does not panic")
    });
    match (whole, file.get_str(PACKAGE_SHA256_KEY).ok().flatten()) {
        (Some(got), Some(want)) if got == want => parts.insert(0, "file sha256".into()),
        (Some(got), Some(want)) => found.push(finding(
            PACKAGE_SHA256_KEY,
            format!("the file's sha256 is {got}, the manifest records {want}"),
            RECOPY,
        )),
        (_, None) => parts.insert(
            0,
            "no whole-file digest (a package from before alc.sha256)".into(),
        ),
        (None, Some(v)) => found.push(finding(
            PACKAGE_SHA256_KEY,
            format!("{v:?} is not 64 hex digits"),
            RECOPY,
        )),
    }
    check("digests", parts.join(", "), found)
}

/// The structure check, and whether the model builds (the self-check needs it).
fn structure(file: &Arc<GgufFile>) -> (Check, bool) {
    let mut found = Vec::new();
    // (layers, embedding rows) of the model as the engine builds it.
    let built = if crate::compile::is_onnx_package(file) {
        onnx_structure(file)
    } else if is_encoder(file) {
        alc_models::BertModel::from_gguf(file.clone())
            .map(|m| (m.hp.n_layer, m.hp.n_vocab))
            .map_err(|e| e.to_string())
    } else {
        alc_models::Model::from_gguf(file.clone())
            .map(|m| (m.hp.n_layer, m.hp.n_vocab))
            .map_err(|e| e.to_string())
    };
    let model = match built {
        Ok(m) => Some(m),
        Err(e) => {
            found.push(finding("model", e, RECOMPILE));
            None
        }
    };
    let rows = |name: &str| {
        file.tensor(name)
            .and_then(|t| t.dims.get(1).copied())
            .map(|r| r as usize)
    };
    let embd_rows = rows("token_embd.weight");
    if let (Some(e), Some(o)) = (embd_rows, rows("output.weight")) {
        if e != o {
            found.push(finding(
                "output.weight",
                format!("{o} rows, but token_embd.weight has {e}"),
                RECOMPILE,
            ));
        }
    }
    match alc_tokenizer::Tokenizer::from_gguf(file) {
        Err(e) => found.push(finding("tokenizer", e.to_string(), RECOMPILE)),
        Ok(tok) => {
            if let Some(e) = embd_rows {
                if tok.vocab_size() > e {
                    found.push(finding(
                        "tokenizer.ggml.tokens",
                        format!(
                            "{} tokens, but the embedding has only {e} rows: ids past {} \
                             would read outside it",
                            tok.vocab_size(),
                            e.saturating_sub(1)
                        ),
                        RECOMPILE,
                    ));
                }
            }
            if tok.chat_template_source().is_some() {
                let hi = [alc_tokenizer::ChatMessage::new("user", "hi")];
                if let Err(e) = tok.chat_template().and_then(|t| t.render(&hi, true)) {
                    found.push(finding(
                        "tokenizer.chat_template",
                        format!("does not render: {e}"),
                        "fix the chat template in tokenizer_config.json and compile again",
                    ));
                }
            }
        }
    }
    if file.get("alc.format_version").is_some() {
        let u = |k: &str| file.get(k).and_then(|v| v.as_u64());
        if let (Some(want), Some(e)) = (u("alc.vocab_size"), embd_rows) {
            if want != e as u64 {
                found.push(finding(
                    "alc.vocab_size",
                    format!("{want}, but token_embd.weight has {e} rows"),
                    RECOMPILE,
                ));
            }
        }
        // ONNX packages count their graph's initializers, not the one tensor that
        // holds the graph's bytes.
        let params: u64 = match onnx_parameters(file) {
            Some(p) => p,
            None => file
                .tensors()
                .iter()
                .map(|t| t.dims.iter().product::<u64>())
                .sum(),
        };
        if let Some(want) = u("alc.parameter_count") {
            if want != params {
                found.push(finding(
                    "alc.parameter_count",
                    format!("{want}, but the tensors hold {params} elements"),
                    RECOMPILE,
                ));
            }
        }
        if let Ok(Some(j)) = file.get_str("alc.tokenizer.hf_json") {
            if let Err(e) = serde_json::from_str::<serde_json::Value>(j) {
                found.push(finding(
                    "alc.tokenizer.hf_json",
                    format!("not valid JSON: {e}"),
                    RECOMPILE,
                ));
            }
        }
    }
    let ok = model.is_some();
    let summary = match &model {
        Some((layers, rows)) => format!(
            "{layers} layers, {rows} embedding rows, {} tensors",
            file.tensors().len()
        ),
        None => format!("{} tensors", file.tensors().len()),
    };
    (check("structure", summary, found), ok)
}

fn compatibility(file: &GgufFile, format_version: Option<u32>) -> Check {
    let mut found = Vec::new();
    if let Some(v) = format_version {
        if v > FORMAT_VERSION {
            found.push(finding(
                "alc.format_version",
                format!("{v} is newer than this alc reads (up to {FORMAT_VERSION})"),
                "upgrade alc",
            ));
        }
    }
    let arch = file.get_str("general.architecture").ok().flatten();
    match arch {
        Some(a) if alc_models::arch_spec(a).is_some() || a == "bert" => {}
        _ => found.push(finding(
            "general.architecture",
            format!(
                "{} is not an architecture this build runs (supported: {})",
                arch.map_or("(missing)".to_string(), |a| format!("'{a}'")),
                alc_models::ARCHS
                    .iter()
                    .map(|f| f().name)
                    .chain(["bert"])
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            "upgrade alc, or compile the model for a supported architecture",
        )),
    }
    let onnx = crate::compile::is_onnx_package(file);
    if onnx {
        if let Err(e) = alc_ort::runtime() {
            found.push(finding(
                "alc.runtime",
                format!("the package runs on ONNX Runtime, which is not available: {e}"),
                "install ONNX Runtime as the message says",
            ));
        }
    }
    for t in file.tensors().iter().filter(|_| !onnx) {
        if !alc_core::EXECUTED_TYPES.contains(&t.dtype) {
            found.push(finding(
                format!("tensor {}", t.name),
                format!(
                    "type {:?} is not executed by this build (executed: {})",
                    t.dtype,
                    alc_core::EXECUTED_TYPES
                        .iter()
                        .map(|d| format!("{d:?}"))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
                "compile the package with a supported --quant (e.g. q4f16_1)",
            ));
        }
    }
    let target = file.get_str("alc.target").ok().flatten().unwrap_or("cpu");
    let summary = format!(
        "format version {}, architecture {}, {} tensor types; built for {target}, run here \
         by the CPU backend",
        format_version.map_or("- (plain GGUF)".into(), |v| v.to_string()),
        arch.unwrap_or("(missing)"),
        {
            let mut ts: Vec<String> = file
                .tensors()
                .iter()
                .map(|t| format!("{:?}", t.dtype))
                .collect();
            ts.sort();
            ts.dedup();
            ts.len()
        }
    );
    check("compatibility", summary, found)
}

fn u32_array(file: &GgufFile, key: &str) -> Option<Vec<u32>> {
    match file.get(key)? {
        Value::Array(a) => a
            .iter()
            .map(|v| v.as_u64().and_then(|x| u32::try_from(x).ok()))
            .collect(),
        _ => None,
    }
}

/// An embedding package (BERT encoder) rather than a decoder.
/// (layers, vocabulary) of an ONNX package: its graph parses and is BERT-shaped,
/// its tokenizer loads.
fn onnx_structure(file: &GgufFile) -> Result<(usize, usize), String> {
    let t = file
        .tensor(alc_engine::embed::ONNX_TENSOR)
        .ok_or_else(|| format!("no '{}' tensor", alc_engine::embed::ONNX_TENSOR))?;
    let model = alc_onnx::Model::parse(file.tensor_data(t)).map_err(|e| e.to_string())?;
    let shape = alc_onnx::bert_shape(&model).map_err(|e| e.to_string())?;
    let want = file.get_u64("bert.embedding_length").ok().flatten();
    if want != Some(shape.hidden as u64) {
        return Err(format!(
            "the graph's hidden size {} differs from bert.embedding_length {want:?}",
            shape.hidden
        ));
    }
    let layers = file.get_u64("bert.block_count").ok().flatten().unwrap_or(0) as usize;
    let vocab = alc_tokenizer::Tokenizer::from_gguf(file)
        .map(|t| t.vocab_size())
        .map_err(|e| e.to_string())?;
    Ok((layers, vocab))
}

/// Elements of the initializers of an ONNX package's graph (`None` for other files,
/// or a graph that does not parse: the structure check reports that).
fn onnx_parameters(file: &GgufFile) -> Option<u64> {
    if !crate::compile::is_onnx_package(file) {
        return None;
    }
    let t = file.tensor(alc_engine::embed::ONNX_TENSOR)?;
    let model = alc_onnx::Model::parse(file.tensor_data(t)).ok()?;
    Some(alc_onnx::parameter_count(&model))
}

fn is_encoder(file: &GgufFile) -> bool {
    file.get_str("general.architecture").ok().flatten() == Some("bert")
}

/// The self-check of an embedding package: the recorded prompt's embedding from the
/// reference backend must reproduce the recorded components, and the CPU backend
/// must agree with it ([`crate::compile::self_check_encoder`]).
fn run_encoder_self_check(file: &Arc<GgufFile>, threads: usize) -> Check {
    let mut found = Vec::new();
    let (Some(prompt), Some(expected)) = (
        u32_array(file, "alc.selfcheck.prompt"),
        u32_array(file, "alc.selfcheck.expected"),
    ) else {
        return check(
            "self_check",
            "no recorded self-check".into(),
            vec![finding("alc.selfcheck.prompt", "missing", RECOMPILE)],
        );
    };
    let r = if crate::compile::is_onnx_package(file) {
        crate::compile::self_check_onnx(file.path(), threads, Some((&prompt, &expected)), None)
    } else {
        crate::compile::self_check_encoder(file, threads, Some((&prompt, &expected)))
    };
    match r {
        Err(e) => found.push(finding("self-check", e.to_string(), RECOMPILE)),
        Ok(r) => {
            if let Some(f) = &r.failure {
                found.push(finding("self-check", f.clone(), RECOPY));
            }
            return check(
                "self_check",
                format!(
                    "recorded prompt → recorded embedding: {} tokens, 1 − cosine(reference, CPU) {:.2e}",
                    prompt.len(),
                    r.max_rel_err
                ),
                found,
            );
        }
    }
    check(
        "self_check",
        "recorded prompt → recorded embedding".into(),
        found,
    )
}

fn run_self_check(file: &Arc<GgufFile>, threads: usize) -> Check {
    if is_encoder(file) {
        return run_encoder_self_check(file, threads);
    }
    let mut found = Vec::new();
    let prompt = match self_check_prompt(file) {
        Ok(p) => p,
        Err(e) => {
            return check(
                "self_check",
                "the self-check prompt does not tokenize".into(),
                vec![finding("tokenizer", e.to_string(), RECOMPILE)],
            )
        }
    };
    let recorded_prompt = u32_array(file, "alc.selfcheck.prompt");
    let recorded = u32_array(file, "alc.selfcheck.expected");
    let status = file.get_str("alc.verification").ok().flatten();
    if let Some(s) = status {
        if s.trim() != "verified" {
            found.push(finding(
                "alc.verification",
                format!("the package records {:?}, not \"verified\"", s.trim()),
                "compile it again; a package that fails its self-check is not published",
            ));
        }
    }
    if let Some(rp) = &recorded_prompt {
        if *rp != prompt {
            found.push(finding(
                "alc.selfcheck.prompt",
                format!("recorded {rp:?}, but the package's tokenizer now gives {prompt:?}"),
                RECOPY,
            ));
        }
    }
    // A record of the wrong length is damage, not a missing record.
    let recorded = match recorded {
        Some(r) if r.len() != prompt.len() => {
            found.push(finding(
                "alc.selfcheck.expected",
                format!("{} ids for a {}-token prompt", r.len(), prompt.len()),
                RECOPY,
            ));
            None
        }
        r => r,
    };
    let what = if recorded.is_some() {
        "recorded prompt → recorded top-1 ids"
    } else {
        "no recorded expectation: reference and CPU backends compared"
    };
    match self_check_with(file, threads, prompt.clone(), recorded.as_deref()) {
        Err(e) => found.push(finding("self-check", e.to_string(), RECOMPILE)),
        Ok(r) => {
            if let Some(f) = &r.failure {
                found.push(finding(
                    "self-check",
                    format!("{f} (prompt {:?}, got {:?})", r.prompt, r.got),
                    RECOPY,
                ));
            }
            return check(
                "self_check",
                format!(
                    "{what}: {} tokens, max KL(reference ‖ CPU) {:.2e} nat",
                    prompt.len(),
                    r.max_kl
                ),
                found,
            );
        }
    }
    check("self_check", what.into(), found)
}
