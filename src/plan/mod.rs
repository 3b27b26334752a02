//! The planner: the difference between the committed model and the desired one, as the
//! objects that change and the ordered kernel operations that change them, each with
//! the operations that undo it. Pure and deterministic: the same two models always give
//! the same plan, byte for byte.
//!
//! Order: what goes away first (endpoints, sandboxes, files, networks), then what
//! comes (networks, sandboxes, endpoints, files), each in model order. A sandbox's
//! namespace is deleted whole: the veths inside go with it, so they get no steps of
//! their own, and the namespace's undo recreates them.

pub mod firewall;
mod kernel;
pub mod op;
pub mod render;
mod text;
mod words;

use std::borrow::Cow;
use std::collections::BTreeMap;

use rustc_hash::FxHashMap;
use serde::Serialize;

use crate::check::{Causes, Checked};
use crate::model::{Endpoint, Model, Network, ObjectKind, Sandbox};
use crate::syntax::Span;
pub use kernel::hosts_mark_owner;
use kernel::Kernel;
pub use op::{EtcFile, Name, Op};
pub use text::FileText;

/// The files a model's sandboxes show in `/etc`, rendered on demand: what the journal
/// leaves out of the plans it records, and renders again to undo them.
pub struct EtcFiles<'m>(Kernel<'m>);

impl<'m> EtcFiles<'m> {
    pub fn new(model: &'m Model) -> EtcFiles<'m> {
        EtcFiles(Kernel::new(model))
    }

    /// The file a sandbox (its namespace's directory is named after it) shows, if the
    /// sandbox is running and has that file.
    pub fn get(&self, sandbox: &str, file: EtcFile) -> Option<FileText> {
        let sandbox = self.0.model.sandboxes.get(sandbox)?;
        let files = self.0.files(sandbox);
        files.into_iter().find(|(f, _)| *f == file).map(|(_, text)| text)
    }
}

#[derive(Debug)]
pub struct Plan {
    pub changes: Vec<Change>,
    pub steps: Vec<Step>,
}

impl Plan {
    pub fn is_empty(&self) -> bool {
        self.changes.is_empty() && self.steps.is_empty()
    }

    pub fn count(&self, action: ChangeAction) -> usize {
        self.changes.iter().filter(|c| c.action == action).count()
    }
}

/// One kernel operation, what undoes it, and the statement that called for it.
#[derive(Debug)]
pub struct Step {
    pub op: Op,
    pub undo: Undo,
    pub cause: Option<Span>,
}

impl Step {
    /// The operations that undo this step, in order.
    pub fn undo_ops(&self) -> Cow<'_, [Op]> {
        match &self.undo {
            Undo::Inverse => Cow::Owned(vec![self.op.inverse()]),
            Undo::Ops(ops) => Cow::Borrowed(ops),
        }
    }
}

/// What undoes a step.
#[derive(Debug, Clone)]
pub enum Undo {
    /// Its operation's inverse (see [`Op::inverse`]), as for most steps. Worked out when
    /// needed, not kept: a large plan has hundreds of thousands of steps.
    Inverse,
    /// These operations, in order.
    Ops(Vec<Op>),
}

impl From<Vec<Op>> for Undo {
    fn from(ops: Vec<Op>) -> Undo {
        Undo::Ops(ops)
    }
}

