//! Tests on small vocabularies built in memory: no model files needed.

mod common;

use alc_tokenizer::{ByteMap, ChatMessage, ChatTemplate, Tokenizer, TokenizerError};
use common::{gguf, tiny_bpe, Kv};

#[test]
fn byte_table_is_gpt2() {
    let m = ByteMap::get();
    assert_eq!(m.char_of(b' '), 'Ġ');
    assert_eq!(m.char_of(b'\n'), 'Ċ');
    assert_eq!(m.char_of(b'\t'), 'ĉ');
    assert_eq!(m.char_of(0), 'Ā');
    assert_eq!(m.char_of(b'A'), 'A');
    assert_eq!(m.char_of(0xAD), 'Ń');
    assert_eq!(m.char_of(0xFF), 'ÿ');
    let mut seen = std::collections::HashSet::new();
    for b in 0..=255u8 {
        let c = m.char_of(b);
        assert!(seen.insert(c), "byte {b} maps to a duplicate char {c:?}");
        assert_eq!(m.byte_of(c), Some(b));
    }
    assert_eq!(m.byte_of('€'), None);
    assert_eq!(m.byte_of(' '), None, "space is not in the alphabet, Ġ is");
}

#[test]
fn tiny_bpe_merges_and_specials() {
    let f = tiny_bpe("gpt2", &["h e", "l l", "he ll", "Ġ w"]);
    let tok = Tokenizer::from_gguf(&f).unwrap();
    assert_eq!(tok.vocab_size(), 261);
    let he = tok.token_id("he").unwrap();
    let hell = tok.token_id("hell").unwrap();
    let gw = tok.token_id("Ġw").unwrap();
    assert_eq!(he, 257);
    assert_eq!(
        tok.encode("hello w", false, false).unwrap(),
        [hell, u32::from(b'o'), gw]
    );
    // add_special adds BOS; parse_special turns the control text into its token
    assert_eq!(tok.encode("he<|end|>", true, true).unwrap(), [256, he, 256]);
    let plain = tok.encode("he<|end|>", false, false).unwrap();
    assert_eq!(plain.len(), 1 + "<|end|>".len());
    assert_eq!(tok.decode(&plain, false).unwrap(), "he<|end|>");
    // control tokens render only when asked
    assert_eq!(tok.decode(&[256, he], false).unwrap(), "<|end|>he");
    assert_eq!(tok.decode(&[256, he], true).unwrap(), "he");
    assert!(tok.is_eog(256));
    assert_eq!(tok.special_tokens(), vec![(256, "<|end|>")]);
}

#[test]
fn empty_text_gives_only_bos() {
    let tok = Tokenizer::from_gguf(&tiny_bpe("gpt2", &[])).unwrap();
    assert_eq!(tok.encode("", true, true).unwrap(), [256]);
    assert!(tok.encode("", false, false).unwrap().is_empty());
}

#[test]
fn out_of_range_id_is_an_error() {
    let tok = Tokenizer::from_gguf(&tiny_bpe("gpt2", &[])).unwrap();
    let e = tok.decode(&[1, 99_999], false).unwrap_err();
    assert_eq!(
        e.to_string(),
        "token id 99999 out of range for vocabulary of 257"
    );
    assert!(matches!(
        tok.token_type(257),
        Err(TokenizerError::IdOutOfRange {
            id: 257,
            n_vocab: 257
        })
    ));
    assert!(tok.token_bytes(99_999).is_empty());
    assert!(tok.stream_decoder(false).push(u32::MAX).is_err());
}

#[test]
fn stream_decoder_holds_split_emoji() {
    // no merges: every byte of the emoji is its own token
    let tok = Tokenizer::from_gguf(&tiny_bpe("gpt2", &[])).unwrap();
    let ids = tok.encode("a😀b", false, false).unwrap();
    assert_eq!(ids.len(), 6);
    let mut s = tok.stream_decoder(true);
    let out: Vec<String> = ids.iter().map(|&id| s.push(id).unwrap()).collect();
    assert_eq!(out, ["a", "", "", "", "😀", "b"]);
    assert_eq!(s.finish(), "");
    // a dangling lead byte is reported at the end, an invalid byte at once
    let mut s = tok.stream_decoder(true);
    assert_eq!(s.push(0xF0).unwrap(), "");
    assert_eq!(s.pending(), [0xF0]);
    assert_eq!(s.finish(), "\u{FFFD}");
    assert_eq!(s.push(0xFF).unwrap(), "\u{FFFD}");
    assert_eq!(s.push(u32::from(b'x')).unwrap(), "x");
}

