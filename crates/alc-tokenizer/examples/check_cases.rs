//! Compare this crate's tokenizer with llama.cpp outputs stored in golden format.
//!
//! Usage: cargo run --release -p alc-tokenizer --example check_cases -- MODEL.gguf CASES.json
//! (CASES.json as in tests/goldens/tokenizer/, e.g. from scripts/goldens/gen_goldens.py).

use alc_format::GgufFile;
use alc_tokenizer::Tokenizer;
use serde_json::Value;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() != 3 {
        eprintln!("usage: check_cases MODEL.gguf CASES.json");
        std::process::exit(2);
    }
    let f = GgufFile::open(&args[1]).expect("open model");
    let t0 = std::time::Instant::now();
    let tok = Tokenizer::from_gguf(&f).expect("tokenizer");
    let build = t0.elapsed();
    let golden: Value =
        serde_json::from_str(&std::fs::read_to_string(&args[2]).expect("read cases"))
            .expect("json");
    let cases = golden["cases"].as_array().expect("cases");
    let (mut bad_ids, mut bad_text) = (0, 0);
    let mut enc_time = std::time::Duration::ZERO;
    for c in cases {
        let text = c["text"].as_str().unwrap_or_default();
        let add = c["add_special"].as_bool().unwrap_or(false);
        let parse = c["parse_special"].as_bool().unwrap_or(false);
        let want: Vec<u32> = c["ids"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_u64().unwrap() as u32)
            .collect();
        let t = std::time::Instant::now();
        let got = tok.encode(text, add, parse).expect("encode");
        enc_time += t.elapsed();
        if got != want {
            bad_ids += 1;
            if bad_ids <= 10 {
                println!("IDS {text:?} add={add} parse={parse}\n  want {want:?}\n  got  {got:?}");
            }
            continue;
        }
        let pieces: Vec<u8> = got
            .iter()
            .flat_map(|&id| tok.token_bytes(id).to_vec())
            .collect();
        let pieces = String::from_utf8_lossy(&pieces);
        let detok = tok.decode(&got, false).expect("decode");
        if pieces != c["pieces_decoded"].as_str().unwrap_or_default()
            || c["detokenized"].as_str().is_some_and(|d| d != detok)
        {
            bad_text += 1;
            if bad_text <= 10 {
                println!(
                    "TEXT {text:?}: pieces {pieces:?} / {:?}; detok {detok:?} / {:?}",
                    c["pieces_decoded"], c["detokenized"]
                );
            }
        }
    }
    println!(
        "{}: {} cases, {} id mismatches, {} text mismatches; build {:.1} ms, encode total {:.1} ms",
        args[1],
        cases.len(),
        bad_ids,
        bad_text,
        build.as_secs_f64() * 1e3,
        enc_time.as_secs_f64() * 1e3
    );
}
