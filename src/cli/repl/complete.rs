//! Tab completion that knows the language: what may come at the cursor, given the words
//! of the statement typed so far — a keyword or a session command first, then the fixed
//! words and the names of the committed state where the statement's form puts them,
//! then its options and their values; file paths after `include`, `source` and `save`.

use rustyline::completion::{FilenameCompleter, Pair};

use super::names::{Kinds, Names};
use super::words;
use crate::check::usage;
use crate::cli::console::COMMANDS;

/// What may be typed at the cursor.
#[derive(Debug, PartialEq, Eq)]
enum Slot {
    Nothing,
    /// A statement keyword or a session command.
    First,
    /// A statement keyword or a session command to ask `help` about.
    Topic,
    Words(&'static [&'static str]),
    Names(Kinds),
    /// What `expect` probes: a sandbox, or the host.
    Target,
    /// A sandbox's mode: `container:` takes a sandbox's name.
    Mode,
    /// One of the statement's options not given yet.
    Options {
        keyword: &'static str,
        given: Vec<String>,
    },
    Path,
}

/// The candidates for the word at `pos` in `line` (typed so far, maybe several lines),
/// and where that word starts.
pub fn complete(line: &str, pos: usize, names: &Names) -> (usize, Vec<Pair>) {
    let Some((words, partial, start)) = words::at_cursor(line, pos) else {
        return (pos, Vec::new());
    };
    let slot = slot(&words);
    if slot == Slot::Path {
        // The path completer quotes and escapes as a shell would.
        return match FilenameCompleter::new().complete_path(partial, partial.len()) {
            Ok((offset, pairs)) => (start + offset, pairs),
            Err(_) => (pos, Vec::new()),
        };
    }
    (start, candidates(slot, partial, names))
}

fn slot(words: &[&str]) -> Slot {
    let Some((&first, rest)) = words.split_first() else {
        return Slot::First;
    };
    let sandboxes = Slot::Names(Kinds::Sandboxes);
    match (first, rest) {
        ("inspect", []) => Slot::Names(Kinds::Any),
        ("help", []) => Slot::Topic,
        ("dry-run", []) => Slot::Words(&["on", "off"]),
        ("source" | "include" | "save", []) => Slot::Path,
        ("exec" | "stop" | "start" | "connect" | "disconnect" | "publish" | "expect" | "serve", []) => {
            sandboxes
        }
        ("exec", [_]) => Slot::Words(&["--"]),
        ("endpoint", [_]) => Slot::Words(&["on"]),
        ("connect", [_]) => Slot::Words(&["to"]),
        ("disconnect", [_]) => Slot::Words(&["from"]),
        ("endpoint" | "connect" | "disconnect", [_, _]) => Slot::Names(Kinds::Networks),
        ("remove", []) => Slot::Words(&["network", "sandbox", "endpoint"]),
        ("remove", [kind]) => match *kind {
            "network" => Slot::Names(Kinds::Networks),
            "sandbox" => sandboxes,
            "endpoint" => Slot::Names(Kinds::Endpoints),
            _ => Slot::Nothing,
        },
        ("expect", [_]) => Slot::Words(&["reaches", "cannot"]),
        ("expect", [_, "cannot"]) => Slot::Words(&["reach"]),
        ("expect", [_, "reaches"] | [_, "cannot", "reach"]) => Slot::Target,
        _ => options(first, rest),
    }
}

/// After a statement's fixed words: its options, or the value of the option before.
fn options(first: &str, rest: &[&str]) -> Slot {
    let fixed = match (first, rest) {
        ("network" | "sandbox" | "serve", _) => 1,
        ("publish", _) => 2,
        ("endpoint" | "connect", _) => 3,
        ("expect", [_, "cannot", ..]) => 4,
        ("expect", _) => 3,
        _ => return Slot::Nothing,
    };
    if rest.len() < fixed {
        return Slot::Nothing;
    }
    let keyword = usage::keyword(first);
    let known = usage::options(keyword);
    if let Some(&previous) = rest[fixed..].last() {
        if known.contains(&previous) && !usage::is_flag(previous) {
            return match (keyword, previous) {
                ("network", "driver") => Slot::Words(&["bridge", "macvlan"]),
                ("sandbox", "mode") => Slot::Mode,
                ("connect", "endpoint") => Slot::Names(Kinds::Endpoints),
                _ => Slot::Nothing,
            };
        }
    }
    let given = rest[fixed..]
        .iter()
        .filter(|w| known.contains(w))
        .map(|w| w.to_string())
        .collect();
    Slot::Options { keyword, given }
}

fn candidates(slot: Slot, partial: &str, names: &Names) -> Vec<Pair> {
    let words: Vec<&str> = match &slot {
        Slot::Nothing | Slot::Path => Vec::new(),
        Slot::First | Slot::Topic => {
            let mut all: Vec<&str> = usage::keywords()
                .chain(COMMANDS.iter().map(|(c, _)| *c))
                .collect();
            all.sort_unstable();
            all.dedup();
            all
        }
        Slot::Words(words) => words.to_vec(),
        Slot::Names(kinds) => return pairs(names.starting_with(*kinds, partial), " "),
        Slot::Target => {
            let mut targets = names.starting_with(Kinds::Sandboxes, partial);
            targets.push("host");
            targets
        }
        Slot::Mode => {
            if let Some(other) = partial.strip_prefix("container:") {
                return names
                    .starting_with(Kinds::Sandboxes, other)
                    .into_iter()
                    .map(|name| Pair {
                        display: format!("container:{name}"),
                        replacement: format!("container:{name} "),
                    })
                    .collect();
            }
            return ["bridge ", "none ", "host ", "container:"]
                .into_iter()
                .filter(|m| m.starts_with(partial))
                .map(|m| Pair {
                    display: m.trim_end().to_string(),
                    replacement: m.to_string(),
                })
                .collect();
        }
        Slot::Options { keyword, given } => usage::options(keyword)
            .iter()
            .copied()
            .filter(|o| !given.iter().any(|g| g == o))
            .collect(),
    };
    pairs(
        words.into_iter().filter(|w| w.starts_with(partial)).collect(),
        " ",
    )
}

