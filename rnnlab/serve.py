"""`rnnlab serve RUN_DIR`: a local web page for sampling text from a trained run, and one for
looking at its states.

    GET  /              the playground page (rnnlab/static/playground.html)
    GET  /playground.js its script (rnnlab/static/playground.js): the page's CSP forbids inline script
    GET  /api/info      the model: name, cell, size, parameters, validation score, defaults, limits
    POST /api/generate  JSON {"prompt", "temperature", "top_k", "top_p", "length", "seed", "stop"} (all optional;
                        "stop": a string that ends the sample where it appears)
                        → newline-delimited JSON as tokens are sampled: {"text": piece} per token,
                          then {"done": true, "tokens": n, "seconds": s}; bad parameters → 400 {"error": ...}
    GET  /explore, /explore.js, POST /api/record, /api/units
                        the explorer: a text's recorded states, units that follow a span (rnnlab/explore.py)

Starlette serves the app and uvicorn runs it, bound to 127.0.0.1 unless told
otherwise. Every request's Host header must name this machine (a loopback
name or address) or a name given with --allow-host, which stops DNS-rebinding
pages from reaching the server through a browser. Request bodies are read
with a size cap and parsed with bounded depth (rnnlab/safejson.py), and every
parameter is validated before the 200 of a stream is sent. Each request samples
in a thread of its own with its own copy of the model: the fused recurrent path swaps parameters into a template module
during a forward pass, so two requests must never share one model. At most
`max_workers` requests sample at once; more wait their turn.
"""

from __future__ import annotations

import asyncio
import copy
import ipaddress
import json
import math
import os
import socket
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import torch
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from rnnlab import safejson
from rnnlab.config import validate_generation
from rnnlab.data.vocab import UNK
from rnnlab.errors import UserError
from rnnlab.generate import generate
from rnnlab.request_fields import BadRequest, integer, known_fields, number
from rnnlab.runs import load_run

