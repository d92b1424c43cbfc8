//! `alc devices` and `alc fit`: device profiles and peak-memory verdicts (crate
//! alc-fit). Exit codes of `alc fit`: 0 fits or tight, 1 does not fit on the named
//! device (or any error), 2 unreadable input.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use alc_fit::{
    fit, load_devices, rank, Device, Devices, Estimate, Estimator, FitReport, Ranked, Verdict,
};
use alc_registry::Registry;
use anyhow::{bail, Context, Result};
use clap::Args;

use crate::{one_line, registry};

#[derive(Args)]
pub struct DevicesArgs {
    /// Print JSON (alc.devices/1) instead of a table.
    #[arg(long)]
    pub json: bool,
    /// TOML file of extra or replacement profiles (default: devices.toml in ALC_HOME
    /// when it exists; docs/FIT.md).
    #[arg(long, value_name = "FILE")]
    pub devices: Option<PathBuf>,
}

#[derive(Args)]
pub struct FitArgs {
    /// Package or GGUF file, or registry name (not needed with --recommend).
    #[arg(required_unless_present = "recommend")]
    pub package: Option<PathBuf>,
    /// Device id (`alc devices`); without it every device gets a verdict.
    #[arg(long)]
    pub device: Option<String>,
    /// Context length (default: what `alc run` uses without --ctx).
    #[arg(long)]
    pub ctx: Option<usize>,
    /// Prefill chunk size, as `alc run --ubatch` (default 512).
    #[arg(long)]
    pub ubatch: Option<usize>,
    /// Compute threads the engine would run (default: all cores here).
    #[arg(short = 't', long)]
    pub threads: Option<usize>,
    /// Print JSON (alc.fit/1, docs/FIT.md): the breakdown in bytes with total_bytes.
    #[arg(long)]
    pub json: bool,
    /// Rank the registry's packages for --device.
    #[arg(long, requires = "device", conflicts_with = "package")]
    pub recommend: bool,
    /// TOML file of extra or replacement device profiles.
    #[arg(long, value_name = "FILE")]
    pub devices: Option<PathBuf>,
}

/// Profiles: built in, plus --devices or ALC_HOME/devices.toml.
fn profiles(file: Option<&Path>) -> Result<Devices> {
    let path = match file {
        Some(p) => Some(p.to_path_buf()),
        None => alc_registry::default_home()
            .ok()
            .map(|h| h.join("devices.toml"))
            .filter(|p| p.is_file()),
    };
    Ok(load_devices(path.as_deref())?)
}

fn gib(b: u64) -> String {
    format!("{:.2} GiB", b as f64 / (1u64 << 30) as f64)
}

fn mib(b: u64) -> String {
    format!("{:.1} MiB", b as f64 / (1u64 << 20) as f64)
}

pub fn devices(a: DevicesArgs) -> Result<()> {
    let d = profiles(a.devices.as_deref())?;
    if a.json {
        let v = serde_json::json!({ "schema": "alc.devices/1", "devices": d.list });
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(());
    }
    println!(
        "{:<24} {:<26} {:<17} {:>9} {:>10}  {:<24} backend",
        "id", "name", "class", "RAM", "usable", "GPU"
    );
    for x in &d.list {
        println!(
            "{:<24} {:<26} {:<17} {:>9} {:>10}  {:<24} {}",
            x.id,
            x.name,
            x.class.name(),
            gib(x.ram_bytes),
            gib(x.usable_bytes),
            x.gpu,
            x.backend
        );
    }
    println!("usable = RAM - OS reserve: android-wearable 512 MiB + 25 %, android-phone 1 GiB + 35 %, ios 50 % (docs/FIT.md)");
    Ok(())
}

/// Open a package for estimating; sealed files are refused with the way out.
fn estimator(path: &Path, threads: usize) -> Result<Estimator> {
    if alc_seal::is_sealed(path) {
        bail!(
            "{} is sealed; fit the package it was sealed from (or `alc unseal` it first): a sealed package is decrypted into memory, so its weights are resident twice over while the engine repacks them",
            path.display()
        );
    }
    let file = alc_format::GgufFile::open(path)?;
    if file.get_str("general.architecture").ok().flatten() == Some("bert") {
        bail!(
            "{} is an embedding model (bert): alc fit estimates language models only; an embedding package needs about its file size plus a few MiB of activations (see `alc bench {} -f SENTENCES` for its measured peak RSS)",
            path.display(),
            path.display()
        );
    }
    Ok(Estimator::new(Arc::new(file), threads)?)
}

