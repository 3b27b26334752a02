//! The kernel objects one model calls for: for each network, sandbox and endpoint, the
//! operations that create it from nothing, and the files its sandbox shows in `/etc`.

use std::collections::HashMap;

use ipnetwork::{IpNetwork, Ipv4Network, Ipv6Network};

use super::op::{EtcFile, Op};
use crate::model::{Driver, Endpoint, Model, Network, Sandbox};

/// A model with the look-ups planning needs, built once: a sandbox's endpoints, and the
/// endpoints with aliases on each network.
pub struct Kernel<'m> {
    pub model: &'m Model,
    by_sandbox: HashMap<&'m str, Vec<&'m Endpoint>>,
    aliased: HashMap<&'m str, Vec<&'m Endpoint>>,
}

impl<'m> Kernel<'m> {
    pub fn new(model: &'m Model) -> Kernel<'m> {
        let mut by_sandbox: HashMap<&str, Vec<&Endpoint>> = HashMap::new();
        let mut aliased: HashMap<&str, Vec<&Endpoint>> = HashMap::new();
        for endpoint in model.endpoints.values() {
            let Some(sandbox) = endpoint.sandbox.as_deref() else {
                continue;
            };
            by_sandbox.entry(sandbox).or_default().push(endpoint);
            let live = model.sandboxes.get(sandbox).is_some_and(Sandbox::is_running);
            if live && !endpoint.aliases.is_empty() {
                aliased.entry(&endpoint.network).or_default().push(endpoint);
            }
        }
        Kernel {
            model,
            by_sandbox,
            aliased,
        }
    }

    /// The namespace a sandbox has in the kernel: its own, and only while it runs.
    pub fn live_netns(&self, sandbox: &str) -> Option<&'m str> {
        let sandbox = self.model.sandboxes.get(sandbox)?;
        sandbox.is_running().then(|| sandbox.netns()).flatten()
    }

    pub fn network_ops(&self, network: &Network) -> Vec<Op> {
        let Some(bridge) = network.bridge.clone() else {
            return Vec::new();
        };
        let mut ops = vec![
            Op::AddBridge {
                bridge: bridge.clone(),
                mtu: network.mtu,
            },
            Op::AddAddress {
                netns: None,
                link: bridge.clone(),
                address: v4(network.gateway, network.subnet),
            },
        ];
        if let Some(v6) = network.ipv6 {
            ops.push(Op::AddAddress {
                netns: None,
                link: bridge.clone(),
                address: v6_(v6.gateway, v6.subnet),
            });
        }
        ops.push(Op::LinkUp {
            netns: None,
            link: bridge,
        });
        ops
    }

    pub fn sandbox_ops(&self, sandbox: &Sandbox) -> Vec<Op> {
        match self.live_netns(&sandbox.name) {
            Some(netns) => vec![
                Op::AddNetns {
                    netns: netns.to_string(),
                },
                Op::LinkUp {
                    netns: Some(netns.to_string()),
                    link: "lo".into(),
                },
            ],
            None => Vec::new(),
        }
    }

    /// The ops of a joined endpoint of a running sandbox; none for any other endpoint.
    pub fn endpoint_ops(&self, endpoint: &Endpoint) -> Vec<Op> {
        let (Some(sandbox), Some(ifname)) = (&endpoint.sandbox, &endpoint.ifname) else {
            return Vec::new();
        };
        let Some(netns) = self.live_netns(sandbox) else {
            return Vec::new();
        };
        let netns = netns.to_string();
        let network = &self.model.networks[&endpoint.network];
        let mut ops = match network.driver {
            Driver::Bridge => vec![
                Op::AddVeth {
                    link: endpoint.host_ifname.clone(),
                    peer: ifname.clone(),
                    netns: netns.clone(),
                    mtu: network.mtu,
                    mac: endpoint.mac,
                },
                Op::SetMaster {
                    link: endpoint.host_ifname.clone(),
                    master: network.bridge.clone().expect("a bridge network has a bridge"),
                },
                Op::LinkUp {
                    netns: None,
                    link: endpoint.host_ifname.clone(),
                },
            ],
            Driver::Macvlan => vec![Op::AddMacvlan {
                link: ifname.clone(),
                parent: network.parent.clone().expect("a macvlan network has a parent"),
                netns: netns.clone(),
                mtu: network.mtu,
                mac: endpoint.mac,
            }],
        };
        ops.push(Op::AddAddress {
            netns: Some(netns.clone()),
            link: ifname.clone(),
            address: v4(endpoint.ip, network.subnet),
        });
        if let (Some(ip), Some(v6)) = (endpoint.ipv6, network.ipv6) {
            ops.push(Op::AddAddress {
                netns: Some(netns.clone()),
                link: ifname.clone(),
                address: v6_(ip, v6.subnet),
            });
        }
        ops.push(Op::LinkUp {
            netns: Some(netns.clone()),
            link: ifname.clone(),
        });
        if let Some(route) = self.default_route(endpoint) {
            ops.push(route);
        }
        ops
    }

    /// The default route an endpoint carries for its sandbox, if it carries it.
    pub fn default_route(&self, endpoint: &Endpoint) -> Option<Op> {
        if !endpoint.default_route {
            return None;
        }
        let netns = self.live_netns(endpoint.sandbox.as_deref()?)?;
        Some(Op::AddRoute {
            netns: netns.to_string(),
            gateway: self.model.networks[&endpoint.network].gateway.into(),
            link: endpoint.ifname.clone()?,
        })
    }

    /// The files of a running sandbox with a namespace of its own.
    pub fn files(&self, sandbox: &Sandbox) -> Vec<(EtcFile, String)> {
        if self.live_netns(&sandbox.name).is_none() {
            return Vec::new();
        }
        let mut files = vec![(EtcFile::Hosts, self.hosts_file(sandbox))];
        if !sandbox.dns.is_empty() {
            let resolv = sandbox
                .dns
                .iter()
                .map(|ip| format!("nameserver {ip}\n"))
                .collect();
            files.push((EtcFile::ResolvConf, resolv));
        }
        files
    }

    /// `/etc/hosts`: localhost, the sandbox's own name, then the aliases of the running
    /// endpoints on its networks.
    fn hosts_file(&self, sandbox: &Sandbox) -> String {
        let hostname = sandbox.hostname.as_deref().unwrap_or(&sandbox.name);
        let own = self
            .by_sandbox
            .get(sandbox.name.as_str())
            .map_or(&[][..], Vec::as_slice);
        let own_ip = own.first().map_or("127.0.1.1".to_string(), |e| e.ip.to_string());
        let mut text = format!(
            "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n{own_ip}\t{hostname}\n"
        );
        for endpoint in own {
            for peer in self.aliased.get(endpoint.network.as_str()).into_iter().flatten() {
                text.push_str(&format!("{}\t{}\n", peer.ip, peer.aliases.join(" ")));
            }
        }
        text
    }
}

fn v4(ip: std::net::Ipv4Addr, subnet: Ipv4Network) -> IpNetwork {
    IpNetwork::V4(Ipv4Network::new(ip, subnet.prefix()).expect("a valid prefix"))
}

fn v6_(ip: std::net::Ipv6Addr, subnet: Ipv6Network) -> IpNetwork {
    IpNetwork::V6(Ipv6Network::new(ip, subnet.prefix()).expect("a valid prefix"))
}
