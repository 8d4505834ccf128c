//! Content checks that need the whole body: what a file would do when opened, beyond what its
//! first bytes say (PDF active content, image dimensions, text that is really text). An [`Inspector`] is fed the bytes of a whole object in order, as they stream
//! (through the ingest pipe for a single upload, through assembly for a multipart or resumable
//! one), and gives its verdict at the end, before anything is committed.

pub mod clamd;
pub mod image;
pub mod pdf;
pub mod text;

use crate::config::{BucketConfig, PdfPolicy};

/// Why content was refused: a short, fixed reason (for the error, events, metrics and logs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub reason: &'static str,
}

/// What a bucket asks the content checks to do (copied from its config).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    pub pdf_active_content: PdfPolicy,
    /// Most pixels an image may declare (width × height).
    pub max_image_pixels: u64,
}

impl Policy {
    /// The policy of `bucket`.
    pub fn of(bucket: &BucketConfig) -> Self {
        Self {
            pdf_active_content: bucket.pdf_active_content,
            max_image_pixels: bucket.max_image_pixels,
        }
    }
}

/// The inspector of one object, chosen by its sniffed type and the bucket's policy.
#[derive(Debug)]
pub enum Inspector {
    /// PDF active content (`pdf_active_content = "reject"`).
    Pdf(Box<pdf::PdfScanner>),
    /// Image dimensions against the bucket's pixel limit (decompression bombs).
    Image(image::ImageScanner),
    /// A declared text type: every byte must be text.
    Text(text::TextScanner),
}

impl Inspector {
    /// The inspector an object of `content_type` needs under `policy`, if any.
    pub fn for_object(policy: &Policy, content_type: &str) -> Option<Self> {
        // The canonical name, which lives as long as the program.
        let content_type: &'static str = crate::mime::known_types()
            .iter()
            .chain(crate::mime::text_types())
            .copied()
            .find(|k| *k == content_type)?;
        match (content_type, policy.pdf_active_content) {
            (crate::mime::PDF, PdfPolicy::Reject) => Some(Inspector::Pdf(Box::default())),
            (crate::mime::TEXT | crate::mime::CSV, _) => {
                Some(Inspector::Text(text::TextScanner::new()))
            }
            (
                t @ (crate::mime::PNG
                | crate::mime::JPEG
                | crate::mime::GIF
                | crate::mime::WEBP
                | crate::mime::TIFF
                | crate::mime::BMP
                | crate::mime::HEIC
                | crate::mime::AVIF),
                _,
            ) => Some(Inspector::Image(image::ImageScanner::new(
                t,
                policy.max_image_pixels,
            ))),
            _ => None,
        }
    }

    /// The next bytes of the object.
    pub fn push(&mut self, data: &[u8]) {
        match self {
            Inspector::Pdf(s) => s.push(data),
            Inspector::Image(s) => s.push(data),
            Inspector::Text(s) => s.push(data),
        }
    }

    /// The verdict, once every byte was pushed.
    pub fn finish(self) -> Result<(), Refusal> {
        match self {
            Inspector::Pdf(s) => match s.finish().first() {
                None => Ok(()),
                Some(f) => Err(Refusal { reason: f.reason() }),
            },
            Inspector::Image(s) => s.finish().map_err(|f| Refusal { reason: f.reason() }),
            Inspector::Text(s) => s.finish().map_err(|f| Refusal { reason: f.reason() }),
        }
    }
}
