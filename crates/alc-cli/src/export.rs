//! `alc export --hf`: a GGUF file or package back to a Hugging Face checkpoint.

use alc_convert::{ExportDtype, ExportOptions, Progress};
use anyhow::{bail, Result};
use clap::Args;
use std::io::IsTerminal;
use std::path::PathBuf;

#[derive(Args)]
pub struct ExportArgs {
    /// Write a Hugging Face checkpoint directory (config.json, safetensors,
    /// tokenizer.json, tokenizer_config.json, generation_config.json).
    #[arg(long, required = true)]
    hf: bool,
    /// GGUF file or alc package.
    input: PathBuf,
    /// Directory to create.
    out: PathBuf,
    /// Storage type of the matrices: f16, bf16 or f32 (vectors are always f32).
    #[arg(long, default_value = "f16")]
    dtype: String,
    /// Largest safetensors file (e.g. 2GB, 500MiB, bytes); larger checkpoints are
    /// sharded with a model.safetensors.index.json.
    #[arg(long, default_value = "2GiB")]
    max_shard_size: String,
    /// Replace an existing non-empty output directory.
    #[arg(long)]
    force: bool,
    /// Print the result as JSON on stdout, and progress as JSON lines on stderr (as
    /// `alc compile --json`).
    #[arg(long)]
    json: bool,
}

/// "2GB", "500MiB", "1000000" → bytes.
fn parse_size(s: &str) -> Result<u64> {
    let t = s.trim();
    let split = t
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let mult: f64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1.0,
        "kb" => 1e3,
        "mb" => 1e6,
        "gb" => 1e9,
        "kib" => 1024.0,
        "mib" => 1048576.0,
        "gib" => 1073741824.0,
        _ => bail!("--max-shard-size {s:?}: unknown unit (use B, KB, MB, GB, KiB, MiB or GiB)"),
    };
    match num.parse::<f64>() {
        Ok(v) if v > 0.0 && (v * mult).is_finite() && v * mult >= 1.0 => Ok((v * mult) as u64),
        _ => bail!("--max-shard-size {s:?} is not a positive size such as 2GB"),
    }
}

pub fn export(a: ExportArgs) -> Result<()> {
    debug_assert!(a.hf);
    let opts = ExportOptions {
        dtype: ExportDtype::parse(&a.dtype)?,
        max_shard_bytes: parse_size(&a.max_shard_size)?,
        force: a.force,
        ..ExportOptions::new(a.input, a.out)
    };
    let tty = std::io::stderr().is_terminal() && !a.json;
    let bar = crate::compile::byte_bar(tty);
    let json = a.json;
    let mut on_progress = |p: Progress<'_>| match p {
        // --json: progress as JSON lines on stderr, as compile's.
        p if json => eprintln!("{}", crate::compile::progress_event(&p)),
        Progress::Stage(s) if tty => bar.set_message(s.to_string()),
        Progress::Stage(s) => eprintln!("export: {s}"),
        Progress::Tensor {
            bytes_done,
            bytes_total,
            name,
            ..
        } => {
            bar.set_length(bytes_total);
            bar.set_position(bytes_done);
            bar.set_message(name.to_string());
        }
    };
    let r = alc_convert::export_hf(&opts, &mut on_progress);
    bar.finish_and_clear();
    let r = r?;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&r)?);
    } else {
        println!(
            "{}: {} ({} from GGUF {}), {} tensors, {:.1} MiB in {} file(s), {:.1} s",
            r.out.display(),
            r.hf_class,
            r.dtype,
            r.gguf_architecture,
            r.tensors,
            r.bytes as f64 / 1048576.0,
            r.shards.len(),
            r.seconds
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::parse_size;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("2GB").unwrap(), 2_000_000_000);
        assert_eq!(parse_size("500MiB").unwrap(), 500 << 20);
        assert_eq!(parse_size("1.5 kb").unwrap(), 1500);
        assert_eq!(parse_size("4096").unwrap(), 4096);
        assert!(parse_size("0").is_err());
        assert!(parse_size("12XB").is_err());
        assert!(parse_size("GB").is_err());
    }
}
