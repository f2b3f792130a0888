//! GGUF checkpoints: the configuration llama.cpp's converter writes for a checkpoint reads
//! back as the checkpoint's own `config.json` does; its tensors, renamed and stored as the
//! converter stores them, give the model of the safetensors they came from; and a file that is
//! not Gemma 3, is cut short or lacks a key gets one error that says so.

mod common;

use std::path::Path;

use candle_core::quantized::gguf_file::{self, Value};
use candle_core::quantized::{GgmlDType, QTensor};
use candle_core::{DType, Device, Tensor};
use inference::load::checkpoint::Checkpoint;
use inference::load::config::ModelConfig;
use inference::load::gguf::{self, GgufFile};
use inference::model::Logits;
use inference::ops::quant::QuantType;
use inference::ops::{trace, Op, OpKind};

/// The metadata llama.cpp's `convert_hf_to_gguf.py` writes for the tiny text checkpoint (its
/// `config.json`), by key.
fn tiny_text_metadata() -> Vec<(&'static str, Value)> {
    vec![
        ("general.architecture", Value::String("gemma3".into())),
        ("gemma3.context_length", Value::U32(1024)),
        ("gemma3.embedding_length", Value::U32(64)),
        ("gemma3.block_count", Value::U32(6)),
        ("gemma3.feed_forward_length", Value::U32(128)),
        ("gemma3.attention.head_count", Value::U32(4)),
        ("gemma3.attention.head_count_kv", Value::U32(1)),
        ("gemma3.attention.key_length", Value::U32(32)),
        ("gemma3.attention.value_length", Value::U32(32)),
        ("gemma3.attention.layer_norm_rms_epsilon", Value::F32(1e-6)),
        ("gemma3.attention.sliding_window", Value::U32(8)),
        ("gemma3.rope.freq_base", Value::F32(1_000_000.0)),
        ("tokenizer.ggml.bos_token_id", Value::U32(2)),
        ("tokenizer.ggml.eos_token_id", Value::U32(1)),
        ("tokenizer.ggml.eot_token_id", Value::U32(6)),
    ]
}

/// Writes a GGUF file of `metadata` and an f32 `token_embd.weight` of `vocab` rows of 64.
fn write(path: &Path, metadata: &[(&str, Value)], vocab: usize) {
    let embed = Tensor::zeros((vocab, 64), candle_core::DType::F32, &Device::Cpu).unwrap();
    let embed = QTensor::quantize(&embed, GgmlDType::F32).unwrap();
    let metadata: Vec<(&str, &Value)> = metadata.iter().map(|(k, v)| (*k, v)).collect();
    let mut file = std::fs::File::create(path).unwrap();
    gguf_file::write(&mut file, &metadata, &[("token_embd.weight", &embed)]).unwrap();
}

