//! CPython's authkey handshake (`multiprocessing.connection.deliver_challenge` /
//! `answer_challenge`), both the `{digest}`-prefixed protocol of Python 3.12+ and the legacy
//! 20-byte HMAC-MD5 one of 3.11 and older. MACs are compared in constant time.

use super::Connection;
use crate::error::{Error, Result};
use hmac::{Mac, SimpleHmac};

const CHALLENGE: &[u8] = b"#CHALLENGE#";
const WELCOME: &[u8] = b"#WELCOME#";
const FAILURE: &[u8] = b"#FAILURE#";
/// Python reads handshake messages with `recv_bytes(256)`.
const MAX_HANDSHAKE: usize = 256;
const NONCE_LEN: usize = 40;

fn hmac_of(digest: &str, key: &[u8], msg: &[u8]) -> Option<Vec<u8>> {
    fn mac<D>(key: &[u8], msg: &[u8]) -> Vec<u8>
    where
        D: hmac::digest::Digest + hmac::digest::core_api::BlockSizeUser,
    {
        let mut m = <SimpleHmac<D> as Mac>::new_from_slice(key).expect("HMAC takes any key length");
        m.update(msg);
        m.finalize().into_bytes().to_vec()
    }
    Some(match digest {
        "md5" => mac::<md5::Md5>(key, msg),
        "sha256" => mac::<sha2::Sha256>(key, msg),
        "sha384" => mac::<sha2::Sha384>(key, msg),
        _ => return None,
    })
}

/// Splits `{name}rest` into `("name", rest)`.
fn digest_prefix(m: &[u8]) -> Option<(&str, &[u8])> {
    if m.first() != Some(&b'{') {
        return None;
    }
    let end = m.iter().take(20).position(|&b| b == b'}')?;
    let name = std::str::from_utf8(&m[1..end]).ok()?;
    Some((name, &m[end + 1..]))
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Server half: send a challenge, check the answer, say welcome or failure.
pub(crate) fn deliver_challenge(conn: &Connection, key: &[u8]) -> Result<()> {
    let mut nonce = [0u8; NONCE_LEN];
    getrandom::getrandom(&mut nonce)
        .map_err(|e| Error::Io(std::io::Error::other(e.to_string())))?;
    let mut message = b"{sha256}".to_vec();
    message.extend_from_slice(&nonce);
    let mut challenge = CHALLENGE.to_vec();
    challenge.extend_from_slice(&message);
    conn.send_bytes(&challenge)?;
    let response = conn.recv_bytes_max(MAX_HANDSHAKE).map_err(handshake_error)?;
    let ok = if response.len() == 16 {
        // Legacy (Python <= 3.11) peers answer with a bare HMAC-MD5 of the whole message.
        hmac_of("md5", key, &message).is_some_and(|m| constant_time_eq(&m, &response))
    } else {
        match digest_prefix(&response) {
            Some((name, mac)) => {
                hmac_of(name, key, &message).is_some_and(|m| constant_time_eq(&m, mac))
            }
            None => false,
        }
    };
    if ok {
        conn.send_bytes(WELCOME)?;
        Ok(())
    } else {
        let _ = conn.send_bytes(FAILURE);
        Err(Error::AuthenticationFailed)
    }
}

/// Client half: answer the peer's challenge and expect a welcome.
pub(crate) fn answer_challenge(conn: &Connection, key: &[u8]) -> Result<()> {
    let m = conn.recv_bytes_max(MAX_HANDSHAKE).map_err(handshake_error)?;
    let Some(message) = m.strip_prefix(CHALLENGE) else {
        return Err(Error::AuthenticationFailed);
    };
    if message.len() < 20 {
        return Err(Error::AuthenticationFailed);
    }
    let response = if message.len() == 20 {
        hmac_of("md5", key, message).ok_or(Error::AuthenticationFailed)?
    } else {
        let (name, _) = digest_prefix(message).ok_or(Error::AuthenticationFailed)?;
        let mac = hmac_of(name, key, message).ok_or(Error::AuthenticationFailed)?;
        let mut r = format!("{{{name}}}").into_bytes();
        r.extend_from_slice(&mac);
        r
    };
    conn.send_bytes(&response)?;
    let reply = conn.recv_bytes_max(MAX_HANDSHAKE).map_err(handshake_error)?;
    if reply == WELCOME {
        Ok(())
    } else {
        Err(Error::AuthenticationFailed)
    }
}

/// A peer that breaks the protocol (too long a message, closing early) fails authentication.
fn handshake_error(e: Error) -> Error {
    match e {
        Error::MessageTooLarge { .. } | Error::Eof => Error::AuthenticationFailed,
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hmac_md5_matches_python() {
        // python3 -c "import hmac;print(hmac.new(b'key', b'The quick brown fox', 'md5').hexdigest())"
        let m = hmac_of("md5", b"key", b"The quick brown fox").unwrap();
        let hex: String = m.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(hex, "d006bc60c92ff6e54f615474fe835e02");
    }

    #[test]
    fn prefix_parsing() {
        assert_eq!(digest_prefix(b"{sha256}abc"), Some(("sha256", &b"abc"[..])));
        assert_eq!(digest_prefix(b"sha256}abc"), None);
        assert_eq!(digest_prefix(b"{sha256abc"), None);
    }
}
