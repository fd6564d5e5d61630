"""`hub.asgi_app()` for `uvicorn --workers N`: each worker process imports this module and gets
a hub of its own on the backend named by SSEHUB_BACKEND (a Redis URL), as an app would."""

from __future__ import annotations

import os

from ssehub import Hub

app = Hub(os.environ["SSEHUB_BACKEND"]).asgi_app()
