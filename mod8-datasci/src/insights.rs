//! The segment report: counts, shares, revenue, churn and value per segment, with insight
//! sentences, rendered as text or JSON.

use serde::{Deserialize, Serialize};

use chrono::NaiveDate;

use crate::activity::CustomerActivity;
use crate::engine::{AnalyticsEngine, CustomerProfile};
use crate::error::Result;
use crate::segment::Segment;
use crate::transactions::{activity_by_customer, Transaction};

/// Figures for one segment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SegmentStats {
    /// The segment.
    pub segment: Segment,
    /// Users in it.
    pub users: usize,
    /// Share of all users, 0–1.
    pub share: f64,
    /// Total spend of its users so far.
    pub revenue: f64,
    /// Share of all revenue, 0–1.
    pub revenue_share: f64,
    /// Mean churn risk.
    pub average_churn_risk: f64,
    /// Mean lifetime value estimate.
    pub average_lifetime_value: f64,
    /// Mean engagement score.
    pub average_engagement: f64,
    /// What to do about it, in sentences.
    pub insights: Vec<String>,
}

/// The whole report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SegmentReport {
    /// Users profiled.
    pub total_users: usize,
    /// Total spend of all users.
    pub total_revenue: f64,
    /// Sum of lifetime value estimates: the value of the base over the model's horizon.
    pub total_lifetime_value: f64,
    /// One entry per segment, in [`Segment::ALL`] order (empty segments included).
    pub segments: Vec<SegmentStats>,
    /// Base-wide insight sentences.
    pub insights: Vec<String>,
}

/// Builds [`SegmentReport`]s from profiles.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct InsightsGenerator {
    /// Share of dormant users above which a win-back campaign is urged. Default 0.3.
    pub dormant_alert_share: f64,
    /// Share of at-risk users above which retention is urged. Default 0.15.
    pub at_risk_alert_share: f64,
    /// Revenue share of VIPs above which revenue concentration is flagged. Default 0.5.
    pub vip_concentration_share: f64,
}

impl Default for InsightsGenerator {
    fn default() -> Self {
        InsightsGenerator {
            dormant_alert_share: 0.3,
            at_risk_alert_share: 0.15,
            vip_concentration_share: 0.5,
        }
    }
}

fn pct(x: f64) -> String {
    format!("{:.1}%", 100.0 * x)
}

impl InsightsGenerator {
    /// The report for every customer of a transaction history, profiled with the heuristic
    /// engine as of `as_of` (later transactions left out): what the `segments` chart of
    /// `mod8 clv plot` shows.
    ///
    /// # Errors
    ///
    /// As [`AnalyticsEngine::profile_all`].
    pub fn report_transactions(
        &self,
        transactions: &[Transaction],
        as_of: NaiveDate,
    ) -> Result<SegmentReport> {
        let users: Vec<CustomerActivity> = activity_by_customer(transactions, as_of)
            .into_iter()
            .map(|(_, user)| user)
            .collect();
        let profiles = AnalyticsEngine::heuristic().profile_all(&users, as_of)?;
        Ok(self.report(&profiles))
    }

    /// The report for these profiles.
    ///
    /// ```
    /// use mod8_datasci::{CustomerProfile, InsightsGenerator, Segment};
    /// let p = |segment, spend| CustomerProfile {
    ///     segment, engagement: 50.0, churn_risk: 0.2, lifetime_value: 100.0,
    ///     next_purchase: None, total_spend: spend, purchase_count: 1, days_inactive: Some(3),
    /// };
    /// let report = InsightsGenerator::default().report(&[p(Segment::Vip, 2000.0), p(Segment::Active, 50.0)]);
    /// assert_eq!(report.total_users, 2);
    /// assert!(report.to_text().contains("vip"));
    /// assert!(report.to_json().contains("\"segment\":\"vip\""));
    /// ```
    pub fn report(&self, profiles: &[CustomerProfile]) -> SegmentReport {
        let mut builder = self.builder();
        for p in profiles {
            builder.add(p);
        }
        builder.finish()
    }

    /// A builder that takes the profiles one at a time and keeps only running sums, so a
    /// report over any number of customers (streamed from a database, say) needs constant
    /// memory. [`SegmentReportBuilder::finish`] gives what [`InsightsGenerator::report`] gives
    /// for the same profiles.
    ///
    /// ```
    /// use mod8_datasci::{CustomerProfile, InsightsGenerator, Segment};
    /// let p = |segment, spend| CustomerProfile {
    ///     segment, engagement: 50.0, churn_risk: 0.2, lifetime_value: 100.0,
    ///     next_purchase: None, total_spend: spend, purchase_count: 1, days_inactive: Some(3),
    /// };
    /// let mut builder = InsightsGenerator::default().builder();
    /// for i in 0..10_000 {
    ///     builder.add(&p(if i % 10 == 0 { Segment::Vip } else { Segment::Active }, 10.0));
    /// }
    /// let report = builder.finish();
    /// assert_eq!(report.total_users, 10_000);
    /// assert_eq!(report.non_empty_segments(), 2);
    /// ```
    pub fn builder(&self) -> SegmentReportBuilder {
        SegmentReportBuilder {
            generator: *self,
            total_users: 0,
            total_revenue: 0.0,
            total_lifetime_value: 0.0,
            segments: [SegmentSums::default(); 4],
        }
    }

