//! Parse + check + plan of a generated fleet: 10,000 sandboxes on 10 networks (issue 2's
//! speed goal: under 100 ms and under 100 MB peak memory; `benches/frontend-memory.sh`
//! measures the memory).
//!
//! Two spellings of the same topology:
//! - `loop`: 10 `network` statements, then one `for` loop per network;
//! - `flat`: the same, every sandbox and connect written out (20,010 lines).
//!
//! `cargo bench --bench frontend` runs both (10 samples each, about 20 s in all).

use std::fmt::Write;
use std::hint::black_box;
use std::time::Duration;

use cnm::model::Model;
use cnm::syntax::Sources;
use criterion::{criterion_group, criterion_main, Criterion, SamplingMode, Throughput};

const NETWORKS: usize = 10;
const PER_NETWORK: usize = 1_000;

fn networks(script: &mut String) {
    for n in 1..=NETWORKS {
        writeln!(script, "network net{n} subnet 10.{n}.0.0/16").unwrap();
    }
}

/// The fleet written with one `for` loop per network.
fn loop_script() -> String {
    let mut script = String::new();
    networks(&mut script);
    for n in 1..=NETWORKS {
        writeln!(script, "for i in 1..{PER_NETWORK} {{").unwrap();
        writeln!(script, "    sandbox net{n}-$i mode none").unwrap();
        writeln!(script, "    connect net{n}-$i to net{n}").unwrap();
        writeln!(script, "}}").unwrap();
    }
    script
}

/// The fleet written out one statement per line.
fn flat_script() -> String {
    let mut script = String::new();
    networks(&mut script);
    for n in 1..=NETWORKS {
        for i in 1..=PER_NETWORK {
            writeln!(script, "sandbox net{n}-{i} mode none").unwrap();
            writeln!(script, "connect net{n}-{i} to net{n}").unwrap();
        }
    }
    script
}

/// Parses, checks and plans `text` against the empty state; returns the plan's size.
fn plan(text: &str) -> usize {
    let mut sources = Sources::default();
    let id = sources.add("fleet.cnm", text);
    let (checked, plan) = cnm::plan_scripts(&mut sources, &[id], &Model::empty())
        .unwrap_or_else(|errors| panic!("the generated fleet does not check: {} errors", errors.len()));
    assert_eq!(checked.model.sandboxes.len(), NETWORKS * PER_NETWORK);
    plan.steps.len()
}

fn frontend(c: &mut Criterion) {
    let mut group = c.benchmark_group("parse+check+plan 10k sandboxes");
    // Each run takes a good fraction of a second: few samples, of equal size.
    group
        .sample_size(10)
        .sampling_mode(SamplingMode::Flat)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(5))
        .throughput(Throughput::Elements((NETWORKS * PER_NETWORK) as u64));
    let scripts = [("loop", loop_script()), ("flat", flat_script())];
    // Sanity: both spellings give a plan of the same size.
    assert_eq!(plan(&scripts[0].1), plan(&scripts[1].1));
    for (name, text) in scripts {
        group.bench_function(name, |b| b.iter(|| plan(black_box(&text))));
    }
    group.finish();
}

criterion_group!(benches, frontend);
criterion_main!(benches);
