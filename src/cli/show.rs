//! `cnm show`, `cnm inspect`, `cnm log`, `cnm export` and `cnm graph`: the committed
//! state and its history, read without touching the kernel.

use std::io::Write;
use std::process::ExitCode;

use serde_json::{json, Map, Value};

use super::{committed_state, Failure, Settings};
use crate::journal::{self, Outcome};
use crate::model::{Driver, Endpoint, Model, Network, Sandbox};

/// Rows as aligned columns, the first row a header.
fn table(rows: &[Vec<String>]) -> String {
    let columns = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..columns)
        .map(|c| {
            rows.iter()
                .filter_map(|r| r.get(c))
                .map(|s| s.chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut text = String::new();
    for row in rows {
        let line: Vec<String> = row
            .iter()
            .zip(&widths)
            .map(|(cell, w)| format!("{cell:<w$}"))
            .collect();
        text.push_str(line.join("  ").trim_end());
        text.push('\n');
    }
    text
}

pub fn show(settings: &Settings) -> Result<ExitCode, Failure> {
    let model = committed_state(settings)?;
    let mut out = String::new();
    if model.has_nothing() {
        out.push_str("Nothing applied yet.\n");
    }
    if !model.networks.is_empty() {
        let mut rows = vec![vec![
            "NETWORK",
            "DRIVER",
            "SUBNET",
            "GATEWAY",
            "BRIDGE",
            "MTU",
            "ENDPOINTS",
        ]
        .into_iter()
        .map(String::from)
        .collect::<Vec<_>>()];
        for n in model.networks.values() {
            // A dual-stack network: both subnets, both gateways.
            let (mut subnet, mut gateway) = (n.subnet.to_string(), n.gateway.to_string());
            if let Some(v6) = n.ipv6 {
                subnet.push_str(&format!(" {}", v6.subnet));
                gateway.push_str(&format!(" {}", v6.gateway));
            }
            rows.push(vec![
                n.name.clone(),
                n.driver.to_string(),
                subnet,
                gateway,
                n.bridge.clone().or_else(|| n.parent.clone()).unwrap_or_default(),
                n.mtu.to_string(),
                model.endpoints_on(&n.name).count().to_string(),
            ]);
        }
        out.push_str(&table(&rows));
    }
    if !model.sandboxes.is_empty() {
        out.push('\n');
        let mut rows = vec![vec!["SANDBOX", "MODE", "STATUS", "NETNS", "INTERFACES"]
            .into_iter()
            .map(String::from)
            .collect::<Vec<_>>()];
        for s in model.sandboxes.values() {
            let interfaces: Vec<String> = model
                .endpoints
                .values()
                .filter(|e| e.sandbox.as_deref() == Some(&s.name))
                .map(|e| {
                    let v6 = e.ipv6.map(|ip| format!(" {ip}")).unwrap_or_default();
                    format!(
                        "{} {}{v6} ({})",
                        e.ifname.as_deref().unwrap_or("-"),
                        e.ip,
                        e.network
                    )
                })
                .collect();
            rows.push(vec![
                s.name.clone(),
                s.mode.to_string(),
                if s.is_running() { "running" } else { "stopped" }.to_string(),
                s.netns().unwrap_or("-").to_string(),
                interfaces.join(", "),
            ]);
        }
        out.push_str(&table(&rows));
    }
    if !model.endpoints.is_empty() {
        out.push('\n');
        let mut rows = vec![vec![
            "ENDPOINT",
            "NETWORK",
            "SANDBOX",
            "INTERFACE",
            "ADDRESS",
            "MAC",
            "HOST END",
            "ALIASES",
        ]
        .into_iter()
        .map(String::from)
        .collect::<Vec<_>>()];
        for e in model.endpoints.values() {
            let network = &model.networks[&e.network];
            let mut address = cidr(e.ip, network.subnet.prefix());
            if let (Some(ip), Some(v6)) = (e.ipv6, network.ipv6) {
                address.push_str(&format!(" {}", cidr(ip, v6.subnet.prefix())));
            }
            rows.push(vec![
                e.name.clone(),
                e.network.clone(),
                e.sandbox.clone().unwrap_or_else(|| "-".into()),
                e.ifname.clone().unwrap_or_else(|| "-".into()),
                address,
                e.mac.to_string(),
                host_end(&model, e).unwrap_or("-").to_string(),
                e.aliases.join(" "),
            ]);
        }
        out.push_str(&table(&rows));
    }
    let _ = std::io::stdout().write_all(out.as_bytes());
    Ok(ExitCode::SUCCESS)
}

/// A network, sandbox or endpoint as JSON, with the keys `docker inspect` uses.
pub fn inspect(settings: &Settings, name: &str) -> Result<ExitCode, Failure> {
    let model = committed_state(settings)?;
    let value = if let Some(network) = model.networks.get(name) {
        inspect_network(&model, network)
    } else if let Some(sandbox) = model.sandboxes.get(name) {
        inspect_sandbox(&model, sandbox, settings)
    } else if let Some(endpoint) = model.endpoints.get(name) {
        inspect_endpoint(&model, endpoint)
    } else {
        let names = model
            .networks
            .keys()
            .chain(model.sandboxes.keys())
            .chain(model.endpoints.keys())
            .map(String::as_str);
        let hint = crate::check::suggest_name(name, names)
            .map(|s| format!("; did you mean `{s}`?"))
            .unwrap_or_default();
        return Err(Failure::Message(format!(
            "no network, sandbox or endpoint named `{name}`{hint}"
        )));
    };
    say!(
        "{}",
        serde_json::to_string_pretty(&json!([value])).expect("JSON serialises")
    );
    Ok(ExitCode::SUCCESS)
}

fn cidr(ip: impl std::fmt::Display, prefix: u8) -> String {
    format!("{ip}/{prefix}")
}

fn inspect_network(model: &Model, n: &Network) -> Value {
    let mut containers = Map::new();
    for e in model.endpoints_on(&n.name) {
        let sandbox = e.sandbox.as_ref().and_then(|s| model.sandboxes.get(s));
        let key = sandbox.map_or_else(|| format!("ep-{}", e.id), |s| s.id.clone());
        containers.insert(
            key,
            json!({
                "Name": e.sandbox.clone().unwrap_or_default(),
                "EndpointName": e.name,
                "EndpointID": e.id,
                "MacAddress": e.mac,
                "IPv4Address": cidr(e.ip, n.subnet.prefix()),
                "IPv6Address": match (e.ipv6, n.ipv6) {
                    (Some(ip), Some(v6)) => cidr(ip, v6.subnet.prefix()),
                    _ => String::new(),
                },
                "Aliases": e.aliases,
            }),
        );
    }
    let mut config = vec![json!({
        "Subnet": n.subnet.to_string(),
        "Gateway": n.gateway.to_string(),
        "IPRange": n.ip_range.map(|r| r.to_string()),
    })];
    if let Some(v6) = n.ipv6 {
        config.push(json!({ "Subnet": v6.subnet.to_string(), "Gateway": v6.gateway.to_string() }));
    }
    let mut options = Map::new();
    if let Some(bridge) = &n.bridge {
        options.insert("com.docker.network.bridge.name".into(), json!(bridge));
    }
    if let Some(parent) = &n.parent {
        options.insert("parent".into(), json!(parent));
    }
    options.insert("com.docker.network.driver.mtu".into(), json!(n.mtu.to_string()));
    json!({
        "Name": n.name,
        "Id": n.id,
        "Driver": n.driver.to_string(),
        "EnableIPv6": n.ipv6.is_some(),
        "IPAM": { "Driver": "default", "Config": config },
        "Internal": n.internal,
        "Containers": containers,
        "Options": options,
    })
}

fn inspect_sandbox(model: &Model, s: &Sandbox, settings: &Settings) -> Value {
    let mut networks = Map::new();
    for e in model
        .endpoints
        .values()
        .filter(|e| e.sandbox.as_deref() == Some(&s.name))
    {
        networks.insert(e.network.clone(), endpoint_settings(model, e));
    }
    json!({
        "Name": s.name,
        "Id": s.id,
        "State": { "Status": if s.is_running() { "running" } else { "exited" }, "Running": s.is_running() },
        "HostConfig": { "NetworkMode": s.mode.to_string(), "Dns": s.dns },
        "Config": { "Hostname": s.hostname.clone().unwrap_or_else(|| s.name.clone()) },
        "NetworkSettings": {
            "SandboxKey": s.netns().map(|n| settings.netns_dir.join(n).display().to_string()),
            "Ports": s.published.iter().map(|p| json!({
                "HostIp": p.host_ip.map(|ip| ip.to_string()).unwrap_or_default(),
                "HostPort": p.host_port.to_string(),
                "ContainerPort": format!("{}/{}", p.port, p.protocol),
            })).collect::<Vec<_>>(),
            "Networks": networks,
        },
    })
}

/// What Docker records of one connection: endpoint id, network id, gateways, addresses.
fn endpoint_settings(model: &Model, e: &Endpoint) -> Value {
    let n = &model.networks[&e.network];
    json!({
        "EndpointName": e.name,
        "EndpointID": e.id,
        "NetworkID": n.id,
        "Gateway": n.gateway.to_string(),
        "IPAddress": e.ip.to_string(),
        "IPPrefixLen": n.subnet.prefix(),
        "IPv6Gateway": n.ipv6.map(|v| v.gateway.to_string()).unwrap_or_default(),
        "GlobalIPv6Address": e.ipv6.map(|ip| ip.to_string()).unwrap_or_default(),
        "MacAddress": e.mac,
        "Aliases": e.aliases,
        "Interface": e.ifname,
        "HostInterface": host_end(model, e),
        "DefaultRoute": e.default_route,
    })
}

/// The host end of an endpoint's veth pair; a macvlan endpoint has none.
fn host_end<'a>(model: &Model, e: &'a Endpoint) -> Option<&'a str> {
    match model.networks[&e.network].driver {
        Driver::Bridge => Some(&e.host_ifname),
        Driver::Macvlan => None,
    }
}

