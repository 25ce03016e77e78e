//! The [`Store`] backend for a real etcd v3 cluster.
//!
//! The trait was modelled on etcd, so this is a thin mapping: `range` is etcd's Range, `txn` its
//! Txn (puts and deletes ask for the previous value), `watch` one etcd watch with `prev_kv`, and
//! compaction and leases are etcd's own. What this crate adds is what etcd's client does not:
//!
//! - A deadline on every request. etcd-client has none by default, so an endpoint that accepts
//!   connections but does not answer (a hung etcd, a black-holed network) would stall callers;
//!   here they get [`StoreError::Unavailable`] instead, and may retry.
//! - A `watch` that returns only once etcd has confirmed the watch (its `created` response), so
//!   a write made after `watch()` returns is always seen.
//! - etcd's errors translated into [`StoreError`] (see `map_error`), so callers handle
//!   "compacted", "future revision" and "lease not found" the same way for every backend.

use std::collections::VecDeque;
use std::fmt;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use etcd_client::{
    Client, ConnectOptions, DeleteOptions, EventType, GetOptions, KvClient, LeaseClient, PutOptions, TxnOp,
    TxnOpResponse, WatchClient, WatchOptions,
};
use futures::StreamExt;
use store::{
    Compare, CompareOp, CompareTarget, Event, EventKind, KeyRange, KeyValue, LeaseId, Op, OpResponse,
    RangeRequest, RangeResponse, Result, Revision, Store, StoreError, Txn, TxnResponse, WatchStream,
};

/// How long one request (or the creation of a watch) may take before it counts as unavailable.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// How long opening a TCP connection to an endpoint may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// HTTP/2 pings on open streams find a dead connection under a long-lived watch. etcd's server
/// sends GOAWAY to clients that ping more often than every 5 s (`--grpc-keepalive-min-time`) or
/// while no stream is open, so ping every 10 s and only while streams are open.
const KEEP_ALIVE_INTERVAL: Duration = Duration::from_secs(10);
const KEEP_ALIVE_TIMEOUT: Duration = Duration::from_secs(5);
/// tonic's default 4 MiB limit is below what etcd may send: a list of many objects, or a watch
/// response batching up to 1000 revisions. etcd itself caps only requests (1.5 MiB by default).
const MAX_RESPONSE_BYTES: usize = i32::MAX as usize;

/// A [`Store`] over an etcd v3 cluster (plain HTTP endpoints).
#[derive(Clone)]
pub struct EtcdStore {
    kv: KvClient,
    watch: WatchClient,
    lease: LeaseClient,
    /// The endpoints, comma-separated, for error messages.
    endpoints: String,
    request_timeout: Duration,
}

impl fmt::Debug for EtcdStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EtcdStore")
            .field("endpoints", &self.endpoints)
            .finish_non_exhaustive()
    }
}

impl EtcdStore {
    /// Connects to etcd at `endpoints` (`http://host:port`) and checks once that the cluster
    /// answers, so a wrong address fails at start-up with [`StoreError::Unavailable`] instead of
    /// at the first request.
    pub async fn connect(endpoints: &[String]) -> Result<Self> {
        let joined = endpoints.join(",");
        // Transport failures name the endpoints; anything else (a bad URI) stays what it is.
        let failed = |err: StoreError| match err {
            StoreError::Unavailable(reason) => {
                StoreError::Unavailable(format!("cannot reach etcd at {joined}: {reason}"))
            }
            other => other,
        };
        let no_answer = || {
            failed(StoreError::Unavailable(format!(
                "no answer within {REQUEST_TIMEOUT:?}"
            )))
        };
        if endpoints.is_empty() {
            return Err(StoreError::InvalidArgument("no etcd endpoints given".into()));
        }
        let options = ConnectOptions::new()
            .with_connect_timeout(CONNECT_TIMEOUT)
            .with_keep_alive(KEEP_ALIVE_INTERVAL, KEEP_ALIVE_TIMEOUT)
            .with_keep_alive_while_idle(false);
        let client =
            match tokio::time::timeout(REQUEST_TIMEOUT, Client::connect(endpoints, Some(options))).await {
                Ok(Ok(client)) => client,
                Ok(Err(e)) => return Err(failed(map_error(e, ErrorContext::default()))),
                Err(_) => return Err(no_answer()),
            };
        let store = EtcdStore {
            kv: client.kv_client().max_decoding_message_size(MAX_RESPONSE_BYTES),
            watch: client
                .watch_client()
                .max_decoding_message_size(MAX_RESPONSE_BYTES),
            lease: client.lease_client(),
            endpoints: joined.clone(),
            request_timeout: REQUEST_TIMEOUT,
        };
        let mut kv = store.kv.clone();
        let probe = kv.get(vec![0u8], Some(GetOptions::new().with_count_only()));
        match tokio::time::timeout(REQUEST_TIMEOUT, probe).await {
            Ok(Ok(_)) => Ok(store),
            Ok(Err(e)) => Err(failed(map_error(e, ErrorContext::default()))),
            Err(_) => Err(no_answer()),
        }
    }

