//! `hearth serve [MODEL]`: load a model, start the engine, serve the API.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use clap::Args;
use hearth_engine::{EngineConfig, EngineHandle};
use hearth_models::store::{find_known, Store, DEFAULT_MODEL};
use hearth_server::{router, AppState};
use tokio::io::AsyncWriteExt;

use crate::size::parse_size;

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// "default", a model name from the store, a path to a GGUF file, or a Hugging
    /// Face model folder (config.json, safetensors, tokenizer.json).
    pub model: Option<String>,
    /// Config file (TOML, a [serve] table keyed by these flags' long names); flags and
    /// env (HEARTH_<FLAG>) override it. Default: $HEARTH_HOME/hearth.toml if it exists.
    #[arg(long)]
    pub config: Option<PathBuf>,
    #[arg(long, default_value = "127.0.0.1")]
    pub host: String,
    #[arg(long, default_value_t = 8000)]
    pub port: u16,
    /// Names clients use in `model` (the first is reported); defaults to the model name.
    #[arg(long, num_args = 1..)]
    pub served_model_name: Vec<String>,
    /// Longest prompt + output per request (defaults to the model's context).
    #[arg(long)]
    pub max_model_len: Option<usize>,
    #[arg(long)]
    pub max_num_seqs: Option<usize>,
    #[arg(long)]
    pub max_num_batched_tokens: Option<usize>,
    #[arg(long, overrides_with = "no_enable_prefix_caching")]
    pub enable_prefix_caching: bool,
    #[arg(long, overrides_with = "enable_prefix_caching")]
    pub no_enable_prefix_caching: bool,
    /// KV cache size, e.g. 2GiB or 512MiB.
    #[arg(long, value_parser = parse_size)]
    pub kv_cache_memory: Option<u64>,
    /// Tokens per KV block.
    #[arg(long)]
    pub block_size: Option<usize>,
    /// What the KV cache stores K and V in: `f16` (the CPU default, as llama.cpp's: half
    /// the memory of f32, so twice the tokens for the same budget and half the bytes
    /// attention reads, at ~5e-4 relative rounding of each value), `int8` (CPU only,
    /// llama.cpp's and Ollama's `q8_0` idea: a byte a value and a scale per head and
    /// token, ~1.9x the tokens of f16; each value within 1/254 of its head's largest)
    /// or `f32` (the model's own values; the GPU default, with which batch 1 was
    /// measured at 70% of an H100's bandwidth; f16 there is ~4% faster at 128 sequences).
    #[arg(long)]
    pub kv_cache_dtype: Option<hearth_models::KvDtype>,
    /// Requests accepted but not yet scheduled, at most; beyond it new ones get 503.
    #[arg(long, default_value_t = 1024)]
    pub max_queued_requests: usize,
    /// Largest request body accepted (larger ones get 413).
    #[arg(long, value_parser = parse_size, default_value = "8MiB")]
    pub max_body_size: u64,
    /// Quantize a Hugging Face folder's matrices on load (q8_0, q4_1, q4_k, ...).
    #[arg(long, value_parser = crate::quantize_cmd::parse_quant_arg)]
    pub quantization: Option<hearth_models::quantize::GgmlDType>,
    /// Where the model runs: `cpu`, or `cuda` (GPU 0; needs a build with
    /// `--features cuda`; llama-family GGUF files for now).
    #[arg(long, value_enum, default_value_t = crate::model_source::DeviceArg::Cpu)]
    pub device: crate::model_source::DeviceArg,
    /// With `--device cuda`: the share of the GPU's memory hearth may use (weights,
    /// activations, KV cache); the KV cache gets what the weights leave of it. Default
    /// 0.9, as vLLM. On the CPU, size the cache with --kv-cache-memory.
    #[arg(long)]
    pub gpu_memory_utilization: Option<f64>,
    /// With `--device cuda`: what the weights are held in on the GPU. `auto`: a GGUF
    /// file's Q4_0/Q4_1/Q8_0/Q4_K/Q6_K matrices stay quantized, the rest is bfloat16;
    /// `bfloat16` or `float32` (exact agreement with the CPU): every matrix in that type.
    #[arg(long, value_enum, default_value_t = crate::model_source::DtypeArg::Auto)]
    pub dtype: crate::model_source::DtypeArg,
    /// Refuse to start when weights plus KV cache exceed this (default: available RAM).
    #[arg(long, value_parser = parse_size)]
    pub memory: Option<u64>,
    #[command(flatten)]
    pub lifecycle: crate::lifecycle::LifecycleArgs,
    #[command(flatten)]
    pub tools: crate::tool_args::ToolArgs,
    #[command(flatten)]
    pub exposure: crate::exposure::ExposureArgs,
    #[command(flatten)]
    pub limits: crate::limit_args::LimitArgs,
    #[command(flatten)]
    pub audit: crate::audit_cmd::AuditServeArgs,
}

