//! Everything that speaks Podman's libpod REST API: the connection, the wire types and the event
//! stream's line framing. Nothing here keeps state across requests or knows about the inventory.

pub mod client;
mod endpoint;
pub mod ndjson;
pub mod wire;

pub use client::{Client, ClientError, Endpoint, EventStream};
pub use endpoint::{login_name, unique_name, ROOTLESS_SOCKET_SUFFIX, USER_RUNTIME_ROOT};

use std::borrow::Cow;

/// Text from Podman (error messages, version strings, names) made safe for a text log line:
/// control characters (`\n`, `\r`, ESC...) and Unicode line separators are written as escapes,
/// so a message can never forge a second log line or move the terminal's cursor. Every string
/// that came from Podman goes through this before it reaches a log or an error's `Display`.
pub fn printable(text: &str) -> Cow<'_, str> {
    let unsafe_char = |c: char| c.is_control() || matches!(c, '\u{2028}' | '\u{2029}');
    if !text.chars().any(unsafe_char) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if unsafe_char(c) {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::printable;

    #[test]
    fn control_characters_are_escaped() {
        assert_eq!(printable("plain text ok"), "plain text ok");
        assert_eq!(
            printable("a\nWARN forged\r\t\u{1b}[31m\u{2028}é"),
            "a\\nWARN forged\\r\\t\\u{1b}[31m\\u{2028}é"
        );
    }
}
