//! The firewall a model calls for, in nftables: one table, `inet cnm`, that cnm owns
//! and nothing else touches. Its chains are fixed; what varies is the elements of its
//! sets and maps, one per fact about a network or a published port, so that an object's
//! rules come and go as elements, without rule handles.
//!
//! - isolation: no forwarding between two cnm bridges, nor in or out of an `internal`
//!   one, whatever the host's `ip_forward` says (refused with an ICMP "administratively
//!   prohibited"); traffic within one bridge passes (it reaches this hook only where
//!   `br_netfilter` is loaded);
//! - outbound NAT: traffic from a network that is not `internal` leaving through
//!   anything but a cnm bridge is masqueraded;
//! - published ports: traffic to a host address (from outside, from sandboxes, from the
//!   host itself) on a published port is sent to the sandbox (DNAT), and connections
//!   from sandboxes to it appear to come from the bridge, so that replies return the
//!   way they came.

use std::fmt;
use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use super::kernel::Kernel;
use crate::model::{Driver, Model, Network, ObjectKind};

/// The family and name of cnm's table, as `nft` commands say it.
pub const TABLE: &str = "inet cnm";

/// The sets and maps of cnm's table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NftSet {
    /// Every cnm bridge.
    Bridges,
    /// `BRIDGE . BRIDGE` for every cnm bridge: traffic that stays on its network.
    SameBridge,
    /// The bridges of `internal` networks.
    Internal,
    /// Every cnm network's IPv4 subnet.
    Subnets4,
    /// The IPv4 subnets whose traffic out is masqueraded.
    Masquerade4,
    Masquerade6,
    /// `PROTOCOL . HOSTPORT : ADDRESS . PORT`, published on every host address.
    PublishAny,
    /// `HOSTIP . PROTOCOL . HOSTPORT : ADDRESS . PORT`, published on one host address.
    PublishAt,
}

impl NftSet {
    /// Every set and map of the table.
    pub const ALL: [NftSet; 8] = [
        NftSet::Bridges,
        NftSet::SameBridge,
        NftSet::Internal,
        NftSet::Subnets4,
        NftSet::Masquerade4,
        NftSet::Masquerade6,
        NftSet::PublishAny,
        NftSet::PublishAt,
    ];

    /// The `nft` line that makes it, empty; run again, it changes nothing.
    pub fn declaration(self) -> String {
        let spec = match self {
            NftSet::Bridges | NftSet::Internal => "type ifname;",
            NftSet::SameBridge => "type ifname . ifname;",
            NftSet::Subnets4 | NftSet::Masquerade4 => "type ipv4_addr; flags interval;",
            NftSet::Masquerade6 => "type ipv6_addr; flags interval;",
            NftSet::PublishAny => "type inet_proto . inet_service : ipv4_addr . inet_service;",
            NftSet::PublishAt => "type ipv4_addr . inet_proto . inet_service : ipv4_addr . inet_service;",
        };
        let kind = if self.is_map() { "map" } else { "set" };
        format!("add {kind} {TABLE} {self} {{ {spec} }}")
    }

    /// Whether its elements map a key to a value (`KEY : VALUE`).
    fn is_map(self) -> bool {
        matches!(self, NftSet::PublishAny | NftSet::PublishAt)
    }

    /// The element's key: what `delete element` names.
    pub fn key(self, element: &str) -> &str {
        match self.is_map() {
            true => element.split(" : ").next().unwrap_or(element),
            false => element,
        }
    }
}

impl fmt::Display for NftSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            NftSet::Bridges => "bridges",
            NftSet::SameBridge => "same_bridge",
            NftSet::Internal => "internal",
            NftSet::Subnets4 => "subnets4",
            NftSet::Masquerade4 => "masquerade4",
            NftSet::Masquerade6 => "masquerade6",
            NftSet::PublishAny => "publish_any",
            NftSet::PublishAt => "publish_at",
        })
    }
}

