//! The OneStop contracts: every message, client and server generated from
//! `proto/`, the descriptor set the servers publish over reflection, the
//! event types each feed carries, and one adapter macro per service
//! (`impl_intake_service!(IntakeApi)`, ...) that implements the generated
//! tonic trait by forwarding each RPC to a handler method
//! `async fn rpc(&self, caller: Caller, request: XRequest) -> ApiResult<X>`
//! through `onestop_platform::rpc`.

// Everything below is generated; its shape follows the protos, not lints.
#![allow(clippy::all)]

/// Encoded `FileDescriptorSet` of every OneStop proto and its imports.
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/onestop_descriptor.bin"));

pub mod common {
    pub mod v1 {
        tonic::include_proto!("onestop.common.v1");
    }
}

pub mod events {
    pub mod v1 {
        tonic::include_proto!("onestop.events.v1");
    }
}

pub mod audit {
    pub mod v1 {
        tonic::include_proto!("onestop.audit.v1");
    }
}

pub mod intake {
    pub mod v1 {
        tonic::include_proto!("onestop.intake.v1");
    }
}

pub mod mentoring {
    pub mod v1 {
        tonic::include_proto!("onestop.mentoring.v1");
    }
}

pub mod buyers {
    pub mod v1 {
        tonic::include_proto!("onestop.buyers.v1");
    }
}

pub mod referral {
    pub mod v1 {
        tonic::include_proto!("onestop.referral.v1");
    }
}

pub mod insights {
    pub mod v1 {
        tonic::include_proto!("onestop.insights.v1");
    }
}

pub mod event_types;

mod adapters {
    include!(concat!(env!("OUT_DIR"), "/adapters.rs"));
}

/// Type URL of a message packed into `google.protobuf.Any`.
pub fn type_url<M: prost::Name>() -> String {
    M::type_url()
}

/// Bytes a call's encoder sets aside before its first message; it grows
/// when a larger message needs more.
const ENCODE_BUFFER: usize = 1024;
/// Encoded bytes a streaming call gathers before handing them to HTTP/2
/// (tonic's default).
const YIELD_THRESHOLD: usize = 32 * 1024;

/// The prost codec every generated client and server uses, with a smaller
/// first encode buffer than tonic's 8 KiB: a server-streaming call keeps
/// its buffer for as long as it is open, and a replica serving ten
/// thousand Watch streams would hold 80 MiB of mostly empty buffers for
/// events of a few hundred bytes.
#[derive(Debug, Clone)]
pub struct Codec<T, U>(std::marker::PhantomData<(T, U)>);

impl<T, U> Default for Codec<T, U> {
    fn default() -> Self {
        Self(std::marker::PhantomData)
    }
}

impl<T, U> tonic::codec::Codec for Codec<T, U>
where
    T: prost::Message + Send + 'static,
    U: prost::Message + Default + Send + 'static,
{
    type Encode = T;
    type Decode = U;
    type Encoder = tonic_prost::ProstEncoder<T>;
    type Decoder = tonic_prost::ProstDecoder<U>;

    fn encoder(&mut self) -> Self::Encoder {
        tonic_prost::ProstEncoder::new(tonic::codec::BufferSettings::new(
            ENCODE_BUFFER,
            YIELD_THRESHOLD,
        ))
    }

    fn decoder(&mut self) -> Self::Decoder {
        tonic_prost::ProstCodec::<T, U>::raw_decoder(tonic::codec::BufferSettings::default())
    }
}
