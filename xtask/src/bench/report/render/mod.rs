//! The report's renderings: the tables (`table.rs`) in the terminal's text (`text.rs`) and
//! in Markdown (`markdown.rs`), and the decode-vs-context plot (`svg.rs`).

mod markdown;
mod svg;
mod table;
mod text;

#[cfg(test)]
mod tests {
    use comfy_table::presets::ASCII_FULL_CONDENSED;

    use super::svg::color;
    use crate::bench::report::fixture::{every_kind_of_row, fixture};
    use crate::bench::report::{EngineRun, OURS};

    /// What users see, committed: a change in a table, the Markdown, the plot or report.json
    /// shows in review, and a refactoring of the renderers must leave these as they are.
    #[test]
    fn the_renderings_are_the_committed_ones() {
        let r = every_kind_of_row();
        insta::with_settings!({
            snapshot_path => concat!(env!("CARGO_MANIFEST_DIR"), "/tests/snapshots"),
            prepend_module_to_snapshot => false,
            omit_expression => true,
        }, {
            insta::assert_snapshot!("bench_report_txt", r.render_text());
            insta::assert_snapshot!("bench_report_md", r.render_markdown());
            insta::assert_snapshot!("bench_decode_vs_context_svg", r.svg());
            insta::assert_snapshot!(
                "bench_report_json",
                serde_json::to_string_pretty(&r).unwrap()
            );
        });
    }

    #[test]
    fn the_table_shows_every_engine_the_floor_and_skips_with_their_reason() {
        let mut r = fixture();
        r.derive();
        let text = r.render_text();
        assert!(
            text.contains("[38.0, 40.0]): best read 40.0 GB/s, memcpy 20.0 GB/s"),
            "{text}"
        );
        assert!(text.contains("op-matrix --backend cpu: 1.50 s wall, passed"));
        assert!(
            text.contains("flags: avx2 avx512_bf16; our CPU kernels here: avx512, avx2, portable"),
            "{text}"
        );
        let mut zen3 = r.clone();
        zen3.machine.flags = vec!["avx2".into(), "fma".into()];
        zen3.machine.cpu_kernels = vec!["avx2".into(), "portable".into()];
        assert!(zen3
            .preamble()
            .contains("flags: avx2 fma (no avx512_bf16); our CPU kernels here: avx2, portable"));
        assert!(text.contains("transformers 5.24.0"));
        assert!(text.contains("skipped: cmake failed: no C++ compiler"));
        assert!(text.contains("floor (bandwidth)"));
        // bf16 ours over transformers: prefill 34/335 = 0.10x, decode 1.25/19.8 = 0.06x.
        assert!(text.contains("0.10x 0.06x"), "{text}");
        // f32: 98/90 = 1.09x, 8/4.5 = 1.78x.
        assert!(text.contains("1.09x 1.78x"), "{text}");
        // The sweep table has a column per context and a floor row.
        let sweep = r.sweep_table(ASCII_FULL_CONDENSED).unwrap().to_string();
        assert!(sweep.contains("ctx 128") && sweep.contains("ctx 512"));
        assert_eq!(sweep.lines().filter(|l| l.contains("floor")).count(), 2);
        // transformers measured only context 128.
        assert!(sweep
            .lines()
            .any(|l| l.contains("transformers") && l.trim_end().ends_with("- |")));
    }

