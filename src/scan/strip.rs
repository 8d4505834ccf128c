//! Image metadata removal (`strip_image_metadata`): EXIF (with its GPS position, camera serials
//! and thumbnail), XMP, IPTC, comments and text chunks leave the image; its pixels do not
//! change. The containers are edited with `img-parts`, segment by segment, so nothing is
//! decoded or re-encoded:
//!
//! - JPEG: `APP1`–`APP13`, `APP15` and `COM` segments go (kept: `APP0` JFIF, `APP2`
//!   `ICC_PROFILE` and `APP14` Adobe, which change how the pixels look), and so does anything
//!   after the image's end marker (multi-picture companions, appended payloads).
//! - PNG: `eXIf`, `tEXt`, `zTXt`, `iTXt` and `tIME` chunks go.
//! - WebP: `EXIF` and `XMP ` chunks go (and the `VP8X` flags follow).
//! - HEIC and AVIF: the `Exif` and XMP (`mime`, `application/rdf+xml`) items are blanked in
//!   place — their bytes zeroed, their item type renamed so that readers skip them — without
//!   moving a byte (every `iloc` offset stays right). Orientation there is the `irot`/`imir`
//!   properties, which stay.
//!
//! The visual orientation stays: an EXIF orientation other than "normal" is written back as a
//! minimal EXIF block holding that one tag (JPEG, PNG, WebP). TIFF keeps its metadata (it is the
//! image's own IFD structure, where removing it is not a container edit); GIF and BMP carry none
//! of these blocks.

use bytes::Bytes;
use img_parts::jpeg::{Jpeg, markers};
use img_parts::png::Png;
use img_parts::webp::WebP;
use img_parts::{ImageEXIF, ImageICC};

/// What [`strip`] made of an image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stripped {
    pub bytes: Bytes,
    /// What was removed (fixed names: `exif`, `gps`, `xmp`, `iptc`, `comment`, `text`,
    /// `vendor`, `trailing data`), in a fixed order.
    pub removed: Vec<&'static str>,
}

/// Why an image could not be edited (its container is corrupt).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Corrupt;

/// Whether [`strip`] can edit images of `content_type`.
pub fn supported(content_type: &str) -> bool {
    matches!(
        content_type,
        crate::mime::JPEG
            | crate::mime::PNG
            | crate::mime::WEBP
            | crate::mime::HEIC
            | crate::mime::AVIF
    )
}

/// Whether the first bytes of an image show metadata [`strip`] would remove (for JPEG and WebP,
/// whose metadata sits in the header; a header too long to tell counts as yes). PNG chunks
/// may come anywhere: [`PngChunks`] follows them as the bytes stream.
pub fn header_has_metadata(content_type: &str, head: &[u8]) -> bool {
    match content_type {
        crate::mime::JPEG => jpeg_header_has_metadata(head),
        // VP8X flags: 0x08 EXIF, 0x04 XMP.
        crate::mime::WEBP => {
            head.get(12..16) == Some(b"VP8X") && head.get(20).is_some_and(|f| f & 0x0C != 0)
        }
        crate::mime::HEIC | crate::mime::AVIF => {
            bmff_metadata(head).is_some_and(|items| !items.is_empty())
        }
        _ => false,
    }
}

fn jpeg_header_has_metadata(b: &[u8]) -> bool {
    let mut i = 2;
    loop {
        let (Some(&ff), Some(&m)) = (b.get(i), b.get(i + 1)) else {
            return true; // The header runs past what was kept: let the edit decide.
        };
        if ff != 0xFF {
            return false; // Not a marker where one must be: not ours to judge.
        }
        if m == 0xFF {
            i += 1;
            continue;
        }
        if m == markers::SOS || m == markers::EOI {
            return false;
        }
        let Some(len) = b
            .get(i + 2..i + 4)
            .map(|l| usize::from(u16::from_be_bytes([l[0], l[1]])))
        else {
            return true;
        };
        let contents = b.get(i + 4..(i + 2 + len).min(b.len())).unwrap_or(&[]);
        if jpeg_label(m, contents).is_some() {
            return true;
        }
        i += 2 + len;
    }
}

