//! Text that echoes what a client sent, kept to a readable size (issue 15: a 5 MB unknown
//! JSON key made a 15 MB error body; the CLI printed a 10 MB field to stderr).

use std::borrow::Cow;

/// The longest message an error shows: longer ones keep their start and end.
pub const MAX_MESSAGE_CHARS: usize = 1_000;

/// `text` as is when it has at most `max` characters; otherwise its first and last
/// parts (about `max` characters together) around a note of how much was left out. The
/// end is kept because messages often close with what would have been right
/// ("… expected one of model, version").
pub fn elide(text: &str, max: usize) -> Cow<'_, str> {
    let length = text.chars().count();
    if length <= max {
        return Cow::Borrowed(text);
    }
    let keep_end = max / 3;
    let keep_start = max - keep_end;
    let start: String = text.chars().take(keep_start).collect();
    let end: String = text.chars().skip(length - keep_end).collect();
    Cow::Owned(format!(
        "{start}… ({} characters left out) …{end}",
        length - keep_start - keep_end
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_text_is_kept_and_long_text_keeps_its_ends() {
        assert_eq!(elide("unknown field `x`", 100), "unknown field `x`");
        let key = "k".repeat(5_000_000);
        let message = format!("unknown field `{key}`, expected one of model, version");
        let shown = elide(&message, MAX_MESSAGE_CHARS);
        assert!(
            shown.chars().count() < MAX_MESSAGE_CHARS + 60,
            "{}",
            shown.len()
        );
        assert!(shown.starts_with("unknown field `kkk"));
        assert!(shown.ends_with("expected one of model, version"));
        assert!(shown.contains("characters left out"));
        // Characters, not bytes: never a cut inside one.
        let wide = "é".repeat(3000);
        assert!(elide(&wide, 100).starts_with("ééé"));
    }
}