/// The `nft -f` lines that make cnm's table from nothing, its sets and maps empty. A
/// table of that name left by a crash is replaced: it is cnm's.
pub fn table_lines() -> Vec<String> {
    let t = TABLE;
    let mut lines = vec![
        format!("add table {t}"),
        format!("delete table {t}"),
        format!("add table {t}"),
    ];
    lines.extend(NftSet::ALL.map(NftSet::declaration));
    lines.extend([
        format!("add chain {t} forward {{ type filter hook forward priority filter; policy accept; }}"),
        format!("add rule {t} forward ct status dnat accept"),
        format!("add rule {t} forward iifname . oifname @same_bridge accept"),
        // Refused, not dropped: a sandbox that tries learns it at once (an ICMP error), so
        // `expect … cannot reach` takes a round trip, not its timeout.
        format!("add rule {t} forward iifname @internal reject with icmpx type admin-prohibited"),
        format!("add rule {t} forward oifname @internal reject with icmpx type admin-prohibited"),
        format!(
            "add rule {t} forward iifname @bridges oifname @bridges reject with icmpx type admin-prohibited"
        ),
        // Bridges route 127.0.0.0/8 for ports published on loopback: nothing from a
        // sandbox reaches the host's loopback services that way.
        format!("add chain {t} guard {{ type filter hook prerouting priority raw; policy accept; }}"),
        format!("add rule {t} guard iifname @bridges ip daddr 127.0.0.0/8 drop"),
        format!("add chain {t} publish"),
        format!("add rule {t} publish dnat ip to ip daddr . meta l4proto . th dport map @publish_at"),
        format!("add rule {t} publish dnat ip to meta l4proto . th dport map @publish_any"),
        format!("add chain {t} prerouting {{ type nat hook prerouting priority dstnat; policy accept; }}"),
        format!("add rule {t} prerouting fib daddr type local jump publish"),
        format!("add chain {t} output {{ type nat hook output priority -100; policy accept; }}"),
        format!("add rule {t} output fib daddr type local jump publish"),
        format!("add chain {t} postrouting {{ type nat hook postrouting priority srcnat; policy accept; }}"),
        format!("add rule {t} postrouting ct status dnat oifname @bridges ip saddr @subnets4 masquerade"),
        format!("add rule {t} postrouting ip saddr 127.0.0.0/8 oifname @bridges masquerade"),
        format!("add rule {t} postrouting ip saddr @masquerade4 oifname != @bridges masquerade"),
        format!("add rule {t} postrouting ip6 saddr @masquerade6 oifname != @bridges masquerade"),
    ]);
    lines
}

/// One element of cnm's table and the object it belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Element {
    pub set: NftSet,
    pub text: String,
    pub owner: (ObjectKind, String),
}

/// Every element a model calls for: its networks' in model order, then its published
/// ports'. Empty when the model has no bridge network, which needs no table at all.
pub fn elements(kernel: &Kernel) -> Vec<Element> {
    let model = kernel.model;
    let mut elements = Vec::new();
    for network in model.networks.values().filter(|n| n.driver == Driver::Bridge) {
        let Some(bridge) = &network.bridge else { continue };
        let mut add = |set, text: String| {
            elements.push(Element {
                set,
                text,
                owner: (ObjectKind::Network, network.name.clone()),
            })
        };
        add(NftSet::Bridges, format!("\"{bridge}\""));
        add(NftSet::SameBridge, format!("\"{bridge}\" . \"{bridge}\""));
        add(NftSet::Subnets4, network.subnet.to_string());
        if network.internal {
            add(NftSet::Internal, format!("\"{bridge}\""));
        } else {
            add(NftSet::Masquerade4, network.subnet.to_string());
            if let Some(v6) = network.ipv6 {
                add(NftSet::Masquerade6, v6.subnet.to_string());
            }
        }
    }
    if elements.is_empty() {
        return elements;
    }
    for sandbox in model.sandboxes.values() {
        let Some(address) = publishing_address(kernel, &sandbox.name) else {
            continue;
        };
        for port in &sandbox.published {
            let target = format!("{address} . {}", port.port);
            let (set, key) = match port.host_ip {
                Some(host_ip) => (
                    NftSet::PublishAt,
                    format!("{host_ip} . {} . {}", port.protocol, port.host_port),
                ),
                None => (
                    NftSet::PublishAny,
                    format!("{} . {}", port.protocol, port.host_port),
                ),
            };
            elements.push(Element {
                set,
                text: format!("{key} : {target}"),
                owner: (ObjectKind::Sandbox, sandbox.name.clone()),
            });
        }
    }
    elements
}

/// The address a running sandbox's published ports lead to: that of its endpoint on a
/// bridge network with a way out (not `internal`, which nothing enters) that carries
/// its default route, else of its first on one.
pub fn publishing_address(kernel: &Kernel, sandbox: &str) -> Option<IpAddr> {
    kernel.live_netns(sandbox)?;
    let model: &Model = kernel.model;
    let on_bridge: Vec<_> = kernel
        .endpoints_of(sandbox)
        .iter()
        .filter(|e| e.ifname.is_some() && needs_forwarding_for(&model.networks[&e.network]))
        .collect();
    let chosen = on_bridge
        .iter()
        .find(|e| e.default_route)
        .or_else(|| on_bridge.first())?;
    Some(IpAddr::V4(chosen.ip))
}

