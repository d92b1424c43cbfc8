//! Round trip, BERT recognition, export and quantisation on the real models; bad inputs.
//! Tests that need models/ print a skip when they are absent (ALC_SKIP_MODEL_TESTS=1).

use alc_onnx::proto::Tensor;
use alc_onnx::proto::{dtype, Graph, Model, Node, OpsetId, ValueInfo};
use alc_onnx::{
    bert_shape, export_bert, quantize, quantize_dynamic, Dequantize, OnnxError, QuantOptions,
    Scheme,
};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::OnceLock;

fn int8_model() -> Option<PathBuf> {
    alc_testdata::model("all-minilm-l6-v2-int8.onnx")
}

fn hf_dir() -> Option<PathBuf> {
    alc_testdata::model("all-minilm-l6-v2").filter(|d| d.join("model.safetensors").exists())
}

fn exported() -> Option<&'static Model> {
    static M: OnceLock<Option<Model>> = OnceLock::new();
    M.get_or_init(|| hf_dir().map(|d| export_bert(&d).expect("export")))
        .as_ref()
}

#[test]
fn published_int8_model_round_trips_byte_identical() {
    let Some(p) = int8_model() else { return };
    let bytes = std::fs::read(&p).unwrap();
    let m = Model::parse(&bytes).unwrap();
    assert_eq!(m.opset(""), Some(17));
    assert_eq!(m.encoded_len(), bytes.len());
    assert!(
        m.to_bytes() == bytes,
        "serialized bytes differ from the file"
    );
}

#[test]
fn bert_shape_of_published_model() {
    let Some(p) = int8_model() else { return };
    let s = bert_shape(&Model::open(p).unwrap()).unwrap();
    assert_eq!(s.input_ids, "input_ids");
    assert_eq!(s.attention_mask, "attention_mask");
    assert_eq!(s.token_type_ids.as_deref(), Some("token_type_ids"));
    assert_eq!(s.output, "last_hidden_state");
    assert_eq!(s.hidden, 384);
    assert_eq!(s.max_positions, Some(512));
}

#[test]
fn export_matches_checkpoint() {
    let (Some(m), Some(dir)) = (exported(), hf_dir()) else {
        return;
    };
    let s = bert_shape(m).unwrap();
    assert_eq!((s.hidden, s.max_positions), (384, Some(512)));
    let st = alc_format::HfTensors::open(&dir).unwrap();
    let g = m.graph.as_ref().unwrap();
    let inits: HashMap<&str, &Vec<i64>> = g
        .initializer
        .iter()
        .map(|t| (t.name.as_str(), &t.dims))
        .collect();
    let mut n = 0;
    for t in st.tensors() {
        if t.name.starts_with("pooler.") || t.name.ends_with("position_ids") {
            continue;
        }
        let dims = inits
            .get(t.name.as_str())
            .unwrap_or_else(|| panic!("{} not exported", t.name));
        let mut want: Vec<i64> = t.shape.iter().map(|&d| d as i64).collect();
        if t.name.starts_with("encoder.") && t.name.ends_with("dense.weight")
            || t.name.contains(".self.") && t.name.ends_with(".weight")
        {
            want.reverse(); // linear weights are stored [in, out]
        }
        assert_eq!(**dims, want, "{}", t.name);
        n += 1;
    }
    assert_eq!(n, 101);
    let consts = g
        .initializer
        .iter()
        .filter(|t| t.name.starts_with("/const/"))
        .count();
    assert_eq!(g.initializer.len(), n + consts);
    // The serialized model parses back to the same thing.
    let bytes = m.to_bytes();
    assert!(Model::parse(&bytes).unwrap().to_bytes() == bytes);
}

