//! Bayesian personalised ranking (Rendle et al., UAI 2009) by stochastic gradient descent: for a
//! sampled observed pair (u, i) and an item j the user has not touched, push `x_u·(y_i − y_j) +
//! b_i − b_j` up. One epoch draws as many triples as there are pairs. Single-threaded, so a seed
//! gives the same model every time.

use crate::data::Interactions;
use crate::score::Scorer;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BprConfig {
    pub factors: usize,
    pub learning_rate: f32,
    pub regularization: f32,
    pub epochs: usize,
    pub seed: u64,
}

impl Default for BprConfig {
    fn default() -> Self {
        BprConfig {
            factors: 64,
            learning_rate: 0.05,
            regularization: 0.002,
            epochs: 40,
            seed: 42,
        }
    }
}

#[derive(Debug, Clone)]
pub struct Bpr {
    factors: usize,
    users: Vec<f32>,
    items: Vec<f32>,
    bias: Vec<f32>,
}

impl Bpr {
    pub fn fit(data: &Interactions, config: &BprConfig) -> Self {
        let f = config.factors.max(1);
        let mut rng = ChaCha8Rng::seed_from_u64(config.seed);
        let scale = 0.1 / (f as f32).sqrt();
        let init = |n: usize, rng: &mut ChaCha8Rng| -> Vec<f32> {
            (0..n)
                .map(|_| (rng.random::<f32>() - 0.5) * 2.0 * scale)
                .collect()
        };
        let mut users = init(data.users * f, &mut rng);
        let mut items = init(data.items * f, &mut rng);
        let mut bias = vec![0f32; data.items];
        let pairs: Vec<(u32, u32)> = data
            .user_items
            .iter()
            .enumerate()
            .flat_map(|(u, list)| list.iter().map(move |&i| (u as u32, i)))
            .collect();
        if pairs.is_empty() || data.items < 2 {
            return Bpr {
                factors: f,
                users,
                items,
                bias,
            };
        }
        let (lr, reg) = (config.learning_rate, config.regularization);
        let mut xu = vec![0f32; f];
        for _ in 0..config.epochs {
            for _ in 0..pairs.len() {
                let (u, i) = pairs[rng.random_range(0..pairs.len())];
                let seen = &data.user_items[u as usize];
                let j = loop {
                    let j = rng.random_range(0..data.items as u32);
                    if seen.binary_search(&j).is_err() {
                        break j;
                    }
                    if seen.len() >= data.items {
                        break j;
                    }
                };
                let (u, i, j) = (u as usize, i as usize, j as usize);
                xu.copy_from_slice(&users[u * f..(u + 1) * f]);
                let mut x = bias[i] - bias[j];
                for k in 0..f {
                    x += xu[k] * (items[i * f + k] - items[j * f + k]);
                }
                let g = 1.0 / (1.0 + x.exp());
                bias[i] += lr * (g - reg * bias[i]);
                bias[j] += lr * (-g - reg * bias[j]);
                for k in 0..f {
                    let (yi, yj) = (items[i * f + k], items[j * f + k]);
                    users[u * f + k] += lr * (g * (yi - yj) - reg * xu[k]);
                    items[i * f + k] += lr * (g * xu[k] - reg * yi);
                    items[j * f + k] += lr * (-g * xu[k] - reg * yj);
                }
            }
        }
        Bpr {
            factors: f,
            users,
            items,
            bias,
        }
    }
}

impl Scorer for Bpr {
    fn name(&self) -> &'static str {
        "bpr"
    }
    fn score(&self, user: Option<u32>, history: &[(u32, f32)], out: &mut [f32]) {
        let f = self.factors;
        // A user unknown to training: the mean of their items' factors.
        let x: Vec<f32> =
            match user.and_then(|u| self.users.get(u as usize * f..(u as usize + 1) * f)) {
                Some(x) => x.to_vec(),
                None => {
                    let mut x = vec![0f32; f];
                    for &(i, _) in history {
                        if let Some(y) = self.items.get(i as usize * f..(i as usize + 1) * f) {
                            x.iter_mut()
                                .zip(y)
                                .for_each(|(a, b)| *a += b / history.len() as f32);
                        }
                    }
                    x
                }
            };
        super::als::dot_scores(&x, &self.items, f, out);
        // The item bias joins after the shift keeps scores positive.
        let min_bias = self.bias.iter().copied().fold(0f32, f32::min);
        out.iter_mut()
            .zip(&self.bias)
            .for_each(|(o, b)| *o += b - min_bias);
    }
    fn items(&self) -> usize {
        self.bias.len()
    }
}
