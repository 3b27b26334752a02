//! Kernel operations: the steps of a plan, each one request to the kernel (or one file
//! under the `/etc/netns` directory), shown in the iproute2 terms a reader knows.

use std::fmt;
use std::net::IpAddr;
use std::path::Path;
use std::sync::Arc;

use ipnetwork::IpNetwork;
use serde::{Deserialize, Serialize};

use super::firewall::{self, NftSet, TABLE};
use super::text::FileText;
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
    /// A veth pair whose peer is created directly inside `netns`, named `peer`.
    AddVeth {
        link: Name,
        peer: Name,
        netns: Name,
        mtu: u32,
        mac: Mac,
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

impl fmt::Display for EtcFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            EtcFile::Hosts => "hosts",
            EtcFile::ResolvConf => "resolv.conf",
        })
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

/// ` -6` for an IPv6 route, as `ip` wants it said.
fn family(gateway: &IpAddr) -> &'static str {
    if gateway.is_ipv6() {
        " -6"
    } else {
        ""
    }
}

/// `ip -n NETNS ` or `ip `.
fn ip(netns: &Option<Name>) -> impl fmt::Display + '_ {
    struct Ip<'a>(&'a Option<Name>);
    impl fmt::Display for Ip<'_> {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            match self.0 {
                Some(netns) => write!(f, "ip -n {netns} "),
                None => f.write_str("ip "),
            }
        }
    }
    Ip(netns)
}

/// `ETC_DIR/NETNS/FILE`, as `Path::join` would make it, written without making it.
struct EtcPath<'a> {
    etc_dir: &'a Path,
    netns: &'a str,
    file: &'a EtcFile,
}

impl fmt::Display for EtcPath<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let dir = self.etc_dir.as_os_str();
        let separator = if dir.is_empty() || dir.as_encoded_bytes().ends_with(b"/") {
            ""
        } else {
            "/"
        };
        write!(
            f,
            "{}{separator}{}/{}",
            self.etc_dir.display(),
            self.netns,
            self.file
        )
    }
}

impl fmt::Display for Command<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let file = |netns, file| EtcPath {
            etc_dir: self.etc_dir,
            netns,
            file,
        };
        match self.op {
            Op::AddNetns { netns } => write!(f, "ip netns add {netns}"),
            Op::DelNetns { netns, .. } => write!(f, "ip netns del {netns}"),
            Op::AddBridge { bridge, mtu } => write!(f, "ip link add {bridge} mtu {mtu} type bridge"),
            Op::AddVeth {
                link,
                peer,
                netns,
                mtu,
                mac,
            } => write!(
                f,
                "ip link add {link} mtu {mtu} type veth peer name {peer} address {mac} netns {netns}"
            ),
            Op::AddMacvlan {
                link,
                parent,
                netns,
                mtu,
                mac,
            } => write!(
                f,
                "ip link add link {parent} name {link} mtu {mtu} address {mac} netns {netns} type macvlan mode bridge"
            ),
            Op::DelLink { netns, link } => write!(f, "{}link del {link}", ip(netns)),
            Op::SetMaster { link, master } => write!(f, "ip link set {link} master {master}"),
            Op::NoMaster { link } => write!(f, "ip link set {link} nomaster"),
            Op::LinkUp { netns, link } => write!(f, "{}link set {link} up", ip(netns)),
            Op::LinkDown { netns, link } => write!(f, "{}link set {link} down", ip(netns)),
            Op::AddAddress { netns, link, address } => write!(f, "{}addr add {address} dev {link}", ip(netns)),
            Op::DelAddress { netns, link, address } => write!(f, "{}addr del {address} dev {link}", ip(netns)),
            Op::AddRoute { netns, gateway, link } => {
                write!(f, "ip{} -n {netns} route add default via {gateway} dev {link}", family(gateway))
            }
            Op::DelRoute { netns, gateway, link } => {
                write!(f, "ip{} -n {netns} route del default via {gateway} dev {link}", family(gateway))
            }
            Op::WriteFile { netns, file: name, content } => write!(
                f,
                "write {} ({} lines)",
                file(netns, name),
                content.line_count()
            ),
            Op::RemoveFile { netns, file: name } => write!(f, "rm {}", file(netns, name)),
            Op::AddFirewall => write!(f, "nft add table {TABLE} (its chains, sets and maps)"),
            Op::DelFirewall => write!(f, "nft delete table {TABLE}"),
            Op::AddNftElement { set, element } => write!(f, "nft add element {TABLE} {set} {{ {element} }}"),
            Op::DelNftElement { set, element } => {
                write!(f, "nft delete element {TABLE} {set} {{ {} }}", set.key(element))
            }
            Op::SetForwarding { on } => write!(f, "sysctl -w net.ipv4.ip_forward={}", u8::from(*on)),
            Op::RouteLocalnet { link, on } => {
                write!(f, "sysctl -w net.ipv4.conf.{link}.route_localnet={}", u8::from(*on))
            }
        }
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
