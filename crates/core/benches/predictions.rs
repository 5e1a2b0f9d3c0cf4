//! Speed of a window's metrics (issue 22): AUC-ROC and the rest of a 1,000,000-prediction
//! classification window (budget ≤ 200 ms), and a regression window of the same size;
//! a window's drift from its reference computed from their sketches (budget ≤ 10 ms),
//! and how many buckets the sketch of a million scores holds.
//!
//! Run with `cargo bench -p modelwatch-core --bench predictions`. It prints figures rather
//! than asserting them.

use std::hint::black_box;
use std::time::Instant;

use modelwatch_core::predictions::drift::score_of;
use modelwatch_core::predictions::{
    compute, drift, Labelled, Output, PredictionConfig, Sketch, Task, WindowLength,
};

const PAIRS: usize = 1_000_000;

fn main() {
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let window = WindowLength::parse("1d").expect("1d");
    let classification =
        PredictionConfig::new(window, Task::Classification, 0.5, 0.0).expect("valid config");
    let regression =
        PredictionConfig::new(window, Task::Regression, 0.5, 0.0).expect("valid config");
    let scored: Vec<Labelled> = (0..PAIRS)
        .map(|_| {
            let truth = next() % 4 == 0;
            // Scores in steps of 1e-4: realistic ties.
            let noise = (next() % 10_000) as f64 / 10_000.0;
            let score = if truth { (noise + 0.3).min(1.0) } else { noise };
            Labelled {
                output: Output::Classification {
                    class: None,
                    score: Some(score),
                },
                truth: if truth { 1.0 } else { 0.0 },
            }
        })
        .collect();
    let regressed: Vec<Labelled> = (0..PAIRS)
        .map(|_| {
            let truth = (next() % 100_000) as f64 / 100.0;
            Labelled {
                output: Output::Regression {
                    value: truth + (next() % 1_000) as f64 / 100.0 - 5.0,
                },
                truth,
            }
        })
        .collect();
    for (name, config, pairs) in [
        ("classification", &classification, &scored),
        ("regression", &regression, &regressed),
    ] {
        let mut best = f64::MAX;
        for _ in 0..5 {
            let started = Instant::now();
            let metrics = compute(config, PAIRS as u64, black_box(pairs));
            best = best.min(started.elapsed().as_secs_f64() * 1000.0);
            black_box(metrics);
        }
        println!("{name}: {PAIRS} pairs, best of 5: {best:.1} ms");
    }
    // Drift: the reference's and a shifted window's sketches of a million scores each.
    let reference: Sketch = scored.iter().map(|pair| score_of(&pair.output)).collect();
    let shifted: Sketch = scored
        .iter()
        .map(|pair| (score_of(&pair.output) + 0.05).min(1.0))
        .collect();
    let started = Instant::now();
    let sketched: Sketch = regressed
        .iter()
        .map(|pair| score_of(&pair.output))
        .collect();
    let sketching = started.elapsed().as_secs_f64() * 1000.0;
    let mut best = f64::MAX;
    for _ in 0..5 {
        let started = Instant::now();
        let scores = drift(black_box(&reference), black_box(&shifted));
        best = best.min(started.elapsed().as_secs_f64() * 1000.0);
        black_box(scores);
    }
    println!(
        "drift: sketches of {PAIRS} scores ({} and {} buckets, {} bytes as stored), best of 5: {best:.3} ms",
        reference.buckets(),
        shifted.buckets(),
        reference.encode().len()
    );
    println!(
        "sketching {PAIRS} regression values: {sketching:.1} ms ({} buckets)",
        sketched.buckets()
    );
}
