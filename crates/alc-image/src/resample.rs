//! PIL-equivalent resizing of interleaved RGB8 images.
//!
//! A port of the arithmetic of Pillow's `libImaging/Resample.c`
//! (<https://github.com/python-pillow/Pillow/blob/main/src/libImaging/Resample.c>):
//! separable convolution, horizontal pass first, each pass only when that dimension
//! changes; the filter support is scaled by the downscale factor; per output pixel the
//! taps are normalised to sum 1 in f64 and then rounded to 22-bit fixed point; each pass
//! accumulates in i32 from a rounding bias of 1 << 21 and clamps to u8. Resizing to the
//! same size is a copy, as in `PIL.Image.resize`.

use crate::config::Resample;
use crate::ImageError;

const PRECISION_BITS: u32 = 32 - 8 - 2;

fn sinc(x: f64) -> f64 {
    if x == 0.0 {
        1.0
    } else {
        let x = x * std::f64::consts::PI;
        x.sin() / x
    }
}

fn filter(kind: Resample, x: f64) -> f64 {
    match kind {
        Resample::Box | Resample::Nearest => {
            if x > -0.5 && x <= 0.5 {
                1.0
            } else {
                0.0
            }
        }
        Resample::Bilinear => {
            let x = x.abs();
            if x < 1.0 {
                1.0 - x
            } else {
                0.0
            }
        }
        Resample::Hamming => {
            let x = x.abs();
            if x == 0.0 {
                1.0
            } else if x >= 1.0 {
                0.0
            } else {
                let x = x * std::f64::consts::PI;
                x.sin() / x * (0.54 + 0.46 * x.cos())
            }
        }
        Resample::Bicubic => {
            let a = -0.5;
            let x = x.abs();
            if x < 1.0 {
                ((a + 2.0) * x - (a + 3.0)) * x * x + 1.0
            } else if x < 2.0 {
                (((x - 5.0) * x + 8.0) * x - 4.0) * a
            } else {
                0.0
            }
        }
        Resample::Lanczos => {
            if (-3.0..3.0).contains(&x) {
                sinc(x) * sinc(x / 3.0)
            } else {
                0.0
            }
        }
    }
}

fn support(kind: Resample) -> f64 {
    match kind {
        Resample::Box | Resample::Nearest => 0.5,
        Resample::Bilinear | Resample::Hamming => 1.0,
        Resample::Bicubic => 2.0,
        Resample::Lanczos => 3.0,
    }
}

/// Taps of one axis: for output i, input start `bounds[i].0`, count `bounds[i].1`,
/// fixed-point weights at `kk[i * ksize ..]`.
struct Coeffs {
    ksize: usize,
    bounds: Vec<(usize, usize)>,
    kk: Vec<i32>,
}

fn coeffs(in_size: usize, out_size: usize, kind: Resample) -> Coeffs {
    let scale = in_size as f64 / out_size as f64;
    let filterscale = scale.max(1.0);
    let support = support(kind) * filterscale;
    let ksize = support.ceil() as usize * 2 + 1;
    let mut bounds = Vec::with_capacity(out_size);
    let mut kk = vec![0i32; out_size * ksize];
    let mut w = vec![0f64; ksize];
    for xx in 0..out_size {
        let center = (xx as f64 + 0.5) * scale;
        let ss = 1.0 / filterscale;
        // C's (int) truncates toward zero; a negative value is clamped to 0 anyway.
        let xmin = ((center - support + 0.5) as i64).max(0) as usize;
        let xmax =
            (((center + support + 0.5) as i64).min(in_size as i64) as usize).saturating_sub(xmin);
        let xmax = xmax.min(ksize);
        let mut ww = 0.0;
        for (x, wx) in w.iter_mut().enumerate().take(xmax) {
            let v = filter(kind, (x as f64 + xmin as f64 - center + 0.5) * ss);
            *wx = v;
            ww += v;
        }
        let row = &mut kk[xx * ksize..xx * ksize + ksize];
        for (x, k) in row.iter_mut().enumerate().take(xmax) {
            let v = if ww != 0.0 { w[x] / ww } else { w[x] };
            let f = v * (1u32 << PRECISION_BITS) as f64;
            *k = if v < 0.0 {
                (f - 0.5) as i32
            } else {
                (f + 0.5) as i32
            };
        }
        bounds.push((xmin, xmax));
    }
    Coeffs { ksize, bounds, kk }
}

#[inline]
fn clip8(v: i32) -> u8 {
    if v >= (1 << PRECISION_BITS << 8) {
        255
    } else if v <= 0 {
        0
    } else {
        (v >> PRECISION_BITS) as u8
    }
}

