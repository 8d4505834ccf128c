//! PDF active content, found while the bytes stream by: the names that make a reader run
//! code, act on its own or carry other files (`/JavaScript`, `/JS`, `/OpenAction`, `/AA`,
//! `/Launch`, `/EmbeddedFile`, `/RichMedia`, `/XFA`, `/SubmitForm`, `/ImportData`, `/GoToR`).
//!
//! Names are matched on every byte outside stream data, with `#xx` escapes decoded first
//! (`/J#61vaScript` is `/JavaScript`), inside strings and comments too: readers find objects
//! through the cross-reference table, by offset, so an object can sit where a sequential parse
//! would see a comment or a string, and a check that trusted that parse could be walked
//! around. A small tokenizer follows the syntax only to find streams: their data (images,
//! fonts, page contents: binary, where a name would be noise) is skipped, except object
//! streams (`/Type /ObjStm`), where PDF 1.5+ files keep their dictionaries compressed: those
//! are inflated (`/FlateDecode`, bounded) and scanned the same way. An object header
//! (`N G obj` at the start of a line) inside what looked like stream data ends it, for the
//! same reason. What cannot be inspected is a finding
//! of its own: an encrypted file (`/Encrypt`; its object streams are ciphertext), an object
//! stream with any other filter, or one that inflates past the bound.
//!
//! The state is a few small buffers whatever the file's size: bytes are pushed in pieces of
//! any length, and a name or keyword split between two pieces is still recognised.

use flate2::{Decompress, FlushDecompress, Status};

/// The names that make a PDF active.
pub const ACTIVE_NAMES: [&str; 11] = [
    "JavaScript",
    "JS",
    "OpenAction",
    "AA",
    "Launch",
    "EmbeddedFile",
    "RichMedia",
    "XFA",
    "SubmitForm",
    "ImportData",
    "GoToR",
];

/// Most bytes all object streams of one file may inflate to (a bomb past it is a finding).
pub const MAX_INFLATED: u64 = 64 << 20;
/// Longest name kept (the PDF limit is 127 bytes).
const MAX_NAME: usize = 127;
const ENDSTREAM: &[u8; 9] = b"endstream";
/// Bytes of stream data remembered to recognise an object header in it.
const TAIL: usize = 32;

/// Why a PDF was found active or uninspectable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Finding {
    /// An active-content name, as decoded.
    Active(&'static str),
    /// The file is encrypted: its compressed objects cannot be inspected.
    Encrypted,
    /// An object stream with a filter other than FlateDecode, or a corrupt one.
    Uninspectable,
    /// Object streams inflating past [`MAX_INFLATED`].
    Bomb,
}

