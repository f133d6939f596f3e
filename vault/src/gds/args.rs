//! The filter patterns of QueryApplications and QueryServers.

/// `%` any run of characters, `_` one character, case-insensitive: the pattern syntax of the
/// QueryApplications and QueryServers filters (Part 12 §6.6.10, a subset of the LIKE operator).
/// An empty pattern matches everything.
pub fn like(pattern: &str, text: &str) -> bool {
    if pattern.is_empty() {
        return true;
    }
    // Bounded and quadratic at worst (dynamic programming, not backtracking): filters are
    // short, and a pattern of many `%` must not cost seconds.
    let p: Vec<char> = pattern.chars().take(256).collect();
    let t: Vec<char> = text.chars().take(1024).collect();
    // row[j]: the pattern so far matches t[..j].
    let mut row = vec![false; t.len() + 1];
    row[0] = true;
    for c in &p {
        let mut next = vec![false; t.len() + 1];
        match c {
            '%' => {
                let mut seen = false;
                for j in 0..=t.len() {
                    seen |= row[j];
                    next[j] = seen;
                }
            }
            _ => {
                for j in 1..=t.len() {
                    next[j] = row[j - 1] && (*c == '_' || t[j - 1].eq_ignore_ascii_case(c));
                }
            }
        }
        row = next;
    }
    row[t.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn like_patterns() {
        assert!(like("", "anything"));
        assert!(like("line%", "Line 1 PLC"));
        assert!(like("%plc", "Line 1 PLC"));
        assert!(like("line _ plc", "Line 1 PLC"));
        assert!(!like("line _ plc", "Line 12 PLC"));
        assert!(!like("plc", "Line 1 PLC"));
    }
}
