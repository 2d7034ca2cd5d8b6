//! Contact details as analysts want them: phones in E.164, emails lower-cased, both
//! de-duplicated in the order they were found.
//!
//! Phones are read with `phonenumber` (Google's libphonenumber metadata): a number written
//! without a country code is read in the default region (the shop's country, RU otherwise).
//! A text that does not parse, or parses to a number that is not valid for its region ("911",
//! a 15-digit string), is dropped: the rest of the order still maps.

use std::collections::HashMap;
use std::str::FromStr;
use std::sync::{LazyLock, Mutex, MutexGuard, PoisonError};

use phonenumber::Mode;
use phonenumber::country::Id;
use phonenumber::metadata::DATABASE;

/// The region numbers without a country code are read in when the shop names none.
pub const FALLBACK_REGION: Id = Id::RU;

/// The region of an ISO-3166 alpha-2 code (`"KZ"`), if the phone metadata knows it.
pub fn region(country_iso: Option<&str>) -> Option<Id> {
    let code = country_iso?.trim();
    if code.is_empty() {
        return None;
    }
    Id::from_str(&code.to_ascii_uppercase()).ok()
}

/// Readings remembered by [`to_e164`] before the memory is cleared (~3 MiB at most).
const REMEMBERED_READINGS: usize = 20_000;

/// The readings of phones seen lately, by region and text as typed: every change of an order
/// carries its customer's phones again, and reading one with `phonenumber` (its metadata's
/// regular expressions) cost ~6 % of the all-in-one's CPU at 1,000 webhooks/s (BENCHMARKS.md).
static READINGS: LazyLock<Mutex<Readings>> = LazyLock::new(Mutex::default);

/// A phone as typed, in the region it is read in → its E.164 form (`None`: unusable).
type Readings = HashMap<(Id, String), Option<String>>;

/// One phone in E.164 (`+79161234567`), or `None` when it is not a valid number.
pub fn to_e164(raw: &str, default_region: Id) -> Option<String> {
    let text = raw.trim();
    if text.is_empty() {
        return None;
    }
    let key = (default_region, text.to_owned());
    if let Some(reading) = remembered().get(&key) {
        return reading.clone();
    }
    let reading = read(text, default_region);
    let mut readings = remembered();
    if readings.len() >= REMEMBERED_READINGS {
        readings.clear();
    }
    readings.insert(key, reading.clone());
    reading
}

/// The remembered readings; a poisoned lock only means a reading panicked (the map is whole).
fn remembered() -> MutexGuard<'static, Readings> {
    READINGS.lock().unwrap_or_else(PoisonError::into_inner)
}

/// [`to_e164`] without the memory.
fn read(text: &str, default_region: Id) -> Option<String> {
    let number = match phonenumber::parse(Some(default_region), text) {
        Ok(number) => number,
        Err(error) => {
            tracing::debug!(%error, "dropping a phone that does not parse");
            return None;
        }
    };
    if phonenumber::is_valid(&number) {
        return Some(number.format().mode(Mode::E164).to_string());
    }
    if let Some(read_again) = reinterpret(text, &number) {
        return Some(read_again);
    }
    tracing::debug!("dropping a phone that is not a valid number");
    None
}

/// Reads the typed digits again when the parser's reading is not a valid number.
///
/// rust-phonenumber 0.3 misreads numbers of country code 7 in two ways that Google's
/// libphonenumber does not (upstream issue #76): a national number that starts with the trunk
/// prefix `8` loses it (`800` toll-free, `812` St Petersburg, the other `8xx` regions), even
/// as `+7 812 …`; and a ten-digit national number that starts with `7` (every Kazakh number)
/// loses the `7`, taken for the country code. Both readings are never valid (numbers of code 7
/// have ten digits), so when the parser's number is invalid, the typed digits are tried as
/// they are, without the trunk prefix and without the country code, against the metadata of
/// the country code the parser found; the first valid reading wins.
fn reinterpret(text: &str, parsed: &phonenumber::PhoneNumber) -> Option<String> {
    let code = parsed.code().value();
    let code_text = code.to_string();
    let typed: String = text.chars().filter(char::is_ascii_digit).collect();
    let regions = DATABASE.by_code(&code)?;
    let mut readings: Vec<&str> = Vec::new();
    if text.starts_with('+') {
        readings.push(typed.strip_prefix(code_text.as_str())?);
    } else {
        readings.push(&typed);
        readings.extend(
            regions
                .iter()
                .filter_map(|meta| typed.strip_prefix(meta.national_prefix()?)),
        );
        readings.extend(typed.strip_prefix(code_text.as_str()));
    }
    readings
        .into_iter()
        .find(|national| regions.iter().any(|meta| valid_national(meta, national)))
        .map(|national| format!("+{code}{national}"))
}

/// Whether `national` is a number of some known type in the region (what `is_valid` checks).
fn valid_national(meta: &phonenumber::Metadata, national: &str) -> bool {
    let d = meta.descriptors();
    d.general().is_match(national)
        && [
            d.fixed_line(),
            d.mobile(),
            d.toll_free(),
            d.premium_rate(),
            d.shared_cost(),
            d.personal_number(),
            d.voip(),
            d.pager(),
            d.uan(),
            d.voicemail(),
        ]
        .into_iter()
        .flatten()
        .any(|descriptor| descriptor.is_match(national))
}

/// Collects phones and emails, normalised and de-duplicated in first-seen order.
#[derive(Debug, Clone)]
pub struct ContactDetails {
    region: Id,
    phones: Vec<String>,
    emails: Vec<String>,
}

