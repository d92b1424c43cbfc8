//! The compile pipeline: plan, per-tensor work files, assembly, self-check, commit.

use crate::arch::{self, Arch, Hp, TensorPlan, Transform};
use crate::config::HfConfig;
use crate::naming::{self, NameScheme};
use crate::quant::{self, Override, Reason, Scheme};
use crate::vlm::{self, VisionHp};
use crate::vocab::HfTokenizer;
use crate::ConvertError;
use alc_core::DType;
use alc_format::{AtomicFile, GgufFile, GgufWriter, HfTensors, Value};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

#[path = "compile_bert.rs"]
mod bert;
#[path = "compile_onnx.rs"]
mod onnx;
pub use bert::{encoder_metadata, encoder_tokenizer_gguf};
pub use onnx::{extract_onnx, is_onnx_package, self_check_onnx, ONNX_QUANTS};

/// Version of the package manifest (`alc.format_version`).
pub const FORMAT_VERSION: u32 = 1;
/// Rows converted and quantised per step (bounds the memory of big tensors).
const ROW_BLOCK: usize = 4096;
/// Self-check prompt tokens.
pub const SELF_CHECK_TOKENS: usize = 8;
const SELF_CHECK_TEXT: &str =
    "The quick brown fox jumps over the lazy dog, then 12 more dogs ran home.";
/// Contexts the manifest's memory plan covers (those up to the package's context,
/// plus the context itself).
const PLAN_CONTEXTS: [usize; 4] = [512, 2048, 8192, 32768];
/// The manifest key of the whole package's sha256 (see [`package_sha256`]).
pub const PACKAGE_SHA256_KEY: &str = "alc.sha256";

/// sha256 (hex) of the whole package file with the 64 hex digits of
/// [`PACKAGE_SHA256_KEY`] read as ASCII '0's: the value the key holds in an intact
/// package. `None` when the file has no such 64-character key (not an alc package, or
/// one from before the key existed).
pub fn package_sha256(f: &GgufFile) -> Option<String> {
    match f.get(PACKAGE_SHA256_KEY) {
        Some(Value::String(s)) if s.len() == 64 => {}
        _ => return None,
    }
    let at = f.value_offset(PACKAGE_SHA256_KEY)? as usize;
    let b = f.bytes();
    let mut h = Sha256::new();
    h.update(&b[..at]);
    h.update([b'0'; 64]);
    h.update(&b[at + 64..]);
    Some(hex(&h.finalize()))
}

/// Width of `alc.verification` (padded with spaces so it can be patched in place).
const STATUS_WIDTH: usize = 8;

/// What to compile and how.
#[derive(Clone, Debug)]
pub struct CompileOptions {
    /// A Hugging Face checkpoint directory.
    pub input: PathBuf,
    /// `cpu`, `cuda`, `vulkan` or `metal`.
    pub target: String,
    /// `--quant`; `None` takes the target's default.
    pub quant: Option<String>,
    /// `--ctx`; `None`: the model's trained context, capped by the target default.
    pub ctx: Option<usize>,
    pub name_scheme: NameScheme,
    /// `--name` (file name of the package).
    pub name: Option<String>,
    pub out_dir: PathBuf,
    /// `--tensor-type PATTERN=TYPE` overrides.
    pub overrides: Vec<String>,
    pub threads: usize,
    /// Replace a package of the same name built from other inputs.
    pub force: bool,
    /// `--runtime`: `native` (default) or `onnxruntime` (embedding models: the
    /// package holds an ONNX graph run by ONNX Runtime; an .onnx input implies it).
    pub runtime: Option<String>,
    /// `--tokenizer DIR`: tokenizer directory of an .onnx input (default: its own).
    pub tokenizer: Option<PathBuf>,
    /// `--emit-onnx`: ONNX packages also write their graph as a plain .onnx file.
    pub emit_onnx: bool,
}

impl CompileOptions {
    /// Defaults for `input` into `out_dir`: target cpu with its default quantisation
    /// and context, AVA names, all cores, no overrides, no --force.
    pub fn new(input: impl Into<PathBuf>, out_dir: impl Into<PathBuf>) -> CompileOptions {
        CompileOptions {
            input: input.into(),
            target: "cpu".into(),
            quant: None,
            ctx: None,
            name_scheme: NameScheme::Ava,
            name: None,
            out_dir: out_dir.into(),
            overrides: Vec::new(),
            threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
            force: false,
            runtime: None,
            tokenizer: None,
            emit_onnx: false,
        }
    }
}

/// Progress events for the CLI's bars.
#[derive(Clone, Debug)]
pub enum Progress<'a> {
    Stage(&'a str),
    Tensor {
        index: usize,
        count: usize,
        name: &'a str,
        bytes_done: u64,
        bytes_total: u64,
        resumed: bool,
    },
}

/// Per-tensor line of the report.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct TensorReport {
    pub name: String,
    pub source: String,
    pub dtype: String,
    pub reason: String,
    pub shape: Vec<usize>,
    pub bytes: u64,
    pub rmse: f64,
    pub max_abs: f64,
    pub sha256: String,
}

/// Memory needed at one context.
#[derive(Clone, Debug, serde::Serialize)]
pub struct PlanLine {
    pub ctx: usize,
    pub total_bytes: u64,
}

/// Outcome of the self-check.
#[derive(Clone, Debug, serde::Serialize)]
pub struct SelfCheck {
    pub prompt: Vec<u32>,
    pub expected: Vec<u32>,
    pub got: Vec<u32>,
    /// Largest per-position relative L2 difference of the CPU backend's logits from
    /// the reference's.
    pub max_rel_err: f64,
    /// Largest per-position KL(reference ‖ CPU) of the next-token distributions.
    pub max_kl: f64,
    pub passed: bool,
    /// The first failing position and why, when the check failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failure: Option<String>,
}

/// The compile report (also written as `<package>.report.json`).
#[derive(Clone, Debug, serde::Serialize)]
pub struct Report {
    pub package: PathBuf,
    pub name: String,
    pub architecture: String,
    pub gguf_architecture: String,
    pub target: String,
    pub quant: String,
    pub context: usize,
    pub parameters: u64,
    pub build_key: String,
    pub source_sha256: String,
    pub input_bytes: u64,
    pub output_bytes: u64,
    pub stages_ms: BTreeMap<String, f64>,
    pub peak_rss_bytes: u64,
    pub tensors_resumed: usize,
    pub memory_plan: Vec<PlanLine>,
    pub self_check: SelfCheck,
    pub verification: String,
    pub notes: Vec<String>,
    pub tensors: Vec<TensorReport>,
}

/// Result of [`compile`].
#[derive(Debug)]
pub enum Outcome {
    Built(Box<Report>),
    /// A package built from the same inputs and options is already there.
    UpToDate {
        path: PathBuf,
        build_key: String,
    },
}

/// Tensor types a target's backend executes, its default quantisation and context.
struct Target {
    name: &'static str,
    types: &'static [DType],
    default_quant: Scheme,
    default_ctx: usize,
}

const GPU_TYPES: &[DType] = &[DType::F32, DType::F16, DType::Q8_0, DType::Q4_0];
const TARGETS: &[Target] = &[
    Target {
        name: "cpu",
        types: &alc_core::EXECUTED_TYPES,
        default_quant: Scheme::Q4f16_1,
        default_ctx: 4096,
    },
    Target {
        name: "cuda",
        types: &[
            DType::F32,
            DType::F16,
            DType::BF16,
            DType::Q8_0,
            DType::Q4_0,
            DType::Q4BF16_1,
        ],
        default_quant: Scheme::Q4f16_1,
        default_ctx: 8192,
    },
    Target {
        name: "vulkan",
        types: GPU_TYPES,
        default_quant: Scheme::Q4f16_1,
        default_ctx: 4096,
    },
    Target {
        name: "metal",
        types: GPU_TYPES,
        default_quant: Scheme::Q4f16_1,
        default_ctx: 4096,
    },
];

fn target(name: &str) -> Result<&'static Target, ConvertError> {
    TARGETS.iter().find(|t| t.name == name).ok_or_else(|| {
        ConvertError::Unsupported(format!(
            "unknown --target '{name}'; supported: {}",
            TARGETS
                .iter()
                .map(|t| t.name)
                .collect::<Vec<_>>()
                .join(", ")
        ))
    })
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> ConvertError + '_ {
    move |source| ConvertError::Io {
        path: path.to_path_buf(),
        source,
    }
}

pub(crate) fn hex(d: &[u8]) -> String {
    d.iter().map(|b| format!("{b:02x}")).collect()
}

/// sha256 of a file, streamed.
fn file_sha256(path: &Path) -> Result<[u8; 32], ConvertError> {
    let mut f = std::fs::File::open(path).map_err(io_err(path))?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf).map_err(io_err(path))?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(h.finalize().into())
}

/// A date (YYYY-MM-DD) from seconds since the epoch (civil calendar).
fn iso_date(secs: u64) -> String {
    let z = (secs / 86_400) as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}")
}

/// Everything decided before any tensor is converted.
struct Plan {
    hp: Hp,
    scheme: Scheme,
    ctx: usize,
    tensors: Vec<(TensorPlan, DType, Reason)>,
    notes: Vec<String>,
}

