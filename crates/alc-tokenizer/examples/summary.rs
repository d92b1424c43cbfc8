//! Print a GGUF vocabulary's summary (what `alc inspect` shows).
//!
//! Usage: cargo run -p alc-tokenizer --example summary -- MODEL.gguf

fn main() {
    let path = std::env::args().nth(1).expect("usage: summary MODEL.gguf");
    let f = alc_format::GgufFile::open(&path).expect("open");
    let tok = alc_tokenizer::Tokenizer::from_gguf(&f).expect("tokenizer");
    println!("{}", tok.vocab_spec_summary());
}
