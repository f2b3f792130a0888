//! `gemma3 doctor` reports each backend and dtype from a real preflight.

use std::process::Command;

#[test]
fn doctor_reports_the_cpu_healthy_in_every_dtype_and_absent_backends_with_the_fix() {
    let out = Command::new(env!("CARGO_BIN_EXE_gemma3"))
        .arg("doctor")
        .env_remove("HF_TOKEN")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for dtype in ["f32", "bf16", "f16"] {
        assert!(
            stdout
                .lines()
                .any(|l| l.starts_with("cpu") && l.contains(dtype) && l.contains("ok (")),
            "{stdout}"
        );
    }
    if !cfg!(feature = "cuda") {
        assert!(
            stdout.contains("built without cuda; rebuild with `--features cuda`"),
            "{stdout}"
        );
    }
    assert!(stdout.contains("hub cache"), "{stdout}");
}

fn doctor_json(token: Option<&str>) -> serde_json::Value {
    let home = tempfile::tempdir().unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_gemma3"));
    cmd.args(["doctor", "--json"]).env("HF_HOME", home.path());
    match token {
        Some(t) => cmd.env("HF_TOKEN", t),
        None => cmd.env_remove("HF_TOKEN"),
    };
    let out = cmd.output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    if let Some(t) = token {
        assert!(
            !stdout.contains(t),
            "the token itself must never be printed"
        );
    }
    serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: {stdout}"))
}

#[test]
fn doctor_json_has_devices_dtypes_preflight_cache_and_token_presence() {
    let report = doctor_json(None);
    let backends = report["backends"].as_array().unwrap();
    let names: Vec<&str> = backends
        .iter()
        .map(|b| b["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["cpu", "cuda", "metal"]);
    let cpu = &backends[0];
    assert!(cpu["device"].as_str().unwrap().contains("threads"), "{cpu}");
    let dtypes: Vec<&str> = cpu["dtypes"]
        .as_array()
        .unwrap()
        .iter()
        .inspect(|d| {
            assert_eq!(d["supported"], true, "{d}");
            assert!(d["ops"].as_u64().unwrap() > 50, "{d}");
        })
        .map(|d| d["dtype"].as_str().unwrap())
        .collect();
    assert_eq!(dtypes, ["f32", "bf16", "f16"]);
    if !cfg!(feature = "cuda") {
        assert_eq!(backends[1]["compiled"], false);
        assert!(backends[1]["unavailable"].is_string());
    }
    assert!(report["hub"]["cache"].as_str().unwrap().ends_with("hub"));
    assert_eq!(report["hub"]["token_present"], false);
    assert_eq!(
        doctor_json(Some("hf_not_a_real_token_42"))["hub"]["token_present"],
        true
    );
}
