//! Money on the wire: amounts are computed with `Decimal` and written as JSON numbers, an
//! integer when whole and a float otherwise, exactly like the real API (`"summ": 1`,
//! `"totalSumm": 1395.16`).

use rust_decimal::prelude::ToPrimitive;
use rust_decimal::{Decimal, RoundingStrategy};
use serde_json::{Number, Value};

/// Rounds to kopecks and writes `d` as an int or float JSON number.
pub fn num(d: Decimal) -> Value {
    let d = round(d).normalize();
    if d.fract().is_zero()
        && let Some(i) = d.to_i64()
    {
        return Value::Number(i.into());
    }
    // The float is only the wire form; every sum was computed on decimals before.
    d.to_f64()
        .and_then(Number::from_f64)
        .map_or(Value::Null, Value::Number)
}

/// Rounds to two places, halves away from zero (how shops round prices).
pub fn round(d: Decimal) -> Decimal {
    d.round_dp_with_strategy(2, RoundingStrategy::MidpointAwayFromZero)
}

/// A decimal from an integer number of kopecks/cents.
pub fn cents(c: i64) -> Decimal {
    Decimal::new(c, 2)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whole_amounts_are_ints_and_others_floats() {
        assert_eq!(num(Decimal::new(6330, 0)).to_string(), "6330");
        assert_eq!(num(cents(633000)).to_string(), "6330");
        assert_eq!(num(cents(139516)).to_string(), "1395.16");
        assert_eq!(num(cents(-115710)).to_string(), "-1157.1");
        assert_eq!(num(Decimal::new(12345, 3)).to_string(), "12.35");
        assert_eq!(num(Decimal::ZERO).to_string(), "0");
    }
}
