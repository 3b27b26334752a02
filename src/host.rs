//! What the host's own network holds, read over rtnetlink (no privilege needed): the
//! addresses on its interfaces and its IPv4 routes, so that a network's subnet is never
//! laid over the host's own LAN (the host would answer ARP for the LAN router's
//! address).

use std::net::Ipv4Addr;

use futures::TryStreamExt;
use ipnetwork::{IpNetwork, Ipv4Network};
use rtnetlink::packet_route::address::AddressAttribute;
use rtnetlink::packet_route::link::LinkAttribute;
use rtnetlink::packet_route::route::{RouteAddress, RouteAttribute, RouteType};
use rtnetlink::RouteMessageBuilder;

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
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .build()?;
        runtime.block_on(async {
            let (connection, handle, _) = rtnetlink::new_connection()?;
            tokio::spawn(connection);
            let failed = |e: rtnetlink::Error| std::io::Error::other(e.to_string());
            let mut names = std::collections::HashMap::new();
            let mut links = handle.link().get().execute();
            while let Some(link) = links.try_next().await.map_err(failed)? {
                for attribute in link.attributes {
                    if let LinkAttribute::IfName(name) = attribute {
                        names.insert(link.header.index, name);
                    }
                }
            }
            let name = |index: u32| names.get(&index).cloned().unwrap_or_else(|| format!("#{index}"));
            let mut host = Host::default();
            let mut addresses = handle.address().get().execute();
            while let Some(message) = addresses.try_next().await.map_err(failed)? {
                let prefix = message.header.prefix_len;
                for attribute in message.attributes {
                    if let AddressAttribute::Address(ip) = attribute {
                        if let Ok(address) = IpNetwork::new(ip, prefix) {
                            let interface = name(message.header.index);
                            host.addresses.push(HostAddress { interface, address });
                        }
                    }
                }
            }
            let mut routes = handle
                .route()
                .get(RouteMessageBuilder::<Ipv4Addr>::new().build())
                .execute();
            while let Some(route) = routes.try_next().await.map_err(failed)? {
                if route.header.kind != RouteType::Unicast || route.header.destination_prefix_length == 0 {
                    continue;
                }
                let mut destination = None;
                let mut interface = None;
                for attribute in &route.attributes {
                    match attribute {
                        RouteAttribute::Destination(RouteAddress::Inet(ip)) => destination = Some(*ip),
                        RouteAttribute::Oif(index) => interface = Some(name(*index)),
                        _ => {}
                    }
                }
                let prefix = route.header.destination_prefix_length;
                if let Some(Ok(destination)) = destination.map(|ip| Ipv4Network::new(ip, prefix)) {
                    let interface = interface.unwrap_or_default();
                    host.routes.push(HostRoute {
                        destination,
                        interface,
                    });
                }
            }
            Ok(host)
        })
    }
}

/// Whether two IPv4 subnets share an address.
pub fn overlaps(a: Ipv4Network, b: Ipv4Network) -> bool {
    a.contains(b.network()) || b.contains(a.network())
}
