//! `alc seal` / `alc unseal`, and the key arguments `alc verify` and `alc run` share:
//! packages encrypted and authenticated in 64 KiB blocks (`.ava3`, docs/SEALED.md).
//!
//! Keys: `--key-file FILE`, `--passphrase` (ALC_SEAL_PASSPHRASE, else a prompt on the
//! terminal), else the ALC_SEAL_KEY environment variable (hex or base64 of 32 bytes).

use alc_seal::{Key, KeySource, SealOptions, Zeroizing};
use anyhow::{bail, Context, Result};
use clap::Args;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};

/// Where the key comes from (shared by seal, unseal and verify).
#[derive(Args, Clone, Debug, Default)]
pub struct KeyArgs {
    /// Key file: 32 raw bytes, or the key as hex or base64 text (several keys, one a
    /// line, make a key ring; `#` starts a comment). Without --key-file and
    /// --passphrase the key comes from ALC_SEAL_KEY (hex or base64 of 32 bytes).
    #[arg(long, value_name = "FILE", conflicts_with = "passphrase")]
    pub key_file: Option<PathBuf>,
    /// Derive the key from a passphrase (Argon2id): ALC_SEAL_PASSPHRASE, else asked on
    /// the terminal.
    #[arg(long)]
    pub passphrase: bool,
}

#[derive(Args, Debug)]
pub struct SealArgs {
    /// File to seal; with --batch, a directory whose files are sealed one by one.
    pub input: PathBuf,
    /// Output file (default: INPUT.ava3 beside the input) or an existing directory to
    /// put INPUT.ava3 in; with --batch, the output directory (created if missing).
    #[arg(short = 'o', long = "out", value_name = "OUT")]
    pub out: Option<PathBuf>,
    /// Seal every file directly inside the INPUT directory into OUT as NAME.ava3
    /// (hidden files, sub-directories and *.ava3 files are skipped).
    #[arg(long)]
    pub batch: bool,
    #[command(flatten)]
    pub key: KeyArgs,
    /// Make a new random key, write it as hex to this file (owner-only permissions;
    /// an existing file is not overwritten) and seal with it.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["key_file", "passphrase"])]
    pub new_key_file: Option<PathBuf>,
    /// Print the report as JSON on stdout.
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug)]
pub struct UnsealArgs {
    /// Sealed file (.ava3).
    pub sealed: PathBuf,
    /// Output file, or an existing directory (the name without .ava3 is used). The
    /// file appears only after every block and the SHA-256 were checked.
    #[arg(short = 'o', long = "out", value_name = "OUT", required = true)]
    pub out: PathBuf,
    #[command(flatten)]
    pub key: KeyArgs,
    /// Print the report as JSON on stdout.
    #[arg(long)]
    pub json: bool,
}

/// The key source the arguments name. `sealing`: ask for a passphrase twice.
pub fn key_source(k: &KeyArgs, sealing: bool) -> Result<KeySource> {
    if let Some(f) = &k.key_file {
        return Ok(KeySource::from_key_file(f)?);
    }
    if k.passphrase {
        if let Some(p) = KeySource::passphrase_from_env()? {
            return Ok(p);
        }
        let p = prompt_passphrase(sealing)?;
        return Ok(KeySource::Passphrase(p));
    }
    match KeySource::key_from_env()? {
        Some(k) => Ok(k),
        None => bail!(
            "no key: pass --key-file FILE or --passphrase, or set {} (hex or base64 of 32 \
             bytes)",
            alc_seal::KEY_ENV
        ),
    }
}

