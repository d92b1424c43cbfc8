//! `alc add / list / show / rm / tag / ab`: the local package registry (alc-registry),
//! and the lookup of a model argument that is a registered name rather than a file.

use alc_registry::{Entry, Registry};
use anyhow::{bail, Result};
use clap::{Args, Subcommand};
use std::path::{Path, PathBuf};

/// Schema id of the registry commands' `--json` output (docs/FORMAT.md, Part E).
const SCHEMA: &str = "alc.registry/1";

#[derive(Args)]
pub struct AddArgs {
    /// Package file (.alm, .ALM or .gguf).
    file: PathBuf,
    /// Name in the registry (default: the file name without its extension).
    #[arg(long)]
    name: Option<String>,
    /// Print the entry as JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
pub struct ListArgs {
    /// Print JSON (schema `alc.registry/1`, docs/FORMAT.md).
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
pub struct ShowArgs {
    /// Package name, tag, or digest prefix (at least 6 hex digits, `sha256:` allowed).
    name: String,
    /// Print JSON (schema `alc.registry/1`, docs/FORMAT.md).
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
pub struct RmArgs {
    /// Package name or tag. The file leaves the store when no other name or tag
    /// points at it.
    name: String,
}

#[derive(Args)]
pub struct TagArgs {
    /// Package name, tag or digest prefix.
    name: String,
    /// The new tag (an alias of the same file; an existing tag is moved).
    tag: String,
}

#[derive(Args)]
pub struct AbArgs {
    #[command(subcommand)]
    cmd: AbCmd,
}

#[derive(Subcommand)]
enum AbCmd {
    /// Set a slot's arms: SPEC is NAME=WEIGHT[,NAME=WEIGHT…] (integer weights > 0),
    /// e.g. 'AVA-GE2-2B16=50,AVA-GE3-4B16=50'.
    Set {
        slot: String,
        spec: String,
        #[arg(long)]
        json: bool,
    },
    /// The arm of a slot for a user (deterministic: the same user always gets the
    /// same arm while the slot's arms and weights stay the same).
    Pick {
        slot: String,
        /// User id to bucket.
        #[arg(long)]
        user: String,
        #[arg(long)]
        json: bool,
    },
    /// List the slots (or one slot) with their arms and weights.
    Show {
        slot: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Remove a slot.
    Rm { slot: String },
}

fn open() -> Result<Registry> {
    Ok(Registry::open_default()?)
}

fn opt<T: std::fmt::Display>(v: &Option<T>) -> String {
    v.as_ref()
        .map(|v| v.to_string())
        .unwrap_or_else(|| "-".into())
}

/// The first 12 hex digits of a digest.
fn short(digest: &str) -> &str {
    digest.get(..12).unwrap_or(digest)
}

fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / 1048576.0)
}

fn print_json(v: serde_json::Value) -> Result<()> {
    println!("{}", serde_json::to_string_pretty(&v)?);
    Ok(())
}

fn print_entry(e: &Entry) {
    let m = &e.meta;
    println!("name          {} ({})", e.name, kind(e));
    if !e.aliases.is_empty() {
        println!("aliases       {}", e.aliases.join(", "));
    }
    println!("sha256        {}", e.digest);
    println!("size          {} ({} bytes)", mib(e.size), e.size);
    println!("file          {}", e.path.display());
    println!("architecture  {}", opt(&m.architecture));
    println!("model name    {}", opt(&m.model_name));
    println!("quant         {}", opt(&m.quant));
    println!("context       {}", opt(&m.context));
    println!("vocab         {}", opt(&m.vocab_size));
    println!("parameters    {}", opt(&m.parameters));
    println!("target        {}", opt(&m.target));
    println!("verification  {}", m.verification);
    println!(
        "format        {} (alc {})",
        opt(&m.format_version),
        opt(&m.alc_version)
    );
    println!("compiled      {}", opt(&m.compile_date));
    println!(
        "source        {} {}",
        opt(&m.source_architecture),
        opt(&m.source_sha256)
    );
    println!("added         {} from {}", e.added, opt(&e.source_path));
}

fn kind(e: &Entry) -> &'static str {
    match e.kind {
        alc_registry::RefKind::Name => "name",
        alc_registry::RefKind::Tag => "tag",
    }
}

pub fn add(a: AddArgs) -> Result<()> {
    let reg = open()?;
    let e = reg.add(&a.file, a.name.as_deref())?;
    if a.json {
        return print_json(serde_json::json!({"schema": SCHEMA, "package": e}));
    }
    println!(
        "added {} (sha256 {}, {})",
        e.name,
        short(&e.digest),
        mib(e.size)
    );
    Ok(())
}

pub fn list(a: ListArgs) -> Result<()> {
    let reg = open()?;
    let list = reg.list()?;
    if a.json {
        return print_json(
            serde_json::json!({"schema": SCHEMA, "home": reg.home(), "packages": list}),
        );
    }
    if list.is_empty() {
        println!(
            "no packages in the registry at {}; add one with `alc add FILE`",
            reg.home().display()
        );
        return Ok(());
    }
    let w = list.iter().map(|e| e.name.len()).max().unwrap_or(4).max(4);
    println!(
        "{:<w$}  {:<4}  {:<12}  {:>10}  {:<8}  {:<8}  {:>7}  {:<10}  ADDED",
        "NAME", "KIND", "SHA256", "SIZE", "ARCH", "QUANT", "CONTEXT", "STATUS"
    );
    for e in &list {
        let m = &e.meta;
        println!(
            "{:<w$}  {:<4}  {:<12}  {:>10}  {:<8}  {:<8}  {:>7}  {:<10}  {}",
            e.name,
            kind(e),
            short(&e.digest),
            mib(e.size),
            opt(&m.architecture),
            opt(&m.quant),
            opt(&m.context),
            m.verification,
            e.added
        );
    }
    Ok(())
}

pub fn show(a: ShowArgs) -> Result<()> {
    let reg = open()?;
    let e = reg.show(&a.name)?;
    if a.json {
        return print_json(serde_json::json!({"schema": SCHEMA, "package": e}));
    }
    print_entry(&e);
    Ok(())
}

pub fn rm(a: RmArgs) -> Result<()> {
    let reg = open()?;
    let r = reg.rm(&a.name)?;
    if r.blob_deleted {
        println!(
            "removed {} (sha256 {}; file deleted)",
            r.name,
            short(&r.digest)
        );
    } else {
        println!(
            "removed {} (sha256 {}; file kept: other names or tags use it)",
            r.name,
            short(&r.digest)
        );
    }
    Ok(())
}

pub fn tag(a: TagArgs) -> Result<()> {
    let reg = open()?;
    let e = reg.tag(&a.name, &a.tag)?;
    println!(
        "tagged {} as {} (sha256 {})",
        a.name,
        e.name,
        short(&e.digest)
    );
    Ok(())
}

fn print_slot(s: &alc_registry::Slot) {
    let arms: Vec<String> = s
        .arms
        .iter()
        .map(|a| {
            format!(
                "{}={} ({:.1} %)",
                a.name,
                a.weight,
                a.weight as f64 * 100.0 / s.total_weight as f64
            )
        })
        .collect();
    println!("{}  {}  (set {})", s.slot, arms.join(", "), s.updated);
}

pub fn ab(a: AbArgs) -> Result<()> {
    let reg = open()?;
    match a.cmd {
        AbCmd::Set { slot, spec, json } => {
            let s = reg.ab_set(&slot, &spec)?;
            if json {
                return print_json(serde_json::json!({"schema": SCHEMA, "slot": s}));
            }
            print_slot(&s);
        }
        AbCmd::Pick { slot, user, json } => {
            let p = reg.ab_pick(&slot, &user)?;
            if json {
                return print_json(serde_json::json!({"schema": SCHEMA, "pick": p}));
            }
            println!("{}", p.arm);
        }
        AbCmd::Show { slot, json } => {
            let slots = match slot {
                Some(s) => vec![reg.ab_slot(&s)?],
                None => reg.ab_show()?,
            };
            if json {
                return print_json(serde_json::json!({"schema": SCHEMA, "slots": slots}));
            }
            if slots.is_empty() {
                println!(
                    "no A/B slots in the registry at {}; set one with `alc ab set SLOT 'A=50,B=50'`",
                    reg.home().display()
                );
            }
            for s in &slots {
                print_slot(s);
            }
        }
        AbCmd::Rm { slot } => {
            reg.ab_rm(&slot)?;
            println!("removed A/B slot {slot}");
        }
    }
    Ok(())
}

/// Register a package `alc compile` wrote or found up to date. A registry failure is a
/// warning: the package itself is fine. With `json` (stdout carries the report) the
/// result is a JSON line on stderr, like compile's progress events.
pub fn register_compiled(path: &Path, json: bool) {
    let r = Registry::open_default().and_then(|reg| reg.add(path, None));
    match r {
        Ok(e) if json => eprintln!(
            "{}",
            serde_json::json!({"event": "registered", "name": e.name, "sha256": e.digest})
        ),
        Ok(e) => println!("registered as {} (sha256 {})", e.name, short(&e.digest)),
        Err(e) => eprintln!(
            "warning: {} was not registered: {e} (the package is fine; `alc add` it later, or pass --no-register)",
            path.display()
        ),
    }
}

/// The file to load for a model argument: the path itself when it exists or looks
/// like a path (has a '/'); else the package of that name or tag in the registry.
pub fn resolve_model(model: &Path) -> Result<PathBuf> {
    let s = model.to_string_lossy();
    if model.exists() || s.contains('/') || s.contains(std::path::MAIN_SEPARATOR) {
        return Ok(model.to_path_buf());
    }
    let home = alc_registry::default_home()?;
    if let Some(reg) = Registry::open_existing(&home)? {
        if let Some(p) = reg.resolve(&s)? {
            return Ok(p);
        }
    }
    bail!(
        "no file '{s}' here, and no package named '{s}' in the registry at {}; pass a model file, or `alc list` to see the registered packages",
        home.display()
    )
}
