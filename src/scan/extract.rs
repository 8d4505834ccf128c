//! The searchable text of a stored document: plain text and CSV as they are, the text layer of a
//! PDF (through `lopdf`), and the text runs of Office Open XML documents (Word paragraphs, Excel
//! shared strings, PowerPoint slides).
//!
//! Runs on bytes that passed every content check, bounded: the caller hands at most the
//! bucket's object size, a zip entry is inflated at most [`MAX_XML`] bytes, and the text kept is
//! cut at `max_chars` (the index holds the beginning of a long document). Control characters
//! become spaces and runs of whitespace one space, so the index and the snippets never carry
//! markup or terminal escapes. A document that cannot be read yields no text; it is stored all
//! the same.

use std::io::{Cursor, Read};

use quick_xml::events::Event;

use crate::mime;

/// Most bytes of one XML part of an Office document inflated for its text.
pub const MAX_XML: u64 = 64 << 20;

/// Whether documents of `content_type` have text to extract.
pub fn extractable(content_type: &str) -> bool {
    matches!(
        content_type,
        mime::TEXT | mime::CSV | mime::PDF | mime::DOCX | mime::XLSX | mime::PPTX
    )
}

/// The text of `data` (a document of `content_type`), at most `max_chars` characters; `None` if
/// the type has no text or the document cannot be read.
pub fn extract(content_type: &str, data: &[u8], max_chars: usize) -> Option<String> {
    let raw = match content_type {
        mime::TEXT | mime::CSV => {
            // Never more than the characters kept (4 bytes each at most) is decoded.
            let cut = data.len().min(max_chars.saturating_mul(4));
            String::from_utf8_lossy(&data[..cut]).into_owned()
        }
        mime::PDF => pdf_text(data)?,
        mime::DOCX => office_text(data, |n| n == "word/document.xml", &[b"w:p"], b"w:t")?,
        mime::XLSX => office_text(data, |n| n == "xl/sharedStrings.xml", &[b"si"], b"t")?,
        mime::PPTX => office_text(
            data,
            |n| n.starts_with("ppt/slides/slide") && n.ends_with(".xml"),
            &[b"a:p"],
            b"a:t",
        )?,
        _ => return None,
    };
    Some(clean(&raw, max_chars))
}

/// Control characters as spaces, whitespace runs as one space, at most `max_chars`.
fn clean(raw: &str, max_chars: usize) -> String {
    let mut out = String::with_capacity(raw.len().min(max_chars));
    let mut kept = 0;
    let mut space = true;
    for c in raw.chars() {
        if kept >= max_chars {
            break;
        }
        if c.is_whitespace() || c.is_control() {
            if !space {
                out.push(' ');
                kept += 1;
                space = true;
            }
        } else {
            out.push(c);
            kept += 1;
            space = false;
        }
    }
    let trimmed = out.trim_end().len();
    out.truncate(trimmed);
    out
}

fn pdf_text(data: &[u8]) -> Option<String> {
    let doc = lopdf::Document::load_mem(data).ok()?;
    let pages: Vec<u32> = doc.get_pages().keys().copied().collect();
    let mut text = String::new();
    // Page by page: one page that cannot be read does not lose the others.
    for chunk in doc.extract_text_chunks(&pages).into_iter().flatten() {
        text.push_str(&chunk);
        text.push('\n');
    }
    Some(text)
}

