//! Errors in a script: what went wrong (a kind with its facts), where (a span), and how
//! it is shown (miette). Every message is written here, once.

use std::fmt;
use std::sync::Arc;

use miette::{LabeledSpan, NamedSource};

use crate::model::{Driver, ObjectKind};
use crate::syntax::{Sources, Span};

/// One error, raised at a span of the source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    pub kind: ErrorKind,
    pub span: Span,
    /// Other places worth pointing at ("first declared here").
    pub related: Vec<(Span, String)>,
}

impl Diagnostic {
    pub fn new(kind: ErrorKind, span: Span) -> Diagnostic {
        Diagnostic {
            kind,
            span,
            related: Vec::new(),
        }
    }

    pub fn with_related(mut self, span: Span, label: impl Into<String>) -> Diagnostic {
        self.related.push((span, label.into()));
        self
    }

    /// A self-contained miette report: the message, its source and labels.
    pub fn render(&self, sources: &Sources) -> Rendered {
        let mut labels = vec![LabeledSpan::new_primary_with_span(
            Some(self.kind.label()),
            self.span.source_span(),
        )];
        labels.extend(
            self.related
                .iter()
                .filter(|(span, _)| span.file == self.span.file)
                .map(|(span, label)| LabeledSpan::new_with_span(Some(label.clone()), span.source_span())),
        );
        Rendered {
            message: self.kind.to_string(),
            code: self.kind.code(),
            help: self.kind.help(),
            source: sources.named_source(self.span.file),
            labels,
        }
    }
}

/// A [`Diagnostic`] made ready for miette's report handlers.
#[derive(Debug)]
pub struct Rendered {
    message: String,
    code: &'static str,
    help: Option<String>,
    source: NamedSource<Arc<str>>,
    labels: Vec<LabeledSpan>,
}

impl fmt::Display for Rendered {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Rendered {}

impl miette::Diagnostic for Rendered {
    fn code<'a>(&'a self) -> Option<Box<dyn fmt::Display + 'a>> {
        Some(Box::new(format!("cnm::{}", self.code)))
    }

    fn help<'a>(&'a self) -> Option<Box<dyn fmt::Display + 'a>> {
        self.help.as_ref().map(|h| Box::new(h) as Box<dyn fmt::Display>)
    }

    fn source_code(&self) -> Option<&dyn miette::SourceCode> {
        Some(&self.source)
    }

    fn labels(&self) -> Option<Box<dyn Iterator<Item = LabeledSpan> + '_>> {
        Some(Box::new(self.labels.iter().cloned()))
    }
}

/// How a value of each kind is written, for the help line of an invalid one.
fn value_example(what: &str) -> &'static str {
    match what {
        "subnet" | "ip-range" => {
            "write a subnet as ADDRESS/PREFIX with no host bits set, such as 10.1.0.0/24"
        }
        "IPv6 subnet" => "write an IPv6 subnet as ADDRESS/PREFIX, such as fd00:1::/64",
        "gateway" | "IPv4 address" => "write an IPv4 address as four numbers, such as 10.1.0.5",
        "IPv6 address" => "write an IPv6 address such as fd00::5, on a network declared with `ipv6 CIDR`",
        "DNS server" => "write an address such as 10.1.0.5 or fd00::5",
        "host address" => "write an IPv4 address of the host, such as 127.0.0.1",
        "MAC address" => "write a MAC as six hex pairs with an even first byte, such as 02:42:0a:01:00:05",
        "MTU" => "write the MTU as a whole number of bytes from 68 to 65535, such as 1500",
        "interface name" => "interface names are 1 to 15 letters, digits, `_`, `.` or `-`",
        "hostname" | "alias" => "write dot-separated labels of letters, digits and `-`, such as web.internal",
        "driver" => "the drivers are bridge and macvlan",
        "mode" => "the modes are bridge, none, host and container:OTHER",
        "port" => "a port is a number from 1 to 65535",
        "port mapping" => "write HOSTPORT:PORT with an optional /tcp or /udp, such as 8080:80 or 5353:53/udp",
        "timeout" => "write a duration as a number and a unit, such as 500ms, 2s or 1m",
        _ => "see the statement's usage in README.md",
    }
}

fn did_you_mean(suggestion: &Option<String>) -> Option<String> {
    suggestion.as_ref().map(|s| format!("did you mean `{s}`?"))
}

/// What is wrong, with the facts a message needs.
#[derive(Debug, Clone, PartialEq, Eq, Hash, thiserror::Error)]
pub enum ErrorKind {
    #[error("syntax error: found {found}, expected {expected}")]
    Syntax { found: String, expected: String },

