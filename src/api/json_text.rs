//! A JSON answer written as ready text, documented with the schema of `T`.
//!
//! poem-openapi's `Json<T>` turns `T` into a `serde_json::Value` tree and then
//! into text. The cards list is assembled from JSON text the store keeps ready
//! (`store::views`), so it is answered through this payload instead: same
//! content type and same schema in the spec, no tree built.

use std::marker::PhantomData;

use poem::Response;
use poem::web::IntoResponse;
use poem_openapi::ApiResponse;
use poem_openapi::payload::Payload;
use poem_openapi::registry::{MetaMediaType, MetaResponse, MetaResponses, MetaSchemaRef, Registry};
use poem_openapi::types::Type;

/// JSON text that is a valid `T`; only build it from text that serializes one.
pub struct JsonText<T> {
    text: bytes::Bytes,
    of: PhantomData<fn() -> T>,
}

impl<T> JsonText<T> {
    pub fn new(text: impl Into<bytes::Bytes>) -> Self {
        JsonText {
            text: text.into(),
            of: PhantomData,
        }
    }
}

impl<T: Type> Payload for JsonText<T> {
    const CONTENT_TYPE: &'static str = "application/json; charset=utf-8";

    fn schema_ref() -> MetaSchemaRef {
        T::schema_ref()
    }

    fn register(registry: &mut Registry) {
        T::register(registry);
    }
}

impl<T: Type> IntoResponse for JsonText<T> {
    fn into_response(self) -> Response {
        Response::builder()
            .content_type(Self::CONTENT_TYPE)
            .body(self.text)
    }
}

impl<T: Type> ApiResponse for JsonText<T> {
    fn meta() -> MetaResponses {
        MetaResponses {
            responses: vec![MetaResponse {
                description: "",
                status: Some(200),
                status_range: None,
                content: vec![MetaMediaType {
                    content_type: Self::CONTENT_TYPE,
                    schema: Self::schema_ref(),
                }],
                headers: vec![],
            }],
        }
    }

    fn register(registry: &mut Registry) {
        T::register(registry);
    }
}
