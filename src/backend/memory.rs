//! A model of the kernel objects cnm touches — namespaces, links, addresses, default
//! routes, `/etc/netns` files — that answers operations the way the kernel does
//! (EEXIST, ENODEV, ENOENT, ENETUNREACH, EXFULL; deleting what is gone is success), and
//! can be told to fail at the k-th operation, undo operations included, either with no
//! effect or after taking effect (a request whose answer was lost). Used by unit tests,
//! fault injection and `apply --dry-run`.
//!
//! As strict as the kernel where cnm depends on it: the host ends of a deleted
//! namespace's veths linger, their names taken, until a `settle` names them (the kernel
//! removes them in the background).

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use ipnetwork::IpNetwork;

use super::{Backend, KernelError};
use crate::model::{Mac, BRIDGE_PORT_LIMIT};
use crate::plan::firewall::NftSet;
use crate::plan::{EtcFile, Name, Op};

/// The host's namespace is the one with no name.
const HOST: &str = "";

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MemoryBackend {
    namespaces: BTreeMap<String, Namespace>,
    files: BTreeMap<(String, EtcFile), String>,
    /// Host links whose veth peer went with a deleted namespace: still there, names
    /// taken, until settled.
    lingering: BTreeSet<String>,
    calls: usize,
    /// Failures to inject, by call number: whether the operation takes effect first.
    failures: BTreeMap<usize, bool>,
    /// cnm's nftables table, if it exists: each set's elements by key.
    firewall: Option<Firewall>,
    ip_forward: bool,
}