fn horizontal(src: &[u8], w: usize, h: usize, out_w: usize, kind: Resample) -> Vec<u8> {
    let c = coeffs(w, out_w, kind);
    let mut out = vec![0u8; out_w * h * 3];
    for y in 0..h {
        let row = &src[y * w * 3..(y + 1) * w * 3];
        let orow = &mut out[y * out_w * 3..(y + 1) * out_w * 3];
        for (xx, o) in orow.chunks_exact_mut(3).enumerate() {
            let (xmin, n) = c.bounds[xx];
            let k = &c.kk[xx * c.ksize..xx * c.ksize + n];
            let mut s = [1i32 << (PRECISION_BITS - 1); 3];
            for (i, &kv) in k.iter().enumerate() {
                let p = &row[(xmin + i) * 3..(xmin + i) * 3 + 3];
                s[0] = s[0].wrapping_add(p[0] as i32 * kv);
                s[1] = s[1].wrapping_add(p[1] as i32 * kv);
                s[2] = s[2].wrapping_add(p[2] as i32 * kv);
            }
            o[0] = clip8(s[0]);
            o[1] = clip8(s[1]);
            o[2] = clip8(s[2]);
        }
    }
    out
}

fn vertical(src: &[u8], w: usize, h: usize, out_h: usize, kind: Resample) -> Vec<u8> {
    let c = coeffs(h, out_h, kind);
    let stride = w * 3;
    let mut out = vec![0u8; stride * out_h];
    let mut acc = vec![0i32; stride];
    for yy in 0..out_h {
        let (ymin, n) = c.bounds[yy];
        let k = &c.kk[yy * c.ksize..yy * c.ksize + n];
        acc.fill(1 << (PRECISION_BITS - 1));
        for (i, &kv) in k.iter().enumerate() {
            let row = &src[(ymin + i) * stride..(ymin + i + 1) * stride];
            for (a, &p) in acc.iter_mut().zip(row) {
                *a = a.wrapping_add(p as i32 * kv);
            }
        }
        for (o, &a) in out[yy * stride..(yy + 1) * stride].iter_mut().zip(&acc) {
            *o = clip8(a);
        }
    }
    out
}

fn nearest(src: &[u8], w: usize, h: usize, out_w: usize, out_h: usize) -> Vec<u8> {
    let mut out = vec![0u8; out_w * out_h * 3];
    let sx = w as f64 / out_w as f64;
    let sy = h as f64 / out_h as f64;
    for y in 0..out_h {
        let iy = (((y as f64 + 0.5) * sy) as usize).min(h - 1);
        for x in 0..out_w {
            let ix = (((x as f64 + 0.5) * sx) as usize).min(w - 1);
            out[(y * out_w + x) * 3..(y * out_w + x) * 3 + 3]
                .copy_from_slice(&src[(iy * w + ix) * 3..(iy * w + ix) * 3 + 3]);
        }
    }
    out
}

/// Resizes interleaved RGB8 `src` (`w`×`h`) to `out_w`×`out_h` as `PIL.Image.resize`
/// does for an "RGB" image. Nearest is approximated (not PIL-verified).
pub fn resize_rgb8(
    src: &[u8],
    w: usize,
    h: usize,
    out_w: usize,
    out_h: usize,
    kind: Resample,
) -> Result<Vec<u8>, ImageError> {
    if w == 0 || h == 0 || out_w == 0 || out_h == 0 {
        return Err(ImageError::Size(format!(
            "cannot resize {w}x{h} to {out_w}x{out_h}"
        )));
    }
    let need = w.checked_mul(h).and_then(|p| p.checked_mul(3));
    if need != Some(src.len()) {
        return Err(ImageError::Size(format!(
            "RGB8 buffer of {} bytes does not hold {w}x{h} pixels",
            src.len()
        )));
    }
    if out_w
        .checked_mul(out_h)
        .and_then(|p| p.checked_mul(3))
        .is_none_or(|b| b > isize::MAX as usize)
    {
        return Err(ImageError::Size(format!(
            "output {out_w}x{out_h} is too large"
        )));
    }
    if (w, h) == (out_w, out_h) {
        return Ok(src.to_vec());
    }
    if kind == Resample::Nearest {
        return Ok(nearest(src, w, h, out_w, out_h));
    }
    let tmp;
    let (cur, cw) = if out_w != w {
        tmp = horizontal(src, w, h, out_w, kind);
        (&tmp[..], out_w)
    } else {
        (src, w)
    };
    if out_h != h {
        Ok(vertical(cur, cw, h, out_h, kind))
    } else {
        Ok(cur.to_vec())
    }
}
