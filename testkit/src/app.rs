//! The fake GitHub App: a test private key (public, for tests only), the App id the fake
//! answers to, and checking a JWT as GitHub does. See [`crate::FakeGitHub::start_app`].

use base64::{Engine as _, engine::general_purpose::URL_SAFE_NO_PAD};
use ring::signature::{RSA_PKCS1_2048_8192_SHA256, RsaKeyPair, UnparsedPublicKey};
use rustls_pki_types::{PrivateKeyDer, pem::PemObject as _};
use serde_json::Value;

/// A GitHub App private key for tests, PKCS#1 PEM as GitHub hands them out. It is published
/// with this crate: never use it for anything real.
pub const TEST_APP_KEY: &str = include_str!("../fixtures/test-app-key.pem");

/// Another RSA key (PKCS#8 PEM), which is not the test App's: its JWTs are refused.
pub const OTHER_APP_KEY: &str = include_str!("../fixtures/other-app-key.pem");

/// The id of the fake's App: `[github] app_id` of a host testing against it.
pub const TEST_APP_ID: u64 = 4242;

/// The claims of a JWT whose signature checked out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claims {
    pub iat: i64,
    pub exp: i64,
    /// The issuer, as text (GitHub takes the App id as a number or a string, or the client id).
    pub iss: String,
}

/// The public half of [`TEST_APP_KEY`], as DER `RSAPublicKey`.
fn public_key() -> &'static [u8] {
    static PUBLIC: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();
    PUBLIC.get_or_init(|| {
        let der =
            PrivateKeyDer::from_pem_slice(TEST_APP_KEY.as_bytes()).expect("the test key is PEM");
        let PrivateKeyDer::Pkcs1(key) = der else {
            panic!("the test key is PKCS#1")
        };
        let pair = RsaKeyPair::from_der(key.secret_pkcs1_der()).expect("the test key is RSA");
        pair.public().as_ref().to_vec()
    })
}

/// Checks an RS256 JWT against the test App's public key and reads its claims. The times are
/// the caller's to check, on its own clock. The error is GitHub's message.
pub fn verify_jwt(jwt: &str) -> Result<Claims, String> {
    const UNDECODABLE: &str = "A JSON web token could not be decoded";
    let mut parts = jwt.split('.');
    let (Some(header), Some(claims), Some(signature), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(UNDECODABLE.to_owned());
    };
    let decode = |part: &str| {
        URL_SAFE_NO_PAD
            .decode(part)
            .map_err(|_| UNDECODABLE.to_owned())
    };
    let header: Value = serde_json::from_slice(&decode(header)?).map_err(|_| UNDECODABLE)?;
    if header["alg"] != "RS256" {
        return Err(UNDECODABLE.to_owned());
    }
    let signed = &jwt[..jwt.len() - signature.len() - 1];
    UnparsedPublicKey::new(&RSA_PKCS1_2048_8192_SHA256, public_key())
        .verify(signed.as_bytes(), &decode(signature)?)
        .map_err(|_| UNDECODABLE.to_owned())?;
    let claims: Value = serde_json::from_slice(&decode(claims)?).map_err(|_| UNDECODABLE)?;
    let number = |name: &str| claims[name].as_i64();
    let iss = match &claims["iss"] {
        Value::String(text) => text.clone(),
        Value::Number(number) => number.to_string(),
        _ => return Err("'Issuer' claim ('iss') must be an Integer".to_owned()),
    };
    match (number("iat"), number("exp")) {
        (Some(iat), Some(exp)) => Ok(Claims { iat, exp, iss }),
        (None, _) => Err(
            "'Issued at' claim ('iat') must be an Integer representing a time in the past"
                .to_owned(),
        ),
        (_, None) => Err("'Expiration time' claim ('exp') must be a numeric value representing the future time at which the assertion expires".to_owned()),
    }
}

/// Checks a JWT's times at `now` (Unix seconds) as GitHub does: issued in the past, expiring
/// in the future and at most 10 minutes ahead. The error is GitHub's message.
pub fn check_times(claims: &Claims, now: i64) -> Result<(), String> {
    if claims.iat > now {
        return Err(
            "'Issued at' claim ('iat') must be an Integer representing a time in the past"
                .to_owned(),
        );
    }
    if claims.exp <= now {
        return Err("'Expiration time' claim ('exp') must be a numeric value representing the future time at which the assertion expires".to_owned());
    }
    if claims.exp > now + 600 {
        return Err("'Expiration time' claim ('exp') is too far in the future".to_owned());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sign(key_pem: &str, claims: &str) -> String {
        let der = PrivateKeyDer::from_pem_slice(key_pem.as_bytes()).unwrap();
        let pair = match der {
            PrivateKeyDer::Pkcs1(key) => RsaKeyPair::from_der(key.secret_pkcs1_der()).unwrap(),
            PrivateKeyDer::Pkcs8(key) => RsaKeyPair::from_pkcs8(key.secret_pkcs8_der()).unwrap(),
            _ => unreachable!(),
        };
        let signed = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(br#"{"alg":"RS256","typ":"JWT"}"#),
            URL_SAFE_NO_PAD.encode(claims)
        );
        let mut signature = vec![0; pair.public().modulus_len()];
        pair.sign(
            &ring::signature::RSA_PKCS1_SHA256,
            &ring::rand::SystemRandom::new(),
            signed.as_bytes(),
            &mut signature,
        )
        .unwrap();
        format!("{signed}.{}", URL_SAFE_NO_PAD.encode(signature))
    }

    #[test]
    fn only_the_test_keys_jwts_with_good_times_pass() {
        let claims = r#"{"iat":940,"exp":1540,"iss":4242}"#;
        let good = verify_jwt(&sign(TEST_APP_KEY, claims)).unwrap();
        assert_eq!(
            good,
            Claims {
                iat: 940,
                exp: 1540,
                iss: "4242".into()
            }
        );
        assert!(check_times(&good, 1000).is_ok());
        assert!(check_times(&good, 939).unwrap_err().contains("('iat')"));
        assert!(check_times(&good, 1540).unwrap_err().contains("('exp')"));
        assert!(check_times(&good, 900).is_err());
        let far = Claims { exp: 1700, ..good };
        assert!(check_times(&far, 1000).unwrap_err().contains("too far"));
        assert!(verify_jwt(&sign(OTHER_APP_KEY, claims)).is_err());
        assert!(verify_jwt("a.b.c").is_err());
    }
}