    /// Runs one etcd request under the request deadline, translating its error.
    async fn call<T>(
        &self,
        request: impl Future<Output = Result<T, etcd_client::Error>>,
        context: ErrorContext,
    ) -> Result<T> {
        match tokio::time::timeout(self.request_timeout, request).await {
            Ok(result) => result.map_err(|e| map_error(e, context)),
            Err(_) => Err(self.timed_out()),
        }
    }

    fn timed_out(&self) -> StoreError {
        StoreError::Unavailable(format!(
            "no answer from etcd at {} within {:?}",
            self.endpoints, self.request_timeout
        ))
    }

    /// etcd's "future revision" error does not say what the current revision is; ask.
    async fn with_current_revision(&self, err: StoreError) -> StoreError {
        match err {
            StoreError::FutureRevision { requested, .. } => match self.current_revision().await {
                Ok(current) => StoreError::FutureRevision { requested, current },
                Err(e) => e,
            },
            other => other,
        }
    }
}

#[async_trait]
impl Store for EtcdStore {
    fn backend(&self) -> &'static str {
        "etcd"
    }

    async fn range(&self, req: RangeRequest) -> Result<RangeResponse> {
        let (key, end) = etcd_range(&req.range);
        let mut options = GetOptions::new();
        if !end.is_empty() {
            options = options.with_range(end);
        }
        if let Some(revision) = req.revision {
            options = options.with_revision(revision);
        }
        // etcd reads limit 0 as "no limit"; the trait means "no keys", which a count gives.
        let count_only = req.count_only || req.limit == Some(0);
        if let Some(limit) = req.limit.filter(|&l| l > 0) {
            options = options.with_limit(i64::try_from(limit).unwrap_or(i64::MAX));
        }
        if count_only {
            options = options.with_count_only();
        }
        let context = ErrorContext::revision(req.revision);
        let mut resp = match self.call(self.kv.clone().get(key, Some(options)), context).await {
            Ok(resp) => resp,
            Err(e) => return Err(self.with_current_revision(e).await),
        };
        let more = if req.limit == Some(0) {
            resp.count() > 0
        } else {
            resp.more()
        };
        Ok(RangeResponse {
            count: resp.count(),
            more,
            revision: header_revision(resp.header()),
            kvs: resp.take_kvs().into_iter().map(convert_kv).collect(),
        })
    }

    async fn txn(&self, txn: Txn) -> Result<TxnResponse> {
        txn.validate()?;
        // Only puts name a lease; if etcd says "lease not found", it is one of theirs.
        let lease = txn.success.iter().chain(&txn.failure).find_map(|op| match op {
            Op::Put { lease, .. } => *lease,
            _ => None,
        });
        let request = etcd_client::Txn::new()
            .when(txn.compare.iter().map(etcd_compare).collect::<Vec<_>>())
            .and_then(txn.success.iter().map(etcd_op).collect::<Vec<_>>())
            .or_else(txn.failure.iter().map(etcd_op).collect::<Vec<_>>());
        let context = ErrorContext {
            lease,
            revision: None,
        };
        let resp = self.call(self.kv.clone().txn(request), context).await?;
        let responses = resp
            .op_responses()
            .into_iter()
            .map(|op| match op {
                TxnOpResponse::Put(mut put) => OpResponse::Put {
                    prev: put.take_prev_key().map(convert_kv),
                },
                TxnOpResponse::Delete(mut delete) => OpResponse::Delete {
                    prev: delete.take_prev_kvs().into_iter().next().map(convert_kv),
                },
                TxnOpResponse::Get(mut get) => OpResponse::Get {
                    kv: get.take_kvs().into_iter().next().map(convert_kv),
                },
                // We never send nested transactions.
                TxnOpResponse::Txn(_) => unreachable!("nested txn response to a flat txn"),
            })
            .collect();
        Ok(TxnResponse {
            succeeded: resp.succeeded(),
            revision: header_revision(resp.header()),
            responses,
        })
    }

    async fn watch(&self, range: KeyRange, after: Revision) -> Result<WatchStream> {
        let start = after.max(0) + 1;
        let (key, end) = etcd_range(&range);
        let mut options = WatchOptions::new().with_start_revision(start).with_prev_key();
        if !end.is_empty() {
            options = options.with_range(end);
        }
        let mut state = WatchState {
            stream: None,
            pending: VecDeque::new(),
            finished: false,
            start,
        };
        let mut watch_client = self.watch.clone();
        // Open the stream and wait for etcd's "created": from then on etcd sends every event
        // after `after`, so nothing written after we return can be missed.
        let created = async {
            let mut stream = watch_client
                .watch(key, Some(options))
                .await
                .map_err(|e| map_error(e, ErrorContext::default()))?;
            loop {
                match stream.message().await {
                    Ok(Some(resp)) => {
                        let created = resp.created();
                        state.absorb(&resp);
                        if created || state.finished {
                            return Ok(stream);
                        }
                    }
                    Ok(None) => {
                        return Err(StoreError::Unavailable(
                            "etcd closed the watch before creating it".into(),
                        ));
                    }
                    Err(e) => return Err(map_error(e, ErrorContext::default())),
                }
            }
        };
        let stream = match tokio::time::timeout(self.request_timeout, created).await {
            Ok(result) => result?,
            Err(_) => return Err(self.timed_out()),
        };
        state.stream = Some(stream);
        Ok(futures::stream::unfold(state, WatchState::next).boxed())
    }

    async fn compact(&self, revision: Revision) -> Result<()> {
        let context = ErrorContext::revision(revision);
        match self.call(self.kv.clone().compact(revision, None), context).await {
            Ok(_) => Ok(()),
            Err(e) => Err(self.with_current_revision(e).await),
        }
    }

    async fn current_revision(&self) -> Result<Revision> {
        // The cheapest request with a response header: count one (absent) key.
        let options = GetOptions::new().with_count_only();
        let resp = self
            .call(
                self.kv.clone().get(vec![0u8], Some(options)),
                ErrorContext::default(),
            )
            .await?;
        Ok(header_revision(resp.header()))
    }

    async fn grant_lease(&self, ttl_seconds: i64) -> Result<LeaseId> {
        let resp = self
            .call(
                self.lease.clone().grant(ttl_seconds, None),
                ErrorContext::default(),
            )
            .await?;
        Ok(resp.id())
    }

    async fn keep_alive(&self, lease: LeaseId) -> Result<i64> {
        let context = ErrorContext::lease(lease);
        let mut client = self.lease.clone();
        // etcd-client's keep_alive() already renews once but keeps that response to itself (and
        // fails with "lease not found" for a TTL of 0); a second renewal on the same stream
        // reports the TTL.
        let renew = async move {
            let (mut keeper, mut responses) = client.keep_alive(lease).await?;
            keeper.keep_alive().await?;
            responses.message().await
        };
        match self.call(renew, context).await? {
            Some(resp) if resp.ttl() > 0 => Ok(resp.ttl()),
            Some(_) => Err(StoreError::LeaseNotFound(lease)),
            None => Err(StoreError::Unavailable(
                "etcd closed the lease keep-alive stream".into(),
            )),
        }
    }

    async fn revoke_lease(&self, lease: LeaseId) -> Result<()> {
        let context = ErrorContext::lease(lease);
        self.call(self.lease.clone().revoke(lease), context).await?;
        Ok(())
    }
}