impl ServeArgs {
    fn engine_config(&self) -> EngineConfig {
        let mut c = EngineConfig::default();
        if let Some(v) = self.max_model_len {
            c.max_model_len = v;
        } else {
            // The engine caps this at the model's own context.
            c.max_model_len = usize::MAX;
        }
        c.max_num_seqs = self.max_num_seqs.unwrap_or(c.max_num_seqs);
        c.max_num_batched_tokens = self
            .max_num_batched_tokens
            .unwrap_or(c.max_num_batched_tokens);
        c.enable_prefix_caching = !self.no_enable_prefix_caching;
        if let Some(b) = self.kv_cache_memory {
            c.kv_cache_bytes = usize::try_from(b).unwrap_or(usize::MAX);
        }
        c.block_size = self.block_size.unwrap_or(c.block_size);
        c.kv_cache_dtype = self.kv_cache_dtype.unwrap_or(match self.device {
            crate::model_source::DeviceArg::Cpu => hearth_models::KvDtype::F16,
            // f32: the pools batch 1 was measured with on an H100 (BENCHMARKS.md); f16
            // holds twice the tokens and is ~4% faster at 128 sequences.
            _ => hearth_models::KvDtype::F32,
        });
        c.max_waiting = self.max_queued_requests;
        c
    }
}

/// The model file (or Hugging Face folder) and the name it is served under.
fn resolve_model(arg: Option<&str>) -> Result<(PathBuf, String)> {
    let arg = arg.unwrap_or("default");
    let as_path = Path::new(arg);
    if as_path.is_file() || as_path.is_dir() {
        let name = crate::model_source::default_name(as_path).unwrap_or_else(|| arg.to_string());
        return Ok((as_path.to_path_buf(), name));
    }
    let store = Store::open(Store::default_home()?)?;
    // A stored model is loaded only if it still has its manifest's hash: a file
    // changed on disk is refused, never silently served (or silently replaced).
    let (stored_name, served) = if arg == "default" {
        (DEFAULT_MODEL.to_string(), DEFAULT_MODEL.to_string())
    } else {
        let stored = find_known(arg).map_or_else(|| arg.to_string(), |k| k.name);
        (stored, arg.to_string())
    };
    // A bad name (`../x`) is refused as such, not as a changed file.
    store.model_dir(&stored_name)?;
    let verified = store.verified(&stored_name).with_context(|| {
        let hint = if find_known(&stored_name).is_some() {
            format!(" (`hearth pull {stored_name}` fetches a good copy)")
        } else {
            String::new()
        };
        format!(
            "refusing to load model '{stored_name}': its file changed since it was stored{hint}"
        )
    })?;
    match verified {
        Some(m) => Ok((m.path, served)),
        None if find_known(&stored_name).is_some() => {
            Ok((crate::pull::pull(&store, &stored_name)?, served))
        }
        None => bail!(
            "model '{arg}' is not in the store at {} (a GGUF path, `default`, or a name from `hearth models list`)",
            store.home().display()
        ),
    }
}

