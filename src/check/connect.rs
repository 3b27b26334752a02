//! `connect SANDBOX to NETWORK [endpoint NAME] …`: a sandbox joins a network, through a
//! new endpoint or one made earlier with `endpoint`.

use super::Checker;
use crate::error::{Diagnostic, ErrorKind};
use crate::model::{endpoint_name, Mode, ObjectKind};
use crate::syntax::{Opt, Span, Word};

impl Checker<'_> {
    pub(super) fn connect(&mut self, span: Span, sandbox_word: &Word, network_word: &Word, options: &[Opt]) {
        let sandbox = self.reference(ObjectKind::Sandbox, sandbox_word);
        let network = self.reference(ObjectKind::Network, network_word);
        let errors_before = self.errors.len();
        let addresses = self.address_options(options, "connect");
        let named = options
            .iter()
            .find(|o| o.key.name == "endpoint")
            .and_then(|o| o.values.first())
            .and_then(|w| Some((self.reference(ObjectKind::Endpoint, w)?, w.span)));
        let (Some(sandbox), Some(network)) = (sandbox, network) else {
            return;
        };
        if self.errors.len() > errors_before {
            return;
        }
        let mode = &self.model.sandboxes[&sandbox].mode;
        if matches!(mode, Mode::Host | Mode::Container(_)) {
            let mode = mode.to_string();
            return self.error(
                ErrorKind::ConnectWithoutNamespace { sandbox, mode },
                sandbox_word.span,
            );
        }
        let key = (sandbox.clone(), network.clone());
        if let Some(first) = self.connected.get(&key) {
            let first = *first;
            return self.errors.push(
                Diagnostic::new(ErrorKind::ConnectedTwice { sandbox, network }, span)
                    .with_related(first, "first connected here"),
            );
        }
        if !self.valid_static_addresses(&network, &addresses) {
            return;
        }
        self.connected.insert(key, span);

        // Connected already (by the committed state): the options must agree.
        let existing = self.joined.get(&sandbox).and_then(|names| {
            names
                .iter()
                .map(|n| &self.model.endpoints[n])
                .find(|e| e.network == network)
        });
        if let Some(existing) = existing {
            let mut differences = Self::endpoint_differences(existing, &addresses);
            if let Some((named, _)) = &named {
                differences.compare("endpoint", existing.name.as_str(), Some(named.as_str()));
            }
            if let Some(kind) = differences.into_error(ObjectKind::Endpoint, &existing.name.clone()) {
                self.error(kind, span);
            }
            return;
        }

        let Some((endpoint, endpoint_span)) = named else {
            let name = endpoint_name(&sandbox, &network);
            return self.new_endpoint(name, &network, Some(&sandbox), addresses, span);
        };
        // Join an endpoint made earlier with `endpoint`.
        let existing = &self.model.endpoints[&endpoint];
        if existing.network != network {
            let actual = existing.network.clone();
            return self.error(
                ErrorKind::EndpointOnOtherNetwork {
                    endpoint,
                    actual,
                    network,
                },
                endpoint_span,
            );
        }
        if let Some(holder) = existing.sandbox.clone() {
            return self.error(
                ErrorKind::EndpointInUse {
                    endpoint,
                    sandbox: holder,
                },
                endpoint_span,
            );
        }
        let differences = Self::endpoint_differences(existing, &addresses);
        if let Some(kind) = differences.into_error(ObjectKind::Endpoint, &endpoint) {
            return self.error(kind, span);
        }
        let Some(ifname) = self.ifname_for(&sandbox, addresses.ifname) else {
            return;
        };
        let default_route = self.takes_default_route(&sandbox, &network);
        let joined = self.model.endpoints.get_mut(&endpoint).expect("resolved above");
        joined.sandbox = Some(sandbox.clone());
        joined.ifname = Some(ifname);
        joined.default_route = default_route;
        self.joined.entry(sandbox).or_default().push(endpoint.clone());
        self.causes.made(ObjectKind::Endpoint, endpoint, span);
    }

    /// The interface name inside the sandbox: the one asked for, or the lowest free `ethN`.
    pub(super) fn ifname_for(&mut self, sandbox: &str, wanted: Option<(String, Span)>) -> Option<String> {
        let taken: Vec<&str> = self
            .joined
            .get(sandbox)
            .into_iter()
            .flatten()
            .filter_map(|e| self.model.endpoints[e].ifname.as_deref())
            .collect();
        match wanted {
            Some((ifname, span)) => {
                if taken.contains(&ifname.as_str()) || ifname == "lo" {
                    self.error(
                        ErrorKind::IfnameTaken {
                            ifname,
                            sandbox: sandbox.to_string(),
                        },
                        span,
                    );
                    return None;
                }
                Some(ifname)
            }
            None => (0..)
                .map(|i| format!("eth{i}"))
                .find(|candidate| !taken.contains(&candidate.as_str())),
        }
    }

    /// The first endpoint on a network with a way out carries the default route.
    pub(super) fn takes_default_route(&self, sandbox: &str, network: &str) -> bool {
        let has_route = self
            .joined
            .get(sandbox)
            .into_iter()
            .flatten()
            .any(|e| self.model.endpoints[e].default_route);
        !has_route && !self.model.networks[network].internal
    }
}
