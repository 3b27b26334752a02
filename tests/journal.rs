//! The state directory against what goes wrong on real machines: a crash in the middle
//! of a journal line or of a commit, a full disk, no privilege, files planted in the
//! state directory. Tests that change the kernel run inside fresh namespaces (see
//! tests/common); each checks that the kernel, read back with iproute2, matches
//! state.json afterwards, and that nothing outside the state directory changed.

mod common;

use common::run;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

const CNM: &str = env!("CARGO_BIN_EXE_cnm");

/// The private directories of one test, inside its namespaces.
struct Env {
    state: PathBuf,
    etc: PathBuf,
}

fn in_namespaces(test: &str, body: impl FnOnce(&Env)) {
    common::in_namespaces(test, || {
        let env = Env {
            state: PathBuf::from("/run/cnm-test/state"),
            etc: PathBuf::from("/run/cnm-test/etc"),
        };
        std::fs::create_dir_all(&env.etc).unwrap();
        run("ip", &["link", "set", "lo", "up"]);
        body(&env)
    });
}

impl Env {
    fn command_in(&self, state: &Path, args: &[&str]) -> Command {
        let mut command = Command::new(CNM);
        command
            .arg("--state-dir")
            .arg(state)
            .args(["--netns-dir", "/run/netns", "--etc-dir"])
            .arg(&self.etc)
            .args(args)
            .current_dir(env!("CARGO_MANIFEST_DIR"));
        command
    }

    fn cnm_in(&self, state: &Path, args: &[&str]) -> Output {
        self.command_in(state, args).output().unwrap()
    }

    fn cnm(&self, args: &[&str]) -> Output {
        self.cnm_in(&self.state, args)
    }

    fn cnm_ok(&self, args: &[&str]) -> (String, String) {
        let out = self.cnm(args);
        let err = String::from_utf8_lossy(&out.stderr).to_string();
        assert!(out.status.success(), "cnm {args:?} failed:\n{err}");
        (String::from_utf8(out.stdout).unwrap(), err)
    }

    fn file(&self, name: &str) -> Option<String> {
        std::fs::read_to_string(self.state.join(name)).ok()
    }
}

/// The namespaces, and the links and addresses on the host and in each, as iproute2
/// shows them, without what the kernel numbers anew, counts or derives.
fn kernel() -> String {
    let mut namespaces: Vec<String> = std::fs::read_dir("/run/netns")
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    namespaces.sort();
    let mut text = format!("netns: {namespaces:?}\n");
    for ns in std::iter::once(None).chain(namespaces.iter().map(Some)) {
        let mut args = Vec::new();
        if let Some(ns) = ns {
            args.extend(["-n", ns.as_str()]);
        }
        args.extend(["-j", "addr"]);
        let mut value: Value = serde_json::from_str(&run("ip", &args)).unwrap();
        let mut links: Vec<String> = value
            .as_array_mut()
            .unwrap()
            .iter_mut()
            .map(|link| {
                let link = link.as_object_mut().unwrap();
                for key in ["ifindex", "link_index", "link_netnsid", "master_index"] {
                    link.remove(key);
                }
                common::forget_derived(link);
                if let Some(Value::Array(addrs)) = link.get_mut("addr_info") {
                    for addr in addrs {
                        let addr = addr.as_object_mut().unwrap();
                        addr.remove("valid_life_time");
                        addr.remove("preferred_life_time");
                    }
                }
                Value::Object(link.clone()).to_string()
            })
            .collect();
        links.sort();
        text.push_str(&format!("{ns:?}: {links:?}\n"));
    }
    text
}

/// Waits until the journal in `state` has more than `lines` lines.
fn wait_for_lines(state: &Path, lines: usize, child: &mut std::process::Child) {
    let started = Instant::now();
    while std::fs::read_to_string(state.join("journal.jsonl"))
        .map(|t| t.lines().count())
        .unwrap_or(0)
        <= lines
    {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the apply never got going"
        );
        assert!(child.try_wait().unwrap().is_none(), "the apply ended too soon");
        std::thread::sleep(Duration::from_millis(2));
    }
}

