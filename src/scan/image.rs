//! Decompression bombs, refused from the header before anything decodes the image: a small file
//! that declares 100,000 × 100,000 pixels would take tens of gigabytes to open. The dimensions
//! are read from the header of each format upgate accepts (PNG `IHDR`, GIF logical screen and
//! image descriptors, JPEG start-of-frame, WebP `VP8`/`VP8L`/`VP8X`, TIFF IFD0, BMP info header,
//! HEIC/AVIF `ispe`); an image whose dimensions cannot be found in its first
//! [`HEADER_WINDOW`] bytes is refused too (a header that hides its size is not one to trust).

/// How many leading bytes are kept to find the dimensions in.
pub const HEADER_WINDOW: usize = 256 * 1024;

/// Why an image was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImageFinding {
    /// More pixels than allowed (or a zero dimension).
    TooManyPixels,
    /// No dimensions in the header window.
    NoDimensions,
    /// HTML, SVG or script markup in the header window: a polyglot that a browser sniffing
    /// the bytes (or a viewer served it under another type) would run.
    Markup,
}

impl ImageFinding {
    pub fn reason(self) -> &'static str {
        match self {
            ImageFinding::TooManyPixels => "image dimensions too large",
            ImageFinding::NoDimensions => "image dimensions not found",
            ImageFinding::Markup => "image with embedded markup",
        }
    }
}

/// Collects the header of an image and judges its dimensions.
#[derive(Debug)]
pub struct ImageScanner {
    content_type: &'static str,
    max_pixels: u64,
    head: Vec<u8>,
}

impl ImageScanner {
    pub fn new(content_type: &'static str, max_pixels: u64) -> Self {
        Self {
            content_type,
            max_pixels,
            head: Vec::new(),
        }
    }

    /// The canonical type this scanner reads.
    pub fn content_type(&self) -> &'static str {
        self.content_type
    }

    /// The leading bytes kept (at most [`HEADER_WINDOW`]).
    pub fn head(&self) -> &[u8] {
        &self.head
    }

    pub fn push(&mut self, data: &[u8]) {
        let room = HEADER_WINDOW.saturating_sub(self.head.len());
        self.head.extend_from_slice(&data[..room.min(data.len())]);
    }

    pub fn finish(self) -> Result<(), ImageFinding> {
        if has_markup(&self.head) {
            return Err(ImageFinding::Markup);
        }
        let (w, h) = dimensions(self.content_type, &self.head).ok_or(ImageFinding::NoDimensions)?;
        let pixels = u64::from(w) * u64::from(h);
        if w == 0 || h == 0 || pixels > self.max_pixels {
            return Err(ImageFinding::TooManyPixels);
        }
        Ok(())
    }
}

/// Tags that make a file a web page or a script to a browser. XML itself is not among them
/// (XMP metadata is an XML packet); the tags are matched case-insensitively.
const MARKUP: [&[u8]; 7] = [
    b"<script",
    b"<html",
    b"<svg",
    b"<!doctype html",
    b"<body",
    b"<iframe",
    b"javascript:",
];

/// Whether `head` holds any of [`MARKUP`].
fn has_markup(head: &[u8]) -> bool {
    let mut at = 0;
    while let Some(i) = head[at..]
        .iter()
        .position(|&b| b == b'<' || b == b'j' || b == b'J')
    {
        let rest = &head[at + i..];
        if MARKUP
            .iter()
            .any(|m| rest.len() >= m.len() && rest[..m.len()].eq_ignore_ascii_case(m))
        {
            return true;
        }
        at += i + 1;
    }
    false
}

fn be16(b: &[u8], i: usize) -> Option<u32> {
    Some(u32::from(u16::from_be_bytes(
        b.get(i..i + 2)?.try_into().ok()?,
    )))
}
fn le16(b: &[u8], i: usize) -> Option<u32> {
    Some(u32::from(u16::from_le_bytes(
        b.get(i..i + 2)?.try_into().ok()?,
    )))
}
fn be32(b: &[u8], i: usize) -> Option<u32> {
    Some(u32::from_be_bytes(b.get(i..i + 4)?.try_into().ok()?))
}
fn le32(b: &[u8], i: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(i..i + 4)?.try_into().ok()?))
}
fn le24(b: &[u8], i: usize) -> Option<u32> {
    let s = b.get(i..i + 3)?;
    Some(u32::from(s[0]) | u32::from(s[1]) << 8 | u32::from(s[2]) << 16)
}

/// The (width, height) an image's header declares; for formats with several images (GIF
/// frames), the largest of each.
pub fn dimensions(content_type: &str, b: &[u8]) -> Option<(u32, u32)> {
    match content_type {
        crate::mime::PNG => Some((be32(b, 16)?, be32(b, 20)?)),
        crate::mime::GIF => gif(b),
        crate::mime::JPEG => jpeg(b),
        crate::mime::WEBP => webp(b),
        crate::mime::TIFF => tiff(b),
        crate::mime::BMP => {
            let w = le32(b, 18)? as i32;
            let h = le32(b, 22)? as i32;
            Some((w.unsigned_abs(), h.unsigned_abs()))
        }
        crate::mime::HEIC | crate::mime::AVIF => ispe(b),
        _ => None,
    }
}