MAX_LENGTH = 2000  # tokens per request
MAX_PROMPT = 2000  # characters
MAX_TEMPERATURE = 5.0
MAX_BODY = 64 * 1024  # bytes of a request body; a full one (a 2000-character prompt) is under 10 KB
FIELDS = ("prompt", "temperature", "top_k", "top_p", "length", "seed", "stop")
MAX_STOP = 100  # characters
FLUSH_SECONDS = 0.02  # a stream hands its sampled text to the event loop at most this often
LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1")
# The page's only script is /playground.js; no inline script, no framing, no other origin.
CSP = ("default-src 'none'; script-src 'self'; connect-src 'self'; style-src 'self' 'unsafe-inline'; "
       "img-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
PAGE_HEADERS = {"Content-Security-Policy": CSP, "X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer"}


@dataclass
class Params:
    prompt: str
    temperature: float
    top_k: int
    top_p: float
    length: int
    seed: int | None
    stop: str = ""


class Playground:
    """One loaded run and everything the web page asks of it."""

    def __init__(self, run_dir: Path, checkpoint: str = "best", device: str = "cpu", max_workers: int = 4):
        self.run_dir = Path(run_dir)
        self.model, self.vocab, self.cfg, meta = load_run(self.run_dir, checkpoint, device)
        self.device = device
        self.slots = threading.BoundedSemaphore(max_workers)
        g = self.cfg.generate
        self.defaults = {"prompt": "", "temperature": min(g.temperature, MAX_TEMPERATURE),
                         "top_k": min(g.top_k, len(self.vocab)), "top_p": g.top_p, "length": min(g.length, MAX_LENGTH),
                         "seed": None}
        self.info = {
            "run": self.run_dir.resolve().name, "name": self.cfg.name, "description": self.cfg.description,
            "level": self.vocab.level, "cell": self.cfg.model.kind_and_size()[0], "layers": self.cfg.model.layers,
            "hidden": self.cfg.model.hidden, "parameters": self.model.num_parameters(), "vocab_size": len(self.vocab),
            "checkpoint": checkpoint, "step": meta.get("step"),
            "valid": _valid_score(_valid_loss(self.run_dir, meta, checkpoint), self.vocab.level),
            "defaults": self.defaults,
            "limits": {"length": [1, MAX_LENGTH], "temperature": [0, MAX_TEMPERATURE], "top_k": [0, len(self.vocab)],
                       "top_p": [0, 1], "prompt_chars": MAX_PROMPT, "stop_chars": MAX_STOP},
        }

    def parse(self, body) -> tuple[Params, list[str]]:
        """Validated parameters and warnings (words a word model does not know)."""
        known_fields(body, FIELDS)
        prompt = body.get("prompt", "")
        if not isinstance(prompt, str):
            raise BadRequest(f"prompt must be a string, got {json.dumps(prompt)}")
        if len(prompt) > MAX_PROMPT:
            raise BadRequest(f"prompt is too long: {len(prompt)} characters, at most {MAX_PROMPT}")
        stop = body.get("stop", "")
        if not isinstance(stop, str) or len(stop) > MAX_STOP:
            raise BadRequest(f"stop must be a string of at most {MAX_STOP} characters, got {json.dumps(stop)[:120]}")
        d = self.defaults
        params = Params(prompt,
                        number(body, "temperature", d["temperature"], 0.0, MAX_TEMPERATURE),
                        integer(body, "top_k", d["top_k"], 0, len(self.vocab)),
                        number(body, "top_p", d["top_p"], 0.0, 1.0, low_open=True),
                        integer(body, "length", d["length"], 1, MAX_LENGTH),
                        integer(body, "seed", None, 0, 2**63 - 1), stop)
        try:  # the sampler's own bounds (temperature and top_p that would underflow), before any 200 is sent
            validate_generation(params.temperature, params.top_k, params.top_p, params.length)
        except UserError as e:
            raise BadRequest(str(e)) from None
        warnings = []
        if self.vocab.level == "char":
            try:
                self.vocab.encode_prompt(prompt)  # refuses characters the model has never seen
            except UserError as e:
                raise BadRequest(str(e)) from None
        else:
            words = prompt.split()
            missing = sorted({w for w in words if w not in self.vocab.stoi})
            if missing:
                warnings.append(f"words not in the vocabulary, read as {UNK}: {', '.join(missing[:10])}")
                params.prompt = " ".join(w if w in self.vocab.stoi else UNK for w in words)
        return params, warnings

    def _work(self, params: Params, emit, stop: threading.Event) -> None:
        """Sample in this thread, handing each piece of text to `emit` as it comes."""

        class Stopped(Exception):
            pass

        tokens, pending, flushed = 0, [], time.monotonic()

        def flush() -> None:
            nonlocal flushed
            if pending:
                emit({"text": "".join(pending)})
                pending.clear()
            flushed = time.monotonic()

        def on_token(_, piece: str) -> None:
            # Pieces go to the event loop at most every FLUSH_SECONDS: one callback per token
            # (tens of thousands a second over a few streams) kept it from answering anything else.
            nonlocal tokens
            if stop.is_set():  # the client went away
                raise Stopped
            tokens += 1
            pending.append(piece)
            if time.monotonic() - flushed >= FLUSH_SECONDS:
                flush()

        try:
            with self.slots:
                if stop.is_set():
                    return
                model = copy.deepcopy(self.model)
                start = time.perf_counter()
                generate(model, self.vocab, params.prompt, params.length, params.temperature, params.top_k,
                         params.top_p, seed=params.seed, device=self.device, on_token=on_token, stop=params.stop)
                flush()
                emit({"done": True, "tokens": tokens, "seconds": round(time.perf_counter() - start, 4)})
        except Stopped:
            pass
        except Exception as e:  # reported to the client, which has already received a 200
            emit({"error": f"generation failed: {type(e).__name__}: {e}"})
        finally:
            emit(None)

    async def stream(self, params: Params, warnings: list[str]):
        loop, queue, stop = asyncio.get_running_loop(), asyncio.Queue(), threading.Event()

        def emit(item) -> None:
            try:
                loop.call_soon_threadsafe(queue.put_nowait, item)
            except RuntimeError:  # the event loop is gone: the server is shutting down
                stop.set()

        for w in warnings:
            yield json.dumps({"warning": w}) + "\n"
        threading.Thread(target=self._work, args=(params, emit, stop), name="rnnlab-sample", daemon=True).start()
        try:
            while (item := await queue.get()) is not None:
                yield json.dumps(item) + "\n"
        finally:
            stop.set()


def _valid_loss(run_dir: Path, meta: dict, checkpoint: str) -> float | None:
    """Validation loss of the loaded weights: the 'best' checkpoint's is its best_valid;
    the 'last' one's is the final evaluation when training has finished."""
    if checkpoint == "last":
        try:
            summary = safejson.read(run_dir / "summary.json")
            loss = summary["final"]["valid"]["loss"]
            if summary["steps"] == meta.get("step") and isinstance(loss, (int, float)) and not isinstance(loss, bool):
                return loss
        except (OSError, ValueError, KeyError, TypeError):
            pass
        return None  # a checkpoint taken mid-training has not been evaluated
    return meta.get("best_valid")


def _valid_score(loss, level: str) -> dict | None:
    if loss is None or not math.isfinite(loss):
        return None
    if level == "char":
        return {"measure": "bits/char", "value": loss / math.log(2)}
    return {"measure": "perplexity", "value": math.exp(min(loss, 700.0))}


def _error(message: str, status: int = 400) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


def is_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def allowed_hosts_for(host: str, allow: list[str] | None = None) -> list[str]:
    """Host-header names a server bound to `host` accepts: this machine's loopback
    names, the bound address itself unless it is a wildcard, and `allow` (--allow-host)."""
    names = [*LOOPBACK_NAMES, *(allow or [])]
    try:
        if not ipaddress.ip_address(host.strip("[]")).is_unspecified:
            names.append(host)
    except ValueError:
        names.append(host)  # a host name
    # Starlette compares the Host header's host part, which keeps an IPv6 literal's brackets.
    return [f"[{n.strip('[]')}]" if ":" in n else n.lower() for n in dict.fromkeys(names)]


async def _read_body(request: Request, limit: int = MAX_BODY) -> bytes:
    """The request body, refused as soon as it passes `limit` (never buffered whole)."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise BadRequest(f"the request body is too large ({int(declared):,} bytes, at most {limit:,})")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise BadRequest(f"the request body is too large (more than {limit:,} bytes)")
    return bytes(body)


async def _json_body(request: Request):
    """The request's JSON body (size-capped, depth-bounded), or the 400/413 response that refuses it."""
    # JSON only: a cross-site form (text/plain, no CORS preflight) must not be able to start work here.
    if request.headers.get("content-type", "").split(";")[0].strip() != "application/json":
        return _error("send the parameters as JSON with 'Content-Type: application/json'")
    try:
        raw = await _read_body(request)
    except BadRequest as e:
        return _error(str(e), 413)
    try:
        return safejson.loads(raw or b"{}", max_depth=8)
    except ValueError as e:
        return _error(f"the request body is not valid JSON: {e}")


def _page_routes(path: str, name: str) -> list[Route]:
    """A page and its script (rnnlab/static/NAME.html, NAME.js at /NAME.js), under the pages' CSP."""
    static = resources.files("rnnlab.static")
    page = (static / f"{name}.html").read_text(encoding="utf-8")
    script = (static / f"{name}.js").read_text(encoding="utf-8")

    async def html(request: Request) -> HTMLResponse:
        return HTMLResponse(page, headers=PAGE_HEADERS)

    async def code(request: Request) -> Response:
        return Response(script, media_type="text/javascript", headers=PAGE_HEADERS)

    return [Route(path, html), Route(f"/{name}.js", code)]


def _explorer_routes(playground: Playground, max_workers: int) -> list[Route]:
    """The explorer's page, script and API (rnnlab/explore.py), on the playground's loaded model."""
    from starlette.concurrency import run_in_threadpool

    from rnnlab import explore

    explorer = explore.Explorer(playground.model, playground.vocab, playground.cfg, max_workers)

    def answering(work):
        async def endpoint(request: Request) -> Response:
            body = await _json_body(request)
            if isinstance(body, Response):
                return body
            try:
                answer = await run_in_threadpool(work, body)  # recording takes a while: off the event loop
            except BadRequest as e:
                return _error(str(e))
            return Response(json.dumps(answer, allow_nan=False), media_type="application/json",
                            headers={"Cache-Control": "no-store"})
        return endpoint

    return [*_page_routes("/explore", "explore"),
            Route("/api/record", answering(explorer.record), methods=["POST"]),
            Route("/api/units", answering(explorer.units), methods=["POST"])]


class NoSniff:
    """ASGI middleware: `X-Content-Type-Options: nosniff` on every response (errors, 404s and the
    Host check's 400s too), so that no browser reads a JSON or text reply as HTML or script."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)

        async def send_nosniff(message):
            if message["type"] == "http.response.start":
                headers = [(k, v) for k, v in message.get("headers", []) if k.lower() != b"x-content-type-options"]
                message = {**message, "headers": [*headers, (b"x-content-type-options", b"nosniff")]}
            await send(message)

        await self.app(scope, receive, send_nosniff)


def create_app(run_dir: Path, checkpoint: str = "best", device: str = "cpu", max_workers: int = 4,
               allowed_hosts: list[str] | None = None) -> Starlette:
    """The playground app. `allowed_hosts`: accepted Host headers (None: any), which
    stops DNS-rebinding pages from reaching a server bound to localhost."""
    playground = Playground(run_dir, checkpoint, device, max_workers)
    info_body: list[bytes] = []  # serialised at the first request, then reused: the model does not change

    async def info(request: Request) -> Response:
        if not info_body:
            info_body.append(json.dumps(playground.info).encode())
        return Response(info_body[0], media_type="application/json")

    async def sample(request: Request):
        body = await _json_body(request)
        if isinstance(body, Response):
            return body
        try:
            params, warnings = playground.parse(body)
        except BadRequest as e:
            return _error(str(e))
        return StreamingResponse(playground.stream(params, warnings), media_type="application/x-ndjson",
                                 headers={"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"})

    routes = [*_page_routes("/", "playground"), Route("/api/info", info),
              Route("/api/generate", sample, methods=["POST"]), *_explorer_routes(playground, max_workers)]
    middleware = [Middleware(NoSniff)]  # outermost: on every response, the Host check's refusals included
    if allowed_hosts:
        middleware.append(Middleware(TrustedHostMiddleware, allowed_hosts=allowed_hosts))
    app = Starlette(routes=routes, middleware=middleware)
    app.state.playground = playground
    return app


def listen(host: str, port: int) -> socket.socket:
    """A listening socket, or one clear error (port taken, unknown host)."""
    if not 0 <= port <= 65535:
        raise UserError(f"--port must be between 0 and 65535, got {port}")
    try:
        family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][0]
        return socket.create_server((host, port), family=family)
    except OSError as e:
        # os.strerror drops create_server's "(while attempting to bind ...)"; name-lookup errors have errno < 0.
        reason = os.strerror(e.errno) if e.errno and e.errno > 0 else (e.strerror or str(e))
        raise UserError(f"cannot listen on {host}:{port}: {reason}") from None


@contextmanager
def running(app: Starlette, host: str = "127.0.0.1", port: int = 0) -> Iterator[str]:
    """Run `app` in a background thread (for tests and notebooks); yields its base URL."""
    import uvicorn

    sock = listen(host, port)
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, name="rnnlab-server", daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the server did not start")
        time.sleep(0.02)
    try:
        yield f"http://{host}:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()


def serve(run_dir: Path, host: str = "127.0.0.1", port: int = 8000, checkpoint: str = "best",
          device: str = "cpu", threads: int = 1, allow_hosts: list[str] | None = None) -> None:
    import uvicorn

    # Sampling is one small step per token; with several clients, one thread each beats shared intra-op threads.
    torch.set_num_threads(threads)
    sock = listen(host, port)  # first: a taken port fails before the model loads
    app = create_app(run_dir, checkpoint, device, allowed_hosts=allowed_hosts_for(host, allow_hosts))
    if not is_loopback(host):
        names = ", ".join(allow_hosts or []) or "none: add --allow-host NAME for the names clients use"
        print(f"rnnlab: warning: listening on {host}: anyone who can reach this machine can use the model "
              f"(Host names accepted besides this machine's: {names})", file=sys.stderr)
    bound_host, bound_port = sock.getsockname()[:2]
    shown = f"[{bound_host}]" if ":" in bound_host else bound_host
    p = app.state.playground.info
    print(f"rnnlab playground: {p['name']} ({p['cell']} {p['layers']}x{p['hidden']}, {p['parameters']} parameters) "
          f"from {run_dir}\n  open http://{shown}:{bound_port}/  (the explorer: /explore; Ctrl-C to stop)",
          file=sys.stderr)
    uvicorn.Server(uvicorn.Config(app, log_level="warning")).run(sockets=[sock])