/// What a JPEG segment removed by [`strip`] holds (`None`: the segment stays).
fn jpeg_label(marker: u8, contents: &[u8]) -> Option<&'static str> {
    match marker {
        markers::APP1 if contents.starts_with(b"Exif\0") => Some("exif"),
        markers::APP1 if contents.starts_with(b"http://ns.adobe.com/") => Some("xmp"),
        markers::APP13 => Some("iptc"),
        markers::COM => Some("comment"),
        markers::APP2 if contents.starts_with(b"ICC_PROFILE\0") => None,
        markers::APP1..=markers::APP13 | markers::APP15 => Some("vendor"),
        _ => None,
    }
}

/// Follows PNG chunks as the bytes stream, noting metadata chunks wherever they are.
#[derive(Debug, Default)]
pub struct PngChunks {
    /// Bytes to pass before the next chunk header (the signature first).
    skip: u64,
    header: Vec<u8>,
    started: bool,
    /// A metadata chunk was seen.
    pub found: bool,
}

impl PngChunks {
    pub fn push(&mut self, data: &[u8]) {
        if !self.started {
            self.started = true;
            self.skip = 8;
        }
        let mut i = 0;
        while i < data.len() {
            if self.skip > 0 {
                let n = usize::try_from(self.skip)
                    .unwrap_or(usize::MAX)
                    .min(data.len() - i);
                self.skip -= n as u64;
                i += n;
                continue;
            }
            let n = (8 - self.header.len()).min(data.len() - i);
            self.header.extend_from_slice(&data[i..i + n]);
            i += n;
            if self.header.len() == 8 {
                let len = u32::from_be_bytes([
                    self.header[0],
                    self.header[1],
                    self.header[2],
                    self.header[3],
                ]);
                self.found |= png_label(&self.header[4..8]).is_some();
                self.skip = u64::from(len) + 4; // data and CRC
                self.header.clear();
            }
        }
    }
}

fn png_label(kind: &[u8]) -> Option<&'static str> {
    match kind {
        b"eXIf" => Some("exif"),
        b"tEXt" | b"zTXt" | b"iTXt" | b"tIME" => Some("text"),
        _ => None,
    }
}

