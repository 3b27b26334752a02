//! The committed model as a `.cnm` script: applied to a host without cnm objects, it
//! recreates the same networks, sandboxes and endpoints — the same ids (they derive from
//! names), addresses, MACs, interface names and default routes. `cnm export` prints it,
//! and the REPL's `save` writes it.
//!
//! Addresses and MACs are written out, with one exception the language imposes: a
//! `bridge`-mode sandbox joins the default network in its own `sandbox` statement,
//! which takes no address. Where the address that join would be allocated is not the
//! recorded one, the script disconnects the sandbox and connects it again with its
//! addresses given. Which those are is found by checking the script itself.

use std::collections::BTreeSet;
use std::fmt::Write;

use crate::check::values::mac_for;
use crate::model::{bridge_name, endpoint_name, Endpoint, Mode, Model, Status, DEFAULT_NETWORK};
use crate::syntax::Sources;

const HEADER: &str = "\
# Exported by `cnm export`: the committed state as a script. Applied to a host without
# cnm objects, it recreates these networks, sandboxes and endpoints with the same ids,
# addresses, MACs, interface names and default routes.
";

/// The model as a script that recreates it, deterministically.
pub fn script(model: &Model) -> String {
    // Bridge-mode sandboxes whose join to the default network must be written out.
    let mut rejoined: BTreeSet<&str> = model
        .sandboxes
        .values()
        .filter(|s| s.mode == Mode::Bridge && !joins_as_declared(model, &s.name))
        .map(|s| s.name.as_str())
        .collect();
    loop {
        let text = render(model, &rejoined);
        let implicit = model
            .sandboxes
            .values()
            .filter(|s| s.mode == Mode::Bridge && !rejoined.contains(s.name.as_str()));
        if implicit.clone().next().is_none() {
            return text;
        }
        // Allocation decides the address of each implicit join: check the script, and
        // write out the joins that did not come out as recorded. Each round writes out
        // at least one more, so this ends.
        let Some(restored) = model_of(&text) else {
            return text;
        };
        let wrong: Vec<&str> = implicit
            .map(|s| s.name.as_str())
            .filter(|s| {
                let name = endpoint_name(s, DEFAULT_NETWORK);
                restored.endpoints.get(&name) != model.endpoints.get(&name)
            })
            .collect();
        if wrong.is_empty() {
            return text;
        }
        rejoined.extend(wrong);
    }
}

/// What a script makes on an empty host; `None` if it does not check.
fn model_of(text: &str) -> Option<Model> {
    let mut sources = Sources::default();
    let file = sources.add("<export>", text);
    crate::check::check(&mut sources, &[file], &Model::empty())
        .ok()
        .map(|checked| checked.model)
}

/// Whether a bridge-mode sandbox's join to the default network looks as `sandbox NAME`
/// makes it (the address aside): `eth0`, no aliases, the derived MAC, and the default
/// route unless the network is internal.
fn joins_as_declared(model: &Model, sandbox: &str) -> bool {
    let (Some(network), Some(e)) = (
        model.networks.get(DEFAULT_NETWORK),
        model.endpoints.get(&endpoint_name(sandbox, DEFAULT_NETWORK)),
    ) else {
        return false;
    };
    e.sandbox.as_deref() == Some(sandbox)
        && e.ifname.as_deref() == Some("eth0")
        && e.aliases.is_empty()
        && e.mac == mac_for(e.ip)
        && e.default_route != network.internal
}

