//! Resumption tokens: stateless, so any replica answers any page, and sealed, so they say
//! nothing and cannot be made up.
//!
//! A token holds everything the next page needs — the verb, the arguments of the first request
//! (metadataPrefix, set, from, until), the position in the change stream after the last item
//! given, how many items came before, the size of the complete list, and whose view it is — as
//! JSON sealed with the catalogue's cursor seal ([`CursorSeal::seal_cursor`]: AES-256-GCM under
//! a fresh nonce). The position is a change id: in the clear, its gaps would count the changes
//! the reader may not see, as `/v1/changes`' sealed positions explain; sealed, two tokens for the
//! same place differ and neither can be opened, edited or forged. A token begins with a label of
//! its own, so that a search cursor (sealed under the same key) is not taken for one.

use serde::{Deserialize, Serialize};

use crate::access::CursorSeal;

const LABEL: &[u8] = b"rix oai-pmh resumption 1\0";

/// Where a list request stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Resumption {
    /// `ListIdentifiers` or `ListRecords`: a token is good for the verb that gave it only.
    pub verb: String,
    /// The first request's metadataPrefix.
    pub prefix: String,
    /// Its set.
    pub set: Option<String>,
    /// Its from.
    pub from: Option<String>,
    /// Its until.
    pub until: Option<String>,
    /// The entitlements of the reader it was given to (a token is good for that view only).
    pub reader: String,
    /// The change id after which the rest of the list lies.
    pub after: i64,
    /// How many items the pages before the next one held.
    pub cursor: u64,
    /// The complete list's size, when known.
    pub total: Option<u64>,
}

/// A token that this repository did not give out, or that was altered.
#[derive(Debug, thiserror::Error)]
#[error(
    "not a resumptionToken this repository gave out, or an altered one; start the list again without it"
)]
pub struct BadToken;

impl Resumption {
    /// The token to hand out.
    pub fn seal(&self, seal: &CursorSeal) -> String {
        let mut plain = LABEL.to_vec();
        plain.extend(serde_json::to_vec(self).expect("a resumption is JSON"));
        seal.seal_cursor(&plain)
    }

    /// What a token holds.
    pub fn open(seal: &CursorSeal, token: &str) -> Result<Resumption, BadToken> {
        let plain = seal.open_cursor(token).map_err(|_| BadToken)?;
        let json = plain.strip_prefix(LABEL).ok_or(BadToken)?;
        serde_json::from_slice(json).map_err(|_| BadToken)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unb64(text: &str) -> Vec<u8> {
        use base64::Engine as _;
        base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(text)
            .unwrap()
    }

    fn sample() -> Resumption {
        Resumption {
            verb: "ListRecords".into(),
            prefix: "oai_dc".into(),
            set: Some("region:530000".into()),
            from: Some("2026-01-01".into()),
            until: None,
            reader: "public".into(),
            after: 41,
            cursor: 100,
            total: Some(250),
        }
    }

    #[test]
    fn a_token_opens_to_what_was_sealed_and_hides_it() {
        let seal = CursorSeal::ephemeral();
        let token = sample().seal(&seal);
        assert_eq!(Resumption::open(&seal, &token).unwrap(), sample());
        let raw = unb64(&token);
        for plain in [&b"ListRecords"[..], b"region", b"oai_dc"] {
            assert!(
                !raw.windows(plain.len()).any(|w| w == plain),
                "the token carries its arguments sealed"
            );
        }
        assert_ne!(sample().seal(&seal), token, "a fresh nonce every time");
    }

    #[test]
    fn altered_foreign_and_search_tokens_are_refused() {
        let seal = CursorSeal::ephemeral();
        let token = sample().seal(&seal);
        let mut altered = token.clone().into_bytes();
        let i = altered.len() / 2;
        altered[i] = if altered[i] == b'A' { b'B' } else { b'A' };
        assert!(Resumption::open(&seal, &String::from_utf8(altered).unwrap()).is_err());
        assert!(Resumption::open(&CursorSeal::ephemeral(), &token).is_err());
        assert!(Resumption::open(&seal, &seal.seal_cursor(b"a search cursor")).is_err());
        assert!(Resumption::open(&seal, "").is_err());
        assert!(Resumption::open(&seal, "not base64 at all!").is_err());
    }
}