fn open_error(metadata: &[(&str, Value)]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("model.gguf");
    write(&path, metadata, 512);
    match GgufFile::open(&path).and_then(|g| g.text_config()) {
        Ok(_) => panic!("the file was accepted"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn the_converters_metadata_reads_back_as_the_checkpoints_config() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("model.gguf");
    write(&path, &tiny_text_metadata(), 512);
    let from_gguf = GgufFile::open(&path).unwrap().text_config().unwrap();
    let config = common::checkpoint_dir("tiny-text").join("config.json");
    let from_json = ModelConfig::from_file(&config).unwrap().text;
    assert_eq!(from_gguf, from_json);
}

#[test]
fn the_27b_scales_queries_by_hidden_over_heads_as_llama_cpp_does() {
    let mut metadata = tiny_text_metadata();
    for (k, v) in &mut metadata {
        match *k {
            "gemma3.block_count" => *v = Value::U32(62),
            "gemma3.embedding_length" => *v = Value::U32(5376),
            "gemma3.attention.head_count" => *v = Value::U32(32),
            "gemma3.attention.key_length" => *v = Value::U32(128),
            _ => {}
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("model.gguf");
    write(&path, &metadata, 512);
    let config = GgufFile::open(&path).unwrap().text_config().unwrap();
    assert_eq!(config.query_pre_attn_scalar, 168.0);
    assert_eq!(config.num_hidden_layers, 62);
}

#[test]
fn another_architecture_is_named() {
    let mut metadata = tiny_text_metadata();
    metadata[0].1 = Value::String("llama".into());
    let e = open_error(&metadata);
    assert!(
        e.contains("holds a `llama` model") && e.contains("Gemma 3"),
        "{e}"
    );
}

#[test]
fn a_size_no_gemma_3_has_is_named() {
    for (key, value, says) in [
        (
            "gemma3.block_count",
            Value::U64(1 << 60),
            "more than any Gemma 3 has",
        ),
        (
            "gemma3.attention.head_count",
            Value::U32(0),
            "must be at least 1",
        ),
        (
            "gemma3.context_length",
            Value::U64(1 << 40),
            "more than any Gemma 3 has",
        ),
    ] {
        let mut metadata = tiny_text_metadata();
        metadata.retain(|(k, _)| *k != key);
        metadata.push((key, value));
        let e = open_error(&metadata);
        assert!(e.contains(&format!("`{key}`")) && e.contains(says), "{e}");
    }
}

#[test]
fn a_missing_key_is_named() {
    let metadata: Vec<_> = tiny_text_metadata()
        .into_iter()
        .filter(|(k, _)| *k != "gemma3.block_count")
        .collect();
    let e = open_error(&metadata);
    assert!(
        e.contains("lacks the metadata key `gemma3.block_count`"),
        "{e}"
    );
}

#[test]
fn a_key_of_the_wrong_type_is_named() {
    let mut metadata = tiny_text_metadata();
    metadata[1].1 = Value::String("1024".into());
    let e = open_error(&metadata);
    assert!(e.contains("`gemma3.context_length` is String"), "{e}");
}

#[test]
fn a_tensor_type_candle_cannot_hold_is_named() {
    let dir = tempfile::tempdir().unwrap();
    // A whole file: the walk to the tensor table passes the vocabulary's arrays.
    let path = convert_tiny_text(dir.path(), GgmlDType::F32);
    // The type of `token_embd.weight` follows its name, its rank (u32) and two dims (u64).
    let mut bytes = std::fs::read(&path).unwrap();
    let name = b"token_embd.weight";
    let at = bytes.windows(name.len()).position(|w| w == name).unwrap() + name.len() + 4 + 16;
    assert_eq!(
        bytes[at..at + 4],
        0u32.to_le_bytes(),
        "F32 before the change"
    );
    bytes[at..at + 4].copy_from_slice(&20u32.to_le_bytes());
    std::fs::write(&path, bytes).unwrap();
    let e = GgufFile::open(&path)
        .err()
        .expect("an IQ4_NL tensor")
        .to_string();
    assert!(
        e.contains(
            "holds a tensor (`token_embd.weight`) of ggml type 20 (IQ4_NL), which Candle cannot hold"
        ),
        "{e}"
    );
}

#[test]
fn a_truncated_file_is_not_read() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("model.gguf");
    write(&path, &tiny_text_metadata(), 512);
    let bytes = std::fs::read(&path).unwrap();
    std::fs::write(&path, &bytes[..200]).unwrap();
    let e = GgufFile::open(&path)
        .err()
        .expect("a truncated header")
        .to_string();
    assert!(e.contains("not a readable GGUF file"), "{e}");
}

#[test]
fn a_file_cut_short_in_its_tensor_data_is_named_before_any_weight_is_read() {
    let dir = tempfile::tempdir().unwrap();
    let path = convert_tiny_text(dir.path(), GgmlDType::Q8_0);
    let bytes = std::fs::read(&path).unwrap();
    std::fs::write(&path, &bytes[..bytes.len() - 100]).unwrap();
    let e = GgufFile::open(&path)
        .err()
        .expect("a file without its last bytes")
        .to_string();
    assert!(e.contains("is cut short: tensor `"), "{e}");
    assert!(e.contains("re-download it"), "{e}");
}

/// Writes the tiny text checkpoint as llama.cpp's converter would, its matrices in
/// `matrices`: one file, with its tokenizer and chat template.
fn convert_tiny_text(dir: &Path, matrices: GgmlDType) -> std::path::PathBuf {
    let source = common::checkpoint_dir("tiny-text");
    let path = dir.join("tiny-text.gguf");
    gguf::write_checkpoint(&Checkpoint::open(&source).unwrap(), &path, matrices).unwrap();
    path
}

/// Texts that reach every part of the tokenizer: merges, spaces, byte fallback, special
/// tokens written in the text, and nothing at all.
const TEXTS: [&str; 6] = [
    "The clockmaker opens his shop at dawn.",
    "  two  spaces,\ttabs\nand lines\n\n",
    "bytes: \u{e9}t\u{e9}, \u{1F570}, \u{4E2D}\u{6587}",
    "<start_of_turn>user\nhi<end_of_turn>\n<start_of_turn>model\n",
    "<unk><pad>x",
    "",
];

#[test]
fn a_gguf_file_carries_the_tokenizer_and_chat_template_of_its_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let path = convert_tiny_text(dir.path(), GgmlDType::F32);
    let source = Checkpoint::open(&common::checkpoint_dir("tiny-text")).unwrap();
    let gguf = Checkpoint::open(&path).unwrap();
    let (ours, theirs) = (gguf.tokenizer().unwrap(), source.tokenizer().unwrap());
    for text in TEXTS {
        let ids = theirs.encode(text).unwrap();
        assert_eq!(ours.encode(text).unwrap(), ids, "{text:?}");
        assert_eq!(
            ours.decode(&ids, false).unwrap(),
            theirs.decode(&ids, false).unwrap()
        );
        assert_eq!(
            ours.decode(&ids, true).unwrap(),
            theirs.decode(&ids, true).unwrap()
        );
    }
    let template = |c: &Checkpoint| c.chat_template().unwrap().expect("a chat template");
    let (ours, theirs) = (template(&gguf), template(&source));
    assert_eq!(ours.source(), theirs.source());
    assert_eq!(
        (ours.bos_token(), ours.eos_token()),
        (theirs.bos_token(), theirs.eos_token())
    );
}

#[test]
fn a_tokenizer_json_beside_the_file_is_used_only_if_it_agrees() {
    let dir = tempfile::tempdir().unwrap();
    let path = convert_tiny_text(dir.path(), GgmlDType::F32);
    let json = common::checkpoint_dir("tiny-text").join("tokenizer.json");
    let beside = dir.path().join("tokenizer.json");
    std::fs::copy(&json, &beside).unwrap();
    let agreeing = Checkpoint::open(&path).unwrap().tokenizer().unwrap();
    assert_eq!(agreeing.vocab_size(), 512);

    let other = std::fs::read_to_string(&json)
        .unwrap()
        .replace("\"<unused511>\"", "\"<other>\"");
    std::fs::write(&beside, other).unwrap();
    let e = Checkpoint::open(&path)
        .unwrap()
        .tokenizer()
        .err()
        .expect("a disagreeing tokenizer")
        .to_string();
    assert!(
        e.contains("its tokenizer disagrees with")
            && e.contains("token 511 is Some(\"<other>\") there and \"<unused511>\" in the file"),
        "{e}"
    );
}

#[test]
fn a_tokenizer_of_another_kind_is_named() {
    let mut metadata = tiny_text_metadata();
    metadata.push(("tokenizer.ggml.model", Value::String("gpt2".into())));
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("model.gguf");
    write(&path, &metadata, 512);
    let e = Checkpoint::open(&path)
        .unwrap()
        .tokenizer()
        .err()
        .expect("a GPT-2 vocabulary")
        .to_string();
    assert!(e.contains("holds a `gpt2` tokenizer"), "{e}");
}

#[test]
fn a_checkpoint_written_as_gguf_reads_back_with_its_config_or_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("model.gguf");
    let text = Checkpoint::open(&common::checkpoint_dir("tiny-text")).unwrap();
    gguf::write_checkpoint(&text, &path, GgmlDType::F32).unwrap();
    let back = GgufFile::open(&path).unwrap().text_config().unwrap();
    assert_eq!(back, text.config.text);
    // The multimodal one scales queries by 24 with heads of 16, which llama.cpp would not.
    let multimodal = Checkpoint::open(&common::checkpoint_dir("tiny-multimodal")).unwrap();
    let e = gguf::write_checkpoint(&multimodal, &path, GgmlDType::F32).unwrap_err();
    assert!(
        e.to_string()
            .contains("GGUF cannot carry query_pre_attn_scalar 24"),
        "{e}"
    );
    // K-quants take blocks of 256; the tiny text model's rows are 64 and 128 wide.
    let e = gguf::write_checkpoint(&text, &path, GgmlDType::Q4K).unwrap_err();
    assert!(
        e.to_string().contains("Q4K takes rows in blocks of 256")
            && e.to_string().contains("has rows of "),
        "{e}"
    );
}

/// The logits of every position of a short prompt, as f32 values.
fn logits(checkpoint: &Checkpoint) -> Vec<f32> {
    let model = checkpoint.load_model(&Device::Cpu, DType::F32).unwrap();
    let ids = checkpoint
        .tokenizer()
        .unwrap()
        .encode("The clockmaker opens his shop")
        .unwrap();
    let out = model
        .forward(&ids, &mut model.new_cache(), Logits::All)
        .unwrap();
    out.flatten_all().unwrap().to_vec1().unwrap()
}

#[test]
fn an_f32_gguf_gives_the_logits_of_the_safetensors_it_came_from() {
    let dir = tempfile::tempdir().unwrap();
    let path = convert_tiny_text(dir.path(), GgmlDType::F32);
    let from_gguf = logits(&Checkpoint::open(&path).unwrap());
    let from_dir = Checkpoint::open(dir.path()).unwrap();
    assert_eq!(
        from_dir.weight_files(),
        [path],
        "the directory's one .gguf file"
    );
    let from_safetensors = logits(&Checkpoint::open(&common::checkpoint_dir("tiny-text")).unwrap());
    assert_eq!(from_gguf, from_safetensors);
}

#[test]
fn a_q8_0_gguf_gives_logits_near_the_f32_ones() {
    let dir = tempfile::tempdir().unwrap();
    let path = convert_tiny_text(dir.path(), GgmlDType::Q8_0);
    let q8 = logits(&Checkpoint::open(&path).unwrap());
    let f32 = logits(&Checkpoint::open(&common::checkpoint_dir("tiny-text")).unwrap());
    let (err, norm): (f64, f64) = q8.iter().zip(&f32).fold((0.0, 0.0), |(e, n), (a, b)| {
        (e + f64::from(a - b).powi(2), n + f64::from(*b).powi(2))
    });
    let nmse = err / norm;
    // Q8_0 rounds each weight to one of 255 steps of its block's largest, and the kernels
    // round the activations so too: the logits move (NMSE 5.5e-3 measured on this
    // random-weight model), but a weight read wrong moves them by their whole size.
    assert!(nmse > 0.0 && nmse < 1e-2, "NMSE {nmse:e}");
}

#[test]
fn a_gguf_without_a_tokenizer_of_its_own_or_beside_it_says_what_to_add() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("model.gguf");
    write(&path, &tiny_text_metadata(), 512);
    let e = Checkpoint::open(&path)
        .unwrap()
        .tokenizer()
        .err()
        .unwrap()
        .to_string();
    assert!(
        e.contains("has no tokenizer (tokenizer.ggml.*); put the model's tokenizer.json in"),
        "{e}"
    );
}

