//! Properties of the front end as a whole (parse + check + plan, and the rendering of
//! plans and diagnostics):
//! - it never panics: on arbitrary text; on "token soup" drawn from the language's own
//!   vocabulary (which stresses the grammar); on "statement soup", lines that start with
//!   a keyword and go on with any words; and on "shaped" scripts, every statement in its
//!   own form with arguments from small pools of valid and invalid values, so that names
//!   collide and addresses clash (which gets into every rule of the checker) — each both
//!   against nothing and against a committed state with objects in it;
//! - planning is deterministic: the same script and state give the same plan, byte for byte;
//! - declarations are idempotent: a generated valid topology planned against the state it
//!   produces (through state.json) gives an empty plan; so does each of two layers planned
//!   over both, and a topology declared again after disconnects, removals and stops.
//!
//! Case counts are modest so that this runs in a few seconds in a debug build;
//! `PROPTEST_CASES=10000 cargo test --release --test robustness` digs deeper (~40 s).

use std::fmt::Write;
use std::path::{Path, PathBuf};

use cnm::model::Model;
use cnm::plan::render;
use cnm::syntax::Sources;
use proptest::prelude::*;
use proptest::sample::select;

/// The sandboxes' `/etc` directory plans name files under.
fn etc() -> &'static Path {
    Path::new(cnm::plan::op::DEFAULT_ETC_DIR)
}

/// Parses, checks and plans `text` against `committed`, renders whatever comes out, and
/// returns the model and the plan when the script checks.
fn run(text: &str, committed: &Model) -> Option<(Model, cnm::plan::Plan)> {
    let mut sources = Sources::default();
    let id = sources.add("robustness.cnm", text);
    match cnm::plan_scripts(&mut sources, &[id], committed) {
        Ok((checked, plan)) => {
            render::human(&plan, &sources, etc(), true);
            render::json(&plan, &sources, etc());
            Some((checked.model, plan))
        }
        Err(diagnostics) => {
            assert!(!diagnostics.is_empty(), "a script that fails must say why");
            cnm::cli::render_diagnostics(&sources, &diagnostics, false, 100);
            None
        }
    }
}

/// Both renderings of the plan of `text` against `committed`; panics if it does not check.
fn rendered(text: &str, committed: &Model) -> (String, String) {
    let mut sources = Sources::default();
    let id = sources.add("robustness.cnm", text);
    match cnm::plan_scripts(&mut sources, &[id], committed) {
        Ok((_, plan)) => (
            render::human(&plan, &sources, etc(), true),
            render::json(&plan, &sources, etc()),
        ),
        Err(diagnostics) => panic!(
            "the script does not check:\n{text}\n{}",
            cnm::cli::render_diagnostics(&sources, &diagnostics, false, 100)
        ),
    }
}

// ---- token soup ------------------------------------------------------------------------

/// Words of the language: keywords, option keys, names, variables, quotes, blocks,
/// separators and values, valid and not.
#[rustfmt::skip]
const VOCABULARY: &[&str] = &[
    // statements
    "network", "sandbox", "endpoint", "connect", "disconnect", "remove", "stop", "start",
    "publish", "exec", "expect", "serve", "let", "for", "include",
    // option keys and other fixed words
    "driver", "bridge", "macvlan", "ipvlan", "subnet", "gateway", "ip-range", "ipv6", "mtu",
    "internal", "parent", "mode", "none", "host", "container:a", "container:b", "container:",
    "container:$x", "hostname", "dns", "on", "to", "from", "ip", "mac", "alias", "ifname",
    "reaches", "cannot", "reach", "port", "timeout", "udp", "tcp", "host-ip", "in", "=", "--",
    // names
    "a", "b", "c", "net", "net2", "web", "e1", "eth0", "x", "i", "A", "web$i", "a.b", "..",
    "a/b", "-a", "0", "averyveryveryveryveryveryveryveryveryveryveryveryverylongname-1234567",
    // variables, quotes, blocks, separators, comments
    "$x", "${x}", "$i", "${i}", "$n", "$", "${", "${}", "$1", "\"a b\"", "\"$x\"", "\"${x}y\"",
    "\"\\\"\"", "\"", "'q'", "'", "''", "\"\"", "{", "}", ";", "\n", "\r\n", "\\\n", "\\",
    "# comment\n", "#",
    // addresses, subnets, MACs, ports
    "10.1.0.0/24", "10.1.0.0/16", "10.2.0.0/24", "10.1.0.128/25", "10.1.0.0/31", "10.1.0.0/32",
    "10.1.0.0/30", "0.0.0.0/0", "10.1.0.5/24", "172.30.0.0/16", "fd00::/64", "::/0",
    "10.1.0.300/24", "10.1.0.0/33", "10.1.0.1", "10.1.0.2", "10.1.0.5", "10.1.0.255", "10.1.0.0",
    "10.2.0.1", "0.0.0.0", "255.255.255.255", "fd00::1", "fd00::2", "::", "1.2.3",
    "02:42:ac:11:00:02", "ff:ff:ff:ff:ff:ff", "00:00:00:00:00:00", "02:42", "8080:80",
    "8080:80/udp", "80:80/sctp", "0:0", "65536:1", ":", "1s", "500ms", "0s", "10x",
    // boundaries: the ends of the address space, prefixes that leave no room, numbers
    // just past u32 and u64, durations and MTUs too large for anything
    "0.0.0.0/32", "255.255.255.255/32", "255.255.255.254/31", "255.255.255.252/30", "::/0",
    "fd00::/127", "fd00::/128", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff/128",
    "4294967295", "4294967296", "18446744073709551615", "18446744073709551616",
    "999999999999999999m", "18446744073709551616ms", "1441m", "1440m",
    // numbers and ranges
    "0", "1", "2", "3", "67", "68", "1400", "65535", "65536", "99999999999999999999", "-1",
    "1..4294967296", "-9223372036854775808..9223372036854775807", "18446744073709551616..1",
    "1..3", "3..1", "1..1", "0..2", "1..$n", "$n..3", "1..", "..3", "1...3", "a..b", "1..100001",
    // files
    "missing.cnm", "/", ".", "/dev/null", "scripts/seed.cnm", "tests",
];

