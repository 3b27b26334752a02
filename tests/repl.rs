//! The interactive prompt, driven in a real pseudo-terminal as a user types: Tab,
//! several lines, Ctrl-C, Ctrl-D, history across restarts. Sessions that change a
//! kernel run `cnm --isolated repl`, or run inside fresh namespaces (as tests/kernel.rs
//! does) when the test reads the kernel back with `ip -j`.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::in_namespaces;
use expectrl::session::OsSession;
use expectrl::{Eof, Expect, Regex};

const CNM: &str = env!("CARGO_BIN_EXE_cnm");
const CTRL_C: &str = "\x03";
const CTRL_D: &str = "\x04";
const TAB: &str = "\t";

/// A cnm prompt in a pseudo-terminal.
struct Repl(OsSession);

impl Repl {
    /// `cnm ARGS… repl`, without colours, in a terminal rustyline fully supports.
    fn start(args: &[&str]) -> Repl {
        Repl::started(args).0
    }

    /// As [`Repl::start`], with what cnm wrote up to its banner.
    fn started(args: &[&str]) -> (Repl, String) {
        let mut command = Command::new(CNM);
        command
            .args(args)
            .arg("repl")
            .env("NO_COLOR", "1")
            .env("TERM", "xterm")
            .env_remove("CNM_STATE_DIR")
            .env_remove("CNM_NETNS_DIR")
            .env_remove("CNM_ETC_DIR")
            .current_dir(env!("CARGO_MANIFEST_DIR"));
        let mut session = OsSession::spawn(command).expect("cnm starts in a pty");
        session.get_process_mut().set_window_size(120, 40).unwrap();
        session.set_expect_timeout(Some(Duration::from_secs(60)));
        let mut repl = Repl(session);
        let banner = repl.expect("Ctrl-D leaves");
        (repl, banner)
    }

    /// Waits for an empty prompt (the prompt, then the cursor put after it) and returns
    /// it. Keys typed before it could come while the terminal is not in the line
    /// editor's mode yet, as they would not from a user who waits for the prompt.
    fn ready(&mut self) -> String {
        let found = self.expect(r"\x1b\[K[^\r\x1b]*> \r\x1b\[\d+C");
        let at = found.rfind("\x1b[K").unwrap() + 3;
        found[at..found.rfind('\r').unwrap()].to_string()
    }

    fn isolated() -> Repl {
        Repl::start(&["--isolated"])
    }

    /// Waits for `pattern` (a regex) in what cnm writes; returns everything up to and
    /// including it, escape codes and all.
    fn expect(&mut self, pattern: &str) -> String {
        match self.0.expect(Regex(pattern)) {
            Ok(found) => format!(
                "{}{}",
                String::from_utf8_lossy(found.before()),
                String::from_utf8_lossy(&found[0])
            ),
            Err(error) => panic!("cnm never wrote /{pattern}/: {error}"),
        }
    }

    /// Types keys at once.
    fn send(&mut self, keys: &str) {
        self.0.send(keys).unwrap();
    }

    /// Types keys at the next prompt; returns that prompt.
    fn keys(&mut self, keys: &str) -> String {
        let prompt = self.ready();
        self.send(keys);
        prompt
    }

    /// Types a line and Enter at the next prompt; returns that prompt.
    fn line(&mut self, text: &str) -> String {
        self.keys(&format!("{text}\r"))
    }

    /// Types a statement and waits for the console to say it was applied.
    fn apply(&mut self, statement: &str) {
        self.line(statement);
        self.expect(r"applied: \d+ kernel operation");
    }

    /// Ctrl-D at the next prompt, then the end of the process.
    fn leave(mut self) -> String {
        self.ready();
        self.end()
    }

    /// Ctrl-D now, then the end of the process; what was written before it.
    fn end(mut self) -> String {
        self.send(CTRL_D);
        let rest = self.0.expect(Eof).unwrap();
        format!(
            "{}{}",
            String::from_utf8_lossy(rest.before()),
            String::from_utf8_lossy(&rest[0])
        )
    }
}

#[test]
fn tab_completes_the_names_of_the_state_and_the_options_of_the_statement() {
    let mut repl = Repl::isolated();
    repl.apply("network backend subnet 10.1.0.0/24");
    repl.apply("sandbox alpha mode none");
    repl.apply("sandbox beta mode none");
    // One candidate: completed in place.
    repl.keys(&format!("connect al{TAB}"));
    repl.expect("connect alpha ");
    // Two: the second Tab lists them.
    repl.send(CTRL_C);
    repl.keys(&format!("connect {TAB}{TAB}"));
    repl.expect(r"alpha\s+beta");
    repl.send(CTRL_C);
    repl.keys(&format!("connect alpha to {TAB}"));
    repl.expect("to backend ");
    repl.send(&format!("{TAB}{TAB}"));
    repl.expect(r"endpoint\s+ip\s+ipv6\s+mac\s+alias\s+ifname");
    repl.send(CTRL_C);
    // The state changed: the next completion knows it.
    repl.apply("remove sandbox beta");
    repl.keys(&format!("stop {TAB}"));
    repl.expect("stop alpha ");
    repl.send(CTRL_C);
    repl.leave();
}

