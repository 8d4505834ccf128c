//! Magic-byte content-type detection.
//!
//! An upload may not be disguised: the Content-Type the client declares must agree with what the first
//! bytes of the body say. This module owns the second half of that check: [`sniff`] looks at a prefix
//! of the body and names the one type it recognises, or nothing. Comparing the two and deciding what to
//! do with generic or unknown declarations is the ingest pipe's job; [`normalize`] and [`is_generic`]
//! give it the declared side in the same canonical form.
//!
//! # What is deliberately not recognisable
//!
//! * **SVG, HTML, XML, JavaScript** — anything a browser may render as a document. An SVG is XML that
//!   can carry `<script>`; serving a user's upload as `image/svg+xml` or `text/html` from our origin
//!   is stored XSS. Text formats also have no magic bytes, so any "detection" would be a guess that a
//!   polyglot could satisfy. `sniff` returns `None` for them, so a policy that only allows known
//!   types refuses them.
//! * **ZIP and the formats built on it** (docx, xlsx, jar, apk, epub…) — the signature says nothing
//!   about what the archive holds, and ZIP's central directory sits at the *end* of the file, so a
//!   ZIP can be appended to almost anything. Too many disguises to vouch for.
//!
//! Every check is anchored at offset 0 and asks for more than a bare two- or three-byte magic where
//! the format allows it (PNG's `IHDR`, BMP's header fields, the ISO-BMFF `ftyp` brands), so a few
//! lucky bytes in front of something else do not pass.

/// Bytes of the body prefix the sniffer wants; the ingest pipe buffers at most this many before
/// deciding.
///
/// 64 bytes covers the longest fixed check (a BMP header up to its bits-per-pixel field ends at byte
/// 30) and an ISO-BMFF `ftyp` box with up to twelve compatible brands, which is more than HEIC and AVIF
/// encoders write in practice (they write two to five). It is small enough that holding it back
/// before the first byte reaches storage costs nothing. [`sniff`] never looks past this many bytes, so
/// a longer prefix gives the same answer as its first `SNIFF_LEN` bytes.
pub const SNIFF_LEN: usize = 64;

use crate::mime::{AVIF, BMP, GIF, HEIC, JPEG, PDF, PNG, TIFF, WEBP};
pub use crate::mime::{is_generic, known_types, normalize};

/// Names the type whose signature `prefix` starts with, or `None`.
///
/// Contract:
/// * Only the first [`SNIFF_LEN`] bytes are examined; pass at least that many when the body is that
///   long. A prefix too short to decide returns `None`, never a guess.
/// * The result is one of [`known_types`].
/// * Never panics, whatever the bytes or the length.
pub fn sniff(prefix: &[u8]) -> Option<&'static str> {
    let p = prefix.get(..SNIFF_LEN).unwrap_or(prefix);
    if is_pdf(p) {
        Some(PDF)
    } else if is_png(p) {
        Some(PNG)
    } else if is_jpeg(p) {
        Some(JPEG)
    } else if is_gif(p) {
        Some(GIF)
    } else if is_webp(p) {
        Some(WEBP)
    } else if is_tiff(p) {
        Some(TIFF)
    } else if is_bmp(p) {
        Some(BMP)
    } else {
        iso_bmff_image(p)
    }
}

/// `%PDF-` followed by a `d.d` version, at offset 0 exactly.
///
/// PDF readers tolerate up to 1 KiB of junk before the header, and that tolerance is how HTML/PDF
/// polyglots are built: a file that starts `<html>…%PDF-1.7` is a web page to a browser and a PDF to a
/// viewer. We only vouch for files that are a PDF from their first byte.
fn is_pdf(p: &[u8]) -> bool {
    match p.get(..8) {
        Some([b'%', b'P', b'D', b'F', b'-', major, b'.', minor]) => {
            major.is_ascii_digit() && minor.is_ascii_digit()
        }
        _ => false,
    }
}