/// One object that the plan adds, changes or removes.
#[derive(Debug)]
pub struct Change {
    pub action: ChangeAction,
    pub kind: ObjectKind,
    pub name: String,
    pub detail: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ChangeAction {
    Add,
    Change,
    Remove,
}

/// The plan that takes the kernel from `committed` to what a checked script asks for.
pub fn plan(committed: &Model, desired: &Checked) -> Plan {
    between(committed, &desired.model, &desired.causes)
}

/// The plan between any two models; `causes` names the statement behind each object.
pub fn between(committed: &Model, desired: &Model, causes: &Causes) -> Plan {
    // A script applied again: nothing to compare object by object (a no-op re-apply of
    // 1,000 sandboxes spent half its time here, rendering both sides' hosts files).
    if committed == desired {
        return Plan {
            changes: Vec::new(),
            steps: Vec::new(),
        };
    }
    let before = Kernel::new(committed);
    let after = Kernel::new(desired);
    let mut planner = Planner {
        before: &before,
        after: &after,
        causes,
        hosts_causes: hosts_causes(&before, &after, causes),
        steps: Vec::new(),
    };
    planner.removals();
    planner.firewall();
    planner.network_removals();
    planner.additions();
    Plan {
        changes: changes(committed, desired, &before, &after),
        steps: planner.steps,
    }
}

struct Planner<'a, 'm> {
    before: &'a Kernel<'m>,
    after: &'a Kernel<'m>,
    causes: &'a Causes,
    /// For each network, the first statement that changed an entry of the hosts files
    /// of its sandboxes.
    hosts_causes: FxHashMap<&'m str, Span>,
    steps: Vec<Step>,
}

/// For each network, the first statement that changed what one of its endpoints adds
/// to the hosts files of the sandboxes on it.
fn hosts_causes<'m>(before: &Kernel<'m>, after: &Kernel<'m>, causes: &Causes) -> FxHashMap<&'m str, Span> {
    let mut first: FxHashMap<&str, Span> = FxHashMap::default();
    for (this, other) in [(before, after), (after, before)] {
        for endpoint in this.model.endpoints.values() {
            let counterpart = other
                .model
                .endpoints
                .get(&endpoint.name)
                .filter(|e| e.network == endpoint.network);
            if this.hosts_entry(endpoint) == counterpart.and_then(|e| other.hosts_entry(e)) {
                continue;
            }
            let cause = causes
                .latest(ObjectKind::Endpoint, &endpoint.name)
                .or_else(|| causes.latest(ObjectKind::Sandbox, endpoint.sandbox.as_deref()?));
            if let Some(cause) = cause {
                let entry = first.entry(endpoint.network.as_str()).or_insert(cause);
                *entry = (*entry).min(cause);
            }
        }
    }
    first
}

/// An endpoint's ops but its default routes, which can change on their own.
fn without_route(ops: &[Op]) -> Vec<&Op> {
    ops.iter()
        .filter(|op| !matches!(op, Op::AddRoute { .. }))
        .collect()
}

impl Planner<'_, '_> {
    /// The statement behind the operations that remove or change an object: the last
    /// one about it.
    fn cause(&self, kind: ObjectKind, name: &str) -> Option<Span> {
        self.causes.latest(kind, name)
    }

    /// The statement behind the operations that make an object: the one that made it,
    /// when the committed model does not have it; else the last one about it (`start`).
    fn making_cause(&self, kind: ObjectKind, name: &str) -> Option<Span> {
        let committed = &self.before.model;
        let exists = match kind {
            ObjectKind::Network => committed.networks.contains_key(name),
            ObjectKind::Sandbox => committed.sandboxes.contains_key(name),
            ObjectKind::Endpoint => committed.endpoints.contains_key(name),
        };
        if exists {
            self.causes.latest(kind, name)
        } else {
            self.causes.maker(kind, name)
        }
    }

    /// An endpoint's statement, else its sandbox's (`start`, `stop`, `remove sandbox`).
    fn endpoint_cause(&self, endpoint: &Endpoint) -> Option<Span> {
        self.cause(ObjectKind::Endpoint, &endpoint.name)
            .or_else(|| self.cause(ObjectKind::Sandbox, endpoint.sandbox.as_deref()?))
    }

    /// The statement that makes an endpoint's interface, else its sandbox's (`start`).
    fn endpoint_making_cause(&self, endpoint: &Endpoint) -> Option<Span> {
        self.making_cause(ObjectKind::Endpoint, &endpoint.name)
            .or_else(|| self.cause(ObjectKind::Sandbox, endpoint.sandbox.as_deref()?))
    }

    /// The statement behind a sandbox's new files: the one that made it (or started it
    /// again); else the first statement that joined or left one of its own endpoints,
    /// or changed an entry of the hosts files on one of its networks (a peer came,
    /// went or took an alias).
    fn files_cause(&self, sandbox: &str) -> Option<Span> {
        if !self.before.model.sandboxes.contains_key(sandbox) || self.netns_dies(sandbox) {
            return self.making_cause(ObjectKind::Sandbox, sandbox);
        }
        let own = || {
            [self.before, self.after]
                .into_iter()
                .flat_map(|k| k.endpoints_of(sandbox))
        };
        let peers = own().filter_map(|e| self.hosts_causes.get(e.network.as_str()).copied());
        let joins = own().filter_map(|e| self.cause(ObjectKind::Endpoint, &e.name));
        peers
            .chain(joins)
            .min()
            .or_else(|| self.cause(ObjectKind::Sandbox, sandbox))
    }