    fn segment_insights(&self, s: &SegmentStats) -> Vec<String> {
        if s.users == 0 {
            return vec![format!("No {} users at the moment.", s.segment)];
        }
        let mut out = Vec::new();
        match s.segment {
            Segment::Dormant => {
                out.push(format!(
                    "{} users ({}) have been inactive for 90+ days; send a win-back campaign with picks from their favourite categories.",
                    s.users,
                    pct(s.share)
                ));
                if s.share > self.dormant_alert_share {
                    out.push(format!(
                        "Dormant users exceed {} of the base: review onboarding and the first-purchase experience.",
                        pct(self.dormant_alert_share)
                    ));
                }
            }
            Segment::AtRisk => {
                out.push(format!(
                    "{} users ({}) show churn signals (average churn risk {}); target them with retention offers now, worth {:.2} in expected value each.",
                    s.users,
                    pct(s.share),
                    pct(s.average_churn_risk),
                    s.average_lifetime_value
                ));
                if s.share > self.at_risk_alert_share {
                    out.push(format!(
                        "At-risk users exceed {} of the base: prioritise retention over acquisition this period.",
                        pct(self.at_risk_alert_share)
                    ));
                }
            }
            Segment::Vip => {
                out.push(format!(
                    "{} VIP users ({}) bring {} of revenue; offer early access and premium products, and watch them for churn.",
                    s.users,
                    pct(s.share),
                    pct(s.revenue_share)
                ));
                if s.revenue_share > self.vip_concentration_share {
                    out.push("Revenue is concentrated in VIPs: losing a few would hurt, so assign them account care.".to_owned());
                }
            }
            Segment::Active => {
                out.push(format!(
                    "{} active users ({}) with average engagement {:.0}/100; personalised recommendations can move them towards VIP.",
                    s.users,
                    pct(s.share),
                    s.average_engagement
                ));
            }
        }
        out
    }

    fn base_insights(&self, total: usize, segments: &[SegmentStats]) -> Vec<String> {
        if total == 0 {
            return vec!["No users to analyse yet.".to_owned()];
        }
        let mut out = Vec::new();
        if let Some(largest) = segments.iter().max_by_key(|s| s.users) {
            out.push(format!(
                "The largest segment is {} with {} of users.",
                largest.segment,
                pct(largest.share)
            ));
        }
        if let Some(valuable) = segments.iter().filter(|s| s.users > 0).max_by(|a, b| {
            a.average_lifetime_value
                .total_cmp(&b.average_lifetime_value)
        }) {
            out.push(format!(
                "The most valuable segment per user is {} (average lifetime value {:.2}).",
                valuable.segment, valuable.average_lifetime_value
            ));
        }
        out
    }
}

/// Running sums of one segment.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
struct SegmentSums {
    users: usize,
    revenue: f64,
    churn_risk: f64,
    lifetime_value: f64,
    engagement: f64,
}

/// A [`SegmentReport`] built one profile at a time ([`InsightsGenerator::builder`]): running
/// counts and sums only, whatever the number of profiles.
#[derive(Debug, Clone, PartialEq)]
pub struct SegmentReportBuilder {
    generator: InsightsGenerator,
    total_users: usize,
    total_revenue: f64,
    total_lifetime_value: f64,
    /// In [`Segment::ALL`] order.
    segments: [SegmentSums; 4],
}

impl SegmentReportBuilder {
    /// Counts one customer's profile.
    pub fn add(&mut self, profile: &CustomerProfile) {
        self.total_users += 1;
        self.total_revenue += profile.total_spend;
        self.total_lifetime_value += profile.lifetime_value;
        if let Some(i) = Segment::ALL.iter().position(|&s| s == profile.segment) {
            let s = &mut self.segments[i];
            s.users += 1;
            s.revenue += profile.total_spend;
            s.churn_risk += profile.churn_risk;
            s.lifetime_value += profile.lifetime_value;
            s.engagement += profile.engagement;
        }
    }

    /// Profiles counted so far.
    pub fn users(&self) -> usize {
        self.total_users
    }

