//! Resource quantities (`500m`, `1Gi`, `2e3`) read as numbers, shared by the API server
//! (validation, QoS classes, canonical forms) and the scheduler (requests versus allocatable).

/// The value of a quantity, or None when it does not parse (upstream's grammar: a signed
/// decimal number, then a binary suffix Ki..Ei, a decimal suffix n u m k M G T P E, or an
/// exponent e<int>/E<int>).
pub fn parse(q: &str) -> Option<f64> {
    let q = q.trim();
    let split = q
        .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '+' || c == '-'))
        .unwrap_or(q.len());
    let (number, suffix) = q.split_at(split);
    if number.is_empty() || number == "+" || number == "-" {
        return None;
    }
    let n: f64 = number.parse().ok()?;
    let scale = match suffix {
        "" => 1.0,
        "n" => 1e-9,
        "u" => 1e-6,
        "m" => 1e-3,
        "k" => 1e3,
        "M" => 1e6,
        "G" => 1e9,
        "T" => 1e12,
        "P" => 1e15,
        "E" => 1e18,
        "Ki" => 1024f64,
        "Mi" => 1024f64.powi(2),
        "Gi" => 1024f64.powi(3),
        "Ti" => 1024f64.powi(4),
        "Pi" => 1024f64.powi(5),
        "Ei" => 1024f64.powi(6),
        exp if exp.starts_with(['e', 'E']) => 10f64.powi(exp[1..].parse().ok()?),
        _ => return None,
    };
    Some(n * scale)
}

#[cfg(test)]
mod tests {
    use super::parse;

    #[test]
    fn quantities_read_as_upstream() {
        assert_eq!(parse("500m"), Some(0.5));
        assert_eq!(parse("1Gi"), Some(1024f64.powi(3)));
        assert_eq!(parse("2e3"), Some(2000.0));
        assert_eq!(parse("+1k"), Some(1000.0));
        assert_eq!(parse("-"), None);
        assert_eq!(parse("1x"), None);
    }
}