/// The text inside `text_tag` elements of the zip entries `wanted` picks, a space after each
/// `block` element.
fn office_text(
    data: &[u8],
    wanted: impl Fn(&str) -> bool,
    blocks: &[&[u8]],
    text_tag: &[u8],
) -> Option<String> {
    let mut zip = zip::ZipArchive::new(Cursor::new(data)).ok()?;
    let mut names: Vec<String> = zip
        .file_names()
        .filter_map(Result::ok)
        .filter(|n| wanted(n))
        .map(|n| n.into_owned())
        .collect();
    // Slides in their order (slide2 before slide10).
    names.sort_by_key(|n| {
        let digits: String = n.chars().filter(char::is_ascii_digit).collect();
        (digits.len(), digits)
    });
    let mut text = String::new();
    for name in names {
        let mut xml = Vec::new();
        zip.by_name(&name)
            .ok()?
            .take(MAX_XML)
            .read_to_end(&mut xml)
            .ok()?;
        let mut reader = quick_xml::Reader::from_reader(xml.as_slice());
        let mut inside = false;
        let mut buf = Vec::new();
        loop {
            match reader.read_event_into(&mut buf) {
                Ok(Event::Start(e)) if e.name().as_ref() == text_tag => inside = true,
                Ok(Event::End(e)) if e.name().as_ref() == text_tag => inside = false,
                Ok(Event::End(e)) if blocks.contains(&e.name().as_ref()) => text.push(' '),
                Ok(Event::Text(t)) if inside => {
                    if let Ok(s) = t.decode() {
                        text.push_str(&s);
                    }
                }
                Ok(Event::GeneralRef(r)) if inside => {
                    // &amp; and friends, and character references.
                    if let Ok(Some(c)) = r.resolve_char_ref() {
                        text.push(c);
                    } else if let Ok(name) = r.decode() {
                        let c = match name.as_ref() {
                            "amp" => "&",
                            "lt" => "<",
                            "gt" => ">",
                            "quot" => "\"",
                            "apos" => "'",
                            _ => "",
                        };
                        text.push_str(c);
                    }
                }
                Ok(Event::Eof) | Err(_) => break,
                _ => {}
            }
            buf.clear();
        }
        text.push(' ');
    }
    Some(text)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn zip_of(entries: &[(&str, &str)]) -> Vec<u8> {
        let mut w = zip::ZipWriter::new(Cursor::new(Vec::new()));
        for (name, body) in entries {
            w.start_file(*name, zip::write::SimpleFileOptions::default())
                .expect("entry");
            w.write_all(body.as_bytes()).expect("write");
        }
        w.finish().expect("zip").into_inner()
    }

    #[test]
    fn office_documents_give_their_text_runs_in_order() {
        let docx = zip_of(&[(
            "word/document.xml",
            "<w:document><w:body><w:p><w:r><w:t>Tenancy</w:t></w:r><w:r><w:t xml:space=\"preserve\"> agreement</w:t></w:r></w:p>\
             <w:p><w:r><w:t>Fish &amp; chips</w:t></w:r></w:p></w:body></w:document>",
        )]);
        assert_eq!(
            extract(mime::DOCX, &docx, 1000).as_deref(),
            Some("Tenancy agreement Fish & chips")
        );
        let pptx = zip_of(&[
            (
                "ppt/slides/slide10.xml",
                "<p:sld><a:p><a:t>ten</a:t></a:p></p:sld>",
            ),
            (
                "ppt/slides/slide2.xml",
                "<p:sld><a:p><a:t>two</a:t></a:p></p:sld>",
            ),
        ]);
        assert_eq!(extract(mime::PPTX, &pptx, 1000).as_deref(), Some("two ten"));
        let xlsx = zip_of(&[(
            "xl/sharedStrings.xml",
            "<sst><si><t>Q3</t></si><si><t>revenue</t></si></sst>",
        )]);
        assert_eq!(
            extract(mime::XLSX, &xlsx, 1000).as_deref(),
            Some("Q3 revenue")
        );
    }

    #[test]
    fn text_is_cleaned_and_cut() {
        let raw = "a\u{1b}[31mred\tb\r\n\n  c";
        assert_eq!(
            extract(mime::TEXT, raw.as_bytes(), 1000).as_deref(),
            Some("a [31mred b c")
        );
        assert_eq!(
            extract(mime::CSV, b"x,y\n1,2\n", 5).as_deref(),
            Some("x,y 1")
        );
        let big = "word ".repeat(1_000_000);
        assert_eq!(
            extract(mime::TEXT, big.as_bytes(), 10_000).map(|t| t.chars().count()),
            Some(9_999)
        );
    }

    #[test]
    fn unreadable_documents_and_other_types_give_nothing() {
        assert_eq!(extract(mime::PDF, b"%PDF-1.7\nnot really", 100), None);
        assert_eq!(extract(mime::DOCX, b"PK\x03\x04broken", 100), None);
        assert_eq!(extract(mime::PNG, b"\x89PNG", 100), None);
        assert!(!extractable(mime::JPEG) && extractable(mime::CSV));
    }
}
