//! Content-based similarity: each item is a TF-IDF vector of its category path, brand,
//! attributes and title words (Chinese titles segmented with jieba, search mode), and items are
//! neighbours by cosine. It knows items nobody has bought yet, which is what cold start needs.

use super::knn::{cosine_neighbours, ItemKnn, SparseRow};
use jieba_rs::Jieba;
use std::collections::HashMap;
use std::sync::OnceLock;

/// What the content model knows about an item.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ItemContent {
    pub title: String,
    /// Root first, e.g. ["母婴", "奶粉"].
    pub category: Vec<String>,
    pub brand: Option<String>,
    /// Attribute name and value, e.g. ("颜色", "红").
    pub attributes: Vec<(String, String)>,
}

fn jieba() -> &'static Jieba {
    static JIEBA: OnceLock<Jieba> = OnceLock::new();
    JIEBA.get_or_init(Jieba::new)
}

/// The words of a title: jieba's search-mode segmentation, lower-cased, without punctuation and
/// whitespace; Latin words and numbers are kept whole.
pub fn title_words(title: &str) -> Vec<String> {
    jieba()
        .cut_for_search(title, true)
        .into_iter()
        .map(|w| w.trim().to_lowercase())
        .filter(|w| !w.is_empty() && w.chars().any(char::is_alphanumeric))
        .collect()
}

/// The tokens of an item, prefixed by where they come from so a brand never matches a title word
/// by accident. Deeper category levels are separate tokens, so siblings share their parent's.
pub fn tokens(item: &ItemContent) -> Vec<String> {
    let mut out = Vec::new();
    let mut path = String::new();
    for level in &item.category {
        path.push('/');
        path.push_str(level);
        out.push(format!("c:{path}"));
    }
    if let Some(b) = &item.brand {
        out.push(format!("b:{}", b.to_lowercase()));
    }
    for (k, v) in &item.attributes {
        out.push(format!("a:{k}={v}"));
    }
    out.extend(
        title_words(&item.title)
            .into_iter()
            .map(|w| format!("t:{w}")),
    );
    out
}

/// Item neighbours by content.
#[derive(Debug, Clone)]
pub struct Content {
    pub knn: ItemKnn,
}

impl Content {
    /// TF-IDF (log-scaled idf, raw term counts) over [`tokens`], cosine, the `neighbours` best per
    /// item.
    pub fn fit(items: &[ItemContent], neighbours: usize) -> Self {
        let mut vocabulary: HashMap<String, u32> = HashMap::new();
        let mut counts: Vec<HashMap<u32, f32>> = Vec::with_capacity(items.len());
        for item in items {
            let mut tf: HashMap<u32, f32> = HashMap::new();
            for t in tokens(item) {
                let next = vocabulary.len() as u32;
                let id = *vocabulary.entry(t).or_insert(next);
                *tf.entry(id).or_default() += 1.0;
            }
            counts.push(tf);
        }
        let mut df = vec![0f32; vocabulary.len()];
        for tf in &counts {
            for &t in tf.keys() {
                df[t as usize] += 1.0;
            }
        }
        let n = items.len() as f32;
        let rows: Vec<SparseRow> = counts
            .into_iter()
            .map(|tf| {
                let mut row: SparseRow = tf
                    .into_iter()
                    .map(|(t, c)| (t, c * ((1.0 + n) / (1.0 + df[t as usize])).ln()))
                    .filter(|(_, w)| *w > 0.0)
                    .collect();
                row.sort_unstable_by_key(|(t, _)| *t);
                row
            })
            .collect();
        Content {
            knn: ItemKnn::from_neighbours(cosine_neighbours(&rows, vocabulary.len(), neighbours)),
        }
    }
}

impl crate::score::Scorer for Content {
    fn name(&self) -> &'static str {
        "content"
    }
    fn score(&self, user: Option<u32>, history: &[(u32, f32)], out: &mut [f32]) {
        self.knn.score(user, history, out);
    }
    fn items(&self) -> usize {
        self.knn.items()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(title: &str, category: &[&str], brand: &str) -> ItemContent {
        ItemContent {
            title: title.into(),
            category: category.iter().map(|s| s.to_string()).collect(),
            brand: Some(brand.into()),
            attributes: Vec::new(),
        }
    }

    #[test]
    fn chinese_titles_are_segmented() {
        let words = title_words("婴儿奶粉 1段 800g，新西兰进口");
        assert!(words.contains(&"奶粉".to_string()), "{words:?}");
        assert!(words.contains(&"进口".to_string()), "{words:?}");
        assert!(!words.iter().any(|w| w == "，"));
    }

    #[test]
    fn neighbours_follow_category_brand_and_title() {
        let items = vec![
            item("婴儿奶粉 1段", &["母婴", "奶粉"], "美素佳儿"),
            item("婴儿奶粉 2段", &["母婴", "奶粉"], "美素佳儿"),
            item("纸尿裤 L码", &["母婴", "尿裤"], "花王"),
            item("机械键盘", &["数码", "外设"], "罗技"),
        ];
        let content = Content::fit(&items, 3);
        let similar = content.knn.similar(0, 3);
        assert_eq!(similar[0].0, 1, "{similar:?}");
        assert!(
            similar.iter().all(|(i, _)| *i != 3),
            "nothing shared with the keyboard"
        );
    }
}
