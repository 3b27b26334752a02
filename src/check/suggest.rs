//! Did-you-mean: the closest known name to a misspelt one, if any is close enough.

/// The candidate most like `word`, when it is close enough to be a likely typo.
pub fn closest<'a>(word: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<String> {
    candidates
        .into_iter()
        .filter(|c| *c != word)
        .map(|c| (strsim::damerau_levenshtein(word, c), c))
        .filter(|(distance, c)| *distance <= (c.len().max(word.len()) / 3).max(1))
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
    }
}
