//! The one table of the statements: the form of each, shown in error messages and help;
//! the options it takes, each with what it means; and an example. The checker, the
//! REPL's `help` and completion, `cnm --help` and README's statement reference all read
//! it (a test keeps README in step).

/// One statement of the language.
pub struct Statement {
    pub keyword: &'static str,
    /// Its form, as error messages and help show it.
    pub usage: &'static str,
    /// What it does, in one line.
    pub summary: &'static str,
    /// The words that may follow its fixed part, as the grammar knows them.
    pub options: &'static [&'static str],
    /// `(option with its value, what it means)`, one per entry of `options`, in order.
    pub described: &'static [(&'static str, &'static str)],
    /// A script that shows it, checkable on its own against an empty state.
    pub example: &'static str,
}

const STATEMENTS: &[Statement] = &[
    Statement {
        keyword: "network",
        usage: "network NAME [driver bridge|macvlan] [subnet CIDR] [gateway IP] [ip-range CIDR] [ipv6 CIDR] [bridge IFNAME] [mtu N] [internal] [parent IFNAME]",
        summary: "a network: a Linux bridge (or a macvlan parent) with a subnet",
        options: &["driver", "subnet", "gateway", "ip-range", "ipv6", "bridge", "mtu", "internal", "parent"],
        described: &[
            ("driver bridge|macvlan", "the kind of network (default bridge)"),
            ("subnet CIDR", "its IPv4 subnet (default: the first free /24 of 10.89.0.0/16)"),
            ("gateway IP", "the bridge's address (default: the subnet's first host)"),
            ("ip-range CIDR", "where endpoint addresses are allocated from, inside the subnet"),
            ("ipv6 CIDR", "an IPv6 subnet too: dual stack"),
            ("bridge IFNAME", "the kernel bridge's name (default cnm-NAME)"),
            ("mtu N", "the MTU of the bridge and its veths (default 1500)"),
            ("internal", "no way out: no default route, no NAT, nothing forwarded in or out"),
            ("parent IFNAME", "the host interface a macvlan network sits on"),
        ],
        example: "network backend subnet 10.1.0.0/24 gateway 10.1.0.1 mtu 1400",
    },
    Statement {
        keyword: "sandbox",
        usage: "sandbox NAME [mode bridge|none|host|container:OTHER] [hostname H] [dns IP…]",
        summary: "a sandbox: a container's network namespace",
        options: &["mode", "hostname", "dns"],
        described: &[
            ("mode bridge|none|host|container:OTHER", "bridge joins the default network; none has loopback only; host uses the host's stack; container:OTHER shares OTHER's namespace (default bridge)"),
            ("hostname H", "the name of its own addresses in its hosts file"),
            ("dns IP…", "name servers for its resolv.conf"),
        ],
        example: "sandbox web mode none hostname www dns 1.1.1.1 8.8.8.8",
    },
    Statement {
        keyword: "endpoint",
        usage: "endpoint NAME on NETWORK [ip IP] [ipv6 IP] [mac MAC] [alias A…]",
        summary: "an endpoint on a network, made before a sandbox joins it",
        options: &["ip", "ipv6", "mac", "alias"],
        described: &[
            ("ip IP", "its IPv4 address (default: the lowest free one)"),
            ("ipv6 IP", "its IPv6 address, on a dual-stack network"),
            ("mac MAC", "its MAC address (default 02:42 and the IPv4 address)"),
            ("alias A…", "more names peers know it by"),
        ],
        example: "network backend subnet 10.1.0.0/24\nendpoint spare on backend ip 10.1.0.99 alias db",
    },
    Statement {
        keyword: "connect",
        usage: "connect SANDBOX to NETWORK [endpoint NAME] [ip IP] [ipv6 IP] [mac MAC] [alias A…] [ifname NAME]",
        summary: "join a sandbox to a network (the endpoint is SANDBOX.NETWORK unless named)",
        options: &["endpoint", "ip", "ipv6", "mac", "alias", "ifname"],
        described: &[
            ("endpoint NAME", "join an endpoint made before with `endpoint`"),
            ("ip IP", "its IPv4 address (default: the lowest free one)"),
            ("ipv6 IP", "its IPv6 address, on a dual-stack network"),
            ("mac MAC", "its MAC address (default 02:42 and the IPv4 address)"),
            ("alias A…", "more names peers know it by"),
            ("ifname NAME", "the interface's name inside the sandbox (default eth0, eth1, …)"),
        ],
        example: "network backend subnet 10.1.0.0/24\nsandbox A mode none\nconnect A to backend ip 10.1.0.5 alias db",
    },
    Statement {
        keyword: "disconnect",
        usage: "disconnect SANDBOX from NETWORK",
        summary: "take a sandbox off a network (its endpoint goes)",
        options: &[],
        described: &[],
        example: "network backend subnet 10.1.0.0/24\nsandbox A mode none\nconnect A to backend\ndisconnect A from backend",
    },
    Statement {
        keyword: "remove",
        usage: "remove network|sandbox|endpoint NAME",
        summary: "remove a network, a sandbox or an endpoint",
        options: &[],
        described: &[],
        example: "sandbox C mode none\nremove sandbox C",
    },
    Statement {
        keyword: "stop",
        usage: "stop SANDBOX",
        summary: "stop a sandbox: its namespace goes, its configuration stays",
        options: &[],
        described: &[],
        example: "sandbox web mode none\nstop web",
    },
    Statement {
        keyword: "start",
        usage: "start SANDBOX",
        summary: "start a stopped sandbox again, as it was",
        options: &[],
        described: &[],
        example: "sandbox web mode none\nstop web\nstart web",
    },
    Statement {
        keyword: "publish",
        usage: "publish SANDBOX HOSTPORT:PORT[/tcp|/udp] [host-ip IP]",
        summary: "reach a sandbox's port through a host port (DNAT), until the sandbox goes",
        options: &["host-ip"],
        described: &[("host-ip IP", "the host address to listen on (default: all)")],
        example: "sandbox web\npublish web 8080:80/tcp host-ip 127.0.0.1",
    },
    Statement {
        keyword: "exec",
        usage: "exec SANDBOX -- COMMAND…",
        summary: "run a command inside a sandbox",
        options: &[],
        described: &[],
        example: "sandbox B mode none\nexec B -- ip -br addr",
    },
    Statement {
        keyword: "expect",
        usage: "expect SANDBOX reaches|cannot reach TARGET [port N [udp]] [timeout DURATION]",
        summary: "assert that a sandbox reaches (or cannot reach) a sandbox, an alias, an address or `host`, probed from inside it once the script is applied",
        options: &["port", "udp", "tcp", "timeout"],
        described: &[
            ("port N", "probe this port rather than ping"),
            ("udp", "probe the port over UDP"),
            ("tcp", "probe the port over TCP (the default)"),
            ("timeout DURATION", "how long to wait (e.g. 500ms)"),
        ],
        example: "sandbox A mode none\nsandbox C mode none\nexpect A cannot reach C port 80 udp timeout 500ms",
    },
    Statement {
        keyword: "serve",
        usage: "serve SANDBOX port N [udp]",
        summary: "answer on a port inside a sandbox for the rest of the run, for `expect` (`cnm test`, the REPL)",
        options: &["port", "udp", "tcp"],
        described: &[
            ("port N", "the port to listen on"),
            ("udp", "listen over UDP"),
            ("tcp", "listen over TCP (the default)"),
        ],
        example: "sandbox web mode none\nserve web port 80",
    },
    Statement {
        keyword: "let",
        usage: "let NAME = VALUE",
        summary: "set a variable, used as $NAME or ${NAME}",
        options: &[],
        described: &[],
        example: "let net = backend\nnetwork $net subnet 10.1.0.0/24",
    },
    Statement {
        keyword: "for",
        usage: "for VAR in START..END { … }",
        summary: "repeat a block for each number of a range",
        options: &[],
        described: &[],
        example: "network frontend subnet 10.2.0.0/24\nfor i in 1..3 {\n    sandbox web$i mode none\n    connect web$i to frontend\n}",
    },
    Statement {
        keyword: "include",
        usage: "include FILE",
        summary: "read another script here (relative to the including file)",
        options: &[],
        described: &[],
        example: "include scripts/fleet.cnm",
    },
];

