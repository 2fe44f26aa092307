//! Local IBAN check (ISO 13616), so a mistyped account number is answered 400
//! with the reason before any Stripe call: known country, that country's
//! length, characters, and the mod-97 check digits.

/// IBAN length per country (SWIFT IBAN registry).
#[rustfmt::skip]
const LENGTHS: &[(&str, usize)] = &[
    ("AD", 24), ("AE", 23), ("AL", 28), ("AT", 20), ("AZ", 28), ("BA", 20), ("BE", 16), ("BG", 22),
    ("BH", 22), ("BI", 27), ("BR", 29), ("BY", 28), ("CH", 21), ("CR", 22), ("CY", 28), ("CZ", 24),
    ("DE", 22), ("DJ", 27), ("DK", 18), ("DO", 28), ("EE", 20), ("EG", 29), ("ES", 24), ("FI", 18),
    ("FK", 18), ("FO", 18), ("FR", 27), ("GB", 22), ("GE", 22), ("GI", 23), ("GL", 18), ("GR", 27),
    ("GT", 28), ("HR", 21), ("HU", 28), ("IE", 22), ("IL", 23), ("IQ", 23), ("IS", 26), ("IT", 27),
    ("JO", 30), ("KW", 30), ("KZ", 20), ("LB", 28), ("LC", 32), ("LI", 21), ("LT", 20), ("LU", 20),
    ("LV", 21), ("LY", 25), ("MC", 27), ("MD", 24), ("ME", 22), ("MK", 19), ("MN", 20), ("MR", 27),
    ("MT", 31), ("MU", 30), ("NI", 28), ("NL", 18), ("NO", 15), ("OM", 23), ("PK", 24), ("PL", 28),
    ("PS", 29), ("PT", 25), ("QA", 29), ("RO", 24), ("RS", 22), ("RU", 33), ("SA", 24), ("SC", 31),
    ("SD", 18), ("SE", 24), ("SI", 19), ("SK", 24), ("SM", 27), ("SO", 23), ("ST", 25), ("SV", 28),
    ("TL", 23), ("TN", 24), ("TR", 26), ("UA", 29), ("VA", 22), ("VG", 24), ("XK", 20), ("YE", 30),
];

/// The IBAN in electronic form (no spaces, upper case), or why it is not one.
pub fn check(input: &str) -> Result<String, String> {
    let iban: String = input
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect::<String>()
        .to_ascii_uppercase();
    if iban.len() < 5 {
        return Err("an IBAN has at least 5 characters".into());
    }
    if let Some(bad) = iban.chars().find(|c| !c.is_ascii_alphanumeric()) {
        return Err(format!("an IBAN has only letters and digits, not {bad:?}"));
    }
    let country = &iban[..2];
    let Some(&(_, len)) = LENGTHS.iter().find(|(c, _)| *c == country) else {
        return Err(format!("{country:?} is not a country code that has IBANs"));
    };
    if iban.len() != len {
        return Err(format!(
            "a {country} IBAN has {len} characters, this one has {}",
            iban.len()
        ));
    }
    if !iban[2..4].bytes().all(|b| b.is_ascii_digit()) {
        return Err("characters 3 and 4 of an IBAN are check digits".into());
    }
    if mod97(&iban) != 1 {
        return Err("the check digits do not match (a typo in the IBAN?)".into());
    }
    Ok(iban)
}

/// The IBAN's remainder mod 97 (country and check digits moved to the end, letters as 10..35).
fn mod97(iban: &str) -> u32 {
    let rearranged = iban[4..].bytes().chain(iban[..4].bytes());
    rearranged.fold(0u32, |acc, b| {
        let v = if b.is_ascii_digit() {
            u32::from(b - b'0')
        } else {
            u32::from(b - b'A') + 10
        };
        if v >= 10 {
            (acc * 100 + v) % 97
        } else {
            (acc * 10 + v) % 97
        }
    })
}

#[cfg(test)]
mod tests {
    use super::check;

    #[test]
    fn accepts_valid_ibans_with_spaces_and_lower_case() {
        assert_eq!(
            check("DE89 3704 0044 0532 0130 00").unwrap(),
            "DE89370400440532013000"
        );
        assert!(check("fr1420041010050500013m02606").is_ok());
        assert!(check("GB82WEST12345698765432").is_ok());
        assert!(check("NL91ABNA0417164300").is_ok());
    }

    #[test]
    fn explains_what_is_wrong() {
        assert!(
            check("DE89370400440532013001")
                .unwrap_err()
                .contains("check digits")
        );
        assert!(
            check("DE8937040044053201300")
                .unwrap_err()
                .contains("22 characters")
        );
        assert!(
            check("ZZ89370400440532013000")
                .unwrap_err()
                .contains("country")
        );
        assert!(
            check("DE89-3704")
                .unwrap_err()
                .contains("letters and digits")
        );
        assert!(check("DE").unwrap_err().contains("at least"));
        assert!(
            check("DEXX370400440532013000")
                .unwrap_err()
                .contains("check digits")
        );
    }
}
