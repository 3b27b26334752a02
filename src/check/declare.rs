//! Declarations: `network`, `sandbox`, `endpoint` and `connect`. Each is idempotent: an
//! object that exists already with the options given is left alone; one whose options
//! differ is an error that says what differs.

use std::collections::HashMap;
use std::net::{Ipv4Addr, Ipv6Addr};

use ipnetwork::{Ipv4Network, Ipv6Network};

use super::ipam::Pool;
use super::{suggest, values, Checker};
use crate::error::{Diagnostic, ErrorKind};
use crate::model::{
    bridge_name, endpoint_name, object_id, veth_name, Driver, Endpoint, Ipv6Subnet, Mode, Network,
    ObjectKind, Sandbox, Status, DEFAULT_MTU, DEFAULT_NETWORK, DEFAULT_SUBNET,
};
use crate::syntax::{Opt, Span, Word};

/// Networks declared without a subnet get the first free /24 of this pool, as Podman does.
const AUTO_SUBNET_POOL: Ipv4Addr = Ipv4Addr::new(10, 89, 0, 0);

/// An endpoint made by this script that still needs its addresses.
pub(super) struct PendingAddress {
    endpoint: String,
    static_ip: Option<(Ipv4Addr, Span)>,
    static_ipv6: Option<(Ipv6Addr, Span)>,
    mac_given: bool,
    span: Span,
}

/// The address options of `endpoint` and `connect`, parsed.
#[derive(Default)]
struct AddressOptions {
    ip: Option<(Ipv4Addr, Span)>,
    ipv6: Option<(Ipv6Addr, Span)>,
    mac: Option<String>,
    aliases: Option<Vec<String>>,
    ifname: Option<(String, Span)>,
}

/// Accumulates "field X (this script says Y)" for a declaration that meets an object
/// that exists already.
#[derive(Default)]
struct Differences(Vec<String>);

impl Differences {
    fn compare<T: PartialEq + std::fmt::Display>(&mut self, field: &str, existing: T, wanted: Option<T>) {
        if let Some(wanted) = wanted {
            if wanted != existing {
                self.0
                    .push(format!("{field} {existing} (this script says {wanted})"));
            }
        }
    }

    fn into_error(self, kind: ObjectKind, name: &str) -> Option<ErrorKind> {
        (!self.0.is_empty()).then(|| ErrorKind::ConfigConflict {
            kind,
            name: name.to_string(),
            differences: self.0.join(", "),
        })
    }
}

fn list_or_none<T: std::fmt::Display>(items: &[T]) -> String {
    if items.is_empty() {
        "none".into()
    } else {
        items.iter().map(T::to_string).collect::<Vec<_>>().join(" ")
    }
}

