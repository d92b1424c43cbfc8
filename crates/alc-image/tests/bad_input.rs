//! Bad and hostile inputs: every one is an error with the values in its message, none panics.

use alc_image::{
    decode, expand_prompt, plan, preprocess, DecodeOptions, ImageError, ProcessorConfig, RgbImage,
};
use proptest::prelude::*;

fn golden(name: &str) -> Vec<u8> {
    std::fs::read(format!(
        "{}/../../data/image-goldens/{name}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap()
}

fn png_header(w: u32, h: u32) -> Vec<u8> {
    // Signature + IHDR (RGB8) with a valid CRC, then nothing.
    let mut ihdr = b"IHDR".to_vec();
    ihdr.extend_from_slice(&w.to_be_bytes());
    ihdr.extend_from_slice(&h.to_be_bytes());
    ihdr.extend_from_slice(&[8, 2, 0, 0, 0]);
    let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
    out.extend_from_slice(&13u32.to_be_bytes());
    out.extend_from_slice(&ihdr);
    out.extend_from_slice(&crc32(&ihdr).to_be_bytes());
    // A small IDAT (a zlib stream of zeros) and IEND, as a real bomb would have.
    let idat = b"IDATx\x9c\x63\x00\x00\x00\x01\x00\x01";
    out.extend_from_slice(&((idat.len() - 4) as u32).to_be_bytes());
    out.extend_from_slice(idat);
    out.extend_from_slice(&crc32(idat).to_be_bytes());
    out.extend_from_slice(&0u32.to_be_bytes());
    out.extend_from_slice(b"IEND");
    out.extend_from_slice(&crc32(b"IEND").to_be_bytes());
    out
}

fn crc32(data: &[u8]) -> u32 {
    let mut c = 0xffff_ffffu32;
    for &b in data {
        c ^= b as u32;
        for _ in 0..8 {
            c = if c & 1 != 0 {
                0xedb8_8320 ^ (c >> 1)
            } else {
                c >> 1
            };
        }
    }
    !c
}

fn err(bytes: &[u8]) -> ImageError {
    decode(bytes, &DecodeOptions::default()).expect_err("must fail")
}

#[test]
fn bomb_header_refused_before_allocation() {
    let e = err(&png_header(100_000, 100_000));
    let msg = e.to_string();
    assert!(
        matches!(
            e,
            ImageError::TooLarge {
                width: 100_000,
                height: 100_000,
                ..
            }
        ),
        "{msg}"
    );
    assert!(
        msg.contains("100000x100000") && msg.contains("16384x16384"),
        "{msg}"
    );
    assert!(!msg.contains('\n'));
    // Within each side but over the pixel count.
    let e = err(&png_header(16_000, 16_000));
    assert!(matches!(e, ImageError::TooLarge { .. }), "{e}");
}

#[test]
fn zero_size_refused() {
    // The PNG decoder refuses a zero dimension in the header itself.
    let e = err(&png_header(0, 10));
    assert!(
        matches!(
            e,
            ImageError::Empty { .. } | ImageError::Decode { format: "PNG", .. }
        ),
        "{e}"
    );
    assert!(RgbImage::new(0, 5, vec![]).is_err());
    assert!(plan(0, 5, &ProcessorConfig::smolvlm()).is_err());
}

#[test]
fn truncated_png_and_jpeg() {
    for name in [
        "coffee_small_wide.png",
        "rocket_jpeg.jpg",
        "webp_lossless.webp",
    ] {
        let full = golden(name);
        for cut in [full.len() / 2, full.len() - 10, 40, 12, 3] {
            if let Ok(img) = decode(&full[..cut], &DecodeOptions::default()) {
                // Some decoders return a partial image; it must still be usable.
                preprocess(&img, &ProcessorConfig::smolvlm()).unwrap();
            }
        }
    }
    let e = err(&golden("coffee_small_wide.png")[..100]);
    assert!(e.to_string().contains("PNG"), "{e}");
}

#[test]
fn unsupported_formats_named() {
    let e = err(b"GIF89a\x01\x00\x01\x00\x00\x00\x00");
    let m = e.to_string();
    assert!(m.contains("Gif") && m.contains("PNG, JPEG, WebP"), "{m}");
    let e = err(b"BM\x3a\x00\x00\x00\x00\x00\x00\x00\x36\x00\x00\x00");
    assert!(e.to_string().contains("Bmp"), "{e}");
    let e = err(b"hello world, not an image");
    assert!(e.to_string().contains("68 65 6c 6c"), "{e}");
    let e = err(b"");
    assert!(e.to_string().contains("0 bytes"), "{e}");
}

#[test]
fn one_pixel_and_extreme_aspect() {
    let cfg = ProcessorConfig::smolvlm();
    let one = RgbImage::new(1, 1, vec![1, 2, 3]).unwrap();
    let p = preprocess(&one, &cfg).unwrap();
    assert_eq!((p.rows, p.cols, p.n_tiles), (4, 4, 17));
    for (w, h) in [(1, 5000), (5000, 1), (4096, 3), (2, 2)] {
        let img = RgbImage::new(w, h, vec![128; (w * h * 3) as usize]).unwrap();
        let p = preprocess(&img, &cfg).unwrap();
        assert_eq!(p.pixel_values.len(), p.n_tiles * 3 * 512 * 512, "{w}x{h}");
    }
}

#[test]
fn placeholder_count_mismatch() {
    let e = expand_prompt("a <image> b <image>", &[(1, 1)], 4).unwrap_err();
    assert_eq!(
        e.to_string(),
        "the text has 2 <image> placeholder(s) but 1 image(s) were given"
    );
    assert!(expand_prompt("no image", &[], 4).unwrap() == "no image");
    let t = expand_prompt("<image>", &[(0, 0)], 2).unwrap();
    assert_eq!(
        t,
        "<fake_token_around_image><global-img><image><image><fake_token_around_image>"
    );
}

#[test]
fn bad_configs() {
    for (pre, want) in [
        ("[]", "not a JSON object"),
        (r#"{"size": {"height": 3, "width": 4}}"#, "longest_edge"),
        (r#"{"resample": 9}"#, "unknown resample 9"),
        (r#"{"image_std": [0.5, 0, 0.5]}"#, "zero"),
        (r#"{"image_mean": [0.5]}"#, "image_mean"),
        (
            r#"{"max_image_size": {"longest_edge": 0}}"#,
            "max_image_size.longest_edge",
        ),
        (r#"{"do_resize": "yes"}"#, "do_resize"),
    ] {
        let e = ProcessorConfig::from_json(pre, None)
            .unwrap_err()
            .to_string();
        assert!(e.contains(want), "{pre}: {e}");
    }
    let e = ProcessorConfig::from_json("{}", Some(r#"{"image_seq_len": -1}"#)).unwrap_err();
    assert!(e.to_string().contains("-1"), "{e}");
    let c = ProcessorConfig::from_json("{}", Some(r#"{"image_seq_len": 169}"#)).unwrap();
    assert_eq!(c.image_seq_len, 169);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
        let _ = decode(&bytes, &DecodeOptions::default());
    }

    #[test]
    fn mutated_png_never_panics(pos in 0usize..4096, val in any::<u8>(), cut in 0usize..5000) {
        let mut b = golden("rgba_drop.png");
        let p = pos % b.len();
        b[p] = val;
        b.truncate(cut.max(1).min(b.len()));
        if let Ok(img) = decode(&b, &DecodeOptions::default()) {
            let mut cfg = ProcessorConfig::smolvlm();
            cfg.longest_edge = 64;
            cfg.max_image_size = 32;
            preprocess(&img, &cfg).unwrap();
        }
    }

    #[test]
    fn any_size_and_config_plans(w in 1u32..20000, h in 1u32..20000, le in 1u32..4096, s in 1u32..1024,
                                 resize in any::<bool>(), split in any::<bool>()) {
        let cfg = ProcessorConfig { longest_edge: le, max_image_size: s, do_resize: resize,
                                    do_image_splitting: split, ..ProcessorConfig::smolvlm() };
        if let Ok(p) = plan(w, h, &cfg) {
            prop_assert!(p.n_tiles >= 1);
            prop_assert!(p.resized.0 >= 1 && p.resized.1 >= 1);
            if split && p.rows > 0 {
                prop_assert_eq!(p.encoder.0 % s, 0);
                prop_assert_eq!(p.encoder.1 % s, 0);
            }
        }
    }

    #[test]
    fn small_images_preprocess(w in 1u32..40, h in 1u32..40, le in 1u32..96, s in 1u32..48, seed in any::<u8>()) {
        let data: Vec<u8> = (0..w * h * 3).map(|i| (i as u8).wrapping_mul(seed)).collect();
        let img = RgbImage::new(w, h, data).unwrap();
        let cfg = ProcessorConfig { longest_edge: le, max_image_size: s, ..ProcessorConfig::smolvlm() };
        if let Ok(p) = preprocess(&img, &cfg) {
            prop_assert_eq!(p.pixel_values.len(), p.n_tiles * 3 * (p.tile_width * p.tile_height) as usize);
            prop_assert!(p.pixel_values.iter().all(|v| (-1.0..=1.0).contains(v)));
        }
    }
}
