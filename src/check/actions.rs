//! Statements that act on a sandbox once the script is applied — `publish`, `exec`,
//! `expect`, `serve` — checked here so that a mistake shows before anything runs.

use std::net::IpAddr;
use std::time::Duration;

use super::{suggest, values, Checker};
use crate::error::ErrorKind;
use crate::model::{ObjectKind, Protocol, PublishedPort};
use crate::syntax::{Opt, Span, Word};

/// How long `expect` waits for an answer unless told otherwise.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(1);

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    Publish {
        sandbox: String,
        port: PublishedPort,
        span: Span,
    },
    Exec {
        sandbox: String,
        command: Vec<String>,
        span: Span,
    },
    Expect {
        sandbox: String,
        reaches: bool,
        target: Target,
        port: Option<(u16, Protocol)>,
        timeout: Duration,
        span: Span,
    },
    Serve {
        sandbox: String,
        port: u16,
        protocol: Protocol,
        span: Span,
    },
}

/// What `expect` tries to reach.
impl Action {
    /// The statement's keyword.
    pub fn keyword(&self) -> &'static str {
        match self {
            Action::Publish { .. } => "publish",
            Action::Exec { .. } => "exec",
            Action::Expect { .. } => "expect",
            Action::Serve { .. } => "serve",
        }
    }

    pub fn span(&self) -> Span {
        match self {
            Action::Publish { span, .. }
            | Action::Exec { span, .. }
            | Action::Expect { span, .. }
            | Action::Serve { span, .. } => *span,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    Host,
    Sandbox(String),
    /// An endpoint, named by one of its aliases.
    Alias(String),
    Address(IpAddr),
}

/// The `port`, `udp`/`tcp` and `timeout` options of `expect` and `serve`.
struct Probe {
    port: Option<u16>,
    protocol: Protocol,
    timeout: Option<Duration>,
}

impl Checker<'_> {
    pub(super) fn publish(&mut self, span: Span, sandbox_word: &Word, ports: &Word, options: &[Opt]) {
        let sandbox = self.reference(ObjectKind::Sandbox, sandbox_word);
        let options = self.options(options);
        let host_ip = match options.get("host-ip").and_then(|o| self.single(o, "publish")) {
            Some(w) => match self.value(w, "host address", values::host_ip4) {
                Some(ip) => Some(ip),
                None => return,
            },
            None => None,
        };
        let Some(port) = self.value(ports, "port mapping", |t| values::published_port(t, host_ip)) else {
            return;
        };
        let Some(sandbox) = sandbox else { return };
        if let Some((holder, mapping)) = self.port_holder(&sandbox, &port) {
            let port = match port.host_ip {
                Some(ip) => format!("{ip}:{}/{}", port.host_port, port.protocol),
                None => format!("{}/{}", port.host_port, port.protocol),
            };
            return self.error(
                ErrorKind::PortTaken {
                    port,
                    holder,
                    mapping,
                },
                ports.span,
            );
        }
        self.causes.changed(ObjectKind::Sandbox, sandbox.clone(), span);
        self.actions.push(Action::Publish {
            sandbox: sandbox.clone(),
            port,
            span,
        });
        let published = &mut self.model.sandboxes[&sandbox].published;
        if !published.contains(&port) {
            published.push(port);
        }
    }

    /// The sandbox that already publishes the host port `port` asks for, on the same
    /// protocol and an overlapping host address, and how; none for the same mapping of
    /// the same sandbox again.
    fn port_holder(&self, sandbox: &str, port: &PublishedPort) -> Option<(String, String)> {
        self.model.sandboxes.values().find_map(|holder| {
            let clash = holder.published.iter().find(|p| {
                p.protocol == port.protocol
                    && p.host_port == port.host_port
                    && (p.host_ip.is_none() || port.host_ip.is_none() || p.host_ip == port.host_ip)
                    && !(holder.name == sandbox && *p == port)
            })?;
            let mut mapping = format!("{}:{}/{}", clash.host_port, clash.port, clash.protocol);
            if let Some(ip) = clash.host_ip {
                mapping.push_str(&format!(" host-ip {ip}"));
            }
            Some((holder.name.clone(), mapping))
        })
    }

    pub(super) fn exec(&mut self, span: Span, sandbox_word: &Word, command: &[Word]) {
        let sandbox = self.reference(ObjectKind::Sandbox, sandbox_word);
        let command: Option<Vec<String>> = command.iter().map(|w| self.expand(w)).collect();
        if let (Some(sandbox), Some(command)) = (sandbox, command) {
            if command.is_empty() {
                return self.error(
                    ErrorKind::MalformedStatement {
                        keyword: "exec".into(),
                        usage: super::usage::usage("exec"),
                    },
                    span,
                );
            }
            self.actions.push(Action::Exec {
                sandbox,
                command,
                span,
            });
        }
    }

    pub(super) fn expect(
        &mut self,
        span: Span,
        sandbox_word: &Word,
        reaches: bool,
        target_word: &Word,
        options: &[Opt],
    ) {
        let sandbox = self.reference(ObjectKind::Sandbox, sandbox_word);
        let target = self.target(target_word);
        let probe = self.probe(options, "expect");
        if let (Some(sandbox), Some(target), Some(probe)) = (sandbox, target, probe) {
            self.actions.push(Action::Expect {
                sandbox,
                reaches,
                target,
                port: probe.port.map(|p| (p, probe.protocol)),
                timeout: probe.timeout.unwrap_or(DEFAULT_TIMEOUT),
                span,
            });
        }
    }

    pub(super) fn serve(&mut self, span: Span, sandbox_word: &Word, options: &[Opt]) {
        let sandbox = self.reference(ObjectKind::Sandbox, sandbox_word);
        let Some(probe) = self.probe(options, "serve") else {
            return;
        };
        let Some(port) = probe.port else {
            return self.error(
                ErrorKind::MalformedStatement {
                    keyword: "serve".into(),
                    usage: super::usage::usage("serve"),
                },
                span,
            );
        };
        if let Some(sandbox) = sandbox {
            self.actions.push(Action::Serve {
                sandbox,
                port,
                protocol: probe.protocol,
                span,
            });
        }
    }

    /// `host`, a sandbox, an alias, or an address.
    fn target(&mut self, word: &Word) -> Option<Target> {
        let text = self.expand(word)?;
        if text == "host" {
            return Some(Target::Host);
        }
        if self.model.sandboxes.contains_key(&text) {
            return Some(Target::Sandbox(text));
        }
        if self.model.endpoints.values().any(|e| e.aliases.contains(&text)) {
            return Some(Target::Alias(text));
        }
        if let Ok(ip) = text.parse() {
            return Some(Target::Address(ip));
        }
        // A sandbox whose declaration failed has had its error already.
        if self.broken.contains(&(ObjectKind::Sandbox, text.clone())) {
            return None;
        }
        let aliases = self.model.endpoints.values().flat_map(|e| e.aliases.iter());
        let candidates: Vec<&str> = self
            .model
            .sandboxes
            .keys()
            .chain(aliases)
            .map(String::as_str)
            .collect();
        let suggestion = suggest::closest(&text, candidates);
        self.error(
            ErrorKind::UnknownReference {
                kind: ObjectKind::Sandbox,
                name: text,
                suggestion,
            },
            word.span,
        );
        None
    }

    fn probe(&mut self, options: &[Opt], keyword: &str) -> Option<Probe> {
        let errors_before = self.errors.len();
        let options = self.options(options);
        let port = options
            .get("port")
            .and_then(|o| self.single(o, keyword))
            .and_then(|w| self.value(w, "port", values::port));
        let timeout = options
            .get("timeout")
            .and_then(|o| self.single(o, keyword))
            .and_then(|w| self.value(w, "timeout", values::duration));
        let protocol = if options.contains_key("udp") {
            Protocol::Udp
        } else {
            Protocol::Tcp
        };
        (self.errors.len() == errors_before).then_some(Probe {
            port,
            protocol,
            timeout,
        })
    }
}
