//! Non-personal models: most popular (by how many users interacted) and trending (time-decayed
//! weighted interactions, so last week's hit outranks last year's).

use crate::data::Interactions;
use crate::score::Scorer;

/// Items by how many users interacted with them.
#[derive(Debug, Clone)]
pub struct Popularity {
    counts: Vec<f32>,
}

impl Popularity {
    pub fn fit(data: &Interactions) -> Self {
        Popularity {
            counts: data.item_users.iter().map(|u| u.len() as f32).collect(),
        }
    }
}

impl Scorer for Popularity {
    fn name(&self) -> &'static str {
        "popularity"
    }
    fn score(&self, _user: Option<u32>, _history: &[(u32, f32)], out: &mut [f32]) {
        out.copy_from_slice(&self.counts);
    }
    fn items(&self) -> usize {
        self.counts.len()
    }
}

/// One piece of feedback at a time, for [`Trending`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TimedFeedback {
    pub item: u32,
    /// Milliseconds since the epoch.
    pub at: i64,
    pub weight: f32,
}

/// Items by their feedback weight decayed by age: an event `half_life_ms` old counts half.
#[derive(Debug, Clone)]
pub struct Trending {
    scores: Vec<f32>,
}

impl Trending {
    /// Scores as of `now`; future events count as new, negative weights are ignored.
    pub fn fit(items: usize, feedback: &[TimedFeedback], now: i64, half_life_ms: i64) -> Self {
        let mut scores = vec![0f32; items];
        let half_life = half_life_ms.max(1) as f64;
        for f in feedback {
            if let Some(s) = scores.get_mut(f.item as usize) {
                if f.weight > 0.0 {
                    let age = (now - f.at).max(0) as f64;
                    *s += f.weight * (-(age / half_life) * std::f64::consts::LN_2).exp() as f32;
                }
            }
        }
        Trending { scores }
    }
}

impl Scorer for Trending {
    fn name(&self) -> &'static str {
        "trending"
    }
    fn score(&self, _user: Option<u32>, _history: &[(u32, f32)], out: &mut [f32]) {
        out.copy_from_slice(&self.scores);
    }
    fn items(&self) -> usize {
        self.scores.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trending_halves_per_half_life() {
        let day = 86_400_000;
        let t = Trending::fit(
            3,
            &[
                TimedFeedback {
                    item: 0,
                    at: 0,
                    weight: 8.0,
                },
                TimedFeedback {
                    item: 1,
                    at: 7 * day,
                    weight: 1.0,
                },
                TimedFeedback {
                    item: 2,
                    at: 7 * day,
                    weight: -5.0,
                },
            ],
            7 * day,
            day,
        );
        let mut out = [0f32; 3];
        t.score(None, &[], &mut out);
        // 8 events' worth a week ago is 8 / 2^7 = 0.0625 now.
        assert!((out[0] - 0.0625).abs() < 1e-6, "{out:?}");
        assert_eq!(out[1], 1.0);
        assert_eq!(out[2], 0.0);
    }
}
