//! INT8 quantisation of MatMul / Gemm weights and of the word-embedding table with
//! standard ONNX operators ([`quantize`]), in one of two [`Scheme`]s.
//!
//! Both quantise each `MatMul(A, W)` whose `W` is a 2-D f32 initializer `[K, N]`
//! symmetrically per output channel (column): `scale_n = max|W[:, n]| / qmax`, `qmax`
//! 127, or 63 with `reduce_range`. `Gemm(A, B, C)` with a constant `B` (and `transA =
//! 0`) becomes the same chain plus an `Add` of `beta · C`, with `alpha` folded into the
//! weight and `transB` honoured.
//!
//! [`Scheme::WeightOnly`] (the default) stores the weights as int8 and computes in f32:
//!
//! ```text
//! W' = DequantizeLinear(W_q, W_scale, axis = 1)          (W_q int8 [K, N], W_scale f32 [N])
//! Y  = MatMul(A, W')
//! ```
//!
//! With [`Dequantize::CastMul`] the dequantisation is `Mul(Cast(W_q → float),
//! W_scale)` instead.
//!
//! [`Scheme::Dynamic`] also quantises the activations at run time:
//!
//! ```text
//! A_q, A_scale, A_zp = DynamicQuantizeLinear(A)          (uint8, shared per A; or per token)
//! Y_i32 = MatMulInteger(A_q, W_q, A_zp, W_zp)            (W_zp int8 [N] zeros)
//! Y     = Cast(Y_i32 → float) * (A_scale * W_scale)
//! ```
//!
//! With `embeddings` (the default, either scheme) a `Gather(T, ids)` (axis 0) of a 2-D
//! f32 initializer with at least [`MIN_EMBEDDING_ROWS`] rows (the word embeddings; the
//! position and token-type tables are small and stay f32) is quantised per row and
//! only the gathered rows are dequantised:
//!
//! ```text
//! Y = Cast(Gather(T_q, ids) → float) * Gather(T_scale, ids)   (T_q int8 [V, H], T_scale f32 [V, 1])
//! ```

use crate::proto::{dtype, Attribute, Graph, Model, Node, OpsetId, Tensor};
use crate::OnnxError;
use std::collections::{HashMap, HashSet};

/// How [`quantize`] rewrites a MatMul.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Scheme {
    /// int8 weights dequantised to f32 by `DequantizeLinear`; activations and the matmul
    /// stay f32. The default: it meets the fidelity bar (see the crate's design note).
    #[default]
    WeightOnly,
    /// int8 weights and run-time quantised uint8 activations, `MatMulInteger`.
    Dynamic,
}

/// How [`Scheme::WeightOnly`] turns int8 weights back into f32.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Dequantize {
    /// `DequantizeLinear(W_q, W_scale, axis = 1)` (opset 13 per channel). ONNX Runtime
    /// 1.32 (CPU, default optimisation level) fuses it with the MatMul into
    /// `MatMulNBits` (bits 8, accuracy_level 4): the weights stay int8 in memory and the
    /// activations are quantised in blocks of 32, which costs some fidelity.
    #[default]
    Linear,
    /// `Mul(Cast(W_q → float), W_scale)`, any opset. ONNX Runtime constant-folds it at
    /// session load: f32 weights in memory, f32 matmuls, the best fidelity.
    CastMul,
}

/// Options of [`quantize`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct QuantOptions {
    /// Weight-only (default) or dynamic activation quantisation.
    pub scheme: Scheme,
    /// [`Scheme::WeightOnly`] only: the operators that dequantise the weights.
    pub dequantize: Dequantize,
    /// 7-bit weights (`[-63, 63]`) instead of 8-bit (`[-127, 127]`).
    pub reduce_range: bool,
    /// One scale per output channel (column) instead of one per weight.
    pub per_channel: bool,
    /// [`Scheme::Dynamic`] only: quantise activations per token (one symmetric scale
    /// per row of `A`, from `ReduceMax(Abs(A))`, stored as uint8 around a fixed zero
    /// point 128) instead of one asymmetric scale for the whole tensor
    /// (`DynamicQuantizeLinear`).
    pub per_token: bool,
    /// Quantise the word-embedding table per row (a Gather of a 2-D f32 initializer
    /// with at least [`MIN_EMBEDDING_ROWS`] rows), dequantising only the gathered rows.
    pub embeddings: bool,
}

