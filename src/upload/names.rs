//! Display names of uploaded files: what a person sees and what a download is saved as, never
//! part of a key or URL. A name is normalised (Unicode NFC) and cleaned so that it cannot carry
//! a path, control or bidirectional-override characters, a Windows device name or a trailing
//! dot; then its extension is made to agree with the type the bytes were checked to be, so
//! `invoice.exe`, `x.pdf.exe` or `page.html` holding a PDF downloads as `….pdf` (or, under
//! `api.filename_extension = "reject"`, is refused when the link is minted).

use unicode_normalization::UnicodeNormalization;

use crate::config::{BucketConfig, ExtensionPolicy};
use crate::error::{Error, Result};

/// Longest display name kept, in characters (the extension is kept when a name is cut).
pub const MAX_FILENAME: usize = 200;
/// Longest part after the last dot that counts as an extension.
const MAX_EXTENSION: usize = 16;

/// Characters that change how text is ordered or shown without being visible themselves: a
/// right-to-left override (U+202E) before `fdp.exe` makes `invoicefdp.exe` read as `invoiceexe.pdf`.
fn invisible(c: char) -> bool {
    matches!(
        c,
        '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}'
            | '\u{061C}' | '\u{FEFF}'
    )
}

/// Windows device names, which cannot be saved as files (with any extension).
fn device_name(stem: &str) -> bool {
    let s = stem.to_ascii_uppercase();
    matches!(
        s.as_str(),
        "CON" | "PRN" | "AUX" | "NUL" | "CONIN$" | "CONOUT$"
    ) || ((s.starts_with("COM") || s.starts_with("LPT"))
        && s.len() == 4
        && s.as_bytes()[3].is_ascii_digit())
}

/// The extension of a cleaned name (after its last dot), lower-case, if it has one.
pub fn extension(name: &str) -> Option<String> {
    let (stem, ext) = name.rsplit_once('.')?;
    (!stem.is_empty() && !ext.is_empty() && ext.chars().count() <= MAX_EXTENSION)
        .then(|| ext.to_lowercase())
}

/// Cuts `name` to [`MAX_FILENAME`] characters, keeping its extension.
fn cap(name: &str) -> String {
    if name.chars().count() <= MAX_FILENAME {
        return name.to_string();
    }
    match extension(name) {
        Some(ext) => {
            let stem: String = name
                .chars()
                .take(MAX_FILENAME - ext.chars().count() - 1)
                .collect();
            format!("{}.{ext}", stem.trim_end_matches(['.', ' ']))
        }
        None => name.chars().take(MAX_FILENAME).collect(),
    }
}

/// Makes a display name safe to store and to put in a `Content-Disposition`: NFC, the last
/// path segment only, no control or invisible characters, allow-listed characters, no leading
/// dots, hyphens or spaces, no trailing dots or spaces, no device name, capped length with the
/// extension kept. Never empty.
pub fn sanitize_filename(raw: &str) -> String {
    let nfc: String = raw.nfc().collect();
    let base = nfc.rsplit(['/', '\\']).next().unwrap_or("");
    let cleaned: String = base
        .chars()
        .filter(|c| !c.is_control() && !invisible(*c))
        .map(|c| {
            if c.is_alphanumeric() || matches!(c, '.' | '-' | '_' | ' ' | '(' | ')' | '+' | ',') {
                c
            } else {
                '_'
            }
        })
        .collect();
    let trimmed = cleaned
        .trim_start_matches(['.', '-', ' '])
        .trim_end_matches(['.', ' ']);
    if trimmed.is_empty() {
        return "file".to_string();
    }
    let stem = trimmed.split('.').next().unwrap_or("");
    let named = if device_name(stem.trim_end()) {
        format!("_{trimmed}")
    } else {
        trimmed.to_string()
    };
    cap(&named)
}

/// The extensions a file of `content_type` is saved with, the usual one first.
pub fn extensions_of(content_type: &str) -> &'static [&'static str] {
    match content_type {
        crate::mime::PDF => &["pdf"],
        crate::mime::PNG => &["png"],
        crate::mime::JPEG => &["jpg", "jpeg", "jpe"],
        crate::mime::GIF => &["gif"],
        crate::mime::WEBP => &["webp"],
        crate::mime::TIFF => &["tif", "tiff"],
        crate::mime::BMP => &["bmp"],
        crate::mime::HEIC => &["heic", "heif"],
        crate::mime::AVIF => &["avif"],
        crate::mime::TEXT => &["txt", "text"],
        crate::mime::CSV => &["csv"],
        crate::mime::DOCX => &["docx"],
        crate::mime::XLSX => &["xlsx"],
        crate::mime::PPTX => &["pptx"],
        _ => &[],
    }
}

