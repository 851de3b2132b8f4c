//! An in-process OTLP trace receiver: the suite's services export to it,
//! and tests read back which service sent which span in which trace.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use tokio_stream::wrappers::TcpListenerStream;
use tonic::{Request, Response, Status};

#[derive(Debug, Clone)]
pub struct ReceivedSpan {
    pub service: String,
    pub name: String,
    pub trace_id: Vec<u8>,
    /// The whole span as received (attributes, events, status), to search.
    pub text: String,
}

#[derive(Clone, Default)]
pub struct Receiver {
    spans: Arc<Mutex<Vec<ReceivedSpan>>>,
}

impl Receiver {
    /// Serves OTLP/gRPC on a loopback port until the test ends.
    pub async fn start() -> (SocketAddr, Self) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind OTLP receiver");
        let addr = listener.local_addr().expect("receiver address");
        let receiver = Self::default();
        let service = TraceServiceServer::new(receiver.clone());
        tokio::spawn(async move {
            tonic::transport::Server::builder()
                .add_service(service)
                .serve_with_incoming(TcpListenerStream::new(listener))
                .await
        });
        (addr, receiver)
    }

    pub fn spans(&self) -> Vec<ReceivedSpan> {
        self.spans.lock().expect("span list").clone()
    }
}

#[tonic::async_trait]
impl TraceService for Receiver {
    async fn export(
        &self,
        request: Request<ExportTraceServiceRequest>,
    ) -> Result<Response<ExportTraceServiceResponse>, Status> {
        let mut received = Vec::new();
        for resource_spans in request.into_inner().resource_spans {
            let service = resource_spans
                .resource
                .iter()
                .flat_map(|resource| &resource.attributes)
                .find(|attribute| attribute.key == "service.name")
                .and_then(|attribute| attribute.value.as_ref())
                .and_then(|value| match &value.value {
                    Some(Value::StringValue(name)) => Some(name.clone()),
                    _ => None,
                })
                .unwrap_or_default();
            for scope_spans in resource_spans.scope_spans {
                for span in scope_spans.spans {
                    let text = format!("{span:?}");
                    received.push(ReceivedSpan {
                        service: service.clone(),
                        name: span.name,
                        trace_id: span.trace_id,
                        text,
                    });
                }
            }
        }
        self.spans.lock().expect("span list").extend(received);
        Ok(Response::new(ExportTraceServiceResponse {
            partial_success: None,
        }))
    }
}
