//! The library session on the in-memory kernel: statements fed one by one end where the
//! same script applied whole ends; variables persist; an interrupt rolls back and is
//! reset; undo goes back one transaction at a time.

use std::path::PathBuf;
use std::time::Duration;

use cnm::backend::memory::MemoryBackend;
use cnm::exec::Progress;
use cnm::model::Model;
use cnm::plan::Op;
use cnm::session::{Config, Error, Session};
use cnm::syntax::Sources;
use proptest::prelude::*;

/// A fresh state directory, removed when dropped.
struct StateDir(PathBuf);

impl StateDir {
    fn new() -> StateDir {
        use std::sync::atomic::{AtomicUsize, Ordering};
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "cnm-session-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::SeqCst)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        StateDir(dir)
    }
}

impl Drop for StateDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn config(state: &StateDir) -> Config {
    Config {
        state_dir: state.0.clone(),
        netns_dir: state.0.join("netns"),
        etc_dir: state.0.join("etc"),
        lock_timeout: Duration::ZERO,
        command_line: "test".into(),
    }
}

fn session(state: &StateDir) -> Session {
    let mut session = Session::with_backend(config(state), Box::new(MemoryBackend::new()));
    session.set_notice(|_| {});
    session
}

struct Quiet;

impl Progress for Quiet {
    fn step(&mut self, _: usize, _: usize, _: &Op) {}
    fn finish(&mut self) {}
}

fn apply(session: &mut Session, text: &str) -> Result<(), Error> {
    let mut sources = Sources::default();
    let id = sources.add("test.cnm", text);
    session.apply(&mut sources, &[id], &mut Quiet).map(drop)
}

fn committed(session: &mut Session) -> Model {
    session.committed().unwrap()
}

/// A valid script from a list of choices: each choice picks one of the statements that
/// make sense after the ones before (a state machine over networks, sandboxes and their
/// connections), so that almost every generated script applies.
fn script(choices: &[u8]) -> Vec<String> {
    use std::collections::{BTreeMap, BTreeSet};
    let nets = ["n1", "n2", "n3"];
    let names = ["a", "b", "c", "d"];
    let mut networks: BTreeSet<&str> = BTreeSet::new();
    // Sandbox → running?
    let mut sandboxes: BTreeMap<&str, bool> = BTreeMap::new();
    let mut connected: BTreeSet<(&str, &str)> = BTreeSet::new();
    let mut loops = 0;
    let mut entries = Vec::new();
    for (i, &choice) in choices.iter().enumerate() {
        let pick = |n: usize| (choice as usize / 16) % n;
        let net = nets[pick(nets.len())];
        let name = names[pick(names.len())];
        let entry = match choice % 9 {
            // A script declares each name once (a session may say it again: a no-op).
            0 if !networks.contains(net) => {
                networks.insert(net);
                format!("network {net} subnet 10.{}.0.0/24", pick(nets.len()) + 1)
            }
            1 if !sandboxes.contains_key(name) => {
                sandboxes.insert(name, true);
                format!("sandbox {name} mode none")
            }
            2 if sandboxes.contains_key(name)
                && networks.contains(net)
                && !connected.contains(&(name, net)) =>
            {
                connected.insert((name, net));
                let alias = if choice % 2 == 0 { " alias x" } else { "" };
                format!("connect {name} to {net}{alias}")
            }
            3 if connected.contains(&(name, net)) => {
                connected.remove(&(name, net));
                format!("disconnect {name} from {net}")
            }
            4 if sandboxes.get(name) == Some(&true) => {
                sandboxes.insert(name, false);
                format!("stop {name}")
            }
            5 if sandboxes.get(name) == Some(&false) => {
                sandboxes.insert(name, true);
                format!("start {name}")
            }
            6 if sandboxes.contains_key(name) => {
                sandboxes.remove(name);
                connected.retain(|(s, _)| *s != name);
                format!("remove sandbox {name}")
            }
            7 => format!("let k = {i}"),
            8 if networks.contains(net) => {
                loops += 1;
                format!(
                    "for i in 1..2 {{\n  sandbox l{loops}w$i mode none\n  connect l{loops}w$i to {net}\n}}"
                )
            }
            _ => continue,
        };
        entries.push(entry);
    }
    entries
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// A script fed entry by entry, each its own transaction, ends in the same committed
    /// state as the script applied whole.
    #[test]
    fn entry_by_entry_ends_where_the_whole_script_ends(choices in prop::collection::vec(any::<u8>(), 1..40)) {
        let entries = script(&choices);
        let text = entries.join("\n");
        let whole_dir = StateDir::new();
        let mut whole = session(&whole_dir);
        if let Err(error) = apply(&mut whole, &text) {
            panic!("the generated script does not apply:\n{text}\n{}", error.render());
        }
        let one_dir = StateDir::new();
        let mut one_by_one = session(&one_dir);
        for entry in &entries {
            if let Err(error) = apply(&mut one_by_one, entry) {
                panic!("`{entry}` failed alone though the whole script applies:\n{text}\n{}", error.render());
            }
        }
        prop_assert_eq!(committed(&mut one_by_one), committed(&mut whole), "{}", text);
    }
}

