//! Recognising a BERT-style sentence encoder graph ([`bert_shape`]).

use crate::proto::{dtype, DimValue, Graph, Model, Tensor, ValueInfo};
use crate::OnnxError;
use std::collections::{HashMap, HashSet};

/// What [`bert_shape`] found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BertShape {
    pub input_ids: String,
    pub attention_mask: String,
    pub token_type_ids: Option<String>,
    /// The `[batch, sequence, hidden]` output (`last_hidden_state` when present).
    pub output: String,
    pub hidden: usize,
    /// Rows of the position-embedding table, when one is found.
    pub max_positions: Option<usize>,
}

fn not_bert(what: impl Into<String>) -> OnnxError {
    OnnxError::NotBert { what: what.into() }
}

fn names(v: &[ValueInfo]) -> String {
    let n: Vec<&str> = v.iter().map(|v| v.name.as_str()).collect();
    if n.is_empty() {
        "none".into()
    } else {
        n.join(", ")
    }
}

/// The graph inputs that are not initializers (IR ≥ 4 lists only real inputs; older
/// exporters list the weights too).
fn real_inputs(g: &Graph) -> Vec<&ValueInfo> {
    let inits: HashSet<&str> = g.initializer.iter().map(|t| t.name.as_str()).collect();
    g.input
        .iter()
        .filter(|v| !inits.contains(v.name.as_str()))
        .collect()
}

fn int64_input(g: &Graph, name: &str, required: bool) -> Result<Option<String>, OnnxError> {
    let inputs = real_inputs(g);
    let Some(v) = inputs.iter().find(|v| v.name == name) else {
        if required {
            return Err(not_bert(format!(
                "no graph input named '{name}' (inputs: {}); export the encoder with input_ids and attention_mask inputs",
                names(&g.input)
            )));
        }
        return Ok(None);
    };
    match v.elem_type() {
        Some(dtype::INT64) => {}
        Some(t) => {
            return Err(not_bert(format!(
                "input '{name}' is {}, expected int64",
                dtype::name(t)
            )))
        }
        None => return Err(not_bert(format!("input '{name}' is not a typed tensor"))),
    }
    if let Some(d) = v.dims() {
        if d.len() != 2 {
            return Err(not_bert(format!(
                "input '{name}' has rank {}, expected 2 [batch, sequence]",
                d.len()
            )));
        }
    }
    Ok(Some(name.to_string()))
}

/// Check that `model` is a BERT-style encoder and describe its interface: int64 inputs
/// `input_ids` and `attention_mask` (optional `token_type_ids`), a float output of rank 3
/// `[batch, sequence, hidden]`. The hidden size comes from the output shape, else from
/// the embedding table gathered by `input_ids`, else from the largest 2-D MatMul weight.
pub fn bert_shape(model: &Model) -> Result<BertShape, OnnxError> {
    let g = model
        .graph
        .as_ref()
        .ok_or_else(|| not_bert("the model has no graph"))?;
    let input_ids = int64_input(g, "input_ids", true)?.unwrap_or_default();
    let attention_mask = int64_input(g, "attention_mask", true)?.unwrap_or_default();
    let token_type_ids = int64_input(g, "token_type_ids", false)?;

    let rank3: Vec<&ValueInfo> = g
        .output
        .iter()
        .filter(|o| o.elem_type() == Some(dtype::FLOAT) && o.dims().is_some_and(|d| d.len() == 3))
        .collect();
    let out = rank3
        .iter()
        .find(|o| o.name == "last_hidden_state")
        .or_else(|| rank3.first())
        .ok_or_else(|| {
            not_bert(format!(
                "no float output of rank 3 [batch, sequence, hidden] (outputs: {}); export the token embeddings (last_hidden_state), not a pooled output",
                names(&g.output)
            ))
        })?;

    let inits: HashMap<&str, &Tensor> =
        g.initializer.iter().map(|t| (t.name.as_str(), t)).collect();
    let init2 = |name: &str| inits.get(name).filter(|t| t.dims.len() == 2).copied();

    let from_output = out.dims().and_then(|d| match d[2].value {
        DimValue::Value(v) if v > 0 => Some(v as usize),
        _ => None,
    });
    let from_embedding = || {
        g.node
            .iter()
            .filter(|n| n.op_type == "Gather" && n.input.get(1) == Some(&input_ids))
            .find_map(|n| n.input.first().and_then(|d| init2(d)))
            .and_then(|t| usize::try_from(t.dims[1]).ok())
    };
    let from_matmul = || {
        g.node
            .iter()
            .filter(|n| matches!(n.op_type.as_str(), "MatMul" | "MatMulInteger" | "Gemm"))
            .filter_map(|n| n.input.get(1).and_then(|w| init2(w)))
            .max_by_key(|t| t.element_count().unwrap_or(0))
            .and_then(|t| usize::try_from(t.dims[0].min(t.dims[1])).ok())
    };
    let hidden = from_output
        .or_else(from_embedding)
        .or_else(from_matmul)
        .filter(|&h| h > 0)
        .ok_or_else(|| {
            not_bert(format!(
                "cannot tell the hidden size: output '{}' has no fixed last dimension and no embedding or MatMul weight was found",
                out.name
            ))
        })?;

    let max_positions = g
        .initializer
        .iter()
        .filter(|t| t.dims.len() == 2 && t.name.contains("position_embeddings"))
        .find_map(|t| usize::try_from(t.dims[0]).ok())
        .or_else(|| {
            // A Gather of a [P, hidden] table by something that is not a graph input
            // (positions from Range or a constant), with more than a handful of rows
            // (token-type tables have 2).
            let input_names: HashSet<&str> = g.input.iter().map(|v| v.name.as_str()).collect();
            g.node
                .iter()
                .filter(|n| n.op_type == "Gather")
                .filter(|n| {
                    n.input
                        .get(1)
                        .is_some_and(|i| !input_names.contains(i.as_str()))
                })
                .filter_map(|n| n.input.first().and_then(|d| init2(d)))
                .filter(|t| t.dims[1] as usize == hidden && t.dims[0] > 16)
                .find_map(|t| usize::try_from(t.dims[0]).ok())
        });

    Ok(BertShape {
        input_ids,
        attention_mask,
        token_type_ids,
        output: out.name.clone(),
        hidden,
        max_positions,
    })
}