/// Removes the metadata of an image of `content_type` (see the module docs). `Ok(None)`: there
/// was nothing to remove (or the type is not one [`supported`]).
pub fn strip(content_type: &str, data: Bytes) -> Result<Option<Stripped>, Corrupt> {
    let mut removed = Vec::new();
    let bytes = match content_type {
        crate::mime::JPEG => {
            let mut jpeg = Jpeg::from_bytes(data.clone()).map_err(|_| Corrupt)?;
            let exif = jpeg.exif();
            for s in jpeg.segments() {
                if let Some(label) = jpeg_label(s.marker(), s.contents()) {
                    removed.push(label);
                }
            }
            jpeg.segments_mut()
                .retain(|s| jpeg_label(s.marker(), s.contents()).is_none());
            let orientation = exif.as_deref().and_then(orientation);
            if exif.as_deref().is_some_and(has_gps) {
                removed.push("gps");
            }
            if let Some(o) = orientation {
                jpeg.set_exif(Some(minimal_exif(o)));
            }
            let mut out = jpeg.encoder().bytes();
            if let Some(end) = jpeg_end(&out)
                && end < out.len()
            {
                removed.push("trailing data");
                out.truncate(end);
            }
            out
        }
        crate::mime::PNG => {
            let mut png = Png::from_bytes(data.clone()).map_err(|_| Corrupt)?;
            let exif = png.exif();
            for c in png.chunks() {
                if let Some(label) = png_label(&c.kind()) {
                    removed.push(label);
                }
            }
            png.chunks_mut().retain(|c| png_label(&c.kind()).is_none());
            if exif.as_deref().is_some_and(has_gps) {
                removed.push("gps");
            }
            let orientation = exif.as_deref().and_then(orientation);
            if let Some(o) = orientation {
                png.set_exif(Some(minimal_exif(o)));
            }
            png.encoder().bytes()
        }
        crate::mime::WEBP => {
            let mut webp = WebP::from_bytes(data.clone()).map_err(|_| Corrupt)?;
            let exif = webp.exif();
            if exif.is_some() {
                removed.push("exif");
            }
            if webp.has_chunk(*b"XMP ") {
                removed.push("xmp");
            }
            if exif.as_deref().is_some_and(has_gps) {
                removed.push("gps");
            }
            webp.remove_chunks_by_id(*b"XMP ");
            let orientation = exif.as_deref().and_then(orientation);
            // Also brings the VP8X flags in line with the chunks that remain.
            webp.set_exif(orientation.map(minimal_exif));
            // Keeping the colour profile as it was (set_exif may have reshaped the chunk list).
            let icc = webp.icc_profile();
            webp.set_icc_profile(icc);
            webp.encoder().bytes()
        }
        crate::mime::HEIC | crate::mime::AVIF => {
            // A file whose item structure cannot be read is left as it is (its dimensions were
            // checked from the header; this is metadata removal, not validation).
            let Some(items) = bmff_metadata(&data) else {
                return Ok(None);
            };
            let mut out = data.to_vec();
            for item in &items {
                removed.push(item.label);
                if item.label == "exif" && heif_exif_has_gps(&data, item) {
                    removed.push("gps");
                }
                out[item.type_at..item.type_at + 4].copy_from_slice(b"blnk");
                for r in &item.ranges {
                    if let Some(b) = out.get_mut(r.clone()) {
                        b.fill(0);
                    }
                }
            }
            Bytes::from(out)
        }
        _ => return Ok(None),
    };
    removed.sort_unstable();
    removed.dedup();
    if removed.is_empty() || bytes == data {
        return Ok(None);
    }
    Ok(Some(Stripped { bytes, removed }))
}

/// A metadata item of a HEIF/AVIF file: where its type is written, and its bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
struct BmffItem {
    label: &'static str,
    type_at: usize,
    ranges: Vec<std::ops::Range<usize>>,
}

/// The boxes directly inside `b[range]`: (type, start of the box, start of its payload, end).
fn boxes(b: &[u8], range: std::ops::Range<usize>) -> Vec<([u8; 4], usize, usize, usize)> {
    let mut out = Vec::new();
    let mut i = range.start;
    while i + 8 <= range.end {
        let size = u32::from_be_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]) as usize;
        let kind = [b[i + 4], b[i + 5], b[i + 6], b[i + 7]];
        let (payload, end) = match size {
            0 => (i + 8, range.end),
            1 => {
                let Some(l) = b.get(i + 8..i + 16) else { break };
                let large = u64::from_be_bytes(l.try_into().unwrap_or([0; 8]));
                let Ok(large) = usize::try_from(large) else {
                    break;
                };
                (i + 16, i.saturating_add(large))
            }
            n => (i + 8, i.saturating_add(n)),
        };
        if end > range.end || end < payload {
            break;
        }
        out.push((kind, i, payload, end));
        i = end;
    }
    out
}

fn read_uint(b: &[u8], at: usize, n: usize) -> Option<u64> {
    let s = b.get(at..at + n)?;
    Some(s.iter().fold(0u64, |v, &x| v << 8 | u64::from(x)))
}

