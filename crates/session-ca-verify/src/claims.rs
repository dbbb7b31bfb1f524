//! The claim vocabulary: OIDs, the standard claims, claim types, and the DER
//! encoding and decoding of claim values.
//!
//! Each claim is its own non-critical extension (RFC 5280 §4.2: unknown
//! non-critical extensions are ignored by relying parties that do not
//! understand them) whose `extnValue` is a DER `UTF8String`. JSON-typed claims
//! hold compact JSON text.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::VerifyError;

/// The documentation arc of RFC 5612; operators set their own PEN arc.
pub const DEFAULT_OID_ARC: &str = "1.3.6.1.4.1.32473.1";

/// An ASN.1 object identifier in dotted form, validated per X.660.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ObjectId {
    arcs: Vec<u64>,
}

impl ObjectId {
    /// The OID's arcs.
    pub fn arcs(&self) -> &[u64] {
        &self.arcs
    }

    /// This OID with one more arc appended.
    pub fn child(&self, arc: u64) -> ObjectId {
        let mut arcs = self.arcs.clone();
        arcs.push(arc);
        ObjectId { arcs }
    }

    /// Whether `self` lies strictly below `parent`.
    pub fn is_below(&self, parent: &ObjectId) -> bool {
        self.arcs.len() > parent.arcs.len() && self.arcs.starts_with(&parent.arcs)
    }
}

impl fmt::Display for ObjectId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, arc) in self.arcs.iter().enumerate() {
            if i > 0 {
                f.write_str(".")?;
            }
            write!(f, "{arc}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for ObjectId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ObjectId({self})")
    }
}

impl FromStr for ObjectId {
    type Err = ClaimError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let invalid = |why: &str| ClaimError::InvalidOid {
            oid: s.to_owned(),
            why: why.to_owned(),
        };
        let arcs = s
            .split('.')
            .map(|part| {
                if part.is_empty() || !part.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(invalid("every arc must be a decimal number"));
                }
                if part.len() > 1 && part.starts_with('0') {
                    return Err(invalid("arcs must not have leading zeros"));
                }
                part.parse::<u64>()
                    .map_err(|_| invalid("an arc is larger than 2^64-1"))
            })
            .collect::<Result<Vec<u64>, _>>()?;
        if arcs.len() < 2 {
            return Err(invalid("an OID has at least two arcs"));
        }
        if arcs[0] > 2 {
            return Err(invalid("the first arc must be 0, 1 or 2"));
        }
        if arcs[0] < 2 && arcs[1] > 39 {
            return Err(invalid(
                "under arcs 0 and 1 the second arc must be at most 39",
            ));
        }
        // X.690 §8.19.4 encodes the first two arcs as one number, 40 * a + b.
        if arcs[1] >= u64::MAX - 80 {
            return Err(invalid("the second arc is too large to encode"));
        }
        Ok(ObjectId { arcs })
    }
}

impl Serialize for ObjectId {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for ObjectId {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = String::deserialize(deserializer)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// The claims every certificate may carry, at fixed arcs under the configured OID arc.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StandardClaim {
    /// `.1`: the caller's session id (also the subject CN).
    SessionId,
    /// `.2`: the caller's transaction id.
    TransactionId,
    /// `.3`: the authenticated caller identity.
    Requester,
    /// `.4`: the correlation id of the issuing request.
    RequestId,
}

impl StandardClaim {
    /// All standard claims, in arc order.
    pub const ALL: [StandardClaim; 4] = [
        StandardClaim::SessionId,
        StandardClaim::TransactionId,
        StandardClaim::Requester,
        StandardClaim::RequestId,
    ];

    /// The claim's name as used in requests and `inspect` output.
    pub fn name(self) -> &'static str {
        match self {
            StandardClaim::SessionId => "session_id",
            StandardClaim::TransactionId => "transaction_id",
            StandardClaim::Requester => "requester",
            StandardClaim::RequestId => "request_id",
        }
    }

    /// The arc appended to the configured OID arc.
    pub fn arc(self) -> u64 {
        match self {
            StandardClaim::SessionId => 1,
            StandardClaim::TransactionId => 2,
            StandardClaim::Requester => 3,
            StandardClaim::RequestId => 4,
        }
    }

