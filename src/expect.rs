//! Expectations: `expect SANDBOX reaches|cannot reach TARGET` against the committed
//! state. The target is resolved to addresses (a sandbox's, an alias's endpoint's, an
//! address, or `host`: the gateways of the sandbox's networks), and each address is
//! probed from inside the sandbox's namespace, all at once: a failing expectation costs
//! its timeout, not one per address.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::check::Target;
use crate::model::{Mode, Model, Protocol};
use crate::probe::{self, Answer, Via};

/// One expectation, as the script states it.
#[derive(Debug, Clone)]
pub struct Expectation<'a> {
    pub sandbox: &'a str,
    pub reaches: bool,
    pub target: &'a Target,
    pub port: Option<(u16, Protocol)>,
    pub timeout: Duration,
}

/// What checking an expectation found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    pub passed: bool,
    /// What was probed: `A → B (10.1.0.3, ping)`.
    pub probed: String,
    /// What came back, address by address.
    pub found: String,
}

impl Expectation<'_> {
    /// Probes the target from the sandbox; an error when the expectation cannot be
    /// tried at all (a stopped sandbox, a target with no address).
    pub fn check(&self, model: &Model, netns_dir: &Path) -> Result<Verdict, String> {
        let netns = namespace(model, netns_dir, self.sandbox)?;
        let addresses = self.addresses(model)?;
        let via = match self.port {
            Some((port, protocol)) => Via::Port(port, protocol),
            None => Via::Echo,
        };
        // Every address at once; `reaches` is settled by the first answer.
        let (answers, results) = std::sync::mpsc::channel();
        for (index, &address) in addresses.iter().enumerate() {
            let (netns, timeout, answers) = (netns.clone(), self.timeout, answers.clone());
            std::thread::spawn(move || {
                let _ = answers.send((index, probe::probe(netns.as_deref(), address, via, timeout)));
            });
        }
        drop(answers);
        let mut reached = false;
        let mut found = vec![String::new(); addresses.len()];
        for (index, answer) in results {
            let address = addresses[index];
            match answer.map_err(|e| format!("cannot probe from sandbox `{}`: {e}", self.sandbox))? {
                Answer::Reached => {
                    reached = true;
                    found[index] = format!("{address} answered");
                }
                Answer::NotReached(why) => found[index] = format!("{address}: {why}"),
            }
            if reached && self.reaches {
                break;
            }
        }
        found.retain(|f| !f.is_empty());
        let how = match self.port {
            Some((port, protocol)) => format!("{protocol} port {port}"),
            None => "ping".to_string(),
        };
        let list: Vec<String> = addresses.iter().map(IpAddr::to_string).collect();
        Ok(Verdict {
            passed: reached == self.reaches,
            probed: format!(
                "{} {} {} ({}, {how})",
                self.sandbox,
                if self.reaches { "reaches" } else { "cannot reach" },
                target_name(self.target),
                list.join(" ")
            ),
            found: found.join("; "),
        })
    }

    /// The addresses the target stands for.
    fn addresses(&self, model: &Model) -> Result<Vec<IpAddr>, String> {
        let of_endpoints = |pick: &dyn Fn(&crate::model::Endpoint) -> bool| -> Vec<IpAddr> {
            model
                .endpoints
                .values()
                .filter(|e| e.ifname.is_some() && pick(e))
                .flat_map(|e| std::iter::once(IpAddr::V4(e.ip)).chain(e.ipv6.map(IpAddr::V6)))
                .collect()
        };
        let addresses = match self.target {
            Target::Address(ip) => vec![*ip],
            Target::Sandbox(name) => {
                let owner = owner(model, name)?;
                of_endpoints(&|e| e.sandbox.as_deref() == Some(owner))
            }
            Target::Alias(alias) => of_endpoints(&|e| e.aliases.iter().any(|a| a == alias)),
            Target::Host => {
                let owner = owner(model, self.sandbox)?;
                let mut gateways: Vec<IpAddr> = model
                    .endpoints
                    .values()
                    .filter(|e| e.sandbox.as_deref() == Some(owner) && e.ifname.is_some())
                    .map(|e| IpAddr::V4(model.networks[&e.network].gateway))
                    .collect();
                gateways.dedup();
                if gateways.is_empty() {
                    // A sandbox on no network (or in host mode) shares nothing with the
                    // host but loopback.
                    gateways.push(IpAddr::V4(std::net::Ipv4Addr::LOCALHOST));
                }
                gateways
            }
        };
        if addresses.is_empty() {
            return Err(format!("{} has no address to probe", target_name(self.target)));
        }
        Ok(addresses)
    }
}

/// The sandbox whose namespace `name` uses: itself, or the one a container-mode sandbox
/// shares. A stopped sandbox has none.
fn owner<'m>(model: &'m Model, name: &str) -> Result<&'m str, String> {
    let sandbox = model
        .sandboxes
        .get(name)
        .ok_or_else(|| format!("there is no sandbox `{name}`"))?;
    if !sandbox.is_running() {
        return Err(format!("sandbox `{name}` is stopped"));
    }
    Ok(match &sandbox.mode {
        Mode::Container(other) => owner(model, other)?,
        _ => &sandbox.name,
    })
}

/// The namespace file probes from `sandbox` enter; `None` for a host-mode sandbox.
pub fn namespace(model: &Model, netns_dir: &Path, sandbox: &str) -> Result<Option<PathBuf>, String> {
    let owner = owner(model, sandbox)?;
    Ok(match model.sandboxes[owner].mode {
        Mode::Host => None,
        _ => Some(netns_dir.join(owner)),
    })
}

fn target_name(target: &Target) -> String {
    match target {
        Target::Host => "host".into(),
        Target::Sandbox(name) => name.clone(),
        Target::Alias(alias) => alias.clone(),
        Target::Address(ip) => ip.to_string(),
    }
}