/// What goes between two words.
const GLUE: &[&str] = &[" ", " ", " ", " ", "", "\n", ";", "\t"];

/// Whole statements that get the soup off the ground (so that names resolve, variables
/// are defined and loops run).
const PRELUDE: &[&str] = &[
    "network net subnet 10.1.0.0/24\n",
    "network net2 subnet 10.2.0.0/24 gateway 10.2.0.254\n",
    "sandbox a mode none\n",
    "sandbox b\n",
    "sandbox c mode container:b\n",
    "connect a to net\n",
    "endpoint e1 on net\n",
    "let x = a\n",
    "let n = 2\n",
    "for i in 1..$n {\n",
    "}\n",
];

fn token_soup() -> impl Strategy<Value = String> {
    (
        proptest::collection::vec(select(PRELUDE), 0..6),
        proptest::collection::vec((select(VOCABULARY), select(GLUE)), 0..60),
    )
        .prop_map(|(prelude, words)| {
            let mut text: String = prelude.concat();
            for (word, glue) in words {
                text.push_str(word);
                text.push_str(glue);
            }
            text
        })
}

/// Words that fit anywhere a word does: no braces, separators or unbalanced quotes.
#[rustfmt::skip]
const WORDS: &[&str] = &[
    "driver", "bridge", "macvlan", "subnet", "gateway", "ip-range", "ipv6", "mtu", "internal",
    "parent", "mode", "none", "host", "container:a", "container:b", "container:c", "container:x",
    "container:$x", "hostname", "dns", "on", "to", "from", "ip", "mac", "alias", "ifname",
    "endpoint", "network", "sandbox", "reaches", "cannot", "reach", "port", "timeout", "udp",
    "tcp", "host-ip", "--", "=",
    "a", "b", "c", "h", "x", "net", "net2", "web", "web$i", "e1", "e$i", "eth0", "eth$i", "db",
    "$x", "${x}", "$i", "$n", "\"a b\"", "\"$x\"", "'q'", "a.b", "..", "a/b", "-a", "a:b",
    "10.1.0.0/24", "10.1.0.0/16", "10.2.0.0/24", "10.1.0.128/25", "10.1.0.0/31", "10.1.0.0/30",
    "10.1.0.5/24", "172.30.0.0/16", "fd00::/64", "fd00::/126", "10.1.0.1", "10.1.0.2",
    "10.1.0.5", "10.1.0.$i", "10.1.0.255", "10.1.0.0", "10.2.0.1", "10.2.0.254", "0.0.0.0",
    "fd00::1", "fd00::2", "02:42:ac:11:00:02", "02:42:ac:11:00:0$i", "ff:ff:ff:ff:ff:ff",
    "8080:80", "8080:80/udp", "80:80/sctp", "0:0", "1s", "500ms", "0", "1", "3", "68", "1400",
    "65535", "65536", "-1", "1..3", "3..1", "missing.cnm", "/dev/null",
    "0.0.0.0/32", "255.255.255.255/32", "255.255.255.254/31", "0.0.0.0/0", "fd00::/127",
    "4294967296", "18446744073709551616", "999999999999999999m", "1..4294967296",
];

