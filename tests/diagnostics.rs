//! One snapshot per checker rule: the exact diagnostic a user reads, as `cnm check` draws
//! it without colour at 100 columns — message, `file:line:col`, the label under the
//! offending words, and the help line. Each test also pins the error codes raised, so a
//! rule that starts raising a second, cascading error fails loudly.
//!
//! Snapshots live in `tests/snapshots/`; after a deliberate change, regenerate them with
//! `INSTA_UPDATE=always cargo test --test diagnostics` and read every changed file.

use std::path::{Path, PathBuf};

use cnm::error::Diagnostic;
use cnm::model::Model;
use cnm::syntax::{FileId, Sources};

// ---- helpers ----------------------------------------------------------------------

fn render(sources: &Sources, diagnostics: &[Diagnostic]) -> String {
    cnm::cli::render_diagnostics(sources, diagnostics, false, 100)
}

/// Checks the loaded files against `committed`: the codes raised and the rendering.
fn run(sources: &mut Sources, files: &[FileId], committed: &Model) -> (Vec<&'static str>, String) {
    match cnm::check::check(sources, files, committed) {
        Ok(_) => (Vec::new(), String::new()),
        Err(diagnostics) => (
            diagnostics.iter().map(|d| d.kind.code()).collect(),
            render(sources, &diagnostics),
        ),
    }
}

/// Checks `text`, as `test.cnm`, against `committed`.
fn check_text(committed: &Model, text: &str) -> (Vec<&'static str>, String) {
    let mut sources = Sources::default();
    let id = sources.add("test.cnm", text);
    run(&mut sources, &[id], committed)
}

/// The model a clean script makes from nothing: the committed state for a second script.
fn committed(text: &str) -> Model {
    let mut sources = Sources::default();
    let id = sources.add("applied.cnm", text);
    match cnm::check::check(&mut sources, &[id], &Model::empty()) {
        Ok(checked) => checked.model,
        Err(diagnostics) => panic!(
            "the committed script should be clean:\n{}",
            render(&sources, &diagnostics)
        ),
    }
}

