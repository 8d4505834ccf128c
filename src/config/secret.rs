//! A secret as configured (a webhook signing secret, an SMTP password): zeroized on drop,
//! redacted in `Debug`, read from TOML as a plain string.

use std::fmt;

use serde::Deserialize;
use zeroize::Zeroizing;

/// A configured secret. `Debug` shows only whether it is set.
#[derive(Clone, Default)]
pub struct Secret(pub(crate) Zeroizing<String>);

impl Secret {
    /// Wraps a secret; the `String` is moved in and zeroized on drop.
    pub fn new(s: String) -> Self {
        Self(Zeroizing::new(s))
    }

    /// Whether no secret was given.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_empty() {
            f.write_str("Secret(<unset>)")
        } else {
            f.write_str("Secret(<redacted>)")
        }
    }
}

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d).map(Self::new)
    }
}
