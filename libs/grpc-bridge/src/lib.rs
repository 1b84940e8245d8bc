//! gRPC serving for fraudstream's Python services. HTTP/2 and gRPC framing, health
//! (grpc.health.v1) and reflection (v1 and v1alpha) run in tonic on Tokio threads of their own,
//! outside the GIL. Each unary call's message goes to Python as bytes and its answer comes back
//! as bytes: Python parses, handles and serializes it on its event loop.
//!
//! The hand-off: a call is queued and the loop is woken through a socket only when the queue
//! was empty; the loop takes every queued call at once (`take`) and answers each (`respond`).
//! One wake-up serves all the calls that arrived while the loop was busy, which is what lets
//! the calls of a busy server share the loop's work (inference scores them in one pass).
//! grpc.aio, which this replaces, woke the loop twice per call from its poller thread.

use std::collections::{HashMap, VecDeque};
use std::convert::Infallible;
use std::future::Future;
use std::io::{Read, Write};
use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Buf, BufMut, Bytes};
use pyo3::exceptions::{PyOSError, PyRuntimeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyList, PyTuple};
use tokio::sync::oneshot;
use tokio_stream::StreamExt;
use tonic::body::Body;
use tonic::codec::{Codec, CompressionEncoding, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::metadata::KeyAndValueRef;
use tonic::server::{Grpc, UnaryService};
use tonic::{Code, Status};
use tonic_health::ServingStatus;
use tonic_health::server::HealthReporter;

type Reply = Result<Bytes, Status>;
type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

/// A call waiting for Python.
struct Call {
    id: u64,
    method: usize,
    metadata: Vec<(String, String)>,
    message: Bytes,
}

/// What the Tokio threads and Python share.
struct Exchange {
    queue: Mutex<Queue>,
    waiting: Mutex<HashMap<u64, oneshot::Sender<Reply>>>,
    next_id: AtomicU64,
    wake_writer: UnixStream,
}

struct Queue {
    calls: VecDeque<Call>,
    woken: bool,
}

/// A poisoned lock only means a thread panicked while holding it; the data is still whole.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Exchange {
    fn submit(&self, method: usize, metadata: Vec<(String, String)>, message: Bytes) -> oneshot::Receiver<Reply> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (sender, receiver) = oneshot::channel();
        lock(&self.waiting).insert(id, sender);
        let mut queue = lock(&self.queue);
        queue.calls.push_back(Call { id, method, metadata, message });
        if !queue.woken {
            queue.woken = true;
            // At most one byte is ever unread (`take` reads it under this lock): never full.
            let _ = (&self.wake_writer).write(b"!");
        }
        receiver
    }
}

/// Message bodies pass through as bytes.
#[derive(Clone, Copy, Default)]
struct RawCodec;

struct RawCoder;

impl Codec for RawCodec {
    type Encode = Bytes;
    type Decode = Bytes;
    type Encoder = RawCoder;
    type Decoder = RawCoder;

    fn encoder(&mut self) -> RawCoder {
        RawCoder
    }

    fn decoder(&mut self) -> RawCoder {
        RawCoder
    }
}

impl Encoder for RawCoder {
    type Item = Bytes;
    type Error = Status;

    fn encode(&mut self, item: Bytes, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
        dst.put(item);
        Ok(())
    }
}

impl Decoder for RawCoder {
    type Item = Bytes;
    type Error = Status;

    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Bytes>, Status> {
        Ok(Some(src.copy_to_bytes(src.remaining())))
    }
}

#[derive(Clone)]
struct ToPython {
    exchange: Arc<Exchange>,
    method: usize,
    max_message_bytes: usize,
    reached: Arc<AtomicBool>,
}

impl UnaryService<Bytes> for ToPython {
    type Response = Bytes;
    type Future = BoxFuture<Result<tonic::Response<Bytes>, Status>>;

