//! Hostile inputs, one table: each is fed to `cnm apply` on a real kernel (inside fresh
//! namespaces) and must end in a clear error — the code or words it names — with
//! nothing changed: the kernel as before (`ip -j`, `nft -j`), no state written.

mod common;

use std::path::Path;
use std::process::Command;

const CNM: &str = env!("CARGO_BIN_EXE_cnm");
const DIR: &str = "/run/cnm-hostile";

/// Everything cnm could touch, as iproute2 and nft show it.
fn kernel() -> String {
    let mut text = String::new();
    for args in [
        &["-j", "link"][..],
        &["-j", "addr"],
        &["-j", "route"],
        &["netns", "list"],
    ] {
        let out = Command::new("ip").args(args).output().unwrap();
        text.push_str(&String::from_utf8_lossy(&out.stdout));
    }
    let out = Command::new("nft").args(["list", "ruleset"]).output().unwrap();
    text.push_str(&String::from_utf8_lossy(&out.stdout));
    text
}

fn apply(script: &Path) -> (Option<i32>, String) {
    let out = Command::new(CNM)
        .args(["--state-dir", &format!("{DIR}/state")])
        .args(["--netns-dir", "/run/netns", "--etc-dir", &format!("{DIR}/etc")])
        .arg("apply")
        .arg(script)
        .current_dir(DIR)
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// (what, script, a word the error must carry).
fn cases() -> Vec<(&'static str, String, &'static str)> {
    let long = "a".repeat(300);
    let s = |text: &str| text.to_string();
    vec![
        ("slash in a name", s("sandbox a/b\n"), "cnm::invalid-name"),
        ("dot-dot name", s("sandbox ..\n"), "cnm::invalid-name"),
        ("dot name", s("network .\n"), "cnm::invalid-name"),
        ("NUL in a name", s("sandbox a\0b\n"), "cnm::"),
        ("300-byte name", format!("sandbox {long}\n"), "cnm::invalid-name"),
        ("Cyrillic look-alike", s("sandbox \u{0430}dmin\n"), "cnm::"),
        ("right-to-left override", s("sandbox a\u{202e}b\n"), "cnm::"),
        ("bridge name with a slash", s("network n bridge x/y\n"), "cnm::invalid-value"),
        ("bridge name of 16 bytes", s("network n bridge abcdefghijklmnop\n"), "cnm::invalid-value"),
        ("ifname ..", s("network n\nsandbox a mode none\nconnect a to n ifname ..\n"), "cnm::invalid-value"),
        ("loop of 10^20", s("for i in 1..100000000000000000000 { sandbox s$i }\n"), "cnm::bad-range"),
        ("loop of a million", s("for i in 1..1000000 { sandbox s$i }\n"), "cnm::bad-range"),
        ("reversed range", s("for i in 9..1 { sandbox s$i }\n"), "cnm::bad-range"),
        (
            "nested loops over budget",
            s("for a in 1..1000 { for b in 1..1000 { for c in 1..10 { let x = $c } } }\n"),
            "cnm::bad-range",
        ),
        ("deep includes", s("include deep0.cnm\n"), "nest more than 32 deep"),
        ("include of /dev/zero", s("include /dev/zero\n"), "not a regular file"),
        ("include of a directory", s("include /etc\n"), "it is a directory"),
        ("include of itself", s("include self.cnm\n"), "cnm::include-cycle"),
        ("doubling variable", doubling(), "cnm::expansion-too-long"),
        ("undefined variable", s("sandbox s$nope\n"), "cnm::undefined-variable"),
        ("unclosed quote", s("sandbox 'a\n"), "cnm::"),
        ("unclosed brace", s("for i in 1..2 {\n sandbox s$i\n"), "cnm::"),
        ("stray brace", s("}\n"), "cnm::syntax"),
        ("network address", s("network n subnet 10.1.0.0/24\nsandbox a mode none\nconnect a to n ip 10.1.0.0\n"), "cnm::address-reserved"),
        ("broadcast address", s("network n subnet 10.1.0.0/24\nsandbox a mode none\nconnect a to n ip 10.1.0.255\n"), "cnm::address-reserved"),
        ("gateway address", s("network n subnet 10.1.0.0/24\nsandbox a mode none\nconnect a to n ip 10.1.0.1\n"), "cnm::address-is-gateway"),
        ("address outside", s("network n subnet 10.1.0.0/24\nsandbox a mode none\nconnect a to n ip 10.2.0.5\n"), "cnm::address-outside-subnet"),
        ("subnet /0", s("network n subnet 0.0.0.0/0\n"), "cnm::subnet-too-large"),
        ("subnet /33", s("network n subnet 10.1.0.0/33\n"), "cnm::invalid-value"),
        ("subnet /31", s("network n subnet 10.1.0.0/31\n"), "cnm::subnet-too-small"),
        ("host bits set", s("network n subnet 10.1.0.5/24\n"), "cnm::invalid-value"),
        ("ipv6 /128", s("network n subnet 10.1.0.0/24 ipv6 fd00::/128\n"), "cnm::subnet-too-small"),
        ("overlapping subnets", s("network a subnet 10.1.0.0/16\nnetwork b subnet 10.1.2.0/24\n"), "cnm::subnet-overlap"),
        ("multicast MAC", s("network n\nsandbox a mode none\nconnect a to n mac 01:00:5e:00:00:01\n"), "cnm::invalid-value"),
        ("MTU 0", s("network n mtu 0\n"), "cnm::"),
        ("MTU 70000", s("network n mtu 70000\n"), "cnm::"),
        ("host port 0", s("sandbox a\npublish a 0:80\n"), "cnm::invalid-value"),
        ("host port 70000", s("sandbox a\npublish a 70000:80\n"), "cnm::invalid-value"),
        ("port taken twice", s("sandbox a\nsandbox b\npublish a 80:80\npublish b 80:81\n"), "cnm::port-taken"),
        ("timeout of ages", s("sandbox a mode none\nexpect a reaches host timeout 99999999999d\n"), "cnm::invalid-value"),
        ("shared with itself", s("sandbox a mode container:a\n"), "cnm::"),
        ("unknown sandbox", s("stop ghost\n"), "cnm::unknown-reference"),
        ("network in use", s("network n\nsandbox a mode none\nconnect a to n\nremove network n\n"), "cnm::network-in-use"),
        ("connected twice", s("network n\nsandbox a mode none\nconnect a to n\nconnect a to n\n"), "cnm::connected-twice"),
        ("macvlan without parent", s("network m driver macvlan\n"), "cnm::macvlan-without-parent"),
        ("1024 ports on a bridge", s("network n subnet 10.0.0.0/16\nfor i in 1..1024 { sandbox s$i mode none; connect s$i to n }\n"), "cnm::bridge-full"),
        ("serve in apply", s("sandbox a mode none\nserve a port 80\n"), "cnm::serve-in-apply"),
        ("unknown statement", s("netwrok n\n"), "cnm::unknown-statement"),
    ]
}

fn doubling() -> String {
    let mut text = String::from("let a = x\n");
    for _ in 0..33 {
        text.push_str("let a = $a$a\n");
    }
    text + "sandbox s$a\n"
}

#[test]
fn hostile_inputs_end_in_a_clear_error_and_change_nothing() {
    common::in_namespaces("hostile_inputs_end_in_a_clear_error_and_change_nothing", || {
        std::fs::create_dir_all(DIR).unwrap();
        for i in 0..40 {
            std::fs::write(
                format!("{DIR}/deep{i}.cnm"),
                format!("include deep{}.cnm\n", i + 1),
            )
            .unwrap();
        }
        std::fs::write(format!("{DIR}/deep40.cnm"), "sandbox deep\n").unwrap();
        std::fs::write(format!("{DIR}/self.cnm"), "include self.cnm\n").unwrap();
        let before = kernel();
        let cases = cases();
        assert!(cases.len() >= 40, "{} cases", cases.len());
        for (what, script, expected) in &cases {
            let path = Path::new(DIR).join("hostile.cnm");
            std::fs::write(&path, script).unwrap();
            let (code, err) = apply(&path);
            assert_eq!(code, Some(1), "{what}: {err}");
            assert!(err.contains(expected), "{what}: expected `{expected}` in:\n{err}");
            assert!(!err.contains("panicked"), "{what}: {err}");
            assert!(err.len() < 20_000, "{what}: an error of {} bytes", err.len());
            assert_eq!(kernel(), before, "{what}: the kernel changed");
            assert!(
                !Path::new(DIR).join("state/state.json").exists(),
                "{what}: a state was written"
            );
        }

        // A state file from the future is refused, and left as it is.
        std::fs::create_dir_all(format!("{DIR}/state")).unwrap();
        let future = r#"{"format_version": 99, "networks": {}, "sandboxes": {}, "endpoints": {}}"#;
        std::fs::write(format!("{DIR}/state/state.json"), future).unwrap();
        let path = Path::new(DIR).join("fine.cnm");
        std::fs::write(&path, "network n subnet 10.1.0.0/24\n").unwrap();
        let (code, err) = apply(&path);
        assert_eq!(code, Some(1), "{err}");
        assert!(err.contains("state.json"), "{err}");
        assert_eq!(
            std::fs::read_to_string(format!("{DIR}/state/state.json")).unwrap(),
            future
        );
        assert_eq!(kernel(), before);
    });
}
