//! A committed state that parses is not yet one cnm can use: everything after loading
//! takes for granted what the checker guarantees — every name resolves, every address
//! lies in its subnet, nothing is held twice. This finds the first thing that is not so,
//! in words that name the objects.

use std::collections::HashMap;
use std::fmt::Display;
use std::net::Ipv4Addr;

use ipnetwork::Ipv4Network;

use crate::check::{values, LONGEST_PREFIX_V4, LONGEST_PREFIX_V6};
use crate::model::{subnets_overlap, Driver, Endpoint, Mode, Model, Network, Sandbox};

/// The first inconsistency of `model`, if it has one.
pub fn problem(model: &Model) -> Option<String> {
    networks(model)
        .and_then(|()| sandboxes(model))
        .and_then(|()| endpoints(model))
        .err()
}

/// Records who holds each value; the second holder of one is a problem.
struct Holders<K>(HashMap<K, String>);

impl<K: std::hash::Hash + Eq> Holders<K> {
    fn new() -> Self {
        Holders(HashMap::new())
    }

    /// `Err(first holder)` if `key` is held already.
    fn hold(&mut self, key: K, holder: &str) -> Result<(), String> {
        match self.0.get(&key) {
            Some(first) => Err(first.clone()),
            None => {
                self.0.insert(key, holder.to_string());
                Ok(())
            }
        }
    }
}

fn valid_name(kind: &str, key: &str, name: &str) -> Result<(), String> {
    if key != name {
        return Err(format!("the {kind} recorded as `{key}` is named `{name}`"));
    }
    values::name(name).map_err(|reason| format!("{kind} `{name}` has an invalid name: {reason}"))
}

fn valid_ifname(what: impl Display, ifname: &str) -> Result<(), String> {
    values::ifname(ifname)
        .map_err(|reason| format!("{what} `{ifname}` is not a valid interface name: {reason}"))
}

fn networks(model: &Model) -> Result<(), String> {
    let mut bridges = Holders::new();
    for (key, network) in &model.networks {
        valid_name("network", key, &network.name)?;
        addressing(network)?;
        let name = &network.name;
        match (network.driver, &network.bridge, &network.parent) {
            (Driver::Bridge, None, _) => return Err(format!("bridge network `{name}` has no bridge")),
            (Driver::Macvlan, _, None) => return Err(format!("macvlan network `{name}` has no parent")),
            _ => {}
        }
        if let Some(bridge) = &network.bridge {
            valid_ifname(format_args!("the bridge of network `{name}`,"), bridge)?;
            bridges
                .hold(bridge.as_str(), name)
                .map_err(|other| format!("networks `{other}` and `{name}` both have bridge `{bridge}`"))?;
        }
        if let Some(parent) = &network.parent {
            valid_ifname(format_args!("the parent of network `{name}`,"), parent)?;
        }
        if !values::MTU_RANGE.contains(&network.mtu) {
            return Err(format!(
                "network `{name}` has MTU {}, outside 68..65535",
                network.mtu
            ));
        }
    }
    let all: Vec<&Network> = model.networks.values().collect();
    for (i, a) in all.iter().enumerate() {
        if let Some(b) = all[i + 1..].iter().find(|b| subnets_overlap(a.subnet, b.subnet)) {
            return Err(format!(
                "subnet {} of network `{}` overlaps subnet {} of network `{}`",
                a.subnet, a.name, b.subnet, b.name
            ));
        }
    }
    Ok(())
}

/// Subnets with room for a gateway and endpoints, gateways and ip-range inside them.
fn addressing(network: &Network) -> Result<(), String> {
    let (name, subnet) = (&network.name, network.subnet);
    if subnet.prefix() > LONGEST_PREFIX_V4 {
        return Err(format!(
            "network `{name}` has subnet {subnet}, too small for a gateway and an endpoint"
        ));
    }
    if let Some(which) = outside_or_reserved(subnet, network.gateway) {
        return Err(format!(
            "gateway {} of network `{name}` is {which}",
            network.gateway
        ));
    }
    if let Some(range) = network.ip_range {
        if !(subnet.contains(range.network()) && subnet.contains(range.broadcast())) {
            return Err(format!(
                "ip-range {range} of network `{name}` is outside its subnet {subnet}"
            ));
        }
    }
    if let Some(v6) = network.ipv6 {
        if v6.subnet.prefix() > LONGEST_PREFIX_V6 {
            return Err(format!(
                "network `{name}` has IPv6 subnet {}, too small for a gateway and an endpoint",
                v6.subnet
            ));
        }
        if !v6.subnet.contains(v6.gateway) || v6.gateway == v6.subnet.network() {
            return Err(format!(
                "IPv6 gateway {} of network `{name}` is not a host address of its subnet {}",
                v6.gateway, v6.subnet
            ));
        }
    }
    Ok(())
}

/// What keeps `ip` from being a host address of `subnet`, if anything does.
fn outside_or_reserved(subnet: Ipv4Network, ip: Ipv4Addr) -> Option<String> {
    if !subnet.contains(ip) {
        Some(format!("outside its subnet {subnet}"))
    } else if ip == subnet.network() {
        Some(format!("the network address of its subnet {subnet}"))
    } else if ip == subnet.broadcast() {
        Some(format!("the broadcast address of its subnet {subnet}"))
    } else {
        None
    }
}

