//! `gemma3 doctor`: what this build and this machine can do, in one screen: the backends
//! compiled in, the devices present, whether the model's ops run on each (the preflight, per
//! dtype), and the Hugging Face cache and token.

use std::collections::BTreeMap;

use anyhow::Result;
use inference::device::{self, Backend as Kind, DeviceChoice};
use inference::ops::cpu::kernel_path::{self, KernelPath};
use inference::ops::quant::QuantType;
use op_matrix_core::preflight;
use serde::Serialize;

use super::output;

#[derive(clap::Args)]
pub struct Args {
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Serialize)]
struct Report {
    version: &'static str,
    candle: &'static str,
    cpu_kernels: CpuKernels,
    backends: Vec<Backend>,
    hub: Hub,
}

#[derive(Serialize)]
struct Backend {
    name: &'static str,
    /// Whether this binary was built with the backend.
    compiled: bool,
    /// The device's name when one opened.
    device: Option<String>,
    /// Why no device opened.
    unavailable: Option<String>,
    /// The preflight per dtype; a dtype is supported when its preflight passes.
    dtypes: Vec<DTypeCheck>,
}

#[derive(Serialize)]
struct DTypeCheck {
    dtype: &'static str,
    supported: bool,
    ops: usize,
    ms: f64,
    failures: BTreeMap<&'static str, String>,
    fix: Option<String>,
}

/// This crate's own CPU kernels: the path in use and every path the CPU can run.
#[derive(Serialize)]
struct CpuKernels {
    active: KernelPath,
    supported: Vec<KernelPath>,
    /// Whether `GEMMA3_CPU_KERNELS` chose the active path.
    forced: bool,
}

#[derive(Serialize)]
struct Hub {
    cache: String,
    /// Whether a token was found; the token itself is never printed.
    token_present: bool,
    offline: bool,
}

impl Report {
    fn healthy(&self) -> bool {
        self.backends
            .iter()
            .flat_map(|b| &b.dtypes)
            .all(|d| d.supported)
    }
}

pub fn run(args: Args) -> Result<bool> {
    let report = report()?;
    if args.json {
        output::line(&serde_json::to_string_pretty(&report)?)?;
    } else {
        output::write(&text(&report))?;
    }
    Ok(report.healthy())
}

fn report() -> Result<Report> {
    let backends = [
        (Kind::Cpu, true),
        (
            Kind::Cuda,
            cfg!(any(feature = "cuda", feature = "cuda-core-only")),
        ),
        (Kind::Metal, cfg!(feature = "metal")),
    ]
    .into_iter()
    .map(|(kind, compiled)| backend(kind, compiled))
    .collect::<Result<_>>()?;
    let cache = inference::load::hub::cache();
    let token_present = std::env::var("HF_TOKEN").is_ok_and(|t| !t.is_empty())
        || inference::load::hub::saved_token().is_some();
    Ok(Report {
        version: env!("CARGO_PKG_VERSION"),
        candle: op_matrix_core::CANDLE_VERSION,
        cpu_kernels: CpuKernels {
            active: kernel_path::active(),
            supported: KernelPath::supported(),
            forced: kernel_path::from_env()?.is_some(),
        },
        backends,
        hub: Hub {
            cache: cache.path().display().to_string(),
            token_present,
            offline: inference::load::hub::offline_requested(),
        },
    })
}

fn backend(kind: Kind, compiled: bool) -> Result<Backend> {
    let name = kind.name();
    let device = match DeviceChoice::from(kind).open() {
        Ok(d) => d,
        Err(e) => {
            return Ok(Backend {
                name,
                compiled,
                device: None,
                unavailable: Some(e.to_string()),
                dtypes: Vec::new(),
            })
        }
    };
    let dtypes = inference::ops::DTYPES
        .into_iter()
        .map(|dtype| {
            let check = preflight::run(&device, kind, dtype, &QuantType::ALL, None)?;
            Ok(DTypeCheck {
                dtype: dtype.as_str(),
                supported: check.passed(),
                ops: check.executed,
                ms: check.elapsed.as_secs_f64() * 1e3,
                fix: check.fix(kind),
                failures: check
                    .failures
                    .into_iter()
                    .map(|(op, why)| (op.name(), why))
                    .collect(),
            })
        })
        .collect::<Result<_>>()?;
    Ok(Backend {
        name,
        compiled,
        device: Some(device::describe(&device)),
        unavailable: None,
        dtypes,
    })
}

/// The report as the lines `gemma3 doctor` prints.
fn text(report: &Report) -> String {
    let mut out: Vec<String> = Vec::new();
    out.push(format!(
        "gemma3 {} (candle {})",
        report.version, report.candle
    ));
    let k = &report.cpu_kernels;
    let supported: Vec<&str> = k.supported.iter().map(|p| p.name()).collect();
    out.push(format!(
        "cpu    kernels {}{} (this CPU runs {}; {} chooses one)",
        k.active,
        if k.forced { ", forced" } else { "" },
        supported.join(", "),
        kernel_path::ENV
    ));
    for b in &report.backends {
        match (&b.device, &b.unavailable) {
            (Some(device), _) => out.push(format!("{:6} {device}", b.name)),
            (None, Some(why)) => out.push(format!("{:6} unavailable: {why}", b.name)),
            (None, None) => {}
        }
        for d in &b.dtypes {
            let verdict = if d.supported {
                format!("ok ({} ops in {:.0} ms)", d.ops, d.ms)
            } else {
                let ops: Vec<String> = d
                    .failures
                    .iter()
                    .map(|(op, why)| format!("{op} ({why})"))
                    .collect();
                let fix = d
                    .fix
                    .as_ref()
                    .map(|f| format!("; fix: {f}"))
                    .unwrap_or_default();
                format!("FAIL: {}{fix}", ops.join("; "))
            };
            out.push(format!("{:6} {:5} {verdict}", b.name, d.dtype));
        }
    }
    out.push(format!("hub cache {}", report.hub.cache));
    out.push(format!(
        "hub token {}",
        if report.hub.token_present {
            "found (HF_TOKEN or the token file)"
        } else {
            "none: gated Gemma repositories will refuse downloads; set HF_TOKEN"
        }
    ));
    if report.hub.offline {
        out.push("hub mode  offline (HF_HUB_OFFLINE): only cached models load".into());
    }
    out.push(String::new());
    out.join("\n")
}