impl Finding {
    /// A short, fixed reason for records, events and logs.
    pub fn reason(&self) -> &'static str {
        match self {
            Finding::Active(name) => name,
            Finding::Encrypted => "encrypted",
            Finding::Uninspectable => "uninspectable object stream",
            Finding::Bomb => "object streams too large",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Lex {
    Normal,
    Comment,
    /// A literal string, `depth` parentheses deep; `escape` after a backslash.
    Str {
        depth: u32,
        escape: bool,
    },
    HexStr,
    /// A name being read (its bytes in `name`); `hex` counts pending `#xx` digits.
    Name {
        hex: u8,
    },
    /// A keyword or number being read (in `word`).
    Word,
    /// After the `stream` keyword: skipping to the end of its line.
    StreamEol,
    /// Inside stream data; `matched` bytes of `endstream` seen.
    Stream {
        matched: usize,
    },
}

/// The tokenizer over one byte sequence (a file, or an inflated object stream).
#[derive(Debug)]
struct Lexer {
    state: Lex,
    name: Vec<u8>,
    hex_digit: u8,
    word: Vec<u8>,
    /// `<` seen: the next byte decides between a dictionary and a hex string.
    lt: bool,
    gt: bool,
    /// Dictionary nesting, and what the outermost open (or last closed) one said.
    dict_depth: u32,
    dict_objstm: bool,
    dict_flate: bool,
    dict_other_filter: bool,
    /// Whether stream data may occur (not inside an object stream).
    streams: bool,
    /// Stream data bytes decided on (see [`Step::StreamData`]).
    spill: Vec<u8>,
    /// A data byte that arrived with the start of the stream (no end of line after `stream`).
    first: Option<u8>,
}

impl Lexer {
    fn new(streams: bool) -> Self {
        Self {
            state: Lex::Normal,
            name: Vec::new(),
            hex_digit: 0,
            word: Vec::new(),
            lt: false,
            gt: false,
            dict_depth: 0,
            dict_objstm: false,
            dict_flate: false,
            dict_other_filter: false,
            streams,
            spill: Vec::new(),
            first: None,
        }
    }
}

fn is_delimiter(b: u8) -> bool {
    matches!(
        b,
        b'(' | b')' | b'<' | b'>' | b'[' | b']' | b'{' | b'}' | b'/' | b'%'
    )
}

fn is_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\r' | b'\n' | b'\x0c' | b'\0')
}

fn hex_value(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// What one lexer step asks its owner to do with stream data.
enum Step {
    /// Nothing to do.
    None,
    /// Stream data begins; `objstm` and how it is filtered say whether to inflate it.
    StreamStart,
    /// Stream data is waiting in the lexer's `spill`.
    StreamData,
    /// The stream ended.
    StreamEnd,
}

impl Lexer {
    /// A name ended: what it says about the open dictionary (findings come from [`Names`]).
    fn name_done(&mut self) {
        let name = std::mem::take(&mut self.name);
        if self.dict_depth == 0 {
            return;
        }
        match std::str::from_utf8(&name).unwrap_or("") {
            "ObjStm" => self.dict_objstm = true,
            "FlateDecode" | "Fl" => self.dict_flate = true,
            "LZWDecode" | "LZW" | "ASCII85Decode" | "A85" | "ASCIIHexDecode" | "AHx"
            | "RunLengthDecode" | "RL" | "Crypt" | "DCTDecode" | "JPXDecode" | "JBIG2Decode"
            | "CCITTFaxDecode" => self.dict_other_filter = true,
            _ => {}
        }
    }

    fn word_done(&mut self) -> bool {
        let is_stream = self.word == b"stream";
        self.word.clear();
        is_stream && self.streams
    }

    /// Handles the byte after a `<` or `>`.
    fn angle(&mut self, b: u8) -> bool {
        if self.lt {
            self.lt = false;
            if b == b'<' {
                if self.dict_depth == 0 {
                    self.dict_objstm = false;
                    self.dict_flate = false;
                    self.dict_other_filter = false;
                }
                self.dict_depth += 1;
                return true;
            }
            self.state = Lex::HexStr;
            // This byte belongs to the hex string.
            if b == b'>' {
                self.state = Lex::Normal;
            }
            return true;
        }
        if self.gt {
            self.gt = false;
            if b == b'>' {
                self.dict_depth = self.dict_depth.saturating_sub(1);
                return true;
            }
        }
        false
    }

    fn step(&mut self, b: u8) -> Step {
        match self.state {
            Lex::Stream { matched } => {
                if b == ENDSTREAM[matched] {
                    if matched + 1 == ENDSTREAM.len() {
                        self.state = Lex::Normal;
                        return Step::StreamEnd;
                    }
                    self.state = Lex::Stream {
                        matched: matched + 1,
                    };
                    return Step::None;
                }
                // Not the keyword after all: the longest tail of what matched (plus this
                // byte) that still begins it stays pending; the rest was stream data.
                let mut buf = [0u8; ENDSTREAM.len()];
                buf[..matched].copy_from_slice(&ENDSTREAM[..matched]);
                buf[matched] = b;
                let window = &buf[..=matched];
                let keep = (1..=window.len().min(ENDSTREAM.len() - 1))
                    .rev()
                    .find(|&n| window[window.len() - n..] == ENDSTREAM[..n])
                    .unwrap_or(0);
                self.spill.extend_from_slice(&window[..window.len() - keep]);
                self.state = Lex::Stream { matched: keep };
                return Step::StreamData;
            }
            Lex::StreamEol => {
                if b == b'\n' {
                    self.state = Lex::Stream { matched: 0 };
                    return Step::StreamStart;
                }
                if !is_space(b) {
                    // No end of line after `stream`: this byte is the first of the data.
                    self.state = Lex::Stream { matched: 0 };
                    self.first = Some(b);
                    return Step::StreamStart;
                }
                return Step::None;
            }
            Lex::Comment => {
                if b == b'\r' || b == b'\n' {
                    self.state = Lex::Normal;
                }
                return Step::None;
            }
            Lex::Str { depth, escape } => {
                self.state = match (escape, b) {
                    (true, _) => Lex::Str {
                        depth,
                        escape: false,
                    },
                    (false, b'\\') => Lex::Str {
                        depth,
                        escape: true,
                    },
                    (false, b'(') => Lex::Str {
                        depth: depth + 1,
                        escape: false,
                    },
                    (false, b')') if depth <= 1 => Lex::Normal,
                    (false, b')') => Lex::Str {
                        depth: depth - 1,
                        escape: false,
                    },
                    _ => Lex::Str { depth, escape },
                };
                return Step::None;
            }
            Lex::HexStr => {
                if b == b'>' {
                    self.state = Lex::Normal;
                }
                return Step::None;
            }
            Lex::Name { hex } => {
                if hex > 0 {
                    if let Some(v) = hex_value(b) {
                        self.hex_digit = self.hex_digit * 16 + v;
                        if hex == 1 {
                            if self.name.len() < MAX_NAME {
                                self.name.push(self.hex_digit);
                            }
                            self.state = Lex::Name { hex: 0 };
                        } else {
                            self.state = Lex::Name { hex: 1 };
                        }
                        return Step::None;
                    }
                    // A malformed escape ends the escape; the byte is read normally.
                    self.state = Lex::Name { hex: 0 };
                }
                if b == b'#' {
                    self.hex_digit = 0;
                    self.state = Lex::Name { hex: 2 };
                    return Step::None;
                }
                if !is_space(b) && !is_delimiter(b) {
                    if self.name.len() < MAX_NAME {
                        self.name.push(b);
                    }
                    return Step::None;
                }
                self.name_done();
                self.state = Lex::Normal;
                // The delimiter is read as in Normal.
            }
            Lex::Word => {
                if !is_space(b) && !is_delimiter(b) {
                    if self.word.len() < 16 {
                        self.word.push(b);
                    }
                    return Step::None;
                }
                self.state = Lex::Normal;
                if self.word_done() {
                    self.state = Lex::StreamEol;
                    return self.step(b);
                }
            }
            Lex::Normal => {}
        }
        // Normal.
        if (self.lt || self.gt) && self.angle(b) {
            return Step::None;
        }
        match b {
            b'%' => self.state = Lex::Comment,
            b'(' => {
                self.state = Lex::Str {
                    depth: 1,
                    escape: false,
                }
            }
            b'<' => self.lt = true,
            b'>' => self.gt = true,
            b'/' => {
                self.name.clear();
                self.state = Lex::Name { hex: 0 };
            }
            _ if is_space(b) || is_delimiter(b) => {}
            _ => {
                self.word.clear();
                self.word.push(b);
                self.state = Lex::Word;
            }
        }
        Step::None
    }

    /// Ends the input.
    fn finish(&mut self) {
        if let Lex::Name { .. } = self.state {
            self.name_done();
        }
        self.state = Lex::Normal;
    }
}

/// Finds names in any bytes (see the module docs): `/` starts one, a delimiter or white space
/// ends it, `#xx` escapes are decoded.
#[derive(Debug, Default)]
struct Names {
    name: Option<Vec<u8>>,
    /// Pending `#xx` digits, and the value so far.
    hex: u8,
    hex_value: u8,
    /// Where the current name's bytes begin (after the `/`), and how many raw bytes it has.
    start: u64,
    raw: u32,
    /// Active names found, as spans of raw bytes (only meaningful for the file's own bytes).
    spans: Vec<Span>,
}

/// Raw bytes of one active name in the file: offset of its first byte after `/`, and length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Span {
    pub start: u64,
    pub len: u32,
}

impl Names {
    /// The next byte, at offset `at` of its byte sequence.
    fn push(&mut self, b: u8, at: u64, findings: &mut Vec<Finding>) {
        if let Some(name) = &mut self.name {
            if !is_space(b) && !is_delimiter(b) {
                self.raw = self.raw.saturating_add(1);
            }
            if self.hex > 0 {
                if let Some(v) = hex_value(b) {
                    self.hex_value = self.hex_value * 16 + v;
                    self.hex -= 1;
                    if self.hex == 0 && name.len() < MAX_NAME {
                        name.push(self.hex_value);
                    }
                    return;
                }
                self.hex = 0;
            }
            if b == b'#' {
                self.hex = 2;
                self.hex_value = 0;
                return;
            }
            if !is_space(b) && !is_delimiter(b) {
                if name.len() < MAX_NAME {
                    name.push(b);
                }
                return;
            }
            self.done(findings);
        }
        if b == b'/' {
            self.name = Some(Vec::new());
            self.start = at + 1;
            self.raw = 0;
        }
    }