    /// The claim's OID under `oid_arc`.
    pub fn oid(self, oid_arc: &ObjectId) -> ObjectId {
        oid_arc.child(self.arc())
    }
}

/// How a profile-defined claim's value is typed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ClaimType {
    /// A JSON string, stored as its text.
    String,
    /// Any JSON value, stored as compact JSON text.
    Json,
}

impl fmt::Display for ClaimType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ClaimType::String => "string",
            ClaimType::Json => "json",
        })
    }
}

impl std::str::FromStr for ClaimType {
    type Err = VerifyError;

    /// `string` or `json`.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text {
            "string" => Ok(ClaimType::String),
            "json" => Ok(ClaimType::Json),
            other => Err(VerifyError::ClaimConfig(format!(
                "claim type {other:?}: expected string or json"
            ))),
        }
    }
}

impl ClaimType {
    /// Encodes a claim of this type as its extension value: the DER
    /// `UTF8String` of the claim's text, the characters of a `string` claim
    /// or the JSON text of a `json` claim (the signer keeps the text the
    /// caller sent, so a number is exactly as written).
    pub fn encode(self, text: &str) -> Vec<u8> {
        encode_claim_value(text)
    }

    /// Decodes a claim extension value of this type: a `string` claim as a
    /// JSON string, a `json` claim parsed. The error says precisely what is
    /// wrong with the value.
    pub fn decode(self, der: &[u8]) -> Result<Value, ClaimError> {
        let text = decode_claim_text(der).map_err(ClaimError::Malformed)?;
        match self {
            ClaimType::String => Ok(Value::String(text)),
            ClaimType::Json => serde_json::from_str(&text)
                .map_err(|e| ClaimError::Malformed(format!("not valid JSON: {e}"))),
        }
    }
}

/// Encodes a claim value as the DER `UTF8String` that forms the extension value.
pub fn encode_claim_value(text: &str) -> Vec<u8> {
    yasna::construct_der(|writer| writer.write_utf8_string(text))
}

/// Decodes an extension value written by [`encode_claim_value`].
pub fn decode_claim_value(der: &[u8]) -> Result<String, ClaimError> {
    yasna::parse_der(der, |reader| reader.read_utf8string()).map_err(|_| ClaimError::MalformedValue)
}

/// Decodes a claim extension value like [`decode_claim_value`], saying
/// precisely what is wrong with one that is not a DER `UTF8String`.
pub(crate) fn decode_claim_text(der: &[u8]) -> Result<String, String> {
    if let Ok(text) = decode_claim_value(der) {
        return Ok(text);
    }
    use x509_parser::asn1_rs::{Any, FromDer as _, Tag};
    let why = match Any::from_der(der) {
        Err(e) => format!("not DER: {e}"),
        Ok((rest, any)) if any.tag() == Tag::Utf8String => match std::str::from_utf8(any.data) {
            Err(e) => format!("a UTF8String whose bytes are not UTF-8: {e}"),
            Ok(_) if !rest.is_empty() => "trailing bytes after the UTF8String".into(),
            Ok(_) => "a UTF8String that is not DER-encoded".into(),
        },
        Ok((_, any)) => format!("a {} where a DER UTF8String is expected", any.tag()),
    };
    Err(why)
}

/// Errors about claims and OIDs.
#[derive(Debug, thiserror::Error)]
pub enum ClaimError {
    /// An OID string that is not a valid dotted OID.
    #[error("invalid OID {oid:?}: {why}")]
    InvalidOid {
        /// The offending text.
        oid: String,
        /// What is wrong with it.
        why: String,
    },
    /// An extension value that is not a DER UTF8String.
    #[error("claim extension value is not a DER UTF8String")]
    MalformedValue,
    /// A claim value that cannot be decoded as its type, and why (not a DER
    /// `UTF8String`, or a `json` claim that is not JSON).
    #[error("{0}")]
    Malformed(String),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn oids_parse_and_print() {
        let oid: ObjectId = DEFAULT_OID_ARC.parse().unwrap();
        assert_eq!(oid.to_string(), DEFAULT_OID_ARC);
        assert_eq!(
            StandardClaim::Requester.oid(&oid).to_string(),
            "1.3.6.1.4.1.32473.1.3"
        );
        assert!(oid.child(7).is_below(&oid));
        assert!(!oid.is_below(&oid));
    }