impl ContactDetails {
    /// Phones without a country code are read in `region`.
    pub fn new(region: Id) -> Self {
        Self {
            region,
            phones: Vec::new(),
            emails: Vec::new(),
        }
    }

    /// Adds a phone as typed; unusable ones are dropped.
    pub fn add_phone(&mut self, raw: Option<&str>) {
        if let Some(phone) = raw.and_then(|r| to_e164(r, self.region))
            && !self.phones.contains(&phone)
        {
            self.phones.push(phone);
        }
    }

    /// Adds an email as typed: trimmed and lower-cased; empty ones are dropped.
    pub fn add_email(&mut self, raw: Option<&str>) {
        let Some(email) = raw.map(|e| e.trim().to_lowercase()) else {
            return;
        };
        if !email.is_empty() && !self.emails.contains(&email) {
            self.emails.push(email);
        }
    }

    /// Whether nothing usable was found.
    pub fn is_empty(&self) -> bool {
        self.phones.is_empty() && self.emails.is_empty()
    }

    /// The phones and emails, in first-seen order.
    pub fn into_parts(self) -> (Vec<String>, Vec<String>) {
        (self.phones, self.emails)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn russian_numbers_in_every_typed_form_become_one() {
        let forms = [
            "8 (916) 123-45-67",
            "+7 916 123 4567",
            "9161234567",
            "+79161234567",
            "8-916-123-45-67",
            "7(916)1234567",
        ];
        for form in forms {
            assert_eq!(
                to_e164(form, Id::RU).as_deref(),
                Some("+79161234567"),
                "{form}"
            );
        }
    }

    #[test]
    fn numbers_starting_with_the_trunk_digit_keep_it() {
        // St Petersburg (812) and toll-free (800) numbers, which rust-phonenumber 0.3 cuts.
        for form in [
            "8 (812) 379-73-43",
            "+7 812 379 73 43",
            "8123797343",
            "+78123797343",
        ] {
            assert_eq!(
                to_e164(form, Id::RU).as_deref(),
                Some("+78123797343"),
                "{form}"
            );
        }
        assert_eq!(
            to_e164("8 800 555-35-35", Id::RU).as_deref(),
            Some("+78005553535")
        );
        assert_eq!(
            to_e164("+7 800 555 35 35", Id::KZ).as_deref(),
            Some("+78005553535")
        );
    }

    #[test]
    fn kazakh_numbers_without_a_prefix_keep_their_leading_seven() {
        for form in [
            "7015540961",
            "8 701 554 09 61",
            "+7 701 554 0961",
            "7(701)5540961",
        ] {
            assert_eq!(
                to_e164(form, Id::KZ).as_deref(),
                Some("+77015540961"),
                "{form}"
            );
        }
        // Typed in a Russian shop, the number is still Kazakh.
        assert_eq!(
            to_e164("7015540961", Id::RU).as_deref(),
            Some("+77015540961")
        );
    }

    #[test]
    fn the_default_region_reads_national_numbers() {
        // A Kazakh mobile written nationally.
        assert_eq!(
            to_e164("8 (701) 234-56-78", Id::KZ).as_deref(),
            Some("+77012345678")
        );
        // An explicit country code wins over the default region.
        assert_eq!(
            to_e164("+49 30 1234567", Id::RU).as_deref(),
            Some("+49301234567")
        );
    }

    #[test]
    fn a_remembered_reading_is_the_reading_of_its_region() {
        for _ in 0..2 {
            assert_eq!(
                to_e164("9161234567", Id::RU).as_deref(),
                Some("+79161234567")
            );
            assert_eq!(
                to_e164("2024561111", Id::US).as_deref(),
                Some("+12024561111")
            );
            assert_ne!(
                to_e164("2024561111", Id::RU).as_deref(),
                Some("+12024561111")
            );
            assert_eq!(to_e164(" 911 ", Id::RU), None);
        }
        for n in 0..REMEMBERED_READINGS + 10 {
            to_e164(&format!("+7916{n:07}"), Id::RU);
        }
        assert!(
            remembered().len() <= REMEMBERED_READINGS,
            "the memory is bounded"
        );
        assert_eq!(
            to_e164("+7 916 123-45-67", Id::US).as_deref(),
            Some("+79161234567")
        );
    }

    #[test]
    fn unusable_numbers_are_dropped() {
        for junk in ["", "  ", "911", "532523454365436", "call me", "984654846"] {
            assert_eq!(to_e164(junk, Id::RU), None, "{junk:?}");
        }
    }

    #[test]
    fn regions_from_country_codes() {
        assert_eq!(region(Some("KZ")), Some(Id::KZ));
        assert_eq!(region(Some("ru")), Some(Id::RU));
        assert_eq!(region(Some("")), None);
        assert_eq!(region(Some("XX")), None);
        assert_eq!(region(None), None);
    }

    #[test]
    fn details_are_normalised_and_deduplicated_in_order() {
        let mut d = ContactDetails::new(Id::RU);
        d.add_phone(Some("8 (916) 123-45-67"));
        d.add_phone(Some("+7 495 765 4321"));
        d.add_phone(Some("+79161234567"));
        d.add_phone(Some("911"));
        d.add_phone(None);
        d.add_email(Some(" Anna.Smirnova@Example.COM "));
        d.add_email(Some("anna.smirnova@example.com"));
        d.add_email(Some(""));
        let (phones, emails) = d.into_parts();
        assert_eq!(phones, ["+79161234567", "+74957654321"]);
        assert_eq!(emails, ["anna.smirnova@example.com"]);
    }
}
