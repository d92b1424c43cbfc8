//! An f32 ONNX graph (opset 17) of a Hugging Face `BertModel` checkpoint, standing in
//! for `torch.onnx.export` ([`export_bert`]).
//!
//! Inputs `input_ids`, `attention_mask`, `token_type_ids` (int64 `[batch, sequence]`),
//! output `last_hidden_state` (f32 `[batch, sequence, hidden]`). Weights keep their
//! checkpoint names; linear weights are stored transposed (`[in, out]`) so that they
//! feed `MatMul` directly. Constants are initializers named `/const/...`.

use crate::proto::{dtype, Attribute, Graph, Model, Node, OpsetId, Tensor, ValueInfo};
use crate::OnnxError;
use alc_format::HfTensors;
use std::path::{Path, PathBuf};

/// The default-domain opset the exporter writes (LayerNormalization needs 17).
pub const EXPORT_OPSET: i64 = 17;
/// The IR version the exporter writes (the one that goes with opset 17).
pub const EXPORT_IR_VERSION: i64 = 8;

struct Config {
    hidden: usize,
    layers: usize,
    heads: usize,
    intermediate: usize,
    eps: f32,
}

fn read_config(dir: &Path) -> Result<Config, OnnxError> {
    let path = dir.join("config.json");
    let bad = |what: String| OnnxError::Checkpoint {
        path: path.clone(),
        what,
    };
    let text = std::fs::read(&path).map_err(|source| OnnxError::Io {
        path: path.clone(),
        source,
    })?;
    let v: serde_json::Value = serde_json::from_slice(&text).map_err(|e| {
        bad(format!(
            "not valid JSON: {e}; restore the checkpoint's config.json"
        ))
    })?;
    let int = |k: &str| -> Result<usize, OnnxError> {
        v.get(k)
            .and_then(|x| x.as_u64())
            .filter(|&x| x > 0 && x <= 1 << 20)
            .map(|x| x as usize)
            .ok_or_else(|| bad(format!("'{k}' is missing or not a positive integer")))
    };
    if let Some(t) = v.get("model_type").and_then(|x| x.as_str()) {
        if t != "bert" {
            return Err(bad(format!(
                "model_type is '{t}'; only BERT encoders (model_type \"bert\") can be exported"
            )));
        }
    }
    let act = v
        .get("hidden_act")
        .and_then(|x| x.as_str())
        .unwrap_or("gelu");
    if act != "gelu" {
        return Err(bad(format!(
            "hidden_act is '{act}'; the exporter writes exact GELU only (\"gelu\")"
        )));
    }
    let pos = v
        .get("position_embedding_type")
        .and_then(|x| x.as_str())
        .unwrap_or("absolute");
    if pos != "absolute" {
        return Err(bad(format!(
            "position_embedding_type is '{pos}'; only \"absolute\" is supported"
        )));
    }
    let eps = v
        .get("layer_norm_eps")
        .and_then(|x| x.as_f64())
        .unwrap_or(1e-12) as f32;
    let c = Config {
        hidden: int("hidden_size")?,
        layers: int("num_hidden_layers")?,
        heads: int("num_attention_heads")?,
        intermediate: int("intermediate_size")?,
        eps,
    };
    if !c.hidden.is_multiple_of(c.heads) {
        return Err(bad(format!(
            "hidden_size {} is not a multiple of num_attention_heads {}",
            c.hidden, c.heads
        )));
    }
    Ok(c)
}

struct Builder<'a> {
    st: &'a HfTensors,
    dir: PathBuf,
    /// "" or "bert." (checkpoints saved from BertFor* models).
    prefix: &'static str,
    nodes: Vec<Node>,
    inits: Vec<Tensor>,
}

