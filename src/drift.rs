//! Drift: what the committed state says the kernel holds, against what it holds. Each
//! operation that would make the state from nothing is checked against the kernel as
//! read (links, masters, MTUs, addresses, routes, files, the firewall, forwarding); an
//! operation whose effect is missing is drift, and `restore` carries out exactly those.

use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::path::Path;

use serde::Serialize;

use crate::backend::netlink::netns_exists;
use crate::check::Causes;
use crate::model::{Model, ObjectKind};
use crate::observe::Space;
use crate::plan::{self, Op};

/// The kernel as read for one model: the host's namespace, each running sandbox's (or
/// `None`: its namespace is gone), the files, the firewall's elements and forwarding.
pub struct Observed {
    host: Space,
    sandboxes: BTreeMap<String, Option<Space>>,
    etc_dir: std::path::PathBuf,
    /// cnm's table's elements as `SET ELEMENT` with quotes taken out; `None`: no table.
    firewall: Option<BTreeSet<String>>,
    ip_forward: bool,
    /// Whether the sandboxes' namespaces were read too, or only found to exist.
    deep: bool,
}

/// One operation of the committed state whose effect the kernel lacks, and the object
/// it belongs to.
#[derive(Debug, Clone, Serialize)]
pub struct Missing {
    pub kind: Option<ObjectKind>,
    pub name: String,
    #[serde(skip)]
    pub op: Op,
    pub command: String,
}

impl Observed {
    /// The kernel as read for `model`: with `deep`, inside each sandbox's namespace too
    /// (which needs the privilege to enter it, and a moment per sandbox); without, the
    /// host's namespace, which namespaces exist, the files, the firewall and forwarding
    /// — what to check on every `cnm plan`.
    pub fn read(model: &Model, netns_dir: &Path, etc_dir: &Path, deep: bool) -> io::Result<Observed> {
        let host = Space::read(None)?;
        let mut sandboxes = BTreeMap::new();
        for sandbox in model.sandboxes.values().filter(|s| s.is_running()) {
            let Some(netns) = sandbox.netns() else { continue };
            let space = match netns_exists(netns_dir, netns) {
                true if deep => Some(Space::read(Some(&netns_dir.join(netns)))?),
                true => Some(Space::default()),
                false => None,
            };
            sandboxes.insert(netns.to_string(), space);
        }
        Ok(Observed {
            host,
            sandboxes,
            etc_dir: etc_dir.to_path_buf(),
            firewall: read_firewall(),
            ip_forward: crate::backend::netlink::nft::ip_forward().unwrap_or(false),
            deep,
        })
    }

    fn space(&self, netns: Option<&str>) -> Option<&Space> {
        match netns {
            None => Some(&self.host),
            Some(netns) => self.sandboxes.get(netns)?.as_ref(),
        }
    }

    /// Whether the kernel holds what `op` makes.
    fn holds(&self, op: &Op) -> bool {
        let link = |netns: Option<&str>, name: &str| self.space(netns).and_then(|s| s.links.get(name));
        if !self.deep {
            // Unread, a namespace that exists is taken to hold what it should.
            let inside = match op {
                Op::LinkUp {
                    netns: Some(netns), ..
                }
                | Op::AddAddress {
                    netns: Some(netns), ..
                } => Some(netns),
                Op::AddMacvlan { netns, .. } | Op::AddRoute { netns, .. } => Some(netns),
                _ => None,
            };
            if let Some(netns) = inside {
                return self.space(Some(netns)).is_some();
            }
            if let Op::AddVeth {
                link: host_end,
                netns,
                ..
            } = op
            {
                return link(None, host_end).is_some() && self.space(Some(netns)).is_some();
            }
        }
        match op {
            Op::AddNetns { netns } => self.space(Some(netns)).is_some(),
            Op::AddBridge { bridge, .. } => link(None, bridge).is_some(),
            // Whether it is on its bridge is asked apart (see [`missing`]).
            Op::AddVeth {
                link: host_end,
                peer,
                netns,
                ..
            } => link(None, host_end).is_some() && link(Some(netns), peer).is_some(),
            Op::AddMacvlan {
                link: name, netns, ..
            } => link(Some(netns), name).is_some(),
            Op::SetMaster { link: name, master } => {
                link(None, name).is_some_and(|l| l.master.as_deref() == Some(&**master))
            }
            Op::LinkUp { netns, link: name } => link(netns.as_deref(), name).is_some_and(|l| l.up),
            Op::AddAddress {
                netns,
                link: name,
                address,
            } => link(netns.as_deref(), name).is_some_and(|l| l.addresses.contains(address)),
            Op::AddRoute { netns, gateway, link } => self
                .space(Some(netns))
                .is_some_and(|s| s.has_default_route(*gateway, link)),
            Op::WriteFile { netns, file, content } => {
                std::fs::read_to_string(self.etc_dir.join(&**netns).join(file.to_string()))
                    .is_ok_and(|text| *content == *text)
            }
            Op::RouteLocalnet { link, on } => {
                let path = format!("/proc/sys/net/ipv4/conf/{link}/route_localnet");
                std::fs::read_to_string(path).is_ok_and(|v| (v.trim() == "1") == *on)
            }
            Op::AddFirewall => self.firewall.is_some(),
            Op::AddNftElement { set, element } => self
                .firewall
                .as_ref()
                .is_some_and(|elements| elements.contains(&format!("{set} {}", element.replace('"', "")))),
            Op::SetForwarding { on } => self.ip_forward == *on,
            deletion => unreachable!("{deletion:?} makes nothing"),
        }
    }
}

