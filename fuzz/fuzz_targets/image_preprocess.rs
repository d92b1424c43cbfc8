//! Fuzz image decoding (`alc_image::decode`: PNG / JPEG / WebP sniffing, header limits,
//! EXIF orientation, alpha and 16-bit conversion) and the Idefics3 / SmolVLM
//! preprocessing of whatever decodes (`preprocess`: PIL-style resampling, tiling,
//! normalisation) and its prompt expansion.
//!
//! `Ok` or `Err` are both fine; a panic (overflow included), a huge allocation or a hang
//! is a bug. Limits are lowered (2048 per side, 4 Mpixel, 256 MiB) and the processor
//! sizes are small so one input stays cheap. Seeds: `data/image-goldens/*.{png,jpg,webp}`
//! (pass the directory as a second corpus).
//!
//! The last byte picks the processor config (longest edge, tile size, splitting, alpha
//! mode), so seeds that are plain image files still decode unchanged.

#![no_main]

use alc_image::{
    decode, expand_prompt, preprocess, AlphaMode, DecodeLimits, DecodeOptions, ProcessorConfig,
};
use libfuzzer_sys::fuzz_target;

#[path = "common/verbose.rs"]
mod verbose;
use verbose::say;

fuzz_target!(|data: &[u8]| {
    let sel = data.last().copied().unwrap_or(0);
    let opts = DecodeOptions {
        limits: DecodeLimits {
            max_width: 2048,
            max_height: 2048,
            max_pixels: 4 << 20,
            max_alloc: 256 << 20,
        },
        alpha: if sel & 1 == 0 {
            AlphaMode::Drop
        } else {
            AlphaMode::CompositeWhite
        },
        apply_exif_orientation: sel & 2 == 0,
    };
    let img = match decode(data, &opts) {
        Ok(img) => img,
        Err(e) => return say!("refused: {e}"),
    };
    assert_eq!(img.data.len(), img.width as usize * img.height as usize * 3);
    let cfg = ProcessorConfig {
        longest_edge: 16 + (sel as u32 >> 3) * 4,
        max_image_size: 8 + (sel as u32 & 0x1c),
        do_image_splitting: sel & 0x20 == 0 || sel & 0x80 != 0,
        do_resize: img.width as u64 * img.height as u64 <= 1 << 16 || sel & 0x40 == 0,
        ..ProcessorConfig::smolvlm()
    };
    match preprocess(&img, &cfg) {
        Ok(p) => {
            say!(
                "{}x{} -> {}x{} grid, {} tiles",
                img.width,
                img.height,
                p.rows,
                p.cols,
                p.n_tiles
            );
            assert_eq!(
                p.pixel_values.len(),
                p.n_tiles * 3 * (p.tile_width * p.tile_height) as usize
            );
            let t = expand_prompt("a<image>b", &[(p.rows, p.cols)], 2).unwrap();
            assert!(t.starts_with('a') && t.ends_with('b'));
        }
        Err(e) => say!("preprocess refused: {e}"),
    }
});
