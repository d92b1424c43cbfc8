//! `preprocessor_config.json` / `processor_config.json` of Idefics3 and SmolVLM.

use crate::ImageError;
use serde_json::Value;

/// PIL resampling filter ids (`PIL.Image.Resampling`), as stored in `resample`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resample {
    /// 0
    Nearest,
    /// 1 (SmolVLM / Idefics3 default)
    Lanczos,
    /// 2
    Bilinear,
    /// 3
    Bicubic,
    /// 4
    Box,
    /// 5
    Hamming,
}

impl Resample {
    /// From PIL's integer id.
    pub fn from_pil(id: i64) -> Result<Self, ImageError> {
        Ok(match id {
            0 => Self::Nearest,
            1 => Self::Lanczos,
            2 => Self::Bilinear,
            3 => Self::Bicubic,
            4 => Self::Box,
            5 => Self::Hamming,
            _ => {
                return Err(ImageError::Config(format!(
                    "unknown resample {id}; possible: 0 nearest, 1 lanczos, 2 bilinear, 3 bicubic, 4 box, 5 hamming"
                )))
            }
        })
    }
}

/// The image-processor settings of an Idefics3 / SmolVLM checkpoint. Missing keys take
/// the defaults of transformers' `Idefics3ImageProcessor` (`Default`), except
/// `image_seq_len`, whose default is SmolVLM's 64 (transformers' class default is 169,
/// Idefics3-8B's).
#[derive(Debug, Clone, PartialEq)]
pub struct ProcessorConfig {
    /// Resize the longest edge to `longest_edge` first.
    pub do_resize: bool,
    /// `size.longest_edge` (SmolVLM-256M: 2048).
    pub longest_edge: u32,
    /// `max_image_size.longest_edge`: the tile size (SmolVLM-256M: 512).
    pub max_image_size: u32,
    /// `resample`.
    pub resample: Resample,
    /// Multiply by `rescale_factor`.
    pub do_rescale: bool,
    /// Usually 1/255.
    pub rescale_factor: f64,
    /// Subtract `image_mean`, divide by `image_std`.
    pub do_normalize: bool,
    /// Per channel.
    pub image_mean: [f64; 3],
    /// Per channel.
    pub image_std: [f64; 3],
    /// Split into a grid of tiles plus a global view.
    pub do_image_splitting: bool,
    /// Always true in practice; images are converted to RGB at decode.
    pub do_convert_rgb: bool,
    /// `<image>` tokens per tile (processor_config.json).
    pub image_seq_len: usize,
}

impl Default for ProcessorConfig {
    fn default() -> Self {
        Self {
            do_resize: true,
            longest_edge: 4 * 364,
            max_image_size: 364,
            resample: Resample::Lanczos,
            do_rescale: true,
            rescale_factor: 1.0 / 255.0,
            do_normalize: true,
            image_mean: [0.5; 3],
            image_std: [0.5; 3],
            do_image_splitting: true,
            do_convert_rgb: true,
            image_seq_len: 64,
        }
    }
}

impl ProcessorConfig {
    /// SmolVLM-256M/500M-Instruct's values.
    pub fn smolvlm() -> Self {
        Self {
            longest_edge: 2048,
            max_image_size: 512,
            ..Self::default()
        }
    }