#[test]
fn a_block_typed_over_several_lines_runs_once_it_is_closed() {
    let mut repl = Repl::isolated();
    repl.line("for i in 1..3 {");
    assert_eq!(repl.line("  sandbox s$i mode none"), "...> ");
    let prompt = repl.ready();
    assert_eq!(prompt, "...> ");
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        !repl.0.is_matched(Regex("applied")).unwrap(),
        "the block ran before it was closed"
    );
    repl.send("}\r");
    repl.expect(r"applied: \d+ kernel operation");
    repl.line("show");
    let shown = repl.expect(r"s3\s+none");
    assert!(shown.contains("s1") && shown.contains("s2"), "{shown}");
    repl.leave();
}

/// Lines typed (or pasted) faster than cnm applies them are all run, in order: none is
/// lost while an earlier one applies.
#[test]
fn lines_typed_ahead_are_all_run_in_order() {
    let mut repl = Repl::isolated();
    repl.ready();
    repl.send(
        "network n subnet 10.9.0.0/24\rsandbox a mode none\rsandbox b mode none\rconnect b to n\rshow\r",
    );
    let shown = repl.expect(r"b\.n\s+n\s+b\s+eth0\s+10\.9\.0\.2/24");
    assert!(shown.contains("ip netns add a"), "{shown}");
    repl.leave();
}

#[test]
fn ctrl_c_drops_a_half_typed_line_and_an_error_leaves_the_session_usable() {
    let mut repl = Repl::isolated();
    repl.keys("sandbox ghost mode none");
    repl.send(CTRL_C);
    repl.line("conect real to nowhere");
    repl.expect("unknown statement `conect`");
    repl.apply("sandbox real mode none");
    repl.line("show");
    let shown = repl.expect(r"real\s+none");
    let table = &shown[shown.find("SANDBOX").expect("a table of sandboxes")..];
    assert!(!table.contains("ghost"), "{table}");
    repl.leave();
}

#[test]
fn ctrl_d_aborts_an_open_transaction_and_says_so() {
    let mut repl = Repl::isolated();
    assert_eq!(repl.line("begin"), "cnm[isolated]> ");
    repl.expect("transaction open");
    assert_eq!(repl.line("sandbox a mode none"), "cnm[isolated] tx> ");
    repl.expect("queued");
    assert_eq!(repl.line("dry-run on"), "cnm[isolated] tx> ");
    assert_eq!(repl.ready(), "cnm[isolated] tx dry-run> ");
    let rest = repl.end();
    assert!(
        rest.contains("the open transaction was aborted: 1 queued statement not applied"),
        "{rest}"
    );
}

#[test]
fn history_survives_a_restart() {
    let state = std::env::temp_dir().join(format!("cnm-repl-history-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&state);
    std::fs::create_dir_all(&state).unwrap();
    let args = ["--state-dir", state.to_str().unwrap()];
    // Nothing here touches a kernel: `let` and `help` only.
    let mut repl = Repl::start(&args);
    let prompt = repl.line("let x = 1");
    let name = state.file_name().unwrap().to_str().unwrap();
    assert!(
        prompt.starts_with("cnm[") && prompt.ends_with(&format!("/{name}]> ")),
        "{prompt}"
    );
    repl.line("help stop");
    repl.expect("Example:");
    repl.line("help stop");
    repl.expect("Example:");
    repl.line("");
    repl.line("for i in 1..2 {");
    repl.line("}");
    repl.line("history");
    repl.expect(r"3  for i in 1\.\.2 \{\r?\n\s+\}\r?\n\s+4  history");
    repl.leave();

    let file = state.join("history");
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&file).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "{}", file.display());

    let mut repl = Repl::start(&args);
    repl.line("history");
    let listed = repl.expect(r"4  history");
    // A repeat of the last entry and a blank line are not recorded.
    assert!(
        listed.contains("1  let x = 1") && listed.contains("2  help stop") && listed.contains("3  for i in"),
        "{listed}"
    );
    assert!(!listed.contains("5  "), "{listed}");
    // Up recalls the last entry, ready to run again.
    repl.keys("\x1b[A\x1b[A");
    repl.expect("for i in 1..2");
    repl.send(CTRL_C);
    repl.leave();
    std::fs::remove_dir_all(&state).unwrap();
}

