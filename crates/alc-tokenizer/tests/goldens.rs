//! Token ids and decoded text must equal llama.cpp's for every golden case
//! (`tests/goldens/tokenizer/*.json`, made by `scripts/goldens/gen_goldens.py`).

mod common;

use serde_json::Value;

fn check_model(name: &str, file: &str) {
    let gpath = common::golden_path(name);
    if !gpath.exists() {
        eprintln!(
            "no golden file {}; nothing to check for {name}",
            gpath.display()
        );
        return;
    }
    let Some(tok) = common::load(file) else {
        return;
    };
    let golden: Value = serde_json::from_str(&std::fs::read_to_string(&gpath).unwrap()).unwrap();
    let cases = golden["cases"].as_array().expect("cases array");
    assert_eq!(
        golden["n_vocab"].as_u64(),
        Some(tok.vocab_size() as u64),
        "vocab size"
    );
    let mut failures = Vec::new();
    for (i, c) in cases.iter().enumerate() {
        let text = c["text"].as_str().unwrap();
        let add_special = c["add_special"].as_bool().unwrap();
        let parse_special = c["parse_special"].as_bool().unwrap();
        let want: Vec<u32> = c["ids"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_u64().unwrap() as u32)
            .collect();
        let got = tok.encode(text, add_special, parse_special).unwrap();
        if got != want {
            failures.push(format!(
                "case {i} {text:?} add_special={add_special} parse_special={parse_special}:\n    want {want:?}\n    got  {got:?}"
            ));
            continue;
        }
        let pieces: Vec<u8> = got
            .iter()
            .flat_map(|&id| tok.token_bytes(id).to_vec())
            .collect();
        let pieces = String::from_utf8_lossy(&pieces);
        if pieces != c["pieces_decoded"].as_str().unwrap() {
            failures.push(format!(
                "case {i} {text:?}: pieces {pieces:?} != {:?}",
                c["pieces_decoded"]
            ));
        }
        if let Some(detok) = c["detokenized"].as_str() {
            let got = tok.decode(&got, false).unwrap();
            if got != detok {
                failures.push(format!("case {i} {text:?}: decode {got:?} != {detok:?}"));
            }
        }
    }
    eprintln!(
        "{name}: {}/{} golden cases pass",
        cases.len() - failures.len().min(cases.len()),
        cases.len()
    );
    assert!(
        failures.is_empty(),
        "{name}: {} of {} cases differ from llama.cpp:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}

#[test]
fn golden_smollm2() {
    check_model("smollm2", common::MODELS[0].1);
}

#[test]
fn golden_qwen2() {
    check_model("qwen2", common::MODELS[1].1);
}

#[test]
fn golden_gemma3() {
    check_model("gemma3", common::MODELS[2].1);
}