    #[test]
    fn each_path_of_ours_is_a_row_and_a_peer_is_held_to_ours_on_its_own_variant() {
        let mut r = fixture();
        let run = &mut r.runs[0];
        run.engines[0].variant = Some("avx512".into());
        let mut avx2 = run.engines[0].clone();
        avx2.variant = Some("avx2".into());
        avx2.metrics.as_mut().unwrap().decode_tok_s = 1.0;
        let mut llama = run.engines[1].clone();
        (llama.engine, llama.variant) = ("llama.cpp".into(), Some("avx2".into()));
        run.engines.insert(1, avx2);
        run.engines.push(llama);
        r.derive();
        let e = &r.runs[0].engines;
        let labels: Vec<String> = e.iter().map(EngineRun::label).collect();
        assert_eq!(
            labels,
            [
                "gemma3 (avx512)",
                "gemma3 (avx2)",
                "transformers",
                "llama.cpp",
                "llama.cpp (avx2)"
            ]
        );
        let against = |i: usize| {
            e[i].ours_over_this
                .as_ref()
                .map(|r| (r.ours.clone(), r.decode))
        };
        assert_eq!(against(0), None);
        assert_eq!(against(1), Some(("gemma3 (avx512)".into(), Some(1.25))));
        assert_eq!(
            against(2),
            Some(("gemma3 (avx512)".into(), Some(1.25 / 19.8)))
        );
        assert_eq!(against(4), Some(("gemma3 (avx2)".into(), Some(1.0 / 19.8))));
        let text = r.render_text();
        assert!(text.contains("1.25x (gemma3 (avx512))"), "{text}");
        assert!(text.contains("0.05x (gemma3 (avx2))"), "{text}");
        // One row of ours in f32: no name after its ratios.
        let f32_peer = text
            .lines()
            .find(|l| l.contains("f32") && l.contains("transformers"))
            .unwrap();
        assert!(
            f32_peer.contains("1.09x 1.78x") && !f32_peer.contains("(gemma3"),
            "{f32_peer}"
        );
        let sweep = r.sweep_table(ASCII_FULL_CONDENSED).unwrap().to_string();
        assert!(sweep.contains("gemma3 (avx512)") && sweep.contains("gemma3 (avx2)"));
        // The two paths of ours are two lines of two shades in the plot.
        let svg = r.svg();
        assert!(svg.contains("gemma3 (avx2) bf16") && svg.contains("gemma3 (avx512) bf16"));
        assert!(svg.contains(color(OURS, 0)) && svg.contains(color(OURS, 1)));
    }

    #[test]
    fn a_model_that_fits_in_cache_gets_no_floor_ratio_and_no_floor_line() {
        let mut r = fixture();
        r.runs[1].bandwidth_bound = false;
        r.derive();
        assert!(r.runs[1]
            .engines
            .iter()
            .all(|e| e.decode_over_floor.is_none()));
        assert!(r.runs[0].engines[0].decode_over_floor.is_some());
        assert!(r.render_text().contains("fit in the CPU caches"));
        let svg = r.svg();
        assert!(svg.contains("floor bf16") && !svg.contains("floor f32"));
    }

    #[test]
    fn markdown_has_the_preamble_as_a_list_and_pipe_tables() {
        let mut r = fixture();
        r.derive();
        let md = r.render_markdown();
        assert!(md.starts_with("- machine: Test CPU"), "{md}");
        assert!(md.contains("- commit abc123"));
        assert!(md.contains("| 1b    | bf16  | gemma3 "), "{md}");
        assert!(md.contains("|-------|"), "{md}");
        assert!(md.contains("Decode tokens/s against context"));
    }

    #[test]
    fn the_svg_has_a_line_per_engine_and_dtype_and_the_floors() {
        let mut r = fixture();
        r.derive();
        let svg = r.svg();
        assert!(svg.starts_with("<svg xmlns=\"http://www.w3.org/2000/svg\""));
        assert!(svg.trim_end().ends_with("</svg>"));
        // ours and transformers in two dtypes, plus two floors; llama.cpp was skipped.
        assert_eq!(svg.matches("<polyline").count(), 6);
        assert!(svg.contains("gemma3 bf16") && svg.contains("floor f32"));
        assert!(!svg.contains("NaN") && !svg.contains("inf"));
        // The points stay inside the panel.
        for cap in svg.split("<circle cx=\"").skip(1) {
            let x: f64 = cap.split('"').next().unwrap().parse().unwrap();
            assert!((64.0..=410.0).contains(&x), "{x}");
        }
    }
}
