"""A local stand-in for the part of Modal's server that one container talks to.

Modal's container process (`python -m modal._container_entrypoint`, client 1.6.x) makes
these calls to `MODAL_SERVER_URL` for one call of a function (read from
`modal/_runtime/container_io_manager.py`): ContainerHello once, ContainerHeartbeat every few
seconds while it runs, FunctionGetInputs until an input marked `final_input` arrives, and
FunctionPutOutputs with the result or the exception; TaskResult instead when importing the
function failed (`modal/_runtime/task_lifecycle_manager.py`).  This server answers exactly those,
with the request and response types of Modal's own service definition
(`modal_proto.api_grpc.ModalClientBase`), on a unix socket only.  Every other call of the
service is answered UNIMPLEMENTED and recorded in `unanswered`: blob up- and downloads
(arguments or results above 2 MiB), function calls made from inside the function, volumes,
queues, dicts, sandboxes, input cancellation.
"""

from __future__ import annotations

import asyncio
import threading
from typing import TYPE_CHECKING, Any, Awaitable, Callable, Dict, List, Optional

if TYPE_CHECKING:
    import grpclib.server
    from modal_proto import api_pb2

# The container side this answers was read from these modal client versions.
CHECKED_MODAL_VERSIONS = ("1.6.",)
ANSWERED = ("ContainerHello", "ContainerHeartbeat", "FunctionGetInputs", "FunctionPutOutputs", "TaskResult")
INPUT_ID = "in-hn-modulefix-emulated"
FUNCTION_CALL_ID = "fc-hn-modulefix-emulated"


def check_modal_version() -> None:
    import modal

    if not modal.__version__.startswith(CHECKED_MODAL_VERSIONS):
        raise RuntimeError("the stand-in Modal server speaks the container protocol of modal %s, not %s"
                           % (" ".join(v + "x" for v in CHECKED_MODAL_VERSIONS), modal.__version__))


class StandInServer:
    """Serves one input to one container on the unix socket `path`; collects its outputs.

    Runs its own event loop in a background thread between `start()` and `stop()` (or
    as a context manager), so the caller can wait for the container process meanwhile.
    """

    def __init__(self, path: str, function_input: api_pb2.FunctionInput) -> None:
        self.path = path
        self.url = "unix://" + path
        self.calls: List[str] = []  # every call received, in order
        self.unanswered: List[str] = []
        self.outputs: List[api_pb2.FunctionPutOutputsItem] = []
        self.task_results: List[api_pb2.GenericResult] = []  # failures before any input ran
        self._input = function_input
        self._input.final_input = True  # one call: the container stops fetching after it
        self._delivered = False
        self._loop: Optional[asyncio.AbstractEventLoop] = None
        self._stopping: Optional[asyncio.Event] = None
        self._thread: Optional[threading.Thread] = None

    def __enter__(self) -> StandInServer:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def start(self) -> None:
        check_modal_version()
        ready = threading.Event()
        failure: List[BaseException] = []

        async def serve() -> None:
            try:
                import grpclib.server

                self._loop = asyncio.get_running_loop()
                self._stopping = asyncio.Event()
                server = grpclib.server.Server([_Handlers(self)])
                await server.start(path=self.path)
            except BaseException as exc:
                failure.append(exc)
                return
            finally:
                ready.set()  # started or failed: the caller must not wait for ever
            await self._stopping.wait()
            server.close()
            await server.wait_closed()

        # The server's loop runs in its own thread: the caller waits for the container meanwhile.
        self._thread = threading.Thread(target=asyncio.run, args=(serve(),), daemon=True,
                                        name="hn_modulefix stand-in Modal server")
        self._thread.start()
        ready.wait()
        if failure:
            self._thread.join()
            self._thread = None
            raise failure[0]

    def stop(self) -> None:
        loop, stopping, thread = self._loop, self._stopping, self._thread
        if loop is None or stopping is None or thread is None:
            return
        loop.call_soon_threadsafe(stopping.set)
        thread.join()
        self._loop = self._stopping = self._thread = None

    # -- the calls it answers (run on the server's loop) --

    async def ContainerHello(self, stream: grpclib.server.Stream[Any, Any]) -> None:
        from google.protobuf import empty_pb2

        await stream.recv_message()
        await stream.send_message(empty_pb2.Empty())

    async def ContainerHeartbeat(self, stream: grpclib.server.Stream[Any, Any]) -> None:
        from modal_proto import api_pb2

        await stream.recv_message()
        await stream.send_message(api_pb2.ContainerHeartbeatResponse())

    async def FunctionGetInputs(self, stream: grpclib.server.Stream[Any, Any]) -> None:
        from modal_proto import api_pb2

        await stream.recv_message()
        if self._delivered:
            # Not reached in 1.6.x (final_input ends its loop); a kill switch ends it anyway.
            item = api_pb2.FunctionGetInputsItem(kill_switch=True)
        else:
            self._delivered = True
            item = api_pb2.FunctionGetInputsItem(input_id=INPUT_ID, function_call_id=FUNCTION_CALL_ID,
                                                 input=self._input)
        await stream.send_message(api_pb2.FunctionGetInputsResponse(inputs=[item]))

    async def FunctionPutOutputs(self, stream: grpclib.server.Stream[Any, Any]) -> None:
        from google.protobuf import empty_pb2

        request = await stream.recv_message()
        assert request is not None
        self.outputs.extend(request.outputs)
        await stream.send_message(empty_pb2.Empty())

    async def TaskResult(self, stream: grpclib.server.Stream[Any, Any]) -> None:
        from google.protobuf import empty_pb2

        request = await stream.recv_message()
        assert request is not None
        self.task_results.append(request.result)
        await stream.send_message(empty_pb2.Empty())


class _Handlers:
    """Modal's own service mapping (method paths, cardinality, message types), with
    each method routed to the StandInServer method of that name or to UNIMPLEMENTED."""

    def __init__(self, server: StandInServer) -> None:
        self._server = server

    def __getattr__(self, name: str) -> Callable[[Any], Awaitable[None]]:
        if name in ANSWERED:
            answer: Callable[[Any], Awaitable[None]] = getattr(self._server, name)

            async def answered(stream: Any) -> None:
                self._server.calls.append(name)
                await answer(stream)

            return answered

        async def unanswered(stream: Any) -> None:
            import grpclib
            import grpclib.const

            self._server.calls.append(name)
            self._server.unanswered.append(name)
            raise grpclib.GRPCError(grpclib.const.Status.UNIMPLEMENTED,
                                    "%s: hn_modulefix's stand-in Modal server answers only %s"
                                    % (name, ", ".join(ANSWERED)))

        return unanswered

    def __mapping__(self) -> Dict[str, Any]:
        from modal_proto import api_grpc

        mapping: Dict[str, Any] = api_grpc.ModalClientBase.__mapping__(self)  # type: ignore[arg-type]
        return mapping

