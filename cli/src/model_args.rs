//! Options shared by every command that loads a model.

use std::path::PathBuf;
use std::rc::Rc;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use candle_core::{DType, Device};
use inference::device::{Backend, DTypeChoice, DeviceChoice};
use inference::load::checkpoint::Checkpoint;
use inference::load::generation_config::GenerationConfig;
use inference::load::hub;
use inference::load::memory::{self, Need};
use inference::model::Gemma3;
use inference::ops::fallback::{self, Plan};
use inference::ops::quant::QuantType;
use inference::ops::OpKind;
use inference::text::chat::ChatTemplate;
use inference::text::tokenizer::Tokenizer;
use op_matrix_core::preflight::{self, Preflight};

#[derive(clap::Args)]
pub struct ModelArgs {
    /// A Hugging Face Hub model id (downloaded and cached; `HF_TOKEN` for gated repositories).
    /// A repository of GGUF files takes its quantization after a colon, as llama.cpp does:
    /// `bartowski/google_gemma-3-1b-it-GGUF:Q4_K_M`.
    #[arg(
        short,
        long,
        default_value = "google/gemma-3-1b-it",
        conflicts_with = "which"
    )]
    pub model: String,
    /// The Hub revision: a branch, tag or commit.
    #[arg(long, default_value = "main")]
    pub revision: String,
    /// A local checkpoint directory (config.json, *.safetensors and tokenizer.json, or one
    /// .gguf file) instead of the Hub.
    #[arg(long, conflicts_with = "gguf")]
    pub model_dir: Option<PathBuf>,
    /// A local GGUF file (llama.cpp's format): the configuration, tokenizer and chat template
    /// come from its metadata (a tokenizer.json beside it is used where present, and must
    /// agree); quantized weights stay in their blocks.
    #[arg(long, value_name = "FILE")]
    pub gguf: Option<PathBuf>,
    /// The legacy engine's model names: 3-1b, 3-1b-it, 3-4b, 3-4b-it, 3-12b, 3-12b-it, 3-27b, 3-27b-it.
    #[arg(long, value_parser = parse_which)]
    pub which: Option<String>,
    /// `auto`, `cpu`, `cuda[:N]` or `metal[:N]`.
    #[arg(long, default_value = "auto", value_parser = parse_device)]
    pub device: DeviceChoice,
    /// Same as `--device cpu` (the legacy engine's flag).
    #[arg(long, conflicts_with = "device")]
    pub cpu: bool,
    /// Skip the preflight that replays the model's ops on the device before loading weights.
    #[arg(long)]
    pub no_preflight: bool,
    /// Run the ops that the preflight finds unsupported on the device on this backend
    /// instead, moving their tensors across; every other op stays on the device.
    #[arg(long, value_enum, value_name = "BACKEND")]
    pub fallback: Option<Fallback>,
    /// Make the device reject this op, in the preflight and at run time (a drill for the
    /// fallback paths; not for users).
    #[arg(long, hide = true, value_name = "OP")]
    pub inject_unsupported: Option<OpKind>,
    /// Most positions the context holds, the prompt and every reply together (the KV cache's
    /// size); the model's own `max_position_embeddings` when unset or larger.
    #[arg(short = 'c', long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub ctx_size: Option<u32>,
    /// CPU threads for the kernels (`RAYON_NUM_THREADS`); all cores when unset.
    #[arg(short = 't', long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub threads: Option<u32>,
    /// auto, f32, bf16 or f16.
    #[arg(long, default_value = "auto", value_parser = parse_dtype)]
    pub dtype: DTypeChoice,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Fallback {
    Cpu,
}

fn parse_device(s: &str) -> Result<DeviceChoice, String> {
    s.parse().map_err(|e: inference::Error| e.to_string())
}

/// The Hub id of a legacy `--which` name.
fn parse_which(s: &str) -> Result<String, String> {
    let (size, tuned) = match s.strip_suffix("-it") {
        Some(size) => (size, "it"),
        None => (s, "pt"),
    };
    match size {
        "3-1b" | "3-4b" | "3-12b" | "3-27b" => Ok(format!("google/gemma-{size}-{tuned}")),
        _ => Err(format!(
            "unknown model `{s}`; use 3-1b, 3-1b-it, 3-4b, 3-4b-it, 3-12b, 3-12b-it, 3-27b or 3-27b-it"
        )),
    }
}