fn sandboxes(model: &Model) -> Result<(), String> {
    for (key, sandbox) in &model.sandboxes {
        valid_name("sandbox", key, &sandbox.name)?;
        let name = &sandbox.name;
        if let Some(hostname) = &sandbox.hostname {
            values::hostname(hostname).map_err(|reason| {
                format!("sandbox `{name}` has an invalid hostname `{hostname}`: {reason}")
            })?;
        }
        if let Mode::Container(other) = &sandbox.mode {
            let shared = |what: &str| format!("sandbox `{name}` shares the namespace of `{other}`, {what}");
            match model.sandboxes.get(other) {
                None => return Err(shared("which the state does not hold")),
                Some(target) if target.netns().is_none() => {
                    return Err(shared("which has no namespace of its own"))
                }
                Some(_) => {}
            }
        }
    }
    Ok(())
}

fn endpoints(model: &Model) -> Result<(), String> {
    let mut host_ifnames = Holders::new();
    let mut ifnames = Holders::new();
    let mut addresses = Holders::new();
    let mut macs = Holders::new();
    let mut default_routes = Holders::new();
    for (key, endpoint) in &model.endpoints {
        valid_name("endpoint", key, &endpoint.name)?;
        let name = &endpoint.name;
        let Some(network) = model.networks.get(&endpoint.network) else {
            return Err(format!(
                "endpoint `{name}` names network `{}`, which the state does not hold",
                endpoint.network
            ));
        };
        if let Some(sandbox) = &endpoint.sandbox {
            let sandbox = joined_sandbox(model, endpoint, sandbox)?;
            let ifname = endpoint.ifname.as_deref().unwrap_or_default();
            ifnames
                .hold((sandbox.name.as_str(), ifname), name)
                .map_err(|other| {
                    format!(
                        "endpoints `{other}` and `{name}` both have interface `{ifname}` in sandbox `{}`",
                        sandbox.name
                    )
                })?;
            if endpoint.default_route {
                default_routes
                    .hold(sandbox.name.as_str(), name)
                    .map_err(|other| {
                        format!(
                            "sandbox `{}` has two default routes, through endpoints `{other}` and `{name}`",
                            sandbox.name
                        )
                    })?;
            }
        }
        valid_ifname(
            format_args!("the host interface of endpoint `{name}`,"),
            &endpoint.host_ifname,
        )?;
        host_ifnames
            .hold(endpoint.host_ifname.as_str(), name)
            .map_err(|other| {
                format!(
                    "endpoints `{other}` and `{name}` both have host interface `{}`",
                    endpoint.host_ifname
                )
            })?;
        endpoint_addresses(endpoint, network)?;
        addresses.hold(endpoint.ip.to_string(), name).map_err(|other| {
            format!(
                "endpoints `{other}` and `{name}` both have address {}",
                endpoint.ip
            )
        })?;
        if let Some(ipv6) = endpoint.ipv6 {
            addresses
                .hold(ipv6.to_string(), name)
                .map_err(|other| format!("endpoints `{other}` and `{name}` both have address {ipv6}"))?;
        }
        macs.hold((network.name.as_str(), endpoint.mac), name)
            .map_err(|other| {
                format!(
                    "endpoints `{other}` and `{name}` on network `{}` both have MAC {}",
                    network.name, endpoint.mac
                )
            })?;
    }
    Ok(())
}

/// The sandbox a joined endpoint names, which must exist, have a namespace of its own,
/// and give the endpoint an interface name.
fn joined_sandbox<'m>(model: &'m Model, endpoint: &Endpoint, sandbox: &str) -> Result<&'m Sandbox, String> {
    let name = &endpoint.name;
    let Some(sandbox) = model.sandboxes.get(sandbox) else {
        return Err(format!(
            "endpoint `{name}` names sandbox `{sandbox}`, which the state does not hold"
        ));
    };
    if sandbox.netns().is_none() {
        return Err(format!(
            "endpoint `{name}` is joined to sandbox `{}`, which has no namespace of its own",
            sandbox.name
        ));
    }
    let Some(ifname) = &endpoint.ifname else {
        return Err(format!(
            "endpoint `{name}` is joined to sandbox `{}` without an interface name",
            sandbox.name
        ));
    };
    valid_ifname(format_args!("the interface of endpoint `{name}`,"), ifname)?;
    Ok(sandbox)
}

/// An endpoint's addresses are host addresses of its network's subnets, not gateways.
fn endpoint_addresses(endpoint: &Endpoint, network: &Network) -> Result<(), String> {
    let name = &endpoint.name;
    if let Some(which) = outside_or_reserved(network.subnet, endpoint.ip) {
        return Err(format!("address {} of endpoint `{name}` is {which}", endpoint.ip));
    }
    if endpoint.ip == network.gateway {
        return Err(format!(
            "address {} of endpoint `{name}` is the gateway of network `{}`",
            endpoint.ip, network.name
        ));
    }
    if let Some(ipv6) = endpoint.ipv6 {
        match network.ipv6 {
            None => {
                return Err(format!(
                    "endpoint `{name}` has IPv6 address {ipv6}, but network `{}` has no IPv6 subnet",
                    network.name
                ))
            }
            Some(v6) if !v6.subnet.contains(ipv6) => {
                return Err(format!(
                    "IPv6 address {ipv6} of endpoint `{name}` is outside subnet {} of network `{}`",
                    v6.subnet, network.name
                ))
            }
            Some(v6) if ipv6 == v6.gateway => {
                return Err(format!(
                    "IPv6 address {ipv6} of endpoint `{name}` is the gateway of network `{}`",
                    network.name
                ))
            }
            Some(_) => {}
        }
    }
    Ok(())
}
