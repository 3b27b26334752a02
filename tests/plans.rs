//! Golden plans: each directory under tests/plans/ holds `state.json` (the committed
//! state), `script.cnm` and `plan.txt` (the plan, as `cnm plan` prints it without
//! colour). Where a `state.cnm` is present, `state.json` must be the state that script
//! produces from nothing, so the fixtures cannot drift from the checker.
//!
//! `UPDATE_GOLDEN=1 cargo test --test plans` rewrites `plan.txt` and `state.json`; the
//! diff then shows exactly how the plans changed.

use std::path::Path;

use cnm::model::Model;
use cnm::syntax::Sources;

fn plan_text(dir: &Path, committed: &Model) -> String {
    let script = std::fs::read_to_string(dir.join("script.cnm")).unwrap();
    let mut sources = Sources::default();
    let id = sources.add("script.cnm", script);
    match cnm::plan_scripts(&mut sources, &[id], committed) {
        Ok((_, plan)) => anstream::adapter::strip_str(&cnm::plan::render::human(
            &plan,
            &sources,
            Path::new(cnm::plan::op::DEFAULT_ETC_DIR),
        ))
        .to_string(),
        Err(diagnostics) => panic!(
            "{} does not check:\n{}",
            dir.display(),
            cnm::cli::render_diagnostics(&sources, &diagnostics, false, 100)
        ),
    }
}

/// The state a script leaves behind when applied to nothing.
fn state_of(dir: &Path) -> Model {
    let script = std::fs::read_to_string(dir.join("state.cnm")).unwrap();
    let mut sources = Sources::default();
    let id = sources.add("state.cnm", script);
    let (checked, _) = cnm::plan_scripts(&mut sources, &[id], &Model::empty()).expect("state.cnm checks");
    checked.model
}

#[test]
fn golden_plans() {
    let update = std::env::var_os("UPDATE_GOLDEN").is_some();
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/plans");
    let mut cases: Vec<_> = std::fs::read_dir(&root)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    cases.sort();
    assert!(
        cases.len() >= 6,
        "expected the golden cases under {}",
        root.display()
    );
    let mut failures = Vec::new();
    for dir in &cases {
        let state_path = dir.join("state.json");
        if dir.join("state.cnm").exists() {
            let generated = cnm::state::to_json(&state_of(dir));
            if update {
                std::fs::write(&state_path, &generated).unwrap();
            } else if std::fs::read_to_string(&state_path).unwrap() != generated {
                failures.push(format!(
                    "{}: state.json is not what state.cnm produces",
                    dir.display()
                ));
                continue;
            }
        }
        let committed: Model = serde_json::from_str(&std::fs::read_to_string(&state_path).unwrap()).unwrap();
        let actual = plan_text(dir, &committed);
        let plan_path = dir.join("plan.txt");
        if update {
            std::fs::write(&plan_path, &actual).unwrap();
            continue;
        }
        let expected = std::fs::read_to_string(&plan_path).unwrap_or_default();
        if expected != actual {
            failures.push(format!(
                "{}: plan differs\n--- expected\n{expected}\n--- actual\n{actual}",
                dir.display()
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

/// Planning a script against the state it produces finds nothing to do, for every
/// example script.
#[test]
fn example_scripts_are_idempotent() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts");
    for entry in std::fs::read_dir(&root).unwrap() {
        let path = entry.unwrap().path();
        let text = std::fs::read_to_string(&path).unwrap();
        let mut sources = Sources::default();
        let id = sources.add(path.display().to_string(), text.clone());
        let (checked, first) = cnm::plan_scripts(&mut sources, &[id], &Model::empty()).expect("checks");
        assert!(!first.steps.is_empty(), "{} plans nothing", path.display());
        let id = sources.add(path.display().to_string(), text);
        let (again, second) = cnm::plan_scripts(&mut sources, &[id], &checked.model).expect("checks again");
        assert!(
            second.is_empty(),
            "{} is not idempotent: {:?}",
            path.display(),
            second.changes
        );
        assert_eq!(again.model, checked.model);
    }
}
