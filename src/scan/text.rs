//! Text files (`text/plain`, `text/csv`) have no magic bytes, so a declared text type is only
//! believed if every byte is text: valid UTF-8 (ASCII included), a byte-order mark only at the
//! start, and no NUL or other binary control character (tab, line feed, carriage return and
//! form feed are text). Bytes arrive in pieces of any length; a character split between two
//! pieces is judged whole.

/// Why a text file was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TextFinding {
    /// Not UTF-8.
    Encoding,
    /// NUL, another C0 control or DEL: binary, not text.
    Binary,
}

impl TextFinding {
    pub fn reason(self) -> &'static str {
        match self {
            TextFinding::Encoding => "text is not UTF-8",
            TextFinding::Binary => "text contains binary control bytes",
        }
    }
}

/// Checks a text file as it streams.
#[derive(Debug, Default)]
pub struct TextScanner {
    /// The bytes of a character cut at the end of the last piece.
    carry: Vec<u8>,
    started: bool,
    finding: Option<TextFinding>,
}

fn control(c: char) -> bool {
    (c.is_control() && c.is_ascii() && !matches!(c, '\t' | '\n' | '\r' | '\x0c')) || c == '\u{7f}'
}

impl TextScanner {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn push(&mut self, data: &[u8]) {
        if self.finding.is_some() || data.is_empty() {
            return;
        }
        // Only a character (or byte-order mark) cut by the last piece is copied, joined with this
        // one; otherwise the piece is read where it is.
        let joined;
        let mut bytes: &[u8] = if self.carry.is_empty() {
            data
        } else {
            let mut buf = std::mem::take(&mut self.carry);
            buf.extend_from_slice(data);
            joined = buf;
            &joined
        };
        if !self.started {
            const BOM: &[u8] = b"\xEF\xBB\xBF";
            if bytes.len() < BOM.len() && BOM.starts_with(bytes) {
                // Maybe a byte-order mark cut short: wait for the rest.
                self.carry = bytes.to_vec();
                return;
            }
            self.started = true;
            if let Some(rest) = bytes.strip_prefix(BOM) {
                bytes = rest;
            }
        }
        let (text, tail) = match std::str::from_utf8(bytes) {
            Ok(t) => (t, &[][..]),
            Err(e) => {
                // Cut mid-character at the end: keep those bytes for the next piece.
                if e.error_len().is_none() && bytes.len() - e.valid_up_to() < 4 {
                    let (ok, rest) = bytes.split_at(e.valid_up_to());
                    (std::str::from_utf8(ok).unwrap_or(""), rest)
                } else {
                    self.finding = Some(TextFinding::Encoding);
                    return;
                }
            }
        };
        if text.chars().any(|c| control(c) || c == '\u{FEFF}') {
            self.finding = Some(TextFinding::Binary);
            return;
        }
        self.carry = tail.to_vec();
    }

    pub fn finish(self) -> Result<(), TextFinding> {
        if let Some(f) = self.finding {
            return Err(f);
        }
        if !self.carry.is_empty() {
            return Err(TextFinding::Encoding);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(pieces: &[&[u8]]) -> Result<(), TextFinding> {
        let mut s = TextScanner::new();
        for p in pieces {
            s.push(p);
        }
        s.finish()
    }

    #[test]
    fn text_is_utf8_without_binary_controls() {
        let text = "name,city\r\nZoë,Zürich\tok\n€ and 漢字\x0c\n".as_bytes();
        assert_eq!(check(&[text]), Ok(()));
        for i in 1..text.len() {
            assert_eq!(check(&[&text[..i], &text[i..]]), Ok(()), "split at {i}");
        }
        assert_eq!(check(&[b"\xEF\xBB\xBFhello"]), Ok(()));
        assert_eq!(check(&[b"\xEF\xBB", b"\xBFhello"]), Ok(()));
        assert_eq!(check(&[b"a\0b"]), Err(TextFinding::Binary));
        assert_eq!(check(&[b"a\x1b[31m"]), Err(TextFinding::Binary));
        assert_eq!(check(&[b"a\x7f"]), Err(TextFinding::Binary));
        assert_eq!(
            check(&[b"ok", "x\u{FEFF}y".as_bytes()]),
            Err(TextFinding::Binary)
        );
        assert_eq!(check(&[b"caf\xE9"]), Err(TextFinding::Encoding));
        assert_eq!(check(&[b"cut \xE2\x82"]), Err(TextFinding::Encoding));
        assert_eq!(check(&[b"\xFF\xFE"]), Err(TextFinding::Encoding));
    }
}