    #[error("`{opener}` is never closed")]
    Unclosed { opener: char, closer: char },

    #[error("unknown statement `{word}`")]
    UnknownStatement {
        word: String,
        suggestion: Option<String>,
    },

    #[error("malformed `{keyword}` statement")]
    MalformedStatement { keyword: String, usage: &'static str },

    #[error("unknown option `{option}` for `{statement}`")]
    UnknownOption {
        statement: &'static str,
        option: String,
        suggestion: Option<String>,
        usage: &'static str,
    },

    #[error("option `{option}` needs a value")]
    MissingValue { option: String, usage: &'static str },

    #[error("option `{option}` is given twice")]
    RepeatedOption { option: String },

    #[error("unknown {kind} `{name}`")]
    UnknownReference {
        kind: ObjectKind,
        name: String,
        suggestion: Option<String>,
    },

    #[error("unknown object kind `{word}`")]
    UnknownObjectKind {
        word: String,
        suggestion: Option<String>,
    },

    #[error("{kind} `{name}` is declared twice")]
    Duplicate { kind: ObjectKind, name: String },

    #[error("invalid name `{name}`: {reason}")]
    InvalidName { name: String, reason: &'static str },

    #[error("invalid {what} `{value}`: {reason}")]
    InvalidValue {
        what: &'static str,
        value: String,
        reason: String,
    },

    #[error("gateway {gateway} is outside subnet {subnet}")]
    GatewayOutsideSubnet { gateway: String, subnet: String },

    #[error("gateway {gateway} is the {which} address of subnet {subnet}")]
    GatewayReserved {
        gateway: String,
        which: &'static str,
        subnet: String,
    },

    #[error("subnet {subnet} is too small for a {driver} network")]
    SubnetTooSmall {
        subnet: String,
        driver: Driver,
        /// The longest prefix that leaves room for a gateway and an endpoint.
        longest_prefix: u8,
    },

    #[error("ip-range {range} is outside subnet {subnet}")]
    IpRangeOutsideSubnet { range: String, subnet: String },

    #[error("subnet {subnet} of network `{network}` overlaps subnet {other_subnet} of network `{other}`")]
    SubnetOverlap {
        network: String,
        subnet: String,
        other: String,
        other_subnet: String,
    },

    #[error("address {ip} is outside subnet {subnet} of network `{network}`")]
    AddressOutsideSubnet {
        ip: String,
        subnet: String,
        network: String,
    },

    #[error("address {ip} is the gateway of network `{network}`")]
    AddressIsGateway { ip: String, network: String },

    #[error("address {ip} is the {which} address of subnet {subnet}")]
    AddressReserved {
        ip: String,
        which: &'static str,
        subnet: String,
    },

    #[error("address {ip} on network `{network}` is already taken by {holder}")]
    AddressTaken {
        ip: String,
        network: String,
        holder: String,
    },

    #[error("MAC {mac} on network `{network}` is already taken by {holder}")]
    MacTaken {
        mac: String,
        network: String,
        holder: String,
    },

    #[error("network `{network}` has no free address left in {range}")]
    AddressesExhausted { network: String, range: String },

    #[error("sandbox `{sandbox}` is connected to network `{network}` twice")]
    ConnectedTwice { sandbox: String, network: String },

    #[error("sandbox `{sandbox}` is not connected to network `{network}`")]
    NotConnected { sandbox: String, network: String },

    #[error("sandbox `{sandbox}` shares the namespace of `{target}`, which itself shares the namespace of `{target_target}`")]
    SharedNamespaceChain {
        sandbox: String,
        target: String,
        target_target: String,
    },

    #[error("sandbox `{sandbox}` cannot share its own namespace")]
    SharedNamespaceCycle { sandbox: String },

    #[error("sandbox `{sandbox}` is in {mode} mode and cannot be connected to a network")]
    ConnectWithoutNamespace { sandbox: String, mode: String },

    #[error("network `{network}` still has endpoints: {endpoints}")]
    NetworkInUse { network: String, endpoints: String },

    #[error("endpoint `{endpoint}` is joined to sandbox `{sandbox}`")]
    EndpointInUse { endpoint: String, sandbox: String },

    #[error("endpoint `{endpoint}` is on network `{actual}`, not `{network}`")]
    EndpointOnOtherNetwork {
        endpoint: String,
        actual: String,
        network: String,
    },

    #[error("sandbox `{sandbox}` is shared by {users}")]
    SandboxShared { sandbox: String, users: String },

    #[error("bridge `{bridge}` is already the bridge of network `{other}`")]
    BridgeTaken { bridge: String, other: String },

    #[error(
        "network `{network}` would have {ports} endpoints on bridge `{bridge}`, which holds at most {limit}"
    )]
    BridgeFull {
        network: String,
        bridge: String,
        ports: usize,
        limit: usize,
    },

    #[error("interface `{ifname}` already exists in sandbox `{sandbox}`")]
    IfnameTaken { ifname: String, sandbox: String },

    #[error("driver macvlan needs `parent IFNAME`")]
    MacvlanWithoutParent,

    #[error("MTU {value} is outside 68..65535")]
    MtuOutOfRange { value: String },

    #[error("undefined variable `${name}`")]
    UndefinedVariable {
        name: String,
        suggestion: Option<String>,
    },

    #[error("invalid range `{text}`: {reason}")]
    BadRange { text: String, reason: String },

    #[error("cannot include `{path}`: {reason}")]
    IncludeUnreadable { path: String, reason: String },

    #[error("include cycle: {chain}")]
    IncludeCycle { chain: String },

    #[error("{kind} `{name}` already exists with {differences}")]
    ConfigConflict {
        kind: ObjectKind,
        name: String,
        differences: String,
    },

    #[error("subnet {subnet} is too large: it would take in the addresses of other networks, the host's LAN and the internet")]
    SubnetTooLarge { subnet: String, shortest_prefix: u8 },

    #[error("subnet {subnet} overlaps the host's own network: {address} on {interface}")]
    SubnetOnHost {
        subnet: String,
        address: String,
        interface: String,
    },

    #[error("word too long: {reason}")]
    ExpansionTooLong { reason: String },

    #[error("host port {port} is already published by sandbox `{holder}` ({mapping})")]
    PortTaken {
        port: String,
        holder: String,
        mapping: String,
    },
}

impl ErrorKind {
    /// A stable identifier, shown as `cnm::<code>` and usable in tests and scripts.
    pub fn code(&self) -> &'static str {
        use ErrorKind::*;
        match self {
            Syntax { .. } => "syntax",
            Unclosed { .. } => "unclosed",
            UnknownStatement { .. } => "unknown-statement",
            MalformedStatement { .. } => "malformed-statement",
            UnknownOption { .. } => "unknown-option",
            MissingValue { .. } => "missing-value",
            RepeatedOption { .. } => "repeated-option",
            UnknownReference { .. } => "unknown-reference",
            UnknownObjectKind { .. } => "unknown-object-kind",
            Duplicate { .. } => "duplicate",
            InvalidName { .. } => "invalid-name",
            InvalidValue { .. } => "invalid-value",
            GatewayOutsideSubnet { .. } => "gateway-outside-subnet",
            GatewayReserved { .. } => "gateway-reserved",
            SubnetTooSmall { .. } => "subnet-too-small",
            IpRangeOutsideSubnet { .. } => "ip-range-outside-subnet",
            SubnetOverlap { .. } => "subnet-overlap",
            AddressOutsideSubnet { .. } => "address-outside-subnet",
            AddressIsGateway { .. } => "address-is-gateway",
            AddressReserved { .. } => "address-reserved",
            AddressTaken { .. } => "address-taken",
            MacTaken { .. } => "mac-taken",
            AddressesExhausted { .. } => "addresses-exhausted",
            ConnectedTwice { .. } => "connected-twice",
            NotConnected { .. } => "not-connected",
            SharedNamespaceChain { .. } => "shared-namespace-chain",
            SharedNamespaceCycle { .. } => "shared-namespace-cycle",
            ConnectWithoutNamespace { .. } => "connect-without-namespace",
            NetworkInUse { .. } => "network-in-use",
            EndpointInUse { .. } => "endpoint-in-use",
            EndpointOnOtherNetwork { .. } => "endpoint-on-other-network",
            SandboxShared { .. } => "sandbox-shared",
            BridgeTaken { .. } => "bridge-taken",
            BridgeFull { .. } => "bridge-full",
            IfnameTaken { .. } => "ifname-taken",
            MacvlanWithoutParent => "macvlan-without-parent",
            MtuOutOfRange { .. } => "mtu-out-of-range",
            UndefinedVariable { .. } => "undefined-variable",
            BadRange { .. } => "bad-range",
            IncludeUnreadable { .. } => "include-unreadable",
            IncludeCycle { .. } => "include-cycle",
            ConfigConflict { .. } => "config-conflict",
            PortTaken { .. } => "port-taken",
            ExpansionTooLong { .. } => "expansion-too-long",
            SubnetTooLarge { .. } => "subnet-too-large",
            SubnetOnHost { .. } => "subnet-on-host",
        }
    }

