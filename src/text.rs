//! Shortening text that goes where space is bounded: admission warnings
//! (the API server may cut them), log lines and Event notes (the Events API
//! takes 1 KiB), PolicyReport messages. One set of helpers, so every cut
//! is marked the same way (`...`).

/// `s` cut to at most `max` characters, ending in `...` when cut.
pub fn truncate_chars(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_string();
    }
    let mut out: String = s.chars().take(max.saturating_sub(3)).collect();
    out.push_str("...");
    out
}

/// `s` cut to at most `max` bytes (at a character boundary), ending in
/// `...` when cut: for limits the API counts in bytes.
pub fn truncate_bytes(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut end = max.saturating_sub(3);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}...", &s[..end])
}

/// `s` on one line (control characters, such as newlines from user input,
/// become spaces), cut to at most `max` characters.
pub fn one_line(s: &str, max: usize) -> String {
    let cleaned: String = s
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    truncate_chars(&cleaned, max)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cuts_are_marked_and_within_the_limit() {
        assert_eq!(truncate_chars("abcdef", 6), "abcdef");
        assert_eq!(truncate_chars("abcdefg", 6), "abc...");
        assert_eq!(truncate_chars("ééééééé", 6), "ééé...");
        assert_eq!(truncate_bytes("ééééé", 7), "éé...");
        assert!(truncate_bytes("ééééé", 7).len() <= 7);
        assert_eq!(truncate_bytes("abc", 3), "abc");
        assert_eq!(one_line("a\nb\tc", 10), "a b c");
        assert_eq!(one_line("a\nbcdefghij", 6), "a b...");
    }
}
