//! hickory's request handler: checks the message (one query, opcode QUERY, EDNS version 0),
//! answers from the index, forwards what lies outside the cluster zones, and lets hickory encode
//! the response (it truncates to 512 bytes over UDP without EDNS, or to the client's EDNS
//! buffer, and sets TC).

use std::sync::{Arc, RwLock};

use hickory_proto::op::{Edns, Message, MessageType, Metadata, OpCode, Query, ResponseCode};
use hickory_proto::rr::{Record, RecordType};
use hickory_server::net::runtime::Time;
use hickory_server::net::xfer::Protocol;
use hickory_server::proto::op::{Header, HeaderCounts};
use hickory_server::server::{Request, RequestHandler, ResponseHandler, ResponseInfo};
use hickory_server::zone_handler::MessageResponseBuilder;

use crate::answer::{self, Outcome, Reply, Settings};
use crate::balance;
use crate::forward::Forwarder;
use crate::index::Index;

/// The EDNS buffer size advertised in answers is the client's, at least 512 (RFC 6891).
const MIN_PAYLOAD: u16 = 512;

pub(crate) struct Handler {
    pub index: Arc<RwLock<Index>>,
    pub settings: Settings,
    pub forwarder: Forwarder,
}

#[async_trait::async_trait]
impl RequestHandler for Handler {
    async fn handle_request<R: ResponseHandler, T: Time>(
        &self,
        request: &Request,
        response_handle: R,
    ) -> ResponseInfo {
        let edns = request.edns.as_ref().map(|asked| {
            let mut edns = Edns::new();
            edns.set_max_payload(asked.max_payload().max(MIN_PAYLOAD));
            edns.set_version(0);
            edns
        });
        let fail = |code| Failure {
            request,
            edns: edns.as_ref(),
            code,
        };
        if request.edns.as_ref().is_some_and(|e| e.version() > 0) {
            return fail(ResponseCode::BADVERS).send(response_handle).await;
        }
        if request.metadata.message_type != MessageType::Query {
            return fail(ResponseCode::FormErr).send(response_handle).await;
        }
        if request.metadata.op_code != OpCode::Query {
            return fail(ResponseCode::NotImp).send(response_handle).await;
        }
        let Ok(info) = request.request_info() else {
            return fail(ResponseCode::FormErr).send(response_handle).await;
        };
        let qname = info.query.original().name().clone();
        let qtype = info.query.query_type();
        let outcome = {
            let index = self.index.read().unwrap_or_else(|e| e.into_inner());
            answer::resolve(&index, &self.settings, &qname, qtype)
        };
        let tcp = request.protocol() == Protocol::Tcp;
        let reply = match outcome {
            Outcome::Answer(mut reply) => {
                if let Some(target) = reply.chase.take() {
                    self.chase(request.metadata.id, target, qtype, &mut reply).await;
                }
                reply
            }
            Outcome::Outside if self.forwarder.is_empty() => Reply::refused(),
            Outcome::FallThrough(reply) if self.forwarder.is_empty() => reply,
            Outcome::Outside | Outcome::FallThrough(_) => {
                return match self.forwarder.exchange(request.as_slice(), tcp).await {
                    Ok(upstream) => send_upstream(request, edns.as_ref(), upstream, response_handle).await,
                    Err(error) => {
                        tracing::debug!(%error, name = %qname, "forwarding failed");
                        fail(ResponseCode::ServFail).send(response_handle).await
                    }
                };
            }
        };
        send_reply(request, edns.as_ref(), reply, response_handle).await
    }
}

impl Handler {
    /// An ExternalName's target outside the cluster: its records of the asked type come from
    /// upstream and follow the CNAME (CoreDNS's `Lookup` in `plugin.A`).
    async fn chase(&self, id: u16, target: hickory_proto::rr::Name, qtype: RecordType, reply: &mut Reply) {
        if self.forwarder.is_empty() {
            return;
        }
        let mut query = Message::new(id, MessageType::Query, OpCode::Query);
        query.metadata.recursion_desired = true;
        query.add_query(Query::query(target, qtype));
        let Ok(bytes) = query.to_vec() else {
            return;
        };
        if let Ok(answer) = self.forwarder.exchange(&bytes, false).await {
            reply.answers.extend(answer.answers);
        }
    }
}

async fn send_reply<R: ResponseHandler>(
    request: &Request,
    edns: Option<&Edns>,
    reply: Reply,
    response_handle: R,
) -> ResponseInfo {
    let mut metadata = Metadata::response_from_request(&request.metadata);
    metadata.authoritative = reply.authoritative;
    metadata.response_code = reply.rcode;
    send(
        request,
        edns,
        metadata,
        [reply.answers, reply.authority, reply.additionals],
        response_handle,
    )
    .await
}

/// An upstream's answer, relayed with its flags and code under the client's id and EDNS size.
async fn send_upstream<R: ResponseHandler>(
    request: &Request,
    edns: Option<&Edns>,
    upstream: Message,
    response_handle: R,
) -> ResponseInfo {
    let mut metadata = upstream.metadata;
    metadata.id = request.metadata.id;
    metadata.truncation = false;
    send(
        request,
        edns,
        metadata,
        [upstream.answers, upstream.authorities, upstream.additionals],
        response_handle,
    )
    .await
}

async fn send<R: ResponseHandler>(
    request: &Request,
    edns: Option<&Edns>,
    metadata: Metadata,
    mut sections: [Vec<Record>; 3],
    mut response_handle: R,
) -> ResponseInfo {
    if metadata.response_code == ResponseCode::NoError {
        sections.iter_mut().for_each(balance::shuffle);
    }
    let [answers, authority, additionals] = &sections;
    let mut builder = MessageResponseBuilder::from_message_request(request);
    if let Some(edns) = edns {
        builder.edns(edns);
    }
    let response = builder.build(
        metadata,
        answers.iter(),
        authority.iter(),
        std::iter::empty(),
        additionals.iter(),
    );
    match response_handle.send_response(response).await {
        Ok(info) => info,
        Err(error) => {
            tracing::debug!(%error, "sending a DNS response failed");
            failed(&request.metadata)
        }
    }
}

/// An error answer without records.
struct Failure<'a> {
    request: &'a Request,
    edns: Option<&'a Edns>,
    code: ResponseCode,
}

impl Failure<'_> {
    async fn send<R: ResponseHandler>(self, response_handle: R) -> ResponseInfo {
        let mut metadata = Metadata::response_from_request(&self.request.metadata);
        metadata.response_code = self.code;
        send(
            self.request,
            self.edns,
            metadata,
            Default::default(),
            response_handle,
        )
        .await
    }
}

fn failed(request: &Metadata) -> ResponseInfo {
    let mut metadata = Metadata::response_from_request(request);
    metadata.response_code = ResponseCode::ServFail;
    ResponseInfo::from(Header {
        metadata,
        counts: HeaderCounts::default(),
    })
}