    /// The few words under the offending source.
    pub fn label(&self) -> String {
        use ErrorKind::*;
        match self {
            Syntax { found, .. } => format!("unexpected {found}"),
            Unclosed { .. } => "opened here".into(),
            UnknownStatement { .. } => "not a statement".into(),
            MalformedStatement { .. } => "these words do not fit the statement".into(),
            UnknownOption { .. } => "unknown option".into(),
            MissingValue { .. } => "no value after this".into(),
            RepeatedOption { .. } => "given again here".into(),
            UnknownReference { kind, .. } => format!("no such {kind}"),
            UnknownObjectKind { .. } => "not network, sandbox or endpoint".into(),
            Duplicate { .. } => "declared again here".into(),
            InvalidName { .. } => "invalid name".into(),
            InvalidValue { what, .. } => format!("invalid {what}"),
            GatewayOutsideSubnet { .. } | GatewayReserved { .. } => "gateway".into(),
            SubnetTooSmall { .. } => "too small".into(),
            IpRangeOutsideSubnet { .. } => "outside the subnet".into(),
            SubnetOverlap { .. } => "overlapping subnet".into(),
            AddressOutsideSubnet { .. } => "outside the subnet".into(),
            AddressIsGateway { .. } => "the gateway's address".into(),
            AddressReserved { which, .. } => format!("the {which} address"),
            AddressTaken { holder, .. } => format!("taken by {holder}"),
            MacTaken { holder, .. } => format!("taken by {holder}"),
            AddressesExhausted { .. } => "no address left for this".into(),
            ConnectedTwice { .. } => "connected again here".into(),
            NotConnected { .. } => "not connected".into(),
            SharedNamespaceChain { .. } => "shares a shared namespace".into(),
            SharedNamespaceCycle { .. } => "refers to itself".into(),
            ConnectWithoutNamespace { .. } => "has no namespace of its own".into(),
            NetworkInUse { .. } => "still in use".into(),
            EndpointInUse { .. } => "still joined".into(),
            EndpointOnOtherNetwork { .. } => "on another network".into(),
            SandboxShared { .. } => "still shared".into(),
            BridgeTaken { .. } => "bridge already in use".into(),
            BridgeFull { .. } => "one endpoint too many".into(),
            IfnameTaken { .. } => "interface name in use".into(),
            MacvlanWithoutParent => "macvlan needs a parent".into(),
            MtuOutOfRange { .. } => "MTU out of range".into(),
            UndefinedVariable { .. } => "not defined".into(),
            BadRange { .. } => "bad range".into(),
            IncludeUnreadable { .. } => "cannot be read".into(),
            IncludeCycle { .. } => "closes the cycle".into(),
            ConfigConflict { .. } => "differs from what exists".into(),
            PortTaken { holder, .. } => format!("taken by {holder}"),
            ExpansionTooLong { .. } => "expands too far".into(),
            SubnetTooLarge { .. } => "too large".into(),
            SubnetOnHost { .. } => "the host's network".into(),
        }
    }