    fn step(&mut self, op: Op, undo: impl Into<Undo>, cause: Option<Span>) {
        self.steps.push(Step {
            op,
            undo: undo.into(),
            cause,
        });
    }

    /// Each op as a step undone by its inverse.
    fn create(&mut self, ops: Vec<Op>, cause: Option<Span>) {
        for op in ops {
            self.step(op, Undo::Inverse, cause);
        }
    }

    fn desired_endpoint_ops(&self, name: &str) -> Vec<Op> {
        self.after
            .model
            .endpoints
            .get(name)
            .map_or_else(Vec::new, |e| self.after.endpoint_ops(e))
    }

    /// Whether a sandbox's namespace exists now and is deleted by this plan.
    fn netns_dies(&self, sandbox: &str) -> bool {
        self.before.live_netns(sandbox).is_some()
            && self.after.live_netns(sandbox) != self.before.live_netns(sandbox)
    }

    fn removals(&mut self) {
        let (before, after) = (self.before, self.after);
        for old in before.model.endpoints.values() {
            let old_ops = before.endpoint_ops(old);
            if old_ops.is_empty() {
                continue;
            }
            let new_ops = self.desired_endpoint_ops(&old.name);
            let cause = self.endpoint_cause(old);
            if without_route(&old_ops) == without_route(&new_ops) {
                for route in before.default_routes(old) {
                    if !new_ops.contains(&route) {
                        self.step(route.inverse(), vec![route], cause);
                    }
                }
                continue;
            }
            let sandbox = old.sandbox.as_deref().expect("an endpoint with ops is joined");
            if self.netns_dies(sandbox) {
                continue;
            }
            self.step(delete_link(old, &old_ops), old_ops, cause);
        }
        for old in before.model.sandboxes.values() {
            let old_ops = before.sandbox_ops(old);
            let new_ops = after
                .model
                .sandboxes
                .get(&old.name)
                .map_or_else(Vec::new, |s| after.sandbox_ops(s));
            if old_ops.is_empty() || old_ops == new_ops {
                continue;
            }
            // The namespace takes its interfaces along; undoing recreates them all.
            let mut undo = old_ops;
            let mut links = Vec::new();
            for endpoint in before.endpoints_of(&old.name) {
                let ops = before.endpoint_ops(endpoint);
                if let Some(Op::AddVeth { link, .. }) = ops.first() {
                    links.push(link.clone());
                }
                undo.extend(ops);
            }
            let netns = Name::from(old.netns().expect("a sandbox with ops has a namespace"));
            let cause = self.cause(ObjectKind::Sandbox, &old.name);
            self.step(Op::DelNetns { netns, links }, undo, cause);
        }
        // After the namespaces: the kernel cleans them up in the background while the
        // files go (in a traced destroy of 500 sandboxes, the files took 0.1 s before
        // the first namespace went).
        for old in before.model.sandboxes.values() {
            let new = after.model.sandboxes.get(&old.name);
            let new_files = new.map_or_else(Vec::new, |s| after.files(s));
            for (file, content) in before.files(old) {
                if !new_files.iter().any(|(f, _)| *f == file) {
                    let netns = Name::from(old.name.as_str());
                    let undo = vec![Op::WriteFile {
                        netns: netns.clone(),
                        file,
                        content,
                    }];
                    self.step(
                        Op::RemoveFile { netns, file },
                        undo,
                        self.cause(ObjectKind::Sandbox, &old.name),
                    );
                }
            }
        }
    }

    /// The bridges last, after the firewall's changes: deleting a bridge waits for the
    /// kernel to finish cleaning up the namespaces deleted before it (in a destroy of
    /// 500 sandboxes, 0.2 s), and the firewall's changes need not wait with it.
    fn network_removals(&mut self) {
        let (before, after) = (self.before, self.after);
        for old in before.model.networks.values() {
            let old_ops = before.network_ops(old);
            let new_ops = after
                .model
                .networks
                .get(&old.name)
                .map_or_else(Vec::new, |n| after.network_ops(n));
            if old_ops.is_empty() || old_ops == new_ops {
                continue;
            }
            let bridge = old.bridge.as_deref().expect("a network with ops has a bridge");
            let op = Op::DelLink {
                netns: None,
                link: bridge.into(),
            };
            self.step(op, old_ops, self.cause(ObjectKind::Network, &old.name));
        }
        // Forwarding goes off once the bridges are gone, when the kernel has cleaned up:
        // it takes a write to ip_forward only while no one else holds its lock, and until
        // then has the writer try again at once, a CPU busy the whole time (0.25 s beside
        // the cleanup of 500 namespaces, perf).
        if before.model.ip_forward_enabled && !after.model.ip_forward_enabled {
            let cause = self.removed_network_cause();
            self.step(
                Op::SetForwarding { on: false },
                vec![Op::SetForwarding { on: true }],
                cause,
            );
        }
    }

