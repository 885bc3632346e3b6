//! `sparsetop bench`: context depth (`-d`, as llama-bench's) and the bandwidth bound each result
//! is reported against, on the real default model with small numbers.

mod common;

use serde_json::Value;
use std::process::{Command, Output};

fn sparsetop(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_sparsetop"))
        .args(args)
        .output()
        .expect("run sparsetop")
}

fn bench_json(extra: &[&str]) -> Vec<Value> {
    let model = common::model_path();
    let mut args = vec!["bench", "-m", model.to_str().unwrap(), "--json"];
    args.extend_from_slice(extra);
    let o = sparsetop(&args);
    assert!(
        o.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let v: Value = serde_json::from_slice(&o.stdout).expect("bench --json prints JSON");
    v.as_array().expect("an array of rows").clone()
}

fn f(row: &Value, key: &str) -> f64 {
    row[key]
        .as_f64()
        .unwrap_or_else(|| panic!("{key} missing in {row}"))
}

#[test]
fn depth_and_the_bandwidth_bound_are_in_the_json() {
    let rows = bench_json(&["-t", "1", "-r", "1", "-p", "16", "-n", "4", "-d", "48"]);
    assert_eq!(rows.len(), 2, "{rows:?}");
    let model = common::model();
    let weights = model.weights.matrix_bytes() as f64;
    for r in &rows {
        assert_eq!(r["depth"], 48, "{r}");
        assert!(r["test"].as_str().unwrap().ends_with("@ d48"), "{r}");
        // Probed bandwidth: a real, plausible figure, with one thread and with -t.
        let bw = f(r, "bandwidth_gb_s");
        assert!((0.1..10_000.0).contains(&bw), "{r}");
        assert!(f(r, "bandwidth_1t_gb_s") > 0.1, "{r}");
        // The share of the bound is the read rate over the bandwidth.
        let read = f(r, "read_gb_s");
        assert!(read > 0.0, "{r}");
        let pct = f(r, "bound_pct");
        assert!((pct - 100.0 * read / bw).abs() < 1e-6 * pct.max(1.0), "{r}");
        assert!(
            (f(r, "bound_tok_s") - bw * 1e9 / f(r, "bytes_per_token")).abs() < 1e-3,
            "{r}"
        );
    }
    // Decode reads every weight matrix per token; a 16-token prompt shares them.
    let pp = f(&rows[0], "bytes_per_token");
    let tg = f(&rows[1], "bytes_per_token");
    assert!(
        tg > weights && tg < 1.1 * weights,
        "tg {tg}, weights {weights}"
    );
    assert!(pp > weights / 16.0 && pp < weights / 8.0, "pp {pp}");
}

#[test]
fn decode_deeper_in_the_context_reads_more_cache_per_token() {
    let shallow = bench_json(&["-t", "1", "-r", "1", "-p", "0", "-n", "2"]);
    let deep = bench_json(&["-t", "1", "-r", "1", "-p", "0", "-n", "2", "-d", "64"]);
    assert_eq!(shallow[0]["depth"], 0);
    assert_eq!(shallow[0]["test"], "tg2");
    let extra = f(&deep[0], "bytes_per_token") - f(&shallow[0], "bytes_per_token");
    // 64 more positions of keys and values (f16) in every layer.
    let c = &common::model().config;
    let per_position = (c.n_layer * (c.k_dim() + c.v_dim()) * 2) as f64;
    assert!(
        (extra - 64.0 * per_position).abs() < 1.0,
        "{extra} bytes more, expected {}",
        64.0 * per_position
    );
}

#[test]
fn a_depth_that_leaves_no_room_for_the_test_is_refused_before_loading() {
    let o = sparsetop(&[
        "bench",
        "-m",
        "/nonexistent.gguf",
        "-d",
        "100",
        "-c",
        "163",
        "-p",
        "64",
        "-n",
        "16",
    ]);
    assert_eq!(o.status.code(), Some(1));
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(
        e.contains("-d 100") && e.contains("164") && e.contains("-c 163"),
        "{e}"
    );
    assert!(!e.contains("not found"), "checked before the model: {e}");
    assert!(o.stdout.is_empty());
}

#[test]
fn a_context_that_just_fits_depth_and_test_runs() {
    // The cache is filled once and each repetition starts again from the depth: with a context
    // of exactly depth + test, any leftover of an earlier run would overflow it.
    let rows = bench_json(&[
        "-t", "1", "-p", "8", "-n", "8", "-d", "24", "-c", "32", "-r", "2",
    ]);
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[1]["samples"].as_array().unwrap().len(), 2);
}

#[test]
fn the_table_shows_bytes_per_token_and_the_share_of_the_bound() {
    let model = common::model_path();
    let o = sparsetop(&[
        "bench",
        "-m",
        model.to_str().unwrap(),
        "-t",
        "1",
        "-p",
        "8",
        "-n",
        "2",
        "-r",
        "1",
        "-d",
        "8",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let s = String::from_utf8_lossy(&o.stdout);
    assert!(s.contains("| MB/token | GB/s | % of bound |"), "{s}");
    assert!(s.contains("tg2 @ d8"), "{s}");
    assert!(
        s.contains("memory read bandwidth") && s.contains("GB/s with 1 thread"),
        "{s}"
    );
}
