//! Office Open XML documents (docx, xlsx, pptx): a zip container whose `[Content_Types].xml`
//! must name the declared format's main part. Refused: a container that is not a readable zip,
//! one that holds another format, macros (`vbaProject.bin`, a macro-enabled main part) or
//! ActiveX controls unless the bucket allows them, and zip bombs. Every entry is inflated to
//! measure it (the sizes an entry declares can lie): more than [`MAX_ENTRIES`] entries, more
//! than [`MAX_INFLATED`] bytes in all, or an entry past 1 MiB inflating more than
//! [`MAX_RATIO`] times its compressed size is a bomb.
//!
//! The zip's directory is at its end, so the document is held in memory until its last byte
//! (the bucket's size limit bounds it).

use std::io::{Cursor, Read};

/// Most entries in one document.
pub const MAX_ENTRIES: usize = 10_000;
/// Most bytes all entries of one document may inflate to.
pub const MAX_INFLATED: u64 = 256 << 20;
/// Most an entry may inflate relative to its compressed size, once past [`RATIO_GRACE`].
pub const MAX_RATIO: u64 = 100;
const RATIO_GRACE: u64 = 1 << 20;
/// Longest `[Content_Types].xml` read.
const MAX_CONTENT_TYPES: u64 = 1 << 20;

/// Why a document was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OfficeFinding {
    /// Not a readable zip, or no `[Content_Types].xml`.
    Corrupt,
    /// The container holds another format than the declared one.
    WrongFormat,
    /// Macros or ActiveX controls.
    Macros,
    /// Too many entries, or entries inflating too far.
    Bomb,
}

impl OfficeFinding {
    pub fn reason(self) -> &'static str {
        match self {
            OfficeFinding::Corrupt => "office document unreadable",
            OfficeFinding::WrongFormat => "office document of another format",
            OfficeFinding::Macros => "office document with macros",
            OfficeFinding::Bomb => "office document inflates too far (zip bomb)",
        }
    }
}

/// The main part's content types of a declared format (document and template).
fn main_parts(content_type: &str) -> &'static [&'static str] {
    match content_type {
        crate::mime::DOCX => &[
            "application/vnd.openxmlformats-officedocument.wordprocessingml.document.main+xml",
            "application/vnd.openxmlformats-officedocument.wordprocessingml.template.main+xml",
        ],
        crate::mime::XLSX => &[
            "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml",
            "application/vnd.openxmlformats-officedocument.spreadsheetml.template.main+xml",
        ],
        crate::mime::PPTX => &[
            "application/vnd.openxmlformats-officedocument.presentationml.presentation.main+xml",
            "application/vnd.openxmlformats-officedocument.presentationml.template.main+xml",
            "application/vnd.openxmlformats-officedocument.presentationml.slideshow.main+xml",
        ],
        _ => &[],
    }
}

/// Collects a document and judges it at the end.
#[derive(Debug)]
pub struct OfficeScanner {
    content_type: &'static str,
    allow_macros: bool,
    data: Vec<u8>,
}

impl OfficeScanner {
    pub fn new(content_type: &'static str, allow_macros: bool) -> Self {
        Self {
            content_type,
            allow_macros,
            data: Vec::new(),
        }
    }

    pub fn push(&mut self, data: &[u8]) {
        self.data.extend_from_slice(data);
    }

    pub fn finish(self) -> Result<(), OfficeFinding> {
        check(self.content_type, self.allow_macros, &self.data)
    }
}

/// Checks a whole document of the declared `content_type` (see the module docs).
pub fn check(content_type: &str, allow_macros: bool, data: &[u8]) -> Result<(), OfficeFinding> {
    let mut zip = zip::ZipArchive::new(Cursor::new(data)).map_err(|_| OfficeFinding::Corrupt)?;
    if zip.len() > MAX_ENTRIES {
        return Err(OfficeFinding::Bomb);
    }
    let mut inflated_total = 0u64;
    let mut content_types = None;
    let mut buf = vec![0u8; 64 * 1024];
    for i in 0..zip.len() {
        let mut entry = zip.by_index(i).map_err(|_| OfficeFinding::Corrupt)?;
        let name = entry
            .name()
            .map_err(|_| OfficeFinding::Corrupt)?
            .to_ascii_lowercase();
        if !allow_macros && is_macro_part(&name) {
            return Err(OfficeFinding::Macros);
        }
        let compressed = entry.compressed_size().max(1);
        let keep = name == "[content_types].xml";
        let mut kept = Vec::new();
        let mut inflated = 0u64;
        loop {
            let n = entry.read(&mut buf).map_err(|_| OfficeFinding::Corrupt)?;
            if n == 0 {
                break;
            }
            inflated += n as u64;
            inflated_total += n as u64;
            if inflated_total > MAX_INFLATED
                || (inflated > RATIO_GRACE && inflated / compressed > MAX_RATIO)
            {
                return Err(OfficeFinding::Bomb);
            }
            if keep {
                if inflated > MAX_CONTENT_TYPES {
                    return Err(OfficeFinding::Corrupt);
                }
                kept.extend_from_slice(&buf[..n]);
            }
        }
        if keep {
            content_types = Some(kept);
        }
    }
    let types = declared_types(&content_types.ok_or(OfficeFinding::Corrupt)?)?;
    if !allow_macros
        && types.iter().any(|t| {
            let t = t.to_ascii_lowercase();
            t.contains("macroenabled") || t.contains("vbaproject") || t.contains("activex")
        })
    {
        return Err(OfficeFinding::Macros);
    }
    let wanted = main_parts(content_type);
    if !types.iter().any(|t| wanted.contains(&t.as_str())) {
        return Err(OfficeFinding::WrongFormat);
    }
    Ok(())
}