/// The cases the property found: disconnecting (or removing the sandbox) and
/// connecting again within one script gives the endpoint back its veth name, as doing
/// it entry by entry does.
#[test]
fn a_reconnect_in_one_script_keeps_the_veth_name() {
    a_script_ends_where_its_entries_do(&[
        "sandbox b mode none",
        "network n1 subnet 10.1.0.0/24",
        "connect b to n1 alias x",
        "disconnect b from n1",
        "connect b to n1 alias x",
    ]);
    a_script_ends_where_its_entries_do(&[
        "network n1 subnet 10.1.0.0/24",
        "sandbox b mode none",
        "connect b to n1 alias x",
        "remove sandbox b",
        "sandbox b mode none",
        "connect b to n1 alias x",
    ]);
}

fn a_script_ends_where_its_entries_do(entries: &[&str]) {
    let whole_dir = StateDir::new();
    let mut whole = session(&whole_dir);
    apply(&mut whole, &entries.join("\n")).unwrap();
    let one_dir = StateDir::new();
    let mut one_by_one = session(&one_dir);
    for entry in entries {
        apply(&mut one_by_one, entry).unwrap();
    }
    assert_eq!(committed(&mut one_by_one), committed(&mut whole));
}

#[test]
fn variables_persist_from_one_entry_to_the_next_and_only_when_applied() {
    let state = StateDir::new();
    let mut session = session(&state);
    apply(&mut session, "let net = backend").unwrap();
    apply(&mut session, "network $net subnet 10.1.0.0/24").unwrap();
    assert!(committed(&mut session).networks.contains_key("backend"));
    // A failing entry sets nothing.
    assert!(apply(&mut session, "let net = other\nsandbox a mode nonsense").is_err());
    assert_eq!(session.variables()["net"], "backend");
}

#[test]
fn an_interrupt_rolls_back_and_the_next_transaction_runs() {
    let state = StateDir::new();
    let mut session = session(&state);
    session.interrupt().trigger();
    let error = apply(&mut session, "network n subnet 10.1.0.0/24").unwrap_err();
    assert!(
        error.render().contains("apply interrupted before step 1"),
        "{}",
        error.render()
    );
    assert_eq!(committed(&mut session), Model::empty());
    assert!(
        !session.interrupt().is_triggered(),
        "reset once the transaction ended"
    );
    apply(&mut session, "network n subnet 10.1.0.0/24").unwrap();
    assert!(committed(&mut session).networks.contains_key("n"));
}

#[test]
fn undo_goes_back_one_transaction_at_a_time() {
    let state = StateDir::new();
    let mut session = session(&state);
    apply(
        &mut session,
        "network n subnet 10.1.0.0/24\nsandbox a mode none\nconnect a to n",
    )
    .unwrap();
    let first = committed(&mut session);
    apply(&mut session, "stop a\nsandbox b mode none").unwrap();
    let (undone, _) = session.undo(&mut Quiet).unwrap().unwrap();
    assert_eq!(undone, 2);
    assert_eq!(committed(&mut session), first);
    let (undone, _) = session.undo(&mut Quiet).unwrap().unwrap();
    assert_eq!(undone, 1);
    assert_eq!(committed(&mut session), Model::empty());
    assert!(
        session.undo(&mut Quiet).unwrap().is_none(),
        "nothing left to undo"
    );
}

