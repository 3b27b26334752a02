//! `network NAME [driver …] [subnet …] …`: a bridge or macvlan network with its
//! addressing. The rules a subnet and a bridge name must keep are here too, for the
//! default network to share.

use std::net::{Ipv4Addr, Ipv6Addr};

use ipnetwork::{Ipv4Network, Ipv6Network};

use super::differences::{list_or_none, Differences};
use super::{values, Checker};
use crate::error::{Diagnostic, ErrorKind};
use crate::model::{
    bridge_name, object_id, subnets_overlap, Driver, Ipv6Subnet, Network, ObjectKind, DEFAULT_MTU,
};
use crate::syntax::{Opt, Span, Word};

/// The longest IPv4 prefix a network may have: a /30 holds the network address, the
/// gateway, one endpoint and the broadcast address. A /31 (RFC 3021) has no room for a
/// gateway besides its one endpoint, and a /32 has room for nothing; so for macvlan too,
/// whose gateway is a router on the parent's link.
pub const LONGEST_PREFIX_V4: u8 = 30;
/// The shortest IPv4 prefix a network may have: a /8 is already a whole class A.
pub const SHORTEST_PREFIX_V4: u8 = 8;
/// The longest IPv6 prefix: a /126 holds the subnet-router anycast address (`::0`), the
/// gateway (`::1`) and two endpoints; a /127 would hold the gateway alone.
pub const LONGEST_PREFIX_V6: u8 = 126;

/// Networks declared without a subnet get the first free /24 of this pool, as Podman does.
const AUTO_SUBNET_POOL: Ipv4Addr = Ipv4Addr::new(10, 89, 0, 0);

