//! `gemma3 doctor`: what this build and this machine can do, in one screen: the backends
//! compiled in, the devices present, whether the model's ops run on each (the preflight, per
//! dtype), and the Hugging Face cache and token.

use anyhow::Result;
use candle_core::DType;
use inference::device::DeviceChoice;
use op_matrix::preflight;

#[derive(clap::Args)]
pub struct Args {}

pub fn run(_: Args) -> Result<bool> {
    println!(
        "gemma3 {} (candle {})",
        env!("CARGO_PKG_VERSION"),
        op_matrix::CANDLE_VERSION
    );
    let mut healthy = true;
    for choice in [
        DeviceChoice::Cpu,
        DeviceChoice::Cuda(0),
        DeviceChoice::Metal(0),
    ] {
        let name = choice.backend_name();
        let device = match choice.open() {
            Ok(d) => d,
            Err(e) => {
                println!("{name:6} unavailable: {e}");
                continue;
            }
        };
        for dtype in [DType::F32, DType::BF16, DType::F16] {
            let check = preflight::run(&device, name, dtype, None)?;
            let verdict = if check.passed() {
                format!(
                    "ok ({} ops in {:.0} ms)",
                    check.executed,
                    check.elapsed.as_secs_f64() * 1e3
                )
            } else {
                healthy = false;
                let fix = check
                    .fix(name)
                    .map(|f| format!("; fix: {f}"))
                    .unwrap_or_default();
                format!("FAIL: {}{fix}", check.summary())
            };
            println!("{name:6} {:5} {verdict}", dtype.as_str());
        }
    }
    let cache = hf_hub::Cache::from_env();
    println!("hub cache {}", cache.path().display());
    let token = std::env::var("HF_TOKEN")
        .map(|t| !t.is_empty())
        .unwrap_or(false)
        || cache.token().is_some();
    println!(
        "hub token {}",
        if token {
            "found (HF_TOKEN or the token file)"
        } else {
            "none: gated Gemma repositories will refuse downloads; set HF_TOKEN"
        }
    );
    if inference::hub::offline_requested() {
        println!("hub mode  offline (HF_HUB_OFFLINE): only cached models load");
    }
    Ok(healthy)
}
