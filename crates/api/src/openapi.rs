//! The OpenAPI document, generated from the handlers' annotations. `docs/openapi.json` is a
//! committed copy; a test fails when it drifts.

use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

struct ApiKeyAuth;

impl Modify for ApiKeyAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "api_key",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("sg_<id>_<secret>")
                    .description(Some(
                        "An API key made by `shopgrowth keys create` or POST /api/v1/api-keys.",
                    ))
                    .build(),
            ),
        );
    }
}

#[derive(OpenApi)]
#[openapi(
    info(title = "shopgrowth", description = "Growth and precision-operations platform for e-commerce."),
    paths(
        crate::routes::health,
        crate::routes::ingest::post_event,
        crate::routes::ingest::post_events,
        crate::routes::ingest::post_users,
        crate::routes::ingest::post_products,
        crate::routes::ingest::post_stores,
        crate::routes::ingest::post_order,
        crate::routes::ingest::post_orders,
        crate::routes::ingest::post_refund,
        crate::routes::customers::get_customer,
        crate::routes::customers::identify,
        crate::routes::customers::merge,
        crate::routes::customers::undo_link,
        crate::routes::customers::erase,
        crate::routes::audience::count,
        crate::routes::audience::put_segment,
        crate::routes::audience::list_segments,
        crate::routes::audience::get_segment,
        crate::routes::audience::delete_segment,
        crate::routes::audience::members,
        crate::routes::audience::export,
        crate::routes::audience::take_snapshot,
        crate::routes::audience::snapshots,
        crate::routes::audience::list_tags,
        crate::routes::audience::put_tag,
        crate::routes::audience::delete_tag,
        crate::routes::audience::profile,
        crate::routes::audience::tag_history,
        crate::routes::audience::discover,
        crate::routes::audience::rebuild,
        crate::routes::pricing::quote,
        crate::routes::pricing::checkout,
        crate::routes::pricing::cart_coupons,
        crate::routes::pricing::validate_coupon,
        crate::routes::pricing::refund_share,
        crate::routes::budgets::set_limit,
        crate::routes::budgets::get,
        crate::routes::budgets::spend,
        crate::routes::budgets::revert,
        crate::routes::groups::create_deal,
        crate::routes::groups::list_deals,
        crate::routes::groups::open,
        crate::routes::groups::join,
        crate::routes::groups::get,
        crate::routes::red_packets::create,
        crate::routes::red_packets::list,
        crate::routes::red_packets::get,
        crate::routes::red_packets::claim,
        crate::routes::red_packets::help,
        crate::routes::red_packets::create_rain,
        crate::routes::red_packets::get_rain,
        crate::routes::red_packets::claim_rain,
        crate::routes::recommend::recommendations,
        crate::routes::recommend::model,
        crate::routes::recommend::retrain,
        crate::routes::flash::create,
        crate::routes::flash::list,
        crate::routes::flash::get,
        crate::routes::flash::reserve,
        crate::routes::flash::confirm,
        crate::routes::flash::release,
        crate::routes::campaigns::create,
        crate::routes::campaigns::list,
        crate::routes::campaigns::get,
        crate::routes::campaigns::edit,
        crate::routes::campaigns::transition,
        crate::routes::coupons::create_template,
        crate::routes::coupons::list_templates,
        crate::routes::coupons::get_template,
        crate::routes::coupons::claim,
        crate::routes::coupons::issue,
        crate::routes::coupons::get_coupon,
        crate::routes::coupons::reserve,
        crate::routes::coupons::centre,
        crate::routes::coupons::redeem,
        crate::routes::coupons::release,
        crate::routes::trail::list,
        crate::routes::trail::feed,
        crate::routes::trail::report,
        crate::routes::admin::create_key,
        crate::routes::admin::list_keys,
        crate::routes::admin::revoke_key,
        crate::routes::admin::stats,
        crate::routes::admin::openapi,
    ),
    modifiers(&ApiKeyAuth)
)]
pub struct ApiDoc;

pub fn document() -> utoipa::openapi::OpenApi {
    ApiDoc::openapi()
}

pub fn document_json() -> String {
    document().to_pretty_json().unwrap_or_default()
}
