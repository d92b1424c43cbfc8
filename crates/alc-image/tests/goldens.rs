//! Goldens from transformers' Idefics3 processor (data/image-goldens/, made by
//! scripts/goldens/make_image_goldens.py). Grid and prompt must be identical; tile
//! pixels within 1/255 (one uint8 step) for PNG/WebP inputs, looser for JPEG inputs
//! (the JPEG decoders differ).

use alc_image::{decode, expand_prompt, preprocess, AlphaMode, DecodeOptions, ProcessorConfig};
use serde_json::Value;
use std::path::PathBuf;

fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../data/image-goldens")
}

fn read(name: &str) -> Vec<u8> {
    std::fs::read(dir().join(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
}

#[test]
fn goldens_match_transformers() {
    let manifest: Value = serde_json::from_slice(&read("manifest.json")).unwrap();
    let pre = String::from_utf8(read("preprocessor_config.json")).unwrap();
    let proc_ = String::from_utf8(read("processor_config.json")).unwrap();
    let base = ProcessorConfig::from_json(&pre, Some(&proc_)).unwrap();
    assert_eq!(base, ProcessorConfig::smolvlm());
    let tol = manifest["tolerance_u8"].as_u64().unwrap() as i32;
    let mut report = Vec::new();
    let mut failures = Vec::new();
    for case in manifest["cases"].as_array().unwrap() {
        let name = case["name"].as_str().unwrap();
        let file = case["file"].as_str().unwrap();
        let jpeg = file.ends_with(".jpg");
        let mut opts = DecodeOptions::default();
        if case["alpha"] == "composite" {
            opts.alpha = AlphaMode::CompositeWhite;
        }
        let mut cfg = base.clone();
        if case["split"] == false {
            cfg.do_image_splitting = false;
        }
        let img = decode(&read(file), &opts).unwrap_or_else(|e| panic!("{name}: {e}"));
        let out = preprocess(&img, &cfg).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(
            (out.rows as u64, out.cols as u64, out.n_tiles as u64),
            (
                case["rows"].as_u64().unwrap(),
                case["cols"].as_u64().unwrap(),
                case["n_tiles"].as_u64().unwrap()
            ),
            "{name}: grid"
        );
        assert_eq!(
            out.tile_width as u64,
            case["tile_size"].as_u64().unwrap(),
            "{name}"
        );
        let text = expand_prompt(
            case["prompt"].as_str().unwrap(),
            &[(out.rows, out.cols)],
            cfg.image_seq_len,
        )
        .unwrap();
        assert_eq!(text, case["expanded"].as_str().unwrap(), "{name}: prompt");

        // Full tiles.
        let mut max_diff = 0i32;
        let mut n_off = 0usize;
        let mut n_px = 0usize;
        for (t, f) in case["stored_tiles"].as_object().unwrap() {
            let t: usize = t.parse().unwrap();
            let want = decode(&read(f.as_str().unwrap()), &DecodeOptions::default()).unwrap();
            let got = &out.tiles_u8[t];
            assert_eq!(want.data.len(), got.len(), "{name} tile {t}");
            for (a, b) in want.data.iter().zip(got) {
                let d = (*a as i32 - *b as i32).abs();
                max_diff = max_diff.max(d);
                n_off += (d > 0) as usize;
            }
            n_px += got.len();
        }
        // Every tile: channel means of the u8 values and the f32 sums.
        let plane = (out.tile_width * out.tile_height) as f64;
        let mut max_mean = 0f64;
        let mut max_sum_rel = 0f64;
        for t in 0..out.n_tiles {
            for ch in 0..3 {
                let m: f64 = out.tiles_u8[t]
                    .iter()
                    .skip(ch)
                    .step_by(3)
                    .map(|&v| v as f64)
                    .sum::<f64>()
                    / plane;
                let want = case["tile_means"][t][ch].as_f64().unwrap();
                max_mean = max_mean.max((m - want).abs());
            }
            let s: f64 = out.tile(t).unwrap().iter().map(|&v| v as f64).sum();
            let want = case["float_sums"][t].as_f64().unwrap();
            max_sum_rel = max_sum_rel.max((s - want).abs() / (3.0 * plane));
        }
        let head: Vec<f64> = case["float_head"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap())
            .collect();
        let head_diff = head
            .iter()
            .zip(out.tile(0).unwrap())
            .map(|(a, b)| (a - *b as f64).abs())
            .fold(0.0, f64::max);
        report.push(format!(
            "{name:18} {}x{} tiles={:2} stored={:2} max|d|={max_diff} ({:.4}% px differ) max|mean d|={max_mean:.4} max|sum d|/n={max_sum_rel:.2e} head={head_diff:.1e}",
            out.rows,
            out.cols,
            out.n_tiles,
            case["stored_tiles"].as_object().unwrap().len(),
            100.0 * n_off as f64 / n_px.max(1) as f64
        ));
        let (tol_px, tol_mean) = if jpeg { (6, 0.6) } else { (tol, 0.02) };
        if max_diff > tol_px || max_mean > tol_mean || max_sum_rel > tol_mean * 2.0 / 255.0 + 1e-6 {
            failures.push(name.to_string());
        }
    }
    println!("{}", report.join("\n"));
    assert!(
        failures.is_empty(),
        "over tolerance: {failures:?}\n{}",
        report.join("\n")
    );
}