pub async fn run(args: ServeArgs) -> Result<()> {
    // Before loading anything: a public address without keys is refused.
    let auth = crate::exposure::open_and_check(&args.host, &args.exposure)?;
    let (path, name) = resolve_model(args.model.as_deref())?;
    crate::model_source::check_kv_flags(
        args.device,
        args.gpu_memory_utilization,
        args.kv_cache_memory,
    )?;
    crate::model_source::check_dtype(args.device, args.dtype)?;
    crate::model_source::check_kv_dtype(args.device, args.kv_cache_dtype)?;
    tracing::info!(path = %path.display(), "loading model");
    let kv = args.engine_config().kv_cache_bytes as u64;
    crate::memory_check::check(&path, args.quantization, kv, args.memory)?;
    let loaded = crate::model_source::load_on(&path, args.quantization, args.device, args.dtype)?;
    crate::heap::release_free_memory();
    // After the trim, which would split them again.
    hearth_models::huge_pages::collapse_noted();
    let tokenizer = Arc::new(loaded.tokenizer);
    let template = Arc::new(args.tools.template(loaded.template)?);
    let tool_parser = args
        .tools
        .parser(&loaded.model.spec().architecture, &template)?;
    let mut config = args.engine_config();
    let gpu_kv = crate::model_source::gpu_kv_budget(
        args.device,
        args.gpu_memory_utilization,
        args.kv_cache_memory,
    )?;
    if let Some(kv) = gpu_kv {
        tracing::info!(kv_cache_bytes = kv, "KV cache sized from free GPU memory");
        config.kv_cache_bytes = usize::try_from(kv).unwrap_or(usize::MAX);
    }
    let engine = EngineHandle::start(loaded.model, tokenizer.clone(), config)
        .context("starting the engine")?;
    let names = if args.served_model_name.is_empty() {
        // The default model also answers to the name users type to get it.
        let alias = (name == DEFAULT_MODEL).then(|| "default".to_string());
        std::iter::once(name).chain(alias).collect()
    } else {
        args.served_model_name.clone()
    };
    let mut state = AppState::new(engine, tokenizer, template, names);
    state.max_body_bytes = usize::try_from(args.max_body_size).unwrap_or(usize::MAX);
    state.generation_defaults = loaded.defaults;
    state.git_commit = crate::lifecycle::git_commit();
    state.tool_parser = tool_parser;
    state.limits = args.limits.limits();
    let audit = args.audit.start()?;
    state.observers.push(audit.clone());
    state.audit = Some(audit.clone());

    let addr = format!("{}:{}", args.host, args.port);
    let listener = tokio::net::TcpListener::bind(&addr)
        .await
        .with_context(|| format!("binding {addr}"))?;
    let bound: SocketAddr = listener.local_addr()?;
    crate::exposure::apply(&mut state, &args.exposure, auth, &args.host, bound);
    let shutdown = shutdown_signal()?;
    // Tests and scripts read this line to find the port.
    let mut out = tokio::io::stdout();
    out.write_all(format!("hearth listening on http://{bound}\n").as_bytes())
        .await?;
    out.flush().await?;
    let draining = state.draining.clone();
    let opts = args.lifecycle.options();
    hearth_server::serving::serve(listener, router(state), draining, opts, shutdown).await?;
    // Records of the last requests are still on their way to the disk.
    if !audit.flush(std::time::Duration::from_secs(10)) {
        tracing::error!("audit log: not every record was written before exit");
    }
    tracing::info!("hearth stopped");
    Ok(())
}

/// A future that resolves on Ctrl-C or SIGTERM. The handlers are installed here,
/// before the listening line is printed, so a signal sent right after it is not lost.
#[cfg(unix)]
fn shutdown_signal() -> Result<impl std::future::Future<Output = ()>> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    Ok(async move {
        tokio::select! {
            _ = term.recv() => {},
            _ = int.recv() => {},
        }
    })
}

#[cfg(not(unix))]
fn shutdown_signal() -> Result<impl std::future::Future<Output = ()>> {
    Ok(async {
        let _ = tokio::signal::ctrl_c().await;
    })
}