fn inspect_endpoint(model: &Model, e: &Endpoint) -> Value {
    let mut value = endpoint_settings(model, e);
    value["Name"] = json!(e.name);
    value["Network"] = json!(e.network);
    value["Sandbox"] = json!(e.sandbox);
    value
}

/// The transactions of the journal, one line each, newest first: the last 20.
pub fn log(settings: &Settings) -> Result<ExitCode, Failure> {
    log_paged(settings, Some(DEFAULT_LOG_LIMIT))
}

/// How many transactions `cnm log` lists unless told.
pub const DEFAULT_LOG_LIMIT: usize = 20;

/// The last `limit` transactions of the journal (all of them with `None`), newest
/// first, one line each. Reads the archived journals only as far back as it lists; reads
/// around a last line cut short (the next command that takes the lock removes it).
pub fn log_paged(settings: &Settings, limit: Option<usize>) -> Result<ExitCode, Failure> {
    let (transactions, more) = journal::history(&settings.state_dir, limit)?;
    let mut rows = vec![vec!["TX", "TIME", "STEPS", "OUTCOME", "COMMAND"]
        .into_iter()
        .map(String::from)
        .collect::<Vec<_>>()];
    for t in &transactions {
        let outcome = match &t.outcome {
            Outcome::Committed => "committed".to_string(),
            Outcome::RolledBack(reason) => format!("rolled back: {reason}"),
            Outcome::Recovered(undone) => format!("cut short; recovered ({undone} steps undone)"),
            Outcome::Incomplete(pending) => {
                format!("open: rollback incomplete, {pending} undo operations refused")
            }
            Outcome::Open => "open".to_string(),
        };
        rows.push(vec![
            t.tx.to_string(),
            t.time.clone(),
            t.steps.to_string(),
            outcome,
            t.command.clone(),
        ]);
    }
    if rows.len() == 1 {
        say!("No transactions yet.");
        return Ok(ExitCode::SUCCESS);
    }
    let mut out = super::show::table(&rows);
    if more {
        out.push_str(&format!(
            "(the last {}; `cnm log --limit N` or `cnm log --all` lists more)\n",
            transactions.len()
        ));
    }
    let _ = std::io::stdout().write_all(out.as_bytes());
    Ok(ExitCode::SUCCESS)
}