impl Default for QuantOptions {
    /// Weight-only, per channel, full 8-bit range, embeddings quantised: see the
    /// crate's design note for the measured fidelity of the settings.
    fn default() -> Self {
        QuantOptions {
            scheme: Scheme::WeightOnly,
            dequantize: Dequantize::Linear,
            reduce_range: false,
            per_channel: true,
            per_token: true,
            embeddings: true,
        }
    }
}

impl QuantOptions {
    /// The dynamic scheme with its default options (per channel, per token, 8-bit).
    pub fn dynamic() -> Self {
        QuantOptions {
            scheme: Scheme::Dynamic,
            ..QuantOptions::default()
        }
    }
}

/// One quantised MatMul or Gemm.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QuantizedMatMul {
    pub node: String,
    pub op_type: String,
    pub weight: String,
    /// Weight shape `[k, n]` (after transB).
    pub k: usize,
    pub n: usize,
}

/// One embedding Gather whose table was quantised per row.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QuantizedEmbedding {
    pub node: String,
    pub table: String,
    /// Table shape `[rows, cols]`.
    pub rows: usize,
    pub cols: usize,
}

/// A MatMul or Gemm left in f32, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Skipped {
    pub node: String,
    pub op_type: String,
    pub reason: String,
}

/// What [`quantize`] did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct QuantReport {
    pub scheme: Scheme,
    pub quantized: Vec<QuantizedMatMul>,
    pub embeddings: Vec<QuantizedEmbedding>,
    pub skipped: Vec<Skipped>,
    /// Serialized model size before and after.
    pub bytes_before: u64,
    pub bytes_after: u64,
    /// Bytes of the f32 MatMul/Gemm weights that were quantised, and of what replaced
    /// them (int8 weights, scales and, for the dynamic scheme, zero points).
    pub weight_bytes_before: u64,
    pub weight_bytes_after: u64,
    /// Bytes of the f32 embedding tables that were quantised, and of their int8 rows
    /// and f32 row scales.
    pub embedding_bytes_before: u64,
    pub embedding_bytes_after: u64,
}

/// The minimum default-domain opset of [`Scheme::Dynamic`] (DynamicQuantizeLinear is
/// opset 11).
pub const MIN_OPSET: i64 = 11;

/// The minimum default-domain opset of [`Scheme::WeightOnly`] per channel
/// (DequantizeLinear's `axis` is opset 13; per tensor it needs 10).
pub const MIN_OPSET_WEIGHT_ONLY: i64 = 13;

/// Gathered tables with fewer rows than this stay f32 (BERT's position table has 512,
/// its token-type table 2; the word embeddings 30522).
pub const MIN_EMBEDDING_ROWS: usize = 4096;

/// Quantise `w` (`[k, n]`, row-major) to int8; returns the values and the scales
/// (`n` of them, or one).
fn quantize_weight(w: &[f32], k: usize, n: usize, opts: &QuantOptions) -> (Vec<i8>, Vec<f32>) {
    let qmax: f32 = if opts.reduce_range { 63.0 } else { 127.0 };
    let mut amax = vec![0f32; if opts.per_channel { n } else { 1 }];
    for row in w.chunks_exact(n) {
        for (j, &v) in row.iter().enumerate() {
            let slot = if opts.per_channel { j } else { 0 };
            amax[slot] = amax[slot].max(v.abs());
        }
    }
    let scales: Vec<f32> = amax
        .iter()
        .map(|&m| {
            if m > 0.0 && m.is_finite() {
                m / qmax
            } else {
                1.0
            }
        })
        .collect();
    let mut q = Vec::with_capacity(k * n);
    for row in w.chunks_exact(n) {
        for (j, &v) in row.iter().enumerate() {
            let s = scales[if opts.per_channel { j } else { 0 }];
            q.push((v / s).round().clamp(-qmax, qmax) as i8);
        }
    }
    (q, scales)
}