fn tensor_order(name: &str) -> (usize, usize, String) {
    // token_embd first, the layers in order, output_norm and output last.
    match name {
        "token_embd.weight" => (0, 0, String::new()),
        "output_norm.weight" => (2, 0, String::new()),
        "output.weight" => (2, 1, String::new()),
        // A VLM's vision tower and projector after the text model.
        _ if name.starts_with("v.") || name.starts_with("mm.") => (3, 0, name.to_string()),
        _ => {
            let layer = name
                .strip_prefix("blk.")
                .and_then(|r| r.split('.').next())
                .and_then(|i| i.parse().ok())
                .unwrap_or(usize::MAX);
            (1, layer, name.to_string())
        }
    }
}

/// Package tensors every layer of `hp`'s architecture must have.
fn required(hp: &Hp, tied: bool) -> Vec<String> {
    let mut names = vec!["token_embd.weight".to_string(), "output_norm.weight".into()];
    if !tied {
        names.push("output.weight".into());
    }
    for i in 0..hp.n_layer {
        let mut per = vec![
            "attn_norm.weight",
            "attn_q.weight",
            "attn_k.weight",
            "attn_v.weight",
            "attn_output.weight",
            "ffn_norm.weight",
            "ffn_gate.weight",
            "ffn_up.weight",
            "ffn_down.weight",
        ];
        if matches!(hp.arch, Arch::Qwen3 | Arch::Gemma3) {
            per.extend(["attn_q_norm.weight", "attn_k_norm.weight"]);
        }
        if matches!(hp.arch, Arch::Gemma2 | Arch::Gemma3) {
            per.extend(["post_attention_norm.weight", "post_ffw_norm.weight"]);
        }
        names.extend(per.iter().map(|s| format!("blk.{i}.{s}")));
    }
    names
}

fn make_plan(
    opts: &CompileOptions,
    cfg: &HfConfig,
    st: &HfTensors,
    tgt: &Target,
    vision: Option<&VisionHp>,
) -> Result<Plan, ConvertError> {
    let hp = Hp::read(cfg)?;
    let scheme = match &opts.quant {
        Some(q) => Scheme::parse(q)?,
        None => tgt.default_quant,
    };
    let overrides = parse_overrides(opts)?;
    let ctx = check_ctx(opts, hp.ctx_train, tgt)?;
    let mut notes = Vec::new();
    let mut plans: Vec<TensorPlan> = Vec::new();
    let mut skipped = 0usize;
    // A VLM's vision tensors: the checkpoint's shape found for each planned one,
    // checked afterwards in plan order (patch embedding first), so that a wrong
    // vision width is reported at the tensor that shows it first.
    let vision_plans: Vec<TensorPlan> = vision.map(VisionHp::plans).unwrap_or_default();
    let vision_index: BTreeMap<&str, usize> = vision_plans
        .iter()
        .enumerate()
        .map(|(i, p)| (p.source.as_str(), i))
        .collect();
    let mut vision_found: Vec<Option<Vec<usize>>> = vec![None; vision_plans.len()];
    for t in st.tensors() {
        if vision.is_some() && vlm::is_vision_source(&t.name) {
            let i = *vision_index.get(t.name.as_str()).ok_or_else(|| {
                ConvertError::UnexpectedTensor {
                    tensor: t.name.clone(),
                    arch: vlm::VISION_ARCH,
                }
            })?;
            vision_found[i] = Some(t.shape.iter().map(|&d| d as usize).collect());
            continue;
        }
        let Some(name) = arch::text_name(&t.name) else {
            skipped += 1;
            continue;
        };
        let Some(ps) = arch::map_tensor(&hp, &name)? else {
            continue;
        };
        let got: Vec<usize> = t.shape.iter().map(|&d| d as usize).collect();
        for mut p in ps {
            if got != p.source_shape {
                return Err(ConvertError::ShapeMismatch {
                    tensor: t.name.clone(),
                    expected: format!("{:?}", p.source_shape),
                    got: format!("{got:?}"),
                });
            }
            p.source = t.name.clone();
            plans.push(p);
        }
    }
    if skipped > 0 {
        notes.push(format!(
            "{skipped} tensors of other towers (vision encoder, projector) left out: text-only package"
        ));
    }
    let mut vision_out: Vec<TensorPlan> = Vec::with_capacity(vision_plans.len());
    for (p, got) in vision_plans.into_iter().zip(vision_found) {
        let Some(got) = got else {
            return Err(ConvertError::MissingTensor {
                tensor: p.source,
                why: format!("the vision tower needs it as {}", p.name),
            });
        };
        if got != p.source_shape {
            return Err(ConvertError::ShapeMismatch {
                tensor: p.source,
                expected: format!("{:?}", p.source_shape),
                got: format!("{got:?}"),
            });
        }
        vision_out.push(p);
    }
    let tied = !plans.iter().any(|p| p.name == "output.weight");
    for want in required(&hp, tied) {
        if !plans.iter().any(|p| p.name == want) {
            return Err(ConvertError::MissingTensor {
                tensor: want,
                why: format!("a {} layer needs it", hp.arch.name()),
            });
        }
    }
    let mut seen = std::collections::HashSet::new();
    for p in &plans {
        if !seen.insert(p.name.clone()) {
            return Err(ConvertError::Unsupported(format!(
                "two checkpoint tensors map to '{}'",
                p.name
            )));
        }
    }
    plans.sort_by_key(|p| tensor_order(&p.name));
    let mut tensors = Vec::with_capacity(plans.len());
    for p in plans {
        let cols = *p.shape.last().unwrap_or(&1);
        let (dt, why) = quant::choose(
            scheme,
            &overrides,
            &p.name,
            p.is_matrix(),
            cols,
            hp.n_layer,
            tied,
        )?;
        check_target(
            tgt,
            &p.name,
            dt,
            &format!("use --quant {}", tgt.default_quant.name()),
        )?;
        if why == Reason::Fallback {
            notes.push(format!(
                "{}: rows of {cols} are not a multiple of the scheme's block; stored as {dt}",
                p.name
            ));
        }
        tensors.push((p, dt, why));
    }
    vision_out.sort_by_key(|p| tensor_order(&p.name));
    let (mut kept16, mut q8) = (0usize, 0usize);
    for p in vision_out {
        let (mut dt, why) = vlm::choose(scheme, &overrides, &p)?;
        // A target without Q8_0 keeps the tower in F16.
        if why == Reason::Vision && dt == DType::Q8_0 && !tgt.types.contains(&dt) {
            dt = DType::F16;
        }
        check_target(
            tgt,
            &p.name,
            dt,
            &format!("use --quant {}", tgt.default_quant.name()),
        )?;
        kept16 += usize::from(why == Reason::Vision && dt == DType::F16);
        q8 += usize::from(why == Reason::Vision && dt == DType::Q8_0);
        tensors.push((p, dt, why));
    }
    if q8 > 0 {
        notes.push(format!(
            "{q8} vision-tower matrices in Q8_0 under the {} scheme (the text model takes the scheme)",
            scheme.name()
        ));
    }
    if kept16 > 0 {
        notes.push(format!(
            "{kept16} vision-tower matrices kept in F16 (the {} scheme quantises the text model only)",
            scheme.name()
        ));
    }
    Ok(Plan {
        hp,
        scheme,
        ctx,
        tensors,
        notes,
    })
}

alc_quant::avx2_clone!(
    /// Per-row squared errors of `back` against `x` (rows of `cols`) and the largest
    /// absolute error: f32 within runs of 32, f64 across them.
    fn row_errors(x: &[f32], back: &[f32], cols: usize) -> (Vec<f64>, f64) = row_errors_body
);

#[inline(always)]
fn row_errors_body(x: &[f32], back: &[f32], cols: usize) -> (Vec<f64>, f64) {
    let mut rows_se = Vec::with_capacity(x.len() / cols.max(1));
    let mut mx = 0f64;
    for (a, b) in x.chunks(cols).zip(back.chunks(cols)) {
        let mut se = 0f64;
        for (ca, cb) in a.chunks(32).zip(b.chunks(32)) {
            let (mut s, mut m) = (0f32, 0f32);
            for (&u, &v) in ca.iter().zip(cb) {
                let d = u - v;
                s += d * d;
                m = m.max(d.abs());
            }
            se += f64::from(s);
            mx = mx.max(f64::from(m));
        }
        rows_se.push(se);
    }
    (rows_se, mx)
}

