//! Products in a category tree with brands and long-tail popularity, and offline stores.

use rand::distr::weighted::WeightedIndex;
use rand::distr::Distribution;
use rand::seq::SliceRandom;
use rand::Rng;
use serde_json::{Map, Value};
use shopgrowth_core::model::{CityTier, Product, Store};
use shopgrowth_core::Currency;

/// (top category, brands, leaves with price range in 元)
type Branch = (
    &'static str,
    &'static [&'static str],
    &'static [(&'static str, u32, u32)],
);

const TREE: &[Branch] = &[
    (
        "母婴",
        &["飞鹤", "爱他美", "帮宝适", "好奇", "巴拉巴拉", "贝亲"],
        &[
            ("婴儿奶粉", 180, 480),
            ("纸尿裤", 60, 200),
            ("童装", 50, 300),
            ("玩具", 30, 600),
            ("奶瓶", 40, 180),
        ],
    ),
    (
        "数码",
        &["华为", "小米", "苹果", "OPPO", "vivo", "索尼"],
        &[
            ("手机", 999, 8999),
            ("耳机", 99, 1999),
            ("平板", 1299, 6999),
            ("智能手表", 299, 3999),
            ("充电器", 39, 199),
        ],
    ),
    (
        "服饰",
        &["优衣库", "李宁", "波司登", "太平鸟", "森马", "海澜之家"],
        &[
            ("女装", 79, 899),
            ("男装", 79, 799),
            ("羽绒服", 399, 2499),
            ("鞋靴", 129, 1299),
            ("配饰", 29, 399),
        ],
    ),
    (
        "美妆",
        &["兰蔻", "雅诗兰黛", "珀莱雅", "完美日记", "花西子", "欧莱雅"],
        &[
            ("护肤", 99, 1599),
            ("彩妆", 49, 499),
            ("香水", 199, 1499),
            ("面膜", 39, 299),
        ],
    ),
    (
        "食品",
        &["三只松鼠", "良品铺子", "伊利", "蒙牛", "茅台", "农夫山泉"],
        &[
            ("零食", 19, 129),
            ("牛奶", 39, 139),
            ("酒水", 99, 2999),
            ("茶叶", 59, 899),
            ("生鲜", 29, 399),
        ],
    ),
    (
        "家居",
        &["宜家", "罗莱", "苏泊尔", "九阳", "美的", "水星家纺"],
        &[
            ("家纺", 99, 1299),
            ("厨具", 49, 899),
            ("小家电", 129, 1999),
            ("收纳", 19, 199),
            ("灯具", 59, 699),
        ],
    ),
    (
        "运动",
        &["安踏", "耐克", "阿迪达斯", "迪卡侬", "特步", "Keep"],
        &[
            ("跑鞋", 199, 1299),
            ("运动服", 99, 699),
            ("户外装备", 99, 2599),
            ("健身器材", 59, 2999),
        ],
    ),
    (
        "图书",
        &[
            "人民文学",
            "中信出版",
            "机械工业",
            "商务印书馆",
            "童趣",
            "新星",
        ],
        &[
            ("童书", 15, 199),
            ("小说", 25, 99),
            ("教辅", 19, 89),
            ("经管", 39, 129),
        ],
    ),
];

const MODIFIERS: &[&str] = &[
    "经典款",
    "旗舰款",
    "新款",
    "限定款",
    "轻奢款",
    "家庭装",
    "升级版",
    "基础款",
    "礼盒装",
    "加大号",
];

/// (city, tier, store count)
pub const CITIES: &[(&str, CityTier, usize)] = &[
    ("上海", CityTier::Tier1, 3),
    ("北京", CityTier::Tier1, 2),
    ("广州", CityTier::Tier1, 1),
    ("深圳", CityTier::Tier1, 1),
    ("杭州", CityTier::Tier2, 2),
    ("成都", CityTier::Tier2, 1),
    ("武汉", CityTier::Tier2, 1),
    ("南京", CityTier::Tier2, 1),
    ("无锡", CityTier::Tier3, 1),
    ("昆明", CityTier::Tier3, 0),
    ("赣州", CityTier::Tier4Plus, 0),
    ("曲靖", CityTier::Tier4Plus, 0),
];

pub struct Catalogue {
    pub products: Vec<Product>,
    pub stores: Vec<Store>,
    top_of: Vec<usize>,
    by_top: Vec<Vec<usize>>,
    by_top_pick: Vec<WeightedIndex<f64>>,
    global_pick: WeightedIndex<f64>,
}

