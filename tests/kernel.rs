//! cnm against the real kernel. Each test re-runs itself inside a fresh user, network
//! and mount namespace (`unshare --user --map-root-user --net --mount`) with a tmpfs on
//! /run, so the tests run in parallel, need no root, and leave nothing behind. What cnm
//! made is read back with iproute2 (`ip -j`), never through cnm, and real packets are
//! sent between the namespaces.

mod common;

use common::run;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

const CNM: &str = env!("CARGO_BIN_EXE_cnm");

/// Runs `body` inside fresh namespaces, with this test's directories there.
fn in_namespaces(test: &str, body: impl FnOnce(&Env)) {
    common::in_namespaces(test, || body(&Env::new()));
}

/// The private directories of one test, inside its namespaces.
struct Env {
    state: PathBuf,
    netns: PathBuf,
    etc: PathBuf,
}

impl Env {
    fn new() -> Env {
        let env = Env {
            state: PathBuf::from("/run/cnm-test/state"),
            netns: PathBuf::from("/run/netns"),
            etc: PathBuf::from("/run/cnm-test/etc"),
        };
        std::fs::create_dir_all(&env.etc).unwrap();
        run("ip", &["link", "set", "lo", "up"]);
        env
    }

    /// cnm with this test's directories, run from the crate's root.
    fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(CNM);
        command
            .args(["--state-dir", self.state.to_str().unwrap()])
            .args(["--netns-dir", self.netns.to_str().unwrap()])
            .args(["--etc-dir", self.etc.to_str().unwrap()])
            .args(args)
            .current_dir(env!("CARGO_MANIFEST_DIR"));
        command
    }

    fn cnm(&self, args: &[&str]) -> Output {
        self.command(args).output().unwrap()
    }

    /// cnm with `input` on its standard input.
    fn cnm_piped(&self, args: &[&str], input: &[u8]) -> Output {
        let mut child = self
            .command(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(input).unwrap();
        child.wait_with_output().unwrap()
    }

    fn cnm_ok(&self, args: &[&str]) -> String {
        let out = self.cnm(args);
        assert!(
            out.status.success(),
            "cnm {args:?} failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    fn state_json(&self) -> Option<String> {
        std::fs::read_to_string(self.state.join("state.json")).ok()
    }

    /// Everything cnm could have touched, as iproute2 and nft show it: the namespace
    /// list; links, addresses and routes on the host and in every namespace; the host's
    /// nftables ruleset (without handles, which the kernel numbers anew) and its
    /// `ip_forward`; and every file under the etc dir, with its content.
    fn kernel(&self) -> String {
        let mut text = format!("netns: {:?}\n", namespaces());
        text.push_str(&self.etc_files());
        text.push_str(&format!("ip_forward: {}\n", ip_forward()));
        text.push_str(&format!("nft: {}\n", ruleset()));
        for ns in std::iter::once(None).chain(namespaces().into_iter().map(Some)) {
            for what in [&["link"][..], &["addr"], &["route"]] {
                let mut args = Vec::new();
                if let Some(ns) = &ns {
                    args.extend(["-n", ns.as_str()]);
                }
                args.push("-j");
                args.extend(what);
                let mut value: Value = serde_json::from_str(&run("ip", &args)).unwrap();
                strip_volatile(&mut value);
                text.push_str(&format!("{ns:?} {what:?}: {value}\n"));
            }
        }
        text
    }
}

impl Env {
    /// Each file under the etc dir (`SANDBOX/FILE`, or a stray `FILE`), in order, with
    /// its content.
    fn etc_files(&self) -> String {
        let mut files = Vec::new();
        for entry in std::fs::read_dir(&self.etc).unwrap().flatten() {
            if entry.file_type().unwrap().is_file() {
                let content = std::fs::read_to_string(entry.path()).unwrap();
                files.push(format!("{}: {content:?}\n", entry.file_name().to_string_lossy()));
                continue;
            }
            for file in std::fs::read_dir(entry.path()).unwrap().flatten() {
                let content = std::fs::read_to_string(file.path()).unwrap();
                let name = file.path().strip_prefix(&self.etc).unwrap().display().to_string();
                files.push(format!("{name}: {content:?}\n"));
            }
        }
        files.sort();
        files.concat()
    }
}

/// Drops what changes by itself (counters, timers) from `ip -j` output, and what the
/// kernel derives in the background ([`common::forget_derived`]).
fn strip_volatile(value: &mut Value) {
    match value {
        Value::Array(items) => items.iter_mut().for_each(strip_volatile),
        Value::Object(map) => {
            for key in [
                "valid_life_time",
                "preferred_life_time",
                "stats64",
                "stats",
                "tentative",
            ] {
                map.remove(key);
            }
            common::forget_derived(map);
            map.values_mut().for_each(strip_volatile);
        }
        _ => {}
    }
}

/// A kernel snapshot without interface indexes: a link made again (by a rollback) is
/// the same link in every other respect, but the kernel numbers it anew (and lists it
/// in that order).
fn without_indexes(kernel: &str) -> String {
    kernel
        .lines()
        .map(|line| match line.split_once(": ") {
            Some((what, json)) if json.starts_with('[') => {
                let mut value: Value = serde_json::from_str(json).unwrap();
                forget_indexes(&mut value);
                format!("{what}: {value}\n")
            }
            _ => format!("{line}\n"),
        })
        .collect()
}

fn forget_indexes(value: &mut Value) {
    match value {
        Value::Array(items) => {
            items.iter_mut().for_each(forget_indexes);
            items.sort_by_key(|item| item.to_string());
        }
        Value::Object(map) => {
            map.remove("ifindex");
            map.remove("link_index");
            map.values_mut().for_each(forget_indexes);
        }
        _ => {}
    }
}

/// Two kernel snapshots are equal; if not, the failure shows only the lines that differ.
fn assert_same_kernel(before: &str, after: &str, what: &str) {
    if before != after {
        let old: Vec<&str> = before.lines().collect();
        let new: Vec<&str> = after.lines().collect();
        let gone: Vec<&&str> = old.iter().filter(|l| !new.contains(l)).collect();
        let came: Vec<&&str> = new.iter().filter(|l| !old.contains(l)).collect();
        panic!("{what}: the kernel changed\n--- before\n{gone:#?}\n--- after\n{came:#?}");
    }
}

fn ip_json(args: &[&str]) -> Value {
    let mut all = vec!["-j"];
    all.extend(args);
    serde_json::from_str(&run("ip", &all)).unwrap()
}

fn namespaces() -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir("/run/netns")
        .map(|d| {
            d.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

fn link<'a>(links: &'a Value, name: &str) -> &'a Value {
    links
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["ifname"] == name)
        .unwrap_or_else(|| panic!("no link {name} in {links}"))
}

fn addresses(addr: &Value, dev: &str) -> Vec<String> {
    let entry = link(addr, dev);
    entry["addr_info"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["family"] == "inet")
        .map(|a| format!("{}/{}", a["local"].as_str().unwrap(), a["prefixlen"]))
        .collect()
}

/// The host's `net.ipv4.ip_forward`, as 0 or 1.
fn ip_forward() -> String {
    std::fs::read_to_string("/proc/sys/net/ipv4/ip_forward")
        .unwrap()
        .trim()
        .to_string()
}

fn set_ip_forward(on: bool) {
    std::fs::write("/proc/sys/net/ipv4/ip_forward", if on { "1" } else { "0" }).unwrap();
}

/// The host's whole nftables ruleset as `nft -j` shows it, without handles and nft's
/// own version line.
fn ruleset() -> Value {
    let mut value: Value = serde_json::from_str(&run("nft", &["-j", "list", "ruleset"])).unwrap();
    fn forget_handles(value: &mut Value) {
        match value {
            Value::Array(items) => items.iter_mut().for_each(forget_handles),
            Value::Object(map) => {
                map.remove("handle");
                map.values_mut().for_each(forget_handles);
            }
            _ => {}
        }
    }
    forget_handles(&mut value);
    let mut items = value["nftables"].take();
    items
        .as_array_mut()
        .unwrap()
        .retain(|item| item.get("metainfo").is_none());
    items
}

/// The elements of a set of cnm's table, as nft shows them (JSON).
fn nft_set(set: &str) -> Vec<Value> {
    let kind = if set.starts_with("publish") { "map" } else { "set" };
    let out = run("nft", &["-j", "list", kind, "inet", "cnm", set]);
    let value: Value = serde_json::from_str(&out).unwrap();
    value["nftables"]
        .as_array()
        .unwrap()
        .iter()
        .find_map(|item| item.get("set").or_else(|| item.get("map")))
        .and_then(|set| set.get("elem"))
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default()
}

/// Whether `from` gets an answer from `to`: one ping, with up to two more tries, since
/// the first packet on a loaded machine may wait on neighbour resolution past its second.
fn pings(from: &str, to: &str) -> bool {
    (0..3).any(|_| ping_once(from, to))
}

/// Whether a single ping from `from` to `to` goes unanswered for a second: what a
/// sandbox that must not reach `to` sees.
fn cannot_ping(from: &str, to: &str) -> bool {
    !ping_once(from, to)
}

fn ping_once(from: &str, to: &str) -> bool {
    Command::new("ip")
        .args(["netns", "exec", from, "ping", "-c1", "-W1", to])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap()
        .success()
}

/// The host end of an endpoint, as the state records it.
fn host_end(env: &Env, endpoint: &str) -> String {
    let state: Value = serde_json::from_str(&env.state_json().unwrap()).unwrap();
    state["endpoints"][endpoint]["host_ifname"]
        .as_str()
        .unwrap()
        .to_string()
}

#[test]
fn seed_is_built_as_the_script_says_and_packets_flow() {
    in_namespaces("seed_is_built_as_the_script_says_and_packets_flow", |env| {
        env.cnm_ok(&["apply", "scripts/seed.cnm"]);
        assert_eq!(namespaces(), ["A", "B", "C", "web1", "web2", "web3"]);

        let links = ip_json(&["-d", "link"]);
        let addr = ip_json(&["addr"]);
        assert_eq!(link(&links, "cnm-backend")["linkinfo"]["info_kind"], "bridge");
        assert_eq!(link(&links, "cnm-frontend")["mtu"], 1400);
        assert_eq!(addresses(&addr, "cnm-backend"), ["10.1.0.1/24"]);
        assert_eq!(addresses(&addr, "cnm-frontend"), ["10.2.0.254/24"]);
        assert_eq!(addresses(&addr, "cnm0"), ["172.30.0.1/16"]);
        for (endpoint, bridge) in [
            ("A.backend", "cnm-backend"),
            ("B.frontend", "cnm-frontend"),
            ("web2.bridge", "cnm0"),
        ] {
            let host = link(&links, &host_end(env, endpoint)).clone();
            assert_eq!(host["master"], bridge, "{endpoint}");
            assert_eq!(host["operstate"], "UP", "{endpoint}");
            // One queue each way, made so at creation (not one per CPU, cut down after).
            let detailed = ip_json(&["-d", "link", "show", "dev", &host_end(env, endpoint)]);
            assert_eq!(detailed[0]["num_tx_queues"], 1, "{endpoint}");
            assert_eq!(detailed[0]["num_rx_queues"], 1, "{endpoint}");
        }
        let eth0 = ip_json(&["-n", "A", "-d", "link", "show", "dev", "eth0"]);
        assert_eq!(
            (&eth0[0]["num_tx_queues"], &eth0[0]["num_rx_queues"]),
            (&1.into(), &1.into())
        );

        let a_links = ip_json(&["-n", "A", "link"]);
        let eth0 = link(&a_links, "eth0");
        assert_eq!(eth0["address"], "02:42:0a:01:00:02");
        assert_eq!(eth0["operstate"], "UP");
        assert_eq!(addresses(&ip_json(&["-n", "A", "addr"]), "eth0"), ["10.1.0.2/24"]);
        assert_eq!(addresses(&ip_json(&["-n", "B", "addr"]), "eth1"), ["10.2.0.1/24"]);
        assert_eq!(
            addresses(&ip_json(&["-n", "C", "addr"]), "eth0"),
            ["10.2.0.50/24"]
        );
        let route = ip_json(&["-n", "C", "route", "show", "default"]);
        assert_eq!(route[0]["gateway"], "10.2.0.254");
        assert_eq!(route[0]["dev"], "eth0");
        // B's second endpoint does not take the default route.
        let route = ip_json(&["-n", "B", "route", "show", "default"]);
        assert_eq!(
            (route[0]["gateway"].as_str(), route.as_array().unwrap().len()),
            (Some("10.1.0.1"), 1)
        );

        let hosts = std::fs::read_to_string(env.etc.join("A/hosts")).unwrap();
        assert!(
            hosts.contains("10.1.0.2\tA db\n") && hosts.contains("10.1.0.3\tB\n"),
            "{hosts}"
        );

        assert!(pings("A", "10.1.0.3"), "A reaches B");
        assert!(pings("B", "10.1.0.2"), "B reaches A");
        assert!(pings("B", "10.2.0.50"), "B reaches C");
        assert!(pings("C", "10.2.0.1"), "C reaches B");
        assert!(cannot_ping("A", "10.2.0.50"), "A does not reach C");
        assert!(cannot_ping("C", "10.1.0.2"), "C does not reach A");
    });
}

