//! `gemma3`: run and score Gemma 3 checkpoints.

mod cli;

fn main() {
    cli::init_logging();
    if let Err(e) = cli::run() {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}
