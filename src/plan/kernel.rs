//! The kernel objects one model calls for: for each network, sandbox and endpoint, the
//! operations that create it from nothing, and the files its sandbox shows in `/etc`.

use std::net::IpAddr;
use std::ops::Range;
use std::sync::Arc;

use ipnetwork::{IpNetwork, Ipv4Network, Ipv6Network};
use rustc_hash::FxHashMap;

use super::op::{EtcFile, Name, Op};
use super::text::FileText;
use super::words::push_ipv4;
use crate::model::{Driver, Endpoint, Model, Network, Sandbox};

/// A model with the look-ups planning needs, built once: a sandbox's endpoints, and the
/// endpoints in the kernel (of running sandboxes) on each network, with their lines of
/// the others' hosts files in one block per network, which those files share (a
/// network of N sandboxes has N hosts files of N lines each).
pub struct Kernel<'m> {
    pub model: &'m Model,
    by_sandbox: FxHashMap<&'m str, Vec<&'m Endpoint>>,
    live_on: FxHashMap<&'m str, PeerLines>,
    /// Where each live endpoint's lines are in its network's block.
    lines_of: FxHashMap<&'m str, Lines>,
    /// The loopback interface's name, which every namespace's operations share.
    lo: Name,
    /// Each network's bridge, by network, which its endpoints' operations share.
    bridges: FxHashMap<&'m str, Name>,
}

/// The hosts lines of a network's live endpoints, in one text, and how many.
struct PeerLines {
    text: Arc<str>,
    count: usize,
}

/// Where an endpoint's lines are in its network's text: bytes, and which lines.
#[derive(Clone)]
struct Lines {
    bytes: Range<usize>,
    lines: Range<usize>,
}

impl<'m> Kernel<'m> {
    pub fn new(model: &'m Model) -> Kernel<'m> {
        let endpoints = model.endpoints.len();
        let mut by_sandbox: FxHashMap<&str, Vec<&Endpoint>> =
            FxHashMap::with_capacity_and_hasher(model.sandboxes.len(), Default::default());
        let mut blocks: FxHashMap<&str, (String, usize)> = FxHashMap::default();
        let mut lines_of = FxHashMap::with_capacity_and_hasher(endpoints, Default::default());
        for endpoint in model.endpoints.values() {
            let Some(sandbox) = endpoint.sandbox.as_deref() else {
                continue;
            };
            by_sandbox.entry(sandbox).or_default().push(endpoint);
            if is_live(model, endpoint) {
                let (block, count) = blocks.entry(&endpoint.network).or_default();
                let (start, first) = (block.len(), *count);
                push_hosts_lines(block, endpoint, sandbox);
                *count += 1 + usize::from(endpoint.ipv6.is_some());
                let lines = Lines {
                    bytes: start..block.len(),
                    lines: first..*count,
                };
                lines_of.insert(endpoint.name.as_str(), lines);
            }
        }
        let live_on = blocks
            .into_iter()
            .map(|(network, (text, count))| {
                (
                    network,
                    PeerLines {
                        text: Arc::from(text),
                        count,
                    },
                )
            })
            .collect();
        Kernel {
            model,
            by_sandbox,
            live_on,
            lines_of,
            lo: Name::from("lo"),
            bridges: model
                .networks
                .values()
                .filter_map(|n| Some((n.name.as_str(), Name::from(n.bridge.as_deref()?))))
                .collect(),
        }
    }

    /// The namespace a sandbox has in the kernel: its own, and only while it runs.
    pub fn live_netns(&self, sandbox: &str) -> Option<&'m str> {
        let sandbox = self.model.sandboxes.get(sandbox)?;
        sandbox.is_running().then(|| sandbox.netns()).flatten()
    }