/// Asserts the codes raised, then the rendering against the snapshot `name`; the script
/// is recorded in the snapshot's header.
#[track_caller]
fn assert_diagnostics(name: &str, codes: &[&str], script: &str, got: (Vec<&'static str>, String)) {
    let (got_codes, rendered) = got;
    assert_eq!(
        got_codes, codes,
        "{name}: codes raised by\n{script}\nrendered:\n{rendered}"
    );
    insta::with_settings!({ description => script, omit_expression => true }, {
        insta::assert_snapshot!(name, rendered);
    });
}

/// A script checked from nothing.
#[track_caller]
fn snapshot(name: &str, codes: &[&str], text: &str) {
    assert_diagnostics(name, codes, text, check_text(&Model::empty(), text));
}

/// A script checked against the state `applied` leaves.
#[track_caller]
fn snapshot_against(name: &str, applied: &str, codes: &[&str], text: &str) {
    let script = format!("# committed:\n{applied}\n# checked:\n{text}");
    assert_diagnostics(name, codes, &script, check_text(&committed(applied), text));
}

/// A directory of script files for `include`, removed when dropped.
struct Files {
    dir: PathBuf,
}

impl Files {
    fn new(test: &str, files: &[(&str, &str)]) -> Files {
        let dir = std::env::temp_dir().join(format!("cnm-diagnostics-{}-{test}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        for (name, text) in files {
            let path = dir.join(name);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, text).unwrap();
        }
        Files { dir }
    }

    /// Checks the named files as one script, with the directory taken out of every path.
    fn check(&self, names: &[&str]) -> (Vec<&'static str>, String) {
        let mut sources = Sources::default();
        let ids: Vec<FileId> = names
            .iter()
            .map(|name| {
                let path = self.dir.join(name);
                let text = std::fs::read_to_string(&path).unwrap();
                sources.add(path.display().to_string(), text)
            })
            .collect();
        let (codes, rendered) = run(&mut sources, &ids, &Model::empty());
        (codes, rendered.replace(&format!("{}/", self.dir.display()), ""))
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }
}

impl Drop for Files {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

// ---- the harness itself ------------------------------------------------------------

#[test]
fn clean_scripts_raise_nothing() {
    let (codes, rendered) = check_text(
        &Model::empty(),
        "network n subnet 10.1.0.0/24\nsandbox a mode none\nconnect a to n\n",
    );
    assert!(codes.is_empty(), "{rendered}");
}

// ---- syntax ------------------------------------------------------------------------

#[test]
fn syntax_unclosed_double_quote() {
    snapshot(
        "syntax_unclosed_double_quote",
        &["unclosed"],
        "network backend subnet 10.1.0.0/24\nsandbox \"web mode none\nconnect web to backend\n",
    );
}

#[test]
fn syntax_unclosed_single_quote() {
    snapshot(
        "syntax_unclosed_single_quote",
        &["unclosed"],
        "sandbox web hostname 'web.local\nsandbox db\n",
    );
}

#[test]
fn syntax_unclosed_block() {
    snapshot(
        "syntax_unclosed_block",
        &["unclosed"],
        "network frontend subnet 10.2.0.0/24\nfor i in 1..3 {\n    sandbox web$i\n    connect web$i to frontend\n\nsandbox db\n",
    );
}

#[test]
fn syntax_stray_closing_brace() {
    snapshot(
        "syntax_stray_closing_brace",
        &["syntax"],
        "for i in 1..3 {\n    sandbox web$i\n}\n}\n",
    );
}

#[test]
fn syntax_dollar_without_a_name() {
    snapshot(
        "syntax_dollar_without_a_name",
        &["syntax"],
        "exec web -- echo \"it costs $5\"\n",
    );
}

#[test]
fn syntax_backslash_not_at_end_of_line() {
    snapshot(
        "syntax_backslash_not_at_end_of_line",
        &["syntax"],
        "network backend \\ subnet 10.1.0.0/24\n",
    );
}

// ---- statements and options --------------------------------------------------------

#[test]
fn unknown_statement_with_suggestion() {
    snapshot(
        "unknown_statement_with_suggestion",
        &["unknown-statement"],
        "network backend subnet 10.1.0.0/24\nsandbx web mode none\n",
    );
}

#[test]
fn unknown_statement_without_suggestion() {
    snapshot(
        "unknown_statement_without_suggestion",
        &["unknown-statement"],
        "frobnicate the network\n",
    );
}

#[test]
fn malformed_statement() {
    snapshot(
        "malformed_statement",
        &["malformed-statement"],
        "sandbox web mode none\nconnect web backend\n",
    );
}

#[test]
fn malformed_exec_without_a_command() {
    snapshot(
        "malformed_exec_without_a_command",
        &["malformed-statement"],
        "sandbox web mode none\nexec web --\n",
    );
}

#[test]
fn malformed_serve_without_a_port() {
    snapshot(
        "malformed_serve_without_a_port",
        &["malformed-statement"],
        "sandbox web mode none\nserve web udp\n",
    );
}

#[test]
fn unknown_option_with_suggestion() {
    snapshot(
        "unknown_option_with_suggestion",
        &["unknown-option"],
        "network backend subnt 10.1.0.0/24\n",
    );
}

#[test]
fn unknown_option_without_suggestion() {
    snapshot(
        "unknown_option_without_suggestion",
        &["unknown-option"],
        "sandbox web mode none\nstop web now\n",
    );
}

#[test]
fn missing_value() {
    snapshot(
        "missing_value",
        &["missing-value"],
        "network backend subnet gateway 10.1.0.1\n",
    );
}

#[test]
fn missing_value_of_a_list_option() {
    snapshot(
        "missing_value_of_a_list_option",
        &["missing-value"],
        "network backend subnet 10.1.0.0/24\nsandbox web mode none\nconnect web to backend alias\n",
    );
}

#[test]
fn repeated_option() {
    snapshot(
        "repeated_option",
        &["repeated-option"],
        "network backend subnet 10.1.0.0/24 mtu 1400 mtu 9000\n",
    );
}

// ---- references --------------------------------------------------------------------

#[test]
fn unknown_network_with_suggestion() {
    snapshot(
        "unknown_network_with_suggestion",
        &["unknown-reference"],
        "network backend subnet 10.1.0.0/24\nsandbox web mode none\nconnect web to bakend\n",
    );
}

#[test]
fn unknown_sandbox_without_suggestion() {
    snapshot(
        "unknown_sandbox_without_suggestion",
        &["unknown-reference"],
        "network backend subnet 10.1.0.0/24\nconnect db to backend\n",
    );
}

#[test]
fn unknown_sandbox_with_suggestion() {
    snapshot(
        "unknown_sandbox_with_suggestion",
        &["unknown-reference"],
        "sandbox web1 mode none\nstop web2\n",
    );
}

#[test]
fn unknown_endpoint_with_suggestion() {
    snapshot(
        "unknown_endpoint_with_suggestion",
        &["unknown-reference"],
        "network backend subnet 10.1.0.0/24\nendpoint db-ep on backend\nsandbox db mode none\nconnect db to backend endpoint db-ap\n",
    );
}

#[test]
fn unknown_expect_target_with_suggestion() {
    snapshot(
        "unknown_expect_target_with_suggestion",
        &["unknown-reference"],
        "network backend subnet 10.1.0.0/24\nsandbox a mode none\nsandbox b mode none\nconnect b to backend alias database\nexpect a reaches databse\n",
    );
}

#[test]
fn unknown_object_kind() {
    snapshot(
        "unknown_object_kind",
        &["unknown-object-kind"],
        "network backend subnet 10.1.0.0/24\nremove netwrk backend\n",
    );
}

#[test]
fn unknown_object_kind_without_suggestion() {
    snapshot(
        "unknown_object_kind_without_suggestion",
        &["unknown-object-kind"],
        "remove bridge cnm0\n",
    );
}

#[test]
fn references_to_a_broken_declaration_raise_nothing_more() {
    // The network's subnet is wrong: that is the one error, not also every use of it.
    snapshot(
        "references_to_a_broken_declaration_raise_nothing_more",
        &["invalid-value"],
        "network backend subnet 10.1.0.0/33\nsandbox a mode none\nconnect a to backend\nremove network backend\n",
    );
    let (codes, rendered) = check_text(
        &Model::empty(),
        "sandbox a mode hots\nstop a\nexpect a reaches a\nsandbox b mode container:a\n",
    );
    assert_eq!(codes, ["invalid-value"], "{rendered}");
}

// ---- names -------------------------------------------------------------------------

#[test]
fn duplicate_network() {
    snapshot(
        "duplicate_network",
        &["duplicate"],
        "network backend subnet 10.1.0.0/24\nsandbox a mode none\nnetwork backend subnet 10.2.0.0/24\n",
    );
}

#[test]
fn duplicate_sandbox() {
    snapshot(
        "duplicate_sandbox",
        &["duplicate"],
        "sandbox web mode none\nsandbox web mode host\n",
    );
}

#[test]
fn duplicate_endpoint() {
    snapshot(
        "duplicate_endpoint",
        &["duplicate"],
        "network backend subnet 10.1.0.0/24\nendpoint ep on backend\nendpoint ep on backend ip 10.1.0.9\n",
    );
}

#[test]
fn invalid_name_characters() {
    snapshot(
        "invalid_name_characters",
        &["invalid-name"],
        "sandbox web!1 mode none\n",
    );
}

#[test]
fn invalid_name_first_character() {
    snapshot(
        "invalid_name_first_character",
        &["invalid-name"],
        "network -backend subnet 10.1.0.0/24\n",
    );
}

#[test]
fn invalid_name_too_long() {
    let name = "a".repeat(65);
    snapshot(
        "invalid_name_too_long",
        &["invalid-name"],
        &format!("sandbox {name} mode none\n"),
    );
    // 64 bytes is the limit, not over it.
    let (codes, _) = check_text(
        &Model::empty(),
        &format!("sandbox {} mode none\n", "a".repeat(64)),
    );
    assert!(codes.is_empty());
}

#[test]
fn invalid_name_dot_dot() {
    snapshot(
        "invalid_name_dot_dot",
        &["invalid-name"],
        "sandbox web..db mode none\n",
    );
    let (codes, _) = check_text(&Model::empty(), "sandbox .. mode none\n");
    assert_eq!(codes, ["invalid-name"]);
}

#[test]
fn invalid_name_slash() {
    snapshot(
        "invalid_name_slash",
        &["invalid-name"],
        "let dir = ../etc\nsandbox web/$dir mode none\n",
    );
}

#[test]
fn invalid_name_nul_and_empty() {
    // Not snapshots: a NUL does not belong in a text file.
    for text in ["sandbox \"a\0b\" mode none\n", "sandbox \"\" mode none\n"] {
        let (codes, rendered) = check_text(&Model::empty(), text);
        assert_eq!(codes, ["invalid-name"], "{text:?}: {rendered}");
    }
}

// ---- values ------------------------------------------------------------------------

#[test]
fn invalid_cidr() {
    snapshot(
        "invalid_cidr",
        &["invalid-value"],
        "network backend subnet 10.1.0.0/33\n",
    );
}

#[test]
fn invalid_cidr_host_bits_set() {
    snapshot(
        "invalid_cidr_host_bits_set",
        &["invalid-value"],
        "network backend subnet 10.1.0.5/24\n",
    );
}

#[test]
fn invalid_cidr_without_prefix() {
    snapshot(
        "invalid_cidr_without_prefix",
        &["invalid-value"],
        "network backend subnet 10.1.0.0\n",
    );
}

#[test]
fn invalid_ip() {
    snapshot(
        "invalid_ip",
        &["invalid-value"],
        "network backend subnet 10.1.0.0/24\nsandbox db mode none\nconnect db to backend ip 10.1.0.300\n",
    );
}

#[test]
fn invalid_ip_v6_where_v4_is_wanted() {
    snapshot(
        "invalid_ip_v6_where_v4_is_wanted",
        &["invalid-value"],
        "network backend subnet 10.1.0.0/24 ipv6 fd00:1::/64\nsandbox db mode none\nconnect db to backend ip fd00:1::5\n",
    );
}

#[test]
fn invalid_ipv6_without_an_ipv6_subnet() {
    snapshot(
        "invalid_ipv6_without_an_ipv6_subnet",
        &["invalid-value"],
        "network backend subnet 10.1.0.0/24\nsandbox db mode none\nconnect db to backend ipv6 fd00:1::5\n",
    );
}

#[test]
fn invalid_mac() {
    snapshot(
        "invalid_mac",
        &["invalid-value"],
        "network backend subnet 10.1.0.0/24\nendpoint ep on backend mac 02:42:0a:01:05\n",
    );
}

#[test]
fn invalid_mac_multicast() {
    snapshot(
        "invalid_mac_multicast",
        &["invalid-value"],
        "network backend subnet 10.1.0.0/24\nendpoint ep on backend mac 01:00:5e:00:00:01\n",
    );
}

#[test]
fn invalid_mode() {
    snapshot("invalid_mode", &["invalid-value"], "sandbox web mode hots\n");
}

#[test]
fn invalid_driver() {
    snapshot(
        "invalid_driver",
        &["invalid-value"],
        "network overlay driver vxlan subnet 10.1.0.0/24\n",
    );
}

#[test]
fn invalid_port() {
    snapshot(
        "invalid_port",
        &["invalid-value"],
        "sandbox web mode none\nserve web port 70000\n",
    );
}

#[test]
fn invalid_port_mapping() {
    snapshot(
        "invalid_port_mapping",
        &["invalid-value"],
        "sandbox web\npublish web 8080\n",
    );
}

#[test]
fn invalid_port_mapping_protocol() {
    snapshot(
        "invalid_port_mapping_protocol",
        &["invalid-value"],
        "sandbox web\npublish web 8080:80/sctp\n",
    );
}

#[test]
fn invalid_host_ip() {
    snapshot(
        "invalid_host_ip",
        &["invalid-value"],
        "sandbox web\npublish web 8080:80 host-ip localhost\n",
    );
}

#[test]
fn publish_on_an_ipv6_host_address() {
    snapshot(
        "publish_on_an_ipv6_host_address",
        &["invalid-value"],
        "sandbox web\npublish web 8080:80 host-ip ::1\n",
    );
}

#[test]
fn port_taken_names_the_sandbox_that_holds_it() {
    snapshot(
        "port_taken",
        &["port-taken"],
        "sandbox web\nsandbox api\npublish web 8080:80 host-ip 127.0.0.1\npublish api 8080:8000\n",
    );
}

#[test]
fn port_taken_by_the_same_sandbox_for_another_port() {
    snapshot(
        "port_taken_by_itself",
        &["port-taken"],
        "sandbox web\npublish web 8080:80/udp\npublish web 8080:81/udp\n",
    );
}

#[test]
fn port_taken_in_the_committed_state() {
    snapshot_against(
        "port_taken_committed",
        "sandbox web\npublish web 53:53/udp",
        &["port-taken"],
        "sandbox dns\npublish dns 53:5353/udp host-ip 10.0.0.1\n",
    );
}

#[test]
fn a_variable_that_doubles_itself_is_stopped() {
    let mut script = String::from("let a = x\n");
    for _ in 0..33 {
        script.push_str("let a = $a$a\n");
    }
    script.push_str("sandbox s$a\n");
    snapshot("expansion_too_long", &["expansion-too-long"], &script);
}

#[test]
fn subnet_too_large() {
    snapshot(
        "subnet_too_large",
        &["subnet-too-large"],
        "network everything subnet 0.0.0.0/0\n",
    );
}

/// Raised by the session, which reads the host's addresses (the real-kernel test
/// `a_subnet_over_the_hosts_own_network_is_refused` makes it happen); rendered here as
/// the checker's own diagnostics are.
#[test]
fn subnet_on_host() {
    let text = "network lan subnet 192.168.100.0/24\n";
    let mut sources = Sources::default();
    let id = sources.add("test.cnm", text);
    let kind = cnm::error::ErrorKind::SubnetOnHost {
        subnet: "192.168.100.0/24".into(),
        address: "192.168.100.5/24".into(),
        interface: "eth0".into(),
    };
    let diagnostic = Diagnostic::new(kind, cnm::syntax::Span::new(id, 0, text.len() - 1));
    let rendered = render(&sources, &[diagnostic]);
    assert_diagnostics("subnet_on_host", &[], text, (Vec::new(), rendered));
}

#[test]
fn invalid_duration() {
    snapshot(
        "invalid_duration",
        &["invalid-value"],
        "sandbox a mode none\nsandbox b mode none\nexpect a reaches b timeout 2h\n",
    );
}

#[test]
fn invalid_interface_name() {
    snapshot(
        "invalid_interface_name",
        &["invalid-value"],
        "network backend subnet 10.1.0.0/24 bridge br-backend-network\n",
    );
}

#[test]
fn invalid_hostname() {
    snapshot(
        "invalid_hostname",
        &["invalid-value"],
        "sandbox web mode none hostname web_server\n",
    );
}

#[test]
fn invalid_dns_server() {
    snapshot(
        "invalid_dns_server",
        &["invalid-value"],
        "sandbox web mode none dns 1.1.1.1 one.one\n",
    );
}

#[test]
fn invalid_alias() {
    snapshot(
        "invalid_alias",
        &["invalid-value"],
        "network backend subnet 10.1.0.0/24\nsandbox db mode none\nconnect db to backend alias db -cache\n",
    );
}

#[test]
fn mtu_out_of_range() {
    snapshot(
        "mtu_out_of_range",
        &["mtu-out-of-range"],
        "network backend subnet 10.1.0.0/24 mtu 65536\n",
    );
}

#[test]
fn mtu_not_a_number() {
    snapshot(
        "mtu_not_a_number",
        &["invalid-value"],
        "network backend subnet 10.1.0.0/24 mtu 1.5k\n",
    );
}

// ---- networks ----------------------------------------------------------------------

#[test]
fn gateway_outside_subnet() {
    snapshot(
        "gateway_outside_subnet",
        &["gateway-outside-subnet"],
        "network backend subnet 10.1.0.0/24 gateway 10.2.0.1\n",
    );
}

#[test]
fn gateway_is_network_address() {
    snapshot(
        "gateway_is_network_address",
        &["gateway-reserved"],
        "network backend subnet 10.1.0.0/24 gateway 10.1.0.0\n",
    );
}

#[test]
fn gateway_is_broadcast_address() {
    snapshot(
        "gateway_is_broadcast_address",
        &["gateway-reserved"],
        "network backend subnet 10.1.0.0/24 gateway 10.1.0.255\n",
    );
}

#[test]
fn subnet_too_small_31() {
    snapshot(
        "subnet_too_small_31",
        &["subnet-too-small"],
        "network p2p subnet 10.1.0.0/31\n",
    );
}

#[test]
fn subnet_too_small_32() {
    snapshot(
        "subnet_too_small_32",
        &["subnet-too-small"],
        "network single subnet 10.1.0.7/32\n",
    );
}

#[test]
fn subnet_too_small_for_macvlan() {
    // The highest /32: no room for a gateway, let alone an endpoint (and no `+ 1` past it).
    snapshot(
        "subnet_too_small_for_macvlan",
        &["subnet-too-small"],
        "network m driver macvlan parent eth0 subnet 255.255.255.255/32\n",
    );
}

#[test]
fn subnet_too_small_ipv6() {
    snapshot(
        "subnet_too_small_ipv6",
        &["subnet-too-small"],
        "network dual subnet 10.1.0.0/24 ipv6 fd00::/127\n",
    );
}

#[test]
fn subnets_too_small_at_the_ends_of_the_address_space() {
    for (text, code) in [
        ("network a subnet 0.0.0.0/32\n", "subnet-too-small"),
        ("network a subnet 255.255.255.254/31\n", "subnet-too-small"),
        (
            "network a driver macvlan parent eth0 subnet 255.255.255.254/31\n",
            "subnet-too-small",
        ),
        (
            "network a subnet 10.1.0.0/24 ipv6 ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff/128\n",
            "subnet-too-small",
        ),
        ("network a subnet 10.1.0.0/24 ipv6 ::/128\n", "subnet-too-small"),
        ("network a subnet 0.0.0.0/0\n", "subnet-too-large"),
        ("network a subnet 128.0.0.0/1\n", "subnet-too-large"),
    ] {
        let (codes, rendered) = check_text(&Model::empty(), text);
        assert_eq!(codes, [code], "{text}{rendered}");
    }
    // The smallest that fit: /30 and /126 at the very top of the address space.
    for text in [
        "network a subnet 255.255.255.252/30\nsandbox s mode none\nconnect s to a\n",
        "network a driver macvlan parent eth0 subnet 255.255.255.252/30\nsandbox s mode none\nconnect s to a\n",
        "network a subnet 10.1.0.0/24 ipv6 ffff:ffff:ffff:ffff:ffff:ffff:ffff:fffc/126\nsandbox s mode none\nconnect s to a\n",
        // The largest subnet there may be, at the bottom of the address space.
        "network a subnet 0.0.0.0/8\nsandbox s mode none\nconnect s to a\n",
    ] {
        let (codes, rendered) = check_text(&Model::empty(), text);
        assert!(codes.is_empty(), "{text}{rendered}");
    }
}

#[test]
fn invalid_duration_too_long() {
    snapshot(
        "invalid_duration_too_long",
        &["invalid-value"],
        "sandbox a mode none\nexpect a reaches host timeout 999999999999999999m\n",
    );
}

#[test]
fn ip_range_outside_subnet() {
    snapshot(
        "ip_range_outside_subnet",
        &["ip-range-outside-subnet"],
        "network backend subnet 10.1.0.0/24 ip-range 10.1.0.0/23\n",
    );
}

#[test]
fn subnet_overlap() {
    snapshot(
        "subnet_overlap",
        &["subnet-overlap"],
        "network backend subnet 10.1.0.0/24\nnetwork frontend subnet 10.2.0.0/24\nnetwork everything subnet 10.0.0.0/8\n",
    );
}

#[test]
fn subnet_overlap_with_committed_network() {
    snapshot_against(
        "subnet_overlap_with_committed_network",
        "network backend subnet 10.1.0.0/24",
        &["subnet-overlap"],
        "network backend subnet 10.1.0.0/24\nnetwork frontend subnet 10.1.0.128/25\n",
    );
}

#[test]
fn default_network_overlaps() {
    snapshot(
        "default_network_overlaps",
        &["subnet-overlap"],
        "network wide subnet 172.16.0.0/12\nsandbox web\n",
    );
}

#[test]
fn bridge_taken() {
    snapshot(
        "bridge_taken",
        &["bridge-taken"],
        "network backend subnet 10.1.0.0/24 bridge br0\nnetwork frontend subnet 10.2.0.0/24 bridge br0\n",
    );
}

#[test]
fn bridge_taken_by_a_derived_name() {
    snapshot(
        "bridge_taken_by_a_derived_name",
        &["bridge-taken"],
        "network backend subnet 10.1.0.0/24 bridge cnm-frontend\nnetwork frontend subnet 10.2.0.0/24\n",
    );
}

#[test]
fn bridge_taken_from_the_default_network() {
    // `cnm0` is the default network's bridge, made when a bridge-mode sandbox needs it.
    snapshot(
        "bridge_taken_from_the_default_network",
        &["bridge-taken"],
        "network lan subnet 10.5.0.0/24 bridge cnm0\nsandbox web\nsandbox db\n",
    );
}

#[test]
fn bridge_full() {
    // Said once, at the statement that makes the 1,024th port, not once per port after it.
    snapshot(
        "bridge_full",
        &["bridge-full"],
        "network big subnet 10.1.0.0/16\nfor i in 1..2000 {\n    sandbox s$i mode none\n    connect s$i to big\n}\n",
    );
}

#[test]
fn bridge_full_counting_the_committed_state() {
    snapshot_against(
        "bridge_full_counting_the_committed_state",
        "network big subnet 10.1.0.0/16\nfor i in 1..1000 {\n    sandbox s$i\n    connect s$i to big\n}",
        &["bridge-full"],
        "sandbox late1 mode none\nsandbox late2 mode none\nfor i in 1..22 {\n    sandbox t$i mode none\n    connect t$i to big\n}\nconnect late1 to big\nconnect late2 to big\n",
    );
}

#[test]
fn bridge_ports_count_running_sandboxes_only() {
    let fill = "network big subnet 10.1.0.0/16\nfor i in 1..1024 {\n    sandbox s$i mode none\n    connect s$i to big\n}\n";
    let (codes, _) = check_text(&Model::empty(), fill);
    assert_eq!(codes, ["bridge-full"]);
    // A stopped sandbox has no veth: 1,023 ports.
    let (codes, rendered) = check_text(&Model::empty(), &format!("{fill}stop s7\n"));
    assert!(codes.is_empty(), "{rendered}");
    // Starting it again makes the 1,024th, and `start` is the statement to blame.
    let stopped = committed(&format!("{fill}stop s7\n"));
    let (codes, rendered) = check_text(&stopped, "start s7\n");
    assert_eq!(codes, ["bridge-full"], "{rendered}");
    assert!(rendered.contains("test.cnm:1:1"), "{rendered}");
    // Endpoints not joined, and macvlan networks, have no bridge port.
    let (codes, rendered) = check_text(
        &Model::empty(),
        &format!("{fill}disconnect s1 from big\nendpoint spare on big\n"),
    );
    assert!(codes.is_empty(), "{rendered}");
    let macvlan = fill.replace(
        "subnet 10.1.0.0/16",
        "driver macvlan parent eth0 subnet 10.1.0.0/16",
    );
    let (codes, rendered) = check_text(&Model::empty(), &macvlan);
    assert!(codes.is_empty(), "{rendered}");
}

#[test]
fn macvlan_without_parent() {
    snapshot(
        "macvlan_without_parent",
        &["macvlan-without-parent"],
        "network lan driver macvlan subnet 192.168.1.0/24\n",
    );
}

// ---- addresses ---------------------------------------------------------------------

#[test]
fn static_ip_outside_subnet() {
    snapshot(
        "static_ip_outside_subnet",
        &["address-outside-subnet"],
        "network backend subnet 10.1.0.0/24\nsandbox db mode none\nconnect db to backend ip 10.2.0.5\n",
    );
}

#[test]
fn static_ip_is_gateway() {
    snapshot(
        "static_ip_is_gateway",
        &["address-is-gateway"],
        "network frontend subnet 10.2.0.0/24 gateway 10.2.0.254\nsandbox web mode none\nconnect web to frontend ip 10.2.0.254\n",
    );
}

#[test]
fn static_ip_is_network_address() {
    snapshot(
        "static_ip_is_network_address",
        &["address-reserved"],
        "network backend subnet 10.1.0.0/24\nendpoint ep on backend ip 10.1.0.0\n",
    );
}

#[test]
fn static_ip_is_broadcast_address() {
    snapshot(
        "static_ip_is_broadcast_address",
        &["address-reserved"],
        "network backend subnet 10.1.0.0/24\nendpoint ep on backend ip 10.1.0.255\n",
    );
}

#[test]
fn static_ip_taken() {
    snapshot(
        "static_ip_taken",
        &["address-taken"],
        "network backend subnet 10.1.0.0/24\nsandbox a mode none\nsandbox b mode none\nconnect a to backend ip 10.1.0.5\nconnect b to backend ip 10.1.0.5\n",
    );
}

#[test]
fn static_ip_taken_by_an_unjoined_endpoint() {
    // Static addresses are reserved before any is allocated, in statement order.
    snapshot(
        "static_ip_taken_by_an_unjoined_endpoint",
        &["address-taken"],
        "network backend subnet 10.1.0.0/24\nendpoint spare on backend ip 10.1.0.2\nsandbox a mode none\nconnect a to backend ip 10.1.0.2\n",
    );
}

#[test]
fn static_ip_taken_in_committed_state() {
    snapshot_against(
        "static_ip_taken_in_committed_state",
        "network backend subnet 10.1.0.0/24\nsandbox a mode none\nconnect a to backend ip 10.1.0.5",
        &["address-taken"],
        "sandbox b mode none\nconnect b to backend ip 10.1.0.5\n",
    );
}

#[test]
fn static_ipv6_is_gateway() {
    snapshot(
        "static_ipv6_is_gateway",
        &["address-is-gateway"],
        "network backend subnet 10.1.0.0/24 ipv6 fd00:1::/64\nsandbox db mode none\nconnect db to backend ipv6 fd00:1::1\n",
    );
}

#[test]
fn mac_taken() {
    snapshot(
        "mac_taken",
        &["mac-taken"],
        "network n subnet 10.1.0.0/24\nsandbox a mode none\nsandbox b mode none\nconnect a to n mac 02:42:ac:11:00:02\nconnect b to n mac 02:42:AC:11:00:02\n",
    );
}

#[test]
fn mac_taken_by_a_derived_mac() {
    // b gets 10.1.0.2, whose derived MAC a asks for; the MAC given is the one to change.
    let (codes, rendered) = check_text(
        &Model::empty(),
        "network n subnet 10.1.0.0/24\nsandbox a mode none\nsandbox b mode none\nconnect a to n ip 10.1.0.9 mac 02:42:0a:01:00:02\nconnect b to n\n",
    );
    assert_eq!(codes, ["mac-taken"], "{rendered}");
    assert!(rendered.contains("test.cnm:4:"), "{rendered}");
    // The same MAC on two networks is two segments: no clash.
    let (codes, rendered) = check_text(
        &Model::empty(),
        "network n subnet 10.1.0.0/24\nnetwork m subnet 10.2.0.0/24\nsandbox a mode none\nconnect a to n mac 02:42:ac:11:00:02\nconnect a to m mac 02:42:ac:11:00:02\n",
    );
    assert!(codes.is_empty(), "{rendered}");
}

#[test]
fn addresses_exhausted() {
    snapshot(
        "addresses_exhausted",
        &["addresses-exhausted"],
        "network tiny subnet 10.9.0.0/30\nsandbox a mode none\nsandbox b mode none\nconnect a to tiny\nconnect b to tiny\n",
    );
}

#[test]
fn addresses_exhausted_in_ip_range() {
    // The range holds 4 addresses; the fifth sandbox finds none (reported once).
    snapshot(
        "addresses_exhausted_in_ip_range",
        &["addresses-exhausted"],
        "network backend subnet 10.1.0.0/24 ip-range 10.1.0.8/30\nfor i in 1..6 {\n    sandbox s$i mode none\n    connect s$i to backend\n}\n",
    );
}

#[test]
fn addresses_exhausted_for_automatic_subnets() {
    // Networks without a subnet get a /24 of 10.89.0.0/16: the 257th finds none.
    snapshot(
        "addresses_exhausted_for_automatic_subnets",
        &["addresses-exhausted"],
        "for i in 0..256 {\n    network auto$i\n}\n",
    );
}

// ---- connections -------------------------------------------------------------------

#[test]
fn connected_twice() {
    snapshot(
        "connected_twice",
        &["connected-twice"],
        "network backend subnet 10.1.0.0/24\nsandbox db mode none\nconnect db to backend\nconnect db to backend alias database\n",
    );
}

#[test]
fn bridge_mode_sandbox_connected_to_default_network_again() {
    snapshot(
        "bridge_mode_sandbox_connected_to_default_network_again",
        &["connected-twice"],
        "sandbox web\nconnect web to bridge\n",
    );
}

#[test]
fn not_connected() {
    snapshot(
        "not_connected",
        &["not-connected"],
        "network backend subnet 10.1.0.0/24\nnetwork frontend subnet 10.2.0.0/24\nsandbox db mode none\nconnect db to backend\ndisconnect db from frontend\n",
    );
}

#[test]
fn container_mode_unknown_target() {
    snapshot(
        "container_mode_unknown_target",
        &["unknown-reference"],
        "sandbox app mode none\nsandbox sidecar mode container:ap\n",
    );
}

#[test]
fn container_mode_chain() {
    snapshot(
        "container_mode_chain",
        &["shared-namespace-chain"],
        "sandbox app mode none\nsandbox sidecar mode container:app\nsandbox logger mode container:sidecar\n",
    );
}

#[test]
fn container_mode_self_cycle() {
    snapshot(
        "container_mode_self_cycle",
        &["shared-namespace-cycle"],
        "sandbox app mode container:app\n",
    );
}

#[test]
fn connect_host_mode_sandbox() {
    snapshot(
        "connect_host_mode_sandbox",
        &["connect-without-namespace"],
        "network backend subnet 10.1.0.0/24\nsandbox monitor mode host\nconnect monitor to backend\n",
    );
}

#[test]
fn connect_container_mode_sandbox() {
    snapshot(
        "connect_container_mode_sandbox",
        &["connect-without-namespace"],
        "network backend subnet 10.1.0.0/24\nsandbox app mode none\nsandbox sidecar mode container:app\nconnect sidecar to backend\n",
    );
}

#[test]
fn ifname_taken() {
    snapshot(
        "ifname_taken",
        &["ifname-taken"],
        "network backend subnet 10.1.0.0/24\nnetwork frontend subnet 10.2.0.0/24\nsandbox web mode none\nconnect web to backend\nconnect web to frontend ifname eth0\n",
    );
}

#[test]
fn ifname_lo_taken() {
    let (codes, rendered) = check_text(
        &Model::empty(),
        "network backend subnet 10.1.0.0/24\nsandbox web mode none\nconnect web to backend ifname lo\n",
    );
    assert_eq!(codes, ["ifname-taken"], "{rendered}");
}

#[test]
fn endpoint_on_other_network() {
    snapshot(
        "endpoint_on_other_network",
        &["endpoint-on-other-network"],
        "network backend subnet 10.1.0.0/24\nnetwork frontend subnet 10.2.0.0/24\nendpoint db-ep on backend\nsandbox db mode none\nconnect db to frontend endpoint db-ep\n",
    );
}

#[test]
fn endpoint_joined_twice() {
    snapshot(
        "endpoint_joined_twice",
        &["endpoint-in-use"],
        "network backend subnet 10.1.0.0/24\nendpoint shared on backend\nsandbox a mode none\nsandbox b mode none\nconnect a to backend endpoint shared\nconnect b to backend endpoint shared\n",
    );
}

// ---- removal -----------------------------------------------------------------------

#[test]
fn remove_network_with_endpoints() {
    snapshot(
        "remove_network_with_endpoints",
        &["network-in-use"],
        "network backend subnet 10.1.0.0/24\nsandbox a mode none\nsandbox b mode none\nconnect a to backend\nconnect b to backend\nendpoint spare on backend\nremove network backend\n",
    );
}

#[test]
fn remove_network_with_many_endpoints() {
    snapshot(
        "remove_network_with_many_endpoints",
        &["network-in-use"],
        "network backend subnet 10.1.0.0/24\nfor i in 1..8 {\n    sandbox s$i mode none\n    connect s$i to backend\n}\nremove network backend\n",
    );
}

#[test]
fn remove_network_with_committed_endpoints() {
    snapshot_against(
        "remove_network_with_committed_endpoints",
        "network backend subnet 10.1.0.0/24\nsandbox a mode none\nconnect a to backend",
        &["network-in-use"],
        "remove network backend\n",
    );
}

#[test]
fn remove_endpoint_still_joined() {
    snapshot(
        "remove_endpoint_still_joined",
        &["endpoint-in-use"],
        "network backend subnet 10.1.0.0/24\nsandbox db mode none\nconnect db to backend\nremove endpoint db.backend\n",
    );
}

#[test]
fn remove_sandbox_shared() {
    snapshot(
        "remove_sandbox_shared",
        &["sandbox-shared"],
        "sandbox app mode none\nsandbox sidecar mode container:app\nsandbox logger mode container:app\nremove sandbox app\n",
    );
}

// ---- variables, loops and includes -------------------------------------------------

#[test]
fn undefined_variable_with_suggestion() {
    snapshot(
        "undefined_variable_with_suggestion",
        &["undefined-variable"],
        "let count = 3\nfor i in 1..$cuont {\n    sandbox web$i\n}\n",
    );
}

#[test]
fn undefined_variable_without_suggestion() {
    snapshot(
        "undefined_variable_without_suggestion",
        &["undefined-variable"],
        "let subnet = 10.1.0.0/24\nnetwork backend subnet ${prefix}\n",
    );
}

#[test]
fn loop_variable_is_gone_after_the_loop() {
    snapshot(
        "loop_variable_is_gone_after_the_loop",
        &["undefined-variable"],
        "for index in 1..2 {\n    sandbox web$index mode none\n}\nstop web$index\n",
    );
}

#[test]
fn bad_range_reversed() {
    snapshot(
        "bad_range_reversed",
        &["bad-range"],
        "for i in 5..1 {\n    sandbox web$i\n}\n",
    );
}

#[test]
fn bad_range_not_a_number() {
    snapshot(
        "bad_range_not_a_number",
        &["bad-range"],
        "let n = three\nfor i in 1..$n {\n    sandbox web$i\n}\n",
    );
}

#[test]
fn bad_range_without_dots() {
    snapshot(
        "bad_range_without_dots",
        &["bad-range"],
        "for i in 1-3 {\n    sandbox web$i\n}\n",
    );
}

#[test]
fn bad_range_too_long() {
    snapshot(
        "bad_range_too_long",
        &["bad-range"],
        "for i in 1..1000000 {\n    sandbox web$i\n}\n",
    );
}

#[test]
fn bad_range_at_the_limits_of_integers() {
    // Not a snapshot: the point is that it is an error, not an overflow.
    let (codes, rendered) = check_text(
        &Model::empty(),
        "for i in -9223372036854775808..9223372036854775807 {\n    sandbox web$i\n}\n",
    );
    assert_eq!(codes, ["bad-range"], "{rendered}");
    let (codes, rendered) = check_text(&Model::empty(), "for i in 1..99999999999999999999 {\n}\n");
    assert_eq!(codes, ["bad-range"], "{rendered}");
}

#[test]
fn include_missing_file() {
    let files = Files::new(
        "missing",
        &[(
            "main.cnm",
            "network backend subnet 10.1.0.0/24\ninclude common/sandboxes.cnm\n",
        )],
    );
    let script = std::fs::read_to_string(files.path("main.cnm")).unwrap();
    assert_diagnostics(
        "include_missing_file",
        &["include-unreadable"],
        &script,
        files.check(&["main.cnm"]),
    );
}

#[test]
fn include_a_directory() {
    let files = Files::new(
        "directory",
        &[("main.cnm", "include common\n"), ("common/x.cnm", "sandbox x\n")],
    );
    let (codes, rendered) = files.check(&["main.cnm"]);
    assert_eq!(codes, ["include-unreadable"], "{rendered}");
    assert!(rendered.contains("it is a directory"), "{rendered}");
}

#[test]
fn include_cycle() {
    let files = Files::new(
        "cycle",
        &[
            ("main.cnm", "include networks.cnm\n"),
            (
                "networks.cnm",
                "network backend subnet 10.1.0.0/24\ninclude sandboxes.cnm\n",
            ),
            ("sandboxes.cnm", "sandbox db mode none\ninclude networks.cnm\n"),
        ],
    );
    let script = "main.cnm: include networks.cnm\nnetworks.cnm: include sandboxes.cnm\nsandboxes.cnm: include networks.cnm";
    assert_diagnostics(
        "include_cycle",
        &["include-cycle"],
        script,
        files.check(&["main.cnm"]),
    );
}

#[test]
fn include_itself() {
    let files = Files::new(
        "itself",
        &[("main.cnm", "sandbox a mode none\ninclude ./main.cnm\n")],
    );
    let script = std::fs::read_to_string(files.path("main.cnm")).unwrap();
    assert_diagnostics(
        "include_itself",
        &["include-cycle"],
        &script,
        files.check(&["main.cnm"]),
    );
}

#[test]
fn include_the_same_file_twice_is_no_cycle() {
    let files = Files::new(
        "twice",
        &[
            ("main.cnm", "include a.cnm\ninclude b.cnm\n"),
            ("a.cnm", "include common.cnm\nsandbox a mode none\n"),
            ("b.cnm", "include common.cnm\nsandbox b mode none\n"),
            ("common.cnm", "let subnet = 10.1.0.0/24\n"),
        ],
    );
    let (codes, rendered) = files.check(&["main.cnm"]);
    assert!(codes.is_empty(), "{rendered}");
}

#[test]
fn errors_in_an_included_file_point_into_it() {
    let files = Files::new(
        "errors",
        &[
            (
                "main.cnm",
                "include net.cnm\nsandbox db mode none\nconnect db to backend ip 10.1.0.1\n",
            ),
            (
                "net.cnm",
                "network backend subnet 10.1.0.0/24\nnetwork frontend subnet 10.1.0.0/25\n",
            ),
        ],
    );
    let script = "main.cnm: include net.cnm / sandbox db / connect db to backend ip 10.1.0.1\n\
                  net.cnm: network backend 10.1.0.0/24 / network frontend 10.1.0.0/25";
    assert_diagnostics(
        "errors_in_an_included_file_point_into_it",
        &["subnet-overlap", "address-is-gateway"],
        script,
        files.check(&["main.cnm"]),
    );
}

#[test]
fn syntax_error_in_an_included_file() {
    let files = Files::new(
        "syntax",
        &[
            ("main.cnm", "include broken.cnm\nsandbox a mode none\nstop b\n"),
            ("broken.cnm", "sandbox \"x mode none\n"),
        ],
    );
    let script = "main.cnm: include broken.cnm / sandbox a / stop b\nbroken.cnm: sandbox \"x mode none";
    // The broken file stops; the including one goes on.
    assert_diagnostics(
        "syntax_error_in_an_included_file",
        &["unclosed", "unknown-reference"],
        script,
        files.check(&["main.cnm"]),
    );
}

// ---- the committed state -----------------------------------------------------------

#[test]
fn redeclaring_what_exists_is_no_error() {
    let applied = "network backend subnet 10.1.0.0/24\nsandbox a mode none\nconnect a to backend alias db";
    let (codes, rendered) = check_text(&committed(applied), applied);
    assert!(codes.is_empty(), "{rendered}");
}

#[test]
fn config_conflict_network() {
    snapshot_against(
        "config_conflict_network",
        "network backend subnet 10.1.0.0/24",
        &["config-conflict"],
        "network backend subnet 10.3.0.0/24 mtu 9000\n",
    );
}

#[test]
fn config_conflict_sandbox() {
    snapshot_against(
        "config_conflict_sandbox",
        "sandbox web mode none hostname web",
        &["config-conflict"],
        "sandbox web mode host hostname web\n",
    );
}

#[test]
fn config_conflict_endpoint() {
    snapshot_against(
        "config_conflict_endpoint",
        "network backend subnet 10.1.0.0/24\nsandbox db mode none\nconnect db to backend alias db",
        &["config-conflict"],
        "connect db to backend ip 10.1.0.9 alias database\n",
    );
}

// ---- reporting ---------------------------------------------------------------------

#[test]
fn every_error_of_a_script_is_reported_in_order() {
    let text = "network backend subnet 10.1.0.0/24 gateway 10.2.0.1\n\
                netwrk frontend\n\
                sandbox web mode hots\n\
                sandbox db mode none\n\
                connect db to bakend\n\
                for i in 3..1 { sandbox x$i }\n\
                sandbox db\n\
                stop $nobody\n";
    snapshot(
        "every_error_of_a_script_is_reported_in_order",
        &[
            "gateway-outside-subnet",
            "unknown-statement",
            "invalid-value",
            "unknown-reference",
            "bad-range",
            "duplicate",
            "undefined-variable",
        ],
        text,
    );
}

#[test]
fn errors_of_one_statement_come_in_the_order_of_its_words() {
    let (codes, rendered) = check_text(
        &Model::empty(),
        "network backend subnet 10.1.0.0/33 mtu 20 colour blue\n",
    );
    assert_eq!(
        codes,
        ["invalid-value", "mtu-out-of-range", "unknown-option"],
        "{rendered}"
    );
}

#[test]
fn errors_in_a_loop_body_are_reported_once() {
    let text = "network backend subnet 10.1.0.0/24\n\
                for i in 1..50 {\n    \
                    sandbox web$i mode none\n    \
                    connect web$i to bakend\n    \
                    sandbox \"db $i\" mode none\n    \
                    publish web$i 80\n\
                }\n";
    snapshot(
        "errors_in_a_loop_body_are_reported_once",
        &["unknown-reference", "invalid-name", "invalid-value"],
        text,
    );
}

/// Every error code in `src/error.rs` has at least one snapshot above.
#[test]
fn every_error_code_has_a_snapshot() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let source = std::fs::read_to_string(root.join("src/error.rs")).unwrap();
    let start = source.find("pub fn code(").expect("ErrorKind::code");
    let body = &source[start..];
    let body = &body[..body.find("\n    }\n").expect("the end of code()")];
    let codes: Vec<&str> = body
        .lines()
        .filter_map(|line| line.split("=> \"").nth(1))
        .map(|rest| rest.trim_end_matches(['"', ',']))
        .collect();
    assert!(codes.len() > 30, "found only {codes:?}");

    let mut snapshots = String::new();
    for entry in std::fs::read_dir(root.join("tests/snapshots")).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy();
        if name.starts_with("diagnostics__") && name.ends_with(".snap") {
            snapshots.push_str(&std::fs::read_to_string(&path).unwrap());
        }
    }
    let missing: Vec<&&str> = codes
        .iter()
        .filter(|code| !snapshots.contains(&format!("cnm::{code}\n")))
        .collect();
    assert!(missing.is_empty(), "error codes without a snapshot: {missing:?}");
}

#[test]
fn nested_loops_have_a_budget_in_all() {
    let script =
        "for a in 1..1000 {\n  for b in 1..1000 {\n    for c in 1..1000 {\n      let x = $c\n    }\n  }\n}\n";
    let mut sources = cnm::syntax::Sources::default();
    let id = sources.add("loops.cnm", script);
    let errors = cnm::check::check(&mut sources, &[id], &cnm::model::Model::empty()).unwrap_err();
    assert_eq!(errors.len(), 1);
    assert_eq!(
        errors[0].kind.to_string(),
        "invalid range `1..1000`: the script's loops would run more than 1000000 times in all"
    );
}

#[test]
fn include_refuses_what_is_not_a_regular_file() {
    let mut sources = cnm::syntax::Sources::default();
    let id = sources.add("inc.cnm", "include /dev/zero\n");
    let errors = cnm::check::check(&mut sources, &[id], &cnm::model::Model::empty()).unwrap_err();
    assert_eq!(
        errors[0].kind.to_string(),
        "cannot include `/dev/zero`: it is not a regular file"
    );
}