    /// The firewall's changes, between the removals and the additions: isolation is in
    /// place before a new bridge exists, and forwarding goes on only once it is. An old
    /// bridge has lost its sandboxes by then.
    fn firewall(&mut self) {
        let old = firewall::elements(self.before);
        let new = firewall::elements(self.after);
        let add = |element: &firewall::Element| Op::AddNftElement {
            set: element.set,
            element: element.text.clone(),
        };
        match (old.is_empty(), new.is_empty()) {
            (false, true) => {
                let undo: Vec<Op> = std::iter::once(Op::AddFirewall)
                    .chain(old.iter().map(add))
                    .collect();
                let cause = self.removed_network_cause();
                self.step(Op::DelFirewall, undo, cause);
            }
            (true, false) => {
                let (kind, name) = &new[0].owner;
                let cause = self.making_cause(*kind, name);
                self.step(Op::AddFirewall, vec![Op::DelFirewall], cause);
            }
            _ => {}
        }
        if !old.is_empty() && !new.is_empty() {
            for element in old
                .iter()
                .filter(|e| !new.iter().any(|n| n.set == e.set && n.text == e.text))
            {
                let (kind, name) = &element.owner;
                let op = Op::DelNftElement {
                    set: element.set,
                    element: element.text.clone(),
                };
                self.step(op, vec![add(element)], self.cause(*kind, name));
            }
        }
        for element in new
            .iter()
            .filter(|e| !old.iter().any(|o| o.set == e.set && o.text == e.text))
        {
            let (kind, name) = &element.owner;
            let cause = match kind {
                ObjectKind::Network => self.making_cause(*kind, name),
                _ => self.cause(*kind, name),
            };
            self.create(vec![add(element)], cause);
        }
        let (was_on, on) = (
            self.before.model.ip_forward_enabled,
            self.after.model.ip_forward_enabled,
        );
        if on && !was_on {
            let opened = self.after.model.networks.values().find(|n| {
                !self.before.model.networks.contains_key(&n.name) && firewall::needs_forwarding_for(n)
            });
            let cause = opened.and_then(|n| self.making_cause(ObjectKind::Network, &n.name));
            self.create(vec![Op::SetForwarding { on: true }], cause);
        }
    }

    /// The statement that removed the first network the desired model no longer has.
    fn removed_network_cause(&self) -> Option<Span> {
        self.before
            .model
            .networks
            .keys()
            .find(|name| !self.after.model.networks.contains_key(*name))
            .and_then(|name| self.cause(ObjectKind::Network, name))
    }