/// Statement-shaped soup: lines that start with a keyword (mostly) and go on with
/// arbitrary words, and `for` loops around them, so that most scripts parse and the
/// checker sees every statement with every kind of argument.
#[derive(Debug, Clone)]
enum Item {
    Line(&'static str, Vec<&'static str>),
    Loop(&'static str, Vec<Item>),
}

#[rustfmt::skip]
const KEYWORDS: &[&str] = &[
    "network", "network", "sandbox", "sandbox", "endpoint", "connect", "connect", "disconnect",
    "remove", "remove network", "remove sandbox", "remove endpoint", "stop", "start", "publish",
    "exec", "expect", "serve", "let x =", "let n =", "include", "frobnicate",
];

fn items() -> impl Strategy<Value = Vec<Item>> {
    let line = (select(KEYWORDS), proptest::collection::vec(select(WORDS), 0..8))
        .prop_map(|(keyword, words)| Item::Line(keyword, words));
    let item = line.prop_recursive(2, 24, 6, |inner| {
        (
            select(
                &[
                    "1..3",
                    "1..$n",
                    "2..2",
                    "$n..3",
                    "0..1",
                    "1..4294967296",
                    "4294967295..4294967296",
                    "18446744073709551615..18446744073709551616",
                ][..],
            ),
            proptest::collection::vec(inner, 0..6),
        )
            .prop_map(|(range, body)| Item::Loop(range, body))
    });
    proptest::collection::vec(item, 0..16)
}

fn render_items(items: &[Item], depth: usize, out: &mut String) {
    let var = ["i", "j", "k"][depth.min(2)];
    for item in items {
        match item {
            Item::Line(keyword, words) => {
                out.push_str(keyword);
                for word in words {
                    out.push(' ');
                    // The loop variable of this depth, wherever the vocabulary says `$i`.
                    out.push_str(&word.replace("$i", &format!("${var}")));
                }
                out.push('\n');
            }
            Item::Loop(range, body) => {
                let inner = ["i", "j", "k"][(depth + 1).min(2)];
                out.push_str(&format!("for {inner} in {range} {{\n"));
                render_items(body, depth + 1, out);
                out.push_str("}\n");
            }
        }
    }
}

fn statement_soup() -> impl Strategy<Value = String> {
    (
        proptest::collection::vec(select(PRELUDE_STATEMENTS), 0..8),
        items(),
    )
        .prop_map(|(prelude, items)| {
            let mut text: String = prelude.concat();
            render_items(&items, 0, &mut text);
            text
        })
}

/// Complete statements only (no loop openers or closers).
const PRELUDE_STATEMENTS: &[&str] = &[
    "network net subnet 10.1.0.0/24\n",
    "network net2 subnet 10.2.0.0/24 gateway 10.2.0.254\n",
    "sandbox a mode none\n",
    "sandbox b\n",
    "sandbox c mode container:b\n",
    "connect a to net\n",
    "endpoint e1 on net\n",
    "let x = a\n",
    "let n = 2\n",
];

/// Values for each kind of argument, valid and not, from small pools so that names
/// collide and addresses clash.
#[rustfmt::skip]
mod pool {
    pub const NETWORK: &[&str] = &["net", "net2", "n3", "bridge", "net$i", "x"];
    pub const SANDBOX: &[&str] = &["a", "b", "c", "h", "web$i", "s", "x"];
    pub const ENDPOINT: &[&str] = &["e1", "e2", "e$i", "a.net", "x"];
    pub const CIDR: &[&str] = &[
        "10.1.0.0/24", "10.1.0.0/16", "10.2.0.0/24", "10.1.0.128/25", "10.1.0.0/31", "10.1.0.0/30",
        "10.1.0.0/32", "10.1.0.5/24", "172.30.0.0/16", "10.3.0.0/29", "10.$i.0.0/24", "0.0.0.0/0",
        "10.1.0.0/33", "fd00::/64", "x", "0.0.0.0/32", "255.255.255.255/32", "255.255.255.254/31",
        "255.255.255.252/30", "0.0.0.0/31",
    ];
    pub const IP: &[&str] = &[
        "10.1.0.1", "10.1.0.2", "10.1.0.5", "10.1.0.$i", "10.1.0.255", "10.1.0.0", "10.1.0.130",
        "10.2.0.1", "10.2.0.254", "10.3.0.6", "172.30.0.1", "172.30.0.2", "0.0.0.0", "fd00::1", "x",
        "255.255.255.255", "255.255.255.254", "255.255.255.253",
    ];
    pub const CIDR6: &[&str] = &[
        "fd00::/64", "fd00::/126", "fd00::/127", "fd00::/128", "fd00::1/64", "10.1.0.0/24", "::/0",
        "ffff:ffff:ffff:ffff:ffff:ffff:ffff:fffc/126", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff/128",
    ];
    pub const IP6: &[&str] = &["fd00::1", "fd00::2", "fd00::1:$i", "::", "fe80::1", "10.1.0.1"];
    pub const MAC: &[&str] = &[
        "02:42:ac:11:00:02", "02:42:ac:11:00:0$i", "ff:ff:ff:ff:ff:ff", "01:00:5e:00:00:01",
        "00:00:00:00:00:00", "02:42", "zz:zz:zz:zz:zz:zz",
    ];
    pub const IFNAME: &[&str] = &["eth0", "eth$i", "br0", "cnm0", "averyveryverylongname", "a/b", "."];
    pub const DRIVER: &[&str] = &["bridge", "macvlan", "overlay"];
    pub const MTU: &[&str] = &[
        "68", "67", "1400", "65535", "65536", "0", "x", "4294967295", "4294967296",
        "18446744073709551615", "18446744073709551616", "+1500",
    ];
    pub const MODE: &[&str] = &[
        "none", "bridge", "host", "container:a", "container:b", "container:c", "container:h",
        "container:web$i", "container:x", "container:", "weird",
    ];
    pub const HOSTNAME: &[&str] = &["web", "a.example", "-bad", "a_b"];
    pub const ALIAS: &[&str] = &["db", "web", "db$i", "a", "-x", "\"a b\""];
    pub const PORTS: &[&str] = &[
        "8080:80", "8080:80/udp", "80:80/sctp", "0:0", "65536:1", "8080", "8$i:80",
        "4294967296:80", "80:18446744073709551616",
    ];
    pub const PORT: &[&str] = &["80", "0", "65536", "x", "4294967296", "18446744073709551616"];
    pub const DURATION: &[&str] = &[
        "1s", "500ms", "0s", "10x", "1h", "1440m", "1441m", "999999999999999999m",
        "18446744073709551615ms", "18446744073709551616s", "4294967296",
    ];
    pub const KIND: &[&str] = &["network", "sandbox", "endpoint", "thing"];
    pub const TARGET: &[&str] = &["a", "b", "c", "db", "10.1.0.5", "host", "x", "web$i"];
    pub const WORD: &[&str] = &["ip", "-br", "addr", "--", "$x", "\"a b\""];
    pub const NONE: &[&str] = &[""];
}

/// `key value` options drawn from `table` (`value` empty for a flag).
fn options(table: &'static [(&'static str, &'static [&'static str])]) -> impl Strategy<Value = String> {
    proptest::collection::vec((select(table), any::<proptest::sample::Index>()), 0..4).prop_map(|opts| {
        let mut out = String::new();
        for ((key, values), index) in opts {
            out.push(' ');
            out.push_str(key);
            if !values[0].is_empty() {
                out.push(' ');
                out.push_str(values[index.index(values.len())]);
            }
        }
        out
    })
}

