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
        Ok((_, plan)) => {
            let etc_dir = Path::new(cnm::plan::op::DEFAULT_ETC_DIR);
            let plain = cnm::plan::render::human(&plan, &sources, etc_dir, false);
            // Styled for a terminal, it reads the same once the styles are taken out.
            let styled = cnm::plan::render::human(&plan, &sources, etc_dir, true);
            assert_eq!(styled == plain, plan.is_empty(), "{}", dir.display());
            assert_eq!(anstream::adapter::strip_str(&styled).to_string(), plain);
            plain
        }
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

/// The hosts files a plan writes, each without its first line, cnm's mark of the
/// sandbox it belongs to (checked here).
fn hosts_written(plan: &cnm::plan::Plan) -> std::collections::BTreeMap<String, String> {
    plan.steps
        .iter()
        .filter_map(|step| match &step.op {
            cnm::plan::Op::WriteFile {
                netns,
                file: cnm::plan::EtcFile::Hosts,
                content,
            } => {
                let content = content.to_string();
                let (mark, rest) = content.split_once('\n').unwrap();
                assert_eq!(cnm::plan::hosts_mark_owner(mark), Some(&**netns), "{mark}");
                Some((netns.to_string(), rest.to_string()))
            }
            _ => None,
        })
        .collect()
}

fn plan_of(text: &str, committed: &Model) -> (Model, cnm::plan::Plan) {
    let mut sources = Sources::default();
    let id = sources.add("script.cnm", text);
    let (checked, plan) = cnm::plan_scripts(&mut sources, &[id], committed).expect("checks");
    (checked.model, plan)
}

/// Sandboxes on a shared network find each other by name: each hosts file lists its own
/// addresses, then every running peer's, with names and aliases; peers' files follow
/// when one stops or starts.
#[test]
fn hosts_files_list_the_running_peers_by_name() {
    let seed =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/seed.cnm")).unwrap();
    let (seeded, plan) = plan_of(&seed, &Model::empty());
    let hosts = hosts_written(&plan);
    let localhost = "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n";
    assert_eq!(hosts["A"], format!("{localhost}10.1.0.2\tA db\n10.1.0.3\tB\n"));
    assert_eq!(
        hosts["B"],
        format!(
            "{localhost}10.1.0.3\tB\n10.2.0.1\tB\n10.1.0.2\tA db\n\
             10.2.0.50\tC web\n10.2.0.2\tweb1\n10.2.0.3\tweb2\n10.2.0.4\tweb3\n"
        )
    );
    assert_eq!(
        hosts["web1"],
        format!(
            "{localhost}172.30.0.2\tweb1\n10.2.0.2\tweb1\n172.30.0.3\tweb2\n172.30.0.4\tweb3\n\
             10.2.0.1\tB\n10.2.0.50\tC web\n10.2.0.3\tweb2\n10.2.0.4\tweb3\n"
        )
    );

    // C stops: it leaves its peers' files (and only theirs); starting it brings it back.
    let (stopped, plan) = plan_of("stop C\n", &seeded);
    let hosts = hosts_written(&plan);
    assert_eq!(hosts.keys().collect::<Vec<_>>(), ["B", "web1", "web2", "web3"]);
    assert!(!hosts["B"].contains("10.2.0.50"), "{}", hosts["B"]);
    let (_, plan) = plan_of("start C\n", &stopped);
    let hosts = hosts_written(&plan);
    assert!(hosts["B"].contains("10.2.0.50\tC web\n"), "{}", hosts["B"]);
    assert!(hosts["C"].contains("10.2.0.1\tB\n"), "{}", hosts["C"]);
}

/// On a dual-stack network each address has its line, IPv6 too.
#[test]
fn hosts_files_carry_ipv6_entries() {
    let script =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/dual-stack.cnm"))
            .unwrap();
    let (_, plan) = plan_of(&script, &Model::empty());
    assert_eq!(
        hosts_written(&plan)["A"],
        "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n\
         10.6.0.2\tA\nfd06::2\tA\n10.6.0.3\tB b6\nfd06::3\tB b6\n"
    );
}
