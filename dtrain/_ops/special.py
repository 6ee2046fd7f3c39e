"""Special and number-theoretic elementwise functions: erfc, exp2, lgamma, digamma, xlogy, gcd, ... (torch's names)."""