/// The metadata items (`Exif`, XMP) of a HEIF/AVIF file, from its `meta` box: `None` when
/// the structure cannot be read.
fn bmff_metadata(b: &[u8]) -> Option<Vec<BmffItem>> {
    let top = boxes(b, 0..b.len());
    let &(_, _, meta_payload, meta_end) = top.iter().find(|x| &x.0 == b"meta")?;
    // `meta` is a full box: version and flags first.
    let inner = boxes(b, meta_payload + 4..meta_end);
    let idat = inner.iter().find(|x| &x.0 == b"idat").map(|x| x.2);
    let &(_, _, iinf, iinf_end) = inner.iter().find(|x| &x.0 == b"iinf")?;
    let version = *b.get(iinf)?;
    let entries_at = iinf + 4 + if version == 0 { 2 } else { 4 };
    let mut wanted: Vec<(u32, &'static str, usize)> = Vec::new();
    for (kind, _, p, end) in boxes(b, entries_at..iinf_end) {
        if &kind != b"infe" {
            continue;
        }
        let v = *b.get(p)?;
        if v < 2 {
            continue;
        }
        let (id, after) = if v == 2 {
            (read_uint(b, p + 4, 2)? as u32, p + 6)
        } else {
            (read_uint(b, p + 4, 4)? as u32, p + 8)
        };
        let type_at = after + 2; // after item_protection_index
        let item_type = b.get(type_at..type_at + 4)?;
        let label = match item_type {
            b"Exif" => Some("exif"),
            b"mime" => {
                // item_name\0 content_type\0 ...
                let rest = b.get(type_at + 4..end)?;
                let name_end = rest.iter().position(|&x| x == 0)?;
                let ct = &rest[name_end + 1..];
                let ct = &ct[..ct.iter().position(|&x| x == 0).unwrap_or(ct.len())];
                let ct = String::from_utf8_lossy(ct).to_ascii_lowercase();
                (ct.contains("rdf+xml") || ct.contains("xmp")).then_some("xmp")
            }
            _ => None,
        };
        if let Some(label) = label {
            wanted.push((id, label, type_at));
        }
    }
    if wanted.is_empty() {
        return Some(Vec::new());
    }
    let &(_, _, iloc, iloc_end) = inner.iter().find(|x| &x.0 == b"iloc")?;
    let version = *b.get(iloc)?;
    let sizes = *b.get(iloc + 4)?;
    let (offset_size, length_size) = (usize::from(sizes >> 4), usize::from(sizes & 15));
    let sizes2 = *b.get(iloc + 5)?;
    let base_size = usize::from(sizes2 >> 4);
    let index_size = if version >= 1 {
        usize::from(sizes2 & 15)
    } else {
        0
    };
    let mut at = iloc + 6;
    let count = if version < 2 {
        let c = read_uint(b, at, 2)?;
        at += 2;
        c
    } else {
        let c = read_uint(b, at, 4)?;
        at += 4;
        c
    };
    let mut out = Vec::new();
    for _ in 0..count.min(65_536) {
        let id = if version < 2 {
            let v = read_uint(b, at, 2)?;
            at += 2;
            v
        } else {
            let v = read_uint(b, at, 4)?;
            at += 4;
            v
        } as u32;
        let method = if version >= 1 {
            let m = read_uint(b, at, 2)? & 15;
            at += 2;
            m
        } else {
            0
        };
        at += 2; // data_reference_index
        let base = read_uint(b, at, base_size)?;
        at += base_size;
        let extents = read_uint(b, at, 2)?;
        at += 2;
        let mut ranges = Vec::new();
        for _ in 0..extents {
            at += index_size;
            let off = read_uint(b, at, offset_size)?;
            at += offset_size;
            let len = read_uint(b, at, length_size)?;
            at += length_size;
            let origin = match method {
                0 => 0,
                1 => idat? as u64,
                _ => return None,
            };
            let start = usize::try_from(origin + base + off).ok()?;
            let end = start.checked_add(usize::try_from(len).ok()?)?;
            if end > b.len() {
                return None;
            }
            ranges.push(start..end);
        }
        if at > iloc_end {
            return None;
        }
        if let Some(&(_, label, type_at)) = wanted.iter().find(|w| w.0 == id) {
            out.push(BmffItem {
                label,
                type_at,
                ranges,
            });
        }
    }
    Some(out)
}

/// Whether a HEIF `Exif` item (a 4-byte offset to its TIFF header, then the header) points to
/// a GPS block.
fn heif_exif_has_gps(b: &[u8], item: &BmffItem) -> bool {
    let Some(r) = item.ranges.first() else {
        return false;
    };
    let Some(payload) = b.get(r.clone()) else {
        return false;
    };
    let Some(skip) = read_uint(payload, 0, 4) else {
        return false;
    };
    let tiff = usize::try_from(skip)
        .ok()
        .and_then(|s| payload.get(4 + s..));
    tiff.is_some_and(has_gps)
}

/// Where a JPEG's image ends: just past its end-of-image marker, found by walking the segments
/// and the entropy-coded data between them (where `FF` is always followed by `00` or a restart
/// marker unless a real marker begins).
fn jpeg_end(b: &[u8]) -> Option<usize> {
    let mut i = 2;
    let mut entropy = false;
    while i + 1 < b.len() {
        if entropy {
            let ff = i + b[i..].iter().position(|&x| x == 0xFF)?;
            let next = *b.get(ff + 1)?;
            if next == 0x00 || (markers::RST0..=markers::RST7).contains(&next) || next == 0xFF {
                i = ff + 1;
                continue;
            }
            i = ff;
            entropy = false;
            continue;
        }
        if b[i] != 0xFF {
            return None;
        }
        let m = b[i + 1];
        match m {
            0xFF => i += 1,
            markers::EOI => return Some(i + 2),
            markers::RST0..=markers::RST7 => i += 2,
            _ => {
                let len = usize::from(u16::from_be_bytes([*b.get(i + 2)?, *b.get(i + 3)?]));
                i += 2 + len;
                entropy = m == markers::SOS;
            }
        }
    }
    None
}

/// A TIFF structure's reader: byte order, then 16- and 32-bit values at an offset.
struct Tiff<'a> {
    b: &'a [u8],
    big: bool,
}

