//! The default network, like Docker's `bridge`: made when the first `bridge`-mode
//! sandbox needs it, and joined by every one.

use ipnetwork::Ipv4Network;

use super::endpoint::AddressOptions;
use super::network::first_host;
use super::Checker;
use crate::model::{
    bridge_name, endpoint_name, object_id, Driver, Network, ObjectKind, DEFAULT_MTU, DEFAULT_NETWORK,
    DEFAULT_SUBNET,
};
use crate::syntax::Span;

impl Checker<'_> {
    /// A `bridge`-mode sandbox joins the default network, made on first use.
    pub(super) fn join_default_network(&mut self, sandbox: &str, span: Span) {
        if !self.model.networks.contains_key(DEFAULT_NETWORK) && !self.make_default_network(span) {
            return;
        }
        self.connected
            .insert((sandbox.to_string(), DEFAULT_NETWORK.to_string()), span);
        let name = endpoint_name(sandbox, DEFAULT_NETWORK);
        self.new_endpoint(
            name,
            DEFAULT_NETWORK,
            Some(sandbox),
            AddressOptions::default(),
            span,
        );
    }

    /// Adds the default network to the model; `false` if it cannot be made (said once).
    fn make_default_network(&mut self, span: Span) -> bool {
        let key = (ObjectKind::Network, DEFAULT_NETWORK.to_string());
        if self.broken.contains(&key) {
            return false;
        }
        let subnet: Ipv4Network = DEFAULT_SUBNET.parse().expect("the default subnet");
        let id = object_id(ObjectKind::Network, DEFAULT_NETWORK);
        let bridge = bridge_name(DEFAULT_NETWORK, &id);
        if !self.subnet_free(DEFAULT_NETWORK, subnet, span) || !self.bridge_free(&bridge, span) {
            self.broken.insert(key);
            return false;
        }
        let network = Network {
            name: DEFAULT_NETWORK.into(),
            bridge: Some(bridge),
            id,
            driver: Driver::Bridge,
            subnet,
            gateway: first_host(subnet),
            ip_range: None,
            ipv6: None,
            parent: None,
            mtu: DEFAULT_MTU,
            internal: false,
        };
        self.causes.made(key.0, key.1, span);
        self.model.networks.insert(DEFAULT_NETWORK.into(), network);
        true
    }
}
