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