/// Shared scalar constants of the per-token chains.
#[derive(Default)]
struct Consts {
    names: HashMap<&'static str, String>,
    inits: Vec<Tensor>,
}

impl Consts {
    fn get(
        &mut self,
        names: &mut Names,
        key: &'static str,
        make: impl FnOnce(&str) -> Tensor,
    ) -> String {
        if let Some(n) = self.names.get(key) {
            return n.clone();
        }
        let n = names.fresh(key);
        self.inits.push(make(&n));
        self.names.insert(key, n.clone());
        n
    }
}

/// Per-token symmetric quantisation of `a` with standard ops:
/// `scale = max(ReduceMax(|a|, -1) / 127, tiny)`,
/// `a_q = Cast<uint8>(Clip(Round(a / scale) + 128, 0, 255))`, zero point 128.
/// Returns `(a_q, scale [.., 1], zero point)`.
fn per_token_chain(
    a: &str,
    names: &mut Names,
    nodes: &mut Vec<Node>,
    consts: &mut Consts,
    opset: i64,
) -> (String, String, String) {
    let c127 = consts.get(names, "/quant/const/127", |n| {
        Tensor::from_f32(n, &[], &[127.0])
    });
    let c128 = consts.get(names, "/quant/const/128", |n| {
        Tensor::from_f32(n, &[], &[128.0])
    });
    let c0 = consts.get(names, "/quant/const/0", |n| {
        Tensor::from_f32(n, &[], &[0.0])
    });
    let c255 = consts.get(names, "/quant/const/255", |n| {
        Tensor::from_f32(n, &[], &[255.0])
    });
    let tiny = consts.get(names, "/quant/const/tiny", |n| {
        Tensor::from_f32(n, &[], &[f32::MIN_POSITIVE])
    });
    let zp = consts.get(names, "/quant/const/zero_point_128", |n| {
        Tensor::from_u8(n, &[], &[128])
    });
    let axes = (opset >= 18).then(|| {
        consts.get(names, "/quant/const/axes_last", |n| {
            Tensor::from_i64(n, &[1], &[-1])
        })
    });
    let mut op = |op: &str, what: &str, inputs: &[&str], attrs: Vec<Attribute>| {
        let n = names.fresh(&format!("{a}_{what}"));
        let mut node = Node::new(op, &n, inputs, &[&n]);
        node.attribute = attrs;
        nodes.push(node);
        n
    };
    let abs = op("Abs", "Abs", &[a], vec![]);
    // ReduceMax takes axes as an attribute up to opset 17 and as an input from 18.
    let mx = if let Some(axes) = axes {
        op(
            "ReduceMax",
            "ReduceMax",
            &[&abs, &axes],
            vec![Attribute::int("keepdims", 1)],
        )
    } else {
        op(
            "ReduceMax",
            "ReduceMax",
            &[&abs],
            vec![
                Attribute::ints("axes", &[-1]),
                Attribute::int("keepdims", 1),
            ],
        )
    };
    let sc = op("Div", "scale_raw", &[&mx, &c127], vec![]);
    let sc = op("Max", "scale", &[&sc, &tiny], vec![]);
    let x = op("Div", "scaled", &[a, &sc], vec![]);
    let x = op("Round", "Round", &[&x], vec![]);
    let x = op("Add", "shifted", &[&x, &c128], vec![]);
    let x = op("Clip", "Clip", &[&x, &c0, &c255], vec![]);
    let q = op(
        "Cast",
        "quantized",
        &[&x],
        vec![Attribute::int("to", i64::from(dtype::UINT8))],
    );
    (q, sc, zp)
}

/// Every tensor name a graph (and its subgraphs) reads.
fn used_names(g: &Graph, out: &mut HashSet<String>) {
    for n in &g.node {
        out.extend(n.input.iter().filter(|s| !s.is_empty()).cloned());
        for a in &n.attribute {
            if let Some(sg) = &a.g {
                used_names(sg, out);
            }
            for sg in &a.graphs {
                used_names(sg, out);
            }
        }
    }
    out.extend(g.output.iter().map(|o| o.name.clone()));
}

