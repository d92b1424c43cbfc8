//! Properties of the real models' tokenizers (models/ from scripts/fetch-models.sh).
//! Expected special ids and end-of-generation sets were read from llama.cpp 0.3.36
//! (`llama_vocab_bos/eos`, `llama_vocab_is_eog` over the whole vocabulary).

mod common;

use std::time::{Duration, Instant};

use alc_tokenizer::{ChatMessage, Tokenizer};
use common::MODELS;

fn each_model(mut f: impl FnMut(&str, &Tokenizer)) {
    for (name, file) in MODELS {
        let t0 = Instant::now();
        let Some(tok) = common::load(file) else {
            continue;
        };
        eprintln!(
            "{name}: opened and built in {:.0} ms",
            t0.elapsed().as_secs_f64() * 1e3
        );
        f(name, &tok);
    }
}

#[test]
fn special_ids_match_llama_cpp() {
    each_model(|name, tok| {
        let (bos, eos, eog, add_bos): (u32, u32, &[u32], bool) = match name {
            "smollm2" => (1, 2, &[0, 2, 4], false),
            "qwen2" => (
                151643,
                151645,
                &[128247, 151643, 151645, 151662, 151663, 151664],
                false,
            ),
            "gemma3" => (2, 1, &[1, 106, 212], true),
            _ => unreachable!(),
        };
        assert_eq!(tok.bos(), Some(bos), "{name} bos");
        assert_eq!(tok.eos(), Some(eos), "{name} eos");
        assert_eq!(tok.eog_ids(), eog, "{name} eog");
        assert_eq!(tok.add_bos(), add_bos, "{name} add_bos");
        assert!(!tok.add_eos());
        for &id in eog {
            assert!(tok.is_eog(id));
        }
        assert!(!tok.is_eog(10));
    });
}

#[test]
fn eog_by_name() {
    each_model(|name, tok| {
        let names: &[&str] = match name {
            "smollm2" | "qwen2" => &["<|im_end|>", "<|endoftext|>"],
            _ => &["<end_of_turn>", "<eos>"],
        };
        for n in names {
            let id = tok.token_id(n).unwrap_or_else(|| panic!("{name}: no {n}"));
            assert!(tok.is_eog(id), "{name}: {n} ({id}) should end generation");
        }
    });
}

#[test]
fn bad_inputs() {
    each_model(|name, tok| {
        let n = tok.vocab_size();
        let e = tok.decode(&[99_999_999], false).unwrap_err().to_string();
        assert_eq!(
            e,
            format!("token id 99999999 out of range for vocabulary of {n}"),
            "{name}"
        );
        assert!(tok.token_piece(n as u32, true).is_err());
        let empty = tok.encode("", true, true).unwrap();
        let want: Vec<u32> = tok.bos().filter(|_| tok.add_bos()).into_iter().collect();
        assert_eq!(empty, want, "{name}: empty text");
        assert!(tok.encode("", false, true).unwrap().is_empty());
    });
    if let Some(tok) = common::load(MODELS[0].1) {
        let e = tok.decode(&[99_999], false).unwrap_err().to_string();
        assert_eq!(e, "token id 99999 out of range for vocabulary of 49152");
    }
}

/// Inputs that stress the splitters and mergers must never panic, must decode back
/// to the text (for text without special-token texts), and must not blow up.
#[test]
fn adversarial_inputs_do_not_panic() {
    let inputs: Vec<String> = vec![
        "\u{301}".into(),
        "\u{301}\u{301}\u{308}a\u{301}".into(),
        "\0".into(),
        "a\0b\0\0".into(),
        " ".repeat(10_000),
        "\n".repeat(10_000),
        " \t\r\n\u{a0}\u{2028}\u{3000}\u{85}".repeat(1000),
        "'".repeat(1000) + "'s'S'll'LL",
        "\u{10FFFF}\u{E000}\u{FFFD}\u{FEFF}\u{200D}".into(),
        "👨‍👩‍👧‍👦🏳️‍🌈🇫🇷".repeat(100),
        "1".repeat(5000),
        "١٢٣٤٥".repeat(100),
        "<".repeat(5000) + "<|im_start|><start_of_turn>",
        "▁▁ ▁".repeat(1000),
        "<0x0A><unk></s><s>".into(),
    ];
    each_model(|name, tok| {
        for text in &inputs {
            for (add, parse) in [(true, true), (false, false)] {
                let t = Instant::now();
                let ids = tok.encode(text, add, parse).unwrap();
                assert!(
                    t.elapsed() < Duration::from_secs(2),
                    "{name}: slow on {:?}",
                    &text[..text.len().min(20)]
                );
                let back = tok.decode(&ids, true).unwrap();
                if !parse && !text.contains('<') && !text.contains('▁') {
                    assert_eq!(back, *text, "{name}: round trip");
                }
            }
        }
    });
}

