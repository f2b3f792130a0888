//! Writes a safetensors checkpoint as one GGUF file, laid out as llama.cpp's converter lays
//! it out (metadata, tokenizer, chat template, tensor names, `1 + w` norms):
//!
//! ```sh
//! cargo run --release -p inference --example write_gguf -- CHECKPOINT_DIR OUT.gguf TYPE
//! ```
//!
//! TYPE is the matrices' type: `f32`, `f16`, `bf16`, or a block format (`q4_0`, `q4_1`,
//! `q5_0`, `q5_1`, `q8_0`, `q2_k` to `q6_k`) whose block divides every row. The files that
//! `scripts/reference/llama_cpp_reference.py` scores with llama.cpp are written so.

use std::path::PathBuf;
use std::process::ExitCode;

use inference::load::checkpoint::Checkpoint;
use inference::load::gguf;

fn run(args: &[String]) -> Result<(), String> {
    let [dir, out, kind] = args else {
        return Err("usage: write_gguf CHECKPOINT_DIR OUT.gguf TYPE".into());
    };
    let checkpoint = Checkpoint::open(&PathBuf::from(dir)).map_err(|e| e.to_string())?;
    let matrices = gguf::matrix_type(kind).map_err(|e| e.to_string())?;
    gguf::write_checkpoint(&checkpoint, &PathBuf::from(out), matrices).map_err(|e| e.to_string())
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
