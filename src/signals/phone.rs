//! Phone-number facts: calling code, region, validity, number type, prefix.
//!
//! Parsed once per request with `rlibphonenumber` (a port of Google's
//! libphonenumber with recent metadata). The region matters: +44 7911… is
//! Guernsey (GG), not the United Kingdom.

use super::{CountryCode, SubjectBuf};
use crate::request::E164;
use rlibphonenumber::{PhoneNumber, PhoneNumberType};

/// The number plan's view of a number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NumberType {
    Mobile,
    FixedLine,
    FixedLineOrMobile,
    TollFree,
    PremiumRate,
    SharedCost,
    Voip,
    Personal,
    Pager,
    Uan,
    Voicemail,
    Unknown,
}

impl NumberType {
    pub const ALL: [NumberType; 12] = [
        NumberType::Mobile,
        NumberType::FixedLine,
        NumberType::FixedLineOrMobile,
        NumberType::TollFree,
        NumberType::PremiumRate,
        NumberType::SharedCost,
        NumberType::Voip,
        NumberType::Personal,
        NumberType::Pager,
        NumberType::Uan,
        NumberType::Voicemail,
        NumberType::Unknown,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            NumberType::Mobile => "mobile",
            NumberType::FixedLine => "fixed_line",
            NumberType::FixedLineOrMobile => "fixed_line_or_mobile",
            NumberType::TollFree => "toll_free",
            NumberType::PremiumRate => "premium_rate",
            NumberType::SharedCost => "shared_cost",
            NumberType::Voip => "voip",
            NumberType::Personal => "personal",
            NumberType::Pager => "pager",
            NumberType::Uan => "uan",
            NumberType::Voicemail => "voicemail",
            NumberType::Unknown => "unknown",
        }
    }
}

/// What the number plan says about one number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PhoneFacts {
    pub calling_code: u16,
    /// Digits in the calling code (1 to 3).
    pub calling_code_len: u8,
    pub region: Option<CountryCode>,
    pub valid: bool,
    pub number_type: NumberType,
}

/// Parses a (syntactically valid) E.164 number against the number plan.
pub fn facts(number: &E164) -> PhoneFacts {
    match PhoneNumber::parse(number.as_str(), None) {
        Ok(n) => {
            let cc = n.country_code as u16;
            let number_type = map_type(n.get_type());
            PhoneFacts {
                calling_code: cc,
                calling_code_len: digits_of(cc),
                region: n
                    .get_region_code()
                    .and_then(|r| CountryCode::parse(r.as_region_str().as_str())),
                // libphonenumber's own definition (isValidNumberForRegion on
                // the number's region): its type is known. Asking `is_valid`
                // would match the number against the plan a second time.
                valid: number_type != NumberType::Unknown,
                number_type,
            }
        }
        // Syntactically E.164 but not a known calling code (e.g. +999…): keep
        // the first digit as the "calling code" so prefix limits still group it.
        Err(_) => PhoneFacts {
            calling_code: u16::from(number.digits().as_bytes()[0] - b'0'),
            calling_code_len: 1,
            region: None,
            valid: false,
            number_type: NumberType::Unknown,
        },
    }
}

/// The calling code of a region (FR -> 33), from the number plan.
pub fn calling_code_of(region: CountryCode) -> Option<u16> {
    let r = rlibphonenumber::Region::from_code(region.as_str()).ok()?;
    rlibphonenumber::PHONE_NUMBER_UTIL
        .get_country_code_for_region(r)
        .map(|c| c as u16)
}

fn digits_of(cc: u16) -> u8 {
    match cc {
        0..=9 => 1,
        10..=99 => 2,
        _ => 3,
    }
}

