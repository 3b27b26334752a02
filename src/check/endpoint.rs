//! `endpoint NAME on NETWORK [ip IP] [ipv6 IP] [mac MAC] [alias A…]`: an endpoint not
//! yet joined; and what `endpoint` and `connect` share: their address options, and the
//! making of a new endpoint.

use std::net::{Ipv4Addr, Ipv6Addr};

use super::differences::{list_or_none, Differences};
use super::ipam::PendingAddress;
use super::network::ifname;
use super::{values, Checker};
use crate::error::ErrorKind;
use crate::model::{object_id, veth_name, Endpoint, Mac, ObjectKind};
use crate::syntax::{Opt, Span, Word};

/// The address options of `endpoint` and `connect`, parsed.
#[derive(Default)]
pub(super) struct AddressOptions {
    pub(super) ip: Option<(Ipv4Addr, Span)>,
    pub(super) ipv6: Option<(Ipv6Addr, Span)>,
    pub(super) mac: Option<(Mac, Span)>,
    pub(super) aliases: Option<Vec<String>>,
    pub(super) ifname: Option<(String, Span)>,
}

impl Checker<'_> {
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

    /// How an existing endpoint differs from the options a statement gives.
    pub(super) fn endpoint_differences(existing: &Endpoint, wanted: &AddressOptions) -> Differences {
        let mut differences = Differences::default();
        differences.compare("ip", existing.ip, wanted.ip.map(|(ip, _)| ip));
        differences.compare(
            "ipv6",
            existing.ipv6.map_or("none".to_string(), |ip| ip.to_string()),
            wanted.ipv6.map(|(ip, _)| ip.to_string()),
        );
        differences.compare("mac", existing.mac, wanted.mac.map(|(mac, _)| mac));
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

    pub(super) fn address_options(&mut self, options: &[Opt], keyword: &str) -> AddressOptions {
        let options = self.options(options);
        let single =
            |checker: &mut Self, key: &str| options.get(key).and_then(|o| checker.single(o, keyword));
        let ip =
            single(self, "ip").and_then(|w| Some((self.value(w, "IPv4 address", values::ipv4)?, w.span)));
        let ipv6 =
            single(self, "ipv6").and_then(|w| Some((self.value(w, "IPv6 address", values::ipv6)?, w.span)));
        let mac =
            single(self, "mac").and_then(|w| Some((self.value(w, "MAC address", values::mac)?, w.span)));
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
    pub(super) fn valid_static_addresses(&mut self, network: &str, addresses: &AddressOptions) -> bool {
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
    pub(super) fn new_endpoint(
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
            static_mac: addresses.mac.map(|(_, span)| span),
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
            // Like `ip`, derived once addresses are allocated unless given.
            mac: addresses
                .mac
                .map_or(values::mac_for(Ipv4Addr::UNSPECIFIED), |(mac, _)| mac),
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
}
