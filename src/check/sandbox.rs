//! `sandbox NAME [mode …] [hostname H] [dns IP…]`: a network stack, its own namespace or
//! another's; a `bridge`-mode sandbox joins the default network.

use super::differences::{list_or_none, Differences};
use super::{suggest, values, Checker};
use crate::error::ErrorKind;
use crate::model::{object_id, Mode, ObjectKind, Sandbox, Status};
use crate::syntax::{Opt, Span, Word};

impl Checker<'_> {
    pub(super) fn sandbox(&mut self, span: Span, name_word: &Word, options: &[Opt]) {
        let Some(name) = self.name(name_word) else { return };
        let errors_before = self.errors.len();
        let options = self.options(options);
        let mode = options
            .get("mode")
            .and_then(|o| self.single(o, "sandbox"))
            .and_then(|w| self.mode(&name, w));
        let hostname = options
            .get("hostname")
            .and_then(|o| self.single(o, "sandbox"))
            .and_then(|w| self.value(w, "hostname", |t| values::hostname(t).map(|()| t.to_string())));
        let dns = options
            .get("dns")
            .and_then(|o| self.list(o, "sandbox"))
            .and_then(|words| {
                let mut ips = Vec::new();
                for (text, span) in words {
                    match values::ip(&text) {
                        Ok(ip) => ips.push(ip),
                        Err(reason) => {
                            self.error(
                                ErrorKind::InvalidValue {
                                    what: "DNS server",
                                    value: text,
                                    reason,
                                },
                                span,
                            );
                            return None;
                        }
                    }
                }
                Some(ips)
            });

        if !self.declare(ObjectKind::Sandbox, &name, span) {
            return;
        }
        if self.errors.len() > errors_before {
            self.broken.insert((ObjectKind::Sandbox, name));
            return;
        }
        if let Some(existing) = self.model.sandboxes.get(&name) {
            let mut differences = Differences::default();
            differences.compare("mode", &existing.mode, mode.as_ref());
            differences.compare(
                "hostname",
                existing.hostname.as_deref().unwrap_or("none"),
                hostname.as_deref(),
            );
            differences.compare(
                "dns",
                list_or_none(&existing.dns),
                dns.as_deref().map(list_or_none),
            );
            if let Some(kind) = differences.into_error(ObjectKind::Sandbox, &name) {
                self.error(kind, span);
            }
            return;
        }
        let mode = mode.unwrap_or(Mode::Bridge);
        let sandbox = Sandbox {
            name: name.clone(),
            id: object_id(ObjectKind::Sandbox, &name),
            mode: mode.clone(),
            hostname,
            dns: dns.unwrap_or_default(),
            status: Status::Running,
            published: Vec::new(),
        };
        self.causes.made(ObjectKind::Sandbox, name.clone(), span);
        self.model.sandboxes.insert(name.clone(), sandbox);
        if mode == Mode::Bridge {
            self.join_default_network(&name, span);
        }
    }

    /// A `mode` value; `container:X` must name a sandbox with a namespace of its own.
    fn mode(&mut self, sandbox: &str, word: &Word) -> Option<Mode> {
        let text = self.expand(word)?;
        let Some(mode) = Mode::parse(&text) else {
            let suggestion = suggest::closest(&text, ["bridge", "none", "host"]);
            let reason = match suggestion {
                Some(s) => {
                    format!("did you mean `{s}`? The modes are bridge, none, host and container:OTHER")
                }
                None => "the modes are bridge, none, host and container:OTHER".into(),
            };
            self.error(
                ErrorKind::InvalidValue {
                    what: "mode",
                    value: text,
                    reason,
                },
                word.span,
            );
            return None;
        };
        let Mode::Container(target) = &mode else {
            return Some(mode);
        };
        if target == sandbox {
            self.error(
                ErrorKind::SharedNamespaceCycle {
                    sandbox: sandbox.to_string(),
                },
                word.span,
            );
            return None;
        }
        if values::name(target).is_err() || !self.model.sandboxes.contains_key(target) {
            if !self.broken.contains(&(ObjectKind::Sandbox, target.clone())) {
                let suggestion = suggest::closest(target, self.model.sandboxes.keys().map(String::as_str));
                self.error(
                    ErrorKind::UnknownReference {
                        kind: ObjectKind::Sandbox,
                        name: target.clone(),
                        suggestion,
                    },
                    word.span,
                );
            }
            return None;
        }
        if let Mode::Container(target_target) = &self.model.sandboxes[target].mode {
            self.error(
                ErrorKind::SharedNamespaceChain {
                    sandbox: sandbox.to_string(),
                    target: target.clone(),
                    target_target: target_target.clone(),
                },
                word.span,
            );
            return None;
        }
        Some(mode)
    }
}