/// The last position's logits of a short prompt, with the trace of loading and running.
fn traced_forward(checkpoint: &Checkpoint, dtype: DType) -> (candle_core::Tensor, trace::Trace) {
    let ids = checkpoint
        .tokenizer()
        .unwrap()
        .encode("The clockmaker")
        .unwrap();
    trace::capture(|| {
        let model = checkpoint.load_model(&Device::Cpu, dtype).unwrap();
        model
            .forward(&ids, &mut model.new_cache(), Logits::Last)
            .unwrap()
    })
}

#[test]
fn a_quantized_gguf_keeps_its_weights_quantized_and_the_trace_records_their_blocks() {
    let dir = tempfile::tempdir().unwrap();
    let path = convert_tiny_text(dir.path(), GgmlDType::Q4_0);
    let checkpoint = Checkpoint::open(&path).unwrap();
    let (logits, trace) = traced_forward(&checkpoint, DType::BF16);
    assert!(trace.ends_with(&logits));
    let unexplained = trace.unexplained_inputs();
    assert!(unexplained.is_empty(), "{unexplained:?}");
    let count = |kind: OpKind| trace.calls.iter().filter(|c| c.op.kind() == kind).count();
    // Per layer: the fused q/k/v, the output, the fused gate/up and the down projection; and
    // the LM head, tied to the embeddings, which are looked up quantized too.
    assert_eq!(count(OpKind::QLinear), 6 * 4 + 1);
    assert_eq!(count(OpKind::QEmbed), 1);
    assert_eq!(count(OpKind::Linear), 0);
    let q4_0 = QuantType::Q4_0;
    assert!(trace.calls.iter().all(|c| match c.op {
        Op::QLinear { quant } | Op::QEmbed { quant } => quant == q4_0,
        _ => true,
    }));
}