    fn call(&mut self, request: tonic::Request<Bytes>) -> Self::Future {
        self.reached.store(true, Ordering::Relaxed);
        let metadata = request
            .metadata()
            .iter()
            .filter_map(|entry| match entry {
                KeyAndValueRef::Ascii(key, value) => {
                    value.to_str().ok().map(|v| (key.as_str().to_owned(), v.to_owned()))
                }
                KeyAndValueRef::Binary(..) => None,
            })
            .collect();
        let answer = self.exchange.submit(self.method, metadata, request.into_inner());
        let limit = self.max_message_bytes;
        Box::pin(async move {
            match answer.await {
                // tonic's own limit on answers would say OUT_OF_RANGE; the same status as requests.
                Ok(Ok(message)) if message.len() > limit => Err(Status::resource_exhausted(format!(
                    "the response is {} bytes, over the limit of {limit}",
                    message.len()
                ))),
                Ok(Ok(message)) => Ok(tonic::Response::new(message)),
                Ok(Err(status)) => Err(status),
                Err(_) => Err(Status::unavailable("the server stopped before answering")),
            }
        })
    }
}

/// Every registered method goes to Python; any other path is UNIMPLEMENTED.
#[derive(Clone)]
struct Dispatch {
    exchange: Arc<Exchange>,
    methods: Arc<HashMap<String, usize>>,
    max_message_bytes: usize,
}

impl tower::Service<http::Request<axum::body::Body>> for Dispatch {
    type Response = http::Response<Body>;
    type Error = Infallible;
    type Future = BoxFuture<Result<Self::Response, Infallible>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<axum::body::Body>) -> Self::Future {
        let method = self.methods.get(request.uri().path()).copied();
        let exchange = self.exchange.clone();
        let limit = self.max_message_bytes;
        Box::pin(async move {
            let Some(method) = method else {
                return Ok(Status::unimplemented("no such method").into_http());
            };
            let mut grpc = Grpc::new(RawCodec)
                .accept_compressed(CompressionEncoding::Gzip)
                .accept_compressed(CompressionEncoding::Deflate)
                .max_decoding_message_size(limit);
            let reached = Arc::new(AtomicBool::new(false));
            let to_python = ToPython { exchange, method, max_message_bytes: limit, reached: reached.clone() };
            let mut response = grpc.unary(to_python, request).await;
            if !reached.load(Ordering::Relaxed) {
                resource_exhausted_when_too_large(&mut response);
            }
            Ok(response)
        })
    }
}

/// tonic refuses a request over the size limit with OUT_OF_RANGE, before the method is reached;
/// gRPC's other implementations (and fraudstream's contract) say RESOURCE_EXHAUSTED. Of the
/// errors that stop a request before its method, only the size limit's is OUT_OF_RANGE.
fn resource_exhausted_when_too_large(response: &mut http::Response<Body>) {
    let headers = response.headers_mut();
    if headers.get("grpc-status").is_some_and(|status| status == "11") {
        headers.insert("grpc-status", http::HeaderValue::from_static("8"));
    }
}

struct Running {
    runtime: tokio::runtime::Runtime,
    shutdown: Option<oneshot::Sender<()>>,
    finished: tokio::task::JoinHandle<()>,
    health: HealthReporter,
}

/// The server, from Python: `start()` binds and serves; the event loop watches `wake_fd()`,
/// calls `take()` when it turns readable, and `respond()` once for each call it took.
#[pyclass(frozen, module = "fraudstream_grpc_bridge")]
struct Server {
    exchange: Arc<Exchange>,
    wake_reader: UnixStream,
    methods: Arc<HashMap<String, usize>>,
    file_descriptor_set: &'static [u8],
    max_message_bytes: usize,
    running: Mutex<Option<Running>>,
}

fn os_error(error: std::io::Error) -> PyErr {
    PyOSError::new_err(error.to_string())
}