impl Builder<'_> {
    fn bad(&self, what: String) -> OnnxError {
        OnnxError::Checkpoint {
            path: self.dir.clone(),
            what,
        }
    }

    /// A checkpoint tensor as f32 with its expected shape checked.
    fn weight(&self, name: &str, shape: &[usize]) -> Result<Vec<f32>, OnnxError> {
        let full = format!("{}{name}", self.prefix);
        let t = self.st.get(&full).ok_or_else(|| {
            self.bad(format!(
                "tensor '{full}' is missing; is this a Hugging Face BertModel checkpoint?"
            ))
        })?;
        let want: Vec<u64> = shape.iter().map(|&d| d as u64).collect();
        if t.shape != want {
            return Err(self.bad(format!(
                "tensor '{full}' has shape {:?}, config.json implies {want:?}",
                t.shape
            )));
        }
        Ok(self.st.to_f32(&full)?)
    }

    /// Add a checkpoint tensor as an initializer (named as in the checkpoint, without
    /// the `bert.` prefix); returns its name.
    fn init(&mut self, name: &str, shape: &[usize]) -> Result<String, OnnxError> {
        let data = self.weight(name, shape)?;
        let dims: Vec<i64> = shape.iter().map(|&d| d as i64).collect();
        self.inits.push(Tensor::from_f32(name, &dims, &data));
        Ok(name.to_string())
    }

    /// A linear layer's weight, HF `[out, in]`, stored transposed as `[in, out]`.
    fn linear_weight(
        &mut self,
        name: &str,
        n_in: usize,
        n_out: usize,
    ) -> Result<String, OnnxError> {
        let w = self.weight(name, &[n_out, n_in])?;
        let mut t = vec![0f32; w.len()];
        for o in 0..n_out {
            for i in 0..n_in {
                t[i * n_out + o] = w[o * n_in + i];
            }
        }
        self.inits
            .push(Tensor::from_f32(name, &[n_in as i64, n_out as i64], &t));
        Ok(name.to_string())
    }

    fn konst(&mut self, t: Tensor) -> String {
        let n = t.name.clone();
        self.inits.push(t);
        n
    }

    /// Add a node whose single output is named like the node; returns the output.
    fn op(&mut self, op: &str, name: &str, inputs: &[&str], attrs: Vec<Attribute>) -> String {
        let mut n = Node::new(op, name, inputs, &[name]);
        n.attribute = attrs;
        self.nodes.push(n);
        name.to_string()
    }

    /// `x @ W + b` for a linear layer `name` (HF `name.weight`, `name.bias`).
    fn linear(
        &mut self,
        x: &str,
        name: &str,
        n_in: usize,
        n_out: usize,
    ) -> Result<String, OnnxError> {
        let w = self.linear_weight(&format!("{name}.weight"), n_in, n_out)?;
        let b = self.init(&format!("{name}.bias"), &[n_out])?;
        let mm = self.op("MatMul", &format!("/{name}/MatMul"), &[x, &w], vec![]);
        Ok(self.op("Add", &format!("/{name}/Add"), &[&mm, &b], vec![]))
    }

    fn layer_norm(
        &mut self,
        x: &str,
        name: &str,
        hidden: usize,
        eps: f32,
        out: Option<&str>,
    ) -> Result<String, OnnxError> {
        let g = self.init(&format!("{name}.weight"), &[hidden])?;
        let b = self.init(&format!("{name}.bias"), &[hidden])?;
        let node_name = format!("/{name}/LayerNormalization");
        let out = out.unwrap_or(&node_name).to_string();
        let n = Node::new("LayerNormalization", &node_name, &[x, &g, &b], &[&out])
            .with(Attribute::int("axis", -1))
            .with(Attribute::float("epsilon", eps));
        self.nodes.push(n);
        Ok(out)
    }
}