/// Candidates that insert the word and `after` it.
fn pairs(words: Vec<&str>, after: &str) -> Vec<Pair> {
    words
        .into_iter()
        .map(|w| Pair {
            display: w.to_string(),
            replacement: format!("{w}{after}"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::repl::names::names;

    /// The candidates shown for the line, with the cursor at its end (or at `|`).
    fn shown(line: &str) -> Vec<String> {
        let names = names(
            &["backend", "frontend"],
            &["web1", "web2", "db"],
            &["spare", "db.backend"],
        );
        let pos = line.find('|').unwrap_or(line.len());
        let line = line.replace('|', "");
        complete(&line, pos, &names)
            .1
            .into_iter()
            .map(|p| p.display)
            .collect()
    }

    #[test]
    fn keywords_and_commands_first() {
        assert_eq!(shown("con"), ["connect"]);
        assert_eq!(
            shown("s"),
            ["sandbox", "save", "serve", "show", "source", "start", "stop"]
        );
        assert_eq!(shown("stop db; dis"), ["disconnect"]);
        assert_eq!(shown("for i in 1..3 {\n  sta"), ["start"]);
        assert!(shown("").contains(&"history".to_string()));
        assert_eq!(shown("help conn"), ["connect"]);
    }

    #[test]
    fn names_where_the_form_puts_them() {
        assert_eq!(shown("connect "), ["db", "web1", "web2"]);
        assert_eq!(shown("connect w"), ["web1", "web2"]);
        assert_eq!(shown("connect web1 "), ["to"]);
        assert_eq!(shown("connect web1 to "), ["backend", "frontend"]);
        assert_eq!(shown("disconnect db from f"), ["frontend"]);
        assert_eq!(shown("endpoint e on b"), ["backend"]);
        assert_eq!(shown("remove "), ["network", "sandbox", "endpoint"]);
        assert_eq!(shown("remove sandbox w"), ["web1", "web2"]);
        assert_eq!(shown("remove endpoint "), ["db.backend", "spare"]);
        assert_eq!(shown("inspect d"), ["db", "db.backend"]);
        assert_eq!(shown("exec w"), ["web1", "web2"]);
        assert_eq!(shown("exec web1 "), ["--"]);
        assert_eq!(shown("expect web1 cannot reach "), ["db", "web1", "web2", "host"]);
        // A new name is the user's to make up.
        assert!(shown("sandbox ").is_empty());
        assert!(shown("network b").is_empty());
    }

    #[test]
    fn options_and_their_values() {
        assert_eq!(
            shown("connect web1 to backend "),
            ["endpoint", "ip", "ipv6", "mac", "alias", "ifname"]
        );
        assert_eq!(shown("connect web1 to backend ip 10.1.0.5 i"), ["ipv6", "ifname"]);
        assert_eq!(
            shown("connect web1 to backend endpoint "),
            ["db.backend", "spare"]
        );
        assert_eq!(
            shown("network n subnet 10.0.0.0/24 "),
            ["driver", "gateway", "ip-range", "ipv6", "bridge", "mtu", "internal", "parent"]
        );
        assert_eq!(shown("network n driver "), ["bridge", "macvlan"]);
        assert!(shown("network n subnet ").is_empty());
        assert_eq!(shown("sandbox s mode "), ["bridge", "none", "host", "container:"]);
        assert_eq!(
            shown("sandbox s mode container:w"),
            ["container:web1", "container:web2"]
        );
        assert_eq!(
            shown("expect a cannot reach b "),
            ["port", "udp", "tcp", "timeout"]
        );
        assert_eq!(shown("dry-run o"), ["on", "off"]);
        // Only what is before the cursor counts.
        assert_eq!(shown("connect w| to backend"), ["web1", "web2"]);
        assert!(shown("disconnect a from b ").is_empty());
        assert!(shown("stop db # a comment").is_empty());
    }

    #[test]
    fn the_replacement_goes_on_with_a_blank() {
        let names = names(&[], &["web1"], &[]);
        let (start, pairs) = complete("stop we", 7, &names);
        assert_eq!(start, 5);
        assert_eq!(pairs[0].replacement, "web1 ");
        let (_, pairs) = complete("sandbox s mode c", 16, &names);
        assert_eq!(pairs[0].replacement, "container:");
    }

    #[test]
    fn paths_after_include_source_and_save() {
        let dir = std::env::temp_dir().join(format!("cnm-complete-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("seed.cnm"), "").unwrap();
        let typed = format!("include {}/se", dir.display());
        let (start, pairs) = complete(&typed, typed.len(), &Names::default());
        let completed = format!("{}{}", &typed[..start], pairs[0].replacement);
        assert_eq!(completed, format!("include {}/seed.cnm", dir.display()));
        for command in ["source", "save"] {
            let typed = format!("{command} {}/", dir.display());
            let (_, pairs) = complete(&typed, typed.len(), &Names::default());
            assert_eq!(pairs.len(), 1, "{command}");
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