#[pymethods]
impl Server {
    /// `methods`: the paths served ("/package.Service/Method"), the index of each is what
    /// `take()` reports; `file_descriptor_set`: a serialized FileDescriptorSet with their
    /// services and every file they import, for reflection.
    #[new]
    fn new(methods: Vec<String>, file_descriptor_set: Vec<u8>, max_message_bytes: usize) -> PyResult<Self> {
        let (wake_writer, wake_reader) = UnixStream::pair().map_err(os_error)?;
        wake_writer.set_nonblocking(true).map_err(os_error)?;
        wake_reader.set_nonblocking(true).map_err(os_error)?;
        Ok(Self {
            exchange: Arc::new(Exchange {
                queue: Mutex::new(Queue { calls: VecDeque::new(), woken: false }),
                waiting: Mutex::new(HashMap::new()),
                next_id: AtomicU64::new(0),
                wake_writer,
            }),
            wake_reader,
            methods: Arc::new(methods.into_iter().enumerate().map(|(index, path)| (path, index)).collect()),
            // Reflection keeps a reference for the life of the process; one per server.
            file_descriptor_set: Box::leak(file_descriptor_set.into_boxed_slice()),
            max_message_bytes,
            running: Mutex::new(None),
        })
    }

    /// The socket that turns readable when calls are waiting.
    fn wake_fd(&self) -> i32 {
        self.wake_reader.as_raw_fd()
    }

    /// Binds `host:port` (shared with other processes with `reuse_port`), serves on `threads`
    /// Tokio threads, and returns the port bound. `services` start NOT_SERVING in health; the
    /// server as a whole ("") is SERVING.
    fn start(&self, host: &str, port: u16, threads: usize, reuse_port: bool, services: Vec<String>) -> PyResult<u16> {
        let mut running = lock(&self.running);
        if running.is_some() {
            return Err(PyRuntimeError::new_err("the server is already started"));
        }
        let address: SocketAddr = format!("{host}:{port}")
            .parse()
            .or_else(|_| format!("[{host}]:{port}").parse())
            .map_err(|e| PyValueError::new_err(format!("gRPC address {host}:{port}: {e}")))?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads.max(1))
            .thread_name("grpc-bridge")
            .enable_all()
            .build()
            .map_err(os_error)?;
        let listener = runtime
            .block_on(async {
                let socket =
                    if address.is_ipv6() { tokio::net::TcpSocket::new_v6()? } else { tokio::net::TcpSocket::new_v4()? };
                socket.set_reuseaddr(true)?;
                socket.set_reuseport(reuse_port)?;
                socket.bind(address)?;
                socket.listen(1024)
            })
            .map_err(|e| PyOSError::new_err(format!("gRPC port {address}: {e}")))?;
        let bound = listener.local_addr().map_err(os_error)?.port();

        let reflection = || {
            tonic_reflection::server::Builder::configure()
                .register_encoded_file_descriptor_set(self.file_descriptor_set)
                .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        };
        let reflection_v1 = reflection().build_v1().map_err(|e| PyValueError::new_err(format!("reflection: {e}")))?;
        let reflection_v1alpha =
            reflection().build_v1alpha().map_err(|e| PyValueError::new_err(format!("reflection: {e}")))?;
        let (health, health_service) = tonic_health::server::health_reporter();
        runtime.block_on(async {
            for service in &services {
                health.set_service_status(service, ServingStatus::NotServing).await;
            }
        });

