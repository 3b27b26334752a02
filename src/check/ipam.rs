//! Address allocation, pure and deterministic: the lowest free host address of a
//! network's pool (its ip-range, else its subnet), never the network address, the
//! broadcast address or the gateway. Each statement's endpoints get their addresses when
//! the statement is checked, as if it were applied then: so a script fed statement by
//! statement (the REPL, piped input) ends with the addresses the whole script gets.
//! Within a statement, static addresses are reserved before the others are handed out.

use std::collections::hash_map::Entry;
use std::net::{Ipv4Addr, Ipv6Addr};

use ipnetwork::{Ipv4Network, Ipv6Network};
use rustc_hash::{FxHashMap, FxHashSet};

use super::{values, Checker};
use crate::error::{Diagnostic, ErrorKind};
use crate::syntax::Span;

/// The free and taken addresses of one pool. Addresses are kept as `u128` so that one
/// allocator serves IPv4 and IPv6.
#[derive(Debug)]
pub struct Pool {
    last: u128,
    /// Who holds each taken address (an endpoint name, or "the gateway").
    taken: FxHashMap<u128, String>,
    /// Every address below this one is taken: allocation only ever moves forward.
    /// `None` once it has moved past the end of the address space.
    cursor: Option<u128>,
}

impl Pool {
    /// The host addresses of `subnet` that lie in `range`, less the gateway. In `u128`,
    /// one past either end of the IPv4 space is still a number: a subnet without host
    /// addresses gives an empty pool.
    pub fn v4(subnet: Ipv4Network, range: Ipv4Network, gateway: Ipv4Addr) -> Pool {
        let address = |ip: Ipv4Addr| u128::from(u32::from(ip));
        let host_first = address(subnet.network()) + 1;
        let host_last = address(subnet.broadcast()).checked_sub(1);
        let first = host_first.max(address(range.network()));
        match host_last {
            Some(host_last) => Pool::new(first, host_last.min(address(range.broadcast())), address(gateway)),
            None => Pool::empty(),
        }
    }

    /// The addresses of `subnet` after its first (the subnet-router anycast address),
    /// less the gateway.
    pub fn v6(subnet: Ipv6Network, gateway: Ipv6Addr) -> Pool {
        let network = u128::from(subnet.network());
        let last = network | (u128::MAX.checked_shr(u32::from(subnet.prefix())).unwrap_or(0));
        match network.checked_add(1) {
            Some(first) => Pool::new(first, last, u128::from(gateway)),
            None => Pool::empty(),
        }
    }

    fn new(first: u128, last: u128, gateway: u128) -> Pool {
        let mut pool = Pool {
            last,
            taken: FxHashMap::default(),
            cursor: Some(first),
        };
        pool.taken.insert(gateway, "the gateway".to_string());
        pool
    }

    fn empty() -> Pool {
        Pool {
            last: 0,
            taken: FxHashMap::default(),
            cursor: None,
        }
    }

    /// Marks an address as held; says who holds it already if it is taken.
    pub fn reserve(&mut self, address: u128, holder: &str) -> Result<(), String> {
        match self.taken.get(&address) {
            Some(other) => Err(other.clone()),
            None => {
                self.taken.insert(address, holder.to_string());
                Ok(())
            }
        }
    }

    /// The lowest free address, now taken by `holder`; `None` when the pool is full.
    pub fn allocate(&mut self, holder: &str) -> Option<u128> {
        while let Some(candidate) = self.cursor.filter(|c| *c <= self.last) {
            self.cursor = candidate.checked_add(1);
            if let Entry::Vacant(slot) = self.taken.entry(candidate) {
                slot.insert(holder.to_string());
                return Some(candidate);
            }
        }
        None
    }
}

/// The pools of every network, kept from one statement to the next; built again from
/// the model only after something let addresses go (an endpoint or network removed).
#[derive(Debug, Default)]
pub(super) struct Pools {
    v4: FxHashMap<String, Pool>,
    v6: FxHashMap<String, Pool>,
}

