//! Kernel operations: the steps of a plan, each one request to the kernel (or one file
//! under the `/etc/netns` directory), shown in the iproute2 terms a reader knows.

use std::fmt::{self, Write};
use std::net::IpAddr;
use std::path::Path;
use std::sync::Arc;

use ipnetwork::IpNetwork;
use serde::{Deserialize, Serialize};

use super::firewall::{self, NftSet, TABLE};
use super::text::FileText;
use super::words::{push_ip, push_mac, push_network, push_number};
use crate::model::Mac;

/// The name of a namespace or a link in an operation: shared, since a plan names each
/// in several operations and their undos.
pub type Name = Arc<str>;

/// One kernel operation. `netns: None` means the host's namespace.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Op {
    /// A named network namespace under the namespace directory.
    AddNetns {
        netns: Name,
    },
    /// Deletes a namespace, which takes its interfaces along. The kernel removes the
    /// host ends of its veths in the background; `links` names them, so that the
    /// backend can wait for them to be gone before their names are used again.
    DelNetns {
        netns: Name,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        links: Vec<Name>,
    },
    AddBridge {
        bridge: Name,
        mtu: u32,
    },
    /// A veth pair whose peer is created directly inside `netns`, named `peer`; the
    /// host end `link` attached to the bridge `master` in the same request, if any.
    AddVeth {
        link: Name,
        peer: Name,
        netns: Name,
        mtu: u32,
        mac: Mac,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        master: Option<Name>,
    },
    /// A macvlan interface on `parent`, created directly inside `netns`.
    AddMacvlan {
        link: Name,
        parent: Name,
        netns: Name,
        mtu: u32,
        mac: Mac,
    },
    /// Deletes a link; deleting one end of a veth pair deletes both.
    DelLink {
        #[serde(skip_serializing_if = "Option::is_none")]
        netns: Option<Name>,
        link: Name,
    },
    SetMaster {
        link: Name,
        master: Name,
    },
    NoMaster {
        link: Name,
    },
    LinkUp {
        #[serde(skip_serializing_if = "Option::is_none")]
        netns: Option<Name>,
        link: Name,
    },
    LinkDown {
        #[serde(skip_serializing_if = "Option::is_none")]
        netns: Option<Name>,
        link: Name,
    },
    AddAddress {
        #[serde(skip_serializing_if = "Option::is_none")]
        netns: Option<Name>,
        link: Name,
        address: IpNetwork,
    },
    DelAddress {
        #[serde(skip_serializing_if = "Option::is_none")]
        netns: Option<Name>,
        link: Name,
        address: IpNetwork,
    },
    /// A default route of a namespace, through a gateway: IPv4 or IPv6, as the
    /// gateway is.
    AddRoute {
        netns: Name,
        gateway: IpAddr,
        link: Name,
    },
    DelRoute {
        netns: Name,
        gateway: IpAddr,
        link: Name,
    },
    /// A file `ip netns exec` shows the sandbox as its own `/etc/FILE`.
    WriteFile {
        netns: Name,
        file: EtcFile,
        content: FileText,
    },
    RemoveFile {
        netns: Name,
        file: EtcFile,
    },
    /// cnm's nftables table with its chains, its sets and maps empty (see
    /// [`firewall`](super::firewall)).
    AddFirewall,
    /// Deletes cnm's table with all it holds.
    DelFirewall,
    /// One element of a set or map of cnm's table, in `nft` syntax.
    AddNftElement {
        set: NftSet,
        element: String,
    },
    DelNftElement {
        set: NftSet,
        element: String,
    },
    /// Whether a bridge routes packets from or to 127.0.0.0/8 (`route_localnet`), which
    /// a port published on the host's loopback needs. Turning it off where the link is
    /// gone is success.
    RouteLocalnet {
        link: Name,
        on: bool,
    },
    /// The host's `net.ipv4.ip_forward`.
    SetForwarding {
        on: bool,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum EtcFile {
    Hosts,
    ResolvConf,
}

impl EtcFile {
    pub fn as_str(self) -> &'static str {
        match self {
            EtcFile::Hosts => "hosts",
            EtcFile::ResolvConf => "resolv.conf",
        }
    }
}

impl fmt::Display for EtcFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Op {
    /// Whether this operation takes something away. Deleting is idempotent (what is
    /// gone is success); undoing a deletion makes the object again, which is not.
    pub fn is_deletion(&self) -> bool {
        matches!(
            self,
            Op::DelNetns { .. }
                | Op::DelLink { .. }
                | Op::NoMaster { .. }
                | Op::LinkDown { .. }
                | Op::DelAddress { .. }
                | Op::DelRoute { .. }
                | Op::RemoveFile { .. }
                | Op::DelFirewall
                | Op::DelNftElement { .. }
        )
    }