    fn done(&mut self, findings: &mut Vec<Finding>) {
        let Some(name) = self.name.take() else { return };
        self.hex = 0;
        if let Ok(n) = std::str::from_utf8(&name) {
            if let Some(active) = ACTIVE_NAMES.iter().find(|a| **a == n) {
                findings.push(Finding::Active(active));
                self.spans.push(Span {
                    start: self.start,
                    len: self.raw,
                });
            }
            if n == "Encrypt" {
                findings.push(Finding::Encrypted);
            }
        }
    }
}

/// How many leading bytes of `data`, plain stream data with no part of `endstream` matched
/// yet (`before`: the stream data before it), need no look byte by byte: those before the
/// first `endstream` and before the `j` of the first `obj` (which may end an object header),
/// including an `obj` begun by `before`. The last bytes, which could begin either with the
/// next piece, are left to the bytewise path too.
fn plain_stream_run(before: &[u8], data: &[u8]) -> usize {
    if before.ends_with(b"ob") && data.starts_with(b"j") {
        return 0;
    }
    if before.ends_with(b"o") && data.starts_with(b"bj") {
        return 1;
    }
    static END: std::sync::LazyLock<memchr::memmem::Finder<'static>> =
        std::sync::LazyLock::new(|| memchr::memmem::Finder::new(ENDSTREAM));
    static OBJ: std::sync::LazyLock<memchr::memmem::Finder<'static>> =
        std::sync::LazyLock::new(|| memchr::memmem::Finder::new(b"obj"));
    let limit = END
        .find(data)
        .unwrap_or(data.len().saturating_sub(ENDSTREAM.len() - 1));
    let searched = &data[..(limit + 2).min(data.len())];
    match OBJ.find(searched) {
        Some(at) => (at + 2).min(limit),
        None => limit,
    }
}

/// Whether the last [`TAIL`] bytes of stream data end with an object header at the start of a
/// line (`\n12 0 obj`).
fn object_header(tail: &[u8]) -> bool {
    let tail = &tail[tail.len().saturating_sub(TAIL)..];
    let Some(rest) = tail.strip_suffix(b"obj") else {
        return false;
    };
    let mut i = rest.len();
    let mut groups = 0;
    while groups < 2 {
        let end = i;
        while i > 0 && rest[i - 1].is_ascii_whitespace() && rest[i - 1] != b'\n' {
            i -= 1;
        }
        if i == end {
            return false; // No white space before the number.
        }
        let digits_end = i;
        while i > 0 && rest[i - 1].is_ascii_digit() {
            i -= 1;
        }
        if i == digits_end {
            return false;
        }
        groups += 1;
    }
    i > 0 && matches!(rest[i - 1], b'\n' | b'\r')
}

/// An object stream being inflated and scanned.
#[derive(Debug)]
struct ObjStm {
    inflater: Decompress,
    names: Names,
    done: bool,
}

/// The PDF scanner: push the file's bytes in order, then [`PdfScanner::finish`].
#[derive(Debug)]
pub struct PdfScanner {
    outer: Lexer,
    names: Names,
    /// The last bytes of stream data, to notice an object header inside it.
    tail: Vec<u8>,
    objstm: Option<ObjStm>,
    /// Bytes of the current object stream not yet given to the inflater.
    pending: Vec<u8>,
    inflated: u64,
    findings: Vec<Finding>,
    /// Bytes of the file pushed before the current piece.
    offset: u64,
    /// Whether an active name was found inside an object stream (compressed: it cannot be
    /// disarmed in place).
    compressed_active: bool,
}

/// What the scan of a whole file found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    /// Every finding, in the order found (empty: not active).
    pub findings: Vec<Finding>,
    /// Where the active names are in the file's own bytes (outside object streams).
    pub spans: Vec<Span>,
    /// An active name sat inside a compressed object stream.
    pub compressed_active: bool,
}

