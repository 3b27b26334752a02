//! A Linux bridge holds at most 1,023 ports: the 1,024th `set master` fails with EXFULL.
//! Each joined endpoint of a running sandbox on a bridge network is one port (its veth's
//! host end); a stopped sandbox has no veth, and an endpoint not joined has none yet.

use rustc_hash::FxHashMap;

use super::Checker;
use crate::error::ErrorKind;
use crate::model::{Driver, Endpoint, ObjectKind, BRIDGE_PORT_LIMIT};
use crate::syntax::Span;

impl Checker<'_> {
    /// One error per bridge network with more ports than its bridge holds, at the
    /// statement that makes the first port over the limit: the ports the committed state
    /// holds already come first, then the script's in statement order.
    pub(super) fn check_bridge_ports(&mut self) {
        let mut ports: FxHashMap<&str, Vec<&Endpoint>> = FxHashMap::default();
        for endpoint in self.model.endpoints.values().filter(|e| self.has_bridge_port(e)) {
            ports.entry(&endpoint.network).or_default().push(endpoint);
        }
        let mut errors = Vec::new();
        for network in self.model.networks.values() {
            let Some(ports) = ports.get(network.name.as_str()) else {
                continue;
            };
            if ports.len() <= BRIDGE_PORT_LIMIT {
                continue;
            }
            let mut causes: Vec<Span> = ports.iter().filter_map(|e| self.port_cause(e)).collect();
            causes.sort();
            let held_already = ports.len() - causes.len();
            let Some(&span) = causes.get(BRIDGE_PORT_LIMIT.saturating_sub(held_already)) else {
                // The committed state is over the limit by itself: no statement to blame.
                continue;
            };
            let kind = ErrorKind::BridgeFull {
                network: network.name.clone(),
                bridge: network.bridge.clone().unwrap_or_default(),
                ports: ports.len(),
                limit: BRIDGE_PORT_LIMIT,
            };
            errors.push((kind, span));
        }
        for (kind, span) in errors {
            self.error(kind, span);
        }
    }

    fn has_bridge_port(&self, endpoint: &Endpoint) -> bool {
        let on_a_bridge = self.model.networks[&endpoint.network].driver == Driver::Bridge;
        let running = endpoint
            .sandbox
            .as_ref()
            .is_some_and(|s| self.model.sandboxes[s].is_running());
        on_a_bridge && running && endpoint.ifname.is_some()
    }

    /// The statement that made, joined or started the endpoint, if this script did.
    fn port_cause(&self, endpoint: &Endpoint) -> Option<Span> {
        self.causes
            .latest(ObjectKind::Endpoint, &endpoint.name)
            .or_else(|| {
                self.causes
                    .latest(ObjectKind::Sandbox, endpoint.sandbox.as_deref()?)
            })
    }
}
