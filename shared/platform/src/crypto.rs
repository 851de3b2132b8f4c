//! One crypto library for the whole process: `ring` backs TLS (rustls, for
//! tonic and sqlx alike) and token signatures (jsonwebtoken), so the build
//! carries a single implementation of the primitives and no C toolchain
//! beyond ring's own.
//!
//! jsonwebtoken leaves its backend to the application; the provider below
//! maps the algorithms OneStop signs with (EdDSA) and those external
//! identity providers publish (RSA, RSA-PSS, ECDSA, EdDSA) onto ring.
//! Shared secrets (HS*) are refused outright: a verifier that holds the
//! signing secret could mint tokens.

use std::sync::Once;

use jsonwebtoken::crypto::{CryptoProvider, JwtSigner, JwtVerifier, KeyUtils};
use jsonwebtoken::errors::{Error, ErrorKind};
use jsonwebtoken::jwk::{EllipticCurve, ThumbprintHash};
use jsonwebtoken::signature::{self, Signer, Verifier};
use jsonwebtoken::{Algorithm, AlgorithmFamily, DecodingKey, DecodingKeyKind, EncodingKey};
use ring::signature::{self as ring_sig, KeyPair};

/// Installs ring as the process-wide provider for rustls and jsonwebtoken.
/// Idempotent; every entry point that signs, verifies or opens TLS calls it.
pub fn install() {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| {
        // Either fails only when something installed a provider first, and
        // then that one is used: both crates agree on one per process.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let _ = JWT_PROVIDER.install_default();
    });
}

static JWT_PROVIDER: CryptoProvider = CryptoProvider {
    signer_factory: new_signer,
    verifier_factory: new_verifier,
    key_utils: KeyUtils {
        rsa_pub_components_from_private_key: |_| Err(ErrorKind::UnsupportedAlgorithm.into()),
        rsa_pub_components_from_public_key: |_| Err(ErrorKind::UnsupportedAlgorithm.into()),
        ec_pub_components_from_private_key: |_, _| Err(ErrorKind::UnsupportedAlgorithm.into()),
        ed_pub_components_from_private_key,
        compute_digest,
    },
};

fn ed_pub_components_from_private_key(
    pkcs8: &[u8],
    curve: &EllipticCurve,
) -> Result<Vec<u8>, Error> {
    match curve {
        EllipticCurve::Ed25519 => Ok(ed25519_key_pair(pkcs8)?.public_key().as_ref().to_vec()),
        _ => Err(ErrorKind::InvalidAlgorithm.into()),
    }
}

fn compute_digest(data: &[u8], hash: ThumbprintHash) -> Result<Vec<u8>, Error> {
    let algorithm = match hash {
        ThumbprintHash::SHA256 => &ring::digest::SHA256,
        ThumbprintHash::SHA384 => &ring::digest::SHA384,
        ThumbprintHash::SHA512 => &ring::digest::SHA512,
        _ => return Err(ErrorKind::UnsupportedAlgorithm.into()),
    };
    Ok(ring::digest::digest(algorithm, data).as_ref().to_vec())
}

/// Accepts PKCS#8 v1 (what `openssl genpkey` writes) as well as v2.
pub(crate) fn ed25519_key_pair(pkcs8: &[u8]) -> Result<ring_sig::Ed25519KeyPair, Error> {
    ring_sig::Ed25519KeyPair::from_pkcs8_maybe_unchecked(pkcs8)
        .map_err(|_| ErrorKind::InvalidEddsaKey.into())
}

fn new_signer(algorithm: &Algorithm, key: &EncodingKey) -> Result<Box<dyn JwtSigner>, Error> {
    match algorithm {
        Algorithm::EdDSA if key.family() == AlgorithmFamily::Ed => {
            Ok(Box::new(EdDsaSigner(ed25519_key_pair(key.as_bytes())?)))
        }
        _ => Err(ErrorKind::UnsupportedAlgorithm.into()),
    }
}

struct EdDsaSigner(ring_sig::Ed25519KeyPair);

impl Signer<Vec<u8>> for EdDsaSigner {
    fn try_sign(&self, message: &[u8]) -> Result<Vec<u8>, signature::Error> {
        Ok(self.0.sign(message).as_ref().to_vec())
    }
}

impl JwtSigner for EdDsaSigner {
    fn algorithm(&self) -> Algorithm {
        Algorithm::EdDSA
    }
}

