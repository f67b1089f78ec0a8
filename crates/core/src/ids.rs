//! Identifiers. All are caller-chosen strings (the shop's own ids), 1 to 128 printable characters.

use serde::{Deserialize, Serialize};

/// Longest id we accept, in bytes.
pub const MAX_ID_LEN: usize = 128;

/// Why `s` is not a valid id, if it is not.
pub fn id_problem(s: &str) -> Option<&'static str> {
    if s.is_empty() {
        Some("must not be empty")
    } else if s.len() > MAX_ID_LEN {
        Some("must be at most 128 bytes")
    } else if s.chars().any(char::is_control) {
        Some("must not contain control characters")
    } else if s.trim() != s {
        Some("must not start or end with whitespace")
    } else {
        None
    }
}

macro_rules! string_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, utoipa::ToSchema)]
        #[serde(transparent)]
        #[schema(value_type = String)]
        pub struct $name(pub String);

        impl $name {
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl From<&str> for $name {
            fn from(s: &str) -> Self {
                Self(s.to_owned())
            }
        }

        impl From<String> for $name {
            fn from(s: String) -> Self {
                Self(s)
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

string_id!(
    /// A registered customer (online account or offline member card).
    UserId
);
string_id!(
    /// An anonymous browser, app install or mini-program session before login.
    DeviceId
);
string_id!(
    /// A product SKU.
    SkuId
);
string_id!(
    /// An offline store.
    StoreId
);
string_id!(
    /// An order (or a return) as numbered by the shop.
    OrderId
);
string_id!(
    /// A behaviour event; the same id twice is stored once.
    EventId
);

/// FNV-1a of an id: a stable 64-bit number for it, the same on every node and run (seeds,
/// spreading work by id). Not for security.
pub fn stable_hash(id: &str) -> u64 {
    id.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}