fn gif(b: &[u8]) -> Option<(u32, u32)> {
    let (mut w, mut h) = (le16(b, 6)?, le16(b, 8)?);
    // Image descriptors may declare frames larger than the logical screen.
    let flags = *b.get(10)?;
    let mut i = 13
        + if flags & 0x80 != 0 {
            3 * (1usize << ((flags & 7) + 1))
        } else {
            0
        };
    while let Some(&tag) = b.get(i) {
        match tag {
            0x2C => {
                w = w.max(le16(b, i + 5)?);
                h = h.max(le16(b, i + 7)?);
                let f = *b.get(i + 9)?;
                i += 10;
                if f & 0x80 != 0 {
                    i += 3 * (1usize << ((f & 7) + 1));
                }
                i += 1; // LZW minimum code size
                i = skip_sub_blocks(b, i)?;
            }
            0x21 => i = skip_sub_blocks(b, i + 2)?,
            _ => break,
        }
    }
    Some((w, h))
}

fn skip_sub_blocks(b: &[u8], mut i: usize) -> Option<usize> {
    loop {
        let n = usize::from(*b.get(i)?);
        i += 1;
        if n == 0 {
            return Some(i);
        }
        i += n;
    }
}

fn jpeg(b: &[u8]) -> Option<(u32, u32)> {
    let mut i = 2;
    loop {
        while *b.get(i)? == 0xFF && *b.get(i + 1)? == 0xFF {
            i += 1; // fill bytes
        }
        if *b.get(i)? != 0xFF {
            return None;
        }
        let marker = *b.get(i + 1)?;
        match marker {
            // Start of frame (every coding but DHT C4, JPG C8, DAC CC).
            0xC0..=0xCF if !matches!(marker, 0xC4 | 0xC8 | 0xCC) => {
                return Some((be16(b, i + 7)?, be16(b, i + 5)?));
            }
            0xD8 | 0x01 | 0xD0..=0xD7 => i += 2,
            0xD9 | 0xDA => return None,
            _ => i += 2 + usize::try_from(be16(b, i + 2)?).ok()?,
        }
    }
}

fn webp(b: &[u8]) -> Option<(u32, u32)> {
    match b.get(12..16)? {
        b"VP8 " => Some((le16(b, 26)? & 0x3FFF, le16(b, 28)? & 0x3FFF)),
        b"VP8L" => {
            let v = le32(b, 21)?;
            Some(((v & 0x3FFF) + 1, ((v >> 14) & 0x3FFF) + 1))
        }
        b"VP8X" => Some((le24(b, 24)? + 1, le24(b, 27)? + 1)),
        _ => None,
    }
}

fn tiff(b: &[u8]) -> Option<(u32, u32)> {
    let little = b.get(0..2)? == b"II";
    let r16 = |i| if little { le16(b, i) } else { be16(b, i) };
    let r32 = |i| if little { le32(b, i) } else { be32(b, i) };
    let ifd = usize::try_from(r32(4)?).ok()?;
    let n = usize::try_from(r16(ifd)?).ok()?;
    let (mut w, mut h) = (None, None);
    for k in 0..n.min(512) {
        let e = ifd + 2 + 12 * k;
        let tag = r16(e)?;
        let kind = r16(e + 2)?;
        let value = if kind == 3 { r16(e + 8)? } else { r32(e + 8)? };
        match tag {
            256 => w = Some(value),
            257 => h = Some(value),
            _ => {}
        }
    }
    Some((w?, h?))
}