fn names_starting(dir: &Path, prefix: &str) -> Vec<PathBuf> {
    std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with(prefix))
        .map(|e| e.path())
        .collect()
}

/// A crash in the middle of writing a journal line leaves half a line at its end: the
/// next command sets it aside, says so once, and rolls back the transaction it was
/// part of. A journal corrupt before its end is an error that names the line, until
/// `cnm recover --from-journal`.
#[test]
fn a_torn_last_line_is_removed_and_its_transaction_rolled_back() {
    in_namespaces(
        "a_torn_last_line_is_removed_and_its_transaction_rolled_back",
        |env| {
            env.cnm_ok(&["apply", "scripts/seed.cnm"]);
            let kernel_before = kernel();
            let state_before = env.file("state.json").unwrap();
            let seed_lines = env.file("journal.jsonl").unwrap().lines().count();

            // Killed in the middle of a transaction, in the middle of a line.
            let mut child = env
                .command_in(&env.state, &["apply", "scripts/fleet.cnm"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap();
            wait_for_lines(&env.state, seed_lines + 100, &mut child);
            child.kill().unwrap();
            child.wait().unwrap();
            let journal = env.state.join("journal.jsonl");
            let mut text = std::fs::read(&journal).unwrap();
            text.extend_from_slice(b"{\"type\":\"step\",\"tx\":2,\"ind");
            std::fs::write(&journal, &text).unwrap();

            // The commands that failed with "corrupt" before now go on.
            let (log, _) = env.cnm_ok(&["log"]);
            assert!(log.lines().nth(1).unwrap().contains(" open "), "{log}");
            let (_, err) = env.cnm_ok(&["apply", "scripts/seed.cnm"]);
            assert!(
                err.contains(
                    "journal.jsonl ended in a line cut short (26 bytes, left by a crash or a full disk)"
                ),
                "{err}"
            );
            assert!(err.contains("transaction 2 was under way"), "{err}");
            assert!(err.contains("transaction 2 (`"), "{err}");
            assert!(err.contains("rolled it back"), "{err}");
            assert_eq!(kernel(), kernel_before, "the kernel matches state.json");
            assert_eq!(env.file("state.json").unwrap(), state_before);
            let copies = names_starting(&env.state, "journal.jsonl.torn-");
            assert_eq!(copies.len(), 1);
            assert_eq!(
                std::fs::read(&copies[0]).unwrap(),
                b"{\"type\":\"step\",\"tx\":2,\"ind"
            );
            let (_, err) = env.cnm_ok(&["apply", "scripts/seed.cnm"]);
            assert_eq!(err, "", "said once");
            let (log, _) = env.cnm_ok(&["log"]);
            assert!(log.contains("cut short; recovered"), "{log}");

            // A line spoilt before the end: an error naming it, for every command that
            // reads so far back, until the journal is rebuilt.
            let whole = env.file("journal.jsonl").unwrap();
            let mut lines: Vec<&str> = whole.lines().collect();
            lines[3] = "{\"type\":\"step\",\"tx\":1,";
            std::fs::write(&journal, lines.join("\n") + "\n").unwrap();
            let out = env.cnm(&["log"]);
            let err = String::from_utf8_lossy(&out.stderr);
            assert_eq!(out.status.code(), Some(1), "{err}");
            assert!(
                err.contains("/run/cnm-test/state/journal.jsonl is corrupt at line 4"),
                "{err}"
            );
            assert!(err.contains("cnm recover --from-journal"), "{err}");
            // And so is a state.json that cannot be read.
            std::fs::write(env.state.join("state.json"), "{\"format_version\": 1,").unwrap();
            let out = env.cnm(&["show"]);
            assert_eq!(out.status.code(), Some(1));
            assert!(String::from_utf8_lossy(&out.stderr).contains("cnm recover --from-journal"));

            let (out, _) = env.cnm_ok(&["recover", "--from-journal"]);
            assert!(
                out.starts_with(
                    "Rebuilt /run/cnm-test/state/state.json from the state before transaction 2 (`"
                ),
                "{out}"
            );
            assert!(
                out.contains("Dropped 1 line of the journal that could not be read (line 4)"),
                "{out}"
            );
            assert_eq!(env.file("state.json").unwrap(), state_before);
            assert_eq!(names_starting(&env.state, "journal.jsonl.corrupt-").len(), 1);
            assert_eq!(names_starting(&env.state, "state.json.replaced-").len(), 1);
            env.cnm_ok(&["log"]);
            let (plan, _) = env.cnm_ok(&["plan", "scripts/seed.cnm"]);
            assert!(plan.contains("No changes"), "{plan}");
            assert_eq!(kernel(), kernel_before);
        },
    );
}

/// Between the `commit` line and the rename of state.json.next, the commit has
/// happened: every command shows it, and the first that gets the lock finishes it.
#[test]
fn a_commit_cut_short_before_its_rename_is_what_every_command_sees() {
    in_namespaces(
        "a_commit_cut_short_before_its_rename_is_what_every_command_sees",
        |env| {
            std::fs::write(
                "/run/cnm-test/one.cnm",
                "network n subnet 10.9.0.0/24\nsandbox a mode none\n",
            )
            .unwrap();
            std::fs::write(
                "/run/cnm-test/two.cnm",
                "network n subnet 10.9.0.0/24\nsandbox a mode none\nconnect a to n\n",
            )
            .unwrap();
            env.cnm_ok(&["apply", "/run/cnm-test/one.cnm"]);
            let one = env.file("state.json").unwrap();
            env.cnm_ok(&["apply", "/run/cnm-test/two.cnm"]);
            let two = env.file("state.json").unwrap();
            let kernel_two = kernel();
            // As a kill between the commit line and the rename leaves it.
            std::fs::write(env.state.join("state.json.next"), &two).unwrap();
            std::fs::write(env.state.join("state.json"), &one).unwrap();

            // Another cnm holds the lock: read the committed state, write nothing.
            let mut holder = Command::new("flock")
                .arg("--no-fork")
                .arg(env.state.join("lock"))
                .args(["sleep", "30"])
                .spawn()
                .unwrap();
            std::thread::sleep(Duration::from_millis(200));
            let (show, err) = env.cnm_ok(&["show"]);
            assert!(show.contains("a.n"), "the committed endpoint: {show}\n{err}");
            let (inspect, _) = env.cnm_ok(&["inspect", "a.n"]);
            assert!(inspect.contains("10.9.0.2"), "{inspect}");
            assert_eq!(env.file("state.json").unwrap(), one, "nothing written");
            assert!(env.state.join("state.json.next").exists());
            holder.kill().unwrap();
            holder.wait().unwrap();

            // With the lock free, a command that only reads finishes the commit.
            let (plan, err) = env.cnm_ok(&["plan", "/run/cnm-test/two.cnm"]);
            assert!(plan.contains("No changes"), "{plan}");
            assert!(
            err.contains("transaction 2 was committed, but cnm stopped before its state file was put in place; finished it"),
            "{err}"
        );
            assert_eq!(env.file("state.json").unwrap(), two);
            assert!(!env.state.join("state.json.next").exists());
            assert_eq!(kernel(), kernel_two, "the kernel matches state.json");
            let (_, err) = env.cnm_ok(&["show"]);
            assert_eq!(err, "");
        },
    );
}

/// A disk that fills up at the commit: the transaction is undone in the kernel, and
/// exit 1 means, as always, that nothing changed.
#[test]
fn a_full_disk_at_commit_rolls_the_kernel_back() {
    in_namespaces("a_full_disk_at_commit_rolls_the_kernel_back", |env| {
        // What the seed's journal takes up to its commit, in a directory of the same
        // name length, applied then destroyed.
        let scratch = Path::new("/run/cnm-test/s1");
        let out = env.cnm_in(scratch, &["apply", "scripts/seed.cnm"]);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let journal = std::fs::read_to_string(scratch.join("journal.jsonl")).unwrap();
        let before_commit = journal.len() - journal.lines().last().unwrap().len() - 1;
        let state_size = std::fs::metadata(scratch.join("state.json")).unwrap().len();
        assert!(state_size > 4096, "the state takes more than a page");
        assert!(env.cnm_in(scratch, &["destroy"]).status.success());
        let kernel_before = kernel();

        // A filesystem with room for the lock, the journal up to the commit and one
        // page more: the new state does not fit.
        let state = Path::new("/run/cnm-test/s2");
        std::fs::create_dir_all(state).unwrap();
        let pages = before_commit.div_ceil(4096) + 2;
        run(
            "mount",
            &[
                "-t",
                "tmpfs",
                "-o",
                &format!("size={},mode=0700", pages * 4096),
                "tmpfs",
                "/run/cnm-test/s2",
            ],
        );
        let out = env.cnm_in(state, &["apply", "scripts/seed.cnm"]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{err}");
        let said = err.replace("\n  │ ", " ");
        assert!(
            said.contains(
                "apply could not be committed: cannot commit: cannot write /run/cnm-test/s2/state.json.next: no space left on the device"
            ),
            "{err}"
        );
        // The help line as words: miette wraps it to the width of the report.
        let words = err.split_whitespace().collect::<Vec<_>>().join(" ");
        assert!(words.contains("rolled back: 90 steps undone in "), "{err}");
        assert!(
            words.contains("the kernel and state.json are as they were"),
            "{err}"
        );
        assert_eq!(kernel(), kernel_before, "nothing changed");
        assert!(!state.join("state.json").exists());
        assert!(!state.join("state.json.next").exists());
        let out = env.cnm_in(state, &["log"]);
        let log = String::from_utf8_lossy(&out.stdout);
        assert!(log.contains("rolled back: cannot commit"), "{log}");
        // Nothing is left half-done: the next command has nothing to recover.
        let out = env.cnm_in(state, &["show"]);
        assert_eq!(String::from_utf8_lossy(&out.stderr), "");
        assert_eq!(String::from_utf8_lossy(&out.stdout), "Nothing applied yet.\n");
    });
}

/// Files planted in the state directory are neither followed nor believed, and the
/// kernel stays as state.json says.
#[test]
fn planted_files_in_the_state_directory_are_refused() {
    in_namespaces("planted_files_in_the_state_directory_are_refused", |env| {
        let outside = Path::new("/run/cnm-test/outside");
        std::fs::write(outside, "precious\n").unwrap();
        std::fs::create_dir_all(&env.state).unwrap();
        for name in ["lock", "journal.jsonl"] {
            std::os::unix::fs::symlink(outside, env.state.join(name)).unwrap();
            let out = env.cnm(&["apply", "scripts/seed.cnm"]);
            let err = String::from_utf8_lossy(&out.stderr);
            assert_eq!(out.status.code(), Some(1), "{err}");
            assert_eq!(
                err,
                format!(
                    "error: cannot use /run/cnm-test/state/{name}: it is a symbolic link, which cnm does not follow in its state directory\n"
                )
            );
            assert_eq!(std::fs::read_to_string(outside).unwrap(), "precious\n");
            std::fs::remove_file(env.state.join(name)).unwrap();
        }
        assert_eq!(kernel().lines().next().unwrap(), "netns: []");

        env.cnm_ok(&["apply", "scripts/seed.cnm"]);
        let state = env.file("state.json").unwrap();
        let kernel_seed = kernel();
        // A state.json.next that no commit vouches for is removed, never read.
        std::fs::write(env.state.join("state.json.next"), "{\"format_version\":1}").unwrap();
        let (show, err) = env.cnm_ok(&["show"]);
        assert!(show.contains("backend"), "{show}");
        assert!(
            err.contains("which no commit in the journal vouches for"),
            "{err}"
        );
        assert!(!env.state.join("state.json.next").exists());
        // Nor is one that links elsewhere written through at the next commit.
        std::os::unix::fs::symlink(outside, env.state.join("state.json.next")).unwrap();
        std::fs::write("/run/cnm-test/more.cnm", "sandbox extra mode none\n").unwrap();
        let (_, err) = env.cnm_ok(&["apply", "/run/cnm-test/more.cnm"]);
        assert!(
            err.contains("which no commit in the journal vouches for"),
            "{err}"
        );
        assert_eq!(std::fs::read_to_string(outside).unwrap(), "precious\n");
        assert!(env.file("state.json").unwrap().contains("\"extra\""));
        env.cnm_ok(&["undo"]);
        assert_eq!(env.file("state.json").unwrap(), state);
        assert_eq!(kernel(), kernel_seed);

        // A state.json that is a FIFO does not hang a command; one too big is said so.
        let fifo_dir = Path::new("/run/cnm-test/fifo");
        std::fs::create_dir_all(fifo_dir).unwrap();
        run("mkfifo", &["/run/cnm-test/fifo/state.json"]);
        let started = Instant::now();
        let out = env.cnm_in(fifo_dir, &["show"]);
        assert!(started.elapsed() < Duration::from_secs(5));
        assert_eq!(
            String::from_utf8_lossy(&out.stderr),
            "error: cannot read /run/cnm-test/fifo/state.json: it is a FIFO, not a regular file\n"
        );
        std::fs::remove_file(fifo_dir.join("state.json")).unwrap();
        std::fs::File::create(fifo_dir.join("state.json"))
            .unwrap()
            .set_len(65 << 20)
            .unwrap();
        let out = env.cnm_in(fifo_dir, &["show"]);
        assert_eq!(
            String::from_utf8_lossy(&out.stderr),
            "error: cannot read /run/cnm-test/fifo/state.json: it is 68157440 bytes long, more than the 64 MiB cnm reads\n"
        );

        // A state directory that is a link is refused; a world-writable one warned of.
        std::os::unix::fs::symlink(&env.state, "/run/cnm-test/link").unwrap();
        let out = env.cnm_in(Path::new("/run/cnm-test/link"), &["show"]);
        assert_eq!(out.status.code(), Some(1));
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("it is a symbolic link, which cnm does not follow"),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        run("chmod", &["0777", "/run/cnm-test/state"]);
        let (_, err) = env.cnm_ok(&["apply", "scripts/seed.cnm"]);
        assert!(err.contains("is writable by every user"), "{err}");
        assert_eq!(kernel(), kernel_seed);
    });
}

/// A user without privilege learns it before anything is written: the state
/// directory is not even made.
#[test]
fn without_privilege_nothing_is_written() {
    let base = std::env::temp_dir().join(format!("cnm-unprivileged-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&base);
    std::fs::create_dir_all(&base).unwrap();
    // Anyone may make the state directory here: only cnm's own check stops it.
    std::fs::set_permissions(&base, std::os::unix::fs::PermissionsExt::from_mode(0o1777)).unwrap();
    let state = base.join("state");
    // The user `nobody` may not reach the checkout (a private directory, as root's home
    // is): the binary and the script it runs are copied where it may.
    use std::os::unix::fs::PermissionsExt;
    let cnm = base.join("cnm");
    std::fs::copy(CNM, &cnm).unwrap();
    std::fs::set_permissions(&cnm, std::fs::Permissions::from_mode(0o755)).unwrap();
    let script = base.join("seed.cnm");
    std::fs::copy(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/seed.cnm"),
        &script,
    )
    .unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o644)).unwrap();
    let script = script.to_str().unwrap();
    for args in [&["apply", script][..], &["destroy"], &["undo"]] {
        let mut command = if nix::unistd::geteuid().is_root() {
            let mut command = Command::new("setpriv");
            command.args([
                "--reuid=65534",
                "--regid=65534",
                "--clear-groups",
                "--inh-caps=-all",
            ]);
            command.arg(&cnm);
            command
        } else {
            Command::new(&cnm)
        };
        let out = command
            .arg("--state-dir")
            .arg(&state)
            .args(["--netns-dir"])
            .arg(base.join("netns"))
            .args(args)
            .current_dir(&base)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{err}");
        assert!(
            err.starts_with(
                "error: cnm needs root to change the kernel (CAP_NET_ADMIN and CAP_SYS_ADMIN): this process lacks"
            ),
            "{err}"
        );
        assert!(err.contains("--isolated"), "{err}");
        assert!(!state.exists(), "{args:?} wrote nothing");
        assert!(!base.join("netns").exists());
    }
    std::fs::remove_dir_all(&base).unwrap();
}
