//! The least-squares slope of points (x, y): the trend of round medians over rounds.

/// The ordinary least-squares slope Σ(x − x̄)(y − ȳ) / Σ(x − x̄)²; 0 for fewer than two points or
/// when every x is the same (no trend can be told).
pub fn least_squares_slope(points: &[(f64, f64)]) -> f64 {
    if points.len() < 2 {
        return 0.0;
    }
    let n = points.len() as f64;
    let mx = points.iter().map(|(x, _)| x).sum::<f64>() / n;
    let my = points.iter().map(|(_, y)| y).sum::<f64>() / n;
    let sxy: f64 = points.iter().map(|(x, y)| (x - mx) * (y - my)).sum();
    let sxx: f64 = points.iter().map(|(x, _)| (x - mx).powi(2)).sum();
    if sxx == 0.0 { 0.0 } else { sxy / sxx }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slopes_are_least_squares() {
        assert_eq!(least_squares_slope(&[(0.0, 1.0), (1.0, 2.0), (2.0, 3.0)]), 1.0);
        // By hand: Σ(x − x̄)(y − ȳ) = 5.5 and Σ(x − x̄)² = 5 for x = 0..3, y = 1, 3, 2, 5.
        assert!((least_squares_slope(&[(0.0, 1.0), (1.0, 3.0), (2.0, 2.0), (3.0, 5.0)]) - 1.1).abs() < 1e-12);
        assert_eq!(least_squares_slope(&[(0.0, 1.0)]), 0.0);
        assert_eq!(least_squares_slope(&[(3.0, 1.0), (3.0, 2.0)]), 0.0);
    }
}