/// An endpoint made by this script that still needs its addresses.
pub(super) struct PendingAddress {
    pub(super) endpoint: String,
    pub(super) static_ip: Option<(Ipv4Addr, Span)>,
    pub(super) static_ipv6: Option<(Ipv6Addr, Span)>,
    /// Where the script gives the MAC, if it does.
    pub(super) static_mac: Option<Span>,
    pub(super) span: Span,
}

impl Checker<'_> {
    /// Gives every endpoint this script made its addresses: static ones first, then the
    /// lowest free ones, in statement order.
    pub(super) fn allocate_addresses(&mut self) {
        if self.pending.is_empty() {
            return;
        }
        let pending: FxHashSet<&str> = self.pending.iter().map(|p| p.endpoint.as_str()).collect();
        let pools = self.pools.get_or_insert_with(Pools::default);
        let Pools {
            v4: pools,
            v6: pools6,
        } = pools;
        for network in self.model.networks.values() {
            if pools.contains_key(&network.name) {
                continue;
            }
            // A network new to the pools: addresses held on it already are kept.
            pools.insert(
                network.name.clone(),
                Pool::v4(network.subnet, network.pool(), network.gateway),
            );
            if let Some(v6) = network.ipv6 {
                pools6.insert(network.name.clone(), Pool::v6(v6.subnet, v6.gateway));
            }
            for endpoint in self.model.endpoints_on(&network.name) {
                if pending.contains(endpoint.name.as_str()) {
                    continue;
                }
                let holder = format!("endpoint `{}`", endpoint.name);
                if let Some(pool) = pools.get_mut(&endpoint.network) {
                    let _ = pool.reserve(u32::from(endpoint.ip) as u128, &holder);
                }
                if let (Some(pool), Some(ip)) = (pools6.get_mut(&endpoint.network), endpoint.ipv6) {
                    let _ = pool.reserve(u128::from(ip), &holder);
                }
            }
        }
        let live: Vec<&PendingAddress> = self
            .pending
            .iter()
            .filter(|p| self.model.endpoints.contains_key(&p.endpoint))
            .collect();
        let mut assigned: FxHashMap<String, (Ipv4Addr, Option<Ipv6Addr>)> = FxHashMap::default();
        let mut errors = Vec::new();
        let describe = |p: &PendingAddress, model: &crate::model::Model| {
            let e = &model.endpoints[&p.endpoint];
            match &e.sandbox {
                Some(s) => format!("endpoint `{}` (sandbox `{s}`)", e.name),
                None => format!("endpoint `{}`", e.name),
            }
        };
        for p in &live {
            let network = &self.model.endpoints[&p.endpoint].network;
            let holder = describe(p, &self.model);
            let statics = [
                p.static_ip.map(|(ip, span)| {
                    (
                        pools.get_mut(network),
                        u128::from(u32::from(ip)),
                        ip.to_string(),
                        span,
                    )
                }),
                p.static_ipv6
                    .map(|(ip, span)| (pools6.get_mut(network), u128::from(ip), ip.to_string(), span)),
            ];
            for (pool, address, ip, span) in statics.into_iter().flatten() {
                if let Some(Err(holder)) = pool.map(|pool| pool.reserve(address, &holder)) {
                    let network = network.clone();
                    errors.push(Diagnostic::new(
                        ErrorKind::AddressTaken { ip, network, holder },
                        span,
                    ));
                }
            }
        }
        for p in &live {
            let endpoint = &self.model.endpoints[&p.endpoint];
            let network = &self.model.networks[&endpoint.network];
            let holder = describe(p, &self.model);
            let ip = match p.static_ip {
                Some((ip, _)) => Some(ip),
                None => pools
                    .get_mut(&network.name)
                    .expect("a pool per network")
                    .allocate(&holder)
                    .map(|a| Ipv4Addr::from(a as u32)),
            };
            let ipv6 = match (p.static_ipv6, pools6.get_mut(&network.name)) {
                (Some((ip, _)), _) => Some(ip),
                (None, Some(pool)) => pool.allocate(&holder).map(Ipv6Addr::from),
                (None, None) => None,
            };
            match ip {
                Some(ip) => {
                    assigned.insert(p.endpoint.clone(), (ip, ipv6));
                }
                None => {
                    if self.exhausted.insert(network.name.clone()) {
                        errors.push(Diagnostic::new(
                            ErrorKind::AddressesExhausted {
                                network: network.name.clone(),
                                range: network.pool().to_string(),
                            },
                            p.span,
                        ));
                    }
                }
            }
        }
        for p in &live {
            if let Some((ip, ipv6)) = assigned.remove(&p.endpoint) {
                let endpoint = self.model.endpoints.get_mut(&p.endpoint).expect("live");
                endpoint.ip = ip;
                endpoint.ipv6 = ipv6;
                if p.static_mac.is_none() {
                    endpoint.mac = values::mac_for(ip);
                }
            }
        }
        self.errors.extend(errors);
        self.allocated.append(&mut self.pending);
    }

    /// Addresses were let go: the pools are built again when next needed.
    pub(super) fn addresses_released(&mut self) {
        self.pools = None;
    }

    /// A MAC the script gives is held by no other endpoint on the network: not by one
    /// that exists, nor one whose MAC is derived from its address, nor one given a MAC
    /// earlier in the script. Run once addresses, and so the derived MACs, are allocated.
    pub(super) fn check_static_macs(&mut self) {
        let given: FxHashSet<&str> = self
            .allocated
            .iter()
            .filter(|p| p.static_mac.is_some())
            .map(|p| p.endpoint.as_str())
            .collect();
        let mut seen = FxHashSet::default();
        let mut errors = Vec::new();
        for p in &self.allocated {
            let (Some(span), Some(endpoint)) = (p.static_mac, self.model.endpoints.get(&p.endpoint)) else {
                continue;
            };
            seen.insert(p.endpoint.as_str());
            let holder = self.model.endpoints_on(&endpoint.network).find(|other| {
                let earlier = !given.contains(other.name.as_str()) || seen.contains(other.name.as_str());
                other.name != endpoint.name && other.mac == endpoint.mac && earlier
            });
            if let Some(holder) = holder {
                let kind = ErrorKind::MacTaken {
                    mac: endpoint.mac.to_string(),
                    network: endpoint.network.clone(),
                    holder: format!("endpoint `{}`", holder.name),
                };
                errors.push(Diagnostic::new(kind, span));
            }
        }
        self.errors.extend(errors);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn v4(subnet: &str, range: &str, gw: &str) -> Pool {
        Pool::v4(
            subnet.parse().unwrap(),
            range.parse().unwrap(),
            gw.parse().unwrap(),
        )
    }

    fn ip(a: u128) -> Ipv4Addr {
        Ipv4Addr::from(a as u32)
    }

    #[test]
    fn skips_network_gateway_and_broadcast() {
        let mut pool = v4("10.0.0.0/30", "10.0.0.0/30", "10.0.0.1");
        assert_eq!(pool.allocate("a").map(ip), Some("10.0.0.2".parse().unwrap()));
        assert_eq!(pool.allocate("b"), None);
    }

    #[test]
    fn static_addresses_are_skipped_and_reported() {
        let mut pool = v4("10.0.0.0/24", "10.0.0.0/24", "10.0.0.1");
        pool.reserve(u32::from(Ipv4Addr::new(10, 0, 0, 2)) as u128, "web")
            .unwrap();
        assert_eq!(pool.allocate("a").map(ip), Some("10.0.0.3".parse().unwrap()));
        assert_eq!(
            pool.reserve(u32::from(Ipv4Addr::new(10, 0, 0, 2)) as u128, "db"),
            Err("web".to_string())
        );
        assert_eq!(
            pool.reserve(u32::from(Ipv4Addr::new(10, 0, 0, 1)) as u128, "db"),
            Err("the gateway".to_string())
        );
    }

    #[test]
    fn ip_range_bounds_allocation() {
        let mut pool = v4("10.0.0.0/24", "10.0.0.128/30", "10.0.0.1");
        let got: Vec<_> = std::iter::from_fn(|| pool.allocate("x").map(ip)).collect();
        let want: Vec<Ipv4Addr> = ["10.0.0.128", "10.0.0.129", "10.0.0.130", "10.0.0.131"]
            .iter()
            .map(|s| s.parse().unwrap())
            .collect();
        assert_eq!(got, want);
    }

    #[test]
    fn the_ends_of_the_address_space_are_no_overflow() {
        for subnet in ["0.0.0.0/32", "255.255.255.255/32", "255.255.255.254/31"] {
            let mut pool = v4(subnet, subnet, "0.0.0.0");
            assert_eq!(pool.allocate("a"), None, "{subnet}");
        }
        let mut pool = v4("255.255.255.252/30", "255.255.255.252/30", "255.255.255.253");
        assert_eq!(
            pool.allocate("a").map(ip),
            Some("255.255.255.254".parse().unwrap())
        );
        assert_eq!(pool.allocate("b"), None);
        let top = |text: &str| text.parse::<Ipv6Network>().unwrap();
        let mut pool = Pool::v6(
            top("ffff:ffff:ffff:ffff:ffff:ffff:ffff:fffc/126"),
            Ipv6Addr::UNSPECIFIED,
        );
        let got: Vec<_> = std::iter::from_fn(|| pool.allocate("x").map(Ipv6Addr::from)).collect();
        assert_eq!(got.len(), 3);
        assert_eq!(got[2], Ipv6Addr::from(u128::MAX));
        let mut pool = Pool::v6(
            top("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff/128"),
            Ipv6Addr::UNSPECIFIED,
        );
        assert_eq!(pool.allocate("x"), None);
        let mut pool = Pool::v6(top("::/0"), Ipv6Addr::UNSPECIFIED);
        assert_eq!(pool.allocate("x"), Some(1));
    }

    #[test]
    fn ipv6_starts_after_the_gateway() {
        let mut pool = Pool::v6("fd00::/126".parse().unwrap(), "fd00::1".parse().unwrap());
        let got: Vec<_> = std::iter::from_fn(|| pool.allocate("x").map(Ipv6Addr::from)).collect();
        assert_eq!(
            got,
            vec!["fd00::2".parse::<Ipv6Addr>().unwrap(), "fd00::3".parse().unwrap()]
        );
    }

    proptest! {
        /// Whatever is reserved first, allocation never hands out an address twice, nor
        /// one outside the pool, nor the network, broadcast or gateway address.
        #[test]
        fn never_twice_never_outside(
            prefix in 22u8..=30,
            range_prefix in 22u8..=32,
            offset in 0u32..1024,
            gw_offset in 1u32..1023,
            statics in proptest::collection::vec(0u32..1024, 0..20),
        ) {
            let subnet = Ipv4Network::new(Ipv4Addr::new(10, 7, 0, 0), prefix).unwrap();
            let size = subnet.size();
            let range_prefix = range_prefix.max(prefix);
            let range_base = Ipv4Addr::from(u32::from(subnet.network()) + offset % size);
            let range = Ipv4Network::new(range_base, range_prefix).unwrap();
            let range = Ipv4Network::new(range.network(), range_prefix).unwrap();
            let gateway = Ipv4Addr::from(u32::from(subnet.network()) + 1 + gw_offset % (size - 2));
            let mut pool = Pool::v4(subnet, range, gateway);
            let mut seen = FxHashSet::default();
            for s in statics {
                let a = u32::from(subnet.network()) as u128 + 1 + (s % (size - 2)) as u128;
                if pool.reserve(a, "static").is_ok() {
                    prop_assert!(seen.insert(a));
                }
            }
            while let Some(a) = pool.allocate("dyn") {
                prop_assert!(seen.insert(a), "{} handed out twice", ip(a));
                let addr = ip(a);
                prop_assert!(subnet.contains(addr) && range.contains(addr));
                prop_assert!(addr != subnet.network() && addr != subnet.broadcast() && addr != gateway);
            }
        }
    }
}