#[test]
fn long_word_merges_fast() {
    let word: String = (0..100_000u32)
        .map(|i| char::from(b'a' + ((i * 7 + i / 13) % 26) as u8))
        .collect();
    each_model(|name, tok| {
        for text in [word.clone(), "a".repeat(100_000), "é".repeat(50_000)] {
            let t = Instant::now();
            let ids = tok.encode(&text, false, false).unwrap();
            let dt = t.elapsed();
            assert!(
                dt < Duration::from_millis(800),
                "{name}: 100 KB word took {dt:?}"
            );
            assert_eq!(tok.decode(&ids, true).unwrap(), text);
        }
    });
}

#[test]
fn stream_decoder_matches_decode() {
    let text = "Hi 🫨 there — 日本語 🧑🏽‍🚀 ok\n\u{1F600}!";
    each_model(|name, tok| {
        let ids = tok.encode(text, false, false).unwrap();
        let mut s = tok.stream_decoder(true);
        let mut out = String::new();
        let mut held = false;
        for &id in &ids {
            let chunk = s.push(id).unwrap();
            held |= chunk.is_empty() && !tok.token_bytes(id).is_empty();
            out.push_str(&chunk);
        }
        out.push_str(&s.finish());
        assert_eq!(out, text, "{name}");
        assert_eq!(tok.decode(&ids, true).unwrap(), text, "{name}");
        assert!(held, "{name}: expected some emoji split across tokens");
    });
}

#[test]
fn smollm2_chat_template_from_gguf() {
    let Some(tok) = common::load(MODELS[0].1) else {
        return;
    };
    let t = tok.chat_template().unwrap();
    let prompt = t.render(&[ChatMessage::new("user", "Hi")], true).unwrap();
    assert_eq!(
        prompt,
        "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n\
         <|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"
    );
    let ids = tok.encode(&prompt, true, true).unwrap();
    assert_eq!(ids[0], 1, "<|im_start|> parsed as a special token");
    assert_eq!(tok.decode(&ids, false).unwrap(), prompt);
}

#[test]
fn summary_names_the_vocabulary() {
    each_model(|name, tok| {
        let s = tok.vocab_spec_summary();
        let text = s.to_string();
        match name {
            "smollm2" => assert!(
                text.contains("bpe (gpt2)") && text.contains("\"smollm\"") && s.n_merges == 48900
            ),
            "qwen2" => assert!(text.contains("\"qwen2\"") && s.vocab_size == 151936),
            _ => assert!(
                text.contains("spm (llama)") && s.eot == Some((106, "<end_of_turn>".into()))
            ),
        }
    });
}

/// A chat prompt gets exactly one BOS on a model that adds one (Gemma 3), whether or
/// not the template already wrote it; a model that adds none gets none (SmolLM2).
#[test]
fn chat_prompts_get_one_bos() {
    each_model(|name, tok| {
        let turn = "<start_of_turn>user\nHi<end_of_turn>\n";
        let plain = tok.encode_chat(turn).unwrap();
        let Some(bos) = tok.bos() else { return };
        let bos_text = tok.token_text(bos).unwrap().to_string();
        let with = tok.encode_chat(&format!("{bos_text}{turn}")).unwrap();
        let n_bos = |ids: &[u32]| ids.iter().filter(|&&i| i == bos).count();
        if tok.add_bos() {
            assert_eq!((plain[0], n_bos(&plain)), (bos, 1), "{name}: {plain:?}");
            assert_eq!(
                with, plain,
                "{name}: a template-written BOS must not be doubled"
            );
        } else {
            assert_eq!(n_bos(&plain), 0, "{name}: {plain:?}");
            assert_eq!(
                (with[0], n_bos(&with)),
                (bos, 1),
                "{name}: the template's BOS is kept"
            );
        }
    });
}