/// A watch being read: etcd's response stream flattened into single events.
struct WatchState {
    /// Also holds the request side open: etcd keeps a watch only while its stream lives.
    stream: Option<etcd_client::WatchStream>,
    pending: VecDeque<Result<Event>>,
    /// Set after the terminal error is queued; the stream ends once `pending` drains.
    finished: bool,
    /// The watch's start revision (`after + 1`), reported when it was compacted.
    start: Revision,
}

impl WatchState {
    async fn next(mut self) -> Option<(Result<Event>, Self)> {
        loop {
            if let Some(item) = self.pending.pop_front() {
                return Some((item, self));
            }
            if self.finished {
                return None;
            }
            let stream = self.stream.as_mut()?;
            match stream.message().await {
                Ok(Some(resp)) => self.absorb(&resp),
                Ok(None) => self.fail(StoreError::Unavailable("etcd ended the watch stream".into())),
                Err(e) => self.fail(map_error(e, ErrorContext::default())),
            }
        }
    }

    /// Queues the events of one response, or the error that ends the watch.
    fn absorb(&mut self, resp: &etcd_client::WatchResponse) {
        if resp.compact_revision() != 0 {
            let compact_revision = Some(resp.compact_revision());
            return self.fail(StoreError::Compacted {
                requested: self.start,
                compact_revision,
            });
        }
        for event in resp.events() {
            let Some(kv) = event.kv() else { continue };
            let kind = match event.event_type() {
                EventType::Put => EventKind::Put,
                EventType::Delete => EventKind::Delete,
            };
            self.pending.push_back(Ok(Event {
                kind,
                kv: convert_kv(kv.clone()),
                prev_kv: event.prev_kv().cloned().map(convert_kv),
            }));
        }
        if resp.canceled() {
            let reason = resp.cancel_reason();
            self.fail(StoreError::Unavailable(format!(
                "etcd canceled the watch: {reason}"
            )));
        }
    }