#[test]
fn errors_name_the_problem() {
    let e = Tokenizer::from_gguf(&gguf(&[("general.name", Kv::Str("x".into()))])).unwrap_err();
    assert_eq!(
        e.to_string(),
        "GGUF has no tokenizer (tokenizer.ggml.model missing); this file cannot be run"
    );
    let e = Tokenizer::from_gguf(&tiny_bpe("foo", &[])).unwrap_err();
    let msg = e.to_string();
    assert!(
        msg.starts_with("unsupported pre-tokenizer 'foo'; supported: default, gpt-2"),
        "{msg}"
    );
    assert!(
        msg.contains("qwen2") && msg.contains("smollm") && msg.contains("llama-bpe"),
        "{msg}"
    );
    let e =
        Tokenizer::from_gguf(&gguf(&[("tokenizer.ggml.model", Kv::Str("t5".into()))])).unwrap_err();
    assert!(
        e.to_string().contains("unsupported tokenizer model 't5'"),
        "{e}"
    );
}

#[test]
fn tiny_spm_by_score_with_byte_fallback() {
    let mut tokens: Vec<String> = vec!["<unk>".into(), "<s>".into(), "</s>".into()];
    let mut scores = vec![0.0f32; 3];
    let mut types = vec![2, 3, 3];
    for b in 0..=255u32 {
        tokens.push(format!("<0x{b:02X}>"));
        scores.push(0.0);
        types.push(6);
    }
    for (t, s) in [
        ("▁", -1.0),
        ("a", -2.0),
        ("b", -2.0),
        ("ab", -3.0),
        ("▁a", -1.5),
        ("▁ab", -0.5),
    ] {
        tokens.push(t.into());
        scores.push(s);
        types.push(1);
    }
    let f = gguf(&[
        ("tokenizer.ggml.model", Kv::Str("llama".into())),
        ("tokenizer.ggml.tokens", Kv::Strs(tokens)),
        ("tokenizer.ggml.scores", Kv::F32s(scores)),
        ("tokenizer.ggml.token_type", Kv::I32s(types)),
    ]);
    let tok = Tokenizer::from_gguf(&f).unwrap();
    assert_eq!(tok.kind(), "spm (llama)");
    assert!(tok.add_bos() && tok.add_space_prefix());
    let id = |t: &str| tok.token_id(t).unwrap();
    // " ab" → "▁ab" (space prefix added); "é" is not in the vocabulary: bytes
    let ids = tok.encode("ab é", true, false).unwrap();
    assert_eq!(ids, [1, id("▁ab"), id("▁"), id("<0xC3>"), id("<0xA9>")]);
    // llama.cpp strips the prefix space only when no BOS was skipped (checked against it)
    assert_eq!(tok.decode(&ids, true).unwrap(), " ab é");
    assert_eq!(tok.decode(&ids[1..], true).unwrap(), "ab é");
    assert_eq!(tok.decode(&ids, false).unwrap(), "<s> ab é");
}

const SMOLLM2_TEMPLATE: &str = "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}{{ '<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n' }}{% endif %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}";

#[test]
fn smollm2_chat_template() {
    let t = ChatTemplate::new(SMOLLM2_TEMPLATE, "<|im_start|>", "<|im_end|>").unwrap();
    let msgs = [ChatMessage::new("user", "What is 2+2?")];
    assert_eq!(
        t.render(&msgs, true).unwrap(),
        "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n\
         <|im_start|>user\nWhat is 2+2?<|im_end|>\n<|im_start|>assistant\n"
    );
    let msgs = [
        ChatMessage::new("system", "Be brief."),
        ChatMessage::new("user", "Hi"),
    ];
    assert_eq!(
        t.render(&msgs, false).unwrap(),
        "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n"
    );
}

#[test]
fn chat_template_features_and_errors() {
    // trim_blocks / lstrip_blocks, python string methods, tojson, raise_exception
    let src = "{% for m in messages %}\n  {% if m.role == 'user' %}\n[{{ m.content.strip().upper() }}]{{ m | tojson }}\n  {% endif %}\n{% endfor %}";
    let t = ChatTemplate::new(src, "", "").unwrap();
    let out = t
        .render(&[ChatMessage::new("user", "  héllo \"x\" ")], false)
        .unwrap();
    assert_eq!(
        out,
        "[HÉLLO \"X\"]{\"role\": \"user\", \"content\": \"  héllo \\\"x\\\" \"}\n"
    );
    let t = ChatTemplate::new("{{ raise_exception('no system role') }}", "", "").unwrap();
    let e = t.render(&[], false).unwrap_err().to_string();
    assert!(e.contains("no system role"), "{e}");
    let e = ChatTemplate::new("{% for x in %}", "", "")
        .err()
        .expect("syntax error")
        .to_string();
    assert!(e.starts_with("chat template does not parse:"), "{e}");
    let t = ChatTemplate::new("{{ strftime_now('%Y') }}", "", "").unwrap();
    assert_eq!(t.render(&[], false).unwrap().len(), 4);
}
