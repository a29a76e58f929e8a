//! Keys (RFC 10049 §5.2.6): a long-term Ed25519 key that clients know, and an online key it
//! delegates to for a window of time (MINT..=MAXT), which signs the responses.

use aws_lc_rs::signature::{Ed25519KeyPair, KeyPair};
use ed25519_dalek::{Signer, SigningKey};
use sha2::{Digest, Sha512};

use crate::protocol::Version;
use crate::wire::{Tag, encode};

/// The SRV value that names a long-term public key: H(0xff ‖ key), SHA-512 cut to 32 bytes.
pub fn srv_of(public_key: &[u8; 32]) -> [u8; 32] {
    let mut hasher = Sha512::new();
    hasher.update([0xff]);
    hasher.update(public_key);
    let mut out = [0u8; 32];
    out.copy_from_slice(&hasher.finalize()[..32]);
    out
}

/// 32 random bytes from the operating system.
///
/// # Errors
///
/// When the operating system has no randomness to give.
pub fn random_seed() -> Result<[u8; 32], getrandom::Error> {
    let mut seed = [0u8; 32];
    getrandom::fill(&mut seed)?;
    Ok(seed)
}

/// Reads a key file (what `roughtime keygen` writes): the base64 of a 32-byte secret.
///
/// # Errors
///
/// A message naming the file and what is wrong with it.
pub fn read_key_file(path: &std::path::Path) -> Result<LongTermKey, String> {
    use base64::Engine as _;
    let text =
        std::fs::read_to_string(path).map_err(|e| format!("reading `{}`: {e}", path.display()))?;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(text.trim())
        .map_err(|e| format!("`{}` is not a key file (base64 of 32 bytes): {e}", path.display()))?;
    let seed: [u8; 32] = bytes.try_into().map_err(|b: Vec<u8>| {
        format!("`{}` holds {} bytes, not a 32-byte key", path.display(), b.len())
    })?;
    Ok(LongTermKey::from_seed(&seed))
}

/// The server's long-term key. Its secret never leaves this value; `Debug` shows the public key
/// only.
pub struct LongTermKey {
    signing: SigningKey,
}

impl std::fmt::Debug for LongTermKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LongTermKey").field("public", &self.public()).finish_non_exhaustive()
    }
}

impl LongTermKey {
    /// The key with this 32-byte Ed25519 seed (the secret a key file holds).
    pub fn from_seed(seed: &[u8; 32]) -> LongTermKey {
        LongTermKey { signing: SigningKey::from_bytes(seed) }
    }

    /// The secret seed, for writing to a key file.
    pub fn seed(&self) -> [u8; 32] {
        self.signing.to_bytes()
    }

    pub fn public(&self) -> [u8; 32] {
        self.signing.verifying_key().to_bytes()
    }

    /// The SRV value a client puts in a request to name this key.
    pub fn srv(&self) -> [u8; 32] {
        srv_of(&self.public())
    }

    /// Delegates to a new random online key from a minute before `now` (for clients a little
    /// behind) to `now + lifetime`, both in seconds since the Unix epoch.
    ///
    /// # Errors
    ///
    /// When the operating system has no randomness for the key.
    pub fn delegate_from(
        &self,
        now: u64,
        lifetime: std::time::Duration,
    ) -> Result<Delegation, getrandom::Error> {
        let seed = random_seed()?;
        Ok(self.delegate(&seed, now.saturating_sub(60), now.saturating_add(lifetime.as_secs())))
    }

    /// Delegates to the online key with seed `online_seed` for MIDPs in `mint..=maxt`.
    pub fn delegate(&self, online_seed: &[u8; 32], mint: u64, maxt: u64) -> Delegation {
        let online = Ed25519KeyPair::from_seed_unchecked(online_seed)
            .expect("any 32 bytes are an Ed25519 seed");
        let public: [u8; 32] = online.public_key().as_ref().try_into().expect("32-byte key");
        let (mint_bytes, maxt_bytes) = (mint.to_le_bytes(), maxt.to_le_bytes());
        let dele =
            encode(&[(Tag::PUBK, &public), (Tag::MINT, &mint_bytes), (Tag::MAXT, &maxt_bytes)]);
        let certs = Version::ALL.map(|version| {
            let signature = sign(&self.signing, version.delegation_context(), &dele);
            encode(&[(Tag::SIG, &signature), (Tag::DELE, &dele)])
        });
        Delegation { online, mint, maxt, certs, srv: self.srv() }
    }
}

fn sign(key: &SigningKey, context: &[u8], value: &[u8]) -> [u8; 64] {
    key.sign(&[context, value].concat()).to_bytes()
}

/// An online key and the certificates (one per version: their context strings differ) in which
/// the long-term key delegates to it.
///
/// The online key signs once per batch, so its signing speed is part of every response's cost:
/// it is `aws-lc-rs`'s Ed25519 (assembly), about twice as fast here as `ed25519-dalek`'s, which
/// signs the rare certificates and verifies.
pub struct Delegation {
    online: Ed25519KeyPair,
    mint: u64,
    maxt: u64,
    certs: [Vec<u8>; 2],
    /// The SRV value of the long-term key that signed the certificates.
    srv: [u8; 32],
}

impl std::fmt::Debug for Delegation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Delegation")
            .field("online", &self.online.public_key().as_ref())
            .field("mint", &self.mint)
            .field("maxt", &self.maxt)
            .finish_non_exhaustive()
    }
}

impl Delegation {
    /// The CERT value for responses of `version`.
    pub fn cert(&self, version: Version) -> &[u8] {
        &self.certs[Version::ALL.iter().position(|v| *v == version).expect("every version")]
    }

    /// The online key's signature over an SREP value.
    pub fn sign_response(&self, version: Version, srep: &[u8]) -> [u8; 64] {
        let message = [version.response_context(), srep].concat();
        self.online.sign(&message).as_ref().try_into().expect("64-byte signature")
    }

    /// Whether a response with this MIDP is within the delegation.
    pub fn covers(&self, midp: u64) -> bool {
        (self.mint..=self.maxt).contains(&midp)
    }

    /// The SRV value of the long-term key behind this delegation: requests naming another key
    /// are ignored.
    pub fn srv(&self) -> &[u8; 32] {
        &self.srv
    }

    pub fn mint(&self) -> u64 {
        self.mint
    }

    pub fn maxt(&self) -> u64 {
        self.maxt
    }
}