/// Quantise `x` (whole rows of `cols`) to `dt` on `threads` threads; appends the
/// bytes to `out` and adds the squared error and max abs error to `err`.
fn quantize_rows(
    name: &str,
    dt: DType,
    x: &[f32],
    cols: usize,
    threads: usize,
    out: &mut Vec<u8>,
    err: &mut (f64, f64),
) -> Result<(), ConvertError> {
    let rows = x.len() / cols;
    let rb = dt.row_bytes(cols as u64).expect("block-checked") as usize;
    let start = out.len();
    out.resize(start + rows * rb, 0);
    let nth = threads.clamp(1, rows.max(1));
    let per = rows.div_ceil(nth);
    let dst = &mut out[start..];
    // Per-row squared errors, summed in row order afterwards, so the statistics do
    // not depend on how the rows were split between threads.
    type RowErrs = Result<(Vec<f64>, f64), alc_quant::QuantError>;
    let results: Vec<RowErrs> = std::thread::scope(|s| {
        let handles: Vec<_> = dst
            .chunks_mut(per * rb)
            .zip(x.chunks(per * cols))
            .map(|(o, xs)| {
                s.spawn(move || -> RowErrs {
                    alc_quant::quantize(dt, xs, o)?;
                    let mut back = vec![0f32; xs.len()];
                    alc_quant::dequantize(dt, o, &mut back)?;
                    Ok(row_errors(xs, &back, cols))
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("quantize thread panicked"))
            .collect()
    });
    for r in results {
        let (rows_se, mx) = r.map_err(|e| ConvertError::Quant {
            tensor: name.to_string(),
            source: e,
        })?;
        for se in rows_se {
            err.0 += se;
        }
        err.1 = err.1.max(mx);
    }
    Ok(())
}

/// Convert one package tensor into its bytes (and error statistics).
fn convert_tensor(
    st: &HfTensors,
    p: &TensorPlan,
    dt: DType,
    threads: usize,
) -> Result<(Vec<u8>, f64, f64), ConvertError> {
    let cols = if p.is_matrix() { p.shape[1] } else { 1 };
    let rows = p.n_elements() / cols;
    let mut out =
        Vec::with_capacity(dt.tensor_bytes(&[cols as u64, rows as u64]).unwrap_or(0) as usize);
    let mut err = (0f64, 0f64);
    let streaming = match &p.transform {
        Transform::None | Transform::AddOne => Some((0usize, &p.transform)),
        Transform::Rows { start, then, .. } if matches!(**then, Transform::None) => {
            Some((*start, &**then))
        }
        _ => None,
    };
    let mut buf = Vec::new();
    match streaming {
        Some((first, t)) => {
            // Row blocks straight from the map: memory stays at one block.
            let mut r = 0;
            while r < rows {
                let r1 = (r + ROW_BLOCK).min(rows);
                st.range_f32_into(&p.source, (first + r) * cols..(first + r1) * cols, &mut buf)?;
                let x = arch::apply(t, std::mem::take(&mut buf), cols);
                quantize_rows(&p.name, dt, &x, cols, threads, &mut out, &mut err)?;
                buf = x;
                r = r1;
            }
        }
        None => {
            st.to_f32_into(&p.source, &mut buf)?;
            let x = arch::apply(&p.transform, buf, cols);
            quantize_rows(&p.name, dt, &x, cols, threads, &mut out, &mut err)?;
        }
    }
    let n = p.n_elements().max(1) as f64;
    Ok((out, (err.0 / n).sqrt(), err.1))
}

/// The work directory's record of one finished tensor.
#[derive(serde::Serialize, serde::Deserialize)]
struct Done {
    bytes: u64,
    sha256: String,
    rmse: f64,
    max_abs: f64,
}

/// Write `bytes` to `path` atomically.
fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), ConvertError> {
    let mut f = AtomicFile::create(path)?;
    f.write_all(bytes)
        .map_err(|e| ConvertError::Format(f.error("writing", e)))?;
    f.commit()?;
    Ok(())
}

/// A finished tensor in the work directory, if its record and bytes agree.
/// A per-tensor work file: written under a temporary name and renamed, so a killed
/// compile never leaves a partial one, but not fsynced (two fsyncs per tensor cost
/// about a second on a 0.5B model). After a power loss a file may hold other bytes
/// than its record says; [`resume`] re-hashes every file against its record and
/// converts the tensor again on a mismatch. The package itself is fsynced.
fn write_work(path: &Path, bytes: &[u8]) -> Result<(), ConvertError> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".part");
    let tmp = PathBuf::from(tmp);
    std::fs::write(&tmp, bytes).map_err(io_err(&tmp))?;
    std::fs::rename(&tmp, path).map_err(io_err(path))
}

fn resume(work: &Path, i: usize) -> Option<Done> {
    let rec = std::fs::read(work.join(format!("{i:05}.json"))).ok()?;
    let done: Done = serde_json::from_slice(&rec).ok()?;
    let bin = work.join(format!("{i:05}.bin"));
    let len = std::fs::metadata(&bin).ok()?.len();
    if len != done.bytes {
        return None;
    }
    (hex(&file_sha256(&bin).ok()?) == done.sha256).then_some(done)
}

/// Overwrite the payload of metadata `key` (of `w`'s layout) in the written file.
fn patch(
    file: &mut std::fs::File,
    path: &Path,
    w: &GgufWriter,
    key: &str,
    bytes: &[u8],
) -> Result<(), ConvertError> {
    let at = w
        .value_offset(key)
        .expect("patched keys are set before writing");
    file.seek(SeekFrom::Start(at)).map_err(io_err(path))?;
    file.write_all(bytes).map_err(io_err(path))
}

/// Self-check bounds (see [`self_check`]).
const MAX_KL: f64 = 0.25;
const MAX_MARGIN: f64 = 1.0;

fn log_softmax(x: &[f32]) -> Vec<f64> {
    let mx = x.iter().fold(f32::MIN, |a, &b| a.max(b)) as f64;
    let lse = x.iter().map(|&v| (v as f64 - mx).exp()).sum::<f64>().ln() + mx;
    x.iter().map(|&v| v as f64 - lse).collect()
}

fn argmax(x: &[f32]) -> u32 {
    x.iter()
        .enumerate()
        .max_by(|a, b| a.1.total_cmp(b.1))
        .map_or(0, |(i, _)| i as u32)
}

/// The self-check prompt's ids under `file`'s tokenizer: [`SELF_CHECK_TEXT`] with
/// the model's BOS rule, cut or padded (repeating the last id) to
/// [`SELF_CHECK_TOKENS`].
pub fn self_check_prompt(file: &GgufFile) -> Result<Vec<u32>, ConvertError> {
    let sc = |e: String| ConvertError::SelfCheck(e);
    let tok = alc_tokenizer::Tokenizer::from_gguf(file).map_err(|e| sc(e.to_string()))?;
    let mut prompt = tok
        .encode(SELF_CHECK_TEXT, true, false)
        .map_err(|e| sc(e.to_string()))?;
    let vocab = tok.vocab_size() as u32;
    while prompt.len() < SELF_CHECK_TOKENS {
        prompt.push(
            prompt
                .last()
                .copied()
                .unwrap_or(0)
                .min(vocab.saturating_sub(1)),
        );
    }
    prompt.truncate(SELF_CHECK_TOKENS);
    Ok(prompt)
}

/// Teacher-forced next-token logits over the self-check prompt: the scalar
/// reference backend gives the expectation (its top-1 ids are recorded), the
/// optimised CPU backend must agree (see the bounds below).
pub fn self_check(file: &Arc<GgufFile>, threads: usize) -> Result<SelfCheck, ConvertError> {
    let prompt = self_check_prompt(file)?;
    self_check_with(file, threads, prompt, None)
}

/// Smallest cosine similarity between the optimised CPU backend's embedding of
/// the self-check text and the scalar reference's (and the recorded one's).
pub const MIN_SELF_CHECK_COSINE: f64 = 0.999;

fn cosine(a: &[f32], b: &[f32]) -> f64 {
    let (mut ab, mut aa, mut bb) = (0f64, 0f64, 0f64);
    for (&x, &y) in a.iter().zip(b) {
        ab += f64::from(x) * f64::from(y);
        aa += f64::from(x) * f64::from(x);
        bb += f64::from(y) * f64::from(y);
    }
    ab / (aa.sqrt() * bb.sqrt()).max(f64::MIN_POSITIVE)
}

/// The self-check of an embedding package: the self-check text's embedding from the
/// scalar reference backend and from the optimised CPU backend must agree (cosine at
/// least [`MIN_SELF_CHECK_COSINE`]). The manifest records the prompt's ids and, as
/// `expected`, the f32 bits of the reference embedding's first
/// [`SELF_CHECK_TOKENS`] components; with `recorded` (those bits, when verifying a
/// package), the reference must also reproduce them within 1e-3.
pub fn self_check_encoder(
    file: &Arc<GgufFile>,
    threads: usize,
    recorded: Option<(&[u32], &[u32])>,
) -> Result<SelfCheck, ConvertError> {
    let sc = |e: String| ConvertError::SelfCheck(e);
    let prompt = match recorded {
        Some((p, _)) => p.to_vec(),
        None => {
            let tok = alc_tokenizer::Tokenizer::from_gguf(file).map_err(|e| sc(e.to_string()))?;
            let mut p = tok
                .encode(SELF_CHECK_TEXT, true, false)
                .map_err(|e| sc(e.to_string()))?;
            // At most SELF_CHECK_TOKENS ids, ending with the separator.
            if p.len() > SELF_CHECK_TOKENS {
                let last = *p.last().expect("non-empty");
                p.truncate(SELF_CHECK_TOKENS - 1);
                p.push(last);
            }
            while p.len() < SELF_CHECK_TOKENS {
                p.push(*p.last().unwrap_or(&0));
            }
            p
        }
    };
    let run = |be: &dyn alc_kernels::Backend, pack: bool| -> Result<Vec<f32>, ConvertError> {
        let mut m =
            alc_models::BertModel::from_gguf(file.clone()).map_err(|e| sc(e.to_string()))?;
        if pack {
            m.pack_weights(be);
        }
        let mut e = m.embed(be, &[&prompt]).map_err(|e| sc(e.to_string()))?;
        Ok(e.pop().unwrap_or_default())
    };
    let reference = run(&alc_kernels::reference::ReferenceBackend, false)?;
    let cpu = run(&alc_kernels::cpu::CpuBackend::new(threads.max(1)), true)?;
    let bits = |v: &[f32]| -> Vec<u32> {
        v.iter()
            .take(SELF_CHECK_TOKENS)
            .map(|x| x.to_bits())
            .collect()
    };
    let cos = cosine(&reference, &cpu);
    let mut failure = None;
    if cos.is_nan() || cos < MIN_SELF_CHECK_COSINE {
        failure = Some(format!(
            "cosine similarity of the CPU and reference embeddings {cos:.6} < {MIN_SELF_CHECK_COSINE}"
        ));
    }
    if let Some((_, want)) = recorded {
        let drift = want
            .iter()
            .zip(&reference)
            .map(|(&w, &r)| (f32::from_bits(w) - r).abs())
            .fold(0f32, f32::max);
        if want.len() != reference.len().min(SELF_CHECK_TOKENS) || drift.is_nan() || drift > 1e-3 {
            failure.get_or_insert(format!(
                "the reference embedding's first components moved by {drift:.2e} from the recorded ones (> 1e-3)"
            ));
        }
    }
    Ok(SelfCheck {
        prompt,
        expected: bits(&reference),
        got: bits(&cpu),
        max_rel_err: 1.0 - cos,
        max_kl: 0.0,
        passed: failure.is_none(),
        failure,
    })
}

