//! The prompt's per-keystroke work with 1,000 sandboxes (and their endpoints) in the
//! committed state: Tab completion and highlighting must each take well under 5 ms.
//!
//! `cargo bench --bench repl` (a few seconds).

use std::hint::black_box;
use std::time::Duration;

use cnm::cli::repl::complete::complete;
use cnm::cli::repl::highlight::highlight;
use cnm::cli::repl::names::Names;
use cnm::model::Model;
use cnm::syntax::Sources;
use criterion::{criterion_group, criterion_main, Criterion};

const SANDBOXES: usize = 1_000;

/// The names of a state of 1,000 sandboxes, each connected to one of two networks.
fn names() -> Names {
    let script = format!(
        "network backend subnet 10.1.0.0/16\nnetwork frontend subnet 10.2.0.0/16\n\
         for i in 1..{SANDBOXES} {{\n  sandbox web$i mode none\n  connect web$i to backend\n}}\n"
    );
    let mut sources = Sources::default();
    let id = sources.add("state.cnm", script);
    let (checked, _) = cnm::plan_scripts(&mut sources, &[id], &Model::empty())
        .unwrap_or_else(|errors| panic!("the state does not check: {} errors", errors.len()));
    assert_eq!(checked.model.sandboxes.len(), SANDBOXES);
    Names::of(&checked.model)
}

fn repl(c: &mut Criterion) {
    let names = names();
    let mut group = c.benchmark_group("repl, 1k sandboxes");
    group
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    for (label, line) in [
        // Every sandbox is a candidate.
        ("complete `connect `", "connect "),
        // The 111 names that start with web1.
        ("complete `connect web1`", "connect web1"),
        ("complete options", "connect web7 to backend ip 10.1.0.9 "),
    ] {
        let found = complete(line, line.len(), &names).1.len();
        assert!(found > 0, "{label}: nothing offered");
        group.bench_function(label, |b| {
            b.iter(|| complete(black_box(line), line.len(), &names))
        });
    }
    let block = "for i in 1..3 {\n  connect web12 to backend ip 10.1.0.99 alias db$i  # a comment\n}";
    group.bench_function("highlight a block", |b| {
        b.iter(|| highlight(black_box(block), &names))
    });
    group.finish();
}

criterion_group!(benches, repl);
criterion_main!(benches);
