//! Decoding PNG / JPEG / WebP bytes to RGB8.

use crate::ImageError;
use image::{DynamicImage, ImageDecoder, ImageFormat, ImageReader};
use std::io::Cursor;

/// The formats [`decode`] accepts.
pub const SUPPORTED_FORMATS: &str = "PNG, JPEG, WebP";

/// An 8-bit RGB image, rows top to bottom, pixels interleaved `R G B`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RgbImage {
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// `width * height * 3` bytes.
    pub data: Vec<u8>,
}

impl RgbImage {
    /// Wraps a buffer; errors when its length is not `width * height * 3` or a side is 0.
    pub fn new(width: u32, height: u32, data: Vec<u8>) -> Result<Self, ImageError> {
        if width == 0 || height == 0 {
            return Err(ImageError::Empty { width, height });
        }
        if Some(data.len())
            != (width as usize)
                .checked_mul(height as usize)
                .and_then(|p| p.checked_mul(3))
        {
            return Err(ImageError::Size(format!(
                "RGB8 buffer of {} bytes does not hold {width}x{height} pixels",
                data.len()
            )));
        }
        Ok(Self {
            width,
            height,
            data,
        })
    }
}

/// What to do with an alpha channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AlphaMode {
    /// Drop it (PIL `convert("RGB")`, what `transformers.image_utils.load_image` does —
    /// the path of a file name or URL, and of the SmolVLM model card).
    #[default]
    Drop,
    /// Composite onto opaque white with PIL's `alpha_composite` arithmetic (what the
    /// transformers 5 image processor does with an RGBA `PIL.Image` handed to it).
    CompositeWhite,
}

/// Decompression-bomb guards, checked against the header before any pixel buffer exists.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DecodeLimits {
    /// Largest width.
    pub max_width: u32,
    /// Largest height.
    pub max_height: u32,
    /// Largest width × height.
    pub max_pixels: u64,
    /// Largest allocation the decoder may make, bytes.
    pub max_alloc: u64,
}

impl Default for DecodeLimits {
    /// 16384 per side, 64 Mpixel (PIL's bomb warning is at 89 Mpixel), 1 GiB of decoder memory.
    fn default() -> Self {
        Self {
            max_width: 16384,
            max_height: 16384,
            max_pixels: 64 << 20,
            max_alloc: 1 << 30,
        }
    }
}

/// Options of [`decode`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DecodeOptions {
    /// Size limits.
    pub limits: DecodeLimits,
    /// Alpha handling.
    pub alpha: AlphaMode,
    /// Apply the EXIF orientation tag (PNG eXIf, JPEG APP1, WebP EXIF), as
    /// `load_image`'s `ImageOps.exif_transpose` does.
    pub apply_exif_orientation: bool,
}

impl Default for DecodeOptions {
    fn default() -> Self {
        Self {
            limits: DecodeLimits::default(),
            alpha: AlphaMode::Drop,
            apply_exif_orientation: true,
        }
    }
}

fn format_name(f: ImageFormat) -> &'static str {
    match f {
        ImageFormat::Png => "PNG",
        ImageFormat::Jpeg => "JPEG",
        ImageFormat::WebP => "WebP",
        _ => "other",
    }
}

fn detect(bytes: &[u8]) -> Result<ImageFormat, ImageError> {
    let unsupported = |detected: String| ImageError::UnsupportedFormat {
        detected,
        supported: SUPPORTED_FORMATS,
    };
    if bytes.is_empty() {
        return Err(unsupported("empty input (0 bytes)".into()));
    }
    match image::guess_format(bytes) {
        Ok(f @ (ImageFormat::Png | ImageFormat::Jpeg | ImageFormat::WebP)) => Ok(f),
        Ok(other) => Err(unsupported(format!("{other:?}"))),
        Err(_) => {
            let head: Vec<String> = bytes.iter().take(8).map(|b| format!("{b:02x}")).collect();
            Err(unsupported(format!(
                "unknown (first bytes {})",
                head.join(" ")
            )))
        }
    }
}