/// The largest `ispe` (image spatial extents) property in an ISO-BMFF (HEIF, AVIF) header.
fn ispe(b: &[u8]) -> Option<(u32, u32)> {
    let mut best: Option<(u32, u32)> = None;
    let mut i = 0;
    while let Some(pos) = b.get(i..)?.windows(4).position(|w| w == b"ispe") {
        let at = i + pos;
        // size(4) "ispe"(4) version+flags(4) width(4) height(4)
        if at >= 4
            && let (Some(w), Some(h)) = (be32(b, at + 8), be32(b, at + 12))
        {
            let area = u64::from(w) * u64::from(h);
            if best.is_none_or(|(bw, bh)| u64::from(bw) * u64::from(bh) < area) {
                best = Some((w, h));
            }
        }
        i = at + 4;
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;

    fn png(w: u32, h: u32) -> Vec<u8> {
        let mut v = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR".to_vec();
        v.extend_from_slice(&w.to_be_bytes());
        v.extend_from_slice(&h.to_be_bytes());
        v.extend_from_slice(&[8, 6, 0, 0, 0]);
        v
    }

    fn judge(ct: &'static str, b: &[u8], max: u64) -> Result<(), ImageFinding> {
        let mut s = ImageScanner::new(ct, max);
        for c in b.chunks(7) {
            s.push(c);
        }
        s.finish()
    }

    #[test]
    fn headers_give_dimensions() {
        assert_eq!(
            dimensions(crate::mime::PNG, &png(640, 480)),
            Some((640, 480))
        );
        let mut gif = b"GIF89a".to_vec();
        gif.extend_from_slice(&[0x20, 0x00, 0x10, 0x00, 0x00, 0, 0]);
        // One frame larger than the screen.
        gif.extend_from_slice(&[0x2C, 0, 0, 0, 0, 0x00, 0x40, 0x00, 0x40, 0x00, 2, 1, 0, 0]);
        gif.push(0x3B);
        assert_eq!(dimensions(crate::mime::GIF, &gif), Some((0x4000, 0x4000)));
        let jpeg = [
            0xFF, 0xD8, 0xFF, 0xE0, 0x00, 0x04, 0x4A, 0x46, 0xFF, 0xC0, 0x00, 0x11, 0x08, 0x01,
            0xE0, 0x02, 0x80, 0x03,
        ];
        assert_eq!(dimensions(crate::mime::JPEG, &jpeg), Some((640, 480)));
        let mut vp8x = b"RIFF\0\0\0\0WEBPVP8X\x0a\0\0\0\0\0\0\0".to_vec();
        vp8x.extend_from_slice(&[0x7F, 0x02, 0x00, 0xDF, 0x01, 0x00]);
        assert_eq!(dimensions(crate::mime::WEBP, &vp8x), Some((640, 480)));
        let mut tiff = b"II*\0\x08\0\0\0".to_vec();
        tiff.extend_from_slice(&[2, 0]);
        tiff.extend_from_slice(&[0, 1, 3, 0, 1, 0, 0, 0, 0x80, 0x02, 0, 0]);
        tiff.extend_from_slice(&[1, 1, 4, 0, 1, 0, 0, 0, 0xE0, 0x01, 0, 0]);
        assert_eq!(dimensions(crate::mime::TIFF, &tiff), Some((640, 480)));
        let mut bmp = b"BM".to_vec();
        bmp.extend_from_slice(&[0; 16]);
        bmp.extend_from_slice(&640i32.to_le_bytes());
        bmp.extend_from_slice(&(-480i32).to_le_bytes());
        assert_eq!(dimensions(crate::mime::BMP, &bmp), Some((640, 480)));
        let mut heic = b"\0\0\0\x18ftypheic".to_vec();
        heic.extend_from_slice(&[0, 0, 0, 0x14]);
        heic.extend_from_slice(b"ispe\0\0\0\0");
        heic.extend_from_slice(&4032u32.to_be_bytes());
        heic.extend_from_slice(&3024u32.to_be_bytes());
        assert_eq!(dimensions(crate::mime::HEIC, &heic), Some((4032, 3024)));
    }

    #[test]
    fn bombs_are_refused_and_ordinary_images_pass() {
        assert_eq!(
            judge(crate::mime::PNG, &png(100_000, 100_000), 100_000_000),
            Err(ImageFinding::TooManyPixels)
        );
        assert_eq!(
            judge(crate::mime::PNG, &png(4000, 3000), 100_000_000),
            Ok(())
        );
        assert_eq!(
            judge(crate::mime::PNG, &png(0, 10), 100_000_000),
            Err(ImageFinding::TooManyPixels)
        );
        assert_eq!(
            judge(crate::mime::JPEG, &[0xFF, 0xD8, 0xFF, 0xDA], 100_000_000),
            Err(ImageFinding::NoDimensions)
        );
    }

    #[test]
    fn markup_in_an_image_is_refused_wherever_the_header_window_has_it() {
        // A GIF whose header is also an SVG document (the GIF/JS polyglot shape), a PNG with
        // a script in a text chunk, HTML after a JPEG's first bytes; any case.
        let mut gif = b"GIF89a\x20\x00\x10\x00\x00\0\0".to_vec();
        gif.extend_from_slice(b"<svg xmlns='http://www.w3.org/2000/svg' onload='alert(1)'/>");
        let mut with_script = png(10, 10);
        with_script.extend_from_slice(b"\0\0\0\x20tEXtComment\0<ScRiPt>alert(1)</script>");
        let mut html = b"\xFF\xD8\xFF\xE0\x00\x10JFIF\0".to_vec();
        html.extend_from_slice(b"<!DOCTYPE HTML><p>hi");
        for (ct, b) in [
            (crate::mime::GIF, &gif),
            (crate::mime::PNG, &with_script),
            (crate::mime::JPEG, &html),
        ] {
            assert_eq!(judge(ct, b, 100_000_000), Err(ImageFinding::Markup), "{ct}");
        }
        // XMP metadata is XML, and fine.
        let mut xmp = png(10, 10);
        xmp.extend_from_slice(b"<?xpacket begin=''?><x:xmpmeta xmlns:x='adobe:ns:meta/'/>");
        assert_eq!(judge(crate::mime::PNG, &xmp, 100_000_000), Ok(()));
    }
}