    /// Parses `preprocessor_config.json` text and, if given, `processor_config.json`
    /// text (for `image_seq_len`; a key `image_seq_len` in the first file is used too).
    pub fn from_json(preprocessor: &str, processor: Option<&str>) -> Result<Self, ImageError> {
        let v: Value = serde_json::from_str(preprocessor)
            .map_err(|e| ImageError::Config(format!("preprocessor_config.json: {e}")))?;
        let obj = v.as_object().ok_or_else(|| {
            ImageError::Config("preprocessor_config.json is not a JSON object".into())
        })?;
        let mut c = Self::default();
        let b = |k: &str, d: bool| -> Result<bool, ImageError> {
            match obj.get(k) {
                None | Some(Value::Null) => Ok(d),
                Some(Value::Bool(x)) => Ok(*x),
                Some(o) => Err(ImageError::Config(format!(
                    "{k} must be a boolean, got {o}"
                ))),
            }
        };
        c.do_resize = b("do_resize", c.do_resize)?;
        c.do_rescale = b("do_rescale", c.do_rescale)?;
        c.do_normalize = b("do_normalize", c.do_normalize)?;
        c.do_image_splitting = b("do_image_splitting", c.do_image_splitting)?;
        c.do_convert_rgb = b("do_convert_rgb", c.do_convert_rgb)?;
        if let Some(s) = obj.get("size").filter(|s| !s.is_null()) {
            c.longest_edge = edge(s, "size")?;
        }
        if let Some(s) = obj.get("max_image_size").filter(|s| !s.is_null()) {
            c.max_image_size = edge(s, "max_image_size")?;
        }
        if let Some(r) = obj.get("resample").filter(|s| !s.is_null()) {
            let id = r.as_i64().ok_or_else(|| {
                ImageError::Config(format!("resample must be an integer, got {r}"))
            })?;
            c.resample = Resample::from_pil(id)?;
        }
        if let Some(r) = obj.get("rescale_factor").filter(|s| !s.is_null()) {
            c.rescale_factor = r.as_f64().filter(|x| x.is_finite()).ok_or_else(|| {
                ImageError::Config(format!("rescale_factor must be a number, got {r}"))
            })?;
        }
        if let Some(m) = obj.get("image_mean").filter(|s| !s.is_null()) {
            c.image_mean = triple(m, "image_mean")?;
        }
        if let Some(s) = obj.get("image_std").filter(|s| !s.is_null()) {
            c.image_std = triple(s, "image_std")?;
            if c.image_std.contains(&0.0) {
                return Err(ImageError::Config(format!(
                    "image_std has a zero: {:?}",
                    c.image_std
                )));
            }
        }
        let mut seq = obj.get("image_seq_len").cloned();
        if let Some(p) = processor {
            let pv: Value = serde_json::from_str(p)
                .map_err(|e| ImageError::Config(format!("processor_config.json: {e}")))?;
            if let Some(x) = pv.get("image_seq_len") {
                seq = Some(x.clone());
            }
        }
        if let Some(s) = seq.filter(|s| !s.is_null()) {
            c.image_seq_len = s
                .as_u64()
                .filter(|&x| (1..=1 << 20).contains(&x))
                .ok_or_else(|| {
                    ImageError::Config(format!(
                        "image_seq_len must be an integer in 1..=1048576, got {s}"
                    ))
                })? as usize;
        }
        Ok(c)
    }
}

fn edge(v: &Value, key: &str) -> Result<u32, ImageError> {
    let e = v.get("longest_edge").ok_or_else(|| {
        ImageError::Config(format!(
            "{key} must have \"longest_edge\" (height/width sizes are not supported), got {v}"
        ))
    })?;
    e.as_u64()
        .filter(|&x| (1..=crate::MAX_IMAGE_SIZE as u64).contains(&x))
        .map(|x| x as u32)
        .ok_or_else(|| {
            ImageError::Config(format!(
                "{key}.longest_edge must be an integer in 1..={}, got {e}",
                crate::MAX_IMAGE_SIZE
            ))
        })
}

fn triple(v: &Value, key: &str) -> Result<[f64; 3], ImageError> {
    let bad = || {
        ImageError::Config(format!(
            "{key} must be a number or a list of 3 numbers, got {v}"
        ))
    };
    if let Some(x) = v.as_f64() {
        return Ok([x; 3]);
    }
    let a = v.as_array().filter(|a| a.len() == 3).ok_or_else(bad)?;
    let mut out = [0.0; 3];
    for (o, x) in out.iter_mut().zip(a) {
        *o = x.as_f64().filter(|x| x.is_finite()).ok_or_else(bad)?;
    }
    Ok(out)
}