/// Build the f32 ONNX graph of the `BertModel` checkpoint in `dir` (config.json +
/// safetensors). The pooler is not exported (sentence encoders pool the token states).
pub fn export_bert(dir: &Path) -> Result<Model, OnnxError> {
    let c = read_config(dir)?;
    let st = HfTensors::open(dir)?;
    let prefix = if st.get("embeddings.word_embeddings.weight").is_some() {
        ""
    } else {
        "bert."
    };
    let (vocab, positions, types) = {
        let shape = |n: &str| {
            st.get(&format!("{prefix}{n}"))
                .filter(|t| t.shape.len() == 2)
                .map(|t| t.shape[0] as usize)
                .ok_or_else(|| OnnxError::Checkpoint {
                    path: dir.to_path_buf(),
                    what: format!("tensor '{prefix}{n}' is missing or not 2-D; is this a Hugging Face BertModel checkpoint?"),
                })
        };
        (
            shape("embeddings.word_embeddings.weight")?,
            shape("embeddings.position_embeddings.weight")?,
            shape("embeddings.token_type_embeddings.weight")?,
        )
    };
    let (h, nh) = (c.hidden, c.heads);
    let hd = h / nh;
    let mut b = Builder {
        st: &st,
        dir: dir.to_path_buf(),
        prefix,
        nodes: Vec::new(),
        inits: Vec::new(),
    };

    // Constants.
    let one_i = b.konst(Tensor::from_i64("/const/int_1", &[], &[1]));
    let zero_i = b.konst(Tensor::from_i64("/const/int_0", &[], &[0]));
    let one_f = b.konst(Tensor::from_f32("/const/float_1", &[], &[1.0]));
    let half_f = b.konst(Tensor::from_f32("/const/float_0.5", &[], &[0.5]));
    let sqrt2 = b.konst(Tensor::from_f32(
        "/const/sqrt_2",
        &[],
        &[std::f32::consts::SQRT_2],
    ));
    let fmin = b.konst(Tensor::from_f32("/const/float_min", &[], &[f32::MIN]));
    let scale = b.konst(Tensor::from_f32(
        "/const/sqrt_head_dim",
        &[],
        &[(hd as f32).sqrt()],
    ));
    let mask_axes = b.konst(Tensor::from_i64("/const/mask_axes", &[2], &[1, 2]));
    let heads_shape = b.konst(Tensor::from_i64(
        "/const/heads_shape",
        &[4],
        &[0, 0, nh as i64, hd as i64],
    ));
    let hidden_shape = b.konst(Tensor::from_i64(
        "/const/hidden_shape",
        &[3],
        &[0, 0, h as i64],
    ));

    // Embeddings.
    let we = b.init("embeddings.word_embeddings.weight", &[vocab, h])?;
    let pe = b.init("embeddings.position_embeddings.weight", &[positions, h])?;
    let te = b.init("embeddings.token_type_embeddings.weight", &[types, h])?;
    let shape = b.op("Shape", "/embeddings/Shape", &["input_ids"], vec![]);
    let seq = b.op(
        "Gather",
        "/embeddings/seq_len",
        &[&shape, &one_i],
        vec![Attribute::int("axis", 0)],
    );
    let pos = b.op(
        "Range",
        "/embeddings/position_ids",
        &[&zero_i, &seq, &one_i],
        vec![],
    );
    let w = b.op("Gather", "/embeddings/word", &[&we, "input_ids"], vec![]);
    let t = b.op(
        "Gather",
        "/embeddings/token_type",
        &[&te, "token_type_ids"],
        vec![],
    );
    let p = b.op("Gather", "/embeddings/position", &[&pe, &pos], vec![]);
    let wt = b.op("Add", "/embeddings/Add", &[&w, &t], vec![]);
    let e = b.op("Add", "/embeddings/Add_1", &[&wt, &p], vec![]);
    let mut hs = b.layer_norm(&e, "embeddings.LayerNorm", h, c.eps, None)?;

    // Additive attention mask: (1 - mask) * f32::MIN, as [batch, 1, 1, sequence].
    let mf = b.op(
        "Cast",
        "/mask/Cast",
        &["attention_mask"],
        vec![Attribute::int("to", i64::from(dtype::FLOAT))],
    );
    let inv = b.op("Sub", "/mask/Sub", &[&one_f, &mf], vec![]);
    let mb = b.op("Mul", "/mask/Mul", &[&inv, &fmin], vec![]);
    let mask = b.op("Unsqueeze", "/mask/Unsqueeze", &[&mb, &mask_axes], vec![]);

    for l in 0..c.layers {
        let pre = format!("encoder.layer.{l}");
        let heads = |b: &mut Builder, x: &str, what: &str, perm: &[i64]| {
            let r = b.op(
                "Reshape",
                &format!("/{pre}/attention/{what}/Reshape"),
                &[x, &heads_shape],
                vec![],
            );
            b.op(
                "Transpose",
                &format!("/{pre}/attention/{what}/Transpose"),
                &[&r],
                vec![Attribute::ints("perm", perm)],
            )
        };
        let q = b.linear(&hs, &format!("{pre}.attention.self.query"), h, h)?;
        let k = b.linear(&hs, &format!("{pre}.attention.self.key"), h, h)?;
        let v = b.linear(&hs, &format!("{pre}.attention.self.value"), h, h)?;
        let q = heads(&mut b, &q, "q", &[0, 2, 1, 3]);
        let k = heads(&mut b, &k, "k", &[0, 2, 3, 1]);
        let v = heads(&mut b, &v, "v", &[0, 2, 1, 3]);
        let s = b.op(
            "MatMul",
            &format!("/{pre}/attention/scores"),
            &[&q, &k],
            vec![],
        );
        let s = b.op(
            "Div",
            &format!("/{pre}/attention/scaled"),
            &[&s, &scale],
            vec![],
        );
        let s = b.op(
            "Add",
            &format!("/{pre}/attention/masked"),
            &[&s, &mask],
            vec![],
        );
        let pr = b.op(
            "Softmax",
            &format!("/{pre}/attention/probs"),
            &[&s],
            vec![Attribute::int("axis", -1)],
        );
        let ctx = b.op(
            "MatMul",
            &format!("/{pre}/attention/context"),
            &[&pr, &v],
            vec![],
        );
        let ctx = b.op(
            "Transpose",
            &format!("/{pre}/attention/context/Transpose"),
            &[&ctx],
            vec![Attribute::ints("perm", &[0, 2, 1, 3])],
        );
        let ctx = b.op(
            "Reshape",
            &format!("/{pre}/attention/context/Reshape"),
            &[&ctx, &hidden_shape],
            vec![],
        );
        let o = b.linear(&ctx, &format!("{pre}.attention.output.dense"), h, h)?;
        let r = b.op(
            "Add",
            &format!("/{pre}/attention/residual"),
            &[&o, &hs],
            vec![],
        );
        let a = b.layer_norm(
            &r,
            &format!("{pre}.attention.output.LayerNorm"),
            h,
            c.eps,
            None,
        )?;

        let i = b.linear(&a, &format!("{pre}.intermediate.dense"), h, c.intermediate)?;
        // Exact GELU: 0.5 · x · (1 + erf(x / √2)).
        let d = b.op("Div", &format!("/{pre}/gelu/Div"), &[&i, &sqrt2], vec![]);
        let er = b.op("Erf", &format!("/{pre}/gelu/Erf"), &[&d], vec![]);
        let e1 = b.op("Add", &format!("/{pre}/gelu/Add"), &[&er, &one_f], vec![]);
        let m = b.op("Mul", &format!("/{pre}/gelu/Mul"), &[&i, &e1], vec![]);
        let g = b.op("Mul", &format!("/{pre}/gelu/Mul_1"), &[&m, &half_f], vec![]);
        let o = b.linear(&g, &format!("{pre}.output.dense"), c.intermediate, h)?;
        let r = b.op("Add", &format!("/{pre}/output/residual"), &[&o, &a], vec![]);
        let out = (l + 1 == c.layers).then_some("last_hidden_state");
        hs = b.layer_norm(&r, &format!("{pre}.output.LayerNorm"), h, c.eps, out)?;
    }
    if c.layers == 0 {
        // Not reachable with a valid config (num_hidden_layers > 0), kept total.
        let n = Node::new(
            "Identity",
            "/output/Identity",
            &[&hs],
            &["last_hidden_state"],
        );
        b.nodes.push(n);
    }

    let ids = |n: &str| ValueInfo::tensor(n, dtype::INT64, &[Err("batch"), Err("sequence")]);
    let graph = Graph {
        node: b.nodes,
        name: "bert".into(),
        initializer: b.inits,
        input: vec![
            ids("input_ids"),
            ids("attention_mask"),
            ids("token_type_ids"),
        ],
        output: vec![ValueInfo::tensor(
            "last_hidden_state",
            dtype::FLOAT,
            &[Err("batch"), Err("sequence"), Ok(h as i64)],
        )],
        ..Default::default()
    };
    Ok(Model {
        ir_version: EXPORT_IR_VERSION,
        opset_import: vec![OpsetId::new("", EXPORT_OPSET)],
        producer_name: "alc-onnx".into(),
        producer_version: env!("CARGO_PKG_VERSION").into(),
        graph: Some(graph),
        ..Default::default()
    })
}

/// [`export_bert`] written to `out` atomically.
pub fn export_bert_to_file(dir: &Path, out: &Path) -> Result<Model, OnnxError> {
    let m = export_bert(dir)?;
    m.write_file(out)?;
    Ok(m)
}