    /// Whether this is a change to cnm's nftables table. Such operations go to the
    /// kernel together, as one atomic batch, when they follow each other.
    pub fn is_firewall(&self) -> bool {
        matches!(
            self,
            Op::AddFirewall | Op::DelFirewall | Op::AddNftElement { .. } | Op::DelNftElement { .. }
        )
    }

    /// A firewall operation as the lines of an `nft -f` batch. Each may run again or
    /// find its work done: a deletion first adds what it deletes (and an element's
    /// table and set, when a crash cut short the batch that made them: the table's own
    /// deletion follows in the same undo batch).
    pub fn nft_lines(&self) -> Vec<String> {
        match self {
            Op::AddFirewall => firewall::table_lines(),
            Op::DelFirewall => vec![format!("add table {TABLE}"), format!("delete table {TABLE}")],
            Op::AddNftElement { set, element } => vec![format!("add element {TABLE} {set} {{ {element} }}")],
            Op::DelNftElement { set, element } => vec![
                format!("add table {TABLE}"),
                set.declaration(),
                format!("add element {TABLE} {set} {{ {element} }}"),
                format!("delete element {TABLE} {set} {{ {} }}", set.key(element)),
            ],
            _ => Vec::new(),
        }
    }

    /// The operation that undoes this one, for operations that create. Deletions have
    /// no single inverse: the planner gives them the full list that recreates the object.
    pub fn inverse(&self) -> Op {
        match self.clone() {
            Op::AddNetns { netns } => Op::DelNetns {
                netns,
                links: Vec::new(),
            },
            Op::AddBridge { bridge, .. } => Op::DelLink {
                netns: None,
                link: bridge,
            },
            Op::AddVeth { link, .. } => Op::DelLink { netns: None, link },
            Op::AddMacvlan { netns, link, .. } => Op::DelLink {
                netns: Some(netns),
                link,
            },
            Op::SetMaster { link, .. } => Op::NoMaster { link },
            Op::LinkUp { netns, link } => Op::LinkDown { netns, link },
            Op::AddAddress { netns, link, address } => Op::DelAddress { netns, link, address },
            Op::AddRoute { netns, gateway, link } => Op::DelRoute { netns, gateway, link },
            Op::WriteFile { netns, file, .. } => Op::RemoveFile { netns, file },
            Op::AddFirewall => Op::DelFirewall,
            Op::AddNftElement { set, element } => Op::DelNftElement { set, element },
            Op::SetForwarding { on } => Op::SetForwarding { on: !on },
            Op::RouteLocalnet { link, on } => Op::RouteLocalnet { link, on: !on },
            deletion => unreachable!("{deletion:?} has no single inverse"),
        }
    }
}

/// The directory of the sandboxes' `/etc` files unless `--etc-dir` says otherwise.
pub const DEFAULT_ETC_DIR: &str = "/etc/netns";

/// An operation in iproute2's words, its files under a given `/etc/netns` directory.
pub struct Command<'a> {
    op: &'a Op,
    etc_dir: &'a Path,
}

impl Op {
    /// This operation in iproute2's words, its files under `etc_dir`.
    pub fn command<'a>(&'a self, etc_dir: &'a Path) -> Command<'a> {
        Command { op: self, etc_dir }
    }
}

