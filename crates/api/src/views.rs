//! Response bodies that differ from the stored model: batch results, the customer view with
//! personal data masked unless the caller may see it.

use serde::Serialize;
use shopgrowth_core::model::{Event, Order};
use shopgrowth_core::pii::{mask_email, mask_name, mask_phone, PiiCipher};
use shopgrowth_core::time::Timestamp;
use shopgrowth_core::FieldError;
use shopgrowth_store::records::{Customer, IdentityLink, StoredOrder};
use utoipa::ToSchema;

/// What a batch did: which items were stored, which were already there, which were refused.
#[derive(Debug, Default, Serialize, ToSchema)]
pub struct BatchResult {
    pub received: usize,
    pub inserted: usize,
    pub updated: usize,
    /// Items whose id was already stored; nothing changed for them.
    pub duplicates: Vec<ItemRef>,
    /// Items refused, each with every bad field and the reason.
    pub rejected: Vec<RejectedItem>,
    /// Users merged into an existing customer with the same phone.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub merged: Vec<MergedItem>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ItemRef {
    pub index: usize,
    pub id: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RejectedItem {
    pub index: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    pub errors: Vec<FieldError>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct MergedItem {
    pub index: usize,
    pub id: String,
    pub merged_into: String,
}

/// The result of one write of one item.
#[derive(Debug, Serialize, ToSchema)]
pub struct ItemResult {
    pub id: String,
    /// `inserted`, `updated`, `duplicate`, or `applied` (refunds).
    pub status: String,
}

/// A refund as written, and what it gave back of the promotions on its order.
#[derive(Debug, Serialize, ToSchema)]
pub struct RefundResult {
    pub id: String,
    /// `applied`, or `duplicate` for a refund id seen before.
    pub status: String,
    /// For an order checked out here (`POST /api/v1/pricing/checkout`): each promotion's share
    /// of the discount the refunded units carried, given back to the budget it was spent from
    /// (empty when none was, or when it was given back before).
    pub promotions_returned: Vec<ReturnedShare>,
}

/// One promotion's share of a refund, given back to its budget.
#[derive(Debug, Serialize, ToSchema)]
pub struct ReturnedShare {
    /// `campaign` or `coupon`.
    pub promotion_type: String,
    /// The campaign's id, or the coupon's template id.
    pub promotion_id: String,
    /// The trail's subject: the campaign's budget spend key, or the coupon's code.
    pub subject: String,
    /// Minor units.
    pub amount: i64,
}

/// An order as stored, with what has been refunded.
#[derive(Debug, Serialize, ToSchema)]
pub struct OrderView {
    #[serde(flatten)]
    pub order: Order,
    pub refunded_amount: i64,
    /// `api` or `import`.
    pub source: String,
}

impl From<StoredOrder> for OrderView {
    fn from(s: StoredOrder) -> Self {
        OrderView {
            order: s.order,
            refunded_amount: s.refunded_amount,
            source: s.source,
        }
    }
}

/// A customer after ID-Mapping. Phone, email, name and birthday are masked unless the API key
/// has the `pii` scope.
#[derive(Debug, Serialize, ToSchema)]
pub struct CustomerView {
    /// The canonical user id of the customer.
    pub id: String,
    /// The id that was asked for (may be a user merged into `id`).
    pub requested_id: String,
    pub merged_user_ids: Vec<String>,
    pub device_ids: Vec<String>,
    pub pii_masked: bool,
    pub phone: Option<String>,
    pub email: Option<String>,
    pub name: Option<String>,
    pub birthday: Option<String>,
    pub gender: Option<String>,
    pub city: Option<String>,
    pub city_tier: Option<String>,
    pub registration_channel: Option<String>,
    pub registered_at: Option<Timestamp>,
    #[schema(value_type = Object)]
    pub attributes: serde_json::Map<String, serde_json::Value>,
    pub created_at: Timestamp,
    /// Set when the customer's personal data was erased.
    pub erased_at: Option<Timestamp>,
    pub recent_events: Vec<Event>,
    pub recent_orders: Vec<OrderView>,
    pub identity_links: Vec<IdentityLink>,
}

impl CustomerView {
    pub fn build(
        customer: Customer,
        events: Vec<Event>,
        orders: Vec<OrderView>,
        links: Vec<IdentityLink>,
        cipher: &PiiCipher,
        clear: bool,
    ) -> Self {
        let u = &customer.canonical.sealed;
        let open = |enc: &Option<Vec<u8>>, mask: fn(&str) -> String| -> Option<String> {
            let text = match enc.as_deref().map(|e| cipher.decrypt(e)) {
                Some(Ok(secret)) => secret.expose().clone(),
                Some(Err(_)) => return Some("<undecryptable>".into()),
                None => return None,
            };
            Some(if clear { text } else { mask(&text) })
        };
        CustomerView {
            id: u.id.clone(),
            requested_id: customer.requested_id.0.clone(),
            merged_user_ids: customer
                .member_ids
                .iter()
                .skip(1)
                .map(|m| m.0.clone())
                .collect(),
            device_ids: customer.device_ids.iter().map(|d| d.0.clone()).collect(),
            pii_masked: !clear,
            phone: open(&u.phone_enc, mask_phone),
            email: open(&u.email_enc, mask_email),
            name: open(&u.name_enc, mask_name),
            birthday: u.birthday.map(|b| {
                if clear {
                    b.to_string()
                } else {
                    format!("{}-**-**", b.format("%Y"))
                }
            }),
            gender: u.gender.map(|g| g.as_str().to_owned()),
            city: u.city.clone(),
            city_tier: u.city_tier.map(|t| t.as_str().to_owned()),
            registration_channel: u.registration_channel.map(|c| c.as_str().to_owned()),
            registered_at: u.registered_at.map(Timestamp),
            attributes: u.attributes.clone(),
            created_at: Timestamp(customer.canonical.created_at),
            erased_at: customer.canonical.erased_at.map(Timestamp),
            recent_events: events,
            recent_orders: orders,
            identity_links: links,
        }
    }
}