impl Tiff<'_> {
    fn u16(&self, i: usize) -> Option<u16> {
        let s: [u8; 2] = self.b.get(i..i + 2)?.try_into().ok()?;
        Some(if self.big {
            u16::from_be_bytes(s)
        } else {
            u16::from_le_bytes(s)
        })
    }
    fn u32(&self, i: usize) -> Option<u32> {
        let s: [u8; 4] = self.b.get(i..i + 4)?.try_into().ok()?;
        Some(if self.big {
            u32::from_be_bytes(s)
        } else {
            u32::from_le_bytes(s)
        })
    }
}

/// The entries of IFD0 of raw EXIF (a TIFF structure): (tag, value field offset).
fn ifd0(exif: &[u8]) -> Option<(Tiff<'_>, Vec<(u16, usize)>)> {
    let big = match exif.get(..4)? {
        b"MM\0*" => true,
        b"II*\0" => false,
        _ => return None,
    };
    let t = Tiff { b: exif, big };
    let at = usize::try_from(t.u32(4)?).ok()?;
    let n = usize::from(t.u16(at)?);
    let entries = (0..n.min(1024))
        .filter_map(|k| {
            let e = at + 2 + 12 * k;
            Some((t.u16(e)?, e + 8))
        })
        .collect();
    Some((t, entries))
}

/// The EXIF orientation when it is not "normal" (2–8), to be kept.
fn orientation(exif: &[u8]) -> Option<u16> {
    let (t, entries) = ifd0(exif)?;
    let (_, value) = entries.into_iter().find(|(tag, _)| *tag == 0x0112)?;
    let o = t.u16(value)?;
    (2..=8).contains(&o).then_some(o)
}