fn render(model: &Model, rejoined: &BTreeSet<&str>) -> String {
    let mut out = String::from(HEADER);
    if !model.networks.is_empty() {
        out.push('\n');
    }
    for n in model.networks.values() {
        let _ = write!(out, "network {}", n.name);
        if n.driver != crate::model::Driver::Bridge {
            let _ = write!(out, " driver {}", n.driver);
        }
        let _ = write!(out, " subnet {} gateway {}", n.subnet, n.gateway);
        if let Some(range) = n.ip_range {
            let _ = write!(out, " ip-range {range}");
        }
        if let Some(v6) = n.ipv6 {
            let _ = write!(out, " ipv6 {}", v6.subnet);
        }
        if let Some(bridge) = n.bridge.as_ref().filter(|b| **b != bridge_name(&n.name, &n.id)) {
            let _ = write!(out, " bridge {bridge}");
        }
        let _ = write!(out, " mtu {}", n.mtu);
        if n.internal {
            out.push_str(" internal");
        }
        if let Some(parent) = &n.parent {
            let _ = write!(out, " parent {parent}");
        }
        out.push('\n');
    }

    // Endpoints that `connect` cannot make itself: unjoined ones, and joined ones not
    // named SANDBOX.NETWORK.
    let made_apart: Vec<&Endpoint> = model
        .endpoints
        .values()
        .filter(|e| {
            e.sandbox
                .as_ref()
                .is_none_or(|s| e.name != endpoint_name(s, &e.network))
        })
        .collect();
    if !made_apart.is_empty() {
        out.push('\n');
    }
    for e in made_apart {
        let _ = write!(out, "endpoint {} on {}", e.name, e.network);
        addresses(&mut out, e);
        out.push('\n');
    }

    for s in model.sandboxes.values() {
        let _ = write!(out, "\nsandbox {} mode {}", s.name, s.mode);
        if let Some(hostname) = &s.hostname {
            let _ = write!(out, " hostname {hostname}");
        }
        if !s.dns.is_empty() {
            out.push_str(" dns");
            for ip in &s.dns {
                let _ = write!(out, " {ip}");
            }
        }
        out.push('\n');
        let implicit = s.mode == Mode::Bridge && !rejoined.contains(s.name.as_str());
        if s.mode == Mode::Bridge && !implicit {
            let _ = writeln!(out, "disconnect {} from {DEFAULT_NETWORK}", s.name);
        }
        for e in joins(model, &s.name) {
            if implicit && e.network == DEFAULT_NETWORK {
                continue;
            }
            let _ = write!(out, "connect {} to {}", s.name, e.network);
            if e.name == endpoint_name(&s.name, &e.network) {
                addresses(&mut out, e);
                if let Some(ifname) = &e.ifname {
                    let _ = write!(out, " ifname {ifname}");
                }
            } else {
                // `connect … endpoint E` takes no `ifname` (the checker compares it with
                // the unjoined endpoint's none): E gets the lowest free `ethN`, which
                // the join order makes the recorded one as long as no other interface
                // was named out of turn.
                let _ = write!(out, " endpoint {}", e.name);
            }
            out.push('\n');
        }
        for p in &s.published {
            let _ = write!(
                out,
                "publish {} {}:{}/{}",
                s.name, p.host_port, p.port, p.protocol
            );
            if let Some(ip) = p.host_ip {
                let _ = write!(out, " host-ip {ip}");
            }
            out.push('\n');
        }
        if s.status == Status::Stopped {
            let _ = writeln!(out, "stop {}", s.name);
        }
    }
    // Bridge-mode sandboxes make the default network; the state may no longer have it.
    if !model.networks.contains_key(DEFAULT_NETWORK)
        && model.sandboxes.values().any(|s| s.mode == Mode::Bridge)
    {
        let _ = writeln!(out, "\nremove network {DEFAULT_NETWORK}");
    }
    out
}

/// ` ip … ipv6 … mac … alias …`: an endpoint's addresses, as `endpoint` and `connect`
/// take them.
fn addresses(out: &mut String, e: &Endpoint) {
    let _ = write!(out, " ip {}", e.ip);
    if let Some(ip) = e.ipv6 {
        let _ = write!(out, " ipv6 {ip}");
    }
    let _ = write!(out, " mac {}", e.mac);
    if !e.aliases.is_empty() {
        let _ = write!(out, " alias {}", e.aliases.join(" "));
    }
}

