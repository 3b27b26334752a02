//! Statements that change or end what exists: `disconnect`, `remove`, `stop`, `start`.

use super::{suggest, Checker};
use crate::error::ErrorKind;
use crate::model::{Endpoint, Mode, ObjectKind, Status};
use crate::syntax::{Span, Word};

/// At most this many names are listed in one message; the rest are counted.
const NAMES_LISTED: usize = 5;

fn name_list(names: &[String]) -> String {
    let mut listed: Vec<String> = names
        .iter()
        .take(NAMES_LISTED)
        .map(|n| format!("`{n}`"))
        .collect();
    if names.len() > NAMES_LISTED {
        listed.push(format!("and {} more", names.len() - NAMES_LISTED));
    }
    listed.join(", ")
}

impl Checker<'_> {
    pub(super) fn disconnect(&mut self, span: Span, sandbox_word: &Word, network_word: &Word) {
        let sandbox = self.reference(ObjectKind::Sandbox, sandbox_word);
        let network = self.reference(ObjectKind::Network, network_word);
        let (Some(sandbox), Some(network)) = (sandbox, network) else {
            return;
        };
        let endpoint = self
            .joined
            .get(&sandbox)
            .into_iter()
            .flatten()
            .find(|e| self.model.endpoints[*e].network == network)
            .cloned();
        let Some(endpoint) = endpoint else {
            return self.error(ErrorKind::NotConnected { sandbox, network }, span);
        };
        self.connected.remove(&(sandbox, network));
        self.drop_endpoint(&endpoint, span);
    }

    /// Takes an endpoint out of the model, its addresses and its veth's name free again.
    /// The veth goes before anything is made (removals come first in a plan, and a name
    /// a deleted namespace's veth held is waited for), so a script that removes and
    /// makes it again ends where doing it entry by entry does.
    fn forget_endpoint(&mut self, name: &str) -> Endpoint {
        let endpoint = self.model.endpoints.shift_remove(name).expect("a known endpoint");
        self.host_ifnames.remove(&endpoint.host_ifname);
        self.addresses_released();
        endpoint
    }

    /// Removes an endpoint; if it carried its sandbox's default route, the next
    /// endpoint with a way out takes it over.
    fn drop_endpoint(&mut self, name: &str, span: Span) {
        let endpoint = self.forget_endpoint(name);
        self.causes.changed(ObjectKind::Endpoint, name, span);
        self.declared.remove(&(ObjectKind::Endpoint, name.to_string()));
        let Some(sandbox) = endpoint.sandbox else { return };
        let joined = self
            .joined
            .get_mut(&sandbox)
            .expect("a joined endpoint is listed");
        joined.retain(|e| e != name);
        if endpoint.default_route {
            let heir = joined
                .iter()
                .find(|e| {
                    let network = &self.model.endpoints[*e].network;
                    !self.model.networks[network].internal
                })
                .cloned();
            if let Some(heir) = heir {
                self.model.endpoints[&heir].default_route = true;
                self.causes.changed(ObjectKind::Endpoint, heir, span);
            }
        }
    }

    pub(super) fn remove(&mut self, span: Span, kind_word: &Word, name_word: &Word) {
        let Some(kind_text) = self.expand(kind_word) else {
            return;
        };
        let kind = match kind_text.as_str() {
            "network" => ObjectKind::Network,
            "sandbox" => ObjectKind::Sandbox,
            "endpoint" => ObjectKind::Endpoint,
            _ => {
                let suggestion = suggest::closest(&kind_text, ["network", "sandbox", "endpoint"]);
                return self.error(
                    ErrorKind::UnknownObjectKind {
                        word: kind_text,
                        suggestion,
                    },
                    kind_word.span,
                );
            }
        };
        let Some(name) = self.reference(kind, name_word) else {
            return;
        };
        match kind {
            ObjectKind::Network => {
                let users: Vec<String> = self.model.endpoints_on(&name).map(|e| e.name.clone()).collect();
                if !users.is_empty() {
                    return self.error(
                        ErrorKind::NetworkInUse {
                            network: name,
                            endpoints: name_list(&users),
                        },
                        span,
                    );
                }
                self.model.networks.shift_remove(&name);
                self.addresses_released();
            }
            ObjectKind::Sandbox => {
                let sharers: Vec<String> = self
                    .model
                    .sandboxes
                    .values()
                    .filter(|s| s.mode == Mode::Container(name.clone()))
                    .map(|s| s.name.clone())
                    .collect();
                if !sharers.is_empty() {
                    return self.error(
                        ErrorKind::SandboxShared {
                            sandbox: name,
                            users: name_list(&sharers),
                        },
                        span,
                    );
                }
                for endpoint in self.joined.remove(&name).unwrap_or_default() {
                    self.forget_endpoint(&endpoint);
                    self.causes.changed(ObjectKind::Endpoint, endpoint, span);
                }
                self.connected.retain(|(sandbox, _), _| *sandbox != name);
                self.model.sandboxes.shift_remove(&name);
            }
            ObjectKind::Endpoint => {
                if let Some(sandbox) = self.model.endpoints[&name].sandbox.clone() {
                    return self.error(
                        ErrorKind::EndpointInUse {
                            endpoint: name,
                            sandbox,
                        },
                        span,
                    );
                }
                self.drop_endpoint(&name, span);
            }
        }
        self.declared.remove(&(kind, name.clone()));
        self.causes.changed(kind, name, span);
    }

    pub(super) fn set_running(&mut self, span: Span, sandbox_word: &Word, running: bool) {
        let Some(name) = self.reference(ObjectKind::Sandbox, sandbox_word) else {
            return;
        };
        self.model.sandboxes[&name].status = if running { Status::Running } else { Status::Stopped };
        self.causes.changed(ObjectKind::Sandbox, name, span);
    }
}