/// A mix as llama.cpp's Q4_K_M makes one: the values and the down projection in a wider format
/// than the rest. The stacked projections keep each part in its own format instead of being
/// dequantized whole, and the model stays about as close to the f32 one as the all-Q4_0 file.
#[test]
fn a_mixed_gguf_keeps_each_part_of_a_stacked_projection_in_its_own_format() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("mixed.gguf");
    let source = Checkpoint::open(&common::checkpoint_dir("tiny-text")).unwrap();
    let wider = |name: &str| {
        if name.contains("attn_v") || name.contains("ffn_down") {
            GgmlDType::Q8_0
        } else {
            GgmlDType::Q4_0
        }
    };
    gguf::write_mixed(&source, &path, &wider).unwrap();
    let checkpoint = Checkpoint::open(&path).unwrap();
    assert_eq!(
        checkpoint.quant_types(),
        [QuantType::Q4_0, QuantType::Q8_0].into()
    );
    let (_, trace) = traced_forward(&checkpoint, DType::F32);
    let count = |quant: QuantType| {
        trace
            .calls
            .iter()
            .filter(|c| c.op == Op::QLinear { quant })
            .count()
    };
    // Per layer: q, k (q4_0) and v (q8_0) each alone, the output and the gate/up (q4_0), the
    // down projection (q8_0); and the tied LM head (q4_0).
    assert_eq!(count(QuantType::Q4_0), 6 * 4 + 1);
    assert_eq!(count(QuantType::Q8_0), 6 * 2);
    assert!(trace.calls.iter().all(|c| c.op.kind() != OpKind::Linear));

    let mixed = logits(&checkpoint);
    let f32 = logits(&source);
    let q4 = logits(&Checkpoint::open(&convert_tiny_text(dir.path(), GgmlDType::Q4_0)).unwrap());
    let nmse = |x: &[f32]| {
        let (err, norm) = x.iter().zip(&f32).fold((0.0, 0.0), |(e, n), (a, b)| {
            (e + f64::from(a - b).powi(2), n + f64::from(*b).powi(2))
        });
        err / norm
    };
    // Q4_0 moves this random-weight model's logits far (NMSE 0.37 measured; the mix 0.39):
    // a part read wrong or put in the wrong place moves them by their whole size (NMSE ~2).
    let (mixed, q4) = (nmse(&mixed), nmse(&q4));
    assert!(
        mixed < 1.5 * q4 && q4 < 0.6,
        "NMSE {mixed} (mixed) vs {q4} (q4_0)"
    );
}