/// A sandbox's endpoints in the order to join them: by interface name (`eth2` before
/// `eth10`), except that the one carrying the default route goes before every other
/// endpoint on a network with a way out, as it must have joined first.
fn joins<'a>(model: &'a Model, sandbox: &str) -> Vec<&'a Endpoint> {
    let mut joined: Vec<&Endpoint> = model
        .endpoints
        .values()
        .filter(|e| e.sandbox.as_deref() == Some(sandbox))
        .collect();
    joined.sort_by_key(|e| {
        let ifname = e.ifname.as_deref().unwrap_or_default();
        let number = ifname.strip_prefix("eth").and_then(|n| n.parse::<u32>().ok());
        (number.is_none(), number, ifname.to_string())
    });
    if let Some(carrier) = joined.iter().position(|e| e.default_route) {
        let first_routed = joined
            .iter()
            .position(|e| !model.networks[&e.network].internal)
            .unwrap_or(carrier);
        let endpoint = joined.remove(carrier);
        joined.insert(first_routed.min(carrier), endpoint);
    }
    joined
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Model;

    /// The model a script makes on an empty host; panics with the errors if it has any.
    fn checked(name: &str, text: &str) -> Model {
        checked_on(&Model::empty(), name, text)
    }

    /// The model a script makes on top of a committed one.
    fn checked_on(committed: &Model, name: &str, text: &str) -> Model {
        let mut sources = Sources::default();
        let file = sources.add(name, text);
        match crate::plan_scripts(&mut sources, &[file], committed) {
            Ok((checked, _)) => checked.model,
            Err(errors) => panic!(
                "{name} does not check:\n{}\n{text}",
                crate::cli::render_diagnostics(&sources, &errors, false, 100)
            ),
        }
    }

    /// Exports `model`, checks the export on an empty host, and asserts that it makes
    /// the same model. The one field that may differ is `static_ip`: the export gives
    /// every address, so those it writes come back as given by the script.
    fn assert_round_trip(name: &str, model: &Model) -> String {
        let text = script(model);
        assert!(text.starts_with("# Exported by `cnm export`"), "{text}");
        assert_eq!(script(model), text, "deterministic");
        let mut restored = checked(&format!("export of {name}"), &text);
        let mut original = model.clone();
        for e in restored
            .endpoints
            .values_mut()
            .chain(original.endpoints.values_mut())
        {
            e.static_ip = false;
        }
        assert_eq!(
            restored, original,
            "{name}: the export makes another model:\n{text}"
        );
        assert!(restored.networks.keys().eq(original.networks.keys()), "{text}");
        assert!(restored.sandboxes.keys().eq(original.sandboxes.keys()), "{text}");
        text
    }

    #[test]
    fn every_example_script_round_trips() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts");
        let mut paths: Vec<_> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        paths.sort();
        assert!(paths.len() >= 4, "{paths:?}");
        for path in paths {
            let name = path.display().to_string();
            let model = checked(&name, &std::fs::read_to_string(&path).unwrap());
            assert!(!model.endpoints.is_empty(), "{name}");
            assert_round_trip(&name, &model);
        }
    }

    #[test]
    fn seed_exports_as_this_script() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/seed.cnm");
        let model = checked("seed.cnm", &std::fs::read_to_string(path).unwrap());
        assert_eq!(
            script(&model),
            "\
# Exported by `cnm export`: the committed state as a script. Applied to a host without
# cnm objects, it recreates these networks, sandboxes and endpoints with the same ids,
# addresses, MACs, interface names and default routes.

network backend subnet 10.1.0.0/24 gateway 10.1.0.1 mtu 1500
network frontend subnet 10.2.0.0/24 gateway 10.2.0.254 mtu 1400
network bridge subnet 172.30.0.0/16 gateway 172.30.0.1 mtu 1500

sandbox A mode none
connect A to backend ip 10.1.0.2 mac 02:42:0a:01:00:02 alias db ifname eth0

sandbox B mode none
connect B to backend ip 10.1.0.3 mac 02:42:0a:01:00:03 ifname eth0
connect B to frontend ip 10.2.0.1 mac 02:42:0a:02:00:01 ifname eth1

sandbox C mode none
connect C to frontend ip 10.2.0.50 mac 02:42:0a:02:00:32 alias web ifname eth0

sandbox web1 mode bridge
connect web1 to frontend ip 10.2.0.2 mac 02:42:0a:02:00:02 ifname eth1

sandbox web2 mode bridge
connect web2 to frontend ip 10.2.0.3 mac 02:42:0a:02:00:03 ifname eth1

sandbox web3 mode bridge
connect web3 to frontend ip 10.2.0.4 mac 02:42:0a:02:00:04 ifname eth1
"
        );
    }

    /// Every kind of object and state at once, made by a history with holes in it.
    #[test]
    fn every_kind_of_object_round_trips() {
        let model = checked(
            "edge.cnm",
            "\
network lab subnet 10.6.0.0/24 ipv6 fd06::/64 ip-range 10.6.0.128/25 bridge br-lab mtu 9000
network hidden subnet 10.8.0.0/24 internal
network mv driver macvlan parent eth0 subnet 10.7.0.0/24 gateway 10.7.0.254
network bridge subnet 172.31.0.0/24 ipv6 fd31::/64

endpoint spare on lab ip 10.6.0.200 alias spare-one spare.two
endpoint kept on lab
sandbox web hostname web.internal dns 10.6.0.53 fd06::53
sandbox worker
sandbox sidecar mode container:web
sandbox tools mode host
sandbox A mode none
sandbox B mode none
sandbox moved

connect A to hidden
connect A to lab endpoint kept
connect A to mv mac 02:00:00:00:00:07
connect B to lab ipv6 fd06::99 ifname eth5
connect B to mv
connect web to lab alias api
disconnect moved from bridge
connect moved to lab
connect moved to bridge alias back
publish web 8080:80/tcp host-ip 127.0.0.1
publish web 5353:53/udp
publish tools 2222:22
stop worker
stop sidecar
",
        );
        let text = assert_round_trip("edge.cnm", &model);
        for line in [
            "network lab subnet 10.6.0.0/24 gateway 10.6.0.1 ip-range 10.6.0.128/25 ipv6 fd06::/64 \
             bridge br-lab mtu 9000\n",
            "network hidden subnet 10.8.0.0/24 gateway 10.8.0.1 mtu 1500 internal\n",
            "network mv driver macvlan subnet 10.7.0.0/24 gateway 10.7.0.254 mtu 1500 parent eth0\n",
            "endpoint spare on lab ip 10.6.0.200 ipv6 fd06::2 mac 02:42:0a:06:00:c8 alias spare-one spare.two\n",
            // The internal network joins first, yet the default route is lab's.
            "sandbox A mode none\nconnect A to hidden ip 10.8.0.2 mac 02:42:0a:08:00:02 ifname eth0\n\
             connect A to lab endpoint kept\n",
            // The default route's endpoint joins first, whatever its name.
            "sandbox B mode none\nconnect B to lab ip 10.6.0.129 ipv6 fd06::99 mac 02:42:0a:06:00:81 \
             ifname eth5\nconnect B to mv ip 10.7.0.2 mac 02:42:0a:07:00:02 ifname eth0\n",
            "sandbox web mode bridge hostname web.internal dns 10.6.0.53 fd06::53\n",
            "publish web 8080:80/tcp host-ip 127.0.0.1\npublish web 5353:53/udp\n",
            "sandbox moved mode bridge\ndisconnect moved from bridge\n\
             connect moved to lab ip 10.6.0.131 ipv6 fd06::5 mac 02:42:0a:06:00:83 ifname eth0\n\
             connect moved to bridge ip 172.31.0.4 ipv6 fd31::4 mac 02:42:ac:1f:00:04 alias back ifname eth1\n",
            "stop worker\n",
            "sandbox sidecar mode container:web\nstop sidecar\n",
            "sandbox tools mode host\npublish tools 2222:22/tcp\n",
        ] {
            assert!(text.contains(line), "no {line:?} in:\n{text}");
        }
    }

    /// Sandboxes removed by an earlier transaction leave holes in the default network
    /// that a `sandbox` statement's allocation would fill: the export gives the later
    /// sandboxes' addresses instead, and the endpoints joined again keep their veths'
    /// host names (a `disconnect` frees its endpoint's name).
    #[test]
    fn holes_in_the_default_network_keep_every_address() {
        let model = checked(
            "made.cnm",
            "sandbox gone\nsandbox web\nsandbox next\nsandbox after\n",
        );
        let model = checked_on(&model, "holes.cnm", "remove sandbox gone\nremove sandbox next\n");
        let text = script(&model);
        assert!(
            text.contains(
                "sandbox web mode bridge\ndisconnect web from bridge\n\
                 connect web to bridge ip 172.30.0.3 mac 02:42:ac:1e:00:03 ifname eth0\n"
            ),
            "{text}"
        );
        let mut restored = checked("export", &text);
        for name in ["web.bridge", "after.bridge"] {
            restored.endpoints[name].static_ip = false;
        }
        assert_eq!(restored, model, "{text}");
    }

    #[test]
    fn a_state_without_the_default_network_keeps_it_removed() {
        let model = checked(
            "removed.cnm",
            "network lab subnet 10.6.0.0/24\nsandbox web\nconnect web to lab\n\
             disconnect web from bridge\nremove network bridge\n",
        );
        assert!(!model.networks.contains_key(DEFAULT_NETWORK));
        let text = assert_round_trip("removed.cnm", &model);
        assert!(text.ends_with("\nremove network bridge\n"), "{text}");
        assert_round_trip("empty", &Model::empty());
    }
}