fn pick(values: &'static [&'static str]) -> proptest::sample::Select<&'static str> {
    select(values)
}

/// One statement of the right shape, with arguments from the pools.
fn shaped_statement() -> impl Strategy<Value = String> {
    use pool::*;
    const NETWORK_OPTS: &[(&str, &[&str])] = &[
        ("subnet", CIDR),
        ("subnet", CIDR),
        ("gateway", IP),
        ("ip-range", CIDR),
        ("ipv6", CIDR6),
        ("driver", DRIVER),
        ("bridge", IFNAME),
        ("mtu", MTU),
        ("internal", NONE),
        ("parent", IFNAME),
    ];
    const SANDBOX_OPTS: &[(&str, &[&str])] = &[
        ("mode", MODE),
        ("mode", MODE),
        ("hostname", HOSTNAME),
        ("dns", IP),
    ];
    const ADDRESS_OPTS: &[(&str, &[&str])] = &[
        ("ip", IP),
        ("ip", IP),
        ("ipv6", IP6),
        ("mac", MAC),
        ("alias", ALIAS),
        ("alias", ALIAS),
    ];
    const CONNECT_OPTS: &[(&str, &[&str])] = &[
        ("ip", IP),
        ("ip", IP),
        ("ipv6", IP6),
        ("mac", MAC),
        ("alias", ALIAS),
        ("endpoint", ENDPOINT),
        ("ifname", IFNAME),
    ];
    const PROBE_OPTS: &[(&str, &[&str])] = &[("port", PORT), ("timeout", DURATION), ("udp", NONE)];
    prop_oneof![
        3 => (pick(NETWORK), options(NETWORK_OPTS)).prop_map(|(n, o)| format!("network {n}{o}")),
        3 => (pick(SANDBOX), options(SANDBOX_OPTS)).prop_map(|(s, o)| format!("sandbox {s}{o}")),
        2 => (pick(ENDPOINT), pick(NETWORK), options(ADDRESS_OPTS))
            .prop_map(|(e, n, o)| format!("endpoint {e} on {n}{o}")),
        4 => (pick(SANDBOX), pick(NETWORK), options(CONNECT_OPTS))
            .prop_map(|(s, n, o)| format!("connect {s} to {n}{o}")),
        1 => (pick(SANDBOX), pick(NETWORK)).prop_map(|(s, n)| format!("disconnect {s} from {n}")),
        1 => (pick(KIND), pick(&["net", "a", "e1", "b", "net2", "c", "bridge"]))
            .prop_map(|(k, n)| format!("remove {k} {n}")),
        1 => pick(SANDBOX).prop_map(|s| format!("stop {s}")),
        1 => pick(SANDBOX).prop_map(|s| format!("start {s}")),
        1 => (pick(SANDBOX), pick(PORTS), options(&[("host-ip", IP)]))
            .prop_map(|(s, p, o)| format!("publish {s} {p}{o}")),
        1 => (pick(SANDBOX), proptest::collection::vec(pick(WORD), 0..3))
            .prop_map(|(s, w)| format!("exec {s} -- {}", w.join(" "))),
        1 => (pick(SANDBOX), pick(&["reaches", "cannot reach"]), pick(TARGET), options(PROBE_OPTS))
            .prop_map(|(s, v, t, o)| format!("expect {s} {v} {t}{o}")),
        1 => (pick(SANDBOX), options(PROBE_OPTS)).prop_map(|(s, o)| format!("serve {s}{o}")),
        1 => pick(&["let x = a", "let n = 2", "let n = 0", "let x = $x", "include missing.cnm"])
            .prop_map(str::to_string),
    ]
}