/// Decodes PNG, JPEG or WebP bytes to RGB8 (first frame of an animation).
///
/// Gray is replicated, 16-bit samples keep their high byte (as PIL does for 16-bit RGB),
/// alpha is dropped or composited per [`DecodeOptions::alpha`], CMYK JPEGs are converted
/// by the JPEG decoder, and the EXIF orientation is applied when asked.
pub fn decode(bytes: &[u8], opts: &DecodeOptions) -> Result<RgbImage, ImageError> {
    let format = detect(bytes)?;
    let fname = format_name(format);
    let derr = |e: image::ImageError| ImageError::Decode {
        format: fname,
        message: e.to_string(),
    };
    let mut reader = ImageReader::with_format(Cursor::new(bytes), format);
    let mut header_limits = image::Limits::default();
    header_limits.max_alloc = Some(opts.limits.max_alloc);
    reader.limits(header_limits);
    let mut decoder = reader.into_decoder().map_err(derr)?;
    let (width, height) = decoder.dimensions();
    if width == 0 || height == 0 {
        return Err(ImageError::Empty { width, height });
    }
    let l = opts.limits;
    if width > l.max_width || height > l.max_height || width as u64 * height as u64 > l.max_pixels {
        return Err(ImageError::TooLarge {
            width,
            height,
            max_width: l.max_width,
            max_height: l.max_height,
            max_pixels: l.max_pixels,
        });
    }
    let mut limits = image::Limits::default();
    limits.max_image_width = Some(l.max_width);
    limits.max_image_height = Some(l.max_height);
    limits.max_alloc = Some(l.max_alloc);
    decoder.set_limits(limits).map_err(derr)?;
    let orientation = if opts.apply_exif_orientation {
        // A broken EXIF block is ignored rather than failing the image.
        decoder
            .orientation()
            .unwrap_or(image::metadata::Orientation::NoTransforms)
    } else {
        image::metadata::Orientation::NoTransforms
    };
    let mut img = DynamicImage::from_decoder(decoder).map_err(derr)?;
    img.apply_orientation(orientation);
    to_rgb(img, opts.alpha)
}

/// PIL `alpha_composite` of (c, a) over opaque white, then the colour byte.
#[inline]
fn over_white(c: u8, a: u8) -> u8 {
    if a == 0 {
        return 255;
    }
    // Pillow AlphaComposite.c with PRECISION_BITS = 7 and an opaque destination.
    let coef1 = a as u32 * 128;
    let coef2 = 255 * 128 - coef1;
    let t = c as u32 * coef1 + 255 * coef2 + (0x80 << 7);
    ((((t >> 8) + t) >> 8) >> 7) as u8
}

fn to_rgb(img: DynamicImage, alpha: AlphaMode) -> Result<RgbImage, ImageError> {
    let (w, h) = (img.width(), img.height());
    let px = w as usize * h as usize;
    let mut out = Vec::with_capacity(px * 3);
    let put_a = |out: &mut Vec<u8>, rgb: [u8; 3], a: u8| match alpha {
        AlphaMode::Drop => out.extend_from_slice(&rgb),
        AlphaMode::CompositeWhite => out.extend(rgb.iter().map(|&c| over_white(c, a))),
    };
    match img {
        DynamicImage::ImageRgb8(b) => out = b.into_raw(),
        DynamicImage::ImageLuma8(b) => b
            .into_raw()
            .iter()
            .for_each(|&g| out.extend_from_slice(&[g; 3])),
        DynamicImage::ImageLumaA8(b) => b
            .into_raw()
            .chunks_exact(2)
            .for_each(|p| put_a(&mut out, [p[0]; 3], p[1])),
        DynamicImage::ImageRgba8(b) => b
            .into_raw()
            .chunks_exact(4)
            .for_each(|p| put_a(&mut out, [p[0], p[1], p[2]], p[3])),
        DynamicImage::ImageLuma16(b) => b
            .into_raw()
            .iter()
            .for_each(|&g| out.extend_from_slice(&[(g >> 8) as u8; 3])),
        DynamicImage::ImageLumaA16(b) => b
            .into_raw()
            .chunks_exact(2)
            .for_each(|p| put_a(&mut out, [(p[0] >> 8) as u8; 3], (p[1] >> 8) as u8)),
        DynamicImage::ImageRgb16(b) => out.extend(b.into_raw().iter().map(|&v| (v >> 8) as u8)),
        DynamicImage::ImageRgba16(b) => b.into_raw().chunks_exact(4).for_each(|p| {
            put_a(
                &mut out,
                [(p[0] >> 8) as u8, (p[1] >> 8) as u8, (p[2] >> 8) as u8],
                (p[3] >> 8) as u8,
            )
        }),
        other => {
            // f32 and future variants: not produced by the PNG/JPEG/WebP decoders.
            let a = other.to_rgba8();
            a.into_raw()
                .chunks_exact(4)
                .for_each(|p| put_a(&mut out, [p[0], p[1], p[2]], p[3]));
        }
    }
    RgbImage::new(w, h, out)
}

#[cfg(test)]
mod tests {
    use super::over_white;

    #[test]
    fn composite_endpoints() {
        for c in 0..=255u8 {
            assert_eq!(over_white(c, 255), c);
            assert_eq!(over_white(c, 0), 255);
        }
    }
}
