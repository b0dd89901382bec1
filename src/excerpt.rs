//! Remote text quoted in messages (error bodies, rejected payloads): one
//! line, bounded in bytes, cut on a character, with secrets blanked before
//! the cut so no prefix of one can survive it.

/// Longest excerpt of a remote answer quoted in an error, in bytes.
pub const EXCERPT_BYTES: usize = 300;

/// At most `max` bytes of a body on one line, for error messages. Only the
/// first `4 × max` bytes are looked at, so a huge body costs nothing here.
pub fn excerpt(body: &[u8], max: usize) -> String {
    excerpt_hiding(body, max, &[])
}

/// [`excerpt`] with every occurrence of `hidden` (tokens, signatures a
/// receiver echoed) replaced by `***` first.
pub fn excerpt_hiding(body: &[u8], max: usize, hidden: &[&str]) -> String {
    let longest = hidden.iter().map(|h| h.len()).max().unwrap_or(0);
    let head = &body[..body.len().min(max.saturating_mul(4).saturating_add(longest))];
    let mut text = String::from_utf8_lossy(head).into_owned();
    for value in hidden.iter().filter(|v| !v.is_empty()) {
        text = text.replace(value, "***");
    }
    let flat: String = text.chars().map(|c| if c.is_control() { ' ' } else { c }).collect();
    let flat = flat.split_whitespace().collect::<Vec<_>>().join(" ");
    if flat.len() > max || head.len() < body.len() {
        let mut cut = max.min(flat.len());
        while !flat.is_char_boundary(cut) {
            cut -= 1;
        }
        format!("{}…", &flat[..cut])
    } else {
        flat
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn excerpts_are_short_single_lines() {
        assert_eq!(excerpt(b"a\n  b\tc", 300), "a b c");
        assert_eq!(excerpt(b"  ", 300), "");
        let long = "é".repeat(400);
        let cut = excerpt(long.as_bytes(), 300);
        assert!(cut.len() <= 300 + '…'.len_utf8(), "{}", cut.len());
        assert!(cut.ends_with('…'));
    }

    #[test]
    fn a_huge_body_is_marked_cut_even_when_its_head_is_short_text() {
        let mut body = b"short".to_vec();
        body.extend(std::iter::repeat_n(b' ', 5000));
        body.extend(b"tail");
        assert_eq!(excerpt(&body, 10), "short…");
    }

    #[test]
    fn a_secret_across_the_cut_leaves_no_prefix() {
        let secret = "pat-na1-0123456789abcdef";
        let body = format!("{}{secret} more", "x".repeat(290));
        let said = excerpt_hiding(body.as_bytes(), 300, &[secret]);
        assert!(!said.contains("pat-na1"), "{said}");
        assert!(said.contains("***"), "{said}");
    }
}