/// `cnm recover --from-journal`: rebuilds state.json from the journal.
pub fn recover(settings: &Settings) -> Result<ExitCode, Failure> {
    let said = settings.session().rebuild_from_journal()?;
    print!("{said}");
    Ok(ExitCode::SUCCESS)
}

/// The committed state as a script that recreates it.
pub fn export(settings: &Settings) -> Result<ExitCode, Failure> {
    let model = committed_state(settings)?;
    let _ = std::io::stdout().write_all(crate::export::script(&model).as_bytes());
    Ok(ExitCode::SUCCESS)
}

/// The committed topology as a diagram.
pub fn graph(settings: &Settings, format: crate::graph::Format) -> Result<ExitCode, Failure> {
    let model = committed_state(settings)?;
    let _ = std::io::stdout().write_all(crate::graph::render(&model, format).as_bytes());
    Ok(ExitCode::SUCCESS)
}

/// `cnm status`: each object's missing operations, or that nothing is missing.
pub fn status(settings: &Settings, json: bool, detailed_exitcode: bool) -> Result<ExitCode, Failure> {
    let missing = settings.session().drift(true)?;
    if json {
        say!(
            "{}",
            serde_json::to_string_pretty(&missing).expect("drift serialises")
        );
    } else if missing.is_empty() {
        say!("No drift: the kernel holds everything the committed state records.");
    } else {
        let mut object = None;
        for m in &missing {
            let this = (m.kind, m.name.as_str());
            if object != Some(this) {
                match m.kind {
                    Some(kind) => say!("{kind} {}:", m.name),
                    None => say!("{}:", m.name),
                }
                object = Some(this);
            }
            say!("  missing: {}", m.command);
        }
        say!(
            "{} missing; `cnm restore` makes {} again.",
            crate::report::plural(missing.len(), "operation"),
            if missing.len() == 1 { "it" } else { "them" }
        );
    }
    Ok(match (detailed_exitcode, missing.is_empty()) {
        (true, false) => ExitCode::from(2),
        _ => ExitCode::SUCCESS,
    })
}
