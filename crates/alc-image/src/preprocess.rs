//! Idefics3 / SmolVLM resizing, tiling, rescaling and normalisation.
//!
//! Sizes follow transformers' `image_processing_idefics3` (PIL backend)
//! <https://github.com/huggingface/transformers/blob/main/src/transformers/models/idefics3/image_processing_pil_idefics3.py>:
//! Python `int()` truncation, `math.ceil` on f64 quotients, the "make the short side
//! even" rule and the 4096-pixel cap are reproduced with the same f64 operations.

use crate::config::ProcessorConfig;
use crate::decode::RgbImage;
use crate::resample::resize_rgb8;
use crate::ImageError;

/// transformers' `MAX_IMAGE_SIZE`: no side exceeds this after the first resize.
pub const MAX_IMAGE_SIZE: u32 = 4096;

/// More tiles than this (rows × cols) is refused (the reference has no cap; reachable
/// only with `do_resize = false` and a huge input, or an unusual config).
const MAX_GRID_TILES: u64 = 256;

/// The sizes one image goes through. Sizes are (width, height).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GridPlan {
    /// After the longest-edge resize (the input size when `do_resize` is off).
    pub resized: (u32, u32),
    /// After the resize to multiples of the tile size (equal to `resized` when not
    /// splitting).
    pub encoder: (u32, u32),
    /// Tile rows; 0 when the image is not split (one tile, the reference's rows = 0).
    pub rows: u32,
    /// Tile columns; 0 when not split.
    pub cols: u32,
    /// Tiles produced: rows × cols + 1 when split, else 1.
    pub n_tiles: usize,
}

fn py_int(x: f64) -> i64 {
    x.trunc() as i64
}

fn ceil_mult(v: i64, m: i64) -> i64 {
    ((v as f64) / (m as f64)).ceil() as i64 * m
}

/// `_resize_output_size_rescale_to_max_len` then `_resize_output_size_scale_below_upper_bound`.
fn longest_edge_size(w: i64, h: i64, max_len: i64) -> (i64, i64) {
    let aspect = w as f64 / h as f64;
    let (mut w2, mut h2) = (w, h);
    if w >= h {
        w2 = max_len;
        h2 = py_int(w2 as f64 / aspect);
        if h2 % 2 != 0 {
            h2 += 1;
        }
    } else if h > w {
        h2 = max_len;
        w2 = py_int(h2 as f64 * aspect);
        if w2 % 2 != 0 {
            w2 += 1;
        }
    }
    let (w, h) = (w2.max(1), h2.max(1));
    let cap = MAX_IMAGE_SIZE as i64;
    let aspect = w as f64 / h as f64;
    let (mut w2, mut h2) = (w, h);
    if w >= h && w > cap {
        w2 = cap;
        h2 = py_int(w2 as f64 / aspect);
    } else if h > w && h > cap {
        h2 = cap;
        w2 = py_int(h2 as f64 * aspect);
    }
    (w2.max(1), h2.max(1))
}

fn encoder_size(w: i64, h: i64, s: i64) -> (i64, i64) {
    let aspect = w as f64 / h as f64;
    if w >= h {
        let w2 = ceil_mult(w, s);
        let h2 = ceil_mult(py_int(w2 as f64 / aspect), s);
        (w2, h2)
    } else {
        let h2 = ceil_mult(h, s);
        let w2 = ceil_mult(py_int(h2 as f64 * aspect), s);
        (w2, h2)
    }
}

/// The sizes and grid for a `width`×`height` input under `cfg`.
pub fn plan(width: u32, height: u32, cfg: &ProcessorConfig) -> Result<GridPlan, ImageError> {
    if width == 0 || height == 0 {
        return Err(ImageError::Empty { width, height });
    }
    let s = cfg.max_image_size as i64;
    if s == 0 || cfg.longest_edge == 0 {
        return Err(ImageError::Config(format!(
            "size.longest_edge ({}) and max_image_size.longest_edge ({}) must be positive",
            cfg.longest_edge, cfg.max_image_size
        )));
    }
    let resized = if cfg.do_resize {
        longest_edge_size(width as i64, height as i64, cfg.longest_edge as i64)
    } else {
        (width as i64, height as i64)
    };
    if !cfg.do_image_splitting {
        return Ok(GridPlan {
            resized: (resized.0 as u32, resized.1 as u32),
            encoder: (resized.0 as u32, resized.1 as u32),
            rows: 0,
            cols: 0,
            n_tiles: 1,
        });
    }
    let enc = encoder_size(resized.0, resized.1, s);
    if enc.0 <= 0 || enc.1 <= 0 || enc.0 > u32::MAX as i64 || enc.1 > u32::MAX as i64 {
        return Err(ImageError::Size(format!(
            "resize for the vision encoder of {}x{} gives {}x{}",
            resized.0, resized.1, enc.0, enc.1
        )));
    }
    let (rows, cols) = if enc.1 > s || enc.0 > s {
        ((enc.1 - s).div_euclid(s) + 1, (enc.0 - s).div_euclid(s) + 1)
    } else {
        (0, 0)
    };
    if rows < 0 || cols < 0 || (rows * cols) as u64 > MAX_GRID_TILES {
        return Err(ImageError::Size(format!(
            "{}x{} at tile size {s} gives a {rows}x{cols} grid; at most {MAX_GRID_TILES} tiles are supported",
            enc.0, enc.1
        )));
    }
    let n_tiles = if rows == 0 && cols == 0 {
        1
    } else {
        (rows * cols) as usize + 1
    };
    Ok(GridPlan {
        resized: (resized.0 as u32, resized.1 as u32),
        encoder: (enc.0 as u32, enc.1 as u32),
        rows: rows as u32,
        cols: cols as u32,
        n_tiles,
    })
}