/// Scripts of well-shaped statements with arguments from the pools, some in loops: the
/// checker's rules, IPAM and the planner all get exercised.
fn shaped_script() -> impl Strategy<Value = String> {
    #[derive(Debug, Clone)]
    enum Shaped {
        Line(String),
        Loop(&'static str, Vec<Shaped>),
    }
    fn render(items: &[Shaped], var: &str, out: &mut String) {
        for item in items {
            match item {
                Shaped::Line(line) => {
                    out.push_str(&line.replace("$i", &format!("${var}")));
                    out.push('\n');
                }
                Shaped::Loop(range, body) => {
                    let inner = if var == "i" { "j" } else { "k" };
                    out.push_str(&format!("for {inner} in {range} {{\n"));
                    render(body, inner, out);
                    out.push_str("}\n");
                }
            }
        }
    }
    let item = shaped_statement()
        .prop_map(Shaped::Line)
        .prop_recursive(2, 24, 6, |inner| {
            (
                pick(&[
                    "1..3",
                    "1..$n",
                    "2..2",
                    "0..1",
                    "1..4294967296",
                    "-9223372036854775808..9223372036854775807",
                ]),
                proptest::collection::vec(inner, 0..6),
            )
                .prop_map(|(range, body)| Shaped::Loop(range, body))
        });
    (
        proptest::collection::vec(select(PRELUDE_STATEMENTS), 0..8),
        proptest::collection::vec(item, 0..20),
    )
        .prop_map(|(prelude, items)| {
            // `$i` outside any loop is an undefined variable: that is part of the fun.
            let mut text: String = prelude.concat();
            render(&items, "i", &mut text);
            text
        })
}

// ---- valid topologies ------------------------------------------------------------------

#[derive(Debug, Clone)]
struct Net {
    prefix: u8,
    gateway: Option<u32>,
    mtu: Option<u32>,
    internal: bool,
    /// The upper half of the subnet, as the allocation range.
    ip_range: bool,
}

#[derive(Debug, Clone)]
enum SandboxMode {
    Default,
    Bridge,
    None,
    Host,
    /// Shares the namespace of the sandbox at this index (taken modulo the earlier ones
    /// that have a namespace of their own).
    Container(usize),
}

#[derive(Debug, Clone)]
struct Connect {
    network: usize,
    /// A static address, as an offset into the subnet.
    ip: Option<u32>,
    aliases: usize,
    /// Join an endpoint made beforehand with `endpoint`.
    named_endpoint: bool,
}

#[derive(Debug, Clone)]
struct Topology {
    networks: Vec<Net>,
    sandboxes: Vec<(SandboxMode, Vec<Connect>)>,
}

fn net() -> impl Strategy<Value = Net> {
    (
        16u8..=26,
        any::<bool>(),
        proptest::option::of(68u32..=9000),
        any::<bool>(),
        any::<bool>(),
    )
        .prop_map(|(prefix, custom_gateway, mtu, internal, ip_range)| Net {
            prefix,
            // The last host address, rather than the default first.
            gateway: custom_gateway.then(|| (1u32 << (32 - prefix)) - 2),
            mtu,
            internal,
            ip_range,
        })
}

fn topology() -> impl Strategy<Value = Topology> {
    let mode = prop_oneof![
        1 => Just(SandboxMode::Default),
        1 => Just(SandboxMode::Bridge),
        3 => Just(SandboxMode::None),
        1 => Just(SandboxMode::Host),
        1 => any::<usize>().prop_map(SandboxMode::Container),
    ];
    let connect = (
        any::<usize>(),
        proptest::option::of(any::<u32>()),
        0usize..3,
        any::<bool>(),
    )
        .prop_map(|(network, ip, aliases, named_endpoint)| Connect {
            network,
            ip,
            aliases,
            named_endpoint,
        });
    (
        proptest::collection::vec(net(), 1..5),
        proptest::collection::vec((mode, proptest::collection::vec(connect, 0..4)), 0..10),
    )
        .prop_map(|(networks, sandboxes)| Topology { networks, sandboxes })
}

fn ipv4(network: u32, offset: u32) -> String {
    std::net::Ipv4Addr::from(network + offset).to_string()
}

/// The script for a topology, valid by construction: network `nI` gets 10.I.0.0/prefix
/// (so no two overlap, nor the default network's 172.30.0.0/16); static addresses are
/// distinct host addresses, neither the gateway nor where the allocator hands out
/// addresses (which it does statement by statement, from the bottom of the pool); a
/// sandbox joins each network at most once, and only if it has a namespace of its own.
fn script(topology: &Topology) -> String {
    layer(topology, "", 1)
}

/// [`script`] with every name prefixed by `prefix` and network `nI` on 10.(first + I).0.0,
/// so that two layers with different prefixes and octets never clash.
fn layer(topology: &Topology, p: &str, first: u8) -> String {
    let mut out = String::new();
    let mut bases = Vec::new();
    for (i, net) in topology.networks.iter().enumerate() {
        let base = u32::from(std::net::Ipv4Addr::new(10, first + i as u8, 0, 0));
        bases.push(base);
        write!(out, "network {p}n{i} subnet {}/{}", ipv4(base, 0), net.prefix).unwrap();
        if let Some(gateway) = net.gateway {
            write!(out, " gateway {}", ipv4(base, gateway)).unwrap();
        }
        if net.ip_range {
            let half = 1u32 << (31 - net.prefix);
            write!(out, " ip-range {}/{}", ipv4(base, half), net.prefix + 1).unwrap();
        }
        if let Some(mtu) = net.mtu {
            write!(out, " mtu {mtu}").unwrap();
        }
        if net.internal {
            out.push_str(" internal");
        }
        out.push('\n');
    }
    // Four static addresses a network: with an ip-range (the upper half), offsets 2 to 5,
    // above the default gateway (offset 1); without, the four below the last host
    // address (a custom gateway's), far above what the allocator reaches.
    let static_offset = |net: &Net, k: u32| match net.ip_range {
        true => 2 + k,
        false => (1u32 << (32 - net.prefix)) - 3 - k,
    };
    let mut statics_used: Vec<u32> = vec![0; topology.networks.len()];
    let mut own_namespace = Vec::new();
    for (s, (mode, connects)) in topology.sandboxes.iter().enumerate() {
        write!(out, "sandbox {p}s{s}").unwrap();
        let has_namespace = match mode {
            SandboxMode::Default => true,
            SandboxMode::Bridge => {
                out.push_str(" mode bridge");
                true
            }
            SandboxMode::None => {
                out.push_str(" mode none");
                true
            }
            SandboxMode::Host => {
                out.push_str(" mode host");
                false
            }
            SandboxMode::Container(k) if !own_namespace.is_empty() => {
                let other = own_namespace[k % own_namespace.len()];
                write!(out, " mode container:{p}s{other}").unwrap();
                false
            }
            SandboxMode::Container(_) => {
                out.push_str(" mode none");
                true
            }
        };
        out.push('\n');
        if !has_namespace {
            continue;
        }
        own_namespace.push(s);
        let mut joined = Vec::new();
        for (c, connect) in connects.iter().enumerate() {
            let n = connect.network % topology.networks.len();
            if joined.contains(&n) {
                continue;
            }
            joined.push(n);
            let mut options = String::new();
            if connect.ip.is_some() && statics_used[n] < 4 {
                let offset = static_offset(&topology.networks[n], statics_used[n]);
                write!(options, " ip {}", ipv4(bases[n], offset)).unwrap();
                statics_used[n] += 1;
            }
            if connect.aliases > 0 {
                options.push_str(" alias");
                for a in 0..connect.aliases {
                    write!(options, " {p}s{s}a{a}").unwrap();
                }
            }
            if connect.named_endpoint {
                // The endpoint carries the options; `connect … endpoint NAME` joins it.
                writeln!(out, "endpoint {p}s{s}e{c} on {p}n{n}{options}").unwrap();
                writeln!(out, "connect {p}s{s} to {p}n{n} endpoint {p}s{s}e{c}").unwrap();
            } else {
                writeln!(out, "connect {p}s{s} to {p}n{n}{options}").unwrap();
            }
        }
    }
    out
}

/// The committed state as `cnm apply` would leave it: the model through state.json.
fn through_state_file(model: &Model) -> Model {
    static COUNTER: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let dir: PathBuf = std::env::temp_dir().join(format!("cnm-robustness-{}-{n}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("state.json"), cnm::state::to_json(model)).unwrap();
    let loaded = cnm::state::load(&dir).expect("a state the checker produced loads");
    std::fs::remove_dir_all(&dir).unwrap();
    loaded
}

// ---- the properties --------------------------------------------------------------------

/// `cases` cases (or `PROPTEST_CASES`), and no regression files written into tests/:
/// a failure found here becomes a plain `#[test]` below.
fn config(cases: u32) -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(cases);
    ProptestConfig {
        cases,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

proptest! {
    #![proptest_config(config(256))]

    #[test]
    fn never_panics_on_arbitrary_text(text in "\\PC{0,200}") {
        run(&text, &Model::empty());
    }

    #[test]
    fn never_panics_on_printable_ascii_lines(text in "[ -~\t\n]{0,300}") {
        run(&text, &Model::empty());
    }
}

proptest! {
    #![proptest_config(config(512))]

    #[test]
    fn never_panics_on_token_soup(text in token_soup()) {
        run(&text, &Model::empty());
    }

    #[test]
    fn never_panics_on_statement_soup(text in statement_soup()) {
        run(&text, &Model::empty());
    }

    #[test]
    fn never_panics_on_statement_soup_against_a_state(text in statement_soup()) {
        run(&text, committed());
    }

    #[test]
    fn never_panics_on_shaped_scripts(text in shaped_script()) {
        run(&text, &Model::empty());
    }

    #[test]
    fn never_panics_on_shaped_scripts_against_a_state(text in shaped_script()) {
        run(&text, committed());
    }

    /// The same soup against a committed state with objects in it: now references,
    /// re-declarations, disconnects and removals meet real objects.
    #[test]
    fn never_panics_on_token_soup_against_a_state(text in token_soup()) {
        run(&text, committed());
    }
}

/// A committed state to plan against: networks, sandboxes in several modes, endpoints.
fn committed() -> &'static Model {
    static STATE: std::sync::OnceLock<Model> = std::sync::OnceLock::new();
    STATE.get_or_init(|| {
        let text = "network net subnet 10.1.0.0/24\n\
                    network net2 subnet 10.2.0.0/24 gateway 10.2.0.254 mtu 1400\n\
                    sandbox a mode none\nsandbox b\nsandbox c mode container:b\nsandbox h mode host\n\
                    connect a to net ip 10.1.0.5 alias db\nconnect b to net2\n\
                    endpoint e1 on net\nstop b\n";
        run(text, &Model::empty()).expect("the committed state checks").0
    })
}

proptest! {
    #![proptest_config(config(128))]

    #[test]
    fn plans_are_deterministic(topology in topology()) {
        let text = script(&topology);
        let first = rendered(&text, &Model::empty());
        let second = rendered(&text, &Model::empty());
        prop_assert_eq!(&first.0, &second.0);
        prop_assert_eq!(&first.1, &second.1);
        // And against a state with something in it.
        let state = run(&text, &Model::empty()).unwrap().0;
        let first = rendered(&text, &state);
        let second = rendered(&text, &state);
        prop_assert_eq!(first, second);
    }

    #[test]
    fn declarations_are_idempotent(topology in topology()) {
        let text = script(&topology);
        rendered(&text, &Model::empty()); // panics with the diagnostics if it does not check
        let (model, plan) = run(&text, &Model::empty()).unwrap();
        prop_assert!(!topology.networks.is_empty() && !plan.is_empty());
        let committed = through_state_file(&model);
        prop_assert_eq!(&committed, &model, "the state file does not round-trip the model");
        let (again, plan) = run(&text, &committed).expect("the script checks against its own state");
        let (human, _) = rendered(&text, &committed);
        prop_assert!(plan.is_empty(), "re-planning\n{}\nagainst its own state gives\n{}", text, human);
        prop_assert_eq!(again, model, "re-planning changes the model although the plan is empty");
    }
}

/// Statements that change what a topology made: disconnects, removals, stops, starts,
/// on names of the topology that may or may not exist.
fn mutations() -> impl Strategy<Value = String> {
    // Low indices, so that most names exist.
    let statement = (0usize..7, 0usize..4, 0usize..2).prop_map(|(verb, s, n)| match verb {
        0 => format!("disconnect s{s} from n{n}"),
        1 => format!("remove sandbox s{s}"),
        2 => format!("remove network n{n}"),
        3 => format!("remove endpoint s{s}.n{n}"),
        4 => format!("remove endpoint s{s}e{n}"),
        5 => format!("stop s{s}"),
        _ => format!("start s{s}"),
    });
    proptest::collection::vec(statement, 1..4).prop_map(|lines| lines.join("\n") + "\n")
}

proptest! {
    #![proptest_config(config(128))]

    /// Layers: a second topology applied over a first leaves both idempotent; changes
    /// (disconnect, remove, stop, start) over a topology plan without panicking, and
    /// declaring the topology again over them converges.
    #[test]
    fn layered_scripts_converge(first in topology(), second in topology(), changes in mutations()) {
        let first = script(&first);
        let second = layer(&second, "t", 101);
        let (base, _) = run(&first, &Model::empty()).expect("a generated topology checks");

        rendered(&second, &base); // panics with the diagnostics if it does not check
        let (both, _) = run(&second, &base).unwrap();
        for text in [&first, &second] {
            let (_, plan) = run(text, &both).unwrap();
            prop_assert!(plan.is_empty(), "\n{}\nover both layers gives\n{}", text, rendered(text, &both).0);
        }

        if let Some((changed, _)) = run(&changes, &base) {
            let changed = through_state_file(&changed);
            if let Some((again, _)) = run(&first, &changed) {
                let (_, plan) = run(&first, &again).unwrap();
                prop_assert!(
                    plan.is_empty(),
                    "{}\nafter\n{}\ndoes not converge:\n{}", first, changes, rendered(&first, &again).0
                );
            }
        }
    }
}

/// The scripts shipped in scripts/ plan the same way every time.
#[test]
fn example_scripts_plan_deterministically() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts");
    for name in ["seed.cnm", "modes.cnm", "fleet.cnm"] {
        let text = std::fs::read_to_string(dir.join(name)).unwrap();
        let first = rendered(&text, &Model::empty());
        for _ in 0..3 {
            assert_eq!(rendered(&text, &Model::empty()), first, "{name}");
        }
        let (model, _) = run(&text, &Model::empty()).unwrap();
        let (_, plan) = run(&text, &model).unwrap();
        assert!(plan.is_empty(), "{name} is not idempotent");
    }
}

// ---- state.json ------------------------------------------------------------------------

/// Values to put into a state: names the seed's objects have, addresses and subnets at
/// the ends of their ranges, numbers past every integer type, and things of wrong kinds.
#[rustfmt::skip]
const STATE_STRINGS: &[&str] = &[
    "A", "B", "C", "web1", "backend", "frontend", "nowhere", "A.backend", "B.frontend", "", "..",
    "../../etc", "a/b", "eth0", "eth1", "lo", "cnm-backend", "averyveryverylongifname",
    "bridge", "macvlan", "none", "host", "container:A", "container:web1", "container:ghost",
    "container:", "running", "stopped", "tcp", "udp",
    "10.1.0.0/24", "10.1.0.0/31", "10.1.0.0/32", "0.0.0.0/0", "0.0.0.0/32", "255.255.255.255/32",
    "10.2.0.0/24", "10.1.0.2", "10.1.0.1", "10.1.0.0", "10.1.0.255", "0.0.0.0", "255.255.255.255",
    "fd00::/64", "fd00::/127", "fd00::/128", "fd00::1", "::",
    "02:42:0a:01:00:02", "02:42:0a:01:00:03", "ff:ff:ff:ff:ff:ff", "not a mac",
];

const STATE_KEYS: &[&str] = &[
    "format_version",
    "networks",
    "sandboxes",
    "endpoints",
    "name",
    "id",
    "driver",
    "subnet",
    "gateway",
    "ip_range",
    "ipv6",
    "bridge",
    "parent",
    "mtu",
    "internal",
    "mode",
    "hostname",
    "dns",
    "status",
    "published",
    "network",
    "sandbox",
    "ip",
    "static_ip",
    "mac",
    "aliases",
    "ifname",
    "host_ifname",
    "default_route",
    "host_port",
    "port",
    "protocol",
];

/// A JSON leaf: boundary numbers (0, 2^32, 2^64, negative, fractional) among the rest.
fn state_leaf() -> impl Strategy<Value = serde_json::Value> {
    use serde_json::{json, Value};
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        select(
            &[
                0i64,
                1,
                -1,
                67,
                68,
                1500,
                65535,
                65536,
                4294967295,
                4294967296,
                i64::MIN
            ][..]
        )
        .prop_map(|n| json!(n)),
        Just(json!(18446744073709551615u64)),
        Just(serde_json::from_str::<Value>("18446744073709551616").unwrap()),
        Just(json!(1.5)),
        select(STATE_STRINGS).prop_map(|s| json!(s)),
        Just(json!([])),
        Just(json!({})),
    ]
}

/// JSON of any shape, with the state's own keys.
fn arbitrary_json() -> impl Strategy<Value = serde_json::Value> {
    state_leaf().prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..6).prop_map(serde_json::Value::Array),
            proptest::collection::vec(
                (select(STATE_KEYS).prop_union(select(STATE_STRINGS)), inner),
                0..6
            )
            .prop_map(|entries| serde_json::Value::Object(
                entries.into_iter().map(|(k, v)| (k.to_string(), v)).collect()
            )),
        ]
    })
}