/// Whether raw EXIF points to a GPS block.
fn has_gps(exif: &[u8]) -> bool {
    ifd0(exif).is_some_and(|(_, entries)| entries.iter().any(|(tag, _)| *tag == 0x8825))
}

/// EXIF holding the orientation tag only (big-endian TIFF, one IFD with one entry).
fn minimal_exif(orientation: u16) -> Bytes {
    let mut v = Vec::with_capacity(26);
    v.extend_from_slice(b"MM\0*");
    v.extend_from_slice(&8u32.to_be_bytes());
    v.extend_from_slice(&1u16.to_be_bytes());
    v.extend_from_slice(&0x0112u16.to_be_bytes());
    v.extend_from_slice(&3u16.to_be_bytes()); // SHORT
    v.extend_from_slice(&1u32.to_be_bytes());
    v.extend_from_slice(&orientation.to_be_bytes());
    v.extend_from_slice(&[0, 0]);
    v.extend_from_slice(&0u32.to_be_bytes()); // no next IFD
    Bytes::from(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Raw EXIF (little-endian) with an orientation and a GPS pointer.
    fn exif_with(orientation: u16) -> Vec<u8> {
        let mut v = b"II*\0".to_vec();
        v.extend_from_slice(&8u32.to_le_bytes());
        v.extend_from_slice(&2u16.to_le_bytes());
        for (tag, kind, value) in [(0x0112u16, 3u16, u32::from(orientation)), (0x8825, 4, 38)] {
            v.extend_from_slice(&tag.to_le_bytes());
            v.extend_from_slice(&kind.to_le_bytes());
            v.extend_from_slice(&1u32.to_le_bytes());
            v.extend_from_slice(&value.to_le_bytes());
        }
        v.extend_from_slice(&0u32.to_le_bytes());
        v.extend_from_slice(&0u16.to_le_bytes()); // an empty GPS IFD
        v
    }

    fn segment(marker: u8, contents: &[u8]) -> Vec<u8> {
        let mut v = vec![0xFF, marker];
        v.extend_from_slice(&u16::try_from(contents.len() + 2).unwrap().to_be_bytes());
        v.extend_from_slice(contents);
        v
    }

    /// A JPEG-shaped file: the header segments given, a frame, a scan with stuffed bytes and a
    /// restart marker, the end marker and `trailer`.
    fn jpeg(header: &[Vec<u8>], trailer: &[u8]) -> (Vec<u8>, Vec<u8>) {
        let mut v = vec![0xFF, 0xD8];
        for s in header {
            v.extend_from_slice(s);
        }
        let image_start = v.len();
        v.extend(segment(markers::DQT, &[0; 65]));
        v.extend(segment(markers::SOF0, &[8, 0, 16, 0, 16, 1, 1, 0x11, 0]));
        v.extend(segment(markers::SOS, &[1, 1, 0, 0, 63, 0]));
        v.extend_from_slice(&[0x12, 0xFF, 0x00, 0x34, 0xFF, 0xD0, 0x56, 0xFF, 0xD9]);
        let image = v[image_start..].to_vec();
        v.extend_from_slice(trailer);
        (v, image)
    }

    #[test]
    fn jpeg_metadata_goes_and_the_orientation_and_pixels_stay() {
        let mut exif = b"Exif\0\0".to_vec();
        exif.extend(exif_with(6));
        let header = vec![
            segment(markers::APP0, b"JFIF\0\x01\x02\0\0\x01\0\x01\0\0"),
            segment(markers::APP1, &exif),
            segment(markers::APP1, b"http://ns.adobe.com/xap/1.0/\0<x:xmpmeta/>"),
            segment(markers::APP2, b"ICC_PROFILE\0\x01\x01profile"),
            segment(markers::APP13, b"Photoshop 3.0\0"),
            segment(markers::COM, b"shot at home"),
        ];
        let (file, image) = jpeg(&header, b"<script>appended</script>");
        assert!(header_has_metadata(crate::mime::JPEG, &file));
        let out = strip(crate::mime::JPEG, Bytes::from(file))
            .expect("valid")
            .expect("changed");
        assert_eq!(
            out.removed,
            vec!["comment", "exif", "gps", "iptc", "trailing data", "xmp"]
        );
        let b = &out.bytes[..];
        assert!(
            b.ends_with(&image),
            "the frame, scan and end marker are untouched"
        );
        let text = String::from_utf8_lossy(b);
        assert!(
            text.contains("JFIF") && text.contains("ICC_PROFILE"),
            "{text}"
        );
        for gone in ["xmpmeta", "Photoshop", "shot at home", "script", "II*"] {
            assert!(!text.contains(gone), "{gone} in {text}");
        }
        // The orientation is back, alone.
        let kept = Jpeg::from_bytes(out.bytes.clone()).unwrap().exif().unwrap();
        assert_eq!(orientation(&kept), Some(6));
        assert!(!has_gps(&kept));
        assert_eq!(ifd0(&kept).unwrap().1.len(), 1);
    }

    #[test]
    fn a_clean_jpeg_is_left_alone() {
        let header = vec![segment(markers::APP0, b"JFIF\0\x01\x02\0\0\x01\0\x01\0\0")];
        let (file, _) = jpeg(&header, b"");
        assert!(!header_has_metadata(crate::mime::JPEG, &file));
        assert_eq!(strip(crate::mime::JPEG, Bytes::from(file)), Ok(None));
        assert_eq!(
            strip(
                crate::mime::JPEG,
                Bytes::from_static(b"\xFF\xD8\xFF\xE1\xFF")
            ),
            Err(Corrupt)
        );
    }

    fn png_chunk(kind: &[u8; 4], data: &[u8]) -> Vec<u8> {
        let mut v = u32::try_from(data.len()).unwrap().to_be_bytes().to_vec();
        v.extend_from_slice(kind);
        v.extend_from_slice(data);
        let mut crc = crc_fast::Digest::new(crc_fast::CrcAlgorithm::Crc32IsoHdlc);
        crc.update(kind);
        crc.update(data);
        v.extend_from_slice(&u32::try_from(crc.finalize()).unwrap().to_be_bytes());
        v
    }

    #[test]
    fn png_text_and_exif_chunks_go_wherever_they_are() {
        let mut file = b"\x89PNG\r\n\x1a\n".to_vec();
        file.extend(png_chunk(b"IHDR", &[0, 0, 0, 1, 0, 0, 0, 1, 8, 0, 0, 0, 0]));
        file.extend(png_chunk(b"eXIf", &exif_with(3)));
        file.extend(png_chunk(b"IDAT", b"pixels"));
        file.extend(png_chunk(b"tEXt", b"Author\0someone"));
        file.extend(png_chunk(b"IEND", b""));
        let mut chunks = PngChunks::default();
        for piece in file.chunks(5) {
            chunks.push(piece);
        }
        assert!(chunks.found);
        let out = strip(crate::mime::PNG, Bytes::from(file))
            .expect("valid")
            .expect("changed");
        assert_eq!(out.removed, vec!["exif", "gps", "text"]);
        let png = Png::from_bytes(out.bytes.clone()).unwrap();
        let kinds: Vec<[u8; 4]> = png.chunks().iter().map(|c| c.kind()).collect();
        assert_eq!(kinds, vec![*b"IHDR", *b"eXIf", *b"IDAT", *b"IEND"]);
        assert_eq!(orientation(&png.exif().unwrap()), Some(3));
        let mut again = PngChunks::default();
        again.push(&out.bytes);
        assert!(again.found, "the orientation block is an eXIf chunk");
        assert_eq!(strip(crate::mime::PNG, out.bytes), Ok(None), "idempotent");
    }
}