/// The 8-byte PNG signature followed by the `IHDR` chunk header, which the PNG spec requires to be
/// the first chunk (length 13).
fn is_png(p: &[u8]) -> bool {
    p.get(..16) == Some(b"\x89PNG\r\n\x1a\n\x00\x00\x00\x0dIHDR")
}

/// SOI (`FF D8`) followed by the start of a marker segment (`FF` and a marker code).
fn is_jpeg(p: &[u8]) -> bool {
    match p.get(..4) {
        // Marker codes are C0..=FE; FF would be fill and 00..BF are not markers.
        Some([0xFF, 0xD8, 0xFF, marker]) => (0xC0..=0xFE).contains(marker),
        _ => false,
    }
}

fn is_gif(p: &[u8]) -> bool {
    matches!(p.get(..6), Some(b"GIF87a" | b"GIF89a"))
}

/// `RIFF`, a size, `WEBP`, then one of the three chunk types a WebP file can start with.
fn is_webp(p: &[u8]) -> bool {
    p.get(..4) == Some(b"RIFF")
        && p.get(8..12) == Some(b"WEBP")
        && matches!(p.get(12..16), Some(b"VP8 " | b"VP8L" | b"VP8X"))
}

/// Classic TIFF byte-order mark and magic 42, then a first-IFD offset that points past the header.
fn is_tiff(p: &[u8]) -> bool {
    let offset = match p.get(..4) {
        Some(b"II*\0") => le_u32(p, 4),
        Some(b"MM\0*") => be_u32(p, 4),
        _ => None,
    };
    offset.is_some_and(|o| o >= 8)
}

/// `BM`, then a header that is internally consistent: a known DIB header size, a pixel-data offset
/// past the headers, one colour plane and a standard bit depth.
fn is_bmp(p: &[u8]) -> bool {
    if p.get(..2) != Some(b"BM") {
        return false;
    }
    let (Some(pixel_offset), Some(dib_size)) = (le_u32(p, 10), le_u32(p, 14)) else {
        return false;
    };
    let (planes, bpp) = match dib_size {
        // BITMAPCOREHEADER: 16-bit width and height.
        12 => (le_u16(p, 22), le_u16(p, 24)),
        // BITMAPINFOHEADER and its extensions (V2, V3, OS/2 2.x, V4, V5): 32-bit width and height.
        40 | 52 | 56 | 64 | 108 | 124 => (le_u16(p, 26), le_u16(p, 28)),
        _ => return false,
    };
    pixel_offset >= 14 + dib_size
        && planes == Some(1)
        && matches!(bpp, Some(1 | 2 | 4 | 8 | 16 | 24 | 32 | 48 | 64))
}

/// HEIC or AVIF: an ISO-BMFF `ftyp` box at offset 0 (its type at offset 4) whose major brand, or
/// failing that the first matching compatible brand, names one of the two.
///
/// Generic HEIF brands (`mif1`, `msf1`, `miaf`) say only "some image container", and MP4/QuickTime
/// brands (`isom`, `mp42`, `qt  `…) say video; neither decides anything on its own. Brands are scanned
/// in file order and only inside the declared box, so a longer prefix never changes an answer.
///
/// Encoders write `ftyp` boxes of a few dozen bytes; a box claiming more than [`MAX_FTYP_LEN`] is not
/// an image we vouch for. The bound also means the first byte is zero, which no other signature
/// starts with, so the checks in [`sniff`] are mutually exclusive by their first byte.
fn iso_bmff_image(p: &[u8]) -> Option<&'static str> {
    if p.get(4..8) != Some(b"ftyp") {
        return None;
    }
    let box_size = usize::try_from(be_u32(p, 0)?).ok()?;
    // size, type, major brand, minor version, then whole 4-byte compatible brands.
    if !(16..=MAX_FTYP_LEN).contains(&box_size) || box_size % 4 != 0 {
        return None;
    }
    if let Some(t) = brand_type(p.get(8..12)?) {
        return Some(t);
    }
    let end = box_size.min(p.len());
    p.get(16..end)?.chunks_exact(4).find_map(brand_type)
}

