//! Side-by-side hex + ASCII dumps, for `enet-dtls demo`.
//!
//! ```text
//! offset  plaintext ENet                       | ENet over DTLS
//! 0000    80 01 5e 6d 00 ff 00 01  ..^m....    | 17 fe fd 00 01 00 00 00  ........
//! ```
//!
//! Each side shows [`BYTES_PER_LINE`] bytes per line as hex, then the same bytes as ASCII
//! (printable characters as themselves, everything else as `.`), so a line is under 80 columns.
//! A side that is shorter than the other is padded with blanks.

use std::fmt::Write as _;

/// Bytes per line on each side.
pub(crate) const BYTES_PER_LINE: usize = 8;

/// Width of one side (hex, two spaces, ASCII).
const SIDE_WIDTH: usize = BYTES_PER_LINE * 3 - 1 + 2 + BYTES_PER_LINE;

/// The ASCII form of one byte: itself when printable, else `.`.
pub(crate) fn ascii(byte: u8) -> char {
    if byte.is_ascii_graphic() || byte == b' ' {
        char::from(byte)
    } else {
        '.'
    }
}

/// One side of one line: hex then ASCII of `chunk` (at most [`BYTES_PER_LINE`] bytes), padded
/// to [`SIDE_WIDTH`].
fn side(chunk: &[u8]) -> String {
    let mut hex = String::with_capacity(BYTES_PER_LINE * 3);
    for (i, b) in chunk.iter().enumerate() {
        if i > 0 {
            hex.push(' ');
        }
        let _ = write!(hex, "{b:02x}");
    }
    let text: String = chunk.iter().map(|&b| ascii(b)).collect();
    let mut out = format!("{hex:<width$}  {text}", width = BYTES_PER_LINE * 3 - 1);
    while out.len() < SIDE_WIDTH {
        out.push(' ');
    }
    out
}

/// Renders `left` and `right` side by side under the titles, one line per
/// [`BYTES_PER_LINE`] bytes of the longer one. Every line ends with a newline.
pub(crate) fn side_by_side(
    left_title: &str,
    left: &[u8],
    right_title: &str,
    right: &[u8],
) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "offset  {:<width$} | {}",
        left_title,
        right_title,
        width = SIDE_WIDTH
    );
    let lines = left.len().max(right.len()).div_ceil(BYTES_PER_LINE);
    for line in 0..lines {
        let start = line * BYTES_PER_LINE;
        let chunk = |data: &[u8]| -> Vec<u8> {
            data.iter()
                .skip(start)
                .take(BYTES_PER_LINE)
                .copied()
                .collect()
        };
        let _ = writeln!(
            out,
            "{start:04x}    {} | {}",
            side(&chunk(left)),
            side(&chunk(right)).trim_end()
        );
    }
    out
}

/// The ASCII rendering of a whole buffer (what the ASCII columns show, joined).
#[cfg(test)]
pub(crate) fn ascii_string(data: &[u8]) -> String {
    data.iter().map(|&b| ascii(b)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_line_up_and_text_reads_across_lines() {
        let left = b"\x80\x01send_message\x00\xffhi";
        let right = [0x17u8, 0xfe, 0xfd, 0x00, 0x01];
        let text = side_by_side("plain", left, "dtls", &right);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 1 + 3);
        assert!(lines[0].starts_with("offset  plain"), "{}", lines[0]);
        assert_eq!(
            lines[1],
            "0000    80 01 73 65 6e 64 5f 6d  ..send_m | 17 fe fd 00 01           ....."
        );
        assert!(
            lines[2].starts_with("0008    65 73 73 61 67 65 00 ff  essage.. |"),
            "{}",
            lines[2]
        );
        // The separator is in the same column on every line.
        let col = lines[1].find(" | ").unwrap();
        for l in &lines[1..] {
            assert_eq!(l.find(" | "), Some(col), "{l}");
        }
        // Joining the left ASCII columns gives the buffer's ASCII form back.
        let joined: String = lines[1..]
            .iter()
            .map(|l| l[8 + BYTES_PER_LINE * 3 + 1..col].trim_end_matches(' '))
            .collect();
        assert!(joined.contains("send_message"), "{joined}");
        assert_eq!(ascii_string(left), "..send_message..hi");
    }

    #[test]
    fn empty_input_has_only_the_title() {
        assert_eq!(side_by_side("a", &[], "b", &[]).lines().count(), 1);
    }
}