#[test]
fn applying_again_changes_nothing() {
    in_namespaces("applying_again_changes_nothing", |env| {
        env.cnm_ok(&["apply", "scripts/seed.cnm"]);
        let kernel = env.kernel();
        let state = env.state_json();
        let out = env.cnm_ok(&["apply", "scripts/seed.cnm"]);
        assert!(
            out.starts_with("No changes: the committed state already matches the script.\n"),
            "{out}"
        );
        assert_same_kernel(&kernel, &env.kernel(), "applying again");
        assert_eq!(env.state_json(), state);
        let log = env.cnm_ok(&["log"]);
        assert_eq!(log.lines().count(), 2, "one transaction only:\n{log}");
    });
}

/// On a pipe (a CI log), apply shows its first and last step and, between them, the
/// step under way once a second: not a line per kernel operation.
#[test]
fn progress_on_a_pipe_is_a_line_a_second_not_a_line_per_step() {
    in_namespaces(
        "progress_on_a_pipe_is_a_line_a_second_not_a_line_per_step",
        |env| {
            let started = Instant::now();
            let out = env.cnm(&["apply", "scripts/seed.cnm"]);
            let seconds = started.elapsed().as_secs() as usize;
            assert!(out.status.success());
            let stdout = String::from_utf8(out.stdout).unwrap();
            let steps: usize = stdout
                .split_whitespace()
                .nth(1)
                .and_then(|n| n.parse().ok())
                .unwrap_or_else(|| panic!("Applied N kernel operations: {stdout}"));
            let stderr = String::from_utf8(out.stderr).unwrap();
            let lines: Vec<&str> = stderr.lines().filter(|l| l.starts_with('[')).collect();
            assert!(steps > 20, "{stdout}");
            let width = steps.to_string().len();
            assert!(
                lines[0].starts_with(&format!("[{:>width$}/{steps}] ", 1)),
                "{stderr}"
            );
            assert!(
                lines.last().unwrap().starts_with(&format!("[{steps}/{steps}] ")),
                "{stderr}"
            );
            assert!(
                lines.len() <= 2 + seconds,
                "{} lines in {seconds} s:\n{stderr}",
                lines.len()
            );
        },
    );
}

#[test]
fn disconnect_stop_start_remove_and_destroy_leave_exactly_what_remains() {
    in_namespaces(
        "disconnect_stop_start_remove_and_destroy_leave_exactly_what_remains",
        |env| {
            env.cnm_ok(&["apply", "scripts/seed.cnm"]);
            let b_frontend = host_end(env, "B.frontend");
            let script = Path::new("/run/cnm-test/step.cnm");

            std::fs::write(script, "disconnect B from frontend\n").unwrap();
            env.cnm_ok(&["apply", script.to_str().unwrap()]);
            let links = ip_json(&["link"]);
            assert!(links
                .as_array()
                .unwrap()
                .iter()
                .all(|l| l["ifname"] != b_frontend.as_str()));
            let b = ip_json(&["-n", "B", "link"]);
            assert!(b.as_array().unwrap().iter().all(|l| l["ifname"] != "eth1"), "{b}");
            assert!(cannot_ping("B", "10.2.0.50"));
            assert!(pings("B", "10.1.0.2"));

            let before_stop = ip_json(&["-n", "A", "link"]);
            std::fs::write(script, "stop A\n").unwrap();
            env.cnm_ok(&["apply", script.to_str().unwrap()]);
            assert!(!namespaces().contains(&"A".to_string()));
            std::fs::write(script, "start A\n").unwrap();
            env.cnm_ok(&["apply", script.to_str().unwrap()]);
            let after_start = ip_json(&["-n", "A", "link"]);
            assert_eq!(
                link(&after_start, "eth0")["address"],
                link(&before_stop, "eth0")["address"]
            );
            assert_eq!(addresses(&ip_json(&["-n", "A", "addr"]), "eth0"), ["10.1.0.2/24"]);
            assert!(pings("A", "10.1.0.3"), "A works again after start");

            std::fs::write(script, "remove sandbox C\nremove sandbox web1\nremove sandbox web2\nremove sandbox web3\nremove network frontend\n").unwrap();
            env.cnm_ok(&["apply", script.to_str().unwrap()]);
            assert_eq!(namespaces(), ["A", "B"]);
            let links = ip_json(&["link"]);
            assert!(links
                .as_array()
                .unwrap()
                .iter()
                .all(|l| l["ifname"] != "cnm-frontend"));
            assert!(!env.etc.join("C").exists(), "C's /etc/netns files are gone");

            env.cnm_ok(&["destroy"]);
            assert_eq!(namespaces(), Vec::<String>::new());
            let names: Vec<String> = ip_json(&["link"])
                .as_array()
                .unwrap()
                .iter()
                .map(|l| l["ifname"].as_str().unwrap().to_string())
                .collect();
            assert_eq!(names, ["lo"], "only loopback is left");
            let out = env.cnm_ok(&["destroy"]);
            assert_eq!(
                out, "Nothing to destroy: the committed state holds no networks, sandboxes or endpoints.\n",
                "destroy again is a no-op"
            );
        },
    );
}

#[test]
fn a_failure_rolls_everything_back() {
    in_namespaces("a_failure_rolls_everything_back", |env| {
        // Take, by hand, the name a late step of the seed needs: C's veth host end.
        let mut sources = cnm::syntax::Sources::default();
        let text =
            std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/seed.cnm")).unwrap();
        let id = sources.add("seed.cnm", text);
        let (checked, _) = cnm::plan_scripts(&mut sources, &[id], &cnm::model::Model::empty()).unwrap();
        let taken = checked.model.endpoints["C.frontend"].host_ifname.clone();
        run(
            "ip",
            &["link", "add", &taken, "type", "veth", "peer", "name", "squatter"],
        );

        let kernel = env.kernel();
        let out = env.cnm(&["apply", "scripts/seed.cnm"]);
        assert_eq!(out.status.code(), Some(1));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains(&format!("an interface named {taken} already exists")),
            "{err}"
        );
        assert!(
            err.contains("connect C to frontend ip 10.2.0.50 alias web"),
            "names the statement: {err}"
        );
        assert!(err.contains("rolled back:"), "{err}");
        assert_same_kernel(&kernel, &env.kernel(), "a failed apply");
        assert_eq!(env.state_json(), None, "nothing was committed");
        let log = env.cnm_ok(&["log"]);
        assert!(log.contains("rolled back: step"), "{log}");
    });
}

#[test]
fn a_hosts_file_that_cannot_be_written_rolls_everything_back() {
    in_namespaces(
        "a_hosts_file_that_cannot_be_written_rolls_everything_back",
        |env| {
            // A file where sandbox B's etc directory goes: its hosts file cannot be written.
            // Files are written ahead of their turn, on a thread of their own: the failure
            // still stops the transaction at B's file, and every file written is removed.
            std::fs::write(env.etc.join("B"), "not a directory\n").unwrap();
            let kernel = env.kernel();
            let out = env.cnm(&["apply", "scripts/seed.cnm"]);
            assert_eq!(out.status.code(), Some(1));
            let err = String::from_utf8_lossy(&out.stderr);
            let blocked = env.etc.join("B/hosts");
            assert!(
                err.contains(&format!("cannot write {}: Not a directory", blocked.display())),
                "{err}"
            );
            assert!(err.contains("sandbox B mode none"), "names the statement: {err}");
            assert!(err.contains("rolled back:"), "{err}");
            assert_same_kernel(&kernel, &env.kernel(), "an apply whose hosts file failed");
            assert_eq!(env.state_json(), None, "nothing was committed");
        },
    );
}

#[test]
fn a_killed_apply_is_rolled_back_by_the_next_command() {
    in_namespaces("a_killed_apply_is_rolled_back_by_the_next_command", |env| {
        let mut child = env
            .command(&["apply", "scripts/fleet.cnm"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        // Wait until it is well into the transaction, then kill it without warning.
        let journal = env.state.join("journal.jsonl");
        let started = Instant::now();
        loop {
            let lines = std::fs::read_to_string(&journal)
                .map(|t| t.lines().count())
                .unwrap_or(0);
            if lines > 200 {
                break;
            }
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "the apply never got going"
            );
            assert!(
                child.try_wait().unwrap().is_none(),
                "the apply finished before it could be killed"
            );
            std::thread::sleep(Duration::from_millis(2));
        }
        child.kill().unwrap();
        child.wait().unwrap();
        assert!(!namespaces().is_empty(), "the kill left work behind to recover");

        let out = env.cnm(&["show"]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{err}");
        assert!(err.contains("was cut short after"), "recovery is reported: {err}");
        assert!(err.contains("rolled it back"), "{err}");
        // The kernel matches state.json: nothing was ever committed, so nothing is left.
        assert_eq!(env.state_json(), None);
        assert_eq!(namespaces(), Vec::<String>::new());
        let names: Vec<String> = ip_json(&["link"])
            .as_array()
            .unwrap()
            .iter()
            .map(|l| l["ifname"].as_str().unwrap().to_string())
            .collect();
        assert_eq!(names, ["lo"]);
        let log = env.cnm_ok(&["log"]);
        assert!(log.contains("cut short; recovered"), "{log}");
    });
}

#[test]
fn bad_environments_are_one_clear_error() {
    in_namespaces("bad_environments_are_one_clear_error", |env| {
        // A namespace directory that is a file.
        std::fs::write("/run/not-a-dir", "").unwrap();
        let out = Command::new(CNM)
            .args([
                "--state-dir",
                env.state.to_str().unwrap(),
                "--netns-dir",
                "/run/not-a-dir",
            ])
            .args([
                "--etc-dir",
                env.etc.to_str().unwrap(),
                "apply",
                "scripts/seed.cnm",
            ])
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{err}");
        assert!(err.contains("/run/not-a-dir"), "{err}");
        assert_eq!(err.lines().filter(|l| l.starts_with("error")).count(), 1, "{err}");
        assert_eq!(namespaces(), Vec::<String>::new());

        // A state directory on a read-only filesystem.
        std::fs::create_dir_all("/run/ro").unwrap();
        run("mount", &["-t", "tmpfs", "-o", "ro", "tmpfs", "/run/ro"]);
        let out = Command::new(CNM)
            .args([
                "--state-dir",
                "/run/ro/state",
                "--netns-dir",
                env.netns.to_str().unwrap(),
            ])
            .args([
                "--etc-dir",
                env.etc.to_str().unwrap(),
                "apply",
                "scripts/seed.cnm",
            ])
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1));
        assert!(err.contains("read-only"), "{err}");
        assert_eq!(namespaces(), Vec::<String>::new());

        // No privilege: a user namespace in which we are not root.
        let out = Command::new("unshare")
            .args(["--user", CNM, "--state-dir", "/tmp/cnm-unprivileged-test"])
            .args([
                "--netns-dir",
                "/tmp/cnm-unprivileged-test/netns",
                "apply",
                "scripts/seed.cnm",
            ])
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{err}");
        assert!(err.contains("--isolated"), "says how to fix it: {err}");
        let _ = std::fs::remove_dir_all("/tmp/cnm-unprivileged-test");
    });
}

/// The output of a shell script run in `cnm --isolated shell`, from the repository's
/// directory; the script must succeed.
fn isolated_shell(script: &str) -> String {
    let out = Command::new(CNM)
        .args(["--isolated", "shell", "--", "sh", "-c", script])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    text
}

