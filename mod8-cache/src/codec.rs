//! How typed values become bytes.

use serde::{de::DeserializeOwned, Deserialize, Serialize};

use crate::{Error, Result};

/// The serialisation format of cached values.
///
/// JSON is the default (readable with `redis-cli`); MessagePack is the compact binary option.
/// Whichever you choose, bump the Redis namespace's schema version
/// ([`CacheConfig::schema_version`](crate::CacheConfig::schema_version)) when a cached type
/// changes shape, so old bytes are never read as the new type. A value that fails to decode anyway is treated as
/// a miss and overwritten.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum Codec {
    /// `serde_json`.
    #[default]
    Json,
    /// `rmp-serde` with field names (tolerates reordered struct fields).
    MessagePack,
}

impl Codec {
    /// Encodes `value`.
    pub fn encode<T: Serialize + ?Sized>(self, value: &T) -> Result<Vec<u8>> {
        match self {
            Codec::Json => serde_json::to_vec(value).map_err(|e| Error::Codec(e.to_string())),
            Codec::MessagePack => {
                rmp_serde::to_vec_named(value).map_err(|e| Error::Codec(e.to_string()))
            }
        }
    }

    /// Decodes bytes produced by [`Codec::encode`].
    pub fn decode<T: DeserializeOwned>(self, bytes: &[u8]) -> Result<T> {
        match self {
            Codec::Json => serde_json::from_slice(bytes).map_err(|e| Error::Codec(e.to_string())),
            Codec::MessagePack => {
                rmp_serde::from_slice(bytes).map_err(|e| Error::Codec(e.to_string()))
            }
        }
    }
}

impl std::str::FromStr for Codec {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "json" => Ok(Codec::Json),
            "msgpack" | "messagepack" | "rmp" => Ok(Codec::MessagePack),
            other => Err(Error::validation(
                "codec",
                format!("unknown codec {other:?} (expected json or msgpack)"),
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A cached value comes back as it was stored, floats to the last bit (serde_json's
    /// default float parser can be one unit in the last place off).
    #[test]
    fn floats_round_trip_exactly() {
        let values = [
            0.224_999_999_999_999_98_f64,
            0.1 + 0.2,
            1.0 / 3.0,
            6.02e23,
            5e-324,
        ];
        for codec in [Codec::Json, Codec::MessagePack] {
            let bytes = codec.encode(&values).unwrap();
            let back: Vec<f64> = codec.decode(&bytes).unwrap();
            for (a, b) in values.iter().zip(&back) {
                assert_eq!(a.to_bits(), b.to_bits(), "{codec:?}: {a:e}");
            }
        }
    }
}