    /// One line on how to fix it.
    pub fn help(&self) -> Option<String> {
        use ErrorKind::*;
        match self {
            Syntax { found, expected } => Some(if found == "`\\`" {
                "outside quotes, `\\` continues a line: it must be the last character before the line break"
                    .into()
            } else if expected.contains("variable name") {
                "a variable is `$name` or `${name}`; write a literal `$` inside single quotes".into()
            } else if found == "`}`" {
                "this `}` closes no `{`; remove it or open the block it ends".into()
            } else {
                "a statement is a keyword and its words, one per line or `;`-separated".into()
            }),
            Unclosed { closer, .. } => Some(format!(
                "add the matching `{closer}`; everything after this was read as part of it"
            )),
            UnknownStatement { suggestion, .. } => did_you_mean(suggestion).or_else(|| {
                Some("statements: network, sandbox, endpoint, connect, disconnect, remove, stop, start, publish, exec, expect, serve, let, for, include".into())
            }),
            MalformedStatement { usage, .. } => Some(format!("usage: {usage}")),
            UnknownOption { suggestion, usage, .. } => {
                did_you_mean(suggestion).or_else(|| Some(format!("usage: {usage}")))
            }
            MissingValue { usage, .. } => Some(format!("usage: {usage}")),
            RepeatedOption { .. } => Some("give each option once".into()),
            UnknownReference { kind, suggestion, .. } => did_you_mean(suggestion)
                .or_else(|| Some(format!("declare the {kind} before this statement"))),
            UnknownObjectKind { suggestion, .. } => did_you_mean(suggestion)
                .or_else(|| Some("usage: remove network|sandbox|endpoint NAME".into())),
            Duplicate { .. } => Some("each name is declared once; use another name".into()),
            InvalidName { .. } => Some(
                "names start with a letter or digit, then letters, digits, `_`, `.` or `-`; at most 64 bytes".into(),
            ),
            InvalidValue { what, .. } => Some(value_example(what).to_string()),
            GatewayOutsideSubnet { .. } | GatewayReserved { .. } => {
                Some("pick a host address inside the subnet, or leave the gateway out to use the first one".into())
            }
            SubnetTooSmall {
                driver,
                longest_prefix,
                ..
            } => Some(format!(
                "a {driver} network needs room for a gateway and endpoints: use a prefix of /{longest_prefix} or shorter"
            )),
            IpRangeOutsideSubnet { .. } => Some("the ip-range must lie inside the subnet".into()),
            SubnetOverlap { .. } => Some("give each network a subnet of its own".into()),
            AddressOutsideSubnet { .. } | AddressIsGateway { .. } | AddressReserved { .. } => {
                Some("pick a free host address inside the subnet, or leave `ip` out to have one allocated".into())
            }
            AddressTaken { .. } => Some("each address is given to one endpoint; pick another or leave `ip` out".into()),
            MacTaken { .. } => Some("each endpoint on a network has a MAC of its own; pick another or leave `mac` out".into()),
            AddressesExhausted { .. } => Some("use a larger subnet or ip-range, or remove endpoints".into()),
            ConnectedTwice { .. } => Some("a sandbox has one endpoint per network".into()),
            NotConnected { .. } => {
                Some("`disconnect` undoes a `connect` made earlier, by this script or a previous one".into())
            }
            SharedNamespaceChain { target_target, .. } => {
                Some(format!("share the namespace of `{target_target}` directly"))
            }
            SharedNamespaceCycle { .. } => Some("name another sandbox after `container:`".into()),
            ConnectWithoutNamespace { .. } => Some("connect the sandbox whose namespace it uses, or give it mode none or bridge".into()),
            NetworkInUse { .. } => Some("disconnect or remove those endpoints first".into()),
            EndpointInUse { sandbox, .. } => Some(format!("disconnect `{sandbox}` first")),
            EndpointOnOtherNetwork { .. } => Some("an endpoint joins the network it was created on".into()),
            SandboxShared { .. } => Some("remove the sandboxes that share its namespace first".into()),
            BridgeTaken { .. } => Some("give each network its own bridge".into()),
            BridgeFull { limit, .. } => Some(format!(
                "a Linux bridge holds at most {limit} ports: spread the sandboxes over more networks, or stop some"
            )),
            IfnameTaken { .. } => Some("give the endpoint another `ifname`".into()),
            MacvlanWithoutParent => Some("name the host interface to attach to, e.g. `parent eth0`".into()),
            MtuOutOfRange { .. } => Some("Linux accepts an MTU from 68 to 65535".into()),
            UndefinedVariable { suggestion, .. } => did_you_mean(suggestion)
                .or_else(|| Some("define it first with `let NAME = VALUE`".into())),
            BadRange { .. } => Some("a range is START..END with whole numbers, START <= END, e.g. `1..10`".into()),
            IncludeUnreadable { .. } => Some("paths are relative to the including file".into()),
            IncludeCycle { .. } => Some("a file cannot include itself, directly or through others".into()),
            ConfigConflict { kind, name, .. } => Some(format!(
                "declarations must match what exists; `remove {kind} {name}` first to change it"
            )),
            SubnetTooLarge { shortest_prefix, .. } => Some(format!(
                "give the network a prefix of /{shortest_prefix} or longer, such as 10.1.0.0/24"
            )),
            SubnetOnHost { interface, .. } => Some(format!(
                "pick a subnet that {interface} does not use (as Podman refuses it too), or leave `subnet` out to get a free one"
            )),
            ExpansionTooLong { .. } => Some(
                "a variable that contains itself twice doubles at each `let`; build long values another way".into(),
            ),
            PortTaken { holder, .. } => Some(format!(
                "a host port leads to one sandbox: pick another, or `remove sandbox {holder}` first"
            )),
        }
    }
}
