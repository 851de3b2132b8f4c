//! The one place a tonic request becomes a handler call: the generated
//! adapters (`onestop_contracts::impl_*_service!`) route every RPC through
//! [`unary`] or [`server_streaming`], which hand the handler the verified
//! [`Caller`] and the decoded message and map its [`ApiError`] to the wire.

use std::future::Future;
use std::pin::Pin;

use futures_util::Stream;
use tonic::{Request, Response, Status};

use crate::auth::Caller;
use crate::error::ApiError;

/// What a server-streaming handler returns.
pub type RpcStream<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send + 'static>>;

/// Runs a unary handler with the caller the auth layer attached.
pub async fn unary<Req, Resp, F>(
    request: Request<Req>,
    handler: impl FnOnce(Caller, Req) -> F,
) -> Result<Response<Resp>, Status>
where
    F: Future<Output = Result<Resp, ApiError>>,
{
    let caller = Caller::of(&request)?;
    Ok(Response::new(handler(caller, request.into_inner()).await?))
}

/// Runs a server-streaming handler with the caller the auth layer attached.
pub async fn server_streaming<Req, Item, F>(
    request: Request<Req>,
    handler: impl FnOnce(Caller, Req) -> F,
) -> Result<Response<RpcStream<Item>>, Status>
where
    F: Future<Output = Result<RpcStream<Item>, ApiError>>,
{
    let caller = Caller::of(&request)?;
    Ok(Response::new(handler(caller, request.into_inner()).await?))
}
