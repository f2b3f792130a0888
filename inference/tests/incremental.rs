//! Every way of feeding a sequence through the KV cache gives the logits of one forward pass
//! over the whole sequence: one-shot prefill past the window, chunked prefill, token by
//! token, and prefill after decode.

mod common;

use candle_core::DType;
use common::*;
use inference::model::{Gemma3, Logits};
use proptest::prelude::*;

/// Max absolute logit difference, the same bound as against transformers. Differences come
/// only from f32 summation order in matmuls of other shapes (seen: up to 6e-5).
const TOL: f32 = 1e-4;

fn tokens(preset: &str) -> Vec<u32> {
    let r = reference(preset);
    let mut ids = ids(&r["long"]["token_ids"]);
    ids.truncate(40);
    ids
}

/// Logits of every position when `ids` is fed in calls of the given sizes.
fn fed_in_calls(model: &Gemma3, ids: &[u32], sizes: &[usize]) -> Vec<Vec<f32>> {
    let mut cache = model.new_cache();
    let mut out = Vec::new();
    let mut at = 0;
    for &n in sizes {
        let logits = model
            .forward(&ids[at..at + n], &mut cache, Logits::All)
            .unwrap();
        out.extend(rows(&logits));
        at += n;
    }
    assert_eq!(at, ids.len(), "sizes must cover the sequence");
    assert_eq!(cache.position(), ids.len());
    out
}

fn check(model: &Gemma3, ids: &[u32], sizes: &[usize], what: &str) {
    let whole = fed_in_calls(model, ids, &[ids.len()]);
    let split = fed_in_calls(model, ids, sizes);
    let diff = max_abs_diff(&whole, &split);
    assert!(
        diff <= TOL,
        "{what}: calls {sizes:?} differ from one pass by {diff:e}"
    );
}

#[test]
fn the_sequence_is_longer_than_every_window() {
    for preset in PRESETS {
        let model = load(preset, DType::F32);
        assert!(
            tokens(preset).len() > 2 * model.config().sliding_window,
            "{preset}"
        );
    }
}

#[test]
fn token_by_token_decode_matches_one_pass() {
    for preset in PRESETS {
        let model = load(preset, DType::F32);
        let ids = tokens(preset);
        check(&model, &ids, &vec![1; ids.len()], preset);
    }
}

#[test]
fn chunked_prefill_matches_one_pass_at_window_boundaries() {
    for preset in PRESETS {
        let model = load(preset, DType::F32);
        let ids = tokens(preset);
        let w = model.config().sliding_window;
        for chunk in [w - 1, w, w + 1, 2 * w + 3] {
            let mut sizes = vec![chunk; ids.len() / chunk];
            sizes.push(ids.len() % chunk);
            sizes.retain(|&n| n > 0);
            check(&model, &ids, &sizes, &format!("{preset} chunk {chunk}"));
        }
    }
}

#[test]
fn prefill_after_decode_matches_one_pass() {
    for preset in PRESETS {
        let model = load(preset, DType::F32);
        let ids = tokens(preset);
        check(&model, &ids, &[12, 1, 1, 1, 20, 1, 4], preset);
    }
}

#[test]
fn last_position_logits_equal_the_last_row_of_all() {
    for preset in PRESETS {
        let model = load(preset, DType::F32);
        let ids = tokens(preset);
        let all = rows(
            &model
                .forward(&ids, &mut model.new_cache(), Logits::All)
                .unwrap(),
        );
        let last = rows(
            &model
                .forward(&ids, &mut model.new_cache(), Logits::Last)
                .unwrap(),
        );
        assert_eq!(last.len(), 1);
        let diff = max_abs_diff(&all[all.len() - 1..], &last);
        assert!(diff <= TOL, "{preset}: {diff:e}");
    }
}

/// Random splits of the sequence into calls: cut points anywhere.
fn splits(len: usize) -> impl Strategy<Value = Vec<usize>> {
    proptest::collection::btree_set(1..len, 0..8).prop_map(move |cuts| {
        let mut sizes = Vec::new();
        let mut prev = 0;
        for c in cuts.into_iter().chain([len]) {
            sizes.push(c - prev);
            prev = c;
        }
        sizes
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn any_split_into_calls_matches_one_pass(text_sizes in splits(40), mm_sizes in splits(40)) {
        for (preset, sizes) in [("tiny-text", &text_sizes), ("tiny-multimodal", &mm_sizes)] {
            let model = load(preset, DType::F32);
            check(&model, &tokens(preset), sizes, preset);
        }
    }
}

#[test]
fn rolled_back_cache_matches_one_pass_over_what_follows() {
    // A chat turn keeps the prefix its history shares with what the cache holds and feeds
    // the rest: the tokens after the roll-back must see exactly the kept ones.
    for preset in PRESETS {
        let model = load(preset, DType::F32);
        let ids = tokens(preset);
        let whole = fed_in_calls(&model, &ids, &[ids.len()]);
        let mut cache = model.new_cache();
        let mut other: Vec<u32> = ids[30..36].to_vec();
        other.reverse();
        model.forward(&ids[..30], &mut cache, Logits::All).unwrap();
        model.forward(&other, &mut cache, Logits::All).unwrap();
        assert!(
            cache.roll_back(30),
            "{preset}: the window before 30 is held"
        );
        assert_eq!(cache.position(), 30);
        let rest = model.forward(&ids[30..], &mut cache, Logits::All).unwrap();
        let diff = max_abs_diff(&whole[30..], &rows(&rest));
        assert!(diff <= TOL, "{preset}: {diff:e} from one pass");

        // Token by token, a sliding layer keeps only its window: an early position is gone.
        let mut cache = model.new_cache();
        for id in &ids {
            model.forward(&[*id], &mut cache, Logits::Last).unwrap();
        }
        assert!(!cache.roll_back(2), "{preset}: the window has moved past 2");
        assert_eq!(
            cache.position(),
            ids.len(),
            "a refused roll-back changes nothing"
        );
    }
}