impl Command<'_> {
    /// Appends the command to `out`, as it displays: piece by piece, without `core::fmt`
    /// for the operations a plan has thousands of.
    pub fn push_to(&self, out: &mut String) {
        // `ip -n NETNS ` or `ip `.
        let netns_ip = |out: &mut String, netns: &Option<Name>| match netns {
            Some(netns) => {
                out.push_str("ip -n ");
                out.push_str(netns);
                out.push(' ');
            }
            None => out.push_str("ip "),
        };
        match self.op {
            Op::AddNetns { netns } => {
                out.push_str("ip netns add ");
                out.push_str(netns);
            }
            Op::DelNetns { netns, .. } => {
                out.push_str("ip netns del ");
                out.push_str(netns);
            }
            Op::AddVeth {
                link,
                peer,
                netns,
                mtu,
                mac,
                master,
            } => {
                out.push_str("ip link add ");
                out.push_str(link);
                out.push_str(" mtu ");
                push_number(out, (*mtu).into());
                if let Some(master) = master {
                    out.push_str(" master ");
                    out.push_str(master);
                }
                out.push_str(" type veth peer name ");
                out.push_str(peer);
                out.push_str(" address ");
                push_mac(out, *mac);
                out.push_str(" netns ");
                out.push_str(netns);
            }
            Op::DelLink { netns, link } => {
                netns_ip(out, netns);
                out.push_str("link del ");
                out.push_str(link);
            }
            Op::SetMaster { link, master } => {
                out.push_str("ip link set ");
                out.push_str(link);
                out.push_str(" master ");
                out.push_str(master);
            }
            Op::LinkUp { netns, link } | Op::LinkDown { netns, link } => {
                netns_ip(out, netns);
                out.push_str("link set ");
                out.push_str(link);
                out.push_str(if matches!(self.op, Op::LinkUp { .. }) {
                    " up"
                } else {
                    " down"
                });
            }
            Op::AddAddress { netns, link, address } | Op::DelAddress { netns, link, address } => {
                netns_ip(out, netns);
                out.push_str(if matches!(self.op, Op::AddAddress { .. }) {
                    "addr add "
                } else {
                    "addr del "
                });
                push_network(out, *address);
                out.push_str(" dev ");
                out.push_str(link);
            }
            Op::AddRoute { netns, gateway, link } | Op::DelRoute { netns, gateway, link } => {
                // `ip -6` for an IPv6 route, as `ip` wants it said.
                out.push_str(if gateway.is_ipv6() { "ip -6 -n " } else { "ip -n " });
                out.push_str(netns);
                out.push_str(if matches!(self.op, Op::AddRoute { .. }) {
                    " route add"
                } else {
                    " route del"
                });
                out.push_str(" default via ");
                push_ip(out, *gateway);
                out.push_str(" dev ");
                out.push_str(link);
            }
            Op::WriteFile { netns, file, content } => {
                out.push_str("write ");
                self.push_path(out, netns, file);
                out.push_str(" (");
                push_number(out, content.line_count() as u64);
                out.push_str(" lines)");
            }
            Op::RemoveFile { netns, file } => {
                out.push_str("rm ");
                self.push_path(out, netns, file);
            }
            // Once or a few times in a plan: formatted.
            Op::AddBridge { bridge, mtu } => {
                let _ = write!(out, "ip link add {bridge} mtu {mtu} type bridge mcast_snooping 0");
            }
            Op::AddMacvlan {
                link,
                parent,
                netns,
                mtu,
                mac,
            } => {
                let _ = write!(
                    out,
                    "ip link add link {parent} name {link} mtu {mtu} address {mac} netns {netns} type macvlan mode bridge"
                );
            }
            Op::NoMaster { link } => {
                let _ = write!(out, "ip link set {link} nomaster");
            }
            Op::AddFirewall => {
                let _ = write!(out, "nft add table {TABLE} (its chains, sets and maps)");
            }
            Op::DelFirewall => {
                let _ = write!(out, "nft delete table {TABLE}");
            }
            Op::AddNftElement { set, element } => {
                let _ = write!(out, "nft add element {TABLE} {set} {{ {element} }}");
            }
            Op::DelNftElement { set, element } => {
                let _ = write!(out, "nft delete element {TABLE} {set} {{ {} }}", set.key(element));
            }
            Op::SetForwarding { on } => {
                let _ = write!(out, "sysctl -w net.ipv4.ip_forward={}", u8::from(*on));
            }
            Op::RouteLocalnet { link, on } => {
                let _ = write!(
                    out,
                    "sysctl -w net.ipv4.conf.{link}.route_localnet={}",
                    u8::from(*on)
                );
            }
        }
    }

    /// `ETC_DIR/NETNS/FILE`, as `Path::join` would make it, written without making it.
    fn push_path(&self, out: &mut String, netns: &str, file: &EtcFile) {
        let dir = self.etc_dir.as_os_str();
        out.push_str(&dir.to_string_lossy());
        if !(dir.is_empty() || dir.as_encoded_bytes().ends_with(b"/")) {
            out.push('/');
        }
        out.push_str(netns);
        out.push('/');
        out.push_str(file.as_str());
    }
}

impl fmt::Display for Command<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut text = String::new();
        self.push_to(&mut text);
        f.write_str(&text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_files_path_is_written_as_path_join_makes_it() {
        for etc_dir in ["/etc/netns", "/etc/netns/", "", "relative/etc", "/"] {
            let etc_dir = Path::new(etc_dir);
            let op = Op::RemoveFile {
                netns: "s1".into(),
                file: EtcFile::Hosts,
            };
            let joined = etc_dir.join("s1").join("hosts");
            assert_eq!(
                op.command(etc_dir).to_string(),
                format!("rm {}", joined.display()),
                "{etc_dir:?}"
            );
        }
    }
}