/// Reads a passphrase from the terminal without echo (`stty -echo`).
#[cfg(unix)]
fn prompt_passphrase(confirm: bool) -> Result<Zeroizing<String>> {
    use std::io::{BufRead, BufReader, Write};
    let tty = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/tty")
        .with_context(|| {
            format!(
                "--passphrase: {} is not set and there is no terminal to ask on",
                alc_seal::PASSPHRASE_ENV
            )
        })?;
    let stty = |arg: &str| {
        tty.try_clone()
            .ok()
            .and_then(|t| {
                std::process::Command::new("stty")
                    .arg(arg)
                    .stdin(t)
                    .status()
                    .ok()
            })
            .is_some_and(|s| s.success())
    };
    let ask = |prompt: &str| -> Result<Zeroizing<String>> {
        let mut out = &tty;
        write!(out, "{prompt}")?;
        out.flush()?;
        let hidden = stty("-echo");
        let mut line = Zeroizing::new(String::new());
        let r = BufReader::new(&tty).read_line(&mut line);
        if hidden {
            stty("echo");
        }
        writeln!(out)?;
        r.context("reading the passphrase")?;
        while line.ends_with('\n') || line.ends_with('\r') {
            line.pop();
        }
        if line.is_empty() {
            bail!("empty passphrase");
        }
        Ok(line)
    };
    let p = ask("Passphrase: ")?;
    if confirm {
        let again = ask("Passphrase again: ")?;
        if *again != *p {
            bail!("the passphrases differ");
        }
    }
    Ok(p)
}

#[cfg(not(unix))]
fn prompt_passphrase(_confirm: bool) -> Result<Zeroizing<String>> {
    bail!(
        "--passphrase: set {} (asking on the terminal is not supported on this system)",
        alc_seal::PASSPHRASE_ENV
    )
}

/// Writes a new random key as hex text to a file that must not exist yet.
fn write_new_key(path: &Path) -> Result<Key> {
    use std::io::Write;
    let key = Key::generate()?;
    let mut o = std::fs::OpenOptions::new();
    o.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        o.mode(0o600);
    }
    let mut f = o
        .open(path)
        .with_context(|| format!("creating the key file {}", path.display()))?;
    let text = Zeroizing::new(format!("{}\n", key.to_hex().as_str()));
    f.write_all(text.as_bytes())
        .and_then(|_| f.sync_all())
        .with_context(|| format!("writing the key file {}", path.display()))?;
    Ok(key)
}

fn mib(b: u64) -> f64 {
    b as f64 / 1048576.0
}

fn report_json(r: &alc_seal::SealReport) -> serde_json::Value {
    serde_json::json!({
        "src": r.src,
        "out": r.out,
        "plaintext_bytes": r.plaintext_len,
        "sealed_bytes": r.sealed_len,
        "blocks": r.blocks,
        "key_id": r.key_id.to_string(),
        "plaintext_sha256": hex_str(&r.plaintext_sha256),
        "seconds": r.seconds,
    })
}

fn hex_str(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn report_line(r: &alc_seal::SealReport) -> String {
    format!(
        "{}: sealed {} ({:.1} MiB, {} blocks, AES-256-GCM, key id {}) in {:.2} s",
        r.out.display(),
        r.src.display(),
        mib(r.plaintext_len),
        r.blocks,
        r.key_id,
        r.seconds
    )
}

pub fn seal(a: SealArgs) -> Result<()> {
    let keys = match &a.new_key_file {
        Some(f) => {
            let key = write_new_key(f)?;
            eprintln!(
                "wrote a new key (id {}) to {}; keep it secret: it unseals everything sealed \
                 with it",
                key.id(),
                f.display()
            );
            KeySource::key(key)
        }
        None => key_source(&a.key, true)?,
    };
    let opts = SealOptions::default();
    let tty = std::io::stderr().is_terminal() && !a.json;
    let bar = crate::compile::byte_bar(tty);
    if a.batch {
        let Some(out) = &a.out else {
            bail!("--batch needs -o OUT, the output directory");
        };
        let r = alc_seal::seal_dir(&a.input, out, &keys, &opts, &mut |p, d, t| {
            bar.set_message(
                p.file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default(),
            );
            bar.set_length(t);
            bar.set_position(d);
        });
        bar.finish_and_clear();
        let r = r?;
        if a.json {
            let v = serde_json::json!({
                "sealed": r.sealed.iter().map(report_json).collect::<Vec<_>>(),
                "skipped": r.skipped.iter().map(|(p, why)| serde_json::json!({"path": p, "reason": why})).collect::<Vec<_>>(),
            });
            println!("{}", serde_json::to_string_pretty(&v)?);
        } else {
            for s in &r.sealed {
                println!("{}", report_line(s));
            }
            for (p, why) in &r.skipped {
                println!("skipped {}: {why}", p.display());
            }
            let total: u64 = r.sealed.iter().map(|s| s.plaintext_len).sum();
            println!(
                "{} file(s) sealed ({:.1} MiB) into {}",
                r.sealed.len(),
                mib(total),
                out.display()
            );
        }
        return Ok(());
    }
    if a.input.is_dir() {
        bail!(
            "{} is a directory; pass --batch -o OUTDIR to seal every file in it",
            a.input.display()
        );
    }
    let out = match &a.out {
        Some(o) if o.is_dir() => o.join(alc_seal::sealed_name(&a.input)),
        Some(o) => o.clone(),
        None => a.input.with_file_name(alc_seal::sealed_name(&a.input)),
    };
    let r = alc_seal::seal_file_with(&a.input, &out, &keys, &opts, &mut |d, t| {
        bar.set_length(t);
        bar.set_position(d);
    });
    bar.finish_and_clear();
    let r = r?;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&report_json(&r))?);
    } else {
        println!("{}", report_line(&r));
    }
    Ok(())
}