    #[test]
    fn bad_oids_are_refused_with_a_reason() {
        for (bad, why) in [
            ("", "decimal"),
            ("1", "two arcs"),
            ("3.1", "first arc"),
            ("1.40", "at most 39"),
            ("1.3.x", "decimal"),
            ("1.3.", "decimal"),
            ("1.03", "leading zeros"),
            ("1.3.99999999999999999999999", "2^64"),
            ("2.18446744073709551600", "too large to encode"),
        ] {
            let err = bad.parse::<ObjectId>().unwrap_err().to_string();
            assert!(err.contains(why), "{bad:?}: {err}");
        }
        assert!("2.999.1".parse::<ObjectId>().is_ok());
        // The largest encodable second arc still encodes.
        let big: ObjectId = format!("2.{}", u64::MAX - 81).parse().unwrap();
        let der = yasna::construct_der(|w| {
            w.write_oid(&yasna::models::ObjectIdentifier::from_slice(big.arcs()))
        });
        assert_eq!(der[0], 0x06, "an OBJECT IDENTIFIER");
        assert!(format!("2.{}", u64::MAX - 80).parse::<ObjectId>().is_err());
    }

    #[test]
    fn values_round_trip_as_utf8string() {
        let der = encode_claim_value("naïve ✓");
        assert_eq!(der[0], 0x0c, "UTF8String tag");
        assert_eq!(decode_claim_value(&der).unwrap(), "naïve ✓");
        let long = "x".repeat(300);
        assert_eq!(
            decode_claim_value(&encode_claim_value(&long)).unwrap(),
            long
        );
        assert!(
            decode_claim_value(&[0x13, 0x01, b'a']).is_err(),
            "PrintableString"
        );
        assert!(
            decode_claim_value(&[0x0c, 0x05, b'a']).is_err(),
            "truncated"
        );
    }

    #[test]
    fn bad_claim_values_are_explained() {
        assert_eq!(
            decode_claim_text(&encode_claim_value("ok ✓")).unwrap(),
            "ok ✓"
        );
        for (der, want) in [
            (&[][..], "not DER"),
            (
                &[0x13, 0x01, b'a'][..],
                "a PrintableString where a DER UTF8String is expected",
            ),
            (&[0x0c, 0x02, 0xc3, 0x28][..], "not UTF-8"),
            (&[0x0c, 0x05, b'a'][..], "not DER"),
            (&[0x0c, 0x01, b'a', 0x00][..], "trailing bytes"),
            (&[0x30, 0x00][..], "a Sequence where"),
        ] {
            let got = decode_claim_text(der).unwrap_err();
            assert!(got.contains(want), "{der:02x?}: want {want:?}, got {got:?}");
        }
    }

    #[test]
    fn typed_claims_decode_to_json() {
        let der = encode_claim_value(r#"{"a":[1,2]}"#);
        assert_eq!(
            ClaimType::Json.decode(&der).unwrap(),
            serde_json::json!({"a": [1, 2]})
        );
        assert_eq!(
            ClaimType::String.decode(&der).unwrap(),
            Value::String(r#"{"a":[1,2]}"#.into())
        );
        let not_json = encode_claim_value("{");
        assert!(ClaimType::Json
            .decode(&not_json)
            .unwrap_err()
            .to_string()
            .starts_with("not valid JSON: "));
        assert!(ClaimType::String
            .decode(&[0x13, 0x01, b'a'])
            .unwrap_err()
            .to_string()
            .contains("PrintableString"));
        // Encoding is the same DER UTF8String for both types.
        assert_eq!(ClaimType::Json.encode("[1]"), encode_claim_value("[1]"));
        assert_eq!(ClaimType::String.encode("x"), encode_claim_value("x"));
    }
}
