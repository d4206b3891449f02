//! Exact money: integer minor units, largest-remainder splits, fixed base-currency rates.
//! Mirrors `pipeline/attribution/money.py` operation for operation.

/// A model's weights for n touchpoints; the common shapes are kept without a vector.
pub enum Weights {
    Equal(usize),      // n equal weights (linear; position-based with one or two touchpoints)
    One(usize, usize), // n touchpoints, all to one of them (first and last click)
    Each(Vec<u128>),
}

impl Weights {
    /// `split_exact` over these weights.
    pub fn split(&self, total: i64) -> Vec<i64> {
        match self {
            Weights::Equal(n) => split_equal(total, *n),
            Weights::One(n, at) => {
                let mut shares = vec![0i64; *n];
                shares[*at] = total;
                shares
            }
            Weights::Each(w) => split_exact(total, w),
        }
    }
}

/// Equal weights (or all zero, which split equally): everyone q, the first r one more (ties to the earlier).
fn split_equal(total: i64, n: usize) -> Vec<i64> {
    assert!(n > 0, "cannot split over zero recipients");
    let (q, r) = (total.abs() / n as i64, (total.abs() % n as i64) as usize);
    let sign = if total < 0 { -1 } else { 1 };
    (0..n).map(|i| sign * (q + (i < r) as i64)).collect()
}

/// Split `total` minor units in proportion to non-negative integer `weights` (largest remainder, ties to the
/// earlier index; a negative total is split as its magnitude and negated; all-zero weights split equally).
pub fn split_exact(total: i64, weights: &[u128]) -> Vec<i64> {
    let n = weights.len();
    assert!(n > 0, "cannot split over zero recipients");
    if total < 0 {
        return split_exact(-total, weights).into_iter().map(|x| -x).collect();
    }
    let first = weights[0];
    if weights.iter().all(|&w| w == first) {
        return split_equal(total, n);
    }
    let wsum: u128 = weights.iter().sum();
    SCRATCH.with_borrow_mut(|(remainders, order)| largest_remainder(total as u128, weights, wsum, remainders, order))
}

fn largest_remainder(t: u128, weights: &[u128], wsum: u128, remainders: &mut Vec<u128>, order: &mut Vec<usize>)
                     -> Vec<i64> {
    let n = weights.len();
    remainders.clear();
    remainders.resize(n, 0);
    let mut shares = vec![0i64; n];
    let mut given: u128 = 0;
    let max_w = *weights.iter().max().unwrap();
    if t.checked_mul(max_w).is_some_and(|p| p <= u64::MAX as u128) && wsum <= u64::MAX as u128 {
        let (t, wsum) = (t as u64, wsum as u64);
        for (i, &w) in weights.iter().enumerate() {
            let p = t * w as u64;
            shares[i] = (p / wsum) as i64;
            remainders[i] = (p % wsum) as u128;
            given += (p / wsum) as u128;
        }
    } else if t < (1 << 50) && max_w <= u64::MAX as u128 && wsum < (1 << 125) {
        // A 128-bit division costs a library call; a float estimate of the quotient, corrected with an exact
        // 128-bit remainder, gives the same quotient and remainder. The estimate is off by less than one
        // (quotient < 2^50, relative error 2^-51), so each correction loop runs at most a step or two.
        // (conversions between floats and 128-bit integers are library calls too: go through 64 bits)
        let tf = t as u64 as f64;
        let sf = if wsum <= u64::MAX as u128 { wsum as u64 as f64 } else { wsum as f64 };
        for (i, &w) in weights.iter().enumerate() {
            let p = (t * w) as i128;
            let wf = w as u64 as f64;
            let mut q = (tf * wf / sf) as i64 as i128;
            let mut r = p - q * wsum as i128;
            while r < 0 {
                q -= 1;
                r += wsum as i128;
            }
            while r >= wsum as i128 {
                q += 1;
                r -= wsum as i128;
            }
            shares[i] = q as i64;
            remainders[i] = r as u128;
            given += q as u128;
        }
    } else {
        for (i, &w) in weights.iter().enumerate() {
            let p = t.checked_mul(w).expect("split_exact: total × weight overflows 128 bits");
            let q = p / wsum;
            shares[i] = q as i64;
            remainders[i] = p % wsum;
            given += q;
        }
    }
    let left = (t - given) as usize;
    if left > 0 {
        // the `left` largest remainders, ties to the earlier index, get one more unit each
        order.clear();
        order.extend(0..n);
        let by = |a: &usize, b: &usize| remainders[*b].cmp(&remainders[*a]).then(a.cmp(b));
        if left < n {
            order.select_nth_unstable_by(left - 1, by);
        }
        for &i in order.iter().take(left) {
            shares[i] += 1;
        }
    }
    shares
}

thread_local! {
    /// `split_exact`'s remainders and ranking, kept between calls: a long journey's conversion then touches
    /// no fresh memory for them (fresh pages cost more than the arithmetic).
    static SCRATCH: std::cell::RefCell<(Vec<u128>, Vec<usize>)> = const { std::cell::RefCell::new((Vec::new(), Vec::new())) };
}