/// One change somewhere in a state: the path is chosen by indices at each level.
#[derive(Debug, Clone)]
enum Mutation {
    Replace(serde_json::Value),
    Remove,
    /// Copies the value under another key of its object (or to the end of its array).
    Duplicate(&'static str),
    /// Moves the value to another key of its object.
    Rename(&'static str),
}

fn mutation() -> impl Strategy<Value = (Vec<proptest::sample::Index>, Mutation)> {
    let change = prop_oneof![
        4 => state_leaf().prop_map(Mutation::Replace),
        2 => Just(Mutation::Remove),
        1 => select(STATE_STRINGS).prop_map(Mutation::Duplicate),
        1 => select(STATE_STRINGS).prop_map(Mutation::Rename),
    ];
    (
        proptest::collection::vec(any::<proptest::sample::Index>(), 1..5),
        change,
    )
}

/// Applies `change` at the place `path` leads to (as deep as the value goes).
fn mutate(value: &mut serde_json::Value, path: &[proptest::sample::Index], change: Mutation) {
    use serde_json::Value;
    let (step, rest) = path.split_first().expect("a path of one step or more");
    let key = match value {
        Value::Object(map) if !map.is_empty() => {
            let key = map.keys().nth(step.index(map.len())).unwrap().clone();
            if !rest.is_empty() && matches!(map[&key], Value::Object(_) | Value::Array(_)) {
                return mutate(map.get_mut(&key).unwrap(), rest, change);
            }
            key
        }
        Value::Array(items) if !items.is_empty() => {
            let at = step.index(items.len());
            if !rest.is_empty() && matches!(items[at], Value::Object(_) | Value::Array(_)) {
                return mutate(&mut items[at], rest, change);
            }
            match change {
                Mutation::Replace(new) => items[at] = new,
                Mutation::Remove | Mutation::Rename(_) => {
                    items.remove(at);
                }
                Mutation::Duplicate(_) => items.push(items[at].clone()),
            }
            return;
        }
        _ => {
            if let Mutation::Replace(new) = change {
                *value = new;
            }
            return;
        }
    };
    let Value::Object(map) = value else {
        unreachable!("matched above")
    };
    match change {
        Mutation::Replace(new) => {
            map.insert(key, new);
        }
        Mutation::Remove => {
            map.remove(&key);
        }
        Mutation::Duplicate(other) => {
            let copy = map[&key].clone();
            map.insert(other.to_string(), copy);
        }
        Mutation::Rename(other) => {
            let moved = map.remove(&key).unwrap();
            map.insert(other.to_string(), moved);
        }
    }
}

/// The state `cnm apply scripts/seed.cnm` commits, as JSON.
fn seed_state() -> &'static serde_json::Value {
    static STATE: std::sync::OnceLock<serde_json::Value> = std::sync::OnceLock::new();
    STATE.get_or_init(|| {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts");
        let text = std::fs::read_to_string(dir.join("seed.cnm")).unwrap();
        let (model, _) = run(&text, &Model::empty()).expect("the seed checks");
        serde_json::from_str(&cnm::state::to_json(&model)).unwrap()
    })
}

/// Runs the read-only commands over `state` as state.json; none may panic.
fn commands_survive(state: &str) -> Result<(), TestCaseError> {
    static COUNTER: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("cnm-robustness-state-{}-{n}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("state.json"), state).unwrap();
    let commands: [&[&str]; 6] = [
        &["plan", "scripts/seed.cnm"],
        &["check", "scripts/seed.cnm"],
        &["show"],
        &["inspect", "A"],
        &["inspect", "backend"],
        &["inspect", "A.backend"],
    ];
    let mut outcome = Ok(());
    for args in commands {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_cnm"))
            .arg("--state-dir")
            .arg(&dir)
            .args(args)
            .env_remove("CNM_STATE_DIR")
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        if out.status.code() == Some(101) || stderr.contains("panicked") {
            outcome = Err(TestCaseError::fail(format!(
                "cnm {args:?} panicked on\n{state}\n{stderr}"
            )));
            break;
        }
    }
    let unchanged = std::fs::read_to_string(dir.join("state.json")).unwrap() == state;
    std::fs::remove_dir_all(&dir).unwrap();
    prop_assert!(unchanged, "state.json was overwritten");
    outcome
}

proptest! {
    #![proptest_config(config(64))]

    #[test]
    fn no_state_file_makes_a_command_panic(state in arbitrary_json()) {
        commands_survive(&state.to_string())?;
    }

    #[test]
    fn no_mutation_of_a_committed_state_makes_a_command_panic(
        mutations in proptest::collection::vec(mutation(), 1..4),
    ) {
        let mut state = seed_state().clone();
        for (path, change) in mutations {
            mutate(&mut state, &path, change);
        }
        commands_survive(&serde_json::to_string_pretty(&state).unwrap())?;
    }
}
