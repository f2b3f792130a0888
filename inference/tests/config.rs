//! `config.json` in every spelling: legacy Hub text and multimodal files, and what
//! transformers 5 writes. Bad configs fail with an error that names the field.

use inference::load::config::{LayerKind, ModelConfig, Rope};
use inference::Error;
use serde_json::{json, Value};

fn fixture(name: &str) -> Value {
    let path = format!("{}/tests/data/configs/{name}", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn full_layers(cfg: &ModelConfig) -> Vec<usize> {
    let kinds = &cfg.text.layer_kinds;
    (0..kinds.len())
        .filter(|&i| kinds[i] == LayerKind::Full)
        .collect()
}

#[test]
fn gemma_3_1b_text_config() {
    let cfg = ModelConfig::from_json(&fixture("gemma-3-1b-it.json")).unwrap();
    let t = &cfg.text;
    assert_eq!(cfg.weight_prefix, "model.");
    assert_eq!(
        (t.hidden_size, t.intermediate_size, t.num_hidden_layers),
        (1152, 6912, 26)
    );
    assert_eq!(
        (t.num_attention_heads, t.num_key_value_heads, t.head_dim),
        (4, 1, 256)
    );
    assert_eq!(
        (t.vocab_size, t.max_position_embeddings, t.sliding_window),
        (262_144, 32_768, 512)
    );
    assert_eq!(t.query_pre_attn_scalar, 256.0);
    assert_eq!(full_layers(&cfg), vec![5, 11, 17, 23]);
    assert_eq!(
        t.rope_full,
        Rope {
            theta: 1e6,
            linear_factor: 1.0
        }
    );
    assert_eq!(
        t.rope_sliding,
        Rope {
            theta: 1e4,
            linear_factor: 1.0
        }
    );
    assert_eq!(t.eos_token_ids, vec![1, 106]);
    assert_eq!(t.bos_token_id, Some(2));
    assert!(t.tie_word_embeddings);
    assert_eq!(t.final_logit_softcapping, None);
}

#[test]
fn gemma_3_4b_multimodal_config_uses_transformers_defaults_and_linear_rope() {
    let cfg = ModelConfig::from_json(&fixture("gemma-3-4b-it.json")).unwrap();
    let t = &cfg.text;
    assert_eq!(cfg.weight_prefix, "language_model.model.");
    assert_eq!((t.hidden_size, t.num_hidden_layers), (2560, 34));
    assert_eq!(
        (t.num_attention_heads, t.num_key_value_heads, t.head_dim),
        (8, 4, 256)
    );
    assert_eq!(t.vocab_size, 262_208);
    assert_eq!(t.sliding_window, 1024);
    assert_eq!(
        t.rope_full,
        Rope {
            theta: 1e6,
            linear_factor: 8.0
        }
    );
    assert_eq!(
        t.rope_sliding,
        Rope {
            theta: 1e4,
            linear_factor: 1.0
        }
    );
    assert_eq!(full_layers(&cfg), vec![5, 11, 17, 23, 29]);
}

#[test]
fn gemma_3_27b_scales_queries_by_query_pre_attn_scalar_not_head_dim() {
    let t = ModelConfig::from_json(&fixture("gemma-3-27b-it.json"))
        .unwrap()
        .text;
    assert_eq!((t.head_dim, t.query_pre_attn_scalar), (128, 168.0));
    assert_eq!(
        (
            t.num_attention_heads,
            t.num_key_value_heads,
            t.num_hidden_layers
        ),
        (32, 16, 62)
    );
}

#[test]
fn transformers_5_spelling_reads_layer_types_and_rope_parameters() {
    let cfg = ModelConfig::from_json(&fixture("transformers5-text-linear.json")).unwrap();
    let t = &cfg.text;
    assert_eq!(
        t.layer_kinds,
        vec![LayerKind::Sliding, LayerKind::Full, LayerKind::Sliding]
    );
    assert_eq!(
        t.rope_full,
        Rope {
            theta: 1e6,
            linear_factor: 8.0
        }
    );
    assert_eq!(
        t.rope_sliding,
        Rope {
            theta: 1e4,
            linear_factor: 1.0
        }
    );
    assert_eq!(
        (t.sliding_window, t.query_pre_attn_scalar, t.head_dim),
        (4, 24.0, 16)
    );

    let mm = ModelConfig::from_json(&fixture("transformers5-multimodal.json")).unwrap();
    assert_eq!(mm.weight_prefix, "language_model.model.");
    assert_eq!(mm.text, cfg.text);
}

#[test]
fn legacy_and_transformers_5_spellings_of_one_model_agree() {
    let new = fixture("transformers5-text-linear.json");
    let mut legacy = new.clone();
    let obj = legacy.as_object_mut().unwrap();
    obj.remove("rope_parameters");
    obj.remove("layer_types");
    obj.insert(
        "rope_scaling".into(),
        json!({"rope_type": "linear", "factor": 8.0}),
    );
    obj.insert("rope_theta".into(), json!(1_000_000.0));
    obj.insert("rope_local_base_freq".into(), json!(10_000.0));
    assert_eq!(
        ModelConfig::from_json(&legacy).unwrap(),
        ModelConfig::from_json(&new).unwrap()
    );
}

type Edit = Box<dyn FnOnce(&mut serde_json::Map<String, Value>)>;

/// Applies `edit` to the 1B config and returns the error message.
fn error_after(edit: impl FnOnce(&mut serde_json::Map<String, Value>)) -> String {
    let mut v = fixture("gemma-3-1b-it.json");
    edit(v.as_object_mut().unwrap());
    match ModelConfig::from_json(&v) {
        Ok(_) => panic!("expected an error"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn bad_configs_name_the_field() {
    let cases: Vec<(&str, Edit)> = vec![
        (
            "`hidden_size` is missing",
            Box::new(|m| {
                m.remove("hidden_size");
            }),
        ),
        (
            "`model_type` is missing",
            Box::new(|m| {
                m.remove("model_type");
            }),
        ),
        (
            "`num_key_value_heads`",
            Box::new(|m| {
                m.insert("num_key_value_heads".into(), json!(3));
            }),
        ),
        (
            "`layer_types` has 2 entries",
            Box::new(|m| {
                m.insert(
                    "layer_types".into(),
                    json!(["full_attention", "sliding_attention"]),
                );
            }),
        ),
        (
            "`rope_scaling.rope_type` is `yarn`",
            Box::new(|m| {
                m.insert(
                    "rope_scaling".into(),
                    json!({"rope_type": "yarn", "factor": 4.0}),
                );
            }),
        ),
        (
            "`rope_scaling.factor`",
            Box::new(|m| {
                m.insert("rope_scaling".into(), json!({"rope_type": "linear"}));
            }),
        ),
        (
            "`hidden_activation` is `silu`",
            Box::new(|m| {
                m.insert("hidden_activation".into(), json!("silu"));
            }),
        ),
        (
            "`sliding_window` must be a positive integer",
            Box::new(|m| {
                m.insert("sliding_window".into(), json!(0));
            }),
        ),
        (
            "`rope_parameters` must be nested",
            Box::new(|m| {
                m.insert(
                    "rope_parameters".into(),
                    json!({"rope_type": "linear", "factor": 8.0}),
                );
            }),
        ),
    ];
    for (want, edit) in cases {
        let msg = error_after(edit);
        assert!(msg.contains(want), "expected {want:?} in {msg:?}");
    }
}

#[test]
fn multimodal_config_without_text_config_is_an_error() {
    let mut v = fixture("gemma-3-4b-it.json");
    v.as_object_mut().unwrap().remove("text_config");
    let msg = ModelConfig::from_json(&v).unwrap_err().to_string();
    assert!(msg.contains("`text_config` is missing"), "{msg}");
}

#[test]
fn unknown_model_type_is_named() {
    let err =
        ModelConfig::from_json(&json!({"model_type": "llama", "hidden_size": 8})).unwrap_err();
    assert!(
        matches!(err, Error::UnknownModelType { ref found } if found == "llama"),
        "{err}"
    );
}