#[test]
fn quantize_exported_model_dynamic() {
    let Some(m) = exported() else { return };
    for opts in [
        QuantOptions::dynamic(),
        QuantOptions {
            reduce_range: true,
            per_channel: false,
            per_token: false,
            embeddings: false,
            ..QuantOptions::dynamic()
        },
    ] {
        let (q, r) = quantize(m, &opts).unwrap();
        assert_eq!(r.scheme, Scheme::Dynamic);
        assert_eq!(r.embeddings.len(), usize::from(opts.embeddings), "{opts:?}");
        assert_eq!(r.quantized.len(), 36, "{opts:?}");
        // The 12 attention products (Q·Kᵀ, P·V) have computed weights.
        assert_eq!(r.skipped.len(), 12);
        assert!(r
            .skipped
            .iter()
            .all(|s| s.reason.contains("not an initializer")));
        let ratio = r.weight_bytes_after as f64 / r.weight_bytes_before as f64;
        assert!((0.25..0.26).contains(&ratio), "{ratio}");
        assert!(r.bytes_after < r.bytes_before - 30_000_000);
        let g = q.graph.as_ref().unwrap();
        assert!(g
            .node
            .iter()
            .all(|n| n.op_type != "MatMul" || n.name.contains("attention/")));
        assert!(!g
            .initializer
            .iter()
            .any(|t| t.name.ends_with("query.weight")));
        assert_eq!(g.input, m.graph.as_ref().unwrap().input);
        assert_eq!(g.output, m.graph.as_ref().unwrap().output);
        assert_eq!(bert_shape(&q).unwrap(), bert_shape(m).unwrap());
        let bytes = q.to_bytes();
        assert!(Model::parse(&bytes).unwrap().to_bytes() == bytes);
    }
}

#[test]
fn quantize_exported_model_weight_only() {
    let Some(m) = exported() else { return };
    assert_eq!(QuantOptions::default().scheme, Scheme::WeightOnly);
    let (q, r) = quantize(m, &QuantOptions::default()).unwrap();
    assert_eq!(r.scheme, Scheme::WeightOnly);
    assert_eq!(r.quantized.len(), 36);
    assert_eq!(r.skipped.len(), 12);
    let ratio = r.weight_bytes_after as f64 / r.weight_bytes_before as f64;
    assert!((0.25..0.26).contains(&ratio), "{ratio}");
    assert_eq!(r.embeddings.len(), 1);
    let e = &r.embeddings[0];
    assert_eq!(e.table, "embeddings.word_embeddings.weight");
    assert_eq!((e.rows, e.cols), (30522, 384));

    let bytes = q.to_bytes();
    assert_eq!(bytes.len() as u64, r.bytes_after);
    assert!(bytes.len() < 30_000_000, "{} bytes", bytes.len());
    let q = Model::parse(&bytes).unwrap();
    assert!(q.to_bytes() == bytes, "serialization is not stable");
    assert_eq!(bert_shape(&q).unwrap(), bert_shape(m).unwrap());
    let g = q.graph.as_ref().unwrap();
    // Same interface (compared after a round trip: presence bits differ from built ones).
    let m_parsed = Model::parse(&m.to_bytes()).unwrap();
    let mg = m_parsed.graph.as_ref().unwrap();
    assert_eq!(g.input, mg.input);
    assert_eq!(g.output, mg.output);
    let inits: HashMap<&str, &Tensor> =
        g.initializer.iter().map(|t| (t.name.as_str(), t)).collect();
    let produced_by = |name: &str| g.node.iter().find(|n| n.output.iter().any(|o| o == name));

    // No f32 2-D MatMul weight is left: each MatMul's B is computed (the attention
    // products) or a DequantizeLinear of an int8 [K, N] initializer with [N] scales.
    let mut dq_fed = 0;
    for n in g.node.iter().filter(|n| n.op_type == "MatMul") {
        let b = &n.input[1];
        assert!(
            !inits.contains_key(b.as_str()),
            "{} reads initializer {b}",
            n.name
        );
        let src = produced_by(b).unwrap();
        if src.op_type == "DequantizeLinear" {
            dq_fed += 1;
        } else {
            assert!(n.name.contains("attention/"), "{}", n.name);
        }
    }
    assert_eq!(dq_fed, 36);
    let dqs: Vec<_> = g
        .node
        .iter()
        .filter(|n| n.op_type == "DequantizeLinear")
        .collect();
    assert_eq!(dqs.len(), 36);
    for d in &dqs {
        assert_eq!(d.attr_i("axis", -1), 1, "{}", d.name);
        let w = inits[d.input[0].as_str()];
        let s = inits[d.input[1].as_str()];
        assert_eq!(w.data_type, dtype::INT8);
        assert_eq!(w.dims.len(), 2);
        assert_eq!(s.data_type, dtype::FLOAT);
        assert_eq!(s.dims, vec![w.dims[1]]);
    }
    assert!(!g.initializer.iter().any(|t| t.data_type == dtype::FLOAT
        && t.dims.len() == 2
        && (t.name.ends_with(".weight") && t.name.starts_with("encoder."))));
    assert!(!g.node.iter().any(|n| n.op_type == "MatMulInteger"));

    // The word embeddings: int8 rows and [V, 1] scales gathered by input_ids, the f32
    // table gone; the position and token-type tables stay f32.
    assert!(!inits.contains_key("embeddings.word_embeddings.weight"));
    for t in [
        "embeddings.position_embeddings.weight",
        "embeddings.token_type_embeddings.weight",
    ] {
        assert_eq!(inits[t].data_type, dtype::FLOAT, "{t}");
    }
    let by_ids: Vec<_> = g
        .node
        .iter()
        .filter(|n| n.op_type == "Gather" && n.input[1] == "input_ids")
        .collect();
    assert_eq!(by_ids.len(), 2);
    let rows = by_ids
        .iter()
        .find(|n| inits[n.input[0].as_str()].data_type == dtype::INT8)
        .unwrap();
    let scales = by_ids
        .iter()
        .find(|n| inits[n.input[0].as_str()].data_type == dtype::FLOAT)
        .unwrap();
    assert_eq!(inits[rows.input[0].as_str()].dims, vec![30522, 384]);
    assert_eq!(inits[scales.input[0].as_str()].dims, vec![30522, 1]);
    let cast = g
        .node
        .iter()
        .find(|n| n.op_type == "Cast" && n.input[0] == rows.output[0])
        .unwrap();
    assert_eq!(cast.attr_i("to", 0), i64::from(dtype::FLOAT));
    let mul = g
        .node
        .iter()
        .find(|n| n.op_type == "Mul" && n.input.contains(&cast.output[0]))
        .unwrap();
    assert!(mul.input.contains(&scales.output[0]));

    // Embeddings left f32 on request.
    let opts = QuantOptions {
        embeddings: false,
        ..QuantOptions::default()
    };
    let (q2, r2) = quantize_dynamic(m, &opts).unwrap();
    assert!(r2.embeddings.is_empty());
    assert!(r2.bytes_after > 50_000_000);
    let g2 = q2.graph.as_ref().unwrap();
    assert_eq!(
        g2.node
            .iter()
            .filter(|n| n.op_type == "DequantizeLinear")
            .count(),
        36
    );
    assert!(g2
        .initializer
        .iter()
        .any(|t| t.name == "embeddings.word_embeddings.weight"));
}