/// Digits of |x| (at least 1).
fn digits(mut x: u128) -> u32 {
    let mut d = 1;
    while x >= 10 {
        x /= 10;
        d += 1;
    }
    d
}

/// x / 10^k rounded half-even (x ≥ 0).
fn div_pow10_half_even(x: u128, k: u32) -> u128 {
    if k == 0 {
        return x;
    }
    if k > 38 {
        return 0;
    }
    let d = 10u128.pow(k);
    let q = x / d;
    let r = x % d;
    let twice = r * 2;
    if twice > d || (twice == d && q % 2 == 1) {
        q + 1
    } else {
        q
    }
}

/// A positive decimal rate: `mantissa × 10^exponent` base units per unit of a currency.
#[derive(Clone, Copy, Debug)]
pub struct Rate {
    pub mantissa: u128,
    pub exponent: i32,
}

/// Minor units of a currency (exponent `cur_exp`) to minor units of the base (exponent `base_exp`), as
/// Python's Decimal does it: the product `from_minor(minor) × rate` rounded to 28 significant digits
/// (the default context, half-even), then quantized to an integer half-even.
pub fn to_base_minor(minor: i64, cur_exp: u32, base_exp: u32, rate: Rate) -> i64 {
    if minor == 0 {
        return 0;
    }
    let negative = minor < 0;
    let mut p: u128 = (minor.unsigned_abs() as u128)
        .checked_mul(rate.mantissa)
        .expect("to_base_minor: product overflows");
    let mut exp: i64 = rate.exponent as i64 - cur_exp as i64;
    let d = digits(p);
    if d > 28 {
        let k = d - 28;
        p = div_pow10_half_even(p, k);
        exp += k as i64;
    }
    exp += base_exp as i64;
    let v: u128 = if exp >= 0 {
        p.checked_mul(10u128.pow(exp as u32)).expect("to_base_minor: result overflows")
    } else {
        div_pow10_half_even(p, (-exp) as u32)
    };
    let v = i64::try_from(v).expect("to_base_minor: result does not fit 64 bits");
    if negative {
        -v
    } else {
        v
    }
}

pub fn gcd(mut a: u128, mut b: u128) -> u128 {
    while b != 0 {
        let t = a % b;
        a = b;
        b = t;
    }
    a
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_add_up_and_ties_go_to_the_earlier() {
        assert_eq!(split_exact(100, &[1, 1, 1]), vec![34, 33, 33]);
        assert_eq!(split_exact(-100, &[1, 1, 1]), vec![-34, -33, -33]);
        assert_eq!(split_exact(5, &[0, 0]), vec![3, 2]);
    }

    /// Largest remainder with plain 128-bit division (the slow path, written out).
    fn by_division(total: i64, weights: &[u128]) -> Vec<i64> {
        let wsum: u128 = weights.iter().sum();
        if wsum == 0 || weights.iter().all(|&w| w == weights[0]) {
            return split_equal(total, weights.len());
        }
        let t = total as u128;
        let q: Vec<u128> = weights.iter().map(|&w| t * w / wsum).collect();
        let mut order: Vec<usize> = (0..weights.len()).collect();
        order.sort_by(|&a, &b| (t * weights[b] % wsum).cmp(&(t * weights[a] % wsum)).then(a.cmp(&b)));
        let left = (t - q.iter().sum::<u128>()) as usize;
        let mut out: Vec<i64> = q.iter().map(|&x| x as i64).collect();
        for &i in order.iter().take(left) {
            out[i] += 1;
        }
        out
    }

    /// The float-estimate path against plain 128-bit division, on weights like time decay's (up to 2^52).
    #[test]
    fn estimated_quotients_are_exact() {
        let mut seed: u64 = 0x9E3779B97F4A7C15;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for round in 0..2000 {
            let n = 1 + (next() % 50) as usize;
            let bits = [20, 40, 52, 60, 64, 74][round % 6];
            let weights: Vec<u128> = (0..n).map(|_| (next() as u128) % (1u128 << bits)).collect();
            let total = (next() % (1 << 40)) as i64;
            assert_eq!(split_exact(total, &weights), by_division(total, &weights), "{weights:?} {total}");
        }
    }

    #[test]
    fn rates_round_half_even() {
        // 1.00 EUR × 1.08 = 1.08 USD
        assert_eq!(to_base_minor(100, 2, 2, Rate { mantissa: 108, exponent: -2 }), 108);
        // 1 JPY × 0.0067 = 0.0067 USD → 0.01 (0.67 cents, half-even to 1)
        assert_eq!(to_base_minor(1, 0, 2, Rate { mantissa: 67, exponent: -4 }), 1);
        assert_eq!(to_base_minor(5, 2, 0, Rate { mantissa: 1, exponent: 0 }), 0); // 0.05 → 0
        assert_eq!(to_base_minor(150, 2, 0, Rate { mantissa: 1, exponent: 0 }), 2); // 1.5 → 2
        assert_eq!(to_base_minor(250, 2, 0, Rate { mantissa: 1, exponent: 0 }), 2); // 2.5 → 2
    }
}
