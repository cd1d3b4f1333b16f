//! Positions in text, for `file:line:col` messages.

/// 1-based line and column (in characters) of byte `offset` in `text`.
pub fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let mut end = offset.min(text.len());
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    let before = &text[..end];
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, col)
}

/// `FILE:LINE:COL: message` for byte `offset` of `text`, or `FILE: message`
/// when the position is unknown.
pub fn located(path: &std::path::Path, text: &str, offset: Option<usize>, message: &str) -> String {
    match offset {
        Some(o) => {
            let (line, col) = line_col(text, o);
            format!("{}:{line}:{col}: {message}", path.display())
        }
        None => format!("{}: {message}", path.display()),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn table() {
        let text = "ab\ncdé\nf";
        for (offset, expect) in [(0, (1, 1)), (2, (1, 3)), (3, (2, 1)), (7, (2, 4)), (8, (3, 1)), (99, (3, 2))] {
            assert_eq!(super::line_col(text, offset), expect, "offset {offset}");
        }
    }
}