/// Largest `ftyp` box [`iso_bmff_image`] accepts (see there).
const MAX_FTYP_LEN: usize = 4096;

fn brand_type(brand: &[u8]) -> Option<&'static str> {
    match brand {
        b"avif" | b"avis" => Some(AVIF),
        b"heic" | b"heix" | b"heim" | b"heis" => Some(HEIC),
        _ => None,
    }
}

fn le_u16(p: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes(field(p, at)?))
}

fn le_u32(p: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(field(p, at)?))
}

fn be_u32(p: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_be_bytes(field(p, at)?))
}

/// The `N` bytes at `at`, or `None` if the prefix ends first.
fn field<const N: usize>(p: &[u8], at: usize) -> Option<[u8; N]> {
    p.get(at..at.checked_add(N)?)?.try_into().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn png() -> Vec<u8> {
        let mut v = b"\x89PNG\r\n\x1a\n\x00\x00\x00\x0dIHDR".to_vec();
        // 1x1, 8-bit RGBA, then the CRC and the start of IDAT.
        v.extend_from_slice(
            b"\x00\x00\x00\x01\x00\x00\x00\x01\x08\x06\x00\x00\x00\x1f\x15\xc4\x89",
        );
        v.extend_from_slice(b"\x00\x00\x00\x0dIDATx\x9cc\xf8\x0f\x00\x00\x01\x01\x00");
        v
    }

    fn jpeg() -> Vec<u8> {
        b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00\xff\xdb\x00\x43\x00"
            .to_vec()
    }

    fn bmp_info() -> Vec<u8> {
        let mut v = b"BM".to_vec();
        v.extend_from_slice(&70u32.to_le_bytes()); // file size
        v.extend_from_slice(&[0; 4]); // reserved
        v.extend_from_slice(&54u32.to_le_bytes()); // pixel data offset
        v.extend_from_slice(&40u32.to_le_bytes()); // BITMAPINFOHEADER
        v.extend_from_slice(&2i32.to_le_bytes()); // width
        v.extend_from_slice(&2i32.to_le_bytes()); // height
        v.extend_from_slice(&1u16.to_le_bytes()); // planes
        v.extend_from_slice(&24u16.to_le_bytes()); // bpp
        v.extend_from_slice(&[0; 24]); // compression, sizes, resolution, colours
        v
    }

    fn bmp_core() -> Vec<u8> {
        let mut v = b"BM".to_vec();
        v.extend_from_slice(&38u32.to_le_bytes());
        v.extend_from_slice(&[0; 4]);
        v.extend_from_slice(&26u32.to_le_bytes());
        v.extend_from_slice(&12u32.to_le_bytes()); // BITMAPCOREHEADER
        v.extend_from_slice(&2u16.to_le_bytes());
        v.extend_from_slice(&2u16.to_le_bytes());
        v.extend_from_slice(&1u16.to_le_bytes());
        v.extend_from_slice(&24u16.to_le_bytes());
        v.extend_from_slice(&[0; 12]);
        v
    }

    fn ftyp(major: &[u8; 4], compatible: &[&[u8; 4]]) -> Vec<u8> {
        let size = u32::try_from(16 + 4 * compatible.len()).unwrap();
        let mut v = size.to_be_bytes().to_vec();
        v.extend_from_slice(b"ftyp");
        v.extend_from_slice(major);
        v.extend_from_slice(&[0; 4]);
        for b in compatible {
            v.extend_from_slice(*b);
        }
        v.extend_from_slice(b"\x00\x00\x00\x00meta");
        v
    }

    fn samples() -> Vec<(&'static str, Vec<u8>)> {
        vec![
            (
                PDF,
                b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<< /Type /Catalog >>\nendobj\n".to_vec(),
            ),
            (PDF, b"%PDF-2.0\r\n".to_vec()),
            (PNG, png()),
            (JPEG, jpeg()),
            (JPEG, b"\xff\xd8\xff\xe1\x00\x18Exif\x00\x00".to_vec()),
            (GIF, b"GIF89a\x01\x00\x01\x00\x80\x00\x00".to_vec()),
            (GIF, b"GIF87a\x01\x00\x01\x00\x00\x00\x00".to_vec()),
            (
                WEBP,
                b"RIFF\x24\x00\x00\x00WEBPVP8 \x18\x00\x00\x00".to_vec(),
            ),
            (
                WEBP,
                b"RIFF\x1a\x00\x00\x00WEBPVP8L\x0d\x00\x00\x00".to_vec(),
            ),
            (TIFF, b"II*\x00\x08\x00\x00\x00\x0e\x00".to_vec()),
            (TIFF, b"MM\x00*\x00\x00\x00\x08\x00\x0e".to_vec()),
            (BMP, bmp_info()),
            (BMP, bmp_core()),
            (HEIC, ftyp(b"heic", &[b"mif1", b"heic"])),
            (HEIC, ftyp(b"mif1", &[b"mif1", b"MiHE", b"heix"])),
            (AVIF, ftyp(b"avif", &[b"avif", b"mif1", b"miaf", b"MA1B"])),
            (AVIF, ftyp(b"mif1", &[b"mif1", b"miaf", b"avif"])),
            (
                AVIF,
                ftyp(b"avis", &[b"avis", b"msf1", b"iso8", b"mif1", b"miaf"]),
            ),
        ]
    }

    #[test]
    fn sniff_recognises_each_known_type() {
        for (want, bytes) in samples() {
            assert_eq!(sniff(&bytes), Some(want), "{bytes:?}");
        }
    }

    #[test]
    fn every_sample_type_is_listed_and_every_listed_type_has_a_sample() {
        let samples = samples();
        for (t, _) in &samples {
            assert!(known_types().contains(t));
        }
        for t in known_types() {
            assert!(samples.iter().any(|(s, _)| s == t), "{t} has no sample");
            assert_eq!(
                normalize(t).as_deref(),
                Some(*t),
                "known types are canonical"
            );
        }
    }

    #[test]
    fn sniff_returns_none_for_every_truncation_too_short_to_decide() {
        for (want, bytes) in samples() {
            // The shortest prefix that decides, and every longer one, gives the same answer.
            let decided_at = (0..=bytes.len())
                .find(|&n| sniff(&bytes[..n]).is_some())
                .unwrap();
            for n in 0..decided_at {
                assert_eq!(sniff(&bytes[..n]), None);
            }
            for n in decided_at..=bytes.len() {
                assert_eq!(sniff(&bytes[..n]), Some(want));
            }
            // No type decides on three bytes or fewer.
            assert!(decided_at > 3, "{want} decided at {decided_at}");
        }
    }

    #[test]
    fn sniff_ignores_bytes_past_sniff_len() {
        let mut v = vec![0u8; SNIFF_LEN];
        v.extend_from_slice(&png());
        assert_eq!(sniff(&v), None);
        let mut v = png();
        v.resize(4 * SNIFF_LEN, b'<');
        assert_eq!(sniff(&v), Some(PNG));
    }

    #[test]
    fn png_signature_followed_by_html_is_not_png() {
        let mut v = b"\x89PNG\r\n\x1a\n".to_vec();
        v.extend_from_slice(b"<html><script>alert(1)</script></html>");
        assert_eq!(sniff(&v), None);
    }

    #[test]
    fn png_with_html_later_in_the_body_is_still_png() {
        // We judge the container, not every byte; served as image/png a browser won't run it.
        let mut v = png();
        v.extend_from_slice(b"text/html <html><script>alert(1)</script></html>");
        assert_eq!(sniff(&v), Some(PNG));
    }

    #[test]
    fn markup_and_scripts_are_not_recognisable() {
        let cases: &[&[u8]] = &[
            b"<!DOCTYPE html><html><body>hi</body></html>",
            b"<html><head><title>x</title></head></html>",
            b"<svg xmlns=\"http://www.w3.org/2000/svg\" onload=\"alert(1)\"/>",
            b"<?xml version=\"1.0\"?><svg xmlns=\"http://www.w3.org/2000/svg\"></svg>",
            b"<script>alert(document.cookie)</script>",
            b"\xef\xbb\xbf<svg><script>alert(1)</script></svg>",
            b"   \n<html>",
        ];
        for c in cases {
            assert_eq!(sniff(c), None, "{}", String::from_utf8_lossy(c));
        }
    }

    #[test]
    fn eicar_test_string_is_not_recognisable() {
        let eicar = br"X5O!P%@AP[4\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*";
        assert_eq!(sniff(eicar), None);
    }

    #[test]
    fn pdf_polyglot_inside_html_is_not_pdf() {
        let polyglot = b"<html><!--%PDF-1.4\n1 0 obj << >> endobj --><script>alert(1)</script>";
        assert_eq!(sniff(polyglot), None);
        assert_eq!(
            sniff(b" %PDF-1.7\n"),
            None,
            "no leading junk, not even a space"
        );
        assert_eq!(sniff(b"\xef\xbb\xbf%PDF-1.7\n"), None);
        assert_eq!(sniff(b"%PDF-x.y\n"), None);
    }

    #[test]
    fn lookalikes_are_rejected() {
        let cases: Vec<Vec<u8>> = vec![
            b"\xff\xd8\xff\xff\xff".to_vec(),         // fill, not a marker
            b"\xff\xd8\xff\x00".to_vec(),             // not a marker
            b"GIF88a\x01\x00".to_vec(),               // no such version
            b"RIFF\x24\x00\x00\x00WAVEfmt ".to_vec(), // RIFF, but audio
            b"RIFF\x24\x00\x00\x00WEBPJUNK".to_vec(), // WEBP without a VP8 chunk
            b"II*\x00\x00\x00\x00\x00".to_vec(),      // IFD offset inside the header
            b"II+\x00\x08\x00\x08\x00\x00\x00\x00\x00".to_vec(), // BigTIFF: not supported
            b"BM<html><script>alert(1)</script></html>".to_vec(), // BM + junk
            ftyp(b"isom", &[b"isom", b"iso2", b"mp41"]), // MP4 video
            ftyp(b"mif1", &[b"mif1", b"miaf"]),       // HEIF, but no HEIC/AVIF brand
            ftyp(b"qt  ", &[b"qt  "]),                // QuickTime
            b"PK\x03\x04\x14\x00\x06\x00".to_vec(),   // ZIP / OOXML
        ];
        for c in &cases {
            assert_eq!(sniff(c), None, "{c:?}");
        }
    }

    #[test]
    fn bmp_header_fields_must_be_consistent() {
        let mut bad_planes = bmp_info();
        bad_planes[26] = 2;
        let mut bad_bpp = bmp_info();
        bad_bpp[28] = 7;
        let mut bad_offset = bmp_info();
        bad_offset[10] = 20;
        let mut bad_dib = bmp_info();
        bad_dib[14] = 41;
        for c in [bad_planes, bad_bpp, bad_offset, bad_dib] {
            assert_eq!(sniff(&c), None);
        }
    }

    #[test]
    fn ftyp_brands_outside_the_box_do_not_count() {
        // Box claims 16 bytes (no compatible brands); "avif" follows outside it.
        let mut v = 16u32.to_be_bytes().to_vec();
        v.extend_from_slice(b"ftypmif1\x00\x00\x00\x00avif");
        assert_eq!(sniff(&v), None);
        // Absurd sizes are refused, and huge ones are only scanned within the prefix.
        let mut v = 15u32.to_be_bytes().to_vec();
        v.extend_from_slice(b"ftypavif\x00\x00\x00\x00");
        assert_eq!(sniff(&v), None);
        let mut v = 0xFFFF_FFFCu32.to_be_bytes().to_vec();
        v.extend_from_slice(b"ftypheic\x00\x00\x00\x00mif1heic");
        assert_eq!(sniff(&v), None);
        // A large but sane box is only scanned within the prefix.
        let mut v = 4096u32.to_be_bytes().to_vec();
        v.extend_from_slice(b"ftypmif1\x00\x00\x00\x00");
        v.resize(SNIFF_LEN, b'x');
        v.extend_from_slice(b"heic");
        assert_eq!(sniff(&v), None);
        let mut v = 4096u32.to_be_bytes().to_vec();
        v.extend_from_slice(b"ftypmif1\x00\x00\x00\x00mif1heic");
        assert_eq!(sniff(&v), Some(HEIC));
    }

    #[test]
    fn sniff_returns_none_for_empty_and_tiny_inputs() {
        assert_eq!(sniff(&[]), None);
        for b in 0..=255u8 {
            assert_eq!(sniff(&[b]), None);
            assert_eq!(sniff(&[b, b]), None);
        }
    }

    #[test]
    fn normalize_lowercases_strips_parameters_and_maps_aliases() {
        let cases = [
            ("image/png", Some("image/png")),
            ("IMAGE/PNG", Some("image/png")),
            ("  image/png  ", Some("image/png")),
            ("\timage/png; charset=binary", Some("image/png")),
            ("image/png ;q=1", Some("image/png")),
            ("image/jpg", Some("image/jpeg")),
            ("Image/PJPEG", Some("image/jpeg")),
            ("image/x-png", Some("image/png")),
            ("application/x-pdf", Some("application/pdf")),
            ("application/vnd.api+json", Some("application/vnd.api+json")),
            ("text/html; charset=utf-8", Some("text/html")),
            ("", None),
            ("   ", None),
            ("image", None),
            ("image/", None),
            ("/png", None),
            ("image/png/x", None),
            ("image /png", None),
            ("image/p ng", None),
            ("image/\"png\"", None),
            ("image/png\r\n", None),
            ("imäge/png", None),
            (";image/png", None),
        ];
        for (input, want) in cases {
            assert_eq!(normalize(input).as_deref(), want, "{input:?}");
        }
    }

    #[test]
    fn generic_declarations_are_recognised() {
        for g in [
            "",
            "  ",
            "application/octet-stream",
            "Application/Octet-Stream",
            "binary/octet-stream",
            "application/octet-stream; charset=binary",
        ] {
            assert!(is_generic(g), "{g:?}");
        }
        for s in [
            "image/png",
            "application/pdf",
            "text/plain",
            "octet-stream",
            "garbage",
        ] {
            assert!(!is_generic(s), "{s:?}");
        }
    }

    proptest! {
        #[test]
        fn sniff_never_panics_and_only_returns_known_types(bytes in proptest::collection::vec(any::<u8>(), 0..160)) {
            if let Some(t) = sniff(&bytes) {
                prop_assert!(known_types().contains(&t));
            }
        }

        #[test]
        fn sniff_answer_is_stable_as_the_prefix_grows(bytes in proptest::collection::vec(any::<u8>(), 0..160), cut in 0usize..160) {
            let cut = cut.min(bytes.len());
            if let Some(t) = sniff(&bytes[..cut]) {
                prop_assert_eq!(sniff(&bytes), Some(t));
            }
        }

        #[test]
        fn sniff_is_stable_on_known_types_with_random_tails(pick in 0usize..18, tail in proptest::collection::vec(any::<u8>(), 0..80)) {
            let samples = samples();
            let (want, mut bytes) = samples[pick % samples.len()].clone();
            bytes.extend_from_slice(&tail);
            prop_assert_eq!(sniff(&bytes), Some(want));
        }

        #[test]
        fn normalize_output_is_a_fixed_point(s in "\\PC{0,40}") {
            if let Some(n) = normalize(&s) {
                let again = normalize(&n);
                prop_assert_eq!(again.as_deref(), Some(n.as_str()));
                prop_assert_eq!(n.to_ascii_lowercase(), n.clone());
            }
        }
    }
}
