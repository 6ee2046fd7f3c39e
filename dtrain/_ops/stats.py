"""Statistics and scans: quantile, nanquantile, nanmedian, mode, histc, cov, trapezoid, cummax, cummin,
logcumsumexp, unique_consecutive, renorm."""