fn print_estimate(name: &str, est: &Estimator, e: &Estimate) {
    let hp = &est.model().hp;
    let n_params: u64 = est
        .model()
        .file
        .tensors()
        .iter()
        .map(|t| t.n_elements())
        .sum();
    println!(
        "{name}: {}, {:.1} M parameters, ctx {} (trained {}), ubatch {}, {} threads",
        hp.arch,
        n_params as f64 / 1e6,
        e.ctx,
        e.ctx_train,
        e.ubatch,
        e.threads
    );
    let rows = [
        (
            "weights",
            e.weights_bytes,
            "read every token (mapped or repacked)",
        ),
        (
            "embedding rows",
            e.embedding_rows_bytes,
            if est.model().tied_output() {
                "tied: the table is in weights"
            } else {
                "untied table: pages a full context can touch"
            },
        ),
        (
            "KV cache",
            e.kv_cache_bytes,
            "f16, committed at session start",
        ),
        (
            "activations",
            e.activations_bytes,
            "one prefill chunk + logits",
        ),
        ("backend scratch", e.backend_scratch_bytes, ""),
        ("GGUF header", e.header_bytes, "mapped"),
        ("metadata heap", e.metadata_heap_bytes, ""),
        ("tokenizer", e.tokenizer_bytes, ""),
        ("sampler", e.sampler_bytes, ""),
        ("runtime", e.runtime_bytes, "code, libc, stacks"),
        (
            "vision tower",
            e.vision_weights_bytes,
            "encoder + projector",
        ),
        (
            "one image",
            e.image_bytes,
            "largest grid: pixels, one tile's activations, rows",
        ),
    ];
    for (k, v, note) in rows {
        if v == 0 && matches!(k, "vision tower" | "one image") {
            continue;
        }
        println!("{}", format!("  {k:<16} {:>11}  {note}", mib(v)).trim_end());
    }
    println!("  {:<16} {:>11}", "total", mib(e.total_bytes));
}

fn ctx_text(c: Option<usize>) -> String {
    c.map_or("none".into(), |c| c.to_string())
}

fn device_line(r: &FitReport) -> String {
    let d = &r.device;
    format!(
        "{} ({}, {} RAM, {} usable): {} ({:.0} % of usable); largest context {} (comfortable {})",
        d.id,
        d.name,
        gib(d.ram_bytes),
        gib(d.usable_bytes),
        r.verdict.text(),
        r.total_bytes as f64 * 100.0 / d.usable_bytes.max(1) as f64,
        ctx_text(r.max_ctx),
        ctx_text(r.max_ctx_comfortable)
    )
}

