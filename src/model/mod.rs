//! The model: networks, sandboxes and endpoints as cnm records them. The checker builds
//! the desired model from a script; the committed model is `state.json`. Both have this
//! one shape, so a plan is the difference of two values of it.

mod mac;
mod names;

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use indexmap::IndexMap;
use ipnetwork::{Ipv4Network, Ipv6Network};
use serde::{Deserialize, Serialize};

pub use mac::Mac;
pub use names::{bridge_name, endpoint_name, object_id, veth_name};

/// The version of the `state.json` layout this cnm reads and writes.
pub const STATE_FORMAT_VERSION: u32 = 1;

/// The default network that `bridge`-mode sandboxes join, like Docker's `bridge`.
pub const DEFAULT_NETWORK: &str = "bridge";
pub const DEFAULT_BRIDGE: &str = "cnm0";
pub const DEFAULT_SUBNET: &str = "172.30.0.0/16";
pub const DEFAULT_MTU: u32 = 1500;

/// The most ports a Linux bridge holds (`BR_MAX_PORTS` less one: port numbers start at
/// 1); the next `set master` fails with EXFULL.
pub const BRIDGE_PORT_LIMIT: usize = 1023;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ObjectKind {
    Network,
    Sandbox,
    Endpoint,
}

impl ObjectKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ObjectKind::Network => "network",
            ObjectKind::Sandbox => "sandbox",
            ObjectKind::Endpoint => "endpoint",
        }
    }
}

impl fmt::Display for ObjectKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Objects of one kind by name, in the order they were made. Hashed with FxHash: the
/// names are cnm's own (checked identifiers), and planning 10,000 sandboxes looks them
/// up millions of times.
pub type Table<V> = IndexMap<String, V, rustc_hash::FxBuildHasher>;

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Model {
    pub format_version: u32,
    pub networks: Table<Network>,
    pub sandboxes: Table<Sandbox>,
    pub endpoints: Table<Endpoint>,
    /// cnm turned the host's `net.ipv4.ip_forward` on, from off, for a network with a
    /// way out: it turns it off again when no such network is left.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub ip_forward_enabled: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Network {
    pub name: String,
    pub id: String,
    pub driver: Driver,
    pub subnet: Ipv4Network,
    pub gateway: Ipv4Addr,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip_range: Option<Ipv4Network>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ipv6: Option<Ipv6Subnet>,
    /// The kernel bridge (bridge driver) or the host interface (macvlan's parent).
    pub bridge: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent: Option<String>,
    pub mtu: u32,
    pub internal: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ipv6Subnet {
    pub subnet: Ipv6Network,
    pub gateway: Ipv6Addr,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Driver {
    Bridge,
    Macvlan,
}

impl fmt::Display for Driver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Driver::Bridge => "bridge",
            Driver::Macvlan => "macvlan",
        })
    }
}

/// Whether two IPv4 subnets share an address.
pub fn subnets_overlap(a: Ipv4Network, b: Ipv4Network) -> bool {
    a.contains(b.network()) || b.contains(a.network())
}

impl Network {
    /// The addresses endpoints are allocated from: the ip-range if given, else the subnet.
    pub fn pool(&self) -> Ipv4Network {
        self.ip_range.unwrap_or(self.subnet)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sandbox {
    pub name: String,
    pub id: String,
    pub mode: Mode,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dns: Vec<IpAddr>,
    pub status: Status,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub published: Vec<PublishedPort>,
}

impl Sandbox {
    /// The named network namespace cnm creates for it, if it has one of its own.
    pub fn netns(&self) -> Option<&str> {
        match self.mode {
            Mode::Bridge | Mode::None => Some(&self.name),
            Mode::Host | Mode::Container(_) => None,
        }
    }

    pub fn is_running(&self) -> bool {
        self.status == Status::Running
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mode {
    Bridge,
    None,
    Host,
    Container(String),
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Mode::Bridge => f.write_str("bridge"),
            Mode::None => f.write_str("none"),
            Mode::Host => f.write_str("host"),
            Mode::Container(other) => write!(f, "container:{other}"),
        }
    }
}

impl Serialize for Mode {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Mode {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        Mode::parse(&text).ok_or_else(|| serde::de::Error::custom(format!("unknown mode `{text}`")))
    }
}

impl Mode {
    /// `bridge`, `none`, `host` or `container:NAME` (the name is not validated here).
    pub fn parse(text: &str) -> Option<Mode> {
        match text {
            "bridge" => Some(Mode::Bridge),
            "none" => Some(Mode::None),
            "host" => Some(Mode::Host),
            _ => text
                .strip_prefix("container:")
                .map(|other| Mode::Container(other.to_string())),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Running,
    Stopped,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PublishedPort {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_ip: Option<IpAddr>,
    pub host_port: u16,
    pub port: u16,
    pub protocol: Protocol,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    Tcp,
    Udp,
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Endpoint {
    pub name: String,
    pub id: String,
    pub network: String,
    /// The sandbox it is joined to; `None` for an endpoint created but not yet joined.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sandbox: Option<String>,
    pub ip: Ipv4Addr,
    /// Whether the address was given by the script rather than allocated.
    #[serde(default)]
    pub static_ip: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ipv6: Option<Ipv6Addr>,
    pub mac: Mac,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub aliases: Vec<String>,
    /// The interface name inside the sandbox (`eth0`, `eth1`, … in join order).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ifname: Option<String>,
    /// The host end of the veth pair.
    pub host_ifname: String,
    /// Whether the sandbox's default route goes through this endpoint's gateway.
    #[serde(default)]
    pub default_route: bool,
}

impl Model {
    pub fn empty() -> Model {
        Model {
            format_version: STATE_FORMAT_VERSION,
            ..Model::default()
        }
    }

    /// Whether the model has no network and no sandbox (and so no endpoint either).
    pub fn has_nothing(&self) -> bool {
        self.networks.is_empty() && self.sandboxes.is_empty()
    }

    /// The endpoints on a network.
    pub fn endpoints_on<'a>(&'a self, network: &'a str) -> impl Iterator<Item = &'a Endpoint> + 'a {
        self.endpoints.values().filter(move |e| e.network == network)
    }
}