    pub fn network_ops(&self, network: &Network) -> Vec<Op> {
        let Some(bridge) = self.bridges.get(network.name.as_str()).cloned() else {
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
            link: bridge.clone(),
        });
        // Ports published on the host's loopback reach sandboxes through the bridge.
        ops.push(Op::RouteLocalnet {
            link: bridge,
            on: true,
        });
        ops
    }

    pub fn sandbox_ops(&self, sandbox: &Sandbox) -> Vec<Op> {
        match self.live_netns(&sandbox.name) {
            Some(netns) => {
                let netns = Name::from(netns);
                vec![
                    Op::AddNetns { netns: netns.clone() },
                    Op::LinkUp {
                        netns: Some(netns),
                        link: self.lo.clone(),
                    },
                ]
            }
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
        let (netns, ifname) = (Name::from(netns), Name::from(ifname.as_str()));
        let network = &self.model.networks[&endpoint.network];
        let mut ops = match network.driver {
            Driver::Bridge => {
                let host_ifname = Name::from(endpoint.host_ifname.as_str());
                let bridge = self
                    .bridges
                    .get(network.name.as_str())
                    .expect("a bridge network has a bridge");
                vec![
                    // Attached as it is made: one request to the kernel, not two.
                    Op::AddVeth {
                        link: host_ifname.clone(),
                        peer: ifname.clone(),
                        netns: netns.clone(),
                        mtu: network.mtu,
                        mac: endpoint.mac,
                        master: Some(bridge.clone()),
                    },
                    Op::LinkUp {
                        netns: None,
                        link: host_ifname,
                    },
                ]
            }
            Driver::Macvlan => vec![Op::AddMacvlan {
                link: ifname.clone(),
                parent: network
                    .parent
                    .as_deref()
                    .expect("a macvlan network has a parent")
                    .into(),
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
        ops.extend(self.routes(endpoint, &netns, &ifname));
        ops
    }

    /// The default routes an endpoint carries for its sandbox, if it carries them: via
    /// its network's gateway, and via its IPv6 gateway on a dual-stack network.
    pub fn default_routes(&self, endpoint: &Endpoint) -> Vec<Op> {
        let (Some(sandbox), Some(link)) = (endpoint.sandbox.as_deref(), &endpoint.ifname) else {
            return Vec::new();
        };
        let Some(netns) = self.live_netns(sandbox) else {
            return Vec::new();
        };
        self.routes(endpoint, &Name::from(netns), &Name::from(link.as_str()))
    }

    /// [`Self::default_routes`] of an endpoint in the kernel, on `link` in `netns`.
    fn routes(&self, endpoint: &Endpoint, netns: &Name, link: &Name) -> Vec<Op> {
        if !endpoint.default_route {
            return Vec::new();
        }
        let network = &self.model.networks[&endpoint.network];
        let v6 = network.ipv6.filter(|_| endpoint.ipv6.is_some());
        std::iter::once(IpAddr::V4(network.gateway))
            .chain(v6.map(|v6| IpAddr::V6(v6.gateway)))
            .map(|gateway| Op::AddRoute {
                netns: netns.clone(),
                gateway,
                link: link.clone(),
            })
            .collect()
    }

    /// The files of a running sandbox with a namespace of its own.
    pub fn files(&self, sandbox: &Sandbox) -> Vec<(EtcFile, FileText)> {
        if self.live_netns(&sandbox.name).is_none() {
            return Vec::new();
        }
        let mut files = vec![(EtcFile::Hosts, self.hosts_file(sandbox))];
        if !sandbox.dns.is_empty() {
            let resolv: String = sandbox
                .dns
                .iter()
                .map(|ip| format!("nameserver {ip}\n"))
                .collect();
            files.push((EtcFile::ResolvConf, FileText::from(resolv)));
        }
        files
    }

    /// A sandbox's endpoints, in join order.
    pub fn endpoints_of(&self, sandbox: &str) -> &[&'m Endpoint] {
        self.by_sandbox.get(sandbox).map_or(&[], Vec::as_slice)
    }

    /// What an endpoint adds to the hosts files of the other sandboxes on its network,
    /// while it is in the kernel: its addresses, each with its sandbox's name and its
    /// aliases.
    pub fn hosts_entry(&self, endpoint: &Endpoint) -> Option<&str> {
        let lines = self.lines_of.get(endpoint.name.as_str())?;
        Some(&self.live_on[endpoint.network.as_str()].text[lines.bytes.clone()])
    }

    /// `/etc/hosts`: localhost; the sandbox's own addresses with its hostname (its
    /// name unless `hostname` says otherwise) and aliases; then the addresses of the
    /// running peers on its networks with their names and aliases, as containers on a
    /// Docker user-defined network resolve each other.
    fn hosts_file(&self, sandbox: &Sandbox) -> FileText {
        let hostname = sandbox.hostname.as_deref().unwrap_or(&sandbox.name);
        let own = self.endpoints_of(&sandbox.name);
        let mut text = hosts_mark(sandbox);
        text.push_str("127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n");
        if own.is_empty() {
            text.push_str(&format!("127.0.1.1\t{hostname}\n"));
        }
        for endpoint in own {
            push_hosts_lines(&mut text, endpoint, hostname);
        }
        let mut file = FileText::from(text);
        let mut networks: Vec<&str> = Vec::new();
        for endpoint in own {
            if !networks.contains(&endpoint.network.as_str()) {
                networks.push(&endpoint.network);
            }
        }
        for network in networks {
            let Some(peers) = self.live_on.get(network) else {
                continue;
            };
            // The network's block without this sandbox's own lines.
            let mut skip: Vec<Lines> = own
                .iter()
                .filter(|e| e.network == network)
                .filter_map(|e| self.lines_of.get(e.name.as_str()).cloned())
                .collect();
            skip.sort_by_key(|own| own.bytes.start);
            let (mut at, mut line) = (0, 0);
            for own in skip {
                file.push_shared(&peers.text, at..own.bytes.start, own.lines.start - line);
                (at, line) = (own.bytes.end, own.lines.end);
            }
            file.push_shared(&peers.text, at..peers.text.len(), peers.count - line);
        }
        file
    }
}

/// The first line of a sandbox's hosts file: cnm's mark, which tells `cnm gc` that the
/// namespace of that name is one cnm made.
fn hosts_mark(sandbox: &Sandbox) -> String {
    // Pushed, not formatted: one per sandbox. The file's own lines follow it.
    let mut mark = String::with_capacity(256);
    for piece in [
        HOSTS_MARK,
        &sandbox.name,
        " ",
        &sandbox.id,
        " (cnm writes this file)\n",
    ] {
        mark.push_str(piece);
    }
    mark
}

const HOSTS_MARK: &str = "# cnm sandbox ";

/// The sandbox a hosts file's first line says cnm made it for, if it is cnm's mark.
pub fn hosts_mark_owner(first_line: &str) -> Option<&str> {
    first_line.strip_prefix(HOSTS_MARK)?.split(' ').next()
}

/// Whether an endpoint is in the kernel: joined to a running sandbox with a namespace.
fn is_live(model: &Model, endpoint: &Endpoint) -> bool {
    let sandbox = endpoint.sandbox.as_deref().and_then(|s| model.sandboxes.get(s));
    endpoint.ifname.is_some() && sandbox.is_some_and(|s| s.is_running() && s.netns().is_some())
}

/// Appends an endpoint's lines of a hosts file to `text`, one per address:
/// `IP\tNAME ALIAS…`. Written piece by piece: a plan writes each line once for its
/// network and once for its own sandbox, tens of thousands in a large plan.
fn push_hosts_lines(text: &mut String, endpoint: &Endpoint, name: &str) {
    let names = |text: &mut String| {
        text.push('\t');
        text.push_str(name);
        for alias in &endpoint.aliases {
            text.push(' ');
            text.push_str(alias);
        }
        text.push('\n');
    };
    push_ipv4(text, endpoint.ip);
    names(text);
    if let Some(ip) = endpoint.ipv6 {
        text.push_str(&ip.to_string());
        names(text);
    }
}

fn v4(ip: std::net::Ipv4Addr, subnet: Ipv4Network) -> IpNetwork {
    IpNetwork::V4(Ipv4Network::new(ip, subnet.prefix()).expect("a valid prefix"))
}

fn v6_(ip: std::net::Ipv6Addr, subnet: Ipv6Network) -> IpNetwork {
    IpNetwork::V6(Ipv6Network::new(ip, subnet.prefix()).expect("a valid prefix"))
}
