//! Image input for vision-language models: decoding and the SmolVLM / Idefics3
//! preprocessing.
//!
//! # Design note
//!
//! The reference is Hugging Face transformers' `Idefics3ImageProcessorPil` and
//! `Idefics3Processor` (the PIL backend, which is what SmolVLM was trained with): uint8
//! images are resized with PIL, and only then rescaled and normalised. To match it pixel
//! for pixel this crate carries its own port of PIL's separable resampler
//! ([`resample`], from Pillow's `libImaging/Resample.c`: support scaled by the downscale
//! factor, coefficients normalised to sum 1 then rounded to 22-bit fixed point, each
//! pass rounded and clamped to u8). The `image` crate (PNG, JPEG, WebP only; no AVIF
//! encoder) only decodes.
//!
//! Steps, each a public function so a caller can stop at any of them:
//! [`decode`] bytes → [`RgbImage`] (EXIF orientation applied, alpha dropped or composited
//! on white, 16-bit → high byte, size limits checked before any pixel buffer exists) →
//! [`preprocess`] with a [`ProcessorConfig`] → [`Preprocessed`] (grid of tiles plus the
//! global view, channel-first f32) → [`expand_prompt`] with each image's `(rows, cols)`.
//!
//! Nothing here panics on input: every failure is an [`ImageError`] naming the values
//! involved. Goldens: `data/image-goldens/`, made by
//! `scripts/goldens/make_image_goldens.py`.

mod config;
mod decode;
mod preprocess;
mod prompt;
pub mod resample;

pub use config::{ProcessorConfig, Resample};
pub use decode::{decode, AlphaMode, DecodeLimits, DecodeOptions, RgbImage, SUPPORTED_FORMATS};
pub use preprocess::{plan, preprocess, GridPlan, Preprocessed, MAX_IMAGE_SIZE};
pub use prompt::{expand_prompt, image_replacement, FAKE_TOKEN, GLOBAL_IMG_TOKEN, IMAGE_TOKEN};

/// Every failure of this crate.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    /// The bytes are not an image format this crate decodes.
    #[error("unsupported image format: {detected}; supported: {supported}")]
    UnsupportedFormat {
        /// What was recognised (a format name, or the first bytes in hex).
        detected: String,
        /// The supported list.
        supported: &'static str,
    },
    /// The declared size is over the configured limits (checked before decoding).
    #[error("image is {width}x{height} pixels; the limit is {max_width}x{max_height} and {max_pixels} pixels")]
    TooLarge {
        /// Declared width.
        width: u32,
        /// Declared height.
        height: u32,
        /// Limit on width.
        max_width: u32,
        /// Limit on height.
        max_height: u32,
        /// Limit on width × height.
        max_pixels: u64,
    },
    /// The image has zero width or height.
    #[error("image has zero size ({width}x{height})")]
    Empty {
        /// Width.
        width: u32,
        /// Height.
        height: u32,
    },
    /// The decoder failed (truncated or corrupt data, or its allocation limit).
    #[error("cannot decode {format} image: {message}")]
    Decode {
        /// The format being decoded.
        format: &'static str,
        /// The decoder's message.
        message: String,
    },
    /// A processor configuration file is invalid.
    #[error("invalid processor config: {0}")]
    Config(String),
    /// A resize or tiling request outside what is supported.
    #[error("invalid size: {0}")]
    Size(String),
    /// The text's `<image>` placeholders do not match the images given.
    #[error("the text has {in_text} <image> placeholder(s) but {images} image(s) were given")]
    PlaceholderCount {
        /// Placeholders found in the text.
        in_text: usize,
        /// Images given.
        images: usize,
    },
}
