//! End-to-end tests through the public interface: one test binary (each binary links the whole
//! crate, so grouping keeps the test build short). Modules by area; shared helpers in `common`
//! (a gateway started in process, clients) and `backends` (storage emulators).

#[path = "../support/backends.rs"]
mod backends;
mod common;

mod accounts;
mod api;
mod cli;
mod client;
mod content;
mod content_rewrite;
mod h2_abuse;
mod layers;
mod limits;
mod mail;
mod malware;
mod ops;
mod ratelimit;
mod reconcile;
mod retention;
mod s3_buckets;
mod s3_compat;
mod s3_conditional;
mod s3_copy;
mod s3_multipart;
mod s3_post;
mod s3_sdk;
mod s3_security;
mod s3_tagging;
mod search;
mod storage_classes;
mod storage_faults;
mod tus;
mod web;
mod webhooks;