/// README's main job: any user, no root, nothing outside changes.
#[test]
fn isolated_session_applies_and_proves_packets_flow() {
    let etc_before = std::fs::read_dir("/etc").unwrap().count();
    let text = isolated_shell(&format!(
        "{CNM} apply scripts/seed.cnm >/dev/null && {CNM} show && {CNM} exec A -- ping -c1 -W1 10.1.0.3"
    ));
    assert!(text.contains("A.backend"), "{text}");
    assert!(text.contains("1 received"), "{text}");
    assert_eq!(
        std::fs::read_dir("/etc").unwrap().count(),
        etc_before,
        "nothing new under /etc"
    );
    assert!(!Path::new("/run/netns/web1").exists());
}

/// cnm runs without transparent huge pages (they cost an apply memory), a setting
/// that children inherit; the programs it runs for the user get the system's own.
#[test]
fn programs_run_by_cnm_are_not_denied_huge_pages() {
    let text = isolated_shell(&format!(
        "grep THP_enabled /proc/self/status && {CNM} apply scripts/seed.cnm >/dev/null && \
         {CNM} exec A -- grep THP_enabled /proc/self/status"
    ));
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines,
        ["THP_enabled:\t1", "THP_enabled:\t1"],
        "in cnm shell, then in cnm exec"
    );
}