impl Checker<'_> {
    pub(super) fn network(&mut self, span: Span, name_word: &Word, options: &[Opt]) {
        let Some(name) = self.name(name_word) else { return };
        let errors_before = self.errors.len();
        let options = self.options(options);
        let value =
            |checker: &mut Self, key: &str| options.get(key).and_then(|o| checker.single(o, "network"));

        let driver_word = value(self, "driver");
        let driver = driver_word.and_then(|w| {
            self.value(w, "driver", |t| match t {
                "bridge" => Ok(Driver::Bridge),
                "macvlan" => Ok(Driver::Macvlan),
                _ => Err("the drivers are bridge and macvlan"),
            })
        });
        let subnet_word = value(self, "subnet");
        let subnet = subnet_word.and_then(|w| self.value(w, "subnet", values::subnet4));
        let gateway_word = value(self, "gateway");
        let gateway = gateway_word.and_then(|w| self.value(w, "gateway", values::ipv4));
        let range_word = value(self, "ip-range");
        let ip_range = range_word.and_then(|w| self.value(w, "ip-range", values::subnet4));
        let ipv6 = value(self, "ipv6").and_then(|w| self.value(w, "IPv6 subnet", values::subnet6));
        let bridge_word = value(self, "bridge");
        let bridge = bridge_word.and_then(|w| self.value(w, "interface name", ifname));
        let parent = value(self, "parent").and_then(|w| self.value(w, "interface name", ifname));
        let mtu_word = value(self, "mtu");
        let mtu = mtu_word.and_then(|w| {
            let text = self.expand(w)?;
            match values::mtu(&text) {
                Ok(mtu) => Some(mtu),
                Err(Some(reason)) => {
                    self.error(
                        ErrorKind::InvalidValue {
                            what: "MTU",
                            value: text,
                            reason,
                        },
                        w.span,
                    );
                    None
                }
                Err(None) => {
                    self.error(ErrorKind::MtuOutOfRange { value: text }, w.span);
                    None
                }
            }
        });
        let internal = options.contains_key("internal").then_some(true);

        if !self.declare(ObjectKind::Network, &name, span) {
            return;
        }
        let parsed = self.errors.len() == errors_before;
        if parsed {
            if let Some(existing) = self.model.networks.get(&name) {
                let mut differences = Differences::default();
                differences.compare("driver", existing.driver, driver);
                differences.compare("subnet", existing.subnet, subnet);
                differences.compare("gateway", existing.gateway, gateway);
                differences.compare(
                    "ip-range",
                    list_or_none(existing.ip_range.as_slice()),
                    ip_range.map(|r| r.to_string()),
                );
                differences.compare(
                    "ipv6",
                    list_or_none(&existing.ipv6.map(|v| v.subnet).into_iter().collect::<Vec<_>>()),
                    ipv6.map(|v| v.to_string()),
                );
                differences.compare(
                    "bridge",
                    existing.bridge.as_deref().unwrap_or("none"),
                    bridge.as_deref(),
                );
                differences.compare("mtu", existing.mtu, mtu);
                differences.compare("internal", existing.internal, internal);
                differences.compare(
                    "parent",
                    existing.parent.as_deref().unwrap_or("none"),
                    parent.as_deref(),
                );
                if let Some(kind) = differences.into_error(ObjectKind::Network, &name) {
                    self.error(kind, span);
                }
                return;
            }
        }

        // Every check whose values parsed runs, so that one statement reports all its
        // errors; the network joins the model only if there were none.
        let driver = driver.unwrap_or(Driver::Bridge);
        let here = |w: Option<&Word>| w.map_or(name_word.span, |w| w.span);
        let subnet = match subnet {
            Some(subnet) => Some(subnet),
            // Given, but without a valid value: that error is reported already.
            None if options.contains_key("subnet") => None,
            None => {
                let free = self.free_subnet();
                if free.is_none() {
                    self.error(
                        ErrorKind::AddressesExhausted {
                            network: name.clone(),
                            range: format!(
                                "{AUTO_SUBNET_POOL}/16, the pool for networks declared without a subnet"
                            ),
                        },
                        span,
                    );
                }
                free
            }
        };
        if let Some(subnet) = subnet {
            if driver == Driver::Bridge && subnet.prefix() > 30 {
                self.error(
                    ErrorKind::SubnetTooSmall {
                        subnet: subnet.to_string(),
                    },
                    here(subnet_word),
                );
            }
            if let Some(kind) = gateway.and_then(|gateway| gateway_problem(subnet, gateway)) {
                self.error(kind, here(gateway_word));
            }
            if let Some(range) = ip_range {
                if !(subnet.contains(range.network()) && subnet.contains(range.broadcast())) {
                    self.error(
                        ErrorKind::IpRangeOutsideSubnet {
                            range: range.to_string(),
                            subnet: subnet.to_string(),
                        },
                        here(range_word),
                    );
                }
            }
            if let Some(other) = self.model.networks.values().find(|n| overlaps(n.subnet, subnet)) {
                let kind = ErrorKind::SubnetOverlap {
                    network: name.clone(),
                    subnet: subnet.to_string(),
                    other: other.name.clone(),
                    other_subnet: other.subnet.to_string(),
                };
                let mut diagnostic = Diagnostic::new(kind, here(subnet_word));
                if let Some(first) = self.declared.get(&(ObjectKind::Network, other.name.clone())) {
                    diagnostic =
                        diagnostic.with_related(*first, format!("`{}` is declared here", other.name));
                }
                self.errors.push(diagnostic);
            }
        }
        if driver == Driver::Macvlan && parent.is_none() {
            self.error(ErrorKind::MacvlanWithoutParent, here(driver_word));
        }
        let id = object_id(ObjectKind::Network, &name);
        let bridge = match driver {
            Driver::Bridge => Some(bridge.unwrap_or_else(|| bridge_name(&name, &id))),
            Driver::Macvlan => None,
        };
        if let Some(bridge) = &bridge {
            if let Some(other) = self
                .model
                .networks
                .values()
                .find(|n| n.bridge.as_ref() == Some(bridge))
            {
                let kind = ErrorKind::BridgeTaken {
                    bridge: bridge.clone(),
                    other: other.name.clone(),
                };
                let mut diagnostic = Diagnostic::new(kind, here(bridge_word));
                if let Some(first) = self.declared.get(&(ObjectKind::Network, other.name.clone())) {
                    diagnostic =
                        diagnostic.with_related(*first, format!("`{}` is declared here", other.name));
                }
                self.errors.push(diagnostic);
            }
        }
        let (Some(subnet), true) = (subnet, self.errors.len() == errors_before) else {
            self.broken.insert((ObjectKind::Network, name));
            return;
        };
        let gateway = gateway.unwrap_or_else(|| first_host(subnet));
        let network = Network {
            name: name.clone(),
            id,
            driver,
            subnet,
            gateway,
            ip_range,
            ipv6: ipv6.map(|subnet| Ipv6Subnet {
                subnet,
                gateway: first_host6(subnet),
            }),
            bridge,
            parent,
            mtu: mtu.unwrap_or(DEFAULT_MTU),
            internal: internal.unwrap_or(false),
        };
        self.causes.made(ObjectKind::Network, name.clone(), span);
        self.model.networks.insert(name, network);
    }

    /// The first /24 of the automatic pool that overlaps no network.
    fn free_subnet(&self) -> Option<Ipv4Network> {
        (0..=255u32)
            .map(|i| {
                Ipv4Network::new(Ipv4Addr::from(u32::from(AUTO_SUBNET_POOL) + (i << 8)), 24).expect("a /24")
            })
            .find(|candidate| {
                !self
                    .model
                    .networks
                    .values()
                    .any(|n| overlaps(n.subnet, *candidate))
            })
    }

    pub(super) fn sandbox(&mut self, span: Span, name_word: &Word, options: &[Opt]) {
        let Some(name) = self.name(name_word) else { return };
        let errors_before = self.errors.len();
        let options = self.options(options);
        let mode = options
            .get("mode")
            .and_then(|o| self.single(o, "sandbox"))
            .and_then(|w| self.mode(&name, w));
        let hostname = options
            .get("hostname")
            .and_then(|o| self.single(o, "sandbox"))
            .and_then(|w| self.value(w, "hostname", |t| values::hostname(t).map(|()| t.to_string())));
        let dns = options
            .get("dns")
            .and_then(|o| self.list(o, "sandbox"))
            .and_then(|words| {
                let mut ips = Vec::new();
                for (text, span) in words {
                    match values::ip(&text) {
                        Ok(ip) => ips.push(ip),
                        Err(reason) => {
                            self.error(
                                ErrorKind::InvalidValue {
                                    what: "DNS server",
                                    value: text,
                                    reason,
                                },
                                span,
                            );
                            return None;
                        }
                    }
                }
                Some(ips)
            });

        if !self.declare(ObjectKind::Sandbox, &name, span) {
            return;
        }
        if self.errors.len() > errors_before {
            self.broken.insert((ObjectKind::Sandbox, name));
            return;
        }
        if let Some(existing) = self.model.sandboxes.get(&name) {
            let mut differences = Differences::default();
            differences.compare("mode", &existing.mode, mode.as_ref());
            differences.compare(
                "hostname",
                existing.hostname.as_deref().unwrap_or("none"),
                hostname.as_deref(),
            );
            differences.compare(
                "dns",
                list_or_none(&existing.dns),
                dns.as_deref().map(list_or_none),
            );
            if let Some(kind) = differences.into_error(ObjectKind::Sandbox, &name) {
                self.error(kind, span);
            }
            return;
        }
        let mode = mode.unwrap_or(Mode::Bridge);
        let sandbox = Sandbox {
            name: name.clone(),
            id: object_id(ObjectKind::Sandbox, &name),
            mode: mode.clone(),
            hostname,
            dns: dns.unwrap_or_default(),
            status: Status::Running,
            published: Vec::new(),
        };
        self.causes.made(ObjectKind::Sandbox, name.clone(), span);
        self.model.sandboxes.insert(name.clone(), sandbox);
        if mode == Mode::Bridge {
            self.join_default_network(&name, span);
        }
    }

    /// A `mode` value; `container:X` must name a sandbox with a namespace of its own.
    fn mode(&mut self, sandbox: &str, word: &Word) -> Option<Mode> {
        let text = self.expand(word)?;
        let Some(mode) = Mode::parse(&text) else {
            let suggestion = suggest::closest(&text, ["bridge", "none", "host"]);
            let reason = match suggestion {
                Some(s) => {
                    format!("did you mean `{s}`? The modes are bridge, none, host and container:OTHER")
                }
                None => "the modes are bridge, none, host and container:OTHER".into(),
            };
            self.error(
                ErrorKind::InvalidValue {
                    what: "mode",
                    value: text,
                    reason,
                },
                word.span,
            );
            return None;
        };
        let Mode::Container(target) = &mode else {
            return Some(mode);
        };
        if target == sandbox {
            self.error(
                ErrorKind::SharedNamespaceCycle {
                    sandbox: sandbox.to_string(),
                },
                word.span,
            );
            return None;
        }
        if values::name(target).is_err() || !self.model.sandboxes.contains_key(target) {
            if !self.broken.contains(&(ObjectKind::Sandbox, target.clone())) {
                let suggestion = suggest::closest(target, self.model.sandboxes.keys().map(String::as_str));
                self.error(
                    ErrorKind::UnknownReference {
                        kind: ObjectKind::Sandbox,
                        name: target.clone(),
                        suggestion,
                    },
                    word.span,
                );
            }
            return None;
        }
        if let Mode::Container(target_target) = &self.model.sandboxes[target].mode {
            self.error(
                ErrorKind::SharedNamespaceChain {
                    sandbox: sandbox.to_string(),
                    target: target.clone(),
                    target_target: target_target.clone(),
                },
                word.span,
            );
            return None;
        }
        Some(mode)
    }

    /// A `bridge`-mode sandbox joins the default network, made on first use.
    fn join_default_network(&mut self, sandbox: &str, span: Span) {
        if !self.model.networks.contains_key(DEFAULT_NETWORK) {
            if self
                .broken
                .contains(&(ObjectKind::Network, DEFAULT_NETWORK.to_string()))
            {
                return;
            }
            let subnet: Ipv4Network = DEFAULT_SUBNET.parse().expect("the default subnet");
            if let Some(other) = self.model.networks.values().find(|n| overlaps(n.subnet, subnet)) {
                self.broken
                    .insert((ObjectKind::Network, DEFAULT_NETWORK.to_string()));
                return self.error(
                    ErrorKind::SubnetOverlap {
                        network: DEFAULT_NETWORK.into(),
                        subnet: subnet.to_string(),
                        other: other.name.clone(),
                        other_subnet: other.subnet.to_string(),
                    },
                    span,
                );
            }
            let id = object_id(ObjectKind::Network, DEFAULT_NETWORK);
            let bridge = bridge_name(DEFAULT_NETWORK, &id);
            if let Some(other) = self
                .model
                .networks
                .values()
                .find(|n| n.bridge.as_ref() == Some(&bridge))
            {
                self.broken
                    .insert((ObjectKind::Network, DEFAULT_NETWORK.to_string()));
                return self.error(
                    ErrorKind::BridgeTaken {
                        bridge,
                        other: other.name.clone(),
                    },
                    span,
                );
            }
            let network = Network {
                name: DEFAULT_NETWORK.into(),
                bridge: Some(bridge),
                id,
                driver: Driver::Bridge,
                subnet,
                gateway: first_host(subnet),
                ip_range: None,
                ipv6: None,
                parent: None,
                mtu: DEFAULT_MTU,
                internal: false,
            };
            self.causes.made(ObjectKind::Network, DEFAULT_NETWORK, span);
            self.model.networks.insert(DEFAULT_NETWORK.into(), network);
        }
        self.connected
            .insert((sandbox.to_string(), DEFAULT_NETWORK.to_string()), span);
        let name = endpoint_name(sandbox, DEFAULT_NETWORK);
        self.new_endpoint(
            name,
            DEFAULT_NETWORK,
            Some(sandbox),
            AddressOptions::default(),
            span,
        );
    }

    pub(super) fn endpoint(&mut self, span: Span, name_word: &Word, network_word: &Word, options: &[Opt]) {
        let Some(name) = self.name(name_word) else { return };
        let network = self.reference(ObjectKind::Network, network_word);
        let errors_before = self.errors.len();
        let addresses = self.address_options(options, "endpoint");
        if !self.declare(ObjectKind::Endpoint, &name, span) {
            return;
        }
        let Some(network) = network else {
            self.broken.insert((ObjectKind::Endpoint, name));
            return;
        };
        if self.errors.len() > errors_before || !self.valid_static_addresses(&network, &addresses) {
            self.broken.insert((ObjectKind::Endpoint, name));
            return;
        }
        if let Some(existing) = self.model.endpoints.get(&name) {
            let mut differences = Self::endpoint_differences(existing, &addresses);
            differences.compare("network", existing.network.as_str(), Some(network.as_str()));
            if let Some(kind) = differences.into_error(ObjectKind::Endpoint, &name) {
                self.error(kind, span);
            }
            return;
        }
        self.new_endpoint(name, &network, None, addresses, span);
    }

    pub(super) fn connect(&mut self, span: Span, sandbox_word: &Word, network_word: &Word, options: &[Opt]) {
        let sandbox = self.reference(ObjectKind::Sandbox, sandbox_word);
        let network = self.reference(ObjectKind::Network, network_word);
        let errors_before = self.errors.len();
        let addresses = self.address_options(options, "connect");
        let named = options
            .iter()
            .find(|o| o.key.name == "endpoint")
            .and_then(|o| o.values.first())
            .and_then(|w| Some((self.reference(ObjectKind::Endpoint, w)?, w.span)));
        let (Some(sandbox), Some(network)) = (sandbox, network) else {
            return;
        };
        if self.errors.len() > errors_before {
            return;
        }
        let mode = &self.model.sandboxes[&sandbox].mode;
        if matches!(mode, Mode::Host | Mode::Container(_)) {
            let mode = mode.to_string();
            return self.error(
                ErrorKind::ConnectWithoutNamespace { sandbox, mode },
                sandbox_word.span,
            );
        }
        let key = (sandbox.clone(), network.clone());
        if let Some(first) = self.connected.get(&key) {
            let first = *first;
            return self.errors.push(
                Diagnostic::new(ErrorKind::ConnectedTwice { sandbox, network }, span)
                    .with_related(first, "first connected here"),
            );
        }
        if !self.valid_static_addresses(&network, &addresses) {
            return;
        }
        self.connected.insert(key, span);

        // Connected already (by the committed state): the options must agree.
        let existing = self.joined.get(&sandbox).and_then(|names| {
            names
                .iter()
                .map(|n| &self.model.endpoints[n])
                .find(|e| e.network == network)
        });
        if let Some(existing) = existing {
            let mut differences = Self::endpoint_differences(existing, &addresses);
            if let Some((named, _)) = &named {
                differences.compare("endpoint", existing.name.as_str(), Some(named.as_str()));
            }
            if let Some(kind) = differences.into_error(ObjectKind::Endpoint, &existing.name.clone()) {
                self.error(kind, span);
            }
            return;
        }

        let Some((endpoint, endpoint_span)) = named else {
            let name = endpoint_name(&sandbox, &network);
            return self.new_endpoint(name, &network, Some(&sandbox), addresses, span);
        };
        // Join an endpoint made earlier with `endpoint`.
        let existing = &self.model.endpoints[&endpoint];
        if existing.network != network {
            let actual = existing.network.clone();
            return self.error(
                ErrorKind::EndpointOnOtherNetwork {
                    endpoint,
                    actual,
                    network,
                },
                endpoint_span,
            );
        }
        if let Some(holder) = existing.sandbox.clone() {
            return self.error(
                ErrorKind::EndpointInUse {
                    endpoint,
                    sandbox: holder,
                },
                endpoint_span,
            );
        }
        let differences = Self::endpoint_differences(existing, &addresses);
        if let Some(kind) = differences.into_error(ObjectKind::Endpoint, &endpoint) {
            return self.error(kind, span);
        }
        let Some(ifname) = self.ifname_for(&sandbox, addresses.ifname) else {
            return;
        };
        let default_route = self.takes_default_route(&sandbox, &network);
        let joined = self.model.endpoints.get_mut(&endpoint).expect("resolved above");
        joined.sandbox = Some(sandbox.clone());
        joined.ifname = Some(ifname);
        joined.default_route = default_route;
        self.joined.entry(sandbox).or_default().push(endpoint.clone());
        self.causes.made(ObjectKind::Endpoint, endpoint, span);
    }

    /// How an existing endpoint differs from the options a statement gives.
    fn endpoint_differences(existing: &Endpoint, wanted: &AddressOptions) -> Differences {
        let mut differences = Differences::default();
        differences.compare("ip", existing.ip, wanted.ip.map(|(ip, _)| ip));
        differences.compare(
            "ipv6",
            existing.ipv6.map_or("none".to_string(), |ip| ip.to_string()),
            wanted.ipv6.map(|(ip, _)| ip.to_string()),
        );
        differences.compare("mac", existing.mac.as_str(), wanted.mac.as_deref());
        differences.compare(
            "alias",
            list_or_none(&existing.aliases),
            wanted.aliases.as_deref().map(list_or_none),
        );
        if let Some((ifname, _)) = &wanted.ifname {
            differences.compare(
                "ifname",
                existing.ifname.as_deref().unwrap_or("none"),
                Some(ifname.as_str()),
            );
        }
        differences
    }

    fn address_options(&mut self, options: &[Opt], keyword: &str) -> AddressOptions {
        let options = self.options(options);
        let single =
            |checker: &mut Self, key: &str| options.get(key).and_then(|o| checker.single(o, keyword));
        let ip =
            single(self, "ip").and_then(|w| Some((self.value(w, "IPv4 address", values::ipv4)?, w.span)));
        let ipv6 =
            single(self, "ipv6").and_then(|w| Some((self.value(w, "IPv6 address", values::ipv6)?, w.span)));
        let mac = single(self, "mac").and_then(|w| self.value(w, "MAC address", values::mac));
        let ifname =
            single(self, "ifname").and_then(|w| Some((self.value(w, "interface name", ifname)?, w.span)));
        // `endpoint NAME` is resolved by `connect` itself; it only needs a value here.
        let _ = single(self, "endpoint");
        let aliases = options
            .get("alias")
            .and_then(|o| self.list(o, keyword))
            .and_then(|words| {
                let mut aliases = Vec::new();
                for (text, span) in words {
                    if let Err(reason) = values::hostname(&text) {
                        self.error(
                            ErrorKind::InvalidValue {
                                what: "alias",
                                value: text,
                                reason: reason.into(),
                            },
                            span,
                        );
                        return None;
                    }
                    aliases.push(text);
                }
                Some(aliases)
            });
        AddressOptions {
            ip,
            ipv6,
            mac,
            aliases,
            ifname,
        }
    }

    /// A static address must be a host address of the subnet and not the gateway.
    fn valid_static_addresses(&mut self, network: &str, addresses: &AddressOptions) -> bool {
        let net = &self.model.networks[network];
        if let Some((ip, span)) = addresses.ip {
            let subnet = net.subnet;
            let problem = if !subnet.contains(ip) {
                Some(ErrorKind::AddressOutsideSubnet {
                    ip: ip.to_string(),
                    subnet: subnet.to_string(),
                    network: network.to_string(),
                })
            } else if ip == net.gateway {
                Some(ErrorKind::AddressIsGateway {
                    ip: ip.to_string(),
                    network: network.to_string(),
                })
            } else if ip == subnet.network() || ip == subnet.broadcast() {
                Some(ErrorKind::AddressReserved {
                    ip: ip.to_string(),
                    which: if ip == subnet.network() {
                        "network"
                    } else {
                        "broadcast"
                    },
                    subnet: subnet.to_string(),
                })
            } else {
                None
            };
            if let Some(kind) = problem {
                self.error(kind, span);
                return false;
            }
        }
        if let Some((ip, span)) = addresses.ipv6 {
            let problem = match net.ipv6 {
                None => Some(ErrorKind::InvalidValue {
                    what: "IPv6 address",
                    value: ip.to_string(),
                    reason: format!("network `{network}` has no IPv6 subnet"),
                }),
                Some(v6) if !v6.subnet.contains(ip) => Some(ErrorKind::AddressOutsideSubnet {
                    ip: ip.to_string(),
                    subnet: v6.subnet.to_string(),
                    network: network.to_string(),
                }),
                Some(v6) if v6.gateway == ip => Some(ErrorKind::AddressIsGateway {
                    ip: ip.to_string(),
                    network: network.to_string(),
                }),
                Some(_) => None,
            };
            if let Some(kind) = problem {
                self.error(kind, span);
                return false;
            }
        }
        true
    }

    /// Adds an endpoint to the model; its addresses are allocated once the whole script
    /// is read, so that static addresses later in the script are reserved first.
    fn new_endpoint(
        &mut self,
        name: String,
        network: &str,
        sandbox: Option<&str>,
        addresses: AddressOptions,
        span: Span,
    ) {
        let mut ifname = None;
        let mut default_route = false;
        if let Some(sandbox) = sandbox {
            let Some(name) = self.ifname_for(sandbox, addresses.ifname) else {
                return;
            };
            ifname = Some(name);
            default_route = self.takes_default_route(sandbox, network);
        }
        let id = object_id(ObjectKind::Endpoint, &name);
        let mut host_ifname = veth_name(&id);
        // Ids are hashes: on the rare clash of their first digits, derive another.
        let mut salt = 0;
        while self.host_ifnames.contains(&host_ifname) {
            salt += 1;
            host_ifname = veth_name(&object_id(ObjectKind::Endpoint, &format!("{name}#{salt}")));
        }
        self.host_ifnames.insert(host_ifname.clone());
        self.pending.push(PendingAddress {
            endpoint: name.clone(),
            static_ip: addresses.ip,
            static_ipv6: addresses.ipv6,
            mac_given: addresses.mac.is_some(),
            span,
        });
        let endpoint = Endpoint {
            name: name.clone(),
            id,
            network: network.to_string(),
            sandbox: sandbox.map(str::to_string),
            ip: Ipv4Addr::UNSPECIFIED,
            static_ip: addresses.ip.is_some(),
            ipv6: None,
            mac: addresses.mac.unwrap_or_default(),
            aliases: addresses.aliases.unwrap_or_default(),
            ifname,
            host_ifname,
            default_route,
        };
        if let Some(sandbox) = sandbox {
            self.joined
                .entry(sandbox.to_string())
                .or_default()
                .push(name.clone());
        }
        self.causes.made(ObjectKind::Endpoint, name.clone(), span);
        self.model.endpoints.insert(name, endpoint);
    }

    /// The interface name inside the sandbox: the one asked for, or the lowest free `ethN`.
    fn ifname_for(&mut self, sandbox: &str, wanted: Option<(String, Span)>) -> Option<String> {
        let taken: Vec<&str> = self
            .joined
            .get(sandbox)
            .into_iter()
            .flatten()
            .filter_map(|e| self.model.endpoints[e].ifname.as_deref())
            .collect();
        match wanted {
            Some((ifname, span)) => {
                if taken.contains(&ifname.as_str()) || ifname == "lo" {
                    self.error(
                        ErrorKind::IfnameTaken {
                            ifname,
                            sandbox: sandbox.to_string(),
                        },
                        span,
                    );
                    return None;
                }
                Some(ifname)
            }
            None => (0..)
                .map(|i| format!("eth{i}"))
                .find(|candidate| !taken.contains(&candidate.as_str())),
        }
    }

    /// The first endpoint on a network with a way out carries the default route.
    pub(super) fn takes_default_route(&self, sandbox: &str, network: &str) -> bool {
        let has_route = self
            .joined
            .get(sandbox)
            .into_iter()
            .flatten()
            .any(|e| self.model.endpoints[e].default_route);
        !has_route && !self.model.networks[network].internal
    }

    /// Gives every endpoint this script made its addresses: static ones first, then the
    /// lowest free ones, in statement order.
    pub(super) fn allocate_addresses(&mut self) {
        let pending: HashMap<&str, &PendingAddress> =
            self.pending.iter().map(|p| (p.endpoint.as_str(), p)).collect();
        let mut pools: HashMap<String, Pool> = HashMap::new();
        let mut pools6: HashMap<String, Pool> = HashMap::new();
        for network in self.model.networks.values() {
            pools.insert(
                network.name.clone(),
                Pool::v4(network.subnet, network.pool(), network.gateway),
            );
            if let Some(v6) = network.ipv6 {
                pools6.insert(network.name.clone(), Pool::v6(v6.subnet, v6.gateway));
            }
        }
        // Addresses held already are kept.
        for endpoint in self.model.endpoints.values() {
            if pending.contains_key(endpoint.name.as_str()) {
                continue;
            }
            let holder = format!("endpoint `{}`", endpoint.name);
            if let Some(pool) = pools.get_mut(&endpoint.network) {
                let _ = pool.reserve(u32::from(endpoint.ip) as u128, &holder);
            }
            if let (Some(pool), Some(ip)) = (pools6.get_mut(&endpoint.network), endpoint.ipv6) {
                let _ = pool.reserve(u128::from(ip), &holder);
            }
        }
        let live: Vec<&PendingAddress> = self
            .pending
            .iter()
            .filter(|p| self.model.endpoints.contains_key(&p.endpoint))
            .collect();
        let mut assigned: HashMap<String, (Ipv4Addr, Option<Ipv6Addr>)> = HashMap::new();
        let mut errors = Vec::new();
        let describe = |p: &PendingAddress, model: &crate::model::Model| {
            let e = &model.endpoints[&p.endpoint];
            match &e.sandbox {
                Some(s) => format!("endpoint `{}` (sandbox `{s}`)", e.name),
                None => format!("endpoint `{}`", e.name),
            }
        };
        for p in &live {
            let network = &self.model.endpoints[&p.endpoint].network;
            if let Some((ip, span)) = p.static_ip {
                if let Err(holder) = pools
                    .get_mut(network)
                    .expect("a pool per network")
                    .reserve(u32::from(ip) as u128, &describe(p, &self.model))
                {
                    errors.push(Diagnostic::new(
                        ErrorKind::AddressTaken {
                            ip: ip.to_string(),
                            network: network.clone(),
                            holder,
                        },
                        span,
                    ));
                }
            }
            if let Some((ip, span)) = p.static_ipv6 {
                if let Some(Err(holder)) = pools6
                    .get_mut(network)
                    .map(|pool| pool.reserve(u128::from(ip), &describe(p, &self.model)))
                {
                    errors.push(Diagnostic::new(
                        ErrorKind::AddressTaken {
                            ip: ip.to_string(),
                            network: network.clone(),
                            holder,
                        },
                        span,
                    ));
                }
            }
        }
        let mut exhausted = std::collections::HashSet::new();
        for p in &live {
            let endpoint = &self.model.endpoints[&p.endpoint];
            let network = &self.model.networks[&endpoint.network];
            let holder = describe(p, &self.model);
            let ip = match p.static_ip {
                Some((ip, _)) => Some(ip),
                None => pools
                    .get_mut(&network.name)
                    .expect("a pool per network")
                    .allocate(&holder)
                    .map(|a| Ipv4Addr::from(a as u32)),
            };
            let ipv6 = match (p.static_ipv6, pools6.get_mut(&network.name)) {
                (Some((ip, _)), _) => Some(ip),
                (None, Some(pool)) => pool.allocate(&holder).map(Ipv6Addr::from),
                (None, None) => None,
            };
            match ip {
                Some(ip) => {
                    assigned.insert(p.endpoint.clone(), (ip, ipv6));
                }
                None => {
                    if exhausted.insert(network.name.clone()) {
                        errors.push(Diagnostic::new(
                            ErrorKind::AddressesExhausted {
                                network: network.name.clone(),
                                range: network.pool().to_string(),
                            },
                            p.span,
                        ));
                    }
                }
            }
        }
        for p in &live {
            if let Some((ip, ipv6)) = assigned.remove(&p.endpoint) {
                let endpoint = self.model.endpoints.get_mut(&p.endpoint).expect("live");
                endpoint.ip = ip;
                endpoint.ipv6 = ipv6;
                if !p.mac_given {
                    endpoint.mac = values::mac_for(ip);
                }
            }
        }
        self.errors.extend(errors);
    }
}

/// A valid interface name, as an owned value.
fn ifname(text: &str) -> Result<String, String> {
    values::ifname(text).map(|()| text.to_string())
}

fn overlaps(a: Ipv4Network, b: Ipv4Network) -> bool {
    a.contains(b.network()) || b.contains(a.network())
}

fn first_host(subnet: Ipv4Network) -> Ipv4Addr {
    Ipv4Addr::from(u32::from(subnet.network()) + 1)
}

fn first_host6(subnet: Ipv6Network) -> Ipv6Addr {
    Ipv6Addr::from(u128::from(subnet.network()) + 1)
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