/// Runs `alc fit`; returns the exit code.
pub fn fit_cmd(a: FitArgs) -> Result<i32> {
    if let Some(0) = a.threads {
        bail!("--threads must be at least 1");
    }
    let threads = a.threads.unwrap_or_else(alc_engine::default_threads);
    let devs = profiles(a.devices.as_deref())?;
    if a.recommend {
        let dev = devs.get(a.device.as_deref().expect("clap: requires device"))?;
        return recommend(&a, dev, threads);
    }
    let given = a
        .package
        .as_ref()
        .expect("clap: required unless --recommend");
    let path = registry::resolve_model(given)?;
    let est = match estimator(&path, threads) {
        Ok(e) => e,
        Err(e) => {
            eprintln!("error: {}", one_line(&e));
            return Ok(2);
        }
    };
    let ctx = a.ctx.unwrap_or_else(|| est.default_ctx());
    let e = est.estimate(ctx, a.ubatch)?;
    let targets: Vec<&Device> = match &a.device {
        Some(id) => vec![devs.get(id)?],
        None => devs.list.iter().collect(),
    };
    let reports = targets
        .iter()
        .map(|d| fit(&est, d, ctx, a.ubatch))
        .collect::<Result<Vec<_>, _>>()?;
    if a.json {
        let mut v = serde_json::json!({
            "schema": "alc.fit/1",
            "package": given.display().to_string(),
            "path": path.display().to_string(),
            "estimate": e,
            "total_bytes": e.total_bytes,
            "devices": reports,
        });
        if let [r] = reports.as_slice() {
            if a.device.is_some() {
                v["verdict"] = serde_json::to_value(r.verdict)?;
            }
        }
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else {
        print_estimate(&given.display().to_string(), &est, &e);
        if a.device.is_some() {
            println!("{}", device_line(&reports[0]));
        } else {
            println!(
                "\n{:<24} {:>9} {:>10}  {:<13} {:>8} {:>12}",
                "device", "RAM", "usable", "verdict", "max ctx", "comfortable"
            );
            for r in &reports {
                println!(
                    "{:<24} {:>9} {:>10}  {:<13} {:>8} {:>12}",
                    r.device.id,
                    gib(r.device.ram_bytes),
                    gib(r.device.usable_bytes),
                    r.verdict.text(),
                    ctx_text(r.max_ctx),
                    ctx_text(r.max_ctx_comfortable)
                );
            }
        }
    }
    let code = match (&a.device, reports.first().map(|r| r.verdict)) {
        (Some(_), Some(Verdict::DoesNotFit)) => 1,
        _ => 0,
    };
    Ok(code)
}

fn recommend(a: &FitArgs, dev: &Device, threads: usize) -> Result<i32> {
    let home = alc_registry::default_home()?;
    let Some(reg) = Registry::open_existing(&home)? else {
        bail!(
            "no registry at {}; add packages with `alc add` or `alc compile` first",
            home.display()
        );
    };
    // One candidate per stored file, under all its names.
    let mut by_digest: Vec<(String, Vec<String>, PathBuf)> = Vec::new();
    for e in reg.list().context("listing the registry")? {
        match by_digest.iter_mut().find(|(d, _, _)| *d == e.digest) {
            Some((_, names, _)) => names.push(e.name),
            None => by_digest.push((e.digest, vec![e.name], e.path)),
        }
    }
    let mut ranked = Vec::new();
    let mut failed = Vec::new();
    for (_, names, path) in by_digest {
        let name = names.join(", ");
        let r = estimator(&path, threads).and_then(|est| {
            let ctx = a.ctx.unwrap_or_else(|| est.default_ctx());
            let report = fit(&est, dev, ctx, a.ubatch)?;
            let n_params = est
                .model()
                .file
                .tensors()
                .iter()
                .map(|t| t.n_elements())
                .sum();
            Ok(Ranked {
                name: name.clone(),
                n_params,
                report,
            })
        });
        match r {
            Ok(x) => ranked.push(x),
            Err(e) => failed.push((name, one_line(&e))),
        }
    }
    let ranked = rank(ranked);
    if a.json {
        let v = serde_json::json!({
            "schema": "alc.fit-recommend/1",
            "device": dev,
            "packages": ranked,
            "unreadable": failed.iter().map(|(n, e)| serde_json::json!({"name": n, "error": e})).collect::<Vec<_>>(),
        });
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else {
        println!(
            "{} ({}, {} RAM, {} usable)",
            dev.id,
            dev.name,
            gib(dev.ram_bytes),
            gib(dev.usable_bytes)
        );
        println!(
            "{:>3}  {:<32} {:>10} {:>7} {:>11}  {:<13} {:>8}",
            "#", "package", "params", "ctx", "estimate", "verdict", "max ctx"
        );
        for (i, r) in ranked.iter().enumerate() {
            println!(
                "{:>3}  {:<32} {:>9.1}M {:>7} {:>11}  {:<13} {:>8}",
                i + 1,
                r.name,
                r.n_params as f64 / 1e6,
                r.report.estimate.ctx,
                mib(r.report.total_bytes),
                r.report.verdict.text(),
                ctx_text(r.report.max_ctx)
            );
        }
        for (n, e) in &failed {
            println!("  -  {n}: cannot estimate: {e}");
        }
        if ranked.is_empty() && failed.is_empty() {
            println!("(the registry is empty)");
        }
    }
    Ok(0)
}