/// [`self_check`] over a given `prompt`; with `recorded` (the top-1 ids a package
/// recorded when it was built), the reference's top-1 must also match them, except
/// where the two ids are within the same margin the backends may disagree by.
pub fn self_check_with(
    file: &Arc<GgufFile>,
    threads: usize,
    prompt: Vec<u32>,
    recorded: Option<&[u32]>,
) -> Result<SelfCheck, ConvertError> {
    let sc = |e: String| ConvertError::SelfCheck(e);
    let n = prompt.len();
    let run = |be: &dyn alc_kernels::Backend, pack: bool| -> Result<Vec<Vec<f32>>, ConvertError> {
        let mut m = alc_models::Model::from_gguf(file.clone()).map_err(|e| sc(e.to_string()))?;
        if pack {
            m.pack_weights(be);
        }
        let mut state = m.new_state(n, n).map_err(|e| sc(e.to_string()))?;
        let n_vocab = m.hp.n_vocab;
        let all = m
            .forward(be, &mut state, &prompt, alc_models::Logits::All)
            .map_err(|e| sc(e.to_string()))?
            .to_vec();
        Ok(all.chunks(n_vocab).map(|c| c.to_vec()).collect())
    };
    let reference = run(&alc_kernels::reference::ReferenceBackend, false)?;
    let cpu = run(&alc_kernels::cpu::CpuBackend::new(threads.max(1)), true)?;
    let expected: Vec<u32> = reference.iter().map(|l| argmax(l)).collect();
    let got: Vec<u32> = cpu.iter().map(|l| argmax(l)).collect();
    // Per position: the next-token distributions agree (KL(reference ‖ CPU) at most
    // MAX_KL nats), and a different top-1 is allowed only where the reference's
    // log-probabilities of both ids are less than MAX_MARGIN nats apart. Both
    // backends quantise activations to 8 bits for quantised weights, but their sums
    // run in different orders, so a value on a rounding boundary goes either way and
    // the difference grows through the layers (llama.cpp's own batch-size paths
    // flip ~5 % of its top-1 choices on these models, all at margins under 0.3 nat).
    // A broken package or backend is off by nats.
    let mut max_rel = 0f64;
    let mut max_kl = 0f64;
    let mut failure = None;
    for (pos, ((r, c), (&e, &g))) in reference
        .iter()
        .zip(&cpu)
        .zip(expected.iter().zip(&got))
        .enumerate()
    {
        let (mut num, mut den) = (0f64, 0f64);
        for (&a, &b) in c.iter().zip(r) {
            num += f64::from(a - b).powi(2);
            den += f64::from(b).powi(2);
        }
        max_rel = max_rel.max((num / den.max(f64::MIN_POSITIVE)).sqrt());
        let (lp, lq) = (log_softmax(r), log_softmax(c));
        let kl: f64 = lp.iter().zip(&lq).map(|(&p, &q)| p.exp() * (p - q)).sum();
        max_kl = max_kl.max(kl);
        let margin = lp[e as usize] - lp[g as usize];
        let was = recorded.and_then(|r| r.get(pos).copied()).unwrap_or(e);
        let drift = lp[e as usize] - lp.get(was as usize).copied().unwrap_or(f64::NEG_INFINITY);
        let why = if was != e && (drift.is_nan() || drift > MAX_MARGIN) {
            Some(format!(
                "the reference now picks {e} where the package recorded {was} \
                 ({drift:.3} nat apart > {MAX_MARGIN})"
            ))
        } else if kl.is_nan() || kl > MAX_KL {
            Some(format!("KL divergence {kl:.3} nat > {MAX_KL}"))
        } else if e != g && margin > MAX_MARGIN {
            Some(format!(
                "top-1 {e} (reference) vs {g} (CPU), {margin:.3} nat apart in the \
                 reference > {MAX_MARGIN}"
            ))
        } else {
            None
        };
        if let (None, Some(w)) = (&failure, why) {
            failure = Some(format!("position {pos}: {w}"));
        }
    }
    Ok(SelfCheck {
        prompt,
        expected,
        got,
        max_rel_err: max_rel,
        max_kl,
        passed: failure.is_none(),
        failure,
    })
}

/// One package tensor, ready to convert.
struct OutTensor {
    name: String,
    source: String,
    dtype: DType,
    reason: Reason,
    /// PyTorch order (outermost first); ggml dims are the reverse.
    shape: Vec<usize>,
}

impl OutTensor {
    fn dims(&self) -> Vec<u64> {
        self.shape.iter().rev().map(|&d| d as u64).collect()
    }
    fn bytes(&self) -> u64 {
        self.dtype.tensor_bytes(&self.dims()).unwrap_or(0)
    }
}

type ConvertFn<'a> = Box<dyn Fn(usize) -> Result<(Vec<u8>, f64, f64), ConvertError> + 'a>;

/// What a front end (HF directory or GGUF file) hands the back end.
struct Prepared<'a> {
    /// The decoder architecture; `None` for an encoder (BERT, [`bert`]).
    arch: Option<Arch>,
    /// `general.architecture` of the package.
    gguf_arch: &'static str,
    /// The front end's own file name (encoders), else the naming scheme decides.
    package_name: Option<String>,
    /// The source's architecture (HF class, or the GGUF's general.architecture).
    source_arch: String,
    quant_name: String,
    ava_bits: String,
    file_type: u32,
    ctx: usize,
    n_vocab: usize,
    /// Hyperparameter and tokenizer keys (general.architecture first).
    meta: Vec<(String, Value)>,
    tokenizer_json: Option<String>,
    tensors: Vec<OutTensor>,
    convert: ConvertFn<'a>,
    release: Box<dyn Fn(usize) + 'a>,
    /// Files hashed into the source digest.
    sources: Vec<PathBuf>,
    /// Directory or file stem the published size may be read from.
    stem: String,
    notes: Vec<String>,
    /// ONNX packages: the graph and its f32 source for the self-check.
    onnx: Option<OnnxBuild>,
}

/// The graph of an ONNX package ([`onnx`]) and, when it was quantised, the f32 source
/// graph the self-check compares against.
struct OnnxBuild {
    graph: Arc<Vec<u8>>,
    /// Elements of the packaged graph's initializers (`alc_onnx::parameter_count`).
    parameters: u64,
    reference: Option<Arc<Vec<u8>>>,
}

fn check_ctx(opts: &CompileOptions, ctx_train: usize, tgt: &Target) -> Result<usize, ConvertError> {
    match opts.ctx {
        Some(0) => Err(ConvertError::Unsupported(
            "--ctx 0: the context must be at least 1 token".into(),
        )),
        Some(c) if c > ctx_train => Err(ConvertError::Unsupported(format!(
            "--ctx {c} exceeds the model's trained context of {ctx_train} tokens; pass --ctx {ctx_train} or less"
        ))),
        Some(c) => Ok(c),
        None => Ok(ctx_train.min(tgt.default_ctx)),
    }
}

fn parse_overrides(opts: &CompileOptions) -> Result<Vec<Override>, ConvertError> {
    opts.overrides.iter().map(|o| Override::parse(o)).collect()
}

fn check_target(tgt: &Target, name: &str, dt: DType, fix: &str) -> Result<(), ConvertError> {
    if tgt.types.contains(&dt) {
        return Ok(());
    }
    Err(ConvertError::Unsupported(format!(
        "tensor {name} would be {dt}, which the {} backend does not run (it runs {}); {fix}",
        tgt.name,
        tgt.types
            .iter()
            .map(|t| t.name())
            .collect::<Vec<_>>()
            .join(", "),
    )))
}

/// The directory's own name (the published size may be read from it).
fn dir_stem(dir: &Path) -> String {
    dir.canonicalize()
        .ok()
        .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
        .unwrap_or_default()
}

/// The per-tensor steps of a Hugging Face front end: convert package tensor `i` of
/// `plans` from the checkpoint, and release its source pages afterwards.
fn hf_steps<'a>(
    st: &'a HfTensors,
    plans: Vec<(TensorPlan, DType)>,
    threads: usize,
) -> (ConvertFn<'a>, Box<dyn Fn(usize) + 'a>) {
    let plans = Arc::new(plans);
    let (pc, pr) = (plans.clone(), plans);
    (
        Box::new(move |i| {
            let (p, dt) = &pc[i];
            convert_tensor(st, p, *dt, threads)
        }),
        Box::new(move |i| {
            let _ = st.release(&pr[i].0.source);
        }),
    )
}

