//! Tiny ONNX graphs (tests/fixtures, written by gen_fixtures.py): input and output
//! discovery, and padding removal on a model whose output is its masked input.

use std::path::PathBuf;

use alc_ort::{OrtEncoder, OrtError};

fn fixture(name: &str) -> Option<PathBuf> {
    match alc_ort::runtime() {
        Ok(_) => {}
        Err(OrtError::LibraryNotFound) => {
            eprintln!("SKIP: {}", OrtError::LibraryNotFound);
            return None;
        }
        Err(e) => panic!("{e}"),
    }
    Some(PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures")).join(name))
}

#[test]
fn masked_ids_rows_have_padding_removed() {
    let Some(path) = fixture("masked_ids.onnx") else {
        return;
    };
    let enc = OrtEncoder::open(&path, 1).unwrap();
    // The hidden size is symbolic in the graph: learned from a one-token run.
    assert_eq!(enc.hidden(), 1);
    assert_eq!(enc.input_names(), ["input_ids", "attention_mask"]);
    assert_eq!(enc.output_name(), "out");
    let a: &[u32] = &[5, 6, 7, 8];
    let b: &[u32] = &[9];
    let c: &[u32] = &[];
    let d: &[u32] = &[u32::MAX, 1];
    let out = enc.run(&[a, b, c, d]).unwrap();
    assert_eq!(out[0], [5.0, 6.0, 7.0, 8.0]);
    assert_eq!(out[1], [9.0]);
    assert!(out[2].is_empty());
    assert_eq!(out[3], [u32::MAX as f32, 1.0]);
    let bytes = std::fs::read(&path).unwrap();
    let enc = OrtEncoder::from_bytes(&bytes, 0).unwrap();
    assert_eq!(enc.run(&[b]).unwrap(), [vec![9.0]]);
}

#[test]
fn wrong_shapes_are_named_errors() {
    type Is = fn(&OrtError) -> bool;
    let cases: [(&str, Is, &str); 4] = [
        (
            "only_input_ids.onnx",
            |e| {
                matches!(
                    e,
                    OrtError::MissingInput {
                        name: "attention_mask",
                        ..
                    }
                )
            },
            "attention_mask",
        ),
        (
            "extra_input.onnx",
            |e| matches!(e, OrtError::UnsupportedInput { name } if name == "position_ids"),
            "position_ids",
        ),
        (
            "float_ids.onnx",
            |e| matches!(e, OrtError::InputType { .. }),
            "int64",
        ),
        (
            "pooled_output.onnx",
            |e| matches!(e, OrtError::NotEncoder { .. }),
            "rank-3",
        ),
    ];
    for (name, is, needle) in cases {
        let Some(path) = fixture(name) else { return };
        let err = OrtEncoder::open(&path, 1).unwrap_err();
        let msg = err.to_string();
        assert!(is(&err), "{name}: {msg}");
        assert!(
            msg.contains("not a BERT-shaped encoder") && msg.contains(needle),
            "{name}: {msg}"
        );
        eprintln!("{name}: {msg}");
    }
}
