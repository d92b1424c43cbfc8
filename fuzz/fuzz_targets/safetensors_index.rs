//! Fuzz the sharded-checkpoint path: `model.safetensors.index.json` and its shards
//! (`HfTensors::from_index_bytes`, the index parser and checks `HfTensors::open` runs).
//!
//! Input layout: the index JSON, a 0 byte (JSON never holds one), then up to 8 shards,
//! each a u32 little-endian length and that many bytes (a length past the end takes
//! the rest). Shard `i` of `n` is named `model-0000{i+1}-of-0000{n}.safetensors`, the
//! transformers naming. When the checkpoint is accepted: the shards are those the
//! weight map names, in file-name order; every weight-map entry is a tensor of the
//! shard it names; and every shard passes the same checks as `safetensors_parse`.

#![no_main]

use alc_format::safetensors::HfTensors;
use libfuzzer_sys::fuzz_target;
use std::collections::BTreeMap;
use std::path::Path;

#[path = "common/safetensors_check.rs"]
mod check;
#[path = "common/verbose.rs"]
mod verbose;
use verbose::say;

const INDEX: &str = "model.safetensors.index.json";

fuzz_target!(|data: &[u8]| {
    let (index, mut rest) = match data.iter().position(|&b| b == 0) {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &[][..]),
    };
    let mut blobs: Vec<&[u8]> = Vec::new();
    while rest.len() >= 4 && blobs.len() < 8 {
        let n = u32::from_le_bytes(rest[..4].try_into().unwrap()) as usize;
        rest = &rest[4..];
        let n = n.min(rest.len());
        blobs.push(&rest[..n]);
        rest = &rest[n..];
    }
    let count = blobs.len();
    let names: Vec<String> = (0..count)
        .map(|i| format!("model-{:05}-of-{count:05}.safetensors", i + 1))
        .collect();
    let shards = names.iter().cloned().zip(blobs.iter().map(|b| b.to_vec()));
    let st = match HfTensors::from_index_bytes(INDEX, index, shards) {
        Ok(st) => st,
        Err(e) => return say!("refused: {e}"),
    };
    say!(
        "accepted: {} tensors in {} shards",
        st.len(),
        st.shards().len()
    );
    assert_eq!(st.index_path(), Some(Path::new(INDEX)));
    let shard_names: Vec<&str> = st
        .shards()
        .iter()
        .map(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .expect("shard file name")
        })
        .collect();
    assert!(
        shard_names.windows(2).all(|w| w[0] < w[1]),
        "{shard_names:?}"
    );
    let files: Vec<&[u8]> = shard_names
        .iter()
        .map(|n| blobs[names.iter().position(|m| m == n).expect("unknown shard")])
        .collect();
    check::exercise(&st, &files);

    // Read the weight map as the library does (serde_json skips the other fields
    // without checking them: invalid UTF-8 in "metadata" is accepted, see
    // regress_invalid_utf8_in_ignored_metadata.bin).
    #[derive(serde::Deserialize)]
    struct Index {
        weight_map: BTreeMap<String, String>,
    }
    let parsed: Index = serde_json::from_slice(index).expect("accepted index");
    let mut named = std::collections::BTreeSet::new();
    for (tensor, shard) in &parsed.weight_map {
        let shard = shard.as_str();
        let t = st.get(tensor).expect("weight-map tensor missing");
        assert_eq!(shard_names[t.shard], shard, "'{tensor}'");
        named.insert(shard);
    }
    assert_eq!(named.into_iter().collect::<Vec<_>>(), shard_names);
});
