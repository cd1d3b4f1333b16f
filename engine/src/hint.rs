//! "Did you mean …": the closest known name to a likely typo.

/// The candidate closest to `input` by edit distance, if it is close enough
/// to be a likely typo: for "did you mean …" hints.
pub fn closest<'a>(input: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let limit = (input.chars().count() / 3).max(2);
    candidates
        .into_iter()
        .map(|c| {
            // A prefix ("snapshot" for "snapshot_id") is as good as one typo.
            let prefix = input.len() >= 3 && (c.starts_with(input) || input.starts_with(c));
            (if prefix { 1 } else { edit_distance(input, c) }, c)
        })
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            cur[j + 1] = (prev[j] + usize::from(ca != *cb)).min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typos_find_their_action() {
        let table = [
            ("redis.chek_aof", Some("redis.check_aof")),
            ("atlas.pitr_restor", Some("atlas.pitr_restore")),
            ("service.stp", Some("service.stop")),
            ("launch.rockets", None),
        ];
        for (input, expect) in table {
            assert_eq!(closest(input, crate::registry::names()), expect, "{input}");
        }
    }
}