fn parse_dtype(s: &str) -> Result<DTypeChoice, String> {
    s.parse().map_err(|e: inference::Error| e.to_string())
}

pub struct Loaded {
    pub model: Gemma3,
    /// The ops running on the host instead of the device, while `model` lives.
    pub fallback: Option<Rc<Plan>>,
    /// How long the preflight took; `None` when it was skipped.
    pub preflight: Option<Duration>,
    _installed: Option<fallback::Installed>,
    pub tokenizer: Tokenizer,
    /// The chat template of `tokenizer_config.json`, for instruction-tuned checkpoints.
    pub chat_template: Option<ChatTemplate>,
    /// The sampling defaults of `generation_config.json`, which the flags override.
    pub generation_config: Option<GenerationConfig>,
}

impl Loaded {
    /// Token ids that end a generation: the config's EOS ids and `<end_of_turn>`.
    pub fn stop_ids(&self) -> Vec<u32> {
        let mut ids = self.model.config().eos_token_ids.clone();
        ids.extend(self.tokenizer.token_id("<end_of_turn>"));
        ids
    }
}

impl ModelArgs {
    /// The checkpoint directory or GGUF file to open, downloaded from the Hub when needed.
    fn checkpoint_path(&self) -> Result<PathBuf> {
        if let Some(path) = self.gguf.as_ref().or(self.model_dir.as_ref()) {
            return Ok(path.clone());
        }
        // A device named explicitly that cannot open fails before a download of gigabytes,
        // not after it.
        if !self.cpu && self.device != DeviceChoice::Auto {
            self.device.open()?;
        }
        let id = self.which.as_deref().unwrap_or(&self.model);
        hub::fetch(id, &self.revision)
            .with_context(|| format!("getting {id} from the Hugging Face Hub"))
    }

    /// Picks the device and dtype: the first candidate whose preflight passes, replaying the
    /// quantized ops of the block formats `quants` besides the unquantized ones. An explicit
    /// device that fails is an error with the reason and the fix; under `auto`, a failing
    /// backend is skipped with one line naming its missing ops. With `--fallback`, a device
    /// that fails some ops is used anyway, those ops running on the host.
    fn device(&self, quants: &[QuantType], stored: Option<DType>) -> Result<Selection> {
        let explicit = if self.cpu {
            DeviceChoice::Cpu
        } else {
            self.device
        };
        let candidates = match explicit {
            DeviceChoice::Auto => vec![
                DeviceChoice::Cuda(0),
                DeviceChoice::Metal(0),
                DeviceChoice::Cpu,
            ],
            other => vec![other],
        };
        let auto = candidates.len() > 1;
        if let Some(op) = self.inject_unsupported {
            fallback::refuse(op);
        }
        for choice in candidates {
            let device = match choice.open() {
                Ok(d) => d,
                Err(e) if auto => {
                    tracing::info!("--device auto: {e}");
                    continue;
                }
                Err(e) => return Err(e.into()),
            };
            let dtype = self.dtype.resolve(&device, stored);
            let mut selected = Selection {
                device,
                dtype,
                fallback: None,
                preflight: None,
            };
            if self.no_preflight {
                return Ok(selected);
            }
            let backend = Backend::of(&selected.device);
            let check = preflight::run(
                &selected.device,
                backend,
                dtype,
                quants,
                self.inject_unsupported,
            )
            .context("running the preflight")?;
            tracing::info!(
                "preflight on {backend} ({dtype:?}): {} ops in {:.1} ms",
                check.executed,
                check.elapsed.as_secs_f64() * 1e3
            );
            selected.preflight = Some(check.elapsed);
            if check.passed() {
                return Ok(selected);
            }
            if self.fallback.is_some() {
                return hybrid(selected, backend, quants, &check);
            }
            if auto && choice != DeviceChoice::Cpu {
                eprintln!("note: not using {backend}: {}", check.summary());
                continue;
            }
            let fix = check
                .fix(backend)
                .map(|f| format!("; fix: {f}"))
                .unwrap_or_default();
            bail!(
                "{backend} cannot run this model in {dtype:?}: {}{fix} (--fallback cpu runs those ops on the CPU; --no-preflight skips this check)",
                check.summary()
            );
        }
        bail!("no device is available")
    }