fn forwarding_steps(plan: &cnm::plan::Plan) -> Vec<bool> {
    plan.steps
        .iter()
        .filter_map(|s| match s.op {
            Op::SetForwarding { on } => Some(on),
            _ => None,
        })
        .collect()
}

fn session_forwarding(state: &StateDir, on: bool) -> Session {
    let mut kernel = MemoryBackend::new();
    kernel.set_ip_forward(on);
    let mut session = Session::with_backend(config(state), Box::new(kernel));
    session.set_notice(|_| {});
    session
}

fn applied_plan(session: &mut Session, text: &str) -> cnm::plan::Plan {
    let mut sources = Sources::default();
    let id = sources.add("test.cnm", text);
    session.apply(&mut sources, &[id], &mut Quiet).unwrap().plan
}

/// A host that does not forward: the first network with a way out turns forwarding
/// on, once, and the state records it; the last one going (destroy, undo) turns it
/// off. An internal network needs none.
#[test]
fn forwarding_is_turned_on_once_and_off_with_the_last_network() {
    let state = StateDir::new();
    let mut session = session_forwarding(&state, false);
    assert_eq!(
        forwarding_steps(&applied_plan(
            &mut session,
            "network i subnet 10.8.0.0/24 internal\n"
        )),
        [false; 0]
    );
    assert_eq!(
        forwarding_steps(&applied_plan(&mut session, "network n subnet 10.9.0.0/24\n")),
        [true]
    );
    assert!(committed(&mut session).ip_forward_enabled);
    assert_eq!(
        forwarding_steps(&applied_plan(&mut session, "network m subnet 10.7.0.0/24\n")),
        [false; 0]
    );
    assert_eq!(
        forwarding_steps(&applied_plan(&mut session, "remove network n\n")),
        [false; 0]
    );
    let (_, undone) = session.undo(&mut Quiet).unwrap().unwrap();
    assert_eq!(forwarding_steps(&undone.plan), [false; 0], "m still needs it");
    assert_eq!(
        forwarding_steps(&session.destroy(&mut Quiet).unwrap().plan),
        [false]
    );
    assert!(!committed(&mut session).ip_forward_enabled);
}

/// A host that forwards already is left alone, and so is its setting after destroy.
#[test]
fn a_host_that_forwards_is_left_as_it_is() {
    let state = StateDir::new();
    let mut session = session_forwarding(&state, true);
    assert_eq!(
        forwarding_steps(&applied_plan(&mut session, "network n subnet 10.9.0.0/24\n")),
        [false; 0]
    );
    assert!(!committed(&mut session).ip_forward_enabled);
    assert_eq!(
        forwarding_steps(&session.destroy(&mut Quiet).unwrap().plan),
        [false; 0]
    );
}

/// A destroy deletes the namespaces, then the firewall, then the bridges, and turns
/// forwarding off last: deleting a bridge waits for the kernel to clean up the deleted
/// namespaces, and until it has, the kernel has a writer to ip_forward try again and
/// again (a CPU busy beside the cleanup), while the firewall need not wait at all.
#[test]
fn a_destroy_turns_forwarding_off_after_the_bridges_and_the_firewall_before() {
    let state = StateDir::new();
    let mut session = session_forwarding(&state, false);
    applied_plan(
        &mut session,
        "network n subnet 10.9.0.0/24\nsandbox a mode none\nconnect a to n\n",
    );
    let plan = session.destroy(&mut Quiet).unwrap().plan;
    let at = |wanted: fn(&Op) -> bool| plan.steps.iter().position(|s| wanted(&s.op)).unwrap();
    let bridge = at(|op| matches!(op, Op::DelLink { netns: None, .. }));
    assert!(at(|op| matches!(op, Op::DelNetns { .. })) < bridge);
    assert!(at(|op| matches!(op, Op::DelFirewall)) < bridge);
    assert!(at(|op| matches!(op, Op::SetForwarding { on: false })) > bridge);
}