/// The model input of one image: `n_tiles` channel-first `3 × tile_height × tile_width`
/// f32 tiles, row-major grid tiles first, the global view last.
#[derive(Debug, Clone, PartialEq)]
pub struct Preprocessed {
    /// Grid rows (0 when not split).
    pub rows: u32,
    /// Grid columns (0 when not split).
    pub cols: u32,
    /// Number of tiles.
    pub n_tiles: usize,
    /// Tile height (the tile size, except an unsplit image smaller than it).
    pub tile_height: u32,
    /// Tile width.
    pub tile_width: u32,
    /// The tiles before rescale/normalise: each `tile_height × tile_width` interleaved RGB8.
    pub tiles_u8: Vec<Vec<u8>>,
    /// `n_tiles × 3 × tile_height × tile_width` values.
    pub pixel_values: Vec<f32>,
}

impl Preprocessed {
    /// Tile `i` as `3 × tile_height × tile_width` values.
    pub fn tile(&self, i: usize) -> Option<&[f32]> {
        let n = 3 * self.tile_height as usize * self.tile_width as usize;
        self.pixel_values.get(i * n..(i + 1) * n)
    }
}

fn resize(
    img: &[u8],
    from: (u32, u32),
    to: (u32, u32),
    cfg: &ProcessorConfig,
) -> Result<Vec<u8>, ImageError> {
    resize_rgb8(
        img,
        from.0 as usize,
        from.1 as usize,
        to.0 as usize,
        to.1 as usize,
        cfg.resample,
    )
}

/// Resizes and splits `img` as `Idefics3ImageProcessor` does, then rescales and
/// normalises to channel-first f32.
pub fn preprocess(img: &RgbImage, cfg: &ProcessorConfig) -> Result<Preprocessed, ImageError> {
    let p = plan(img.width, img.height, cfg)?;
    let size = (img.width, img.height);
    let s = cfg.max_image_size;
    let resized = resize(&img.data, size, p.resized, cfg)?;
    let (tiles, tw, th) = if !cfg.do_image_splitting {
        (vec![resize(&resized, p.resized, (s, s), cfg)?], s, s)
    } else {
        let enc = resize(&resized, p.resized, p.encoder, cfg)?;
        if p.rows == 0 {
            (vec![enc], p.encoder.0, p.encoder.1)
        } else {
            let stride = p.encoder.0 as usize * 3;
            let s_ = s as usize;
            let mut tiles = Vec::with_capacity(p.n_tiles);
            for r in 0..p.rows as usize {
                for c in 0..p.cols as usize {
                    let mut t = Vec::with_capacity(s_ * s_ * 3);
                    for y in r * s_..(r + 1) * s_ {
                        let o = y * stride + c * s_ * 3;
                        t.extend_from_slice(&enc[o..o + s_ * 3]);
                    }
                    tiles.push(t);
                }
            }
            tiles.push(resize(&enc, p.encoder, (s, s), cfg)?);
            (tiles, s, s)
        }
    };
    let plane = tw as usize * th as usize;
    let mut pixel_values = vec![0f32; tiles.len() * 3 * plane];
    // Per channel, as numpy does it: rescale in f64 then cast to f32, normalise in f32.
    let mut lut = [[0f32; 256]; 3];
    for (ch, l) in lut.iter_mut().enumerate() {
        for (v, o) in l.iter_mut().enumerate() {
            let mut x = v as f32;
            if cfg.do_rescale {
                x = (v as f64 * cfg.rescale_factor) as f32;
            }
            if cfg.do_normalize {
                x = (x - cfg.image_mean[ch] as f32) / cfg.image_std[ch] as f32;
            }
            *o = x;
        }
    }
    for (t, tile) in tiles.iter().enumerate() {
        let out = &mut pixel_values[t * 3 * plane..(t + 1) * 3 * plane];
        for (i, px) in tile.chunks_exact(3).enumerate() {
            for ch in 0..3 {
                out[ch * plane + i] = lut[ch][px[ch] as usize];
            }
        }
    }
    Ok(Preprocessed {
        rows: p.rows,
        cols: p.cols,
        n_tiles: tiles.len(),
        tile_height: th,
        tile_width: tw,
        tiles_u8: tiles,
        pixel_values,
    })
}
