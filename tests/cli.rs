//! The command line as a user or a CI job meets it: exit codes, output streams, flags.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

const CNM: &str = env!("CARGO_BIN_EXE_cnm");

fn scripts() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts")
}

/// A fresh, empty state directory, removed when dropped.
struct StateDir(PathBuf);

impl StateDir {
    fn new(name: &str) -> StateDir {
        let dir = std::env::temp_dir().join(format!("cnm-cli-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        StateDir(dir)
    }
}

impl Drop for StateDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn cnm(state: &StateDir, args: &[&str]) -> Output {
    Command::new(CNM)
        .arg("--state-dir")
        .arg(&state.0)
        .args(args)
        .env_remove("CNM_STATE_DIR")
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap()
}

fn stdout(output: &Output) -> String {
    String::from_utf8(output.stdout.clone()).unwrap()
}

fn stderr(output: &Output) -> String {
    String::from_utf8(output.stderr.clone()).unwrap()
}

#[test]
fn check_exits_zero_on_clean_scripts_and_one_on_errors() {
    let state = StateDir::new("check");
    let clean = cnm(&state, &["check", "scripts/seed.cnm", "scripts/modes.cnm"]);
    assert_eq!(clean.status.code(), Some(0), "{}", stderr(&clean));
    assert!(stdout(&clean).is_empty());

    let bad = state.0.join("bad.cnm");
    std::fs::write(&bad, "network backend subnet 10.1.0.0/33\nconect A to backend\n").unwrap();
    let out = cnm(&state, &["check", bad.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(err.contains("invalid subnet `10.1.0.0/33`"), "{err}");
    assert!(err.contains("unknown statement `conect`"), "{err}");
    assert!(err.contains("did you mean `connect`?"), "{err}");
    assert!(err.contains("bad.cnm:2:1"), "{err}");
    assert!(
        err.contains("error: 2 errors found; nothing was planned or applied"),
        "{err}"
    );
    // Piped output carries no colour codes.
    assert!(!err.contains('\u{1b}'), "{err}");
}

#[test]
fn plan_prints_operations_and_a_summary() {
    let state = StateDir::new("plan");
    let out = cnm(&state, &["plan", "scripts/seed.cnm"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.contains("+ network backend"), "{text}");
    assert!(
        text.contains("ip link add cnm-backend mtu 1500 type bridge mcast_snooping 0"),
        "{text}"
    );
    assert!(text.contains("ip netns add A"), "{text}");
    assert!(
        text.ends_with("Plan: 19 to add, 0 to change, 0 to remove.\n"),
        "{text}"
    );
    assert!(!text.contains('\u{1b}'), "no colour when piped");
}

#[test]
fn detailed_exitcode_tells_changes_from_none() {
    let state = StateDir::new("detailed");
    let out = cnm(&state, &["plan", "--detailed-exitcode", "scripts/seed.cnm"]);
    assert_eq!(out.status.code(), Some(2));

    // Commit the state the script produces: now there is nothing to do.
    let mut sources = cnm::syntax::Sources::default();
    let id = sources.add(
        "seed.cnm",
        std::fs::read_to_string(scripts().join("seed.cnm")).unwrap(),
    );
    let (mut checked, _) = cnm::plan_scripts(&mut sources, &[id], &cnm::model::Model::empty()).unwrap();
    // As if cnm had turned forwarding on: then it stays so, whatever the host says now.
    checked.model.ip_forward_enabled = true;
    std::fs::write(state.0.join("state.json"), cnm::state::to_json(&checked.model)).unwrap();
    let out = cnm(&state, &["plan", "--detailed-exitcode", "scripts/seed.cnm"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(
        stdout(&out),
        "No changes: the committed state already matches the script.\n"
    );

    let bad = state.0.join("bad.cnm");
    std::fs::write(&bad, "sandbox\n").unwrap();
    let out = cnm(&state, &["plan", "--detailed-exitcode", bad.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stdout(&out).is_empty(), "no partial plan on errors");
}

#[test]
fn json_plan_is_versioned_and_points_at_the_source() {
    let state = StateDir::new("json");
    let out = cnm(&state, &["plan", "--json", "scripts/seed.cnm"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let plan: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(plan["format_version"], "1.0");
    assert_eq!(plan["summary"]["add"], 19);
    let first = &plan["steps"][0];
    assert_eq!(first["index"], 1);
    assert_eq!(first["op"], "add_firewall");
    assert_eq!(
        first["command"],
        "nft add table inet cnm (its chains, sets and maps)"
    );
    assert_eq!(first["undo"][0]["op"], "del_firewall");
    assert_eq!(first["source"]["file"], "scripts/seed.cnm");
    assert_eq!(first["source"]["line"], 2);
    assert_eq!(first["source"]["column"], 1);
    let second = &plan["steps"][1];
    assert_eq!(second["op"], "add_nft_element");
    assert_eq!(second["set"], "bridges");
    assert_eq!(second["element"], "\"cnm-backend\"");
    assert_eq!(
        second["command"],
        "nft add element inet cnm bridges { \"cnm-backend\" }"
    );
    assert_eq!(second["undo"][0]["op"], "del_nft_element");
    let bridge = plan["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["op"] == "add_bridge")
        .unwrap();
    assert_eq!(bridge["bridge"], "cnm-backend");
    assert_eq!(
        bridge["command"],
        "ip link add cnm-backend mtu 1500 type bridge mcast_snooping 0"
    );
    assert_eq!(bridge["undo"][0]["op"], "del_link");
    assert_eq!(bridge["source"]["line"], 2);
    assert_eq!(plan["changes"][0]["action"], "add");
    assert_eq!(plan["changes"][0]["kind"], "network");
}

#[test]
fn standard_input_is_a_script() {
    let state = StateDir::new("stdin");
    let mut child = Command::new(CNM)
        .args(["--state-dir", state.0.to_str().unwrap(), "check", "-"])
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"sandbox A mode none\nconnect A to nowhere\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(err.contains("<stdin>:2:14"), "{err}");
    assert!(err.contains("unknown network `nowhere`"), "{err}");
}

#[test]
fn unreadable_inputs_are_one_clear_line() {
    let state = StateDir::new("unreadable");
    let out = cnm(&state, &["check", "no/such/file.cnm"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        stderr(&out),
        "error: cannot read no/such/file.cnm: no such file\n"
    );

    std::fs::write(
        state.0.join("state.json"),
        "{\n  \"format_version\": 1,\n  \"networks\": {\n",
    )
    .unwrap();
    let out = cnm(&state, &["plan", "scripts/seed.cnm"]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(err.starts_with("error: "), "{err}");
    assert!(err.contains("state.json is corrupt at line 4"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
}

#[test]
fn state_dir_comes_from_the_environment_too() {
    let state = StateDir::new("env");
    std::fs::write(state.0.join("state.json"), "not json").unwrap();
    let out = Command::new(CNM)
        .args(["plan", "scripts/seed.cnm"])
        .env("CNM_STATE_DIR", &state.0)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains(&format!("{}/state.json is corrupt", state.0.display())));
}

#[test]
fn help_documents_every_command_and_flag() {
    let out = Command::new(CNM).arg("--help").output().unwrap();
    let text = stdout(&out);
    for needle in [
        "check",
        "plan",
        "--state-dir",
        "CNM_STATE_DIR",
        "--netns-dir",
        "CNM_NETNS_DIR",
        "Exit status",
    ] {
        assert!(text.contains(needle), "--help lacks {needle}:\n{text}");
    }
    let out = Command::new(CNM).args(["plan", "--help"]).output().unwrap();
    let text = stdout(&out);
    assert!(
        text.contains("--detailed-exitcode") && text.contains("--json"),
        "{text}"
    );
}

#[test]
fn inspect_speaks_docker() {
    let state = StateDir::new("inspect");
    let mut sources = cnm::syntax::Sources::default();
    let id = sources.add(
        "seed.cnm",
        std::fs::read_to_string(scripts().join("seed.cnm")).unwrap(),
    );
    let (checked, _) = cnm::plan_scripts(&mut sources, &[id], &cnm::model::Model::empty()).unwrap();
    std::fs::write(state.0.join("state.json"), cnm::state::to_json(&checked.model)).unwrap();

    let out = cnm(&state, &["inspect", "backend"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let network: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let network = &network[0];
    assert_eq!(network["Driver"], "bridge");
    assert_eq!(network["IPAM"]["Config"][0]["Subnet"], "10.1.0.0/24");
    assert_eq!(network["IPAM"]["Config"][0]["Gateway"], "10.1.0.1");
    assert_eq!(
        network["Options"]["com.docker.network.bridge.name"],
        "cnm-backend"
    );
    let a = &network["Containers"][&checked.model.sandboxes["A"].id];
    assert_eq!(a["Name"], "A");
    assert_eq!(a["IPv4Address"], "10.1.0.2/24");
    assert_eq!(a["MacAddress"], "02:42:0a:01:00:02");

    let out = cnm(&state, &["inspect", "B"]);
    let sandbox: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let frontend = &sandbox[0]["NetworkSettings"]["Networks"]["frontend"];
    assert_eq!(frontend["Gateway"], "10.2.0.254");
    assert_eq!(frontend["IPAddress"], "10.2.0.1");
    assert_eq!(
        frontend["NetworkID"],
        checked.model.networks["frontend"].id.as_str()
    );
    assert_eq!(
        frontend["EndpointID"],
        checked.model.endpoints["B.frontend"].id.as_str()
    );
    assert_eq!(frontend["Interface"], "eth1");

    let out = cnm(&state, &["inspect", "bakend"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        stderr(&out),
        "error: no network, sandbox or endpoint named `bakend`; did you mean `backend`?\n"
    );
}

#[test]
fn dry_run_simulates_the_transaction_and_changes_nothing() {
    let state = StateDir::new("dry-run");
    let out = cnm(&state, &["apply", "--dry-run", "scripts/seed.cnm"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    // One more operation where the host does not forward yet: cnm turns forwarding on.
    let forwarding = std::fs::read_to_string("/proc/sys/net/ipv4/ip_forward").unwrap();
    let operations = 89 + usize::from(forwarding.trim() == "0");
    assert_eq!(
        stdout(&out),
        format!(
            "Dry run: simulated {operations} kernel operations. Objects: 19 added, 0 changed, 0 removed.\n"
        )
    );
    let progress = stderr(&out);
    assert!(
        progress.starts_with(&format!(
            "[{:>width$}/{operations}] nft add table inet cnm (its chains, sets and maps)\n",
            1,
            width = operations.to_string().len()
        )),
        "{progress}"
    );
    assert_eq!(
        std::fs::read_dir(&state.0).unwrap().count(),
        0,
        "nothing written to the state directory"
    );
}

/// A `publish` whose sandbox has no address on a bridge network leads nowhere: each
/// such statement is named once (a loop's too); a sandbox with an address is not.
#[test]
fn apply_names_the_publish_statements_that_lead_nowhere() {
    let state = StateDir::new("unpublished");
    let script = state.0.join("unpublished.cnm");
    let text = "network n subnet 10.9.0.0/24\nsandbox api\nconnect api to n\npublish api 8080:80\n\
                sandbox web mode none\npublish web 8081:80/tcp\nfor i in 1..3 { publish web 90$i:80 }\n";
    std::fs::write(&script, text).unwrap();
    let out = cnm(&state, &["apply", "--dry-run", script.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let name = script.display();
    let err = stderr(&out);
    let warnings: Vec<&str> = err.lines().filter(|l| l.contains("warning")).collect();
    let warning = |line| {
        format!(
            "cnm: warning: {name}:{line}: sandbox web has no address on a bridge network that is not \
             internal, so the ports it publishes lead nowhere; connect it to one"
        )
    };
    assert_eq!(warnings, [warning(6), warning(7)]);
}

/// `serve` needs a cnm that stays: `cnm apply` refuses it before touching anything,
/// and says where to run it.
#[test]
fn apply_refuses_serve_before_anything_is_touched() {
    let state = StateDir::new("serve");
    let script = state.0.join("serve.cnm");
    std::fs::write(&script, "sandbox web mode none\nserve web port 80\n").unwrap();
    let out = cnm(&state, &["apply", script.to_str().unwrap()]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("`serve` needs a cnm that stays running; `cnm apply` exits"),
        "{err}"
    );
    assert!(err.contains("serve.cnm:2:1"), "points at the statement: {err}");
    assert!(err.contains("`cnm test FILE`"), "{err}");
    assert!(!state.0.join("state.json").exists(), "nothing was applied");
}

#[test]
fn plans_and_progress_name_the_files_under_the_etc_dir() {
    let state = StateDir::new("etc-dir");
    let etc = state.0.join("etc");
    let etc_dir = etc.to_str().unwrap();
    let out = cnm(&state, &["--etc-dir", etc_dir, "plan", "scripts/seed.cnm"]);
    let text = stdout(&out);
    assert!(text.contains(&format!("write {etc_dir}/A/hosts (")), "{text}");
    assert!(!text.contains("/etc/netns"), "{text}");

    let out = cnm(
        &state,
        &["--etc-dir", etc_dir, "plan", "--json", "scripts/seed.cnm"],
    );
    let plan: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let write = plan["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["op"] == "write_file")
        .unwrap();
    assert!(
        write["command"]
            .as_str()
            .unwrap()
            .starts_with(&format!("write {etc_dir}/A/hosts")),
        "{write}"
    );
    assert_eq!(
        write["undo"][0]["command"],
        format!("rm {etc_dir}/A/hosts"),
        "{write}"
    );
    // The operation itself is the same whatever the directory.
    assert_eq!((&write["netns"], &write["file"]), (&"A".into(), &"hosts".into()));

    let out = cnm(
        &state,
        &["--etc-dir", etc_dir, "apply", "--dry-run", "scripts/seed.cnm"],
    );
    let progress = stderr(&out);
    // The last step writes a hosts file.
    assert!(progress.contains(&format!("] write {etc_dir}/")), "{progress}");
    assert!(!progress.contains("/etc/netns"), "{progress}");
}

/// Writes the state `script` produces from nothing into `state`; returns the model.
fn commit_script(state: &StateDir, script: &str) -> cnm::model::Model {
    let mut sources = cnm::syntax::Sources::default();
    let id = sources.add("script.cnm", script);
    let (checked, _) = cnm::plan_scripts(&mut sources, &[id], &cnm::model::Model::empty()).unwrap();
    std::fs::write(state.0.join("state.json"), cnm::state::to_json(&checked.model)).unwrap();
    checked.model
}

/// The cells of the `show` row that starts with `name`.
fn show_row(text: &str, name: &str) -> Vec<String> {
    text.lines()
        .find(|l| l.split_whitespace().next() == Some(name))
        .unwrap_or_else(|| panic!("no row {name}:\n{text}"))
        .split_whitespace()
        .map(String::from)
        .collect()
}

#[test]
fn show_lists_no_host_end_for_macvlan_endpoints() {
    let state = StateDir::new("show-macvlan");
    let model = commit_script(
        &state,
        "network lan driver macvlan parent eth0 subnet 10.5.0.0/24\n\
         network apps subnet 10.3.0.0/24\n\
         sandbox m mode none\n\
         connect m to lan\n\
         connect m to apps\n",
    );
    let out = cnm(&state, &["show"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = stdout(&out);
    // ENDPOINT NETWORK SANDBOX INTERFACE ADDRESS MAC HOST-END
    assert_eq!(show_row(&text, "m.lan")[6], "-", "{text}");
    assert_eq!(
        show_row(&text, "m.apps")[6],
        model.endpoints["m.apps"].host_ifname,
        "{text}"
    );

    let out = cnm(&state, &["inspect", "m.lan"]);
    let endpoint: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(endpoint[0]["HostInterface"], serde_json::Value::Null);
}

#[test]
fn show_lists_ipv6_subnets_and_addresses() {
    let state = StateDir::new("show-ipv6");
    commit_script(
        &state,
        &std::fs::read_to_string(scripts().join("dual-stack.cnm")).unwrap(),
    );
    let text = stdout(&cnm(&state, &["show"]));
    // NETWORK DRIVER SUBNET… GATEWAY…
    assert_eq!(
        show_row(&text, "lab")[2..6],
        ["10.6.0.0/24", "fd06::/64", "10.6.0.1", "fd06::1"],
        "{text}"
    );
    // SANDBOX MODE STATUS NETNS INTERFACES
    assert_eq!(
        show_row(&text, "B")[4..],
        ["eth0", "10.6.0.3", "fd06::3", "(lab)"],
        "{text}"
    );
    // ENDPOINT NETWORK SANDBOX INTERFACE ADDRESS…
    assert_eq!(
        show_row(&text, "B.lab")[4..6],
        ["10.6.0.3/24", "fd06::3/64"],
        "{text}"
    );
}

#[test]
fn exec_help_says_what_a_scripts_hostname_does() {
    let text = stdout(&Command::new(CNM).args(["exec", "--help"]).output().unwrap());
    assert!(text.contains("no UTS namespace"), "{text}");
    assert!(text.contains("`hostname H` only names"), "{text}");
}

/// The source of every ```cnm block of README.md.
fn readme_cnm_blocks() -> Vec<String> {
    let readme = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md")).unwrap();
    let mut blocks = Vec::new();
    let mut current: Option<String> = None;
    for line in readme.lines() {
        match (&mut current, line.trim_end()) {
            (None, "```cnm") => current = Some(String::new()),
            (Some(block), "```") => {
                blocks.push(std::mem::take(block));
                current = None;
            }
            (Some(block), _) => {
                block.push_str(line);
                block.push('\n');
            }
            (None, _) => {}
        }
    }
    assert!(current.is_none(), "README.md has an unclosed ```cnm block");
    blocks
}

/// Every ```cnm block of README.md checks as one script, from the repository's root
/// (where its `include`s resolve).
#[test]
fn readme_cnm_blocks_check() {
    let blocks = readme_cnm_blocks();
    assert!(!blocks.is_empty(), "README.md has no ```cnm block");
    for block in blocks {
        let state = StateDir::new("readme");
        let mut child = Command::new(CNM)
            .args(["--state-dir", state.0.to_str().unwrap(), "check", "-"])
            .env_remove("CNM_STATE_DIR")
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .stdin(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        use std::io::Write;
        child.stdin.take().unwrap().write_all(block.as_bytes()).unwrap();
        let out = child.wait_with_output().unwrap();
        assert_eq!(
            out.status.code(),
            Some(0),
            "a README block does not check:\n{block}\n{}",
            stderr(&out)
        );
    }
}

/// `cnm check` passes every example script, each on its own.
#[test]
fn every_example_script_checks() {
    let state = StateDir::new("examples");
    let mut scripts: Vec<PathBuf> = std::fs::read_dir(scripts())
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    scripts.sort();
    assert!(scripts.len() >= 3, "{scripts:?}");
    for script in scripts {
        let out = cnm(&state, &["check", script.to_str().unwrap()]);
        assert_eq!(
            out.status.code(),
            Some(0),
            "{}: {}",
            script.display(),
            stderr(&out)
        );
    }
}

/// Usage errors exit 2, as documented in --help and README.
#[test]
fn usage_errors_exit_two() {
    let state = StateDir::new("usage");
    for args in [
        &["plan", "--no-such-flag", "scripts/seed.cnm"][..],
        &["plan"],
        &["frobnicate"],
        &["--lock-timeout", "soon", "show"],
    ] {
        let out = cnm(&state, args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
        assert!(stderr(&out).starts_with("error:"), "{args:?}: {}", stderr(&out));
        assert!(stdout(&out).is_empty());
    }
    let help = stdout(&Command::new(CNM).arg("--help").output().unwrap());
    assert!(help.contains("2 a usage error"), "{help}");
}

#[test]
fn a_lock_timeout_too_long_is_refused_not_overflowed() {
    let state = StateDir::new("lock-timeout");
    for huge in ["999999999999999999m", "18446744073709551616s", "1441m"] {
        let out = cnm(&state, &["--lock-timeout", huge, "show"]);
        assert_eq!(out.status.code(), Some(2), "{huge}: {}", stderr(&out));
        let err = stderr(&out);
        assert!(!err.contains("panicked"), "{err}");
        assert!(
            err.contains(&format!("invalid value '{huge}' for '--lock-timeout <DURATION>'")),
            "{err}"
        );
    }
    let out = cnm(&state, &["--lock-timeout", "1440m", "show"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
}

#[test]
fn an_inconsistent_state_is_refused_and_left_as_it_is() {
    let state = StateDir::new("inconsistent");
    // A hand-edited state: an endpoint on a network the state does not hold.
    let text = r#"{
  "format_version": 1,
  "networks": {},
  "sandboxes": {},
  "endpoints": {
    "x": {"name": "x", "id": "1", "network": "n", "ip": "10.1.0.2", "mac": "02:42:0a:01:00:02", "host_ifname": "veth1"}
  }
}
"#;
    let path = state.0.join("state.json");
    std::fs::write(&path, text).unwrap();
    for args in [&["plan", "scripts/seed.cnm"][..], &["show"], &["inspect", "x"]] {
        let out = cnm(&state, args);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {}", stderr(&out));
        assert_eq!(
            stderr(&out),
            format!(
                "error: {} is inconsistent: endpoint `x` names network `n`, which the state does not hold\n",
                path.display()
            ),
            "{args:?}"
        );
    }
    assert_eq!(std::fs::read_to_string(&path).unwrap(), text);
}

/// A command that must wait for the lock says at once for whom and for how long.
#[test]
fn waiting_for_the_lock_is_said_at_once() {
    let state = StateDir::new("lock-wait");
    let _held =
        cnm::journal::Journal::open(&state.0, std::time::Duration::ZERO, "cnm apply held.cnm").unwrap();
    let out = cnm(&state, &["--lock-timeout", "1s", "destroy"]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    let mut lines = err.lines();
    let first = lines.next().unwrap();
    let prefix = format!(
        "cnm: waiting up to 1s for the lock on {}, held by pid {}: cnm apply held.cnm, since ",
        state.0.display(),
        std::process::id()
    );
    assert!(first.starts_with(&prefix), "{err}");
    assert!(
        lines.next().unwrap().contains("gave up after waiting 1s"),
        "{err}"
    );
}

/// A state directory whose committed state is what `script` makes on an empty host.
fn committed(name: &str, script: &str) -> (StateDir, cnm::model::Model) {
    let state = StateDir::new(name);
    let mut sources = cnm::syntax::Sources::default();
    let file = sources.add(script, std::fs::read_to_string(scripts().join(script)).unwrap());
    let (checked, _) = cnm::plan_scripts(&mut sources, &[file], &cnm::model::Model::empty())
        .unwrap_or_else(|e| panic!("{script}: {e:?}"));
    std::fs::write(state.0.join("state.json"), cnm::state::to_json(&checked.model)).unwrap();
    (state, checked.model)
}

#[test]
fn export_prints_a_script_that_checks_on_an_empty_host() {
    let (state, model) = committed("export", "modes.cnm");
    let out = cnm(&state, &["export"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = stdout(&out);
    assert_eq!(text, cnm::export::script(&model));
    assert!(text.starts_with("# Exported by `cnm export`"), "{text}");
    assert!(
        text.contains("sandbox worker mode bridge hostname worker.internal dns 10.3.0.53\n"),
        "{text}"
    );
    // On an empty host, the export plans without errors.
    let empty = StateDir::new("export-empty");
    let file = empty.0.join("export.cnm");
    std::fs::write(&file, &text).unwrap();
    let out = cnm(&empty, &["plan", file.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    // Nothing applied: only the header.
    let out = cnm(&empty, &["export"]);
    assert_eq!(out.status.code(), Some(0));
    assert!(
        stdout(&out).lines().all(|l| l.starts_with('#')),
        "{}",
        stdout(&out)
    );
}

#[test]
fn graph_draws_mermaid_by_default_and_dot_on_request() {
    let (state, model) = committed("graph", "seed.cnm");
    let out = cnm(&state, &["graph"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(stdout(&out), cnm::graph::mermaid(&model));
    let out = cnm(&state, &["graph", "--format", "dot"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(stdout(&out), cnm::graph::dot(&model));
    let out = cnm(&state, &["graph", "--format", "svg"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("[possible values: mermaid, dot]"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn completions_name_the_subcommands_and_bash_parses_them() {
    let state = StateDir::new("completions");
    for shell in ["bash", "zsh", "fish"] {
        let out = cnm(&state, &["completions", shell]);
        assert_eq!(out.status.code(), Some(0), "{shell}: {}", stderr(&out));
        let text = stdout(&out);
        for command in ["apply", "export", "graph", "completions"] {
            assert!(text.contains(command), "{shell} completions lack {command}");
        }
    }
    let script = state.0.join("cnm.bash");
    std::fs::write(&script, stdout(&cnm(&state, &["completions", "bash"]))).unwrap();
    let out = Command::new("bash").arg("-n").arg(&script).output().unwrap();
    assert!(out.status.success(), "bash -n: {}", stderr(&out));
    assert_eq!(cnm(&state, &["completions", "tcsh"]).status.code(), Some(2));
}

#[test]
fn man_prints_a_page_that_man_renders() {
    let state = StateDir::new("man");
    let out = cnm(&state, &["man"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let page = stdout(&out);
    // clap_mangen opens with the `.ie`/`.el` pair that defines the apostrophe string;
    // the first macro after it is the title.
    let first = page
        .lines()
        .find(|l| !l.starts_with(".ie") && !l.starts_with(".el"))
        .unwrap();
    assert!(first.starts_with(".TH cnm 1"), "{page}");
    for command in ["apply", "export", "graph", "completions", "man"] {
        assert!(
            page.contains(&format!("cnm\\-{command}")),
            "no {command} in:\n{page}"
        );
    }
    if Command::new("man").arg("--version").output().is_err() {
        eprintln!("skipped rendering: `man` is not on the PATH");
        return;
    }
    let mut child = Command::new("man")
        .args(["-l", "-"])
        .env("MANPAGER", "cat")
        .env("MANWIDTH", "100")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write as _;
    child.stdin.take().unwrap().write_all(page.as_bytes()).unwrap();
    let rendered = child.wait_with_output().unwrap();
    assert!(rendered.status.success(), "man -l -: {}", stderr(&rendered));
    let text = stdout(&rendered);
    assert!(text.contains("NAME") && text.contains("apply"), "{text}");
}

/// `cnm test`: each script in namespaces of its own, one line per expectation, exact
/// counts, exit 1 when anything failed, JUnit XML that parses, and JSON.
#[test]
fn cnm_test_counts_expectations_and_reports_for_ci() {
    let state = StateDir::new("cnm-test");
    let passing = state.0.join("passing.cnm");
    let failing = state.0.join("failing.cnm");
    let broken = state.0.join("broken.cnm");
    std::fs::write(
        &passing,
        "network n subnet 10.5.0.0/24\nsandbox a mode none\nsandbox b mode none\n\
         connect a to n\nconnect b to n\nserve b port 80\n\
         expect a reaches b\nexpect a reaches b port 80\nexpect a reaches host\n",
    )
    .unwrap();
    std::fs::write(
        &failing,
        "network n subnet 10.5.0.0/24\nsandbox a mode none\nsandbox b mode none\n\
         connect a to n\nconnect b to n\n\
         expect a reaches b port 81 timeout 5s\nexpect a cannot reach b\n",
    )
    .unwrap();
    std::fs::write(&broken, "sandbox x mode bogus\n").unwrap();
    let junit = state.0.join("junit.xml");
    let files = [&passing, &failing, &broken].map(|p| p.to_str().unwrap().to_string());

    let out = Command::new(CNM)
        .args(["test", "--junit", junit.to_str().unwrap()])
        .args(&files)
        .output()
        .unwrap();
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(1), "{text}{}", stderr(&out));
    assert_eq!(text.lines().last(), Some("3 passed, 3 failed"), "{text}");
    for expected in [
        format!(
            "  pass  {}:7  a reaches b (10.5.0.3, ping): 10.5.0.3 answered",
            files[0]
        ),
        format!(
            "  pass  {}:8  a reaches b (10.5.0.3, tcp port 80): 10.5.0.3 answered",
            files[0]
        ),
        format!(
            "  pass  {}:9  a reaches host (10.5.0.1, ping): 10.5.0.1 answered",
            files[0]
        ),
        format!(
            "  FAIL  {}:6  a reaches b (10.5.0.3, tcp port 81): 10.5.0.3: Connection refused",
            files[1]
        ),
        format!(
            "  FAIL  {}:7  a cannot reach b (10.5.0.3, ping): 10.5.0.3 answered",
            files[1]
        ),
        "  FAIL  the script did not apply:".to_string(),
    ] {
        assert!(text.contains(&expected), "no {expected:?} in:\n{text}");
    }
    assert!(
        text.contains("invalid mode `bogus`"),
        "the diagnostic is shown: {text}"
    );

    let xml = std::fs::read_to_string(&junit).unwrap();
    let parsed = Command::new("python3")
        .args([
            "-c",
            "import sys, xml.dom.minidom as m; d = m.parse(sys.argv[1]); \
                print(len(d.getElementsByTagName('testcase')), len(d.getElementsByTagName('failure')))",
        ])
        .arg(&junit)
        .output()
        .unwrap();
    assert!(parsed.status.success(), "{xml}\n{}", stderr(&parsed));
    assert_eq!(stdout(&parsed), "6 3\n", "{xml}");

    // Its inner command never runs on the host's own state and kernel.
    let out = cnm(&state, &["test-one", &files[0]]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("test-one runs only with --isolated"),
        "{}",
        stderr(&out)
    );
    assert!(!state.0.join("state.json").exists());

    let out = Command::new(CNM)
        .args(["test", "--json"])
        .arg(&files[0])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        (report["passed"].as_u64(), report["failed"].as_u64()),
        (Some(3), Some(0))
    );
    assert_eq!(report["scripts"][0]["outcomes"].as_array().unwrap().len(), 3);
}

/// A script that is no regular file, or too large, is refused at once with why (and the
/// size), before anything is read into memory: /dev/zero, a FIFO nobody writes, a
/// directory, 17 MiB of comments; standard input is bounded the same way. Includes nest
/// at most 32 deep.
#[test]
fn scripts_that_are_no_regular_file_or_too_large_are_refused() {
    let state = StateDir::new("bombs");
    let fifo = state.0.join("fifo.cnm");
    assert!(Command::new("mkfifo").arg(&fifo).status().unwrap().success());
    let big = state.0.join("big.cnm");
    std::fs::write(&big, "#".repeat(17 << 20)).unwrap();
    let dir = state.0.join("dir.cnm");
    std::fs::create_dir(&dir).unwrap();
    let cases = [
        ("/dev/zero".to_string(), "it is not a regular file".to_string()),
        (fifo.display().to_string(), "it is not a regular file".to_string()),
        (dir.display().to_string(), "it is a directory".to_string()),
        (
            big.display().to_string(),
            "it is 17.0 MiB, more than the 16 MiB a script may hold".to_string(),
        ),
    ];
    for (path, reason) in cases {
        let out = cnm(&state, &["check", &path]);
        assert_eq!(out.status.code(), Some(1), "{path}");
        assert_eq!(stderr(&out), format!("error: cannot read {path}: {reason}\n"));
    }

    let mut child = Command::new(CNM)
        .args(["check", "-"])
        .stdin(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    // The reader stops at the bound: the writer sees a closed pipe, not a hang.
    let _ = std::io::Write::write_all(&mut input, "#".repeat(17 << 20).as_bytes());
    drop(input);
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        stderr(&out),
        "error: cannot read standard input: it holds more than 16 MiB\n"
    );

    // 40 files, each including the next.
    for i in 0..40 {
        std::fs::write(
            state.0.join(format!("i{i}.cnm")),
            format!("include i{}.cnm\n", i + 1),
        )
        .unwrap();
    }
    std::fs::write(state.0.join("i40.cnm"), "sandbox deep\n").unwrap();
    let out = cnm(&state, &["check", state.0.join("i0.cnm").to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("includes nest more than 32 deep"),
        "{}",
        stderr(&out)
    );
}