/// Front end for a Hugging Face checkpoint directory.
fn prepare_hf<'a>(
    opts: &'a CompileOptions,
    st: &'a HfTensors,
    tgt: &Target,
) -> Result<Prepared<'a>, ConvertError> {
    let dir = &opts.input;
    let cfg = HfConfig::read(dir)?;
    let tokenizer = HfTokenizer::read(dir)?;
    let vision = if vlm::is_vlm(&cfg) {
        Some(VisionHp::read(&cfg, dir, &tokenizer.json_text)?)
    } else {
        None
    };
    let plan = make_plan(opts, &cfg, st, tgt, vision.as_ref())?;
    let hp = plan.hp.clone();
    let mut meta = vec![(
        "general.architecture".to_string(),
        Value::String(hp.arch.gguf_arch().into()),
    )];
    meta.extend(hp.metadata(hp.ctx_train));
    meta.extend(tokenizer.metadata(hp.n_vocab)?);
    if let Some(v) = &vision {
        meta.extend(v.metadata());
    }
    let mut sources: Vec<PathBuf> = [
        "config.json",
        "tokenizer.json",
        "tokenizer_config.json",
        "generation_config.json",
        "chat_template.jinja",
        "model.safetensors.index.json",
    ]
    .iter()
    .map(|f| dir.join(f))
    .filter(|p| p.is_file())
    .collect();
    if let Some(v) = &vision {
        sources.extend(v.files.iter().cloned());
    }
    sources.extend(st.shards().iter().map(|p| p.to_path_buf()));
    let tensors: Vec<OutTensor> = plan
        .tensors
        .iter()
        .map(|(p, dt, why)| OutTensor {
            name: p.name.clone(),
            source: p.source.clone(),
            dtype: *dt,
            reason: why.clone(),
            shape: p.shape.clone(),
        })
        .collect();
    let plans: Vec<(TensorPlan, DType)> =
        plan.tensors.into_iter().map(|(p, dt, _)| (p, dt)).collect();
    let (convert, release) = hf_steps(st, plans, opts.threads);
    let stem = dir_stem(dir);
    Ok(Prepared {
        arch: Some(hp.arch),
        gguf_arch: hp.arch.gguf_arch(),
        package_name: None,
        source_arch: cfg.architecture.clone(),
        quant_name: plan.scheme.name().into(),
        ava_bits: plan.scheme.ava_bits().into(),
        file_type: plan.scheme.file_type(),
        ctx: plan.ctx,
        n_vocab: hp.n_vocab,
        meta,
        tokenizer_json: Some(tokenizer.json_text.clone()),
        tensors,
        convert,
        release,
        sources,
        stem,
        notes: plan.notes,
        onnx: None,
    })
}

/// The engine architecture of a GGUF `general.architecture`.
fn arch_of_gguf(name: &str) -> Result<Arch, ConvertError> {
    Ok(match name {
        "llama" => Arch::Llama,
        "qwen2" => Arch::Qwen2,
        "qwen3" => Arch::Qwen3,
        "gemma2" => Arch::Gemma2,
        "gemma3" => Arch::Gemma3,
        other => {
            return Err(ConvertError::UnsupportedArch {
                got: format!("GGUF architecture {other}"),
                supported: "llama, qwen2, qwen3, gemma2, gemma3".into(),
            })
        }
    })
}

/// A GGUF file's architecture (name and [`Arch`]) and hyperparameters, once the
/// engine has accepted the model as it is (hyperparameters, tensor shapes).
pub(crate) fn gguf_model(
    f: &Arc<GgufFile>,
) -> Result<(String, Arch, alc_models::HParams), ConvertError> {
    let arch_name = f.req_str("general.architecture")?.to_string();
    let arch = arch_of_gguf(&arch_name)?;
    let model = alc_models::Model::from_gguf(f.clone())
        .map_err(|e| ConvertError::Unsupported(format!("{}: {e}", f.path().display())))?;
    Ok((arch_name, arch, model.hp))
}

/// Dequantise tensor `t` of `f` in blocks of at most [`ROW_BLOCK`] rows, handing each
/// block's f32 values to `each`: memory stays at one block whatever the tensor's size.
pub(crate) fn dequantize_row_blocks(
    f: &GgufFile,
    t: &alc_format::TensorInfo,
    mut each: impl FnMut(&[f32]) -> Result<(), ConvertError>,
) -> Result<(), ConvertError> {
    let src = f.tensor_data(t);
    let n = t.dims.iter().product::<u64>() as usize;
    let cols = t.dims.first().copied().unwrap_or(1) as usize;
    let rows = n / cols.max(1);
    let rb = t
        .dtype
        .row_bytes(cols as u64)
        .expect("shape checked at open") as usize;
    let mut x = Vec::new();
    let mut r = 0;
    while r < rows {
        let r1 = (r + ROW_BLOCK).min(rows);
        x.resize((r1 - r) * cols, 0f32);
        alc_quant::dequantize(t.dtype, &src[r * rb..r1 * rb], &mut x).map_err(|e| {
            ConvertError::Quant {
                tensor: t.name.clone(),
                source: e,
            }
        })?;
        each(&x)?;
        r = r1;
    }
    Ok(())
}

/// Front end for a GGUF file: repackage (keep every tensor's type) without
/// `--quant`, re-quantise with it (tensors already of the chosen type are copied).
fn prepare_gguf<'a>(
    opts: &'a CompileOptions,
    f: &'a Arc<GgufFile>,
    tgt: &Target,
) -> Result<Prepared<'a>, ConvertError> {
    let (arch_name, arch, hp) = gguf_model(f)?;
    let ctx = check_ctx(opts, hp.ctx_train, tgt)?;
    let scheme = opts.quant.as_deref().map(Scheme::parse).transpose()?;
    let overrides = parse_overrides(opts)?;
    let tied = f.tensor("output.weight").is_none();
    let mut tensors = Vec::new();
    let mut notes = Vec::new();
    for t in f.tensors() {
        let shape: Vec<usize> = t.dims.iter().rev().map(|&d| d as usize).collect();
        let matrix = shape.len() == 2;
        let cols = t.dims.first().copied().unwrap_or(1) as usize;
        let (dtype, reason) = match scheme {
            // Vectors (norms, biases) keep their float type.
            _ if !matrix => (t.dtype, Reason::Vector),
            None => match quant::find_override(&overrides, &t.name, cols)? {
                Some(o) => (o.dtype, Reason::Override),
                None => (t.dtype, Reason::Scheme),
            },
            Some(s) => quant::choose(s, &overrides, &t.name, true, cols, hp.n_layer, tied)?,
        };
        // Matrices of a type alc cannot dequantise can only be copied.
        if dtype != t.dtype && !alc_quant::DEQUANT_TYPES.contains(&t.dtype) {
            return Err(ConvertError::Unsupported(format!(
                "tensor {} is {}, which alc cannot dequantise to re-quantise; compile without --quant to keep it",
                t.name, t.dtype
            )));
        }
        if reason == Reason::Fallback {
            notes.push(format!(
                "{}: rows of {cols} are not a multiple of the scheme's block; stored as {dtype}",
                t.name
            ));
        }
        check_target(
            tgt,
            &t.name,
            dtype,
            &format!("use --quant {}", tgt.default_quant.name()),
        )?;
        tensors.push(OutTensor {
            name: t.name.clone(),
            source: t.name.clone(),
            dtype,
            reason,
            shape,
        });
    }
    // Keep the hyperparameters and tokenizer; drop what the package rewrites.
    let meta: Vec<(String, Value)> = f
        .metadata()
        .iter()
        .filter(|(k, _)| {
            !k.starts_with("alc.")
                && !matches!(
                    k.as_str(),
                    "general.file_type" | "general.name" | "general.alignment"
                )
        })
        .cloned()
        .collect();
    let (quant_name, ava_bits, file_type) = match scheme {
        Some(s) => (
            s.name().to_string(),
            s.ava_bits().to_string(),
            s.file_type(),
        ),
        None => {
            // The dominant matrix type names a repackaged file.
            let mut by_type: BTreeMap<&str, u64> = BTreeMap::new();
            for t in &tensors {
                *by_type.entry(t.dtype.name()).or_default() += t.bytes();
            }
            let main = by_type
                .iter()
                .max_by_key(|(_, &b)| b)
                .map(|(n, _)| n.to_string())
                .unwrap_or_else(|| "F32".into());
            let ft = f.get_u64("general.file_type").ok().flatten().unwrap_or(0) as u32;
            (main.to_ascii_lowercase(), main.replace('_', ""), ft)
        }
    };
    let infos: Vec<alc_format::TensorInfo> = f.tensors().to_vec();
    let want: Vec<DType> = tensors.iter().map(|t| t.dtype).collect();
    let infos = Arc::new(infos);
    let (ic, ir) = (infos.clone(), infos);
    let threads = opts.threads;
    let stem = f
        .path()
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    Ok(Prepared {
        arch: Some(arch),
        gguf_arch: arch.gguf_arch(),
        package_name: None,
        source_arch: arch_name,
        quant_name,
        ava_bits,
        file_type,
        ctx,
        n_vocab: hp.n_vocab,
        meta,
        tokenizer_json: None,
        tensors,
        convert: Box::new(move |i| {
            let t = &ic[i];
            let src = f.tensor_data(t);
            if want[i] == t.dtype {
                return Ok((src.to_vec(), 0.0, 0.0));
            }
            let n = t.dims.iter().product::<u64>() as usize;
            let cols = t.dims.first().copied().unwrap_or(1) as usize;
            let mut out = Vec::new();
            let mut err = (0f64, 0f64);
            dequantize_row_blocks(f, t, |x| {
                quantize_rows(&t.name, want[i], x, cols, threads, &mut out, &mut err)
            })?;
            Ok((out, (err.0 / n.max(1) as f64).sqrt(), err.1))
        }),
        release: Box::new(move |i| f.release_tensor_pages(&ir[i])),
        sources: vec![f.path().to_path_buf()],
        stem,
        notes,
        onnx: None,
    })
}