/// The display name a file of `content_type` is stored under, from the name the client gave:
/// cleaned, then with an extension the type has. An extension the bucket does not list
/// (`allowed_extensions`) is refused; one that disagrees with the type is replaced (policy
/// `fix`) or refused (`reject`).
pub fn file_name(
    bucket: &BucketConfig,
    policy: ExtensionPolicy,
    raw: &str,
    content_type: &str,
) -> Result<String> {
    let clean = sanitize_filename(raw);
    let ext = extension(&clean);
    if let Some(e) = &ext
        && !bucket.allowed_extensions.is_empty()
        && !bucket
            .allowed_extensions
            .iter()
            .any(|a| a.eq_ignore_ascii_case(e))
    {
        return Err(Error::InvalidArgument(
            "The file name's extension is not accepted in this bucket.",
        ));
    }
    let wanted = extensions_of(content_type);
    let Some(usual) = wanted.first() else {
        return Ok(clean);
    };
    match &ext {
        Some(e) if wanted.contains(&e.as_str()) => Ok(clean),
        Some(_) if policy == ExtensionPolicy::Reject => Err(Error::InvalidArgument(
            "The file name's extension does not match the file's type.",
        )),
        Some(e) => {
            // The wrong extension goes: `invoice.exe` → `invoice.pdf`, `x.pdf.exe` → `x.pdf`.
            let stem = &clean[..clean.len() - e.len() - 1];
            Ok(cap(&match extension(stem) {
                Some(inner) if wanted.contains(&inner.as_str()) => stem.to_string(),
                _ => format!("{stem}.{usual}"),
            }))
        }
        None => Ok(cap(&format!("{clean}.{usual}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bucket(exts: &[&str]) -> BucketConfig {
        let mut b = crate::config::Config::from_layers(None, Vec::new())
            .expect("defaults")
            .buckets
            .remove("uploads")
            .expect("uploads");
        b.allowed_extensions = exts.iter().map(|e| e.to_string()).collect();
        b
    }

    #[test]
    fn hostile_names_keep_no_dangerous_extension() {
        let b = bucket(&[]);
        let pdf = crate::mime::PDF;
        let cases = [
            ("invoice.exe", "invoice.pdf"),
            ("x.pdf.exe", "x.pdf"),
            ("C:\\Windows\\system32\\calc.exe", "calc.pdf"),
            ("invoice\u{202E}fdp.exe", "invoicefdp.pdf"),
            ("run.exe. . ", "run.pdf"),
            ("page.html", "page.pdf"),
            ("img.svg", "img.pdf"),
            (".htaccess", "htaccess.pdf"),
            ("report", "report.pdf"),
            ("scan.PDF", "scan.PDF"),
            ("CON.pdf", "_CON.pdf"),
            ("lpt1", "_lpt1.pdf"),
            ("a\u{0}b.pdf", "ab.pdf"),
            ("../../etc/passwd", "passwd.pdf"),
            ("", "file.pdf"),
        ];
        for (raw, want) in cases {
            assert_eq!(
                file_name(&b, ExtensionPolicy::Fix, raw, pdf).expect(raw),
                want,
                "{raw:?}"
            );
        }
        // Decomposed Unicode (as macOS types it) is composed first.
        assert_eq!(
            file_name(&b, ExtensionPolicy::Fix, "re\u{301}sume\u{301}.pdf", pdf).expect("nfd"),
            "résumé.pdf"
        );
        // A long name is cut before its extension, not through it.
        let long = format!("{}.exe", "a".repeat(300));
        let name = file_name(&b, ExtensionPolicy::Fix, &long, pdf).expect("long");
        assert!(
            name.ends_with(".pdf") && name.chars().count() <= MAX_FILENAME,
            "{name}"
        );
        let long = format!("{}.pdf", "é".repeat(300));
        let name = file_name(&b, ExtensionPolicy::Fix, &long, pdf).expect("long");
        assert!(
            name.ends_with("é.pdf") && name.chars().count() == MAX_FILENAME,
            "{name}"
        );
        // JPEG has several usual extensions.
        assert_eq!(
            file_name(&b, ExtensionPolicy::Fix, "p.jpeg", crate::mime::JPEG).expect("jpeg"),
            "p.jpeg"
        );
    }

    #[test]
    fn reject_policy_and_allow_list() {
        let b = bucket(&[]);
        assert!(matches!(
            file_name(&b, ExtensionPolicy::Reject, "invoice.exe", crate::mime::PDF),
            Err(Error::InvalidArgument(_))
        ));
        assert_eq!(
            file_name(&b, ExtensionPolicy::Reject, "invoice", crate::mime::PDF).expect("none"),
            "invoice.pdf"
        );
        let listed = bucket(&["jpg", "png", "pdf", "txt"]);
        assert!(file_name(&listed, ExtensionPolicy::Fix, "a.docx", crate::mime::PDF).is_err());
        assert_eq!(
            file_name(&listed, ExtensionPolicy::Fix, "a.PDF", crate::mime::PDF).expect("pdf"),
            "a.PDF"
        );
    }
}