fn info_json(path: &Path, i: &alc_seal::SealInfo) -> serde_json::Value {
    let h = &i.header;
    serde_json::json!({
        "path": path,
        "ok": true,
        "format_version": h.version,
        "cipher": h.cipher.name(),
        "kdf": h.kdf.name(),
        "key_id": h.key_id.to_string(),
        "block_size": h.block_size,
        "blocks": h.blocks(),
        "plaintext_bytes": h.plaintext_len,
        "sealed_bytes": i.sealed_len,
        "plaintext_sha256": hex_str(&i.plaintext_sha256),
    })
}

pub fn unseal(a: UnsealArgs) -> Result<()> {
    let keys = key_source(&a.key, false)?;
    let out = if a.out.is_dir() {
        let name = a.sealed.file_name().unwrap_or_default().to_string_lossy();
        let plain = match name.strip_suffix(&format!(".{}", alc_seal::EXTENSION)) {
            Some(stem) if !stem.is_empty() => stem.to_string(),
            _ => format!("{name}.unsealed"),
        };
        a.out.join(plain)
    } else {
        a.out.clone()
    };
    let tty = std::io::stderr().is_terminal() && !a.json;
    let bar = crate::compile::byte_bar(tty);
    bar.set_message("unsealing");
    let r = alc_seal::unseal_file_with(&a.sealed, &out, &keys, &mut |d, t| {
        bar.set_length(t);
        bar.set_position(d);
    });
    bar.finish_and_clear();
    let info = r?;
    if a.json {
        let mut v = info_json(&a.sealed, &info);
        v["out"] = serde_json::json!(out);
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else {
        println!(
            "{}: {} bytes, SHA-256 {} (every block authenticated, key id {})",
            out.display(),
            info.header.plaintext_len,
            hex_str(&info.plaintext_sha256),
            info.header.key_id
        );
    }
    Ok(())
}

/// A sealed package decrypted into memory (every block and the plaintext digest
/// checked; nothing written to disk), parsed as GGUF. The error keeps the
/// [`alc_seal::SealError`] so callers can tell a failed authentication from a missing
/// key ([`exit_code`]).
pub fn open_gguf(path: &Path, key: &KeyArgs) -> Result<alc_format::GgufFile> {
    let keys = key_source(key, false)?;
    let bytes = alc_seal::open_in_memory(path, &keys)?;
    Ok(alc_format::GgufFile::from_bytes(path, bytes)?)
}

/// `alc verify`'s exit code for a failure of [`open_gguf`]: 1 when the file failed
/// authentication (altered, truncated, extended), else 2 (unreadable, no or wrong key).
pub fn exit_code(e: &anyhow::Error) -> i32 {
    match e.downcast_ref::<alc_seal::SealError>() {
        Some(s) if s.is_integrity_failure() => 1,
        _ => 2,
    }
}
