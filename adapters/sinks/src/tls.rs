//! The rustls client configuration the MQTT and webhook sinks share. It names the ring provider
//! explicitly: the workspace builds rustls with more than one provider, and rustls refuses to pick
//! one by itself then. The system's roots are loaded when a sink starts (a file read, once).

use std::path::Path;
use std::sync::Arc;

use rustls::ClientConfig;
use rustls::RootCertStore;
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use rustls_platform_verifier::BuilderVerifierExt;
use visprompt_runtime::SinkError;

/// Trusts the certificate authorities in `ca_file` (PEM) when given, otherwise the operating
/// system's roots. An unreadable or empty CA file can never work, so it is `Invalid`.
pub(crate) fn client_config(ca_file: Option<&Path>) -> Result<ClientConfig, SinkError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| SinkError::Invalid(format!("TLS set-up failed: {e}")))?;
    let config = match ca_file {
        Some(path) => {
            let mut roots = RootCertStore::empty();
            let certs = CertificateDer::pem_file_iter(path)
                .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
                .map_err(|e| {
                    SinkError::Invalid(format!("cannot read CA file {}: {e}", path.display()))
                })?;
            let (added, _ignored) = roots.add_parsable_certificates(certs);
            if added == 0 {
                return Err(SinkError::Invalid(format!(
                    "CA file {} holds no usable certificate",
                    path.display()
                )));
            }
            builder.with_root_certificates(roots).with_no_client_auth()
        }
        None => builder
            .with_platform_verifier()
            .map_err(|e| SinkError::Invalid(format!("cannot load the system's TLS roots: {e}")))?
            .with_no_client_auth(),
    };
    Ok(config)
}

/// A configuration that can verify no server at all, for clients that never use TLS but must be
/// given a configuration anyway.
pub(crate) fn trusting_nothing() -> ClientConfig {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("the ring provider supports the default protocol versions")
        .with_root_certificates(RootCertStore::empty())
        .with_no_client_auth()
}
