//! RFC 8291 message encryption for Web Push (`Content-Encoding: aes128gcm`, RFC 8188): one
//! record, encrypted for the user agent's P-256 key and auth secret with a fresh ephemeral key.

use aes_gcm::aead::{Aead, KeyInit};
use aes_gcm::{Aes128Gcm, Nonce};
use hkdf::Hkdf;
use p256::ecdh::diffie_hellman;
use p256::elliptic_curve::sec1::ToEncodedPoint;
use p256::{PublicKey, SecretKey};
use rand::RngCore;
use sha2::Sha256;

/// Header bytes before the ciphertext: salt (16), record size (4), key id length (1), key (65).
pub(crate) const HEADER_LEN: usize = 16 + 4 + 1 + 65;
/// The AEAD tag and the padding delimiter each record carries.
pub(crate) const OVERHEAD: usize = HEADER_LEN + 16 + 1;

/// Why a subscription's keys cannot be used.
#[derive(Debug, thiserror::Error)]
pub(crate) enum KeyError {
    #[error("p256dh is not an uncompressed P-256 point")]
    PublicKey,
    #[error("auth is not 16 bytes")]
    Auth,
}

/// The user agent's keys from its subscription (`keys.p256dh`, `keys.auth`, raw bytes).
pub(crate) struct Receiver {
    public: PublicKey,
    public_bytes: Vec<u8>,
    auth: [u8; 16],
}

impl Receiver {
    pub(crate) fn new(p256dh: &[u8], auth: &[u8]) -> Result<Self, KeyError> {
        if p256dh.len() != 65 || p256dh[0] != 4 {
            return Err(KeyError::PublicKey);
        }
        let public = PublicKey::from_sec1_bytes(p256dh).map_err(|_| KeyError::PublicKey)?;
        let auth: [u8; 16] = auth.try_into().map_err(|_| KeyError::Auth)?;
        Ok(Receiver {
            public,
            public_bytes: p256dh.to_vec(),
            auth,
        })
    }

    /// The `aes128gcm` body carrying `plaintext`, from a fresh ephemeral key and salt.
    pub(crate) fn encrypt(&self, plaintext: &[u8]) -> Vec<u8> {
        let sender = SecretKey::random(&mut rand::rngs::OsRng);
        let mut salt = [0u8; 16];
        rand::thread_rng().fill_bytes(&mut salt);
        self.seal(&sender, &salt, plaintext)
    }

    /// The `aes128gcm` body carrying `plaintext`, from the sender's (ephemeral) key and salt.
    fn seal(&self, sender: &SecretKey, salt: &[u8; 16], plaintext: &[u8]) -> Vec<u8> {
        let sender_public = sender.public_key().to_encoded_point(false);
        let shared = diffie_hellman(sender.to_nonzero_scalar(), self.public.as_affine());
        let (key, nonce) = self.derive(shared.raw_secret_bytes(), sender_public.as_bytes(), salt);
        let mut record = Vec::with_capacity(plaintext.len() + 1);
        record.extend_from_slice(plaintext);
        record.push(2); // the last (and only) record's padding delimiter
        let cipher = Aes128Gcm::new(&key.into());
        let sealed = cipher
            .encrypt(&Nonce::from(nonce), record.as_slice())
            .unwrap_or_default();
        let mut body = Vec::with_capacity(HEADER_LEN + sealed.len());
        body.extend_from_slice(salt);
        body.extend_from_slice(&4096u32.to_be_bytes());
        body.push(65);
        body.extend_from_slice(sender_public.as_bytes());
        body.extend_from_slice(&sealed);
        body
    }

    /// The content key and nonce (RFC 8291 section 3.4, RFC 8188 section 2.2).
    fn derive(&self, ecdh: &[u8], sender: &[u8], salt: &[u8; 16]) -> ([u8; 16], [u8; 12]) {
        let mut info = b"WebPush: info\0".to_vec();
        info.extend_from_slice(&self.public_bytes);
        info.extend_from_slice(sender);
        let mut ikm = [0u8; 32];
        let _ = Hkdf::<Sha256>::new(Some(&self.auth), ecdh).expand(&info, &mut ikm);
        let content = Hkdf::<Sha256>::new(Some(salt), &ikm);
        let (mut key, mut nonce) = ([0u8; 16], [0u8; 12]);
        let _ = content.expand(b"Content-Encoding: aes128gcm\0", &mut key);
        let _ = content.expand(b"Content-Encoding: nonce\0", &mut nonce);
        (key, nonce)
    }
}

#[cfg(test)]
#[allow(clippy::expect_used)]
mod tests {
    use super::*;

    fn bytes(base64url: &str) -> Vec<u8> {
        use base64::Engine as _;
        base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(base64url)
            .expect("base64url")
    }

    /// RFC 8291 Appendix A: its keys, auth secret and salt give its message, byte for byte.
    #[test]
    fn the_rfc_8291_example_encrypts_to_its_published_bytes() {
        let receiver = Receiver::new(
            &bytes("BCVxsr7N_eNgVRqvHtD0zTZsEc6-VV-JvLexhqUzORcxaOzi6-AYWXvTBHm4bjyPjs7Vd8pZGH6SRpkNtoIAiw4"),
            &bytes("BTBZMqHH6r4Tts7J_aSIgg"),
        )
        .expect("the RFC's keys");
        let sender = SecretKey::from_slice(&bytes("yfWPiYE-n46HLnH0KqZOF1fJJU3MYrct3AELtAQ-oRw"))
            .expect("the RFC's sender key");
        let salt: [u8; 16] = bytes("DGv6ra1nlYgDCS1FRnbzlw")
            .try_into()
            .expect("16 bytes");
        let body = receiver.seal(&sender, &salt, b"When I grow up, I want to be a watermelon");
        assert_eq!(
            body,
            bytes(concat!(
                "DGv6ra1nlYgDCS1FRnbzlwAAEABBBP4z9KsN6nGRTbVYI_c7VJSPQTBtkgcy27mlmlMoZIIgDll6e3vC",
                "YLocInmYWAmS6TlzAC8wEqKK6PBru3jl7A_yl95bQpu6cVPTpK4Mqgkf1CXztLVBSt2Ks3oZwbuwXPXL",
                "WyouBWLVWGNWQexSgSxsj_Qulcy4a-fN"
            ))
        );
    }

    #[test]
    fn bad_keys_are_refused() {
        assert!(Receiver::new(&[4u8; 64], &[0; 16]).is_err());
        assert!(
            Receiver::new(&[4u8; 65], &[0; 16]).is_err(),
            "not on the curve"
        );
        let point = p256::SecretKey::random(&mut rand::rngs::OsRng)
            .public_key()
            .to_encoded_point(false);
        assert!(Receiver::new(point.as_bytes(), &[0; 15]).is_err());
        let receiver = Receiver::new(point.as_bytes(), &[7; 16]).expect("valid keys");
        let body = receiver.encrypt(b"{}");
        assert_eq!(body.len(), HEADER_LEN + 2 + 1 + 16);
    }
}
