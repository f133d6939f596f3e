//! Request body decoding of the dispatcher (`Dispatcher::invoke` / `browse_stream`): the
//! bodies of every implemented method, decoded with serde_json exactly as `dispatcher::decode`
//! does (an all-whitespace body is `null`). Byte 0 picks the method's body type; the rest is
//! the body. A body that decodes must serialize and decode again to the same model, since the
//! twin API forwards these models.
#![no_main]

use iiot_module::api::{
    BrowseFirstRequestModel, BrowseNextRequestModel, BrowsePathRequestModel,
    BrowseStreamRequestModel, DiscoveryCancelRequestModel, DiscoveryRequestModel, EndpointModel,
    MethodCallRequestModel, MethodMetadataRequestModel, ReadRequestModel, RequestEnvelope,
    RequestHeaderModel, ServerEndpointQueryModel, ServerRegistrationRequestModel,
    TestConnectionRequestModel, ValueReadRequestModel, ValueWriteRequestModel, WriteRequestModel,
};
use libfuzzer_sys::fuzz_target;
use serde::de::DeserializeOwned;
use serde::Serialize;

fn check<T: DeserializeOwned + Serialize + PartialEq + std::fmt::Debug>(body: &[u8]) {
    let body = if body.iter().all(u8::is_ascii_whitespace) {
        b"null".as_slice()
    } else {
        body
    };
    let decoded = serde_json::from_slice::<T>(body);
    iiot_fuzz::trace!("{decoded:?}");
    let Ok(model) = decoded else {
        return;
    };
    let written = serde_json::to_vec(&model).expect("a decoded model serializes");
    match serde_json::from_slice::<T>(&written) {
        Ok(again) => assert_eq!(
            again,
            model,
            "re-encoded as {}",
            String::from_utf8_lossy(&written)
        ),
        Err(e) => panic!(
            "{model:?} re-encoded as {} does not decode: {e}",
            String::from_utf8_lossy(&written)
        ),
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&which, body)) = data.split_first() else {
        return;
    };
    match which % 17 {
        0 => check::<RequestEnvelope<ValueReadRequestModel>>(body),
        1 => check::<RequestEnvelope<ReadRequestModel>>(body),
        2 => check::<RequestEnvelope<ValueWriteRequestModel>>(body),
        3 => check::<RequestEnvelope<WriteRequestModel>>(body),
        4 => check::<RequestEnvelope<BrowseFirstRequestModel>>(body),
        5 => check::<RequestEnvelope<BrowseNextRequestModel>>(body),
        6 => check::<RequestEnvelope<BrowsePathRequestModel>>(body),
        7 => check::<RequestEnvelope<MethodMetadataRequestModel>>(body),
        8 => check::<RequestEnvelope<MethodCallRequestModel>>(body),
        9 => check::<RequestEnvelope<Option<RequestHeaderModel>>>(body),
        10 => check::<EndpointModel>(body),
        11 => check::<RequestEnvelope<Option<TestConnectionRequestModel>>>(body),
        12 => check::<ServerEndpointQueryModel>(body),
        13 => check::<ServerRegistrationRequestModel>(body),
        14 => check::<DiscoveryRequestModel>(body),
        15 => check::<DiscoveryCancelRequestModel>(body),
        _ => check::<RequestEnvelope<BrowseStreamRequestModel>>(body),
    }
});