#[test]
fn a_dead_sandbox_refuses_with_a_clear_error() {
    in_namespaces("a_dead_sandbox_refuses_with_a_clear_error", |env| {
        env.cnm_ok(&["apply", "scripts/seed.cnm"]);
        // Its namespace vanishes outside cnm; the kernel removes its veth in the background.
        let a_backend = host_end(env, "A.backend");
        run("ip", &["netns", "del", "A"]);
        let started = Instant::now();
        while ip_json(&["link"])
            .as_array()
            .unwrap()
            .iter()
            .any(|l| l["ifname"] == a_backend.as_str())
        {
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "{a_backend} never went away"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
        let kernel = env.kernel();
        let state = env.state_json();
        std::fs::write("/run/cnm-test/dead.cnm", "connect A to frontend\n").unwrap();
        let out = env.cnm(&["apply", "/run/cnm-test/dead.cnm"]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{err}");
        assert!(
            err.contains("sandbox A is dead: its namespace /run/netns/A vanished outside cnm"),
            "{err}"
        );
        assert!(
            err.contains("connect A to frontend"),
            "points at the statement: {err}"
        );
        assert!(err.contains("`stop A` then `start A` recreates it"), "{err}");
        assert_same_kernel(&kernel, &env.kernel(), "a refused apply");
        assert_eq!(env.state_json(), state);
        // What it says works: stop, then start, and A is back.
        std::fs::write("/run/cnm-test/dead.cnm", "stop A\n").unwrap();
        env.cnm_ok(&["apply", "/run/cnm-test/dead.cnm"]);
        std::fs::write("/run/cnm-test/dead.cnm", "start A\n").unwrap();
        env.cnm_ok(&["apply", "/run/cnm-test/dead.cnm"]);
        assert!(pings("A", "10.1.0.3"));
    });
}

/// `cnm plan` reports a dead sandbox exactly as `cnm apply` would, and plans nothing.
#[test]
fn plan_reports_a_dead_sandbox_as_apply_does() {
    in_namespaces("plan_reports_a_dead_sandbox_as_apply_does", |env| {
        env.cnm_ok(&["apply", "scripts/seed.cnm"]);
        run("ip", &["netns", "del", "A"]);
        std::fs::write("/run/cnm-test/dead.cnm", "connect A to frontend\n").unwrap();
        let planned = env.cnm(&["plan", "/run/cnm-test/dead.cnm"]);
        let applied = env.cnm(&["apply", "/run/cnm-test/dead.cnm"]);
        assert_eq!(planned.status.code(), Some(1));
        assert_eq!(applied.status.code(), Some(1));
        assert!(planned.stdout.is_empty(), "no plan is printed");
        let err = String::from_utf8_lossy(&planned.stderr);
        assert!(
            err.contains("sandbox A is dead: its namespace /run/netns/A vanished outside cnm"),
            "{err}"
        );
        assert_eq!(err, String::from_utf8_lossy(&applied.stderr));
    });
}

/// The script of the audit: a sandbox connected to a network, to be stopped by a
/// transaction that then fails on a bridge name taken by hand.
fn stop_then_fail(env: &Env) {
    std::fs::write(
        "/run/cnm-test/one.cnm",
        "network n subnet 10.9.0.0/24\nsandbox a mode none\nconnect a to n\n",
    )
    .unwrap();
    env.cnm_ok(&["apply", "/run/cnm-test/one.cnm"]);
    run("ip", &["link", "add", "cnm-z", "type", "bridge"]);
    std::fs::write("/run/cnm-test/two.cnm", "stop a\nnetwork z subnet 10.8.0.0/24\n").unwrap();
}

/// Undoing a namespace deletion must wait until the kernel has removed the namespace's
/// veths: only then are their names free to make them again. Tried with `stop` and
/// with `remove sandbox`, several times, since the kernel's cleanup races the undo.
#[test]
fn a_rollback_after_a_namespace_deletion_restores_the_sandbox() {
    in_namespaces(
        "a_rollback_after_a_namespace_deletion_restores_the_sandbox",
        |env| {
            stop_then_fail(env);
            let kernel = env.kernel();
            let state = env.state_json();
            for first in ["stop a", "remove sandbox a", "stop a", "remove sandbox a"] {
                std::fs::write(
                    "/run/cnm-test/two.cnm",
                    format!("{first}\nnetwork z subnet 10.8.0.0/24\n"),
                )
                .unwrap();
                let out = env.cnm(&["apply", "/run/cnm-test/two.cnm"]);
                let err = String::from_utf8_lossy(&out.stderr);
                assert_eq!(out.status.code(), Some(1), "{err}");
                assert!(err.contains("an interface named cnm-z already exists"), "{err}");
                assert!(err.contains("rolled back: 6 steps undone"), "{first}: {err}");
                // How long the rollback took, waiting for the kernel included.
                let words = unwrapped(&out.stderr);
                let took = words
                    .split_once("6 steps undone in ")
                    .map(|(_, rest)| rest.split_once(" s, last first"));
                let seconds: f64 = took.flatten().expect(&words).0.parse().expect(&words);
                assert!((0.0..30.0).contains(&seconds), "{words}");
                assert_same_kernel(&without_indexes(&kernel), &without_indexes(&env.kernel()), first);
                assert_eq!(env.state_json(), state);
                assert_eq!(addresses(&ip_json(&["-n", "a", "addr"]), "eth0"), ["10.9.0.2/24"]);
                assert!(pings("a", "10.9.0.1"), "{first}: a reaches its gateway again");
            }
        },
    );
}

/// An undo operation the kernel refuses (an `unshare` failed by strace) is reported with
/// what is left, the transaction stays open with state.json untouched, and the next
/// command finishes the rollback.
#[test]
fn a_refused_undo_is_reported_and_finished_by_the_next_command() {
    in_namespaces(
        "a_refused_undo_is_reported_and_finished_by_the_next_command",
        |env| {
            stop_then_fail(env);
            let kernel = env.kernel();
            let state = env.state_json();
            // unshare #1 checks that namespaces can be made; #2 makes the undo's new one.
            let out = Command::new("strace")
                .args(["-f", "-o", "/dev/null", "-e", "trace=unshare", "-e"])
                .arg("inject=unshare:error=EPERM:when=2")
                .arg(CNM)
                .args(env.command(&["apply", "/run/cnm-test/two.cnm"]).get_args())
                .current_dir(env!("CARGO_MANIFEST_DIR"))
                .output()
                .expect("strace runs");
            let err = String::from_utf8_lossy(&out.stderr);
            assert_eq!(out.status.code(), Some(1), "{err}");
            assert!(err.contains("apply failed at step 7 of 10"), "{err}");
            assert!(
                err.contains("transaction 2 is not fully rolled back: the kernel refused"),
                "{err}"
            );
            assert!(err.contains("ip netns add a: "), "names what is left: {err}");
            assert!(err.contains("the transaction stays open"), "{err}");
            assert_eq!(env.state_json(), state, "state.json still holds the state before");
            assert!(!namespaces().contains(&"a".to_string()));
            let log = env.cnm_ok(&["log"]);
            assert!(log.contains("open: rollback incomplete"), "{log}");

            // The next command (even one that only reads) finishes it.
            let out = env.cnm(&["show"]);
            let err = String::from_utf8_lossy(&out.stderr);
            assert!(out.status.success(), "{err}");
            assert!(err.contains("went through; it is rolled back"), "{err}");
            assert_same_kernel(
                &without_indexes(&kernel),
                &without_indexes(&env.kernel()),
                "after the rollback was finished",
            );
            assert_eq!(env.state_json(), state);
            assert!(pings("a", "10.9.0.1"));
            let log = env.cnm_ok(&["log"]);
            assert!(log.contains("cut short; recovered"), "{log}");
        },
    );
}

/// SIGTERM, and SIGHUP (a dropped SSH session), stop an apply the way Ctrl-C does: it
/// rolls back and says so.
#[test]
fn a_stop_signal_during_an_apply_rolls_it_back() {
    in_namespaces("a_stop_signal_during_an_apply_rolls_it_back", |env| {
        for signal in ["TERM", "HUP"] {
            let child = env
                .command(&["apply", "scripts/fleet.cnm"])
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap();
            let journal = env.state.join("journal.jsonl");
            let started = Instant::now();
            let lines = || {
                std::fs::read_to_string(&journal)
                    .map(|t| t.lines().count())
                    .unwrap_or(0)
            };
            let before = lines();
            while lines() < before + 200 {
                assert!(
                    started.elapsed() < Duration::from_secs(60),
                    "the apply never got going"
                );
                std::thread::sleep(Duration::from_millis(2));
            }
            run("kill", &[&format!("-{signal}"), &child.id().to_string()]);
            let out = child.wait_with_output().unwrap();
            let err = String::from_utf8_lossy(&out.stderr);
            assert_eq!(out.status.code(), Some(1), "SIG{signal}: {err}");
            assert!(err.contains("apply interrupted before step"), "{err}");
            assert!(err.contains("rolled back:"), "{err}");
            assert_eq!(namespaces(), Vec::<String>::new(), "SIG{signal}");
            assert_eq!(env.state_json(), None, "SIG{signal}");
            let log = env.cnm_ok(&["log"]);
            assert!(log.contains("rolled back: interrupted"), "{log}");
        }
    });
}

/// A reader that goes away (`cnm apply … 2>&1 | head -1`) costs cnm its output, never
/// its transaction: the apply completes, exits 0, and the kernel holds what state.json
/// says; `show` into a closed pipe exits 0 too.
#[test]
fn a_closed_output_never_aborts_a_transaction() {
    in_namespaces("a_closed_output_never_aborts_a_transaction", |env| {
        let command = env.command(&["apply", "scripts/fleet.cnm"]);
        let args: Vec<String> = std::iter::once(command.get_program())
            .chain(command.get_args())
            .map(|a| format!("'{}'", a.to_string_lossy()))
            .collect();
        let script = format!(
            "{} 2>&1 | head -1 >/dev/null; echo ${{PIPESTATUS[0]}}",
            args.join(" ")
        );
        let status = run("bash", &["-c", &script]);
        assert_eq!(status.trim(), "0", "the apply went through");
        let state: Value = serde_json::from_str(&env.state_json().unwrap()).unwrap();
        let mut sandboxes: Vec<String> = state["sandboxes"].as_object().unwrap().keys().cloned().collect();
        sandboxes.sort();
        assert_eq!(sandboxes.len(), 100, "{sandboxes:?}");
        assert_eq!(namespaces(), sandboxes, "the kernel holds what state.json says");

        let show = env.command(&["show"]);
        let args: Vec<String> = std::iter::once(show.get_program())
            .chain(show.get_args())
            .map(|a| format!("'{}'", a.to_string_lossy()))
            .collect();
        let script = format!("{} | head -1 >/dev/null; echo ${{PIPESTATUS[0]}}", args.join(" "));
        assert_eq!(run("bash", &["-c", &script]).trim(), "0");
        env.cnm_ok(&["destroy"]);
    });
}

/// The first address the sandbox's hosts file gives NAME (`getent -s files hosts`: no
/// DNS server to wait for), if any.
fn resolve(env: &Env, sandbox: &str, name: &str) -> Option<String> {
    let out = env.cnm(&["exec", sandbox, "--", "getent", "-s", "files", "hosts", name]);
    let text = String::from_utf8(out.stdout).unwrap();
    out.status
        .success()
        .then(|| text.split_whitespace().next().unwrap().to_string())
}

#[test]
fn hosts_files_let_sandboxes_resolve_each_other_by_name() {
    in_namespaces("hosts_files_let_sandboxes_resolve_each_other_by_name", |env| {
        let script = "/run/cnm-test/trio.cnm";
        std::fs::write(
            script,
            "network net subnet 10.9.0.0/24\n\
             sandbox A mode none\nsandbox B mode none\nsandbox C mode none\n\
             connect A to net\nconnect B to net alias db\nconnect C to net\n",
        )
        .unwrap();
        env.cnm_ok(&["apply", script]);
        assert_eq!(resolve(env, "A", "B").as_deref(), Some("10.9.0.3"));
        assert_eq!(resolve(env, "A", "db").as_deref(), Some("10.9.0.3"));
        assert_eq!(resolve(env, "B", "C").as_deref(), Some("10.9.0.4"));
        assert_eq!(resolve(env, "C", "A").as_deref(), Some("10.9.0.2"));
        let ping = env.cnm(&["exec", "A", "--", "ping", "-c1", "-W1", "B"]);
        assert!(
            ping.status.success(),
            "A pings B by name: {}",
            String::from_utf8_lossy(&ping.stderr)
        );

        // A peer that stops leaves the others' files; when it starts, it is back.
        std::fs::write(script, "stop C\n").unwrap();
        env.cnm_ok(&["apply", script]);
        assert_eq!(resolve(env, "A", "C"), None);
        assert_eq!(resolve(env, "A", "B").as_deref(), Some("10.9.0.3"));
        std::fs::write(script, "start C\n").unwrap();
        env.cnm_ok(&["apply", script]);
        assert_eq!(resolve(env, "A", "C").as_deref(), Some("10.9.0.4"));

        // A peer that goes for good leaves them too.
        std::fs::write(script, "remove sandbox B\n").unwrap();
        env.cnm_ok(&["apply", script]);
        assert_eq!(resolve(env, "A", "B"), None);
        assert_eq!(resolve(env, "A", "db"), None);
    });
}

#[test]
fn dual_stack_sandboxes_route_and_ping_over_ipv6() {
    in_namespaces("dual_stack_sandboxes_route_and_ping_over_ipv6", |env| {
        env.cnm_ok(&["apply", "scripts/dual-stack.cnm"]);
        for (sandbox, address) in [("A", "fd06::2"), ("B", "fd06::3")] {
            let routes = ip_json(&["-6", "-n", sandbox, "route", "show", "default"]);
            assert_eq!(routes.as_array().unwrap().len(), 1, "{routes}");
            assert_eq!(routes[0]["gateway"], "fd06::1", "{routes}");
            assert_eq!(routes[0]["dev"], "eth0", "{routes}");
            let addr = ip_json(&["-6", "-n", sandbox, "addr", "show", "dev", "eth0"]);
            let local: Vec<&str> = addr[0]["addr_info"]
                .as_array()
                .unwrap()
                .iter()
                .map(|a| a["local"].as_str().unwrap())
                .collect();
            assert!(local.contains(&address), "{addr}");
        }
        // The IPv4 default route is still there beside it.
        let routes = ip_json(&["-n", "A", "route", "show", "default"]);
        assert_eq!(routes[0]["gateway"], "10.6.0.1");

        let ping = |args: &[&str]| {
            let mut all = vec!["exec", "A", "--", "ping", "-6", "-c1", "-W1"];
            all.extend(args);
            let out = env.cnm(&all);
            assert!(
                out.status.success(),
                "ping {args:?}: {}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        };
        ping(&["fd06::3"]);
        ping(&["fd06::1"]);
        // By name, through the IPv6 line of the hosts file.
        ping(&["b6"]);
    });
}

/// `hostname H` names the sandbox's own addresses in its hosts file, and nothing more.
#[test]
fn a_sandbox_hostname_is_a_hosts_entry_not_a_uts_name() {
    in_namespaces("a_sandbox_hostname_is_a_hosts_entry_not_a_uts_name", |env| {
        let script = "/run/cnm-test/hostname.cnm";
        std::fs::write(
            script,
            "network net subnet 10.9.0.0/24\nsandbox A mode none hostname app.internal\nconnect A to net\n",
        )
        .unwrap();
        env.cnm_ok(&["apply", script]);
        assert_eq!(resolve(env, "A", "app.internal").as_deref(), Some("10.9.0.2"));
        let inside = env.cnm_ok(&["exec", "A", "--", "hostname"]);
        assert_eq!(inside, run("hostname", &[]), "no UTS namespace of its own");
    });
}

/// The isolated namespace's loopback is up, so host-mode sandboxes there reach 127.0.0.1.
#[test]
fn isolated_loopback_is_up() {
    let dir = std::env::temp_dir().join(format!("cnm-isolated-lo-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let script = dir.join("host.cnm");
    std::fs::write(&script, "sandbox tools mode host\n").unwrap();
    let out = Command::new(CNM)
        .args(["--isolated", "shell", "--", "sh", "-c"])
        .arg(format!(
            "ip -j link show lo && {CNM} apply {} >/dev/null && \
             {CNM} exec tools -- ping -c1 -W1 127.0.0.1 >/dev/null && echo pinged",
            script.display()
        ))
        .output()
        .unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lo: Value = serde_json::from_str(text.lines().next().unwrap()).unwrap();
    let flags = lo[0]["flags"].as_array().unwrap();
    assert!(flags.iter().any(|f| f == "UP"), "{lo}");
    assert!(text.ends_with("pinged\n"), "{text}");
}
#[test]
fn a_bridge_never_gets_more_ports_than_the_kernel_allows() {
    in_namespaces("a_bridge_never_gets_more_ports_than_the_kernel_allows", |env| {
        let fleet = |n: usize| {
            let path = env.etc.with_file_name(format!("fleet-{n}.cnm"));
            let script = format!(
                "network big subnet 10.1.0.0/16\nfor i in 1..{n} {{\n    sandbox s$i mode none\n    connect s$i to big\n}}\n"
            );
            std::fs::write(&path, script).unwrap();
            path.display().to_string()
        };

        // One port too many: refused by the checker, before anything is made.
        let out = env.cnm(&["apply", &fleet(1024)]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{err}");
        assert!(
            err.contains(
                "network `big` would have 1024 endpoints on bridge `cnm-big`, which holds at most 1023"
            ),
            "{err}"
        );
        assert_eq!(err.matches("cnm::bridge-full").count(), 1, "said once: {err}");
        let links: Vec<String> = ip_json(&["link"])
            .as_array()
            .unwrap()
            .iter()
            .map(|l| l["ifname"].as_str().unwrap().to_string())
            .collect();
        assert_eq!(links, ["lo"]);
        assert_eq!(namespaces(), Vec::<String>::new());
        assert_eq!(env.state_json(), None);

        // As many as it holds: every one a port of the bridge.
        env.cnm_ok(&["apply", &fleet(1023)]);
        let ports = ip_json(&["link", "show", "master", "cnm-big"]);
        assert_eq!(ports.as_array().unwrap().len(), 1023);
    });
}

/// Every example script fed to `cnm` on standard input, one entry at a time, gives the
/// same kernel and the same state.json as `cnm apply` of the whole script.
#[test]
fn piped_input_ends_where_apply_ends() {
    in_namespaces("piped_input_ends_where_apply_ends", |env| {
        let mut scripts: Vec<PathBuf> =
            std::fs::read_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts"))
                .unwrap()
                .map(|e| e.unwrap().path())
                .filter(|p| p.extension().is_some_and(|x| x == "cnm"))
                .collect();
        scripts.sort();
        for script in scripts {
            let name = script.display().to_string();
            env.cnm_ok(&["apply", &name]);
            let (kernel, state) = (env.kernel(), env.state_json());
            env.cnm_ok(&["destroy"]);
            std::fs::remove_dir_all(&env.state).unwrap();

            let out = env.cnm_piped(&[], &std::fs::read(&script).unwrap());
            let err = String::from_utf8_lossy(&out.stderr);
            assert!(out.status.success(), "{name}: {err}");
            assert!(!err.contains('\u{1b}'), "no colour on a pipe: {err}");
            assert_same_kernel(&without_indexes(&kernel), &without_indexes(&env.kernel()), &name);
            assert_eq!(env.state_json(), state, "{name}");
            env.cnm_ok(&["destroy"]);
            std::fs::remove_dir_all(&env.state).unwrap();
        }
    });
}

/// Piped input goes on past a failing entry and exits 1 at the end.
#[test]
fn piped_input_reports_a_failing_entry_and_goes_on() {
    in_namespaces("piped_input_reports_a_failing_entry_and_goes_on", |env| {
        let out = env.cnm_piped(
            &[],
            b"network n subnet 10.9.0.0/24\nsandbox a mode nonsense\nsandbox b mode none\n",
        );
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{err}");
        assert!(err.contains("<stdin>:2:"), "points at the line: {err}");
        assert_eq!(namespaces(), ["b"], "the entries after it ran");
    });
}

/// `cnm undo` takes back one transaction at a time, the kernel with it.
#[test]
fn undo_restores_the_kernel_one_transaction_at_a_time() {
    in_namespaces("undo_restores_the_kernel_one_transaction_at_a_time", |env| {
        let empty = env.kernel();
        env.cnm_ok(&["apply", "scripts/seed.cnm"]);
        let seeded = env.kernel();
        std::fs::write(
            "/run/cnm-test/change.cnm",
            "stop B\nremove sandbox A\ndisconnect C from frontend\nsandbox D mode none\n",
        )
        .unwrap();
        env.cnm_ok(&["apply", "/run/cnm-test/change.cnm"]);
        assert_ne!(env.kernel(), seeded);
        let out = env.cnm_ok(&["undo"]);
        assert!(out.starts_with("Undid transaction 2."), "{out}");
        assert_same_kernel(
            &without_indexes(&seeded),
            &without_indexes(&env.kernel()),
            "first undo",
        );
        assert!(pings("A", "10.1.0.3"), "A is back and reaches B");
        env.cnm_ok(&["undo"]);
        assert_same_kernel(&empty, &env.kernel(), "second undo");
        let out = env.cnm_ok(&["undo"]);
        assert_eq!(
            out,
            "Nothing to undo: no committed transaction is left to take back.\n"
        );
    });
}

#[test]
fn an_export_applied_after_destroy_recreates_the_same_state() {
    in_namespaces(
        "an_export_applied_after_destroy_recreates_the_same_state",
        |env| {
            env.cnm_ok(&["apply", "scripts/seed.cnm"]);
            // A stopped sandbox and an unjoined endpoint, from a second transaction.
            let more = env.state.join("../more.cnm");
            std::fs::write(&more, "endpoint spare on backend alias spare\nstop web2\n").unwrap();
            env.cnm_ok(&["apply", more.to_str().unwrap()]);
            let before: Value = serde_json::from_str(&env.state_json().unwrap()).unwrap();

            let exported = env.state.join("../export.cnm");
            std::fs::write(&exported, env.cnm_ok(&["export"])).unwrap();
            env.cnm_ok(&["destroy"]);
            assert_eq!(namespaces(), Vec::<String>::new());
            env.cnm_ok(&["apply", exported.to_str().unwrap()]);

            // The export gives every address, so the restored endpoints record theirs as
            // given by the script (`static_ip`); everything else is the same.
            let mut after: Value = serde_json::from_str(&env.state_json().unwrap()).unwrap();
            for (name, endpoint) in after["endpoints"].as_object_mut().unwrap() {
                endpoint["static_ip"] = before["endpoints"][name]["static_ip"].clone();
            }
            assert_eq!(after, before);
            assert_eq!(namespaces(), ["A", "B", "C", "web1", "web3"], "web2 is stopped");
            assert_eq!(
                env.cnm_ok(&["apply", exported.to_str().unwrap()]),
                "No changes: the committed state already matches the script.\n"
            );
        },
    );
}

/// `cnm apply` runs the script's expectations once it has committed: a failing one
/// exits 1 with its line, and the topology stays.
#[test]
fn apply_runs_expectations_and_a_failing_one_exits_1() {
    in_namespaces("apply_runs_expectations_and_a_failing_one_exits_1", |env| {
        std::fs::write(
            "/run/cnm-test/expect.cnm",
            "network n subnet 10.9.0.0/24\nsandbox a mode none\nsandbox b mode none\n\
             connect a to n\nconnect b to n\nexpect a reaches b\nexpect a cannot reach b timeout 300ms\n",
        )
        .unwrap();
        let out = env.cnm(&["apply", "/run/cnm-test/expect.cnm"]);
        let text = String::from_utf8_lossy(&out.stdout);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{text}{err}");
        assert!(
            text.contains(
                "pass  /run/cnm-test/expect.cnm:6  a reaches b (10.9.0.3, ping): 10.9.0.3 answered"
            ),
            "{text}"
        );
        assert!(
            text.contains(
                "FAIL  /run/cnm-test/expect.cnm:7  a cannot reach b (10.9.0.3, ping): 10.9.0.3 answered"
            ),
            "{text}"
        );
        assert!(
            err.contains("1 statement failed; the topology stays as applied"),
            "{err}"
        );
        assert_eq!(namespaces(), ["a", "b"]);
        assert!(pings("a", "10.9.0.3"), "an independent ping agrees");
    });
}

/// An expectation waits for the links its packets cross to carry traffic before it
/// probes: a packet sent sooner is lost, and the ARP request with it is sent again only
/// a second later, past the probe's timeout. Here `b`'s host end is down, set up again
/// by hand 300 ms after the expectation starts; the probe gives up after 500 ms.
#[test]
fn an_expectation_waits_for_the_links_it_crosses_to_carry_traffic() {
    in_namespaces(
        "an_expectation_waits_for_the_links_it_crosses_to_carry_traffic",
        |env| {
            std::fs::write(
                "/run/cnm-test/pair.cnm",
                "network n subnet 10.9.0.0/24\nsandbox a mode none\nsandbox b mode none\n\
             connect a to n\nconnect b to n\n",
            )
            .unwrap();
            env.cnm_ok(&["apply", "/run/cnm-test/pair.cnm"]);
            let b_end = host_end(env, "b.n");
            let ip = |args: &[&str]| assert!(Command::new("ip").args(args).status().unwrap().success());
            ip(&["link", "set", &b_end, "down"]);

            let up_again = std::thread::spawn({
                let b_end = b_end.clone();
                move || {
                    std::thread::sleep(Duration::from_millis(300));
                    ip(&["link", "set", &b_end, "up"]);
                }
            });
            let started = Instant::now();
            let out = env.cnm_piped(&[], b"expect a reaches b timeout 500ms\n");
            up_again.join().unwrap();
            let text = String::from_utf8_lossy(&out.stdout);
            assert!(
                out.status.success(),
                "{text}{}",
                String::from_utf8_lossy(&out.stderr)
            );
            assert!(
                text.contains("a reaches b (10.9.0.3, ping): 10.9.0.3 answered"),
                "{text}"
            );
            assert!(
                started.elapsed() >= Duration::from_millis(300),
                "it waited for the link"
            );

            // A link that stays down is waited for a bounded time, and named when the
            // expectation fails.
            ip(&["link", "set", &b_end, "down"]);
            let out = env.cnm_piped(&[], b"expect a reaches b timeout 200ms\n");
            let text = String::from_utf8_lossy(&out.stdout);
            assert_eq!(out.status.code(), Some(1), "{text}");
            assert!(
                text.contains(&format!(
                    "FAIL  <stdin>:1  a reaches b (10.9.0.3, ping): 10.9.0.3: no answer in time; \
                 not carrying traffic after 2 s: {b_end}: down, eth0 in b: no carrier"
                )),
                "{text}"
            );
        },
    );
}

// The firewall: isolation, outbound NAT, published ports, forwarding.

/// A world outside the host: namespace `world` behind a veth, 198.51.100.2, which the
/// host reaches as 198.51.100.1 and which has no route to any sandbox.
fn outside_world() {
    run("ip", &["netns", "add", "world"]);
    run(
        "ip",
        &[
            "link", "add", "uplink", "type", "veth", "peer", "name", "eth0", "netns", "world",
        ],
    );
    run("ip", &["addr", "add", "198.51.100.1/24", "dev", "uplink"]);
    run("ip", &["link", "set", "uplink", "up"]);
    run(
        "ip",
        &["-n", "world", "addr", "add", "198.51.100.2/24", "dev", "eth0"],
    );
    run("ip", &["-n", "world", "link", "set", "eth0", "up"]);
    run("ip", &["-n", "world", "link", "set", "lo", "up"]);
}

/// Whether a TCP connection to `address:port` is accepted within a second, from a
/// namespace or from the host; bash's /dev/tcp is the client.
fn tcp_connects(netns: Option<&str>, address: &str, port: u16) -> bool {
    let script = format!("exec 3<>/dev/tcp/{address}/{port}");
    let mut command = match netns {
        Some(netns) => {
            let mut command = Command::new("ip");
            command.args(["netns", "exec", netns, "timeout", "1", "bash", "-c", &script]);
            command
        }
        None => {
            let mut command = Command::new("timeout");
            command.args(["1", "bash", "-c", &script]);
            command
        }
    };
    command
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap()
        .success()
}

/// Retries `probe` for a few seconds: something another process sets up.
fn eventually(probe: impl Fn() -> bool) -> bool {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if probe() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

/// The seed's promise on a host that forwards packets: A reaches B, B reaches C, A and
/// C cannot reach each other, though each has a default route through the host. The
/// forward rules are what keeps them apart: with them flushed, A reaches C. A host
/// that forwarded before cnm still forwards after it.
#[test]
fn networks_stay_apart_when_the_host_forwards() {
    in_namespaces("networks_stay_apart_when_the_host_forwards", |env| {
        set_ip_forward(true);
        let before = ruleset();
        env.cnm_ok(&["apply", "scripts/seed.cnm"]);
        assert!(pings("A", "10.1.0.3"), "A reaches B");
        assert!(pings("B", "10.2.0.50"), "B reaches C");
        assert!(cannot_ping("A", "10.2.0.50"), "A cannot reach C");
        assert!(
            cannot_ping("A", "10.2.0.1"),
            "nor B's address on the other network"
        );
        assert!(cannot_ping("C", "10.1.0.2"), "C cannot reach A");
        assert!(
            !env.state_json().unwrap().contains("ip_forward_enabled"),
            "cnm did not turn forwarding on: it was on"
        );

        run("nft", &["flush", "chain", "inet", "cnm", "forward"]);
        assert!(
            pings("A", "10.2.0.50"),
            "without the rules, forwarding joins them"
        );

        env.cnm_ok(&["destroy"]);
        assert_eq!(ip_forward(), "1", "forwarding stays as it was");
        assert_eq!(ruleset(), before, "cnm's table is gone");
    });
}

/// Forwarding off: the first network with a way out turns it on, recorded in the
/// state; destroy turns it off again. An internal network needs no forwarding.
#[test]
fn forwarding_is_turned_on_for_a_network_and_restored_by_destroy() {
    in_namespaces(
        "forwarding_is_turned_on_for_a_network_and_restored_by_destroy",
        |env| {
            set_ip_forward(false);
            std::fs::write(
                "/run/cnm-test/internal.cnm",
                "network i subnet 10.5.0.0/24 internal\n",
            )
            .unwrap();
            env.cnm_ok(&["apply", "/run/cnm-test/internal.cnm"]);
            assert_eq!(ip_forward(), "0", "an internal network has no way out");

            env.cnm_ok(&["apply", "scripts/seed.cnm"]);
            assert_eq!(ip_forward(), "1");
            assert!(env.state_json().unwrap().contains("\"ip_forward_enabled\": true"));
            let plan = env.cnm_ok(&["plan", "scripts/seed.cnm"]);
            assert!(plan.starts_with("No changes"), "{plan}");

            env.cnm_ok(&["destroy"]);
            assert_eq!(ip_forward(), "0", "destroy restores it");
        },
    );
}

/// A normal network's traffic leaves masqueraded: a sandbox reaches a world that has no
/// route back to it. An internal network has no NAT, no route out, and nothing comes
/// in from outside.
#[test]
fn a_normal_network_is_masqueraded_and_an_internal_one_has_no_way_out() {
    in_namespaces(
        "a_normal_network_is_masqueraded_and_an_internal_one_has_no_way_out",
        |env| {
            outside_world();
            std::fs::write(
                "/run/cnm-test/nat.cnm",
                "network out subnet 10.7.0.0/24\nnetwork in subnet 10.6.0.0/24 internal\n\
                 sandbox s1 mode none\nconnect s1 to out\nsandbox s2 mode none\nconnect s2 to in\n",
            )
            .unwrap();
            env.cnm_ok(&["apply", "/run/cnm-test/nat.cnm"]);

            let prefix = |addr: &str| serde_json::json!({"prefix": {"addr": addr, "len": 24}});
            assert_eq!(nft_set("masquerade4"), [prefix("10.7.0.0")], "internal: no NAT");
            assert_eq!(nft_set("internal"), ["cnm-in"]);
            let rules = ruleset();
            let masquerades_the_set = rules.as_array().unwrap().iter().any(|item| {
                let rule = &item["rule"];
                let expr = rule["expr"].as_array().map(Vec::as_slice).unwrap_or_default();
                rule["chain"] == "postrouting"
                    && expr.iter().any(|e| e["match"]["right"] == "@masquerade4")
                    && expr.iter().any(|e| e.get("masquerade").is_some())
            });
            assert!(masquerades_the_set, "the masquerade rule reads the set: {rules}");

            assert!(
                pings("s1", "198.51.100.2"),
                "masqueraded: the world answers the host"
            );
            assert!(cannot_ping("s2", "198.51.100.2"), "internal: no way out");
            assert!(pings("s2", "10.6.0.1"), "but its gateway answers");

            run(
                "ip",
                &["-n", "world", "route", "add", "10.0.0.0/8", "via", "198.51.100.1"],
            );
            assert!(
                cannot_ping("world", "10.6.0.2"),
                "nothing comes into an internal network"
            );
            env.cnm_ok(&["destroy"]);
        },
    );
}

/// `publish` + `serve`: a client in the outside world, the host itself (on loopback
/// and on the bridge's address) and a sandbox on another network all reach the
/// sandbox's port through the host port; after `remove sandbox`, the DNAT element is
/// gone.
#[test]
fn a_published_port_is_reached_through_the_host_and_goes_with_its_sandbox() {
    in_namespaces(
        "a_published_port_is_reached_through_the_host_and_goes_with_its_sandbox",
        |env| {
            outside_world();
            let mut session = env
                .command(&[])
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap();
            let mut input = session.stdin.take().unwrap();
            input
                .write_all(
                    b"network front subnet 10.7.0.0/24\nnetwork other subnet 10.8.0.0/24\n\
                      sandbox web mode none\nconnect web to front\nsandbox peer mode none\n\
                      connect peer to other\npublish web 8080:80\npublish web 5353:53/udp\n\
                      serve web port 80\nserve web port 53 udp\n\
                      expect peer reaches host port 8080\nexpect peer reaches host port 5353 udp\n",
                )
                .unwrap();
            if !eventually(|| tcp_connects(Some("world"), "198.51.100.1", 8080)) {
                drop(input);
                let out = session.wait_with_output().unwrap();
                panic!(
                    "a client outside does not reach the port:\n{}\n{}",
                    String::from_utf8_lossy(&out.stdout),
                    String::from_utf8_lossy(&out.stderr)
                );
            }
            assert!(tcp_connects(None, "127.0.0.1", 8080), "the host, on loopback");
            assert!(
                tcp_connects(None, "10.7.0.1", 8080),
                "the host, on the bridge's address"
            );
            assert!(
                !tcp_connects(Some("world"), "198.51.100.1", 8081),
                "only that port"
            );
            let published = nft_set("publish_any");
            assert_eq!(published.len(), 2, "{published:?}");

            input.write_all(b"remove sandbox web\n").unwrap();
            drop(input);
            let out = session.wait_with_output().unwrap();
            let stdout = String::from_utf8_lossy(&out.stdout);
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert!(out.status.success(), "{stdout}\n{stderr}");
            assert_eq!(
                stdout.lines().filter(|l| l.starts_with("pass")).count(),
                2,
                "from another network too: {stdout}"
            );
            assert_eq!(nft_set("publish_any"), Vec::<Value>::new(), "the DNAT is gone");
            env.cnm_ok(&["destroy"]);
        },
    );
}

/// A failure after the firewall's steps leaves the ruleset and forwarding as they were,
/// whether cnm's table existed or not; a table that other software owns is untouched
/// by apply, rollback and destroy.
#[test]
fn a_rollback_restores_the_ruleset_and_leaves_other_tables_alone() {
    in_namespaces(
        "a_rollback_restores_the_ruleset_and_leaves_other_tables_alone",
        |env| {
            set_ip_forward(false);
            run("nft", &["add", "table", "ip", "other"]);
            run(
                "nft",
                &["add chain ip other forward_guard { type filter hook forward priority 0; policy accept; }"],
            );
            run(
                "nft",
                &["add rule ip other forward_guard ip daddr 192.0.2.1 drop"],
            );
            let foreign = ruleset();
            run("ip", &["link", "add", "cnm-z", "type", "bridge"]);
            std::fs::write("/run/cnm-test/z.cnm", "network z subnet 10.8.0.0/24\n").unwrap();

            let empty = env.kernel();
            let out = env.cnm(&["apply", "/run/cnm-test/z.cnm"]);
            let err = String::from_utf8_lossy(&out.stderr);
            assert_eq!(out.status.code(), Some(1), "{err}");
            assert!(err.contains("an interface named cnm-z already exists"), "{err}");
            assert_same_kernel(&empty, &env.kernel(), "rolled back from nothing");

            env.cnm_ok(&["apply", "scripts/seed.cnm"]);
            let applied = env.kernel();
            let out = env.cnm(&["apply", "/run/cnm-test/z.cnm"]);
            assert_eq!(out.status.code(), Some(1));
            assert_same_kernel(
                &without_indexes(&applied),
                &without_indexes(&env.kernel()),
                "rolled back to the seed",
            );

            env.cnm_ok(&["destroy"]);
            assert_eq!(ruleset(), foreign, "only the other table is left, as it was");
            assert_eq!(ip_forward(), "0");
        },
    );
}

/// A new network over the host's own LAN is refused, pointing at the statement and
/// naming the host's address (the host would answer ARP for its LAN through the
/// bridge); one over a host route is applied with a warning that names the route.
/// Nothing is made for a refused script.
#[test]
fn a_subnet_over_the_hosts_own_network_is_refused() {
    in_namespaces("a_subnet_over_the_hosts_own_network_is_refused", |env| {
        run(
            "ip",
            &["link", "add", "lan0", "type", "veth", "peer", "name", "lan1"],
        );
        run("ip", &["addr", "add", "192.168.100.5/24", "dev", "lan0"]);
        run("ip", &["link", "set", "lan0", "up"]);
        run("ip", &["route", "add", "10.99.0.0/16", "dev", "lan0"]);
        let before = env.kernel();

        std::fs::write("/run/cnm-test/lan.cnm", "network lan subnet 192.168.0.0/16\n").unwrap();
        for command in ["plan", "apply"] {
            let out = env.cnm(&[command, "/run/cnm-test/lan.cnm"]);
            let err = String::from_utf8_lossy(&out.stderr);
            assert_eq!(out.status.code(), Some(1), "{command}: {err}");
            assert!(err.contains("cnm::subnet-on-host"), "{err}");
            assert!(
                err.contains(
                    "subnet 192.168.0.0/16 overlaps the host's own network: 192.168.100.5/24 on lan0"
                ),
                "{err}"
            );
            assert!(
                err.contains("/run/cnm-test/lan.cnm:1:1"),
                "points at the statement: {err}"
            );
        }
        assert_same_kernel(&before, &env.kernel(), "nothing made");
        assert_eq!(env.state_json(), None);

        std::fs::write("/run/cnm-test/routed.cnm", "network routed subnet 10.99.1.0/24\n").unwrap();
        let out = env.cnm(&["apply", "/run/cnm-test/routed.cnm"]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{err}");
        assert!(
            err.contains(
                "cnm: warning: /run/cnm-test/routed.cnm:1: network routed (10.99.1.0/24) overlaps the \
                 host's route to 10.99.0.0/16 via lan0"
            ),
            "{err}"
        );
        let again = env.cnm(&["apply", "/run/cnm-test/routed.cnm"]);
        assert!(
            !String::from_utf8_lossy(&again.stderr).contains("warning"),
            "said once, when made"
        );
        env.cnm_ok(&["destroy"]);
    });
}

/// Drift and restore: a veth, a namespace, a bridge and an address removed by hand, and
/// a veth taken off its bridge, are each named by `cnm status` (exit 2 with --detailed-exitcode); `cnm restore` makes
/// them again, identical (`ip -j` and `nft -j` before and after), touching nothing
/// else. A simulated reboot — every namespace and bridge gone — is restored whole.
#[test]
fn status_names_drift_and_restore_makes_it_again() {
    in_namespaces("status_names_drift_and_restore_makes_it_again", |env| {
        env.cnm_ok(&["apply", "scripts/seed.cnm"]);
        let applied = env.kernel();
        assert_eq!(
            env.cnm_ok(&["status"]),
            "No drift: the kernel holds everything the committed state records.\n"
        );
        let a_end = host_end(env, "A.backend");
        run("ip", &["link", "del", &a_end]);
        let b_end = host_end(env, "B.backend");
        run("ip", &["link", "set", &b_end, "nomaster"]);
        run("ip", &["netns", "del", "C"]);
        run("ip", &["link", "del", "cnm0"]);
        run("ip", &["-n", "B", "addr", "del", "10.2.0.1/24", "dev", "eth1"]);

        let out = env.cnm(&["status", "--detailed-exitcode"]);
        assert_eq!(out.status.code(), Some(2));
        let status = String::from_utf8_lossy(&out.stdout);
        for line in [
            "network bridge:\n  missing: ip link add cnm0 mtu 1500 type bridge mcast_snooping 0\n"
                .to_string(),
            "sandbox C:\n  missing: ip netns add C\n".to_string(),
            format!(
                "endpoint A.backend:\n  missing: ip link add {a_end} mtu 1500 master cnm-backend type veth"
            ),
            "endpoint B.frontend:\n  missing: ip -n B addr add 10.2.0.1/24 dev eth1\n".to_string(),
            format!("endpoint B.backend:\n  missing: ip link set {b_end} master cnm-backend\n"),
            "endpoint web1.bridge:\n  missing: ip link set ".to_string(),
        ] {
            assert!(status.contains(&line), "{line}\nin:\n{status}");
        }
        let json: Value = serde_json::from_slice(&env.cnm(&["status", "--json"]).stdout).unwrap();
        assert!(json
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["kind"] == "sandbox" && m["name"] == "C"));

        let restored = env.cnm_ok(&["restore"]);
        assert!(restored.starts_with("Restored: "), "{restored}");
        assert_same_kernel(
            &without_indexes(&applied),
            &without_indexes(&env.kernel()),
            "restored",
        );
        assert_eq!(
            env.cnm_ok(&["restore"]),
            "Nothing to restore: the kernel holds everything the committed state records.\n"
        );
        assert!(pings("A", "10.1.0.3"));
        env.cnm_ok(&["destroy"]);

        // A reboot: no namespace, no bridge, no firewall survive.
        env.cnm_ok(&["apply", "scripts/fleet.cnm"]);
        let fleet = env.kernel();
        for netns in namespaces() {
            run("ip", &["netns", "del", &netns]);
        }
        for bridge in ["cnm-east", "cnm-west"] {
            run("ip", &["link", "del", bridge]);
        }
        run("nft", &["delete", "table", "inet", "cnm"]);
        assert!(namespaces().is_empty());
        // The kernel removes a deleted namespace's veths in the background.
        assert!(eventually(|| ip_json(&["link", "show", "type", "veth"])
            .as_array()
            .unwrap()
            .is_empty()));
        env.cnm_ok(&["restore"]);
        assert_same_kernel(
            &without_indexes(&fleet),
            &without_indexes(&env.kernel()),
            "after a reboot",
        );
        env.cnm_ok(&["destroy"]);
    });
}

/// A namespace deleted by hand while something still holds it keeps its veths, the host
/// ends attached and up, until the kernel lets it go. `restore` waits for those names,
/// then makes the sandbox again whole: its veth attached to the bridge and up.
#[test]
fn a_sandbox_deleted_while_held_is_restored_once_the_kernel_lets_it_go() {
    in_namespaces(
        "a_sandbox_deleted_while_held_is_restored_once_the_kernel_lets_it_go",
        |env| {
            env.cnm_ok(&["apply", "scripts/seed.cnm"]);
            let applied = env.kernel();
            let c_end = host_end(env, "C.frontend");
            let mut holder = Command::new("ip")
                .args(["netns", "exec", "C", "sleep", "1"])
                .spawn()
                .unwrap();
            // The holder is inside once `ip` has become `sleep`.
            assert!(eventually(|| std::fs::read_to_string(format!(
                "/proc/{}/comm",
                holder.id()
            ))
            .is_ok_and(|comm| comm.trim() == "sleep")));
            run("ip", &["netns", "del", "C"]);
            let lingering = ip_json(&["link", "show", "dev", &c_end]);
            assert_eq!(lingering[0]["master"], "cnm-frontend", "{lingering}");

            let restored = env.cnm_ok(&["restore"]);
            assert!(restored.starts_with("Restored: "), "{restored}");
            holder.wait().unwrap();
            assert_same_kernel(
                &without_indexes(&applied),
                &without_indexes(&env.kernel()),
                "restored",
            );
            assert!(pings("B", "10.2.0.50"));
        },
    );
}

/// `cnm gc` after the state directory was lost removes what cnm made — bridges and veth
/// host ends with cnm's MAC, namespaces whose hosts file carries cnm's mark, the
/// firewall table — and leaves alone a bridge, a veth and a namespace made by hand with
/// names like cnm's.
#[test]
fn gc_removes_what_cnm_made_and_nothing_else() {
    in_namespaces("gc_removes_what_cnm_made_and_nothing_else", |env| {
        run("ip", &["link", "add", "cnm-hand", "type", "bridge"]);
        run(
            "ip",
            &[
                "link",
                "add",
                "ve-0123456789ab",
                "type",
                "veth",
                "peer",
                "name",
                "vp-hand",
            ],
        );
        run("ip", &["netns", "add", "handmade"]);
        std::fs::create_dir_all(env.etc.join("handmade")).unwrap();
        std::fs::write(
            env.etc.join("handmade/hosts"),
            "# cnm sandbox A 123 (cnm writes this file)\n",
        )
        .unwrap();
        let by_hand = env.kernel();

        env.cnm_ok(&["apply", "scripts/seed.cnm"]);
        std::fs::remove_dir_all(&env.state).unwrap();
        let dry = env.cnm_ok(&["gc", "--dry-run"]);
        for line in [
            "would remove: ip link del cnm-backend\n",
            "would remove: ip netns del A\n",
            "would remove: rm /run/cnm-test/etc/A/hosts\n",
            "would remove: nft delete table inet cnm\n",
        ] {
            assert!(dry.contains(line), "{line} in:\n{dry}");
        }
        for hand in ["cnm-hand", "ve-0123456789ab", "handmade"] {
            assert!(!dry.contains(hand), "{hand} is not cnm's:\n{dry}");
        }
        assert_eq!(namespaces().len(), 7, "a dry run removes nothing");

        let removed = env.cnm_ok(&["gc"]);
        assert!(removed.contains("removed: ip netns del C\n"), "{removed}");
        // Whether cnm turned forwarding on went with the state: gc leaves it as it is.
        let without_forwarding = |kernel: String| {
            let kernel = without_indexes(&kernel);
            kernel
                .lines()
                .filter(|l| !l.starts_with("ip_forward"))
                .collect::<Vec<_>>()
                .join("\n")
        };
        assert!(
            eventually(|| without_forwarding(env.kernel()) == without_forwarding(by_hand.clone())),
            "only what was made by hand is left:\n{}",
            env.kernel()
        );
        assert_eq!(ip_forward(), "1");
        assert!(!env.etc.join("A").join("hosts").exists());
        assert!(env.etc.join("handmade/hosts").exists());
        assert_eq!(
            env.cnm_ok(&["gc"]),
            "Nothing to collect: the kernel holds nothing of cnm's that the committed state does not know.\n"
        );
    });
}

/// `cnm plan` says when the kernel lacks part of the committed state it plans from.
#[test]
fn plan_says_when_the_kernel_has_drifted() {
    in_namespaces("plan_says_when_the_kernel_has_drifted", |env| {
        env.cnm_ok(&["apply", "scripts/seed.cnm"]);
        let out = env.cnm(&["plan", "scripts/seed.cnm"]);
        assert!(String::from_utf8_lossy(&out.stderr).is_empty());
        let c_end = host_end(env, "C.frontend");
        run("ip", &["netns", "del", "C"]);
        // The kernel removes the namespace's veth in the background.
        let gone = || {
            !Command::new("ip")
                .args(["link", "show", &c_end])
                .output()
                .unwrap()
                .status
                .success()
        };
        assert!(eventually(gone));
        let out = env.cnm(&["plan", "scripts/seed.cnm"]);
        assert_eq!(
            String::from_utf8_lossy(&out.stderr),
            "cnm: drift: the kernel lacks 7 operations of the committed state; this plan starts \
             from the state, so `cnm status` lists them and `cnm restore` makes them again\n"
        );
        assert!(String::from_utf8_lossy(&out.stdout).starts_with("No changes"));
        env.cnm_ok(&["restore"]);
        env.cnm_ok(&["destroy"]);
    });
}

// Netlink faults and crashes: requests whose sending fails, kills at every system call
// of a destroy, and symbolic links planted under the etc directory.

/// A copy of `script` (relative to the crate) without its `expect` and `exec` lines, at
/// `/run/cnm-test/NAME`: the topology alone, so that what runs after the commit (probes,
/// commands) neither costs time nor counts as a position.
fn topology_only(script: &str, name: &str) -> String {
    let text = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(script)).unwrap();
    let kept: String = text
        .lines()
        .filter(|line| !line.starts_with("expect ") && !line.starts_with("exec "))
        .map(|line| format!("{line}\n"))
        .collect();
    let path = format!("/run/cnm-test/{name}");
    std::fs::write(&path, kept).unwrap();
    path
}

/// The hosts and resolv.conf files of a transaction reach the disk with one `syncfs`
/// before it commits, not one `fsync` each; an undo flushes what it wrote too.
#[test]
fn the_files_of_a_transaction_are_flushed_to_disk_once() {
    in_namespaces("the_files_of_a_transaction_are_flushed_to_disk_once", |env| {
        let script = topology_only("scripts/fleet.cnm", "fleet.cnm");
        let trace = "/run/cnm-test/flush-trace";
        let traced = |args: &[&str]| {
            let out = Command::new("strace")
                .args([
                    "-f",
                    "-qq",
                    "-yy",
                    "-o",
                    trace,
                    "-e",
                    "trace=fsync,fdatasync,syncfs",
                ])
                .arg(CNM)
                .args(env.command(args).get_args())
                .current_dir(env!("CARGO_MANIFEST_DIR"))
                .output()
                .unwrap();
            assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
            std::fs::read_to_string(trace).unwrap()
        };
        let calls = traced(&["apply", &script]);
        let files = std::fs::read_dir(&env.etc).unwrap().count();
        assert!(files > 10, "the fleet has sandboxes with files: {files}");
        let syncfs: Vec<&str> = calls.lines().filter(|l| l.contains("syncfs(")).collect();
        assert_eq!(syncfs.len(), 1, "one flush for the transaction:\n{calls}");
        assert!(syncfs[0].contains(env.etc.to_str().unwrap()), "{}", syncfs[0]);
        assert!(
            !calls
                .lines()
                .any(|l| l.contains("/hosts") || l.contains("resolv.conf")),
            "no file of a sandbox flushed on its own:\n{calls}"
        );
        let calls = traced(&["destroy"]);
        assert_eq!(calls.matches("syncfs(").count(), 1, "{calls}");
        // Nothing written, nothing to flush.
        std::fs::write("/run/cnm-test/net.cnm", "network n subnet 10.9.0.0/24\n").unwrap();
        let calls = traced(&["apply", "/run/cnm-test/net.cnm"]);
        assert_eq!(calls.matches("syncfs(").count(), 0, "{calls}");
    });
}

/// `cnm ARGS` under strace with `inject` (an `-e inject=` expression). strace follows
/// only cnm's main thread, which makes every netlink request and every mount, unmount
/// and journal write; the trace goes to `trace`.
fn cnm_strace(env: &Env, trace: &str, inject: &str, args: &[&str]) -> Output {
    Command::new("strace")
        .args([
            "-qq",
            "-yy",
            "-o",
            trace,
            "-e",
            "trace=sendto,sendmsg,recvfrom,umount2,unlink",
            "-e",
        ])
        .arg(format!("inject={inject}"))
        .arg(CNM)
        .args(env.command(args).get_args())
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("strace runs")
}

/// A kernel picture with neither interface indexes nor the numbers the kernel gives
/// namespaces as seen from each other (`link_netnsid`): both are numbered anew when a
/// rollback makes a link or a namespace again.
fn comparable(kernel: &str) -> String {
    without_indexes(kernel)
        .lines()
        .map(|line| match line.split_once(": ") {
            Some((what, json)) if json.starts_with('[') => {
                let mut value: Value = serde_json::from_str(json).unwrap();
                fn forget(value: &mut Value) {
                    match value {
                        Value::Array(items) => {
                            items.iter_mut().for_each(forget);
                            items.sort_by_key(|item| item.to_string());
                        }
                        Value::Object(map) => {
                            map.remove("link_netnsid");
                            map.values_mut().for_each(forget);
                        }
                        _ => {}
                    }
                }
                forget(&mut value);
                format!("{what}: {value}\n")
            }
            _ => format!("{line}\n"),
        })
        .collect()
}

/// Every netlink request of an apply (of scripts/modes.cnm: every sandbox mode, both
/// bridges, the firewall) sent into a failure (`sendto` fails with ENOBUFS, once, at each
/// position in turn): the apply either completes, with everything it claims, or exits 1
/// with the kernel and state.json exactly as before. Never a request counted as done
/// that the kernel never heard of, and never a dead socket that stops the rollback.
#[test]
fn a_netlink_request_that_fails_to_go_out_is_rolled_back_at_every_position() {
    in_namespaces(
        "a_netlink_request_that_fails_to_go_out_is_rolled_back_at_every_position",
        |env| sweep_netlink_faults(env, "sendto:error=ENOBUFS", "sendto failures"),
    );
}

/// Every answer of the kernel to an apply's netlink requests lost in turn: reading it
/// fails (`recvfrom` fails with EIO, once, at each position), which ends that socket,
/// and the answer with it, after the kernel has carried out the request. The apply must
/// not count such a request as done or as not done: it either completes, with
/// everything it claims, or rolls back to exactly the kernel and state.json before.
#[test]
fn a_netlink_request_whose_answer_is_lost_is_rolled_back_at_every_position() {
    in_namespaces(
        "a_netlink_request_whose_answer_is_lost_is_rolled_back_at_every_position",
        |env| sweep_netlink_faults(env, "recvfrom:error=EIO", "lost answers"),
    );
}

/// Applies scripts/modes.cnm under strace with `fault` injected at its n-th call, for
/// every n until the apply makes no more such calls; see the two tests above.
fn sweep_netlink_faults(env: &Env, fault: &str, what: &str) {
    let script = topology_only("scripts/modes.cnm", "modes.cnm");
    let before = env.kernel();
    env.cnm_ok(&["apply", &script]);
    let applied = comparable(&env.kernel());
    let committed = env.state_json();
    env.cnm_ok(&["destroy"]);
    assert_same_kernel(&comparable(&before), &comparable(&env.kernel()), "destroyed");
    let empty = env.state_json();

    let trace = "/run/cnm-test/trace";
    let (mut positions, mut rolled_back, mut completed) = (0, 0, 0);
    let mut n = 0;
    let requests = loop {
        n += 1;
        let inject = format!("{fault}:when={n}");
        let out = cnm_strace(env, trace, &inject, &["apply", &script]);
        let text = std::fs::read_to_string(trace).unwrap();
        let Some(injected) = text.lines().find(|l| l.contains("(INJECTED)")) else {
            assert!(out.status.success(), "no injection, yet it failed");
            // An apply that met no fault: the netlink requests it sent.
            break text
                .lines()
                .filter(|l| l.starts_with("sendto(") && l.contains("NETLINK"))
                .count();
        };
        assert!(injected.contains("NETLINK"), "position {n}: {injected}");
        positions += 1;
        let err = String::from_utf8_lossy(&out.stderr);
        match out.status.code() {
            Some(0) => {
                completed += 1;
                assert_same_kernel(
                    &applied,
                    &comparable(&env.kernel()),
                    &format!("position {n}: exit 0"),
                );
                assert_eq!(env.state_json(), committed, "position {n}");
                env.cnm_ok(&["destroy"]);
            }
            Some(1) => {
                rolled_back += 1;
                assert_same_kernel(
                    &comparable(&before),
                    &comparable(&env.kernel()),
                    &format!("position {n}: exit 1\n{err}"),
                );
                assert_eq!(env.state_json(), empty, "position {n}");
            }
            code => panic!("position {n}: exit {code:?}\n{err}"),
        }
        let log = env.cnm_ok(&["log"]);
        assert!(
            log.lines().all(|l| l.split_whitespace().nth(3) != Some("open:")),
            "position {n}: no transaction is left open\n{log}"
        );
    };
    eprintln!(
        "{what}: {positions} positions, {rolled_back} clean rollbacks, {completed} complete applies; \
         {requests} netlink requests in an apply"
    );
    assert!(requests > 0, "the apply sent no netlink request");
    assert!(
        positions >= requests,
        "every request of the apply was tried: {positions} positions, {requests} requests"
    );
}

/// The mount points of network namespaces under `dir`, from the mount table.
fn netns_mounts(dir: &str) -> Vec<String> {
    let mut mounts: Vec<String> = std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .filter_map(|line| {
            let fields: Vec<&str> = line.split(' ').collect();
            let (_, after) = line.split_once(" - ")?;
            let point = fields.get(4)?;
            let name = point.strip_prefix(dir)?.strip_prefix('/')?;
            (after.starts_with("nsfs ") && !name.contains('/')).then(|| name.to_string())
        })
        .collect();
    mounts.sort();
    mounts.dedup();
    mounts
}

/// The kernel is what state.json says, read with iproute2 and the mount table: every
/// file in the namespace directory is a namespace mount, one per running sandbox with a
/// namespace of its own; inside each, loopback and the sandbox's interfaces, up, with
/// their addresses; on the host, loopback, the bridges with their gateways and the
/// endpoints' host ends, attached; nothing more anywhere.
fn assert_kernel_matches_state(env: &Env, what: &str) {
    let state: Value = env
        .state_json()
        .map(|text| serde_json::from_str(&text).unwrap())
        .unwrap_or(Value::Null);
    let empty = serde_json::Map::new();
    let table = |key: &str| {
        state
            .get(key)
            .and_then(Value::as_object)
            .unwrap_or(&empty)
            .clone()
    };
    let (networks, sandboxes, endpoints) = (table("networks"), table("sandboxes"), table("endpoints"));
    let mut expected_ns: Vec<String> = sandboxes
        .values()
        .filter(|s| s["status"] == "running" && matches!(s["mode"].as_str(), Some("none" | "bridge")))
        .map(|s| s["name"].as_str().unwrap().to_string())
        .collect();
    expected_ns.sort();
    assert_eq!(namespaces(), expected_ns, "{what}: the namespace files");
    assert_eq!(
        netns_mounts("/run/netns"),
        expected_ns,
        "{what}: the namespace mounts"
    );

    let mut host_links = vec!["lo".to_string()];
    let mut inside: std::collections::BTreeMap<String, Vec<(String, String)>> =
        expected_ns.iter().map(|ns| (ns.clone(), Vec::new())).collect();
    for network in networks.values() {
        host_links.push(network["bridge"].as_str().unwrap().to_string());
    }
    for endpoint in endpoints.values() {
        let Some(sandbox) = endpoint["sandbox"].as_str() else {
            continue;
        };
        let Some(ifs) = inside.get_mut(sandbox) else {
            continue;
        };
        let network = &networks[endpoint["network"].as_str().unwrap()];
        let prefix = network["subnet"].as_str().unwrap().split_once('/').unwrap().1;
        let address = format!("{}/{prefix}", endpoint["ip"].as_str().unwrap());
        ifs.push((endpoint["ifname"].as_str().unwrap().to_string(), address));
        host_links.push(endpoint["host_ifname"].as_str().unwrap().to_string());
    }
    host_links.sort();
    let names = |links: &Value| {
        let mut names: Vec<String> = links
            .as_array()
            .unwrap()
            .iter()
            .map(|l| l["ifname"].as_str().unwrap().to_string())
            .collect();
        names.sort();
        names
    };
    let host_addr = ip_json(&["addr"]);
    assert_eq!(names(&host_addr), host_links, "{what}: the host's links");
    for network in networks.values() {
        let bridge = network["bridge"].as_str().unwrap();
        let prefix = network["subnet"].as_str().unwrap().split_once('/').unwrap().1;
        let gateway = format!("{}/{prefix}", network["gateway"].as_str().unwrap());
        assert_eq!(addresses(&host_addr, bridge), [gateway], "{what}: {bridge}");
    }
    for (ns, ifs) in &inside {
        let addr = ip_json(&["-n", ns, "addr"]);
        let mut want: Vec<String> = ifs.iter().map(|(name, _)| name.clone()).collect();
        want.push("lo".into());
        want.sort();
        assert_eq!(names(&addr), want, "{what}: the links in {ns}");
        for (name, address) in ifs {
            assert_eq!(
                addresses(&addr, name),
                std::slice::from_ref(address),
                "{what}: {name} in {ns}"
            );
            let flags = &link(&addr, name)["flags"];
            assert!(
                flags.as_array().unwrap().contains(&"UP".into()),
                "{what}: {name} in {ns} is up"
            );
        }
    }
}

/// The system calls of cnm's main thread during `cnm ARGS`, in order, each as strace's
/// injection counts it: (name, how many of that name so far, this one included).
fn syscalls_of(env: &Env, args: &[&str]) -> Vec<(String, usize)> {
    let trace = "/run/cnm-test/syscalls";
    let out = Command::new("strace")
        .args(["-qq", "-o", trace])
        .arg(CNM)
        .args(env.command(args).get_args())
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("strace runs");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let mut seen = std::collections::HashMap::<String, usize>::new();
    std::fs::read_to_string(trace)
        .unwrap()
        .lines()
        .filter_map(|line| {
            let name = line.split_once('(')?.0;
            (!name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'))
                .then(|| name.to_string())
        })
        .map(|name| {
            let count = seen.entry(name.clone()).or_default();
            *count += 1;
            (name, *count)
        })
        .collect()
}

/// `cnm destroy` of the seed killed (SIGKILL, by strace) at every 5th system call of its
/// main thread, and at every unmount, unlink, netlink request, fsync and rename, each
/// followed by `cnm show`: recovery
/// leaves the kernel exactly as state.json says — the seed when the destroy had not
/// committed, nothing when it had — with every namespace a mount and every sandbox
/// with its interfaces.
#[test]
fn a_destroy_killed_at_any_system_call_is_recovered_to_match_the_state() {
    in_namespaces(
        "a_destroy_killed_at_any_system_call_is_recovered_to_match_the_state",
        |env| {
            let script = topology_only("scripts/seed.cnm", "seed.cnm");
            env.cnm_ok(&["apply", &script]);
            let seeded = comparable(&env.kernel());
            let calls = syscalls_of(env, &["destroy"]);
            env.cnm_ok(&["apply", &script]);
            let positions: Vec<&(String, usize)> = calls
                .iter()
                .enumerate()
                .filter(|(i, (name, _))| {
                    let window = ["umount2", "unlink", "sendto", "fsync", "fdatasync", "rename"];
                    i % 5 == 0 || window.contains(&name.as_str())
                })
                .map(|(_, call)| call)
                .collect();
            let (mut kills, mut restored, mut destroyed, mut cut_commits) = (0, 0, 0, 0);
            for (name, nth) in &positions {
                let at = format!("{name} #{nth}");
                let out = Command::new("strace")
                    .args(["-qq", "-o", "/dev/null", "-e"])
                    .arg(format!("inject={name}:signal=KILL:when={nth}"))
                    .arg(CNM)
                    .args(env.command(&["destroy"]).get_args())
                    .current_dir(env!("CARGO_MANIFEST_DIR"))
                    .output()
                    .expect("strace runs");
                use std::os::unix::process::ExitStatusExt;
                if out.status.signal() != Some(9) && out.status.code() != Some(137) {
                    // This run made fewer such calls: it went through.
                    let err = String::from_utf8_lossy(&out.stderr);
                    assert!(out.status.success(), "{at}: {err}");
                } else {
                    kills += 1;
                }
                let out = env.cnm(&["show"]);
                let mut err = String::from_utf8_lossy(&out.stderr).into_owned();
                assert!(out.status.success(), "killed at {at}, then show: {err}");
                if env.state.join("state.json.next").exists() {
                    // Killed between the journal's commit line and the rename of the new
                    // state: a command that only reads leaves that to the next one that
                    // takes the journal (src/session.rs `committed`), so one does.
                    cut_commits += 1;
                    let out = env.cnm(&["apply", "/dev/null"]);
                    err = String::from_utf8_lossy(&out.stderr).into_owned();
                    assert!(out.status.success(), "killed at {at}, then apply: {err}");
                }
                assert_kernel_matches_state(env, &format!("killed at {at}\n{err}"));
                if env.state_json().is_some_and(|s| s.contains("\"web1\"")) {
                    restored += 1;
                    assert_same_kernel(&seeded, &comparable(&env.kernel()), &format!("killed at {at}"));
                } else {
                    destroyed += 1;
                    env.cnm_ok(&["apply", &script]);
                }
            }
            eprintln!(
                "destroy ({} system calls): {} positions, {kills} kills, {restored} rolled back, \
                 {destroyed} committed ({cut_commits} of them with the commit's rename left to \
                 the next command that takes the journal)",
                calls.len(),
                positions.len()
            );
            assert!(kills >= 90, "the kills covered the destroy: {kills}");
        },
    );
}

/// A destroy of 350 sandboxes killed (SIGKILL) at moments spread over its run: the next
/// command recovers, and the kernel matches state.json every time.
#[test]
fn a_destroy_of_many_sandboxes_killed_at_random_moments_is_recovered() {
    in_namespaces(
        "a_destroy_of_many_sandboxes_killed_at_random_moments_is_recovered",
        |env| kill_storm(env, "destroy"),
    );
}

/// The same for an apply of 350 sandboxes.
#[test]
fn an_apply_of_many_sandboxes_killed_at_random_moments_is_recovered() {
    in_namespaces(
        "an_apply_of_many_sandboxes_killed_at_random_moments_is_recovered",
        |env| kill_storm(env, "apply"),
    );
}

/// Kills `command` (apply or destroy of 350 sandboxes) at `CNM_TEST_STORM_KILLS` (10
/// unless set) pseudo-random moments of its run; after each, `cnm show` recovers and
/// the kernel matches state.json exactly.
fn kill_storm(env: &Env, command: &str) {
    let kills: usize = std::env::var("CNM_TEST_STORM_KILLS").map_or(10, |n| n.parse().unwrap());
    let script = "/run/cnm-test/many.cnm";
    std::fs::write(
        script,
        "network east subnet 10.10.0.0/24\nnetwork west subnet 10.20.0.0/24\n\
         for i in 1..175 {\n    sandbox east$i mode none\n    connect east$i to east\n}\n\
         for i in 1..175 {\n    sandbox west$i mode none\n    connect west$i to west\n}\n",
    )
    .unwrap();
    let applied = |env: &Env| env.state_json().is_some_and(|s| s.contains("\"east1\""));
    let args: &[&str] = if command == "apply" {
        &["apply", script]
    } else {
        &["destroy"]
    };
    // How long the whole command takes, uninterrupted.
    if command == "destroy" {
        env.cnm_ok(&["apply", script]);
        assert_eq!(namespaces().len(), 350);
    }
    // The hosts files as a complete apply writes them (the journal leaves their contents
    // out, and a rollback renders them again from the models it holds).
    let mut applied_files = env.etc_files();
    let started = Instant::now();
    env.cnm_ok(args);
    let took = started.elapsed();
    if command == "apply" {
        applied_files = env.etc_files();
    }
    assert_eq!(
        applied_files.matches(": ").count(),
        350,
        "a hosts file per sandbox"
    );
    // A fixed pseudo-random sequence (xorshift): moments anywhere in the run.
    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
    let (mut rolled_back, mut committed) = (0, 0);
    for round in 0..kills {
        // Start from the state the command changes.
        match (command, applied(env)) {
            ("destroy", false) => drop(env.cnm_ok(&["apply", script])),
            ("apply", true) => drop(env.cnm_ok(&["destroy"])),
            _ => {}
        }
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let at = took.mul_f64((seed % 1000) as f64 / 1000.0 * 1.2);
        let mut child = env
            .command(args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(at);
        let _ = child.kill();
        child.wait().unwrap();
        let out = env.cnm(&["show"]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "round {round} (kill at {at:?}): {err}");
        assert_kernel_matches_state(env, &format!("round {round}, kill at {at:?}\n{err}"));
        let files = if applied(env) { applied_files.as_str() } else { "" };
        assert_eq!(
            env.etc_files(),
            files,
            "round {round} (kill at {at:?}): the etc files"
        );
        if applied(env) == (command == "apply") {
            committed += 1;
        } else {
            rolled_back += 1;
        }
    }
    eprintln!(
        "{command} of 350 took {took:?}; {kills} kills: {rolled_back} rolled back, {committed} committed"
    );
}

/// An error report as one line of words (miette wraps it and draws a margin).
fn unwrapped(stderr: &[u8]) -> String {
    let text = String::from_utf8_lossy(stderr);
    let words: Vec<&str> = text.split_whitespace().filter(|w| *w != "│").collect();
    words.join(" ")
}

/// Symbolic links planted under the etc directory are never followed: a sandbox's
/// directory that is a link is refused with a clear error (apply and destroy roll back),
/// and a file that is a link is replaced or removed itself, never its target.
#[test]
fn symlinks_under_the_etc_directory_are_never_followed() {
    in_namespaces("symlinks_under_the_etc_directory_are_never_followed", |env| {
        let script = topology_only("scripts/seed.cnm", "seed.cnm");
        std::fs::create_dir_all("/run/outside").unwrap();
        std::fs::write("/run/outside/hosts", "precious\n").unwrap();
        std::fs::write("/run/outside-file", "precious too\n").unwrap();
        let untouched = || {
            assert_eq!(
                std::fs::read_to_string("/run/outside/hosts").unwrap(),
                "precious\n"
            );
            assert_eq!(
                std::fs::read_to_string("/run/outside-file").unwrap(),
                "precious too\n"
            );
            assert_eq!(
                std::fs::read_dir("/run/outside").unwrap().count(),
                1,
                "nothing new outside"
            );
        };
        let a = env.etc.join("A");
        std::os::unix::fs::symlink("/run/outside", &a).unwrap();
        let before = env.kernel();
        let out = env.cnm(&["apply", &script]);
        let err = unwrapped(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{err}");
        assert!(
            err.contains(&format!("{} is a symbolic link", a.display())),
            "{err}"
        );
        assert!(err.contains("rolled back"), "{err}");
        assert_same_kernel(&before, &env.kernel(), "refused apply");
        assert_eq!(env.state_json(), None);
        untouched();

        std::fs::remove_file(&a).unwrap();
        env.cnm_ok(&["apply", &script]);
        // A's hosts file becomes a link to a file outside; B's directory a link outside.
        std::fs::remove_file(a.join("hosts")).unwrap();
        std::os::unix::fs::symlink("/run/outside-file", a.join("hosts")).unwrap();
        let b = env.etc.join("B");
        std::fs::remove_dir_all(&b).unwrap();
        std::os::unix::fs::symlink("/run/outside", &b).unwrap();
        let state = env.state_json();
        let out = env.cnm(&["destroy"]);
        let err = unwrapped(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{err}");
        assert!(
            err.contains(&format!("{} is a symbolic link", b.display())),
            "{err}"
        );
        assert_eq!(env.state_json(), state);
        untouched();

        std::fs::remove_file(&b).unwrap();
        env.cnm_ok(&["destroy"]);
        assert!(!a.exists(), "A's link to a file was removed, not its target");
        untouched();
    });
}