/// A `general.name` without "phi3" / "phi-3" when `name` has one and the vocabulary
/// lacks a token llama.cpp then looks up (it applies Phi-3's token attributes by
/// name and fails to load when one of these is missing); `None` when `name` is fine.
fn phi3_safe_name(name: &str, meta: &[(String, Value)]) -> Option<String> {
    let lower = name.to_ascii_lowercase();
    if !lower.contains("phi3") && !lower.contains("phi-3") {
        return None;
    }
    let tokens = meta
        .iter()
        .find(|(k, _)| k == "tokenizer.ggml.tokens")
        .and_then(|(_, v)| v.as_array())?;
    let has = |t: &str| tokens.iter().any(|v| v.as_str() == Some(t));
    if ["</s>", "<unk>", "<s>", "<|endoftext|>"]
        .iter()
        .all(|t| has(t))
    {
        return None;
    }
    let mut out = String::with_capacity(name.len());
    let mut i = 0;
    while i < name.len() {
        let rest = &lower[i..];
        if rest.starts_with("phi-3") {
            out.push_str(&name[i..i + 3]);
            out.push('_');
            out.push_str(&name[i + 4..i + 5]);
            i += 5;
        } else if rest.starts_with("phi3") {
            out.push_str(&name[i..i + 3]);
            out.push('_');
            out.push_str(&name[i + 3..i + 4]);
            i += 4;
        } else {
            let c = name[i..].chars().next().expect("in bounds");
            out.push(c);
            i += c.len_utf8();
        }
    }
    Some(out)
}

