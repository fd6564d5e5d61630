"""`hub.asgi_app()` served by uvicorn: the ASGI entry point of the HTTP API tests.

Takes the API options of `ssehub serve` that the ASGI app shares, listens on an ephemeral
loopback port, and says where on stderr as `ssehub serve --port 0` does, so the same tests
start either.
"""

from __future__ import annotations

import argparse
import asyncio
import socket
import sys

import uvicorn

from ssehub import Hub


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--backend", default="memory")
    parser.add_argument("--history", type=int, default=1000)
    parser.add_argument("--history-ttl", type=float, default=3600.0)
    parser.add_argument("--max-topics", type=int, default=100_000)
    parser.add_argument("--metrics-topics", type=int, default=0)
    parser.add_argument("--heartbeat", type=float, default=15.0)
    parser.add_argument("--retry", type=int, default=3000)
    parser.add_argument("--cors-origin", action="append", default=[])
    parser.add_argument("--max-body-bytes", type=int, default=1024 * 1024)
    parser.add_argument("--max-buffer-bytes", type=int, default=1024 * 1024)
    parser.add_argument("--jwt-key")
    parser.add_argument("--jwt-algorithm", default="HS256")
    parser.add_argument("--allow-anonymous", action="store_true")
    parser.add_argument("--metrics-token")
    parser.add_argument("--subscriptions", action="store_true")
    args = parser.parse_args()
    hub = Hub(
        args.backend,
        history=args.history,
        history_ttl=args.history_ttl or None,
        max_topics=args.max_topics,
    )
    app = hub.asgi_app(
        heartbeat=args.heartbeat,
        retry=args.retry,
        cors_origins=tuple(args.cors_origin),
        max_body_bytes=args.max_body_bytes,
        max_pending_bytes=args.max_buffer_bytes,
        jwt_key=args.jwt_key,
        jwt_algorithm=args.jwt_algorithm,
        allow_anonymous=args.allow_anonymous,
        metrics_token=args.metrics_token,
        metrics_topics=args.metrics_topics,
        subscriptions=args.subscriptions,
    )
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", 0))
    listener.listen(1024)
    host, port = listener.getsockname()
    # Connections wait in the listen backlog until uvicorn has run the lifespan and accepts.
    print(f"ssehub (ASGI) serving on http://{host}:{port}/", file=sys.stderr, flush=True)
    server = uvicorn.Server(uvicorn.Config(app, lifespan="on", log_level="warning"))
    asyncio.run(server.serve(sockets=[listener]))


if __name__ == "__main__":
    main()
