//! Expectations: `expect SANDBOX reaches|cannot reach TARGET` against the committed
//! state. The target is resolved to addresses (a sandbox's, an alias's endpoint's, an
//! address, or `host`: the gateways of the sandbox's networks), and each address is
//! probed from inside the sandbox's namespace, all at once: a failing expectation costs
//! its timeout, not one per address.
//!
//! Before probing, an expectation waits (up to [`READY_WITHIN`]) for the links its packets
//! cross to carry traffic. The kernel finishes bringing a link up in the background: a
//! veth transmits, and a bridge port forwards, only once the kernel has handled its
//! carrier. A packet sent before is dropped, and an ARP request dropped so is sent again
//! only a second later: right after an apply, `reaches` could time out, and `cannot
//! reach` pass, on a network that a moment later behaves otherwise.

use std::collections::{BTreeMap, HashSet};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::check::Target;
use crate::model::{Driver, Mode, Model, Protocol};
use crate::observe::{self, NotReady};
use crate::probe::{self, Answer, Via};

/// How long an expectation waits, at most, for the links it crosses to carry traffic.
pub const READY_WITHIN: Duration = Duration::from_secs(2);

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
    pub fn check(&self, model: &Model, netns_dir: &Path, ready: &mut Ready) -> Result<Verdict, String> {
        let netns = namespace(model, netns_dir, self.sandbox)?;
        let addresses = self.addresses(model)?;
        let unready = ready.wait(self.crossed(model, netns_dir)?);
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
        let passed = reached == self.reaches;
        if !passed && !unready.is_empty() {
            found.push(format!(
                "not carrying traffic after {} s: {}",
                READY_WITHIN.as_secs(),
                unready.join(", ")
            ));
        }
        let how = match self.port {
            Some((port, protocol)) => format!("{protocol} port {port}"),
            None => "ping".to_string(),
        };
        let list: Vec<String> = addresses.iter().map(IpAddr::to_string).collect();
        Ok(Verdict {
            passed,
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

    /// The links, by namespace (`None`: the one cnm runs in), that packets between the
    /// sandbox and its target cross: each of their endpoints' interfaces, and on a bridge
    /// network its host end; for a target outside the sandboxes, the bridges too.
    fn crossed(&self, model: &Model, netns_dir: &Path) -> Result<Vec<(Option<PathBuf>, String)>, String> {
        let mut sandboxes = vec![owner(model, self.sandbox)?];
        let beyond = match self.target {
            Target::Sandbox(name) => {
                sandboxes.push(owner(model, name)?);
                false
            }
            Target::Alias(alias) => {
                for endpoint in model.endpoints.values() {
                    if let (true, Some(sandbox)) = (endpoint.aliases.contains(alias), &endpoint.sandbox) {
                        sandboxes.push(owner(model, sandbox)?);
                    }
                }
                false
            }
            Target::Host | Target::Address(_) => true,
        };
        let mut links = Vec::new();
        for (nth, &sandbox) in sandboxes.iter().enumerate() {
            let Some(netns) = namespace(model, netns_dir, sandbox)? else {
                continue;
            };
            let joined = model
                .endpoints
                .values()
                .filter(|e| e.sandbox.as_deref() == Some(sandbox));
            for endpoint in joined {
                let Some(ifname) = &endpoint.ifname else { continue };
                links.push((Some(netns.clone()), ifname.clone()));
                let network = &model.networks[&endpoint.network];
                if network.driver == Driver::Bridge {
                    links.push((None, endpoint.host_ifname.clone()));
                    if let (true, 0, Some(bridge)) = (beyond, nth, &network.bridge) {
                        links.push((None, bridge.clone()));
                    }
                }
            }
        }
        Ok(links)
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

/// The links found carrying traffic, so that each is waited for once in a run of
/// expectations.
#[derive(Debug, Default)]
pub struct Ready {
    carrying: HashSet<(Option<PathBuf>, String)>,
}

impl Ready {
    /// Waits, up to [`READY_WITHIN`], for `links` to carry traffic, each namespace read
    /// on a thread of its own; the ones that do not, in words (`veth1a2b: no carrier`).
    /// A namespace that cannot be read is left to the probe, which will say why.
    fn wait(&mut self, links: Vec<(Option<PathBuf>, String)>) -> Vec<String> {
        let mut by_namespace: BTreeMap<Option<PathBuf>, Vec<String>> = BTreeMap::new();
        for (netns, link) in links {
            if !self.carrying.contains(&(netns.clone(), link.clone())) {
                by_namespace.entry(netns).or_default().push(link);
            }
        }
        let deadline = Instant::now() + READY_WITHIN;
        let results: Vec<_> = std::thread::scope(|scope| {
            let waits: Vec<_> = by_namespace
                .iter()
                .map(|(netns, links)| {
                    let links = links.clone();
                    scope.spawn(move || observe::await_traffic(netns.as_deref(), links, deadline))
                })
                .collect();
            waits
                .into_iter()
                .map(|wait| wait.join().ok().and_then(Result::ok))
                .collect()
        });
        let mut unready = Vec::new();
        for ((netns, links), result) in by_namespace.into_iter().zip(results) {
            let Some(not_carrying) = result else { continue };
            for link in links {
                match not_carrying.iter().find(|(name, _)| *name == link) {
                    Some((_, why)) => unready.push(describe(netns.as_deref(), &link, *why)),
                    None => {
                        self.carrying.insert((netns.clone(), link));
                    }
                }
            }
        }
        unready
    }
}

/// `eth0 in a: no carrier`, or `veth1a2b: down` for a link of the host.
fn describe(netns: Option<&Path>, link: &str, why: NotReady) -> String {
    match netns.and_then(Path::file_name) {
        Some(sandbox) => format!("{link} in {}: {why}", sandbox.to_string_lossy()),
        None => format!("{link}: {why}"),
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
