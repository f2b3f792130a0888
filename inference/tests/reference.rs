//! The engine against Hugging Face transformers' outputs on the same tiny checkpoints
//! (golden/reference, made by scripts/reference/make_reference.py).

mod common;

use candle_core::DType;
use common::*;
use inference::model::Logits;
use inference::run::generation;
use inference::run::scoring;

/// Max absolute logit difference allowed in f32, over every position and vocabulary entry.
const LOGIT_TOL: f32 = 1e-4;
/// Relative perplexity difference allowed in f32.
const PPL_REL_TOL: f64 = 1e-5;

#[test]
fn f32_logits_match_transformers_at_every_position() {
    for preset in PRESETS {
        let model = load(preset, DType::F32);
        let ids = ids(&reference(preset)["prompt"]["token_ids"]);
        let logits = model
            .forward(&ids, &mut model.new_cache(), Logits::All)
            .unwrap();
        let diff = max_abs_diff(&rows(&logits), &reference_logits(preset));
        eprintln!("{preset}: max |logit diff| vs transformers {diff:e}");
        assert!(
            diff <= LOGIT_TOL,
            "{preset}: max |logit diff| {diff:e} > {LOGIT_TOL:e}"
        );
    }
}

#[test]
fn f32_greedy_continuation_matches_transformers() {
    for preset in PRESETS {
        let model = load(preset, DType::F32);
        let r = reference(preset);
        let expected = ids(&r["prompt"]["greedy_token_ids"]);
        let got = generation::greedy(
            &model,
            &ids(&r["prompt"]["token_ids"]),
            expected.len(),
            &model.config().eos_token_ids,
        )
        .unwrap();
        assert_eq!(got.tokens, expected, "{preset}");
    }
}

#[test]
fn f32_perplexity_and_logprobs_match_transformers() {
    for preset in PRESETS {
        let model = load(preset, DType::F32);
        let r = reference(preset);
        for part in ["prompt", "long"] {
            let scores = scoring::score(&model, &ids(&r[part]["token_ids"])).unwrap();
            let want = r[part]["perplexity"].as_f64().unwrap();
            let rel = (scores.perplexity - want).abs() / want;
            eprintln!(
                "{preset}/{part}: ppl {} vs {want} (rel {rel:e})",
                scores.perplexity
            );
            assert!(
                rel <= PPL_REL_TOL,
                "{preset}/{part}: ppl {} vs {want}, rel {rel:e}",
                scores.perplexity
            );
            let want_lp = floats(&r[part]["logprobs"]);
            assert_eq!(scores.logprobs.len(), want_lp.len());
            let worst = scores
                .logprobs
                .iter()
                .zip(&want_lp)
                .map(|(a, b)| (a - b).abs())
                .fold(0.0, f64::max);
            assert!(worst <= 1e-4, "{preset}/{part}: logprob diff {worst:e}");
        }
    }
}

#[test]
fn bf16_perplexity_is_within_two_percent_of_the_f32_reference() {
    for preset in PRESETS {
        let r = reference(preset);
        let ids = ids(&r["long"]["token_ids"]);
        assert!(ids.len() > 300, "the long text must exceed 300 tokens");
        let model = load(preset, DType::BF16);
        let scores = scoring::score(&model, &ids).unwrap();
        assert!(
            scores.logprobs.iter().all(|x| x.is_finite()),
            "{preset}: non-finite logprob"
        );
        let want = r["long"]["perplexity"].as_f64().unwrap();
        let rel = (scores.perplexity - want).abs() / want;
        eprintln!(
            "{preset}: bf16 ppl {} vs f32 reference {want} ({:.3}%)",
            scores.perplexity,
            rel * 100.0
        );
        assert!(
            rel <= 0.02,
            "{preset}: bf16 ppl {} vs f32 reference {want} ({:.2}%)",
            scores.perplexity,
            rel * 100.0
        );
    }
}