    /// The report over every profile added.
    pub fn finish(self) -> SegmentReport {
        let total_users = self.total_users;
        let total_revenue = self.total_revenue;
        let mut segments: Vec<SegmentStats> = Segment::ALL
            .iter()
            .zip(self.segments)
            .map(|(&segment, sums)| {
                let users = sums.users;
                let mean = |sum: f64| {
                    if users == 0 {
                        0.0
                    } else {
                        sum / users as f64
                    }
                };
                SegmentStats {
                    segment,
                    users,
                    share: if total_users == 0 {
                        0.0
                    } else {
                        users as f64 / total_users as f64
                    },
                    revenue: sums.revenue,
                    revenue_share: if total_revenue > 0.0 {
                        sums.revenue / total_revenue
                    } else {
                        0.0
                    },
                    average_churn_risk: mean(sums.churn_risk),
                    average_lifetime_value: mean(sums.lifetime_value),
                    average_engagement: mean(sums.engagement),
                    insights: Vec::new(),
                }
            })
            .collect();
        for s in &mut segments {
            s.insights = self.generator.segment_insights(s);
        }
        let insights = self.generator.base_insights(total_users, &segments);
        SegmentReport {
            total_users,
            total_revenue,
            total_lifetime_value: self.total_lifetime_value,
            segments,
            insights,
        }
    }
}

impl SegmentReport {
    /// Segments with at least one user (the report lists empty ones too).
    pub fn non_empty_segments(&self) -> usize {
        self.segments.iter().filter(|s| s.users > 0).count()
    }

    /// Compact JSON.
    pub fn to_json(&self) -> String {
        // Plain numbers and strings: serialisation cannot fail (NaN becomes `null`).
        serde_json::to_string(self).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
    }

    /// A readable text table followed by the insight sentences.
    pub fn to_text(&self) -> String {
        use std::fmt::Write;
        let mut out = String::new();
        let _ = writeln!(
            out,
            "Segment report: {} users, revenue {:.2}, lifetime value {:.2}",
            self.total_users, self.total_revenue, self.total_lifetime_value
        );
        let _ = writeln!(
            out,
            "{:<10} {:>8} {:>7} {:>12} {:>8} {:>7} {:>10} {:>6}",
            "segment", "users", "share", "revenue", "rev%", "churn", "avg LTV", "eng"
        );
        for s in &self.segments {
            let _ = writeln!(
                out,
                "{:<10} {:>8} {:>7} {:>12.2} {:>8} {:>7.3} {:>10.2} {:>6.1}",
                s.segment.as_str(),
                s.users,
                pct(s.share),
                s.revenue,
                pct(s.revenue_share),
                s.average_churn_risk,
                s.average_lifetime_value,
                s.average_engagement
            );
        }
        let _ = writeln!(out);
        for s in &self.segments {
            for line in &s.insights {
                let _ = writeln!(out, "- [{}] {}", s.segment, line);
            }
        }
        for line in &self.insights {
            let _ = writeln!(out, "- {line}");
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(segment: Segment, spend: f64, churn: f64, ltv: f64) -> CustomerProfile {
        CustomerProfile {
            segment,
            engagement: 40.0,
            churn_risk: churn,
            lifetime_value: ltv,
            next_purchase: None,
            total_spend: spend,
            purchase_count: 1,
            days_inactive: Some(1),
        }
    }

    #[test]
    fn figures_by_hand() {
        let r = InsightsGenerator::default().report(&[
            p(Segment::Vip, 3000.0, 0.1, 900.0),
            p(Segment::Active, 100.0, 0.2, 50.0),
            p(Segment::Active, 300.0, 0.4, 150.0),
            p(Segment::Dormant, 0.0, 0.9, 0.0),
        ]);
        assert_eq!(r.total_users, 4);
        assert_eq!(r.total_revenue, 3400.0);
        let active = r
            .segments
            .iter()
            .find(|s| s.segment == Segment::Active)
            .unwrap();
        assert_eq!(active.users, 2);
        assert_eq!(active.share, 0.5);
        assert_eq!(active.revenue, 400.0);
        assert!((active.average_churn_risk - 0.3).abs() < 1e-12);
        assert_eq!(active.average_lifetime_value, 100.0);
        let vip = r
            .segments
            .iter()
            .find(|s| s.segment == Segment::Vip)
            .unwrap();
        assert!(vip.insights.iter().any(|s| s.contains("concentrated")));
        let at_risk = r
            .segments
            .iter()
            .find(|s| s.segment == Segment::AtRisk)
            .unwrap();
        assert_eq!(at_risk.users, 0);
        assert!(r
            .insights
            .iter()
            .any(|s| s.contains("largest segment is active")));
        let json: serde_json::Value = serde_json::from_str(&r.to_json()).unwrap();
        assert_eq!(json["segments"].as_array().unwrap().len(), 4);
    }

    #[test]
    fn empty_base() {
        let r = InsightsGenerator::default().report(&[]);
        assert_eq!(r.total_users, 0);
        assert!(r.to_text().contains("No users"));
    }

    #[test]
    fn empty_segments_report_positive_zero_revenue() {
        let r = InsightsGenerator::default().report(&[p(Segment::Active, 10.0, 0.2, 5.0)]);
        let vip = r
            .segments
            .iter()
            .find(|s| s.segment == Segment::Vip)
            .unwrap();
        assert!(vip.revenue == 0.0 && vip.revenue.is_sign_positive());
        assert!(!r.to_text().contains("-0.00"), "{}", r.to_text());
    }
}