        let dispatch = Dispatch {
            exchange: self.exchange.clone(),
            methods: self.methods.clone(),
            max_message_bytes: self.max_message_bytes,
        };
        let mut routes =
            tonic::service::Routes::new(health_service).add_service(reflection_v1).add_service(reflection_v1alpha);
        let routes = tonic::service::Routes::from(std::mem::take(routes.axum_router_mut()).fallback_service(dispatch));
        let (shutdown, signal) = oneshot::channel::<()>();
        let finished = runtime.spawn(async move {
            // Answers are small: without TCP_NODELAY each waits on the client's delayed ACK (40 ms).
            let incoming = tokio_stream::wrappers::TcpListenerStream::new(listener).map(|accepted| {
                accepted.inspect(|stream| {
                    let _ = stream.set_nodelay(true);
                })
            });
            let served = tonic::transport::Server::builder()
                .serve_with_incoming_shutdown(routes, incoming, async {
                    let _ = signal.await;
                })
                .await;
            if let Err(error) = served {
                eprintln!("fraudstream_grpc_bridge: the gRPC server stopped: {error}");
            }
        });
        *running = Some(Running { runtime, shutdown: Some(shutdown), finished, health });
        Ok(bound)
    }

    /// Every call waiting, as (call id, method index, metadata, message); empties the queue.
    fn take<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        let calls: Vec<Call> = {
            let mut queue = lock(&self.exchange.queue);
            let mut unread = [0u8; 16];
            while matches!((&self.wake_reader).read(&mut unread), Ok(n) if n > 0) {}
            queue.woken = false;
            queue.calls.drain(..).collect()
        };
        let taken = calls
            .into_iter()
            .map(|call| {
                let metadata = PyList::new(py, call.metadata.iter().map(|(k, v)| (k.as_str(), v.as_str())))?;
                PyTuple::new(
                    py,
                    [
                        call.id.into_pyobject(py)?.into_any(),
                        call.method.into_pyobject(py)?.into_any(),
                        metadata.into_any(),
                        PyBytes::new(py, &call.message).into_any(),
                    ],
                )
            })
            .collect::<PyResult<Vec<_>>>()?;
        PyList::new(py, taken)
    }

    /// Answers call `call_id`: code 0 with the serialized response, or another status code
    /// with its message. The answer to a call whose client has gone is dropped.
    #[pyo3(signature = (call_id, code, message, response=None))]
    fn respond(&self, call_id: u64, code: i32, message: &str, response: Option<&[u8]>) {
        let Some(sender) = lock(&self.exchange.waiting).remove(&call_id) else {
            return;
        };
        let reply = match (code, response) {
            (0, Some(response)) => Ok(Bytes::copy_from_slice(response)),
            (0, None) => Err(Status::internal("the server gave no response")),
            (code, _) => Err(Status::new(Code::from_i32(code), message)),
        };
        let _ = sender.send(reply);
    }

    /// Sets the health status of `service` ("" for the server as a whole).
    fn set_serving(&self, py: Python<'_>, service: &str, serving: bool) -> PyResult<()> {
        let running = lock(&self.running);
        let running = running.as_ref().ok_or_else(|| PyRuntimeError::new_err("the server is not started"))?;
        let status = if serving { ServingStatus::Serving } else { ServingStatus::NotServing };
        py.detach(|| running.runtime.block_on(running.health.set_service_status(service, status)));
        Ok(())
    }

    /// Stops taking new connections and calls (HTTP/2 GOAWAY); calls in flight go on, and
    /// `stopped()` turns true once every connection has closed.
    fn begin_stop(&self) {
        if let Some(running) = lock(&self.running).as_mut()
            && let Some(shutdown) = running.shutdown.take()
        {
            let _ = shutdown.send(());
        }
    }

    /// Waits up to `timeout_seconds` for the server to finish after `begin_stop` (every
    /// connection closed); whether it did.
    fn wait_stopped(&self, py: Python<'_>, timeout_seconds: f64) -> bool {
        let mut running = lock(&self.running);
        let Some(Running { runtime, finished, .. }) = running.as_mut() else {
            return true;
        };
        let timeout = Duration::from_secs_f64(timeout_seconds.max(0.0));
        py.detach(|| runtime.block_on(async { tokio::time::timeout(timeout, finished).await.is_ok() }))
    }

    /// Closes whatever is still open: calls not answered yet fail with UNAVAILABLE.
    fn close(&self, py: Python<'_>) {
        let running = lock(&self.running).take();
        if let Some(running) = running {
            py.detach(move || running.runtime.shutdown_timeout(Duration::from_secs(1)));
        }
        lock(&self.exchange.waiting).clear();
    }
}

#[pymodule]
fn fraudstream_grpc_bridge(module: &Bound<'_, PyModule>) -> PyResult<()> {
    module.add_class::<Server>()
}