/// Parts that hold code: VBA projects and ActiveX controls.
fn is_macro_part(name: &str) -> bool {
    let file = name.rsplit('/').next().unwrap_or(name);
    file.starts_with("vbaproject") || file.starts_with("vbadata") || name.contains("activex/")
}

/// The `ContentType` attributes of `[Content_Types].xml`'s `Default` and `Override` elements
/// (parsed, so a type named in a comment does not count).
fn declared_types(xml: &[u8]) -> Result<Vec<String>, OfficeFinding> {
    use quick_xml::events::Event;
    let mut reader = quick_xml::Reader::from_reader(xml);
    let mut out = Vec::new();
    let mut buf = Vec::new();
    loop {
        match reader.read_event_into(&mut buf) {
            Ok(Event::Start(e) | Event::Empty(e))
                if matches!(e.local_name().as_ref(), b"Default" | b"Override") =>
            {
                for a in e.attributes() {
                    let a = a.map_err(|_| OfficeFinding::Corrupt)?;
                    if a.key.as_ref() == b"ContentType" {
                        let v = a
                            .normalized_value(quick_xml::XmlVersion::Implicit1_0)
                            .map_err(|_| OfficeFinding::Corrupt)?;
                        out.push(v.trim().to_string());
                    }
                }
            }
            Ok(Event::Eof) => return Ok(out),
            Ok(_) => {}
            Err(_) => return Err(OfficeFinding::Corrupt),
        }
        buf.clear();
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::io::Write;

    /// A zip of `entries` (deflated), as an Office document would be.
    pub(crate) fn zip_of(entries: &[(&str, &[u8])]) -> Vec<u8> {
        let mut w = zip::ZipWriter::new(Cursor::new(Vec::new()));
        let opts = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Deflated);
        for (name, data) in entries {
            w.start_file(*name, opts).expect("entry");
            w.write_all(data).expect("write");
        }
        w.finish().expect("finish").into_inner()
    }

    pub(crate) fn content_types(main: &str) -> Vec<u8> {
        format!(
            r#"<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">
<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/>
<Default Extension="xml" ContentType="application/xml"/>
<Override PartName="/word/document.xml" ContentType="{main}"/>
</Types>"#
        )
        .into_bytes()
    }

    const DOCX_MAIN: &str =
        "application/vnd.openxmlformats-officedocument.wordprocessingml.document.main+xml";

    pub(crate) fn docx(extra: &[(&str, &[u8])]) -> Vec<u8> {
        let types = content_types(DOCX_MAIN);
        let mut entries: Vec<(&str, &[u8])> = vec![
            ("[Content_Types].xml", &types),
            ("word/document.xml", b"<w:document/>"),
        ];
        entries.extend_from_slice(extra);
        zip_of(&entries)
    }

    #[test]
    fn a_plain_document_passes_and_must_be_the_declared_format() {
        let d = docx(&[]);
        assert_eq!(check(crate::mime::DOCX, false, &d), Ok(()));
        assert_eq!(
            check(crate::mime::XLSX, false, &d),
            Err(OfficeFinding::WrongFormat)
        );
        // A type named only in a comment does not count.
        let sneaky = format!("<Types><!-- {DOCX_MAIN} --></Types>");
        let z = zip_of(&[("[Content_Types].xml", sneaky.as_bytes())]);
        assert_eq!(
            check(crate::mime::DOCX, false, &z),
            Err(OfficeFinding::WrongFormat)
        );
        assert_eq!(
            check(crate::mime::DOCX, false, b"PK\x03\x04 not really"),
            Err(OfficeFinding::Corrupt)
        );
        let no_types = zip_of(&[("word/document.xml", b"<w:document/>")]);
        assert_eq!(
            check(crate::mime::DOCX, false, &no_types),
            Err(OfficeFinding::Corrupt)
        );
    }

    #[test]
    fn macros_are_refused_unless_allowed() {
        let d = docx(&[("word/vbaProject.bin", b"\xd0\xcf\x11\xe0 macro")]);
        assert_eq!(
            check(crate::mime::DOCX, false, &d),
            Err(OfficeFinding::Macros)
        );
        assert_eq!(check(crate::mime::DOCX, true, &d), Ok(()));
        let ax = docx(&[("word/activeX/activeX1.xml", b"<ax:ocx/>")]);
        assert_eq!(
            check(crate::mime::DOCX, false, &ax),
            Err(OfficeFinding::Macros)
        );
        let types = content_types("application/vnd.ms-word.document.macroEnabled.main+xml");
        let docm = zip_of(&[("[Content_Types].xml", &types)]);
        assert_eq!(
            check(crate::mime::DOCX, false, &docm),
            Err(OfficeFinding::Macros)
        );
    }

    #[test]
    fn zip_bombs_are_refused_by_what_entries_inflate_to() {
        let zeros = vec![0u8; 8 << 20];
        let bomb = docx(&[("word/media/big.bin", &zeros)]);
        assert!(bomb.len() < 64 * 1024, "{}", bomb.len());
        assert_eq!(
            check(crate::mime::DOCX, false, &bomb),
            Err(OfficeFinding::Bomb)
        );
        let names: Vec<String> = (0..=MAX_ENTRIES).map(|i| format!("p/{i}")).collect();
        let mut entries: Vec<(&str, &[u8])> =
            names.iter().map(|n| (n.as_str(), &b""[..])).collect();
        let types = content_types(DOCX_MAIN);
        entries.push(("[Content_Types].xml", &types));
        assert_eq!(
            check(crate::mime::DOCX, false, &zip_of(&entries)),
            Err(OfficeFinding::Bomb)
        );
    }
}