impl Report {
    /// Whether every finding is an active name that [`disarm`] can neutralise in place.
    pub fn disarmable(&self) -> bool {
        !self.compressed_active
            && self
                .findings
                .iter()
                .all(|f| matches!(f, Finding::Active(_)))
    }
}

impl Default for PdfScanner {
    fn default() -> Self {
        Self::new()
    }
}

impl PdfScanner {
    pub fn new() -> Self {
        Self {
            outer: Lexer::new(true),
            names: Names::default(),
            tail: Vec::new(),
            objstm: None,
            pending: Vec::new(),
            inflated: 0,
            findings: Vec::new(),
            offset: 0,
            compressed_active: false,
        }
    }

    /// Scans the next piece of the file.
    pub fn push(&mut self, data: &[u8]) {
        let mut i = 0;
        while i < data.len() {
            // Plain stream data (images, fonts, page contents) is most of a PDF: skip in bulk
            // to the next `endstream` or object header.
            if self.objstm.is_none() && self.outer.state == (Lex::Stream { matched: 0 }) {
                let rest = &data[i..];
                let skip = plain_stream_run(&self.tail, rest);
                if skip > 0 {
                    self.keep_tail(&rest[..skip]);
                    i += skip;
                    // The byte the run stopped at is looked at now (a `j` would be skipped by
                    // the next run).
                    if i == data.len() {
                        continue;
                    }
                }
            }
            let b = data[i];
            i += 1;
            let in_stream = matches!(self.outer.state, Lex::Stream { .. });
            if !in_stream {
                let at = self.offset + (i as u64 - 1);
                self.names.push(b, at, &mut self.findings);
            } else {
                self.keep_tail(&[b]);
                if b == b'j' && object_header(&self.tail) {
                    // Not stream data after all: an object a reader finds by its offset.
                    self.outer.state = Lex::Normal;
                    self.outer.spill.clear();
                    self.objstm = None;
                    self.tail.clear();
                    continue;
                }
            }
            match self.outer.step(b) {
                Step::None => {}
                Step::StreamStart => {
                    self.tail.clear();
                    let o = &self.outer;
                    if o.dict_objstm {
                        if o.dict_flate && !o.dict_other_filter {
                            self.objstm = Some(ObjStm {
                                inflater: Decompress::new(true),
                                names: Names::default(),
                                done: false,
                            });
                        } else {
                            self.findings.push(Finding::Uninspectable);
                        }
                    }
                    if let Some(first) = self.outer.first.take() {
                        self.data(&[first]);
                    }
                }
                Step::StreamData => {
                    let spill = std::mem::take(&mut self.outer.spill);
                    self.data(&spill);
                }
                Step::StreamEnd => {
                    if self.objstm.is_some() {
                        self.inflate();
                        if let Some(mut s) = self.objstm.take() {
                            s.names.done(&mut self.findings);
                            self.compressed_active |= !s.names.spans.is_empty();
                        }
                    }
                }
            }
        }
        self.offset += data.len() as u64;
    }

