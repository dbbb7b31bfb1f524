//! Certificates a TLS-terminating proxy forwards: an ALB, API Gateway,
//! nginx or Envoy checks the client's certificate at the handshake and
//! hands it to the backend in a header or in the event. The backend then
//! verifies and reads it exactly as it would a certificate from its own
//! handshake ([`Verifier::verify_forwarded`]).
//!
//! **The value is trustworthy only when the proxy strips that header from
//! every incoming request**, so a client cannot send it itself, and only
//! when nothing but the proxy can reach the backend. ALB and API Gateway do
//! set their headers and fields themselves; nginx and Envoy must be
//! configured to (`proxy_set_header`, `forward_client_cert_details:
//! SANITIZE_SET`). Verifying the forwarded certificate against the CA chain
//! still refuses one the proxy should not have accepted.

use percent_encoding::percent_decode_str;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::CertificateDer;

use crate::error::VerifyError;
use crate::verifier::Verifier;
use crate::SessionClaims;

/// A client certificate as a proxy forwarded it, by where it came from.
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub enum Forwarded<'a> {
    /// ALB mutual TLS in passthrough mode: the `X-Amzn-Mtls-Clientcert`
    /// header, the client's chain as URL-encoded PEM, leaf first.
    AlbPassthrough(&'a str),
    /// ALB mutual TLS in verify mode: the `X-Amzn-Mtls-Clientcert-Leaf`
    /// header, the leaf as URL-encoded PEM.
    AlbVerifyLeaf(&'a str),
    /// nginx's `$ssl_client_escaped_cert` (set by `proxy_set_header`): the
    /// leaf as URL-encoded PEM.
    Nginx(&'a str),
    /// Envoy's `x-forwarded-client-cert`: its last element (the one the
    /// proxy next to this backend added), `Chain="…"` or else `Cert="…"`,
    /// URL-encoded PEM.
    Envoy(&'a str),
    /// API Gateway mutual TLS: `requestContext.identity.clientCert.clientCertPem`
    /// of a REST API event, or `requestContext.authentication.clientCert.clientCertPem`
    /// of an HTTP API event: the leaf as PEM.
    ApiGatewayPem(&'a str),
}

impl Verifier {
    /// Verifies a certificate a TLS-terminating proxy forwarded (see the
    /// module's caveat on trusting it) and reads its claims, exactly as
    /// [`Verifier::verify`] does for a handshake's chain. A value that is
    /// not what that proxy sends (not URL-encoded PEM, encoded twice,
    /// truncated, no certificate in it) is refused with
    /// [`VerifyError::MalformedForwarded`]; an empty one (the client sent
    /// no certificate) with [`VerifyError::NoCertificate`].
    pub fn verify_forwarded(&self, forwarded: Forwarded<'_>) -> Result<SessionClaims, VerifyError> {
        let (Forwarded::AlbPassthrough(value)
        | Forwarded::AlbVerifyLeaf(value)
        | Forwarded::Nginx(value)
        | Forwarded::Envoy(value)
        | Forwarded::ApiGatewayPem(value)) = forwarded;
        if value.trim().is_empty() {
            // What a proxy passes on when the client sent no certificate
            // (nginx's `ssl_verify_client optional`, say).
            return Err(VerifyError::NoCertificate);
        }
        let pem = match forwarded {
            Forwarded::AlbPassthrough(value)
            | Forwarded::AlbVerifyLeaf(value)
            | Forwarded::Nginx(value) => url_decoded(value)?,
            Forwarded::Envoy(value) => url_decoded(&envoy_certificate(value)?)?,
            Forwarded::ApiGatewayPem(value) => value.to_owned(),
        };
        let chain = CertificateDer::pem_slice_iter(pem.as_bytes())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| VerifyError::MalformedForwarded(format!("malformed PEM: {e}")))?;
        if chain.is_empty() {
            return Err(VerifyError::MalformedForwarded(
                "no PEM CERTIFICATE block in the forwarded value".into(),
            ));
        }
        self.verify(&chain)
    }
}

/// The text of a URL-encoded value; a `%` sequence that does not decode to
/// UTF-8 is refused.
fn url_decoded(value: &str) -> Result<String, VerifyError> {
    percent_decode_str(value.trim())
        .decode_utf8()
        .map(|text| text.into_owned())
        .map_err(|_| {
            VerifyError::MalformedForwarded("the URL-encoded value is not UTF-8 text".into())
        })
}

/// The `Chain` (else `Cert`) value of the last element of an Envoy
/// `x-forwarded-client-cert` header (see [`envoy_elements`]). Two of
/// either in that element, or neither, is refused.
fn envoy_certificate(header: &str) -> Result<String, VerifyError> {
    let elements = envoy_elements(header)?;
    let last = elements.last().map(Vec::as_slice).unwrap_or_default();
    let value_of = |name: &str| -> Result<Option<&str>, VerifyError> {
        let mut values = last
            .iter()
            .filter(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str());
        match (values.next(), values.next()) {
            (_, Some(_)) => Err(malformed_xfcc(&format!("two {name} in its last element"))),
            (value, None) => Ok(value.filter(|v| !v.is_empty())),
        }
    };
    let (chain, cert) = (value_of("Chain")?, value_of("Cert")?);
    chain.or(cert).map(str::to_owned).ok_or_else(|| {
        VerifyError::MalformedForwarded(
            "the last element of x-forwarded-client-cert has no Cert or Chain (configure Envoy \
             with set_current_client_cert_details: cert: true or chain: true)"
                .into(),
        )
    })
}

fn malformed_xfcc(why: &str) -> VerifyError {
    VerifyError::MalformedForwarded(format!("x-forwarded-client-cert: {why}"))
}

/// The elements of an Envoy `x-forwarded-client-cert` header, each its
/// `key=value` pairs: elements are separated by `,`, pairs by `;`, and a
/// value is either bare (no `,`, `;` or `"`) or a quoted string in which
/// `\` escapes the next character (as Envoy writes a `"`, `,` or `;` of a
/// subject). The grammar is strict: an unterminated quoted string, a quote
/// in a bare value or text after a quoted one is refused, so that a value
/// a client put in front of the proxy's own element cannot swallow the
/// separator before it and pass off the client's text as the last element.
fn envoy_elements(header: &str) -> Result<Vec<Vec<(&str, String)>>, VerifyError> {
    let mut elements = vec![Vec::new()];
    let mut rest = header;
    loop {
        let (key, after) = rest
            .split_once('=')
            .ok_or_else(|| malformed_xfcc("a pair without '='"))?;
        let key = key.trim();
        if key.is_empty() || key.contains([',', ';', '"']) {
            return Err(malformed_xfcc("a malformed key"));
        }
        rest = after.trim_start();
        let value = if let Some(quoted) = rest.strip_prefix('"') {
            let mut value = String::new();
            let mut chars = quoted.char_indices();
            let end = loop {
                match chars.next() {
                    Some((_, '\\')) => match chars.next() {
                        Some((_, escaped)) => value.push(escaped),
                        None => return Err(malformed_xfcc("an unterminated quoted value")),
                    },
                    Some((i, '"')) => break i,
                    Some((_, c)) => value.push(c),
                    None => return Err(malformed_xfcc("an unterminated quoted value")),
                }
            };
            rest = quoted[end + 1..].trim_start();
            value
        } else {
            let stop = rest.find([',', ';', '"']).unwrap_or(rest.len());
            if rest[stop..].starts_with('"') {
                return Err(malformed_xfcc("a quote inside a bare value"));
            }
            let value = rest[..stop].trim_end().to_owned();
            rest = &rest[stop..];
            value
        };
        if let Some(element) = elements.last_mut() {
            element.push((key, value));
        }
        let mut next = rest.chars();
        match next.next() {
            None => return Ok(elements),
            Some(';') => {}
            Some(',') => elements.push(Vec::new()),
            Some(_) => return Err(malformed_xfcc("text after a quoted value")),
        }
        rest = next.as_str();
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use time::OffsetDateTime;
    use x509_parser::prelude::{FromDer, X509Certificate};

    use super::*;
    use crate::fixtures::{der, ISSUING_PEM, LEAF_PEM, ROOT_PEM};
    use crate::{FixedClock, VerifyErrorKind};

    const ALB_PASSTHROUGH: &str = include_str!("../tests/fixtures/forwarded/alb-passthrough.txt");
    const ALB_LEAF: &str = include_str!("../tests/fixtures/forwarded/alb-verify-leaf.txt");
    const NGINX: &str = include_str!("../tests/fixtures/forwarded/nginx-escaped.txt");
    const ENVOY: &str = include_str!("../tests/fixtures/forwarded/envoy-xfcc.txt");
    const DOUBLE: &str = include_str!("../tests/fixtures/forwarded/double-encoded.txt");

    /// A verifier trusting `ca_pem`, at a day into the leaf's validity.
    fn verifier(ca_pem: &str) -> Verifier {
        let leaf = der(LEAF_PEM);
        let (_, cert) = X509Certificate::from_der(leaf.as_ref()).unwrap();
        let at: OffsetDateTime =
            cert.validity().not_before.to_datetime() + Duration::from_secs(86_400);
        Verifier::builder()
            .ca_pem(ca_pem)
            .clock(Arc::new(FixedClock::new(at)))
            .build()
            .unwrap()
    }

    #[test]
    fn every_proxys_shape_verifies_and_reads_the_claims() {
        // The root alone: the intermediate must come with the forwarded chain.
        let root_only = verifier(ROOT_PEM);
        let with_issuing = verifier(&format!("{ROOT_PEM}{ISSUING_PEM}"));
        for (name, verifier, forwarded) in [
            (
                "ALB passthrough",
                &root_only,
                Forwarded::AlbPassthrough(ALB_PASSTHROUGH),
            ),
            ("Envoy chain", &root_only, Forwarded::Envoy(ENVOY)),
            (
                "ALB verify",
                &with_issuing,
                Forwarded::AlbVerifyLeaf(ALB_LEAF),
            ),
            ("nginx", &with_issuing, Forwarded::Nginx(NGINX)),
            (
                "API Gateway",
                &with_issuing,
                Forwarded::ApiGatewayPem(LEAF_PEM),
            ),
        ] {
            let session = verifier
                .verify_forwarded(forwarded)
                .unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(session.session_id.as_deref(), Some("s-1"), "{name}");
            assert_eq!(session.requester.as_deref(), Some("alice"), "{name}");
        }
        // Without the intermediate, a leaf alone does not chain to the root.
        let err = root_only
            .verify_forwarded(Forwarded::Nginx(NGINX))
            .unwrap_err();
        assert_eq!(err.kind(), VerifyErrorKind::NotTrusted, "{err}");
    }

    #[test]
    fn forged_and_broken_values_are_refused() {
        let verifier = verifier(&format!("{ROOT_PEM}{ISSUING_PEM}"));
        let truncated = &NGINX[..NGINX.len() / 2];
        for (name, forwarded, want) in [
            (
                "double-encoded",
                Forwarded::Nginx(DOUBLE),
                "no PEM CERTIFICATE",
            ),
            ("truncated", Forwarded::Nginx(truncated), "malformed PEM"),
            ("bad escape", Forwarded::Nginx("%C3%28"), "not UTF-8"),
            (
                "Envoy without a certificate",
                Forwarded::Envoy("By=spiffe://x;Hash=00;Subject=\"CN=a,b\""),
                "no Cert or Chain",
            ),
        ] {
            let err = verifier.verify_forwarded(forwarded).unwrap_err();
            assert_eq!(err.kind(), VerifyErrorKind::NotTrusted, "{name}");
            assert!(err.to_string().contains(want), "{name}: {err}");
        }
        // Nothing forwarded: no certificate, not a forged one.
        for empty in ["", " "] {
            assert!(matches!(
                verifier.verify_forwarded(Forwarded::Nginx(empty)),
                Err(VerifyError::NoCertificate)
            ));
        }
        // A CA certificate is not a client certificate, however forwarded.
        let err = verifier
            .verify_forwarded(Forwarded::ApiGatewayPem(ROOT_PEM))
            .unwrap_err();
        assert_eq!(err.kind(), VerifyErrorKind::NotTrusted, "{err}");
    }

    #[test]
    fn envoy_elements_and_pairs_split_outside_quotes() {
        assert_eq!(
            envoy_certificate(r#"Cert="old",By=z;Cert="new";Subject="CN=a;b""#).unwrap(),
            "new"
        );
        assert_eq!(
            envoy_certificate(r#"By=z;Cert="leaf";Chain="chain""#).unwrap(),
            "chain"
        );
        // Envoy escapes a subject's quote; an empty Chain does not hide Cert.
        assert_eq!(
            envoy_certificate(r#"By=z;Subject="CN=a\"\,b";Chain="";Cert=leaf"#).unwrap(),
            "leaf"
        );
        assert_eq!(
            envoy_elements(r#"a="x,y";b=1,c=2"#).unwrap(),
            vec![
                vec![("a", "x,y".to_owned()), ("b", "1".to_owned())],
                vec![("c", "2".to_owned())]
            ]
        );
    }

    #[test]
    fn an_envoy_element_a_client_sent_cannot_pass_for_the_proxys() {
        // The client's own element ends in an open quote, which would
        // swallow the comma before the element the proxy appends.
        let proxy = r#"By=b;Hash=h;Cert="real";Subject="CN=s";URI="#;
        for client in [
            r#"By=a;Cert=victim;X=""#,
            r#"By=a;Cert=victim;X="\"#,
            r#"By=a;Cert=victim;X="a\"#,
            r#"By=a;Cert=victim;X="a\""b"#,
            r#"By=a;Cert="victim"x"#,
            r#"By=a;Cert=vic"tim"#,
        ] {
            let header = format!("{client},{proxy}");
            let err = envoy_certificate(&header).unwrap_err();
            assert!(
                matches!(err, VerifyError::MalformedForwarded(_)),
                "{header}: {err}"
            );
        }
        // A well-formed element before the proxy's is simply not the last.
        assert_eq!(
            envoy_certificate(&format!("By=a;Cert=victim,{proxy}")).unwrap(),
            "real"
        );
        for header in ["", "Cert", "Cert=a;Cert=b", "=x", "Cert=\"a"] {
            assert!(
                matches!(
                    envoy_certificate(header),
                    Err(VerifyError::MalformedForwarded(_))
                ),
                "{header:?}"
            );
        }
    }
}
