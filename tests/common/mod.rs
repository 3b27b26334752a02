//! What several test binaries share: running a test inside fresh namespaces.

use std::process::Command;

/// Set in the inner run to the name of the test it runs.
const INNER: &str = "CNM_TEST_INNER";

/// Runs `body` inside fresh user, network and mount namespaces with a private tmpfs on
/// /run: this test binary runs itself again there, for the single test `test`, which
/// must be the name it is run by. The inner run refuses to touch the host's netns.
pub fn in_namespaces(test: &str, body: impl FnOnce()) {
    if std::env::var(INNER).as_deref() == Ok(test) {
        let host = std::fs::read_link("/proc/1/ns/net").ok();
        assert_ne!(
            std::fs::read_link("/proc/self/ns/net").ok(),
            host,
            "refusing to run in the host's netns"
        );
        body();
        return;
    }
    let output = Command::new("unshare")
        .args([
            "--user",
            "--map-root-user",
            "--net",
            "--mount",
            "--propagation",
            "private",
        ])
        .args(["sh", "-c", "mount -t tmpfs tmpfs /run && exec \"$0\" \"$@\""])
        .arg(std::env::current_exe().unwrap())
        .args(["--exact", test, "--nocapture", "--test-threads=1"])
        .env(INNER, test)
        .output()
        .expect("unshare runs (util-linux)");
    let text = format!(
        "{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        output.status.success(),
        "{test} failed inside its namespaces:\n{text}"
    );
    assert!(
        text.contains("1 passed"),
        "{test} did not run inside its namespaces:\n{text}"
    );
    // The figures a test reports, shown with `--nocapture`.
    eprint!("{}", String::from_utf8_lossy(&output.stderr));
}

/// Runs a program to success and returns what it printed; a failure fails the test
/// with the program's complaint.
#[allow(dead_code)] // Not every test binary that shares this module runs programs.
pub fn run(program: &str, args: &[&str]) -> String {
    let out = Command::new(program).args(args).output().unwrap();
    assert!(
        out.status.success(),
        "{program} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}