/// The running sandboxes that publish ports but have no address those ports could
/// lead to (no endpoint on a bridge network that is not `internal`).
pub fn unpublished(model: &Model) -> Vec<&str> {
    let kernel = Kernel::new(model);
    model
        .sandboxes
        .values()
        .filter(|s| !s.published.is_empty() && s.is_running())
        .filter(|s| publishing_address(&kernel, &s.name).is_none())
        .map(|s| s.name.as_str())
        .collect()
}

/// Whether a model calls for cnm's table at all: it has a bridge network.
pub fn needs_table(model: &Model) -> bool {
    model
        .networks
        .values()
        .any(|n| n.driver == Driver::Bridge && n.bridge.is_some())
}

/// Whether a model calls for the host to forward packets: it has a network with a way
/// out (a bridge network that is not `internal`).
pub fn needs_forwarding(model: &Model) -> bool {
    model.networks.values().any(needs_forwarding_for)
}

/// Whether a network has a way out through the host.
pub fn needs_forwarding_for(network: &Network) -> bool {
    network.driver == Driver::Bridge && network.bridge.is_some() && !network.internal
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::syntax::Sources;

    fn model(text: &str) -> Model {
        let mut sources = Sources::default();
        let id = sources.add("test.cnm", text);
        crate::plan_scripts(&mut sources, &[id], &Model::empty())
            .unwrap()
            .0
            .model
    }

    fn texts(model: &Model) -> Vec<(NftSet, String)> {
        elements(&Kernel::new(model))
            .into_iter()
            .map(|e| (e.set, e.text))
            .collect()
    }

    #[test]
    fn a_network_is_isolated_and_masqueraded_unless_internal() {
        let model = model(
            "network out subnet 10.7.0.0/24 ipv6 fd00:7::/64\nnetwork in subnet 10.6.0.0/24 internal\n\
             network mv driver macvlan parent eth0 subnet 10.5.0.0/24\n",
        );
        let s = |set, text: &str| (set, text.to_string());
        assert_eq!(
            texts(&model),
            [
                s(NftSet::Bridges, "\"cnm-out\""),
                s(NftSet::SameBridge, "\"cnm-out\" . \"cnm-out\""),
                s(NftSet::Subnets4, "10.7.0.0/24"),
                s(NftSet::Masquerade4, "10.7.0.0/24"),
                s(NftSet::Masquerade6, "fd00:7::/64"),
                s(NftSet::Bridges, "\"cnm-in\""),
                s(NftSet::SameBridge, "\"cnm-in\" . \"cnm-in\""),
                s(NftSet::Subnets4, "10.6.0.0/24"),
                s(NftSet::Internal, "\"cnm-in\""),
            ]
        );
        assert!(needs_forwarding(&model));
        assert!(!needs_forwarding(&self::model(
            "network in subnet 10.6.0.0/24 internal\n"
        )));
        assert!(
            texts(&self::model("sandbox a mode none\n")).is_empty(),
            "no network, no table"
        );
    }

    #[test]
    fn published_ports_lead_to_the_address_with_a_way_out_of_a_running_sandbox() {
        let model = model(
            "network in subnet 10.6.0.0/24 internal\nnetwork out subnet 10.7.0.0/24\n\
             sandbox web mode none\nconnect web to in\nconnect web to out\n\
             publish web 8080:80\npublish web 5353:53/udp host-ip 127.0.0.1\n\
             sandbox idle mode none\nconnect idle to out\npublish idle 9000:9000\nstop idle\n\
             sandbox lonely mode none\nconnect lonely to in\npublish lonely 9001:80\n",
        );
        let published: Vec<_> = texts(&model)
            .into_iter()
            .filter(|(set, _)| matches!(set, NftSet::PublishAny | NftSet::PublishAt))
            .collect();
        assert_eq!(
            published,
            [
                (NftSet::PublishAny, "tcp . 8080 : 10.7.0.2 . 80".to_string()),
                (
                    NftSet::PublishAt,
                    "127.0.0.1 . udp . 5353 : 10.7.0.2 . 53".to_string()
                ),
            ],
            "a stopped sandbox publishes nothing; an internal address is never a target"
        );
        assert_eq!(unpublished(&model), ["lonely"]);
        assert_eq!(NftSet::PublishAt.key(&published[1].1), "127.0.0.1 . udp . 5353");
    }
}