static EDDSA: Plain = Plain(&ring_sig::ED25519);
static ES256: Plain = Plain(&ring_sig::ECDSA_P256_SHA256_FIXED);
static ES384: Plain = Plain(&ring_sig::ECDSA_P384_SHA384_FIXED);
static RS256: Rsa = Rsa(&ring_sig::RSA_PKCS1_2048_8192_SHA256);
static RS384: Rsa = Rsa(&ring_sig::RSA_PKCS1_2048_8192_SHA384);
static RS512: Rsa = Rsa(&ring_sig::RSA_PKCS1_2048_8192_SHA512);
static PS256: Rsa = Rsa(&ring_sig::RSA_PSS_2048_8192_SHA256);
static PS384: Rsa = Rsa(&ring_sig::RSA_PSS_2048_8192_SHA384);
static PS512: Rsa = Rsa(&ring_sig::RSA_PSS_2048_8192_SHA512);

fn new_verifier(algorithm: &Algorithm, key: &DecodingKey) -> Result<Box<dyn JwtVerifier>, Error> {
    let (verification, family): (&'static dyn RingVerification, AlgorithmFamily) = match algorithm {
        Algorithm::EdDSA => (&EDDSA, AlgorithmFamily::Ed),
        Algorithm::ES256 => (&ES256, AlgorithmFamily::Ec),
        Algorithm::ES384 => (&ES384, AlgorithmFamily::Ec),
        Algorithm::RS256 => (&RS256, AlgorithmFamily::Rsa),
        Algorithm::RS384 => (&RS384, AlgorithmFamily::Rsa),
        Algorithm::RS512 => (&RS512, AlgorithmFamily::Rsa),
        Algorithm::PS256 => (&PS256, AlgorithmFamily::Rsa),
        Algorithm::PS384 => (&PS384, AlgorithmFamily::Rsa),
        Algorithm::PS512 => (&PS512, AlgorithmFamily::Rsa),
        _ => return Err(ErrorKind::UnsupportedAlgorithm.into()),
    };
    if key.family() != family {
        return Err(ErrorKind::InvalidAlgorithm.into());
    }
    Ok(Box::new(KeyVerifier {
        algorithm: *algorithm,
        verification,
        key: key.clone(),
    }))
}

/// How one family of ring algorithms checks a signature with a decoded key.
trait RingVerification: Sync {
    fn verify(&self, key: &DecodingKey, message: &[u8], signature: &[u8]) -> Result<(), ()>;
}

/// Algorithms whose public key is one byte string (Ed25519's 32 bytes,
/// an uncompressed EC point).
struct Plain(&'static (dyn ring_sig::VerificationAlgorithm + Sync));

impl RingVerification for Plain {
    fn verify(&self, key: &DecodingKey, message: &[u8], signature: &[u8]) -> Result<(), ()> {
        let DecodingKeyKind::SecretOrDer(bytes) = key.kind() else {
            return Err(());
        };
        ring_sig::UnparsedPublicKey::new(self.0, bytes)
            .verify(message, signature)
            .map_err(|_| ())
    }
}

/// RSA keys come from a JWK as modulus and exponent, or as PKCS#1 DER.
struct Rsa(&'static ring_sig::RsaParameters);

impl RingVerification for Rsa {
    fn verify(&self, key: &DecodingKey, message: &[u8], signature: &[u8]) -> Result<(), ()> {
        match key.kind() {
            DecodingKeyKind::SecretOrDer(der) => ring_sig::UnparsedPublicKey::new(self.0, der)
                .verify(message, signature)
                .map_err(|_| ()),
            DecodingKeyKind::RsaModulusExponent { n, e } => {
                ring_sig::RsaPublicKeyComponents { n, e }
                    .verify(self.0, message, signature)
                    .map_err(|_| ())
            }
        }
    }
}

struct KeyVerifier {
    algorithm: Algorithm,
    verification: &'static dyn RingVerification,
    key: DecodingKey,
}

impl Verifier<Vec<u8>> for KeyVerifier {
    fn verify(&self, message: &[u8], signature: &Vec<u8>) -> Result<(), signature::Error> {
        self.verification
            .verify(&self.key, message, signature)
            .map_err(|()| signature::Error::new())
    }
}

impl JwtVerifier for KeyVerifier {
    fn algorithm(&self) -> Algorithm {
        self.algorithm
    }
}