    /// Remembers the last bytes of stream data (an object header is at most 32 bytes long).
    fn keep_tail(&mut self, bytes: &[u8]) {
        let take = bytes.len().min(TAIL);
        self.tail.extend_from_slice(&bytes[bytes.len() - take..]);
        if self.tail.len() > 2 * TAIL {
            let cut = self.tail.len() - TAIL;
            self.tail.drain(..cut);
        }
    }

    /// Stream data: kept for the inflater when the stream is an object stream.
    fn data(&mut self, bytes: &[u8]) {
        if self.objstm.is_some() {
            self.pending.extend_from_slice(bytes);
            if self.pending.len() >= 16 * 1024 {
                self.inflate();
            }
        }
    }

    /// Inflates what is pending of the current object stream and scans the output.
    fn inflate(&mut self) {
        let Some(s) = &mut self.objstm else { return };
        let mut input: &[u8] = &self.pending;
        let mut out = vec![0u8; 32 * 1024];
        while !input.is_empty() && !s.done {
            let before_in = s.inflater.total_in();
            let before_out = s.inflater.total_out();
            let status = s
                .inflater
                .decompress(input, &mut out, FlushDecompress::None);
            let used = usize::try_from(s.inflater.total_in() - before_in).unwrap_or(input.len());
            let made = usize::try_from(s.inflater.total_out() - before_out).unwrap_or(0);
            input = &input[used.min(input.len())..];
            self.inflated += made as u64;
            if self.inflated > MAX_INFLATED {
                self.findings.push(Finding::Bomb);
                s.done = true;
                break;
            }
            for &b in &out[..made] {
                s.names.push(b, 0, &mut self.findings);
            }
            match status {
                Ok(Status::StreamEnd) => s.done = true,
                Ok(Status::Ok) => {}
                Ok(Status::BufError) if used == 0 && made == 0 => break,
                Ok(Status::BufError) => {}
                Err(_) => {
                    self.findings.push(Finding::Uninspectable);
                    s.done = true;
                }
            }
        }
        self.pending.clear();
    }

