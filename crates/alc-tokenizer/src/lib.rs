//! alc-tokenizer
