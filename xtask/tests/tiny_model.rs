//! The committed tiny checkpoints are exactly what `cargo xtask tiny-model` writes, so the
//! maker and the test data (and the transformers references made from it) cannot drift.

use std::path::Path;
use std::process::Command;

#[test]
fn tiny_model_regenerates_the_committed_checkpoints_byte_for_byte() {
    let golden = Path::new(env!("CARGO_MANIFEST_DIR")).join("../golden/models");
    for preset in ["text", "multimodal", "wide"] {
        let out = tempfile::tempdir().unwrap();
        let status = Command::new(env!("CARGO_BIN_EXE_xtask"))
            .args([
                "tiny-model",
                out.path().to_str().unwrap(),
                "--preset",
                preset,
            ])
            .status()
            .unwrap();
        assert!(status.success());
        let committed = golden.join(format!("tiny-{preset}"));
        for name in [
            "config.json",
            "generation_config.json",
            "model.safetensors",
            "tokenizer.json",
            "tokenizer_config.json",
        ] {
            let made = std::fs::read(out.path().join(name)).unwrap();
            let kept = std::fs::read(committed.join(name)).unwrap();
            assert!(
                made == kept,
                "{preset}/{name} differs from the committed file; regenerate it"
            );
        }
    }
}