type Firewall = BTreeMap<NftSet, BTreeMap<String, String>>;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Namespace {
    links: BTreeMap<String, Link>,
    /// Default routes, at most one per address family: (gateway, link).
    routes: BTreeSet<(IpAddr, String)>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Link {
    kind: LinkKind,
    mtu: u32,
    mac: Option<Mac>,
    master: Option<String>,
    up: bool,
    addresses: BTreeSet<IpNetwork>,
    route_localnet: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum LinkKind {
    Loopback,
    Bridge,
    /// The other end: its namespace and name.
    Veth {
        peer: (String, String),
    },
    Macvlan,
}

impl Namespace {
    fn with_loopback() -> Namespace {
        let mut ns = Namespace::default();
        ns.links
            .insert("lo".into(), Link::new(LinkKind::Loopback, 65536, None));
        ns
    }
}

impl Link {
    fn new(kind: LinkKind, mtu: u32, mac: Option<Mac>) -> Link {
        Link {
            kind,
            mtu,
            mac,
            master: None,
            up: false,
            addresses: BTreeSet::new(),
            route_localnet: false,
        }
    }
}

const EEXIST: i32 = libc::EEXIST;
const ENODEV: i32 = libc::ENODEV;
const ENOENT: i32 = libc::ENOENT;

fn exists(what: String) -> KernelError {
    KernelError::errno(EEXIST, format!("{what} already exists"))
}

fn no_device(link: &str) -> KernelError {
    KernelError::errno(ENODEV, format!("no interface named {link}"))
}

impl MemoryBackend {
    /// A kernel with the host's namespace, holding loopback only; new namespaces hold
    /// their own loopback.
    pub fn new() -> MemoryBackend {
        let mut backend = MemoryBackend::default();
        backend.namespaces.insert(HOST.into(), Namespace::with_loopback());
        backend
    }

    /// Makes the `call`-th operation from now (0-based) fail with no effect, as a kernel
    /// refusal would.
    pub fn fail_on_call(&mut self, call: usize) {
        self.failures.insert(self.calls + call, false);
    }

    /// Makes the `call`-th operation from now (0-based) take effect and then fail as a
    /// request whose answer never came.
    pub fn fail_after_effect(&mut self, call: usize) {
        self.failures.insert(self.calls + call, true);
    }

    /// The objects only, without the call counters: equal snapshots, equal kernels.
    pub fn snapshot(&self) -> MemoryBackend {
        MemoryBackend {
            namespaces: self.namespaces.clone(),
            files: self.files.clone(),
            lingering: self.lingering.clone(),
            calls: 0,
            failures: BTreeMap::new(),
            firewall: self.firewall.clone(),
            ip_forward: self.ip_forward,
        }
    }

    /// Sets the host's `net.ipv4.ip_forward`, as it was before cnm.
    pub fn set_ip_forward(&mut self, on: bool) {
        self.ip_forward = on;
    }

    /// cnm's table, if it exists: each set with its elements, in order.
    pub fn firewall_elements(&self) -> Option<Vec<(NftSet, String)>> {
        self.firewall.as_ref().map(|table| {
            table
                .iter()
                .flat_map(|(set, elements)| elements.values().map(|e| (*set, e.clone())))
                .collect()
        })
    }

    fn ns_name(netns: &Option<Name>) -> &str {
        netns.as_deref().unwrap_or(HOST)
    }

    fn namespace(&mut self, netns: &str) -> Result<&mut Namespace, KernelError> {
        self.namespaces
            .get_mut(netns)
            .ok_or_else(|| KernelError::errno(ENOENT, format!("no namespace named {netns}")))
    }

    fn link(&mut self, netns: &str, link: &str) -> Result<&mut Link, KernelError> {
        self.namespace(netns)?
            .links
            .get_mut(link)
            .ok_or_else(|| no_device(link))
    }

    /// Whether `link` may become a port of `master`, as the kernel decides: `master`
    /// must be a bridge with room for one more port.
    fn can_attach(&self, link: &str, master: &str) -> Result<(), KernelError> {
        let host = &self.namespaces[HOST].links;
        let bridge = host.get(master).ok_or_else(|| no_device(master))?;
        if !matches!(bridge.kind, LinkKind::Bridge) {
            return Err(KernelError::errno(
                libc::EOPNOTSUPP,
                format!("{master} is not a bridge"),
            ));
        }
        let ports = host
            .values()
            .filter(|l| l.master.as_deref() == Some(master))
            .count();
        if ports >= BRIDGE_PORT_LIMIT {
            return Err(KernelError::errno(
                libc::EXFULL,
                format!("cannot attach {link} to {master}: Exchange full"),
            ));
        }
        Ok(())
    }

    fn add_link(&mut self, netns: &str, name: &str, link: Link) -> Result<(), KernelError> {
        let ns = self.namespace(netns)?;
        if ns.links.contains_key(name) {
            return Err(exists(format!("an interface named {name}")));
        }
        ns.links.insert(name.to_string(), link);
        Ok(())
    }

    /// Deletes a link, its veth peer, its routes, and its ports' membership.
    fn del_link(&mut self, netns: &str, name: &str) {
        let Some(ns) = self.namespaces.get_mut(netns) else {
            return;
        };
        let Some(link) = ns.links.remove(name) else { return };
        if netns == HOST {
            self.lingering.remove(name);
        }
        let ns = self.namespaces.get_mut(netns).expect("looked up above");
        ns.routes.retain(|(_, l)| l != name);
        for port in ns.links.values_mut() {
            if port.master.as_deref() == Some(name) {
                port.master = None;
            }
        }
        if let LinkKind::Veth { peer } = link.kind {
            self.del_link(&peer.0, &peer.1);
        }
    }

    fn perform(&mut self, op: &Op) -> Result<(), KernelError> {
        match op {
            Op::AddNetns { netns } => {
                if self.namespaces.contains_key(&**netns) {
                    return Err(exists(format!("a namespace named {netns}")));
                }
                self.namespaces
                    .insert(netns.to_string(), Namespace::with_loopback());
            }
            Op::DelNetns { netns, .. } => {
                // A namespace takes its interfaces along, and with them their veth peers,
                // but those go in the background: until then their names stay taken.
                if let Some(ns) = self.namespaces.remove(&**netns) {
                    for link in ns.links.into_values() {
                        if let LinkKind::Veth { peer } = link.kind {
                            self.lingering.insert(peer.1);
                        }
                    }
                }
            }
            Op::AddBridge { bridge, mtu } => {
                self.add_link(HOST, bridge, Link::new(LinkKind::Bridge, *mtu, None))?
            }
            Op::AddVeth {
                link,
                peer,
                netns,
                mtu,
                mac,
                master,
            } => {
                self.namespace(netns)?;
                if self.namespaces[HOST].links.contains_key(&**link) {
                    return Err(exists(format!("an interface named {link}")));
                }
                if self.namespaces[&**netns].links.contains_key(&**peer) {
                    return Err(exists(format!("an interface named {peer} in namespace {netns}")));
                }
                // The kernel attaches the new host end last, and deletes the pair again
                // when it cannot: nothing is left of a refused creation.
                if let Some(master) = master {
                    self.can_attach(link, master)?;
                }
                let host_end = LinkKind::Veth {
                    peer: (netns.to_string(), peer.to_string()),
                };
                let mut host_link = Link::new(host_end, *mtu, None);
                host_link.master = master.as_ref().map(|m| m.to_string());
                self.add_link(HOST, link, host_link)?;
                let inner_end = LinkKind::Veth {
                    peer: (HOST.into(), link.to_string()),
                };
                self.add_link(netns, peer, Link::new(inner_end, *mtu, Some(*mac)))?;
            }
            Op::AddMacvlan {
                link,
                parent,
                netns,
                mtu,
                mac,
            } => {
                self.namespace(netns)?;
                if !self.namespaces[HOST].links.contains_key(&**parent) {
                    return Err(no_device(parent));
                }
                self.add_link(netns, link, Link::new(LinkKind::Macvlan, *mtu, Some(*mac)))?;
            }
            Op::DelLink { netns, link } => self.del_link(Self::ns_name(netns), link),
            Op::SetMaster { link, master } => {
                self.link(HOST, master)?;
                let port = self.link(HOST, link)?;
                if port.master.as_deref() == Some(master) {
                    return Ok(());
                }
                // The kernel lets go of the old master before it tries the new one, and
                // does not take it back when that fails.
                port.master = None;
                self.can_attach(link, master)?;
                self.link(HOST, link)?.master = Some(master.to_string());
            }
            Op::NoMaster { link } => {
                if let Ok(l) = self.link(HOST, link) {
                    l.master = None;
                }
            }
            Op::LinkUp { netns, link } => self.link(Self::ns_name(netns), link)?.up = true,
            Op::RouteLocalnet { link, on: true } => self.link(HOST, link)?.route_localnet = true,
            Op::RouteLocalnet { link, on: false } => {
                if let Ok(link) = self.link(HOST, link) {
                    link.route_localnet = false;
                }
            }
            Op::LinkDown { netns, link } => {
                if let Ok(l) = self.link(Self::ns_name(netns), link) {
                    l.up = false;
                }
            }
            Op::AddAddress { netns, link, address } => {
                if !self.link(Self::ns_name(netns), link)?.addresses.insert(*address) {
                    return Err(exists(format!("address {address} on {link}")));
                }
            }
            Op::DelAddress { netns, link, address } => {
                if let Ok(l) = self.link(Self::ns_name(netns), link) {
                    l.addresses.remove(address);
                }
            }
            Op::AddRoute { netns, gateway, link } => {
                let device = self.link(netns, link)?;
                if !device.up || !device.addresses.iter().any(|a| a.contains(*gateway)) {
                    return Err(KernelError::errno(
                        libc::ENETUNREACH,
                        format!("gateway {gateway} is not reachable on {link}"),
                    ));
                }
                let ns = self.namespace(netns)?;
                if ns.routes.iter().any(|(g, _)| g.is_ipv6() == gateway.is_ipv6()) {
                    return Err(exists("a default route".to_string()));
                }
                ns.routes.insert((*gateway, link.to_string()));
            }
            Op::DelRoute { netns, gateway, link } => {
                if let Some(ns) = self.namespaces.get_mut(&**netns) {
                    ns.routes.remove(&(*gateway, link.to_string()));
                }
            }
            Op::WriteFile { netns, file, content } => {
                self.files.insert((netns.to_string(), *file), content.to_string());
            }
            Op::RemoveFile { netns, file } => {
                self.files.remove(&(netns.to_string(), *file));
            }
            Op::SetForwarding { on } => self.ip_forward = *on,
            firewall => {
                let mut table = self.firewall.take();
                let changed = nft(&mut table, firewall);
                self.firewall = table;
                changed?
            }
        }
        Ok(())
    }

    /// A batch of firewall operations: all of them, or none.
    fn perform_batch(&mut self, batch: &[Op]) -> Result<(), KernelError> {
        let mut table = self.firewall.clone();
        for op in batch {
            nft(&mut table, op)?;
        }
        self.firewall = table;
        Ok(())
    }

    /// One call: fails as told, or does `work`.
    fn call(&mut self, work: impl FnOnce(&mut Self) -> Result<(), KernelError>) -> Result<(), KernelError> {
        let call = self.calls;
        self.calls += 1;
        match self.failures.get(&call) {
            Some(false) => Err(KernelError::errno(libc::EIO, "injected failure")),
            Some(true) => {
                work(self)?;
                Err(KernelError::unanswered(
                    libc::ETIMEDOUT,
                    "injected failure after the operation took effect",
                ))
            }
            None => work(self),
        }
    }
}

/// A firewall operation on cnm's table, as `nft` answers it: an added element needs the
/// table; a key holds one value; interval elements do not overlap; a deletion adds what
/// it deletes first (see [`Op::nft_lines`]), so it finds a different value as an
/// addition would.
fn nft(table: &mut Option<Firewall>, op: &Op) -> Result<(), KernelError> {
    let no_table = || KernelError::errno(libc::ENOENT, "nft: No such file or directory");
    let conflict = || KernelError::errno(libc::EEXIST, "nft: Could not process rule: File exists");
    match op {
        Op::AddFirewall => *table = Some(Firewall::new()),
        Op::DelFirewall => *table = None,
        Op::AddNftElement { set, element } | Op::DelNftElement { set, element } => {
            // A deletion makes the table it deletes from, if it must (see `Op::nft_lines`).
            if matches!(op, Op::DelNftElement { .. }) {
                table.get_or_insert_with(Firewall::new);
            }
            let elements = table.as_mut().ok_or_else(no_table)?.entry(*set).or_default();
            let key = set.key(element);
            match elements.get(key) {
                Some(held) if held != element => return Err(conflict()),
                Some(_) => {}
                None if elements.keys().any(|held| overlaps(held, key)) => return Err(conflict()),
                None => {}
            }
            if matches!(op, Op::AddNftElement { .. }) {
                elements.insert(key.to_string(), element.clone());
            } else {
                elements.remove(key);
                // An empty set is no different from one never used.
                if let Some(table) = table.as_mut() {
                    table.retain(|_, elements| !elements.is_empty());
                }
            }
        }
        other => unreachable!("{other:?} is no firewall operation"),
    }
    Ok(())
}

/// Whether two interval elements (subnets) overlap.
fn overlaps(a: &str, b: &str) -> bool {
    match (a.parse::<IpNetwork>(), b.parse::<IpNetwork>()) {
        (Ok(a), Ok(b)) => a.contains(b.network()) || b.contains(a.network()),
        _ => false,
    }
}

impl Backend for MemoryBackend {
    fn apply(&mut self, op: &Op) -> Result<(), KernelError> {
        self.call(|backend| backend.perform(op))
    }

    fn firewall(&mut self, batch: &[Op]) -> Result<(), KernelError> {
        self.call(|backend| backend.perform_batch(batch))
    }

    fn ip_forward(&mut self) -> Result<bool, KernelError> {
        Ok(self.ip_forward)
    }

    fn sync_files(&mut self) -> Result<(), KernelError> {
        self.call(|_| Ok(()))
    }

    fn settle(&mut self, links: &[Name]) -> Result<(), KernelError> {
        for link in links {
            if self.lingering.remove(&**link) {
                self.del_link(HOST, link);
            } else if self.namespaces[HOST].links.contains_key(&**link) {
                // The kernel would wait for a removal that nothing set going.
                return Err(KernelError::other(format!(
                    "the kernel has not removed an interface of deleted namespaces: {link}"
                )));
            }
        }
        Ok(())
    }

    fn netns_exists(&mut self, netns: &str) -> bool {
        netns != HOST && self.namespaces.contains_key(netns)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ns(name: &str) -> Option<Name> {
        Some(name.into())
    }

    #[test]
    fn answers_like_the_kernel() {
        let mut k = MemoryBackend::new();
        k.apply(&Op::AddNetns { netns: "A".into() }).unwrap();
        let veth = Op::AddVeth {
            link: "ve-1".into(),
            peer: "eth0".into(),
            netns: "A".into(),
            mtu: 1500,
            mac: "02:42:0a:00:00:02".parse().unwrap(),
            master: None,
        };
        k.apply(&veth).unwrap();
        assert_eq!(k.apply(&veth).unwrap_err().errno, Some(libc::EEXIST));
        let route = Op::AddRoute {
            netns: "A".into(),
            gateway: "10.0.0.1".parse().unwrap(),
            link: "eth0".into(),
        };
        assert_eq!(k.apply(&route).unwrap_err().errno, Some(libc::ENETUNREACH));
        let missing = Op::LinkUp {
            netns: ns("A"),
            link: "eth9".into(),
        };
        assert_eq!(k.apply(&missing).unwrap_err().errno, Some(libc::ENODEV));
        // Deleting the namespace takes the veth pair along, but the host end lingers
        // until settled: its name is taken meanwhile. Deleting again is success.
        let del = Op::DelNetns {
            netns: "A".into(),
            links: vec!["ve-1".into()],
        };
        k.apply(&del).unwrap();
        k.apply(&del).unwrap();
        assert!(!k.netns_exists("A"));
        k.apply(&Op::AddNetns { netns: "A".into() }).unwrap();
        assert_eq!(k.apply(&veth).unwrap_err().errno, Some(libc::EEXIST));
        k.settle(&["ve-1".into()]).unwrap();
        k.apply(&veth).unwrap();
        k.apply(&del).unwrap();
        k.settle(&["ve-1".into()]).unwrap();
        assert_eq!(k.snapshot(), MemoryBackend::new().snapshot());
        // Settling a name that nothing is removing would wait for ever: the kernel's
        // backend gives up with an error, and so does this one.
        k.apply(&Op::AddBridge {
            bridge: "br".into(),
            mtu: 1500,
        })
        .unwrap();
        assert!(k.settle(&["br".into()]).is_err());
    }

    #[test]
    fn a_bridge_holds_at_most_1023_ports() {
        let mut k = MemoryBackend::new();
        k.apply(&Op::AddBridge {
            bridge: "br".into(),
            mtu: 1500,
        })
        .unwrap();
        k.apply(&Op::AddNetns { netns: "A".into() }).unwrap();
        for i in 0..=BRIDGE_PORT_LIMIT {
            let link = format!("ve-{i}");
            k.apply(&Op::AddVeth {
                link: link.as_str().into(),
                peer: format!("eth{i}").into(),
                netns: "A".into(),
                mtu: 1500,
                mac: Mac([2, 0, 0, 0, (i >> 8) as u8, i as u8]),
                master: None,
            })
            .unwrap();
            let attached = k.apply(&Op::SetMaster {
                link: link.into(),
                master: "br".into(),
            });
            if i < BRIDGE_PORT_LIMIT {
                attached.unwrap();
            } else {
                assert_eq!(attached.unwrap_err().errno, Some(libc::EXFULL));
            }
        }
        // Attached in its creation, a veth the full bridge cannot take is not made.
        let veth = Op::AddVeth {
            link: "ve-full".into(),
            peer: "eth-full".into(),
            netns: "A".into(),
            mtu: 1500,
            mac: Mac([2, 0, 0, 0, 0xff, 0xff]),
            master: Some("br".into()),
        };
        assert_eq!(k.apply(&veth).unwrap_err().errno, Some(libc::EXFULL));
        assert!(k.link(HOST, "ve-full").is_err() && k.link("A", "eth-full").is_err());
    }

    #[test]
    fn fails_after_effect_when_told() {
        let mut k = MemoryBackend::new();
        k.fail_after_effect(0);
        let error = k.apply(&Op::AddNetns { netns: "A".into() }).unwrap_err();
        assert!(error.effect_unknown);
        assert!(k.netns_exists("A"), "the operation took effect");
    }

    #[test]
    fn fails_on_the_chosen_call() {
        let mut k = MemoryBackend::new();
        k.fail_on_call(1);
        k.apply(&Op::AddNetns { netns: "A".into() }).unwrap();
        assert_eq!(
            k.apply(&Op::AddNetns { netns: "B".into() }).unwrap_err().message,
            "injected failure"
        );
        k.apply(&Op::AddNetns { netns: "B".into() }).unwrap();
    }
}
