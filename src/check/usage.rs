//! The form of each statement, shown in help lines, and the options it takes.

/// `(keyword, usage, options)` for every statement.
const STATEMENTS: &[(&str, &str, &[&str])] = &[
    (
        "network",
        "network NAME [driver bridge|macvlan] [subnet CIDR] [gateway IP] [ip-range CIDR] [ipv6 CIDR] [bridge IFNAME] [mtu N] [internal] [parent IFNAME]",
        &["driver", "subnet", "gateway", "ip-range", "ipv6", "bridge", "mtu", "internal", "parent"],
    ),
    (
        "sandbox",
        "sandbox NAME [mode bridge|none|host|container:OTHER] [hostname H] [dns IP…]",
        &["mode", "hostname", "dns"],
    ),
    (
        "endpoint",
        "endpoint NAME on NETWORK [ip IP] [ipv6 IP] [mac MAC] [alias A…]",
        &["ip", "ipv6", "mac", "alias"],
    ),
    (
        "connect",
        "connect SANDBOX to NETWORK [endpoint NAME] [ip IP] [ipv6 IP] [mac MAC] [alias A…] [ifname NAME]",
        &["endpoint", "ip", "ipv6", "mac", "alias", "ifname"],
    ),
    ("disconnect", "disconnect SANDBOX from NETWORK", &[]),
    ("remove", "remove network|sandbox|endpoint NAME", &[]),
    ("stop", "stop SANDBOX", &[]),
    ("start", "start SANDBOX", &[]),
    (
        "publish",
        "publish SANDBOX HOSTPORT:PORT[/tcp|/udp] [host-ip IP]",
        &["host-ip"],
    ),
    ("exec", "exec SANDBOX -- COMMAND…", &[]),
    (
        "expect",
        "expect SANDBOX reaches|cannot reach TARGET [port N [udp]] [timeout DURATION]",
        &["port", "udp", "tcp", "timeout"],
    ),
    ("serve", "serve SANDBOX port N [udp]", &["port", "udp", "tcp"]),
    ("let", "let NAME = VALUE", &[]),
    ("for", "for VAR in START..END { … }", &[]),
    ("include", "include FILE", &[]),
];

pub fn keywords() -> impl Iterator<Item = &'static str> {
    STATEMENTS.iter().map(|(k, _, _)| *k)
}

fn entry(keyword: &str) -> &'static (&'static str, &'static str, &'static [&'static str]) {
    STATEMENTS
        .iter()
        .find(|(k, _, _)| *k == keyword)
        .unwrap_or_else(|| panic!("`{keyword}` is a statement keyword"))
}

/// The keyword as a `'static` str, for error kinds.
pub fn keyword(keyword: &str) -> &'static str {
    entry(keyword).0
}

pub fn usage(keyword: &str) -> &'static str {
    entry(keyword).1
}

pub fn options(keyword: &str) -> &'static [&'static str] {
    entry(keyword).2
}
