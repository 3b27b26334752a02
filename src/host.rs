//! What the host's own network holds: the addresses on its interfaces and its IPv4
//! routes, so that a network's subnet is never laid over the host's own LAN (the host
//! would answer ARP for the LAN router's address).

use ipnetwork::{IpNetwork, Ipv4Network};

use crate::observe::Space;

/// An address on a host interface.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostAddress {
    pub interface: String,
    pub address: IpNetwork,
}

/// An IPv4 route of the host's main table, other than a default route.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostRoute {
    pub destination: Ipv4Network,
    pub interface: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Host {
    pub addresses: Vec<HostAddress>,
    pub routes: Vec<HostRoute>,
}

impl Host {
    /// The host's addresses and routes, as the namespace cnm runs in holds them.
    pub fn read() -> std::io::Result<Host> {
        let space = Space::read(None)?;
        let addresses = space
            .links
            .iter()
            .flat_map(|(interface, link)| {
                link.addresses.iter().map(|&address| HostAddress {
                    interface: interface.clone(),
                    address,
                })
            })
            .collect();
        let routes = space
            .routes
            .into_iter()
            .filter_map(|route| match route.destination {
                IpNetwork::V4(destination) if destination.prefix() > 0 => Some(HostRoute {
                    destination,
                    interface: route.interface,
                }),
                _ => None,
            })
            .collect();
        Ok(Host { addresses, routes })
    }
}

/// Whether two IPv4 subnets share an address.
pub fn overlaps(a: Ipv4Network, b: Ipv4Network) -> bool {
    a.contains(b.network()) || b.contains(a.network())
}