    fn fail(&mut self, err: StoreError) {
        tracing::debug!(error = %err, start = self.start, "etcd watch ended");
        self.pending.push_back(Err(err));
        self.finished = true;
        // Drop the stream now: etcd forgets the watch.
        self.stream = None;
    }
}

/// What a request was about, for naming it in a translated error.
#[derive(Clone, Copy, Debug, Default)]
struct ErrorContext {
    /// The revision the request asked for (range at a revision, compact).
    revision: Option<Revision>,
    /// The lease the request named.
    lease: Option<LeaseId>,
}

impl ErrorContext {
    fn revision(revision: impl Into<Option<Revision>>) -> Self {
        ErrorContext {
            revision: revision.into(),
            lease: None,
        }
    }
    fn lease(lease: LeaseId) -> Self {
        ErrorContext {
            revision: None,
            lease: Some(lease),
        }
    }
}

/// Translates an etcd-client error. etcd reports its errors as gRPC statuses whose message is
/// one of a fixed set (`rpctypes` in etcd's source); the code narrows, the message decides.
/// Whatever is not the caller's fault or a known condition counts as unavailable (retryable).
fn map_error(err: etcd_client::Error, context: ErrorContext) -> StoreError {
    use etcd_client::Error as E;
    use tonic::Code;
    let requested = context.revision.unwrap_or(0);
    match err {
        E::GRpcStatus(status) => {
            let message = status.message();
            match status.code() {
                Code::OutOfRange if message.contains("compacted") => StoreError::Compacted {
                    requested,
                    compact_revision: None,
                },
                Code::OutOfRange if message.contains("future revision") => StoreError::FutureRevision {
                    requested,
                    current: 0,
                },
                Code::NotFound if message.contains("lease not found") => {
                    StoreError::LeaseNotFound(context.lease.unwrap_or(0))
                }
                Code::InvalidArgument | Code::FailedPrecondition | Code::OutOfRange => {
                    StoreError::InvalidArgument(message.to_owned())
                }
                // "database space exceeded": the write had no effect.
                Code::ResourceExhausted => StoreError::Storage(message.to_owned()),
                code => {
                    StoreError::Unavailable(format!("etcd: {} ({code:?})", with_causes(message, &status)))
                }
            }
        }
        E::LeaseKeepAliveError(message) if message.contains("not found") => {
            StoreError::LeaseNotFound(context.lease.unwrap_or(0))
        }
        E::InvalidArgs(message) => StoreError::InvalidArgument(message),
        E::InvalidUri(e) => StoreError::InvalidArgument(format!("invalid etcd endpoint: {e}")),
        other => StoreError::Unavailable(with_causes(&other.to_string(), &other)),
    }
}

