//! Customer segments and the thresholds that assign them.

use serde::{Deserialize, Serialize};

/// Where a customer stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum Segment {
    /// No activity (app or purchase) for [`SegmentThresholds::dormant_after_days`] days or more,
    /// or never active.
    Dormant,
    /// Recently active, no strong churn signal, not high value.
    Active,
    /// High value: total spend at least [`SegmentThresholds::vip_min_spend`].
    Vip,
    /// Still active but churn risk at least [`SegmentThresholds::at_risk_churn`].
    AtRisk,
}

impl Segment {
    /// All segments in report order.
    pub const ALL: [Segment; 4] = [
        Segment::Active,
        Segment::Vip,
        Segment::AtRisk,
        Segment::Dormant,
    ];

    /// Lower-case name (`"active"`, `"vip"`, `"at_risk"`, `"dormant"`), as in JSON.
    pub fn as_str(&self) -> &'static str {
        match self {
            Segment::Dormant => "dormant",
            Segment::Active => "active",
            Segment::Vip => "vip",
            Segment::AtRisk => "at_risk",
        }
    }
}

impl std::fmt::Display for Segment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Segmentation thresholds. Rules apply in order: Dormant, then AtRisk, then Vip, else Active
/// (so a high spender who is slipping away is AtRisk — the segment that gets retention offers).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct SegmentThresholds {
    /// Days without any activity after which a customer is Dormant. Default 90.
    pub dormant_after_days: u32,
    /// Churn risk from which a non-dormant customer is AtRisk. Default 0.6 (with the heuristic
    /// churn curve: about 38 days since the last purchase).
    pub at_risk_churn: f64,
    /// Total spend from which a customer is Vip. Default 1,000.
    pub vip_min_spend: f64,
}

impl Default for SegmentThresholds {
    fn default() -> Self {
        SegmentThresholds {
            dormant_after_days: 90,
            at_risk_churn: 0.6,
            vip_min_spend: 1000.0,
        }
    }
}

/// What a customer's segment is decided on (see [`SegmentThresholds::classify`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct SegmentSignals {
    /// Days since the last activity or purchase; `None` for a customer never seen active.
    pub days_inactive: Option<u32>,
    /// Churn risk 0–1.
    pub churn_risk: f64,
    /// Total spend so far.
    pub total_spend: f64,
}

impl SegmentThresholds {
    /// The segment for these signals.
    pub fn classify(&self, signals: SegmentSignals) -> Segment {
        let SegmentSignals {
            days_inactive,
            churn_risk,
            total_spend,
        } = signals;
        match days_inactive {
            None => Segment::Dormant,
            Some(d) if d >= self.dormant_after_days => Segment::Dormant,
            _ if churn_risk >= self.at_risk_churn => Segment::AtRisk,
            _ if total_spend >= self.vip_min_spend => Segment::Vip,
            _ => Segment::Active,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classify_in_order() {
        let t = SegmentThresholds::default();
        let classify = |days_inactive, churn_risk, total_spend| {
            t.classify(SegmentSignals {
                days_inactive,
                churn_risk,
                total_spend,
            })
        };
        assert_eq!(classify(None, 0.0, 5000.0), Segment::Dormant);
        assert_eq!(classify(Some(90), 0.1, 5000.0), Segment::Dormant);
        assert_eq!(classify(Some(89), 0.6, 5000.0), Segment::AtRisk);
        assert_eq!(classify(Some(10), 0.2, 1000.0), Segment::Vip);
        assert_eq!(classify(Some(10), 0.2, 999.0), Segment::Active);
    }
}
