//! The engagement score: how much a customer does, on a 0–100 scale.

use serde::{Deserialize, Serialize};

use crate::activity::CustomerActivity;

/// Weights of the engagement score: score = 100 · (1 − exp(−Σ wᵢ·countᵢ / `saturation`)), so
/// it rises quickly for the first actions and approaches 100 for heavy users.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct EngagementWeights {
    /// Per session. Default 1.
    pub sessions: f64,
    /// Per page view. Default 0.2.
    pub page_views: f64,
    /// Per click. Default 0.5.
    pub clicks: f64,
    /// Per search. Default 0.5.
    pub searches: f64,
    /// Per cart add. Default 2.
    pub cart_adds: f64,
    /// Per review. Default 3.
    pub reviews: f64,
    /// Per purchase day. Default 5.
    pub purchases: f64,
    /// Weighted activity at which the score reaches 63. Default 50.
    pub saturation: f64,
}

impl Default for EngagementWeights {
    fn default() -> Self {
        EngagementWeights {
            sessions: 1.0,
            page_views: 0.2,
            clicks: 0.5,
            searches: 0.5,
            cart_adds: 2.0,
            reviews: 3.0,
            purchases: 5.0,
            saturation: 50.0,
        }
    }
}

impl EngagementWeights {
    /// The engagement score in [0, 100].
    pub fn score(&self, user: &CustomerActivity) -> f64 {
        let a = &user.activity;
        let weighted = self.sessions * a.sessions as f64
            + self.page_views * a.page_views as f64
            + self.clicks * a.clicks as f64
            + self.searches * a.searches as f64
            + self.cart_adds * a.cart_adds as f64
            + self.reviews * a.reviews as f64
            + self.purchases * user.purchases.count as f64;
        let score = 100.0 * (1.0 - (-weighted / self.saturation).exp());
        if score.is_finite() {
            score.clamp(0.0, 100.0)
        } else {
            0.0
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn engagement_is_bounded() {
        let w = EngagementWeights::default();
        let mut u = CustomerActivity::default();
        assert_eq!(w.score(&u), 0.0);
        u.activity.sessions = 50;
        assert!((w.score(&u) - 100.0 * (1.0 - (-1.0f64).exp())).abs() < 1e-12);
        u.activity.page_views = u32::MAX;
        assert!(w.score(&u) <= 100.0);
    }
}
