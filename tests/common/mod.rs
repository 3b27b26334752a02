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

/// Drops from one object of `ip -j` output what the kernel derives in the background
/// from what cnm set: the operational state, the carrier (a bridge has it once a port
/// is up, up to a second later: LOWER_UP, NO-CARRIER, and its routes' `linkdown`), and
/// the IPv6 link-local address a bridge gets with it. What cnm sets — links, masters,
/// UP, MTUs, addresses, routes — stays.
#[allow(dead_code)] // Only the test binaries that compare kernel snapshots use it.
pub fn forget_derived(object: &mut serde_json::Map<String, serde_json::Value>) {
    use serde_json::Value;
    object.remove("operstate");
    if let Some(Value::Array(flags)) = object.get_mut("flags") {
        flags.retain(|f| !matches!(f.as_str(), Some("LOWER_UP" | "NO-CARRIER" | "linkdown")));
    }
    if let Some(Value::Array(addresses)) = object.get_mut("addr_info") {
        addresses.retain(|a| !(a["family"] == "inet6" && a["scope"] == "link"));
    }
}
