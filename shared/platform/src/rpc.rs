//! The one place a tonic request becomes a handler call: the generated
//! adapters (`onestop_contracts::impl_*_service!`) route every RPC through
//! [`unary`] or [`server_streaming`], which hand the handler the verified
//! [`Caller`] and the decoded message, run it as that caller (so the events
//! it appends and the reads it audits name who made them, see
//! [`crate::audit`]) and map its [`ApiError`] to the wire.

use std::future::Future;
use std::pin::Pin;

use futures_util::Stream;
use tonic::{Request, Response, Status};

use crate::audit::{self, RequestContext};
use crate::auth::Caller;
use crate::error::ApiError;

/// What a server-streaming handler returns.
pub type RpcStream<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send + 'static>>;

/// Runs a unary handler of `method` ("package.Service/Method") with the
/// caller the auth layer attached.
pub async fn unary<Req, Resp, F>(
    request: Request<Req>,
    method: &'static str,
    handler: impl FnOnce(Caller, Req) -> F,
) -> Result<Response<Resp>, Status>
where
    F: Future<Output = Result<Resp, ApiError>>,
{
    let caller = Caller::of(&request)?;
    let context = RequestContext::new(&caller, method);
    let response = audit::within(context, handler(caller, request.into_inner())).await?;
    Ok(Response::new(response))
}

/// Runs a server-streaming handler of `method` with the caller the auth
/// layer attached.
pub async fn server_streaming<Req, Item, F>(
    request: Request<Req>,
    method: &'static str,
    handler: impl FnOnce(Caller, Req) -> F,
) -> Result<Response<RpcStream<Item>>, Status>
where
    F: Future<Output = Result<RpcStream<Item>, ApiError>>,
{
    let caller = Caller::of(&request)?;
    let context = RequestContext::new(&caller, method);
    let stream = audit::within(context, handler(caller, request.into_inner())).await?;
    Ok(Response::new(stream))
}