/// A history file that is a symbolic link (planted in the state directory) is never
/// followed: the session says the history is not kept, and the link's target stays as
/// it was.
#[test]
fn a_symlinked_history_file_is_not_followed() {
    let state = std::env::temp_dir().join(format!("cnm-repl-planted-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&state);
    std::fs::create_dir_all(&state).unwrap();
    let target = state.join("target");
    std::fs::write(&target, "mine\n").unwrap();
    std::os::unix::fs::symlink(&target, state.join("history")).unwrap();
    let (mut repl, banner) = Repl::started(&["--state-dir", state.to_str().unwrap()]);
    let said = format!(
        "cnm: the history is not kept: {} it is a symbolic link, which cnm does not follow",
        state.join("history").display()
    );
    assert!(banner.contains(&said), "{banner}");
    repl.line("let x = 1");
    repl.leave();
    assert_eq!(std::fs::read_to_string(&target).unwrap(), "mine\n");
    std::fs::remove_dir_all(&state).unwrap();
}

#[test]
fn help_documents_the_prompt_and_every_statement() {
    let help = |args: &[&str]| {
        let out = Command::new(CNM).args(args).output().unwrap();
        assert!(out.status.success());
        String::from_utf8(out.stdout).unwrap()
    };
    let repl = help(&["repl", "--help"]);
    for needle in [
        "cnm[isolated]>",
        "...>",
        "Tab completes",
        "Ctrl-R",
        "Ctrl-C",
        "Ctrl-D",
        "NO_COLOR",
        "history",
    ] {
        assert!(repl.contains(needle), "repl --help lacks {needle}:\n{repl}");
    }
    let main = help(&["--help"]);
    assert!(main.contains("cnm --isolated repl"), "{main}");
    for statement in cnm::check::usage::statements() {
        assert!(
            main.contains(&format!("  {}", statement.keyword)),
            "--help lacks {}",
            statement.keyword
        );
    }
}

// ---- on a kernel read back with ip -j ----------------------------------------------

/// A prompt on the namespaces' kernel, with its directories under the private /run.
fn kernel_repl() -> Repl {
    let state = PathBuf::from("/run/cnm-test/state");
    let etc = PathBuf::from("/run/cnm-test/etc");
    std::fs::create_dir_all(&etc).unwrap();
    ip(&["link", "set", "lo", "up"]);
    Repl::start(&[
        "--state-dir",
        state.to_str().unwrap(),
        "--netns-dir",
        "/run/netns",
        "--etc-dir",
        etc.to_str().unwrap(),
    ])
}

fn ip(args: &[&str]) -> String {
    let out = Command::new("ip").args(args).output().unwrap();
    assert!(
        out.status.success(),
        "ip {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// The names of the links of the host's namespace, as `ip -j link` lists them.
fn links() -> Vec<String> {
    let json: serde_json::Value = serde_json::from_str(&ip(&["-j", "link", "show"])).unwrap();
    json.as_array()
        .unwrap()
        .iter()
        .map(|link| link["ifname"].as_str().unwrap().to_string())
        .collect()
}

/// The named network namespaces, as `ip -j netns` lists them (nothing when none).
fn namespaces() -> Vec<String> {
    let text = ip(&["-j", "netns", "list"]);
    if text.trim().is_empty() {
        return Vec::new();
    }
    let json: serde_json::Value = serde_json::from_str(&text).unwrap();
    json.as_array()
        .unwrap()
        .iter()
        .map(|ns| ns["name"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn undo_at_the_prompt_restores_the_kernel() {
    in_namespaces("undo_at_the_prompt_restores_the_kernel", || {
        let mut repl = kernel_repl();
        repl.apply("network backend subnet 10.1.0.0/24");
        repl.apply("sandbox a mode none; connect a to backend");
        assert!(links().contains(&"cnm-backend".to_string()), "{:?}", links());
        assert_eq!(namespaces(), ["a"]);
        repl.line("undo");
        repl.expect("undid transaction");
        repl.expect(r"applied: \d+ kernel operation");
        assert!(namespaces().is_empty(), "{:?}", namespaces());
        assert!(links().contains(&"cnm-backend".to_string()), "{:?}", links());
        repl.line("undo");
        repl.expect("undid transaction");
        repl.expect(r"applied: \d+ kernel operation");
        assert!(!links().contains(&"cnm-backend".to_string()), "{:?}", links());
        repl.leave();
    });
}

#[test]
fn ctrl_c_during_an_apply_rolls_it_back_and_the_prompt_goes_on() {
    in_namespaces(
        "ctrl_c_during_an_apply_rolls_it_back_and_the_prompt_goes_on",
        || {
            let mut repl = kernel_repl();
            repl.line("for i in 1..1000 { sandbox s$i mode none }");
            // Ctrl-C once the apply is under way: the first namespaces are there.
            let start = Instant::now();
            while namespace_count() == 0 {
                assert!(
                    start.elapsed() < Duration::from_secs(60),
                    "the apply never started"
                );
                std::thread::sleep(Duration::from_millis(10));
            }
            repl.send(CTRL_C);
            repl.expect(r"apply interrupted before step \d+ of \d+");
            repl.expect("rolled back");
            assert!(namespaces().is_empty(), "{:?}", namespaces());
            repl.apply("sandbox after mode none");
            assert_eq!(namespaces(), ["after"]);
            repl.leave();
        },
    );
}

/// How many namespaces the directory holds, without running `ip`.
fn namespace_count() -> usize {
    std::fs::read_dir(Path::new("/run/netns")).map_or(0, |dir| dir.count())
}
