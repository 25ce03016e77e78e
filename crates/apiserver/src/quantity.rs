//! Resource quantities (`500m`, `1Gi`, `2e3`): read as numbers for comparisons (QoS classes,
//! requests versus limits), and written in upstream's canonical form (`0.5` → `500m`,
//! `1024Mi` → `1Gi`), which is how the API server returns every quantity it stored.

use serde_json::Value;

/// The value of a quantity, or None when it does not parse.
pub use apimachinery::quantity::parse;

/// A quantity in JSON: a string, or a bare number some clients send.
pub fn of(value: &Value) -> Option<f64> {
    match value {
        Value::String(s) => parse(s),
        Value::Number(n) => n.as_f64(),
        _ => None,
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Format {
    BinarySi,
    DecimalSi,
    DecimalExponent,
}

/// The canonical text of a quantity, rounded up (away from zero) to `10^min_scale` as the
/// defaults round resource lists (-3: milli) and parsing rounds everything (-9: nano). None
/// when it does not parse or does not fit.
pub fn canonical(q: &str, min_scale: i32) -> Option<String> {
    let q = q.trim();
    let (negative, rest) = match q.as_bytes().first()? {
        b'-' => (true, &q[1..]),
        b'+' => (false, &q[1..]),
        _ => (false, q),
    };
    let split = rest
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(rest.len());
    let (number, suffix) = rest.split_at(split);
    let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
    if whole.is_empty() && fraction.is_empty() || fraction.contains('.') {
        return None;
    }
    let digits = format!("{whole}{fraction}");
    let digits = digits.trim_start_matches('0');
    if digits.len() > 30 {
        return None;
    }
    let mut mantissa: i128 = if digits.is_empty() {
        0
    } else {
        digits.parse().ok()?
    };
    let mut exp = -(fraction.len() as i32);
    let format = match suffix {
        "" => Format::DecimalSi,
        "Ki" | "Mi" | "Gi" | "Ti" | "Pi" | "Ei" => {
            let power = "KMGTPE".find(&suffix[..1]).expect("listed") as u32 + 1;
            mantissa = mantissa.checked_mul(1024i128.checked_pow(power)?)?;
            Format::BinarySi
        }
        "n" | "u" | "m" | "k" | "M" | "G" | "T" | "P" | "E" => {
            exp += match suffix {
                "n" => -9,
                "u" => -6,
                "m" => -3,
                "k" => 3,
                "M" => 6,
                "G" => 9,
                "T" => 12,
                "P" => 15,
                _ => 18,
            };
            Format::DecimalSi
        }
        e if e.starts_with(['e', 'E']) => {
            exp += e[1..].parse::<i32>().ok()?;
            Format::DecimalExponent
        }
        _ => return None,
    };
    if mantissa == 0 {
        return Some("0".to_owned());
    }
    if exp < min_scale {
        let divisor = 10i128.checked_pow((min_scale - exp) as u32)?;
        mantissa = (mantissa + divisor - 1) / divisor;
        exp = min_scale;
    }
    // Strip trailing zeros into the exponent.
    while mantissa % 10 == 0 {
        mantissa /= 10;
        exp += 1;
    }
    let sign = if negative { "-" } else { "" };
    let integer = if exp >= 0 {
        10i128
            .checked_pow(exp as u32)
            .and_then(|p| mantissa.checked_mul(p))
    } else {
        None
    };
    if format == Format::BinarySi
        && let Some(mut value) = integer.filter(|v| *v >= 1024)
    {
        let mut power = 0;
        while power < 6 && value % 1024 == 0 {
            value /= 1024;
            power += 1;
        }
        let suffix = ["", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei"][power];
        return Some(format!("{sign}{value}{suffix}"));
    }
    while exp.rem_euclid(3) != 0 {
        mantissa = mantissa.checked_mul(10)?;
        exp -= 1;
    }
    let suffix = match (format, exp) {
        (Format::DecimalExponent, 0) => String::new(),
        (Format::DecimalExponent, e) => format!("e{e}"),
        (_, -9) => "n".into(),
        (_, -6) => "u".into(),
        (_, -3) => "m".into(),
        (_, 0) => String::new(),
        (_, 3) => "k".into(),
        (_, 6) => "M".into(),
        (_, 9) => "G".into(),
        (_, 12) => "T".into(),
        (_, 15) => "P".into(),
        (_, 18) => "E".into(),
        (_, e) => format!("e{e}"),
    };
    Some(format!("{sign}{mantissa}{suffix}"))
}

/// A JSON quantity (string or bare number) in canonical form, or None to leave it as it is.
pub fn canonical_value(value: &Value, min_scale: i32) -> Option<Value> {
    let text = match value {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        _ => return None,
    };
    canonical(&text, min_scale).map(Value::String)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_forms_as_upstream() {
        for (input, want) in [
            ("0.5", "500m"),
            ("1000m", "1"),
            ("1500m", "1500m"),
            ("1.5k", "1500"),
            ("2000", "2k"),
            ("1024Mi", "1Gi"),
            ("1536Mi", "1536Mi"),
            ("0.5Gi", "512Mi"),
            ("512", "512"),
            ("1Ki", "1Ki"),
            ("100M", "100M"),
            ("1e3", "1e3"),
            ("12e2", "1200"),
            ("0", "0"),
            ("0.0001", "1m"),
            ("-1", "-1"),
            ("128974848", "128974848"),
            ("129e6", "129e6"),
            ("123Mi", "123Mi"),
        ] {
            assert_eq!(canonical(input, -3).as_deref(), Some(want), "{input}");
        }
        assert_eq!(canonical("0.0001", -9).as_deref(), Some("100u"));
        assert_eq!(canonical("abc", -3), None);
        assert_eq!(canonical("1Zi", -3), None);
        assert_eq!(
            canonical_value(&serde_json::json!(2), -3),
            Some(Value::String("2".into()))
        );
    }

    #[test]
    fn suffixes() {
        assert_eq!(parse("500m"), Some(0.5));
        assert_eq!(parse("1Gi"), Some(1073741824.0));
        assert_eq!(parse("2k"), Some(2000.0));
        assert_eq!(parse("1e3"), Some(1000.0));
        assert_eq!(parse("128974848"), Some(128974848.0));
        assert_eq!(parse("1.5"), Some(1.5));
        assert_eq!(parse("abc"), None);
        assert_eq!(parse("1Zi"), None);
        assert_eq!(parse(""), None);
    }
}