/// `Y = Gemm(A, B, C)` with a constant `B` `[2, 3]` (transB) and `C` `[2]`.
fn tiny_gemm_model(opset: i64) -> Model {
    let mut g = Graph::default();
    g.node = vec![Node::new("Gemm", "gemm", &["a", "b", "c"], &["y"])
        .with(alc_onnx::Attribute::int("transB", 1))];
    g.name = "gemm".into();
    g.input = vec![ValueInfo::tensor("a", dtype::FLOAT, &[Ok(1), Ok(3)])];
    g.output = vec![ValueInfo::tensor("y", dtype::FLOAT, &[Ok(1), Ok(2)])];
    g.initializer = vec![
        Tensor::from_f32("b", &[2, 3], &[1.0, 2.0, 3.0, -4.0, 5.0, 6.0]),
        Tensor::from_f32("c", &[2], &[0.5, -0.5]),
    ];
    let mut m = Model::default();
    m.ir_version = 8;
    m.opset_import = vec![OpsetId::new("", opset)];
    m.graph = Some(g);
    m
}

#[test]
fn weight_only_gemm_becomes_dequantize_matmul_add() {
    let (q, r) = quantize(&tiny_gemm_model(17), &QuantOptions::default()).unwrap();
    assert_eq!(r.quantized.len(), 1);
    assert_eq!((r.quantized[0].k, r.quantized[0].n), (3, 2));
    let g = q.graph.as_ref().unwrap();
    let ops: Vec<&str> = g.node.iter().map(|n| n.op_type.as_str()).collect();
    assert_eq!(ops, ["DequantizeLinear", "MatMul", "Add"]);
    assert_eq!(g.node[2].output, ["y"]);
    assert_eq!(g.node[2].input[1], "c");
    let w = g
        .initializer
        .iter()
        .find(|t| t.name == g.node[0].input[0])
        .unwrap();
    // transB honoured: [k=3, n=2], column maxima 3 and 6.
    assert_eq!(w.dims, vec![3, 2]);
    assert_eq!(w.raw_data, [42u8, (-85i8) as u8, 85, 106, 127, 127]);
    assert!(!g.initializer.iter().any(|t| t.name == "b"));
    let bytes = q.to_bytes();
    assert!(Model::parse(&bytes).unwrap().to_bytes() == bytes);

    // Per-channel DequantizeLinear needs opset 13; per tensor works on 12.
    let e = quantize(&tiny_gemm_model(12), &QuantOptions::default()).unwrap_err();
    assert!(matches!(e, OnnxError::Unsupported { .. }), "{e}");
    assert!(e.to_string().contains("13"), "{e}");
    let per_tensor = QuantOptions {
        per_channel: false,
        ..QuantOptions::default()
    };
    let (q, _) = quantize(&tiny_gemm_model(12), &per_tensor).unwrap();
    let d = &q.graph.as_ref().unwrap().node[0];
    assert_eq!(d.op_type, "DequantizeLinear");
    assert!(d.attr("axis").is_none());

    // Cast + Mul dequantisation needs no axis, so per channel works on opset 12 too.
    let cast_mul = QuantOptions {
        dequantize: Dequantize::CastMul,
        ..QuantOptions::default()
    };
    let (q, _) = quantize(&tiny_gemm_model(12), &cast_mul).unwrap();
    let g = q.graph.as_ref().unwrap();
    let ops: Vec<&str> = g.node.iter().map(|n| n.op_type.as_str()).collect();
    assert_eq!(ops, ["Cast", "Mul", "MatMul", "Add"]);
    let scale = g
        .initializer
        .iter()
        .find(|t| t.name == g.node[1].input[1])
        .unwrap();
    assert_eq!(scale.dims, vec![2]);
    assert_eq!(g.node[1].output[0], g.node[2].input[1]);
}