/// Every statement, in the order help lists them.
pub fn statements() -> &'static [Statement] {
    STATEMENTS
}

pub fn keywords() -> impl Iterator<Item = &'static str> {
    STATEMENTS.iter().map(|s| s.keyword)
}

/// The statement a keyword starts, if it is one.
pub fn statement(keyword: &str) -> Option<&'static Statement> {
    STATEMENTS.iter().find(|s| s.keyword == keyword)
}

fn entry(keyword: &str) -> &'static Statement {
    statement(keyword).unwrap_or_else(|| panic!("`{keyword}` is a statement keyword"))
}

/// The keyword as a `'static` str, for error kinds.
pub fn keyword(keyword: &str) -> &'static str {
    entry(keyword).keyword
}

pub fn usage(keyword: &str) -> &'static str {
    entry(keyword).usage
}

pub fn options(keyword: &str) -> &'static [&'static str] {
    entry(keyword).options
}

/// Whether an option of a statement stands alone, taking no value.
pub fn is_flag(option: &str) -> bool {
    matches!(option, "internal" | "udp" | "tcp")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Model;
    use crate::syntax::Sources;

    #[test]
    fn every_option_is_described_in_order() {
        for statement in statements() {
            let described: Vec<&str> = statement
                .described
                .iter()
                .map(|(form, _)| form.split_whitespace().next().unwrap())
                .collect();
            assert_eq!(described, statement.options, "{}", statement.keyword);
            assert!(
                statement.usage.starts_with(statement.keyword),
                "{}",
                statement.usage
            );
        }
    }

    /// README's statement reference, as this table makes it.
    fn reference() -> String {
        let cell = |text: &str| text.replace('|', "\\|");
        let mut text = String::from("| statement | what it does | options |\n| --- | --- | --- |\n");
        for s in statements() {
            let form = s.usage.split(" [").next().unwrap();
            let options: Vec<String> = s
                .described
                .iter()
                .map(|(form, what)| format!("`{}` {}", cell(form), cell(what)))
                .collect();
            text.push_str(&format!(
                "| `{}` | {} | {} |\n",
                cell(form),
                cell(s.summary),
                options.join("<br>")
            ));
        }
        text
    }

    #[test]
    fn readme_lists_every_statement_as_this_table_does() {
        let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
        let start = "<!-- statements: from src/check/usage.rs -->\n";
        let from = readme.find(start).expect("README marks its statement reference") + start.len();
        let to = from + readme[from..].find("<!-- end of statements -->").unwrap();
        assert_eq!(
            readme[from..to],
            reference(),
            "README's statement reference differs from src/check/usage.rs; it should read:\n{}",
            reference()
        );
    }

    #[test]
    fn every_example_checks_against_an_empty_state() {
        // `include` reads its file relative to the working directory, which `cargo test`
        // makes the repository's root.
        for statement in statements() {
            assert!(
                statement.example.contains(statement.keyword),
                "{}",
                statement.keyword
            );
            let mut sources = Sources::default();
            let id = sources.add("example", statement.example.to_string());
            let checked = crate::check::check(&mut sources, &[id], &Model::empty());
            assert!(
                checked.is_ok(),
                "the example of `{}` does not check:\n{}",
                statement.keyword,
                statement.example
            );
        }
    }
}