    pub fn load(&self) -> Result<Loaded> {
        // Opening reads the configuration and a GGUF file's header, which name the block
        // formats the preflight must replay; no weight is read before the preflight.
        let dir = self.checkpoint_path()?;
        let mut checkpoint = Checkpoint::open(&dir).context("opening the checkpoint")?;
        let generation_config = checkpoint
            .generation_config()
            .context("reading the sampling defaults (fix or remove the file)")?;
        if let Some(n) = self.ctx_size {
            let positions = &mut checkpoint.config.text.max_position_embeddings;
            *positions = (*positions).min(n as usize);
        }
        let quants: Vec<QuantType> = checkpoint.quant_types().into_iter().collect();
        let Selection {
            device,
            dtype,
            fallback,
            preflight,
        } = self.device(&quants, checkpoint.config.stored_dtype)?;
        fit_in_memory(&mut checkpoint, &device, dtype, self.ctx_size.is_some())?;
        if dtype == DType::F16 {
            tracing::warn!(
                "Gemma 3's activations overflow f16 (transformers #36822): expect NaN or nonsense; \
                 bf16 has f32's range at the same size"
            );
        }
        // Installed before loading: the load itself runs ops (dtype casts).
        let installed = fallback.clone().map(fallback::install);
        let tokenizer = checkpoint.tokenizer()?;
        let chat_template = checkpoint
            .chat_template()
            .context("reading the chat template (--raw does without it)")?;
        let model = checkpoint
            .load_model(&device, dtype)
            .context("loading the weights")?;
        Ok(Loaded {
            model,
            fallback,
            preflight,
            _installed: installed,
            tokenizer,
            chat_template,
            generation_config,
        })
    }
}

/// Bounds the context to what `device`'s free memory holds beside the weights, or refuses a
/// model that cannot fit, before any weight is read.
fn fit_in_memory(
    checkpoint: &mut Checkpoint,
    device: &Device,
    dtype: DType,
    chosen: bool,
) -> Result<()> {
    let Some(free) = memory::free_on(device)? else {
        tracing::debug!(
            "the free memory of {device:?} is unknown; not checking that the model fits"
        );
        return Ok(());
    };
    let place = if device.is_cpu() {
        "the free memory".to_string()
    } else {
        format!("the free memory of {}", inference::device::describe(device))
    };
    tracing::debug!("{place}: {} bytes", free);
    let config = &checkpoint.config;
    let need = Need::new(
        &config.text,
        checkpoint.weight_files(),
        config.stored_dtype,
        dtype,
    )?;
    let context = config.text.max_position_embeddings;
    let fits = need
        .fit(context, free, chosen)
        .with_context(|| format!("fitting the model in {place}"))?;
    if fits < context {
        eprintln!(
            "note: the context is limited to {fits} positions (the model's holds {context}) to fit \
             in {place}; --ctx-size sets it"
        );
        checkpoint.config.text.max_position_embeddings = fits;
    }
    Ok(())
}

/// Where the model runs.
struct Selection {
    device: Device,
    dtype: DType,
    fallback: Option<Rc<Plan>>,
    preflight: Option<Duration>,
}

/// Runs the ops that failed the preflight on the CPU, and says so once, with their share of
/// the op time measured by replaying the model's inventory that way.
fn hybrid(
    selected: Selection,
    backend: Backend,
    quants: &[QuantType],
    check: &Preflight,
) -> Result<Selection> {
    let plan = Rc::new(Plan::to_cpu(check.failures.keys().copied()));
    let share = preflight::host_share(&selected.device, selected.dtype, quants, &plan)
        .context("timing the fallback")?;
    eprintln!(
        "warning: running {} on the cpu instead of {backend} ({:.1}% of the op time in a replay of the model's ops): {}",
        plan.ops().map(OpKind::name).collect::<Vec<_>>().join(", "),
        share * 100.0,
        check.summary()
    );
    Ok(Selection {
        fallback: Some(plan),
        ..selected
    })
}