    /// The end of the file: every finding, in the order found (empty: not active).
    pub fn finish(self) -> Vec<Finding> {
        self.report().findings
    }

    /// The end of the file: the findings, and where the active names are.
    pub fn report(mut self) -> Report {
        self.inflate();
        if let Some(s) = &self.objstm {
            self.compressed_active |= !s.names.spans.is_empty();
        }
        self.outer.finish();
        self.names.done(&mut self.findings);
        let mut seen = Vec::new();
        for f in self.findings {
            if !seen.contains(&f) {
                seen.push(f);
            }
        }
        Report {
            findings: seen,
            spans: self.names.spans,
            compressed_active: self.compressed_active,
        }
    }
}

/// Neutralises the active names at `spans` in `file` without moving a byte: every letter of
/// each name has its case flipped (names are case-sensitive, so `/JavaScript` becomes
/// `/jAVAsCRIPT`, which no reader acts on). A letter written as a `#xx` escape is flipped by
/// rewriting the escape's first digit (`#4A` → `#6A`), so escapes cannot hide a letter from it.
/// Returns how many names were changed.
pub fn disarm(file: &mut [u8], spans: &[Span]) -> usize {
    let mut changed = 0;
    for span in spans {
        let Ok(start) = usize::try_from(span.start) else {
            continue;
        };
        let end = start.saturating_add(span.len as usize).min(file.len());
        let Some(name) = file.get_mut(start..end) else {
            continue;
        };
        let mut i = 0;
        while i < name.len() {
            if name[i] == b'#'
                && let (Some(h), Some(l)) = (
                    name.get(i + 1).copied().and_then(hex_value),
                    name.get(i + 2).copied().and_then(hex_value),
                )
            {
                let decoded = h * 16 + l;
                if decoded.is_ascii_alphabetic() {
                    name[i + 1] = b"0123456789ABCDEF"[usize::from((decoded ^ 0x20) >> 4)];
                }
                i += 3;
                continue;
            }
            if name[i].is_ascii_alphabetic() {
                name[i] ^= 0x20;
            }
            i += 1;
        }
        changed += 1;
    }
    changed
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn scan(pieces: &[&[u8]]) -> Vec<Finding> {
        let mut s = PdfScanner::new();
        for p in pieces {
            s.push(p);
        }
        s.finish()
    }

    fn deflate(data: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(data).expect("deflate");
        e.finish().expect("deflate")
    }

    #[test]
    fn plain_and_escaped_names_are_found_split_anywhere() {
        let pdf = b"%PDF-1.7\n1 0 obj << /Type /Catalog /OpenAction 2 0 R >> endobj\n\
                    2 0 obj << /S /J#61vaScript /JS (app.alert\\(1\\)) >> endobj\n";
        let found = scan(&[pdf]);
        assert_eq!(
            found,
            vec![
                Finding::Active("OpenAction"),
                Finding::Active("JavaScript"),
                Finding::Active("JS")
            ]
        );
        // Every split point gives the same answer.
        for i in 1..pdf.len() {
            assert_eq!(scan(&[&pdf[..i], &pdf[i..]]), found, "split at {i}");
        }
    }

    #[test]
    fn names_in_stream_data_do_not_count_but_strings_and_comments_do() {
        let pdf = b"%PDF-1.4\n1 0 obj << /Title (About JavaScript) /Length 20 >>\n\
                    stream\nBT /JS 12 Tf (x) Tj /AA ET\nendstream endobj\n\
                    2 0 obj << /Subject <2F4A53> >> endobj\n";
        assert_eq!(scan(&[pdf]), vec![]);
        // Readers find objects by offset: one inside a comment or a string still runs.
        let comment = b"%PDF-1.4\n% 2 0 obj << /S /JavaScript /JS (x) >> endobj\n";
        assert_eq!(scan(&[comment])[0], Finding::Active("JavaScript"));
        let string = b"%PDF-1.4\n1 0 obj (unbalanced \n2 0 obj << /S /Launch >> endobj\n";
        assert_eq!(scan(&[string]), vec![Finding::Active("Launch")]);
        // An object header inside what looked like stream data ends the stream.
        let hidden = b"%PDF-1.4\n1 0 obj << /Length 5 >>\nstream\nxxxxx\n\
                       2 0 obj << /OpenAction 3 0 R >> endobj\nendstream\n";
        assert_eq!(scan(&[hidden]), vec![Finding::Active("OpenAction")]);
    }

    #[test]
    fn names_inside_compressed_object_streams_are_found() {
        let inner = deflate(
            b"1 0 << /S /Launch /F (calc.exe) >> 2 0 << /Names << /EmbeddedFiles 3 0 R >> >>",
        );
        let mut pdf =
            b"%PDF-1.5\n5 0 obj << /Type /ObjStm /N 2 /First 8 /Filter /FlateDecode /Length "
                .to_vec();
        pdf.extend_from_slice(inner.len().to_string().as_bytes());
        pdf.extend_from_slice(b" >>\nstream\r\n");
        pdf.extend_from_slice(&inner);
        pdf.extend_from_slice(b"\nendstream\nendobj\n%%EOF\n");
        assert_eq!(scan(&[&pdf]), vec![Finding::Active("Launch")]);
        for i in (1..pdf.len()).step_by(7) {
            assert_eq!(
                scan(&[&pdf[..i], &pdf[i..]]),
                vec![Finding::Active("Launch")]
            );
        }
        // The same bytes in a stream that is not an object stream are not inspected.
        let plain = String::from_utf8_lossy(&pdf)
            .replace("/ObjStm", "/XObject")
            .into_bytes();
        assert_eq!(scan(&[&plain]), vec![]);
    }

    #[test]
    fn what_cannot_be_inspected_is_a_finding() {
        let pdf =
            b"%PDF-1.5\n5 0 obj << /Type /ObjStm /Filter /LZWDecode >>\nstream\nxx\nendstream\n";
        assert_eq!(scan(&[pdf]), vec![Finding::Uninspectable]);
        let pdf = b"%PDF-1.5\ntrailer << /Root 1 0 R /Encrypt 9 0 R >>\n";
        assert_eq!(scan(&[pdf]), vec![Finding::Encrypted]);
        let pdf = b"%PDF-1.5\n5 0 obj << /Type /ObjStm /Filter /FlateDecode >>\nstream\nnot zlib at all\nendstream\n";
        assert_eq!(scan(&[pdf]), vec![Finding::Uninspectable]);
        // A bomb: a small stream inflating past the bound.
        let bomb = deflate(&vec![b' '; (MAX_INFLATED + 1024) as usize]);
        let mut pdf =
            b"%PDF-1.5\n5 0 obj << /Type /ObjStm /Filter /FlateDecode >>\nstream\n".to_vec();
        pdf.extend_from_slice(&bomb);
        pdf.extend_from_slice(b"\nendstream\n");
        assert_eq!(scan(&[&pdf]), vec![Finding::Bomb]);
    }

    #[test]
    fn every_active_name_is_recognised() {
        for n in ACTIVE_NAMES {
            let pdf = format!("%PDF-1.7\n1 0 obj << /{n} 2 0 R >> endobj\n");
            assert_eq!(scan(&[pdf.as_bytes()]), vec![Finding::Active(n)], "{n}");
        }
        // A longer name that starts with one is another name.
        assert_eq!(scan(&[b"<< /JSX 1 /AAB 2 >>"]), vec![]);
    }

    fn report(pieces: &[&[u8]]) -> Report {
        let mut s = PdfScanner::new();
        for p in pieces {
            s.push(p);
        }
        s.report()
    }

    #[test]
    fn disarm_neutralises_every_active_name_in_place() {
        let pdf = b"%PDF-1.7\n1 0 obj << /Type /Catalog /OpenAction 2 0 R /AA 3 0 R >> endobj\n\
                    2 0 obj << /S /J#61vaScript /JS (app.alert\\(1\\)) >> endobj\n\
                    3 0 obj << /S /#4A#53 /Length 9 >>\nstream\n/JS /Launch\nendstream endobj\n";
        // Found the same way whatever the pieces, with the same spans.
        let whole = report(&[pdf]);
        assert_eq!(whole.findings.len(), 4, "{:?}", whole.findings);
        assert!(whole.disarmable());
        for i in (1..pdf.len()).step_by(5) {
            assert_eq!(report(&[&pdf[..i], &pdf[i..]]), whole, "split at {i}");
        }
        let mut out = pdf.to_vec();
        assert_eq!(disarm(&mut out, &whole.spans), 5);
        assert_eq!(out.len(), pdf.len(), "no byte moved");
        assert_eq!(scan(&[&out]), vec![], "{}", String::from_utf8_lossy(&out));
        let text = String::from_utf8_lossy(&out);
        assert!(text.contains("/oPENaCTION 2 0 R /aa 3 0 R"), "{text}");
        assert!(text.contains("/j#41VAsCRIPT /js (app"), "{text}");
        assert!(text.contains("/#6A#73 "), "{text}");
        // Stream data is not touched; every byte outside the names is the same.
        assert!(text.contains("stream\n/JS /Launch\nendstream"), "{text}");
        let changed: usize = pdf.iter().zip(&out).filter(|(a, b)| a != b).count();
        assert_eq!(changed, "OpenAction".len() + 2 + 10 + 2 + 2, "{text}");
    }

    #[test]
    fn names_in_object_streams_and_encryption_are_not_disarmable() {
        let inner = deflate(b"1 0 << /S /Launch >>");
        let mut pdf =
            b"%PDF-1.5\n5 0 obj << /Type /ObjStm /N 1 /First 4 /Filter /FlateDecode /Length "
                .to_vec();
        pdf.extend_from_slice(inner.len().to_string().as_bytes());
        pdf.extend_from_slice(b" >>\nstream\r\n");
        pdf.extend_from_slice(&inner);
        pdf.extend_from_slice(b"\nendstream\nendobj\n%%EOF\n");
        let r = report(&[&pdf]);
        assert!(r.compressed_active && !r.disarmable(), "{r:?}");
        let encrypted = b"%PDF-1.7\ntrailer << /Encrypt 9 0 R /OpenAction 2 0 R >>\n";
        let r = report(&[encrypted]);
        assert!(!r.disarmable(), "{r:?}");
    }

    fn pieces() -> impl proptest::strategy::Strategy<Value = Vec<u8>> {
        use proptest::prelude::*;
        const FRAGMENTS: [&[u8]; 13] = [
            b"stream\n",
            b"stream\r\n",
            b"endstream",
            b"eendstream",
            b"endstrea",
            b"obj",
            b"\n1 0 obj",
            b"\n12 0 obj << /OpenAction 3 0 R >>",
            b"/JavaScript",
            b"/J#61vaScript",
            b"<< /Length 5 >>",
            b"(",
            b"%",
        ];
        let fragment = prop_oneof![
            3 => proptest::sample::select(&FRAGMENTS[..]).prop_map(<[u8]>::to_vec),
            1 => proptest::collection::vec(
                prop_oneof![
                    any::<u8>(),
                    proptest::sample::select(b"endstramobj0123 \n\r/".to_vec())
                ],
                0..300
            ),
        ];
        proptest::collection::vec(fragment, 0..40).prop_map(|f| {
            let mut pdf = b"%PDF-1.7\n1 0 obj << /Length 9 >>\nstream\n".to_vec();
            pdf.extend(f.concat());
            pdf
        })
    }

    proptest::proptest! {
        /// Stream data skipped in bulk gives exactly what a byte-by-byte scan gives (a piece of
        /// one byte is always scanned bytewise), wherever the pieces are cut.
        #[test]
        fn bulk_skipping_of_stream_data_changes_nothing(
            pdf in pieces(),
            cuts in proptest::collection::vec(0usize..10_000, 0..6),
        ) {
            let bytewise: Vec<&[u8]> = pdf.chunks(1).collect();
            let reference = report(&bytewise);
            proptest::prop_assert_eq!(report(&[&pdf]), reference.clone());
            let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c % (pdf.len() + 1)).collect();
            cuts.sort_unstable();
            let mut split = Vec::new();
            let mut from = 0;
            for c in cuts {
                split.push(&pdf[from..c]);
                from = c;
            }
            split.push(&pdf[from..]);
            proptest::prop_assert_eq!(report(&split), reference);
        }
    }
}