fn map_type(t: PhoneNumberType) -> NumberType {
    match t {
        PhoneNumberType::FixedLine => NumberType::FixedLine,
        PhoneNumberType::Mobile => NumberType::Mobile,
        PhoneNumberType::FixedLineOrMobile => NumberType::FixedLineOrMobile,
        PhoneNumberType::TollFree => NumberType::TollFree,
        PhoneNumberType::PremiumRate => NumberType::PremiumRate,
        PhoneNumberType::SharedCost => NumberType::SharedCost,
        PhoneNumberType::VoIP => NumberType::Voip,
        PhoneNumberType::PersonalNumber => NumberType::Personal,
        PhoneNumberType::Pager => NumberType::Pager,
        PhoneNumberType::UAN => NumberType::Uan,
        PhoneNumberType::VoiceMail => NumberType::Voicemail,
        PhoneNumberType::Unknown => NumberType::Unknown,
    }
}

impl PhoneFacts {
    /// `+` + calling code + the first `national_digits` national digits: the
    /// number range that prefix limits count (pumping targets ranges, not single
    /// numbers).
    pub fn prefix<'a>(&self, number: &'a E164, national_digits: u8) -> &'a str {
        let end = 1 + usize::from(self.calling_code_len) + usize::from(national_digits);
        let s = number.as_str();
        &s[..end.min(s.len())]
    }

    /// The subject of phone-country limits: the region when the number plan
    /// names one, otherwise the calling code.
    pub fn country_subject<'a>(&self, buf: &'a mut SubjectBuf) -> &'a [u8] {
        match self.region {
            Some(r) => {
                buf[..2].copy_from_slice(r.as_bytes());
                &buf[..2]
            }
            None => {
                buf[..2].copy_from_slice(&self.calling_code.to_be_bytes());
                buf[2] = b'+';
                &buf[..3]
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(s: &str) -> PhoneFacts {
        facts(&s.parse().unwrap())
    }

    #[test]
    fn region_calling_code_and_type() {
        let fr = f("+33612345678");
        assert_eq!(fr.calling_code, 33);
        assert_eq!(fr.region.unwrap().as_str(), "FR");
        assert!(fr.valid);
        assert_eq!(fr.number_type, NumberType::Mobile);

        // +44 is shared: 7911 1… and 7781… are Guernsey ranges, 7400… is GB.
        assert_eq!(f("+447400123456").region.unwrap().as_str(), "GB");
        assert_eq!(f("+447911123456").region.unwrap().as_str(), "GG");
        assert_eq!(f("+447781123456").region.unwrap().as_str(), "GG");
    }

    #[test]
    fn valid_is_libphonenumbers_validity() {
        // Numbers of every kind and plenty of invalid ones: scattered digits
        // after calling codes with one region, several regions and none.
        let mut z = 0x2545_f491_4f6c_dd1du64;
        let mut seen = [0; 2];
        for cc in ["1", "7", "33", "44", "49", "61", "262", "800", "882", "999"] {
            for _ in 0..300 {
                z ^= z << 13;
                z ^= z >> 7;
                z ^= z << 17;
                let len = 6 + (z % 8) as usize;
                let digits = format!("{:014}", z % 100_000_000_000_000);
                let s = format!("+{cc}{}", &digits[..len.min(15 - cc.len())]);
                let n: E164 = s.parse().unwrap();
                let expected = PhoneNumber::parse(n.as_str(), None).is_ok_and(|p| p.is_valid());
                assert_eq!(facts(&n).valid, expected, "{s}");
                seen[usize::from(expected)] += 1;
            }
        }
        assert!(seen[0] > 100 && seen[1] > 100, "both kinds tried: {seen:?}");
    }

    #[test]
    fn calling_codes_of_regions() {
        assert_eq!(calling_code_of(CountryCode::parse("FR").unwrap()), Some(33));
        assert_eq!(calling_code_of(CountryCode::parse("GG").unwrap()), Some(44));
        assert_eq!(calling_code_of(CountryCode::parse("ZZ").unwrap()), None);
    }

    #[test]
    fn prefix_is_calling_code_plus_national_digits() {
        let n: E164 = "+33612345678".parse().unwrap();
        assert_eq!(facts(&n).prefix(&n, 3), "+33612");
        let n: E164 = "+12025550123".parse().unwrap();
        assert_eq!(facts(&n).prefix(&n, 3), "+1202");
        assert_eq!(facts(&n).prefix(&n, 30), "+12025550123");
    }
}