impl Catalogue {
    pub fn generate(rng: &mut impl Rng, n: usize) -> Self {
        let n = n.max(TREE.len());
        let mut products = Vec::with_capacity(n);
        let mut top_of = Vec::with_capacity(n);
        for i in 0..n {
            let top = i % TREE.len();
            let (top_name, brands, leaves) = TREE[top];
            let (leaf, lo, hi) = leaves[rng.random_range(0..leaves.len())];
            let brand = brands[rng.random_range(0..brands.len())];
            // Log-uniform price between the leaf's bounds, ending in 9 like shelf prices.
            let yuan = (f64::from(lo).ln()
                + rng.random::<f64>() * (f64::from(hi).ln() - f64::from(lo).ln()))
            .exp();
            let price = ((yuan.round() as i64).max(1) * 100 / 1000) * 1000 + 900;
            let modifier = MODIFIERS[rng.random_range(0..MODIFIERS.len())];
            let mut attributes = Map::new();
            attributes.insert(
                "origin".into(),
                Value::String(
                    if rng.random_bool(0.8) {
                        "国产"
                    } else {
                        "进口"
                    }
                    .into(),
                ),
            );
            products.push(Product {
                id: format!("sku-{i:05}").into(),
                title: format!("{brand} {leaf} {modifier} {}", i % 97 + 1),
                category: vec![top_name.to_owned(), leaf.to_owned()],
                brand: Some(brand.to_owned()),
                spu_id: Some(format!("spu-{:05}", i / 3)),
                price,
                cost: Some(price * rng.random_range(45..80) / 100),
                currency: Currency::CNY,
                stock: Some(rng.random_range(0..2_000)),
                attributes,
            });
            top_of.push(top);
        }
        // Popularity: a random rank per product, weight 1/(rank+1)^1.1 — a long tail.
        let mut ranks: Vec<usize> = (0..n).collect();
        ranks.shuffle(rng);
        let weight: Vec<f64> = ranks
            .iter()
            .map(|&r| 1.0 / ((r + 1) as f64).powf(1.1))
            .collect();
        let mut by_top = vec![Vec::new(); TREE.len()];
        for (i, &t) in top_of.iter().enumerate() {
            by_top[t].push(i);
        }
        let uniform = |len: usize| WeightedIndex::new(vec![1.0; len.max(1)]);
        let by_top_pick = by_top
            .iter()
            .map(|items| {
                WeightedIndex::new(items.iter().map(|&i| weight[i]).collect::<Vec<_>>())
                    .or_else(|_| uniform(items.len()))
            })
            .collect::<Result<Vec<_>, _>>()
            .unwrap_or_default();
        let global_pick = WeightedIndex::new(&weight)
            .or_else(|_| uniform(n))
            .unwrap_or_else(|_| unreachable!());
        let mut stores = Vec::new();
        for &(city, tier, count) in CITIES {
            for k in 0..count {
                stores.push(Store {
                    id: format!("store-{:02}", stores.len() + 1).into(),
                    name: format!("{city}{}店", ["旗舰", "万达", "中心", "东站"][k % 4]),
                    city: Some(city.to_owned()),
                    city_tier: Some(tier),
                    address: None,
                });
            }
        }
        Catalogue {
            products,
            stores,
            top_of,
            by_top,
            by_top_pick,
            global_pick,
        }
    }

    pub fn tops(&self) -> usize {
        TREE.len()
    }

    pub fn top_of(&self, product: usize) -> usize {
        self.top_of[product]
    }

    /// A product of top category `top`, popular ones more often.
    pub fn pick_in(&self, rng: &mut impl Rng, top: usize) -> usize {
        match (self.by_top_pick.get(top), self.by_top.get(top)) {
            (Some(pick), Some(items)) if !items.is_empty() => items[pick.sample(rng)],
            _ => self.pick_any(rng),
        }
    }

    pub fn pick_any(&self, rng: &mut impl Rng) -> usize {
        self.global_pick.sample(rng)
    }

    /// What a customer interested in `top` types into the search box.
    pub fn search_term(&self, rng: &mut impl Rng, top: usize) -> String {
        let (_, brands, leaves) = TREE[top % TREE.len()];
        if rng.random_bool(0.5) {
            leaves[rng.random_range(0..leaves.len())].0.to_owned()
        } else {
            format!(
                "{} {}",
                brands[rng.random_range(0..brands.len())],
                leaves[rng.random_range(0..leaves.len())].0
            )
        }
    }

    /// Stores in `city`.
    pub fn stores_in(&self, city: &str) -> Vec<usize> {
        self.stores
            .iter()
            .enumerate()
            .filter(|(_, s)| s.city.as_deref() == Some(city))
            .map(|(i, _)| i)
            .collect()
    }
}
