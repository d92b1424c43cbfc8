//! `alc serve`: the OpenAI-compatible HTTP server (alc-serve) over the named models.

use std::path::{Path, PathBuf};
use std::time::Duration;

use alc_serve::{AbSlot, ModelHandle, ServeConfig, ServedModel, Server};
use anyhow::{bail, Context, Result};
use clap::Args;

use crate::{embed, registry, seal, EngineArgs};

#[derive(Args)]
pub struct ServeArgs {
    /// Models to serve: package or GGUF files, registry names, or A/B slots of the
    /// registry (`alc ab set`): a slot serves its arms, and a request naming the
    /// slot goes to the arm its `user` field buckets into (the response's `model`
    /// names the arm). Embedding packages (bert) answer /v1/embeddings, language
    /// models the completion endpoints.
    #[arg(required = true, value_name = "MODEL")]
    pub models: Vec<PathBuf>,
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1")]
    pub host: String,
    /// Port to listen on (0: any free port; the address is printed).
    #[arg(long, default_value_t = 8080)]
    pub port: u16,
    /// Compute threads per model (default: all cores).
    #[arg(short = 't', long)]
    pub threads: Option<usize>,
    /// Context length of each sequence of a language model (default: the model's,
    /// capped so that all --parallel KV caches fit a 1 GiB budget).
    #[arg(long)]
    pub ctx: Option<usize>,
    /// Requests admitted per model, running ones included; more get HTTP 429.
    #[arg(long, default_value_t = 16)]
    pub queue: usize,
    /// Generations of one language model decoded together (continuous batching);
    /// each holds its own KV cache. At most --queue [default: 4, or --queue if less].
    #[arg(long)]
    pub parallel: Option<usize>,
    /// Largest request body in bytes; larger get HTTP 413.
    #[arg(long, default_value_t = 4 << 20, value_name = "BYTES")]
    pub max_body: usize,
    /// Deadline of one request in seconds, queue time included.
    #[arg(long, default_value_t = 600, value_name = "SECS")]
    pub timeout: u64,
    /// Key of sealed models (.ava3).
    #[command(flatten)]
    pub key: seal::KeyArgs,
}

/// The id clients use: the registry name when the argument was one, else the file
/// stem.
fn model_id(arg: &Path) -> String {
    let s = arg.to_string_lossy();
    if !arg.exists() && !s.contains('/') && !s.contains(std::path::MAIN_SEPARATOR) {
        return s.into_owned();
    }
    let stem = arg
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| s.into_owned());
    stem.strip_suffix(".ava3")
        .map(str::to_string)
        .unwrap_or(stem)
}

/// The registry's A/B slot of this name, when the argument is not a file and the
/// registry has such a slot.
fn ab_slot(arg: &Path) -> Result<Option<alc_registry::Slot>> {
    let s = arg.to_string_lossy();
    if arg.exists() || s.contains('/') || s.contains(std::path::MAIN_SEPARATOR) {
        return Ok(None);
    }
    let home = alc_registry::default_home()?;
    let Some(reg) = alc_registry::Registry::open_existing(&home)? else {
        return Ok(None);
    };
    match reg.ab_slot(&s) {
        Ok(slot) => Ok(Some(slot)),
        Err(alc_registry::RegistryError::NoSlot { .. }) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

pub fn serve(a: ServeArgs) -> Result<()> {
    if let Some(0) = a.threads {
        bail!("--threads must be at least 1");
    }
    let parallel = a.parallel.unwrap_or(4.min(a.queue));
    if parallel == 0 || parallel > a.queue {
        bail!("--parallel {parallel} must be in 1..=--queue ({})", a.queue);
    }
    if a.timeout == 0 {
        bail!("--timeout must be at least 1 second");
    }
    let threads = a.threads.unwrap_or_else(alc_engine::default_threads);
    // Expand A/B slot names into their arms (each served once, by its name).
    let mut wanted: Vec<(PathBuf, String)> = Vec::new();
    let mut ab_slots = Vec::new();
    for m in &a.models {
        match ab_slot(m)? {
            Some(slot) => {
                for arm in &slot.arms {
                    let p = PathBuf::from(&arm.name);
                    if !wanted.iter().any(|(_, id)| id == &arm.name) {
                        wanted.push((p, arm.name.clone()));
                    }
                }
                eprintln!(
                    "A/B slot '{}': {}",
                    slot.slot,
                    slot.arms
                        .iter()
                        .map(|x| format!("{}={}", x.name, x.weight))
                        .collect::<Vec<_>>()
                        .join(", ")
                );
                ab_slots.push(AbSlot {
                    id: slot.slot,
                    arms: slot.arms.into_iter().map(|x| (x.name, x.weight)).collect(),
                });
            }
            None => wanted.push((m.clone(), model_id(m))),
        }
    }
    let mut models = Vec::with_capacity(wanted.len());
    for (m, id) in wanted {
        let handle = if embed::is_embedding_model(&m) {
            ModelHandle::Embedding(Box::new(embed::open(&m, threads, &a.key, None)?))
        } else {
            // Fail early with the registry's message when the name is unknown.
            registry::resolve_model(&m)?;
            let e = EngineArgs {
                model: m.clone(),
                threads: Some(threads),
                ctx: a.ctx,
                ubatch: None,
                deadline_scale: 1.0,
                key: a.key.clone(),
                kv_budget_bytes: Some(alc_engine::DEFAULT_KV_BUDGET_BYTES / parallel.max(1) as u64),
            };
            ModelHandle::Language(e.open()?)
        };
        eprintln!("loaded {} as '{id}'", m.display());
        models.push(ServedModel { id, handle });
    }
    let cfg = ServeConfig {
        host: a.host.clone(),
        port: a.port,
        queue: a.queue,
        parallel,
        max_body: a.max_body,
        request_timeout: Duration::from_secs(a.timeout),
        ab_slots,
    };
    let server = Server::bind(models, cfg)?;
    let addr = server.local_addr()?;
    eprintln!(
        "alc serve: listening on http://{addr} (models: {}; OpenAI API under /v1)",
        server.model_ids().join(", ")
    );
    server.run().context("alc serve")
}