    fn additions(&mut self) {
        let (before, after) = (self.before, self.after);
        // Room for a new sandbox's usual steps (namespace, loopback, two files) and an
        // endpoint's (veth, master, host end up, address, eth0 up, route): a plan of
        // 10,000 sandboxes otherwise copies its growing list of steps some 15 times.
        let model = &after.model;
        self.steps
            .reserve(4 * model.sandboxes.len() + 6 * model.endpoints.len());
        for new in after.model.networks.values() {
            let new_ops = after.network_ops(new);
            let old_ops = before
                .model
                .networks
                .get(&new.name)
                .map_or_else(Vec::new, |n| before.network_ops(n));
            if new_ops != old_ops {
                self.create(new_ops, self.making_cause(ObjectKind::Network, &new.name));
            }
        }
        for new in after.model.sandboxes.values() {
            let new_ops = after.sandbox_ops(new);
            let old_ops = before
                .model
                .sandboxes
                .get(&new.name)
                .map_or_else(Vec::new, |s| before.sandbox_ops(s));
            if new_ops != old_ops {
                self.create(new_ops, self.making_cause(ObjectKind::Sandbox, &new.name));
            }
        }
        for new in after.model.endpoints.values() {
            let new_ops = after.endpoint_ops(new);
            let old_ops = before
                .model
                .endpoints
                .get(&new.name)
                .map_or_else(Vec::new, |e| before.endpoint_ops(e));
            let cause = self.endpoint_making_cause(new);
            // A namespace made again (a restarted sandbox) starts with no interfaces.
            let recreated = new.sandbox.as_deref().is_some_and(|s| self.netns_dies(s));
            if without_route(&new_ops) != without_route(&old_ops) || recreated {
                self.create(new_ops, cause);
            } else {
                let mut routes = after.default_routes(new);
                routes.retain(|route| !old_ops.contains(route));
                self.create(routes, cause);
            }
        }
        for new in after.model.sandboxes.values() {
            let old_files = match before.model.sandboxes.get(&new.name) {
                Some(old) if !self.netns_dies(&old.name) => before.files(old),
                _ => Vec::new(),
            };
            for (file, content) in after.files(new) {
                let old = old_files.iter().find(|(f, _)| *f == file).map(|(_, c)| c);
                if old == Some(&content) {
                    continue;
                }
                let netns = Name::from(new.name.as_str());
                let undo = match old {
                    Some(old) => Op::WriteFile {
                        netns: netns.clone(),
                        file,
                        content: old.clone(),
                    },
                    None => Op::RemoveFile {
                        netns: netns.clone(),
                        file,
                    },
                };
                let cause = self.files_cause(&new.name);
                self.step(Op::WriteFile { netns, file, content }, vec![undo], cause);
            }
        }
    }
}

/// Deleting an endpoint is deleting its link: the host end of a veth (which takes the
/// peer along), or the macvlan inside the sandbox.
fn delete_link(endpoint: &Endpoint, ops: &[Op]) -> Op {
    match ops.first() {
        Some(Op::AddMacvlan { link, netns, .. }) => Op::DelLink {
            netns: Some(netns.clone()),
            link: link.clone(),
        },
        _ => Op::DelLink {
            netns: None,
            link: endpoint.host_ifname.as_str().into(),
        },
    }
}

/// The objects that differ between the two models, networks first, each in model order.
fn changes(committed: &Model, desired: &Model, before: &Kernel, after: &Kernel) -> Vec<Change> {
    // Room for a plan that makes everything: a first apply of thousands of sandboxes
    // otherwise copies the list a dozen times as it grows.
    let mut changes =
        Vec::with_capacity(desired.networks.len() + desired.sandboxes.len() + desired.endpoints.len());
    diff(
        &mut changes,
        ObjectKind::Network,
        &committed.networks,
        &desired.networks,
        network_detail,
        |_, _| "replaced".to_string(),
    );
    diff(
        &mut changes,
        ObjectKind::Sandbox,
        &committed.sandboxes,
        &desired.sandboxes,
        sandbox_detail,
        |old, new| sandbox_change(old, new, before, after),
    );
    diff(
        &mut changes,
        ObjectKind::Endpoint,
        &committed.endpoints,
        &desired.endpoints,
        endpoint_detail,
        endpoint_change,
    );
    // A sandbox whose only change is its hosts file (a peer's alias came or went).
    let listed: Vec<String> = changes
        .iter()
        .filter(|c| c.kind == ObjectKind::Sandbox)
        .map(|c| c.name.clone())
        .collect();
    for new in desired.sandboxes.values() {
        if let Some(old) = committed.sandboxes.get(&new.name) {
            if old == new && !listed.contains(&new.name) && before.files(old) != after.files(new) {
                changes.push(Change {
                    action: ChangeAction::Change,
                    kind: ObjectKind::Sandbox,
                    name: new.name.clone(),
                    detail: "hosts file".into(),
                });
            }
        }
    }
    changes
}

fn diff<T: PartialEq>(
    changes: &mut Vec<Change>,
    kind: ObjectKind,
    old: &crate::model::Table<T>,
    new: &crate::model::Table<T>,
    detail: fn(&T) -> String,
    changed: impl Fn(&T, &T) -> String,
) {
    for (name, value) in old {
        if !new.contains_key(name) {
            changes.push(Change {
                action: ChangeAction::Remove,
                kind,
                name: name.clone(),
                detail: detail(value),
            });
        }
    }
    for (name, value) in new {
        let (action, detail) = match old.get(name) {
            None => (ChangeAction::Add, detail(value)),
            Some(previous) if previous != value => (ChangeAction::Change, changed(previous, value)),
            Some(_) => continue,
        };
        changes.push(Change {
            action,
            kind,
            name: name.clone(),
            detail,
        });
    }
}

fn network_detail(n: &Network) -> String {
    let mut detail = format!("{}, {} gateway {}", n.driver, n.subnet, n.gateway);
    if let Some(bridge) = &n.bridge {
        detail = format!("bridge {bridge}, {} gateway {}", n.subnet, n.gateway);
    }
    if let Some(parent) = &n.parent {
        detail.push_str(&format!(", parent {parent}"));
    }
    if let Some(v6) = n.ipv6 {
        detail.push_str(&format!(", {} gateway {}", v6.subnet, v6.gateway));
    }
    if n.internal {
        detail.push_str(", internal");
    }
    detail
}

fn sandbox_detail(s: &Sandbox) -> String {
    use std::fmt::Write;
    // Pushed piece by piece: a plan of 10,000 sandboxes makes 10,000 of these.
    let mut detail = String::with_capacity(48);
    let _ = write!(detail, "mode {}", s.mode);
    if let Some(netns) = s.netns() {
        detail.push_str(", netns ");
        detail.push_str(netns);
    }
    if !s.is_running() {
        detail.push_str(", stopped");
    }
    detail
}

fn sandbox_change(old: &Sandbox, new: &Sandbox, before: &Kernel, after: &Kernel) -> String {
    let mut parts = Vec::new();
    if old.status != new.status {
        let word = |running: bool| if running { "running" } else { "stopped" };
        parts.push(format!("{} → {}", word(old.is_running()), word(new.is_running())));
    }
    if old.published != new.published {
        let ports: Vec<String> = new
            .published
            .iter()
            .map(|p| format!("{}:{}/{}", p.host_port, p.port, p.protocol))
            .collect();
        parts.push(format!(
            "publishes {}",
            if ports.is_empty() {
                "nothing".into()
            } else {
                ports.join(" ")
            }
        ));
    }
    if before.files(old) != after.files(new) && new.is_running() {
        parts.push("hosts file".into());
    }
    if parts.is_empty() {
        parts.push("replaced".into());
    }
    parts.join(", ")
}

fn endpoint_detail(e: &Endpoint) -> String {
    // Pushed piece by piece: a plan of 10,000 endpoints makes 10,000 of these.
    let mut detail = String::with_capacity(96);
    if let (Some(sandbox), Some(ifname)) = (&e.sandbox, &e.ifname) {
        detail.push_str(sandbox);
        detail.push(' ');
        detail.push_str(ifname);
        detail.push_str(" on ");
        detail.push_str(&e.network);
    } else {
        detail.push_str("on ");
        detail.push_str(&e.network);
        detail.push_str(", not joined");
    }
    detail.push_str(", ");
    words::push_ipv4(&mut detail, e.ip);
    if let Some(ip) = e.ipv6 {
        detail.push(' ');
        words::push_ip(&mut detail, ip.into());
    }
    detail.push_str(", mac ");
    words::push_mac(&mut detail, e.mac);
    for (i, alias) in e.aliases.iter().enumerate() {
        detail.push_str(if i == 0 { ", alias " } else { " " });
        detail.push_str(alias);
    }
    detail
}

fn endpoint_change(old: &Endpoint, new: &Endpoint) -> String {
    let mut parts = Vec::new();
    if old.sandbox != new.sandbox {
        parts.push(match &new.sandbox {
            Some(sandbox) => format!("joins {sandbox}"),
            None => "leaves its sandbox".to_string(),
        });
    }
    if old.default_route != new.default_route {
        parts.push(if new.default_route {
            "carries the default route".to_string()
        } else {
            "no longer carries the default route".to_string()
        });
    }
    if parts.is_empty() {
        parts.push(format!("replaced ({})", endpoint_detail(new)));
    }
    parts.join(", ")
}

/// Counts by action, for summaries.
pub fn summary(plan: &Plan) -> BTreeMap<&'static str, usize> {
    BTreeMap::from([
        ("add", plan.count(ChangeAction::Add)),
        ("change", plan.count(ChangeAction::Change)),
        ("remove", plan.count(ChangeAction::Remove)),
    ])
}
