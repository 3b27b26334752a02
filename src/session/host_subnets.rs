//! A new bridge network never lies over the host's own network: a subnet that overlaps
//! an address on a host interface is refused (the host would answer ARP for its LAN's
//! addresses through the bridge, as Podman also refuses), and one that overlaps a host
//! route is named in a warning (that traffic would go to the sandboxes).

use ipnetwork::IpNetwork;

use super::{Error, Session};
use crate::check::Checked;
use crate::error::{Diagnostic, ErrorKind};
use crate::model::{subnets_overlap, Driver, Model, Network, ObjectKind};
use crate::observe::Space;
use crate::syntax::Sources;

impl Session {
    pub(super) fn refuse_host_subnets(
        &mut self,
        committed: &Model,
        checked: &Checked,
        sources: &mut Sources,
    ) -> Result<(), Error> {
        let is_new = |n: &&Network| {
            n.driver == Driver::Bridge
                && committed
                    .networks
                    .get(&n.name)
                    .is_none_or(|old| old.subnet != n.subnet)
        };
        let new: Vec<&Network> = checked.model.networks.values().filter(is_new).collect();
        if new.is_empty() || !self.reads_host {
            return Ok(());
        }
        let host = Space::read(None)
            .map_err(|e| Error::Message(format!("cannot read the host's addresses: {e}")))?;
        let addresses = host.links.iter().flat_map(|(interface, link)| {
            link.addresses.iter().filter_map(move |address| match address {
                IpNetwork::V4(address) => Some((interface, *address)),
                IpNetwork::V6(_) => None,
            })
        });
        let routes = host.routes.iter().filter_map(|route| match route.destination {
            IpNetwork::V4(destination) if destination.prefix() > 0 => Some((destination, &route.interface)),
            _ => None,
        });
        let cnm_bridges: Vec<&str> = [committed, &checked.model]
            .iter()
            .flat_map(|m| m.networks.values().filter_map(|n| n.bridge.as_deref()))
            .collect();
        let foreign = |interface: &str| !cnm_bridges.contains(&interface);
        let mut diagnostics = Vec::new();
        for network in new {
            let span = checked
                .causes
                .maker(ObjectKind::Network, &network.name)
                .or_else(|| checked.causes.latest(ObjectKind::Network, &network.name));
            let on_host = addresses
                .clone()
                .find(|(interface, address)| foreign(interface) && subnets_overlap(network.subnet, *address));
            if let (Some((interface, address)), Some(span)) = (on_host, span) {
                let kind = ErrorKind::SubnetOnHost {
                    subnet: network.subnet.to_string(),
                    address: address.to_string(),
                    interface: interface.clone(),
                };
                diagnostics.push(Diagnostic::new(kind, span));
                continue;
            }
            let routed = routes.clone().find(|(destination, interface)| {
                foreign(interface) && subnets_overlap(network.subnet, *destination)
            });
            if let Some((destination, interface)) = routed {
                let place = span.map_or_else(String::new, |span| {
                    let (file, at) = sources.position(span);
                    format!("{file}:{}: ", at.line)
                });
                (self.notice)(&format!(
                    "warning: {place}network {} ({}) overlaps the host's route to {} via {}: traffic to \
                     those addresses goes to the network's sandboxes",
                    network.name, network.subnet, destination, interface
                ));
            }
        }
        if diagnostics.is_empty() {
            return Ok(());
        }
        Err(Error::Script(std::mem::take(sources), diagnostics))
    }
}