fn tiny_add_model() -> Model {
    let x = |n: &str| ValueInfo::tensor(n, dtype::FLOAT, &[Ok(2)]);
    let mut g = Graph::default();
    g.node = vec![Node::new("Add", "add", &["a", "b"], &["c"])];
    g.name = "tiny".into();
    g.input = vec![x("a"), x("b")];
    g.output = vec![x("c")];
    let mut m = Model::default();
    m.ir_version = 8;
    m.opset_import = vec![OpsetId::new("", 17)];
    m.graph = Some(g);
    m
}

#[test]
fn tiny_graph_is_not_bert() {
    let m = Model::parse(&tiny_add_model().to_bytes()).unwrap();
    let e = bert_shape(&m).unwrap_err();
    assert!(matches!(e, OnnxError::NotBert { .. }));
    assert!(e.to_string().contains("input_ids"), "{e}");
    // Nothing to quantise, no error.
    let (_, r) = quantize_dynamic(&m, &QuantOptions::default()).unwrap();
    assert!(r.quantized.is_empty());
}

#[test]
fn truncated_and_random_bytes_are_errors() {
    let bytes = tiny_add_model().to_bytes();
    for n in 1..bytes.len() {
        if let Err(e) = Model::parse(&bytes[..n]) {
            assert!(!e.to_string().contains('\n'));
        }
    }
    // A length field far past the end.
    let e = Model::parse(&[0x3a, 0xff, 0xff, 0xff, 0x7f]).unwrap_err();
    assert!(matches!(e, OnnxError::Truncated { .. }), "{e}");
    assert!(e.to_string().contains("ModelProto.graph"), "{e}");
    let mut x = 0x2545_f491_4f6c_dd1du64;
    for len in [1usize, 7, 64, 1000, 10_000] {
        for _ in 0..50 {
            let v: Vec<u8> = (0..len)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    x as u8
                })
                .collect();
            if let Ok(m) = Model::parse(&v) {
                let _ = bert_shape(&m);
                let _ = m.to_bytes();
            }
        }
    }
}

#[test]
fn truncated_real_model_is_an_error() {
    let Some(p) = int8_model() else { return };
    let bytes = std::fs::read(&p).unwrap();
    for cut in [10, 1000, bytes.len() / 2, bytes.len() - 1] {
        assert!(Model::parse(&bytes[..cut]).is_err(), "cut at {cut}");
    }
}
