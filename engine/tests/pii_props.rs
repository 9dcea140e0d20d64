//! Property tests of the PII detectors and redactor: arbitrary text never panics and leaves
//! nothing for a second pass, generated e-mail addresses, card numbers and addresses are found
//! wherever they sit in text, a card number with a wrong check digit is not, and a redacted
//! header is always a valid header or a typed error.

use std::borrow::Cow;

use proptest::prelude::*;
use trailmix_db::pii::{PiiError, PiiMode, PiiPolicy, PiiRedactor, luhn_valid};
use trailmix_db::receipt::{ActorType, Kind, MAX_ID_BYTES, Receipt, ReceiptHeader, Timestamp};

fn redact_all() -> PiiRedactor {
    PiiRedactor::without_key(PiiPolicy::all(PiiMode::Redact)).expect("no key needed")
}

/// Text around a planted value: words that end and start with a space, so the value is not
/// glued to a word.
const FILLER: &str = "([a-z ]{0,12} )?";

fn email() -> impl Strategy<Value = String> {
    ("[a-z0-9][a-z0-9._+-]{0,15}", "[a-z0-9]{1,10}", "[a-z]{2,6}")
        .prop_map(|(local, domain, tld)| format!("{local}@{domain}.{tld}"))
}

/// A Luhn-valid card number of `len` digits from `body` (len − 1 digits).
fn with_check_digit(body: &[u8]) -> Vec<u8> {
    let mut digits = body.to_vec();
    for check in b'0'..=b'9' {
        digits.push(check);
        if luhn_valid(&digits) {
            return digits;
        }
        digits.pop();
    }
    unreachable!("one check digit always fits")
}

fn card() -> impl Strategy<Value = Vec<u8>> {
    (12usize..=18).prop_flat_map(|len| {
        proptest::collection::vec(b'0'..=b'9', len).prop_map(|mut body| {
            body[0] = b'4';
            with_check_digit(&body)
        })
    })
}

fn group(digits: &[u8], sep: Option<u8>) -> String {
    let mut out = String::new();
    for (i, d) in digits.iter().enumerate() {
        if i > 0
            && i % 4 == 0
            && let Some(sep) = sep
        {
            out.push(char::from(sep));
        }
        out.push(char::from(*d));
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn any_text_redacts_without_panic_and_a_second_pass_finds_nothing(text in "\\PC{0,200}") {
        let r = redact_all();
        let once = r.redact_text(&text).into_owned();
        prop_assert!(matches!(r.redact_text(&once), Cow::Borrowed(_)), "{once:?}");
    }

    #[test]
    fn ascii_soup_of_digits_and_separators_is_stable(text in "[0-9 .:()+@a-f-]{0,80}") {
        let r = redact_all();
        let once = r.redact_text(&text).into_owned();
        prop_assert!(matches!(r.redact_text(&once), Cow::Borrowed(_)), "{text:?} -> {once:?}");
    }

    #[test]
    fn an_email_is_found_anywhere(before in FILLER, address in email(), after in FILLER) {
        let r = PiiRedactor::without_key(PiiPolicy::off().detect(trailmix_db::pii::PiiKind::Email, PiiMode::Redact)).expect("redactor");
        let text = format!("{before}{address}{}", if after.is_empty() { String::new() } else { format!(" {after}") });
        let expected = format!("{before}[email]{}", if after.is_empty() { String::new() } else { format!(" {after}") });
        prop_assert_eq!(r.redact_text(&text), expected);
    }

    #[test]
    fn a_luhn_valid_card_is_found_and_one_wrong_digit_is_not(
        digits in card(),
        sep in prop_oneof![Just(None), Just(Some(b' ')), Just(Some(b'-'))],
        before in FILLER,
    ) {
        let r = PiiRedactor::without_key(PiiPolicy::off().detect(trailmix_db::pii::PiiKind::CardNumber, PiiMode::Redact)).expect("redactor");
        let text = format!("{before}{}", group(&digits, sep));
        prop_assert_eq!(r.redact_text(&text), format!("{before}[card]"));
        // Grouped numbers over 16 digits hold shorter grouped spans of 13 or more digits, a
        // tenth of which pass Luhn by chance and are rightly taken for cards.
        prop_assume!(sep.is_none() || digits.len() <= 16);
        let mut wrong = digits.clone();
        let last = wrong.len() - 1;
        wrong[last] = b'0' + (wrong[last] - b'0' + 1) % 10;
        let text = format!("{before}{}", group(&wrong, sep));
        prop_assert!(matches!(r.redact_text(&text), Cow::Borrowed(_)), "{text:?}");
    }

    #[test]
    fn every_ip_address_is_found(v4 in any::<[u8; 4]>(), v6 in any::<[u16; 8]>(), before in FILLER) {
        let r = PiiRedactor::without_key(PiiPolicy::off().detect(trailmix_db::pii::PiiKind::IpAddress, PiiMode::Redact)).expect("redactor");
        let v4 = std::net::Ipv4Addr::from(v4).to_string();
        let text = format!("{before}{v4}");
        prop_assert_eq!(r.redact_text(&text), format!("{before}[ip]"));
        // `Display` writes the compressed form (`2001:db8::1`).
        let v6 = std::net::Ipv6Addr::from(v6).to_string();
        let text = format!("{before}{v6}");
        prop_assert_eq!(r.redact_text(&text), format!("{before}[ip]"));
    }

    #[test]
    fn a_redacted_header_is_valid_or_a_typed_error(
        session in proptest::collection::vec(
            prop_oneof![
                Just("::1".to_owned()),
                Just("1.2.3.4".to_owned()),
                "[a-z]{1,6}",
                email(),
            ],
            1..40,
        )
        .prop_map(|parts| parts.join(","))
        .prop_filter("an id", |s| s.len() <= MAX_ID_BYTES),
        value in "\\PC{0,60}",
        mode in prop_oneof![Just(PiiMode::Redact), Just(PiiMode::Mask)],
    ) {
        let receipt = Receipt::builder("acme", "evt-1", Kind::LlmCall)
            .app_id("bot")
            .actor_type(ActorType::Agent)
            .event_time(Timestamp::from_unix_nanos(0))
            .session_id(session.clone())
            .label("note", value)
            .build()
            .expect("valid");
        let r = PiiRedactor::without_key(PiiPolicy::all(mode)).expect("redactor");
        match r.redact_header(receipt.header()) {
            Ok(header) => {
                let bytes = header.encode();
                prop_assert_eq!(&ReceiptHeader::decode(&bytes).expect("valid header"), header.as_ref());
                prop_assert_eq!(header.event_id(), "evt-1");
            }
            Err(PiiError::Redacted { field, .. }) => {
                // Refused only when the redaction really went over the limit.
                prop_assert_eq!(field, "session_id");
                prop_assert!(r.redact_text(&session).len() > MAX_ID_BYTES);
            }
            Err(other) => prop_assert!(false, "unexpected {other:?}"),
        }
    }
}