/// Fresh names that collide with nothing in the graph.
struct Names(HashSet<String>);

impl Names {
    fn new(g: &Graph) -> Self {
        let mut s = HashSet::new();
        for n in &g.node {
            s.insert(n.name.clone());
            s.extend(n.input.iter().cloned());
            s.extend(n.output.iter().cloned());
        }
        s.extend(g.initializer.iter().map(|t| t.name.clone()));
        s.extend(g.input.iter().map(|v| v.name.clone()));
        s.extend(g.output.iter().map(|v| v.name.clone()));
        s.extend(g.value_info.iter().map(|v| v.name.clone()));
        Names(s)
    }
    fn fresh(&mut self, base: &str) -> String {
        let mut name = base.to_string();
        let mut i = 1;
        while self.0.contains(&name) {
            name = format!("{base}_{i}");
            i += 1;
        }
        self.0.insert(name.clone());
        name
    }
}

/// The weight of a MatMul/Gemm as `[k, n]` f32, or why it cannot be quantised.
struct Weight {
    name: String,
    k: usize,
    n: usize,
    data: Vec<f32>,
}

fn const_weight(
    node: &Node,
    inits: &HashMap<&str, &Tensor>,
    graph_inputs: &HashSet<&str>,
) -> Result<Weight, String> {
    let Some(b) = node.input.get(1) else {
        return Err("it has no second input".into());
    };
    let Some(t) = inits.get(b.as_str()) else {
        return Err(format!("its weight '{b}' is computed, not an initializer"));
    };
    if graph_inputs.contains(b.as_str()) {
        return Err(format!(
            "its weight '{b}' is also a graph input (overridable at run time)"
        ));
    }
    if t.data_type != dtype::FLOAT {
        return Err(format!(
            "its weight '{b}' is {}, not float",
            dtype::name(t.data_type)
        ));
    }
    if t.dims.len() != 2 || t.dims.iter().any(|&d| d <= 0) {
        return Err(format!("its weight '{b}' has dims {:?}, not 2-D", t.dims));
    }
    let data = t.to_f32().map_err(|e| e.to_string())?;
    let (r, c) = (t.dims[0] as usize, t.dims[1] as usize);
    if node.op_type == "Gemm" {
        if node.attr_i("transA", 0) != 0 {
            return Err("transA = 1 is not rewritten".into());
        }
        let alpha = node.attr_f("alpha", 1.0);
        let trans_b = node.attr_i("transB", 0) != 0;
        let (k, n) = if trans_b { (c, r) } else { (r, c) };
        let mut w = vec![0f32; k * n];
        for i in 0..r {
            for j in 0..c {
                let v = data[i * c + j] * alpha;
                if trans_b {
                    w[j * n + i] = v;
                } else {
                    w[i * n + j] = v;
                }
            }
        }
        return Ok(Weight {
            name: b.clone(),
            k,
            n,
            data: w,
        });
    }
    Ok(Weight {
        name: b.clone(),
        k: r,
        n: c,
        data,
    })
}

/// Former name of [`quantize`], kept for existing callers: it follows `opts.scheme`
/// like [`quantize`] does (weight-only by default).
pub fn quantize_dynamic(
    model: &Model,
    opts: &QuantOptions,
) -> Result<(Model, QuantReport), OnnxError> {
    quantize(model, opts)
}

/// A word-embedding table quantised per row: `Some((table, rows, cols))` when `node`
/// is an axis-0 Gather of a 2-D f32 initializer with at least [`MIN_EMBEDDING_ROWS`]
/// rows that is not a graph input.
fn embedding_table<'a>(
    node: &Node,
    inits: &HashMap<&str, &'a Tensor>,
    graph_inputs: &HashSet<&str>,
) -> Option<(&'a Tensor, usize, usize)> {
    let default_domain = node.domain.is_empty() || node.domain == "ai.onnx";
    if !default_domain || node.op_type != "Gather" || node.input.len() != 2 {
        return None;
    }
    if !matches!(node.attr_i("axis", 0), 0 | -2) || node.output.len() != 1 {
        return None;
    }
    let t = *inits.get(node.input[0].as_str())?;
    if graph_inputs.contains(node.input[0].as_str()) || t.data_type != dtype::FLOAT {
        return None;
    }
    let [r, c] = t.dims[..] else { return None };
    let (r, c) = (usize::try_from(r).ok()?, usize::try_from(c).ok()?);
    (r >= MIN_EMBEDDING_ROWS && c > 0).then_some((t, r, c))
}

