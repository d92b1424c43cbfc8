//! Construction and encode timings for one GGUF vocabulary.
//!
//! Usage: cargo run --release -p alc-tokenizer --example bench -- MODEL.gguf

use std::time::{Duration, Instant};

use alc_format::GgufFile;
use alc_tokenizer::Tokenizer;

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn time<T>(n: usize, mut f: impl FnMut() -> T) -> (Duration, T) {
    let mut times = Vec::new();
    let mut last = None;
    for _ in 0..n {
        let t = Instant::now();
        last = Some(f());
        times.push(t.elapsed());
    }
    (median(times), last.expect("n > 0"))
}

fn main() {
    let path = std::env::args().nth(1).expect("usage: bench MODEL.gguf");
    let (open, f) = time(3, || GgufFile::open(&path).expect("open"));
    let (build, tok) = time(7, || Tokenizer::from_gguf(&f).expect("tokenizer"));
    println!(
        "{path}: {} | GGUF open {:.1} ms, Tokenizer::from_gguf {:.1} ms (median)",
        tok.kind(),
        ms(open),
        ms(build)
    );

    let para = "The quick brown fox jumps over the lazy dog. It's 2024-06-01 and we've got 3.14159 reasons \
                to write code: fn main() { println!(\"héllo, wörld 👋\"); } 日本語も少し。\n";
    let text: String = para.repeat(10_000 / para.len() + 1);
    let (t, ids) = time(9, || tok.encode(&text, true, true).expect("encode"));
    println!(
        "  encode {} KB prose/code: {:.2} ms, {} tokens, {:.1} MB/s",
        text.len() / 1024,
        ms(t),
        ids.len(),
        text.len() as f64 / t.as_secs_f64() / 1e6
    );
    let big = para.repeat(1_000_000 / para.len());
    let (t, ids) = time(3, || tok.encode(&big, true, true).expect("encode"));
    println!(
        "  encode {} KB: {:.1} ms, {} tokens",
        big.len() / 1024,
        ms(t),
        ids.len()
    );
    let (t, _) = time(3, || tok.decode(&ids, false).expect("decode"));
    println!("  decode {} tokens: {:.1} ms", ids.len(), ms(t));
    for (name, s) in [
        ("100 KB one word 'a'", "a".repeat(100_000)),
        (
            "100 KB random letters",
            (0..100_000u32)
                .map(|i| char::from(b'a' + (i.wrapping_mul(2_654_435_761) >> 27) as u8 % 26))
                .collect(),
        ),
        ("100 KB spaces", " ".repeat(100_000)),
        ("100 KB newlines", "\n".repeat(100_000)),
        ("100 KB digits", "7".repeat(100_000)),
        ("100 KB '<'", "<".repeat(100_000)),
    ] {
        let (t, ids) = time(3, || tok.encode(&s, false, true).expect("encode"));
        println!("  {name}: {:.1} ms, {} tokens", ms(t), ids.len());
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}
