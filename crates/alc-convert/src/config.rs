//! `config.json` of a Hugging Face checkpoint: typed reads with errors that name the
//! key, and the hyperparameters the converter needs, whatever transformers version
//! wrote the file (rope settings moved into `rope_parameters` in transformers 5).

use crate::ConvertError;
use serde_json::Value as Json;
use std::path::{Path, PathBuf};

/// A parsed `config.json` (for multimodal checkpoints: its `text_config`, with the
/// top level kept for `architectures`).
#[derive(Clone, Debug)]
pub struct HfConfig {
    pub path: PathBuf,
    pub architecture: String,
    text: Json,
    top: Json,
}

impl HfConfig {
    /// Read `dir/config.json`.
    pub fn read(dir: &Path) -> Result<HfConfig, ConvertError> {
        let path = dir.join("config.json");
        let bytes = std::fs::read(&path).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => ConvertError::MissingFile {
                path: path.clone(),
                what: "the model configuration",
            },
            _ => ConvertError::Io {
                path: path.clone(),
                source: e,
            },
        })?;
        let top: Json = serde_json::from_slice(&bytes).map_err(|e| ConvertError::Json {
            path: path.clone(),
            why: e.to_string(),
        })?;
        if !top.is_object() {
            return Err(ConvertError::Json {
                path,
                why: "the top level is not a JSON object".into(),
            });
        }
        let architecture = top
            .get("architectures")
            .and_then(|a| a.as_array())
            .and_then(|a| a.first())
            .and_then(|a| a.as_str())
            .ok_or_else(|| ConvertError::Config {
                path: path.clone(),
                key: "architectures".into(),
                why: "missing or not a list of strings".into(),
            })?
            .to_string();
        let text = match top.get("text_config") {
            Some(t) if t.is_object() => t.clone(),
            _ => top.clone(),
        };
        Ok(HfConfig {
            path,
            architecture,
            text,
            top,
        })
    }

    fn err(&self, key: &str, why: impl Into<String>) -> ConvertError {
        ConvertError::Config {
            path: self.path.clone(),
            key: key.into(),
            why: why.into(),
        }
    }

    /// A value from the text config, else the top level.
    pub fn raw(&self, key: &str) -> Option<&Json> {
        self.text
            .get(key)
            .or_else(|| self.top.get(key))
            .filter(|v| !v.is_null())
    }

    pub fn opt_u64(&self, key: &str) -> Result<Option<u64>, ConvertError> {
        match self.raw(key) {
            None => Ok(None),
            Some(v) => v
                .as_u64()
                .map(Some)
                .ok_or_else(|| self.err(key, format!("{v} is not a non-negative integer"))),
        }
    }

    /// A positive integer that must be present.
    pub fn req_pos(&self, key: &str) -> Result<usize, ConvertError> {
        match self.opt_u64(key)? {
            Some(0) => Err(self.err(key, "must be positive")),
            Some(v) if v > u32::MAX as u64 => Err(self.err(key, format!("{v} is absurdly large"))),
            Some(v) => Ok(v as usize),
            None => Err(self.err(key, "missing")),
        }
    }

    pub fn opt_f64(&self, key: &str) -> Result<Option<f64>, ConvertError> {
        match self.raw(key) {
            None => Ok(None),
            Some(v) => v
                .as_f64()
                .filter(|x| x.is_finite())
                .map(Some)
                .ok_or_else(|| self.err(key, format!("{v} is not a finite number"))),
        }
    }

    pub fn opt_bool(&self, key: &str) -> Result<Option<bool>, ConvertError> {
        match self.raw(key) {
            None => Ok(None),
            Some(v) => v
                .as_bool()
                .map(Some)
                .ok_or_else(|| self.err(key, format!("{v} is not true or false"))),
        }
    }

    pub fn opt_str(&self, key: &str) -> Result<Option<&str>, ConvertError> {
        match self.raw(key) {
            None => Ok(None),
            Some(v) => v
                .as_str()
                .map(Some)
                .ok_or_else(|| self.err(key, format!("{v} is not a string"))),
        }
    }

    /// The rope base of full-attention layers: `rope_theta`, or transformers 5's
    /// `rope_parameters.rope_theta` (per layer type for gemma3).
    pub fn rope_theta(&self, default: f64) -> Result<f64, ConvertError> {
        if let Some(v) = self.opt_f64("rope_theta")? {
            return Ok(v);
        }
        Ok(self
            .rope_param("full_attention", "rope_theta")
            .unwrap_or(default))
    }

    /// The rope base of sliding-window layers (gemma3's `rope_local_base_freq`).
    pub fn rope_theta_local(&self, default: f64) -> Result<f64, ConvertError> {
        if let Some(v) = self.opt_f64("rope_local_base_freq")? {
            return Ok(v);
        }
        Ok(self
            .rope_param("sliding_attention", "rope_theta")
            .unwrap_or(default))
    }

    /// `rope_parameters[key]`, or `rope_parameters[layer_type][key]`.
    fn rope_param(&self, layer_type: &str, key: &str) -> Option<f64> {
        let p = self.raw("rope_parameters")?;
        p.get(key)
            .or_else(|| p.get(layer_type).and_then(|q| q.get(key)))
            .and_then(|v| v.as_f64())
    }

    /// Rope scaling as (type, factor); `None` for no scaling ("default" counts as
    /// none). Only linear scaling is executed by the engine.
    pub fn rope_scaling(&self) -> Result<Option<(String, f64)>, ConvertError> {
        let candidates = [
            self.raw("rope_scaling"),
            self.raw("rope_parameters"),
            self.raw("rope_parameters")
                .and_then(|p| p.get("full_attention")),
        ];
        for (i, s) in candidates.into_iter().enumerate() {
            let Some(s) = s.filter(|s| s.is_object()) else {
                continue;
            };
            let ty = s
                .get("rope_type")
                .or_else(|| s.get("type"))
                .and_then(|v| v.as_str());
            let key = if i == 0 {
                "rope_scaling"
            } else {
                "rope_parameters"
            };
            match ty {
                None | Some("default") => continue,
                Some("linear") => {
                    let f = s.get("factor").and_then(|v| v.as_f64()).ok_or_else(|| {
                        self.err(key, "linear rope scaling without a numeric factor")
                    })?;
                    if !(f.is_finite() && f > 0.0) {
                        return Err(self.err(key, format!("factor {f} must be positive")));
                    }
                    return Ok(Some(("linear".into(), f)));
                }
                Some(other) => {
                    return Err(self.err(
                        key,
                        format!(
                            "rope type '{other}' is not supported (supported: default, linear)"
                        ),
                    ))
                }
            }
        }
        Ok(None)
    }

    /// Per-layer "sliding_attention" / "full_attention" flags (`layer_types`), if the
    /// config lists them.
    pub fn layer_types(&self, n_layer: usize) -> Result<Option<Vec<bool>>, ConvertError> {
        let Some(v) = self.raw("layer_types") else {
            return Ok(None);
        };
        let arr = v
            .as_array()
            .ok_or_else(|| self.err("layer_types", "not a list"))?;
        if arr.len() != n_layer {
            return Err(self.err(
                "layer_types",
                format!("{} entries for {n_layer} layers", arr.len()),
            ));
        }
        arr.iter()
            .map(|t| match t.as_str() {
                Some("sliding_attention") => Ok(true),
                Some("full_attention") => Ok(false),
                _ => Err(self.err(
                    "layer_types",
                    format!("entry {t} is not \"sliding_attention\" or \"full_attention\""),
                )),
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Some)
    }
}