/// The options of one `network` statement: each value that parsed, and the word it
/// came from (for the place of an error about it).
#[derive(Default)]
struct NetworkOptions<'w> {
    driver: Option<(Driver, &'w Word)>,
    subnet: Option<(Ipv4Network, &'w Word)>,
    /// Whether `subnet` was given, even with a value that did not parse.
    subnet_given: bool,
    gateway: Option<(Ipv4Addr, &'w Word)>,
    ip_range: Option<(Ipv4Network, &'w Word)>,
    ipv6: Option<(Ipv6Network, &'w Word)>,
    bridge: Option<(String, &'w Word)>,
    parent: Option<String>,
    mtu: Option<u32>,
    internal: Option<bool>,
}

impl Checker<'_> {
    pub(super) fn network(&mut self, span: Span, name_word: &Word, options: &[Opt]) {
        let Some(name) = self.name(name_word) else { return };
        let errors_before = self.errors.len();
        let options = self.network_options(options);
        if !self.declare(ObjectKind::Network, &name, span) {
            return;
        }
        let parsed = self.errors.len() == errors_before;
        if parsed {
            if let Some(existing) = self.model.networks.get(&name) {
                let differences = network_differences(existing, &options);
                if let Some(kind) = differences.into_error(ObjectKind::Network, &name) {
                    self.error(kind, span);
                }
                return;
            }
        }
        // Every check whose values parsed runs, so that one statement reports all its
        // errors; the network joins the model only if there were none.
        let here = |word: Option<&Word>| word.map_or(name_word.span, |w| w.span);
        let driver = options.driver.map_or(Driver::Bridge, |(driver, _)| driver);
        let subnet = self.network_subnet(&name, &options, span);
        if let Some(subnet) = subnet {
            let subnet_span = here(options.subnet.map(|(_, w)| w));
            self.check_addressing(subnet, &options, subnet_span);
            self.subnet_free(&name, subnet, subnet_span);
        }
        if let Some((ipv6, word)) = options.ipv6 {
            if ipv6.prefix() > LONGEST_PREFIX_V6 {
                let kind = ErrorKind::SubnetTooSmall {
                    subnet: ipv6.to_string(),
                    driver,
                    longest_prefix: LONGEST_PREFIX_V6,
                };
                self.error(kind, word.span);
            }
        }
        if driver == Driver::Macvlan && options.parent.is_none() {
            self.error(
                ErrorKind::MacvlanWithoutParent,
                here(options.driver.map(|(_, w)| w)),
            );
        }
        let id = object_id(ObjectKind::Network, &name);
        let bridge = match driver {
            Driver::Bridge => Some(
                options
                    .bridge
                    .as_ref()
                    .map_or_else(|| bridge_name(&name, &id), |(bridge, _)| bridge.clone()),
            ),
            Driver::Macvlan => None,
        };
        if let Some(bridge) = &bridge {
            self.bridge_free(bridge, here(options.bridge.as_ref().map(|(_, w)| *w)));
        }
        let (Some(subnet), true) = (subnet, self.errors.len() == errors_before) else {
            self.broken.insert((ObjectKind::Network, name));
            return;
        };
        let network = Network {
            name: name.clone(),
            id,
            driver,
            subnet,
            gateway: options
                .gateway
                .map_or_else(|| first_host(subnet), |(gateway, _)| gateway),
            ip_range: options.ip_range.map(|(range, _)| range),
            ipv6: options.ipv6.map(|(subnet, _)| Ipv6Subnet {
                subnet,
                gateway: first_host6(subnet),
            }),
            bridge,
            parent: options.parent,
            mtu: options.mtu.unwrap_or(DEFAULT_MTU),
            internal: options.internal.unwrap_or(false),
        };
        self.causes.made(ObjectKind::Network, name.clone(), span);
        self.model.networks.insert(name, network);
    }

    /// Each option's value, parsed; an error for each that does not parse.
    fn network_options<'w>(&mut self, options: &'w [Opt]) -> NetworkOptions<'w> {
        let options = self.options(options);
        let word =
            |checker: &mut Self, key: &str| options.get(key).and_then(|o| checker.single(o, "network"));

        let mut parsed = NetworkOptions::default();
        if let Some(w) = word(self, "driver") {
            let driver = self.value(w, "driver", |t| match t {
                "bridge" => Ok(Driver::Bridge),
                "macvlan" => Ok(Driver::Macvlan),
                _ => Err("the drivers are bridge and macvlan"),
            });
            parsed.driver = with_word(driver, w);
        }
        if let Some(w) = word(self, "subnet") {
            parsed.subnet = with_word(self.value(w, "subnet", values::subnet4), w);
        }
        parsed.subnet_given = options.contains_key("subnet");
        if let Some(w) = word(self, "gateway") {
            parsed.gateway = with_word(self.value(w, "gateway", values::ipv4), w);
        }
        if let Some(w) = word(self, "ip-range") {
            parsed.ip_range = with_word(self.value(w, "ip-range", values::subnet4), w);
        }
        if let Some(w) = word(self, "ipv6") {
            parsed.ipv6 = with_word(self.value(w, "IPv6 subnet", values::subnet6), w);
        }
        if let Some(w) = word(self, "bridge") {
            parsed.bridge = with_word(self.value(w, "interface name", ifname), w);
        }
        parsed.parent = word(self, "parent").and_then(|w| self.value(w, "interface name", ifname));
        parsed.mtu = word(self, "mtu").and_then(|w| self.mtu(w));
        parsed.internal = options.contains_key("internal").then_some(true);
        parsed
    }

    fn mtu(&mut self, word: &Word) -> Option<u32> {
        let text = self.expand(word)?;
        match values::mtu(&text) {
            Ok(mtu) => Some(mtu),
            Err(Some(reason)) => {
                self.error(
                    ErrorKind::InvalidValue {
                        what: "MTU",
                        value: text,
                        reason,
                    },
                    word.span,
                );
                None
            }
            Err(None) => {
                self.error(ErrorKind::MtuOutOfRange { value: text }, word.span);
                None
            }
        }
    }

    /// The subnet given, or the first free one of the automatic pool if none is.
    fn network_subnet(&mut self, name: &str, options: &NetworkOptions, span: Span) -> Option<Ipv4Network> {
        if let Some((subnet, _)) = options.subnet {
            return Some(subnet);
        }
        if options.subnet_given {
            // Given, but without a valid value: that error is reported already.
            return None;
        }
        let free = self.free_subnet();
        if free.is_none() {
            self.error(
                ErrorKind::AddressesExhausted {
                    network: name.to_string(),
                    range: format!("{AUTO_SUBNET_POOL}/16, the pool for networks declared without a subnet"),
                },
                span,
            );
        }
        free
    }

    /// The first /24 of the automatic pool that overlaps no network.
    fn free_subnet(&self) -> Option<Ipv4Network> {
        (0..=255u8)
            .map(|i| {
                let [a, b, _, _] = AUTO_SUBNET_POOL.octets();
                Ipv4Network::new(Ipv4Addr::new(a, b, i, 0), 24).expect("a /24")
            })
            .find(|candidate| {
                !self
                    .model
                    .networks
                    .values()
                    .any(|n| subnets_overlap(n.subnet, *candidate))
            })
    }

    /// The subnet has room for a gateway and endpoints; the gateway and the ip-range lie
    /// inside it.
    fn check_addressing(&mut self, subnet: Ipv4Network, options: &NetworkOptions, subnet_span: Span) {
        let driver = options.driver.map_or(Driver::Bridge, |(driver, _)| driver);
        if subnet.prefix() > LONGEST_PREFIX_V4 {
            self.error(
                ErrorKind::SubnetTooSmall {
                    subnet: subnet.to_string(),
                    driver,
                    longest_prefix: LONGEST_PREFIX_V4,
                },
                subnet_span,
            );
        }
        if subnet.prefix() < SHORTEST_PREFIX_V4 {
            self.error(
                ErrorKind::SubnetTooLarge {
                    subnet: subnet.to_string(),
                    shortest_prefix: SHORTEST_PREFIX_V4,
                },
                subnet_span,
            );
        }
        if let Some((gateway, word)) = options.gateway {
            if let Some(kind) = gateway_problem(subnet, gateway) {
                self.error(kind, word.span);
            }
        }
        if let Some((range, word)) = options.ip_range {
            if !(subnet.contains(range.network()) && subnet.contains(range.broadcast())) {
                self.error(
                    ErrorKind::IpRangeOutsideSubnet {
                        range: range.to_string(),
                        subnet: subnet.to_string(),
                    },
                    word.span,
                );
            }
        }
    }

    /// Whether `subnet` overlaps no other network's; an error at `span` if it does.
    pub(super) fn subnet_free(&mut self, network: &str, subnet: Ipv4Network, span: Span) -> bool {
        let Some(other) = self
            .model
            .networks
            .values()
            .find(|n| subnets_overlap(n.subnet, subnet))
        else {
            return true;
        };
        let kind = ErrorKind::SubnetOverlap {
            network: network.to_string(),
            subnet: subnet.to_string(),
            other: other.name.clone(),
            other_subnet: other.subnet.to_string(),
        };
        let other = other.name.clone();
        self.error_with_declaration(kind, span, &other);
        false
    }

    /// Whether no other network has the bridge `bridge`; an error at `span` if one has.
    pub(super) fn bridge_free(&mut self, bridge: &str, span: Span) -> bool {
        let Some(other) = self
            .model
            .networks
            .values()
            .find(|n| n.bridge.as_deref() == Some(bridge))
        else {
            return true;
        };
        let kind = ErrorKind::BridgeTaken {
            bridge: bridge.to_string(),
            other: other.name.clone(),
        };
        let other = other.name.clone();
        self.error_with_declaration(kind, span, &other);
        false
    }

    /// An error about a clash with network `other`, pointing also at its declaration
    /// when this script made it.
    fn error_with_declaration(&mut self, kind: ErrorKind, span: Span, other: &str) {
        let mut diagnostic = Diagnostic::new(kind, span);
        if let Some(first) = self.declared.get(&(ObjectKind::Network, other.to_string())) {
            diagnostic = diagnostic.with_related(*first, format!("`{other}` is declared here"));
        }
        self.errors.push(diagnostic);
    }
}

/// A value and the word it came from.
fn with_word<T>(value: Option<T>, word: &Word) -> Option<(T, &Word)> {
    value.map(|v| (v, word))
}

/// How an existing network differs from the options a statement gives.
fn network_differences(existing: &Network, wanted: &NetworkOptions) -> Differences {
    let mut differences = Differences::default();
    differences.compare("driver", existing.driver, wanted.driver.map(|(d, _)| d));
    differences.compare("subnet", existing.subnet, wanted.subnet.map(|(s, _)| s));
    differences.compare("gateway", existing.gateway, wanted.gateway.map(|(g, _)| g));
    differences.compare(
        "ip-range",
        list_or_none(existing.ip_range.as_slice()),
        wanted.ip_range.map(|(r, _)| r.to_string()),
    );
    differences.compare(
        "ipv6",
        list_or_none(&existing.ipv6.map(|v| v.subnet).into_iter().collect::<Vec<_>>()),
        wanted.ipv6.map(|(v, _)| v.to_string()),
    );
    differences.compare(
        "bridge",
        existing.bridge.as_deref().unwrap_or("none"),
        wanted.bridge.as_ref().map(|(b, _)| b.as_str()),
    );
    differences.compare("mtu", existing.mtu, wanted.mtu);
    differences.compare("internal", existing.internal, wanted.internal);
    differences.compare(
        "parent",
        existing.parent.as_deref().unwrap_or("none"),
        wanted.parent.as_deref(),
    );
    differences
}

/// A valid interface name, as an owned value.
pub(super) fn ifname(text: &str) -> Result<String, String> {
    values::ifname(text).map(|()| text.to_string())
}

/// The address after the network address: the gateway unless another is given.
pub(super) fn first_host(subnet: Ipv4Network) -> Ipv4Addr {
    subnet
        .nth(1)
        .expect("a subnet of /30 or shorter holds a second address")
}

fn first_host6(subnet: Ipv6Network) -> Ipv6Addr {
    let network = u128::from(subnet.network());
    let first = network
        .checked_add(1)
        .expect("a subnet of /126 or shorter holds a second address");
    Ipv6Addr::from(first)
}

/// Why a gateway cannot serve its subnet, if it cannot.
fn gateway_problem(subnet: Ipv4Network, gateway: Ipv4Addr) -> Option<ErrorKind> {
    let which = if !subnet.contains(gateway) {
        return Some(ErrorKind::GatewayOutsideSubnet {
            gateway: gateway.to_string(),
            subnet: subnet.to_string(),
        });
    } else if gateway == subnet.network() {
        "network"
    } else if gateway == subnet.broadcast() {
        "broadcast"
    } else {
        return None;
    };
    Some(ErrorKind::GatewayReserved {
        gateway: gateway.to_string(),
        which,
        subnet: subnet.to_string(),
    })
}