/// Quantise `table` (`[rows, cols]`) symmetrically per row to int8; returns the values
/// and the `rows` scales.
fn quantize_rows(table: &[f32], cols: usize) -> (Vec<i8>, Vec<f32>) {
    let mut q = Vec::with_capacity(table.len());
    let mut scales = Vec::with_capacity(table.len() / cols);
    for row in table.chunks_exact(cols) {
        let m = row.iter().fold(0f32, |m, v| m.max(v.abs()));
        let s = if m > 0.0 && m.is_finite() {
            m / 127.0
        } else {
            1.0
        };
        scales.push(s);
        q.extend(
            row.iter()
                .map(|&v| (v / s).round().clamp(-127.0, 127.0) as i8),
        );
    }
    (q, scales)
}

/// INT8 quantisation of every MatMul (and Gemm with a constant `B`) whose weight is a
/// 2-D f32 initializer, and (with `opts.embeddings`) of the word-embedding table; see
/// the module documentation. Graph inputs and outputs are unchanged; f32 weights left
/// unused are removed.
pub fn quantize(model: &Model, opts: &QuantOptions) -> Result<(Model, QuantReport), OnnxError> {
    let Some(g) = model.graph.as_ref() else {
        return Err(OnnxError::Unsupported {
            what: "the model has no graph".into(),
        });
    };
    let mut out = model.clone();
    let (need, why) = match opts.scheme {
        Scheme::Dynamic => (MIN_OPSET, "DynamicQuantizeLinear"),
        Scheme::WeightOnly if opts.dequantize == Dequantize::CastMul => (7, "Mul broadcasting"),
        Scheme::WeightOnly if opts.per_channel => (
            MIN_OPSET_WEIGHT_ONLY,
            "DequantizeLinear with a per-channel axis",
        ),
        Scheme::WeightOnly => (10, "DequantizeLinear"),
    };
    match model.opset("") {
        Some(v) if v < need => {
            return Err(OnnxError::Unsupported {
                what: format!(
                    "the model imports ONNX opset {v}; {why} needs {need} or later; re-export with a newer opset"
                ),
            })
        }
        Some(_) => {}
        None => out.opset_import.push(OpsetId::new("", need)),
    }
    let mut report = QuantReport {
        scheme: opts.scheme,
        bytes_before: model.encoded_len() as u64,
        ..Default::default()
    };

    let inits: HashMap<&str, &Tensor> =
        g.initializer.iter().map(|t| (t.name.as_str(), t)).collect();
    let graph_inputs: HashSet<&str> = g.input.iter().map(|v| v.name.as_str()).collect();
    let mut names = Names::new(g);
    let mut nodes = Vec::with_capacity(g.node.len() * 2);
    let mut new_inits: Vec<Tensor> = Vec::new();
    let mut replaced: HashSet<String> = HashSet::new();
    // A → (A_q, A_scale, A_zp), one DynamicQuantizeLinear per activation.
    let mut dq: HashMap<String, (String, String, String)> = HashMap::new();
    // Weight-only: (weight name, transB, alpha bits) → its DequantizeLinear output.
    let mut dequantized: HashMap<(String, i64, u32), String> = HashMap::new();
    // Embedding table → (int8 table, row scales).
    let mut tables: HashMap<String, (String, String)> = HashMap::new();
    let mut consts = Consts::default();
    let opset = out.opset("").unwrap_or(need);

    for node in &g.node {
        let label = if node.name.is_empty() {
            node.output.first().cloned().unwrap_or_default()
        } else {
            node.name.clone()
        };
        if opts.embeddings {
            if let Some((t, rows, cols)) = embedding_table(node, &inits, &graph_inputs) {
                let (tq, ts) = match tables.get(&t.name) {
                    Some(v) => v.clone(),
                    None => {
                        let (q, scales) = quantize_rows(&t.to_f32()?, cols);
                        let tq = names.fresh(&format!("{}_quantized", t.name));
                        let ts = names.fresh(&format!("{}_scale", t.name));
                        new_inits.push(Tensor::from_i8(&tq, &t.dims, &q));
                        new_inits.push(Tensor::from_f32(&ts, &[rows as i64, 1], &scales));
                        report.embedding_bytes_before += (rows * cols * 4) as u64;
                        report.embedding_bytes_after += (q.len() + scales.len() * 4) as u64;
                        replaced.insert(t.name.clone());
                        tables.insert(t.name.clone(), (tq.clone(), ts.clone()));
                        (tq, ts)
                    }
                };
                let ids = node.input[1].as_str();
                let g_rows = names.fresh(&format!("{label}_rows_quantized"));
                let g_cast = names.fresh(&format!("{label}_rows"));
                let g_scale = names.fresh(&format!("{label}_row_scales"));
                let g_mul = names.fresh(&format!("{label}_dequantize"));
                nodes.push(Node::new("Gather", &g_rows, &[&tq, ids], &[&g_rows]));
                nodes.push(
                    Node::new("Cast", &g_cast, &[&g_rows], &[&g_cast])
                        .with(Attribute::int("to", i64::from(dtype::FLOAT))),
                );
                nodes.push(Node::new("Gather", &g_scale, &[&ts, ids], &[&g_scale]));
                nodes.push(Node::new(
                    "Mul",
                    &g_mul,
                    &[&g_cast, &g_scale],
                    &[&node.output[0]],
                ));
                report.embeddings.push(QuantizedEmbedding {
                    node: label,
                    table: t.name.clone(),
                    rows,
                    cols,
                });
                continue;
            }
        }
        let default_domain = node.domain.is_empty() || node.domain == "ai.onnx";
        let is_mm = default_domain && matches!(node.op_type.as_str(), "MatMul" | "Gemm");
        if !is_mm {
            nodes.push(node.clone());
            continue;
        }
        let skip = |reason: String| Skipped {
            node: label.clone(),
            op_type: node.op_type.clone(),
            reason,
        };
        let w = match const_weight(node, &inits, &graph_inputs) {
            Ok(w) => w,
            Err(reason) => {
                report.skipped.push(skip(reason));
                nodes.push(node.clone());
                continue;
            }
        };
        let (Some(a), Some(y)) = (node.input.first(), node.output.first()) else {
            report
                .skipped
                .push(skip("it has no input or output".into()));
            nodes.push(node.clone());
            continue;
        };
        // Gemm's bias, scaled by beta (a constant, or a tensor when beta = 1).
        let mut bias = None;
        if node.op_type == "Gemm" {
            if let Some(c) = node.input.get(2).filter(|c| !c.is_empty()) {
                let beta = node.attr_f("beta", 1.0);
                if beta == 1.0 {
                    bias = Some(c.clone());
                } else if let Some(ct) = inits
                    .get(c.as_str())
                    .filter(|t| t.data_type == dtype::FLOAT)
                {
                    let v: Vec<f32> = match ct.to_f32() {
                        Ok(v) => v.iter().map(|x| x * beta).collect(),
                        Err(e) => {
                            report.skipped.push(skip(e.to_string()));
                            nodes.push(node.clone());
                            continue;
                        }
                    };
                    let name = names.fresh(&format!("{c}_beta"));
                    new_inits.push(Tensor::from_f32(&name, &ct.dims, &v));
                    bias = Some(name);
                } else {
                    report.skipped.push(skip(format!(
                        "beta = {beta} with a computed C is not rewritten"
                    )));
                    nodes.push(node.clone());
                    continue;
                }
            }
        }

        let base = w.name.clone();
        let (k, n) = (w.k as i64, w.n as i64);
        match opts.scheme {
            Scheme::WeightOnly => {
                let key = if node.op_type == "Gemm" {
                    (
                        base.clone(),
                        node.attr_i("transB", 0),
                        node.attr_f("alpha", 1.0).to_bits(),
                    )
                } else {
                    (base.clone(), 0, 1f32.to_bits())
                };
                let deq = match dequantized.get(&key) {
                    Some(d) => d.clone(),
                    None => {
                        let (q, scales) = quantize_weight(&w.data, w.k, w.n, opts);
                        let q_name = names.fresh(&format!("{base}_quantized"));
                        let s_name = names.fresh(&format!("{base}_scale"));
                        let d_name = names.fresh(&format!("{base}_dequantized"));
                        new_inits.push(Tensor::from_i8(&q_name, &[k, n], &q));
                        let s_dims: &[i64] = if opts.per_channel { &[n] } else { &[] };
                        new_inits.push(Tensor::from_f32(&s_name, s_dims, &scales));
                        match opts.dequantize {
                            Dequantize::Linear => {
                                let mut d = Node::new(
                                    "DequantizeLinear",
                                    &d_name,
                                    &[&q_name, &s_name],
                                    &[&d_name],
                                );
                                if opts.per_channel {
                                    d = d.with(Attribute::int("axis", 1));
                                }
                                nodes.push(d);
                            }
                            Dequantize::CastMul => {
                                // [K, N] · [N] broadcasts over the last axis.
                                let c_name = names.fresh(&format!("{base}_cast"));
                                nodes.push(
                                    Node::new("Cast", &c_name, &[&q_name], &[&c_name])
                                        .with(Attribute::int("to", i64::from(dtype::FLOAT))),
                                );
                                nodes.push(Node::new(
                                    "Mul",
                                    &d_name,
                                    &[&c_name, &s_name],
                                    &[&d_name],
                                ));
                            }
                        }
                        report.weight_bytes_before += (w.k * w.n * 4) as u64;
                        report.weight_bytes_after += (q.len() + scales.len() * 4) as u64;
                        dequantized.insert(key, d_name.clone());
                        d_name
                    }
                };
                match &bias {
                    None if node.op_type == "MatMul" => {
                        let mut m = node.clone();
                        m.input[1] = deq;
                        nodes.push(m);
                    }
                    None => {
                        let mm = names.fresh(&format!("{label}_MatMul"));
                        nodes.push(Node::new("MatMul", &mm, &[a, &deq], &[y]));
                    }
                    Some(c) => {
                        let mm = names.fresh(&format!("{label}_MatMul"));
                        let add = names.fresh(&format!("{label}_bias"));
                        nodes.push(Node::new("MatMul", &mm, &[a, &deq], &[&mm]));
                        nodes.push(Node::new("Add", &add, &[&mm, c], &[y]));
                    }
                }
            }
            Scheme::Dynamic => {
                let (q, scales) = quantize_weight(&w.data, w.k, w.n, opts);
                let q_name = names.fresh(&format!("{base}_quantized"));
                let s_name = names.fresh(&format!("{base}_scale"));
                let z_name = names.fresh(&format!("{base}_zero_point"));
                new_inits.push(Tensor::from_i8(&q_name, &[k, n], &q));
                if opts.per_channel {
                    new_inits.push(Tensor::from_f32(&s_name, &[n], &scales));
                    new_inits.push(Tensor::from_i8(&z_name, &[n], &vec![0i8; w.n]));
                } else {
                    new_inits.push(Tensor::from_f32(&s_name, &[], &scales));
                    new_inits.push(Tensor::from_i8(&z_name, &[], &[0]));
                }
                report.weight_bytes_before += (w.k * w.n * 4) as u64;
                report.weight_bytes_after += (q.len() + scales.len() * 5) as u64;

                let (aq, ascale, azp) = match dq.get(a) {
                    Some(t) => t.clone(),
                    None if opts.per_token => {
                        let t = per_token_chain(a, &mut names, &mut nodes, &mut consts, opset);
                        dq.insert(a.clone(), t.clone());
                        t
                    }
                    None => {
                        let t = (
                            names.fresh(&format!("{a}_quantized")),
                            names.fresh(&format!("{a}_scale")),
                            names.fresh(&format!("{a}_zero_point")),
                        );
                        let n = names.fresh(&format!("{a}_DynamicQuantizeLinear"));
                        nodes.push(Node::new(
                            "DynamicQuantizeLinear",
                            &n,
                            &[a],
                            &[&t.0, &t.1, &t.2],
                        ));
                        dq.insert(a.clone(), t.clone());
                        t
                    }
                };
                let mmi = names.fresh(&format!("{label}_MatMulInteger"));
                let cast = names.fresh(&format!("{label}_Cast"));
                let sc = names.fresh(&format!("{label}_scale"));
                nodes.push(Node::new(
                    "MatMulInteger",
                    &mmi,
                    &[&aq, &q_name, &azp, &z_name],
                    &[&mmi],
                ));
                nodes.push(
                    Node::new("Cast", &cast, &[&mmi], &[&cast])
                        .with(Attribute::int("to", i64::from(dtype::FLOAT))),
                );
                // Per tensor: Y = Cast(Y_i32) · (a_scale · w_scale), the pattern ONNX
                // Runtime fuses into MatMulIntegerToFloat. Per token the activation
                // scale is [.., 1]: Y = (Cast(Y_i32) · w_scale) · a_scale, two Muls,
                // because ONNX Runtime 1.32's fusion mishandles a combined [.., N]
                // scale for batches larger than one.
                let scaled = if opts.per_token {
                    let m = names.fresh(&format!("{label}_weight_scaled"));
                    nodes.push(Node::new("Mul", &m, &[&cast, &s_name], &[&m]));
                    (m, ascale.clone())
                } else {
                    nodes.push(Node::new("Mul", &sc, &[&ascale, &s_name], &[&sc]));
                    (cast.clone(), sc.clone())
                };
                let mul = names.fresh(&format!("{label}_output"));
                match &bias {
                    None => nodes.push(Node::new("Mul", &mul, &[&scaled.0, &scaled.1], &[y])),
                    Some(c) => {
                        let add = names.fresh(&format!("{label}_bias"));
                        nodes.push(Node::new("Mul", &mul, &[&scaled.0, &scaled.1], &[&mul]));
                        nodes.push(Node::new("Add", &add, &[&mul, c], &[y]));
                    }
                }
            }
        }
        replaced.insert(w.name.clone());
        report.quantized.push(QuantizedMatMul {
            node: label.clone(),
            op_type: node.op_type.clone(),
            weight: w.name,
            k: w.k,
            n: w.n,
        });
    }

    let graph = out
        .graph
        .as_mut()
        .expect("cloned from a model with a graph");
    graph.node = nodes;
    let mut used = HashSet::new();
    used_names(graph, &mut used);
    graph
        .initializer
        .retain(|t| !replaced.contains(&t.name) || used.contains(&t.name));
    graph.initializer.extend(new_inits);
    graph.initializer.extend(consts.inits);
    report.bytes_after = out.encoded_len() as u64;
    Ok((out, report))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn per_channel_scales_are_column_maxima() {
        // [k=2, n=3]
        let w = [1.0, -2.0, 0.0, -0.5, 1.0, 0.0];
        let (q, s) = quantize_weight(&w, 2, 3, &QuantOptions::default());
        assert_eq!(s, vec![1.0 / 127.0, 2.0 / 127.0, 1.0]);
        assert_eq!(q, vec![127, -127, 0, -64, 64, 0]);
        let (q, s) = quantize_weight(
            &w,
            2,
            3,
            &QuantOptions {
                reduce_range: true,
                per_channel: false,
                per_token: false,
                ..QuantOptions::dynamic()
            },
        );
        assert_eq!(s, vec![2.0 / 63.0]);
        assert_eq!(q[1], -63);
    }

    #[test]
    fn row_scales_are_row_maxima() {
        let t = [1.0, -2.0, 0.0, 0.0, 0.5, -0.25];
        let (q, s) = quantize_rows(&t, 3);
        assert_eq!(s, vec![2.0 / 127.0, 0.5 / 127.0]);
        assert_eq!(q, vec![64, -127, 0, 0, 127, -64]);
    }
}