/// The operations that make `model` from nothing whose effect the kernel lacks, in
/// order, each with the object it belongs to.
pub fn missing(model: &Model, observed: &Observed, etc_dir: &Path) -> Vec<Missing> {
    let owners = Owners::new(model);
    // Host links made again: what goes on them is missing too, whatever is read now.
    // (A namespace deleted outside cnm leaves the host ends of its veths, attached and
    // up, until the kernel has removed them in the background.)
    let mut remade: BTreeSet<plan::Name> = BTreeSet::new();
    plan::between(&Model::empty(), model, &Causes::new())
        .steps
        .into_iter()
        .filter_map(|step| {
            let op = step.op;
            let on_remade = match &op {
                Op::SetMaster { link, .. }
                | Op::LinkUp { netns: None, link }
                | Op::AddAddress {
                    netns: None, link, ..
                }
                | Op::RouteLocalnet { link, .. } => remade.contains(link),
                _ => false,
            };
            if on_remade || !observed.holds(&op) {
                if let Op::AddVeth { link, .. } | Op::AddBridge { bridge: link, .. } = &op {
                    remade.insert(link.clone());
                }
                return Some(op);
            }
            // A veth that is there, but not on its bridge: attached again.
            match op {
                Op::AddVeth {
                    link,
                    master: Some(master),
                    ..
                } => {
                    let attach = Op::SetMaster { link, master };
                    (!observed.holds(&attach)).then_some(attach)
                }
                _ => None,
            }
        })
        .map(|op| {
            let (kind, name) = owners.of(&op);
            Missing {
                kind,
                name,
                command: op.command(etc_dir).to_string(),
                op,
            }
        })
        .collect()
}

/// Which object each kernel name belongs to.
struct Owners {
    bridges: BTreeMap<String, String>,
    host_ends: BTreeMap<String, String>,
    inside: BTreeMap<(String, String), String>,
}

impl Owners {
    fn new(model: &Model) -> Owners {
        let bridges = model
            .networks
            .values()
            .filter_map(|n| Some((n.bridge.clone()?, n.name.clone())))
            .collect();
        let host_ends = model
            .endpoints
            .values()
            .map(|e| (e.host_ifname.clone(), e.name.clone()))
            .collect();
        let inside = model
            .endpoints
            .values()
            .filter_map(|e| {
                let netns = model.sandboxes.get(e.sandbox.as_deref()?)?.netns()?;
                Some(((netns.to_string(), e.ifname.clone()?), e.name.clone()))
            })
            .collect();
        Owners {
            bridges,
            host_ends,
            inside,
        }
    }

    fn of(&self, op: &Op) -> (Option<ObjectKind>, String) {
        let host_link = |link: &str| match self.bridges.get(link) {
            Some(network) => (Some(ObjectKind::Network), network.clone()),
            None => (
                Some(ObjectKind::Endpoint),
                self.host_ends
                    .get(link)
                    .cloned()
                    .unwrap_or_else(|| link.to_string()),
            ),
        };
        let inside = |netns: &str, link: &str| match self.inside.get(&(netns.to_string(), link.to_string())) {
            Some(endpoint) => (Some(ObjectKind::Endpoint), endpoint.clone()),
            None => (Some(ObjectKind::Sandbox), netns.to_string()),
        };
        match op {
            Op::AddNetns { netns } | Op::WriteFile { netns, .. } => {
                (Some(ObjectKind::Sandbox), netns.to_string())
            }
            Op::AddBridge { bridge: link, .. }
            | Op::SetMaster { link, .. }
            | Op::RouteLocalnet { link, .. } => host_link(link),
            Op::AddVeth { link, .. } => host_link(link),
            Op::AddMacvlan { link, netns, .. } | Op::AddRoute { link, netns, .. } => inside(netns, link),
            Op::LinkUp { netns, link } | Op::AddAddress { netns, link, .. } => match netns {
                Some(netns) => inside(netns, link),
                None => host_link(link),
            },
            Op::AddFirewall | Op::AddNftElement { .. } => (None, "firewall".into()),
            Op::SetForwarding { .. } => (None, "host".into()),
            _ => (None, String::new()),
        }
    }
}

/// Whether cnm's nftables table exists.
pub fn firewall_table_exists() -> bool {
    read_firewall().is_some()
}

/// cnm's nftables table as `SET ELEMENT` lines, quotes taken out; `None` if the table is
/// not there (or nft is not).
fn read_firewall() -> Option<BTreeSet<String>> {
    let out = std::process::Command::new("nft")
        .args(["-j", "list", "table", "inet", "cnm"])
        .stderr(std::process::Stdio::null())
        .output()
        .ok()
        .filter(|o| o.status.success())?;
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).ok()?;
    let mut elements = BTreeSet::new();
    for item in json["nftables"].as_array()? {
        let Some(set) = item.get("set").or_else(|| item.get("map")) else {
            continue;
        };
        let name = set["name"].as_str().unwrap_or_default();
        for element in set["elem"].as_array().into_iter().flatten() {
            elements.insert(format!("{name} {}", nft_text(element)));
        }
    }
    Some(elements)
}

/// An element of `nft -j` output in nft's own words, without quotes.
fn nft_text(value: &serde_json::Value) -> String {
    use serde_json::Value;
    match value {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        // A map's element: [key, value].
        Value::Array(pair) => pair.iter().map(nft_text).collect::<Vec<_>>().join(" : "),
        Value::Object(object) => {
            if let Some(prefix) = object.get("prefix") {
                format!("{}/{}", nft_text(&prefix["addr"]), nft_text(&prefix["len"]))
            } else if let Some(parts) = object.get("concat").and_then(Value::as_array) {
                parts.iter().map(nft_text).collect::<Vec<_>>().join(" . ")
            } else if let Some(element) = object.get("elem") {
                nft_text(&element["val"])
            } else {
                value.to_string()
            }
        }
        other => other.to_string(),
    }
}
