//! `config.json` of a Hugging Face checkpoint: typed reads with errors that name the
//! key, and the hyperparameters the converter needs, whatever transformers version
//! wrote the file (rope settings moved into `rope_parameters` in transformers 5).

use crate::ConvertError;
use serde_json::Value as Json;
use std::path::{Path, PathBuf};

/// Largest values accepted for integer keys, so that no size the compiler derives
/// from config.json alone (tensor shapes and their products, per-layer lists,
/// vocabulary arrays) can overflow or ask for an absurd allocation before the
/// checkpoint's tensors are compared with it. The model dimensions are the engine's
/// own limits (`alc-models` refuses a package beyond them); `vocab_size` keeps the
/// package's tokens and token types (two arrays of `vocab_size` elements) well under
/// the GGUF reader's 2^24 array elements, 16 times the largest real vocabulary.
/// Other integer keys must fit the u32 the package stores them as.
pub const LIMITS: &[(&str, u64)] = &[
    ("num_hidden_layers", 1024),
    ("hidden_size", 1 << 16),
    ("intermediate_size", 1 << 18),
    ("num_attention_heads", 1024),
    ("num_key_value_heads", 1024),
    ("head_dim", 1024),
    ("vocab_size", 1 << 22),
];

/// The largest value accepted for integer key `key` (see [`LIMITS`]).
pub fn limit(key: &str) -> u64 {
    LIMITS
        .iter()
        .find(|(k, _)| *k == key)
        .map_or(u64::from(u32::MAX), |&(_, max)| max)
}

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
        Self::from_json(path, &bytes)
    }

    /// Parse the text of a config.json held in memory; `path` labels errors (and is
    /// [`HfConfig::path`]). [`read`](Self::read) is this after reading the file.
    pub fn from_json(path: impl Into<PathBuf>, bytes: &[u8]) -> Result<HfConfig, ConvertError> {
        let path = path.into();
        let top: Json = serde_json::from_slice(bytes).map_err(|e| ConvertError::Json {
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

    /// The whole config.json (for multimodal checkpoints, the top level around
    /// `text_config`).
    pub fn top(&self) -> &Json {
        &self.top
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

    /// A non-negative integer, at most [`limit`]`(key)`.
    pub fn opt_u64(&self, key: &str) -> Result<Option<u64>, ConvertError> {
        let Some(v) = self.raw(key) else {
            return Ok(None);
        };
        let x = v
            .as_u64()
            .ok_or_else(|| self.err(key, format!("{v} is not a non-negative integer")))?;
        let max = limit(key);
        if x > max {
            return Err(self.err(
                key,
                format!("{x} is above {max}, the largest value alc supports; check config.json"),
            ));
        }
        Ok(Some(x))
    }

    /// A positive integer that must be present (at most [`limit`]`(key)`).
    pub fn req_pos(&self, key: &str) -> Result<usize, ConvertError> {
        match self.opt_u64(key)? {
            Some(0) => Err(self.err(key, "must be positive")),
            Some(v) => usize::try_from(v).map_err(|_| self.err(key, format!("{v} is too large"))),
            None => Err(self.err(key, "missing")),
        }
    }

    /// A finite number that an f32 holds without overflow or underflow (0, or a
    /// magnitude in 2^-126..=f32::MAX): the package stores these values as f32.
    pub fn opt_f64(&self, key: &str) -> Result<Option<f64>, ConvertError> {
        match self.raw(key) {
            None => Ok(None),
            Some(v) => v
                .as_f64()
                .filter(|&x| fits_f32(x))
                .map(Some)
                .ok_or_else(|| self.err(key, not_f32(v))),
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
    /// `rope_parameters.rope_theta` (per layer type for gemma3). Must be positive.
    pub fn rope_theta(&self, default: f64) -> Result<f64, ConvertError> {
        self.rope_base("rope_theta", "full_attention", default)
    }

    /// The rope base of sliding-window layers (gemma3's `rope_local_base_freq`).
    pub fn rope_theta_local(&self, default: f64) -> Result<f64, ConvertError> {
        self.rope_base("rope_local_base_freq", "sliding_attention", default)
    }

    /// `key`, else `rope_parameters.rope_theta` (or `[layer_type].rope_theta`), else
    /// `default`; an error unless positive.
    fn rope_base(&self, key: &str, layer_type: &str, default: f64) -> Result<f64, ConvertError> {
        let (v, key) = match self.opt_f64(key)? {
            Some(v) => (v, key),
            None => match self.rope_param(layer_type, "rope_theta")? {
                Some(v) => (v, "rope_parameters"),
                None => (default, key),
            },
        };
        if v <= 0.0 {
            return Err(self.err(key, format!("rope base {v} must be positive")));
        }
        Ok(v)
    }

    /// `rope_parameters[key]`, or `rope_parameters[layer_type][key]`; an error if
    /// present but not a number an f32 holds.
    fn rope_param(&self, layer_type: &str, key: &str) -> Result<Option<f64>, ConvertError> {
        let Some(p) = self.raw("rope_parameters") else {
            return Ok(None);
        };
        let Some(v) = p
            .get(key)
            .or_else(|| p.get(layer_type).and_then(|q| q.get(key)))
            .filter(|v| !v.is_null())
        else {
            return Ok(None);
        };
        v.as_f64()
            .filter(|&x| fits_f32(x))
            .map(Some)
            .ok_or_else(|| self.err("rope_parameters", format!("{key}: {}", not_f32(v))))
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
                    if !(fits_f32(f) && f > 0.0) {
                        return Err(
                            self.err(key, format!("factor {f} must be positive and fit an f32"))
                        );
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

/// Whether `x` is 0 or a finite number whose magnitude an f32 holds as a normal
/// number (2^-126 ..= f32::MAX), so that storing it as f32 neither overflows to
/// infinity nor flushes to 0 (and 1/x, 1/sqrt(x) stay finite in f32).
pub fn fits_f32(x: f64) -> bool {
    x == 0.0 || (x.abs() >= f64::from(f32::MIN_POSITIVE) && x.abs() <= f64::from(f32::MAX))
}

fn not_f32(v: &Json) -> String {
    format!(
        "{v} is not a number the package can store as f32 (0, or a magnitude between {:e} and {:e})",
        f32::MIN_POSITIVE,
        f32::MAX
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::arch::{map_tensor, Hp};

    const LLAMA: &str = r#"{"architectures": ["LlamaForCausalLM"], "num_hidden_layers": 2,
        "hidden_size": 64, "intermediate_size": 128, "num_attention_heads": 4,
        "num_key_value_heads": 2, "vocab_size": 384, "max_position_embeddings": 256,
        "rms_norm_eps": 1e-6, "rope_theta": 10000.0, "hidden_act": "silu"}"#;

    fn with(base: &str, key: &str, value: serde_json::Value) -> HfConfig {
        let mut j: Json = serde_json::from_str(base).unwrap();
        j[key] = value;
        HfConfig::from_json("config.json", j.to_string().as_bytes()).unwrap()
    }

    fn hp_err(cfg: &HfConfig) -> String {
        match Hp::read(cfg) {
            Ok(hp) => panic!("accepted {hp:?}"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn from_json_is_what_read_reads() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("config.json"), LLAMA).unwrap();
        let a = HfConfig::read(dir.path()).unwrap();
        let b = HfConfig::from_json(dir.path().join("config.json"), LLAMA.as_bytes()).unwrap();
        assert_eq!((&a.path, &a.architecture), (&b.path, &b.architecture));
        assert_eq!(Hp::read(&a).unwrap().n_embd, Hp::read(&b).unwrap().n_embd);
        let e = HfConfig::from_json("config.json", b"[1]").unwrap_err();
        assert!(e.to_string().contains("not a JSON object"), "{e}");
    }

    /// Sizes past the limits used to be accepted up to u32::MAX, where the tensor plan
    /// overflowed (`nq + 2 * nkv` for phi3's fused qkv, the element counts) and a
    /// gemma config with 2^32 − 1 layers allocated a 4 GB per-layer list before any
    /// weight was read.
    #[test]
    fn absurd_sizes_are_errors_naming_key_and_limit() {
        for &(key, max) in LIMITS {
            let cfg = with(LLAMA, key, (max + 1).into());
            let e = hp_err(&cfg);
            assert!(
                e.contains(key)
                    && e.contains(&format!("{}", max + 1))
                    && e.contains(&max.to_string()),
                "{e}"
            );
            // The limit itself is accepted.
            assert_eq!(
                with(LLAMA, key, max.into()).opt_u64(key).unwrap(),
                Some(max)
            );
        }
        let e = hp_err(&with(LLAMA, "hidden_size", (1u64 << 60).into()));
        assert!(
            e.contains("'hidden_size': 1152921504606846976 is above 65536"),
            "{e}"
        );
        let e = hp_err(&with(LLAMA, "max_position_embeddings", (1u64 << 32).into()));
        assert!(e.contains("above 4294967295"), "{e}");

        // The old overflow: phi3 with 2^32 - 1 heads of 2^32 - 2 dims.
        let mut j: Json = serde_json::from_str(LLAMA).unwrap();
        j["architectures"] = serde_json::json!(["Phi3ForCausalLM"]);
        j["num_attention_heads"] = u64::from(u32::MAX).into();
        j["num_key_value_heads"] = u64::from(u32::MAX).into();
        j["head_dim"] = (u64::from(u32::MAX) - 1).into();
        let cfg = HfConfig::from_json("config.json", j.to_string().as_bytes()).unwrap();
        assert!(hp_err(&cfg).contains("num_attention_heads"));

        // A gemma config with the most layers: its per-layer list stays small and the
        // plan's products fit.
        let mut j: Json = serde_json::from_str(LLAMA).unwrap();
        for (k, v) in [
            ("architectures", serde_json::json!(["Gemma2ForCausalLM"])),
            ("hidden_activation", "gelu_pytorch_tanh".into()),
            ("sliding_window", 4096.into()),
            ("num_hidden_layers", 1024.into()),
            ("num_attention_heads", 1024.into()),
            ("num_key_value_heads", 1024.into()),
            ("head_dim", 1024.into()),
            ("hidden_size", 65536.into()),
            ("intermediate_size", (1 << 18).into()),
            ("vocab_size", (1 << 22).into()),
        ] {
            j[k] = v;
        }
        let cfg = HfConfig::from_json("config.json", j.to_string().as_bytes()).unwrap();
        let hp = Hp::read(&cfg).unwrap();
        assert_eq!(hp.swa_layers.as_ref().map(Vec::len), Some(1024));
        let p = map_tensor(&hp, "model.layers.1023.self_attn.q_proj.weight")
            .unwrap()
            .unwrap();
        assert_eq!(p[0].n_elements(), 1 << 36);
    }

    #[test]
    fn numbers_stored_as_f32_must_fit_one() {
        for (key, v) in [
            ("rope_theta", serde_json::json!(1e39)),
            ("rms_norm_eps", serde_json::json!(1e-300)),
            ("query_pre_attn_scalar", serde_json::json!(-1e300)),
        ] {
            let e = with(LLAMA, key, v.clone())
                .opt_f64(key)
                .unwrap_err()
                .to_string();
            assert!(e.contains(key) && e.contains("f32"), "{e}");
        }
        assert_eq!(
            with(LLAMA, "rms_norm_eps", 0.into())
                .opt_f64("rms_norm_eps")
                .unwrap(),
            Some(0.0)
        );
        let e = with(LLAMA, "rope_theta", (-5.0).into())
            .rope_theta(1.0)
            .unwrap_err();
        assert!(
            e.to_string().contains("rope base -5 must be positive"),
            "{e}"
        );
        let mut j: Json = serde_json::from_str(LLAMA).unwrap();
        j.as_object_mut().unwrap().remove("rope_theta");
        j["rope_parameters"] = serde_json::json!({"rope_type": "default", "rope_theta": "1e4"});
        let cfg = HfConfig::from_json("config.json", j.to_string().as_bytes()).unwrap();
        let e = cfg.rope_theta(1.0).unwrap_err().to_string();
        assert!(
            e.contains("'rope_parameters': rope_theta: \"1e4\" is not a number"),
            "{e}"
        );
        j["rope_parameters"] = serde_json::json!({"full_attention": {"rope_theta": 5e5}});
        let cfg = HfConfig::from_json("config.json", j.to_string().as_bytes()).unwrap();
        assert_eq!(cfg.rope_theta(1.0).unwrap(), 5e5);
        let e = with(
            LLAMA,
            "rope_scaling",
            serde_json::json!({"type": "linear", "factor": 1e40}),
        )
        .rope_scaling()
        .unwrap_err();
        assert!(e.to_string().contains("fit an f32"), "{e}");
    }
}
