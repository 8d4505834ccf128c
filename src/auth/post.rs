//! Authentication of browser POST uploads (S3 POST Object): the form carries a base64 policy
//! document and a signature over it, SigV4 (`x-amz-algorithm`, `x-amz-credential`,
//! `x-amz-date`, `x-amz-signature`) or SigV2 (`AWSAccessKeyId`, `signature`, which boto3's
//! `generate_presigned_post` emits against custom endpoints).
//!
//! Same discipline as header/query auth: [`parse_post`] reads the fields (no key lookup), the
//! caller looks up the secret, [`ParsedPost::verify`] compares in constant time. Policy
//! *conditions* are checked by the handler once the signature is known to be good.

use std::time::SystemTime;

use super::sigv4::{self, parse_amz_date};
use super::verify::ProvidedSignature;
use super::{AuthError, AuthPolicy, SecretKey};

/// A form field lookup: names compare case-insensitively, as S3 does for form fields.
pub trait FormFields {
    /// The value of the field `name`, if present.
    fn field(&self, name: &str) -> Option<&str>;
}

impl FormFields for [(String, String)] {
    fn field(&self, name: &str) -> Option<&str> {
        self.iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

enum Scheme {
    V4 {
        access_key_id: String,
        day: String,
        region: String,
    },
    V2 {
        access_key_id: String,
    },
}

/// A parsed, not yet verified POST signature.
pub struct ParsedPost {
    scheme: Scheme,
    signature: ProvidedSignature,
    policy_b64: String,
}

/// Proof that the policy document was signed by the key holder.
#[derive(Debug)]
pub struct VerifiedPost {
    access_key_id: String,
    policy_b64: String,
}

impl VerifiedPost {
    /// The signing principal.
    pub fn access_key_id(&self) -> &str {
        &self.access_key_id
    }

    /// The signed policy, still base64-encoded as it was signed.
    pub fn policy_b64(&self) -> &str {
        &self.policy_b64
    }
}

/// Reads the signature fields of a POST form. A form without `policy` is an anonymous upload
/// (`Missing`, refused by the caller).
pub fn parse_post(
    fields: &[(String, String)],
    policy: &AuthPolicy,
    _now: SystemTime,
) -> Result<ParsedPost, AuthError> {
    let policy_b64 = fields.field("policy").ok_or(AuthError::Missing)?;
    if let Some(algorithm) = fields.field("x-amz-algorithm") {
        if algorithm != sigv4::ALGORITHM {
            return Err(AuthError::UnsupportedAlgorithm);
        }
        let credential = fields
            .field("x-amz-credential")
            .ok_or(AuthError::MissingQueryParam("x-amz-credential"))?;
        let date = fields
            .field("x-amz-date")
            .ok_or(AuthError::MissingQueryParam("x-amz-date"))?;
        let signature = fields
            .field("x-amz-signature")
            .ok_or(AuthError::MissingQueryParam("x-amz-signature"))?;
        parse_amz_date(date).ok_or(AuthError::InvalidDate)?;
        let parts: Vec<&str> = credential.split('/').collect();
        let [ak, day, region, service, terminal] = parts[..] else {
            return Err(AuthError::MalformedCredential);
        };
        if ak.is_empty() || day.len() != 8 {
            return Err(AuthError::MalformedCredential);
        }
        if !date.starts_with(day) {
            return Err(AuthError::CredentialDateMismatch);
        }
        if region != policy.region {
            return Err(AuthError::InvalidRegion);
        }
        if service != "s3" {
            return Err(AuthError::InvalidService);
        }
        if terminal != "aws4_request" {
            return Err(AuthError::InvalidTerminal);
        }
        return Ok(ParsedPost {
            scheme: Scheme::V4 {
                access_key_id: ak.to_string(),
                day: day.to_string(),
                region: region.to_string(),
            },
            signature: ProvidedSignature::new(signature.as_bytes().to_vec()),
            policy_b64: policy_b64.to_string(),
        });
    }
    if let Some(ak) = fields.field("AWSAccessKeyId") {
        if !policy.allow_sigv2 {
            return Err(AuthError::SigV2Disabled);
        }
        let signature = fields
            .field("signature")
            .ok_or(AuthError::MissingQueryParam("signature"))?;
        if ak.is_empty() {
            return Err(AuthError::MalformedCredential);
        }
        return Ok(ParsedPost {
            scheme: Scheme::V2 {
                access_key_id: ak.to_string(),
            },
            signature: ProvidedSignature::new(signature.as_bytes().to_vec()),
            policy_b64: policy_b64.to_string(),
        });
    }
    Err(AuthError::Missing)
}

impl ParsedPost {
    /// The access key whose secret the caller must look up.
    pub fn access_key_id(&self) -> &str {
        match &self.scheme {
            Scheme::V4 { access_key_id, .. } | Scheme::V2 { access_key_id } => access_key_id,
        }
    }

    /// Checks the signature over the base64 policy, in constant time.
    pub fn verify(self, secret: &SecretKey) -> Result<VerifiedPost, AuthError> {
        let expected = match &self.scheme {
            Scheme::V4 { day, region, .. } => {
                sigv4::signing_key(secret, day, region, "s3").sign_hex(self.policy_b64.as_bytes())
            }
            Scheme::V2 { .. } => super::sigv2::sign(secret, self.policy_b64.as_bytes()),
        };
        if !self.signature.matches(expected.as_bytes()) {
            return Err(AuthError::SignatureMismatch);
        }
        Ok(VerifiedPost {
            access_key_id: self.access_key_id().to_string(),
            policy_b64: self.policy_b64,
        })
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn policy() -> AuthPolicy {
        AuthPolicy {
            region: "us-east-1".into(),
            max_presign_expiry: Duration::from_secs(3600),
            max_skew: Duration::from_secs(900),
            allow_sigv2: true,
        }
    }

    fn f(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn v4_signature_over_the_policy_verifies_and_tampering_fails() {
        let secret = SecretKey::new("secret".into());
        let policy_b64 = "eyJleHBpcmF0aW9uIjoiMjAzMC0wMS0wMVQwMDowMDowMFoiLCJjb25kaXRpb25zIjpbXX0=";
        let sig = sigv4::signing_key(&secret, "20261123", "us-east-1", "s3")
            .sign_hex(policy_b64.as_bytes());
        let fields = f(&[
            ("policy", policy_b64),
            ("X-Amz-Algorithm", "AWS4-HMAC-SHA256"),
            (
                "x-amz-credential",
                "AKID/20261123/us-east-1/s3/aws4_request",
            ),
            ("x-amz-date", "20261123T120000Z"),
            ("x-amz-signature", &sig),
        ]);
        let p = parse_post(&fields, &policy(), SystemTime::now()).expect("parse");
        assert_eq!(p.access_key_id(), "AKID");
        assert_eq!(p.verify(&secret).expect("verify").access_key_id(), "AKID");
        let mut bad = fields.clone();
        bad[0].1.push('A');
        let p = parse_post(&bad, &policy(), SystemTime::now()).expect("parse");
        assert!(matches!(
            p.verify(&secret),
            Err(AuthError::SignatureMismatch)
        ));
        let mut wrong_region = fields.clone();
        wrong_region[2].1 = "AKID/20261123/eu-west-1/s3/aws4_request".into();
        assert!(matches!(
            parse_post(&wrong_region, &policy(), SystemTime::now()),
            Err(AuthError::InvalidRegion)
        ));
    }

    #[test]
    fn v2_signature_verifies() {
        let secret = SecretKey::new("secret".into());
        let policy_b64 = "e30=";
        let sig = super::super::sigv2::sign(&secret, policy_b64.as_bytes());
        let fields = f(&[
            ("policy", policy_b64),
            ("AWSAccessKeyId", "AKID"),
            ("signature", &sig),
        ]);
        let p = parse_post(&fields, &policy(), SystemTime::now()).expect("parse");
        assert!(p.verify(&secret).is_ok());
        let p = parse_post(&fields, &policy(), SystemTime::now()).expect("parse");
        assert!(p.verify(&SecretKey::new("other".into())).is_err());
    }

    #[test]
    fn forms_without_policy_or_signature_fields_are_anonymous() {
        assert!(matches!(
            parse_post(&f(&[("key", "k")]), &policy(), SystemTime::now()),
            Err(AuthError::Missing)
        ));
        assert!(matches!(
            parse_post(&f(&[("policy", "e30=")]), &policy(), SystemTime::now()),
            Err(AuthError::Missing)
        ));
    }
}
