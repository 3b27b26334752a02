//! The names of the committed state, as completion and highlighting need them: sorted,
//! so that the names starting with what was typed are a binary search away. Taken once
//! after each entry, never per keystroke.

use crate::model::Model;

/// Which objects a name may be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kinds {
    Networks,
    Sandboxes,
    Endpoints,
    Any,
}

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Names {
    networks: Vec<String>,
    sandboxes: Vec<String>,
    endpoints: Vec<String>,
}

impl Names {
    pub fn of(model: &Model) -> Names {
        let sorted = |names: Vec<&String>| {
            let mut names: Vec<String> = names.into_iter().cloned().collect();
            names.sort_unstable();
            names
        };
        Names {
            networks: sorted(model.networks.keys().collect()),
            sandboxes: sorted(model.sandboxes.keys().collect()),
            endpoints: sorted(model.endpoints.keys().collect()),
        }
    }

    fn lists(&self, kinds: Kinds) -> Vec<&[String]> {
        match kinds {
            Kinds::Networks => vec![&self.networks],
            Kinds::Sandboxes => vec![&self.sandboxes],
            Kinds::Endpoints => vec![&self.endpoints],
            Kinds::Any => vec![&self.networks, &self.sandboxes, &self.endpoints],
        }
    }

    /// The names of these kinds that start with `prefix`, in order (a name that is a
    /// network and a sandbox comes once).
    pub fn starting_with(&self, kinds: Kinds, prefix: &str) -> Vec<&str> {
        let mut found: Vec<&str> = self
            .lists(kinds)
            .into_iter()
            .flat_map(|list| {
                let from = list.partition_point(|name| name.as_str() < prefix);
                list[from..]
                    .iter()
                    .take_while(|name| name.starts_with(prefix))
                    .map(String::as_str)
            })
            .collect();
        found.sort_unstable();
        found.dedup();
        found
    }

    /// Whether a network, sandbox or endpoint has this name.
    pub fn is_known(&self, word: &str) -> bool {
        self.lists(Kinds::Any)
            .into_iter()
            .any(|list| list.binary_search_by(|name| name.as_str().cmp(word)).is_ok())
    }
}

/// Names without a model, for the tests of what reads them.
#[cfg(test)]
pub fn names(networks: &[&str], sandboxes: &[&str], endpoints: &[&str]) -> Names {
    let owned = |list: &[&str]| {
        let mut list: Vec<String> = list.iter().map(|s| s.to_string()).collect();
        list.sort();
        list
    };
    Names {
        networks: owned(networks),
        sandboxes: owned(sandboxes),
        endpoints: owned(endpoints),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_by_prefix_and_kind() {
        let names = names(
            &["backend", "bridge"],
            &["web1", "web2", "db", "backend"],
            &["web1.backend"],
        );
        assert_eq!(names.starting_with(Kinds::Sandboxes, "web"), ["web1", "web2"]);
        assert_eq!(names.starting_with(Kinds::Networks, "b"), ["backend", "bridge"]);
        assert_eq!(names.starting_with(Kinds::Any, "backend"), ["backend"]);
        assert_eq!(names.starting_with(Kinds::Any, "web1"), ["web1", "web1.backend"]);
        assert!(names.starting_with(Kinds::Endpoints, "x").is_empty());
        assert!(names.is_known("db") && names.is_known("web1.backend"));
        assert!(!names.is_known("we"));
    }
}
