//! The read side of the kernel: what a network namespace holds — its links (up or down,
//! master, MTU, MAC, addresses) and its routes — read over rtnetlink from a thread that
//! enters the namespace. Reading needs no privilege beyond entering the namespace.

use std::collections::BTreeMap;
use std::future::Future;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::Path;
use std::time::{Duration, Instant};

use futures::TryStreamExt;
use ipnetwork::IpNetwork;
use nix::sched::{setns, CloneFlags};
use rtnetlink::packet_route::address::AddressAttribute;
use rtnetlink::packet_route::link::{
    BridgePortState, InfoBridgePort, InfoPortData, LinkAttribute, LinkFlags, LinkInfo, State,
};
use rtnetlink::packet_route::route::{RouteAddress, RouteAttribute, RouteHeader, RouteMessage, RouteType};
use rtnetlink::{Handle, RouteMessageBuilder};

use crate::model::Mac;

/// One namespace as the kernel holds it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Space {
    pub links: BTreeMap<String, Link>,
    /// Unicast routes of the main table.
    pub routes: Vec<Route>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    pub up: bool,
    pub master: Option<String>,
    pub mtu: u32,
    pub mac: Option<Mac>,
    pub addresses: Vec<IpNetwork>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    pub destination: IpNetwork,
    pub gateway: Option<IpAddr>,
    pub interface: String,
}

impl Space {
    /// The namespace cnm runs in (`None`), or the one mounted at `netns`.
    pub fn read(netns: Option<&Path>) -> io::Result<Space> {
        reading(netns, |handle| async move { dump(&handle).await })
    }

    /// Whether a default route through `gateway` on `interface` exists.
    pub fn has_default_route(&self, gateway: IpAddr, interface: &str) -> bool {
        self.routes
            .iter()
            .any(|r| r.destination.prefix() == 0 && r.gateway == Some(gateway) && r.interface == interface)
    }
}

/// Runs `read` with a netlink handle on a thread of its own inside the namespace cnm runs
/// in (`None`) or the one mounted at `netns`, and waits for it.
fn reading<T, F>(netns: Option<&Path>, read: impl FnOnce(Handle) -> F + Send + 'static) -> io::Result<T>
where
    T: Send + 'static,
    F: Future<Output = Result<T, rtnetlink::Error>>,
{
    let netns = netns.map(Path::to_path_buf);
    std::thread::spawn(move || {
        if let Some(path) = &netns {
            let file = std::fs::File::open(path)?;
            setns(&file, CloneFlags::CLONE_NEWNET).map_err(io::Error::from)?;
        }
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .enable_time()
            .build()?;
        runtime.block_on(async {
            let (connection, handle, _) = rtnetlink::new_connection()?;
            tokio::spawn(connection);
            read(handle).await.map_err(|e| io::Error::other(e.to_string()))
        })
    })
    .join()
    .map_err(|_| io::Error::other("the reading thread panicked"))?
}

/// Why a link does not carry traffic yet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotReady {
    Missing,
    /// Set down.
    Down,
    /// Up, but the kernel has not (yet) seen its carrier: a veth whose other end is down,
    /// or one whose carrier change the kernel has still to handle.
    NoCarrier,
    /// A bridge port not (yet) forwarding.
    NotForwarding,
}

impl std::fmt::Display for NotReady {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            NotReady::Missing => "missing",
            NotReady::Down => "down",
            NotReady::NoCarrier => "no carrier",
            NotReady::NotForwarding => "not forwarding",
        })
    }
}

