//! Did-you-mean: the closest known name to a misspelt one, if any is close enough.

/// The candidate most like `word`, when it is close enough to be a likely typo.
pub fn closest<'a>(word: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<String> {
    candidates
        .into_iter()
        .filter(|c| *c != word)
        .map(|c| (strsim::damerau_levenshtein(word, c), c))
        // Close enough to be a typo, and not a whole replacement: `b` for `a` is no typo.
        .filter(|(distance, c)| {
            let longer = c.chars().count().max(word.chars().count());
            *distance <= (longer / 3).max(1) && *distance < longer
        })
        .min()
        .map(|(_, c)| c.to_string())
}

#[cfg(test)]
mod tests {
    use super::closest;

    #[test]
    fn suggests_near_names_only() {
        let names = ["backend", "frontend", "db"];
        assert_eq!(closest("bakend", names), Some("backend".into()));
        assert_eq!(closest("fronted", names), Some("frontend".into()));
        assert_eq!(closest("zzz", names), None);
        assert_eq!(closest("backend", names), None);
        assert_eq!(closest("b", ["a", "c"]), None);
        assert_eq!(closest("web2", ["web1"]), Some("web1".into()));
        assert_eq!(closest("x", ["xy"]), Some("xy".into()));
    }
}
