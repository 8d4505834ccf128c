//! Content checks that need the whole body: what a file would do when opened, beyond what its
//! first bytes say (PDF active content, image dimensions, text that is really text). An [`Inspector`] is fed the bytes of a whole object in order, as they stream
//! (through the ingest pipe for a single upload, through assembly for a multipart or resumable
//! one), and gives its verdict at the end, before anything is committed.

pub mod clamd;
pub mod extract;
pub mod image;
pub mod office;
pub mod pdf;
pub mod strip;
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
    /// Whether image metadata is removed before the image is stored.
    pub strip_image_metadata: bool,
    /// Whether Office documents may carry macros.
    pub allow_macros: bool,
}

impl Policy {
    /// The policy of `bucket`.
    pub fn of(bucket: &BucketConfig) -> Self {
        Self {
            pdf_active_content: bucket.pdf_active_content,
            max_image_pixels: bucket.max_image_pixels,
            strip_image_metadata: bucket.strip_image_metadata,
            allow_macros: bucket.allow_macros,
        }
    }
}

/// What changes the stored bytes of an accepted object need (applied to the staged object
/// before its commit, see `crate::upload::rewrite`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rewrite {
    /// A PDF's active names, neutralised in place ([`pdf::disarm`]).
    Disarm {
        spans: Vec<pdf::Span>,
        names: Vec<&'static str>,
    },
    /// An image's metadata blocks, removed ([`strip::strip`]).
    StripImage { content_type: &'static str },
}

/// A passed content check: which one ran, and what the stored bytes still need.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Passed {
    /// `pdf`, `image`, `text` or `office`.
    pub check: &'static str,
    pub rewrite: Option<Rewrite>,
}

/// The inspector of one object, chosen by its sniffed type and the bucket's policy.
#[derive(Debug)]
pub enum Inspector {
    /// PDF active content (`pdf_active_content = "reject"` or `"disarm"`).
    Pdf {
        scanner: Box<pdf::PdfScanner>,
        policy: PdfPolicy,
    },
    /// Image dimensions against the bucket's pixel limit (decompression bombs), and whether
    /// the image carries metadata to remove.
    Image {
        scanner: image::ImageScanner,
        strip: bool,
        png: strip::PngChunks,
    },
    /// A declared text type: every byte must be text.
    Text(text::TextScanner),
    /// A declared Office Open XML type: the container, its format, macros and bombs.
    Office(office::OfficeScanner),
}

impl Inspector {
    /// The inspector an object of `content_type` needs under `policy`, if any.
    pub fn for_object(policy: &Policy, content_type: &str) -> Option<Self> {
        // The canonical name, which lives as long as the program.
        let content_type: &'static str = crate::mime::known_types()
            .iter()
            .copied()
            .chain(crate::mime::declared_only_types())
            .find(|k| *k == content_type)?;
        match (content_type, policy.pdf_active_content) {
            (crate::mime::PDF, PdfPolicy::Allow) => None,
            (crate::mime::PDF, p) => Some(Inspector::Pdf {
                scanner: Box::default(),
                policy: p,
            }),
            (crate::mime::TEXT | crate::mime::CSV, _) => {
                Some(Inspector::Text(text::TextScanner::new()))
            }
            (t @ (crate::mime::DOCX | crate::mime::XLSX | crate::mime::PPTX), _) => Some(
                Inspector::Office(office::OfficeScanner::new(t, policy.allow_macros)),
            ),
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
            ) => Some(Inspector::Image {
                scanner: image::ImageScanner::new(t, policy.max_image_pixels),
                strip: policy.strip_image_metadata && strip::supported(t),
                png: strip::PngChunks::default(),
            }),
            _ => None,
        }
    }

    /// The next bytes of the object.
    pub fn push(&mut self, data: &[u8]) {
        match self {
            Inspector::Pdf { scanner, .. } => scanner.push(data),
            Inspector::Image {
                scanner,
                strip,
                png,
            } => {
                scanner.push(data);
                if *strip && scanner.content_type() == crate::mime::PNG {
                    png.push(data);
                }
            }
            Inspector::Text(s) => s.push(data),
            Inspector::Office(s) => s.push(data),
        }
    }

    /// The verdict, once every byte was pushed.
    pub fn finish(self) -> Result<Passed, Refusal> {
        match self {
            Inspector::Pdf { scanner, policy } => {
                let report = scanner.report();
                let Some(first) = report.findings.first() else {
                    return Ok(Passed {
                        check: "pdf",
                        rewrite: None,
                    });
                };
                if policy != PdfPolicy::Disarm || !report.disarmable() {
                    return Err(Refusal {
                        reason: first.reason(),
                    });
                }
                let names = report.findings.iter().map(pdf::Finding::reason).collect();
                Ok(Passed {
                    check: "pdf",
                    rewrite: Some(Rewrite::Disarm {
                        spans: report.spans,
                        names,
                    }),
                })
            }
            Inspector::Image {
                scanner,
                strip,
                png,
            } => {
                let t = scanner.content_type();
                let has_metadata =
                    strip && (png.found || strip::header_has_metadata(t, scanner.head()));
                scanner
                    .finish()
                    .map_err(|f| Refusal { reason: f.reason() })?;
                Ok(Passed {
                    check: "image",
                    rewrite: has_metadata.then_some(Rewrite::StripImage { content_type: t }),
                })
            }
            Inspector::Text(s) => {
                s.finish().map_err(|f| Refusal { reason: f.reason() })?;
                Ok(Passed {
                    check: "text",
                    rewrite: None,
                })
            }
            Inspector::Office(s) => {
                s.finish().map_err(|f| Refusal { reason: f.reason() })?;
                Ok(Passed {
                    check: "office",
                    rewrite: None,
                })
            }
        }
    }
}