/// Waits until every link named in `links`, in the namespace cnm runs in (`None`) or the
/// one mounted at `netns`, carries traffic, or `deadline` passes; the links that still
/// do not, and why. A link carries traffic when it is up, the kernel has handled its
/// carrier (its operational state is up, or unknown for a device that does not report
/// one, like `lo`), and, as a bridge port, it forwards.
pub fn await_traffic(
    netns: Option<&Path>,
    links: Vec<String>,
    deadline: Instant,
) -> io::Result<Vec<(String, NotReady)>> {
    reading(netns, move |handle| async move {
        let mut waiting = links;
        loop {
            let mut still = Vec::new();
            for link in waiting {
                if let Some(why) = not_ready(&handle, &link).await? {
                    still.push((link, why));
                }
            }
            let missing_only = still.iter().all(|(_, why)| *why == NotReady::Missing);
            if missing_only || Instant::now() >= deadline {
                return Ok(still);
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
            waiting = still.into_iter().map(|(link, _)| link).collect();
        }
    })
}

async fn not_ready(handle: &Handle, link: &str) -> Result<Option<NotReady>, rtnetlink::Error> {
    let mut answer = handle.link().get().match_name(link.to_string()).execute();
    let message = match answer.try_next().await {
        Ok(Some(message)) => message,
        Ok(None) => return Ok(Some(NotReady::Missing)),
        Err(rtnetlink::Error::NetlinkError(e)) if e.raw_code() == -libc::ENODEV => {
            return Ok(Some(NotReady::Missing))
        }
        Err(e) => return Err(e),
    };
    if !message.header.flags.contains(LinkFlags::Up) {
        return Ok(Some(NotReady::Down));
    }
    let mut carrier = false;
    let mut forwarding = true;
    for attribute in &message.attributes {
        match attribute {
            LinkAttribute::OperState(state) => carrier = matches!(state, State::Up | State::Unknown),
            LinkAttribute::LinkInfo(infos) => {
                for info in infos {
                    if let LinkInfo::PortData(InfoPortData::BridgePort(port)) = info {
                        forwarding = port.iter().any(|attribute| {
                            matches!(attribute, InfoBridgePort::State(BridgePortState::Forwarding))
                        });
                    }
                }
            }
            _ => {}
        }
    }
    Ok(if !carrier {
        Some(NotReady::NoCarrier)
    } else if !forwarding {
        Some(NotReady::NotForwarding)
    } else {
        None
    })
}

async fn dump(handle: &Handle) -> Result<Space, rtnetlink::Error> {
    let mut by_index: BTreeMap<u32, (String, Link, Option<u32>)> = BTreeMap::new();
    let mut links = handle.link().get().execute();
    while let Some(message) = links.try_next().await? {
        let mut name = String::new();
        let mut link = Link {
            up: message.header.flags.contains(LinkFlags::Up),
            master: None,
            mtu: 0,
            mac: None,
            addresses: Vec::new(),
        };
        let mut master = None;
        for attribute in message.attributes {
            match attribute {
                LinkAttribute::IfName(n) => name = n,
                LinkAttribute::Mtu(mtu) => link.mtu = mtu,
                LinkAttribute::Controller(index) => master = Some(index),
                LinkAttribute::Address(bytes) => link.mac = <[u8; 6]>::try_from(bytes).ok().map(Mac),
                _ => {}
            }
        }
        by_index.insert(message.header.index, (name, link, master));
    }
    let name_of = |index: u32, by_index: &BTreeMap<u32, (String, Link, Option<u32>)>| {
        by_index.get(&index).map(|(name, ..)| name.clone())
    };
    let mut addresses = handle.address().get().execute();
    while let Some(message) = addresses.try_next().await? {
        let prefix = message.header.prefix_len;
        for attribute in message.attributes {
            if let AddressAttribute::Address(ip) = attribute {
                if let (Ok(address), Some(entry)) = (
                    IpNetwork::new(ip, prefix),
                    by_index.get_mut(&message.header.index),
                ) {
                    entry.1.addresses.push(address);
                }
            }
        }
    }
    let mut routes = Vec::new();
    let v4 = RouteMessageBuilder::<Ipv4Addr>::new().build();
    let v6 = RouteMessageBuilder::<Ipv6Addr>::new().build();
    for query in [v4, v6] {
        let mut stream = handle.route().get(query).execute();
        while let Some(message) = stream.try_next().await? {
            if let Some(route) = route(&message, |index| name_of(index, &by_index)) {
                routes.push(route);
            }
        }
    }
    let names: BTreeMap<u32, String> = by_index.iter().map(|(i, (n, ..))| (*i, n.clone())).collect();
    let links = by_index
        .into_values()
        .map(|(name, mut link, master)| {
            link.master = master.and_then(|i| names.get(&i).cloned());
            (name, link)
        })
        .collect();
    Ok(Space { links, routes })
}

fn route(message: &RouteMessage, name_of: impl Fn(u32) -> Option<String>) -> Option<Route> {
    if message.header.kind != RouteType::Unicast || message.header.table != RouteHeader::RT_TABLE_MAIN {
        return None;
    }
    let address = |a: &RouteAddress| match a {
        RouteAddress::Inet(ip) => Some(IpAddr::V4(*ip)),
        RouteAddress::Inet6(ip) => Some(IpAddr::V6(*ip)),
        _ => None,
    };
    let mut destination = None;
    let mut gateway = None;
    let mut interface = String::new();
    for attribute in &message.attributes {
        match attribute {
            RouteAttribute::Destination(a) => destination = address(a),
            RouteAttribute::Gateway(a) => gateway = address(a),
            RouteAttribute::Oif(index) => interface = name_of(*index).unwrap_or_default(),
            _ => {}
        }
    }
    let unspecified = match message.header.address_family {
        rtnetlink::packet_route::AddressFamily::Inet6 => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
        _ => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
    };
    let destination = IpNetwork::new(
        destination.unwrap_or(unspecified),
        message.header.destination_prefix_length,
    )
    .ok()?;
    Some(Route {
        destination,
        gateway,
        interface,
    })
}