/// A transport failure's message with its causes ("tcp connect error: Connection refused").
fn with_causes(message: &str, err: &dyn std::error::Error) -> String {
    let mut text = message.to_owned();
    let mut cause = err.source();
    while let Some(e) = cause {
        let more = e.to_string();
        if !text.contains(&more) {
            text = format!("{text}: {more}");
        }
        cause = e.source();
    }
    text
}

/// etcd's spelling of a key range. It is the trait's, except that etcd requires a non-empty
/// start key: a range from the empty key starts at `\0`, the smallest key that can exist.
fn etcd_range(range: &KeyRange) -> (Vec<u8>, Vec<u8>) {
    let start = if range.start.is_empty() && !range.end.is_empty() {
        vec![0]
    } else {
        range.start.clone()
    };
    (start, range.end.clone())
}

fn etcd_compare(compare: &Compare) -> etcd_client::Compare {
    let op = match compare.op {
        CompareOp::Equal => etcd_client::CompareOp::Equal,
        CompareOp::NotEqual => etcd_client::CompareOp::NotEqual,
        CompareOp::Less => etcd_client::CompareOp::Less,
        CompareOp::Greater => etcd_client::CompareOp::Greater,
    };
    let key = compare.key.as_bytes();
    match &compare.target {
        CompareTarget::ModRevision(rev) => etcd_client::Compare::mod_revision(key, op, *rev),
        CompareTarget::CreateRevision(rev) => etcd_client::Compare::create_revision(key, op, *rev),
        CompareTarget::Version(version) => etcd_client::Compare::version(key, op, *version),
        CompareTarget::Value(value) => etcd_client::Compare::value(key, op, value.to_vec()),
    }
}

fn etcd_op(op: &Op) -> TxnOp {
    match op {
        Op::Put { key, value, lease } => {
            let mut options = PutOptions::new().with_prev_key();
            if let Some(lease) = lease {
                options = options.with_lease(*lease);
            }
            TxnOp::put(key.as_bytes(), value.to_vec(), Some(options))
        }
        Op::Delete { key } => TxnOp::delete(key.as_bytes(), Some(DeleteOptions::new().with_prev_key())),
        Op::Get { key } => TxnOp::get(key.as_bytes(), None),
    }
}

fn convert_kv(kv: etcd_client::KeyValue) -> KeyValue {
    let (create_revision, mod_revision, version, lease) =
        (kv.create_revision(), kv.mod_revision(), kv.version(), kv.lease());
    let (key, value) = kv.into_key_value();
    let key = String::from_utf8(key).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned());
    KeyValue {
        key,
        value: Bytes::from(value),
        create_revision,
        mod_revision,
        version,
        lease: (lease != 0).then_some(lease),
    }
}

fn header_revision(header: Option<&etcd_client::ResponseHeader>) -> Revision {
    header.map_or(0, etcd_client::ResponseHeader::revision)
}
