//! Render a model's chat template for messages given as JSON on stdin.
//!
//! Usage: echo '[{"role":"user","content":"Hi"}]' | cargo run -p alc-tokenizer --example render_chat -- MODEL.gguf [--gen]

use std::io::Read;

use alc_format::GgufFile;
use alc_tokenizer::{ChatMessage, Tokenizer};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let path = args
        .get(1)
        .expect("usage: render_chat MODEL.gguf [--gen] < messages.json");
    let gen = args.iter().any(|a| a == "--gen");
    let f = GgufFile::open(path).expect("open");
    let tok = Tokenizer::from_gguf(&f).expect("tokenizer");
    let mut input = String::new();
    std::io::stdin().read_to_string(&mut input).expect("stdin");
    let v: serde_json::Value = serde_json::from_str(&input).expect("JSON");
    // either a messages array, or {"messages": [...], "tools": [...]}
    let (messages, tools) = match v {
        serde_json::Value::Object(mut o) => {
            (o.remove("messages").unwrap_or_default(), o.remove("tools"))
        }
        other => (other, None),
    };
    let messages: Vec<ChatMessage> = serde_json::from_value(messages).expect("messages");
    let out = tok.chat_template().and_then(|t| match &tools {
        Some(tools) => t.render_with_tools(&messages, gen, tools),
        None => t.render(&messages, gen),
    });
    match out {
        Ok(s) => print!("{s}"),
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(1);
        }
    }
}