/// Compile a checkpoint directory or a GGUF file into a package in `opts.out_dir`.
pub fn compile(
    opts: &CompileOptions,
    progress: &mut dyn FnMut(Progress<'_>),
) -> Result<Outcome, ConvertError> {
    let t_all = Instant::now();
    let tgt = target(&opts.target)?;
    let input = &opts.input;
    progress(Progress::Stage("reading the input"));
    let t = Instant::now();
    let runtime = opts.runtime.as_deref().unwrap_or("native");
    if !["native", "onnxruntime"].contains(&runtime) {
        return Err(ConvertError::Unsupported(format!(
            "--runtime {runtime}: use native or onnxruntime"
        )));
    }
    if onnx::is_onnx(input) || (runtime == "onnxruntime" && input.is_dir()) {
        if input.is_dir() && !bert::is_bert(input) {
            return Err(ConvertError::Unsupported(format!(
                "{}: --runtime onnxruntime packages BERT sentence encoders only; this checkpoint is not one",
                input.display()
            )));
        }
        if !input.exists() {
            return Err(ConvertError::MissingFile {
                path: input.clone(),
                what: "the ONNX model",
            });
        }
        let prep = onnx::prepare_onnx(opts, tgt)?;
        return build(opts, tgt, prep, t, t_all, progress);
    }
    if runtime == "onnxruntime" {
        return Err(ConvertError::Unsupported(format!(
            "{}: --runtime onnxruntime needs an .onnx file or a BERT checkpoint directory",
            input.display()
        )));
    }
    if input.is_file() {
        let mut magic = [0u8; 4];
        let _ = std::fs::File::open(input)
            .and_then(|mut f| f.read_exact(&mut magic))
            .map_err(io_err(input));
        if &magic != b"GGUF" {
            return Err(ConvertError::Unsupported(format!(
                "{}: not a GGUF file; pass a GGUF file or a Hugging Face checkpoint directory (config.json, *.safetensors, tokenizer.json)",
                input.display()
            )));
        }
        let f = Arc::new(GgufFile::open(input)?);
        let prep = prepare_gguf(opts, &f, tgt)?;
        return build(opts, tgt, prep, t, t_all, progress);
    }
    if !input.is_dir() {
        return Err(ConvertError::MissingFile {
            path: input.clone(),
            what: "the checkpoint directory or GGUF file",
        });
    }
    let st = HfTensors::open(input)?;
    let prep = if bert::is_bert(input) {
        bert::prepare_bert(opts, &st, tgt)?
    } else {
        prepare_hf(opts, &st, tgt)?
    };
    build(opts, tgt, prep, t, t_all, progress)
}

/// The source checkpoint's digest: sha256 over every input file's name and sha256,
/// in a fixed order, with the total size and the newest modification time.
struct SourceDigest {
    sha256: String,
    input_bytes: u64,
    newest: u64,
    ms: f64,
}

impl SourceDigest {
    fn of(sources: &[PathBuf]) -> Result<SourceDigest, ConvertError> {
        let t = Instant::now();
        let mut src_hash = Sha256::new();
        let mut input_bytes = 0u64;
        let mut newest = 0u64;
        for p in sources {
            let d = file_sha256(p)?;
            src_hash.update(p.file_name().map(|n| n.as_encoded_bytes()).unwrap_or(b""));
            src_hash.update(d);
            let md = std::fs::metadata(p).map_err(io_err(p))?;
            input_bytes += md.len();
            if let Some(m) = md
                .modified()
                .ok()
                .and_then(|m| m.duration_since(std::time::UNIX_EPOCH).ok())
            {
                newest = newest.max(m.as_secs());
            }
        }
        Ok(SourceDigest {
            sha256: hex(&src_hash.finalize()),
            input_bytes,
            newest,
            ms: t.elapsed().as_secs_f64() * 1e3,
        })
    }

    /// The compile date (SOURCE_DATE_EPOCH, else the newest input's).
    fn date(&self) -> String {
        match std::env::var("SOURCE_DATE_EPOCH")
            .ok()
            .and_then(|s| s.parse().ok())
        {
            Some(s) => iso_date(s),
            None => iso_date(self.newest),
        }
    }

    /// The build key of this source (see [`build_key`]).
    fn build_key(&self, opts: &CompileOptions, tgt: &Target, prep: &Prepared<'_>) -> String {
        build_key(&self.sha256, &self.date(), opts, tgt, prep)
    }
}

/// Build key: the source's digest, everything that changes bytes (the date
/// included), this alc version. Equal keys mean identical packages.
fn build_key(
    source: &str,
    date: &str,
    opts: &CompileOptions,
    tgt: &Target,
    prep: &Prepared<'_>,
) -> String {
    let mut key = Sha256::new();
    key.update(source.as_bytes());
    key.update(date.as_bytes());
    key.update(
        format!(
            "{}|{}|{}|{:?}|{}|{}",
            tgt.name,
            prep.quant_name,
            prep.ctx,
            opts.overrides,
            env!("CARGO_PKG_VERSION"),
            FORMAT_VERSION
        )
        .as_bytes(),
    );
    for t in &prep.tensors {
        key.update(t.name.as_bytes());
        key.update(t.dtype.name().as_bytes());
    }
    hex(&key.finalize())[..16].to_string()
}

/// A fingerprint of the inputs (names, sizes, modification times) and of everything
/// else the build key covers, for work files written before the source hash is done.
fn fingerprint(
    sources: &[PathBuf],
    opts: &CompileOptions,
    tgt: &Target,
    prep: &Prepared<'_>,
) -> Result<String, ConvertError> {
    let mut h = Sha256::new();
    for p in sources {
        let md = std::fs::metadata(p).map_err(io_err(p))?;
        let mtime = md
            .modified()
            .ok()
            .and_then(|m| m.duration_since(std::time::UNIX_EPOCH).ok())
            .map_or(0, |d| d.as_nanos());
        h.update(format!("{}|{}|{mtime}\n", p.display(), md.len()).as_bytes());
    }
    // The modification times stand in for the date.
    Ok(build_key(&hex(&h.finalize()), "", opts, tgt, prep))
}

/// Waits for the source-hashing thread.
fn join_digest(
    h: std::thread::JoinHandle<Result<SourceDigest, ConvertError>>,
) -> Result<SourceDigest, ConvertError> {
    h.join().expect("the source-hashing thread does not panic")
}

/// Back end: work files, header, assembly, self-check, commit.
fn build(
    opts: &CompileOptions,
    tgt: &Target,
    prep: Prepared<'_>,
    t_plan: Instant,
    t_all: Instant,
    progress: &mut dyn FnMut(Progress<'_>),
) -> Result<Outcome, ConvertError> {
    let mut stages: BTreeMap<String, f64> = BTreeMap::new();
    let stage = |stages: &mut BTreeMap<String, f64>, name: &str, t: Instant| {
        stages.insert(name.to_string(), t.elapsed().as_secs_f64() * 1e3);
    };
    stage(&mut stages, "plan", t_plan);

    // Source digest and build key (see `SourceDigest`). A fresh build (no package of
    // this name, no work directory) hashes the source on a second thread while the
    // tensors convert; anything else needs the key first.
    let sources = prep.sources.clone();
    let mut hashing = Some(std::thread::spawn(move || SourceDigest::of(&sources)));
    let key_of = |d: &SourceDigest| d.build_key(opts, tgt, &prep);
    let params: u64 = match &prep.onnx {
        Some(o) => o.parameters,
        None => prep
            .tensors
            .iter()
            .map(|t| t.shape.iter().product::<usize>() as u64)
            .sum(),
    };
    let name = match &opts.name {
        Some(n) => {
            if n.is_empty() || n.contains('/') || n.contains('\\') || n.starts_with('.') {
                return Err(ConvertError::Unsupported(format!(
                    "--name '{n}' must be a plain file name (no path separators, not hidden)"
                )));
            }
            n.clone()
        }
        None => match (&prep.package_name, prep.arch) {
            (Some(n), _) => n.clone(),
            (None, Some(arch)) => naming::package_name(
                opts.name_scheme,
                arch,
                &prep.stem,
                params,
                &prep.quant_name,
                &prep.ava_bits,
            ),
            (None, None) => unreachable!("an encoder front end names its package"),
        },
    };
    std::fs::create_dir_all(&opts.out_dir).map_err(io_err(&opts.out_dir))?;
    let out_path = opts.out_dir.join(&name);
    if opts.input.canonicalize().ok() == out_path.canonicalize().ok() {
        return Err(ConvertError::Unsupported(format!(
            "{}: the package would replace its own input; pass --out or --name",
            out_path.display()
        )));
    }

    // ---- one compile per package name at a time ----
    let work = opts.out_dir.join(format!(".{name}.work"));
    let lock_path = opts.out_dir.join(format!(".{name}.lock"));
    let lock = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .map_err(io_err(&lock_path))?;
    match lock.try_lock() {
        Ok(()) => {}
        Err(std::fs::TryLockError::WouldBlock) => {
            return Err(ConvertError::Unsupported(format!(
                "another compile of {} is running (it holds {}); wait for it to finish",
                out_path.display(),
                lock_path.display()
            )))
        }
        Err(std::fs::TryLockError::Error(e)) => return Err(io_err(&lock_path)(e)),
    }
    // Temp files of a killed earlier compile of this name (AtomicFile names them
    // `.<name>.<random>.tmp`); nobody else writes them while we hold the lock.
    let prefix = format!(".{name}.");
    if let Ok(entries) = std::fs::read_dir(&opts.out_dir) {
        for e in entries.flatten() {
            let n = e.file_name();
            let n = n.to_string_lossy();
            if n.starts_with(&prefix) && n.ends_with(".tmp") {
                let _ = std::fs::remove_file(e.path());
            }
        }
    }

    // ---- up to date, or a collision? ----
    let mut digest = None;
    if out_path.exists() || work.exists() {
        progress(Progress::Stage("hashing the source"));
        digest = Some(join_digest(hashing.take().expect("hashing started"))?);
    }
    let mut build_key = digest.as_ref().map(&key_of);
    if out_path.exists() {
        let build_key = build_key.clone().expect("hashed above");
        let existing = GgufFile::open(&out_path).ok().and_then(|f| {
            f.get_str("alc.build_key")
                .ok()
                .flatten()
                .map(str::to_string)
        });
        match existing {
            Some(k) if k == build_key => {
                // A compile killed after its commit may have left its work files.
                if work.exists() {
                    std::fs::remove_dir_all(&work).map_err(io_err(&work))?;
                }
                return Ok(Outcome::UpToDate {
                    path: out_path,
                    build_key,
                });
            }
            other if !opts.force => {
                return Err(ConvertError::NameCollision {
                    path: out_path,
                    existing: other.unwrap_or_else(|| "none: not an alc package".into()),
                    wanted: build_key,
                })
            }
            _ => {}
        }
    }

    // ---- per-tensor work files ----
    // The stamp names the build the work files belong to: its build key, or, while
    // the source hash is still running, "pending" and a fingerprint of the inputs'
    // names, sizes and modification times with the options (what make and cargo
    // trust), so that a compile killed early still resumes. Each work file is also
    // checked against its own record's sha256 ([`resume`]).
    let stamp = work.join("build_key");
    let pending = format!("pending {}", fingerprint(&prep.sources, opts, tgt, &prep)?);
    let found = std::fs::read_to_string(&stamp).ok();
    let ours = |k: &Option<String>| {
        found.as_deref() == Some(pending.as_str())
            || (k.is_some() && found.as_deref() == k.as_deref())
    };
    if !ours(&build_key) {
        if work.exists() {
            std::fs::remove_dir_all(&work).map_err(io_err(&work))?;
        }
        std::fs::create_dir_all(&work).map_err(io_err(&work))?;
    }
    match &build_key {
        Some(k) => write_atomic(&stamp, k.as_bytes())?,
        None => write_atomic(&stamp, pending.as_bytes())?,
    }
    // The background hash, once done: the key, and the stamp that makes the work
    // files resumable.
    let mut settle = |hashing: &mut Option<std::thread::JoinHandle<_>>,
                      wait: bool|
     -> Result<(), ConvertError> {
        if let Some(h) = hashing.take_if(|h| wait || h.is_finished()) {
            let d = join_digest(h)?;
            let k = key_of(&d);
            write_atomic(&stamp, k.as_bytes())?;
            digest = Some(d);
            build_key = Some(k);
        }
        Ok(())
    };
    let t = Instant::now();
    let bytes_total: u64 = prep.tensors.iter().map(OutTensor::bytes).sum();
    let mut bytes_done = 0u64;
    let mut resumed = 0usize;
    let mut reports = Vec::with_capacity(prep.tensors.len());
    let count = prep.tensors.len();
    for (i, ot) in prep.tensors.iter().enumerate() {
        settle(&mut hashing, false)?;
        let (done, was_resumed) = match resume(&work, i) {
            Some(d) if d.bytes == ot.bytes() => (d, true),
            _ => {
                let (bytes, rmse, max_abs) = (prep.convert)(i)?;
                let sha = hex(&Sha256::digest(&bytes));
                write_work(&work.join(format!("{i:05}.bin")), &bytes)?;
                let d = Done {
                    bytes: bytes.len() as u64,
                    sha256: sha,
                    rmse,
                    max_abs,
                };
                let rec = serde_json::to_vec(&d).expect("serialisable");
                write_work(&work.join(format!("{i:05}.json")), &rec)?;
                (prep.release)(i);
                (d, false)
            }
        };
        resumed += usize::from(was_resumed);
        bytes_done += done.bytes;
        progress(Progress::Tensor {
            index: i,
            count,
            name: &ot.name,
            bytes_done,
            bytes_total,
            resumed: was_resumed,
        });
        reports.push(TensorReport {
            name: ot.name.clone(),
            source: ot.source.clone(),
            dtype: ot.dtype.name().to_string(),
            reason: serde_json::to_value(&ot.reason)
                .ok()
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_default(),
            shape: ot.shape.clone(),
            bytes: done.bytes,
            rmse: done.rmse,
            max_abs: done.max_abs,
            sha256: done.sha256,
        });
    }
    settle(&mut hashing, true)?;
    stage(&mut stages, "convert", t);
    let digest = digest.expect("the source is hashed by now");
    let build_key = build_key.expect("the key follows the hash");
    // Its own time (overlapping the conversion on a fresh build).
    stages.insert("hash_source".into(), digest.ms);
    let (source_sha256, input_bytes, date) =
        (digest.sha256.clone(), digest.input_bytes, digest.date());

    // ---- header ----
    let contexts: Vec<usize> = PLAN_CONTEXTS
        .iter()
        .copied()
        .filter(|&c| c < prep.ctx)
        .chain([prep.ctx])
        .collect();
    let mut w = GgufWriter::new();
    let mut meta = prep.meta;
    let mut base_name = name
        .trim_end_matches(".ALM")
        .trim_end_matches(".alm")
        .trim_end_matches(".AON")
        .trim_end_matches(".aon")
        .to_string();
    let mut notes = prep.notes;
    let alc_only: Vec<&str> = prep
        .tensors
        .iter()
        .filter(|t| t.dtype.id() >= 1024)
        .map(|t| t.dtype.name())
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    if !alc_only.is_empty() {
        notes.push(format!(
            "tensor type {} is alc's own (docs/FORMAT.md): this package runs in alc but does not load in llama.cpp; --quant q4f16_1 gives one that does",
            alc_only.join(", ")
        ));
    }
    if let Some(n) = phi3_safe_name(&base_name, &meta) {
        notes.push(format!(
            "general.name is '{n}', not '{base_name}': llama.cpp's vocabulary loader treats a name containing phi3 / phi-3 as Phi-3 and requires its </s>, <unk>, <s> and <|endoftext|> tokens, which this vocabulary lacks"
        ));
        base_name = n;
    }
    meta.insert(1, ("general.name".into(), Value::String(base_name)));
    meta.insert(2, ("general.file_type".into(), Value::U32(prep.file_type)));
    if !meta
        .iter()
        .any(|(k, _)| k == "general.quantization_version")
    {
        meta.insert(3, ("general.quantization_version".into(), Value::U32(2)));
    }
    let u32s = |v: &[u32]| Value::Array(v.iter().map(|&x| Value::U32(x)).collect());
    let vs = |s: &str| Value::String(s.to_string());
    meta.extend([
        ("alc.format_version".to_string(), Value::U32(FORMAT_VERSION)),
        ("alc.version".into(), vs(env!("CARGO_PKG_VERSION"))),
        ("alc.build_key".into(), vs(&build_key)),
        ("alc.source.architecture".into(), vs(&prep.source_arch)),
        ("alc.source.sha256".into(), vs(&source_sha256)),
        ("alc.target".into(), vs(tgt.name)),
        ("alc.quant".into(), vs(&prep.quant_name)),
        ("alc.context".into(), Value::U32(prep.ctx as u32)),
        ("alc.vocab_size".into(), Value::U32(prep.n_vocab as u32)),
        ("alc.parameter_count".into(), Value::U64(params)),
        ("alc.compile_date".into(), vs(&date)),
        (
            "alc.memory_plan.ctx".into(),
            Value::Array(contexts.iter().map(|&c| Value::U32(c as u32)).collect()),
        ),
        (
            "alc.memory_plan.bytes".into(),
            Value::Array(contexts.iter().map(|_| Value::U64(0)).collect()),
        ),
        ("alc.selfcheck.prompt".into(), u32s(&[0; SELF_CHECK_TOKENS])),
        (
            "alc.selfcheck.expected".into(),
            u32s(&[0; SELF_CHECK_TOKENS]),
        ),
        (
            "alc.verification".into(),
            vs(&format!("{:STATUS_WIDTH$}", "pending")),
        ),
    ]);
    if prep.arch.is_some() {
        meta.push(("alc.prefill_variants".into(), u32s(&[1, 32, 128, 512])));
    }
    if let Some(j) = &prep.tokenizer_json {
        meta.push(("alc.tokenizer.hf_json".into(), vs(j)));
    }
    meta.push((
        "alc.tensor_sha256".into(),
        Value::Array(reports.iter().map(|r| vs(&r.sha256)).collect()),
    ));
    // The whole file's digest, last; patched in once everything else is final.
    meta.push((PACKAGE_SHA256_KEY.into(), vs(&"0".repeat(64))));
    for (k, v) in meta {
        w.set(&k, v)?;
    }
    for ot in &prep.tensors {
        w.add_tensor(&ot.name, ot.dtype, &ot.dims())?;
    }

    // ---- assemble into a temp file ----
    progress(Progress::Stage("assembling the package"));
    let t = Instant::now();
    let mut file = AtomicFile::create(&out_path)?;
    {
        let mut bw = std::io::BufWriter::with_capacity(1 << 20, &mut file);
        w.write_to(&mut bw, |i, _, sink| -> Result<(), ConvertError> {
            let path = work.join(format!("{i:05}.bin"));
            let mut f = std::fs::File::open(&path).map_err(io_err(&path))?;
            let mut buf = vec![0u8; 1 << 20];
            loop {
                let n = f.read(&mut buf).map_err(io_err(&path))?;
                if n == 0 {
                    break;
                }
                sink.put(&buf[..n])?;
            }
            Ok(())
        })?;
    }
    stage(&mut stages, "assemble", t);

    // ---- self-check and the values only known now ----
    progress(Progress::Stage("self-check"));
    let t = Instant::now();
    let tmp = file.temp_path().to_path_buf();
    let written = Arc::new(GgufFile::open(&tmp)?);
    let (check, plan_lines) = if let Some(ob) = &prep.onnx {
        let check = onnx::self_check_onnx(
            &tmp,
            opts.threads,
            None,
            ob.reference.as_deref().map(|v| v.as_slice()),
        )?;
        // ONNX Runtime holds the graph and its optimised copy of the weights, plus
        // activations of about 16 floats per hidden unit and token (a rough plan).
        let hidden = written
            .get_u64("bert.embedding_length")
            .ok()
            .flatten()
            .unwrap_or(384);
        let lines: Vec<PlanLine> = contexts
            .iter()
            .map(|&c| PlanLine {
                ctx: c,
                total_bytes: 2 * ob.graph.len() as u64 + (c as u64) * hidden * 16 * 4,
            })
            .collect();
        (check, lines)
    } else if prep.arch.is_none() {
        let check = self_check_encoder(&written, opts.threads, None)?;
        let m = alc_models::BertModel::from_gguf(written)
            .map_err(|e| ConvertError::SelfCheck(e.to_string()))?;
        let lines: Vec<PlanLine> = contexts
            .iter()
            .map(|&c| PlanLine {
                ctx: c,
                total_bytes: m.memory_bytes(c),
            })
            .collect();
        (check, lines)
    } else {
        let check = self_check(&written, opts.threads)?;
        // A VLM's vision tower must load as the engine reads it (keys, shapes).
        if written.get_str("alc.vlm.kind")?.is_some() {
            alc_models::VisionModel::from_gguf(written.clone())
                .map_err(|e| ConvertError::SelfCheck(format!("vision tower: {e}")))?;
        }
        let m = alc_models::Model::from_gguf(written)
            .map_err(|e| ConvertError::SelfCheck(e.to_string()))?;
        let lines: Vec<PlanLine> = contexts
            .iter()
            .map(|&c| PlanLine {
                ctx: c,
                total_bytes: m.memory_plan(c, c.min(512)).total_bytes,
            })
            .collect();
        (check, lines)
    };
    let status = if check.passed { "verified" } else { "failed" };
    {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .open(&tmp)
            .map_err(io_err(&tmp))?;
        let le32 = |v: &[u32]| v.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>();
        let plan_bytes: Vec<u8> = plan_lines
            .iter()
            .flat_map(|l| l.total_bytes.to_le_bytes())
            .collect();
        patch(&mut f, &tmp, &w, "alc.memory_plan.bytes", &plan_bytes)?;
        patch(
            &mut f,
            &tmp,
            &w,
            "alc.selfcheck.prompt",
            &le32(&check.prompt),
        )?;
        patch(
            &mut f,
            &tmp,
            &w,
            "alc.selfcheck.expected",
            &le32(&check.expected),
        )?;
        patch(
            &mut f,
            &tmp,
            &w,
            "alc.verification",
            format!("{status:STATUS_WIDTH$}").as_bytes(),
        )?;
        let whole = package_sha256(&GgufFile::open(&tmp)?).expect("the key was written");
        patch(&mut f, &tmp, &w, PACKAGE_SHA256_KEY, whole.as_bytes())?;
        f.sync_all().map_err(io_err(&tmp))?;
    }
    stage(&mut stages, "self_check", t);
    if !check.passed {
        return Err(ConvertError::SelfCheck(format!(
            "the optimised CPU backend disagrees with the reference on the package's own prompt (expected {:?}, got {:?}; {}); the package was not written. Report this with the checkpoint",
            check.expected, check.got, check.failure.as_deref().unwrap_or("")
        )));
    }
    let output_bytes = w.total_len();
    stages.insert("total".into(), t_all.elapsed().as_secs_f64() * 1e3);

    let report = Report {
        package: out_path.clone(),
        name,
        architecture: prep.source_arch.clone(),
        gguf_architecture: prep.gguf_arch.into(),
        target: tgt.name.into(),
        quant: prep.quant_name.clone(),
        context: prep.ctx,
        parameters: params,
        build_key,
        source_sha256,
        input_bytes,
        output_bytes,
        stages_ms: stages,
        peak_rss_bytes: alc_engine::bench::peak_rss_bytes(),
        tensors_resumed: resumed,
        memory_plan: plan_lines,
        self_check: check,
        verification: status.into(),
        notes,
        tensors: reports,
    };
    let rpath = opts.out_dir.join(format!("{}.report.json", report.name));
    // The report first: a kill after the package is in place must not leave it
    // without one. The work files go last (an up-to-date rerun removes leftovers).
    write_atomic(
        &rpath,
        &serde_json::to_vec_pretty(&report).expect("serialisable"),
    )?;
    file.commit()?;
    std::fs::remove_dir_all(&work).map_err(io_err(&work))?;
    drop(lock);
    Ok(Outcome::Built(Box::new(report)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phi3_names_avoid_llamacpp_lookup() {
        let vocab = |toks: &[&str]| {
            vec![(
                "tokenizer.ggml.tokens".to_string(),
                Value::Array(toks.iter().map(|t| Value::String(t.to_string())).collect()),
            )]
        };
        let bpe = vocab(&["a", "<|endoftext|>"]);
        assert_eq!(
            phi3_safe_name("phi3-1M-f32", &bpe).as_deref(),
            Some("phi_3-1M-f32")
        );
        assert_eq!(phi3_safe_name("AVA-PH3-4B16", &bpe), None);
        assert_eq!(
            phi3_safe_name("Phi-3-mini", &bpe).as_deref(),
            Some("Phi_3-mini")
        );
        let spm = vocab(&["<unk>", "<s>", "</s>", "<|endoftext|>"]);
        assert_eq!(phi3_safe_name("phi3-4B-f16", &spm), None);
    }

    #[test]
    fn dates() {
        assert_eq!(iso_date(0), "1970-01-01");
        assert_eq!(iso_date(951_782_400), "2000-02-29");
        assert_eq!(iso_date(1_795_392_000 + 86_399), "2026-11-23");
    }
}
